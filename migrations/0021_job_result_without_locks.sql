-- Results that end no stage no longer take the pipeline's and the
-- execution's locks: they end their job and action in one statement, and
-- ask after their commit whether the stage can move (src/store/jobs.rs,
-- `end_unlocked`). The function that decided under those locks is unused.
drop function millrace_end_job_unless_last(text, uuid, text, text, text, text, text, integer, text, text, text, jsonb, jsonb);
