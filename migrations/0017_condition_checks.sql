-- Stage conditions whose rules take time (DeploymentWindow: until the window
-- opens). An execution whose entry or success condition is in progress
-- stays in its stage (phase Running, no action started for an entry
-- condition) with `checking` naming the hook and `check_due` when the
-- sweeper evaluates it again; OverrideStageCondition ends the wait.
alter table pipeline_execution
    add column checking text check (checking in ('BEFORE_ENTRY', 'ON_SUCCESS')),
    add column check_due timestamptz;
create index pipeline_execution_check_due on pipeline_execution (check_due) where check_due is not null;

-- A rule in progress is updated in place when it settles. 'Overridden' is
-- kept apart from 'Abandoned' (a stop) for the condition's status; the API
-- shows such a rule as Abandoned (RuleExecutionStatus has no Overridden).
alter table rule_execution drop constraint rule_execution_status_check;
alter table rule_execution add constraint rule_execution_status_check
    check (status in ('InProgress', 'Succeeded', 'Failed', 'Abandoned', 'Overridden'));
alter table rule_execution add column updated_at timestamptz not null default now();
create index rule_execution_in_progress on rule_execution (account_id, pipeline_name, execution_id)
    where status = 'InProgress';
