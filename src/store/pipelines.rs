//! Pipelines and their version history.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

#[derive(sqlx::FromRow)]
pub struct PipelineRow {
    pub name: String,
    pub version: i32,
    pub declaration: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Inserts version 1; `false` when the name is taken in this account.
pub async fn insert(conn: &mut PgConnection, account_id: &str, name: &str, declaration: &Value) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query("insert into pipeline (account_id, name, current_version) values ($1, $2, 1) on conflict do nothing")
        .bind(account_id)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("insert into pipeline_version (account_id, name, version, declaration) values ($1, $2, 1, $3)")
        .bind(account_id)
        .bind(name)
        .bind(declaration)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Stores the next version. The row lock taken by the UPDATE serialises
/// racing updates, so each gets its own version number.
pub async fn insert_next_version(
    conn: &mut PgConnection,
    account_id: &str,
    name: &str,
    declaration: impl Fn(i32) -> Value,
) -> Result<Option<PipelineRow>, sqlx::Error> {
    let bumped: Option<(i32, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "update pipeline set current_version = current_version + 1, updated_at = now() \
         where account_id = $1 and name = $2 returning current_version, created_at, updated_at",
    )
    .bind(account_id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((version, created_at, updated_at)) = bumped else { return Ok(None) };
    let declaration = declaration(version);
    sqlx::query("insert into pipeline_version (account_id, name, version, declaration) values ($1, $2, $3, $4)")
        .bind(account_id)
        .bind(name)
        .bind(version)
        .bind(&declaration)
        .execute(conn)
        .await?;
    Ok(Some(PipelineRow { name: name.to_owned(), version, declaration, created_at, updated_at }))
}

/// The given version, or the current one.
pub async fn get(conn: &mut PgConnection, account_id: &str, name: &str, version: Option<i32>) -> Result<Option<PipelineRow>, sqlx::Error> {
    sqlx::query_as(
        "select p.name, v.version, v.declaration, p.created_at, p.updated_at \
         from pipeline p join pipeline_version v using (account_id, name) \
         where p.account_id = $1 and p.name = $2 and v.version = coalesce($3, p.current_version)",
    )
    .bind(account_id)
    .bind(name)
    .bind(version)
    .fetch_optional(conn)
    .await
}

pub async fn exists(conn: &mut PgConnection, account_id: &str, name: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as("select 1 from pipeline where account_id = $1 and name = $2")
        .bind(account_id)
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// Deletes a pipeline with everything it ran. Its versions, executions and
/// their stages cascade; actions and jobs have no foreign key (migration
/// 0023), so they go here, once the pipeline's row lock has waited out
/// every transaction that could still add some.
pub async fn delete(conn: &mut PgConnection, account_id: &str, name: &str) -> Result<(), sqlx::Error> {
    if crate::store::executions::lock_pipeline(&mut *conn, account_id, name).await?.is_none() {
        return Ok(());
    }
    sqlx::query(
        "with actions as (delete from action_execution where account_id = $1 and pipeline_name = $2 returning action_execution_id), \
              jobs as (delete from job j using actions a where j.account_id = $1 and j.action_execution_id = a.action_execution_id) \
         delete from pipeline where account_id = $1 and name = $2",
    )
    .bind(account_id)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

/// Current versions in name order, after `after`, at most `limit`.
pub async fn list(conn: &mut PgConnection, account_id: &str, after: Option<&str>, limit: i64) -> Result<Vec<PipelineRow>, sqlx::Error> {
    sqlx::query_as(
        "select p.name, v.version, v.declaration, p.created_at, p.updated_at \
         from pipeline p join pipeline_version v on v.account_id = p.account_id and v.name = p.name and v.version = p.current_version \
         where p.account_id = $1 and ($2::text is null or p.name > $2) \
         order by p.name limit $3",
    )
    .bind(account_id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
