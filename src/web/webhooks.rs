//! `POST /webhooks/<id>`: the receiving end of a webhook (issue 5).
//!
//! Not the AWS protocol: no SigV4, answers are small JSON objects
//! (`{"status": ...}` on 200, `{"error", "message"}` otherwise). A delivery
//! goes through these steps, each of which may answer:
//!
//! 1. the webhook is looked up by the URL's id, in any account (404);
//! 2. the body is read up to `--max-body-bytes` (400);
//! 3. the sender is authenticated by the webhook's mode: `GITHUB_HMAC`
//!    checks `X-Hub-Signature-256` (`sha256=<hex>`), or `X-Hub-Signature`
//!    (`sha1=<hex>`) when only that is sent, in constant time (401 missing,
//!    403 wrong); `IP` checks the client address against `AllowedIPRange`
//!    (403), believing `X-Forwarded-For` only from `--trusted-proxies`;
//!    `UNAUTHENTICATED` accepts anyone who knows the URL;
//! 4. the body must be JSON (400);
//! 5. every filter's JSONPath must select a value equal to its
//!    `matchEquals`, `{Key}` placeholders replaced by the target action's
//!    configuration in the pipeline's current version; otherwise the
//!    delivery is ignored and answered 200 (GitHub counts other statuses as
//!    failed deliveries);
//! 6. a delivery id (`X-GitHub-Delivery`) that already started an execution
//!    is answered 200 and starts nothing;
//! 7. the webhook's token bucket ([`RateLimiter`], `--webhook-rate-per-minute`)
//!    must have a token (429 with `Retry-After`); only deliveries that get
//!    this far spend one, so a stranger without the secret cannot use up a
//!    webhook's budget;
//! 8. in one transaction: the pipeline is locked, the revision recorded for
//!    the target action, an execution started (trigger `Webhook`, detail the
//!    webhook's ARN), the delivery id recorded and `lastTriggered` set.
//!
//! Every delivery that matches starts an execution, even when its commit is
//! the one already recorded (AWS starts one per webhook event; a re-push or
//! an empty commit is a request to build). Only the same delivery id is
//! refused twice.
//!
//! When the target cannot be started (its pipeline or action is gone, or the
//! engine refuses), the answer is 409 and the reason is recorded as the
//! webhook's `errorCode` / `errorMessage`, cleared by the next success.
//!
//! Each delivery is logged once: webhook name, account, delivery id,
//! outcome, status. Never the secret, the signature, the body or the URL id
//! (for an UNAUTHENTICATED webhook the URL is the only credential).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::rate_limit::RateLimiter;
use crate::App;
use crate::api::executions::parse_timestamp;
use crate::api::tags::{Resource, ResourceArn};
use crate::api::webhooks::{compile_filter_path, open_secret};
use crate::engine::{self, Scope, Start};
use crate::pipeline::{ActionDeclaration, PipelineDeclaration};
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::webhooks::{self as store, DeliveryTarget};
use crate::store::{executions, pipelines};

/// Delivery ids are remembered this long (GitHub redelivers for 3 days).
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// At most this many expired delivery ids are deleted per started delivery.
const PRUNE_BATCH: i64 = 500;

/// The receiving endpoint's state: the app and the per-webhook buckets.
pub struct Endpoint {
    app: Arc<App>,
    limiter: RateLimiter,
}

impl Endpoint {
    pub fn new(app: Arc<App>) -> Arc<Endpoint> {
        let limiter = RateLimiter::new(app.config.webhook_rate_per_minute);
        Arc::new(Endpoint { app, limiter })
    }
}

/// What the log line says about a delivery, filled in as it is learnt.
#[derive(Default)]
struct Seen {
    webhook: Option<String>,
    account: Option<String>,
    delivery: Option<String>,
}

/// The answer to a delivery, and how the log line names it.
struct Answer {
    status: StatusCode,
    outcome: &'static str,
    body: Value,
    retry_after: Option<u64>,
    execution: Option<Uuid>,
    /// An internal fault's cause: logged, never sent.
    cause: Option<String>,
}

impl Answer {
    fn ok(outcome: &'static str, body: Value) -> Answer {
        Answer { status: StatusCode::OK, outcome, body, retry_after: None, execution: None, cause: None }
    }

    fn refuse(status: StatusCode, outcome: &'static str, error: &str, message: impl Into<String>) -> Answer {
        let body = json!({"error": error, "message": message.into()});
        Answer { status, outcome, body, retry_after: None, execution: None, cause: None }
    }

    fn not_found() -> Answer {
        Answer::refuse(StatusCode::NOT_FOUND, "not_found", "WebhookNotFound", "No webhook has this URL")
    }

    fn internal(cause: impl std::fmt::Display) -> Answer {
        let mut a = Answer::refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            "InternalError",
            "The delivery could not be processed and started nothing; redeliver it later",
        );
        a.cause = Some(cause.to_string());
        a
    }
}

impl From<sqlx::Error> for Answer {
    fn from(e: sqlx::Error) -> Answer {
        Answer::from_fault(ApiError::database(e))
    }
}

impl Answer {
    /// A fault of the server's (an error with a cause): a busy database
    /// (`ApiError::database`) is worth redelivering soon, anything else is
    /// internal.
    fn from_fault(e: ApiError) -> Answer {
        match e.code {
            ErrorCode::InternalFailure => Answer::internal(format!("{}: {:?}", e.message, e.source)),
            _ => {
                let mut a = Answer::refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "Busy",
                    "The database was too busy; the delivery started nothing, redeliver it",
                );
                a.cause = e.source.map(|s| format!("{s:#}"));
                a
            }
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}

/// The handler of `POST /webhooks/{id}`.
pub async fn receive(State(endpoint): State<Arc<Endpoint>>, id: Result<Path<String>, PathRejection>, request: Request) -> Response {
    let started = Instant::now();
    // An id that does not even decode names no webhook.
    let id = id.map(|Path(id)| id).unwrap_or_default();
    // Present when served with `into_make_service_with_connect_info`, as
    // `Server::run` does; without it IP authentication refuses everyone.
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let (parts, body) = request.into_parts();
    let mut seen = Seen::default();
    let work = endpoint.deliver(&id, peer, &parts.headers, body, &mut seen);
    let answer = match tokio::time::timeout(endpoint.app.config.request_timeout, work).await {
        Ok(Ok(answer) | Err(answer)) => answer,
        // Dropping the future rolled back its transaction.
        Err(_) => Answer::refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Timeout",
            "The delivery timed out and started nothing; redeliver it",
        ),
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let webhook = seen.webhook.as_deref().unwrap_or("-");
    let account = seen.account.as_deref().unwrap_or("-");
    let delivery = seen.delivery.as_deref().unwrap_or("-");
    let execution = answer.execution.map(|e| e.to_string());
    let execution = execution.as_deref().unwrap_or("-");
    let (status, outcome) = (answer.status.as_u16(), answer.outcome);
    match &answer.cause {
        Some(cause) => {
            tracing::error!(webhook, account, delivery, outcome, status, execution, latency_ms, cause = %cause, "webhook delivery")
        }
        None => tracing::info!(webhook, account, delivery, outcome, status, execution, latency_ms, "webhook delivery"),
    }
    answer.into_response()
}

impl Endpoint {
    /// The target action's configuration as filters see it: secret values
    /// (sealed at rest) opened, so that `{Key}` means what was configured.
    /// A value that does not open stays sealed, and so matches nothing.
    fn filter_configuration(&self, account: &str, config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let aad = crate::crypto::configuration_aad(account);
        config.iter().map(|(k, v)| (k.clone(), self.app.secrets.open_value(v, &aad).unwrap_or_else(|_| v.clone()))).collect()
    }

    async fn deliver(&self, id: &str, peer: Option<IpAddr>, headers: &HeaderMap, body: Body, seen: &mut Seen) -> Result<Answer, Answer> {
        if !is_url_id(id) {
            return Err(Answer::not_found());
        }
        let hook = {
            let mut conn = self.app.db.acquire().await?;
            store::by_url_id(&mut conn, id).await?.ok_or_else(Answer::not_found)?
        };
        seen.webhook = Some(hook.name.clone());
        seen.account = Some(hook.account_id.clone());
        let delivery = delivery_id(headers)?;
        seen.delivery = delivery.clone();

        let limit = self.app.config.max_body_bytes;
        let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
            Answer::refuse(StatusCode::BAD_REQUEST, "bad_request", "BodyTooLarge", format!("The body exceeds {limit} bytes"))
        })?;
        self.authenticate(&hook, peer, headers, &body)?;
        let payload: Value = serde_json::from_slice(&body).map_err(|e| {
            Answer::refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "InvalidJson",
                format!("The body is not JSON ({e}); send the webhook with content type application/json"),
            )
        })?;
        let filters: Vec<FilterRule> = serde_json::from_value(hook.filters.clone()).map_err(Answer::internal)?;

        // Filters first, against the current version, outside any lock: most
        // deliveries of a busy repository match nothing.
        let current = {
            let mut conn = self.app.db.acquire().await?;
            pipelines::get(&mut conn, &hook.account_id, &hook.target_pipeline, None).await?
        };
        let Some(current) = current else {
            return Err(self.target_error(&hook, "PipelineNotFound", pipeline_gone(&hook)).await);
        };
        let (version, decl) = (current.version, declaration(current.declaration)?);
        let Some(action) = target_action(&decl, &hook.target_action) else {
            return Err(self.target_error(&hook, "ActionNotFound", action_gone(&hook)).await);
        };
        check_filters(&filters, &self.filter_configuration(&hook.account_id, &action.configuration), &payload)?;
        if let Some(d) = &delivery {
            let mut conn = self.app.db.acquire().await?;
            if let Some(execution) = store::delivery(&mut conn, &hook.url_id, d).await? {
                return Ok(duplicate(d, execution));
            }
        }
        if let Err(wait) = self.limiter.try_acquire(&hook.url_id) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut a = Answer::refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "TooManyDeliveries",
                format!(
                    "This webhook may start {} executions per minute; nothing was started, retry in {secs} s",
                    self.app.config.webhook_rate_per_minute
                ),
            );
            a.retry_after = Some(secs);
            return Err(a);
        }
        let revision = revision_of(&payload, delivery.as_deref(), &body);
        self.start(&hook, delivery.as_deref(), &revision, &filters, &payload, version).await
    }

    fn authenticate(&self, hook: &DeliveryTarget, peer: Option<IpAddr>, headers: &HeaderMap, body: &[u8]) -> Result<(), Answer> {
        match hook.authentication.as_str() {
            "GITHUB_HMAC" => {
                let sealed = hook.secret_sealed.as_deref().ok_or_else(|| Answer::internal("GITHUB_HMAC webhook without a secret"))?;
                let secret = open_secret(&self.app.secrets, &hook.account_id, &hook.url_id, sealed)
                    .map_err(|e| Answer::internal(format!("cannot open the webhook secret: {e}")))?;
                match verify_github_signature(&secret, headers, body) {
                    Ok(()) => Ok(()),
                    Err(SignatureError::Missing) => Err(Answer::refuse(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        "MissingSignature",
                        "This webhook requires an X-Hub-Signature-256 (or X-Hub-Signature) header",
                    )),
                    Err(SignatureError::Malformed) => Err(Answer::refuse(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "InvalidSignature",
                        "The signature header is not of the form sha256=<hex> (or sha1=<hex>)",
                    )),
                    Err(SignatureError::Mismatch) => Err(Answer::refuse(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "InvalidSignature",
                        "The signature does not match the body and the webhook's secret",
                    )),
                }
            }
            "IP" => {
                let range: IpNet = hook
                    .allowed_ip_range
                    .as_deref()
                    .and_then(|r| r.parse().ok())
                    .ok_or_else(|| Answer::internal("IP webhook without a valid range"))?;
                let client = peer.and_then(|p| client_address(p, headers, &self.app.config.trusted_proxies));
                match client {
                    Some(ip) if range.contains(&ip) => Ok(()),
                    _ => Err(Answer::refuse(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "AddressNotAllowed",
                        "The sender's address is outside this webhook's allowed IP range",
                    )),
                }
            }
            "UNAUTHENTICATED" => Ok(()),
            other => Err(Answer::internal(format!("webhook authentication {other}"))),
        }
    }

    /// Step 8: everything in one transaction, under the pipeline's lock.
    async fn start(
        &self,
        hook: &DeliveryTarget,
        delivery: Option<&str>,
        revision: &Revision,
        filters: &[FilterRule],
        payload: &Value,
        checked_version: i32,
    ) -> Result<Answer, Answer> {
        let account = hook.account_id.as_str();
        let pipeline = hook.target_pipeline.as_str();
        let mut tx = self.app.db.begin().await?;
        let Some(locked) = executions::lock_pipeline(&mut tx, account, pipeline).await? else {
            drop(tx);
            return Err(self.target_error(hook, "PipelineNotFound", pipeline_gone(hook)).await);
        };
        let version = locked.current_version;
        let scope = Scope {
            account_id: account,
            region: &self.app.config.region,
            pipeline,
            generation: locked.generation,
            declarations: &self.app.declarations,
            secrets: &self.app.secrets,
        };
        let decl = engine::declaration(&mut tx, scope, version).await.map_err(|e| Answer::internal(e.message))?;
        // Updated since the filters were checked: check them again.
        if version != checked_version {
            let Some(action) = target_action(&decl, &hook.target_action) else {
                drop(tx);
                return Err(self.target_error(hook, "ActionNotFound", action_gone(hook)).await);
            };
            check_filters(filters, &self.filter_configuration(account, &action.configuration), payload)?;
        }
        let stage = decl.stages.first().map(|s| s.name.clone()).unwrap_or_default();
        if !store::mark_triggered(&mut tx, &hook.url_id).await? {
            // Deleted while this delivery was on its way.
            return Err(Answer::not_found());
        }
        if let Some(d) = delivery
            && let Some(execution) = store::delivery(&mut tx, &hook.url_id, d).await?
        {
            return Ok(duplicate(d, execution));
        }
        executions::record_revision(
            &mut tx,
            account,
            pipeline,
            &stage,
            &hook.target_action,
            &revision.id,
            delivery,
            Some(revision.created),
        )
        .await?;
        let arn = ResourceArn {
            partition: "aws".into(),
            region: self.app.config.region.clone(),
            account_id: account.to_owned(),
            resource: Resource::Webhook { name: hook.name.clone() },
        };
        let execution = match engine::start_execution(&mut tx, scope, version, Start::triggered_by("Webhook", Some(arn.to_string()))).await
        {
            Ok(id) => id,
            Err(e) if e.source.is_some() => return Err(Answer::from_fault(e)),
            Err(e) => {
                drop(tx);
                let message = format!("Starting pipeline '{pipeline}' failed: {}", e.message);
                return Err(self.target_error(hook, e.code.as_str(), message).await);
            }
        };
        if let Some(d) = delivery
            && !store::record_delivery(&mut tx, &hook.url_id, d, execution).await?
        {
            // A concurrent copy of this delivery committed first.
            drop(tx);
            let mut conn = self.app.db.acquire().await?;
            let first = store::delivery(&mut conn, &hook.url_id, d).await?.unwrap_or(execution);
            return Ok(duplicate(d, first));
        }
        tx.commit().await?;

        if let Ok(mut conn) = self.app.db.acquire().await
            && let Err(e) = store::prune_deliveries(&mut conn, DELIVERY_RETENTION, PRUNE_BATCH).await
        {
            tracing::warn!(error = %e, "pruning old webhook delivery ids failed");
        }
        let mut a = Answer::ok("started", json!({"status": "started", "pipelineExecutionId": execution, "revisionId": revision.id}));
        a.execution = Some(execution);
        Ok(a)
    }

    /// 409, with the reason kept on the webhook for ListWebhooks.
    async fn target_error(&self, hook: &DeliveryTarget, code: &str, message: String) -> Answer {
        match self.app.db.acquire().await {
            Ok(mut conn) => {
                if let Err(e) = store::set_error(&mut conn, &hook.url_id, code, &message).await {
                    tracing::warn!(error = %e, "recording a webhook's error failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "recording a webhook's error failed"),
        }
        Answer::refuse(StatusCode::CONFLICT, "target_error", code, message)
    }
}

fn pipeline_gone(hook: &DeliveryTarget) -> String {
    format!("The target pipeline '{}' does not exist", hook.target_pipeline)
}

fn action_gone(hook: &DeliveryTarget) -> String {
    format!("'{}' is no longer an action of the first stage of pipeline '{}'", hook.target_action, hook.target_pipeline)
}

fn duplicate(delivery: &str, execution: Uuid) -> Answer {
    let mut a = Answer::ok(
        "duplicate",
        json!({
            "status": "duplicate",
            "message": format!("Delivery {delivery} already started execution {execution}; nothing was started"),
            "pipelineExecutionId": execution,
        }),
    );
    a.execution = Some(execution);
    a
}

fn declaration(v: Value) -> Result<PipelineDeclaration, Answer> {
    serde_json::from_value(v).map_err(|e| Answer::internal(format!("stored declaration unreadable: {e}")))
}

/// Every filter must pass; a failing one answers 200 and starts nothing.
fn check_filters(filters: &[FilterRule], config: &BTreeMap<String, String>, payload: &Value) -> Result<(), Answer> {
    match failing_filter(filters, config, payload) {
        None => Ok(()),
        Some(i) => Err(Answer::ok(
            "ignored",
            json!({
                "status": "ignored",
                "message": format!("Filter {} ({}) did not match; nothing was started", i + 1, filters[i].json_path),
            }),
        )),
    }
}

fn target_action<'a>(decl: &'a PipelineDeclaration, name: &str) -> Option<&'a ActionDeclaration> {
    decl.stages.first()?.actions.iter().find(|a| a.name == name)
}

/// The id in the URL: what PutWebhook makes (32 URL-safe characters), with
/// room to grow, and nothing that needs a database round trip to refuse.
fn is_url_id(id: &str) -> bool {
    (32..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `X-GitHub-Delivery`: at most 200 visible ASCII characters (GitHub sends a UUID).
fn delivery_id(headers: &HeaderMap) -> Result<Option<String>, Answer> {
    let Some(value) = headers.get("x-github-delivery") else { return Ok(None) };
    match value.to_str().map(str::trim) {
        Ok(id) if !id.is_empty() && id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(id.to_owned())),
        _ => Err(Answer::refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "InvalidDeliveryId",
            "X-GitHub-Delivery must be 1 to 200 visible ASCII characters",
        )),
    }
}

#[derive(Debug, PartialEq)]
enum SignatureError {
    Missing,
    Malformed,
    Mismatch,
}

/// GitHub's signature of the raw body: `X-Hub-Signature-256: sha256=<hex>`,
/// or, only when that header is absent, the legacy `X-Hub-Signature:
/// sha1=<hex>`. Compared in constant time.
fn verify_github_signature(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    if let Some(value) = headers.get("x-hub-signature-256") {
        return check_signature::<Hmac<sha2::Sha256>>(secret, value, "sha256=", body);
    }
    if let Some(value) = headers.get("x-hub-signature") {
        return check_signature::<Hmac<sha1::Sha1>>(secret, value, "sha1=", body);
    }
    Err(SignatureError::Missing)
}

fn check_signature<M: Mac + KeyInit>(secret: &[u8], value: &HeaderValue, prefix: &str, body: &[u8]) -> Result<(), SignatureError> {
    let text = value.to_str().map_err(|_| SignatureError::Malformed)?.trim();
    let hex_digits = text
        .get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &text[prefix.len()..])
        .ok_or(SignatureError::Malformed)?;
    let given = hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)?;
    let mut mac = <M as KeyInit>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    if bool::from(expected[..].ct_eq(&given[..])) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// The address a delivery came from: the socket's peer, or, when the peer
/// is a trusted proxy, the nearest `X-Forwarded-For` hop that is not one
/// (hops are read right to left, as each proxy appends its peer). `None`
/// when a trusted proxy forwarded an unreadable hop.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return Some(client);
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        hops.extend(value.to_str().ok()?.split(',').map(str::trim).filter(|h| !h.is_empty()));
    }
    for hop in hops.iter().rev() {
        client = parse_hop(hop)?;
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

/// `192.0.2.7`, `2001:db8::1`, or either with a port (`[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// A stored `WebhookFilterRule`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterRule {
    json_path: String,
    match_equals: Option<String>,
}

/// The index of the first filter the payload fails, if any.
fn failing_filter(filters: &[FilterRule], config: &BTreeMap<String, String>, payload: &Value) -> Option<usize> {
    filters.iter().position(|f| !filter_passes(f, config, payload))
}

/// The JSONPath must select a value equal to `matchEquals` (placeholders
/// replaced); without `matchEquals`, selecting any non-null value passes.
/// Strings compare by their text, numbers and booleans by their JSON text.
fn filter_passes(filter: &FilterRule, config: &BTreeMap<String, String>, payload: &Value) -> bool {
    // PutWebhook refused paths that do not compile; one that stopped
    // compiling matches nothing rather than everything.
    let Ok(path) = compile_filter_path(&filter.json_path) else { return false };
    let nodes = path.query(payload).all();
    match &filter.match_equals {
        None => nodes.iter().any(|v| !v.is_null()),
        Some(expected) => {
            let expected = expand_placeholders(expected, config);
            nodes.iter().any(|v| match v {
                Value::String(s) => *s == expected,
                Value::Number(_) | Value::Bool(_) => v.to_string() == expected,
                _ => false,
            })
        }
    }
}

/// `{Key}` → the action's configuration value for `Key`; an unknown key is
/// left as written (and so will not usually match).
fn expand_placeholders(pattern: &str, config: &BTreeMap<String, String>) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\{([^{}\s]+)\}").expect("placeholder pattern"));
    re.replace_all(pattern, |c: &regex::Captures<'_>| config.get(&c[1]).cloned().unwrap_or_else(|| c[0].to_owned())).into_owned()
}

/// The revision a delivery records for the target action.
#[derive(Debug, PartialEq)]
struct Revision {
    id: String,
    created: chrono::DateTime<chrono::Utc>,
}

/// The commit the payload names: `after` (push), else `head_commit.id`,
/// else `checkout_sha` (GitLab). An all-zero id (a deleted branch's
/// `after`) is no commit. Without one, the delivery id stands in, else
/// `sha256:<hex>` of the body, so the execution still shows what started it.
/// `created` is `head_commit.timestamp` when given, else now.
fn revision_of(payload: &Value, delivery: Option<&str>, body: &[u8]) -> Revision {
    let commit = ["/after", "/head_commit/id", "/checkout_sha"]
        .iter()
        .filter_map(|p| payload.pointer(p).and_then(Value::as_str))
        .map(str::trim)
        .find(|id| !id.is_empty() && !id.bytes().all(|b| b == b'0'));
    let id = match (commit, delivery) {
        (Some(c), _) => c.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => format!("sha256:{}", hex::encode(sha2::Sha256::digest(body))),
    };
    let created = payload.pointer("/head_commit/timestamp").and_then(parse_timestamp).unwrap_or_else(chrono::Utc::now);
    Revision { id, created }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn github_signatures_are_checked_sha256_first() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let good256 = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(verify_github_signature(secret, &headers(&[("x-hub-signature-256", good256)]), body), Ok(()));
        let mut sha1 = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret).unwrap();
        sha1.update(body);
        let good1 = format!("sha1={}", hex::encode(sha1.finalize().into_bytes()));
        assert_eq!(verify_github_signature(secret, &headers(&[("x-hub-signature", &good1)]), body), Ok(()));

        assert_eq!(verify_github_signature(secret, &headers(&[]), body), Err(SignatureError::Missing));
        assert_eq!(verify_github_signature(b"other", &headers(&[("x-hub-signature-256", good256)]), body), Err(SignatureError::Mismatch));
        assert_eq!(
            verify_github_signature(secret, &headers(&[("x-hub-signature-256", good256)]), b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
        let truncated = &good256[..good256.len() - 2];
        assert_eq!(verify_github_signature(secret, &headers(&[("x-hub-signature-256", truncated)]), body), Err(SignatureError::Mismatch));
        for bad in ["757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "sha256=xyz", "sha1=757107ea"] {
            assert_eq!(
                verify_github_signature(secret, &headers(&[("x-hub-signature-256", bad)]), body),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A wrong SHA-256 signature is not rescued by a right SHA-1 one.
        let both = headers(&[("x-hub-signature-256", "sha256=00"), ("x-hub-signature", &good1)]);
        assert_eq!(verify_github_signature(secret, &both, body), Err(SignatureError::Mismatch));
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.4"), ("x-forwarded-for", "10.1.1.1")]);
        // An untrusted peer's header is ignored.
        assert_eq!(client_address(ip("192.0.2.1"), &xff, &trusted), Some(ip("192.0.2.1")));
        assert_eq!(client_address(ip("192.0.2.1"), &xff, &[]), Some(ip("192.0.2.1")));
        // From a trusted proxy: the nearest untrusted hop, not the spoofable leftmost one.
        assert_eq!(client_address(ip("10.0.0.2"), &xff, &trusted), Some(ip("198.51.100.4")));
        assert_eq!(client_address(ip("10.0.0.2"), &headers(&[]), &trusted), Some(ip("10.0.0.2")));
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers(&[("x-forwarded-for", "[2001:db8::1]:443")]), &trusted),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(client_address(ip("10.0.0.2"), &headers(&[("x-forwarded-for", "unknown")]), &trusted), None);
        // IPv4 peers seen through an IPv6 socket are IPv4.
        assert_eq!(client_address(ip("::ffff:192.0.2.1"), &xff, &trusted), Some(ip("192.0.2.1")));
    }

    fn rule(path: &str, equals: Option<&str>) -> FilterRule {
        FilterRule { json_path: path.into(), match_equals: equals.map(Into::into) }
    }

    #[test]
    fn filters_match_selected_values_after_placeholders() {
        let config: BTreeMap<String, String> = [("Branch".to_owned(), "main".to_owned())].into();
        let push = json!({"ref": "refs/heads/main", "deleted": false, "size": 3, "commits": [{"id": "a"}, {"id": "b"}], "gone": null});
        let passes = |r: FilterRule| failing_filter(&[r], &config, &push).is_none();
        assert!(passes(rule("$.ref", Some("refs/heads/{Branch}"))));
        assert!(passes(rule("ref", Some("refs/heads/main"))));
        assert!(!passes(rule("$.ref", Some("refs/heads/develop"))));
        assert!(!passes(rule("$.ref", Some("refs/heads/{Unknown}"))));
        assert!(passes(rule("$.deleted", Some("false"))));
        assert!(passes(rule("$.size", Some("3"))));
        assert!(passes(rule("$.commits[*].id", Some("b"))), "any selected value");
        assert!(passes(rule("$.ref", None)));
        assert!(!passes(rule("$.missing", None)));
        assert!(!passes(rule("$.gone", None)));
        assert!(!passes(rule("$.commits", Some("a"))));
        let both = [rule("$.ref", Some("refs/heads/{Branch}")), rule("$.size", Some("4"))];
        assert_eq!(failing_filter(&both, &config, &push), Some(1));
        assert_eq!(expand_placeholders("{Branch}/{Branch}-{x}", &config), "main/main-{x}");
    }

    #[test]
    fn the_revision_is_the_pushed_commit_or_else_the_delivery() {
        let push = json!({"after": "c0ffee", "head_commit": {"id": "c0ffee", "timestamp": "2026-11-20T10:00:00Z"}});
        let r = revision_of(&push, Some("d-1"), b"{}");
        assert_eq!(r.id, "c0ffee");
        assert_eq!(r.created.to_rfc3339(), "2026-11-20T10:00:00+00:00");
        let zeros = "0".repeat(40);
        assert_eq!(revision_of(&json!({"after": zeros, "head_commit": {"id": "beef"}}), None, b"").id, "beef");
        assert_eq!(revision_of(&json!({"checkout_sha": "abc"}), None, b"").id, "abc");
        assert_eq!(revision_of(&json!({"after": zeros}), Some("d-1"), b"").id, "d-1");
        assert_eq!(revision_of(&json!({}), None, b"{}").id, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    }

    #[test]
    fn url_ids_and_delivery_ids_are_checked_before_any_lookup() {
        assert!(is_url_id(&"a".repeat(32)));
        assert!(!is_url_id("short"));
        assert!(!is_url_id(&format!("{}/", "a".repeat(32))));
        assert_eq!(delivery_id(&headers(&[])).ok().flatten(), None);
        assert_eq!(delivery_id(&headers(&[("x-github-delivery", "72d3162e-cc78")])).ok().flatten().as_deref(), Some("72d3162e-cc78"));
        assert!(delivery_id(&headers(&[("x-github-delivery", "a b")])).is_err());
        assert!(delivery_id(&headers(&[("x-github-delivery", &"x".repeat(201))])).is_err());
    }
}
