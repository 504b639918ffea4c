//! Partner (owner ThirdParty) job workers: PollForThirdPartyJobs and the
//! clientToken-checked job calls, driven with the official SDK.

use std::time::Duration;

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::*;
use millrace::config::Config;
use millrace::store::third_party;

use crate::admin::{admin, json_line};
use crate::helpers::{TestAccount, TestServer, error_code, error_message};

fn type_id(category: ActionCategory, owner: ActionOwner, provider: &str) -> ActionTypeId {
    ActionTypeId::builder().category(category).owner(owner).provider(provider).version("1").build().unwrap()
}

fn source_type() -> ActionTypeId {
    type_id(ActionCategory::Source, ActionOwner::ThirdParty, "Partner")
}

fn check_type() -> ActionTypeId {
    type_id(ActionCategory::Test, ActionOwner::ThirdParty, "Checker")
}

/// Registers the account's two partner types with UpdateActionType:
/// Source/Partner (Repo, secret ApiKey; one output) and Test/Checker (one input).
async fn register_partner_types(client: &Client) {
    register_partner_types_timing_out_after(client, None).await
}

/// [`register_partner_types`] whose executors declare `jobTimeout` (seconds).
async fn register_partner_types_timing_out_after(client: &Client, job_timeout: Option<i32>) {
    let declaration = |id: ActionTypeId, inputs: i32, outputs: i32, properties: Vec<ActionTypeProperty>| {
        ActionTypeDeclaration::builder()
            .id(ActionTypeIdentifier::builder()
                .category(id.category().clone())
                .owner(id.owner().as_str())
                .provider(id.provider())
                .version(id.version())
                .build()
                .unwrap())
            .executor(
                ActionTypeExecutor::builder()
                    .r#type(ExecutorType::JobWorker)
                    .configuration(
                        ExecutorConfiguration::builder()
                            .job_worker_executor_configuration(JobWorkerExecutorConfiguration::builder().build())
                            .build(),
                    )
                    .set_job_timeout(job_timeout)
                    .build()
                    .unwrap(),
            )
            .input_artifact_details(ActionTypeArtifactDetails::builder().minimum_count(inputs).maximum_count(inputs).build())
            .output_artifact_details(ActionTypeArtifactDetails::builder().minimum_count(outputs).maximum_count(outputs).build())
            .set_properties(Some(properties))
            .build()
    };
    let property =
        |name: &str, secret: bool| ActionTypeProperty::builder().name(name).optional(false).key(true).no_echo(secret).build().unwrap();
    client
        .update_action_type()
        .action_type(declaration(source_type(), 0, 1, vec![property("Repo", false), property("ApiKey", true)]))
        .send()
        .await
        .unwrap();
    client.update_action_type().action_type(declaration(check_type(), 1, 0, vec![])).send().await.unwrap();
}

/// Source (partner source, output `src`) → Check (partner test on `src`).
fn partner_pipeline(name: &str) -> PipelineDeclaration {
    let source = ActionDeclaration::builder()
        .name("Fetch")
        .action_type_id(source_type())
        .configuration("Repo", "acme/app")
        .configuration("ApiKey", "sk-partner-secret")
        .output_artifacts(OutputArtifact::builder().name("src").build().unwrap())
        .build()
        .unwrap();
    let check = ActionDeclaration::builder()
        .name("Scan")
        .action_type_id(check_type())
        .input_artifacts(InputArtifact::builder().name("src").build().unwrap())
        .build()
        .unwrap();
    crate::helpers::two_stages(name, ("Source", source), ("Check", check))
}

/// A clientId/clientToken pair, issued as `admin create-third-party-client` does.
async fn issue_client(server: &TestServer, account: &TestAccount) -> (String, String) {
    let mut conn = server.pool.acquire().await.unwrap();
    let issued = third_party::create_client(&mut conn, &account.account_id).await.unwrap();
    (issued.client_id.to_string(), issued.client_token)
}

/// Polls one job of `id`: (clientId, jobId).
async fn poll_one(client: &Client, id: ActionTypeId) -> (String, String) {
    let polled = client.poll_for_third_party_jobs().action_type_id(id).max_batch_size(5).send().await.unwrap();
    assert_eq!(polled.jobs().len(), 1, "{polled:?}");
    let job = &polled.jobs()[0];
    (job.client_id().unwrap().to_owned(), job.job_id().unwrap().to_owned())
}

async fn nonce_of(client: &Client, job_id: &str, token: &str) -> String {
    let details = client.get_third_party_job_details().job_id(job_id).client_token(token).send().await.unwrap();
    details.job_details().unwrap().nonce().unwrap().to_owned()
}

async fn latest_action_status(client: &Client, pipeline: &str, stage: &str) -> (Option<StageExecutionStatus>, ActionExecution) {
    let state = client.get_pipeline_state().name(pipeline).send().await.unwrap();
    let stage = state.stage_states().iter().find(|s| s.stage_name() == Some(stage)).unwrap();
    let status = stage.latest_execution().map(|e| e.status().clone());
    (status, stage.action_states()[0].latest_execution().unwrap().clone())
}

#[tokio::test]
async fn a_partner_worker_runs_third_party_jobs_with_its_client_token() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    register_partner_types(&client).await;
    let (client_id, token) = issue_client(&server, &account).await;
    client.create_pipeline().pipeline(partner_pipeline("p")).send().await.unwrap();

    // The CreatePipeline execution queued the source job: a poll names it
    // with the account's client, and only once.
    let (polled_client, job_id) = poll_one(&client, source_type()).await;
    assert_eq!(polled_client, client_id);
    assert!(uuid::Uuid::try_parse(&job_id).is_ok(), "{job_id}");
    let again = client.poll_for_third_party_jobs().action_type_id(source_type()).send().await.unwrap();
    assert!(again.jobs().is_empty());

    // Wrong, foreign-shaped and malformed credentials and ids.
    let wrong_secret = format!("{}.{}", token.split_once('.').unwrap().0, "x".repeat(40));
    for bad in [wrong_secret.as_str(), "not-a-token", "00000000000000000000000000000000.abc"] {
        let err = client.get_third_party_job_details().job_id(&job_id).client_token(bad).send().await.unwrap_err();
        assert_eq!(error_code(&err), "InvalidClientTokenException", "{bad}");
        assert!(!error_message(&err).contains(bad));
    }
    let err = client.get_third_party_job_details().job_id("not-a-job").client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidJobException");
    let err = client.get_third_party_job_details().job_id(uuid::Uuid::new_v4().to_string()).client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");

    // The details: no pipelineArn / pipelineExecutionId, secrets included.
    let details = client.get_third_party_job_details().job_id(&job_id).client_token(&token).send().await.unwrap();
    let details = details.job_details().unwrap();
    assert_eq!(details.id(), Some(job_id.as_str()));
    let nonce = details.nonce().unwrap().to_owned();
    let data = details.data().unwrap();
    let context = data.pipeline_context().unwrap();
    assert_eq!(context.pipeline_name(), Some("p"));
    assert_eq!(context.stage().unwrap().name(), Some("Source"));
    assert_eq!(context.action().unwrap().name(), Some("Fetch"));
    assert!(context.action().unwrap().action_execution_id().is_some());
    assert_eq!(context.pipeline_arn(), None);
    assert_eq!(context.pipeline_execution_id(), None);
    assert_eq!(data.action_type_id().unwrap().provider(), "Partner");
    let configuration = data.action_configuration().unwrap().configuration().unwrap();
    assert_eq!(configuration["Repo"], "acme/app");
    assert_eq!(configuration["ApiKey"], "sk-partner-secret");
    assert_eq!(data.output_artifacts()[0].name(), Some("src"));

    // Acknowledge: the nonce and the token both count.
    let err = client.acknowledge_third_party_job().job_id(&job_id).nonce("wrong").client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidNonceException");
    let err = client.acknowledge_third_party_job().job_id(&job_id).nonce(&nonce).client_token(&wrong_secret).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidClientTokenException");
    let err = client.put_third_party_job_success_result().job_id(&job_id).client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidJobStateException", "a result before the ack");
    let acked = client.acknowledge_third_party_job().job_id(&job_id).nonce(&nonce).client_token(&token).send().await.unwrap();
    assert_eq!(acked.status(), Some(&JobStatus::InProgress));

    // Custom-job calls do not know third-party jobs.
    let err = client.acknowledge_job().job_id(&job_id).nonce(&nonce).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = client.get_job_details().job_id(&job_id).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = client.put_job_success_result().job_id(&job_id).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");

    // A continuation token finishes this job and queues the next one.
    client
        .put_third_party_job_success_result()
        .job_id(&job_id)
        .client_token(&token)
        .continuation_token("page-2")
        .execution_details(ExecutionDetails::builder().summary("half way").percent_complete(50).build())
        .send()
        .await
        .unwrap();
    let err = client.put_third_party_job_success_result().job_id(&job_id).client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidJobStateException");
    let (_, next_job) = poll_one(&client, source_type()).await;
    assert_ne!(next_job, job_id);
    let details = client.get_third_party_job_details().job_id(&next_job).client_token(&token).send().await.unwrap();
    let data = details.job_details().unwrap().data().unwrap();
    assert_eq!(data.continuation_token(), Some("page-2"));
    assert_eq!(data.pipeline_context().unwrap().pipeline_arn(), None);
    let nonce = details.job_details().unwrap().nonce().unwrap().to_owned();
    client.acknowledge_third_party_job().job_id(&next_job).nonce(&nonce).client_token(&token).send().await.unwrap();
    client
        .put_third_party_job_success_result()
        .job_id(&next_job)
        .client_token(&token)
        .current_revision(CurrentRevision::builder().revision("rev-42").change_identifier("c42").build().unwrap())
        .execution_details(ExecutionDetails::builder().summary("fetched rev-42").external_execution_id("ext-1").build())
        .send()
        .await
        .unwrap();
    let (stage_status, action) = latest_action_status(&client, "p", "Source").await;
    assert_eq!(stage_status, Some(StageExecutionStatus::Succeeded));
    assert_eq!(action.status(), Some(&ActionExecutionStatus::Succeeded));
    assert_eq!(action.summary(), Some("fetched rev-42"));

    // The next stage's partner job fails, and with it the stage and the execution.
    let (_, check_job) = poll_one(&client, check_type()).await;
    let details = client.get_third_party_job_details().job_id(&check_job).client_token(&token).send().await.unwrap();
    let data = details.job_details().unwrap().data().unwrap();
    assert_eq!(data.input_artifacts()[0].name(), Some("src"));
    assert_eq!(data.input_artifacts()[0].revision(), Some("rev-42"));
    let nonce = details.job_details().unwrap().nonce().unwrap().to_owned();
    client.acknowledge_third_party_job().job_id(&check_job).nonce(&nonce).client_token(&token).send().await.unwrap();
    let err = client
        .put_third_party_job_failure_result()
        .job_id(&check_job)
        .client_token(&wrong_secret)
        .failure_details(FailureDetails::builder().r#type(FailureType::JobFailed).message("nope").build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidClientTokenException");
    client
        .put_third_party_job_failure_result()
        .job_id(&check_job)
        .client_token(&token)
        .failure_details(FailureDetails::builder().r#type(FailureType::JobFailed).message("3 critical findings").build().unwrap())
        .send()
        .await
        .unwrap();
    let err = client
        .put_third_party_job_failure_result()
        .job_id(&check_job)
        .client_token(&token)
        .failure_details(FailureDetails::builder().r#type(FailureType::JobFailed).message("again").build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidJobStateException");
    let (stage_status, action) = latest_action_status(&client, "p", "Check").await;
    assert_eq!(stage_status, Some(StageExecutionStatus::Failed));
    assert_eq!(action.status(), Some(&ActionExecutionStatus::Failed));
    assert_eq!(action.error_details().unwrap().message(), Some("3 critical findings"));
    let executions = client.list_pipeline_executions().pipeline_name("p").send().await.unwrap();
    assert_eq!(executions.pipeline_execution_summaries()[0].status(), Some(&PipelineExecutionStatus::Failed));
    let history = client.list_action_executions().pipeline_name("p").send().await.unwrap();
    let scan = history.action_execution_details().iter().find(|d| d.action_name() == Some("Scan")).unwrap();
    assert_eq!(scan.status(), Some(&ActionExecutionStatus::Failed));
}

#[tokio::test]
async fn third_party_jobs_stay_in_their_account_and_their_family() {
    let server = TestServer::start().await;
    let (a, b) = (server.account("a").await, server.account("b").await);
    let (ca, cb) = (server.client(&a), server.client(&b));
    register_partner_types(&ca).await;
    register_partner_types(&cb).await;
    let (_, token_a) = issue_client(&server, &a).await;
    let (_, token_b) = issue_client(&server, &b).await;
    ca.create_pipeline().pipeline(partner_pipeline("p")).send().await.unwrap();
    let (_, job_id) = poll_one(&ca, source_type()).await;
    let nonce = nonce_of(&ca, &job_id, &token_a).await;

    // Account B, with its own valid token, does not find A's job.
    assert!(cb.poll_for_third_party_jobs().action_type_id(source_type()).send().await.unwrap().jobs().is_empty());
    let err = cb.get_third_party_job_details().job_id(&job_id).client_token(&token_b).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = cb.acknowledge_third_party_job().job_id(&job_id).nonce(&nonce).client_token(&token_b).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = cb.put_third_party_job_success_result().job_id(&job_id).client_token(&token_b).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let failure = || FailureDetails::builder().r#type(FailureType::JobFailed).message("x").build().unwrap();
    let err =
        cb.put_third_party_job_failure_result().job_id(&job_id).client_token(&token_b).failure_details(failure()).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    // B's token is no key to A's jobs either.
    let err = ca.get_third_party_job_details().job_id(&job_id).client_token(&token_b).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidClientTokenException");
    let err = ca.acknowledge_third_party_job().job_id(&job_id).nonce(&nonce).client_token(&token_b).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidClientTokenException");

    // Which types a partner poll accepts.
    let custom = type_id(ActionCategory::Build, ActionOwner::Custom, "Builder");
    let err = ca.poll_for_third_party_jobs().action_type_id(custom).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let aws = type_id(ActionCategory::Build, ActionOwner::Aws, "CodeBuild");
    let err = ca.poll_for_third_party_jobs().action_type_id(aws).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let github = type_id(ActionCategory::Source, ActionOwner::ThirdParty, "GitHub");
    let err = ca.poll_for_third_party_jobs().action_type_id(github).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let unknown = type_id(ActionCategory::Deploy, ActionOwner::ThirdParty, "Nobody");
    let err = ca.poll_for_third_party_jobs().action_type_id(unknown).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ActionTypeNotFoundException");
    let err = ca.poll_for_jobs().action_type_id(source_type()).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException", "custom polls refuse partner types");

    // An account with partner types but no client is told what to do.
    let c = server.account("c").await;
    let cc = server.client(&c);
    register_partner_types(&cc).await;
    let err = cc.poll_for_third_party_jobs().action_type_id(source_type()).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    assert!(error_message(&err).contains("create-third-party-client"), "{}", error_message(&err));

    // A's job is still A's to finish.
    ca.acknowledge_third_party_job().job_id(&job_id).nonce(&nonce).client_token(&token_a).send().await.unwrap();
    ca.put_third_party_job_success_result().job_id(&job_id).client_token(&token_a).send().await.unwrap();
    let (_, action) = latest_action_status(&ca, "p", "Source").await;
    assert_eq!(action.status(), Some(&ActionExecutionStatus::Succeeded));

    // Custom-job calls do not reach partner jobs.
    let (_, check_job) = poll_one(&ca, check_type()).await;
    let err = ca.get_job_details().job_id(&check_job).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
}

#[tokio::test]
async fn custom_jobs_are_not_third_party_jobs() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let (_, token) = issue_client(&server, &account).await;
    crate::helpers::custom_action_type(&client, "Build", "Builder", &[]).await;
    crate::helpers::custom_action_type(&client, "Source", "Fetcher", &[]).await;
    let action = |name: &str, category: ActionCategory, provider: &str, input: Option<&str>, output: &str| {
        let mut a = ActionDeclaration::builder()
            .name(name)
            .action_type_id(type_id(category, ActionOwner::Custom, provider))
            .output_artifacts(OutputArtifact::builder().name(output).build().unwrap());
        if let Some(i) = input {
            a = a.input_artifacts(InputArtifact::builder().name(i).build().unwrap());
        }
        a.build().unwrap()
    };
    let pipeline = PipelineDeclaration::builder()
        .name("c")
        .role_arn("arn:aws:iam::123456789012:role/pipeline")
        .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifacts-bucket").build().unwrap())
        .stages(
            StageDeclaration::builder()
                .name("Source")
                .actions(action("Fetch", ActionCategory::Source, "Fetcher", None, "src"))
                .build()
                .unwrap(),
        )
        .stages(
            StageDeclaration::builder()
                .name("Build")
                .actions(action("Make", ActionCategory::Build, "Builder", Some("src"), "out"))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client.create_pipeline().pipeline(pipeline).send().await.unwrap();
    let polled =
        client.poll_for_jobs().action_type_id(type_id(ActionCategory::Source, ActionOwner::Custom, "Fetcher")).send().await.unwrap();
    let job = &polled.jobs()[0];
    let (job_id, nonce) = (job.id().unwrap(), job.nonce().unwrap());
    let err = client.get_third_party_job_details().job_id(job_id).client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = client.acknowledge_third_party_job().job_id(job_id).nonce(nonce).client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = client.put_third_party_job_success_result().job_id(job_id).client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    // The custom worker is unaffected.
    let acked = client.acknowledge_job().job_id(job_id).nonce(nonce).send().await.unwrap();
    assert_eq!(acked.status(), Some(&JobStatus::InProgress));
}

#[tokio::test]
async fn an_operator_issues_and_revokes_client_pairs_with_the_admin_command() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    register_partner_types(&client).await;
    client.create_pipeline().pipeline(partner_pipeline("p")).send().await.unwrap();

    let issued = json_line(&admin(&server, &["create-third-party-client", "--account-id", &account.account_id]));
    assert_eq!(issued["accountId"], account.account_id.as_str());
    let client_id = issued["clientId"].as_str().unwrap().to_owned();
    let token = issued["clientToken"].as_str().unwrap().to_owned();

    // Stored as an argon2 hash only.
    let (hash,): (String,) = sqlx::query_as("select token_hash from third_party_client where client_id = $1::uuid")
        .bind(&client_id)
        .fetch_one(&server.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(token.split_once('.').unwrap().1));

    let listed = admin(&server, &["list-third-party-clients", "--account-id", &account.account_id]);
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.contains(&client_id) && !text.contains(&token), "{text}");

    let (polled_client, job_id) = poll_one(&client, source_type()).await;
    assert_eq!(polled_client, client_id);
    let nonce = nonce_of(&client, &job_id, &token).await;
    assert!(!nonce.is_empty());

    assert!(admin(&server, &["delete-third-party-client", "--client-id", &client_id]).status.success());
    let err = client.get_third_party_job_details().job_id(&job_id).client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidClientTokenException");

    let unknown = admin(&server, &["create-third-party-client", "--account-id", "999999999999"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("does not exist"));
}

#[tokio::test]
async fn a_partner_job_never_acknowledged_comes_back_with_a_new_nonce() {
    let mut config = millrace::config::Config::for_tests();
    // Long enough that the redelivered job is not taken back again before
    // the second worker acknowledges it on a loaded machine.
    config.job_ack_timeout = std::time::Duration::from_secs(2);
    config.sweep_interval = std::time::Duration::from_millis(50);
    let server = TestServer::start_with(config).await;
    let account = server.account("a").await;
    let client = server.client(&account);
    register_partner_types(&client).await;
    let (_, token) = issue_client(&server, &account).await;
    client.create_pipeline().pipeline(partner_pipeline("p")).send().await.unwrap();
    let (_, job_id) = poll_one(&client, source_type()).await;
    let first_nonce = nonce_of(&client, &job_id, &token).await;

    // The worker disappears; after the ack timeout a poll hands the job out again.
    let mut again = None;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let out = client.poll_for_third_party_jobs().action_type_id(source_type()).send().await.unwrap();
        if let Some(j) = out.jobs().first() {
            again = Some(j.job_id().unwrap().to_owned());
            break;
        }
    }
    assert_eq!(again.as_deref(), Some(job_id.as_str()), "the job was redelivered");
    let second_nonce = nonce_of(&client, &job_id, &token).await;
    assert_ne!(second_nonce, first_nonce);
    let err = client.acknowledge_third_party_job().job_id(&job_id).nonce(&first_nonce).client_token(&token).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidNonceException", "the first worker's late ack is refused");
    let ok = client.acknowledge_third_party_job().job_id(&job_id).nonce(&second_nonce).client_token(&token).send().await.unwrap();
    assert_eq!(ok.status(), Some(&JobStatus::InProgress));
}

/// An integrator-model type's `executor.jobTimeout` replaces the server's
/// job timeout for that type's jobs; other jobs keep the server's.
#[tokio::test]
async fn a_partner_types_job_timeout_replaces_the_servers() {
    let mut config = Config::for_tests();
    config.job_timeout = Duration::from_millis(300);
    config.sweep_interval = Duration::from_millis(50);
    let server = TestServer::start_with(config).await;
    let mut clients = Vec::new();
    for (name, job_timeout) in [("declared", Some(60)), ("default", None)] {
        let account = server.account(name).await;
        let client = server.client(&account);
        register_partner_types_timing_out_after(&client, job_timeout).await;
        let (_, token) = issue_client(&server, &account).await;
        client.create_pipeline().pipeline(partner_pipeline("p")).send().await.unwrap();
        let (_, job_id) = poll_one(&client, source_type()).await;
        let nonce = nonce_of(&client, &job_id, &token).await;
        client.acknowledge_third_party_job().job_id(&job_id).nonce(&nonce).client_token(&token).send().await.unwrap();
        clients.push((client, job_id, token));
    }
    // The server's 300 ms pass many times over.
    let (default, _, _) = &clients[1];
    let mut status = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = latest_action_status(default, "p", "Source").await.1.status().cloned();
        if status == Some(ActionExecutionStatus::Failed) {
            break;
        }
    }
    assert_eq!(status, Some(ActionExecutionStatus::Failed), "the server's timeout applies without a declared one");
    let (declared, job_id, token) = &clients[0];
    let (_, action) = latest_action_status(declared, "p", "Source").await;
    assert_eq!(action.status(), Some(&ActionExecutionStatus::InProgress), "{action:?}");
    declared.put_third_party_job_success_result().job_id(job_id).client_token(token).send().await.unwrap();
    let (_, action) = latest_action_status(declared, "p", "Source").await;
    assert_eq!(action.status(), Some(&ActionExecutionStatus::Succeeded));
}
