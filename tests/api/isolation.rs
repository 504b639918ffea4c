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
