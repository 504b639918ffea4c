//! PostgreSQL access: connecting (to a named server or the embedded
//! cluster), migrations, and one module of SQL per table family. Store
//! functions take a connection or transaction and never commit: the caller
//! owns the transaction.

pub mod accounts;
pub mod action_types;
pub mod batch;
pub mod db;
pub mod embedded;
pub mod executions;
pub mod jobs;
pub mod pipelines;
pub mod rule_executions;
pub mod tags;
pub mod third_party;
pub mod webhooks;

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::StorageArgs;
use embedded::EmbeddedPostgres;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// An open database, and the embedded cluster behind it when there is one
/// (stopped when this is dropped, if this process started it).
pub struct Database {
    pub pool: PgPool,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    pub async fn open(storage: &StorageArgs) -> anyhow::Result<Database> {
        let (url, embedded) = match &storage.database_url {
            Some(url) => (url.clone(), None),
            None => {
                let data_dir = storage.data_dir.clone();
                let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&data_dir)).await??;
                (pg.database_url("millrace"), Some(pg))
            }
        };
        let pool = connect(&url, storage.db_max_connections, Duration::from_secs(storage.db_statement_timeout_secs)).await?;
        Ok(Database { pool, embedded })
    }

    /// Closes the pool, then stops the embedded cluster if we started it.
    pub async fn close(mut self) {
        self.pool.close().await;
        if let Some(mut pg) = self.embedded.take() {
            let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
        }
    }
}

/// Connects and brings the schema up to date. Migrations take an advisory
/// lock, so replicas starting together apply them once; they run on a
/// connection of their own, free of `statement_timeout` (zero: none), which
/// PostgreSQL applies to every other statement of this process and to any
/// of its sessions idle in a transaction.
pub async fn connect(url: &str, max_connections: u32, statement_timeout: Duration) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let mut migrating = PgConnection::connect_with(&options).await.context("connecting to PostgreSQL")?;
    MIGRATOR.run(&mut migrating).await.context("applying database migrations")?;
    migrating.close().await.context("closing the migrations' connection")?;
    let timeout = statement_timeout.as_millis().to_string();
    // Every statement is prepared once per connection; under the default
    // plan_cache_mode, PostgreSQL still re-plans most of them on every
    // execution (a custom plan looks cheaper than the generic one when
    // partial indexes and jsonb are involved), and PL/pgSQL functions' inner
    // statements likewise. Planning was ~17 % of PostgreSQL's CPU per job
    // lifecycle (benches/README.md). Our statements filter on keys and on
    // statuses written as literals (which partial indexes need), so generic
    // plans lose nothing.
    let options = options.options([
        ("plan_cache_mode", "force_generic_plan"),
        ("statement_timeout", timeout.as_str()),
        ("idle_in_transaction_session_timeout", timeout.as_str()),
    ]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // A connection in steady use is known to be alive: pinging it before
        // every request (sqlx's default) cost a round trip per request. One
        // that sat idle (the database may have restarted since) is checked.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= Duration::from_secs(5) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL")?;
    Ok(pool)
}

/// A condition on an optional parameter of a list query (a filter or a
/// pagination cursor), written only when the parameter is given; otherwise
/// the parameter (`cast`, e.g. `$3::uuid`) is only checked to be null.
/// Statements run with generic plans ([`connect`]), and a generic plan for
/// `($3 is null or execution_id = $3)` cannot use the condition as an index
/// bound: it walks the pipeline's whole history newest first and filters.
pub fn when_given(given: bool, condition: &'static str, cast: &'static str) -> String {
    if given { condition.to_owned() } else { format!("{cast} is null") }
}

/// A page of a pipeline's execution history (`select`: the columns and
/// table, e.g. action or rule executions), newest first: of one execution
/// or all, before the cursor `before_seq`, at most `limit` rows.
pub async fn history_page<T>(
    conn: &mut sqlx::PgConnection,
    select: &str,
    account_id: &str,
    pipeline: &str,
    execution_id: Option<uuid::Uuid>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(&format!(
        "{select} where account_id = $1 and pipeline_name = $2 and {} and {} order by seq desc limit $5",
        when_given(execution_id.is_some(), "execution_id = $3", "$3::uuid"),
        when_given(before_seq.is_some(), "seq < $4", "$4::bigint"),
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(conn)
    .await
}
