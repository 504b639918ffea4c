//! The execution engine: moves executions through their stages.
//!
//! Everything here runs inside the caller's transaction, after the caller
//! has locked the pipeline row ([`store::lock_pipeline`]), so for one
//! pipeline the engine's decisions are serialised across all replicas and a
//! dropped connection leaves nothing half-advanced. Workers' results and
//! StartPipelineExecution hold the row in share mode instead, so they still
//! exclude every other change, and serialise among themselves per execution
//! (PARALLEL) or per pipeline (other modes): see [`store`]. A result that
//! ends one of several actions of a group writes its own rows without
//! those locks and commits; the engine then runs in [`settle`] if nothing
//! of the stage is left in progress.
//!
//! An execution is always at one stage (`stage_index`) in one phase:
//! `Waiting` to enter it (held by a disabled transition, or in SUPERSEDED and
//! QUEUED modes by another execution running in it), `Running` it, or `Done`.
//! A stage condition in progress (a closed deployment window) keeps it
//! where it is with `checking` set: Running without actions for an entry
//! condition, Running after its actions for a success condition; the
//! sweeper advances it again at `check_due`.
//! [`reconcile`] repeatedly takes the next possible step until none is left:
//! supersede, enter a stage, start the next runOrder group, finish a stage.

pub(crate) mod conditions;
pub mod sweeper;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{Duration, Utc};
use regex::Regex;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::App;
use crate::crypto::{self, SEALED_PREFIX, SecretBox};
use crate::pipeline::action_types::{self, ActionType};
use crate::pipeline::{ActionDeclaration, ActionTypeId, PipelineDeclaration, StageDeclaration};
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::action_types as type_store;
use crate::store::executions::{self as store, ActionRow, ActionState, ActionUpdate, Carried, ExecutionRow, Move, NewAction, NewExecution};
use crate::store::jobs::{self, NewJob};
use crate::store::pipelines;
use crate::store::rule_executions::{self, NewRuleExecution};
use conditions::Decision;

/// Manual approvals wait this long unless the action sets timeoutInMinutes.
pub const DEFAULT_APPROVAL_MINUTES: i64 = 7 * 24 * 60;

/// Which pipeline the engine is working on: built from the lock the caller
/// holds.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub account_id: &'a str,
    pub region: &'a str,
    pub pipeline: &'a str,
    pub generation: Uuid,
    pub declarations: &'a Declarations,
    /// Opens secret configuration values to resolve their variables.
    pub secrets: &'a SecretBox,
}

impl Scope<'_> {
    pub fn pipeline_arn(&self) -> String {
        format!("arn:aws:codepipeline:{}:{}:{}", self.region, self.account_id, self.pipeline)
    }
}

/// Parsed pipeline declarations by (generation, version). A stored version
/// never changes, so entries are never stale; the cache only saves reading
/// and parsing the declaration at every step of every execution.
#[derive(Default)]
pub struct Declarations(Mutex<HashMap<(Uuid, i32), Arc<PipelineDeclaration>>>);

/// Bounds memory; a full cache starts over.
const MAX_DECLARATIONS: usize = 1024;

/// The declaration of version `version` of the scope's pipeline.
pub async fn declaration(conn: &mut PgConnection, scope: Scope<'_>, version: i32) -> Result<Arc<PipelineDeclaration>, ApiError> {
    let key = (scope.generation, version);
    if let Some(d) = scope.declarations.0.lock().expect("declaration cache lock").get(&key) {
        return Ok(d.clone());
    }
    let row = pipelines::get(conn, scope.account_id, scope.pipeline, Some(version))
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("pipeline {} version {version} vanished", scope.pipeline)))?;
    let decl: Arc<PipelineDeclaration> = Arc::new(
        serde_json::from_value(row.declaration).map_err(|e| ApiError::internal(anyhow::anyhow!("stored declaration unreadable: {e}")))?,
    );
    let mut cache = scope.declarations.0.lock().expect("declaration cache lock");
    if cache.len() >= MAX_DECLARATIONS {
        cache.clear();
    }
    cache.insert(key, decl.clone());
    Ok(decl)
}

/// What starts an execution.
pub struct Start<'a> {
    pub trigger_type: &'a str,
    pub trigger_detail: Option<String>,
    pub variables: Vec<(String, String)>,
    pub source_overrides: Vec<Value>,
    pub client_request_token: Option<&'a str>,
    /// The pipeline's disabled transitions (stage, Inbound|Outbound) when the
    /// caller has read them under its lock; None: the engine reads them if
    /// it needs them.
    pub disabled_transitions: Option<HashSet<(String, String)>>,
}

impl<'a> Start<'a> {
    pub fn triggered_by(trigger_type: &'a str, detail: Option<String>) -> Self {
        Start {
            trigger_type,
            trigger_detail: detail,
            variables: vec![],
            source_overrides: vec![],
            client_request_token: None,
            disabled_transitions: None,
        }
    }
}

/// Creates an execution of the pipeline's current version and runs it as far
/// as it can go. The caller holds the pipeline lock.
pub async fn start_execution(conn: &mut PgConnection, scope: Scope<'_>, version: i32, start: Start<'_>) -> Result<Uuid, ApiError> {
    let decl = declaration(conn, scope, version).await?;
    let mut variables = Vec::new();
    for declared in &decl.variables {
        let value = start.variables.iter().find(|(n, _)| n == &declared.name).map(|(_, v)| v.clone()).or(declared.default_value.clone());
        let Some(value) = value else {
            return Err(ApiError::validation(format!("Pipeline variable '{}' has no default value and none was supplied", declared.name)));
        };
        variables.push(json!({"name": declared.name, "resolvedValue": value}));
    }
    if let Some((unknown, _)) = start.variables.iter().find(|(n, _)| !decl.variables.iter().any(|d| &d.name == n)) {
        return Err(ApiError::validation(format!("Variable '{unknown}' is not declared by pipeline '{}'", scope.pipeline)));
    }
    for o in &start.source_overrides {
        let action = o["actionName"].as_str().unwrap_or_default();
        if !decl.stages[0].actions.iter().any(|a| a.name == action) {
            return Err(ApiError::validation(format!(
                "Source revision override names '{action}', which is not a source action of the pipeline"
            )));
        }
    }
    let mut seen = Seen { disabled: start.disabled_transitions, ..Default::default() };
    // Only a disabled transition or an entry condition decides when a
    // PARALLEL execution enters its first stage: without them it is
    // inserted in it (one statement fewer per start).
    let enters = decl.execution_mode() == "PARALLEL"
        && !conditions::any(decl.stages[0].before_entry.as_ref())
        && !seen.blocked(conn, scope, &decl, 0).await?;
    // Executions, actions and jobs get time-ordered ids (v7): the indexes
    // keyed by them take new entries at their right edge, so the pages a
    // busy server writes stay few and in memory however big the tables
    // grow (benches/README.md, session 10).
    let execution_id = Uuid::now_v7();
    let new = NewExecution {
        execution_id,
        pipeline_version: version,
        execution_mode: decl.execution_mode(),
        trigger_type: start.trigger_type,
        trigger_detail: start.trigger_detail.as_deref(),
        variables: Value::Array(variables),
        source_overrides: Value::Array(start.source_overrides),
        client_request_token: start.client_request_token,
        rollback: None,
        enter: enters.then_some(decl.stages[0].name.as_str()),
    };
    // The types its jobs will need are read as it is inserted.
    let mut types: Vec<ActionTypeId> =
        decl.stages.iter().flat_map(|s| &s.actions).map(|a| a.action_type_id.clone()).filter(runs_as_job).collect();
    types.sort();
    types.dedup();
    let Some((row, live)) = store::insert_execution(conn, scope.account_id, scope.pipeline, &new, &types).await? else {
        // The token was used before: that call's execution is the answer.
        let token = start.client_request_token.unwrap_or_default();
        return store::execution_by_token(conn, scope.account_id, scope.pipeline, token)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("client request token conflict without an execution")));
    };
    for id in types {
        let t = live.iter().find(|t| t.id == id).cloned();
        seen.types.insert(id, t);
    }
    // Just inserted: no action of its first stage has started.
    seen.fresh.insert(row.execution_id, Vec::new());
    let first = Pending { id: row.execution_id, stage: enters.then(Vec::new), row: Some(row) };
    run_with(conn, scope, VecDeque::from([first]), seen).await?;
    Ok(execution_id)
}

/// Starts a ROLLBACK execution that re-runs stage `stage_index` with the
/// artifacts, source revisions and variables of `target`, an earlier
/// execution that succeeded there. The caller has checked that it may.
pub async fn start_rollback(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    target: &ExecutionRow,
    stage_index: i32,
    trigger_detail: Option<String>,
) -> Result<Uuid, ApiError> {
    let row = insert_rollback(conn, scope, target, stage_index, "ManualRollback", trigger_detail).await?;
    let execution_id = row.execution_id;
    advance_rows(conn, scope, vec![row]).await?;
    Ok(execution_id)
}

/// [`start_rollback`] before it advances.
async fn insert_rollback(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    target: &ExecutionRow,
    stage_index: i32,
    trigger_type: &str,
    trigger_detail: Option<String>,
) -> Result<ExecutionRow, ApiError> {
    let new = NewExecution {
        execution_id: Uuid::now_v7(),
        pipeline_version: target.pipeline_version,
        execution_mode: &target.execution_mode,
        trigger_type,
        trigger_detail: trigger_detail.as_deref(),
        variables: target.variables.clone(),
        source_overrides: target.source_overrides.clone(),
        client_request_token: None,
        rollback: Some((target.execution_id, stage_index)),
        enter: None,
    };
    store::insert_execution(conn, scope.account_id, scope.pipeline, &new, &[])
        .await?
        .map(|(row, _)| row)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a rollback has no client request token to conflict on")))
}

/// Advances every active execution of the pipeline as far as it can go
/// (after a change that may unblock any of them, e.g. an enabled transition).
pub async fn reconcile(conn: &mut PgConnection, scope: Scope<'_>) -> Result<(), ApiError> {
    let rows = store::active_executions(conn, scope.account_id, scope.pipeline).await?;
    advance_rows(conn, scope, rows).await
}

/// What one step did to an execution.
enum Step {
    /// Nothing can happen now.
    Idle,
    /// It moved (this is its new state, and where the actions of the stage
    /// it runs stand if known); try again.
    Moved(ExecutionRow, Option<Vec<ActionState>>),
    /// It left (or gave up waiting for) the stage with this index, which may
    /// let executions waiting there in.
    Left(i32, ExecutionRow),
}

/// What one advance has read and may read again: none of it changes under
/// the pipeline lock except by the engine's own steps.
#[derive(Default)]
struct Seen {
    decls: HashMap<i32, Arc<PipelineDeclaration>>,
    /// Custom and third-party action types (None: unknown or deleted).
    types: HashMap<ActionTypeId, Option<ActionType>>,
    disabled: Option<HashSet<(String, String)>>,
    /// Executions a step started (automatic rollbacks), for the worklist.
    started: Vec<ExecutionRow>,
    /// The current actions of executions this advance inserted, as it
    /// wrote them: they had none before, so reading them back would give
    /// the same rows.
    fresh: HashMap<Uuid, Vec<ActionRow>>,
    deferred: Option<Deferred>,
}

/// Writes decided for an execution this advance inserted, held back to go
/// with its next statement (two round trips fewer per start of a pipeline
/// whose source actions have revisions): actions that ended as they
/// started, and a PARALLEL execution's move into its next stage. Nothing
/// reads them back before: the engine knows such an execution's actions
/// (`Seen::fresh`) and row, and [`Seen::flush`]es before any other step.
struct Deferred {
    /// The execution's row as the deferred moves left it.
    execution: ExecutionRow,
    /// Stage records to write (stage, status), when it moved.
    stages: Vec<(String, &'static str)>,
    actions: Vec<NewAction>,
}

impl Seen {
    async fn declaration(&mut self, conn: &mut PgConnection, scope: Scope<'_>, version: i32) -> Result<Arc<PipelineDeclaration>, ApiError> {
        if let Some(d) = self.decls.get(&version) {
            return Ok(d.clone());
        }
        let d = declaration(conn, scope, version).await?;
        self.decls.insert(version, d.clone());
        Ok(d)
    }

    async fn disabled(&mut self, conn: &mut PgConnection, scope: Scope<'_>) -> Result<&HashSet<(String, String)>, ApiError> {
        if self.disabled.is_none() {
            self.disabled = Some(store::disabled_transitions(conn, scope.account_id, scope.pipeline).await?);
        }
        Ok(self.disabled.as_ref().expect("loaded"))
    }

    /// Whether a disabled transition keeps executions out of stage `i`.
    async fn blocked(&mut self, conn: &mut PgConnection, scope: Scope<'_>, decl: &PipelineDeclaration, i: usize) -> Result<bool, ApiError> {
        let disabled = self.disabled(conn, scope).await?;
        Ok(disabled.contains(&(decl.stages[i].name.clone(), "Inbound".into()))
            || (i > 0 && disabled.contains(&(decl.stages[i - 1].name.clone(), "Outbound".into()))))
    }

    /// Holds back actions of fresh execution `e` that ended as they started.
    fn defer_actions(&mut self, e: &ExecutionRow, actions: Vec<NewAction>) {
        self.wrote(e.execution_id, actions.iter().map(NewAction::to_row).collect());
        let d = self.deferred.get_or_insert_with(|| Deferred { execution: e.clone(), stages: Vec::new(), actions: Vec::new() });
        d.actions.extend(actions);
    }

    /// Holds back a move of a fresh execution: `row` is where it leaves it.
    fn defer_move(&mut self, row: &ExecutionRow, stages: [(String, &'static str); 2]) {
        let d = self.deferred.get_or_insert_with(|| Deferred { execution: row.clone(), stages: Vec::new(), actions: Vec::new() });
        d.execution = row.clone();
        for (stage, status) in stages {
            d.stages.retain(|s| s.0 != stage);
            d.stages.push((stage, status));
        }
    }

    /// Writes what is held back with `actions` and `jobs`, in one
    /// statement. They are of the same execution: [`run_with`] flushes
    /// before it steps another.
    async fn write(
        &mut self,
        conn: &mut PgConnection,
        scope: Scope<'_>,
        actions: Vec<NewAction>,
        jobs: &[NewJob<'_>],
    ) -> Result<(), ApiError> {
        let (mut all, moved) = match self.deferred.take() {
            Some(d) => (d.actions, Some((d.stages, d.execution))),
            None => (Vec::new(), None),
        };
        // Held-back actions were recorded as written when they were held back.
        let held = all.len();
        all.extend(actions);
        let carried = moved.as_ref().filter(|(stages, _)| !stages.is_empty()).map(|(stages, execution)| Carried { stages, execution });
        // A fresh execution's actions are all first attempts: a retry
        // makes it no longer fresh.
        let fresh = all.first().map(|a| a.execution_id).filter(|id| self.fresh.contains_key(id));
        store::insert_actions(conn, scope.account_id, scope.pipeline, &all, jobs, carried, fresh.is_some()).await?;
        if let Some(id) = fresh {
            self.wrote(id, all[held..].iter().map(NewAction::to_row).collect());
        }
        Ok(())
    }

    /// Writes what is held back, if anything.
    async fn flush(&mut self, conn: &mut PgConnection, scope: Scope<'_>) -> Result<(), ApiError> {
        if self.deferred.is_some() {
            self.write(conn, scope, Vec::new(), &[]).await?;
        }
        Ok(())
    }

    /// Records actions written for execution `id`, if it is fresh.
    fn wrote(&mut self, id: Uuid, rows: Vec<ActionRow>) {
        if let Some(fresh) = self.fresh.get_mut(&id) {
            fresh.retain(|f| !rows.iter().any(|r| r.stage_name == f.stage_name && r.action_name == f.action_name));
            fresh.extend(rows);
        }
    }

    async fn action_type(&mut self, conn: &mut PgConnection, scope: Scope<'_>, id: &ActionTypeId) -> Result<Option<ActionType>, ApiError> {
        if let Some(t) = self.types.get(id) {
            return Ok(t.clone());
        }
        let t = type_store::get(conn, scope.account_id, id).await?.filter(|r| !r.deleted).map(|r| r.definition.0);
        self.types.insert(id.clone(), t.clone());
        Ok(t)
    }
}

/// An execution on the worklist, with what the engine already knows of it
/// (it wrote or read it last), so steps do not read back what they wrote.
struct Pending {
    id: Uuid,
    row: Option<ExecutionRow>,
    /// The current actions of the stage it runs.
    stage: Option<Vec<ActionState>>,
}

impl Pending {
    fn id(id: Uuid) -> Pending {
        Pending { id, row: None, stage: None }
    }

    fn row(row: ExecutionRow) -> Pending {
        Pending { id: row.execution_id, row: Some(row), stage: None }
    }
}

/// Advances the given executions, and every execution their progress
/// unblocks, until none can move. Work is proportional to what changed, not
/// to the number of executions in flight.
pub async fn advance(conn: &mut PgConnection, scope: Scope<'_>, ids: Vec<Uuid>) -> Result<(), ApiError> {
    run(conn, scope, ids.into_iter().map(Pending::id).collect()).await
}

/// [`advance`] for executions the caller has just read or written.
async fn advance_rows(conn: &mut PgConnection, scope: Scope<'_>, rows: Vec<ExecutionRow>) -> Result<(), ApiError> {
    run(conn, scope, rows.into_iter().map(Pending::row).collect()).await
}

async fn run(conn: &mut PgConnection, scope: Scope<'_>, work: VecDeque<Pending>) -> Result<(), ApiError> {
    run_with(conn, scope, work, Seen::default()).await
}

/// [`run`] with what the caller has already read.
async fn run_with(conn: &mut PgConnection, scope: Scope<'_>, mut work: VecDeque<Pending>, mut seen: Seen) -> Result<(), ApiError> {
    // Each step changes one execution; the bound only guards against a bug
    // that would loop forever.
    let mut budget = 100_000;
    while let Some(Pending { id, row: mut known, stage: mut known_stage }) = work.pop_front() {
        // What is held back is another execution's.
        seen.flush(conn, scope).await?;
        loop {
            budget -= 1;
            if budget == 0 {
                return Err(ApiError::internal(anyhow::anyhow!("execution engine did not settle for pipeline {}", scope.pipeline)));
            }
            let e = match known.take() {
                Some(e) => e,
                None => match store::get_execution(conn, scope.account_id, scope.pipeline, id).await? {
                    Some(e) => e,
                    None => break,
                },
            };
            if !matches!(e.status.as_str(), "InProgress" | "Stopping") {
                break;
            }
            let decl = seen.declaration(conn, scope, e.pipeline_version).await?;
            let step = match e.stage_phase.as_str() {
                "Waiting" => {
                    seen.flush(conn, scope).await?;
                    try_enter(conn, scope, &e, &decl, &mut seen).await?
                }
                "Running" => step_stage(conn, scope, &e, &decl, &mut seen, known_stage.take()).await?,
                _ => Step::Idle,
            };
            for row in seen.started.drain(..) {
                work.push_back(Pending { id: row.execution_id, row: Some(row), stage: None });
            }
            match step {
                Step::Idle => break,
                Step::Moved(next, stage) => {
                    known = Some(next);
                    known_stage = stage;
                }
                Step::Left(index, next) => {
                    // Only SUPERSEDED and QUEUED executions wait for a stage
                    // to empty; PARALLEL ones wait for transitions alone.
                    if next.execution_mode != "PARALLEL" {
                        for other in store::waiting_at(conn, scope.account_id, scope.pipeline, index).await? {
                            if other != id && !work.iter().any(|w| w.id == other) {
                                work.push_back(Pending::id(other));
                            }
                        }
                    }
                    known = Some(next);
                }
            }
        }
    }
    seen.flush(conn, scope).await
}

async fn try_enter(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    e: &ExecutionRow,
    decl: &PipelineDeclaration,
    seen: &mut Seen,
) -> Result<Step, ApiError> {
    let (account, pipeline) = (scope.account_id, scope.pipeline);
    if e.status == "Stopping" {
        // Stopped while waiting: it never enters.
        let summary = e.stop_reason.clone().unwrap_or_else(|| "Stopped while waiting to enter a stage".into());
        let row = store::set_execution_status(conn, account, pipeline, e.execution_id, "Stopped", Some(&summary)).await?;
        return Ok(Step::Left(e.stage_index, row));
    }
    let i = e.stage_index as usize;
    let Some(stage) = decl.stages.get(i) else {
        let row = store::set_execution_status(conn, account, pipeline, e.execution_id, "Succeeded", None).await?;
        return Ok(Step::Moved(row, None));
    };
    if e.execution_mode != "PARALLEL" {
        let waiting = store::waiting_at(conn, account, pipeline, e.stage_index).await?;
        if e.execution_mode == "SUPERSEDED" {
            // Only the newest of the executions waiting at a stage keeps waiting.
            let summary = format!("Superseded by a newer execution waiting to enter stage '{}'", stage.name);
            if waiting.last().is_some_and(|newest| *newest != e.execution_id) {
                let row = store::set_execution_status(conn, account, pipeline, e.execution_id, "Superseded", Some(&summary)).await?;
                return Ok(Step::Left(e.stage_index, row));
            }
            for older in waiting.iter().filter(|w| **w != e.execution_id) {
                store::set_execution_status(conn, account, pipeline, *older, "Superseded", Some(&summary)).await?;
            }
        }
        // QUEUED keeps arrival order: an older execution waiting here goes first.
        if e.execution_mode == "QUEUED" && waiting.first().is_some_and(|oldest| *oldest != e.execution_id) {
            return Ok(Step::Idle);
        }
    }
    if seen.blocked(conn, scope, decl, i).await? {
        return Ok(Step::Idle);
    }
    if e.execution_mode != "PARALLEL" && store::stage_occupied(conn, account, pipeline, e.stage_index, e.execution_id).await? {
        return Ok(Step::Idle);
    }
    match check(conn, scope, e, decl, stage, "BEFORE_ENTRY").await? {
        Decision::Unmet(unmet) => refuse_entry(conn, scope, e, decl, unmet).await,
        Decision::Pending(due) => {
            // It holds the stage while its entry condition is in progress,
            // as it would running it; its actions start when the condition is met.
            let check = Move {
                stage: Some((&stage.name, "InProgress")),
                position: Some((e.stage_index, "Running")),
                check: Some(("BEFORE_ENTRY", due)),
                ..Default::default()
            };
            store::move_execution(conn, account, pipeline, e.execution_id, &check).await?;
            Ok(Step::Idle)
        }
        Decision::Met => {
            let enter = Move { stage: Some((&stage.name, "InProgress")), position: Some((e.stage_index, "Running")), ..Default::default() };
            // Just entered: no action of the stage has started.
            Ok(Step::Moved(store::move_execution(conn, account, pipeline, e.execution_id, &enter).await?, Some(Vec::new())))
        }
    }
}

/// An unmet entry condition: the stage is skipped (SKIP) or fails with the
/// execution (FAIL).
async fn refuse_entry(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    e: &ExecutionRow,
    decl: &PipelineDeclaration,
    unmet: conditions::Unmet,
) -> Result<Step, ApiError> {
    let i = e.stage_index as usize;
    let stage = &decl.stages[i];
    let summary = format!("Stage '{}' entry condition not met: {}", stage.name, unmet.why);
    let leave = if unmet.result == "SKIP" && i + 1 < decl.stages.len() {
        Move { stage: Some((&stage.name, "Skipped")), position: Some((e.stage_index + 1, "Waiting")), ..Default::default() }
    } else if unmet.result == "SKIP" {
        Move { stage: Some((&stage.name, "Skipped")), status: Some("Succeeded"), ..Default::default() }
    } else {
        Move { stage: Some((&stage.name, "Failed")), status: Some("Failed"), summary: Some(&summary), ..Default::default() }
    };
    Ok(Step::Left(e.stage_index, store::move_execution(conn, scope.account_id, scope.pipeline, e.execution_id, &leave).await?))
}

/// `known`: the stage's current actions if the caller has them.
async fn step_stage(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    e: &ExecutionRow,
    decl: &PipelineDeclaration,
    seen: &mut Seen,
    known: Option<Vec<ActionState>>,
) -> Result<Step, ApiError> {
    let (account, pipeline) = (scope.account_id, scope.pipeline);
    let i = e.stage_index as usize;
    let stage = &decl.stages[i];
    let rows = match known.filter(|k| k.iter().all(|a| a.stage_name == stage.name)) {
        Some(rows) => rows,
        None => {
            seen.flush(conn, scope).await?;
            store::stage_actions(conn, account, pipeline, e.execution_id, &stage.name).await?
        }
    };
    let in_progress = rows.iter().any(|r| r.status == "InProgress");
    // Writes stay held back only while the stage runs on as planned.
    let failed = rows.iter().any(|r| r.status == "Failed" || r.status == "Abandoned");
    if e.status != "InProgress" || e.checking.is_some() || failed {
        seen.flush(conn, scope).await?;
    }
    if e.status == "Stopping" {
        if in_progress {
            return Ok(Step::Idle);
        }
        if e.checking.is_some() {
            rule_executions::close_open(conn, account, pipeline, e.execution_id, None, "Abandoned", Some("The execution was stopped"))
                .await?;
        }
        let summary = e.stop_reason.clone().unwrap_or_else(|| "Stopped".into());
        let stop = Move { stage: Some((&stage.name, "Stopped")), status: Some("Stopped"), summary: Some(&summary), ..Default::default() };
        return Ok(Step::Left(e.stage_index, store::move_execution(conn, account, pipeline, e.execution_id, &stop).await?));
    }
    if e.checking.as_deref() == Some("BEFORE_ENTRY") {
        return match check(conn, scope, e, decl, stage, "BEFORE_ENTRY").await? {
            Decision::Unmet(unmet) => refuse_entry(conn, scope, e, decl, unmet).await,
            Decision::Pending(due) => {
                store::set_check(conn, account, pipeline, e.execution_id, Some(("BEFORE_ENTRY", due))).await?;
                Ok(Step::Idle)
            }
            Decision::Met => Ok(Step::Moved(store::set_check(conn, account, pipeline, e.execution_id, None).await?, Some(Vec::new()))),
        };
    }
    if let Some(failed) = rows.iter().find(|r| r.status == "Failed" || r.status == "Abandoned") {
        // A failing stage still lets its in-flight parallel actions finish.
        if in_progress {
            return Ok(Step::Idle);
        }
        let result = on_failure(conn, scope, e, decl, stage).await?;
        if let Some(mode) = result.as_deref().and_then(|r| retry_mode(stage, r))
            && store::stage_record(conn, account, pipeline, e.execution_id, &stage.name).await?.is_none_or(|r| r.auto_retries == 0)
        {
            // Once per execution: the failed actions (or all) start again.
            let failed: Vec<String> = rows.iter().filter(|r| r.status != "Succeeded").map(|r| r.action_name.clone()).collect();
            let only = (mode != "ALL_ACTIONS").then_some(failed.as_slice());
            store::retire_actions(conn, account, pipeline, e.execution_id, &stage.name, only).await?;
            seen.fresh.remove(&e.execution_id);
            store::record_retry(conn, account, pipeline, e.execution_id, &stage.name, true).await?;
            return Ok(Step::Moved(e.clone(), None));
        }
        let why = failed.error_message.clone().unwrap_or_else(|| format!("Action '{}' failed", failed.action_name));
        let summary = format!("Stage '{}' failed: action '{}': {why}", stage.name, failed.action_name);
        return fail_stage(conn, scope, e, stage, &summary, result.as_deref() == Some("ROLLBACK"), seen).await;
    }
    if in_progress {
        return Ok(Step::Idle);
    }
    let started: HashSet<String> = rows.iter().map(|r| r.action_name.clone()).collect();
    let next_order = stage.actions.iter().filter(|a| !started.contains(&a.name)).map(ActionDeclaration::run_order).min();
    if let Some(order) = next_order {
        // Actions it starts see the artifacts and variables of earlier stages
        // (there are none before anything ran in the first stage).
        let first = i == 0 && e.rollback_target.is_none() && rows.is_empty();
        let mut everything = match seen.fresh.get(&e.execution_id) {
            Some(rows) => rows.clone(),
            None if first => Vec::new(),
            None => store::execution_actions(conn, account, pipeline, e.execution_id).await?,
        };
        if let Some(target) = e.rollback_target {
            // Earlier stages' artifacts and variables come from the target.
            let earlier: HashSet<&str> = decl.stages[..i].iter().map(|s| s.name.as_str()).collect();
            let theirs = store::execution_actions(conn, account, pipeline, target).await?;
            everything.extend(theirs.into_iter().filter(|r| earlier.contains(r.stage_name.as_str())));
        }
        let mut now = rows;
        let mut starts = Starts::default();
        for action in stage.actions.iter().filter(|a| a.run_order() == order && !started.contains(&a.name)) {
            now.push(start_action(conn, scope, e, decl, stage, action, seen, &everything, &mut starts).await?);
        }
        if seen.fresh.contains_key(&e.execution_id) && starts.ended_well() {
            seen.defer_actions(e, starts.actions);
        } else {
            seen.write(conn, scope, starts.actions, &starts.jobs).await?;
        }
        // An action that now waits for a worker or an approver keeps the
        // stage where it is; actions that ended at once let it go on.
        let waits = now.iter().any(|a| a.status == "InProgress");
        return Ok(if waits { Step::Idle } else { Step::Moved(e.clone(), Some(now)) });
    }
    if conditions::any(stage.on_success.as_ref()) {
        seen.flush(conn, scope).await?;
    }
    match check(conn, scope, e, decl, stage, "ON_SUCCESS").await? {
        Decision::Unmet(unmet) => {
            let summary = format!("Stage '{}' success condition not met: {}", stage.name, unmet.why);
            return fail_stage(conn, scope, e, stage, &summary, unmet.result == "ROLLBACK", seen).await;
        }
        Decision::Pending(due) => {
            // Every action succeeded; the stage ends when the condition is met.
            store::set_check(conn, account, pipeline, e.execution_id, Some(("ON_SUCCESS", due))).await?;
            return Ok(Step::Idle);
        }
        Decision::Met => {}
    }
    // A rollback re-runs one stage only.
    let done = if i + 1 == decl.stages.len() || e.rollback_target.is_some() {
        Move { stage: Some((&stage.name, "Succeeded")), status: Some("Succeeded"), ..Default::default() }
    } else if e.execution_mode == "PARALLEL"
        && e.status == "InProgress"
        && !conditions::any(decl.stages[i + 1].before_entry.as_ref())
        && !seen.blocked(conn, scope, decl, i + 1).await?
    {
        // Nothing else decides when a PARALLEL execution enters a stage:
        // leave this one and enter the next in one statement.
        let next = &decl.stages[i + 1];
        if seen.fresh.contains_key(&e.execution_id) {
            let entered =
                ExecutionRow { stage_index: e.stage_index + 1, stage_phase: "Running".into(), updated_at: Utc::now(), ..e.clone() };
            seen.defer_move(&entered, [(stage.name.clone(), "Succeeded"), (next.name.clone(), "InProgress")]);
            return Ok(Step::Moved(entered, Some(Vec::new())));
        }
        let enter = Move {
            stage: Some((&stage.name, "Succeeded")),
            enter: Some(&next.name),
            position: Some((e.stage_index + 1, "Running")),
            ..Default::default()
        };
        return Ok(Step::Moved(store::move_execution(conn, account, pipeline, e.execution_id, &enter).await?, Some(Vec::new())));
    } else {
        Move { stage: Some((&stage.name, "Succeeded")), position: Some((e.stage_index + 1, "Waiting")), ..Default::default() }
    };
    seen.flush(conn, scope).await?;
    Ok(Step::Left(e.stage_index, store::move_execution(conn, account, pipeline, e.execution_id, &done).await?))
}

/// What a failure of `stage` comes to by its onFailure hook (RETRY,
/// ROLLBACK, or None: it just fails). Without conditions the hook's result
/// applies; with them, it applies when they are not met (their rules are
/// evaluated and recorded, as for the other hooks).
async fn on_failure(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    e: &ExecutionRow,
    decl: &PipelineDeclaration,
    stage: &StageDeclaration,
) -> Result<Option<String>, ApiError> {
    let Some(hook) = stage.on_failure.as_ref() else { return Ok(None) };
    if !conditions::any(Some(hook)) {
        return Ok(hook["result"].as_str().map(str::to_owned));
    }
    Ok(match check(conn, scope, e, decl, stage, "ON_FAILURE").await? {
        Decision::Unmet(unmet) => Some(unmet.result),
        Decision::Met | Decision::Pending(_) => None,
    })
}

/// The retry mode (FAILED_ACTIONS or ALL_ACTIONS) when a failure's result
/// is RETRY.
fn retry_mode<'a>(stage: &'a StageDeclaration, result: &str) -> Option<&'a str> {
    (result == "RETRY").then(|| {
        let configured = stage.on_failure.as_ref().and_then(|f| f["retryConfiguration"]["retryMode"].as_str());
        configured.unwrap_or("FAILED_ACTIONS")
    })
}

/// Fails the stage `e` runs, and with it the execution; `roll_back`: then
/// starts a rollback of the stage to the newest execution that succeeded
/// in it under the same version, if any (not for a rollback itself, nor
/// for the first stage).
async fn fail_stage(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    e: &ExecutionRow,
    stage: &StageDeclaration,
    summary: &str,
    roll_back: bool,
    seen: &mut Seen,
) -> Result<Step, ApiError> {
    let (account, pipeline) = (scope.account_id, scope.pipeline);
    let fail = Move { stage: Some((&stage.name, "Failed")), status: Some("Failed"), summary: Some(summary), ..Default::default() };
    let row = store::move_execution(conn, account, pipeline, e.execution_id, &fail).await?;
    if roll_back && e.stage_index > 0 && e.execution_type == "STANDARD" {
        let target = store::latest_success_in_stage(conn, account, pipeline, &stage.name, e.pipeline_version, e.execution_id).await?;
        if let Some(target) = target {
            seen.started.push(insert_rollback(conn, scope, &target, e.stage_index, "AutomatedRollback", None).await?);
        }
    }
    Ok(Step::Left(e.stage_index, row))
}

/// Whether actions of this type run as jobs that workers poll for.
fn runs_as_job(id: &ActionTypeId) -> bool {
    (id.owner == "Custom" || id.owner == "ThirdParty") && action_types::find_builtin(id).is_none()
}

/// Where an artifact of this execution lives in the artifact store.
fn artifact_location(
    decl: &PipelineDeclaration,
    region: &str,
    action_region: Option<&str>,
    pipeline: &str,
    execution_id: Uuid,
    artifact: &str,
) -> (String, String) {
    let region = action_region.unwrap_or(region);
    let bucket = decl
        .artifact_store
        .as_ref()
        .map(|s| s.location.clone())
        .or_else(|| decl.artifact_stores.as_ref().and_then(|m| m.get(region)).map(|s| s.location.clone()))
        .unwrap_or_default();
    (bucket, format!("{pipeline}/{artifact}/{execution_id}"))
}

fn variable_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"#\{([A-Za-z0-9@_-]+)\.([A-Za-z0-9@_-]+)\}").expect("variable pattern"))
}

/// A configuration value with its variables resolved, or why it cannot
/// be. A secret value is stored sealed: it is opened to resolve it, and
/// what is resolved is sealed again.
fn resolve_configuration(secrets: &SecretBox, aad: &[u8], value: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let unknown = |missing: String| format!("Unable to resolve variable #{{{missing}}}");
    if !value.starts_with(SEALED_PREFIX) {
        return resolve(value, vars).map_err(unknown);
    }
    let plain = secrets.open_value(value, aad).map_err(|e| format!("A secret value cannot be read ({e})"))?;
    let resolved = resolve(&plain, vars).map_err(unknown)?;
    Ok(if resolved == plain { value.to_owned() } else { secrets.seal_value(&resolved, aad) })
}

/// Replaces `#{namespace.name}` references; Err names the first unresolvable one.
fn resolve(value: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut missing = None;
    let out = variable_pattern().replace_all(value, |c: &regex::Captures<'_>| {
        let key = format!("{}.{}", &c[1], &c[2]);
        match vars.get(&key) {
            Some(v) => v.clone(),
            None => {
                missing.get_or_insert(key);
                c[0].to_owned()
            }
        }
    });
    match missing {
        Some(m) => Err(m),
        None => Ok(out.into_owned()),
    }
}

/// What starting a runOrder group writes, in one statement.
#[derive(Default)]
struct Starts<'a> {
    actions: Vec<NewAction>,
    jobs: Vec<NewJob<'a>>,
}

impl<'a> Starts<'a> {
    /// Adds an action (and where it stands now).
    fn action(&mut self, new: NewAction) -> ActionState {
        let state = ActionState {
            stage_name: new.stage_name.clone(),
            action_name: new.action_name.clone(),
            status: new.status.to_owned(),
            error_message: new.error.as_ref().map(|e| e.1.clone()),
        };
        self.actions.push(new);
        state
    }

    /// Adds an action that fails as it starts.
    fn failed(&mut self, mut new: NewAction, code: &'static str, message: String) -> ActionState {
        new.status = "Failed";
        new.error = Some((code, message));
        self.action(new)
    }

    /// Whether every action it starts has already succeeded (a source
    /// action with a known revision): nothing waits for a worker.
    fn ended_well(&self) -> bool {
        self.jobs.is_empty() && self.actions.iter().all(|a| a.status == "Succeeded")
    }
}

/// Variables an action (or a stage condition) sees: the execution id,
/// pipeline-level variables, and the output variables of the namespaced
/// actions of `everything` that succeeded.
fn visible_variables(e: &ExecutionRow, decl: &PipelineDeclaration, everything: &[ActionRow]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("codepipeline.PipelineExecutionId".into(), e.execution_id.to_string());
    for v in e.variables.as_array().into_iter().flatten() {
        if let (Some(n), Some(val)) = (v["name"].as_str(), v["resolvedValue"].as_str()) {
            vars.insert(format!("variables.{n}"), val.to_owned());
        }
    }
    let namespaces: HashMap<(&str, &str), &str> = decl
        .stages
        .iter()
        .flat_map(|s| s.actions.iter().filter_map(move |a| a.namespace.as_deref().map(|ns| ((s.name.as_str(), a.name.as_str()), ns))))
        .collect();
    for row in everything.iter().filter(|r| r.status == "Succeeded") {
        if let Some(ns) = namespaces.get(&(row.stage_name.as_str(), row.action_name.as_str())) {
            for (k, v) in row.output["outputVariables"].as_object().into_iter().flatten() {
                vars.insert(format!("{ns}.{k}"), v.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    vars
}

/// Evaluates a hook of the stage `e` is entering or leaving (`conditions`)
/// and records its rules' executions. When the execution is already
/// waiting for this hook (`e.checking`), only the rules still in progress
/// are recorded again (in place), and a wait whose rules are no longer in
/// progress was overridden: the hook is met. Reads the execution's actions
/// only when the hook has conditions.
async fn check(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    e: &ExecutionRow,
    decl: &PipelineDeclaration,
    stage: &StageDeclaration,
    condition_type: &str,
) -> Result<Decision, ApiError> {
    let hook = match condition_type {
        "BEFORE_ENTRY" => stage.before_entry.as_ref(),
        "ON_SUCCESS" => stage.on_success.as_ref(),
        _ => stage.on_failure.as_ref(),
    };
    if !conditions::any(hook) {
        return Ok(Decision::Met);
    }
    let (account, pipeline) = (scope.account_id, scope.pipeline);
    let again = e.checking.as_deref() == Some(condition_type);
    let open = match again {
        true => rule_executions::in_progress(conn, account, pipeline, e.execution_id, &stage.name, condition_type).await?,
        false => Vec::new(),
    };
    if again && open.is_empty() {
        return Ok(Decision::Met);
    }
    let started: HashMap<(usize, String), chrono::DateTime<Utc>> =
        open.iter().map(|r| ((r.condition_index as usize, r.rule_name.clone()), r.created_at)).collect();
    let everything = store::execution_actions(conn, account, pipeline, e.execution_id).await?;
    let vars = visible_variables(e, decl, &everything);
    let (outcomes, decision) = conditions::check(hook, &vars, Utc::now(), again.then_some(&started), condition_type != "ON_FAILURE");
    if again {
        let settled: Vec<(Uuid, &str, Option<&str>)> = outcomes
            .iter()
            .filter(|o| !matches!(o.verdict, conditions::Verdict::InProgress(_)))
            .filter_map(|o| {
                let row = open.iter().find(|r| r.condition_index as usize == o.condition && r.rule_name == o.rule_name)?;
                Some((row.rule_execution_id, o.verdict.status(), o.verdict.summary()))
            })
            .collect();
        rule_executions::settle(conn, account, &settled).await?;
    } else {
        let rules: Vec<NewRuleExecution> = outcomes
            .iter()
            .map(|o| NewRuleExecution {
                condition_index: o.condition as i32,
                rule_name: &o.rule_name,
                status: o.verdict.status(),
                summary: o.verdict.summary(),
                input: &o.input,
            })
            .collect();
        rule_executions::insert(conn, account, pipeline, e, &stage.name, condition_type, &rules).await?;
    }
    Ok(decision)
}

/// Starts one action (written by [`Starts::write`]); answers where it
/// stands (InProgress when it waits for a worker or an approver).
#[allow(clippy::too_many_arguments)]
async fn start_action<'a>(
    conn: &mut PgConnection,
    scope: Scope<'a>,
    e: &ExecutionRow,
    decl: &PipelineDeclaration,
    stage: &'a StageDeclaration,
    action: &'a ActionDeclaration,
    seen: &mut Seen,
    everything: &[ActionRow],
    starts: &mut Starts<'a>,
) -> Result<ActionState, ApiError> {
    let action_execution_id = Uuid::now_v7();
    let id = &action.action_type_id;

    let vars = visible_variables(e, decl, everything);
    let aad = crypto::configuration_aad(scope.account_id);
    let mut resolved = serde_json::Map::new();
    let mut unresolved = None;
    for (k, v) in &action.configuration {
        match resolve_configuration(scope.secrets, &aad, v, &vars) {
            Ok(r) => {
                resolved.insert(k.clone(), Value::String(r));
            }
            Err(why) => {
                unresolved.get_or_insert(why);
                resolved.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }

    // Artifacts: outputs get fresh locations; inputs point at the outputs of
    // the actions that produced them in this execution.
    // The action execution (of this execution, or of a rollback's target)
    // that produced an artifact.
    let producer = |artifact: &str| -> Option<&ActionRow> {
        decl.stages.iter().flat_map(|s| s.actions.iter().map(move |a| (s, a))).find_map(|(s, a)| {
            a.output_artifacts
                .iter()
                .any(|o| o.name == artifact)
                .then(|| everything.iter().find(|r| r.stage_name == s.name && r.action_name == a.name))?
        })
    };
    let location = |name: &str| {
        let made_by = producer(name).map_or(e.execution_id, |r| r.execution_id);
        artifact_location(decl, scope.region, action.region.as_deref(), scope.pipeline, made_by, name)
    };
    let produced_revision = |artifact: &str| -> Option<String> {
        producer(artifact).and_then(|r| r.revision.as_ref()).and_then(|rev| rev["revisionId"].as_str().map(str::to_owned))
    };
    let output_location =
        |name: &str| artifact_location(decl, scope.region, action.region.as_deref(), scope.pipeline, e.execution_id, name);
    let artifact_detail = |name: &str, out: bool| {
        let (bucket, key) = if out { output_location(name) } else { location(name) };
        json!({"name": name, "s3location": {"bucket": bucket, "key": key}})
    };
    let job_artifact = |name: &str, revision: Option<String>, out: bool| {
        let (bucket, key) = if out { output_location(name) } else { location(name) };
        let mut a = json!({"name": name, "location": {"type": "S3", "s3Location": {"bucketName": bucket, "objectKey": key}}});
        if let Some(r) = revision {
            a["revision"] = Value::String(r);
        }
        a
    };
    let mut input = json!({
        "actionTypeId": id,
        "configuration": action.configuration,
        "resolvedConfiguration": resolved,
        "region": action.region.as_deref().unwrap_or(scope.region),
        "inputArtifacts": action.input_artifacts.iter().map(|a| artifact_detail(&a.name, false)).collect::<Vec<_>>(),
    });
    if let Some(ns) = &action.namespace {
        input["namespace"] = Value::String(ns.clone());
    }
    let output = json!({"outputArtifacts": action.output_artifacts.iter().map(|a| artifact_detail(&a.name, true)).collect::<Vec<_>>()});
    let mut new = NewAction {
        action_execution_id,
        execution_id: e.execution_id,
        pipeline_version: e.pipeline_version,
        stage_name: stage.name.clone(),
        action_name: action.name.clone(),
        run_order: action.run_order(),
        status: "InProgress",
        input,
        output,
        approval_token: None,
        timeout_at: None,
        revision: None,
        error: None,
    };

    // A source action with a known revision succeeds at once with it.
    if id.category == "Source" {
        let override_rev = e.source_overrides.as_array().into_iter().flatten().find(|o| o["actionName"] == action.name.as_str());
        let known = match override_rev {
            Some(o) => Some(json!({"revisionId": o["revisionValue"], "revisionType": o["revisionType"]})),
            None => store::revisions(conn, scope.account_id, scope.pipeline)
                .await?
                .into_iter()
                .find(|r| r.stage_name == stage.name && r.action_name == action.name)
                .map(|r| json!({"revisionId": r.revision_id, "revisionChangeId": r.revision_change_id, "created": r.created.map(crate::api::epoch_seconds)})),
        };
        if let Some(revision) = known {
            new.status = "Succeeded";
            let revision_id = revision["revisionId"].as_str().unwrap_or_default().to_owned();
            new.output["executionResult"] =
                json!({"externalExecutionId": revision_id, "externalExecutionSummary": format!("Revision {revision_id}")});
            new.revision = Some(revision);
            return Ok(starts.action(new));
        }
    }

    if let Some(why) = unresolved {
        let message = format!("{why} in the configuration of action '{}'", action.name);
        return Ok(starts.failed(new, "ConfigurationError", message));
    }
    if action_types::is_manual_approval(id) {
        new.approval_token = Some(Uuid::new_v4());
        let minutes = action.timeout_in_minutes.map(i64::from).unwrap_or(DEFAULT_APPROVAL_MINUTES);
        new.timeout_at = Some(Utc::now() + Duration::minutes(minutes));
        return Ok(starts.action(new));
    }
    if !runs_as_job(id) {
        let message = if id.category == "Source" {
            format!("No revision is known for source action '{}': record one with PutActionRevision or a webhook", action.name)
        } else {
            format!("{id} is run by AWS and this server cannot run it; use a custom action type and a job worker instead")
        };
        return Ok(starts.failed(new, "JobFailed", message));
    }
    let Some(t) = seen.action_type(conn, scope, id).await? else {
        return Ok(starts.failed(new, "ConfigurationError", format!("{id} has been deleted; the action cannot run")));
    };
    let query_value = t.queryable_property().and_then(|p| resolved.get(&p.name)).and_then(Value::as_str).map(str::to_owned);
    let mut data = json!({
        "actionTypeId": id,
        "actionConfiguration": {"configuration": resolved},
        "pipelineContext": {
            "pipelineName": scope.pipeline,
            "stage": {"name": stage.name},
            "action": {"name": action.name, "actionExecutionId": action_execution_id},
            "pipelineArn": scope.pipeline_arn(),
            "pipelineExecutionId": e.execution_id,
        },
        "inputArtifacts": action.input_artifacts.iter().map(|a| job_artifact(&a.name, produced_revision(&a.name), false)).collect::<Vec<_>>(),
        "outputArtifacts": action.output_artifacts.iter().map(|a| job_artifact(&a.name, None, true)).collect::<Vec<_>>(),
    });
    let store_for_region = decl.artifact_store.as_ref().or_else(|| decl.artifact_stores.as_ref().and_then(|m| m.get(scope.region)));
    if let Some(key) = store_for_region.and_then(|s| s.encryption_key.clone()) {
        data["encryptionKey"] = key;
    }
    starts.jobs.push(NewJob {
        job_id: Uuid::now_v7(),
        account_id: scope.account_id,
        pipeline_name: scope.pipeline,
        execution_id: e.execution_id,
        action_execution_id,
        type_id: id,
        query_value,
        continuation_token: None,
        data,
        alone: stage.actions.iter().filter(|a| a.run_order() == action.run_order()).count() == 1,
    });
    Ok(starts.action(new))
}

/// Finishes (or updates) an in-progress action and lets the pipeline move
/// on. False when the action was no longer in progress.
pub async fn complete_action(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    action_execution_id: Uuid,
    update: &ActionUpdate<'_>,
) -> Result<bool, ApiError> {
    let Some(done) = store::update_action_of(conn, scope.account_id, action_execution_id, update).await? else { return Ok(false) };
    action_ended(conn, scope, done.execution, done.stage_actions.0).await?;
    Ok(true)
}

/// Lets the pipeline move on after an action ended under the pipeline's
/// lock, from its execution and where the current actions of its stage
/// stood after the write (usually others still run, and nothing follows).
///
/// A lock-free result of another action of the stage (`jobs::end_unlocked`)
/// may have read this action in progress before the write, left the stage
/// to it, and still be committing when the stage was read. So when others
/// seemed in progress, the stage is read again once no one is writing
/// them: whoever ends last then always moves the stage on, rather than
/// leaving it to the sweeper. Waiting here is safe: such a result holds
/// only its own rows and waits for nothing.
pub async fn action_ended(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    execution: ExecutionRow,
    stage: Vec<ActionState>,
) -> Result<(), ApiError> {
    let stage = match stage.iter().find(|a| a.status == "InProgress") {
        Some(other) => {
            store::await_writers(conn, scope.account_id, scope.pipeline, execution.execution_id, &other.stage_name).await?;
            None
        }
        None => Some(stage),
    };
    run(conn, scope, VecDeque::from([Pending { id: execution.execution_id, row: Some(execution), stage }])).await
}

/// Advances one execution in a transaction of its own, under the locks a
/// worker's result takes: after a result that took none
/// (`jobs::end_unlocked`) found its stage with nothing left in progress,
/// and for the sweeper's stranded stages. Harmless when someone else has
/// already moved it: the engine then finds nothing to do.
pub async fn settle(app: &App, account_id: &str, pipeline: &str, execution_id: Uuid, mode: &str) -> Result<(), ApiError> {
    let mut tx = app.db.begin().await?;
    let (locked, disabled, known) = if mode == "PARALLEL" {
        let Some((locked, disabled, Some(row))) = store::lock_pipeline_and_execution(&mut tx, account_id, pipeline, execution_id).await?
        else {
            return Ok(());
        };
        (locked, disabled, Pending::row(row))
    } else {
        let Some((locked, disabled)) = store::lock_pipeline_shared(&mut tx, account_id, pipeline).await? else { return Ok(()) };
        store::lock_pipeline_engine(&mut tx, account_id, pipeline).await?;
        (locked, disabled, Pending::id(execution_id))
    };
    let seen = Seen { disabled: Some(disabled), ..Default::default() };
    run_with(&mut tx, app_scope(app, account_id, pipeline, locked.generation), VecDeque::from([known]), seen).await?;
    tx.commit().await?;
    Ok(())
}

/// The engine's scope for a pipeline whose lock the caller holds.
pub(crate) fn app_scope<'a>(app: &'a App, account_id: &'a str, pipeline: &'a str, generation: Uuid) -> Scope<'a> {
    Scope { account_id, region: &app.config.region, pipeline, generation, declarations: &app.declarations, secrets: &app.secrets }
}

/// UpdatePipeline ends every running execution as `Cancelled`: they were
/// started from a definition that no longer exists.
pub async fn cancel_active(conn: &mut PgConnection, scope: Scope<'_>) -> Result<(), ApiError> {
    for e in store::active_executions(conn, scope.account_id, scope.pipeline).await? {
        let abandoned = store::abandon_actions(conn, scope.account_id, scope.pipeline, e.execution_id).await?;
        jobs::fail_jobs_of(conn, scope.account_id, &abandoned).await?;
        if e.checking.is_some() {
            let why = Some("The pipeline's definition was updated");
            rule_executions::close_open(conn, scope.account_id, scope.pipeline, e.execution_id, None, "Abandoned", why).await?;
        }
        let decl = declaration(conn, scope, e.pipeline_version).await?;
        let running = decl.stages.get(e.stage_index as usize).filter(|_| e.stage_phase == "Running");
        let cancel = Move {
            stage: running.map(|stage| (stage.name.as_str(), "Cancelled")),
            status: Some("Cancelled"),
            summary: Some("The pipeline's definition was updated before the execution could complete"),
            ..Default::default()
        };
        store::move_execution(conn, scope.account_id, scope.pipeline, e.execution_id, &cancel).await?;
    }
    Ok(())
}

/// Queued jobs of a deleted type can never be polled again: fails their
/// actions rather than leave their executions waiting forever, each under
/// its pipeline's lock (taken in name order). Jobs a worker already holds
/// may still finish.
pub async fn fail_queued_of_deleted(conn: &mut PgConnection, app: &App, account_id: &str, id: &ActionTypeId) -> Result<(), ApiError> {
    for (pipeline, action_execution_id) in jobs::queued_of_type(conn, account_id, id).await? {
        fail_unpollable(conn, app, account_id, &pipeline, action_execution_id, id).await?;
    }
    Ok(())
}

/// Fails an action whose job is queued for the deleted type `id`, under
/// the pipeline's lock; nothing when the pipeline or the action has gone on.
pub async fn fail_unpollable(
    conn: &mut PgConnection,
    app: &App,
    account_id: &str,
    pipeline: &str,
    action_execution_id: Uuid,
    id: &ActionTypeId,
) -> Result<(), ApiError> {
    let Some(locked) = store::lock_pipeline(conn, account_id, pipeline).await? else { return Ok(()) };
    let message = format!("{id} was deleted before a job worker picked up this action");
    let update = ActionUpdate {
        status: Some("Failed"),
        error_code: Some("ConfigurationError"),
        error_message: Some(&message),
        ..Default::default()
    };
    jobs::fail_jobs_of(conn, account_id, &[action_execution_id]).await?;
    complete_action(conn, app_scope(app, account_id, pipeline, locked.generation), action_execution_id, &update).await?;
    Ok(())
}

pub fn not_found_error(pipeline: &str) -> ApiError {
    ApiError::new(ErrorCode::PipelineNotFoundException, format!("Account does not have a pipeline with name '{pipeline}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_resolve_and_unknown_ones_are_named() {
        let vars: HashMap<String, String> =
            [("Build.Version".to_owned(), "1.2".to_owned()), ("variables.env".to_owned(), "prod".to_owned())].into();
        assert_eq!(resolve("v#{Build.Version}-#{variables.env}", &vars).unwrap(), "v1.2-prod");
        assert_eq!(resolve("no refs", &vars).unwrap(), "no refs");
        assert_eq!(resolve("#{Deploy.Url}", &vars).unwrap_err(), "Deploy.Url");
    }
}
