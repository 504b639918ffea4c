//! Job workers for partner (owner ThirdParty) action types:
//! PollForThirdPartyJobs, GetThirdPartyJobDetails, AcknowledgeThirdPartyJob,
//! PutThirdPartyJobSuccessResult, PutThirdPartyJobFailureResult
//! (SEMANTICS §14).
//!
//! The lifecycle and the nonce are those of custom jobs ([`super::jobs`]),
//! whose helpers these handlers share. What differs: a poll answers only
//! `{clientId, jobId}`; every other call carries a `clientToken`, checked
//! against the argon2 hashes of the calling account's clients
//! ([`crate::store::third_party`]); the job data shown has no `pipelineArn`
//! or `pipelineExecutionId`. Custom and third-party jobs never cross: each
//! family's calls answer JobNotFoundException for the other's jobs.

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::jobs::{self, ExecutionDetails, FailureDetails, PutJobSuccessResultInput, job_not_found};
use super::{Cx, Empty};
use crate::pipeline::ActionTypeId;
use crate::pipeline::action_types;
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::jobs::{self as job_store, JobRow};
use crate::store::third_party as clients;

const OWNER: &str = "ThirdParty";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollForThirdPartyJobsInput {
    action_type_id: ActionTypeId,
    max_batch_size: Option<i64>,
}

/// Errors: ValidationException, ActionTypeNotFoundException.
pub async fn poll_for_third_party_jobs(cx: Cx, input: PollForThirdPartyJobsInput) -> Result<Value, ApiError> {
    let id = &input.action_type_id;
    if id.owner == OWNER && action_types::find_builtin(id).is_some() {
        return Err(ApiError::validation(format!("{id} is built in and run by this server, not by job workers")));
    }
    if id.owner != OWNER {
        return Err(jobs::wrong_owner(id, OWNER));
    }
    let mut conn = cx.db().acquire().await?;
    let polled =
        job_store::poll_third_party(&mut conn, &cx.account_id, id, input.max_batch_size.unwrap_or(1), super::jobs::claim(&cx)).await?;
    if !polled.type_live {
        return Err(jobs::type_not_found(id));
    }
    let client_id = polled.client_id.ok_or_else(|| {
        ApiError::validation(format!(
            "Account {} has no third-party client: an operator must issue a clientId/clientToken pair with \
             `millrace admin create-third-party-client --account-id {}` before partner jobs can be polled",
            cx.account_id, cx.account_id
        ))
    })?;
    let jobs: Vec<Value> = polled.jobs.into_iter().map(|j| json!({"clientId": client_id, "jobId": j})).collect();
    Ok(json!({"jobs": jobs}))
}

fn invalid_token() -> ApiError {
    ApiError::new(ErrorCode::InvalidClientTokenException, "The client token is not valid for this account's third-party jobs")
}

/// Checks `token` against the account's clients with one argon2
/// verification, off the async threads.
async fn verify_client(cx: &Cx, token: &str) -> Result<(), ApiError> {
    let client_id = clients::client_id_of(token).ok_or_else(invalid_token)?;
    let mut conn = cx.db().acquire().await?;
    let hash = clients::token_hash(&mut conn, &cx.account_id, client_id).await?.ok_or_else(invalid_token)?;
    drop(conn);
    let token = token.to_owned();
    let ok = tokio::task::spawn_blocking(move || clients::verify_token(&token, &hash)).await.map_err(ApiError::internal)?;
    if ok { Ok(()) } else { Err(invalid_token()) }
}

/// A third-party job of this account that the token may act on.
async fn authorised_job(cx: &Cx, job_id: &str, token: &str) -> Result<JobRow, ApiError> {
    let job = jobs::find_job(cx, job_id).await?;
    if job.owner != OWNER {
        return Err(job_not_found(job_id));
    }
    verify_client(cx, token).await?;
    Ok(job)
}

/// Job data as a partner sees it: no `pipelineArn` / `pipelineExecutionId`
/// (the model's PipelineContext doc); everything else, secrets included.
fn partner_view(mut data: Value) -> Value {
    if let Some(context) = data.get_mut("pipelineContext").and_then(Value::as_object_mut) {
        context.remove("pipelineArn");
        context.remove("pipelineExecutionId");
    }
    data
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetThirdPartyJobDetailsInput {
    job_id: String,
    client_token: String,
}

/// Errors: JobNotFoundException, ValidationException,
/// InvalidClientTokenException, InvalidJobException (an id that is not a job
/// id of this server).
pub async fn get_third_party_job_details(cx: Cx, input: GetThirdPartyJobDetailsInput) -> Result<Value, ApiError> {
    if Uuid::try_parse(&input.job_id).is_err() {
        return Err(ApiError::new(ErrorCode::InvalidJobException, format!("'{}' is not a valid job id", input.job_id)));
    }
    let job = authorised_job(&cx, &input.job_id, &input.client_token).await?;
    let mut details = json!({"id": job.job_id, "data": crate::api::jobs::for_worker(&cx, partner_view(job.data))?});
    if let Some(nonce) = job.nonce {
        details["nonce"] = json!(nonce);
    }
    Ok(json!({"jobDetails": details}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcknowledgeThirdPartyJobInput {
    job_id: String,
    nonce: String,
    client_token: String,
}

/// Errors: ValidationException, InvalidNonceException, JobNotFoundException,
/// InvalidClientTokenException.
pub async fn acknowledge_third_party_job(cx: Cx, input: AcknowledgeThirdPartyJobInput) -> Result<jobs::AcknowledgeJobOutput, ApiError> {
    let job = authorised_job(&cx, &input.job_id, &input.client_token).await?;
    jobs::acknowledge(&cx, &job, &input.nonce).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutThirdPartyJobSuccessResultInput {
    job_id: String,
    client_token: String,
    current_revision: Option<Value>,
    continuation_token: Option<String>,
    execution_details: Option<ExecutionDetails>,
}

/// Errors: ValidationException, JobNotFoundException,
/// InvalidJobStateException, InvalidClientTokenException.
pub async fn put_third_party_job_success_result(cx: Cx, input: PutThirdPartyJobSuccessResultInput) -> Result<Empty, ApiError> {
    let job = authorised_job(&cx, &input.job_id, &input.client_token).await?;
    let result = PutJobSuccessResultInput {
        job_id: input.job_id,
        current_revision: input.current_revision,
        continuation_token: input.continuation_token,
        execution_details: input.execution_details,
        output_variables: None,
    };
    jobs::succeed(&cx, &job.job_id.to_string(), OWNER, result).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutThirdPartyJobFailureResultInput {
    job_id: String,
    client_token: String,
    failure_details: FailureDetails,
}

/// Errors: ValidationException, JobNotFoundException,
/// InvalidJobStateException, InvalidClientTokenException.
pub async fn put_third_party_job_failure_result(cx: Cx, input: PutThirdPartyJobFailureResultInput) -> Result<Empty, ApiError> {
    let job = authorised_job(&cx, &input.job_id, &input.client_token).await?;
    jobs::fail(&cx, &job.job_id.to_string(), OWNER, input.failure_details).await?;
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_do_not_see_the_pipeline_arn_or_execution_id() {
        let data = json!({
            "actionConfiguration": {"configuration": {"Token": "s3cret"}},
            "pipelineContext": {
                "pipelineName": "p", "stage": {"name": "S"},
                "action": {"name": "A", "actionExecutionId": "x"},
                "pipelineArn": "arn:aws:codepipeline:us-east-1:111111111111:p",
                "pipelineExecutionId": "e",
            },
        });
        let seen = partner_view(data);
        assert_eq!(
            seen["pipelineContext"],
            json!({"pipelineName": "p", "stage": {"name": "S"}, "action": {"name": "A", "actionExecutionId": "x"}})
        );
        assert_eq!(seen["actionConfiguration"]["configuration"]["Token"], "s3cret");
    }
}
