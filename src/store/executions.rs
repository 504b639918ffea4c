//! Pipeline executions, stage and action executions, transitions and source
//! revisions. Callers hold the pipeline's row lock (see the migration) for
//! any write: [`lock_pipeline`] exclusively, or, on the hot paths (workers'
//! results, StartPipelineExecution), [`lock_pipeline_shared`] followed by
//! the execution's row lock (a result of a PARALLEL execution), nothing
//! more (a PARALLEL start: its execution is new) or [`lock_pipeline_engine`]
//! (other modes). Always in that order, so lock waits never form a cycle.
//! A result takes its locks in `millrace_end_job` (migration 0020), or,
//! when it ends one of several actions of a group, none: it writes only its
//! job and action (`jobs::end_unlocked`), and [`ended_all`] and
//! `engine::settle` follow its commit. Action rows come last: the engine
//! waits for such a result's rows under its locks ([`await_writers`]), and
//! no one holding an action row waits for a pipeline or execution lock.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::pipeline::ActionTypeId;
use crate::pipeline::action_types::ActionType;
use crate::store::jobs::NewJob;

/// A pipeline whose row this transaction has locked.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct LockedPipeline {
    pub current_version: i32,
    /// Changes when the name is deleted and created again: with a version,
    /// it names one declaration for good (the engine caches them by it).
    pub generation: Uuid,
}

/// Locks the pipeline row; None if there is no such pipeline.
pub async fn lock_pipeline(conn: &mut PgConnection, account_id: &str, name: &str) -> Result<Option<LockedPipeline>, sqlx::Error> {
    sqlx::query_as("select current_version, generation from pipeline where account_id = $1 and name = $2 for update")
        .bind(account_id)
        .bind(name)
        .fetch_optional(conn)
        .await
}

/// [`lock_pipeline`] in share mode, for starting an execution (a worker's
/// result takes it in `millrace_end_job`), with the pipeline's disabled
/// transitions: they change only under the exclusive lock, so the engine
/// need not read them again. They are read from the locked row itself
/// (migration 0024): a lock that had to wait returns the row's newest
/// version, where another table would be read as the statement's snapshot,
/// taken before the wait, saw it.
pub async fn lock_pipeline_shared(
    conn: &mut PgConnection,
    account_id: &str,
    name: &str,
) -> Result<Option<(LockedPipeline, std::collections::HashSet<(String, String)>)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        locked: LockedPipeline,
        disabled: sqlx::types::Json<Vec<(String, String)>>,
    }
    let row: Option<Row> = sqlx::query_as(
        "select current_version, generation, disabled_transitions as disabled from pipeline \
         where account_id = $1 and name = $2 for share",
    )
    .bind(account_id)
    .bind(name)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.locked, r.disabled.0.into_iter().collect())))
}

/// With the share lock, what the exclusive lock gives for executions whose
/// progress crosses executions (every mode but PARALLEL: who waits, who
/// enters, who is superseded): one such change at a time per pipeline.
pub async fn lock_pipeline_engine(conn: &mut PgConnection, account_id: &str, pipeline: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))").bind(account_id).bind(pipeline).execute(conn).await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct ExecutionRow {
    pub execution_id: Uuid,
    pub seq: i64,
    pub pipeline_version: i32,
    pub status: String,
    pub status_summary: Option<String>,
    pub execution_mode: String,
    pub trigger_type: String,
    pub trigger_detail: Option<String>,
    pub stage_index: i32,
    pub stage_phase: String,
    pub variables: Value,
    pub source_overrides: Value,
    pub stop_reason: Option<String>,
    pub stop_abandon: Option<bool>,
    pub execution_type: String,
    pub rollback_target: Option<Uuid>,
    /// The hook (BEFORE_ENTRY, ON_SUCCESS) of its stage whose condition is
    /// in progress, and when to evaluate it again.
    pub checking: Option<String>,
    pub check_due: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const EXECUTION_COLUMNS: &str = "execution_id, seq, pipeline_version, status, status_summary, execution_mode, trigger_type, \
     trigger_detail, stage_index, stage_phase, variables, source_overrides, stop_reason, stop_abandon, execution_type, rollback_target, \
     checking, check_due, created_at, updated_at";

pub struct NewExecution<'a> {
    pub execution_id: Uuid,
    pub pipeline_version: i32,
    pub execution_mode: &'a str,
    pub trigger_type: &'a str,
    pub trigger_detail: Option<&'a str>,
    pub variables: Value,
    pub source_overrides: Value,
    pub client_request_token: Option<&'a str>,
    /// For a rollback: the execution whose artifacts it re-runs with, and the stage it runs.
    pub rollback: Option<(Uuid, i32)>,
    /// The first stage, when the execution enters it as it is inserted
    /// (Running, the stage recorded InProgress) rather than waiting to.
    pub enter: Option<&'a str>,
}

/// Inserts an execution; None when its client request token was used before.
/// The same statement reads the account's live action types among `types`
/// (those the execution's actions will need), answered with the row.
pub async fn insert_execution(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    e: &NewExecution<'_>,
    types: &[ActionTypeId],
) -> Result<Option<(ExecutionRow, Vec<ActionType>)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        execution: ExecutionRow,
        types: sqlx::types::Json<Vec<ActionType>>,
    }
    let type_part = |f: fn(&ActionTypeId) -> &str| types.iter().map(f).collect::<Vec<_>>();
    let row: Option<Row> = sqlx::query_as(&format!(
        "with e as ( \
            insert into pipeline_execution (account_id, pipeline_name, execution_id, pipeline_version, status, execution_mode, \
            trigger_type, trigger_detail, variables, source_overrides, client_request_token, execution_type, rollback_target, stage_index, \
            stage_phase) \
            values ($1, $2, $3, $4, 'InProgress', $5, $6, $7, $8, $9, $10, $11, $12, $13, case when $14::text is null then 'Waiting' else 'Running' end) \
            on conflict (account_id, pipeline_name, client_request_token) do nothing returning {EXECUTION_COLUMNS}), \
         stage as ( \
            insert into stage_execution (account_id, pipeline_name, execution_id, stage_name, status) \
            select $1, $2, e.execution_id, $14, 'InProgress' from e where $14::text is not null) \
         select {EXECUTION_COLUMNS}, \
            (select coalesce(jsonb_agg(definition), '[]') from action_type where account_id = $1 and deleted_at is null \
                and (owner, category, provider, version) in \
                    (select * from unnest($15::text[], $16::text[], $17::text[], $18::text[]))) as types \
         from e"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(e.execution_id)
    .bind(e.pipeline_version)
    .bind(e.execution_mode)
    .bind(e.trigger_type)
    .bind(e.trigger_detail)
    .bind(&e.variables)
    .bind(&e.source_overrides)
    .bind(e.client_request_token)
    .bind(if e.rollback.is_some() { "ROLLBACK" } else { "STANDARD" })
    .bind(e.rollback.map(|r| r.0))
    .bind(e.rollback.map(|r| r.1).unwrap_or(0))
    .bind(e.enter)
    .bind(type_part(|t| &t.owner))
    .bind(type_part(|t| &t.category))
    .bind(type_part(|t| &t.provider))
    .bind(type_part(|t| &t.version))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.execution, r.types.0)))
}

pub async fn execution_by_token(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    token: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    let row: Option<(Uuid,)> = sqlx::query_as(
        "select execution_id from pipeline_execution where account_id = $1 and pipeline_name = $2 and client_request_token = $3",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(token)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.0))
}

/// Executions still running or stopping, oldest first.
pub async fn active_executions(conn: &mut PgConnection, account_id: &str, pipeline: &str) -> Result<Vec<ExecutionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {EXECUTION_COLUMNS} from pipeline_execution \
         where account_id = $1 and pipeline_name = $2 and status in ('InProgress', 'Stopping') order by seq"
    ))
    .bind(account_id)
    .bind(pipeline)
    .fetch_all(conn)
    .await
}

pub async fn get_execution(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    id: Uuid,
) -> Result<Option<ExecutionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {EXECUTION_COLUMNS} from pipeline_execution where account_id = $1 and pipeline_name = $2 and execution_id = $3"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The newest STANDARD execution of a pipeline version, other than
/// `except`, that succeeded in a stage: what an automatic rollback of that
/// stage returns to.
pub async fn latest_success_in_stage(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    stage: &str,
    version: i32,
    except: Uuid,
) -> Result<Option<ExecutionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {} from stage_execution s join pipeline_execution e using (account_id, pipeline_name, execution_id) \
         where s.account_id = $1 and s.pipeline_name = $2 and s.stage_name = $3 and s.status = 'Succeeded' \
           and e.pipeline_version = $4 and e.execution_type = 'STANDARD' and e.execution_id <> $5 \
         order by s.updated_at desc limit 1",
        EXECUTION_COLUMNS.split(", ").map(|c| format!("e.{c}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(stage)
    .bind(version)
    .bind(except)
    .fetch_optional(conn)
    .await
}

/// Newest first, after `before_seq`, optionally only those that succeeded in a stage.
pub async fn list_executions(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    before_seq: Option<i64>,
    succeeded_in_stage: Option<&str>,
    limit: i64,
) -> Result<Vec<ExecutionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {EXECUTION_COLUMNS} from pipeline_execution e \
         where account_id = $1 and pipeline_name = $2 and {} \
           and ($4::text is null or exists (select 1 from stage_execution s where s.account_id = e.account_id \
                and s.pipeline_name = e.pipeline_name and s.execution_id = e.execution_id and s.stage_name = $4 and s.status = 'Succeeded')) \
         order by seq desc limit $5",
        super::when_given(before_seq.is_some(), "seq < $3", "$3::bigint"),
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(before_seq)
    .bind(succeeded_in_stage)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// What one engine step does to an execution; all of it in one statement.
#[derive(Default)]
pub struct Move<'a> {
    /// (stage name, status) to record for the stage.
    pub stage: Option<(&'a str, &'a str)>,
    /// A stage it enters at once after that one (recorded InProgress).
    pub enter: Option<&'a str>,
    /// A final status sets the phase to Done.
    pub status: Option<&'a str>,
    pub summary: Option<&'a str>,
    /// (stage index, phase) the execution is at next.
    pub position: Option<(i32, &'a str)>,
    /// A stage condition it waits for next (hook, when to look again);
    /// every move ends the wait it had.
    pub check: Option<(&'a str, DateTime<Utc>)>,
}

pub async fn move_execution(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    id: Uuid,
    m: &Move<'_>,
) -> Result<ExecutionRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "with stage as ( \
            insert into stage_execution (account_id, pipeline_name, execution_id, stage_name, status) \
            select $1, $2, $3, s.name, s.status from (values ($4::text, $5::text), ($10::text, 'InProgress')) s(name, status) \
            where s.name is not null \
            on conflict (account_id, pipeline_name, execution_id, stage_name) do update set status = excluded.status, updated_at = now()) \
         update pipeline_execution set status = coalesce($6, status), status_summary = coalesce($7, status_summary), \
            stage_index = coalesce($8, stage_index), \
            stage_phase = case when coalesce($6, status) in ('InProgress', 'Stopping') then coalesce($9, stage_phase) else 'Done' end, \
            checking = $11, check_due = $12, updated_at = now() \
         where account_id = $1 and pipeline_name = $2 and execution_id = $3 returning {EXECUTION_COLUMNS}"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(id)
    .bind(m.stage.map(|s| s.0))
    .bind(m.stage.map(|s| s.1))
    .bind(m.status)
    .bind(m.summary)
    .bind(m.position.map(|p| p.0))
    .bind(m.position.map(|p| p.1))
    .bind(m.enter)
    .bind(m.check.map(|c| c.0))
    .bind(m.check.map(|c| c.1))
    .fetch_one(conn)
    .await
}

/// Starts, moves or (None) ends an execution's wait for a stage condition
/// without moving it.
pub async fn set_check(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    id: Uuid,
    check: Option<(&str, DateTime<Utc>)>,
) -> Result<ExecutionRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "update pipeline_execution set checking = $4, check_due = $5, updated_at = now() \
         where account_id = $1 and pipeline_name = $2 and execution_id = $3 returning {EXECUTION_COLUMNS}"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(id)
    .bind(check.map(|c| c.0))
    .bind(check.map(|c| c.1))
    .fetch_one(conn)
    .await
}

/// Executions whose stage condition is due for another evaluation, but
/// for those in `skip`.
pub async fn due_checks(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    skip: &[Uuid],
) -> Result<Vec<(String, String, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "select account_id, pipeline_name, execution_id from pipeline_execution \
         where check_due <= $1 and execution_id <> all($3) order by check_due limit $2",
    )
    .bind(now)
    .bind(limit)
    .bind(skip)
    .fetch_all(conn)
    .await
}

pub async fn set_execution_status(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    id: Uuid,
    status: &str,
    summary: Option<&str>,
) -> Result<ExecutionRow, sqlx::Error> {
    move_execution(conn, account_id, pipeline, id, &Move { status: Some(status), summary, ..Default::default() }).await
}

pub async fn set_stop(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    id: Uuid,
    reason: Option<&str>,
    abandon: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update pipeline_execution set status = 'Stopping', stop_reason = coalesce($4, stop_reason), stop_abandon = $5, updated_at = now() \
         where account_id = $1 and pipeline_name = $2 and execution_id = $3",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(id)
    .bind(reason)
    .bind(abandon)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageRow {
    pub execution_id: Uuid,
    pub stage_name: String,
    pub status: String,
    pub execution_type: String,
    pub auto_retries: i32,
    pub manual_retries: i32,
    pub latest_retry_trigger: Option<String>,
}

/// The latest execution of each stage. One transaction can end a stage for
/// one execution and enter it for the next (same `now()`): the newer wins.
pub async fn latest_stages(conn: &mut PgConnection, account_id: &str, pipeline: &str) -> Result<Vec<StageRow>, sqlx::Error> {
    sqlx::query_as(
        "select distinct on (s.stage_name) s.execution_id, s.stage_name, s.status, e.execution_type, s.auto_retries, \
            s.manual_retries, s.latest_retry_trigger \
         from stage_execution s join pipeline_execution e using (account_id, pipeline_name, execution_id) \
         where s.account_id = $1 and s.pipeline_name = $2 order by s.stage_name, s.updated_at desc, e.seq desc",
    )
    .bind(account_id)
    .bind(pipeline)
    .fetch_all(conn)
    .await
}

/// How a stage of one execution stands, if it was ever entered.
pub async fn stage_record(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    id: Uuid,
    stage: &str,
) -> Result<Option<StageRecord>, sqlx::Error> {
    sqlx::query_as(
        "select status, auto_retries from stage_execution where account_id = $1 and pipeline_name = $2 and execution_id = $3 and stage_name = $4",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(id)
    .bind(stage)
    .fetch_optional(conn)
    .await
}

/// A stage of one execution: how it stands, and how many times its
/// failure retried it automatically.
#[derive(sqlx::FromRow)]
pub struct StageRecord {
    pub status: String,
    pub auto_retries: i32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActionRow {
    pub seq: i64,
    pub action_execution_id: Uuid,
    pub execution_id: Uuid,
    pub pipeline_version: i32,
    pub stage_name: String,
    pub action_name: String,
    pub run_order: i32,
    pub status: String,
    pub summary: Option<String>,
    pub external_execution_id: Option<String>,
    pub external_execution_url: Option<String>,
    pub percent_complete: Option<i32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub approval_token: Option<Uuid>,
    pub updated_by: Option<String>,
    pub revision: Option<Value>,
    pub input: Value,
    pub output: Value,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ACTION_COLUMNS: &str = "seq, action_execution_id, execution_id, pipeline_version, stage_name, action_name, run_order, status, summary, \
     external_execution_id, external_execution_url, percent_complete, error_code, error_message, approval_token, updated_by, \
     revision, input, output, started_at, updated_at";

pub struct NewAction {
    pub action_execution_id: Uuid,
    pub execution_id: Uuid,
    pub pipeline_version: i32,
    pub stage_name: String,
    pub action_name: String,
    pub run_order: i32,
    pub status: &'static str,
    pub input: Value,
    pub output: Value,
    pub approval_token: Option<Uuid>,
    pub timeout_at: Option<DateTime<Utc>>,
    /// The source revision a source action succeeded with at once.
    pub revision: Option<Value>,
    /// Why an action that could not start failed: (code, message).
    pub error: Option<(&'static str, String)>,
}

impl NewAction {
    /// The row as [`insert_actions`] writes it, for the engine to work with
    /// without reading it back (`seq` and the times are the database's).
    pub fn to_row(&self) -> ActionRow {
        let now = Utc::now();
        ActionRow {
            seq: 0,
            action_execution_id: self.action_execution_id,
            execution_id: self.execution_id,
            pipeline_version: self.pipeline_version,
            stage_name: self.stage_name.clone(),
            action_name: self.action_name.clone(),
            run_order: self.run_order,
            status: self.status.to_owned(),
            summary: None,
            external_execution_id: None,
            external_execution_url: None,
            percent_complete: None,
            error_code: self.error.as_ref().map(|e| e.0.to_owned()),
            error_message: self.error.as_ref().map(|e| e.1.clone()),
            approval_token: self.approval_token,
            updated_by: None,
            revision: self.revision.clone(),
            input: self.input.clone(),
            output: self.output.clone(),
            started_at: now,
            updated_at: now,
        }
    }
}

/// Moves of one execution made in memory, written with the next actions
/// ([`insert_actions`]): the stage records (stage, status) and the
/// execution's row as they left it.
pub struct Carried<'a> {
    pub stages: &'a [(String, &'static str)],
    pub execution: &'a ExecutionRow,
}

/// Inserts the current attempts of actions (of one execution) and the jobs
/// that run them in one statement, with the moves `carried` of that
/// execution if any; earlier attempts of the same actions become history,
/// unless the caller knows there are none (`first_attempts`).
pub async fn insert_actions(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    actions: &[NewAction],
    jobs: &[NewJob<'_>],
    carried: Option<Carried<'_>>,
    first_attempts: bool,
) -> Result<(), sqlx::Error> {
    if actions.is_empty() && carried.is_none() {
        return Ok(());
    }
    // Bound by reference: the documents are serialized straight from the
    // engine's values.
    let column = |f: fn(&NewAction) -> &str| actions.iter().map(f).collect::<Vec<_>>();
    let document = |f: fn(&NewAction) -> &Value| actions.iter().map(f).collect::<Vec<_>>();
    // The jobs go in the same statement (parameters from $17 on), when
    // there are any; then the moves (parameters after the jobs').
    let mut next = 17;
    let with_jobs = if jobs.is_empty() {
        String::new()
    } else {
        next += crate::store::jobs::NEW_PARAMETERS;
        format!("queued as ({}), ", crate::store::jobs::insert_statement(17))
    };
    let with_moves = if carried.is_none() {
        String::new()
    } else {
        let p = |i: usize| format!("${}", next + i);
        format!(
            "staged as (insert into stage_execution (account_id, pipeline_name, execution_id, stage_name, status) \
                select $1, $2, {e}, s.name, s.status from unnest({names}::text[], {statuses}::text[]) s(name, status) \
                on conflict (account_id, pipeline_name, execution_id, stage_name) \
                do update set status = excluded.status, updated_at = now()), \
             moved as (update pipeline_execution set status = {status}, status_summary = {summary}, stage_index = {index}, \
                stage_phase = {phase}, checking = {checking}, check_due = {due}, updated_at = now() \
                where account_id = $1 and pipeline_name = $2 and execution_id = {e}), ",
            e = p(0),
            names = p(1),
            statuses = p(2),
            status = p(3),
            summary = p(4),
            index = p(5),
            phase = p(6),
            checking = p(7),
            due = p(8),
        )
    };
    // Looking for earlier attempts costs the statement about a sixth of
    // its buffers, for nothing in an execution that has just started.
    let with_earlier = if first_attempts {
        ""
    } else {
        ", earlier as (update action_execution a set current = false from new \
            where a.account_id = $1 and a.pipeline_name = $2 and a.execution_id = new.execution_id \
              and a.stage_name = new.stage_name and a.action_name = new.action_name and a.current)"
    };
    let statement = format!(
        "with {with_jobs}{with_moves}new as (select * from unnest($3::uuid[], $4::uuid[], $5::int[], $6::text[], $7::text[], $8::int[], $9::text[], \
                $10::jsonb[], $11::jsonb[], $12::uuid[], $13::timestamptz[], $14::jsonb[], $15::text[], $16::text[]) \
            as n(execution_id, action_execution_id, pipeline_version, stage_name, action_name, run_order, status, input, output, \
                 approval_token, timeout_at, revision, error_code, error_message)){with_earlier} \
         insert into action_execution (account_id, pipeline_name, execution_id, action_execution_id, pipeline_version, stage_name, \
            action_name, run_order, status, input, output, approval_token, timeout_at, revision, error_code, error_message) \
         select $1, $2, execution_id, action_execution_id, pipeline_version, stage_name, action_name, run_order, status, input, \
            output, approval_token, timeout_at, revision, error_code, error_message from new"
    );
    let query = sqlx::query(&statement)
        .bind(account_id)
        .bind(pipeline)
        .bind(actions.iter().map(|a| a.execution_id).collect::<Vec<_>>())
        .bind(actions.iter().map(|a| a.action_execution_id).collect::<Vec<_>>())
        .bind(actions.iter().map(|a| a.pipeline_version).collect::<Vec<_>>())
        .bind(column(|a| &a.stage_name))
        .bind(column(|a| &a.action_name))
        .bind(actions.iter().map(|a| a.run_order).collect::<Vec<_>>())
        .bind(column(|a| a.status))
        .bind(document(|a| &a.input))
        .bind(document(|a| &a.output))
        .bind(actions.iter().map(|a| a.approval_token).collect::<Vec<_>>())
        .bind(actions.iter().map(|a| a.timeout_at).collect::<Vec<_>>())
        .bind(actions.iter().map(|a| a.revision.as_ref()).collect::<Vec<_>>())
        .bind(actions.iter().map(|a| a.error.as_ref().map(|e| e.0)).collect::<Vec<_>>())
        .bind(actions.iter().map(|a| a.error.as_ref().map(|e| e.1.as_str())).collect::<Vec<_>>());
    let query = if jobs.is_empty() { query } else { crate::store::jobs::bind_new(query, jobs) };
    let query = match carried {
        None => query,
        Some(c) => query
            .bind(c.execution.execution_id)
            .bind(c.stages.iter().map(|s| s.0.as_str()).collect::<Vec<_>>())
            .bind(c.stages.iter().map(|s| s.1).collect::<Vec<_>>())
            .bind(&c.execution.status)
            .bind(&c.execution.status_summary)
            .bind(c.execution.stage_index)
            .bind(&c.execution.stage_phase)
            .bind(&c.execution.checking)
            .bind(c.execution.check_due),
    };
    query.execute(conn).await?;
    Ok(())
}

/// Where the current attempt of every action of an execution's stage stands.
pub async fn stage_actions(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Uuid,
    stage: &str,
) -> Result<Vec<ActionState>, sqlx::Error> {
    sqlx::query_as(
        "select stage_name, action_name, status, error_message from action_execution \
         where account_id = $1 and pipeline_name = $2 and execution_id = $3 and stage_name = $4 and current order by seq",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .bind(stage)
    .fetch_all(conn)
    .await
}

/// Current attempts of all actions of an execution (for artifacts and variables).
pub async fn execution_actions(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Uuid,
) -> Result<Vec<ActionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {ACTION_COLUMNS} from action_execution where account_id = $1 and pipeline_name = $2 and execution_id = $3 \
         and current order by seq"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .fetch_all(conn)
    .await
}

/// The latest attempt of each (stage, action) of the pipeline.
pub async fn latest_actions(conn: &mut PgConnection, account_id: &str, pipeline: &str) -> Result<Vec<ActionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select distinct on (stage_name, action_name) {ACTION_COLUMNS} from action_execution \
         where account_id = $1 and pipeline_name = $2 order by stage_name, action_name, seq desc"
    ))
    .bind(account_id)
    .bind(pipeline)
    .fetch_all(conn)
    .await
}

/// Newest first, after `before_seq`, optionally of one execution.
pub async fn list_actions(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Option<Uuid>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<ActionRow>, sqlx::Error> {
    let select = format!("select {ACTION_COLUMNS} from action_execution");
    super::history_page(conn, &select, account_id, pipeline, execution_id, before_seq, limit).await
}

/// What finishing (or progressing) an action writes.
#[derive(Default)]
pub struct ActionUpdate<'a> {
    pub status: Option<&'a str>,
    pub summary: Option<&'a str>,
    pub external_execution_id: Option<&'a str>,
    pub percent_complete: Option<i32>,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub updated_by: Option<&'a str>,
    pub revision: Option<Value>,
    /// Merged into the stored output object.
    pub output: Option<Value>,
}

/// Applies `u` if the action is still InProgress; false when it was not.
pub async fn update_action(
    conn: &mut PgConnection,
    account_id: &str,
    action_execution_id: Uuid,
    u: &ActionUpdate<'_>,
) -> Result<bool, sqlx::Error> {
    Ok(update_action_of(conn, account_id, action_execution_id, u).await?.is_some())
}

/// Applies `u` to the action if it is InProgress (`millrace_update_action`,
/// migration 0012) and answers its execution and where its stage's current
/// actions stand; None when it was not in progress.
pub async fn update_action_of(
    conn: &mut PgConnection,
    account_id: &str,
    action_execution_id: Uuid,
    u: &ActionUpdate<'_>,
) -> Result<Option<Completed>, sqlx::Error> {
    // The stage's other actions come from the statement's snapshot, which
    // the update does not change; the updated one from the update.
    let sql = format!(
        "with a as (select * from millrace_update_action($1, $2, $3, $4, $5, null, $6, $7, $8, $9, $10, $11)) \
         select {}, \
            (select coalesce(jsonb_agg(jsonb_build_object('stage_name', o.stage_name, 'action_name', o.action_name, 'status', o.status, \
                                                          'error_message', o.error_message)), '[]') \
             from action_execution o where o.account_id = $1 and o.pipeline_name = a.pipeline_name \
             and o.execution_id = a.execution_id and o.stage_name = a.stage_name and o.current and o.action_execution_id <> $2) \
            || jsonb_build_array(jsonb_build_object('stage_name', a.stage_name, 'action_name', a.action_name, 'status', a.status, \
                                                    'error_message', a.error_message)) as stage_actions \
         from a join pipeline_execution e on e.account_id = $1 and e.pipeline_name = a.pipeline_name and e.execution_id = a.execution_id",
        EXECUTION_COLUMNS.split(", ").map(|c| format!("e.{c}")).collect::<Vec<_>>().join(", ")
    );
    let query = sqlx::query_as(&sql).bind(account_id).bind(action_execution_id);
    bind_action_update(query, u).fetch_optional(conn).await
}

/// Binds an [`ActionUpdate`]'s fields in the order `millrace_update_action`
/// (migration 0012) and the functions that call it take them.
pub fn bind_action_update<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    u: &ActionUpdate<'q>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(u.status)
        .bind(u.summary)
        .bind(u.external_execution_id)
        .bind(u.percent_complete)
        .bind(u.error_code)
        .bind(u.error_message)
        .bind(u.updated_by)
        .bind(u.revision.clone())
        .bind(u.output.clone())
}

/// Where an action stands, as the engine decides a stage's next step.
#[derive(Debug, Clone, serde::Deserialize, sqlx::FromRow)]
pub struct ActionState {
    pub stage_name: String,
    pub action_name: String,
    pub status: String,
    pub error_message: Option<String>,
}

impl From<&ActionRow> for ActionState {
    fn from(r: &ActionRow) -> Self {
        ActionState {
            stage_name: r.stage_name.clone(),
            action_name: r.action_name.clone(),
            status: r.status.clone(),
            error_message: r.error_message.clone(),
        }
    }
}

/// An action just updated: its execution, and the current actions of its
/// stage as they now stand (the updated one included).
#[derive(sqlx::FromRow)]
pub struct Completed {
    #[sqlx(flatten)]
    pub execution: ExecutionRow,
    pub stage_actions: sqlx::types::Json<Vec<ActionState>>,
}

/// Active executions waiting to enter the stage with this index, oldest first.
pub async fn waiting_at(conn: &mut PgConnection, account_id: &str, pipeline: &str, stage_index: i32) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "select execution_id from pipeline_execution where account_id = $1 and pipeline_name = $2 \
         and status in ('InProgress', 'Stopping') and stage_phase = 'Waiting' and stage_index = $3 order by seq",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(stage_index)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Whether another active execution is running the stage with this index.
pub async fn stage_occupied(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    stage_index: i32,
    except: Uuid,
) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as(
        "select 1 from pipeline_execution where account_id = $1 and pipeline_name = $2 and status in ('InProgress', 'Stopping') \
         and stage_phase = 'Running' and stage_index = $3 and execution_id <> $4 limit 1",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(stage_index)
    .bind(except)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// (stage, Inbound|Outbound) of every disabled transition.
pub async fn disabled_transitions(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
) -> Result<std::collections::HashSet<(String, String)>, sqlx::Error> {
    let disabled: Option<sqlx::types::Json<Vec<(String, String)>>> =
        sqlx::query_scalar("select disabled_transitions from pipeline where account_id = $1 and name = $2")
            .bind(account_id)
            .bind(pipeline)
            .fetch_optional(conn)
            .await?;
    Ok(disabled.map(|d| d.0.into_iter().collect()).unwrap_or_default())
}

/// Waits until no other transaction is writing the stage's actions that
/// were in progress as this statement began ([`crate::engine::action_ended`]):
/// a share lock on each, held to the end of the transaction, so one that
/// starts writing later waits for this transaction instead.
pub async fn await_writers(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Uuid,
    stage: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "select 1 from action_execution where account_id = $1 and pipeline_name = $2 and execution_id = $3 and stage_name = $4 \
         and current and status = 'InProgress' for share",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .bind(stage)
    .execute(conn)
    .await?;
    Ok(())
}

/// The pipeline an action execution belongs to.
pub async fn action_pipeline(conn: &mut PgConnection, account_id: &str, action_execution_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("select pipeline_name from action_execution where account_id = $1 and action_execution_id = $2")
            .bind(account_id)
            .bind(action_execution_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|r| r.0))
}

/// The approval action execution holding `token`.
pub async fn action_by_token(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    stage: &str,
    action: &str,
    token: Uuid,
) -> Result<Option<ActionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {ACTION_COLUMNS} from action_execution where account_id = $1 and pipeline_name = $2 and stage_name = $3 \
         and action_name = $4 and approval_token = $5"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(stage)
    .bind(action)
    .bind(token)
    .fetch_optional(conn)
    .await
}

/// Marks the current attempts of a stage's actions (all, or the named ones)
/// as history, so the engine starts them again.
pub async fn retire_actions(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Uuid,
    stage: &str,
    only: Option<&[String]>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update action_execution set current = false where account_id = $1 and pipeline_name = $2 and execution_id = $3 \
         and stage_name = $4 and current and ($5::text[] is null or action_name = any($5))",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .bind(stage)
    .bind(only)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts a retry of a stage of an execution: automatic (its onFailure
/// result) or a RetryStageExecution call.
pub async fn record_retry(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    id: Uuid,
    stage: &str,
    automatic: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update stage_execution set auto_retries = auto_retries + ($5::boolean)::int, \
            manual_retries = manual_retries + (not $5::boolean)::int, \
            latest_retry_trigger = case when $5::boolean then 'AutomatedStageRetry' else 'ManualStageRetry' end \
         where account_id = $1 and pipeline_name = $2 and execution_id = $3 and stage_name = $4",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(id)
    .bind(stage)
    .bind(automatic)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn clear_stop(conn: &mut PgConnection, account_id: &str, pipeline: &str, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("update pipeline_execution set stop_abandon = null where account_id = $1 and pipeline_name = $2 and execution_id = $3")
        .bind(account_id)
        .bind(pipeline)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// In-progress actions with a deadline (approvals) past it, but for those
/// in `skip`: (account, pipeline, action execution).
pub async fn overdue_actions(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    skip: &[Uuid],
) -> Result<Vec<(String, String, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "select account_id, pipeline_name, action_execution_id from action_execution \
         where waiting and timeout_at < $1 and action_execution_id <> all($3) order by timeout_at limit $2",
    )
    .bind(now)
    .bind(limit)
    .bind(skip)
    .fetch_all(conn)
    .await
}

/// After a result that ended an action committed: whether the actions
/// `ids`, which others were ending at the same time (`jobs::Then`), have all
/// ended. Each still in progress is waited for: its row is locked, which
/// waits for whoever is writing it, and then read as that writer left it.
/// One row per transaction, so that this waits holding no other lock and
/// cannot be part of a deadlock, and for at most [`SIBLING_WAIT`]: a
/// writer that takes longer fails this, and the sweeper moves the stage on
/// (`stranded`).
pub async fn ended_all(conn: &mut PgConnection, account_id: &str, ids: &[Uuid]) -> Result<bool, sqlx::Error> {
    let running: Vec<(Uuid,)> = sqlx::query_as(
        "select action_execution_id from action_execution where account_id = $1 and action_execution_id = any($2) \
         and status = 'InProgress'",
    )
    .bind(account_id)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for (id,) in running {
        let mut tx = conn.begin().await?;
        sqlx::query(SIBLING_WAIT).execute(&mut *tx).await?;
        let status: Option<(String,)> =
            sqlx::query_as("select status from action_execution where account_id = $1 and action_execution_id = $2 for share")
                .bind(account_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        if status.is_some_and(|(s,)| s == "InProgress") {
            return Ok(false);
        }
    }
    Ok(true)
}

/// How long [`ended_all`] waits for one action's writer: a result's or the
/// engine's transaction, which take milliseconds.
const SIBLING_WAIT: &str = "set local lock_timeout = '10s'";

/// Running stages whose actions have all ended, with nothing heard from
/// them since `quiet_since`, but for executions in `skip`: (account,
/// pipeline, execution, mode). The engine would have moved them on, had the
/// server that committed their last result lived to ask it.
pub async fn stranded(
    conn: &mut PgConnection,
    quiet_since: DateTime<Utc>,
    limit: i64,
    skip: &[Uuid],
) -> Result<Vec<(String, String, Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "select e.account_id, e.pipeline_name, e.execution_id, e.execution_mode from pipeline_execution e \
         join stage_execution s on s.account_id = e.account_id and s.pipeline_name = e.pipeline_name \
          and s.execution_id = e.execution_id and s.status in ('InProgress', 'Stopping') \
         where e.status in ('InProgress', 'Stopping') and e.stage_phase = 'Running' and e.checking is null \
           and e.updated_at < $1 and e.execution_id <> all($3) \
           and not exists (select 1 from action_execution o where o.account_id = e.account_id and o.pipeline_name = e.pipeline_name \
                           and o.execution_id = e.execution_id and o.stage_name = s.stage_name and o.current \
                           and (o.status = 'InProgress' or o.updated_at >= $1)) \
         limit $2",
    )
    .bind(quiet_since)
    .bind(limit)
    .bind(skip)
    .fetch_all(conn)
    .await
}

/// [`lock_pipeline_shared`], then the row lock a result of a PARALLEL
/// execution takes, in one statement (one round trip fewer for the engine
/// after a result). The execution row is as it stands under its lock (a
/// lock that had to wait returns the newest version); None inside when
/// there is no such execution.
pub async fn lock_pipeline_and_execution(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Uuid,
) -> Result<Option<(LockedPipeline, std::collections::HashSet<(String, String)>, Option<ExecutionRow>)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        locked: LockedPipeline,
        disabled: sqlx::types::Json<Vec<(String, String)>>,
        execution: Option<sqlx::types::Json<ExecutionRow>>,
    }
    // Materialized, so that the pipeline is locked before the execution.
    let row: Option<Row> = sqlx::query_as(&format!(
        "with p as materialized (select current_version, generation, disabled_transitions from pipeline \
            where account_id = $1 and name = $2 for share) \
         select p.current_version, p.generation, p.disabled_transitions as disabled, to_jsonb(e) as execution \
         from p left join lateral (select {EXECUTION_COLUMNS} from pipeline_execution \
            where account_id = $1 and pipeline_name = $2 and execution_id = $3 for update) e on true"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.locked, r.disabled.0.into_iter().collect(), r.execution.map(|e| e.0))))
}

/// Abandons every in-progress action of an execution; returns their ids.
pub async fn abandon_actions(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "update action_execution set status = 'Abandoned', updated_at = now() \
         where account_id = $1 and pipeline_name = $2 and execution_id = $3 and status = 'InProgress' returning action_execution_id",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransitionRow {
    pub stage_name: String,
    pub transition_type: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub last_changed_by: Option<String>,
    pub last_changed_at: DateTime<Utc>,
}

pub async fn transitions(conn: &mut PgConnection, account_id: &str, pipeline: &str) -> Result<Vec<TransitionRow>, sqlx::Error> {
    sqlx::query_as(
        "select stage_name, transition_type, enabled, disabled_reason, last_changed_by, last_changed_at from stage_transition \
         where account_id = $1 and pipeline_name = $2",
    )
    .bind(account_id)
    .bind(pipeline)
    .fetch_all(conn)
    .await
}

/// Records a transition's state, and with it the pipeline row's list of
/// disabled transitions (migration 0024). The caller holds the row's
/// exclusive lock.
// One column per parameter: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn set_transition(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    stage: &str,
    kind: &str,
    enabled: bool,
    reason: Option<&str>,
    changed_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into stage_transition (account_id, pipeline_name, stage_name, transition_type, enabled, disabled_reason, last_changed_by) \
         values ($1, $2, $3, $4, $5, $6, $7) on conflict (account_id, pipeline_name, stage_name, transition_type) do update \
         set enabled = excluded.enabled, disabled_reason = excluded.disabled_reason, last_changed_by = excluded.last_changed_by, \
         last_changed_at = now()",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(stage)
    .bind(kind)
    .bind(enabled)
    .bind(reason)
    .bind(changed_by)
    .execute(&mut *conn)
    .await?;
    // A statement of its own, to see the one above.
    sqlx::query(
        "update pipeline p set disabled_transitions = coalesce( \
            (select jsonb_agg(jsonb_build_array(t.stage_name, t.transition_type)) from stage_transition t \
             where t.account_id = p.account_id and t.pipeline_name = p.name and not t.enabled), '[]') \
         where p.account_id = $1 and p.name = $2",
    )
    .bind(account_id)
    .bind(pipeline)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevisionRow {
    pub stage_name: String,
    pub action_name: String,
    pub revision_id: String,
    pub revision_change_id: Option<String>,
    pub created: Option<DateTime<Utc>>,
}

pub async fn revisions(conn: &mut PgConnection, account_id: &str, pipeline: &str) -> Result<Vec<RevisionRow>, sqlx::Error> {
    sqlx::query_as(
        "select stage_name, action_name, revision_id, revision_change_id, created from action_revision \
         where account_id = $1 and pipeline_name = $2",
    )
    .bind(account_id)
    .bind(pipeline)
    .fetch_all(conn)
    .await
}

/// Records a revision; true when it differs from the one known before.
// One column per parameter: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn record_revision(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    stage: &str,
    action: &str,
    revision_id: &str,
    change_id: Option<&str>,
    created: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let previous: Option<(String,)> = sqlx::query_as(
        "select revision_id from action_revision where account_id = $1 and pipeline_name = $2 and stage_name = $3 and action_name = $4",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(stage)
    .bind(action)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "insert into action_revision (account_id, pipeline_name, stage_name, action_name, revision_id, revision_change_id, created) \
         values ($1, $2, $3, $4, $5, $6, $7) on conflict (account_id, pipeline_name, stage_name, action_name) do update \
         set revision_id = excluded.revision_id, revision_change_id = excluded.revision_change_id, created = excluded.created, \
         recorded_at = now()",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(stage)
    .bind(action)
    .bind(revision_id)
    .bind(change_id)
    .bind(created)
    .execute(conn)
    .await?;
    Ok(previous.is_none_or(|(p,)| p != revision_id))
}
