//! SigV4: every way a request can fail to authenticate, through the SDK.

use std::time::Duration;

use chrono::Utc;
use millrace::config::Config;

use crate::helpers::{TestServer, error_code, error_message, raw_post, refused_soon, signed_headers};

#[tokio::test]
async fn a_wrong_secret_is_an_invalid_signature() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client_with(&account.access_key_id, "not-the-secret", None);
    let err = client.list_pipelines().send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidSignatureException");
    assert!(error_message(&err).contains("does not match"), "{}", error_message(&err));
}

#[tokio::test]
async fn an_unknown_access_key_is_an_unrecognized_client() {
    let server = TestServer::start().await;
    let client = server.client_with("MKIAUNKNOWNKEY000000", "whatever", None);
    let err = client.list_pipelines().send().await.unwrap_err();
    assert_eq!(error_code(&err), "UnrecognizedClientException");
}

#[tokio::test]
async fn a_signature_twenty_minutes_old_has_expired() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client_with(&account.access_key_id, &account.secret_access_key, Some(Duration::from_secs(20 * 60)));
    let err = client.list_pipelines().send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidSignatureException");
    assert!(error_message(&err).contains("Signature expired"), "{}", error_message(&err));
}

#[tokio::test]
async fn a_signature_ten_minutes_old_is_still_accepted() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client_with(&account.access_key_id, &account.secret_access_key, Some(Duration::from_secs(10 * 60)));
    client.list_pipelines().send().await.unwrap();
}

#[tokio::test]
async fn a_request_without_a_signature_is_missing_authentication() {
    let server = TestServer::start().await;
    let headers = vec![
        ("content-type".to_owned(), "application/x-amz-json-1.1".to_owned()),
        ("x-amz-target".to_owned(), "CodePipeline_20150709.ListPipelines".to_owned()),
    ];
    let r = raw_post(server.addr, &headers, b"{}").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn a_tampered_body_breaks_the_signature() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let headers = signed_headers(server.addr, &account, "CodePipeline_20150709.ListPipelines", b"{}", Utc::now());
    let r = raw_post(server.addr, &headers, br#"{"maxResults": 5}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "InvalidSignatureException");
}

#[tokio::test]
async fn a_signature_for_another_region_is_refused() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let conf = server.client(&account).config().to_builder().region(aws_sdk_codepipeline::config::Region::new("eu-west-1")).build();
    let err = aws_sdk_codepipeline::Client::from_conf(conf).list_pipelines().send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidSignatureException");
}

#[tokio::test]
async fn a_deleted_access_key_stops_working_on_every_replica() {
    let one = TestServer::start().await;
    let two = TestServer::start_full(one.database_url.clone(), one.master_key.clone(), Config::for_tests()).await;
    let account = one.account("a").await;
    // Servers keep verified keys in memory: use the key on both until
    // their caches are listening and hold it.
    for _ in 0..20 {
        one.client(&account).list_pipelines().send().await.unwrap();
        two.client(&account).list_pipelines().send().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut conn = one.pool.acquire().await.unwrap();
    millrace::store::accounts::delete_access_key(&mut conn, &account.access_key_id).await.unwrap();
    // Revocation reaches the other replicas by NOTIFY, within milliseconds.
    for server in [&one, &two] {
        let err = refused_soon(&server.client(&account)).await;
        assert_eq!(error_code(&err), "UnrecognizedClientException");
    }
}
