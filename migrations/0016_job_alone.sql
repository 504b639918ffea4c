-- A job whose action is alone in its runOrder group: the result that ends
-- it always ends the group, so the one-statement attempt of
-- millrace_end_job_unless_last (0012) is bound to answer 'last'. It now
-- says so before taking the execution's lock (benches/README.md, session 4).
alter table job add column alone boolean not null default false;

create or replace function millrace_end_job_unless_last(
    p_account text, p_job uuid, p_owner text, p_job_status text, p_status text, p_summary text, p_external_id text,
    p_percent integer, p_error_code text, p_error_message text, p_updated_by text, p_revision jsonb, p_output jsonb)
returns table (outcome text, job_status text)
language plpgsql as $$
declare
    l record;
    now_status text;
    decides boolean;
begin
    -- Its result always leaves the engine something to decide (the next
    -- group, or the stage's end): no locks, 'last' at once.
    if exists (select 1 from job j where j.account_id = p_account and j.job_id = p_job and j.alone) then
        return query select 'last', null::text;
        return;
    end if;
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
