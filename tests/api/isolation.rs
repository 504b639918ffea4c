//! Tenant isolation: one account never sees or touches another's pipelines.

use crate::helpers::{TestServer, error_code, simple_pipeline};

#[tokio::test]
async fn another_account_cannot_see_or_touch_a_pipeline() {
    let server = TestServer::start().await;
    let (a, b) = (server.account("a").await, server.account("b").await);
    let (ca, cb) = (server.client(&a), server.client(&b));
    ca.create_pipeline().pipeline(simple_pipeline("shared-name")).send().await.unwrap();

    assert!(cb.list_pipelines().send().await.unwrap().pipelines().is_empty());
    let err = cb.get_pipeline().name("shared-name").send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");
    let err = cb.update_pipeline().pipeline(simple_pipeline("shared-name")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");
    cb.delete_pipeline().name("shared-name").send().await.unwrap();

    // A's pipeline survived B's delete, and B may use the same name.
    assert_eq!(ca.get_pipeline().name("shared-name").send().await.unwrap().pipeline().unwrap().version(), Some(1));
    cb.create_pipeline().pipeline(simple_pipeline("shared-name")).send().await.unwrap();
    assert_eq!(ca.list_pipelines().send().await.unwrap().pipelines().len(), 1);
    assert_eq!(cb.list_pipelines().send().await.unwrap().pipelines().len(), 1);
}

#[tokio::test]
async fn another_account_cannot_read_or_drive_executions() {
    use aws_sdk_codepipeline::types::*;
    let server = TestServer::start().await;
    let (a, b) = (server.account("a").await, server.account("b").await);
    let (ca, cb) = (server.client(&a), server.client(&b));
    ca.create_pipeline().pipeline(simple_pipeline("app")).send().await.unwrap();
    let id = ca.list_pipeline_executions().pipeline_name("app").send().await.unwrap().pipeline_execution_summaries()[0]
        .pipeline_execution_id()
        .unwrap()
        .to_owned();

    let not_found = |code: String| assert_eq!(code, "PipelineNotFoundException");
    not_found(error_code(&cb.get_pipeline_state().name("app").send().await.unwrap_err()));
    not_found(error_code(&cb.get_pipeline_execution().pipeline_name("app").pipeline_execution_id(&id).send().await.unwrap_err()));
    not_found(error_code(&cb.list_pipeline_executions().pipeline_name("app").send().await.unwrap_err()));
    not_found(error_code(&cb.list_action_executions().pipeline_name("app").send().await.unwrap_err()));
    not_found(error_code(&cb.start_pipeline_execution().name("app").send().await.unwrap_err()));
    not_found(error_code(&cb.stop_pipeline_execution().pipeline_name("app").pipeline_execution_id(&id).send().await.unwrap_err()));
    not_found(error_code(
        &cb.retry_stage_execution()
            .pipeline_name("app")
            .stage_name("Build")
            .pipeline_execution_id(&id)
            .retry_mode(StageRetryMode::FailedActions)
            .send()
            .await
            .unwrap_err(),
    ));
    not_found(error_code(
        &cb.disable_stage_transition()
            .pipeline_name("app")
            .stage_name("Build")
            .transition_type(StageTransitionType::Inbound)
            .reason("no")
            .send()
            .await
            .unwrap_err(),
    ));
    let revision = ActionRevision::builder()
        .revision_id("x")
        .revision_change_id("x")
        .created(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap();
    not_found(error_code(
        &cb.put_action_revision()
            .pipeline_name("app")
            .stage_name("Source")
            .action_name("Fetch")
            .action_revision(revision)
            .send()
            .await
            .unwrap_err(),
    ));
    // A's pipeline is untouched: still one execution, transitions enabled.
    assert_eq!(ca.list_pipeline_executions().pipeline_name("app").send().await.unwrap().pipeline_execution_summaries().len(), 1);
    let state = ca.get_pipeline_state().name("app").send().await.unwrap();
    assert!(state.stage_states().iter().all(|s| s.inbound_transition_state().is_none_or(|t| t.enabled())));
}
