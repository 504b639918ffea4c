//! The engine end to end: a realistic pipeline driven by workers written
//! against the SDK — Source (custom, fed by PutActionRevision) → Build (two
//! parallel custom actions, then one after them) → Approve (manual) →
//! Deploy (custom) — through success, failure and retry, rejection,
//! disabled transitions, supersession and stops.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::*;

use crate::helpers::{TestServer, assert_known_states, custom_action_type, error_code};

fn type_id(category: ActionCategory, provider: &str) -> ActionTypeId {
    ActionTypeId::builder().category(category).owner(ActionOwner::Custom).provider(provider).version("1").build().unwrap()
}

fn action(
    name: &str,
    category: ActionCategory,
    provider: &str,
    run_order: i32,
) -> aws_sdk_codepipeline::types::builders::ActionDeclarationBuilder {
    ActionDeclaration::builder().name(name).action_type_id(type_id(category, provider)).run_order(run_order)
}

fn input(name: &str) -> InputArtifact {
    InputArtifact::builder().name(name).build().unwrap()
}

fn output(name: &str) -> OutputArtifact {
    OutputArtifact::builder().name(name).build().unwrap()
}

/// Creates the action types and the pipeline `name`.
async fn realistic_pipeline(client: &Client, name: &str, mode: Option<ExecutionMode>) {
    custom_action_type(client, "Source", "Repo", &[("Branch", true, false, false)]).await;
    custom_action_type(client, "Build", "Builder", &[("Project", true, false, false)]).await;
    custom_action_type(client, "Deploy", "Deployer", &[("Env", true, false, false), ("Token", true, true, false)]).await;
    let source = action("Checkout", ActionCategory::Source, "Repo", 1)
        .configuration("Branch", "main")
        .output_artifacts(output("code"))
        .build()
        .unwrap();
    let compile = action("Compile", ActionCategory::Build, "Builder", 1)
        .configuration("Project", "app")
        .input_artifacts(input("code"))
        .output_artifacts(output("bin"))
        .namespace("BuildVars")
        .build()
        .unwrap();
    let lint = action("Lint", ActionCategory::Build, "Builder", 1)
        .configuration("Project", "lint")
        .input_artifacts(input("code"))
        .build()
        .unwrap();
    let package = action("Package", ActionCategory::Build, "Builder", 2)
        .configuration("Project", "pkg-#{BuildVars.Version}")
        .input_artifacts(input("bin"))
        .output_artifacts(output("pkg"))
        .build()
        .unwrap();
    let approve = ActionDeclaration::builder()
        .name("Approve")
        .action_type_id(
            ActionTypeId::builder()
                .category(ActionCategory::Approval)
                .owner(ActionOwner::Aws)
                .provider("Manual")
                .version("1")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let ship = action("Ship", ActionCategory::Deploy, "Deployer", 1)
        .configuration("Env", "prod")
        .configuration("Token", "s3cr3t-#{BuildVars.Version}")
        .input_artifacts(input("pkg"))
        .build()
        .unwrap();
    let mut p = PipelineDeclaration::builder()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/pipeline")
        .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifacts").build().unwrap())
        .stages(StageDeclaration::builder().name("Source").actions(source).build().unwrap())
        .stages(StageDeclaration::builder().name("Build").actions(compile).actions(lint).actions(package).build().unwrap())
        .stages(StageDeclaration::builder().name("Approve").actions(approve).build().unwrap())
        .stages(StageDeclaration::builder().name("Deploy").actions(ship).build().unwrap());
    if let Some(mode) = mode {
        p = p.pipeline_type(PipelineType::V2).execution_mode(mode);
    }
    client.create_pipeline().pipeline(p.build().unwrap()).send().await.unwrap();
}

async fn poll(client: &Client, category: ActionCategory, provider: &str, max: i32) -> Vec<Job> {
    client.poll_for_jobs().action_type_id(type_id(category, provider)).max_batch_size(max).send().await.unwrap().jobs().to_vec()
}

/// Polls until `n` jobs of the type have been claimed (the engine may still
/// be committing the transaction that queued them).
async fn claim(client: &Client, category: ActionCategory, provider: &str, n: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    for _ in 0..100 {
        jobs.extend(poll(client, category.clone(), provider, 10).await);
        if jobs.len() >= n {
            return jobs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {n} {provider} jobs, got {}", jobs.len());
}

fn execution_of(job: &Job) -> String {
    job.data().unwrap().pipeline_context().unwrap().pipeline_execution_id().unwrap().to_owned()
}

/// Completes the CreatePipeline execution's source job; returns that execution.
async fn finish_source(client: &Client) -> String {
    let source = claim(client, ActionCategory::Source, "Repo", 1).await;
    succeed(client, &source[0], &[]).await;
    execution_of(&source[0])
}

fn action_name(job: &Job) -> String {
    job.data().unwrap().pipeline_context().unwrap().action().unwrap().name().unwrap().to_owned()
}

async fn ack(client: &Client, job: &Job) {
    let out = client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    assert_eq!(out.status(), Some(&JobStatus::InProgress));
}

async fn succeed(client: &Client, job: &Job, vars: &[(&str, &str)]) {
    ack(client, job).await;
    let mut r = client.put_job_success_result().job_id(job.id().unwrap());
    for (k, v) in vars {
        r = r.output_variables(*k, *v);
    }
    r.send().await.unwrap();
}

async fn fail(client: &Client, job: &Job, message: &str) {
    ack(client, job).await;
    let details = FailureDetails::builder().r#type(FailureType::JobFailed).message(message).build().unwrap();
    client.put_job_failure_result().job_id(job.id().unwrap()).failure_details(details).send().await.unwrap();
}

async fn stage_states(client: &Client, pipeline: &str) -> HashMap<String, StageState> {
    let state = client.get_pipeline_state().name(pipeline).send().await.unwrap();
    state.stage_states().iter().map(|s| (s.stage_name().unwrap().to_owned(), s.clone())).collect()
}

fn stage_status(states: &HashMap<String, StageState>, stage: &str) -> Option<String> {
    states[stage].latest_execution().map(|e| e.status().as_str().to_owned())
}

async fn execution_status(client: &Client, pipeline: &str, id: &str) -> String {
    let e = client.get_pipeline_execution().pipeline_name(pipeline).pipeline_execution_id(id).send().await.unwrap();
    e.pipeline_execution().unwrap().status().unwrap().as_str().to_owned()
}

async fn revision(client: &Client, pipeline: &str, id: &str) -> String {
    let out = client
        .put_action_revision()
        .pipeline_name(pipeline)
        .stage_name("Source")
        .action_name("Checkout")
        .action_revision(
            ActionRevision::builder()
                .revision_id(id)
                .revision_change_id(format!("change-{id}"))
                .created(aws_smithy_types::DateTime::from_secs(1_700_000_000))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.new_revision());
    out.pipeline_execution_id().unwrap().to_owned()
}

/// Drives one execution through Build (both parallel jobs, then Package).
async fn build_all(client: &Client, version: &str) {
    let parallel = claim(client, ActionCategory::Build, "Builder", 2).await;
    let mut names: Vec<String> = parallel.iter().map(action_name).collect();
    names.sort();
    assert_eq!(names, ["Compile", "Lint"], "Compile and Lint run in parallel; Package waits for them");
    for job in &parallel {
        let vars: &[(&str, &str)] = if action_name(job) == "Compile" { &[("Version", version)] } else { &[] };
        succeed(client, job, vars).await;
    }
    let package = claim(client, ActionCategory::Build, "Builder", 1).await;
    assert_eq!(action_name(&package[0]), "Package");
    let config = package[0].data().unwrap().action_configuration().unwrap().configuration().unwrap();
    assert_eq!(config.get("Project").map(String::as_str), Some(format!("pkg-{version}").as_str()), "output variables resolve downstream");
    succeed(client, &package[0], &[]).await;
}

/// Waits until the execution has `status` (the sweeper acts in the background).
async fn await_execution_status(client: &Client, pipeline: &str, execution: &str, status: &str) {
    for _ in 0..100 {
        if execution_status(client, pipeline, execution).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(execution_status(client, pipeline, execution).await, status);
}

async fn approval_token(client: &Client, pipeline: &str) -> String {
    for _ in 0..100 {
        let states = stage_states(client, pipeline).await;
        if let Some(token) = states["Approve"].action_states()[0].latest_execution().and_then(|e| e.token()) {
            return token.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no approval token appeared");
}

/// PutApprovalResult for the Approve action of pipeline `app`.
async fn answer(
    client: &Client,
    token: &str,
    status: ApprovalStatus,
    summary: &str,
) -> std::result::Result<
    aws_sdk_codepipeline::operation::put_approval_result::PutApprovalResultOutput,
    aws_sdk_codepipeline::error::SdkError<aws_sdk_codepipeline::operation::put_approval_result::PutApprovalResultError>,
> {
    let result = ApprovalResult::builder().status(status).summary(summary).build().unwrap();
    client.put_approval_result().pipeline_name("app").stage_name("Approve").action_name("Approve").token(token).result(result).send().await
}

#[tokio::test]
async fn a_realistic_pipeline_runs_from_source_to_deploy() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;

    // CreatePipeline started the first execution; its custom source runs as a job.
    let first = client.list_pipeline_executions().pipeline_name("app").send().await.unwrap();
    let first = &first.pipeline_execution_summaries()[0];
    assert_eq!(first.trigger().unwrap().trigger_type(), Some(&TriggerType::CreatePipeline));
    let source = claim(&client, ActionCategory::Source, "Repo", 1).await;
    let data = source[0].data().unwrap();
    let ctx = data.pipeline_context().unwrap();
    assert_eq!(ctx.pipeline_execution_id(), first.pipeline_execution_id());
    assert_eq!(ctx.pipeline_arn(), Some(format!("arn:aws:codepipeline:us-east-1:{}:app", account.account_id).as_str()));
    assert!(ctx.action().unwrap().action_execution_id().is_some());
    assert_eq!(data.output_artifacts()[0].location().unwrap().s3_location().unwrap().bucket_name(), "artifacts");
    assert_eq!(source[0].account_id(), Some(account.account_id.as_str()));
    ack(&client, &source[0]).await;
    client
        .put_job_success_result()
        .job_id(source[0].id().unwrap())
        .current_revision(CurrentRevision::builder().revision("abc123").change_identifier("c1").build().unwrap())
        .send()
        .await
        .unwrap();

    build_all(&client, "1.0.0").await;

    // The Build stage's outputs flow into Package's input locations.
    let token = approval_token(&client, "app").await;
    let states = stage_states(&client, "app").await;
    assert_eq!(stage_status(&states, "Build").as_deref(), Some("Succeeded"));
    assert_eq!(stage_status(&states, "Approve").as_deref(), Some("InProgress"));
    let err = answer(&client, "00000000-0000-4000-8000-000000000000", ApprovalStatus::Approved, "ok").await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidApprovalTokenException");
    let approved = answer(&client, &token, ApprovalStatus::Approved, "ship it").await.unwrap();
    assert!(approved.approved_at().is_some());
    let err = answer(&client, &token, ApprovalStatus::Approved, "again").await.unwrap_err();
    assert_eq!(error_code(&err), "ApprovalAlreadyCompletedException");

    let ship = claim(&client, ActionCategory::Deploy, "Deployer", 1).await;
    let config = ship[0].data().unwrap().action_configuration().unwrap().configuration().unwrap();
    assert_eq!(config.get("Token").map(String::as_str), Some("s3cr3t-1.0.0"), "job workers see secrets, their variables resolved");
    for table in ["pipeline_version", "job", "action_execution"] {
        let clear: i64 = sqlx::query_scalar(&format!("select count(*) from {table} t where t::text like '%s3cr3t%'"))
            .fetch_one(&server.pool)
            .await
            .unwrap();
        assert_eq!(clear, 0, "{table} holds the secret only sealed");
    }
    let input = &ship[0].data().unwrap().input_artifacts()[0];
    assert_eq!(input.name(), Some("pkg"));
    succeed(&client, &ship[0], &[]).await;

    let id = first.pipeline_execution_id().unwrap();
    assert_eq!(execution_status(&client, "app", id).await, "Succeeded");
    let execution = client.get_pipeline_execution().pipeline_name("app").pipeline_execution_id(id).send().await.unwrap();
    let revisions = execution.pipeline_execution().unwrap().artifact_revisions();
    assert_eq!(revisions[0].revision_id(), Some("abc123"));
    assert_eq!(revisions[0].name(), Some("code"));

    // Every action ran once; secrets stay masked outside the job APIs.
    let history = client.list_action_executions().pipeline_name("app").send().await.unwrap();
    assert_eq!(history.action_execution_details().len(), 6);
    let shipped = history.action_execution_details().iter().find(|d| d.action_name() == Some("Ship")).unwrap();
    let shown = shipped.input().unwrap().configuration().unwrap();
    assert_eq!(shown.get("Token").map(String::as_str), Some("****"));
    assert!(history.action_execution_details().iter().all(|d| d.status() == Some(&ActionExecutionStatus::Succeeded)));

    // A new revision starts an execution whose source needs no job.
    let second = revision(&client, "app", "def456").await;
    build_all(&client, "2.0.0").await;
    let summaries = client.list_pipeline_executions().pipeline_name("app").send().await.unwrap();
    assert_eq!(summaries.pipeline_execution_summaries()[0].pipeline_execution_id(), Some(second.as_str()), "newest first");
    assert_eq!(summaries.pipeline_execution_summaries()[0].trigger().unwrap().trigger_type(), Some(&TriggerType::PutActionRevision));
    let states = stage_states(&client, "app").await;
    assert_eq!(states["Source"].action_states()[0].current_revision().unwrap().revision_id(), "def456");
    assert_known_states(&server.pool).await;
}

#[tokio::test]
async fn a_failed_build_is_retried_and_the_execution_goes_on() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    let execution = finish_source(&client).await;

    let parallel = claim(&client, ActionCategory::Build, "Builder", 2).await;
    let (compile, lint): (Vec<&Job>, Vec<&Job>) = parallel.iter().partition(|j| action_name(j) == "Compile");
    fail(&client, compile[0], "compiler exploded").await;
    // The stage fails only once the parallel Lint has finished too.
    assert_eq!(execution_status(&client, "app", &execution).await, "InProgress");
    succeed(&client, lint[0], &[]).await;
    assert_eq!(execution_status(&client, "app", &execution).await, "Failed");
    let e = client.get_pipeline_execution().pipeline_name("app").pipeline_execution_id(&execution).send().await.unwrap();
    assert!(e.pipeline_execution().unwrap().status_summary().unwrap().contains("compiler exploded"));
    let states = stage_states(&client, "app").await;
    assert_eq!(stage_status(&states, "Build").as_deref(), Some("Failed"));
    let compile_state = states["Build"].action_states().iter().find(|a| a.action_name() == Some("Compile")).unwrap();
    assert_eq!(compile_state.latest_execution().unwrap().error_details().unwrap().message(), Some("compiler exploded"));

    let retry = |stage: &str| {
        client
            .retry_stage_execution()
            .pipeline_name("app")
            .stage_name(stage)
            .pipeline_execution_id(&execution)
            .retry_mode(StageRetryMode::FailedActions)
            .send()
    };
    assert_eq!(error_code(&retry("Source").await.unwrap_err()), "StageNotRetryableException");
    assert_eq!(error_code(&retry("Nope").await.unwrap_err()), "StageNotFoundException");
    let retried = retry("Build").await.unwrap();
    assert_eq!(retried.pipeline_execution_id(), Some(execution.as_str()));
    // Only the failed action runs again.
    let again = claim(&client, ActionCategory::Build, "Builder", 1).await;
    assert_eq!(action_name(&again[0]), "Compile");
    succeed(&client, &again[0], &[("Version", "9")]).await;
    let package = claim(&client, ActionCategory::Build, "Builder", 1).await;
    assert_eq!(action_name(&package[0]), "Package");
    succeed(&client, &package[0], &[]).await;
    approval_token(&client, "app").await;
    assert_eq!(execution_status(&client, "app", &execution).await, "InProgress");
    let history = client
        .list_action_executions()
        .pipeline_name("app")
        .filter(ActionExecutionFilter::builder().pipeline_execution_id(&execution).build())
        .send()
        .await
        .unwrap();
    let compiles = history.action_execution_details().iter().filter(|d| d.action_name() == Some("Compile")).count();
    assert_eq!(compiles, 2, "both attempts stay in the history");
    assert_known_states(&server.pool).await;
}

#[tokio::test]
async fn a_rejected_approval_fails_the_stage() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    let execution = finish_source(&client).await;
    build_all(&client, "1").await;
    let token = approval_token(&client, "app").await;
    answer(&client, &token, ApprovalStatus::Rejected, "not today").await.unwrap();
    assert_eq!(execution_status(&client, "app", &execution).await, "Failed");
    let states = stage_states(&client, "app").await;
    assert_eq!(stage_status(&states, "Approve").as_deref(), Some("Failed"));
    let approve = states["Approve"].action_states()[0].latest_execution().unwrap();
    assert_eq!(approve.summary(), Some("not today"));
    assert!(approve.last_updated_by().unwrap().contains(&account.account_id));
    assert!(approve.token().is_none(), "an answered approval shows no token");
    assert!(poll(&client, ActionCategory::Deploy, "Deployer", 10).await.is_empty());
}

#[tokio::test]
async fn executions_wait_at_a_disabled_transition_and_the_newest_supersedes_the_rest() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    // Finish the CreatePipeline execution's source job so it does not hold Source.
    let source = claim(&client, ActionCategory::Source, "Repo", 1).await;
    let first = execution_of(&source[0]);
    client
        .disable_stage_transition()
        .pipeline_name("app")
        .stage_name("Build")
        .transition_type(StageTransitionType::Inbound)
        .reason("Freeze for the release")
        .send()
        .await
        .unwrap();
    succeed(&client, &source[0], &[]).await;

    let states = stage_states(&client, "app").await;
    let transition = states["Build"].inbound_transition_state().unwrap();
    assert!(!transition.enabled());
    assert_eq!(transition.disabled_reason(), Some("Freeze for the release"));
    assert!(transition.last_changed_by().is_some() && transition.last_changed_at().is_some());
    assert_eq!(states["Build"].inbound_execution().unwrap().pipeline_execution_id(), first.as_str());
    assert!(poll(&client, ActionCategory::Build, "Builder", 10).await.is_empty(), "nothing enters a disabled stage");

    // Two newer executions arrive at the same transition: only the newest waits.
    let second = revision(&client, "app", "r2").await;
    let third = revision(&client, "app", "r3").await;
    assert_eq!(execution_status(&client, "app", &first).await, "Superseded");
    assert_eq!(execution_status(&client, "app", &second).await, "Superseded");
    assert_eq!(execution_status(&client, "app", &third).await, "InProgress");

    let err = client
        .disable_stage_transition()
        .pipeline_name("app")
        .stage_name("Nope")
        .transition_type(StageTransitionType::Inbound)
        .reason("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "StageNotFoundException");

    client
        .enable_stage_transition()
        .pipeline_name("app")
        .stage_name("Build")
        .transition_type(StageTransitionType::Inbound)
        .send()
        .await
        .unwrap();
    let jobs = claim(&client, ActionCategory::Build, "Builder", 2).await;
    assert!(jobs.iter().all(|j| j.data().unwrap().pipeline_context().unwrap().pipeline_execution_id() == Some(third.as_str())));
    assert!(stage_states(&client, "app").await["Build"].inbound_transition_state().unwrap().enabled());
    assert_known_states(&server.pool).await;
}

#[tokio::test]
async fn a_stopped_execution_lets_running_work_finish_or_abandons_it() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    let source = claim(&client, ActionCategory::Source, "Repo", 1).await;
    ack(&client, &source[0]).await;
    let first = execution_of(&source[0]);

    // Stop and wait: the in-flight source job may still finish.
    client.stop_pipeline_execution().pipeline_name("app").pipeline_execution_id(&first).reason("wrong branch").send().await.unwrap();
    assert_eq!(execution_status(&client, "app", &first).await, "Stopping");
    let err = client.stop_pipeline_execution().pipeline_name("app").pipeline_execution_id(&first).send().await.unwrap_err();
    assert_eq!(error_code(&err), "DuplicatedStopRequestException");
    client.put_job_success_result().job_id(source[0].id().unwrap()).send().await.unwrap();
    assert_eq!(execution_status(&client, "app", &first).await, "Stopped");
    assert!(poll(&client, ActionCategory::Build, "Builder", 10).await.is_empty(), "a stopped execution starts nothing new");
    let listed = client.list_pipeline_executions().pipeline_name("app").send().await.unwrap();
    assert_eq!(listed.pipeline_execution_summaries()[0].stop_trigger().unwrap().reason(), Some("wrong branch"));
    let err = client.stop_pipeline_execution().pipeline_name("app").pipeline_execution_id(&first).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineExecutionNotStoppableException");

    // Abandon: stopped at once, and the worker's late result is refused.
    let second = revision(&client, "app", "r2").await;
    let builds = claim(&client, ActionCategory::Build, "Builder", 2).await;
    ack(&client, &builds[0]).await;
    client.stop_pipeline_execution().pipeline_name("app").pipeline_execution_id(&second).abandon(true).send().await.unwrap();
    assert_eq!(execution_status(&client, "app", &second).await, "Stopped");
    let err = client.put_job_success_result().job_id(builds[0].id().unwrap()).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidJobStateException");
    let late_ack = client.acknowledge_job().job_id(builds[1].id().unwrap()).nonce(builds[1].nonce().unwrap()).send().await.unwrap();
    assert_eq!(late_ack.status(), Some(&JobStatus::Failed), "acknowledging tells the worker the job is over");
    let history = client
        .list_action_executions()
        .pipeline_name("app")
        .filter(ActionExecutionFilter::builder().pipeline_execution_id(&second).build())
        .send()
        .await
        .unwrap();
    assert!(history.action_execution_details().iter().any(|d| d.status() == Some(&ActionExecutionStatus::Abandoned)));

    let err = client
        .stop_pipeline_execution()
        .pipeline_name("app")
        .pipeline_execution_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "PipelineExecutionNotFoundException");
    assert_known_states(&server.pool).await;
}

#[tokio::test]
async fn queued_mode_runs_executions_one_after_another_without_superseding() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", Some(ExecutionMode::Queued)).await;
    finish_source(&client).await;
    let a = revision(&client, "app", "r2").await;
    let b = revision(&client, "app", "r3").await;
    build_all(&client, "1").await;
    // The first execution moved on to Approve; the next one, in order, builds.
    let next = claim(&client, ActionCategory::Build, "Builder", 2).await;
    assert!(next.iter().all(|j| j.data().unwrap().pipeline_context().unwrap().pipeline_execution_id() == Some(a.as_str())));
    assert_eq!(execution_status(&client, "app", &b).await, "InProgress");
}

#[tokio::test]
async fn start_pipeline_execution_is_idempotent_per_client_request_token() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    let one = client.start_pipeline_execution().name("app").client_request_token("tok-1").send().await.unwrap();
    let two = client.start_pipeline_execution().name("app").client_request_token("tok-1").send().await.unwrap();
    assert_eq!(one.pipeline_execution_id(), two.pipeline_execution_id());
    let three = client.start_pipeline_execution().name("app").client_request_token("tok-2").send().await.unwrap();
    assert_ne!(one.pipeline_execution_id(), three.pipeline_execution_id());
    let e = client
        .get_pipeline_execution()
        .pipeline_name("app")
        .pipeline_execution_id(one.pipeline_execution_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(e.pipeline_execution().unwrap().trigger().unwrap().trigger_type(), Some(&TriggerType::StartPipelineExecution));
    let err = client.start_pipeline_execution().name("nope").send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");
    let err = client
        .start_pipeline_execution()
        .name("app")
        .variables(PipelineVariable::builder().name("x").value("y").build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException", "variables need a V2 pipeline");
}

#[tokio::test]
async fn aws_providers_this_server_cannot_run_fail_with_a_clear_message() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(crate::helpers::simple_pipeline("web")).send().await.unwrap();
    let listed = client.list_pipeline_executions().pipeline_name("web").send().await.unwrap();
    let first = &listed.pipeline_execution_summaries()[0];
    assert_eq!(first.status(), Some(&PipelineExecutionStatus::Failed));
    assert!(first.status_summary().unwrap().contains("PutActionRevision"), "{:?}", first.status_summary());
    // With a revision, the S3 source succeeds and CodeBuild fails with a reason.
    // Revision v1 of the given action of stage Source.
    let put_v1 = |action: &'static str| {
        client
            .put_action_revision()
            .pipeline_name("web")
            .stage_name("Source")
            .action_name(action)
            .action_revision(
                ActionRevision::builder()
                    .revision_id("v1")
                    .revision_change_id("v1")
                    .created(aws_smithy_types::DateTime::from_secs(0))
                    .build()
                    .unwrap(),
            )
            .send()
    };
    let out = put_v1("Fetch").await.unwrap();
    let id = out.pipeline_execution_id().unwrap();
    let e = client.get_pipeline_execution().pipeline_name("web").pipeline_execution_id(id).send().await.unwrap();
    assert!(e.pipeline_execution().unwrap().status_summary().unwrap().contains("cannot run"));
    let again = put_v1("Fetch").await.unwrap();
    assert!(!again.new_revision() && again.pipeline_execution_id().is_none(), "a known revision starts nothing");
    let err = put_v1("Nope").await.unwrap_err();
    assert_eq!(error_code(&err), "ActionNotFoundException");
}

/// V2: Source (custom) → Deploy (custom, configured from a pipeline variable).
async fn v2_pipeline(client: &Client, name: &str) {
    custom_action_type(client, "Source", "Repo", &[("Branch", true, false, false)]).await;
    custom_action_type(client, "Deploy", "Deployer", &[("Env", true, false, false), ("Token", true, true, false)]).await;
    let source = action("Checkout", ActionCategory::Source, "Repo", 1)
        .configuration("Branch", "main")
        .output_artifacts(output("code"))
        .build()
        .unwrap();
    let ship = action("Ship", ActionCategory::Deploy, "Deployer", 1)
        .configuration("Env", "#{variables.env}")
        .configuration("Token", "t")
        .input_artifacts(input("code"))
        .build()
        .unwrap();
    let p = PipelineDeclaration::builder()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/pipeline")
        .pipeline_type(PipelineType::V2)
        .variables(PipelineVariableDeclaration::builder().name("env").default_value("dev").build().unwrap())
        .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifacts").build().unwrap())
        .stages(StageDeclaration::builder().name("Source").actions(source).build().unwrap())
        .stages(StageDeclaration::builder().name("Deploy").actions(ship).build().unwrap())
        .build()
        .unwrap();
    client.create_pipeline().pipeline(p).send().await.unwrap();
}

#[tokio::test]
async fn v2_variables_resolve_and_a_stage_rolls_back_to_an_earlier_execution() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    v2_pipeline(&client, "app").await;
    let source = claim(&client, ActionCategory::Source, "Repo", 1).await;
    let first = execution_of(&source[0]);
    ack(&client, &source[0]).await;
    client
        .put_job_success_result()
        .job_id(source[0].id().unwrap())
        .current_revision(CurrentRevision::builder().revision("r1").change_identifier("c1").build().unwrap())
        .send()
        .await
        .unwrap();
    let deploy = claim(&client, ActionCategory::Deploy, "Deployer", 1).await;
    let config = deploy[0].data().unwrap().action_configuration().unwrap().configuration().unwrap().clone();
    assert_eq!(config.get("Env").map(String::as_str), Some("dev"), "the variable's default");
    succeed(&client, &deploy[0], &[]).await;
    assert_eq!(execution_status(&client, "app", &first).await, "Succeeded");

    let second = client
        .start_pipeline_execution()
        .name("app")
        .variables(PipelineVariable::builder().name("env").value("prod").build().unwrap())
        .source_revisions(
            SourceRevisionOverride::builder()
                .action_name("Checkout")
                .revision_type(SourceRevisionType::CommitId)
                .revision_value("r2")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .pipeline_execution_id()
        .unwrap()
        .to_owned();
    let deploy = claim(&client, ActionCategory::Deploy, "Deployer", 1).await;
    let config = deploy[0].data().unwrap().action_configuration().unwrap().configuration().unwrap().clone();
    assert_eq!(config.get("Env").map(String::as_str), Some("prod"), "the value given at start");
    assert_eq!(deploy[0].data().unwrap().input_artifacts()[0].revision(), Some("r2"));
    succeed(&client, &deploy[0], &[]).await;
    let e = client.get_pipeline_execution().pipeline_name("app").pipeline_execution_id(&second).send().await.unwrap();
    let vars = e.pipeline_execution().unwrap().variables();
    assert_eq!((vars[0].name(), vars[0].resolved_value()), (Some("env"), Some("prod")));

    // Roll Deploy back to the first execution: its artifacts and variables.
    let rollback = client
        .rollback_stage()
        .pipeline_name("app")
        .stage_name("Deploy")
        .target_pipeline_execution_id(&first)
        .send()
        .await
        .unwrap()
        .pipeline_execution_id()
        .to_owned();
    let deploy = claim(&client, ActionCategory::Deploy, "Deployer", 1).await;
    let data = deploy[0].data().unwrap();
    assert_eq!(data.action_configuration().unwrap().configuration().unwrap().get("Env").map(String::as_str), Some("dev"));
    let key = data.input_artifacts()[0].location().unwrap().s3_location().unwrap().object_key();
    assert!(key.contains(&first), "the input is the target's artifact: {key}");
    succeed(&client, &deploy[0], &[]).await;
    let e = client.get_pipeline_execution().pipeline_name("app").pipeline_execution_id(&rollback).send().await.unwrap();
    let e = e.pipeline_execution().unwrap();
    assert_eq!(e.status(), Some(&PipelineExecutionStatus::Succeeded));
    assert_eq!(e.execution_type(), Some(&ExecutionType::Rollback));
    assert_eq!(e.rollback_metadata().unwrap().rollback_target_pipeline_execution_id(), Some(first.as_str()));
    assert_eq!(e.trigger().unwrap().trigger_type(), Some(&TriggerType::ManualRollback));
    let states = stage_states(&client, "app").await;
    assert_eq!(states["Deploy"].latest_execution().unwrap().r#type(), Some(&ExecutionType::Rollback));

    let rollback_err = |stage: &str, target: &str| {
        client.rollback_stage().pipeline_name("app").stage_name(stage).target_pipeline_execution_id(target).send()
    };
    assert_eq!(error_code(&rollback_err("Source", &first).await.unwrap_err()), "UnableToRollbackStageException");
    assert_eq!(error_code(&rollback_err("Deploy", &rollback).await.unwrap_err()), "UnableToRollbackStageException");
    assert_eq!(error_code(&rollback_err("Nope", &first).await.unwrap_err()), "StageNotFoundException");
    assert_eq!(
        error_code(&rollback_err("Deploy", "00000000-0000-4000-8000-000000000000").await.unwrap_err()),
        "PipelineExecutionNotFoundException"
    );
    assert_known_states(&server.pool).await;
}

#[tokio::test]
async fn an_outbound_transition_holds_an_execution_after_its_stage() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    client
        .disable_stage_transition()
        .pipeline_name("app")
        .stage_name("Source")
        .transition_type(StageTransitionType::Outbound)
        .reason("Hold")
        .send()
        .await
        .unwrap();
    finish_source(&client).await;
    assert!(poll(&client, ActionCategory::Build, "Builder", 10).await.is_empty());
    client
        .enable_stage_transition()
        .pipeline_name("app")
        .stage_name("Source")
        .transition_type(StageTransitionType::Outbound)
        .send()
        .await
        .unwrap();
    claim(&client, ActionCategory::Build, "Builder", 2).await;
}

#[tokio::test]
async fn only_the_latest_execution_of_a_failed_stage_can_be_retried_and_all_actions_rerun() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    let first = finish_source(&client).await;
    for job in claim(&client, ActionCategory::Build, "Builder", 2).await {
        fail(&client, &job, "broken").await;
    }
    let second = revision(&client, "app", "r2").await;
    for job in claim(&client, ActionCategory::Build, "Builder", 2).await {
        fail(&client, &job, "still broken").await;
    }
    let retry = |id: &str, mode: StageRetryMode| {
        client.retry_stage_execution().pipeline_name("app").stage_name("Build").pipeline_execution_id(id).retry_mode(mode).send()
    };
    assert_eq!(error_code(&retry(&first, StageRetryMode::FailedActions).await.unwrap_err()), "NotLatestPipelineExecutionException");
    retry(&second, StageRetryMode::AllActions).await.unwrap();
    let rerun = claim(&client, ActionCategory::Build, "Builder", 2).await;
    assert!(rerun.iter().all(|j| j.data().unwrap().pipeline_context().unwrap().pipeline_execution_id() == Some(second.as_str())));
    assert_eq!(
        error_code(&retry(&second, StageRetryMode::AllActions).await.unwrap_err()),
        "StageNotRetryableException",
        "not while it runs"
    );
}

#[tokio::test]
async fn an_unanswered_approval_fails_when_it_times_out() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    let execution = finish_source(&client).await;
    build_all(&client, "1").await;
    let token = approval_token(&client, "app").await;
    // Seven days pass.
    sqlx::query("update action_execution set timeout_at = now() - interval '1 second' where approval_token = $1::uuid")
        .bind(&token)
        .execute(&server.pool)
        .await
        .unwrap();
    await_execution_status(&client, "app", &execution, "Failed").await;
    let err = answer(&client, &token, ApprovalStatus::Approved, "too late").await.unwrap_err();
    assert_eq!(error_code(&err), "ApprovalAlreadyCompletedException");
    assert_known_states(&server.pool).await;
}

#[tokio::test]
async fn deleting_an_action_type_fails_the_actions_still_waiting_for_a_worker() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    let execution = finish_source(&client).await;
    // Compile and Lint are queued; nobody has polled them yet.
    client.delete_custom_action_type().category(ActionCategory::Build).provider("Builder").version("1").send().await.unwrap();
    assert_eq!(execution_status(&client, "app", &execution).await, "Failed");
    let e = client.get_pipeline_execution().pipeline_name("app").pipeline_execution_id(&execution).send().await.unwrap();
    assert!(e.pipeline_execution().unwrap().status_summary().unwrap().contains("was deleted"));
}

/// A start that read a type just before its deletion committed can queue
/// a job the deletion did not see, which nobody can ever poll: the sweeper
/// fails its action as the deletion would have.
#[tokio::test]
async fn a_job_queued_for_a_type_deleted_meanwhile_fails_its_action_by_the_sweeper() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    realistic_pipeline(&client, "app", None).await;
    let execution = finish_source(&client).await;
    // What that race leaves behind: the type deleted, its jobs still queued.
    sqlx::query("update action_type set deleted_at = now() where account_id = $1 and provider = 'Builder'")
        .bind(&account.account_id)
        .execute(&server.pool)
        .await
        .unwrap();
    await_execution_status(&client, "app", &execution, "Failed").await;
    let e = client.get_pipeline_execution().pipeline_name("app").pipeline_execution_id(&execution).send().await.unwrap();
    let e = e.pipeline_execution().unwrap();
    assert_eq!(e.status(), Some(&PipelineExecutionStatus::Failed));
    assert!(e.status_summary().unwrap().contains("was deleted before a job worker picked up this action"), "{:?}", e.status_summary());
    let queued: i64 = sqlx::query_scalar("select count(*) from job where account_id = $1 and status = 'Queued'")
        .bind(&account.account_id)
        .fetch_one(&server.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "no job is left queued for the deleted type");
}
