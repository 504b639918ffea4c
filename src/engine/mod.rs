//! The execution engine: moves executions through their stages.
//!
//! Everything here runs inside the caller's transaction, after the caller
//! has locked the pipeline row ([`store::lock_pipeline`]), so for one
//! pipeline the engine's decisions are serialised across all replicas and a
//! dropped connection leaves nothing half-advanced.
//!
//! An execution is always at one stage (`stage_index`) in one phase:
//! `Waiting` to enter it (held by a disabled transition, or in SUPERSEDED and
//! QUEUED modes by another execution running in it), `Running` it, or `Done`.
//! [`reconcile`] repeatedly takes the next possible step until none is left:
//! supersede, enter a stage, start the next runOrder group, finish a stage.

pub mod sweeper;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use chrono::{Duration, Utc};
use regex::Regex;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::api::action_types::types_for_account;
use crate::pipeline::action_types::{self, ActionType};
use crate::pipeline::{ActionDeclaration, PipelineDeclaration, StageDeclaration};
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::executions::{self as store, ActionRow, ActionUpdate, ExecutionRow, NewAction, NewExecution};
use crate::store::jobs::{self, NewJob};
use crate::store::pipelines;

/// Manual approvals wait this long unless the action sets timeoutInMinutes.
pub const DEFAULT_APPROVAL_MINUTES: i64 = 7 * 24 * 60;

/// Which pipeline the engine is working on.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub account_id: &'a str,
    pub region: &'a str,
    pub pipeline: &'a str,
}

impl Scope<'_> {
    pub fn pipeline_arn(&self) -> String {
        format!("arn:aws:codepipeline:{}:{}:{}", self.region, self.account_id, self.pipeline)
    }
}

/// What starts an execution.
pub struct Start<'a> {
    pub trigger_type: &'a str,
    pub trigger_detail: Option<String>,
    pub variables: Vec<(String, String)>,
    pub source_overrides: Vec<Value>,
    pub client_request_token: Option<&'a str>,
}

impl<'a> Start<'a> {
    pub fn triggered_by(trigger_type: &'a str, detail: Option<String>) -> Self {
        Start { trigger_type, trigger_detail: detail, variables: vec![], source_overrides: vec![], client_request_token: None }
    }
}

async fn declaration(conn: &mut PgConnection, scope: Scope<'_>, version: i32) -> Result<PipelineDeclaration, ApiError> {
    let row = pipelines::get(conn, scope.account_id, scope.pipeline, Some(version))
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("pipeline {} version {version} vanished", scope.pipeline)))?;
    serde_json::from_value(row.declaration).map_err(|e| ApiError::internal(anyhow::anyhow!("stored declaration unreadable: {e}")))
}

/// Creates an execution of the pipeline's current version and runs it as far
/// as it can go. The caller holds the pipeline lock.
pub async fn start_execution(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    version: i32,
    start: Start<'_>,
) -> Result<Uuid, ApiError> {
    if let Some(token) = start.client_request_token
        && let Some(existing) = store::execution_by_token(conn, scope.account_id, scope.pipeline, token).await? {
            return Ok(existing);
        }
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
            return Err(ApiError::validation(format!("Source revision override names '{action}', which is not a source action of the pipeline")));
        }
    }
    let execution_id = Uuid::new_v4();
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
    };
    store::insert_execution(conn, scope.account_id, scope.pipeline, &new).await?;
    advance(conn, scope, vec![execution_id]).await?;
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
    let execution_id = Uuid::new_v4();
    let new = NewExecution {
        execution_id,
        pipeline_version: target.pipeline_version,
        execution_mode: &target.execution_mode,
        trigger_type: "ManualRollback",
        trigger_detail: trigger_detail.as_deref(),
        variables: target.variables.clone(),
        source_overrides: target.source_overrides.clone(),
        client_request_token: None,
        rollback: Some((target.execution_id, stage_index)),
    };
    store::insert_execution(conn, scope.account_id, scope.pipeline, &new).await?;
    advance(conn, scope, vec![execution_id]).await?;
    Ok(execution_id)
}

/// Advances every active execution of the pipeline as far as it can go
/// (after a change that may unblock any of them, e.g. an enabled transition).
pub async fn reconcile(conn: &mut PgConnection, scope: Scope<'_>) -> Result<(), ApiError> {
    let ids: Vec<Uuid> = store::active_executions(conn, scope.account_id, scope.pipeline).await?.into_iter().map(|e| e.execution_id).collect();
    advance(conn, scope, ids).await
}

/// What one step did to an execution.
enum Step {
    /// Nothing can happen now.
    Idle,
    /// It moved; try again.
    Moved,
    /// It left (or gave up waiting for) the stage with this index, which may
    /// let executions waiting there in.
    Left(i32),
}

/// Advances the given executions, and every execution their progress
/// unblocks, until none can move. Work is proportional to what changed, not
/// to the number of executions in flight.
pub async fn advance(conn: &mut PgConnection, scope: Scope<'_>, ids: Vec<Uuid>) -> Result<(), ApiError> {
    let mut decls: HashMap<i32, PipelineDeclaration> = HashMap::new();
    let mut types: Option<HashMap<crate::pipeline::ActionTypeId, ActionType>> = None;
    let mut work: VecDeque<Uuid> = ids.into();
    // Each step changes one execution; the bound only guards against a bug
    // that would loop forever.
    let mut budget = 100_000;
    while let Some(id) = work.pop_front() {
        loop {
            budget -= 1;
            if budget == 0 {
                return Err(ApiError::internal(anyhow::anyhow!("execution engine did not settle for pipeline {}", scope.pipeline)));
            }
            let Some(e) = store::get_execution(conn, scope.account_id, scope.pipeline, id).await? else { break };
            if !matches!(e.status.as_str(), "InProgress" | "Stopping") {
                break;
            }
            if let Entry::Vacant(v) = decls.entry(e.pipeline_version) {
                v.insert(declaration(conn, scope, e.pipeline_version).await?);
            }
            let decl = &decls[&e.pipeline_version];
            let step = match e.stage_phase.as_str() {
                "Waiting" => try_enter(conn, scope, &e, decl).await?,
                "Running" => step_stage(conn, scope, &e, decl, &mut types).await?,
                _ => Step::Idle,
            };
            match step {
                Step::Idle => break,
                Step::Moved => {}
                Step::Left(index) => {
                    for other in store::waiting_at(conn, scope.account_id, scope.pipeline, index).await? {
                        if other != id && !work.contains(&other) {
                            work.push_back(other);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

async fn try_enter(conn: &mut PgConnection, scope: Scope<'_>, e: &ExecutionRow, decl: &PipelineDeclaration) -> Result<Step, ApiError> {
    let (account, pipeline) = (scope.account_id, scope.pipeline);
    if e.status == "Stopping" {
        // Stopped while waiting: it never enters.
        let summary = e.stop_reason.clone().unwrap_or_else(|| "Stopped while waiting to enter a stage".into());
        store::set_execution_status(conn, account, pipeline, e.execution_id, "Stopped", Some(&summary)).await?;
        return Ok(Step::Left(e.stage_index));
    }
    let i = e.stage_index as usize;
    let Some(stage) = decl.stages.get(i) else {
        store::set_execution_status(conn, account, pipeline, e.execution_id, "Succeeded", None).await?;
        return Ok(Step::Moved);
    };
    let waiting = store::waiting_at(conn, account, pipeline, e.stage_index).await?;
    if e.execution_mode == "SUPERSEDED" {
        // Only the newest of the executions waiting at a stage keeps waiting.
        let summary = format!("Superseded by a newer execution waiting to enter stage '{}'", stage.name);
        if waiting.last().is_some_and(|newest| *newest != e.execution_id) {
            store::set_execution_status(conn, account, pipeline, e.execution_id, "Superseded", Some(&summary)).await?;
            return Ok(Step::Left(e.stage_index));
        }
        for older in waiting.iter().filter(|w| **w != e.execution_id) {
            store::set_execution_status(conn, account, pipeline, *older, "Superseded", Some(&summary)).await?;
        }
    }
    // QUEUED keeps arrival order: an older execution waiting here goes first.
    if e.execution_mode == "QUEUED" && waiting.first().is_some_and(|oldest| *oldest != e.execution_id) {
        return Ok(Step::Idle);
    }
    let disabled = store::disabled_transitions(conn, account, pipeline).await?;
    let blocked = disabled.contains(&(stage.name.clone(), "Inbound".into()))
        || (i > 0 && disabled.contains(&(decl.stages[i - 1].name.clone(), "Outbound".into())));
    if blocked {
        return Ok(Step::Idle);
    }
    if e.execution_mode != "PARALLEL" && store::stage_occupied(conn, account, pipeline, e.stage_index, e.execution_id).await? {
        return Ok(Step::Idle);
    }
    store::upsert_stage(conn, account, pipeline, e.execution_id, &stage.name, "InProgress").await?;
    store::set_execution_position(conn, account, pipeline, e.execution_id, e.stage_index, "Running").await?;
    Ok(Step::Moved)
}

async fn step_stage(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    e: &ExecutionRow,
    decl: &PipelineDeclaration,
    types: &mut Option<HashMap<crate::pipeline::ActionTypeId, ActionType>>,
) -> Result<Step, ApiError> {
    let i = e.stage_index as usize;
    let stage = &decl.stages[i];
    let rows = store::current_actions(conn, scope.account_id, scope.pipeline, e.execution_id, &stage.name).await?;
    let in_progress = rows.iter().any(|r| r.status == "InProgress");
    if e.status == "Stopping" {
        if in_progress {
            return Ok(Step::Idle);
        }
        store::upsert_stage(conn, scope.account_id, scope.pipeline, e.execution_id, &stage.name, "Stopped").await?;
        let summary = e.stop_reason.clone().unwrap_or_else(|| "Stopped".into());
        store::set_execution_status(conn, scope.account_id, scope.pipeline, e.execution_id, "Stopped", Some(&summary)).await?;
        return Ok(Step::Left(e.stage_index));
    }
    if let Some(failed) = rows.iter().find(|r| r.status == "Failed" || r.status == "Abandoned") {
        // A failing stage still lets its in-flight parallel actions finish.
        if in_progress {
            return Ok(Step::Idle);
        }
        store::upsert_stage(conn, scope.account_id, scope.pipeline, e.execution_id, &stage.name, "Failed").await?;
        let why = failed.error_message.clone().unwrap_or_else(|| format!("Action '{}' failed", failed.action_name));
        let summary = format!("Stage '{}' failed: action '{}': {why}", stage.name, failed.action_name);
        store::set_execution_status(conn, scope.account_id, scope.pipeline, e.execution_id, "Failed", Some(&summary)).await?;
        return Ok(Step::Left(e.stage_index));
    }
    if in_progress {
        return Ok(Step::Idle);
    }
    let started: HashSet<&str> = rows.iter().map(|r| r.action_name.as_str()).collect();
    let next_order = stage.actions.iter().filter(|a| !started.contains(a.name.as_str())).map(ActionDeclaration::run_order).min();
    if let Some(order) = next_order {
        // The account's action types are only needed to start actions: load
        // them once per advance, and not at all when nothing starts.
        if types.is_none() {
            *types = Some(types_for_account(conn, scope.account_id, false).await?);
        }
        let types = types.as_ref().expect("loaded");
        let mut everything = store::execution_actions(conn, scope.account_id, scope.pipeline, e.execution_id).await?;
        if let Some(target) = e.rollback_target {
            // Earlier stages' artifacts and variables come from the target.
            let earlier: HashSet<&str> = decl.stages[..i].iter().map(|s| s.name.as_str()).collect();
            let theirs = store::execution_actions(conn, scope.account_id, scope.pipeline, target).await?;
            everything.extend(theirs.into_iter().filter(|r| earlier.contains(r.stage_name.as_str())));
        }
        for action in stage.actions.iter().filter(|a| a.run_order() == order && !started.contains(a.name.as_str())) {
            start_action(conn, scope, e, decl, stage, action, types, &everything).await?;
        }
        return Ok(Step::Moved);
    }
    store::upsert_stage(conn, scope.account_id, scope.pipeline, e.execution_id, &stage.name, "Succeeded").await?;
    // A rollback re-runs one stage only.
    if i + 1 == decl.stages.len() || e.rollback_target.is_some() {
        store::set_execution_status(conn, scope.account_id, scope.pipeline, e.execution_id, "Succeeded", None).await?;
    } else {
        store::set_execution_position(conn, scope.account_id, scope.pipeline, e.execution_id, e.stage_index + 1, "Waiting").await?;
    }
    Ok(Step::Left(e.stage_index))
}

/// Where an artifact of this execution lives in the artifact store.
fn artifact_location(decl: &PipelineDeclaration, region: &str, action_region: Option<&str>, pipeline: &str, execution_id: Uuid, artifact: &str) -> (String, String) {
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

#[allow(clippy::too_many_arguments)]
async fn start_action(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    e: &ExecutionRow,
    decl: &PipelineDeclaration,
    stage: &StageDeclaration,
    action: &ActionDeclaration,
    types: &HashMap<crate::pipeline::ActionTypeId, ActionType>,
    everything: &[ActionRow],
) -> Result<(), ApiError> {
    let action_execution_id = Uuid::new_v4();
    let id = &action.action_type_id;

    // Variables visible to this action: the execution id, pipeline-level
    // variables, and the output variables of namespaced actions that ran.
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
    let mut resolved = serde_json::Map::new();
    let mut unresolved = None;
    for (k, v) in &action.configuration {
        match resolve(v, &vars) {
            Ok(r) => {
                resolved.insert(k.clone(), Value::String(r));
            }
            Err(m) => {
                unresolved.get_or_insert(m);
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
    let output_location = |name: &str| artifact_location(decl, scope.region, action.region.as_deref(), scope.pipeline, e.execution_id, name);
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
        stage_name: &stage.name,
        action_name: &action.name,
        run_order: action.run_order(),
        status: "InProgress",
        input,
        output,
        approval_token: None,
        timeout_at: None,
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
            new.output["executionResult"] = json!({"externalExecutionId": revision_id, "externalExecutionSummary": format!("Revision {revision_id}")});
            store::insert_action(conn, scope.account_id, scope.pipeline, &new).await?;
            store::update_action_revision(conn, scope.account_id, action_execution_id, &revision).await?;
            return Ok(());
        }
    }

    if let Some(missing) = unresolved {
        return insert_failed(conn, scope, new, "ConfigurationError", format!("Unable to resolve variable #{{{missing}}} in the configuration of action '{}'", action.name)).await;
    }
    if action_types::is_manual_approval(id) {
        new.approval_token = Some(Uuid::new_v4());
        let minutes = action.timeout_in_minutes.map(i64::from).unwrap_or(DEFAULT_APPROVAL_MINUTES);
        new.timeout_at = Some(Utc::now() + Duration::minutes(minutes));
        store::insert_action(conn, scope.account_id, scope.pipeline, &new).await?;
        return Ok(());
    }
    let runs_as_job = (id.owner == "Custom" || id.owner == "ThirdParty") && action_types::find_builtin(id).is_none();
    if !runs_as_job {
        let message = if id.category == "Source" {
            format!("No revision is known for source action '{}': record one with PutActionRevision or a webhook", action.name)
        } else {
            format!("{id} is run by AWS and this server cannot run it; use a custom action type and a job worker instead")
        };
        return insert_failed(conn, scope, new, "JobFailed", message).await;
    }
    let Some(t) = types.get(id) else {
        return insert_failed(conn, scope, new, "ConfigurationError", format!("{id} has been deleted; the action cannot run")).await;
    };
    store::insert_action(conn, scope.account_id, scope.pipeline, &new).await?;
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
    jobs::insert(
        conn,
        &NewJob {
            job_id: Uuid::new_v4(),
            account_id: scope.account_id,
            pipeline_name: scope.pipeline,
            execution_id: e.execution_id,
            action_execution_id,
            type_id: id,
            query_value: query_value.as_deref(),
            continuation_token: None,
            data,
        },
    )
    .await?;
    Ok(())
}

async fn insert_failed(conn: &mut PgConnection, scope: Scope<'_>, mut new: NewAction<'_>, code: &str, message: String) -> Result<(), ApiError> {
    new.status = "InProgress";
    store::insert_action(conn, scope.account_id, scope.pipeline, &new).await?;
    let update = ActionUpdate { status: Some("Failed"), error_code: Some(code), error_message: Some(&message), ..Default::default() };
    store::update_action(conn, scope.account_id, new.action_execution_id, &update).await?;
    Ok(())
}

/// Finishes (or updates) an in-progress action and lets the pipeline move
/// on. False when the action was no longer in progress.
pub async fn complete_action(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    action_execution_id: Uuid,
    update: &ActionUpdate<'_>,
) -> Result<bool, ApiError> {
    let Some(execution) = store::update_action_of(conn, scope.account_id, action_execution_id, update).await? else {
        return Ok(false);
    };
    advance(conn, scope, vec![execution]).await?;
    Ok(true)
}

/// UpdatePipeline ends every running execution as `Cancelled`: they were
/// started from a definition that no longer exists.
pub async fn cancel_active(conn: &mut PgConnection, scope: Scope<'_>) -> Result<(), ApiError> {
    for e in store::active_executions(conn, scope.account_id, scope.pipeline).await? {
        let abandoned = store::abandon_actions(conn, scope.account_id, scope.pipeline, e.execution_id).await?;
        jobs::fail_jobs_of(conn, scope.account_id, &abandoned).await?;
        if e.stage_phase == "Running" {
            let decl = declaration(conn, scope, e.pipeline_version).await?;
            if let Some(stage) = decl.stages.get(e.stage_index as usize) {
                store::upsert_stage(conn, scope.account_id, scope.pipeline, e.execution_id, &stage.name, "Cancelled").await?;
            }
        }
        store::set_execution_status(
            conn,
            scope.account_id,
            scope.pipeline,
            e.execution_id,
            "Cancelled",
            Some("The pipeline's definition was updated before the execution could complete"),
        )
        .await?;
    }
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
