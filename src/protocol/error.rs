//! The one error type every operation returns, and its wire form.
//!
//! AWS JSON 1.1 errors are `{"__type": "<Shape>", "message": "..."}` with the
//! same shape name in `X-Amzn-Errortype`: botocore reads `__type`, the Smithy
//! SDKs read the header first (DIGEST §6.3). Every modeled exception is HTTP
//! 400; only `Internal` is 500, and its detail is logged, never sent.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

macro_rules! error_codes {
    ($($variant:ident),* $(,)?) => {
        /// Every `__type` this server can answer with: the service model's
        /// exception shapes plus the AWS-wide protocol errors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => stringify!($variant),)* }
            }
        }
    };
}

error_codes! {
    // Protocol and authentication errors shared by all AWS JSON services.
    UnknownOperationException,
    SerializationException,
    MissingAuthenticationTokenException,
    IncompleteSignatureException,
    InvalidSignatureException,
    UnrecognizedClientException,
    RequestEntityTooLargeException,
    ThrottlingException,
    RequestTimeoutException,
    InternalFailure,
    // The service model's exception shapes.
    ActionExecutionNotFoundException,
    ActionNotFoundException,
    ActionTypeAlreadyExistsException,
    ActionTypeNotFoundException,
    ApprovalAlreadyCompletedException,
    ConcurrentModificationException,
    ConcurrentPipelineExecutionsLimitExceededException,
    ConditionNotOverridableException,
    ConflictException,
    DuplicatedStopRequestException,
    InvalidActionDeclarationException,
    InvalidApprovalTokenException,
    InvalidArnException,
    InvalidBlockerDeclarationException,
    InvalidClientTokenException,
    InvalidJobException,
    InvalidJobStateException,
    InvalidNextTokenException,
    InvalidNonceException,
    InvalidStageDeclarationException,
    InvalidStructureException,
    InvalidTagsException,
    InvalidWebhookAuthenticationParametersException,
    InvalidWebhookFilterPatternException,
    JobNotFoundException,
    LimitExceededException,
    NotLatestPipelineExecutionException,
    OutputVariablesSizeExceededException,
    PipelineExecutionNotFoundException,
    PipelineExecutionNotStoppableException,
    PipelineExecutionOutdatedException,
    PipelineNameInUseException,
    PipelineNotFoundException,
    PipelineVersionNotFoundException,
    RequestFailedException,
    ResourceNotFoundException,
    StageNotFoundException,
    StageNotRetryableException,
    TooManyTagsException,
    UnableToRollbackStageException,
    ValidationException,
    WebhookNotFoundException,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InternalFailure => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::RequestEntityTooLargeException => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestTimeoutException => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The cause of an internal fault, or of a database that was too busy
    /// to answer: logged by the envelope, never sent.
    pub source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), source: None }
    }

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        ApiError {
            code: ErrorCode::InternalFailure,
            message: "An internal error occurred; see the server log for the request id.".into(),
            source: Some(source.into()),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationException, message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SerializationException, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::database(e)
    }
}

/// PostgreSQL's `query_canceled`: here, a statement that ran into the
/// connection's `statement_timeout` (`store::connect`).
const QUERY_CANCELED: &str = "57014";

impl ApiError {
    /// A failed database call. Running out of connections or of time (a
    /// statement cancelled at the statement timeout, typically stuck behind
    /// a lock) is answered as AWS answers an overloaded or slow service,
    /// with errors the SDKs retry after a back-off; the statement's
    /// transaction was rolled back, so nothing of the request was applied.
    /// Anything else is an internal fault. The cause is logged either way.
    pub fn database<E>(e: E) -> Self
    where
        E: std::borrow::Borrow<sqlx::Error> + Into<anyhow::Error>,
    {
        let (code, message) = match e.borrow() {
            sqlx::Error::PoolTimedOut => (ErrorCode::ThrottlingException, "Rate exceeded"),
            sqlx::Error::Database(d) if d.code().as_deref() == Some(QUERY_CANCELED) => (ErrorCode::RequestTimeoutException, TIMED_OUT),
            _ => return ApiError::internal(e),
        };
        ApiError { code, message: message.into(), source: Some(e.into()) }
    }
}

/// What a request that ran out of time is told.
pub const TIMED_OUT: &str = "The request timed out and was not applied.";

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(e)
    }
}

pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.code.as_str(), "message": self.message });
        let mut response = (self.code.status(), body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(JSON_CONTENT_TYPE));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code.as_str()));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_answered_with_an_error_sdks_retry_and_anything_else_is_internal() {
        let busy = ApiError::database(sqlx::Error::PoolTimedOut);
        assert_eq!(
            (busy.code, busy.code.status(), busy.message.as_str()),
            (ErrorCode::ThrottlingException, StatusCode::BAD_REQUEST, "Rate exceeded")
        );
        assert!(busy.source.is_some(), "the cause is kept for the log");
        let shared = ApiError::database(std::sync::Arc::new(sqlx::Error::PoolTimedOut));
        assert_eq!(shared.code, ErrorCode::ThrottlingException, "as a shared statement's requests get it");
        let fault = ApiError::database(sqlx::Error::RowNotFound);
        assert_eq!((fault.code, fault.code.status()), (ErrorCode::InternalFailure, StatusCode::INTERNAL_SERVER_ERROR));
    }
}
