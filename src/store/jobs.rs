//! Jobs for workers: queue, claim (one statement, SKIP LOCKED), acknowledge,
//! complete. Every write after the claim is a compare-and-set on
//! (job, account, status[, nonce]); zero rows means the caller lost a race
//! or holds a stale nonce, and a follow-up read tells which.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::pipeline::ActionTypeId;
use crate::store::executions::{ActionState, ActionUpdate, ExecutionRow, LockedPipeline};

pub struct NewJob<'a> {
    pub job_id: Uuid,
    pub account_id: &'a str,
    pub pipeline_name: &'a str,
    pub execution_id: Uuid,
    pub action_execution_id: Uuid,
    pub type_id: &'a ActionTypeId,
    pub query_value: Option<String>,
    pub continuation_token: Option<&'a str>,
    pub data: Value,
    /// The only action of its runOrder group: its result always moves the
    /// stage on (migration 0016).
    pub alone: bool,
}

/// The statement that queues jobs of one account ($1) and pipeline ($2),
/// from arrays bound by [`bind_new`] from parameter `$first` on: a part of
/// the statement that inserts the actions they run
/// (`executions::insert_actions`).
pub fn insert_statement(first: usize) -> String {
    let p = |i: usize| format!("${}", first + i);
    format!(
        "insert into job (job_id, account_id, pipeline_name, execution_id, action_execution_id, owner, category, provider, version, \
         query_value, status, continuation_token, data, alone) \
         select job_id, $1, $2, execution_id, action_execution_id, owner, category, provider, version, query_value, 'Queued', \
            continuation_token, data, alone \
         from unnest({}::uuid[], {}::uuid[], {}::uuid[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], \
            {}::jsonb[], {}::bool[]) as n(job_id, execution_id, action_execution_id, owner, category, provider, version, query_value, \
            continuation_token, data, alone)",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9),
        p(10)
    )
}

/// How many parameters [`bind_new`] binds.
pub const NEW_PARAMETERS: usize = 11;

/// Binds the arrays [`insert_statement`] reads, in its order.
pub fn bind_new<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    jobs: &'q [NewJob<'_>],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let type_part = |f: fn(&ActionTypeId) -> &str| jobs.iter().map(|j| f(j.type_id)).collect::<Vec<_>>();
    q.bind(jobs.iter().map(|j| j.job_id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.execution_id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.action_execution_id).collect::<Vec<_>>())
        .bind(type_part(|t| &t.owner))
        .bind(type_part(|t| &t.category))
        .bind(type_part(|t| &t.provider))
        .bind(type_part(|t| &t.version))
        .bind(jobs.iter().map(|j| j.query_value.as_deref()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.continuation_token).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| &j.data).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.alone).collect::<Vec<_>>())
}

#[derive(Debug, serde::Deserialize)]
pub struct ClaimedJob {
    pub job_id: Uuid,
    pub nonce: String,
    pub data: Value,
    /// The only action of its runOrder group ([`NewJob::alone`]).
    pub alone: bool,
}

/// What a poll for custom jobs found: the name of the live action type's
/// queryable property ('' for none; None when the account has no such
/// type) and the jobs it claimed.
pub struct Poll {
    pub queryable: Option<String>,
    pub jobs: Vec<ClaimedJob>,
}

/// The condition that finds a type's queued jobs through the claim's index
/// (`job_queue`, migration 0022: its key is this hash of the five columns),
/// for a statement whose $1–$5 are the account and the action type id.
/// The five equalities that follow it in every statement are what decides.
macro_rules! queue_of_type {
    () => {
        "hashtextextended(account_id || '/' || owner || '/' || category || '/' || provider || '/' || version, 0) \
         = hashtextextended($1 || '/' || $2 || '/' || $3 || '/' || $4 || '/' || $5, 0) and"
    };
}

/// The job timeout, in seconds, that an action type's declaration sets
/// (`executor.jobTimeout`, integrator model, UpdateActionType), read from
/// the `action_type` row `$t` (give `""` or `"t."`); null when it sets none.
macro_rules! declared_job_timeout {
    ($t:literal) => {
        concat!("(", $t, "declaration #>> '{executor,jobTimeout}')::double precision")
    };
}

/// The statement of [`poll`]: $1 account, $2–$5 action type id, $6 queryParam
/// key, $7 its value, $8 maxBatchSize, $9 commit without waiting for the WAL
/// flush, $10 the default job timeout in seconds. Public for the benchmark's
/// EXPLAIN.
pub const POLL: &str = concat!(
    "with t as ( \
            select queryable, case when $9 then set_config('synchronous_commit', 'off', true) end, coalesce(",
    declared_job_timeout!(""),
    ", $10) as timeout \
            from action_type where account_id = $1 and owner = $2 and category = $3 and provider = $4 \
            and version = $5 and deleted_at is null), \
         picked as ( \
            select job_id from job \
            where ",
    queue_of_type!(),
    " account_id = $1 and owner = $2 and category = $3 and provider = $4 and version = $5 and phase = 'queued' \
              and exists (select 1 from t where queryable = coalesce($6, '')) and ($7::text is null or query_value = $7) \
            order by seq limit $8 for update skip locked), \
         claimed as ( \
            update job set status = 'Dispatched', nonce = gen_random_uuid()::text, dispatched_at = now(), updated_at = now(), \
                timeout_at = now() + make_interval(secs => (select timeout from t)) \
            from picked where job.job_id = picked.job_id \
            returning job.seq, job.job_id, job.nonce, job.data, job.alone) \
         select (select queryable from t), \
                coalesce((select jsonb_agg(jsonb_build_object('job_id', job_id, 'nonce', nonce, 'data', data, 'alone', alone) \
                                           order by seq) from claimed), '[]')"
);

/// How claims are made, from the server's configuration.
#[derive(Clone, Copy)]
pub struct Claim {
    /// Commit without waiting for the WAL flush (`--async-claim-commit`):
    /// `set_config(…, true)` lasts until the end of the claim's own
    /// transaction, so nothing else on the connection is affected.
    pub async_commit: bool,
    /// How long a claimed job may take, unless its type's
    /// `executor.jobTimeout` (integrator model, UpdateActionType) says. It
    /// counts from the claim rather than from the acknowledgement, which
    /// then changes only the job's status (migration 0027).
    pub job_timeout: std::time::Duration,
}

/// Claims up to `limit` queued jobs of one action type in a single
/// statement (rows locked by a concurrent claim are skipped, not waited
/// for), the same statement that reads the action type. Jobs are
/// claimed only if the type is live and `query_key` (the one queryParam
/// key, None for none) is its queryable property (None when it has none):
/// the caller then only explains, from the type, why nothing was claimed.
pub async fn poll(
    conn: &mut PgConnection,
    account_id: &str,
    type_id: &ActionTypeId,
    query_key: Option<&str>,
    query_value: Option<&str>,
    limit: i64,
    claim: Claim,
) -> Result<Poll, sqlx::Error> {
    let (queryable, jobs): (Option<String>, sqlx::types::Json<Vec<ClaimedJob>>) = sqlx::query_as(POLL)
        .bind(account_id)
        .bind(&type_id.owner)
        .bind(&type_id.category)
        .bind(&type_id.provider)
        .bind(&type_id.version)
        .bind(query_key)
        .bind(query_value)
        .bind(limit)
        .bind(claim.async_commit)
        .bind(claim.job_timeout.as_secs_f64())
        .fetch_one(conn)
        .await?;
    Ok(Poll { queryable, jobs: jobs.0 })
}

/// [`poll`] for several polls of one account, type and queryParam
/// (`store::batch`), with one claim: the jobs are shared out in claim order,
/// each poll taking at most as many as it asked for.
pub async fn poll_shared(
    conn: &mut PgConnection,
    account_id: &str,
    type_id: &ActionTypeId,
    query_key: Option<&str>,
    query_value: Option<&str>,
    limits: &[i64],
    claim: Claim,
) -> Result<Vec<Poll>, sqlx::Error> {
    let Poll { queryable, jobs } = poll(conn, account_id, type_id, query_key, query_value, limits.iter().sum(), claim).await?;
    let mut jobs = jobs.into_iter();
    Ok(limits.iter().map(|&n| Poll { queryable: queryable.clone(), jobs: jobs.by_ref().take(n.max(0) as usize).collect() }).collect())
}

/// What a poll for partner jobs found.
pub struct ThirdPartyPoll {
    /// The account has this action type, not deleted.
    pub type_live: bool,
    /// The client the jobs are for: the account's newest (an operator
    /// rotating credentials creates the new pair, then deletes the old).
    pub client_id: Option<Uuid>,
    pub jobs: Vec<Uuid>,
}

/// [`poll`] for a ThirdParty type: one statement reads the type and the
/// account's newest client and claims only when both exist (a job handed
/// out with no client to act on it would only wait for the ack timeout).
/// A partner poll has no queryParam: jobs of every query value qualify.
pub async fn poll_third_party(
    conn: &mut PgConnection,
    account_id: &str,
    type_id: &ActionTypeId,
    limit: i64,
    claim: Claim,
) -> Result<ThirdPartyPoll, sqlx::Error> {
    let (type_live, client_id, jobs): (bool, Option<Uuid>, Vec<Uuid>) = sqlx::query_as(concat!(
        "with t as ( \
            select case when $7 then set_config('synchronous_commit', 'off', true) end, coalesce(",
        declared_job_timeout!(""),
        ", $8) as timeout \
            from action_type where account_id = $1 and owner = $2 and category = $3 and provider = $4 \
            and version = $5 and deleted_at is null), \
         c as ( \
            select client_id from third_party_client where account_id = $1 order by created_at desc, client_id limit 1), \
         picked as ( \
            select job_id from job \
            where ",
        queue_of_type!(),
        " account_id = $1 and owner = $2 and category = $3 and provider = $4 and version = $5 and phase = 'queued' \
              and exists (select 1 from t) and exists (select 1 from c) \
            order by seq limit $6 for update skip locked), \
         claimed as ( \
            update job set status = 'Dispatched', nonce = gen_random_uuid()::text, dispatched_at = now(), updated_at = now(), \
                timeout_at = now() + make_interval(secs => (select timeout from t)) \
            from picked where job.job_id = picked.job_id \
            returning job.seq, job.job_id) \
         select exists (select 1 from t), (select client_id from c), \
                coalesce((select array_agg(job_id order by seq) from claimed), '{}')"
    ))
    .bind(account_id)
    .bind(&type_id.owner)
    .bind(&type_id.category)
    .bind(&type_id.provider)
    .bind(&type_id.version)
    .bind(limit)
    .bind(claim.async_commit)
    .bind(claim.job_timeout.as_secs_f64())
    .fetch_one(conn)
    .await?;
    Ok(ThirdPartyPoll { type_live, client_id, jobs })
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub job_id: Uuid,
    pub account_id: String,
    pub pipeline_name: String,
    pub execution_id: Uuid,
    pub action_execution_id: Uuid,
    pub owner: String,
    pub status: String,
    pub nonce: Option<String>,
    pub data: Value,
    pub timeout_at: Option<DateTime<Utc>>,
    pub query_value: Option<String>,
}

pub async fn get(conn: &mut PgConnection, account_id: &str, job_id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as(
        "select job_id, account_id, pipeline_name, execution_id, action_execution_id, owner, status, nonce, data, timeout_at, \
         query_value from job where account_id = $1 and job_id = $2",
    )
    .bind(account_id)
    .bind(job_id)
    .fetch_optional(conn)
    .await
}

/// What [`end_unlocked`] did.
#[derive(Debug, PartialEq)]
pub enum EndUnlocked {
    NotFound,
    /// The job was not in progress (its status): nothing changed.
    NotInProgress(String),
    /// The job is alone in its runOrder group, so its result always leaves
    /// the engine something to decide: nothing changed; [`end_job`] and the
    /// engine must follow, in a transaction.
    Alone,
    /// The job ended, and its action with it when this is its stage (None:
    /// the action was no longer in progress).
    Ended(Option<EndedIn>),
}

/// The stage an action that just ended belongs to, and what its result
/// must do about the stage once it has committed.
#[derive(Debug, PartialEq)]
pub struct EndedIn {
    pub pipeline_name: String,
    pub execution_id: Uuid,
    pub stage_name: String,
    pub then: Then,
}

/// What a result that ended one of a stage's actions without a lock leaves
/// to do after its commit ([`end_unlocked`]).
#[derive(Debug, PartialEq)]
pub enum Then {
    /// Another action of the stage had not ended yet, and nobody was
    /// ending it: whoever ends it will find this one ended.
    Nothing,
    /// Nothing else of the stage was in progress: the engine decides, for
    /// an execution in this mode.
    Settle { execution_mode: String },
    /// These other actions of the stage were ending at the same time:
    /// once they have, the engine decides if they all ended
    /// (`executions::ended_all`).
    AwaitSiblings { ids: Vec<Uuid>, execution_mode: String },
}

/// Ends jobs and their actions, several (of any accounts) in one statement
/// (`store::batch`), answering for each in their order. Each ends its job
/// and action taking no lock but the two rows' own, unless the job is alone
/// in its runOrder group. Both updates are compare-and-sets on
/// `InProgress`, as every engine write to a job or action is, so a stop or
/// timeout that gets there first wins.
///
/// Whether the stage can now move is decided without a lock too. The
/// statement writes its action first and then reads the stage's other
/// actions still in progress, with each row's `xmax`: non-zero when a
/// transaction this statement cannot see has written (or locked) the row
/// since. Of two results ending siblings at once, at least one reads the
/// other's row after the other wrote it, so it sees that sibling busy and
/// waits for it after its own commit ([`Then::AwaitSiblings`]); a sibling
/// nobody had written yet ([`Then::Nothing`]) will, when it ends, read
/// this result's row after this write. So whoever writes last always finds
/// the others ended or busy. Siblings ended by one statement read each
/// other's rows as they were, with this statement's own transaction in
/// `xmax`: busy, so each awaits the others after the commit, as two
/// statements would. An action the engine ends under its locks (a
/// timeout, an approval) waits for such results before it reads the stage
/// again (`engine::action_ended`). Left to the sweeper
/// (`executions::stranded`): a stage whose result's server died before
/// acting.
///
/// Rows are reached by key, never through a partial index the planner
/// may take for nearly empty: the job by the `ctid` the statement read it
/// at (its snapshot keeps that version from being pruned, and an update
/// since is followed to the newest version, whose status is checked
/// again), the action by its primary key from the job's row. Otherwise
/// the plan could scan every job in progress for each result.
pub async fn end_unlocked(conn: &mut PgConnection, ends: &[Ending]) -> Result<Vec<EndUnlocked>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        mine: Option<bool>,
        alone: Option<bool>,
        ended: bool,
        status: Option<String>,
        pipeline_name: Option<String>,
        execution_id: Option<Uuid>,
        stage_name: Option<String>,
        waiting: Option<bool>,
        busy: Option<Vec<Uuid>>,
        execution_mode: Option<String>,
    }
    let text = |f: fn(&Ending) -> Option<&str>| ends.iter().map(|e| f(e).map(str::to_owned)).collect::<Vec<_>>();
    let rows: Vec<Row> = sqlx::query_as(
        "with u as (select * from unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                        $8::int[], $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::jsonb[]) with ordinality \
                        as u(account_id, job_id, owner, job_status, status, summary, external_id, percent, error_code, error_message, \
                             updated_by, revision, output, i)), \
         j as (select u.i, x.ctid as tid, x.job_id, x.action_execution_id, x.owner = u.owner as mine, x.alone, x.status \
               from u join job x on x.account_id = u.account_id and x.job_id = u.job_id), \
         done as (update job x set status = u.job_status, updated_at = now() from j join u on u.i = j.i \
                  where x.ctid = j.tid and x.status = 'InProgress' and j.mine and not j.alone \
                  returning u.i, x.account_id, x.action_execution_id), \
         acted as (update action_execution a \
            set status = coalesce(u.status, a.status), summary = coalesce(u.summary, a.summary), \
                external_execution_id = coalesce(u.external_id, a.external_execution_id), \
                external_execution_url = coalesce(case when u.external_id is not null \
                                                  then millrace_execution_url(u.account_id, u.job_id, u.external_id) end, \
                                                  a.external_execution_url), \
                percent_complete = coalesce(u.percent, a.percent_complete), error_code = coalesce(u.error_code, a.error_code), \
                error_message = coalesce(u.error_message, a.error_message), updated_by = coalesce(u.updated_by, a.updated_by), \
                revision = coalesce(u.revision, a.revision), output = a.output || coalesce(u.output, '{}'), updated_at = now() \
            from done join u on u.i = done.i \
            where a.account_id = done.account_id and a.action_execution_id = done.action_execution_id and a.status = 'InProgress' \
            returning done.i, a.account_id, a.pipeline_name, a.execution_id, a.stage_name, a.action_execution_id) \
         select j.mine, j.alone, exists (select 1 from done where done.i = u.i) as ended, j.status, \
                acted.pipeline_name, acted.execution_id, acted.stage_name, w.waiting, sib.busy, \
                case when not w.waiting then (select e.execution_mode from pipeline_execution e where e.account_id = acted.account_id \
                 and e.pipeline_name = acted.pipeline_name and e.execution_id = acted.execution_id) end as execution_mode \
         from u left join j on j.i = u.i left join acted on acted.i = u.i \
         left join lateral (select exists ( \
            select 1 from action_execution s \
            where s.account_id = acted.account_id and s.pipeline_name = acted.pipeline_name and s.execution_id = acted.execution_id \
              and s.stage_name = acted.stage_name and s.current and s.status = 'InProgress' \
              and s.action_execution_id <> acted.action_execution_id and s.xmax = '0'::xid) as waiting) w on acted.stage_name is not null \
         left join lateral ( \
            select coalesce(array_agg(s.action_execution_id), '{}') as busy from action_execution s \
            where not w.waiting and s.account_id = acted.account_id and s.pipeline_name = acted.pipeline_name \
              and s.execution_id = acted.execution_id and s.stage_name = acted.stage_name and s.current and s.status = 'InProgress' \
              and s.action_execution_id <> acted.action_execution_id) sib on true \
         order by u.i",
    )
    .bind(ends.iter().map(|e| e.account_id.as_str()).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.job_id).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.owner.as_str()).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.job_status.as_str()).collect::<Vec<_>>())
    .bind(text(|e| e.status.as_deref()))
    .bind(text(|e| e.summary.as_deref()))
    .bind(text(|e| e.external_execution_id.as_deref()))
    .bind(ends.iter().map(|e| e.percent_complete).collect::<Vec<_>>())
    .bind(text(|e| e.error_code.as_deref()))
    .bind(text(|e| e.error_message.as_deref()))
    .bind(text(|e| e.updated_by.as_deref()))
    .bind(ends.iter().map(|e| e.revision.clone()).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.output.clone()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut outcomes = Vec::with_capacity(rows.len());
    for (row, end) in rows.into_iter().zip(ends) {
        outcomes.push(match row {
            Row { mine: Some(true), alone: Some(true), .. } => EndUnlocked::Alone,
            Row {
                mine: Some(true),
                ended: true,
                pipeline_name: Some(pipeline_name),
                execution_id: Some(execution_id),
                stage_name: Some(stage_name),
                execution_mode,
                waiting,
                busy,
                ..
            } => {
                // The busy siblings and the mode are read only when no sibling waits to be ended.
                let then = match (waiting, execution_mode, busy.unwrap_or_default()) {
                    (Some(false), Some(execution_mode), ids) if ids.is_empty() => Then::Settle { execution_mode },
                    (Some(false), Some(execution_mode), ids) => Then::AwaitSiblings { ids, execution_mode },
                    _ => Then::Nothing,
                };
                EndUnlocked::Ended(Some(EndedIn { pipeline_name, execution_id, stage_name, then }))
            }
            Row { mine: Some(true), ended: true, .. } => EndUnlocked::Ended(None),
            // The statement's snapshot may predate whoever ended the job.
            Row { mine: Some(true), status: Some(status), .. } if status == "InProgress" => {
                EndUnlocked::NotInProgress(get(conn, &end.account_id, end.job_id).await?.map_or(status, |j| j.status))
            }
            Row { mine: Some(true), status: Some(status), .. } => EndUnlocked::NotInProgress(status),
            _ => EndUnlocked::NotFound,
        });
    }
    Ok(outcomes)
}

/// One result in [`end_unlocked`]: a job of `owner` of this account to end
/// with `job_status`, and the update of its action.
pub struct Ending {
    pub account_id: String,
    pub job_id: Uuid,
    pub owner: String,
    pub job_status: String,
    pub status: Option<String>,
    pub summary: Option<String>,
    pub external_execution_id: Option<String>,
    pub percent_complete: Option<i32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub updated_by: Option<String>,
    pub revision: Option<Value>,
    pub output: Option<Value>,
}

impl Ending {
    pub fn new(account_id: &str, job_id: Uuid, owner: &str, job_status: &str, u: &ActionUpdate<'_>) -> Ending {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Ending {
            account_id: account_id.to_owned(),
            job_id,
            owner: owner.to_owned(),
            job_status: job_status.to_owned(),
            status: own(u.status),
            summary: own(u.summary),
            external_execution_id: own(u.external_execution_id),
            percent_complete: u.percent_complete,
            error_code: own(u.error_code),
            error_message: own(u.error_message),
            updated_by: own(u.updated_by),
            revision: u.revision.clone(),
            output: u.output.clone(),
        }
    }
}

/// The arguments both job-ending functions take, in their order.
fn bind_update<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    account_id: &'q str,
    job_id: Uuid,
    owner: Option<&'q str>,
    job_status: &'q str,
    u: &ActionUpdate<'q>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    crate::store::executions::bind_action_update(q.bind(account_id).bind(job_id).bind(owner).bind(job_status), u)
}

/// What [`end_job`] did.
pub enum JobEnd {
    NotFound,
    /// The job was not in progress (its status): nothing changed.
    NotInProgress(String),
    /// The job ended. `action`: its action ended too, with its execution
    /// and its stage's current actions as they now stand; None when the
    /// action was no longer in progress (stopped, abandoned).
    Ended {
        pipeline_name: String,
        pipeline: LockedPipeline,
        action: Option<Box<(ExecutionRow, Vec<ActionState>)>>,
    },
}

#[derive(sqlx::FromRow)]
struct EndedRow {
    outcome: String,
    job_status: Option<String>,
    pipeline_name: Option<String>,
    current_version: Option<i32>,
    generation: Option<Uuid>,
    execution: Option<Json<ExecutionRow>>,
    stage_actions: Option<Json<Vec<ActionState>>>,
}

/// Ends a job of `owner` (None: any) that is in progress with `job_status`
/// and applies `u` to its action, in one round trip that also takes the
/// locks a result needs (`millrace_end_job`, migration 0020). The caller's
/// transaction then runs the engine, and commits.
pub async fn end_job(
    conn: &mut PgConnection,
    account_id: &str,
    job_id: Uuid,
    owner: Option<&str>,
    job_status: &str,
    u: &ActionUpdate<'_>,
) -> Result<JobEnd, sqlx::Error> {
    let query = sqlx::query_as("select * from millrace_end_job($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
    let row: EndedRow = bind_update(query, account_id, job_id, owner, job_status, u).fetch_one(conn).await?;
    Ok(match (row.outcome.as_str(), row.pipeline_name, row.current_version, row.generation) {
        ("ended", Some(pipeline_name), Some(current_version), Some(generation)) => JobEnd::Ended {
            pipeline_name,
            pipeline: LockedPipeline { current_version, generation },
            action: row.execution.zip(row.stage_actions).map(|(e, s)| Box::new((e.0, s.0))),
        },
        ("not_in_progress", ..) => JobEnd::NotInProgress(row.job_status.unwrap_or_default()),
        _ => JobEnd::NotFound,
    })
}

/// One acknowledgement in [`acknowledge`].
pub struct Ack {
    pub account_id: String,
    pub job_id: Uuid,
    pub nonce: String,
}

/// Dispatched → InProgress for the holder of the nonce, on jobs of `owner`
/// (None: any), several in one statement (`store::batch`), each checked
/// against its own account: whether each was acknowledged, in their order.
/// The job's deadline was set when it was claimed ([`POLL`]): changing only
/// its status lets PostgreSQL update the row in place (migration 0027). A
/// job claimed without one (before that migration, or by a replica still
/// running the code before it) gets it here, from `default_timeout` unless
/// its type's `executor.jobTimeout` says.
pub async fn acknowledge(
    conn: &mut PgConnection,
    acks: &[Ack],
    owner: Option<&str>,
    default_timeout: std::time::Duration,
) -> Result<Vec<bool>, sqlx::Error> {
    let done: Vec<i64> = sqlx::query_scalar(concat!(
        "update job set status = 'InProgress', updated_at = now(), \
            timeout_at = coalesce(job.timeout_at, now() + make_interval(secs => coalesce( \
                (select ",
        declared_job_timeout!("t."),
        " from action_type t \
                 where t.account_id = job.account_id and t.owner = job.owner and t.category = job.category \
                   and t.provider = job.provider and t.version = job.version), $5))) \
         from unnest($1::uuid[], $2::text[], $3::text[]) with ordinality as a(job_id, account_id, nonce, i) \
         where job.job_id = a.job_id and job.account_id = a.account_id and ($4::text is null or job.owner = $4) \
           and job.nonce = a.nonce and job.status = 'Dispatched' \
         returning a.i"
    ))
    .bind(acks.iter().map(|a| a.job_id).collect::<Vec<_>>())
    .bind(acks.iter().map(|a| a.account_id.as_str()).collect::<Vec<_>>())
    .bind(acks.iter().map(|a| a.nonce.as_str()).collect::<Vec<_>>())
    .bind(owner)
    .bind(default_timeout.as_secs_f64())
    .fetch_all(conn)
    .await?;
    let mut acknowledged = vec![false; acks.len()];
    for i in done {
        // Ordinality counts from 1.
        acknowledged[(i - 1) as usize] = true;
    }
    Ok(acknowledged)
}

/// Queues the next job of an action whose worker answered with a
/// continuation token: the same work, carrying the token.
pub async fn continue_with(conn: &mut PgConnection, account_id: &str, job_id: Uuid, next_id: Uuid, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into job (job_id, account_id, pipeline_name, execution_id, action_execution_id, owner, category, provider, version, \
            query_value, status, continuation_token, data, alone) \
         select $3, account_id, pipeline_name, execution_id, action_execution_id, owner, category, provider, version, query_value, \
            'Queued', $4, jsonb_set(data, '{continuationToken}', to_jsonb($4::text)), alone \
         from job where account_id = $1 and job_id = $2",
    )
    .bind(account_id)
    .bind(job_id)
    .bind(next_id)
    .bind(token)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every unfinished job of the given action executions (stopped or
/// cancelled work): their workers' later results are refused.
pub async fn fail_jobs_of(conn: &mut PgConnection, account_id: &str, action_execution_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update job set status = 'Failed', updated_at = now() \
         where account_id = $1 and action_execution_id = any($2) and status in ('Queued', 'Dispatched', 'InProgress')",
    )
    .bind(account_id)
    .bind(action_execution_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts dispatched jobs whose worker never acknowledged back in the queue;
/// the old nonce stops working because the next claim issues a new one.
pub async fn requeue_unacknowledged(conn: &mut PgConnection, older_than: DateTime<Utc>, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "with stale as (select job_id from job where phase = 'claimed' and status = 'Dispatched' and dispatched_at < $1 \
                        order by dispatched_at limit $2 for update skip locked) \
         update job set status = 'Queued', nonce = null, dispatched_at = null, updated_at = now() \
         from stale where job.job_id = stale.job_id",
    )
    .bind(older_than)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// In-progress jobs past their timeout, but for those in `skip`:
/// (account, pipeline, job, action execution).
pub async fn overdue(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    skip: &[Uuid],
) -> Result<Vec<(String, String, Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "select account_id, pipeline_name, job_id, action_execution_id from job \
         where phase = 'claimed' and status = 'InProgress' and timeout_at < $1 and job_id <> all($3) order by timeout_at limit $2",
    )
    .bind(now)
    .bind(limit)
    .bind(skip)
    .fetch_all(conn)
    .await
}

/// (pipeline, action execution) of the account's queued jobs of one type,
/// in pipeline order so several pipelines are always locked in one order.
pub async fn queued_of_type(conn: &mut PgConnection, account_id: &str, type_id: &ActionTypeId) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select pipeline_name, action_execution_id from job \
         where ",
        queue_of_type!(),
        " account_id = $1 and owner = $2 and category = $3 and provider = $4 and version = $5 and phase = 'queued' \
         order by pipeline_name, seq"
    ))
    .bind(account_id)
    .bind(&type_id.owner)
    .bind(&type_id.category)
    .bind(&type_id.provider)
    .bind(&type_id.version)
    .fetch_all(conn)
    .await
}

/// Jobs still queued for custom types deleted since `since` (and not
/// created again), but the actions in `skip`, newest deletion first:
/// (account, pipeline, action execution, type). Nobody can poll them; the
/// deletion fails the ones it sees, but a start that read the type just
/// before the deletion committed can queue one after.
pub async fn queued_of_deleted_types(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    limit: i64,
    skip: &[Uuid],
) -> Result<Vec<(String, String, Uuid, ActionTypeId)>, sqlx::Error> {
    let rows: Vec<(String, String, Uuid, String, String, String, String)> = sqlx::query_as(
        // Driven by the few recently deleted types (lateral), so that the
        // queue's index is read per type rather than whole.
        "select t.account_id, j.pipeline_name, j.action_execution_id, t.owner, t.category, t.provider, t.version \
         from (select account_id, owner, category, provider, version, deleted_at from action_type \
               where deleted_at is not null and deleted_at > $1 order by deleted_at desc limit $2) t \
         cross join lateral ( \
            select pipeline_name, action_execution_id, seq from job \
            where hashtextextended(account_id || '/' || owner || '/' || category || '/' || provider || '/' || version, 0) \
                = hashtextextended(t.account_id || '/' || t.owner || '/' || t.category || '/' || t.provider || '/' || t.version, 0) \
              and account_id = t.account_id and owner = t.owner and category = t.category and provider = t.provider \
              and version = t.version and phase = 'queued' and action_execution_id <> all($3) \
            order by seq limit $2) j \
         order by t.deleted_at desc, j.seq limit $2",
    )
    .bind(since)
    .bind(limit)
    .bind(skip)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(account, pipeline, action, owner, category, provider, version)| {
            (account, pipeline, action, ActionTypeId { category, owner, provider, version })
        })
        .collect())
}
