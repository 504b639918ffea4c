-- millrace_end_job_unless_last (0012, 0016) in four statements where it
-- ran ten: the job is read once (with whether it is alone), the locks are
-- taken as millrace_end_job takes them, and one statement decides and
-- writes: it ends the job only when the result leaves the engine nothing to
-- decide, and the action with it. Each PL/pgSQL statement pays executor
-- start-up, and nine in ten results of a fan-out stage take this path
-- (benches/README.md, session 6). The answers are those of 0016.
create or replace function millrace_end_job_unless_last(
    p_account text, p_job uuid, p_owner text, p_job_status text, p_status text, p_summary text, p_external_id text,
    p_percent integer, p_error_code text, p_error_message text, p_updated_by text, p_revision jsonb, p_output jsonb)
returns table (outcome text, job_status text)
language plpgsql as $$
#variable_conflict use_column
declare
    j record;
    ended boolean;
    now_status text;
begin
    select x.pipeline_name, x.execution_id, x.action_execution_id, x.owner, x.alone, e.execution_mode into j
      from job x
      join pipeline_execution e on e.account_id = x.account_id and e.pipeline_name = x.pipeline_name and e.execution_id = x.execution_id
     where x.account_id = p_account and x.job_id = p_job;
    if not found or j.owner <> p_owner then
        return query select 'not_found', null::text;
        return;
    end if;
    -- Its result always leaves the engine something to decide (the next
    -- group, or the stage's end): no locks, 'last' at once.
    if j.alone then
        return query select 'last', null::text;
        return;
    end if;
    -- The locks millrace_end_job takes (0020), in its order.
    perform 1 from pipeline p where p.account_id = p_account and p.name = j.pipeline_name for share;
    if not found then
        return query select 'not_found', null::text;
        return;
    end if;
    if j.execution_mode = 'PARALLEL' then
        perform 1 from pipeline_execution x
         where x.account_id = p_account and x.pipeline_name = j.pipeline_name and x.execution_id = j.execution_id
           for update;
    else
        perform pg_advisory_xact_lock(hashtextextended(p_account || '/' || j.pipeline_name, 0));
    end if;
    -- Read after the locks (a new snapshot): the result decides nothing
    -- when the action is no longer in progress, the execution has ended, or
    -- another action of the running stage is still in progress (the engine
    -- waits for the last one). Then the job ends, and the action if it is
    -- still in progress; otherwise nothing changes. The check is a scalar
    -- subquery: as a CTE joined to the update, the generic plan scanned
    -- every execution of the account.
    with done as (
        update job x set status = p_job_status, updated_at = now()
         where x.account_id = p_account and x.job_id = p_job and x.status = 'InProgress'
           and (select a.status = 'InProgress' and e.status in ('InProgress', 'Stopping') and not (
                       e.stage_phase = 'Running'
                       and exists (select 1 from stage_execution s
                                    where s.account_id = p_account and s.pipeline_name = e.pipeline_name
                                      and s.execution_id = e.execution_id and s.stage_name = a.stage_name
                                      and s.status in ('InProgress', 'Stopping'))
                       and exists (select 1 from action_execution o
                                    where o.account_id = p_account and o.pipeline_name = e.pipeline_name
                                      and o.execution_id = e.execution_id and o.stage_name = a.stage_name and o.current
                                      and o.status = 'InProgress' and o.action_execution_id <> a.action_execution_id))
                  from action_execution a
                  join pipeline_execution e
                    on e.account_id = a.account_id and e.pipeline_name = a.pipeline_name and e.execution_id = a.execution_id
                 where a.account_id = p_account and a.action_execution_id = j.action_execution_id) is not true
        returning x.job_id),
    acted as (
        update action_execution a
           set status = coalesce(p_status, a.status), summary = coalesce(p_summary, a.summary),
               external_execution_id = coalesce(p_external_id, a.external_execution_id),
               external_execution_url = coalesce(case when p_external_id is not null
                                                      then millrace_execution_url(p_account, p_job, p_external_id) end,
                                                 a.external_execution_url),
               percent_complete = coalesce(p_percent, a.percent_complete), error_code = coalesce(p_error_code, a.error_code),
               error_message = coalesce(p_error_message, a.error_message), updated_by = coalesce(p_updated_by, a.updated_by),
               revision = coalesce(p_revision, a.revision), output = a.output || coalesce(p_output, '{}'), updated_at = now()
         where a.account_id = p_account and a.action_execution_id = j.action_execution_id and a.status = 'InProgress'
           and exists (select 1 from done)
        returning 1)
    select exists (select 1 from done) into ended;
    if ended then
        return query select 'ended', p_job_status;
        return;
    end if;
    select x.status into now_status from job x where x.account_id = p_account and x.job_id = p_job;
    if now_status <> 'InProgress' then
        return query select 'not_in_progress', now_status;
        return;
    end if;
    return query select 'last', now_status;
end
$$;
