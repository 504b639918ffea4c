-- The issue's reference point, PostgreSQL alone: a queue table with a
-- partial index on queued rows and :jobs queued jobs (run.sh sizes it to
-- outlast the run). See run.sh.
set client_min_messages = warning;
drop table if exists ref_job;
create table ref_job (
    id         bigint generated always as identity primary key,
    seq        bigint not null,
    status     text not null,
    nonce      text,
    data       jsonb not null,
    updated_at timestamptz
);
create index ref_job_queued on ref_job (seq) where status = 'Queued';
alter table ref_job set (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                         autovacuum_vacuum_cost_delay = 0);
insert into ref_job (seq, status, data) select g, 'Queued', '{"a": 1}' from generate_series(1, :jobs) g;
vacuum analyze ref_job;
