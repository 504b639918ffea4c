//! The one integration-test binary: the real server over HTTP, a real
//! PostgreSQL, and the official `aws-sdk-codepipeline` client.

mod action_types;
mod admin;
mod auth;
mod db;
mod executions;
mod helpers;
mod isolation;
mod jobs;
mod pipelines;
mod protocol;
mod structure;
mod tags;
mod third_party;
mod webhook_delivery;
mod webhooks;
