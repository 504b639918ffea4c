//! Tags: TagResource, UntagResource, ListTagsForResource on pipelines,
//! custom action types and webhooks.

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::Tag;

use crate::helpers::{REGION, TestServer, error_code, simple_pipeline};

pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

pub fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

pub fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pipeline_arn(account_id: &str, name: &str) -> String {
    format!("arn:aws:codepipeline:{REGION}:{account_id}:{name}")
}

pub async fn list(client: &Client, arn: &str) -> Vec<(String, String)> {
    pairs(client.list_tags_for_resource().resource_arn(arn).send().await.unwrap().tags())
}

#[tokio::test]
async fn tags_are_upserted_listed_in_key_order_and_removed() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let arn = pipeline_arn(&account.account_id, "web");
    assert!(list(&client, &arn).await.is_empty());

    client.tag_resource().resource_arn(&arn).tags(tag("team", "blue")).tags(tag("env", "")).send().await.unwrap();
    client.tag_resource().resource_arn(&arn).tags(tag("env", "prod")).tags(tag("Team", "case-sensitive")).send().await.unwrap();
    assert_eq!(list(&client, &arn).await, owned(&[("Team", "case-sensitive"), ("env", "prod"), ("team", "blue")]));

    client.untag_resource().resource_arn(&arn).tag_keys("team").tag_keys("never-there").send().await.unwrap();
    assert_eq!(list(&client, &arn).await, owned(&[("Team", "case-sensitive"), ("env", "prod")]));
}

#[tokio::test]
async fn list_tags_for_resource_pages_in_key_order() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let arn = pipeline_arn(&account.account_id, "web");
    let mut request = client.tag_resource().resource_arn(&arn);
    for k in ["e", "c", "a", "d", "b"] {
        request = request.tags(tag(k, k));
    }
    request.send().await.unwrap();

    let mut keys = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = client.list_tags_for_resource().resource_arn(&arn).max_results(2).set_next_token(token).send().await.unwrap();
        pages += 1;
        assert!(page.tags().len() <= 2);
        keys.extend(page.tags().iter().map(|t| t.key().to_owned()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(keys, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);

    let err = client.list_tags_for_resource().resource_arn(&arn).next_token("bogus").send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidNextTokenException");
}

#[tokio::test]
async fn the_tag_rules_are_enforced() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let arn = pipeline_arn(&account.account_id, "web");
    let tag_err = |tags: Vec<Tag>| {
        let client = client.clone();
        let arn = arn.clone();
        async move { error_code(&client.tag_resource().resource_arn(arn).set_tags(Some(tags)).send().await.unwrap_err()) }
    };

    assert_eq!(tag_err(vec![tag("aws:owner", "x")]).await, "InvalidTagsException");
    assert_eq!(tag_err(vec![tag("AWS:owner", "x")]).await, "InvalidTagsException");
    assert_eq!(tag_err(vec![tag("k", "1"), tag("k", "2")]).await, "InvalidTagsException");
    assert_eq!(tag_err((0..51).map(|i| tag(&format!("k{i:02}"), "v")).collect()).await, "TooManyTagsException");

    // 48 tags, then 3 new ones would make 51; overwriting existing keys never adds.
    let first: Vec<Tag> = (0..48).map(|i| tag(&format!("k{i:02}"), "v")).collect();
    client.tag_resource().resource_arn(&arn).set_tags(Some(first)).send().await.unwrap();
    assert_eq!(tag_err(vec![tag("x", "1"), tag("y", "1"), tag("z", "1")]).await, "TooManyTagsException");
    assert_eq!(list(&client, &arn).await.len(), 48, "a refused request changes nothing");
    client.tag_resource().resource_arn(&arn).tags(tag("k00", "new")).tags(tag("x", "1")).tags(tag("y", "1")).send().await.unwrap();
    assert_eq!(list(&client, &arn).await.len(), 50);
    assert_eq!(tag_err(vec![tag("z", "1")]).await, "TooManyTagsException");

    let err = client.untag_resource().resource_arn(&arn).tag_keys("aws:cloudformation:stack-name").send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidTagsException");
    // The model's bounds come first: a 129-character key is a validation error.
    assert_eq!(tag_err(vec![tag(&"k".repeat(129), "v")]).await, "ValidationException");
}

#[tokio::test]
async fn arns_are_parsed_and_anything_not_here_is_not_found() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let id = &account.account_id;
    let code = |arn: String| {
        let client = client.clone();
        async move { error_code(&client.tag_resource().resource_arn(arn).tags(tag("k", "v")).send().await.unwrap_err()) }
    };
    let list_code = |arn: String| {
        let client = client.clone();
        async move { error_code(&client.list_tags_for_resource().resource_arn(arn).send().await.unwrap_err()) }
    };

    // Well-formed, but nothing of this account in this region has that ARN.
    for arn in [
        pipeline_arn(id, "missing"),
        format!("arn:aws:codepipeline:eu-west-1:{id}:web"),
        "arn:aws:codepipeline:us-east-1:999999999999:web".to_owned(),
        format!("arn:aws-cn:codepipeline:{REGION}:{id}:web"),
        format!("arn:aws:codepipeline:{REGION}:{id}:webhook:missing"),
        format!("arn:aws:codepipeline:{REGION}:{id}:actiontype:Custom/Build/Missing/1"),
        format!("arn:aws:codepipeline:{REGION}:{id}:actiontype:AWS/Source/S3/1"),
    ] {
        assert_eq!(code(arn.clone()).await, "ResourceNotFoundException", "{arn}");
        assert_eq!(list_code(arn.clone()).await, "ResourceNotFoundException", "{arn}");
    }
    // Matches the model's pattern, but is no pipeline, action type or webhook ARN.
    for arn in [
        format!("arn:aws:codepipeline:{REGION}:{id}:web/Source"),
        format!("arn:aws:codepipeline:{REGION}:{id}:web/Source/Fetch"),
        format!("arn:aws:codepipeline:{REGION}:{id}:actiontype:Custom/Build/Maker"),
        format!("arn:aws:codepipeline:{REGION}:{id}:rule:x"),
    ] {
        assert_eq!(code(arn.clone()).await, "InvalidArnException", "{arn}");
        assert_eq!(list_code(arn.clone()).await, "InvalidArnException", "{arn}");
    }
    let err = client.untag_resource().resource_arn(format!("arn:aws:codepipeline:{REGION}:{id}:a/b")).tag_keys("k").send().await;
    assert_eq!(error_code(&err.unwrap_err()), "InvalidArnException");
    let err = client.untag_resource().resource_arn(pipeline_arn(id, "missing")).tag_keys("k").send().await;
    assert_eq!(error_code(&err.unwrap_err()), "ResourceNotFoundException");
    // Not even the model's pattern.
    assert_eq!(code("web".into()).await, "ValidationException");
}

#[tokio::test]
async fn custom_action_types_are_taggable_under_either_spelling_of_their_arn() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let id = &account.account_id;
    crate::helpers::custom_action_type(&client, "Build", "Maker", &[]).await;
    crate::helpers::custom_action_type(&client, "Deploy", "Gone", &[]).await;
    client
        .delete_custom_action_type()
        .category(aws_sdk_codepipeline::types::ActionCategory::Deploy)
        .provider("Gone")
        .version("1")
        .send()
        .await
        .unwrap();

    let lower = format!("arn:aws:codepipeline:{REGION}:{id}:actiontype:Custom/Build/Maker/1");
    let camel = format!("arn:aws:codepipeline:{REGION}:{id}:actionType:Custom/Build/Maker/1");
    client.tag_resource().resource_arn(&camel).tags(tag("kind", "builder")).send().await.unwrap();
    // Both spellings name the same resource.
    assert_eq!(list(&client, &lower).await, owned(&[("kind", "builder")]));
    assert_eq!(list(&client, &camel).await, owned(&[("kind", "builder")]));
    let deleted = format!("arn:aws:codepipeline:{REGION}:{id}:actiontype:Custom/Deploy/Gone/1");
    let err = client.tag_resource().resource_arn(deleted).tags(tag("k", "v")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ResourceNotFoundException");
}

#[tokio::test]
async fn another_account_gets_resource_not_found_for_a_tenants_arns() {
    let server = TestServer::start().await;
    let (a, b) = (server.account("a").await, server.account("b").await);
    let (ca, cb) = (server.client(&a), server.client(&b));
    ca.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    // B has a pipeline of the same name: its own ARN differs.
    cb.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();

    let arn = pipeline_arn(&a.account_id, "web");
    ca.tag_resource().resource_arn(&arn).tags(tag("owner", "a")).send().await.unwrap();
    let err = cb.tag_resource().resource_arn(&arn).tags(tag("owner", "b")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ResourceNotFoundException");
    let err = cb.untag_resource().resource_arn(&arn).tag_keys("owner").send().await.unwrap_err();
    assert_eq!(error_code(&err), "ResourceNotFoundException");
    let err = cb.list_tags_for_resource().resource_arn(&arn).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ResourceNotFoundException");
    assert_eq!(list(&ca, &arn).await, owned(&[("owner", "a")]));
    assert!(list(&cb, &pipeline_arn(&b.account_id, "web")).await.is_empty());
}

#[tokio::test]
async fn concurrent_tag_requests_cannot_pass_the_limit_together() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let arn = pipeline_arn(&account.account_id, "web");
    // Ten requests of six new keys each: only eight fit, whatever the interleaving.
    let mut requests = tokio::task::JoinSet::new();
    for r in 0..10 {
        let (client, arn) = (client.clone(), arn.clone());
        let tags = (0..6).map(|i| tag(&format!("r{r}-k{i}"), "v")).collect();
        requests
            .spawn(async move { client.tag_resource().resource_arn(arn).set_tags(Some(tags)).send().await.map_err(|e| error_code(&e)) });
    }
    let results = requests.join_all().await;
    let refused = results.iter().filter(|r| r.as_ref().is_err_and(|code| code == "TooManyTagsException")).count();
    assert_eq!(refused, 2, "{results:?}");
    assert_eq!(list(&client, &arn).await.len(), 48);
}
