//! The AWS JSON 1.1 envelope: targets, bodies, error shapes.

use chrono::Utc;

use crate::helpers::{TestServer, error_code, error_message, raw_post, signed_headers};

#[tokio::test]
async fn an_empty_account_lists_no_pipelines() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let out = server.client(&account).list_pipelines().send().await.unwrap();
    assert!(out.pipelines().is_empty());
    assert!(out.next_token().is_none());
}

#[tokio::test]
async fn an_unknown_target_is_an_unknown_operation() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    for target in ["CodePipeline_20150709.LaunchRockets", "ListPipelines", ""] {
        let headers = signed_headers(server.addr, &account, target, b"{}", Utc::now());
        let r = raw_post(server.addr, &headers, b"{}").await;
        assert_eq!(r.status, 400, "{target}: {}", r.body);
        assert_eq!(r.json()["__type"], "UnknownOperationException", "{target}");
        assert_eq!(r.header("x-amzn-errortype"), Some("UnknownOperationException"));
        assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
        assert!(r.header("x-amzn-requestid").is_some_and(|id| !id.is_empty()));
    }
}

#[tokio::test]
async fn malformed_json_is_a_serialization_error() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    for body in [&b"{\"name\": "[..], b"[1, 2]", b"\"text\"", b"{\"name\": 42}"] {
        let headers = signed_headers(server.addr, &account, "CodePipeline_20150709.GetPipeline", body, Utc::now());
        let r = raw_post(server.addr, &headers, body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["__type"], "SerializationException", "{}", String::from_utf8_lossy(body));
        assert!(!r.json()["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_empty_body_reads_as_an_empty_object() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let headers = signed_headers(server.addr, &account, "CodePipeline_20150709.ListPipelines", b"", Utc::now());
    let r = raw_post(server.addr, &headers, b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["pipelines"], serde_json::json!([]));
}

#[tokio::test]
async fn constraint_violations_name_the_member() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let err = client.get_pipeline().name("a b").send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    assert_eq!(
        error_message(&err),
        "1 validation error detected: Value 'a b' at 'name' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [A-Za-z0-9.@\\-_]+"
    );
    let err = client.list_pipelines().max_results(1001).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    assert!(error_message(&err).contains("at 'maxResults'"), "{}", error_message(&err));
}

#[tokio::test]
async fn a_missing_required_member_is_a_validation_error() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let headers = signed_headers(server.addr, &account, "CodePipeline_20150709.GetPipeline", b"{}", Utc::now());
    let r = raw_post(server.addr, &headers, b"{}").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "ValidationException");
    assert_eq!(
        r.json()["message"],
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null"
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let mut config = millrace::config::Config::for_tests();
    config.max_body_bytes = 1024;
    let server = TestServer::start_with(config).await;
    let account = server.account("a").await;
    let body = format!(r#"{{"nextToken": "{}"}}"#, "x".repeat(2000));
    let headers = signed_headers(server.addr, &account, "CodePipeline_20150709.ListPipelines", body.as_bytes(), Utc::now());
    let r = raw_post(server.addr, &headers, body.as_bytes()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["__type"], "RequestEntityTooLargeException");
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let server = TestServer::start().await;
    for path in ["/healthz", "/readyz"] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
    }
}

/// OverrideStageCondition's members are checked by the model before the
/// handler: a missing conditionType, and ON_FAILURE (not an overridable
/// condition type), are ValidationExceptions naming the member.
#[tokio::test]
async fn override_stage_condition_names_a_missing_or_unknown_condition_type() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let target = "CodePipeline_20150709.OverrideStageCondition";
    let id = "4c1e7a52-0000-4000-8000-000000000000";
    for (body, expected) in [
        (format!(r#"{{"pipelineName": "p", "stageName": "s", "pipelineExecutionId": "{id}"}}"#), "Value null at 'conditionType'"),
        (
            format!(r#"{{"pipelineName": "p", "stageName": "s", "pipelineExecutionId": "{id}", "conditionType": "ON_FAILURE"}}"#),
            "Value 'ON_FAILURE' at 'conditionType'",
        ),
        (
            r#"{"pipelineName": "p", "stageName": "s", "pipelineExecutionId": "not-an-id", "conditionType": "ON_SUCCESS"}"#.to_owned(),
            "at 'pipelineExecutionId'",
        ),
    ] {
        let headers = signed_headers(server.addr, &account, target, body.as_bytes(), Utc::now());
        let r = raw_post(server.addr, &headers, body.as_bytes()).await;
        assert_eq!((r.status, r.json()["__type"].as_str()), (400, Some("ValidationException")), "{body}");
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(expected), "{message}");
    }
}
