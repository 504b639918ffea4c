-- Actions and jobs are inserted ten at a time per execution on the hot
-- path, and each row's foreign-key check (an SPI query that also locks the
-- execution row) was ~9 % of PostgreSQL's CPU under the benchmark's load
-- (benches/README.md, session 8). Both tables are written only by the
-- engine, under the pipeline's lock, for an execution it has just read or
-- inserted; what the keys still did, cascading DeletePipeline, is done by
-- `store::pipelines::delete` under the pipeline's exclusive lock.
alter table action_execution drop constraint action_execution_account_id_pipeline_name_execution_id_fkey;
alter table job drop constraint job_account_id_pipeline_name_execution_id_fkey;
