//! Action types an account defines (owner Custom, or ThirdParty through the
//! integrator model). Built-ins live in `pipeline::action_types`.

use serde_json::Value;
use sqlx::PgConnection;

use crate::pipeline::ActionTypeId;
use crate::pipeline::action_types::ActionType;

#[derive(sqlx::FromRow)]
pub struct ActionTypeRow {
    pub definition: sqlx::types::Json<ActionType>,
    pub declaration: Option<Value>,
    pub deleted: bool,
}

/// Whether a live (not deleted) custom action type exists in this account.
pub async fn custom_exists(
    conn: &mut PgConnection,
    account_id: &str,
    category: &str,
    provider: &str,
    version: &str,
) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as(
        "select 1 from action_type \
         where account_id = $1 and owner = 'Custom' and category = $2 and provider = $3 and version = $4 and deleted_at is null",
    )
    .bind(account_id)
    .bind(category)
    .bind(provider)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// One type, deleted or not.
pub async fn get(conn: &mut PgConnection, account_id: &str, id: &ActionTypeId) -> Result<Option<ActionTypeRow>, sqlx::Error> {
    sqlx::query_as(
        "select definition, declaration, deleted_at is not null as deleted from action_type \
         where account_id = $1 and owner = $2 and category = $3 and provider = $4 and version = $5",
    )
    .bind(account_id)
    .bind(&id.owner)
    .bind(&id.category)
    .bind(&id.provider)
    .bind(&id.version)
    .fetch_optional(conn)
    .await
}

/// The live types of the account; `include_deleted` also returns deleted
/// ones (a stored pipeline may still reference them, e.g. to mask secrets).
pub async fn list(conn: &mut PgConnection, account_id: &str, include_deleted: bool) -> Result<Vec<ActionType>, sqlx::Error> {
    let rows: Vec<(sqlx::types::Json<ActionType>,)> = sqlx::query_as(
        "select definition from action_type where account_id = $1 and ($2 or deleted_at is null) \
         order by owner, category, provider, version",
    )
    .bind(account_id)
    .bind(include_deleted)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(d,)| d.0).collect())
}

pub async fn count_live_custom(conn: &mut PgConnection, account_id: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from action_type where account_id = $1 and owner = 'Custom' and deleted_at is null")
        .bind(account_id)
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// Inserts, or revives/overwrites an existing row of the same id.
pub async fn upsert(
    conn: &mut PgConnection,
    account_id: &str,
    definition: &ActionType,
    declaration: Option<&Value>,
) -> Result<(), sqlx::Error> {
    let id = &definition.id;
    sqlx::query(
        "insert into action_type (account_id, owner, category, provider, version, definition, declaration) \
         values ($1, $2, $3, $4, $5, $6, $7) \
         on conflict (account_id, owner, category, provider, version) do update \
         set definition = excluded.definition, declaration = excluded.declaration, deleted_at = null, updated_at = now()",
    )
    .bind(account_id)
    .bind(&id.owner)
    .bind(&id.category)
    .bind(&id.provider)
    .bind(&id.version)
    .bind(sqlx::types::Json(definition))
    .bind(declaration)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a custom type deleted; `false` when there was no live one.
pub async fn mark_deleted(conn: &mut PgConnection, account_id: &str, id: &ActionTypeId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update action_type set deleted_at = now() \
         where account_id = $1 and owner = $2 and category = $3 and provider = $4 and version = $5 and deleted_at is null",
    )
    .bind(account_id)
    .bind(&id.owner)
    .bind(&id.category)
    .bind(&id.provider)
    .bind(&id.version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}
