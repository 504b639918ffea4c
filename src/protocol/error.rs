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
    /// The cause of an internal fault: logged by the envelope, never sent.
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
        ApiError::internal(e)
    }
}

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
