//! Who is calling: verifies the request's SigV4 signature against the access
//! key's stored secret and yields the caller's account.
//!
//! Error types and wording follow what AWS JSON services answer, so SDKs and
//! users recognise them (e.g. "Signature expired: ... is now earlier than ...").

use std::sync::Arc;

use axum::http::{HeaderMap, Method, Uri};
use chrono::Utc;

use super::error::{ApiError, ErrorCode};
use super::keys::Key;
use super::sigv4::{self, Secret, SigV4Error};
use crate::App;
use crate::store::accounts;

pub const SERVICE: &str = "codepipeline";

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub access_key_id: String,
}

pub async fn authenticate(app: &App, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Caller, ApiError> {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let auth = sigv4::parse_authorization(header).map_err(signature_error)?;
    let access_key_id = auth.credential.access_key_id.clone();
    let key = match app.keys.get(&access_key_id) {
        Some(key) => key,
        None => {
            let read_at = app.keys.epoch();
            let Some((account_id, sealed)) = accounts::find_access_key(&mut *app.db.acquire().await?, &access_key_id).await? else {
                return Err(ApiError::new(
                    ErrorCode::UnrecognizedClientException,
                    "The security token included in the request is invalid.",
                ));
            };
            let secret = app.secrets.open(&sealed, access_key_id.as_bytes())?;
            let secret = String::from_utf8(secret).map_err(|_| ApiError::internal(anyhow::anyhow!("stored secret is not UTF-8")))?;
            let key = Key { account_id, secret: Arc::new(Secret::new(secret)) };
            app.keys.put(&access_key_id, key.clone(), read_at);
            key
        }
    };
    let request = sigv4::Request { method: method.as_str(), path: uri.path(), query: uri.query().unwrap_or(""), headers, body };
    sigv4::verify(&request, &auth, &key.secret, &app.config.region, SERVICE, Utc::now()).map_err(signature_error)?;
    Ok(Caller { account_id: key.account_id, access_key_id })
}

fn signature_error(e: SigV4Error) -> ApiError {
    match e {
        SigV4Error::Missing => ApiError::new(ErrorCode::MissingAuthenticationTokenException, "Missing Authentication Token"),
        SigV4Error::Malformed(m) | SigV4Error::BadDate(m) => ApiError::new(ErrorCode::IncompleteSignatureException, m),
        SigV4Error::Expired { request_time, server_time } => ApiError::new(
            ErrorCode::InvalidSignatureException,
            format!("Signature expired: {request_time} is now earlier or later than {server_time} +/- 15 min."),
        ),
        SigV4Error::ScopeMismatch(m) => ApiError::new(ErrorCode::InvalidSignatureException, m),
        SigV4Error::SignatureMismatch => ApiError::new(
            ErrorCode::InvalidSignatureException,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ),
    }
}
