-- millrace_end_job (0012), the result that may end its stage and the job
-- timeout, as 0018 made the other results: the job is read with the
-- pipeline's share lock, the execution's lock follows, and one statement
-- ends the job and its action (was: nine statements in three functions).
-- Its answers are those of 0012.
create or replace function millrace_end_job(
    p_account text, p_job uuid, p_owner text, p_job_status text, p_status text, p_summary text, p_external_id text,
    p_percent integer, p_error_code text, p_error_message text, p_updated_by text, p_revision jsonb, p_output jsonb)
returns table (outcome text, job_status text, pipeline_name text, current_version integer, generation uuid,
               execution jsonb, stage_actions jsonb)
language plpgsql as $$
#variable_conflict use_column
declare
    l record;
    done record;
    now_status text;
begin
    -- Locks in the documented order: the pipeline row in share mode, then
    -- the execution row (PARALLEL) or the pipeline's advisory engine lock
    -- (other modes).
    select x.pipeline_name, x.execution_id, x.action_execution_id, x.owner, p.current_version, p.generation, e.execution_mode
      into l
      from job x
      join pipeline p on p.account_id = x.account_id and p.name = x.pipeline_name
      join pipeline_execution e on e.account_id = x.account_id and e.pipeline_name = x.pipeline_name and e.execution_id = x.execution_id
     where x.account_id = p_account and x.job_id = p_job
       for share of p;
    if not found or (p_owner is not null and l.owner <> p_owner) then
        return query select 'not_found', null::text, null::text, null::integer, null::uuid, null::jsonb, null::jsonb;
        return;
    end if;
    if l.execution_mode = 'PARALLEL' then
        perform 1 from pipeline_execution x
         where x.account_id = p_account and x.pipeline_name = l.pipeline_name and x.execution_id = l.execution_id
           for update;
    else
        perform pg_advisory_xact_lock(hashtextextended(p_account || '/' || l.pipeline_name, 0));
    end if;
    -- A new snapshot, after the locks: a result committed while this one
    -- waited for them is seen. The job ends if it is still in progress, and
    -- its action with it if that is.
    with ended_job as (
        update job x set status = p_job_status, updated_at = now()
         where x.account_id = p_account and x.job_id = p_job and x.status = 'InProgress'
        returning x.job_id),
    ended_action as (
        update action_execution a
           set status = coalesce(p_status, a.status), summary = coalesce(p_summary, a.summary),
               external_execution_id = coalesce(p_external_id, a.external_execution_id),
               external_execution_url = coalesce(case when p_external_id is not null
                                                      then millrace_execution_url(p_account, p_job, p_external_id) end,
                                                 a.external_execution_url),
               percent_complete = coalesce(p_percent, a.percent_complete), error_code = coalesce(p_error_code, a.error_code),
               error_message = coalesce(p_error_message, a.error_message), updated_by = coalesce(p_updated_by, a.updated_by),
               revision = coalesce(p_revision, a.revision), output = a.output || coalesce(p_output, '{}'), updated_at = now()
         where a.account_id = p_account and a.action_execution_id = l.action_execution_id and a.status = 'InProgress'
           and exists (select 1 from ended_job)
        returning a.stage_name)
    select exists (select 1 from ended_job) as job, (select s.stage_name from ended_action s) as stage_name into done;
    if not done.job then
        select x.status into now_status from job x where x.account_id = p_account and x.job_id = p_job;
        return query select 'not_in_progress', now_status, null::text, null::integer, null::uuid, null::jsonb, null::jsonb;
        return;
    end if;
    if done.stage_name is null then
        -- The action was no longer in progress (stopped, abandoned).
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
            and o.stage_name = done.stage_name and o.current);
end
$$;

-- Its last callers were the two functions above.
drop function millrace_lock_job(text, uuid);
