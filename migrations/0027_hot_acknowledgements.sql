-- PostgreSQL updates a row in place (HOT: a new version on the same page,
-- no new index entries) only when no column an index depends on changes
-- value, the columns of partial indexes' predicates included. Every index on
-- `job` was partial on `status`, and `action_execution_timeout` too, so each
-- acknowledgement and each action's result wrote a new entry into every
-- index of its table. The predicates now read a stored column derived from
-- the status that keeps its value through those updates:
--   job.phase: 'queued', then 'claimed' from the claim until the job ends
--     (Dispatched and InProgress alike), then null;
--   action_execution.waiting: in progress with a deadline (approvals), which
--     a custom action never has.
-- An acknowledgement therefore changes no indexed value: the claim sets
-- `timeout_at` (store::jobs), and the sweeper tells Dispatched from
-- InProgress by the row. The fill factors leave each page room for the
-- versions its rows' updates add; 70 made more lifecycles per second than
-- 50 or 90 (benches/README.md, session 14).
alter table job add column phase text generated always as (
    case status when 'Queued' then 'queued' when 'Dispatched' then 'claimed' when 'InProgress' then 'claimed' end) stored;
drop index job_queue;
create index job_queue on job (hashtextextended(account_id || '/' || owner || '/' || category || '/' || provider || '/' || version, 0), seq)
    where phase = 'queued';
drop index job_dispatched;
create index job_dispatched on job (dispatched_at) where phase = 'claimed';
drop index job_in_progress;
create index job_in_progress on job (timeout_at) where phase = 'claimed';
alter table job set (fillfactor = 70);

alter table action_execution add column waiting boolean generated always as (status = 'InProgress' and timeout_at is not null) stored;
drop index action_execution_timeout;
create index action_execution_timeout on action_execution (timeout_at) where waiting;
alter table action_execution set (fillfactor = 70);
