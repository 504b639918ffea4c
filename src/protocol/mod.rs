//! The AWS JSON 1.1 envelope: the only place that sees HTTP for API calls.
//!
//! `POST /` → operation from `X-Amz-Target` → body (size-limited) → SigV4 →
//! JSON parse → model validation → [`crate::api::dispatch`] → JSON response.
//! Every answer carries `x-amzn-RequestId`; each request gets one span and
//! one log line (request id, operation, account, status, latency), and no
//! secret ever reaches either.

pub mod auth;
pub mod error;
pub mod keys;
pub mod model;
pub mod sigv4;
pub mod target;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument;

use crate::App;
use crate::api::{self, Cx};
use error::{ApiError, ErrorCode, JSON_CONTENT_TYPE};
use target::Operation;

pub async fn handle(State(app): State<Arc<App>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        operation = tracing::field::Empty,
        account = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = async {
        let work = process(&app, &method, &uri, &headers, body);
        match tokio::time::timeout(app.config.request_timeout, work).await {
            Ok(result) => result,
            // Dropping the future rolls back its open transaction.
            Err(_) => Err(ApiError::new(ErrorCode::RequestTimeoutException, error::TIMED_OUT)),
        }
    }
    .instrument(span.clone())
    .await;

    let _enter = span.enter();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut response = match result {
        Ok(body) => {
            tracing::info!(status = 200, latency_ms, "ok");
            let mut r = body.into_response();
            r.headers_mut().insert("content-type", HeaderValue::from_static(JSON_CONTENT_TYPE));
            r
        }
        Err(err) => {
            let status = err.code.status().as_u16();
            match &err.source {
                Some(source) if err.code == ErrorCode::InternalFailure => {
                    tracing::error!(status, latency_ms, error = %err.code.as_str(), cause = ?source, "internal error")
                }
                Some(source) => tracing::warn!(status, latency_ms, error = %err.code.as_str(), cause = %source, "database busy"),
                None => tracing::info!(status, latency_ms, error = %err.code.as_str(), "refused"),
            }
            err.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

async fn process(app: &Arc<App>, method: &Method, uri: &Uri, headers: &HeaderMap, body: Body) -> Result<String, ApiError> {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let operation = Operation::from_target(target).ok_or_else(|| {
        let shown: String = target.chars().take(128).collect();
        ApiError::new(ErrorCode::UnknownOperationException, format!("Unknown operation '{shown}'"))
    })?;
    tracing::Span::current().record("operation", operation.name());

    let body = read_body(body, app.config.max_body_bytes).await?;
    let caller = auth::authenticate(app, method, uri, headers, &body).await?;
    tracing::Span::current().record("account", caller.account_id.as_str());

    let input = parse_json(&body)?;
    model::Model::get().validate_input(operation.name(), &input)?;
    let cx = Cx { app: app.clone(), account_id: caller.account_id, access_key_id: caller.access_key_id };
    let output = api::dispatch(cx, operation, input).await?;
    Ok(output.to_string())
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::new(ErrorCode::RequestEntityTooLargeException, format!("Request body exceeds the limit of {limit} bytes")))
}

/// An empty body is `{}` (as botocore treats it); anything else must be JSON.
fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::serialization(format!("The request body is not valid JSON: {e}")))
}
