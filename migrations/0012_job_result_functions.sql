-- A worker's job result, the hottest write path, in as few round trips as
-- the locking protocol allows (see `store::executions`). These are PL/pgSQL
-- rather than single SQL statements because each statement of a volatile
-- function takes a new snapshot: what is read after a lock wait includes
-- what the lock's previous holder committed. One statement would read its
-- siblings from a snapshot older than the lock.

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

-- A job's result when it decides nothing about its execution: the action
-- was no longer in progress, the execution has ended, or another action of
-- the stage is still in progress (the engine waits for the last one). Then
-- it ends the job and the action in this one statement and answers 'ended'.
-- Otherwise it changes nothing and answers 'last': the caller runs the
-- engine in a transaction of its own. 'not_found' and 'not_in_progress'
-- (with the job's status) change nothing either.
create function millrace_end_job_unless_last(
    p_account text, p_job uuid, p_owner text, p_job_status text, p_status text, p_summary text, p_external_id text,
    p_percent integer, p_error_code text, p_error_message text, p_revision jsonb, p_output jsonb)
returns table (outcome text, job_status text)
language plpgsql as $$
declare
    l record;
    a record;
    e record;
    now_status text;
begin
    select * into l from millrace_lock_job(p_account, p_job);
    if not found or l.owner <> p_owner then
        return query select 'not_found', null::text;
        return;
    end if;
    -- Read again after the locks: a result may have committed meanwhile.
    select j.status into now_status from job j where j.account_id = p_account and j.job_id = p_job;
    if now_status <> 'InProgress' then
        return query select 'not_in_progress', now_status;
        return;
    end if;
    select x.stage_name, x.status into a
      from action_execution x where x.account_id = p_account and x.action_execution_id = l.action_execution_id;
    if a.status = 'InProgress' then
        select x.status, x.stage_phase into e
          from pipeline_execution x
         where x.account_id = p_account and x.pipeline_name = l.pipeline_name and x.execution_id = l.execution_id;
        if e.status in ('InProgress', 'Stopping') and not (
            e.stage_phase = 'Running'
            and exists (select 1 from stage_execution s
                         where s.account_id = p_account and s.pipeline_name = l.pipeline_name and s.execution_id = l.execution_id
                           and s.stage_name = a.stage_name and s.status in ('InProgress', 'Stopping'))
            and exists (select 1 from action_execution o
                         where o.account_id = p_account and o.pipeline_name = l.pipeline_name and o.execution_id = l.execution_id
                           and o.stage_name = a.stage_name and o.current and o.status = 'InProgress'
                           and o.action_execution_id <> l.action_execution_id)
        ) then
            return query select 'last', now_status;
            return;
        end if;
    end if;
    update job j set status = p_job_status, updated_at = now()
     where j.account_id = p_account and j.job_id = p_job and j.status = 'InProgress';
    update action_execution x
       set status = coalesce(p_status, x.status), summary = coalesce(p_summary, x.summary),
           external_execution_id = coalesce(p_external_id, x.external_execution_id),
           external_execution_url = coalesce(millrace_execution_url(p_account, p_job, p_external_id), x.external_execution_url),
           percent_complete = coalesce(p_percent, x.percent_complete), error_code = coalesce(p_error_code, x.error_code),
           error_message = coalesce(p_error_message, x.error_message), revision = coalesce(p_revision, x.revision),
           output = x.output || coalesce(p_output, '{}'), updated_at = now()
     where x.account_id = p_account and x.action_execution_id = l.action_execution_id and x.status = 'InProgress';
    return query select 'ended', p_job_status;
end
$$;
