//! `millrace admin`: the binary, against the same database as a server.

use std::process::Command;

use millrace::config::Config;

use crate::helpers::{TestAccount, TestServer, error_code, refused_soon, simple_pipeline};

pub fn admin(server: &TestServer, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_millrace"))
        .arg("admin")
        .args(["--database-url", &server.database_url])
        .args(args)
        .env("MILLRACE_MASTER_KEY", &server.master_key)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running millrace admin")
}

pub fn json_line(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[tokio::test]
async fn create_account_makes_a_tenant_whose_keys_work_and_whose_view_is_empty() {
    let server = TestServer::start_with(Config::for_tests()).await;
    let first = server.account("first").await;
    server.client(&first).create_pipeline().pipeline(simple_pipeline("p")).send().await.unwrap();

    let created = json_line(&admin(&server, &["create-account", "--name", "second", "--account-id", "123456789012"]));
    assert_eq!(created["accountId"], "123456789012");
    let second = TestAccount {
        account_id: created["accountId"].as_str().unwrap().into(),
        access_key_id: created["accessKeyId"].as_str().unwrap().into(),
        secret_access_key: created["secretAccessKey"].as_str().unwrap().into(),
    };
    assert!(server.client(&second).list_pipelines().send().await.unwrap().pipelines().is_empty());

    let extra = json_line(&admin(&server, &["create-access-key", "--account-id", "123456789012"]));
    assert_ne!(extra["accessKeyId"], created["accessKeyId"]);
    let extra_key = TestAccount {
        account_id: second.account_id.clone(),
        access_key_id: extra["accessKeyId"].as_str().unwrap().into(),
        secret_access_key: extra["secretAccessKey"].as_str().unwrap().into(),
    };
    server.client(&extra_key).list_pipelines().send().await.unwrap();

    let listed = admin(&server, &["list-accounts"]);
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.contains("123456789012") && text.contains(second.access_key_id.as_str()), "{text}");
    assert!(!text.contains(second.secret_access_key.as_str()), "list-accounts must not print secrets");

    assert!(admin(&server, &["delete-access-key", "--access-key-id", &second.access_key_id]).status.success());
    let err = refused_soon(&server.client(&second)).await;
    assert_eq!(error_code(&err), "UnrecognizedClientException");

    let dup = admin(&server, &["create-account", "--name", "again", "--account-id", "123456789012"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
}
