-- The sweeper looks for jobs still queued for types deleted in the last
-- hour (`engine::sweeper`): a start that read a type just before its
-- deletion committed can queue a job the deletion did not see. Deleted
-- types are kept for good, so only they are indexed, by when.
create index action_type_deleted on action_type (deleted_at) where deleted_at is not null;
