-- PostgreSQL evaluates a table's CHECK constraints by reading each one from
-- its stored text and compiling it again in every statement that writes the
-- table. On the tables every job and every execution writes several times,
-- that was measurable: without these constraints, 6 pairs of benchmark runs
-- made 3-6 % more job lifecycles per second, with less PostgreSQL CPU per
-- lifecycle (benches/README.md, session 13). As with their foreign keys
-- (0023), the engine is their only writer, and writes these columns from
-- constants. The tests that drive executions through their states check the
-- values instead (tests/api/helpers.rs, `assert_known_states`).
alter table job drop constraint job_owner_check, drop constraint job_status_check;
alter table action_execution drop constraint action_execution_status_check;
alter table stage_execution drop constraint stage_execution_status_check,
    drop constraint stage_execution_latest_retry_trigger_check;
alter table pipeline_execution drop constraint pipeline_execution_status_check,
    drop constraint pipeline_execution_execution_mode_check,
    drop constraint pipeline_execution_execution_type_check,
    drop constraint pipeline_execution_stage_phase_check,
    drop constraint pipeline_execution_checking_check;
