-- One row per rule a stage condition evaluated: ListRuleExecutions, and the
-- condition states GetPipelineState shows for a stage's latest execution.
create table rule_execution (
    account_id        text not null,
    pipeline_name     text collate "C" not null,
    execution_id      uuid not null,
    rule_execution_id uuid not null,
    -- Newest-first ordering and pagination key.
    seq               bigint generated always as identity,
    pipeline_version  integer not null,
    stage_name        text collate "C" not null,
    condition_type    text not null check (condition_type in ('BEFORE_ENTRY', 'ON_SUCCESS')),
    -- Which condition of the hook (there is normally one).
    condition_index   integer not null,
    rule_name         text not null,
    status            text not null check (status in ('Succeeded', 'Failed')),
    summary           text,
    -- RuleExecutionInput as ListRuleExecutions shows it.
    input             jsonb not null,
    created_at        timestamptz not null default now(),
    primary key (account_id, rule_execution_id),
    foreign key (account_id, pipeline_name, execution_id) references pipeline_execution on delete cascade
);
create index rule_execution_history on rule_execution (account_id, pipeline_name, seq desc);
create index rule_execution_by_execution on rule_execution (account_id, pipeline_name, execution_id, stage_name);
alter table rule_execution alter column input set statistics 0;
