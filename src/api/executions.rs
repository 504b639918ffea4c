//! Running pipelines: StartPipelineExecution, StopPipelineExecution,
//! RetryStageExecution, PutActionRevision, PutApprovalResult, stage
//! transitions, and the reads (GetPipelineState, GetPipelineExecution,
//! ListPipelineExecutions, ListActionExecutions, rule and deploy-target
//! listings). Every change locks the pipeline row, applies itself, and lets
//! the engine advance, all in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use std::sync::Arc;
use uuid::Uuid;

use super::action_types::types_for_account;
use super::{Cx, Empty, epoch_seconds, page_token};
use crate::engine::{self, Start};
use crate::pipeline::action_types::SECRET_MASK;
use crate::pipeline::{ActionTypeId, PipelineDeclaration};
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::db::Tx;
use crate::store::executions::{self as store, ActionRow, ActionUpdate, ExecutionRow, LockedPipeline};
use crate::store::rule_executions::{self, RuleExecutionRow};
use crate::store::{jobs, pipelines};

/// Begins the transaction of a change to `pipeline` and takes its lock.
/// Returns the transaction, the lock and the current declaration.
pub async fn lock(cx: &Cx, pipeline: &str) -> Result<(Tx, LockedPipeline, Arc<PipelineDeclaration>), ApiError> {
    let mut tx = cx.db().begin().await?;
    let locked = store::lock_pipeline(&mut tx, &cx.account_id, pipeline).await?.ok_or_else(|| engine::not_found_error(pipeline))?;
    let decl = engine::declaration(&mut tx, cx.scope(pipeline, locked), locked.current_version).await?;
    Ok((tx, locked, decl))
}

fn stage_not_found(stage: &str, pipeline: &str) -> ApiError {
    ApiError::new(ErrorCode::StageNotFoundException, format!("Stage '{stage}' was not found in pipeline '{pipeline}'"))
}

fn execution_not_found(id: &str, pipeline: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PipelineExecutionNotFoundException,
        format!("Pipeline execution '{id}' was not found for pipeline '{pipeline}'"),
    )
}

fn parse_execution_id(id: &str, pipeline: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| execution_not_found(id, pipeline))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartPipelineExecutionInput {
    name: String,
    #[serde(default)]
    variables: Vec<PipelineVariable>,
    #[serde(default)]
    source_revisions: Vec<Value>,
    client_request_token: Option<String>,
}

#[derive(Deserialize)]
pub struct PipelineVariable {
    name: String,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartPipelineExecutionOutput {
    pipeline_execution_id: Uuid,
}

/// Errors: ValidationException, PipelineNotFoundException.
pub async fn start_pipeline_execution(cx: Cx, input: StartPipelineExecutionInput) -> Result<StartPipelineExecutionOutput, ApiError> {
    // Starts run side by side with workers' results and, in PARALLEL
    // pipelines, with each other (see `store::executions`).
    let mut tx = cx.db().begin().await?;
    let (locked, disabled) =
        store::lock_pipeline_shared(&mut tx, &cx.account_id, &input.name).await?.ok_or_else(|| engine::not_found_error(&input.name))?;
    let decl = engine::declaration(&mut tx, cx.scope(&input.name, locked), locked.current_version).await?;
    if decl.execution_mode() != "PARALLEL" {
        store::lock_pipeline_engine(&mut tx, &cx.account_id, &input.name).await?;
    }
    if decl.pipeline_type() == "V1" && (!input.variables.is_empty() || !input.source_revisions.is_empty()) {
        return Err(ApiError::validation("Pipeline variables and source revision overrides can only be used with V2 pipelines"));
    }
    let start = Start {
        trigger_type: "StartPipelineExecution",
        trigger_detail: Some(cx.caller_arn()),
        variables: input.variables.into_iter().map(|v| (v.name, v.value)).collect(),
        source_overrides: input.source_revisions,
        client_request_token: input.client_request_token.as_deref(),
        disabled_transitions: Some(disabled),
    };
    let id = engine::start_execution(&mut tx, cx.scope(&input.name, locked), locked.current_version, start).await?;
    tx.commit().await?;
    Ok(StartPipelineExecutionOutput { pipeline_execution_id: id })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopPipelineExecutionInput {
    pipeline_name: String,
    pipeline_execution_id: String,
    #[serde(default)]
    abandon: bool,
    reason: Option<String>,
}

/// Errors: PipelineNotFoundException, PipelineExecutionNotStoppableException,
/// DuplicatedStopRequestException, ValidationException.
pub async fn stop_pipeline_execution(cx: Cx, input: StopPipelineExecutionInput) -> Result<StartPipelineExecutionOutput, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let (mut tx, locked, _) = lock(&cx, pipeline).await?;
    let id = parse_execution_id(&input.pipeline_execution_id, pipeline)?;
    let e = store::get_execution(&mut tx, &cx.account_id, pipeline, id)
        .await?
        .ok_or_else(|| execution_not_found(&input.pipeline_execution_id, pipeline))?;
    match e.status.as_str() {
        "InProgress" => {}
        // A stop-and-wait may be escalated to abandon; anything else repeats a stop.
        "Stopping" if input.abandon && e.stop_abandon != Some(true) => {}
        "Stopping" => {
            return Err(ApiError::new(ErrorCode::DuplicatedStopRequestException, "This execution is already being stopped"));
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::PipelineExecutionNotStoppableException,
                format!("Execution {id} is {other} and cannot be stopped"),
            ));
        }
    }
    store::set_stop(&mut tx, &cx.account_id, pipeline, id, input.reason.as_deref(), input.abandon).await?;
    if input.abandon {
        let abandoned = store::abandon_actions(&mut tx, &cx.account_id, pipeline, id).await?;
        jobs::fail_jobs_of(&mut tx, &cx.account_id, &abandoned).await?;
    }
    engine::reconcile(&mut tx, cx.scope(pipeline, locked)).await?;
    tx.commit().await?;
    Ok(StartPipelineExecutionOutput { pipeline_execution_id: id })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStageExecutionInput {
    pipeline_name: String,
    stage_name: String,
    pipeline_execution_id: String,
    retry_mode: String,
}

/// Errors: PipelineNotFoundException, StageNotFoundException,
/// StageNotRetryableException, NotLatestPipelineExecutionException.
pub async fn retry_stage_execution(cx: Cx, input: RetryStageExecutionInput) -> Result<StartPipelineExecutionOutput, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let (mut tx, locked, decl) = lock(&cx, pipeline).await?;
    let version = locked.current_version;
    let index = decl.stages.iter().position(|s| s.name == input.stage_name).ok_or_else(|| stage_not_found(&input.stage_name, pipeline))?;
    let id = parse_execution_id(&input.pipeline_execution_id, pipeline)?;
    let e = store::get_execution(&mut tx, &cx.account_id, pipeline, id)
        .await?
        .ok_or_else(|| execution_not_found(&input.pipeline_execution_id, pipeline))?;
    let latest = store::latest_stages(&mut tx, &cx.account_id, pipeline).await?;
    let latest_here = latest.iter().find(|s| s.stage_name == input.stage_name);
    if latest_here.is_some_and(|s| s.execution_id != id) {
        return Err(ApiError::new(
            ErrorCode::NotLatestPipelineExecutionException,
            format!("Execution {id} is not the latest execution of stage '{}'", input.stage_name),
        ));
    }
    let stage_status = latest_here.map(|s| s.status.as_str());
    let retryable = matches!(stage_status, Some("Failed") | Some("Stopped"))
        && e.pipeline_version == version
        && matches!(e.status.as_str(), "Failed" | "Stopped")
        && e.stage_index as usize == index;
    if !retryable {
        return Err(ApiError::new(
            ErrorCode::StageNotRetryableException,
            format!(
                "Stage '{}' of execution {id} cannot be retried: only a failed or stopped stage of the latest execution, under the current pipeline version, can be",
                input.stage_name
            ),
        ));
    }
    let stage = &decl.stages[index];
    let rows = store::stage_actions(&mut tx, &cx.account_id, pipeline, id, &stage.name).await?;
    if input.retry_mode == "ALL_ACTIONS" {
        store::retire_actions(&mut tx, &cx.account_id, pipeline, id, &stage.name, None).await?;
    } else {
        let failed: Vec<String> = rows.iter().filter(|r| r.status != "Succeeded").map(|r| r.action_name.clone()).collect();
        store::retire_actions(&mut tx, &cx.account_id, pipeline, id, &stage.name, Some(&failed)).await?;
    }
    // A stage none of whose actions ran was never entered (its entry
    // condition failed, or it was stopped while that was in progress): the
    // retry enters it again, through its entry condition.
    let rerun = match rows.is_empty() {
        true => store::Move { status: Some("InProgress"), position: Some((index as i32, "Waiting")), ..Default::default() },
        false => store::Move {
            stage: Some((&stage.name, "InProgress")),
            status: Some("InProgress"),
            position: Some((index as i32, "Running")),
            ..Default::default()
        },
    };
    store::move_execution(&mut tx, &cx.account_id, pipeline, id, &rerun).await?;
    store::record_retry(&mut tx, &cx.account_id, pipeline, id, &stage.name, false).await?;
    store::clear_stop(&mut tx, &cx.account_id, pipeline, id).await?;
    engine::reconcile(&mut tx, cx.scope(pipeline, locked)).await?;
    tx.commit().await?;
    Ok(StartPipelineExecutionOutput { pipeline_execution_id: id })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStageInput {
    pipeline_name: String,
    stage_name: String,
    target_pipeline_execution_id: String,
}

fn cannot_roll_back(why: String) -> ApiError {
    ApiError::new(ErrorCode::UnableToRollbackStageException, why)
}

/// Re-runs a stage with the artifacts and variables of an earlier execution
/// that succeeded in it, as a new ROLLBACK execution (V2 pipelines).
/// Errors: PipelineNotFoundException, StageNotFoundException,
/// PipelineExecutionNotFoundException, PipelineExecutionOutdatedException,
/// UnableToRollbackStageException.
pub async fn rollback_stage(cx: Cx, input: RollbackStageInput) -> Result<StartPipelineExecutionOutput, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let (mut tx, locked, decl) = lock(&cx, pipeline).await?;
    let version = locked.current_version;
    let index = decl.stages.iter().position(|s| s.name == input.stage_name).ok_or_else(|| stage_not_found(&input.stage_name, pipeline))?;
    if decl.pipeline_type() != "V2" {
        return Err(cannot_roll_back(format!("Pipeline '{pipeline}' is a V1 pipeline; stage rollback needs a V2 pipeline")));
    }
    if index == 0 {
        return Err(cannot_roll_back(format!("Stage '{}' is the source stage, which cannot be rolled back", input.stage_name)));
    }
    let id = parse_execution_id(&input.target_pipeline_execution_id, pipeline)?;
    let target = store::get_execution(&mut tx, &cx.account_id, pipeline, id)
        .await?
        .ok_or_else(|| execution_not_found(&input.target_pipeline_execution_id, pipeline))?;
    if target.pipeline_version != version {
        return Err(ApiError::new(
            ErrorCode::PipelineExecutionOutdatedException,
            format!("Execution {id} ran pipeline version {}, but the pipeline is now at version {version}", target.pipeline_version),
        ));
    }
    if target.execution_type == "ROLLBACK" {
        return Err(cannot_roll_back(format!("Execution {id} is itself a rollback and cannot be a rollback target")));
    }
    if store::stage_record(&mut tx, &cx.account_id, pipeline, id, &input.stage_name).await?.is_none_or(|r| r.status != "Succeeded") {
        return Err(cannot_roll_back(format!("Execution {id} did not succeed in stage '{}'", input.stage_name)));
    }
    let execution = engine::start_rollback(&mut tx, cx.scope(pipeline, locked), &target, index as i32, Some(cx.caller_arn())).await?;
    tx.commit().await?;
    Ok(StartPipelineExecutionOutput { pipeline_execution_id: execution })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutActionRevisionInput {
    pipeline_name: String,
    stage_name: String,
    action_name: String,
    action_revision: ActionRevision,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRevision {
    revision_id: String,
    revision_change_id: String,
    created: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutActionRevisionOutput {
    new_revision: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline_execution_id: Option<Uuid>,
}

/// Epoch seconds (integer or fractional) or an RFC 3339 string.
pub fn parse_timestamp(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => n.as_f64().and_then(|s| DateTime::from_timestamp_millis((s * 1000.0) as i64)),
        Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc)),
        _ => None,
    }
}

fn find_action<'a>(
    decl: &'a PipelineDeclaration,
    pipeline: &str,
    stage: &str,
    action: &str,
) -> Result<&'a crate::pipeline::ActionDeclaration, ApiError> {
    let s = decl.stages.iter().find(|s| s.name == stage).ok_or_else(|| stage_not_found(stage, pipeline))?;
    s.actions.iter().find(|a| a.name == action).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ActionNotFoundException,
            format!("Action '{action}' was not found in stage '{stage}' of pipeline '{pipeline}'"),
        )
    })
}

/// Errors: PipelineNotFoundException, StageNotFoundException, ActionNotFoundException.
pub async fn put_action_revision(cx: Cx, input: PutActionRevisionInput) -> Result<PutActionRevisionOutput, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let (mut tx, locked, decl) = lock(&cx, pipeline).await?;
    let action = find_action(&decl, pipeline, &input.stage_name, &input.action_name)?;
    if action.action_type_id.category != "Source" {
        return Err(ApiError::validation(format!("Action '{}' is not a source action", input.action_name)));
    }
    let rev = &input.action_revision;
    let new = store::record_revision(
        &mut tx,
        &cx.account_id,
        pipeline,
        &input.stage_name,
        &input.action_name,
        &rev.revision_id,
        Some(&rev.revision_change_id),
        parse_timestamp(&rev.created),
    )
    .await?;
    let execution = if new {
        let start = Start::triggered_by("PutActionRevision", Some(format!("{}/{}", input.stage_name, input.action_name)));
        Some(engine::start_execution(&mut tx, cx.scope(pipeline, locked), locked.current_version, start).await?)
    } else {
        None
    };
    tx.commit().await?;
    Ok(PutActionRevisionOutput { new_revision: new, pipeline_execution_id: execution })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutApprovalResultInput {
    pipeline_name: String,
    stage_name: String,
    action_name: String,
    result: ApprovalResult,
    token: String,
}

#[derive(Deserialize)]
pub struct ApprovalResult {
    summary: String,
    status: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutApprovalResultOutput {
    approved_at: f64,
}

/// Errors: InvalidApprovalTokenException, ApprovalAlreadyCompletedException,
/// PipelineNotFoundException, StageNotFoundException, ActionNotFoundException.
pub async fn put_approval_result(cx: Cx, input: PutApprovalResultInput) -> Result<PutApprovalResultOutput, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let (mut tx, locked, decl) = lock(&cx, pipeline).await?;
    let action = find_action(&decl, pipeline, &input.stage_name, &input.action_name)?;
    if !crate::pipeline::action_types::is_manual_approval(&action.action_type_id) {
        return Err(ApiError::validation(format!("Action '{}' is not a manual approval action", input.action_name)));
    }
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidApprovalTokenException,
            "The approval request already received a response, has expired, or the token is not valid",
        )
    };
    let token = Uuid::parse_str(&input.token).map_err(|_| invalid())?;
    let row = store::action_by_token(&mut tx, &cx.account_id, pipeline, &input.stage_name, &input.action_name, token)
        .await?
        .ok_or_else(invalid)?;
    if row.status != "InProgress" {
        return Err(ApiError::new(ErrorCode::ApprovalAlreadyCompletedException, "This approval request has already been answered"));
    }
    let approved = input.result.status == "Approved";
    let by = cx.caller_arn();
    let message = format!("Rejected: {}", input.result.summary);
    let update = ActionUpdate {
        status: Some(if approved { "Succeeded" } else { "Failed" }),
        summary: Some(&input.result.summary),
        updated_by: Some(&by),
        error_code: (!approved).then_some("JobFailed"),
        error_message: (!approved).then_some(message.as_str()),
        ..Default::default()
    };
    engine::complete_action(&mut tx, cx.scope(pipeline, locked), row.action_execution_id, &update).await?;
    tx.commit().await?;
    Ok(PutApprovalResultOutput { approved_at: epoch_seconds(Utc::now()) })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisableStageTransitionInput {
    pipeline_name: String,
    stage_name: String,
    transition_type: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnableStageTransitionInput {
    pipeline_name: String,
    stage_name: String,
    transition_type: String,
}

async fn set_transition(cx: &Cx, pipeline: &str, stage: &str, kind: &str, reason: Option<&str>) -> Result<Empty, ApiError> {
    let (mut tx, locked, decl) = lock(cx, pipeline).await?;
    if !decl.stages.iter().any(|s| s.name == stage) {
        return Err(stage_not_found(stage, pipeline));
    }
    store::set_transition(&mut tx, &cx.account_id, pipeline, stage, kind, reason.is_none(), reason, &cx.caller_arn()).await?;
    engine::reconcile(&mut tx, cx.scope(pipeline, locked)).await?;
    tx.commit().await?;
    Ok(Empty {})
}

/// Errors: PipelineNotFoundException, StageNotFoundException.
pub async fn disable_stage_transition(cx: Cx, input: DisableStageTransitionInput) -> Result<Empty, ApiError> {
    set_transition(&cx, &input.pipeline_name, &input.stage_name, &input.transition_type, Some(&input.reason)).await
}

/// Errors: PipelineNotFoundException, StageNotFoundException.
pub async fn enable_stage_transition(cx: Cx, input: EnableStageTransitionInput) -> Result<Empty, ApiError> {
    set_transition(&cx, &input.pipeline_name, &input.stage_name, &input.transition_type, None).await
}

// ---- reads ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPipelineStateInput {
    name: String,
}

fn stage_execution(id: Uuid, status: &str, kind: &str) -> Value {
    json!({"pipelineExecutionId": id, "status": status, "type": kind})
}

fn error_details(r: &ActionRow) -> Option<Value> {
    r.error_message.as_ref().map(|m| json!({"code": r.error_code.clone().unwrap_or_else(|| "JobFailed".into()), "message": m}))
}

fn action_execution_state(r: &ActionRow, show_token: bool) -> Value {
    let mut v = json!({
        "actionExecutionId": r.action_execution_id,
        "status": r.status,
        "lastStatusChange": epoch_seconds(r.updated_at),
    });
    let put = |v: &mut Value, k: &str, x: Option<Value>| {
        if let Some(x) = x {
            v[k] = x;
        }
    };
    put(&mut v, "summary", r.summary.clone().map(Value::String));
    put(&mut v, "externalExecutionId", r.external_execution_id.clone().map(Value::String));
    put(&mut v, "externalExecutionUrl", r.external_execution_url.clone().map(Value::String));
    put(&mut v, "percentComplete", r.percent_complete.map(Value::from));
    put(&mut v, "lastUpdatedBy", r.updated_by.clone().map(Value::String));
    put(&mut v, "errorDetails", error_details(r));
    if show_token && r.status == "InProgress" {
        put(&mut v, "token", r.approval_token.map(|t| Value::String(t.to_string())));
    }
    v
}

/// A stage hook's state from the rules it evaluated (one execution's, oldest first): a
/// condition failed when a rule did, is in progress while one is, was
/// overridden or abandoned (stopped) when its wait ended so, and succeeded
/// when all its rules did.
fn condition_state(rounds: &[&RuleExecutionRow]) -> Value {
    // A retried stage evaluates its hooks again: each rule's newest evaluation counts.
    let mut rules: Vec<&RuleExecutionRow> = Vec::new();
    for r in rounds {
        match rules.iter_mut().find(|n| n.condition_index == r.condition_index && n.rule_name == r.rule_name) {
            Some(older) => *older = r,
            None => rules.push(r),
        }
    }
    let status = |rows: &[&RuleExecutionRow]| {
        ["Failed", "InProgress", "Overridden", "Abandoned"].into_iter().find(|s| rows.iter().any(|r| r.status == *s)).unwrap_or("Succeeded")
    };
    let mut conditions: Vec<Value> = Vec::new();
    let count = rules.iter().map(|r| r.condition_index).max().map_or(0, |m| m + 1);
    for index in 0..count {
        let of: Vec<&RuleExecutionRow> = rules.iter().copied().filter(|r| r.condition_index == index).collect();
        let Some(changed) = of.iter().map(|r| r.updated_at).max() else { continue };
        let failed = of.iter().find(|r| r.status == "Failed");
        let mut execution = json!({"status": status(&of), "lastStatusChange": epoch_seconds(changed)});
        if let Some(summary) = failed.and_then(|r| r.summary.as_ref()) {
            execution["summary"] = json!(summary);
        }
        let rule_states: Vec<Value> = of
            .iter()
            .map(|r| {
                let mut latest = json!({"ruleExecutionId": r.rule_execution_id, "status": r.api_status(), "lastStatusChange": epoch_seconds(r.updated_at)});
                if let Some(summary) = &r.summary {
                    latest["summary"] = json!(summary);
                }
                json!({"ruleName": r.rule_name, "latestExecution": latest})
            })
            .collect();
        conditions.push(json!({"latestExecution": execution, "ruleStates": rule_states}));
    }
    json!({"latestExecution": {"status": status(&rules)}, "conditionStates": conditions})
}

/// Errors: ValidationException, PipelineNotFoundException.
pub async fn get_pipeline_state(cx: Cx, input: GetPipelineStateInput) -> Result<Value, ApiError> {
    let pipeline = input.name.as_str();
    let mut conn = cx.db().acquire().await?;
    let row = pipelines::get(&mut conn, &cx.account_id, pipeline, None).await?.ok_or_else(|| engine::not_found_error(pipeline))?;
    let decl: PipelineDeclaration =
        serde_json::from_value(row.declaration.clone()).map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    let latest_stages = store::latest_stages(&mut conn, &cx.account_id, pipeline).await?;
    let latest_pairs: Vec<(Uuid, String)> = latest_stages.iter().map(|l| (l.execution_id, l.stage_name.clone())).collect();
    let rules = rule_executions::of_stages(&mut conn, &cx.account_id, pipeline, &latest_pairs).await?;
    let latest_actions = store::latest_actions(&mut conn, &cx.account_id, pipeline).await?;
    let transitions = store::transitions(&mut conn, &cx.account_id, pipeline).await?;
    let revisions = store::revisions(&mut conn, &cx.account_id, pipeline).await?;
    let active = store::active_executions(&mut conn, &cx.account_id, pipeline).await?;
    let show_tokens = decl.execution_mode() != "PARALLEL";
    let mut stage_states = Vec::new();
    for (i, stage) in decl.stages.iter().enumerate() {
        let mut s = json!({"stageName": stage.name});
        let inbound = transitions.iter().find(|t| t.stage_name == stage.name && t.transition_type == "Inbound");
        s["inboundTransitionState"] = match inbound {
            Some(t) => {
                let mut ts = json!({"enabled": t.enabled, "lastChangedAt": epoch_seconds(t.last_changed_at)});
                if let Some(by) = &t.last_changed_by {
                    ts["lastChangedBy"] = json!(by);
                }
                if let (false, Some(r)) = (t.enabled, &t.disabled_reason) {
                    ts["disabledReason"] = json!(r);
                }
                ts
            }
            None => json!({"enabled": true}),
        };
        let waiting: Vec<Value> = active
            .iter()
            .filter(|e| e.stage_index as usize == i && e.stage_phase == "Waiting")
            .map(|e| stage_execution(e.execution_id, &e.status, &e.execution_type))
            .collect();
        if let Some(last) = waiting.last() {
            s["inboundExecution"] = last.clone();
            s["inboundExecutions"] = Value::Array(waiting.clone());
        }
        if let Some(l) = latest_stages.iter().find(|l| l.stage_name == stage.name) {
            s["latestExecution"] = stage_execution(l.execution_id, &l.status, &l.execution_type);
            if let Some(trigger) = &l.latest_retry_trigger {
                s["retryStageMetadata"] = json!({
                    "autoStageRetryAttempt": l.auto_retries,
                    "manualStageRetryAttempt": l.manual_retries,
                    "latestRetryTrigger": trigger,
                });
            }
            for (condition_type, key) in [
                ("BEFORE_ENTRY", "beforeEntryConditionState"),
                ("ON_SUCCESS", "onSuccessConditionState"),
                ("ON_FAILURE", "onFailureConditionState"),
            ] {
                let evaluated: Vec<&RuleExecutionRow> = rules
                    .iter()
                    .filter(|r| r.execution_id == l.execution_id && r.stage_name == stage.name && r.condition_type == condition_type)
                    .collect();
                if !evaluated.is_empty() {
                    s[key] = condition_state(&evaluated);
                }
            }
        }
        let actions: Vec<Value> = stage
            .actions
            .iter()
            .map(|a| {
                let mut st = json!({"actionName": a.name});
                if let Some(r) = latest_actions.iter().find(|r| r.stage_name == stage.name && r.action_name == a.name) {
                    st["latestExecution"] = action_execution_state(r, show_tokens);
                }
                if let Some(rev) = revisions.iter().find(|r| r.stage_name == stage.name && r.action_name == a.name) {
                    let mut cr = json!({"revisionId": rev.revision_id});
                    if let Some(c) = &rev.revision_change_id {
                        cr["revisionChangeId"] = json!(c);
                    }
                    if let Some(c) = rev.created {
                        cr["created"] = json!(epoch_seconds(c));
                    }
                    st["currentRevision"] = cr;
                }
                st
            })
            .collect();
        s["actionStates"] = Value::Array(actions);
        stage_states.push(s);
    }
    Ok(json!({
        "pipelineName": pipeline,
        "pipelineVersion": row.version,
        "stageStates": stage_states,
        "created": epoch_seconds(row.created_at),
        "updated": epoch_seconds(row.updated_at),
    }))
}

/// executionType and, for rollbacks, rollbackMetadata.
fn execution_kind(e: &ExecutionRow, out: &mut Value) {
    out["executionType"] = json!(e.execution_type);
    if let Some(target) = e.rollback_target {
        out["rollbackMetadata"] = json!({"rollbackTargetPipelineExecutionId": target});
    }
}

fn trigger(e: &ExecutionRow) -> Value {
    let mut t = json!({"triggerType": e.trigger_type});
    if let Some(d) = &e.trigger_detail {
        t["triggerDetail"] = json!(d);
    }
    t
}

/// Source revisions of an execution: (action name, output artifact, revision).
async fn source_revisions(
    conn: &mut PgConnection,
    cx: &Cx,
    pipeline: &str,
    e: &ExecutionRow,
) -> Result<Vec<(String, String, Value)>, ApiError> {
    let rows = store::execution_actions(conn, &cx.account_id, pipeline, e.execution_id).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let rev = r.revision?;
            let artifact = r.output["outputArtifacts"][0]["name"].as_str().unwrap_or_default().to_owned();
            Some((r.action_name, artifact, rev))
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPipelineExecutionInput {
    pipeline_name: String,
    pipeline_execution_id: String,
}

/// Errors: PipelineNotFoundException, PipelineExecutionNotFoundException.
pub async fn get_pipeline_execution(cx: Cx, input: GetPipelineExecutionInput) -> Result<Value, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let mut conn = cx.db().acquire().await?;
    if !pipelines::exists(&mut conn, &cx.account_id, pipeline).await? {
        return Err(engine::not_found_error(pipeline));
    }
    let id = parse_execution_id(&input.pipeline_execution_id, pipeline)?;
    let e = store::get_execution(&mut conn, &cx.account_id, pipeline, id)
        .await?
        .ok_or_else(|| execution_not_found(&input.pipeline_execution_id, pipeline))?;
    let revisions: Vec<Value> = source_revisions(&mut conn, &cx, pipeline, &e)
        .await?
        .into_iter()
        .map(|(_, artifact, rev)| {
            let mut r = json!({"name": artifact, "revisionId": rev["revisionId"]});
            if !rev["revisionChangeId"].is_null() {
                r["revisionChangeIdentifier"] = rev["revisionChangeId"].clone();
            }
            if !rev["created"].is_null() {
                r["created"] = rev["created"].clone();
            }
            if !rev["revisionSummary"].is_null() {
                r["revisionSummary"] = rev["revisionSummary"].clone();
            }
            r
        })
        .collect();
    let mut out = json!({
        "pipelineName": pipeline,
        "pipelineVersion": e.pipeline_version,
        "pipelineExecutionId": e.execution_id,
        "status": e.status,
        "artifactRevisions": revisions,
        "trigger": trigger(&e),
        "variables": e.variables,
        "executionMode": e.execution_mode,
    });
    execution_kind(&e, &mut out);
    if let Some(s) = &e.status_summary {
        out["statusSummary"] = json!(s);
    }
    Ok(json!({ "pipelineExecution": out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPipelineExecutionsInput {
    pipeline_name: String,
    max_results: Option<i64>,
    next_token: Option<String>,
    filter: Option<Value>,
}

/// Errors: PipelineNotFoundException, InvalidNextTokenException.
pub async fn list_pipeline_executions(cx: Cx, input: ListPipelineExecutionsInput) -> Result<Value, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let limit = input.max_results.unwrap_or(100);
    let before = seq_token(input.next_token.as_deref())?;
    let stage_filter = input.filter.as_ref().and_then(|f| f["succeededInStage"]["stageName"].as_str().map(str::to_owned));
    let mut conn = cx.db().acquire().await?;
    if !pipelines::exists(&mut conn, &cx.account_id, pipeline).await? {
        return Err(engine::not_found_error(pipeline));
    }
    let mut rows = store::list_executions(&mut conn, &cx.account_id, pipeline, before, stage_filter.as_deref(), limit + 1).await?;
    let next = more(&mut rows, limit, |e| e.seq);
    let mut summaries = Vec::new();
    for e in &rows {
        let sources: Vec<Value> = source_revisions(&mut conn, &cx, pipeline, e)
            .await?
            .into_iter()
            .map(|(action, _, rev)| json!({"actionName": action, "revisionId": rev["revisionId"]}))
            .collect();
        let mut s = json!({
            "pipelineExecutionId": e.execution_id,
            "status": e.status,
            "startTime": epoch_seconds(e.created_at),
            "lastUpdateTime": epoch_seconds(e.updated_at),
            "sourceRevisions": sources,
            "trigger": trigger(e),
            "executionMode": e.execution_mode,
        });
        execution_kind(e, &mut s);
        if let Some(summary) = &e.status_summary {
            s["statusSummary"] = json!(summary);
        }
        if let Some(reason) = &e.stop_reason {
            s["stopTrigger"] = json!({"reason": reason});
        }
        summaries.push(s);
    }
    let mut out = json!({ "pipelineExecutionSummaries": summaries });
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(out)
}

fn seq_token(token: Option<&str>) -> Result<Option<i64>, ApiError> {
    match page_token::decode(token)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| ApiError::new(ErrorCode::InvalidNextTokenException, "The next token is not valid.")),
    }
}

/// Trims the look-ahead row and returns the token for the next page.
fn more<T>(rows: &mut Vec<T>, limit: i64, seq: impl Fn(&T) -> i64) -> Option<String> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| page_token::encode(&seq(r).to_string()))
    } else {
        None
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListActionExecutionsInput {
    pipeline_name: String,
    filter: Option<Value>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// Configuration as shown outside the job APIs: secret values masked.
fn masked(config: &Value, type_id: &Value, types: &HashMap<ActionTypeId, crate::pipeline::action_types::ActionType>) -> Value {
    let mut config = config.clone();
    let Ok(id) = serde_json::from_value::<ActionTypeId>(type_id.clone()) else { return config };
    if let (Some(t), Some(map)) = (types.get(&id), config.as_object_mut()) {
        for (k, v) in map.iter_mut() {
            if t.is_secret(k) {
                *v = json!(SECRET_MASK);
            }
        }
    }
    config
}

/// The execution a List*Executions filter names (`pipelineExecutionId`, or
/// `latestInPipelineExecution`), checked to exist, after checking that the
/// pipeline does.
async fn execution_filter(conn: &mut PgConnection, cx: &Cx, pipeline: &str, filter: Option<&Value>) -> Result<Option<Uuid>, ApiError> {
    if !pipelines::exists(conn, &cx.account_id, pipeline).await? {
        return Err(engine::not_found_error(pipeline));
    }
    let id =
        filter.and_then(|f| f["pipelineExecutionId"].as_str().or_else(|| f["latestInPipelineExecution"]["pipelineExecutionId"].as_str()));
    let Some(id) = id else { return Ok(None) };
    let uuid = parse_execution_id(id, pipeline)?;
    store::get_execution(conn, &cx.account_id, pipeline, uuid).await?.ok_or_else(|| execution_not_found(id, pipeline))?;
    Ok(Some(uuid))
}

/// Errors: PipelineNotFoundException, PipelineExecutionNotFoundException, InvalidNextTokenException.
pub async fn list_action_executions(cx: Cx, input: ListActionExecutionsInput) -> Result<Value, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let limit = input.max_results.unwrap_or(100);
    let before = seq_token(input.next_token.as_deref())?;
    let mut conn = cx.db().acquire().await?;
    let execution = execution_filter(&mut conn, &cx, pipeline, input.filter.as_ref()).await?;
    let types = types_for_account(&mut conn, &cx.account_id, true).await?;
    let mut rows = store::list_actions(&mut conn, &cx.account_id, pipeline, execution, before, limit + 1).await?;
    let next = more(&mut rows, limit, |r| r.seq);
    let details: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut input = r.input.clone();
            input["configuration"] = masked(&r.input["configuration"], &r.input["actionTypeId"], &types);
            input["resolvedConfiguration"] = masked(&r.input["resolvedConfiguration"], &r.input["actionTypeId"], &types);
            let mut output = r.output.clone();
            let mut result = json!({});
            if let Some(x) = &r.external_execution_id {
                result["externalExecutionId"] = json!(x);
            }
            if let Some(x) = &r.summary {
                result["externalExecutionSummary"] = json!(x);
            }
            if let Some(x) = &r.external_execution_url {
                result["externalExecutionUrl"] = json!(x);
            }
            if let Some(x) = error_details(r) {
                result["errorDetails"] = x;
            }
            if output.get("executionResult").is_none() && result.as_object().is_some_and(|o| !o.is_empty()) {
                output["executionResult"] = result;
            }
            let mut d = json!({
                "pipelineExecutionId": r.execution_id,
                "actionExecutionId": r.action_execution_id,
                "pipelineVersion": r.pipeline_version,
                "stageName": r.stage_name,
                "actionName": r.action_name,
                "startTime": epoch_seconds(r.started_at),
                "lastUpdateTime": epoch_seconds(r.updated_at),
                "status": r.status,
                "input": input,
                "output": output,
            });
            if let Some(by) = &r.updated_by {
                d["updatedBy"] = json!(by);
            }
            d
        })
        .collect();
    let mut out = json!({ "actionExecutionDetails": details });
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRuleTypesInput {}

/// The rule types stage conditions can use here: the ones this server
/// evaluates (`engine::conditions`; other AWS rules are accepted in
/// pipelines but never met). The owner filter can only be AWS.
pub async fn list_rule_types(_cx: Cx, _input: ListRuleTypesInput) -> Result<Value, ApiError> {
    let property = |name: &str, required: bool, description: &str| json!({"name": name, "required": required, "key": true, "secret": false, "queryable": false, "description": description, "type": "String"});
    let rule_type = |provider: &str, properties: Vec<Value>| {
        json!({
            "id": {"category": "Rule", "owner": "AWS", "provider": provider, "version": "1"},
            "ruleConfigurationProperties": properties,
            "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 0},
        })
    };
    Ok(json!({ "ruleTypes": [
        rule_type("VariableCheck", vec![
            property("Variable", true, "The variable to check, e.g. #{SourceVariables.BranchName} or #{variables.env}"),
            property("Operator", true, "EQ, NE, CONTAINS or MATCHES (a regular expression)"),
            property("Value", true, "The value the variable is compared with"),
        ]),
        rule_type("DeploymentWindow", vec![
            property("Cron", true, "When deployments are allowed: seconds minutes hours day-of-month month day-of-week [year], \
                weekdays 1-7 = SUN-SAT, e.g. '* * 9-16 ? * MON-FRI *'; outside it the rule waits until the window opens"),
            property("TimeZone", false, "The IANA time zone of Cron, e.g. Europe/Berlin (default UTC)"),
        ]),
    ] }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRuleExecutionsInput {
    pipeline_name: String,
    filter: Option<Value>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// What the rules of stage conditions came to, newest first.
/// Errors: PipelineNotFoundException, PipelineExecutionNotFoundException,
/// InvalidNextTokenException.
pub async fn list_rule_executions(cx: Cx, input: ListRuleExecutionsInput) -> Result<Value, ApiError> {
    let pipeline = input.pipeline_name.as_str();
    let limit = input.max_results.unwrap_or(100);
    let before = seq_token(input.next_token.as_deref())?;
    let mut conn = cx.db().acquire().await?;
    let execution = execution_filter(&mut conn, &cx, pipeline, input.filter.as_ref()).await?;
    let mut rows = rule_executions::list(&mut conn, &cx.account_id, pipeline, execution, before, limit + 1).await?;
    let next = more(&mut rows, limit, |r| r.seq);
    let details: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut result = json!({});
            if let Some(summary) = &r.summary {
                result["externalExecutionSummary"] = json!(summary);
            }
            json!({
                "pipelineExecutionId": r.execution_id,
                "ruleExecutionId": r.rule_execution_id,
                "pipelineVersion": r.pipeline_version,
                "stageName": r.stage_name,
                "ruleName": r.rule_name,
                "startTime": epoch_seconds(r.created_at),
                "lastUpdateTime": epoch_seconds(r.updated_at),
                "status": r.api_status(),
                "input": r.input,
                "output": {"executionResult": result},
            })
        })
        .collect();
    let mut out = json!({ "ruleExecutionDetails": details });
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDeployActionExecutionTargetsInput {
    pipeline_name: Option<String>,
    action_execution_id: String,
}

/// Errors: PipelineNotFoundException, ActionExecutionNotFoundException.
pub async fn list_deploy_action_execution_targets(cx: Cx, input: ListDeployActionExecutionTargetsInput) -> Result<Value, ApiError> {
    let mut conn = cx.db().acquire().await?;
    if let Some(p) = &input.pipeline_name
        && !pipelines::exists(&mut conn, &cx.account_id, p).await?
    {
        return Err(engine::not_found_error(p));
    }
    let missing = || {
        ApiError::new(
            ErrorCode::ActionExecutionNotFoundException,
            format!("Action execution '{}' was not found", input.action_execution_id),
        )
    };
    let id = Uuid::parse_str(&input.action_execution_id).map_err(|_| missing())?;
    let owner = store::action_pipeline(&mut conn, &cx.account_id, id).await?.ok_or_else(missing)?;
    if input.pipeline_name.as_ref().is_some_and(|p| *p != owner) {
        return Err(missing());
    }
    // Deployment targets come from AWS deploy providers, which this server does not run.
    Ok(json!({ "targets": [] }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideStageConditionInput {
    pipeline_name: String,
    stage_name: String,
    pipeline_execution_id: String,
    condition_type: String,
}

/// Ends the wait of an execution for its stage's entry or success condition
/// whose rules are in progress (a closed DeploymentWindow): the condition
/// counts as met, shows Overridden, and the execution goes on. Errors:
/// PipelineNotFoundException, StageNotFoundException,
/// PipelineExecutionNotFoundException, ConditionNotOverridableException.
pub async fn override_stage_condition(cx: Cx, input: OverrideStageConditionInput) -> Result<Empty, ApiError> {
    let (pipeline, stage, kind) = (input.pipeline_name.as_str(), input.stage_name.as_str(), input.condition_type.as_str());
    let (mut tx, locked, decl) = lock(&cx, pipeline).await?;
    if !decl.stages.iter().any(|s| s.name == stage) {
        return Err(stage_not_found(stage, pipeline));
    }
    let id = parse_execution_id(&input.pipeline_execution_id, pipeline)?;
    let e = store::get_execution(&mut tx, &cx.account_id, pipeline, id)
        .await?
        .ok_or_else(|| execution_not_found(&input.pipeline_execution_id, pipeline))?;
    let scope = cx.scope(pipeline, locked);
    let its_stage =
        engine::declaration(&mut tx, scope, e.pipeline_version).await?.stages.get(e.stage_index as usize).map(|s| s.name.clone());
    let waiting = e.status == "InProgress"
        && e.stage_phase == "Running"
        && its_stage.as_deref() == Some(stage)
        && e.checking.as_deref() == Some(kind);
    if !waiting {
        return Err(ApiError::new(
            ErrorCode::ConditionNotOverridableException,
            format!("No {kind} condition of stage '{stage}' is in progress for execution {id}"),
        ));
    }
    let summary = format!("Overridden by {}", cx.caller_arn());
    rule_executions::close_open(&mut tx, &cx.account_id, pipeline, id, Some((stage, kind)), "Overridden", Some(&summary)).await?;
    engine::advance(&mut tx, scope, vec![id]).await?;
    tx.commit().await?;
    Ok(Empty {})
}
