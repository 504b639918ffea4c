//! Webhooks, by (account, name). The sealed secret is read only where it is
//! needed (keeping it across an update); listings never select it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

/// Namespaces the per-account webhook lock among advisory locks.
const WEBHOOK_LOCK_CLASS: i32 = 0x686f_6f6b; // "hook"

#[derive(sqlx::FromRow, Debug)]
pub struct WebhookRow {
    pub name: String,
    pub url_id: String,
    pub target_pipeline: String,
    pub target_action: String,
    pub filters: Value,
    pub authentication: String,
    pub allowed_ip_range: Option<String>,
    pub registered_at: Option<DateTime<Utc>>,
    pub last_triggered: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// What PutWebhook writes.
pub struct WebhookRecord<'a> {
    pub name: &'a str,
    pub url_id: &'a str,
    pub target_pipeline: &'a str,
    pub target_action: &'a str,
    pub filters: &'a Value,
    pub authentication: &'a str,
    pub allowed_ip_range: Option<&'a str>,
    pub secret_sealed: Option<&'a [u8]>,
}

const COLUMNS: &str = "name, url_id, target_pipeline, target_action, filters, authentication, allowed_ip_range, \
                       registered_at, last_triggered, error_code, error_message";

/// Serialises PutWebhook calls of one account until the transaction ends,
/// so the quota count and the create-or-update decision cannot race.
pub async fn lock_account(conn: &mut PgConnection, account_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))").bind(WEBHOOK_LOCK_CLASS).bind(account_id).execute(conn).await?;
    Ok(())
}

pub async fn exists(conn: &mut PgConnection, account_id: &str, name: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as("select 1 from webhook where account_id = $1 and name = $2")
        .bind(account_id)
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

pub async fn get(conn: &mut PgConnection, account_id: &str, name: &str) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as(&format!("select {COLUMNS} from webhook where account_id = $1 and name = $2"))
        .bind(account_id)
        .bind(name)
        .fetch_optional(conn)
        .await
}

/// The row, locked against concurrent change until the transaction ends.
pub async fn get_for_update(conn: &mut PgConnection, account_id: &str, name: &str) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as(&format!("select {COLUMNS} from webhook where account_id = $1 and name = $2 for update"))
        .bind(account_id)
        .bind(name)
        .fetch_optional(conn)
        .await
}

/// The sealed GitHub secret, if the webhook has one.
pub async fn sealed_secret(conn: &mut PgConnection, account_id: &str, name: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row: Option<(Option<Vec<u8>>,)> = sqlx::query_as("select secret_sealed from webhook where account_id = $1 and name = $2")
        .bind(account_id)
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(row.and_then(|(s,)| s))
}

pub async fn count(conn: &mut PgConnection, account_id: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from webhook where account_id = $1").bind(account_id).fetch_one(conn).await?;
    Ok(n)
}

pub async fn insert(conn: &mut PgConnection, account_id: &str, w: &WebhookRecord<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into webhook (account_id, name, url_id, target_pipeline, target_action, filters, authentication, \
                              allowed_ip_range, secret_sealed) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(account_id)
    .bind(w.name)
    .bind(w.url_id)
    .bind(w.target_pipeline)
    .bind(w.target_action)
    .bind(w.filters)
    .bind(w.authentication)
    .bind(w.allowed_ip_range)
    .bind(w.secret_sealed)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the definition; the URL id, registration state and trigger
/// history stay.
pub async fn update(conn: &mut PgConnection, account_id: &str, w: &WebhookRecord<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update webhook set target_pipeline = $3, target_action = $4, filters = $5, authentication = $6, \
                            allowed_ip_range = $7, secret_sealed = $8, updated_at = now() \
         where account_id = $1 and name = $2",
    )
    .bind(account_id)
    .bind(w.name)
    .bind(w.target_pipeline)
    .bind(w.target_action)
    .bind(w.filters)
    .bind(w.authentication)
    .bind(w.allowed_ip_range)
    .bind(w.secret_sealed)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, account_id: &str, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from webhook where account_id = $1 and name = $2").bind(account_id).bind(name).execute(conn).await?;
    Ok(())
}

/// Records (or clears) a registration request; `false` when there is no
/// such webhook.
pub async fn set_registered(conn: &mut PgConnection, account_id: &str, name: &str, registered: bool) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update webhook set registered_at = case when $3 then now() end, updated_at = now() \
         where account_id = $1 and name = $2",
    )
    .bind(account_id)
    .bind(name)
    .bind(registered)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Webhooks in name order, after `after`, at most `limit`.
pub async fn list(conn: &mut PgConnection, account_id: &str, after: Option<&str>, limit: i64) -> Result<Vec<WebhookRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from webhook where account_id = $1 and ($2::text is null or name > $2) order by name limit $3"
    ))
    .bind(account_id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

// ---- the receiving endpoint ----

/// What `POST /webhooks/<url id>` needs to authenticate, filter and start.
#[derive(sqlx::FromRow)]
pub struct DeliveryTarget {
    pub account_id: String,
    pub name: String,
    pub url_id: String,
    pub target_pipeline: String,
    pub target_action: String,
    pub filters: Value,
    pub authentication: String,
    pub allowed_ip_range: Option<String>,
    pub secret_sealed: Option<Vec<u8>>,
}

impl std::fmt::Debug for DeliveryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryTarget")
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("target_pipeline", &self.target_pipeline)
            .field("target_action", &self.target_action)
            .field("authentication", &self.authentication)
            .finish_non_exhaustive()
    }
}

/// The webhook whose URL ends in `url_id`, in whichever account.
pub async fn by_url_id(conn: &mut PgConnection, url_id: &str) -> Result<Option<DeliveryTarget>, sqlx::Error> {
    sqlx::query_as(
        "select account_id, name, url_id, target_pipeline, target_action, filters, authentication, allowed_ip_range, \
                secret_sealed \
         from webhook where url_id = $1",
    )
    .bind(url_id)
    .fetch_optional(conn)
    .await
}

/// Marks a successful trigger (clearing any recorded error) and locks the
/// row until the transaction ends; false when the webhook is gone.
pub async fn mark_triggered(conn: &mut PgConnection, url_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("update webhook set last_triggered = now(), error_code = null, error_message = null where url_id = $1")
        .bind(url_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records why a delivery could not start the pipeline (shown by
/// ListWebhooks as errorCode / errorMessage until the next success).
pub async fn set_error(conn: &mut PgConnection, url_id: &str, code: &str, message: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update webhook set error_code = $2, error_message = $3 where url_id = $1")
        .bind(url_id)
        .bind(code)
        .bind(message)
        .execute(conn)
        .await?;
    Ok(())
}

/// The execution an earlier delivery with this id started, if any.
pub async fn delivery(conn: &mut PgConnection, url_id: &str, delivery_id: &str) -> Result<Option<uuid::Uuid>, sqlx::Error> {
    let row: Option<(uuid::Uuid,)> = sqlx::query_as("select execution_id from webhook_delivery where url_id = $1 and delivery_id = $2")
        .bind(url_id)
        .bind(delivery_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.0))
}

/// Records a delivery that started `execution_id`; false when the id was
/// already recorded (a concurrent redelivery won).
pub async fn record_delivery(
    conn: &mut PgConnection,
    url_id: &str,
    delivery_id: &str,
    execution_id: uuid::Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into webhook_delivery (url_id, delivery_id, execution_id) values ($1, $2, $3) \
         on conflict (url_id, delivery_id) do nothing",
    )
    .bind(url_id)
    .bind(delivery_id)
    .bind(execution_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets deliveries received before `older_than` ago, at most `limit` of
/// them per call (the endpoint calls it now and then).
pub async fn prune_deliveries(conn: &mut PgConnection, older_than: std::time::Duration, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "delete from webhook_delivery where ctid in \
         (select ctid from webhook_delivery where received_at < now() - make_interval(secs => $1) limit $2)",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
