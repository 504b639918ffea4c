//! Accounts (tenants) and their access keys.

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::crypto::SecretBox;

/// What `admin create-account` / `create-access-key` print: the only time a
/// secret access key is ever shown.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKey {
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    pub account_id: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub access_key_ids: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("account id must be exactly 12 digits")]
    BadAccountId,
    #[error("account {0} already exists")]
    AccountExists(String),
    #[error("account {0} does not exist")]
    NoSuchAccount(String),
    #[error("access key {0} does not exist")]
    NoSuchKey(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn random_account_id() -> String {
    // A leading non-zero digit keeps generated ids clear of 000000000000.
    let mut rng = rand::thread_rng();
    format!("{}{:011}", rng.gen_range(1..=9), rng.gen_range(0..100_000_000_000u64))
}

fn random_access_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::thread_rng();
    let tail: String = (0..16).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("MKIA{tail}")
}

fn random_secret() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect()
}

pub async fn create_account(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    name: &str,
    account_id: Option<&str>,
) -> Result<IssuedKey, AccountError> {
    let id = match account_id {
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => id.to_owned(),
        Some(_) => return Err(AccountError::BadAccountId),
        None => random_account_id(),
    };
    let inserted = sqlx::query("insert into account (account_id, name) values ($1, $2) on conflict do nothing")
        .bind(&id)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccountError::AccountExists(id));
    }
    let (access_key_id, secret) = (random_access_key_id(), random_secret());
    insert_key(conn, secrets, &id, &access_key_id, &secret).await?;
    Ok(IssuedKey { account_id: id, access_key_id, secret_access_key: secret })
}

pub async fn create_access_key(conn: &mut PgConnection, secrets: &SecretBox, account_id: &str) -> Result<IssuedKey, AccountError> {
    let exists: Option<(String,)> =
        sqlx::query_as("select account_id from account where account_id = $1").bind(account_id).fetch_optional(&mut *conn).await?;
    if exists.is_none() {
        return Err(AccountError::NoSuchAccount(account_id.to_owned()));
    }
    let (access_key_id, secret) = (random_access_key_id(), random_secret());
    insert_key(conn, secrets, account_id, &access_key_id, &secret).await?;
    Ok(IssuedKey { account_id: account_id.to_owned(), access_key_id, secret_access_key: secret })
}

async fn insert_key(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    account_id: &str,
    access_key_id: &str,
    secret: &str,
) -> Result<(), AccountError> {
    sqlx::query("insert into access_key (access_key_id, account_id, secret_sealed) values ($1, $2, $3)")
        .bind(access_key_id)
        .bind(account_id)
        .bind(secrets.seal(secret.as_bytes(), access_key_id.as_bytes()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Creates the development account and key if they do not exist yet. An
/// existing dev key is left alone, so a changed secret override does not
/// silently rotate credentials that scripts already use.
pub async fn ensure_dev_account(pool: &PgPool, secrets: &SecretBox, access_key_id: &str, secret: &str) -> Result<(), AccountError> {
    let mut tx = pool.begin().await?;
    sqlx::query("insert into account (account_id, name) values ('000000000000', 'default') on conflict do nothing")
        .execute(&mut *tx)
        .await?;
    let sealed = secrets.seal(secret.as_bytes(), access_key_id.as_bytes());
    sqlx::query(
        "insert into access_key (access_key_id, account_id, secret_sealed) values ($1, '000000000000', $2) \
         on conflict (access_key_id) do nothing",
    )
    .bind(access_key_id)
    .bind(sealed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The account and sealed secret behind an access key id.
pub async fn find_access_key(conn: &mut PgConnection, access_key_id: &str) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("select account_id, secret_sealed from access_key where access_key_id = $1")
        .bind(access_key_id)
        .fetch_optional(conn)
        .await
}

pub async fn list_accounts(conn: &mut PgConnection) -> Result<Vec<AccountSummary>, sqlx::Error> {
    sqlx::query_as(
        "select a.account_id, a.name, a.created_at, \
                coalesce(array_agg(k.access_key_id order by k.created_at) filter (where k.access_key_id is not null), '{}') as access_key_ids \
         from account a left join access_key k using (account_id) \
         group by a.account_id order by a.created_at, a.account_id",
    )
    .fetch_all(conn)
    .await
}

pub async fn delete_access_key(conn: &mut PgConnection, access_key_id: &str) -> Result<(), AccountError> {
    let deleted = sqlx::query("delete from access_key where access_key_id = $1").bind(access_key_id).execute(conn).await?;
    if deleted.rows_affected() == 0 {
        return Err(AccountError::NoSuchKey(access_key_id.to_owned()));
    }
    Ok(())
}
