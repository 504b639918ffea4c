//! PutWebhook, ListWebhooks, DeleteWebhook, RegisterWebhookWithThirdParty,
//! DeregisterWebhookWithThirdParty (SEMANTICS §16; issue 5, management half).
//!
//! A webhook belongs to one account and is named uniquely in it. Its URL is
//! `<public base URL>/webhooks/<url id>`, the id random and unguessable;
//! PutWebhook on an existing name updates it and keeps the URL, while a
//! deleted and re-created name gets a new one. The receiving endpoint
//! (`POST /webhooks/<id>`) is [`crate::web::webhooks`]; it sets
//! `lastTriggered`, and `errorCode` / `errorMessage` when it cannot start
//! the target.
//!
//! The GitHub secret (`SecretToken`) is sealed with the master key, since
//! the endpoint must compute HMACs with it; it is never returned (responses
//! show [`REDACTED_SECRET`]) and never logged ([`SecretToken`]'s `Debug` and
//! `Serialize` both print the mask).
//!
//! This server contacts no third party: Register/Deregister only record the
//! request, and ListWebhookItem's `errorMessage` says so while registered.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize, Serializer};
use serde_json_path::JsonPath;
use sqlx::PgConnection;

use super::tags::{Resource, ResourceArn, Tag, add_tags, delete_tags_of, replace_tags, tags_of, validate_tags};
use super::{Cx, epoch_seconds, page_token};
use crate::crypto::SecretBox;
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::pipelines;
use crate::store::tags as tag_store;
use crate::store::webhooks::{self, WebhookRecord, WebhookRow};

/// Webhooks per account (UG limits: 300 per Region per account).
pub const MAX_WEBHOOKS_PER_ACCOUNT: i64 = 300;

/// What responses show instead of a secret token: the four asterisks the
/// UG shows for masked secrets elsewhere in CodePipeline. Sending it back
/// in an update of a GITHUB_HMAC webhook keeps the stored secret, so a
/// listed definition can be edited and put again without re-entering it.
pub const REDACTED_SECRET: &str = "****";

/// Shown as `errorMessage` while a registration is recorded, so nobody
/// believes GitHub was configured.
pub const NOT_REGISTERED_MESSAGE: &str = "RegisterWebhookWithThirdParty was recorded, but this server contacts no third party: \
     add this webhook's URL (content type application/json) and secret to the repository's webhook settings yourself.";

/// The Smithy `WebhookDefinition` shape.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDefinition {
    name: String,
    target_pipeline: String,
    target_action: String,
    filters: Vec<WebhookFilterRule>,
    authentication: WebhookAuthenticationType,
    authentication_configuration: WebhookAuthConfiguration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookFilterRule {
    json_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    match_equals: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum WebhookAuthenticationType {
    #[serde(rename = "GITHUB_HMAC")]
    GithubHmac,
    #[serde(rename = "IP")]
    Ip,
    #[serde(rename = "UNAUTHENTICATED")]
    Unauthenticated,
}

impl WebhookAuthenticationType {
    fn as_str(self) -> &'static str {
        match self {
            WebhookAuthenticationType::GithubHmac => "GITHUB_HMAC",
            WebhookAuthenticationType::Ip => "IP",
            WebhookAuthenticationType::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "GITHUB_HMAC" => Some(WebhookAuthenticationType::GithubHmac),
            "IP" => Some(WebhookAuthenticationType::Ip),
            "UNAUTHENTICATED" => Some(WebhookAuthenticationType::Unauthenticated),
            _ => None,
        }
    }
}

/// The Smithy `WebhookAuthConfiguration` shape: the two members AWS
/// capitalises on the wire.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct WebhookAuthConfiguration {
    #[serde(rename = "AllowedIPRange", skip_serializing_if = "Option::is_none")]
    allowed_ip_range: Option<String>,
    #[serde(rename = "SecretToken", skip_serializing_if = "Option::is_none")]
    secret_token: Option<SecretToken>,
}

/// A webhook secret as received. It can be read once, to seal it; printing
/// or serialising it yields only [`REDACTED_SECRET`].
#[derive(Deserialize)]
#[serde(transparent)]
pub struct SecretToken(String);

impl SecretToken {
    fn redacted() -> Self {
        SecretToken(REDACTED_SECRET.to_owned())
    }

    fn is_mask(&self) -> bool {
        self.0 == REDACTED_SECRET
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED_SECRET)
    }
}

impl Serialize for SecretToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED_SECRET)
    }
}

/// The Smithy `ListWebhookItem` shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListWebhookItem {
    definition: WebhookDefinition,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_triggered: Option<f64>,
    arn: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutWebhookInput {
    webhook: WebhookDefinition,
    tags: Option<Vec<Tag>>,
}

#[derive(Serialize)]
pub struct PutWebhookOutput {
    webhook: ListWebhookItem,
}

#[derive(Deserialize)]
pub struct ListWebhooksInput {
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
    #[serde(rename = "MaxResults")]
    max_results: Option<i64>,
}

#[derive(Serialize)]
pub struct ListWebhooksOutput {
    webhooks: Vec<ListWebhookItem>,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Deserialize)]
pub struct DeleteWebhookInput {
    name: String,
}

#[derive(Serialize)]
pub struct DeleteWebhookOutput {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterWebhookWithThirdPartyInput {
    webhook_name: Option<String>,
}

#[derive(Serialize)]
pub struct RegisterWebhookWithThirdPartyOutput {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterWebhookWithThirdPartyInput {
    webhook_name: Option<String>,
}

#[derive(Serialize)]
pub struct DeregisterWebhookWithThirdPartyOutput {}

pub fn webhook_arn(cx: &Cx, name: &str) -> String {
    ResourceArn::of(cx, Resource::Webhook { name: name.to_owned() }).to_string()
}

pub fn webhook_url(cx: &Cx, url_id: &str) -> String {
    format!("{}/webhooks/{url_id}", cx.app.config.public_base_url())
}

/// 192 random bits, URL-safe.
fn new_url_id() -> String {
    let mut id = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut id);
    URL_SAFE_NO_PAD.encode(id)
}

/// Binds a sealed secret to its webhook: the URL id is unique and never
/// changes, so a ciphertext copied onto another row does not open.
fn secret_aad(account_id: &str, url_id: &str) -> Vec<u8> {
    format!("webhook-secret:{account_id}:{url_id}").into_bytes()
}

/// The webhook's GitHub secret, for the receiving endpoint's HMAC check.
pub fn open_secret(secrets: &SecretBox, account_id: &str, url_id: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
    secrets.open(sealed, &secret_aad(account_id, url_id))
}

/// Compiles a filter's JSONPath (RFC 9535). AWS evaluates filters with
/// Jayway JsonPath, which reads a path without a leading `$` as relative to
/// the root, so `ref` means `$.ref` here too.
pub fn compile_filter_path(path: &str) -> Result<JsonPath, serde_json_path::ParseError> {
    let path = path.trim();
    let rooted = if path.starts_with('$') { Cow::Borrowed(path) } else { Cow::Owned(format!("$.{path}")) };
    JsonPath::parse(&rooted)
}

/// Errors: ValidationException (no filter), InvalidWebhookFilterPatternException.
fn check_filters(filters: &[WebhookFilterRule]) -> Result<(), ApiError> {
    // The model caps the list at 5 but sets no minimum; a webhook without a
    // filter would fire on anything, and AWS requires at least one.
    if filters.is_empty() {
        return Err(ApiError::validation("A webhook needs at least one filter (and at most 5)"));
    }
    for (i, filter) in filters.iter().enumerate() {
        if let Err(e) = compile_filter_path(&filter.json_path) {
            return Err(ApiError::new(
                ErrorCode::InvalidWebhookFilterPatternException,
                format!("Filter {}: '{}' is not a valid JSONPath: {e}", i + 1, filter.json_path),
            ));
        }
    }
    Ok(())
}

/// GITHUB_HMAC takes only `SecretToken`, IP only `AllowedIPRange` (a CIDR
/// block), UNAUTHENTICATED neither (model doc of
/// `WebhookDefinition.authenticationConfiguration`).
///
/// Errors: InvalidWebhookAuthenticationParametersException.
fn check_authentication(def: &WebhookDefinition) -> Result<(), ApiError> {
    let config = &def.authentication_configuration;
    let refuse = |message: String| Err(ApiError::new(ErrorCode::InvalidWebhookAuthenticationParametersException, message));
    match def.authentication {
        WebhookAuthenticationType::GithubHmac => {
            if config.secret_token.is_none() || config.allowed_ip_range.is_some() {
                return refuse("GITHUB_HMAC authentication takes SecretToken and no other property".into());
            }
        }
        WebhookAuthenticationType::Ip => {
            let Some(range) = config.allowed_ip_range.as_deref().filter(|_| config.secret_token.is_none()) else {
                return refuse("IP authentication takes AllowedIPRange and no other property".into());
            };
            if !is_cidr_block(range) {
                return refuse(format!("AllowedIPRange '{range}' is not a CIDR block such as 192.0.2.0/24 or 2001:db8::/32"));
            }
        }
        WebhookAuthenticationType::Unauthenticated => {
            if config.secret_token.is_some() || config.allowed_ip_range.is_some() {
                return refuse("UNAUTHENTICATED takes no authentication properties".into());
            }
        }
    }
    Ok(())
}

/// An IPv4 or IPv6 network in CIDR notation, without host bits (a range
/// like 10.0.0.1/8 is refused rather than guessed at).
fn is_cidr_block(range: &str) -> bool {
    range.parse::<ipnet::IpNet>().is_ok_and(|net| net.trunc() == net)
}

/// The target pipeline exists and the target action is in its first stage.
///
/// Errors: PipelineNotFoundException, ValidationException.
async fn check_target(conn: &mut PgConnection, account_id: &str, def: &WebhookDefinition) -> Result<(), ApiError> {
    let pipeline = pipelines::get(conn, account_id, &def.target_pipeline, None).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::PipelineNotFoundException, format!("Account does not have a pipeline with name '{}'", def.target_pipeline))
    })?;
    let first_stage = &pipeline.declaration["stages"][0];
    let in_first_stage = first_stage["actions"]
        .as_array()
        .is_some_and(|actions| actions.iter().any(|a| a["name"].as_str() == Some(def.target_action.as_str())));
    if !in_first_stage {
        return Err(ApiError::validation(format!(
            "The target action '{}' is not an action of the first stage ('{}') of pipeline '{}'",
            def.target_action,
            first_stage["name"].as_str().unwrap_or_default(),
            def.target_pipeline
        )));
    }
    Ok(())
}

fn item(cx: &Cx, row: WebhookRow, tags: Vec<Tag>) -> Result<ListWebhookItem, ApiError> {
    let authentication = WebhookAuthenticationType::parse(&row.authentication)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("webhook {} has authentication {}", row.name, row.authentication)))?;
    let filters: Vec<WebhookFilterRule> = serde_json::from_value(row.filters).map_err(ApiError::internal)?;
    let authentication_configuration = WebhookAuthConfiguration {
        allowed_ip_range: row.allowed_ip_range,
        secret_token: (authentication == WebhookAuthenticationType::GithubHmac).then(SecretToken::redacted),
    };
    // The endpoint's own errors take precedence over the note.
    let (error_code, error_message) = match (row.error_code, row.error_message) {
        (None, None) if row.registered_at.is_some() => (None, Some(NOT_REGISTERED_MESSAGE.to_owned())),
        other => other,
    };
    Ok(ListWebhookItem {
        url: webhook_url(cx, &row.url_id),
        arn: webhook_arn(cx, &row.name),
        definition: WebhookDefinition {
            name: row.name,
            target_pipeline: row.target_pipeline,
            target_action: row.target_action,
            filters,
            authentication,
            authentication_configuration,
        },
        error_message,
        error_code,
        last_triggered: row.last_triggered.map(epoch_seconds),
        tags,
    })
}

fn webhook_not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::WebhookNotFoundException, format!("Account does not have a webhook with name '{name}'"))
}

/// Creates the webhook, or updates the one of that name (keeping its URL,
/// registration state and trigger history). Tags given with an update are
/// added to the webhook's tags as TagResource would; use UntagResource to
/// remove some.
///
/// Errors: ValidationException, LimitExceededException,
/// InvalidWebhookFilterPatternException,
/// InvalidWebhookAuthenticationParametersException,
/// PipelineNotFoundException, TooManyTagsException, InvalidTagsException.
pub async fn put_webhook(cx: Cx, input: PutWebhookInput) -> Result<PutWebhookOutput, ApiError> {
    let def = input.webhook;
    check_filters(&def.filters)?;
    check_authentication(&def)?;
    if let Some(tags) = &input.tags {
        validate_tags(tags)?;
    }
    let account_id = cx.account_id.as_str();
    let arn = webhook_arn(&cx, &def.name);
    let filters = serde_json::to_value(&def.filters).map_err(ApiError::internal)?;

    let mut tx = cx.db().begin().await?;
    check_target(&mut tx, account_id, &def).await?;
    webhooks::lock_account(&mut tx, account_id).await?;
    let existing = webhooks::get_for_update(&mut tx, account_id, &def.name).await?;
    let url_id = match &existing {
        Some(row) => row.url_id.clone(),
        None => new_url_id(),
    };
    let secret_sealed = match &def.authentication_configuration.secret_token {
        Some(token) if token.is_mask() && existing.as_ref().is_some_and(|w| w.authentication == "GITHUB_HMAC") => {
            webhooks::sealed_secret(&mut tx, account_id, &def.name).await?
        }
        // Storing the mask itself as a secret would be a silent mistake.
        Some(token) if token.is_mask() => {
            return Err(ApiError::new(
                ErrorCode::InvalidWebhookAuthenticationParametersException,
                format!(
                    "SecretToken '{REDACTED_SECRET}' is the redaction mask: it keeps the stored secret when updating a \
                     GITHUB_HMAC webhook, and cannot be a new secret"
                ),
            ));
        }
        Some(token) => Some(cx.app.secrets.seal(token.0.as_bytes(), &secret_aad(account_id, &url_id))),
        None => None,
    };
    let record = WebhookRecord {
        name: &def.name,
        url_id: &url_id,
        target_pipeline: &def.target_pipeline,
        target_action: &def.target_action,
        filters: &filters,
        authentication: def.authentication.as_str(),
        allowed_ip_range: def.authentication_configuration.allowed_ip_range.as_deref(),
        secret_sealed: secret_sealed.as_deref(),
    };
    if existing.is_some() {
        webhooks::update(&mut tx, account_id, &record).await?;
        if let Some(tags) = &input.tags {
            add_tags(&mut tx, account_id, &arn, tags).await?;
        }
    } else {
        if webhooks::count(&mut tx, account_id).await? >= MAX_WEBHOOKS_PER_ACCOUNT {
            return Err(ApiError::new(
                ErrorCode::LimitExceededException,
                format!("An account can have at most {MAX_WEBHOOKS_PER_ACCOUNT} webhooks"),
            ));
        }
        webhooks::insert(&mut tx, account_id, &record).await?;
        // Clears any tags a deletion in an older version left behind.
        replace_tags(&mut tx, account_id, &arn, input.tags.as_deref().unwrap_or_default()).await?;
    }
    let row = webhooks::get(&mut tx, account_id, &def.name)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("webhook {} vanished inside its transaction", def.name)))?;
    let tags = tags_of(&mut tx, account_id, &arn).await?;
    tx.commit().await?;
    Ok(PutWebhookOutput { webhook: item(&cx, row, tags)? })
}

/// The account's webhooks in name order; a page holds 100 unless
/// `MaxResults` says fewer.
///
/// Errors: ValidationException, InvalidNextTokenException.
pub async fn list_webhooks(cx: Cx, input: ListWebhooksInput) -> Result<ListWebhooksOutput, ApiError> {
    let limit = input.max_results.unwrap_or(100);
    let after = page_token::decode(input.next_token.as_deref())?;
    let mut conn = cx.db().acquire().await?;
    // One extra row tells whether another page exists.
    let mut rows = webhooks::list(&mut conn, &cx.account_id, after.as_deref(), limit + 1).await?;
    let next_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| page_token::encode(&r.name))
    } else {
        None
    };
    let arns: Vec<String> = rows.iter().map(|r| webhook_arn(&cx, &r.name)).collect();
    let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
    for t in tag_store::list_many(&mut conn, &cx.account_id, &arns).await? {
        tags.entry(t.resource_arn).or_default().push(Tag { key: t.key, value: t.value });
    }
    let webhooks =
        rows.into_iter().zip(arns).map(|(row, arn)| item(&cx, row, tags.remove(&arn).unwrap_or_default())).collect::<Result<_, _>>()?;
    Ok(ListWebhooksOutput { webhooks, next_token })
}

/// Deleting a webhook that does not exist succeeds, as in AWS. Its tags go
/// with it, so a re-created webhook of the same name starts untagged.
///
/// Errors: ValidationException.
pub async fn delete_webhook(cx: Cx, input: DeleteWebhookInput) -> Result<DeleteWebhookOutput, ApiError> {
    let mut tx = cx.db().begin().await?;
    webhooks::delete(&mut tx, &cx.account_id, &input.name).await?;
    delete_tags_of(&mut tx, &cx.account_id, &webhook_arn(&cx, &input.name)).await?;
    tx.commit().await?;
    Ok(DeleteWebhookOutput {})
}

async fn set_registered(cx: &Cx, name: Option<String>, registered: bool) -> Result<(), ApiError> {
    // The model leaves webhookName optional, but there is nothing to act on without it.
    let name = name.ok_or_else(|| ApiError::validation("webhookName is required"))?;
    let mut conn = cx.db().acquire().await?;
    if !webhooks::set_registered(&mut conn, &cx.account_id, &name, registered).await? {
        return Err(webhook_not_found(&name));
    }
    Ok(())
}

/// Records that the caller asked for the webhook to be set up in GitHub.
/// This server reaches no third party, so nothing is set up: ListWebhooks
/// and PutWebhook show [`NOT_REGISTERED_MESSAGE`] as the webhook's
/// `errorMessage` until it is deregistered.
///
/// Errors: ValidationException, WebhookNotFoundException.
pub async fn register_webhook_with_third_party(
    cx: Cx,
    input: RegisterWebhookWithThirdPartyInput,
) -> Result<RegisterWebhookWithThirdPartyOutput, ApiError> {
    set_registered(&cx, input.webhook_name, true).await?;
    Ok(RegisterWebhookWithThirdPartyOutput {})
}

/// Clears a recorded registration (no third party is contacted).
///
/// Errors: ValidationException, WebhookNotFoundException.
pub async fn deregister_webhook_with_third_party(
    cx: Cx,
    input: DeregisterWebhookWithThirdPartyInput,
) -> Result<DeregisterWebhookWithThirdPartyOutput, ApiError> {
    set_registered(&cx, input.webhook_name, false).await?;
    Ok(DeregisterWebhookWithThirdPartyOutput {})
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn definition(authentication: &str, config: Value) -> WebhookDefinition {
        serde_json::from_value(serde_json::json!({
            "name": "hook",
            "targetPipeline": "p",
            "targetAction": "Source",
            "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
            "authentication": authentication,
            "authenticationConfiguration": config,
        }))
        .unwrap()
    }

    #[test]
    fn each_authentication_mode_takes_exactly_its_own_setting() {
        let ok = |a: &str, c: Value| check_authentication(&definition(a, c)).is_ok();
        assert!(ok("GITHUB_HMAC", serde_json::json!({"SecretToken": "s3cret"})));
        assert!(ok("IP", serde_json::json!({"AllowedIPRange": "192.0.2.0/24"})));
        assert!(ok("IP", serde_json::json!({"AllowedIPRange": "2001:db8::/32"})));
        assert!(ok("IP", serde_json::json!({"AllowedIPRange": "203.0.113.7/32"})));
        assert!(ok("UNAUTHENTICATED", serde_json::json!({})));

        assert!(!ok("GITHUB_HMAC", serde_json::json!({})));
        assert!(!ok("GITHUB_HMAC", serde_json::json!({"SecretToken": "s", "AllowedIPRange": "10.0.0.0/8"})));
        assert!(!ok("IP", serde_json::json!({})));
        assert!(!ok("IP", serde_json::json!({"AllowedIPRange": "10.0.0.0/8", "SecretToken": "s"})));
        for bad in ["10.0.0.1/8", "10.0.0.0", "10.0.0.0/33", "example.com/8", "10.0.0.0/8 ", ""] {
            assert!(!ok("IP", serde_json::json!({ "AllowedIPRange": bad })), "{bad:?}");
        }
        assert!(!ok("UNAUTHENTICATED", serde_json::json!({"SecretToken": "s"})));
        assert!(!ok("UNAUTHENTICATED", serde_json::json!({"AllowedIPRange": "10.0.0.0/8"})));
    }

    #[test]
    fn filter_paths_follow_rfc_9535_with_an_implicit_root() {
        for good in ["$.ref", "$.repository.name", "$.commits[0].id", "$['ref']", "$..id", "ref", "$.commits[?@.id == 'x']"] {
            assert!(compile_filter_path(good).is_ok(), "{good}");
        }
        for bad in ["$.", "$[", "$.ref[", "$.commits[?@.id ==]", "$$"] {
            assert!(compile_filter_path(bad).is_err(), "{bad}");
        }
        let no_filter = check_filters(&[]).unwrap_err();
        assert_eq!(no_filter.code, ErrorCode::ValidationException);
        let rule = WebhookFilterRule { json_path: "$.[".into(), match_equals: None };
        assert_eq!(check_filters(&[rule]).unwrap_err().code, ErrorCode::InvalidWebhookFilterPatternException);
    }

    #[test]
    fn a_secret_token_never_prints_or_serialises() {
        let def = definition("GITHUB_HMAC", serde_json::json!({"SecretToken": "hunter2-very-secret"}));
        let json = serde_json::to_string(&def).unwrap();
        let debug = format!("{def:?}");
        for shown in [&json, &debug] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(REDACTED_SECRET), "{shown}");
        }
    }

    #[test]
    fn url_ids_are_long_random_and_url_safe() {
        let (a, b) = (new_url_id(), new_url_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
