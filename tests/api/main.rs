//! The one integration-test binary: the real server over HTTP, a real
//! PostgreSQL, and the official `aws-sdk-codepipeline` client.

mod action_types;
mod admin;
mod auth;
mod helpers;
mod isolation;
mod pipelines;
mod protocol;
mod structure;
mod tags;
mod webhook_delivery;
mod webhooks;
