//! CreatePipeline, GetPipeline, UpdatePipeline, DeletePipeline, ListPipelines.
//!
//! Every version is kept: a new pipeline is version 1, each update stores the
//! next version, and GetPipeline(version=N) returns version N as it was.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Cx, epoch_seconds, page_token};
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::pipelines::{self, PipelineRow};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePipelineInput {
    pipeline: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePipelineOutput {
    pipeline: Value,
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

#[derive(Serialize)]
pub struct Empty {}

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

/// Errors: ValidationException, PipelineNameInUseException.
pub async fn create_pipeline(cx: Cx, input: CreatePipelineInput) -> Result<CreatePipelineOutput, ApiError> {
    let pipeline = with_version(input.pipeline, 1);
    let name = name_of(&pipeline).to_owned();
    let mut tx = cx.pool().begin().await?;
    if !pipelines::insert(&mut tx, &cx.account_id, &name, &pipeline).await? {
        return Err(ApiError::new(
            ErrorCode::PipelineNameInUseException,
            format!("A pipeline with the name '{name}' already exists in this account"),
        ));
    }
    tx.commit().await?;
    Ok(CreatePipelineOutput { pipeline })
}

/// Errors: ValidationException, PipelineNotFoundException, PipelineVersionNotFoundException.
pub async fn get_pipeline(cx: Cx, input: GetPipelineInput) -> Result<GetPipelineOutput, ApiError> {
    let mut conn = cx.pool().acquire().await?;
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
    Ok(GetPipelineOutput {
        metadata: PipelineMetadata {
            pipeline_arn: pipeline_arn(&cx, &name),
            created: epoch_seconds(created_at),
            updated: epoch_seconds(updated_at),
        },
        pipeline: declaration,
    })
}

/// Errors: ValidationException, PipelineNotFoundException.
pub async fn update_pipeline(cx: Cx, input: UpdatePipelineInput) -> Result<UpdatePipelineOutput, ApiError> {
    let name = name_of(&input.pipeline).to_owned();
    let mut tx = cx.pool().begin().await?;
    let row = pipelines::insert_next_version(&mut tx, &cx.account_id, &name, |v| with_version(input.pipeline.clone(), v))
        .await?
        .ok_or_else(|| not_found(&name))?;
    tx.commit().await?;
    Ok(UpdatePipelineOutput { pipeline: row.declaration })
}

/// Deleting a pipeline that does not exist succeeds, as in AWS.
pub async fn delete_pipeline(cx: Cx, input: DeletePipelineInput) -> Result<Empty, ApiError> {
    let mut conn = cx.pool().acquire().await?;
    pipelines::delete(&mut conn, &cx.account_id, &input.name).await?;
    Ok(Empty {})
}

/// Errors: ValidationException, InvalidNextTokenException.
pub async fn list_pipelines(cx: Cx, input: ListPipelinesInput) -> Result<ListPipelinesOutput, ApiError> {
    let limit = input.max_results.unwrap_or(1000);
    let after = page_token::decode(input.next_token.as_deref())?;
    let mut conn = cx.pool().acquire().await?;
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
