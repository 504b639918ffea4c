//! CreatePipeline, GetPipeline, UpdatePipeline, DeletePipeline, ListPipelines.
//!
//! Every version is kept: a new pipeline is version 1, each update stores the
//! next version, and GetPipeline(version=N) returns version N as it was.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::HashMap;

use sqlx::PgConnection;

use super::action_types::{lock_account, types_for_account};
use super::tags::{self, Resource, ResourceArn, Tag};
use super::{Cx, Empty, epoch_seconds, page_token};
use crate::crypto::{SEALED_PREFIX, configuration_aad};
use crate::pipeline::action_types::{ActionType, SECRET_MASK};
use crate::pipeline::{ActionTypeId, PipelineDeclaration, validate};
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::executions::lock_pipeline;
use crate::store::pipelines::{self, PipelineRow};

/// Quota: pipelines per account (DIGEST §5.1).
pub const MAX_PIPELINES: i64 = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePipelineInput {
    pipeline: Value,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePipelineOutput {
    pipeline: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPipelineInput {
    name: String,
    version: Option<i32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPipelineOutput {
    pipeline: Value,
    metadata: PipelineMetadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineMetadata {
    pipeline_arn: String,
    created: f64,
    updated: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePipelineInput {
    pipeline: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePipelineOutput {
    pipeline: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletePipelineInput {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPipelinesInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPipelinesOutput {
    pipelines: Vec<PipelineSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSummary {
    name: String,
    version: i32,
    pipeline_type: String,
    execution_mode: String,
    created: f64,
    updated: f64,
}

pub fn pipeline_arn(cx: &Cx, name: &str) -> String {
    format!("arn:aws:codepipeline:{}:{}:{}", cx.region(), cx.account_id, name)
}

fn name_of(pipeline: &Value) -> &str {
    pipeline["name"].as_str().unwrap_or_default()
}

/// The declaration as stored: the caller's, with the version we assigned.
fn with_version(mut pipeline: Value, version: i32) -> Value {
    pipeline["version"] = Value::from(version);
    pipeline
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::PipelineNotFoundException, format!("Account does not have a pipeline with name '{name}'"))
}

/// Parses the typed view and applies the structure rules against the
/// action types this account may use.
async fn check_structure(cx: &Cx, conn: &mut PgConnection, pipeline: &Value) -> Result<HashMap<ActionTypeId, ActionType>, ApiError> {
    let typed: PipelineDeclaration =
        serde_json::from_value(pipeline.clone()).map_err(|e| ApiError::serialization(format!("pipeline: {e}")))?;
    let types = types_for_account(conn, &cx.account_id, false).await?;
    validate::validate(&typed, &types, cx.region())?;
    Ok(types)
}

/// The configuration values of `pipeline` whose property is secret for the
/// action's type, as (stage, action, key) → value.
fn secret_values(pipeline: &Value, types: &HashMap<ActionTypeId, ActionType>) -> Vec<((String, String, String), String)> {
    let mut found = Vec::new();
    for stage in pipeline["stages"].as_array().into_iter().flatten() {
        for action in stage["actions"].as_array().into_iter().flatten() {
            let Ok(id) = serde_json::from_value::<ActionTypeId>(action["actionTypeId"].clone()) else { continue };
            let Some(t) = types.get(&id) else { continue };
            for (key, value) in action["configuration"].as_object().into_iter().flatten() {
                if t.is_secret(key) {
                    let at = (
                        stage["name"].as_str().unwrap_or_default().to_owned(),
                        action["name"].as_str().unwrap_or_default().to_owned(),
                        key.clone(),
                    );
                    found.push((at, value.as_str().unwrap_or_default().to_owned()));
                }
            }
        }
    }
    found
}

/// Replaces every secret configuration value with the mask. Only the job
/// APIs ever show secrets.
fn mask_secrets(mut pipeline: Value, types: &HashMap<ActionTypeId, ActionType>) -> Value {
    let secrets = secret_values(&pipeline, types);
    for ((stage, action, key), _) in secrets {
        if let Some(v) = config_value_mut(&mut pipeline, &stage, &action, &key) {
            *v = Value::String(SECRET_MASK.into());
        }
    }
    pipeline
}

fn config_value_mut<'a>(pipeline: &'a mut Value, stage: &str, action: &str, key: &str) -> Option<&'a mut Value> {
    pipeline["stages"].as_array_mut()?.iter_mut().find(|s| s["name"] == stage)?["actions"]
        .as_array_mut()?
        .iter_mut()
        .find(|a| a["name"] == action)?["configuration"]
        .get_mut(key)
}

/// Seals every secret configuration value not sealed yet: stored
/// declarations hold them only sealed under the master key, and jobs carry
/// them sealed to the job APIs, which open them (`api::jobs::for_worker`).
fn seal_secrets(mut pipeline: Value, types: &HashMap<ActionTypeId, ActionType>, cx: &Cx) -> Value {
    for ((stage, action, key), value) in secret_values(&pipeline, types) {
        if value.starts_with(SEALED_PREFIX) {
            continue;
        }
        if let Some(slot) = config_value_mut(&mut pipeline, &stage, &action, &key) {
            *slot = Value::String(cx.app.secrets.seal_value(&value, &configuration_aad(&cx.account_id)));
        }
    }
    pipeline
}

/// An update that sends the mask back for a secret keeps the stored value of
/// the same stage, action and key.
fn restore_masked_secrets(mut pipeline: Value, previous: &Value, types: &HashMap<ActionTypeId, ActionType>) -> Value {
    let old: HashMap<_, _> = secret_values(previous, types).into_iter().collect();
    for (at, value) in secret_values(&pipeline, types) {
        if value == SECRET_MASK
            && let (Some(kept), Some(slot)) = (old.get(&at), config_value_mut(&mut pipeline, &at.0, &at.1, &at.2))
        {
            *slot = Value::String(kept.clone());
        }
    }
    pipeline
}

async fn count_pipelines(conn: &mut PgConnection, account_id: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from pipeline where account_id = $1").bind(account_id).fetch_one(conn).await?;
    Ok(n)
}

/// Errors: ValidationException, PipelineNameInUseException, InvalidStructureException,
/// InvalidStageDeclarationException, InvalidActionDeclarationException,
/// InvalidBlockerDeclarationException, LimitExceededException.
pub async fn create_pipeline(cx: Cx, input: CreatePipelineInput) -> Result<CreatePipelineOutput, ApiError> {
    let pipeline = with_version(input.pipeline, 1);
    let name = name_of(&pipeline).to_owned();
    tags::validate_tags(&input.tags)?;
    let mut tx = cx.db().begin().await?;
    let types = check_structure(&cx, &mut tx, &pipeline).await?;
    lock_account(&mut tx, &cx.account_id, "pipeline").await?;
    if count_pipelines(&mut tx, &cx.account_id).await? >= MAX_PIPELINES {
        return Err(ApiError::new(
            ErrorCode::LimitExceededException,
            format!("The number of pipelines in this account has reached the limit of {MAX_PIPELINES}"),
        ));
    }
    if !pipelines::insert(&mut tx, &cx.account_id, &name, &seal_secrets(pipeline.clone(), &types, &cx)).await? {
        return Err(ApiError::new(
            ErrorCode::PipelineNameInUseException,
            format!("A pipeline with the name '{name}' already exists in this account"),
        ));
    }
    let arn = ResourceArn::of(&cx, Resource::Pipeline { name: name.clone() }).to_string();
    // A pipeline of the same name deleted earlier may have left no tags, but
    // start clean regardless.
    tags::replace_tags(&mut tx, &cx.account_id, &arn, &input.tags).await?;
    // As in AWS, a new pipeline runs once straight away.
    let first = crate::engine::Start::triggered_by("CreatePipeline", Some(cx.caller_arn()));
    let locked = lock_pipeline(&mut tx, &cx.account_id, &name).await?.ok_or_else(|| not_found(&name))?;
    crate::engine::start_execution(&mut tx, cx.scope(&name, locked), 1, first).await?;
    tx.commit().await?;
    Ok(CreatePipelineOutput { pipeline: mask_secrets(pipeline, &types), tags: input.tags })
}

/// Errors: ValidationException, PipelineNotFoundException, PipelineVersionNotFoundException.
pub async fn get_pipeline(cx: Cx, input: GetPipelineInput) -> Result<GetPipelineOutput, ApiError> {
    let mut conn = cx.db().acquire().await?;
    let Some(row) = pipelines::get(&mut conn, &cx.account_id, &input.name, input.version).await? else {
        if input.version.is_some() && pipelines::exists(&mut conn, &cx.account_id, &input.name).await? {
            return Err(ApiError::new(
                ErrorCode::PipelineVersionNotFoundException,
                format!("Pipeline '{}' has no version {}", input.name, input.version.unwrap_or_default()),
            ));
        }
        return Err(not_found(&input.name));
    };
    let PipelineRow { name, declaration, created_at, updated_at, .. } = row;
    let types = types_for_account(&mut conn, &cx.account_id, true).await?;
    Ok(GetPipelineOutput {
        metadata: PipelineMetadata {
            pipeline_arn: pipeline_arn(&cx, &name),
            created: epoch_seconds(created_at),
            updated: epoch_seconds(updated_at),
        },
        pipeline: mask_secrets(declaration, &types),
    })
}

/// Errors: ValidationException, PipelineNotFoundException, and the structure
/// errors of CreatePipeline.
pub async fn update_pipeline(cx: Cx, input: UpdatePipelineInput) -> Result<UpdatePipelineOutput, ApiError> {
    let name = name_of(&input.pipeline).to_owned();
    let mut tx = cx.db().begin().await?;
    let previous = pipelines::get(&mut tx, &cx.account_id, &name, None).await?.ok_or_else(|| not_found(&name))?;
    let all_types = types_for_account(&mut tx, &cx.account_id, true).await?;
    let pipeline = restore_masked_secrets(input.pipeline, &previous.declaration, &all_types);
    check_structure(&cx, &mut tx, &pipeline).await?;
    let pipeline = seal_secrets(pipeline, &all_types, &cx);
    let row = pipelines::insert_next_version(&mut tx, &cx.account_id, &name, |v| with_version(pipeline.clone(), v))
        .await?
        .ok_or_else(|| not_found(&name))?;
    let locked = lock_pipeline(&mut tx, &cx.account_id, &name).await?.ok_or_else(|| not_found(&name))?;
    crate::engine::cancel_active(&mut tx, cx.scope(&name, locked)).await?;
    tx.commit().await?;
    Ok(UpdatePipelineOutput { pipeline: mask_secrets(row.declaration, &all_types) })
}

/// Deleting a pipeline that does not exist succeeds, as in AWS.
pub async fn delete_pipeline(cx: Cx, input: DeletePipelineInput) -> Result<Empty, ApiError> {
    let mut tx = cx.db().begin().await?;
    pipelines::delete(&mut tx, &cx.account_id, &input.name).await?;
    let arn = ResourceArn::of(&cx, Resource::Pipeline { name: input.name.clone() }).to_string();
    tags::delete_tags_of(&mut tx, &cx.account_id, &arn).await?;
    tx.commit().await?;
    Ok(Empty {})
}

/// Errors: ValidationException, InvalidNextTokenException.
pub async fn list_pipelines(cx: Cx, input: ListPipelinesInput) -> Result<ListPipelinesOutput, ApiError> {
    let limit = input.max_results.unwrap_or(1000);
    let after = page_token::decode(input.next_token.as_deref())?;
    let mut conn = cx.db().acquire().await?;
    // One extra row tells whether another page exists.
    let mut rows = pipelines::list(&mut conn, &cx.account_id, after.as_deref(), limit + 1).await?;
    let next_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| page_token::encode(&r.name))
    } else {
        None
    };
    let pipelines = rows
        .into_iter()
        .map(|r| PipelineSummary {
            pipeline_type: r.declaration["pipelineType"].as_str().unwrap_or("V1").to_owned(),
            execution_mode: r.declaration["executionMode"].as_str().unwrap_or("SUPERSEDED").to_owned(),
            name: r.name,
            version: r.version,
            created: epoch_seconds(r.created_at),
            updated: epoch_seconds(r.updated_at),
        })
        .collect();
    Ok(ListPipelinesOutput { pipelines, next_token })
}
