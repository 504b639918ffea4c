//! Custom action types.

use sqlx::PgConnection;

/// Whether a live (not deleted) custom action type exists in this account.
pub async fn custom_exists(
    conn: &mut PgConnection,
    account_id: &str,
    category: &str,
    provider: &str,
    version: &str,
) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as(
        "select 1 from custom_action_type \
         where account_id = $1 and category = $2 and provider = $3 and version = $4 and deleted_at is null",
    )
    .bind(account_id)
    .bind(category)
    .bind(provider)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}
