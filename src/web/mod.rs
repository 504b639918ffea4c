//! Plain HTTP endpoints that are not the AWS JSON protocol (which lives in
//! [`crate::protocol`]): what third parties such as GitHub call.

pub mod rate_limit;
pub mod webhooks;
