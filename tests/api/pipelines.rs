//! Pipelines: create, read every version, update, list, delete.

use crate::helpers::{TestServer, error_code, simple_pipeline};

#[tokio::test]
async fn a_pipeline_keeps_every_version() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let created = client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    assert_eq!(created.pipeline().unwrap().version(), Some(1));

    let mut changed = simple_pipeline("web");
    changed.role_arn = "arn:aws:iam::123456789012:role/other".into();
    let updated = client.update_pipeline().pipeline(changed).send().await.unwrap();
    assert_eq!(updated.pipeline().unwrap().version(), Some(2));

    let v1 = client.get_pipeline().name("web").version(1).send().await.unwrap();
    assert_eq!(v1.pipeline().unwrap().role_arn(), "arn:aws:iam::123456789012:role/pipeline");
    let current = client.get_pipeline().name("web").send().await.unwrap();
    assert_eq!(current.pipeline().unwrap().version(), Some(2));
    assert_eq!(current.pipeline().unwrap().role_arn(), "arn:aws:iam::123456789012:role/other");
    let metadata = current.metadata().unwrap();
    assert_eq!(metadata.pipeline_arn(), Some(format!("arn:aws:codepipeline:us-east-1:{}:web", account.account_id).as_str()));
    assert!(metadata.created().is_some() && metadata.updated().is_some());

    let err = client.get_pipeline().name("web").version(3).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineVersionNotFoundException");
}

#[tokio::test]
async fn a_taken_name_is_refused_and_a_missing_one_not_found() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let err = client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNameInUseException");
    let err = client.get_pipeline().name("nope").send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");
    let err = client.update_pipeline().pipeline(simple_pipeline("nope")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");
}

#[tokio::test]
async fn deleting_is_idempotent_and_a_recreated_name_starts_over() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    client.update_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    client.delete_pipeline().name("web").send().await.unwrap();
    client.delete_pipeline().name("web").send().await.unwrap();
    let err = client.get_pipeline().name("web").send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");
    let again = client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    assert_eq!(again.pipeline().unwrap().version(), Some(1));
}

#[tokio::test]
async fn listing_pages_through_every_pipeline_once() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let mut expected: Vec<String> = (0..25).map(|i| format!("p-{i:03}")).collect();
    for name in &expected {
        client.create_pipeline().pipeline(simple_pipeline(name)).send().await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = client.list_pipelines().max_results(7).set_next_token(token).send().await.unwrap();
        assert!(page.pipelines().len() <= 7);
        seen.extend(page.pipelines().iter().map(|p| p.name().unwrap().to_owned()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    expected.sort();
    assert_eq!(seen, expected);

    let err = client.list_pipelines().next_token("garbage").send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidNextTokenException");
}

#[tokio::test]
async fn racing_updates_each_get_their_own_version() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let updates = (0..8).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.update_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap() })
    });
    let mut versions: Vec<i32> = Vec::new();
    for u in updates {
        versions.push(u.await.unwrap().pipeline().unwrap().version().unwrap());
    }
    versions.sort();
    assert_eq!(versions, (2..=9).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_250_pipeline_list_pages_without_gaps_or_repeats() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let creates = (0..250).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.create_pipeline().pipeline(simple_pipeline(&format!("pipe-{i}"))).send().await.unwrap() })
    });
    for c in creates.collect::<Vec<_>>() {
        c.await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = client.list_pipelines().max_results(40).set_next_token(token).send().await.unwrap();
        pages += 1;
        seen.extend(page.pipelines().iter().map(|p| p.name().unwrap().to_owned()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 7);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 250);
    assert_eq!(seen, unique, "pages come in one stable order");
    let first = client.list_pipelines().max_results(1).send().await.unwrap();
    let summary = &first.pipelines()[0];
    assert_eq!(summary.pipeline_type().map(|t| t.as_str()), Some("V1"));
    assert_eq!(summary.execution_mode().map(|m| m.as_str()), Some("SUPERSEDED"));
    assert_eq!(summary.version(), Some(1));
}

#[tokio::test]
async fn tags_given_at_creation_are_kept_and_go_with_the_pipeline() {
    use aws_sdk_codepipeline::types::Tag;
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    let created = client.create_pipeline().pipeline(simple_pipeline("web")).tags(tag("team", "core")).send().await.unwrap();
    assert_eq!(created.tags().len(), 1);
    let arn = format!("arn:aws:codepipeline:us-east-1:{}:web", account.account_id);
    let listed = client.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    assert_eq!(listed.tags()[0].key(), "team");

    let err = client.create_pipeline().pipeline(simple_pipeline("bad")).tags(tag("aws:reserved", "x")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidTagsException");
    assert_eq!(error_code(&client.get_pipeline().name("bad").send().await.unwrap_err()), "PipelineNotFoundException");

    client.delete_pipeline().name("web").send().await.unwrap();
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    assert!(client.list_tags_for_resource().resource_arn(&arn).send().await.unwrap().tags().is_empty());
}
