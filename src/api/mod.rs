//! Operation handlers, one module per resource family. Handlers take typed
//! input and return typed output; they never see HTTP (the envelope in
//! [`crate::protocol`] does that) and own the transaction of any change.

pub mod action_types;
pub mod executions;
pub mod jobs;
pub mod pipelines;
pub mod tags;
pub mod third_party;
pub mod webhooks;

use crate::store::executions::LockedPipeline;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::App;
use crate::protocol::error::ApiError;
use crate::protocol::target::Operation;

/// The context of one authenticated call.
#[derive(Clone)]
pub struct Cx {
    pub app: Arc<App>,
    pub account_id: String,
    pub access_key_id: String,
}

impl Cx {
    pub fn db(&self) -> &crate::store::db::Db {
        &self.app.db
    }

    pub fn region(&self) -> &str {
        &self.app.config.region
    }

    /// Who made the call, as shown in `lastChangedBy` / `lastUpdatedBy`.
    pub fn caller_arn(&self) -> String {
        format!("arn:aws:iam::{}:user/{}", self.account_id, self.access_key_id)
    }

    /// The engine's view of a pipeline this call has locked.
    pub fn scope<'a>(&'a self, pipeline: &'a str, locked: LockedPipeline) -> crate::engine::Scope<'a> {
        crate::engine::app_scope(&self.app, &self.account_id, pipeline, locked.generation)
    }
}

/// Routes a validated body to its operation's handler.
pub async fn dispatch(cx: Cx, operation: Operation, input: Value) -> Result<Value, ApiError> {
    use Operation::*;
    match operation {
        CreatePipeline => call(cx, input, pipelines::create_pipeline).await,
        GetPipeline => call(cx, input, pipelines::get_pipeline).await,
        UpdatePipeline => call(cx, input, pipelines::update_pipeline).await,
        DeletePipeline => call(cx, input, pipelines::delete_pipeline).await,
        ListPipelines => call(cx, input, pipelines::list_pipelines).await,
        CreateCustomActionType => call(cx, input, action_types::create_custom_action_type).await,
        DeleteCustomActionType => call(cx, input, action_types::delete_custom_action_type).await,
        ListActionTypes => call(cx, input, action_types::list_action_types).await,
        GetActionType => call(cx, input, action_types::get_action_type).await,
        UpdateActionType => call(cx, input, action_types::update_action_type).await,
        StartPipelineExecution => call(cx, input, executions::start_pipeline_execution).await,
        StopPipelineExecution => call(cx, input, executions::stop_pipeline_execution).await,
        RetryStageExecution => call(cx, input, executions::retry_stage_execution).await,
        PutActionRevision => call(cx, input, executions::put_action_revision).await,
        PutApprovalResult => call(cx, input, executions::put_approval_result).await,
        DisableStageTransition => call(cx, input, executions::disable_stage_transition).await,
        EnableStageTransition => call(cx, input, executions::enable_stage_transition).await,
        GetPipelineState => call(cx, input, executions::get_pipeline_state).await,
        GetPipelineExecution => call(cx, input, executions::get_pipeline_execution).await,
        ListPipelineExecutions => call(cx, input, executions::list_pipeline_executions).await,
        ListActionExecutions => call(cx, input, executions::list_action_executions).await,
        ListRuleTypes => call(cx, input, executions::list_rule_types).await,
        ListRuleExecutions => call(cx, input, executions::list_rule_executions).await,
        ListDeployActionExecutionTargets => call(cx, input, executions::list_deploy_action_execution_targets).await,
        OverrideStageCondition => call(cx, input, executions::override_stage_condition).await,
        RollbackStage => call(cx, input, executions::rollback_stage).await,
        PollForJobs => call(cx, input, jobs::poll_for_jobs).await,
        AcknowledgeJob => call(cx, input, jobs::acknowledge_job).await,
        GetJobDetails => call(cx, input, jobs::get_job_details).await,
        PutJobSuccessResult => call(cx, input, jobs::put_job_success_result).await,
        PutJobFailureResult => call(cx, input, jobs::put_job_failure_result).await,
        TagResource => call(cx, input, tags::tag_resource).await,
        UntagResource => call(cx, input, tags::untag_resource).await,
        ListTagsForResource => call(cx, input, tags::list_tags_for_resource).await,
        PutWebhook => call(cx, input, webhooks::put_webhook).await,
        ListWebhooks => call(cx, input, webhooks::list_webhooks).await,
        DeleteWebhook => call(cx, input, webhooks::delete_webhook).await,
        RegisterWebhookWithThirdParty => call(cx, input, webhooks::register_webhook_with_third_party).await,
        DeregisterWebhookWithThirdParty => call(cx, input, webhooks::deregister_webhook_with_third_party).await,
        PollForThirdPartyJobs => call(cx, input, third_party::poll_for_third_party_jobs).await,
        GetThirdPartyJobDetails => call(cx, input, third_party::get_third_party_job_details).await,
        AcknowledgeThirdPartyJob => call(cx, input, third_party::acknowledge_third_party_job).await,
        PutThirdPartyJobSuccessResult => call(cx, input, third_party::put_third_party_job_success_result).await,
        PutThirdPartyJobFailureResult => call(cx, input, third_party::put_third_party_job_failure_result).await,
    }
}

/// The output of operations whose output shape is empty.
#[derive(Serialize)]
pub struct Empty {}

/// Deserialises the input shape, runs the handler, serialises the output.
async fn call<I, O, F, Fut>(cx: Cx, input: Value, handler: F) -> Result<Value, ApiError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(Cx, I) -> Fut,
    Fut: Future<Output = Result<O, ApiError>>,
{
    let input: I = serde_json::from_value(input).map_err(|e| ApiError::serialization(e.to_string()))?;
    let output = handler(cx, input).await?;
    serde_json::to_value(output).map_err(ApiError::internal)
}

/// Timestamps go out as epoch seconds with milliseconds, as AWS sends them.
pub fn epoch_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// Opaque pagination tokens: the sort key of the last item returned.
pub mod page_token {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use crate::protocol::error::{ApiError, ErrorCode};

    pub fn encode(key: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{key}"))
    }

    pub fn decode(token: Option<&str>) -> Result<Option<String>, ApiError> {
        let Some(token) = token else { return Ok(None) };
        URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("v1:").map(str::to_owned))
            .map(Some)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidNextTokenException, "The next token is not valid."))
    }
}
