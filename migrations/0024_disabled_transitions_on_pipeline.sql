-- The pipeline's disabled transitions, on its own row. The hot paths take
-- the row's share lock and read the disabled transitions in one statement
-- (`store::executions::lock_pipeline_shared`). Read from stage_transition,
-- they came from the statement's snapshot, taken before the lock was
-- granted: a DisableStageTransition that committed while the statement
-- waited went unseen, and an execution could cross a transition disabled
-- a moment before. A row lock that had to wait returns the row's newest
-- version, and this column with it. DisableStageTransition and
-- EnableStageTransition keep it under the row's exclusive lock;
-- stage_transition keeps who disabled what, when and why.
alter table pipeline add column disabled_transitions jsonb not null default '[]';
update pipeline p set disabled_transitions = t.disabled
  from (select account_id, pipeline_name, jsonb_agg(jsonb_build_array(stage_name, transition_type)) as disabled
          from stage_transition where not enabled group by account_id, pipeline_name) t
 where t.account_id = p.account_id and t.pipeline_name = p.name;
