-- Tags of taggable resources (pipelines, custom action types, webhooks),
-- keyed by the resource's ARN in canonical form (see api::tags::ResourceArn):
-- one table serves all three families, so there is no foreign key to the
-- resource; whoever deletes a resource deletes its tags in the same
-- transaction (api::tags::delete_tags_of), or a re-created resource of the
-- same name would inherit them.
create table tag (
    account_id   text not null references account on delete cascade,
    -- Byte order ("C") keeps ListTagsForResource's key order and its page
    -- tokens stable across locales.
    resource_arn text collate "C" not null,
    key          text collate "C" not null check (length(key) between 1 and 128),
    value        text not null check (length(value) <= 256),
    primary key (account_id, resource_arn, key)
);
