-- Retries of a stage in an execution, as GetPipelineState reports them
-- (retryStageMetadata): automatic ones (the stage's onFailure result RETRY,
-- once per execution) and RetryStageExecution calls.
alter table stage_execution
    add column auto_retries integer not null default 0,
    add column manual_retries integer not null default 0,
    add column latest_retry_trigger text check (latest_retry_trigger in ('AutomatedStageRetry', 'ManualStageRetry'));
