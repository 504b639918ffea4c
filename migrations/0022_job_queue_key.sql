-- The claim's index, narrower: one 8-byte key for the job's action type
-- instead of its five text columns. Claims walk from the head of their
-- type's range past the entries of jobs claimed since the last vacuum
-- (hundreds a second under load), so entries per page is what a claim
-- pays for: about 300 instead of about 110. The statements keep their
-- equality conditions on the five columns, so a hash collision only mixes
-- two types' entries in one scan (src/store/jobs.rs, QUEUE_KEY).
create index job_queue on job (hashtextextended(account_id || '/' || owner || '/' || category || '/' || provider || '/' || version, 0), seq)
    where status = 'Queued';
drop index job_queued;
