//! Credentials of partner job workers: the clientId/clientToken pairs that
//! PollForThirdPartyJobs names and the other third-party job calls check.
//!
//! A token is `<clientId>.<secret>`: the id part picks the one stored hash
//! to check, so a call costs a single argon2 verification however many
//! clients the account has. Only the argon2id hash of the whole token is
//! stored; the token itself is returned once, by [`create_client`].

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// What `admin create-third-party-client` prints: the only time a client
/// token is ever shown. No `Debug`, so it cannot end up in a log line.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedClient {
    pub account_id: String,
    pub client_id: Uuid,
    pub client_token: String,
}

#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ClientSummary {
    pub client_id: Uuid,
    pub account_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("account {0} does not exist")]
    NoSuchAccount(String),
    #[error("third-party client {0} does not exist")]
    NoSuchClient(Uuid),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane): a few tens
/// of milliseconds per verification with optimised code.
pub fn hash_token(token: &str) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    Argon2::default().hash_password(token.as_bytes(), &salt).expect("argon2 with default parameters cannot fail").to_string()
}

/// Whether `token` matches a stored PHC hash (parameters come from the hash).
pub fn verify_token(token: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(token.as_bytes(), &h).is_ok())
}

/// The client a token claims to belong to; `None` when it is not shaped as
/// one of ours (then no hash needs checking).
pub fn client_id_of(token: &str) -> Option<Uuid> {
    let (id, secret) = token.split_once('.')?;
    if secret.is_empty() {
        return None;
    }
    Uuid::try_parse(id).ok()
}

pub async fn create_client(conn: &mut PgConnection, account_id: &str) -> Result<IssuedClient, ClientError> {
    let client_id = Uuid::new_v4();
    let secret: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    let client_token = format!("{}.{secret}", client_id.simple());
    let hash = hash_token(&client_token);
    let inserted = sqlx::query(
        "insert into third_party_client (client_id, account_id, token_hash) \
         select $1, account_id, $3 from account where account_id = $2",
    )
    .bind(client_id)
    .bind(account_id)
    .bind(hash)
    .execute(conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ClientError::NoSuchAccount(account_id.to_owned()));
    }
    Ok(IssuedClient { account_id: account_id.to_owned(), client_id, client_token })
}

pub async fn delete_client(conn: &mut PgConnection, client_id: Uuid) -> Result<(), ClientError> {
    let deleted = sqlx::query("delete from third_party_client where client_id = $1").bind(client_id).execute(conn).await?;
    if deleted.rows_affected() == 0 {
        return Err(ClientError::NoSuchClient(client_id));
    }
    Ok(())
}

/// Clients of one account, or of every account, oldest first.
pub async fn list_clients(conn: &mut PgConnection, account_id: Option<&str>) -> Result<Vec<ClientSummary>, sqlx::Error> {
    sqlx::query_as(
        "select client_id, account_id, created_at from third_party_client \
         where $1::text is null or account_id = $1 order by account_id, created_at, client_id",
    )
    .bind(account_id)
    .fetch_all(conn)
    .await
}

/// The stored hash of one of the account's clients.
pub async fn token_hash(conn: &mut PgConnection, account_id: &str, client_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("select token_hash from third_party_client where account_id = $1 and client_id = $2")
        .bind(account_id)
        .bind(client_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_their_own_hash_only() {
        let hash = hash_token("0123.secret");
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("secret"));
        assert!(verify_token("0123.secret", &hash));
        assert!(!verify_token("0123.secreT", &hash));
        assert!(!verify_token("0123.secret", "not a hash"));
    }

    #[test]
    fn the_client_id_is_read_from_the_token() {
        let id = Uuid::new_v4();
        assert_eq!(client_id_of(&format!("{}.abc", id.simple())), Some(id));
        assert_eq!(client_id_of(&format!("{id}.abc")), Some(id));
        assert_eq!(client_id_of(&format!("{}.", id.simple())), None);
        assert_eq!(client_id_of("no-dot"), None);
        assert_eq!(client_id_of("x.abc"), None);
    }
}
