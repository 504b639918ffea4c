-- Pipeline executions and everything they run.
--
-- Concurrency model: every change to the executions of one pipeline happens
-- in a transaction that first locks that pipeline's row (select ... for
-- update), so the engine's decisions (who enters a stage, who is superseded)
-- are serialised per pipeline across replicas. Job claims never take that
-- lock: workers contend only on job rows, with SKIP LOCKED.

create table pipeline_execution (
    account_id           text not null,
    pipeline_name        text collate "C" not null,
    execution_id         uuid not null,
    -- Newest-first ordering and pagination key.
    seq                  bigint generated always as identity,
    pipeline_version     integer not null,
    status               text not null check (status in
                         ('InProgress', 'Stopping', 'Stopped', 'Succeeded', 'Superseded', 'Failed', 'Cancelled')),
    status_summary       text,
    execution_mode       text not null check (execution_mode in ('SUPERSEDED', 'QUEUED', 'PARALLEL')),
    execution_type       text not null default 'STANDARD' check (execution_type in ('STANDARD', 'ROLLBACK')),
    -- A ROLLBACK execution re-runs one stage with this execution's artifacts and variables.
    rollback_target      uuid,
    trigger_type         text not null,
    trigger_detail       text,
    -- Where the execution is: the stage it is in or waiting to enter.
    stage_index          integer not null default 0,
    stage_phase          text not null default 'Waiting' check (stage_phase in ('Waiting', 'Running', 'Done')),
    variables            jsonb not null default '[]',
    source_overrides     jsonb not null default '[]',
    client_request_token text,
    stop_reason          text,
    stop_abandon         boolean,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    primary key (account_id, pipeline_name, execution_id),
    unique (account_id, pipeline_name, client_request_token),
    foreign key (account_id, pipeline_name) references pipeline on delete cascade
);
create index pipeline_execution_newest on pipeline_execution (account_id, pipeline_name, seq desc);
create index pipeline_execution_active on pipeline_execution (account_id, pipeline_name, seq)
    where status in ('InProgress', 'Stopping');
-- Who waits to enter a stage, and who runs it: asked at every stage
-- boundary, so it must not scan every active execution (PARALLEL pipelines
-- may have thousands).
create index pipeline_execution_at_stage on pipeline_execution (account_id, pipeline_name, stage_index, stage_phase, seq)
    where status in ('InProgress', 'Stopping');

create table stage_execution (
    account_id     text not null,
    pipeline_name  text collate "C" not null,
    execution_id   uuid not null,
    stage_name     text collate "C" not null,
    status         text not null check (status in
                   ('InProgress', 'Stopping', 'Stopped', 'Succeeded', 'Failed', 'Cancelled', 'Skipped')),
    updated_at     timestamptz not null default now(),
    primary key (account_id, pipeline_name, execution_id, stage_name),
    foreign key (account_id, pipeline_name, execution_id) references pipeline_execution on delete cascade
);
create index stage_execution_latest on stage_execution (account_id, pipeline_name, stage_name, updated_at desc);

-- One row per attempt of an action in an execution (a retry adds rows).
create table action_execution (
    account_id             text not null,
    pipeline_name          text collate "C" not null,
    execution_id           uuid not null,
    action_execution_id    uuid not null,
    seq                    bigint generated always as identity,
    pipeline_version       integer not null,
    stage_name             text collate "C" not null,
    action_name            text collate "C" not null,
    run_order              integer not null,
    status                 text not null check (status in ('InProgress', 'Abandoned', 'Succeeded', 'Failed')),
    -- Superseded attempts (an earlier try of a retried action) stay for history.
    current                boolean not null default true,
    summary                text,
    external_execution_id  text,
    external_execution_url text,
    percent_complete       integer,
    error_code             text,
    error_message          text,
    approval_token         uuid,
    timeout_at             timestamptz,
    updated_by             text,
    -- The source revision this attempt produced (source actions, or a job's currentRevision).
    revision               jsonb,
    -- ActionExecutionInput / ActionExecutionOutput as ListActionExecutions shows them.
    input                  jsonb not null,
    output                 jsonb not null default '{}',
    started_at             timestamptz not null default now(),
    updated_at             timestamptz not null default now(),
    primary key (account_id, action_execution_id),
    foreign key (account_id, pipeline_name, execution_id) references pipeline_execution on delete cascade
);
create index action_execution_by_execution on action_execution (account_id, pipeline_name, execution_id, stage_name);
create index action_execution_history on action_execution (account_id, pipeline_name, seq desc);
create index action_execution_timeout on action_execution (timeout_at) where status = 'InProgress' and timeout_at is not null;

-- Work for job workers. The claim reads only the partial index of queued
-- jobs, so finished jobs (the vast majority) never slow it down.
create table job (
    job_id               uuid primary key,
    seq                  bigint generated always as identity,
    account_id           text not null,
    pipeline_name        text collate "C" not null,
    execution_id         uuid not null,
    action_execution_id  uuid not null,
    owner                text not null check (owner in ('Custom', 'ThirdParty')),
    category             text not null,
    provider             text not null,
    version              text not null,
    -- The value of the type's queryable property, matched by PollForJobs queryParam.
    query_value          text,
    status               text not null check (status in
                         ('Queued', 'Dispatched', 'InProgress', 'TimedOut', 'Succeeded', 'Failed')),
    nonce                text,
    continuation_token   text,
    data                 jsonb not null,
    dispatched_at        timestamptz,
    timeout_at           timestamptz,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    foreign key (account_id, pipeline_name, execution_id) references pipeline_execution on delete cascade
);
create index job_queued on job (account_id, owner, category, provider, version, seq) where status = 'Queued';
create index job_dispatched on job (dispatched_at) where status = 'Dispatched';
create index job_in_progress on job (timeout_at) where status = 'InProgress';
create index job_by_action on job (account_id, action_execution_id);
-- Every job row is updated several times in seconds: vacuum early so dead
-- tuples do not pile up under a steady claim load.
alter table job set (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                     autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

create table stage_transition (
    account_id      text not null,
    pipeline_name   text collate "C" not null,
    stage_name      text collate "C" not null,
    transition_type text not null check (transition_type in ('Inbound', 'Outbound')),
    enabled         boolean not null,
    disabled_reason text,
    last_changed_by text,
    last_changed_at timestamptz not null default now(),
    primary key (account_id, pipeline_name, stage_name, transition_type),
    foreign key (account_id, pipeline_name) references pipeline on delete cascade
);

-- The latest revision known for a source action (PutActionRevision, webhooks).
create table action_revision (
    account_id         text not null,
    pipeline_name      text collate "C" not null,
    stage_name         text collate "C" not null,
    action_name        text collate "C" not null,
    revision_id        text not null,
    revision_change_id text,
    created            timestamptz,
    recorded_at        timestamptz not null default now(),
    primary key (account_id, pipeline_name, stage_name, action_name),
    foreign key (account_id, pipeline_name) references pipeline on delete cascade
);
