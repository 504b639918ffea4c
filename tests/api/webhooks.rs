//! Webhook management: PutWebhook, ListWebhooks, DeleteWebhook,
//! Register/DeregisterWebhookWithThirdParty.

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{
    ListWebhookItem, WebhookAuthConfiguration, WebhookAuthenticationType, WebhookDefinition, WebhookFilterRule,
};
use chrono::Utc;
use millrace::crypto::SecretBox;

use crate::helpers::{REGION, TestServer, error_code, raw_post, signed_headers, simple_pipeline};
use crate::tags::{list as list_tags, owned, pairs, tag};

fn definition(name: &str, pipeline: &str, auth: WebhookAuthenticationType, config: WebhookAuthConfiguration) -> WebhookDefinition {
    WebhookDefinition::builder()
        .name(name)
        .target_pipeline(pipeline)
        .target_action("Fetch")
        .filters(WebhookFilterRule::builder().json_path("$.ref").match_equals("refs/heads/{Branch}").build().unwrap())
        .authentication(auth)
        .authentication_configuration(config)
        .build()
        .unwrap()
}

/// A GITHUB_HMAC webhook on the first action ("Fetch") of `simple_pipeline`.
pub fn github_hook(name: &str, pipeline: &str, secret: &str) -> WebhookDefinition {
    let config = WebhookAuthConfiguration::builder().secret_token(secret).build();
    definition(name, pipeline, WebhookAuthenticationType::GithubHmac, config)
}

fn ip_hook(name: &str, pipeline: &str, range: &str) -> WebhookDefinition {
    let config = WebhookAuthConfiguration::builder().allowed_ip_range(range).build();
    definition(name, pipeline, WebhookAuthenticationType::Ip, config)
}

fn open_hook(name: &str, pipeline: &str) -> WebhookDefinition {
    definition(name, pipeline, WebhookAuthenticationType::Unauthenticated, WebhookAuthConfiguration::builder().build())
}

async fn listed(client: &Client) -> Vec<ListWebhookItem> {
    client.list_webhooks().send().await.unwrap().webhooks().to_vec()
}

/// The secret as the receiving endpoint will read it back.
async fn stored_secret(server: &TestServer, account_id: &str, name: &str) -> (Vec<u8>, String) {
    let (sealed, url_id): (Vec<u8>, String) =
        sqlx::query_as("select secret_sealed, url_id from webhook where account_id = $1 and name = $2")
            .bind(account_id)
            .bind(name)
            .fetch_one(&server.pool)
            .await
            .unwrap();
    let secrets = SecretBox::from_base64(&server.master_key).unwrap();
    let plain = millrace::api::webhooks::open_secret(&secrets, account_id, &url_id, &sealed).unwrap();
    (sealed, String::from_utf8(plain).unwrap())
}

#[tokio::test]
async fn a_webhook_is_created_and_listed_and_its_secret_never_returned() {
    const SECRET: &str = "gh-hmac-5f2b9c71d0";
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();

    let put = client.put_webhook().webhook(github_hook("push-main", "web", SECRET)).tags(tag("team", "blue")).send().await.unwrap();
    let item = put.webhook().unwrap();
    let url_prefix = format!("{}/webhooks/", server.endpoint());
    assert!(item.url().starts_with(&url_prefix), "{}", item.url());
    assert!(item.url().len() >= url_prefix.len() + 32, "the id is long enough not to be guessed: {}", item.url());
    assert_eq!(item.arn(), Some(format!("arn:aws:codepipeline:{REGION}:{}:webhook:push-main", account.account_id).as_str()));
    let def = item.definition().unwrap();
    assert_eq!((def.name(), def.target_pipeline(), def.target_action()), ("push-main", "web", "Fetch"));
    assert_eq!(def.filters()[0].json_path(), "$.ref");
    assert_eq!(def.filters()[0].match_equals(), Some("refs/heads/{Branch}"));
    assert_eq!(def.authentication(), &WebhookAuthenticationType::GithubHmac);
    let auth = def.authentication_configuration().unwrap();
    assert_eq!(auth.secret_token(), Some("****"), "redacted, but visibly set");
    assert_eq!(auth.allowed_ip_range(), None);
    assert_eq!(item.tags(), [tag("team", "blue")]);
    assert!(item.error_code().is_none() && item.error_message().is_none() && item.last_triggered().is_none());

    let list = listed(&client).await;
    assert_eq!(list.len(), 1);
    assert_eq!(&list[0], item);

    // On the wire, too: neither response carries the secret.
    let put_body = serde_json::json!({
        "webhook": {
            "name": "raw", "targetPipeline": "web", "targetAction": "Fetch",
            "filters": [{"jsonPath": "$.ref"}],
            "authentication": "GITHUB_HMAC", "authenticationConfiguration": {"SecretToken": SECRET}
        }
    })
    .to_string();
    for (target, body) in [("PutWebhook", put_body.as_str()), ("ListWebhooks", "{}")] {
        let target = format!("CodePipeline_20150709.{target}");
        let headers = signed_headers(server.addr, &account, &target, body.as_bytes(), Utc::now());
        let r = raw_post(server.addr, &headers, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.body.contains(SECRET), "{target} leaked the secret: {}", r.body);
        assert!(r.body.contains(r#""SecretToken":"****""#), "{}", r.body);
    }

    // Stored sealed, and readable with the master key for the HMAC check.
    let (sealed, plain) = stored_secret(&server, &account.account_id, "push-main").await;
    assert_eq!(plain, SECRET);
    assert!(!sealed.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
}

#[tokio::test]
async fn an_update_keeps_the_url_and_a_recreated_webhook_gets_a_new_one() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    client.create_pipeline().pipeline(simple_pipeline("api")).send().await.unwrap();

    let first = client.put_webhook().webhook(github_hook("hook", "web", "one")).tags(tag("a", "1")).send().await.unwrap();
    let url = first.webhook().unwrap().url().to_owned();

    // Same name: an update, whatever changes. Tags given with it are merged.
    let updated = client.put_webhook().webhook(ip_hook("hook", "api", "192.0.2.0/24")).tags(tag("b", "2")).send().await.unwrap();
    let item = updated.webhook().unwrap();
    assert_eq!(item.url(), url);
    let def = item.definition().unwrap();
    assert_eq!(def.target_pipeline(), "api");
    assert_eq!(def.authentication(), &WebhookAuthenticationType::Ip);
    let auth = def.authentication_configuration().unwrap();
    assert_eq!((auth.allowed_ip_range(), auth.secret_token()), (Some("192.0.2.0/24"), None));
    assert_eq!(item.tags(), [tag("a", "1"), tag("b", "2")]);
    let secret: (Option<Vec<u8>>,) = sqlx::query_as("select secret_sealed from webhook").fetch_one(&server.pool).await.unwrap();
    assert!(secret.0.is_none(), "switching to IP drops the stored secret");
    assert_eq!(listed(&client).await.len(), 1);

    client.delete_webhook().name("hook").send().await.unwrap();
    assert!(listed(&client).await.is_empty());
    client.delete_webhook().name("hook").send().await.unwrap();

    let again = client.put_webhook().webhook(open_hook("hook", "web")).send().await.unwrap();
    let item = again.webhook().unwrap();
    assert_ne!(item.url(), url, "an old URL never comes back");
    assert!(item.tags().is_empty(), "the deleted webhook's tags went with it");
    let auth = item.definition().unwrap().authentication_configuration().unwrap();
    assert_eq!((auth.allowed_ip_range(), auth.secret_token()), (None, None));
}

#[tokio::test]
async fn sending_the_mask_back_keeps_the_stored_secret() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    client.put_webhook().webhook(github_hook("hook", "web", "original-secret")).send().await.unwrap();

    // A listed definition put back as it is, e.g. with another filter.
    let mut def = listed(&client).await.remove(0).definition.unwrap();
    def.filters.push(WebhookFilterRule::builder().json_path("$.repository.name").match_equals("web").build().unwrap());
    client.put_webhook().webhook(def).send().await.unwrap();
    assert_eq!(stored_secret(&server, &account.account_id, "hook").await.1, "original-secret");

    client.put_webhook().webhook(github_hook("hook", "web", "rotated-secret")).send().await.unwrap();
    assert_eq!(stored_secret(&server, &account.account_id, "hook").await.1, "rotated-secret");

    // Nothing to keep: the mask is refused rather than stored as a secret.
    let err = client.put_webhook().webhook(github_hook("new", "web", "****")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidWebhookAuthenticationParametersException");
}

#[tokio::test]
async fn a_webhook_is_tagged_by_its_arn_and_its_tags_are_listed_with_it() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let hook = client.put_webhook().webhook(open_hook("hook", "web")).tags(tag("team", "blue")).send().await.unwrap();
    let arn = hook.webhook().unwrap().arn().unwrap().to_owned();

    client.tag_resource().resource_arn(&arn).tags(tag("owner", "ops")).send().await.unwrap();
    client.untag_resource().resource_arn(&arn).tag_keys("team").send().await.unwrap();
    assert_eq!(list_tags(&client, &arn).await, owned(&[("owner", "ops")]));
    assert_eq!(pairs(listed(&client).await[0].tags()), owned(&[("owner", "ops")]));

    client.delete_webhook().name("hook").send().await.unwrap();
    let err = client.list_tags_for_resource().resource_arn(&arn).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ResourceNotFoundException");
}

#[tokio::test]
async fn the_target_must_be_a_first_stage_action_of_an_existing_pipeline() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let err = client.put_webhook().webhook(open_hook("hook", "missing")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");

    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    for action in ["Compile", "Nope"] {
        let mut def = open_hook("hook", "web");
        def.target_action = action.into();
        let err = client.put_webhook().webhook(def).send().await.unwrap_err();
        assert_eq!(error_code(&err), "ValidationException", "{action}");
    }
    assert!(listed(&client).await.is_empty());
}

#[tokio::test]
async fn filters_and_authentication_settings_are_checked() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let put_err = |def: WebhookDefinition| {
        let client = client.clone();
        async move { error_code(&client.put_webhook().webhook(def).send().await.unwrap_err()) }
    };
    let rule = |path: &str| WebhookFilterRule::builder().json_path(path).build().unwrap();

    let mut bad_path = open_hook("hook", "web");
    bad_path.filters = vec![rule("$.ref"), rule("$.commits[")];
    assert_eq!(put_err(bad_path).await, "InvalidWebhookFilterPatternException");
    let mut none = open_hook("hook", "web");
    none.filters = vec![];
    assert_eq!(put_err(none).await, "ValidationException");
    let mut six = open_hook("hook", "web");
    six.filters = (0..6).map(|_| rule("$.ref")).collect();
    assert_eq!(put_err(six).await, "ValidationException");

    let config = |range: Option<&str>, secret: Option<&str>| {
        WebhookAuthConfiguration::builder().set_allowed_ip_range(range.map(Into::into)).set_secret_token(secret.map(Into::into)).build()
    };
    use WebhookAuthenticationType::{GithubHmac, Ip, Unauthenticated};
    for (auth, range, secret) in [
        (GithubHmac, None, None),
        (GithubHmac, Some("10.0.0.0/8"), Some("s")),
        (Ip, None, None),
        (Ip, Some("10.0.0.0/8"), Some("s")),
        (Ip, Some("10.0.0.300/8"), None),
        (Ip, Some("10.0.0.1/8"), None),
        (Ip, Some("10.0.0.0"), None),
        (Unauthenticated, None, Some("s")),
        (Unauthenticated, Some("10.0.0.0/8"), None),
    ] {
        let def = definition("hook", "web", auth.clone(), config(range, secret));
        assert_eq!(put_err(def).await, "InvalidWebhookAuthenticationParametersException", "{auth:?} {range:?}");
    }
    let mut tags = vec![tag("aws:x", "1")];
    let err = client.put_webhook().webhook(open_hook("hook", "web")).set_tags(Some(tags.clone())).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidTagsException");
    tags = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
    let err = client.put_webhook().webhook(open_hook("hook", "web")).set_tags(Some(tags)).send().await.unwrap_err();
    assert_eq!(error_code(&err), "TooManyTagsException");
    assert!(listed(&client).await.is_empty());

    client.put_webhook().webhook(ip_hook("v6", "web", "2001:db8::/32")).send().await.unwrap();
}

#[tokio::test]
async fn an_account_has_at_most_300_webhooks() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    // 299 written directly, for speed; the 300th through the API.
    sqlx::query(
        "insert into webhook (account_id, name, url_id, target_pipeline, target_action, filters, authentication) \
         select $1, 'bulk-' || n, 'bulk-url-id-padding-to-32-chars-' || n, 'web', 'Fetch', \
                '[{\"jsonPath\": \"$.ref\"}]', 'UNAUTHENTICATED' \
         from generate_series(1, 299) n",
    )
    .bind(&account.account_id)
    .execute(&server.pool)
    .await
    .unwrap();
    client.put_webhook().webhook(open_hook("last", "web")).send().await.unwrap();

    let err = client.put_webhook().webhook(open_hook("one-too-many", "web")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "LimitExceededException");
    // Updates are not creations.
    client.put_webhook().webhook(ip_hook("last", "web", "10.0.0.0/8")).send().await.unwrap();
    // Another account has its own quota.
    let other = server.account("b").await;
    let cb = server.client(&other);
    cb.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    cb.put_webhook().webhook(open_hook("one-too-many", "web")).send().await.unwrap();

    client.delete_webhook().name("bulk-7").send().await.unwrap();
    client.put_webhook().webhook(open_hook("one-too-many", "web")).send().await.unwrap();
}

#[tokio::test]
async fn concurrent_puts_of_one_name_make_one_webhook() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = client.clone();
        puts.spawn(async move {
            let def = github_hook("hook", "web", &format!("secret-{i}"));
            client.put_webhook().webhook(def).send().await.map(|out| out.webhook.unwrap().url).map_err(|e| error_code(&e))
        });
    }
    let urls: Vec<String> = puts.join_all().await.into_iter().map(Result::unwrap).collect();
    assert!(urls.iter().all(|u| *u == urls[0]), "one webhook, one URL: {urls:?}");
    assert_eq!(listed(&client).await.len(), 1);
}

#[tokio::test]
async fn list_webhooks_pages_in_name_order_with_capitalised_tokens() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    for name in ["e", "c", "a", "d", "b"] {
        client.put_webhook().webhook(open_hook(name, "web")).send().await.unwrap();
    }

    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client.list_webhooks().max_results(2).set_next_token(token).send().await.unwrap();
        pages += 1;
        names.extend(page.webhooks().iter().map(|w| w.definition().unwrap().name().to_owned()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);

    // The wire names are NextToken / MaxResults, not camelCase.
    let body = br#"{"MaxResults": 4}"#;
    let headers = signed_headers(server.addr, &account, "CodePipeline_20150709.ListWebhooks", body, Utc::now());
    let r = raw_post(server.addr, &headers, body).await;
    assert_eq!(r.json()["webhooks"].as_array().unwrap().len(), 4);
    assert!(r.json()["NextToken"].is_string(), "{}", r.body);
    assert!(r.json().get("nextToken").is_none());

    let err = client.list_webhooks().next_token("bogus").send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidNextTokenException");
}

#[tokio::test]
async fn registration_is_recorded_and_says_no_third_party_was_contacted() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    client.put_webhook().webhook(github_hook("hook", "web", "s3cret-token")).send().await.unwrap();

    client.register_webhook_with_third_party().webhook_name("hook").send().await.unwrap();
    let item = listed(&client).await.remove(0);
    assert!(item.error_message().unwrap().contains("contacts no third party"), "{:?}", item.error_message());
    // An update keeps the recorded state.
    let put = client.put_webhook().webhook(github_hook("hook", "web", "s3cret-token")).send().await.unwrap();
    assert_eq!(put.webhook().unwrap().error_message(), item.error_message());

    client.deregister_webhook_with_third_party().webhook_name("hook").send().await.unwrap();
    assert_eq!(listed(&client).await[0].error_message(), None);

    let err = client.register_webhook_with_third_party().webhook_name("missing").send().await.unwrap_err();
    assert_eq!(error_code(&err), "WebhookNotFoundException");
    let err = client.deregister_webhook_with_third_party().webhook_name("missing").send().await.unwrap_err();
    assert_eq!(error_code(&err), "WebhookNotFoundException");
    let err = client.register_webhook_with_third_party().send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
}

#[tokio::test]
async fn another_account_cannot_see_change_or_delete_a_webhook() {
    let server = TestServer::start().await;
    let (a, b) = (server.account("a").await, server.account("b").await);
    let (ca, cb) = (server.client(&a), server.client(&b));
    ca.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let original = ca.put_webhook().webhook(github_hook("hook", "web", "a-secret")).send().await.unwrap().webhook.unwrap();

    assert!(listed(&cb).await.is_empty());
    cb.delete_webhook().name("hook").send().await.unwrap();
    let err = cb.register_webhook_with_third_party().webhook_name("hook").send().await.unwrap_err();
    assert_eq!(error_code(&err), "WebhookNotFoundException");
    // B cannot point a webhook at A's pipeline...
    let err = cb.put_webhook().webhook(open_hook("hook", "web")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");
    // ...and the same name in B's account is B's own webhook.
    cb.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let theirs = cb.put_webhook().webhook(open_hook("hook", "web")).send().await.unwrap().webhook.unwrap();
    assert_ne!(theirs.url(), original.url());
    assert_ne!(theirs.arn(), original.arn());

    let arn = original.arn().unwrap();
    ca.tag_resource().resource_arn(arn).tags(tag("owner", "a")).send().await.unwrap();
    let err = cb.tag_resource().resource_arn(arn).tags(tag("owner", "b")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ResourceNotFoundException");
    let err = cb.untag_resource().resource_arn(arn).tag_keys("owner").send().await.unwrap_err();
    assert_eq!(error_code(&err), "ResourceNotFoundException");
    let err = cb.list_tags_for_resource().resource_arn(arn).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ResourceNotFoundException");

    let mut mine = listed(&ca).await;
    assert_eq!(pairs(mine[0].tags()), owned(&[("owner", "a")]));
    mine[0].tags = original.tags.clone();
    assert_eq!(mine, [original]);
    assert_eq!(stored_secret(&server, &a.account_id, "hook").await.1, "a-secret");
    assert_eq!(listed(&cb).await.len(), 1);
}

#[tokio::test]
async fn webhook_urls_start_with_the_configured_public_url() {
    let mut config = millrace::config::Config::for_tests();
    config.public_url = Some("https://ci.example.com/millrace".into());
    let server = TestServer::start_with(config).await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();
    let put = client.put_webhook().webhook(open_hook("hook", "web")).send().await.unwrap();
    assert!(put.webhook().unwrap().url().starts_with("https://ci.example.com/millrace/webhooks/"), "{}", put.webhook().unwrap().url());
}

/// Everything logged in this test process from now on (the subscriber is
/// global: other tests' lines land here too, so look for unique values).
pub fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("millrace=trace,sqlx=debug,info"))
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other test installs a global subscriber");
        logs
    })
    .clone()
}

#[tokio::test]
async fn the_secret_token_never_reaches_the_log() {
    const SECRET: &str = "log-canary-7c1e0a9b44";
    let logs = captured_logs();
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("web")).send().await.unwrap();

    client.put_webhook().webhook(github_hook("hook", "web", SECRET)).send().await.unwrap();
    client.list_webhooks().send().await.unwrap();
    // Refused requests carrying the secret: wrong mode, too long, wrong pipeline.
    let mut wrong_mode = ip_hook("hook", "web", "10.0.0.0/8");
    wrong_mode.authentication_configuration.as_mut().unwrap().secret_token = Some(SECRET.into());
    let err = client.put_webhook().webhook(wrong_mode).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidWebhookAuthenticationParametersException");
    let too_long = format!("{SECRET}{}", "x".repeat(100));
    let err = client.put_webhook().webhook(github_hook("hook", "web", &too_long)).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let err = client.put_webhook().webhook(github_hook("hook", "gone", SECRET)).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("PutWebhook"), "the capture works: {text}");
    assert!(!text.contains(SECRET), "the secret was logged:\n{text}");
}
