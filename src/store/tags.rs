//! Tags of pipelines, custom action types and webhooks, keyed by
//! (account, canonical resource ARN, key).
//!
//! Writers serialise per resource with [`lock_resource`], so the 50-tag
//! quota holds under concurrent TagResource calls and a tag write cannot
//! slip in after the resource's deletion removed its tags.

use sqlx::PgConnection;

/// Namespaces our advisory locks away from other users of the same keys
/// (the two-key form never collides with the one-key form sqlx's migrator uses).
const TAG_LOCK_CLASS: i32 = 0x7461_6773; // "tags"

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct TagRow {
    pub key: String,
    pub value: String,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct ResourceTagRow {
    pub resource_arn: String,
    pub key: String,
    pub value: String,
}

/// Serialises tag writes on one resource until the transaction ends. Must
/// run inside a transaction: in autocommit it would be released at once.
pub async fn lock_resource(conn: &mut PgConnection, account_id: &str, arn: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2 || ' ' || $3))")
        .bind(TAG_LOCK_CLASS)
        .bind(account_id)
        .bind(arn)
        .execute(conn)
        .await?;
    Ok(())
}

/// Tags in key order, after `after`, at most `limit` (all when `None`).
pub async fn list(
    conn: &mut PgConnection,
    account_id: &str,
    arn: &str,
    after: Option<&str>,
    limit: Option<i64>,
) -> Result<Vec<TagRow>, sqlx::Error> {
    sqlx::query_as(
        "select key, value from tag \
         where account_id = $1 and resource_arn = $2 and ($3::text is null or key > $3) \
         order by key limit $4",
    )
    .bind(account_id)
    .bind(arn)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The tags of several resources at once (a page of ListWebhooks), ordered
/// by resource and key.
pub async fn list_many(conn: &mut PgConnection, account_id: &str, arns: &[String]) -> Result<Vec<ResourceTagRow>, sqlx::Error> {
    sqlx::query_as(
        "select resource_arn, key, value from tag \
         where account_id = $1 and resource_arn = any($2) order by resource_arn, key",
    )
    .bind(account_id)
    .bind(arns)
    .fetch_all(conn)
    .await
}

/// How many tags the resource has besides `keys`: with `keys.len()` added,
/// the count after an upsert of `keys`.
pub async fn count_other_keys(conn: &mut PgConnection, account_id: &str, arn: &str, keys: &[String]) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from tag where account_id = $1 and resource_arn = $2 and key <> all($3)")
        .bind(account_id)
        .bind(arn)
        .bind(keys)
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// Adds the tags, overwriting the values of keys already present. `keys`
/// and `values` are parallel and `keys` has no duplicates.
pub async fn upsert(conn: &mut PgConnection, account_id: &str, arn: &str, keys: &[String], values: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into tag (account_id, resource_arn, key, value) \
         select $1, $2, k, v from unnest($3::text[], $4::text[]) as t(k, v) \
         on conflict (account_id, resource_arn, key) do update set value = excluded.value",
    )
    .bind(account_id)
    .bind(arn)
    .bind(keys)
    .bind(values)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_keys(conn: &mut PgConnection, account_id: &str, arn: &str, keys: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("delete from tag where account_id = $1 and resource_arn = $2 and key = any($3)")
        .bind(account_id)
        .bind(arn)
        .bind(keys)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_all(conn: &mut PgConnection, account_id: &str, arn: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from tag where account_id = $1 and resource_arn = $2").bind(account_id).bind(arn).execute(conn).await?;
    Ok(())
}
