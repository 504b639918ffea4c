//! Input validation driven by the official service model.
//!
//! `model/service-2.json` is botocore's `codepipeline/2015-07-09` model,
//! embedded verbatim (pretty-printed). Every request body is walked against
//! its operation's input shape before any handler runs, so every `required`,
//! `min`/`max`, `pattern` and `enum` in the model is enforced in one place and
//! cannot drift from the SDKs. Type mismatches are `SerializationException`
//! (the body cannot be read as the shape); constraint violations are collected
//! into one `ValidationException` worded as AWS words them:
//! `1 validation error detected: Value 'a b' at 'pipeline.name' failed to
//! satisfy constraint: Member must satisfy regular expression pattern: ...`.
//! List elements are addressed `stages.1.member` (1-based), as AWS does.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;

const MODEL_JSON: &str = include_str!("model/service-2.json");

/// Strings whose content must never be echoed in an error message even though
/// the model does not mark them `sensitive`: action configuration values can
/// hold secrets, and tokens are credentials.
const NEVER_ECHO: &[&str] =
    &["ActionConfigurationValue", "ClientToken", "ContinuationToken", "Nonce", "WebhookAuthConfigurationSecretToken", "ApprovalToken"];

#[derive(Deserialize)]
struct RawModel {
    operations: BTreeMap<String, RawOperation>,
    shapes: HashMap<String, RawShape>,
}

#[derive(Deserialize)]
struct RawOperation {
    input: Option<ShapeRef>,
}

#[derive(Deserialize)]
struct ShapeRef {
    shape: String,
}

#[derive(Deserialize)]
struct RawShape {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    members: BTreeMap<String, ShapeRef>,
    #[serde(default)]
    required: Vec<String>,
    member: Option<ShapeRef>,
    key: Option<ShapeRef>,
    value: Option<ShapeRef>,
    min: Option<f64>,
    max: Option<f64>,
    pattern: Option<String>,
    #[serde(rename = "enum")]
    enum_values: Option<Vec<String>>,
    #[serde(default)]
    sensitive: bool,
}

pub struct Model {
    operations: BTreeMap<String, Option<String>>,
    shapes: HashMap<String, RawShape>,
    patterns: HashMap<String, Regex>,
}

impl Model {
    pub fn get() -> &'static Model {
        static MODEL: OnceLock<Model> = OnceLock::new();
        MODEL.get_or_init(|| {
            let raw: RawModel = serde_json::from_str(MODEL_JSON).expect("embedded service model is valid JSON");
            let patterns = raw
                .shapes
                .values()
                .filter_map(|s| s.pattern.as_ref())
                .map(|p| {
                    // Model patterns are unanchored but AWS applies them to the
                    // whole value; `(?s)` keeps `.*` from rejecting newlines.
                    let re = Regex::new(&format!("(?s)^(?:{p})$")).expect("model pattern compiles");
                    (p.clone(), re)
                })
                .collect();
            Model {
                operations: raw.operations.into_iter().map(|(k, v)| (k, v.input.map(|r| r.shape))).collect(),
                shapes: raw.shapes,
                patterns,
            }
        })
    }

    pub fn operation_names(&self) -> impl Iterator<Item = &str> {
        self.operations.keys().map(String::as_str)
    }

    /// Validates a request body for `operation`. A body for an operation with
    /// no input shape must still be a JSON object.
    pub fn validate_input(&self, operation: &str, body: &Value) -> Result<(), ApiError> {
        let input = self.operations.get(operation).and_then(|s| s.as_deref());
        let mut walk = Walk { model: self, violations: Vec::new() };
        match input {
            Some(shape) => walk.value(shape, body, "")?,
            None if body.is_object() => {}
            None => return Err(ApiError::serialization("The request body must be a JSON object")),
        }
        if walk.violations.is_empty() {
            return Ok(());
        }
        let n = walk.violations.len();
        let plural = if n == 1 { "" } else { "s" };
        Err(ApiError::validation(format!("{n} validation error{plural} detected: {}", walk.violations.join("; "))))
    }
}

struct Walk<'m> {
    model: &'m Model,
    violations: Vec<String>,
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() { member.to_owned() } else { format!("{path}.{member}") }
}

impl Walk<'_> {
    fn type_error(path: &str, expected: &str, found: &Value) -> ApiError {
        let at = if path.is_empty() { "the request body".to_owned() } else { format!("'{path}'") };
        ApiError::serialization(format!("Expected {expected} at {at} but found {}", kind_of(found)))
    }

    fn value(&mut self, shape_name: &str, v: &Value, path: &str) -> Result<(), ApiError> {
        let shape = &self.model.shapes[shape_name];
        match shape.kind.as_str() {
            "structure" => {
                let obj = v.as_object().ok_or_else(|| Self::type_error(path, "an object", v))?;
                for req in &shape.required {
                    if obj.get(req).is_none_or(Value::is_null) {
                        self.violations
                            .push(format!("Value null at '{}' failed to satisfy constraint: Member must not be null", join(path, req)));
                    }
                }
                for (name, member) in &shape.members {
                    if let Some(mv) = obj.get(name).filter(|mv| !mv.is_null()) {
                        self.value(&member.shape, mv, &join(path, name))?;
                    }
                }
            }
            "list" => {
                let items = v.as_array().ok_or_else(|| Self::type_error(path, "a list", v))?;
                self.length(shape, items.len(), path, None);
                let member = &shape.member.as_ref().expect("list has member").shape;
                for (i, item) in items.iter().enumerate() {
                    if item.is_null() {
                        return Err(Self::type_error(&format!("{path}.{}.member", i + 1), "a value", item));
                    }
                    self.value(member, item, &format!("{path}.{}.member", i + 1))?;
                }
            }
            "map" => {
                let entries = v.as_object().ok_or_else(|| Self::type_error(path, "an object (map)", v))?;
                self.length(shape, entries.len(), path, None);
                let key_shape = &shape.key.as_ref().expect("map has key").shape;
                let value_shape = &shape.value.as_ref().expect("map has value").shape;
                for (k, item) in entries {
                    let before = self.violations.len();
                    self.string(key_shape, k, path);
                    if self.violations.len() > before {
                        let inner: Vec<String> = self.violations.drain(before..).map(constraint_only).collect();
                        self.violations.push(format!(
                            "Value at '{path}' failed to satisfy constraint: Map keys must satisfy constraint: [{}]",
                            inner.join(", ")
                        ));
                    }
                    if item.is_null() {
                        return Err(Self::type_error(&join(path, k), "a value", item));
                    }
                    self.value(value_shape, item, &join(path, k))?;
                }
            }
            "string" => {
                let s = v.as_str().ok_or_else(|| Self::type_error(path, "a string", v))?;
                self.string(shape_name, s, path);
            }
            "integer" | "long" => {
                let n = v.as_i64().ok_or_else(|| Self::type_error(path, "an integer", v))?;
                if let Some(min) = shape.min.filter(|m| (n as f64) < *m) {
                    self.violations.push(format!(
                        "Value '{n}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
                    ));
                }
                if let Some(max) = shape.max.filter(|m| (n as f64) > *m) {
                    self.violations.push(format!(
                        "Value '{n}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {max}"
                    ));
                }
            }
            "boolean" => {
                v.as_bool().ok_or_else(|| Self::type_error(path, "a boolean", v))?;
            }
            "timestamp" => {
                let ok = match v {
                    Value::Number(_) => true,
                    Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                    _ => false,
                };
                if !ok {
                    return Err(Self::type_error(path, "a timestamp (epoch seconds)", v));
                }
            }
            other => return Err(ApiError::internal(anyhow::anyhow!("model shape {shape_name} has unsupported type {other}"))),
        }
        Ok(())
    }

    fn length(&mut self, shape: &RawShape, len: usize, path: &str, shown: Option<&str>) {
        let value = shown.map(|s| format!(" '{s}'")).unwrap_or_default();
        if let Some(min) = shape.min.filter(|m| (len as f64) < *m) {
            self.violations.push(format!(
                "Value{value} at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}"
            ));
        }
        if let Some(max) = shape.max.filter(|m| (len as f64) > *m) {
            self.violations.push(format!(
                "Value{value} at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}"
            ));
        }
    }

    fn string(&mut self, shape_name: &str, s: &str, path: &str) {
        let shape = &self.model.shapes[shape_name];
        let echo = !shape.sensitive && !NEVER_ECHO.contains(&shape_name) && s.chars().count() <= 256;
        let shown = echo.then_some(s);
        let value = shown.map(|s| format!(" '{s}'")).unwrap_or_default();
        self.length(shape, s.chars().count(), path, None);
        // PostgreSQL cannot store it; refused here, such a value would fail
        // the statement that tried, and with it every call sharing that
        // statement (`store::batch`).
        if s.contains('\0') {
            self.violations.push(format!("Value at '{path}' failed to satisfy constraint: Member must not contain the NUL character"));
        }
        if let Some(pattern) = &shape.pattern
            && !self.model.patterns[pattern].is_match(s)
        {
            self.violations.push(format!(
                "Value{value} at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"
            ));
        }
        if let Some(values) = &shape.enum_values
            && !values.iter().any(|e| e == s)
        {
            self.violations.push(format!(
                "Value{value} at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                values.join(", ")
            ));
        }
    }
}

/// "Value 'x' at 'p' failed to satisfy constraint: C" → "C", for nesting a
/// key's violations inside its map's message.
fn constraint_only(violation: String) -> String {
    match violation.split_once("failed to satisfy constraint: ") {
        Some((_, c)) => c.to_owned(),
        None => violation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::ErrorCode;
    use serde_json::json;

    fn check(op: &str, body: Value) -> Result<(), ApiError> {
        Model::get().validate_input(op, &body)
    }

    fn message(op: &str, body: Value) -> (ErrorCode, String) {
        let e = check(op, body).unwrap_err();
        (e.code, e.message)
    }

    #[test]
    fn a_pattern_applies_to_the_whole_string() {
        let (code, msg) = message("GetPipeline", json!({"name": "a b"}));
        assert_eq!(code, ErrorCode::ValidationException);
        assert_eq!(
            msg,
            "1 validation error detected: Value 'a b' at 'name' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [A-Za-z0-9.@\\-_]+"
        );
        assert!(check("GetPipeline", json!({"name": "ok-name_1.x@y"})).is_ok());
    }

    #[test]
    fn missing_required_members_are_named() {
        let (code, msg) = message("GetPipeline", json!({}));
        assert_eq!(code, ErrorCode::ValidationException);
        assert_eq!(msg, "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null");
    }

    #[test]
    fn all_violations_are_reported_together() {
        let (_, msg) = message(
            "DisableStageTransition",
            json!({"pipelineName": "p", "stageName": "s", "transitionType": "Sideways", "reason": "no, thanks"}),
        );
        assert!(msg.starts_with("2 validation errors detected: "), "{msg}");
        assert!(
            msg.contains("at 'transitionType' failed to satisfy constraint: Member must satisfy enum value set: [Inbound, Outbound]"),
            "{msg}"
        );
        assert!(msg.contains("at 'reason' failed to satisfy constraint: Member must satisfy regular expression pattern"), "{msg}");
    }

    #[test]
    fn nested_list_members_use_aws_paths() {
        let body = json!({"pipeline": {"name": "p", "roleArn": "arn:aws:iam::123456789012:role/r", "stages": [
            {"name": "Source", "actions": []},
            {"name": "Build", "actions": [{"name": "b", "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "P", "version": "1"}, "namespace": "bad ns"}]}
        ]}});
        let (_, msg) = message("CreatePipeline", body);
        assert!(msg.contains("at 'pipeline.stages.2.member.actions.1.member.namespace'"), "{msg}");
    }

    #[test]
    fn lengths_and_ranges_are_enforced() {
        let (_, msg) = message("ListPipelines", json!({"maxResults": 0}));
        assert_eq!(
            msg,
            "1 validation error detected: Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        let (_, msg) = message("GetPipeline", json!({"name": "x".repeat(101)}));
        assert!(msg.contains("Member must have length less than or equal to 100"), "{msg}");
    }

    #[test]
    fn nul_characters_are_refused_anywhere() {
        let body = json!({"jobId": "j", "executionDetails": {"summary": "a\0b"}});
        let (code, msg) = message("PutJobSuccessResult", body);
        assert_eq!(code, ErrorCode::ValidationException);
        assert!(
            msg.contains("'executionDetails.summary' failed to satisfy constraint: Member must not contain the NUL character"),
            "{msg}"
        );
        let (_, msg) = message("PutJobSuccessResult", json!({"jobId": "j", "outputVariables": {"k\0": "v"}}));
        assert!(msg.contains("NUL character"), "{msg}");
    }

    #[test]
    fn wrong_types_are_serialization_errors() {
        let (code, msg) = message("ListPipelines", json!({"maxResults": "ten"}));
        assert_eq!(code, ErrorCode::SerializationException);
        assert!(msg.contains("'maxResults'"), "{msg}");
        assert_eq!(message("ListPipelines", json!([])).0, ErrorCode::SerializationException);
        assert_eq!(message("GetPipeline", json!({"name": "p", "version": 1.5})).0, ErrorCode::SerializationException);
    }

    #[test]
    fn secret_values_are_never_echoed() {
        let body = json!({"jobId": "j", "nonce": "n", "clientToken": "x".repeat(300)});
        let (_, msg) = message("AcknowledgeThirdPartyJob", body);
        assert!(!msg.contains("xxxx"), "{msg}");
    }

    #[test]
    fn map_keys_are_checked() {
        let body =
            json!({"actionTypeId": {"category": "Build", "owner": "Custom", "provider": "P", "version": "1"}, "queryParam": {"": "v"}});
        let (_, msg) = message("PollForJobs", body);
        assert!(msg.contains("Map keys must satisfy constraint: [Member must have length greater than or equal to 1]"), "{msg}");
    }

    #[test]
    fn every_model_pattern_compiles() {
        let m = Model::get();
        assert!(m.patterns.len() >= 15);
    }
}
