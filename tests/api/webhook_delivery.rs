//! The receiving endpoint, `POST /webhooks/<id>`: GitHub-style deliveries
//! start the target pipeline, and nothing else does.
//!
//! CreatePipeline itself starts one execution, so executions are counted
//! against a baseline taken after setup.

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{
    ListWebhookItem, PipelineDeclaration, TriggerType, WebhookAuthConfiguration, WebhookAuthenticationType, WebhookDefinition,
    WebhookFilterRule,
};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use millrace::config::Config;
use serde_json::json;

use crate::helpers::{RawResponse, TestAccount, TestServer, custom_action_type, raw_request};
use crate::webhooks::captured_logs;

const SECRET: &str = "push-secret-93bd1a7f";
const PIPELINE: &str = "app";

/// Source (custom `GitRepo` with a secret `Branch` property) → Build (custom).
fn git_pipeline(name: &str, branch: &str) -> PipelineDeclaration {
    use aws_sdk_codepipeline::types::*;
    let type_id = |category: ActionCategory, provider: &str| {
        ActionTypeId::builder().category(category).owner(ActionOwner::Custom).provider(provider).version("1").build().unwrap()
    };
    let checkout = ActionDeclaration::builder()
        .name("Checkout")
        .action_type_id(type_id(ActionCategory::Source, "GitRepo"))
        .configuration("Branch", branch)
        .output_artifacts(OutputArtifact::builder().name("src").build().unwrap())
        .build()
        .unwrap();
    let compile = ActionDeclaration::builder()
        .name("Compile")
        .action_type_id(type_id(ActionCategory::Build, "Builder"))
        .input_artifacts(InputArtifact::builder().name("src").build().unwrap())
        .build()
        .unwrap();
    crate::helpers::two_stages(name, ("Source", checkout), ("Build", compile))
}

fn hook(name: &str, auth: WebhookAuthenticationType, config: WebhookAuthConfiguration) -> WebhookDefinition {
    WebhookDefinition::builder()
        .name(name)
        .target_pipeline(PIPELINE)
        .target_action("Checkout")
        .filters(WebhookFilterRule::builder().json_path("$.ref").match_equals("refs/heads/{Branch}").build().unwrap())
        .authentication(auth)
        .authentication_configuration(config)
        .build()
        .unwrap()
}

fn github_hook(name: &str, secret: &str) -> WebhookDefinition {
    hook(name, WebhookAuthenticationType::GithubHmac, WebhookAuthConfiguration::builder().secret_token(secret).build())
}

fn ip_hook(name: &str, range: &str) -> WebhookDefinition {
    hook(name, WebhookAuthenticationType::Ip, WebhookAuthConfiguration::builder().allowed_ip_range(range).build())
}

fn open_hook(name: &str) -> WebhookDefinition {
    hook(name, WebhookAuthenticationType::Unauthenticated, WebhookAuthConfiguration::builder().build())
}

struct Fixture {
    server: TestServer,
    account: TestAccount,
    client: Client,
}

impl Fixture {
    /// A server, an account with the custom action types, and pipeline `app` on branch `main`.
    async fn new(config: Config) -> Fixture {
        let server = TestServer::start_with(config).await;
        let account = server.account("a").await;
        let client = server.client(&account);
        setup_account(&client).await;
        Fixture { server, account, client }
    }

    /// Puts the webhook and returns its URL's path.
    async fn put(&self, def: WebhookDefinition) -> String {
        put(&self.server, &self.client, def).await
    }

    async fn deliver(&self, path: &str, headers: &[(&str, &str)], body: &str) -> RawResponse {
        deliver(&self.server, path, headers, body).await
    }

    async fn executions(&self) -> Vec<aws_sdk_codepipeline::types::PipelineExecutionSummary> {
        executions(&self.client).await
    }

    async fn webhook(&self, name: &str) -> ListWebhookItem {
        let all = self.client.list_webhooks().send().await.unwrap();
        all.webhooks().iter().find(|w| w.definition().unwrap().name() == name).unwrap().clone()
    }
}

async fn setup_account(client: &Client) {
    // Branch is secret: filters see its value, though it is sealed at rest.
    custom_action_type(client, "Source", "GitRepo", &[("Branch", true, true, false)]).await;
    custom_action_type(client, "Build", "Builder", &[]).await;
    client.create_pipeline().pipeline(git_pipeline(PIPELINE, "main")).send().await.unwrap();
}

async fn put(server: &TestServer, client: &Client, def: WebhookDefinition) -> String {
    let out = client.put_webhook().webhook(def).send().await.unwrap();
    let url = out.webhook().unwrap().url().to_owned();
    url.strip_prefix(&server.endpoint()).unwrap_or_else(|| panic!("{url} is not on {}", server.endpoint())).to_owned()
}

async fn deliver(server: &TestServer, path: &str, headers: &[(&str, &str)], body: &str) -> RawResponse {
    let mut all: Vec<(String, String)> = vec![
        ("host".into(), server.addr.to_string()),
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), "GitHub-Hookshot/test".into()),
        ("x-github-event".into(), "push".into()),
    ];
    all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    raw_request(server.addr, "POST", path, &all, body.as_bytes()).await
}

async fn executions(client: &Client) -> Vec<aws_sdk_codepipeline::types::PipelineExecutionSummary> {
    let out = client.list_pipeline_executions().pipeline_name(PIPELINE).send().await.unwrap();
    out.pipeline_execution_summaries().to_vec()
}

/// A GitHub push event (trimmed to what matters).
fn push(branch: &str, commit: &str) -> String {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": commit,
        "created": false,
        "deleted": false,
        "head_commit": {"id": commit, "message": "Fix the thing", "timestamp": "2026-11-21T09:30:00+01:00"},
        "repository": {"name": "app", "full_name": "octo/app"},
        "pusher": {"name": "octocat"},
    })
    .to_string()
}

fn sha256_signature(secret: &str, body: &str) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn sha1_signature(secret: &str, body: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_signed_push_starts_the_pipeline_with_its_commit() {
    let f = Fixture::new(Config::for_tests()).await;
    let path = f.put(github_hook("push-main", SECRET)).await;
    let baseline = f.executions().await;
    assert_eq!(baseline.len(), 1, "CreatePipeline started one");
    assert!(f.webhook("push-main").await.last_triggered().is_none());

    let commit = "9f3c2ab54d1e8e7d1bd2a3f1c0e4a5b6c7d8e9f0";
    let body = push("main", commit);
    let sig = sha256_signature(SECRET, &body);
    let r = f.deliver(&path, &[("x-hub-signature-256", &sig), ("x-github-delivery", "d-0001")], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    assert_eq!(r.json()["revisionId"], commit);
    let execution_id = r.json()["pipelineExecutionId"].as_str().unwrap().to_owned();
    assert!(!r.body.contains(SECRET));

    let after = f.executions().await;
    assert_eq!(after.len(), 2);
    let newest = after.iter().find(|e| e.pipeline_execution_id() == Some(execution_id.as_str())).expect("listed");
    let trigger = newest.trigger().unwrap();
    assert_eq!(trigger.trigger_type(), Some(&TriggerType::Webhook));
    let arn = format!("arn:aws:codepipeline:us-east-1:{}:webhook:push-main", f.account.account_id);
    assert_eq!(trigger.trigger_detail(), Some(arn.as_str()));

    let state = f.client.get_pipeline_state().name(PIPELINE).send().await.unwrap();
    let source = &state.stage_states()[0].action_states()[0];
    assert_eq!(source.action_name(), Some("Checkout"));
    let revision = source.current_revision().expect("the delivery recorded a revision");
    assert_eq!(revision.revision_id(), commit);
    assert_eq!(revision.revision_change_id(), "d-0001");
    assert_eq!(revision.created().secs(), 1_795_249_800, "head_commit.timestamp");

    let item = f.webhook("push-main").await;
    assert!(item.last_triggered().is_some());
    assert!(item.error_code().is_none() && item.error_message().is_none());

    // The legacy SHA-1 header alone is accepted too; the same commit pushed
    // again (another delivery) starts another execution, as in AWS.
    let sig1 = sha1_signature(SECRET, &body);
    let r = f.deliver(&path, &[("x-hub-signature", &sig1), ("x-github-delivery", "d-0002")], &body).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    assert_eq!(f.executions().await.len(), 3);
}

#[tokio::test]
async fn deliveries_that_fail_authentication_or_filters_start_nothing() {
    let mut config = Config::for_tests();
    config.max_body_bytes = 2048;
    let f = Fixture::new(config).await;
    let path = f.put(github_hook("hook", SECRET)).await;
    let baseline = f.executions().await.len();

    let body = push("main", "1111111111111111111111111111111111111111");
    let good = sha256_signature(SECRET, &body);
    let mut answers = Vec::new();

    // Missing signature: 401.
    let r = f.deliver(&path, &[], &body).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("MissingSignature")), "{}", r.body);
    answers.push(r);
    // Signed with another secret, signature of another body, malformed: 403.
    let other = sha256_signature("not-the-secret", &body);
    let tampered = sha256_signature(SECRET, &push("main", "2222222222222222222222222222222222222222"));
    let wrong_sha1 = sha1_signature("not-the-secret", &body);
    for (header, value) in [
        ("x-hub-signature-256", other.as_str()),
        ("x-hub-signature-256", tampered.as_str()),
        ("x-hub-signature-256", "sha256=zz"),
        ("x-hub-signature-256", &good[7..]),
        ("x-hub-signature", wrong_sha1.as_str()),
    ] {
        let r = f.deliver(&path, &[(header, value)], &body).await;
        assert_eq!((r.status, r.json()["error"].as_str()), (403, Some("InvalidSignature")), "{value}: {}", r.body);
        answers.push(r);
    }
    // Another branch: the filter fails, answered 200 as GitHub expects.
    let develop = push("develop", "3333333333333333333333333333333333333333");
    let r = f.deliver(&path, &[("x-hub-signature-256", &sha256_signature(SECRET, &develop))], &develop).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ignored")), "{}", r.body);
    answers.push(r);
    // Not JSON, correctly signed: 400.
    let form = "payload=%7B%7D";
    let r = f.deliver(&path, &[("x-hub-signature-256", &sha256_signature(SECRET, form))], form).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("InvalidJson")), "{}", r.body);
    answers.push(r);
    // Over --max-body-bytes: 400.
    let big = json!({"ref": "refs/heads/main", "after": "4444", "padding": "x".repeat(3000)}).to_string();
    let r = f.deliver(&path, &[("x-hub-signature-256", &sha256_signature(SECRET, &big))], &big).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("BodyTooLarge")), "{}", r.body);
    answers.push(r);
    // Unknown ids: 404, whatever their shape.
    for unknown in ["/webhooks/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/webhooks/short", "/webhooks/..%2F..%2Fetc", "/webhooks/%FF%FE"]
    {
        let r = f.deliver(unknown, &[("x-hub-signature-256", &good)], &body).await;
        assert_eq!(r.status, 404, "{unknown}: {}", r.body);
        answers.push(r);
    }

    assert_eq!(f.executions().await.len(), baseline, "nothing was started");
    assert!(f.webhook("hook").await.last_triggered().is_none());
    let revision =
        f.client.get_pipeline_state().name(PIPELINE).send().await.unwrap().stage_states()[0].action_states()[0].current_revision().cloned();
    assert!(revision.is_none(), "no revision recorded: {revision:?}");
    for r in &answers {
        assert!(!r.body.contains(SECRET), "{}", r.body);
        assert!(r.json()["message"].is_string(), "{}", r.body);
    }

    // A deleted webhook's URL is gone for good, even with a valid signature;
    // the same name re-created answers only at its new URL.
    f.client.delete_webhook().name("hook").send().await.unwrap();
    let r = f.deliver(&path, &[("x-hub-signature-256", &good)], &body).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (404, Some("WebhookNotFound")), "{}", r.body);
    let new_path = f.put(github_hook("hook", SECRET)).await;
    assert_ne!(new_path, path);
    let r = f.deliver(&path, &[("x-hub-signature-256", &good)], &body).await;
    assert_eq!(r.status, 404);
    assert_eq!(f.executions().await.len(), baseline);
    let r = f.deliver(&new_path, &[("x-hub-signature-256", &good)], &body).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    assert_eq!(f.executions().await.len(), baseline + 1);
}

#[tokio::test]
async fn a_redelivered_delivery_starts_nothing() {
    let f = Fixture::new(Config::for_tests()).await;
    let path = f.put(github_hook("hook", SECRET)).await;
    let baseline = f.executions().await.len();
    let body = push("main", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    let sig = sha256_signature(SECRET, &body);
    let headers = [("x-hub-signature-256", sig.as_str()), ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")];

    let first = f.deliver(&path, &headers, &body).await;
    assert_eq!(first.json()["status"], "started", "{}", first.body);
    let again = f.deliver(&path, &headers, &body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(again.json()["pipelineExecutionId"], first.json()["pipelineExecutionId"]);
    assert_eq!(f.executions().await.len(), baseline + 1);

    // Concurrent copies of one new delivery: exactly one starts.
    let mut copies = tokio::task::JoinSet::new();
    let addr = f.server.addr;
    for _ in 0..6 {
        let (path, body, sig) = (path.clone(), body.clone(), sig.clone());
        copies.spawn(async move {
            let headers = vec![
                ("host".to_owned(), addr.to_string()),
                ("x-hub-signature-256".to_owned(), sig),
                ("x-github-delivery".to_owned(), "concurrent-1".to_owned()),
            ];
            raw_request(addr, "POST", &path, &headers, body.as_bytes()).await
        });
    }
    let answers = copies.join_all().await;
    let statuses: Vec<String> = answers.iter().map(|r| r.json()["status"].as_str().unwrap_or(&r.body).to_owned()).collect();
    assert_eq!(statuses.iter().filter(|s| *s == "started").count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| *s == "duplicate").count(), 5, "{statuses:?}");
    assert_eq!(f.executions().await.len(), baseline + 2);

    // Without a delivery id every delivery counts.
    for _ in 0..2 {
        let r = f.deliver(&path, &[("x-hub-signature-256", &sig)], &body).await;
        assert_eq!(r.json()["status"], "started", "{}", r.body);
    }
    assert_eq!(f.executions().await.len(), baseline + 4);
    let stored: (i64,) = sqlx::query_as("select count(*) from webhook_delivery").fetch_one(&f.server.pool).await.unwrap();
    assert_eq!(stored.0, 2);
}

#[tokio::test]
async fn ip_webhooks_check_the_socket_address_and_ignore_untrusted_forwarding() {
    let f = Fixture::new(Config::for_tests()).await;
    let elsewhere = f.put(ip_hook("elsewhere", "192.0.2.0/24")).await;
    let local = f.put(ip_hook("local", "127.0.0.0/8")).await;
    let baseline = f.executions().await.len();
    let body = push("main", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");

    for headers in [vec![], vec![("x-forwarded-for", "192.0.2.7")]] {
        let r = f.deliver(&elsewhere, &headers, &body).await;
        assert_eq!((r.status, r.json()["error"].as_str()), (403, Some("AddressNotAllowed")), "{headers:?}: {}", r.body);
    }
    assert_eq!(f.executions().await.len(), baseline);
    let r = f.deliver(&local, &[], &body).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    assert_eq!(f.executions().await.len(), baseline + 1);

    // Behind a trusted proxy (here: loopback), X-Forwarded-For names the sender.
    let mut config = Config::for_tests();
    config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let g = Fixture::new(config).await;
    let elsewhere = g.put(ip_hook("elsewhere", "192.0.2.0/24")).await;
    let baseline = g.executions().await.len();
    let r = g.deliver(&elsewhere, &[("x-forwarded-for", "198.51.100.1")], &body).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // The nearest untrusted hop counts, not a spoofed leftmost one.
    let r = g.deliver(&elsewhere, &[("x-forwarded-for", "192.0.2.7, 198.51.100.1")], &body).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(g.executions().await.len(), baseline);
    let r = g.deliver(&elsewhere, &[("x-forwarded-for", "198.51.100.1, 192.0.2.7")], &body).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    assert_eq!(g.executions().await.len(), baseline + 1);
}

#[tokio::test]
async fn filters_see_the_target_actions_current_configuration() {
    let f = Fixture::new(Config::for_tests()).await;
    let mut def = open_hook("open");
    def.filters.push(WebhookFilterRule::builder().json_path("$.repository.full_name").match_equals("octo/app").build().unwrap());
    def.filters.push(WebhookFilterRule::builder().json_path("$.deleted").match_equals("false").build().unwrap());
    let path = f.put(def).await;
    let baseline = f.executions().await.len();

    // Anyone with the URL may deliver to an UNAUTHENTICATED webhook.
    let r = f.deliver(&path, &[], &push("main", "cccccccccccccccccccccccccccccccccccccccc")).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    let mut other_repo: serde_json::Value = serde_json::from_str(&push("main", "dddd")).unwrap();
    other_repo["repository"]["full_name"] = json!("octo/other");
    let r = f.deliver(&path, &[], &other_repo.to_string()).await;
    assert_eq!(r.json()["status"], "ignored", "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("Filter 2"), "{}", r.body);
    assert_eq!(f.executions().await.len(), baseline + 1);

    // The pipeline now builds `release`: `{Branch}` follows its current version.
    f.client.update_pipeline().pipeline(git_pipeline(PIPELINE, "release")).send().await.unwrap();
    let baseline = f.executions().await.len();
    let r = f.deliver(&path, &[], &push("main", "eeee")).await;
    assert_eq!(r.json()["status"], "ignored", "{}", r.body);
    let r = f.deliver(&path, &[], &push("release", "ffff")).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    assert_eq!(f.executions().await.len(), baseline + 1);
}

#[tokio::test]
async fn a_webhook_whose_pipeline_is_gone_says_so_until_it_works_again() {
    let f = Fixture::new(Config::for_tests()).await;
    let path = f.put(open_hook("open")).await;
    f.client.delete_pipeline().name(PIPELINE).send().await.unwrap();

    let r = f.deliver(&path, &[], &push("main", "abab")).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (409, Some("PipelineNotFound")), "{}", r.body);
    let item = f.webhook("open").await;
    assert_eq!(item.error_code(), Some("PipelineNotFound"));
    assert!(item.error_message().unwrap().contains(PIPELINE), "{:?}", item.error_message());

    f.client.create_pipeline().pipeline(git_pipeline(PIPELINE, "main")).send().await.unwrap();
    let r = f.deliver(&path, &[], &push("main", "abab")).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    let item = f.webhook("open").await;
    assert!(item.error_code().is_none() && item.error_message().is_none());
    assert!(item.last_triggered().is_some());
}

#[tokio::test]
async fn each_webhook_may_start_only_so_many_executions_a_minute() {
    let mut config = Config::for_tests();
    config.webhook_rate_per_minute = 2;
    let f = Fixture::new(config).await;
    let path = f.put(github_hook("noisy", SECRET)).await;
    let quiet = f.put(open_hook("quiet")).await;
    let baseline = f.executions().await.len();

    for i in 0..2 {
        let body = push("main", &format!("{i:040}"));
        let r = f.deliver(&path, &[("x-hub-signature-256", &sha256_signature(SECRET, &body))], &body).await;
        assert_eq!(r.json()["status"], "started", "{}", r.body);
    }
    let body = push("main", "9999999999999999999999999999999999999999");
    let sig = sha256_signature(SECRET, &body);
    let r = f.deliver(&path, &[("x-hub-signature-256", &sig)], &body).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (429, Some("TooManyDeliveries")), "{}", r.body);
    let retry_after: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(f.executions().await.len(), baseline + 2);

    // Refused senders spend nothing, and other webhooks have their own budget.
    let r = f.deliver(&path, &[("x-hub-signature-256", "sha256=00")], &body).await;
    assert_eq!(r.status, 403);
    let r = f.deliver(&quiet, &[], &body).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    assert_eq!(f.executions().await.len(), baseline + 3);
}

#[tokio::test]
async fn a_delivery_starts_only_its_own_accounts_pipeline() {
    let f = Fixture::new(Config::for_tests()).await;
    let path = f.put(open_hook("hook")).await;
    // Another tenant with a pipeline and a webhook of the same names.
    let other = f.server.account("b").await;
    let cb = f.server.client(&other);
    setup_account(&cb).await;
    let theirs = put(&f.server, &cb, open_hook("hook")).await;
    assert_ne!(theirs, path);
    let (mine_before, theirs_before) = (f.executions().await.len(), executions(&cb).await.len());

    let r = f.deliver(&path, &[], &push("main", "1234")).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    assert_eq!(f.executions().await.len(), mine_before + 1);
    assert_eq!(executions(&cb).await.len(), theirs_before);
    // B cannot reach A's webhook through the API either.
    cb.delete_webhook().name("hook").send().await.unwrap();
    let r = f.deliver(&path, &[], &push("main", "5678")).await;
    assert_eq!(r.json()["status"], "started", "A's webhook survived B's delete: {}", r.body);
    assert_eq!(executions(&cb).await.len(), theirs_before);
}

#[tokio::test]
async fn each_delivery_is_logged_once_without_the_secret() {
    const CANARY: &str = "delivery-log-canary-0c9d";
    let logs = captured_logs();
    let f = Fixture::new(Config::for_tests()).await;
    let path = f.put(github_hook("logged-hook-5e1", CANARY)).await;
    let body = push("main", "7777777777777777777777777777777777777777");
    let good = sha256_signature(CANARY, &body);
    let r = f.deliver(&path, &[("x-hub-signature-256", &good), ("x-github-delivery", "log-d-1")], &body).await;
    assert_eq!(r.json()["status"], "started", "{}", r.body);
    let r = f.deliver(&path, &[("x-hub-signature-256", &sha256_signature("wrong", &body)), ("x-github-delivery", "log-d-2")], &body).await;
    assert_eq!(r.status, 403);

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("webhook delivery") && l.contains("logged-hook-5e1")).collect();
    assert_eq!(lines.len(), 2, "one line per delivery: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("log-d-1") && l.contains("started") && l.contains(&f.account.account_id)), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("log-d-2") && l.contains("forbidden")), "{lines:#?}");
    assert!(!text.contains(CANARY), "the secret was logged");
    assert!(!text.contains(&good[7..]), "a signature was logged");
    let url_id = path.rsplit('/').next().unwrap();
    assert!(!text.contains(url_id), "the URL id was logged");
}
