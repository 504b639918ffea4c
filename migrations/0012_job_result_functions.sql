-- A worker's job result, the hottest write path, in as few round trips as
-- the locking protocol allows (see `store::executions`). PL/pgSQL rather
-- than single SQL statements: each statement of a volatile function takes a
-- new snapshot, so what is read after a lock wait includes what the lock's
-- previous holder committed (one statement would read the stage's other
-- actions from a snapshot older than the lock), and the locks are taken in
-- the documented order.

-- Reads a job of the account and takes the locks its result needs: the
-- pipeline row in share mode, then the execution row (PARALLEL) or the
-- pipeline's advisory engine lock (other modes). No row: no such job.
create function millrace_lock_job(p_account text, p_job uuid)
returns table (job_id uuid, account_id text, pipeline_name text, execution_id uuid, action_execution_id uuid, owner text,
               status text, nonce text, data jsonb, timeout_at timestamptz, query_value text,
               current_version integer, generation uuid, execution_mode text)
language plpgsql as $$
#variable_conflict use_column
declare
    r record;
begin
    select j.job_id, j.account_id, j.pipeline_name, j.execution_id, j.action_execution_id, j.owner, j.status, j.nonce,
           j.data, j.timeout_at, j.query_value, p.current_version, p.generation, e.execution_mode
      into r
      from job j
      join pipeline p on p.account_id = j.account_id and p.name = j.pipeline_name
      join pipeline_execution e on e.account_id = j.account_id and e.pipeline_name = j.pipeline_name and e.execution_id = j.execution_id
     where j.account_id = p_account and j.job_id = p_job
       for share of p;
    if not found then
        return;
    end if;
    if r.execution_mode = 'PARALLEL' then
        perform 1 from pipeline_execution x
         where x.account_id = p_account and x.pipeline_name = r.pipeline_name and x.execution_id = r.execution_id
           for update;
    else
        perform pg_advisory_xact_lock(hashtextextended(p_account || '/' || r.pipeline_name, 0));
    end if;
    return query select r.job_id, r.account_id, r.pipeline_name, r.execution_id, r.action_execution_id, r.owner, r.status,
                        r.nonce, r.data, r.timeout_at, r.query_value, r.current_version, r.generation, r.execution_mode;
end
$$;

-- `{ExternalExecutionId}` and `{Config:Name}` filled in the execution URL
-- template of the job's action type (deleted or not); null without one.
create function millrace_execution_url(p_account text, p_job uuid, p_external_id text)
returns text
language plpgsql stable as $$
declare
    url text;
    config jsonb;
    kv record;
begin
    if p_external_id is null or p_job is null then
        return null;
    end if;
    select t.definition #>> '{settings,executionUrlTemplate}', j.data #> '{actionConfiguration,configuration}'
      into url, config
      from job j
      join action_type t on t.account_id = j.account_id and t.owner = j.owner and t.category = j.category
                        and t.provider = j.provider and t.version = j.version
     where j.account_id = p_account and j.job_id = p_job;
    if url is null then
        return null;
    end if;
    url := replace(url, '{ExternalExecutionId}', p_external_id);
    if jsonb_typeof(config) = 'object' then
        for kv in select key, value from jsonb_each_text(config) loop
            url := replace(url, '{Config:' || kv.key || '}', coalesce(kv.value, ''));
        end loop;
    end if;
    return url;
end
$$;

-- Applies an update to an action execution that is still in progress and
-- answers what the engine needs of it (no row: it was not in progress).
-- Null arguments leave their column as it was; `p_output` is merged.
create function millrace_update_action(
    p_account text, p_action uuid, p_status text, p_summary text, p_external_id text, p_external_url text,
    p_percent integer, p_error_code text, p_error_message text, p_updated_by text, p_revision jsonb, p_output jsonb)
returns table (pipeline_name text, execution_id uuid, stage_name text, action_name text, status text, error_message text)
-- PL/pgSQL rather than SQL: its plan is cached per session, where a SQL
-- function's body is planned again on every call.
language plpgsql as $$
#variable_conflict use_column
begin
    return query
    update action_execution x
       set status = coalesce(p_status, x.status), summary = coalesce(p_summary, x.summary),
           external_execution_id = coalesce(p_external_id, x.external_execution_id),
           external_execution_url = coalesce(p_external_url, x.external_execution_url),
           percent_complete = coalesce(p_percent, x.percent_complete), error_code = coalesce(p_error_code, x.error_code),
           error_message = coalesce(p_error_message, x.error_message), updated_by = coalesce(p_updated_by, x.updated_by),
           revision = coalesce(p_revision, x.revision), output = x.output || coalesce(p_output, '{}'), updated_at = now()
     where x.account_id = p_account and x.action_execution_id = p_action and x.status = 'InProgress'
    returning x.pipeline_name::text, x.execution_id, x.stage_name::text, x.action_name::text, x.status, x.error_message;
end
$$;

-- A worker's result (or a job's timeout), up to where the engine takes
-- over, in one round trip: takes the locks (`millrace_lock_job`), ends the
-- job if it is in progress and its action if that is, and answers the
-- execution and where its stage's current actions now stand, which is all
-- the engine needs to decide what follows (usually nothing: other actions
-- of the stage are still running). `p_owner` null: a job of any owner.
-- outcome 'not_found' and 'not_in_progress' (with the job's status) change
-- nothing; 'ended' without an execution: the action was not in progress.
create function millrace_end_job(
    p_account text, p_job uuid, p_owner text, p_job_status text, p_status text, p_summary text, p_external_id text,
    p_percent integer, p_error_code text, p_error_message text, p_updated_by text, p_revision jsonb, p_output jsonb)
returns table (outcome text, job_status text, pipeline_name text, current_version integer, generation uuid,
               execution jsonb, stage_actions jsonb)
language plpgsql as $$
declare
    l record;
    a record;
    now_status text;
begin
    select * into l from millrace_lock_job(p_account, p_job);
    if not found or (p_owner is not null and l.owner <> p_owner) then
        return query select 'not_found', null::text, null::text, null::integer, null::uuid, null::jsonb, null::jsonb;
        return;
    end if;
    -- The row read with the locks may predate a result committed while
    -- this one waited for them; this statement sees it.
    update job j set status = p_job_status, updated_at = now()
     where j.account_id = p_account and j.job_id = p_job and j.status = 'InProgress';
    if not found then
        select j.status into now_status from job j where j.account_id = p_account and j.job_id = p_job;
        return query select 'not_in_progress', now_status, null::text, null::integer, null::uuid, null::jsonb, null::jsonb;
        return;
    end if;
    select * into a from millrace_update_action(p_account, l.action_execution_id, p_status, p_summary, p_external_id,
        case when p_external_id is not null then millrace_execution_url(p_account, p_job, p_external_id) end,
        p_percent, p_error_code, p_error_message, p_updated_by, p_revision, p_output);
    if not found then
        return query select 'ended', p_job_status, l.pipeline_name, l.current_version, l.generation, null::jsonb, null::jsonb;
        return;
    end if;
    return query select 'ended', p_job_status, l.pipeline_name, l.current_version, l.generation,
        (select to_jsonb(e) from pipeline_execution e
          where e.account_id = p_account and e.pipeline_name = l.pipeline_name and e.execution_id = l.execution_id),
        (select coalesce(jsonb_agg(jsonb_build_object('stage_name', o.stage_name, 'action_name', o.action_name,
                                                      'status', o.status, 'error_message', o.error_message)), '[]')
           from action_execution o
          where o.account_id = p_account and o.pipeline_name = l.pipeline_name and o.execution_id = l.execution_id
            and o.stage_name = a.stage_name and o.current);
end
$$;

-- `millrace_end_job` for a result that decides nothing about its execution,
-- as a statement that commits on its own: its locks are held for this
-- statement only, not for a transaction's round trips (the results of a
-- fan-out stage queue on their execution's lock). The action was no longer
-- in progress, the execution has ended, or another action of the stage is
-- still in progress (the engine waits for the last one): then it ends the
-- job and applies the update, and answers 'ended'. Otherwise it changes
-- nothing and answers 'last': the caller runs `millrace_end_job` and the
-- engine in a transaction. 'not_found' and 'not_in_progress' (with the
-- job's status) change nothing either.
create function millrace_end_job_unless_last(
    p_account text, p_job uuid, p_owner text, p_job_status text, p_status text, p_summary text, p_external_id text,
    p_percent integer, p_error_code text, p_error_message text, p_updated_by text, p_revision jsonb, p_output jsonb)
returns table (outcome text, job_status text)
language plpgsql as $$
declare
    l record;
    now_status text;
    decides boolean;
begin
    select * into l from millrace_lock_job(p_account, p_job);
    if not found or l.owner <> p_owner then
        return query select 'not_found', null::text;
        return;
    end if;
    -- One read after the locks: the job's status now, and whether this
    -- result leaves the engine something to decide. It does not when the
    -- action is no longer in progress, the execution has ended, or another
    -- action of the running stage is still in progress (the engine waits
    -- for the last one).
    select j.status,
           a.status = 'InProgress' and e.status in ('InProgress', 'Stopping') and not (
               e.stage_phase = 'Running'
               and exists (select 1 from stage_execution s
                            where s.account_id = p_account and s.pipeline_name = e.pipeline_name and s.execution_id = e.execution_id
                              and s.stage_name = a.stage_name and s.status in ('InProgress', 'Stopping'))
               and exists (select 1 from action_execution o
                            where o.account_id = p_account and o.pipeline_name = e.pipeline_name and o.execution_id = e.execution_id
                              and o.stage_name = a.stage_name and o.current and o.status = 'InProgress'
                              and o.action_execution_id <> a.action_execution_id))
      into now_status, decides
      from job j
      join action_execution a on a.account_id = j.account_id and a.action_execution_id = j.action_execution_id
      join pipeline_execution e on e.account_id = j.account_id and e.pipeline_name = j.pipeline_name and e.execution_id = j.execution_id
     where j.account_id = p_account and j.job_id = p_job;
    if now_status <> 'InProgress' then
        return query select 'not_in_progress', now_status;
        return;
    end if;
    if decides then
        return query select 'last', now_status;
        return;
    end if;
    update job j set status = p_job_status, updated_at = now()
     where j.account_id = p_account and j.job_id = p_job and j.status = 'InProgress';
    perform millrace_update_action(p_account, l.action_execution_id, p_status, p_summary, p_external_id,
        case when p_external_id is not null then millrace_execution_url(p_account, p_job, p_external_id) end,
        p_percent, p_error_code, p_error_message, p_updated_by, p_revision, p_output);
    return query select 'ended', p_job_status;
end
$$;
