//! Job workers for custom action types: PollForJobs, AcknowledgeJob,
//! GetJobDetails, PutJobSuccessResult, PutJobFailureResult.
//!
//! Jobs move Queued → Dispatched (claimed by a poll, which issues a nonce) →
//! InProgress (acknowledged with that nonce) → Succeeded / Failed / TimedOut.
//! A dispatched job nobody acknowledges goes back to Queued (the sweeper),
//! which voids its nonce. These calls are the only ones that show secret
//! configuration values.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

use super::{Cx, Empty};
use crate::api::executions::parse_timestamp;
use crate::crypto::SEALED_PREFIX;
use crate::engine;
use crate::pipeline::ActionTypeId;
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::action_types::{self as type_store, ActionTypeRow};
use crate::store::batch::Lane;
use crate::store::db::{Conn, Tx};
use crate::store::executions::{self as store, ActionUpdate};
use crate::store::jobs::{self, EndUnlocked, EndedIn, JobEnd, JobRow, Then};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollForJobsInput {
    action_type_id: ActionTypeId,
    max_batch_size: Option<i64>,
    #[serde(default)]
    query_param: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct PollForJobsOutput {
    jobs: Vec<Value>,
}

pub fn type_not_found(id: &ActionTypeId) -> ApiError {
    ApiError::new(ErrorCode::ActionTypeNotFoundException, format!("{id} was not found or has been deleted"))
}

/// The value jobs must have for a poll with `query_param` of type `id`,
/// whose queryable property is `queryable` (None: it has none).
fn query_value(id: &ActionTypeId, queryable: Option<&str>, query_param: &BTreeMap<String, String>) -> Result<Option<String>, ApiError> {
    match (queryable, query_param.len()) {
        (None, 0) => Ok(None),
        (None, _) => Err(ApiError::validation(format!("{id} has no queryable property, so queryParam must be empty"))),
        (Some(name), 1) => query_param
            .get(name)
            .cloned()
            .map(Some)
            .ok_or_else(|| ApiError::validation(format!("queryParam must name the queryable property '{name}' of {id}"))),
        (Some(name), _) => Err(ApiError::validation(format!("queryParam must hold exactly the queryable property '{name}' of {id}"))),
    }
}

pub fn wrong_owner(id: &ActionTypeId, owner: &str) -> ApiError {
    ApiError::validation(format!("Jobs of {id} cannot be polled here: only action types owned by {owner} have jobs for this call"))
}

/// The account's live type `id`: ActionTypeNotFoundException for an
/// unknown or deleted type.
async fn live_type(cx: &Cx, id: &ActionTypeId) -> Result<ActionTypeRow, ApiError> {
    let mut conn = cx.db().acquire().await?;
    type_store::get(&mut conn, &cx.account_id, id).await?.filter(|r| !r.deleted).ok_or_else(|| type_not_found(id))
}

/// How this server claims jobs.
pub fn claim(cx: &Cx) -> jobs::Claim {
    jobs::Claim { async_commit: cx.app.config.async_claim_commit, job_timeout: cx.app.config.job_timeout }
}

/// Errors: ValidationException, ActionTypeNotFoundException.
pub async fn poll_for_jobs(cx: Cx, input: PollForJobsInput) -> Result<PollForJobsOutput, ApiError> {
    let id = &input.action_type_id;
    if id.owner != "Custom" {
        return Err(wrong_owner(id, "Custom"));
    }
    if input.query_param.len() > 1 {
        // Never valid: the type only decides which error.
        let row = live_type(&cx, id).await?;
        let queryable = row.definition.0.queryable_property().map(|p| p.name.as_str());
        return Err(query_value(id, queryable, &input.query_param).expect_err("more than one queryParam never fits"));
    }
    // One statement reads the type and claims if the queryParam fits it;
    // otherwise the type says what is wrong, and nothing was claimed.
    // Concurrent polls of the same jobs share that statement.
    let (key, value) = input.query_param.iter().next().map(|(k, v)| (k.clone(), v.clone())).unzip();
    let limit = input.max_batch_size.unwrap_or(1);
    let lane = (cx.account_id.clone(), id.clone(), key, value);
    let claim = claim(&cx);
    let polled =
        shared(&cx, &cx.app.job_lanes.polls, lane, limit, limit as usize, move |mut conn, (account, id, key, value), limits| async move {
            let polled = jobs::poll_shared(&mut conn, &account, &id, key.as_deref(), value.as_deref(), &limits, claim).await?;
            Ok((conn, polled))
        })
        .await?;
    let queryable = polled.queryable.ok_or_else(|| type_not_found(id))?;
    query_value(id, Some(queryable.as_str()).filter(|q| !q.is_empty()), &input.query_param)?;
    for j in polled.jobs.iter().filter(|j| j.alone) {
        cx.app.alone_jobs.insert(j.job_id);
    }
    let jobs = polled
        .jobs
        .into_iter()
        .map(|j| Ok(json!({"id": j.job_id, "data": for_worker(&cx, j.data)?, "nonce": j.nonce, "accountId": cx.account_id})))
        .collect::<Result<_, ApiError>>()?;
    Ok(PollForJobsOutput { jobs })
}

/// Job data as a worker gets it: secret configuration values opened (the
/// job stores them sealed, as the pipeline does) and the configured
/// artifact store credentials added. Neither is ever stored in the clear.
pub fn for_worker(cx: &Cx, mut data: Value) -> Result<Value, ApiError> {
    let aad = crate::crypto::configuration_aad(&cx.account_id);
    let config = data["actionConfiguration"]["configuration"].as_object_mut().into_iter().flat_map(|m| m.values_mut());
    for value in config {
        if let Some(sealed) = value.as_str().filter(|v| v.starts_with(SEALED_PREFIX)) {
            *value = Value::String(cx.app.secrets.open_value(sealed, &aad).map_err(ApiError::internal)?);
        }
    }
    if let Some(c) = &cx.app.config.artifact_credentials {
        data["artifactCredentials"] =
            json!({"accessKeyId": c.access_key_id, "secretAccessKey": c.secret_access_key, "sessionToken": c.session_token});
    }
    Ok(data)
}

/// The job calls whose statements concurrent requests share
/// (`store::batch`): acknowledgements and the lock-free results (any
/// account's, each checked against its own account, job, owner and nonce
/// or status) and polls (of one account, action type and queryParam).
pub struct JobLanes {
    acks: Arc<Lane<(), jobs::Ack, bool>>,
    polls: Arc<Lane<PollLane, i64, jobs::Poll>>,
    results: Arc<Lane<(), jobs::Ending, EndUnlocked>>,
}

/// Polls share a statement only for the same account, action type and
/// queryParam (key, value).
type PollLane = (String, ActionTypeId, Option<String>, Option<String>);

impl Default for JobLanes {
    fn default() -> JobLanes {
        // A poll asks for at most 100 jobs (maxBatchSize): one statement
        // claims for a few full polls or many small ones.
        JobLanes { acks: Arc::new(Lane::new(100)), polls: Arc::new(Lane::new(100)), results: Arc::new(Lane::new(100)) }
    }
}

/// `item`'s answer from a statement that concurrent calls share in `lane`
/// (`store::batch`): `statement` runs on a connection of the gate, which
/// goes back untested after it, as after any completed statement.
async fn shared<K, I, O, S, F>(cx: &Cx, lane: &Arc<Lane<K, I, O>>, key: K, item: I, weight: usize, statement: S) -> Result<O, ApiError>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    I: Send + 'static,
    O: Send + 'static,
    S: Fn(Conn, K, Vec<I>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Result<(Conn, Vec<O>), sqlx::Error>> + Send + 'static,
{
    let app = cx.app.clone();
    let run = move |key: &K, items| {
        let (app, key) = (app.clone(), key.clone());
        async move {
            let (conn, outputs) = statement(app.db.acquire().await?, key, items).await?;
            conn.release();
            Ok(outputs)
        }
    };
    lane.submit(key, item, weight, run).await.map_err(ApiError::database)
}

/// Jobs this server handed out that are alone in their runOrder group
/// (`job.alone`): their result always moves the stage on, so it goes
/// straight to the transaction instead of first running the one-statement
/// result, which would only answer `last`. A hint, never the truth: the
/// transaction is right for any job, so a result that reaches another
/// replica, or comes after its hint was evicted, only takes one more
/// statement.
#[derive(Default)]
pub struct AloneJobs(Mutex<(HashSet<Uuid>, VecDeque<Uuid>)>);

impl AloneJobs {
    /// Hints kept at most: the oldest go first.
    const CAPACITY: usize = 65_536;

    fn insert(&self, job: Uuid) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (jobs, order) = &mut *guard;
        if jobs.insert(job) {
            order.push_back(job);
        }
        // `take` leaves its ids in `order`; they go here like any other.
        while order.len() > Self::CAPACITY {
            if let Some(old) = order.pop_front() {
                jobs.remove(&old);
            }
        }
    }

    fn take(&self, job: Uuid) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0.remove(&job)
    }
}

/// The stages this server is moving on after a result ([`settle`]), so
/// that results of one stage ending at once do it once, not each in turn
/// (each would wait for the execution's lock, to find nothing to do). A
/// result that finds its stage here may leave it: the other found the
/// stage with nothing in progress, so after this result's commit, and its
/// engine reads what this result wrote. Replicas keep their own.
#[derive(Default)]
pub struct Settling(Mutex<HashSet<(Uuid, String)>>);

impl Settling {
    /// None when the stage is being moved on already.
    fn enter(&self, execution_id: Uuid, stage: &str) -> Option<SettlingGuard<'_>> {
        let key = (execution_id, stage.to_owned());
        let fresh = self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone());
        fresh.then_some(SettlingGuard { settling: self, key })
    }
}

struct SettlingGuard<'a> {
    settling: &'a Settling,
    key: (Uuid, String),
}

impl Drop for SettlingGuard<'_> {
    fn drop(&mut self) {
        self.settling.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
    }
}

pub fn job_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::JobNotFoundException, format!("Job '{id}' was not found"))
}

/// A job of this account, by the id the caller gave.
pub async fn find_job(cx: &Cx, id: &str) -> Result<JobRow, ApiError> {
    let uuid = Uuid::parse_str(id).map_err(|_| job_not_found(id))?;
    let mut conn = cx.db().acquire().await?;
    jobs::get(&mut conn, &cx.account_id, uuid).await?.ok_or_else(|| job_not_found(id))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcknowledgeJobInput {
    job_id: String,
    nonce: String,
}

#[derive(Serialize)]
pub struct AcknowledgeJobOutput {
    status: String,
}

/// Acknowledges for the holder of the current nonce. Acknowledging again
/// answers the job's status, so a worker learns when its job was stopped.
pub async fn acknowledge(cx: &Cx, job: &JobRow, nonce: &str) -> Result<AcknowledgeJobOutput, ApiError> {
    let mut conn = cx.db().acquire().await?;
    let ack = jobs::Ack { account_id: cx.account_id.clone(), job_id: job.job_id, nonce: nonce.to_owned() };
    if jobs::acknowledge(&mut conn, &[ack], None, cx.app.config.job_timeout).await?[0] {
        return Ok(AcknowledgeJobOutput { status: "InProgress".into() });
    }
    let now = jobs::get(&mut conn, &cx.account_id, job.job_id).await?.ok_or_else(|| job_not_found(&job.job_id.to_string()))?;
    if now.nonce.as_deref() != Some(nonce) {
        return Err(ApiError::new(ErrorCode::InvalidNonceException, "The nonce does not match the job's current nonce"));
    }
    Ok(AcknowledgeJobOutput { status: now.status })
}

/// Errors: ValidationException, InvalidNonceException, JobNotFoundException.
pub async fn acknowledge_job(cx: Cx, input: AcknowledgeJobInput) -> Result<AcknowledgeJobOutput, ApiError> {
    // The common case in one statement (shared with concurrent
    // acknowledgements): a custom job of this account, Dispatched with this
    // nonce. Anything else takes the path below, which reads the job to tell
    // the caller what is wrong.
    let uuid = Uuid::parse_str(&input.job_id).map_err(|_| job_not_found(&input.job_id))?;
    let ack = jobs::Ack { account_id: cx.account_id.clone(), job_id: uuid, nonce: input.nonce.clone() };
    let timeout = cx.app.config.job_timeout;
    let acknowledged = shared(&cx, &cx.app.job_lanes.acks, (), ack, 1, move |mut conn, (), acks| async move {
        let done = jobs::acknowledge(&mut conn, &acks, Some("Custom"), timeout).await?;
        Ok((conn, done))
    })
    .await?;
    if acknowledged {
        return Ok(AcknowledgeJobOutput { status: "InProgress".into() });
    }
    let job = find_job(&cx, &input.job_id).await?;
    if job.owner != "Custom" {
        return Err(job_not_found(&input.job_id));
    }
    acknowledge(&cx, &job, &input.nonce).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetJobDetailsInput {
    job_id: String,
}

/// Errors: ValidationException, JobNotFoundException.
pub async fn get_job_details(cx: Cx, input: GetJobDetailsInput) -> Result<Value, ApiError> {
    let job = find_job(&cx, &input.job_id).await?;
    if job.owner != "Custom" {
        return Err(job_not_found(&input.job_id));
    }
    Ok(json!({"jobDetails": {"id": job.job_id, "data": for_worker(&cx, job.data)?, "accountId": cx.account_id}}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutJobSuccessResultInput {
    pub job_id: String,
    pub current_revision: Option<Value>,
    pub continuation_token: Option<String>,
    pub execution_details: Option<ExecutionDetails>,
    pub output_variables: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetails {
    summary: Option<String>,
    external_execution_id: Option<String>,
    percent_complete: Option<i32>,
}

/// Output variables of one action together (DIGEST §5.2).
const MAX_OUTPUT_VARIABLES_BYTES: usize = 122_880;

fn invalid_state(job_id: &str, status: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidJobStateException, format!("Job {job_id} is {status}, not InProgress"))
}

/// Ends a job of `owner` with its action. Most results of a fan-out stage
/// decide nothing about the execution: they take no lock, and their own
/// statement tells whether the stage is left to a sibling still to end or
/// the engine must decide after the commit ([`settle`]). A job alone in its runOrder
/// group always leaves the engine something to decide: [`end_job`], and
/// the engine in the same transaction.
async fn finish(cx: &Cx, job_id: &str, uuid: Uuid, owner: &str, job_status: &str, update: &ActionUpdate<'_>) -> Result<(), ApiError> {
    if !cx.app.alone_jobs.take(uuid) {
        // A statement shared with concurrent results; its connection goes
        // back before end_job takes one.
        let ending = jobs::Ending::new(&cx.account_id, uuid, owner, job_status, update);
        let ended = shared(cx, &cx.app.job_lanes.results, (), ending, 1, |mut conn, (), ends| async move {
            let ended = jobs::end_unlocked(&mut conn, &ends).await?;
            Ok((conn, ended))
        })
        .await?;
        match ended {
            EndUnlocked::NotFound => return Err(job_not_found(job_id)),
            EndUnlocked::NotInProgress(status) => return Err(invalid_state(job_id, &status)),
            EndUnlocked::Ended(None) => return Ok(()),
            EndUnlocked::Ended(Some(stage)) => {
                settle(cx, stage).await;
                return Ok(());
            }
            EndUnlocked::Alone => {}
        }
    }
    Ok(end_job(cx, job_id, uuid, owner, job_status, update).await?.0.commit().await?)
}

/// After a result ended an action of `stage` and committed: once nothing
/// of the stage is in progress, the engine moves the execution on
/// ([`Then`]). The result stands whatever happens here, so a failure is
/// logged, not answered, and the sweeper moves the stage on later
/// (`stranded`). The work runs as its own task so that a worker hanging up
/// cannot cut it off.
async fn settle(cx: &Cx, stage: EndedIn) {
    let EndedIn { pipeline_name, execution_id, stage_name, then } = stage;
    let (busy, mode) = match then {
        // Most results of a fan-out: a sibling still to end takes over.
        Then::Nothing => return,
        Then::Settle { execution_mode } => (Vec::new(), execution_mode),
        Then::AwaitSiblings { ids, execution_mode } => (ids, execution_mode),
    };
    let (app, account_id) = (cx.app.clone(), cx.account_id.clone());
    let task = tokio::spawn(async move {
        if !busy.is_empty() {
            let mut conn = app.db.acquire().await?;
            let ended = store::ended_all(&mut conn, &account_id, &busy).await?;
            conn.release();
            if !ended {
                return Ok(());
            }
        }
        if let Some(_settling) = app.settling.enter(execution_id, &stage_name) {
            engine::settle(&app, &account_id, &pipeline_name, execution_id, &mode).await?;
        }
        Ok::<_, ApiError>(())
    });
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the engine could not move an execution on after a result; the sweeper will"),
        Err(e) => tracing::warn!(error = %e, "the engine's task after a result ended abnormally; the sweeper will move the execution on"),
    }
}

/// Ends a job of `owner` and applies `update` to its action; when that
/// ends the action, the pipeline moves on. One transaction, which the
/// caller commits: BEGIN, the job's end (`jobs::end_job`, which takes the
/// locks), whatever the engine then does (usually nothing: other actions of
/// the stage still run). The flag: whether the action was still in progress.
async fn end_job(
    cx: &Cx,
    job_id: &str,
    uuid: Uuid,
    owner: &str,
    job_status: &str,
    update: &ActionUpdate<'_>,
) -> Result<(Tx, bool), ApiError> {
    let mut tx = cx.db().begin().await?;
    match jobs::end_job(&mut tx, &cx.account_id, uuid, Some(owner), job_status, update).await? {
        JobEnd::NotFound => Err(job_not_found(job_id)),
        JobEnd::NotInProgress(status) => Err(invalid_state(job_id, &status)),
        JobEnd::Ended { action: None, .. } => Ok((tx, false)),
        JobEnd::Ended { pipeline_name, pipeline, action: Some(ended) } => {
            if update.status.is_some() {
                let (execution, stage) = *ended;
                engine::action_ended(&mut tx, cx.scope(&pipeline_name, pipeline), execution, stage).await?;
            }
            Ok((tx, true))
        }
    }
}

/// Completes a job of `owner` with success, or queues its next job when
/// the worker sent a continuation token.
pub async fn succeed(cx: &Cx, job_id: &str, owner: &str, input: PutJobSuccessResultInput) -> Result<(), ApiError> {
    if let Some(vars) = &input.output_variables {
        if input.continuation_token.is_some() {
            return Err(ApiError::validation("outputVariables can only be sent with a result that has no continuationToken"));
        }
        let size: usize = vars.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_OUTPUT_VARIABLES_BYTES {
            return Err(ApiError::new(
                ErrorCode::OutputVariablesSizeExceededException,
                format!("Output variables total {size} bytes; the limit is {MAX_OUTPUT_VARIABLES_BYTES}"),
            ));
        }
    }
    let uuid = Uuid::parse_str(job_id).map_err(|_| job_not_found(job_id))?;
    let details =
        input.execution_details.unwrap_or(ExecutionDetails { summary: None, external_execution_id: None, percent_complete: None });
    let revision = input.current_revision.map(|r| {
        let mut rev = json!({"revisionId": r["revision"], "revisionChangeId": r["changeIdentifier"]});
        if let Some(c) = parse_timestamp(&r["created"]) {
            rev["created"] = json!(crate::api::epoch_seconds(c));
        }
        if !r["revisionSummary"].is_null() {
            rev["revisionSummary"] = r["revisionSummary"].clone();
        }
        rev
    });
    let mut update = ActionUpdate {
        summary: details.summary.as_deref(),
        external_execution_id: details.external_execution_id.as_deref(),
        percent_complete: details.percent_complete,
        revision,
        ..Default::default()
    };
    let Some(token) = input.continuation_token else {
        update.status = Some("Succeeded");
        update.output = input.output_variables.map(|vars| json!({"outputVariables": vars}));
        return finish(cx, job_id, uuid, owner, "Succeeded", &update).await;
    };
    // The action goes on (unless it was stopped): a new job carries the
    // token to the next poll.
    let (mut tx, in_progress) = end_job(cx, job_id, uuid, owner, "Succeeded", &update).await?;
    if in_progress {
        jobs::continue_with(&mut tx, &cx.account_id, uuid, Uuid::now_v7(), &token).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Errors: ValidationException, JobNotFoundException, InvalidJobStateException,
/// OutputVariablesSizeExceededException.
pub async fn put_job_success_result(cx: Cx, input: PutJobSuccessResultInput) -> Result<Empty, ApiError> {
    let job_id = input.job_id.clone();
    succeed(&cx, &job_id, "Custom", input).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutJobFailureResultInput {
    job_id: String,
    failure_details: FailureDetails,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureDetails {
    #[serde(rename = "type")]
    kind: String,
    message: String,
    external_execution_id: Option<String>,
}

/// Completes a job of `owner` with failure.
pub async fn fail(cx: &Cx, job_id: &str, owner: &str, details: FailureDetails) -> Result<(), ApiError> {
    let uuid = Uuid::parse_str(job_id).map_err(|_| job_not_found(job_id))?;
    let update = ActionUpdate {
        status: Some("Failed"),
        error_code: Some(&details.kind),
        error_message: Some(&details.message),
        external_execution_id: details.external_execution_id.as_deref(),
        ..Default::default()
    };
    finish(cx, job_id, uuid, owner, "Failed", &update).await
}

/// Errors: ValidationException, JobNotFoundException, InvalidJobStateException.
pub async fn put_job_failure_result(cx: Cx, input: PutJobFailureResultInput) -> Result<Empty, ApiError> {
    fail(&cx, &input.job_id, "Custom", input.failure_details).await?;
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alone_hint_is_taken_once() {
        let hints = AloneJobs::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        hints.insert(a);
        assert!(hints.take(a));
        assert!(!hints.take(a), "taken already");
        assert!(!hints.take(b), "never given");
    }

    #[test]
    fn alone_hints_keep_only_the_newest() {
        let hints = AloneJobs::default();
        let ids: Vec<Uuid> = (0..AloneJobs::CAPACITY + 10).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            hints.insert(*id);
        }
        let (jobs, order) = &*hints.0.lock().unwrap();
        assert_eq!((jobs.len(), order.len()), (AloneJobs::CAPACITY, AloneJobs::CAPACITY));
        assert!(!jobs.contains(&ids[9]) && jobs.contains(&ids[10]), "the oldest went first");
    }
}
