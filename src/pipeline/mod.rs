//! Pipeline definitions as the server understands them: a typed view of the
//! declaration the caller sent (the JSON itself is stored verbatim so that
//! every member round-trips), the action type catalogue, and the structure
//! rules CreatePipeline/UpdatePipeline enforce.

pub mod action_types;
pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `PipelineDeclaration`, the members the server acts on.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineDeclaration {
    pub name: String,
    pub role_arn: String,
    pub artifact_store: Option<ArtifactStore>,
    pub artifact_stores: Option<BTreeMap<String, ArtifactStore>>,
    pub stages: Vec<StageDeclaration>,
    pub pipeline_type: Option<String>,
    pub execution_mode: Option<String>,
    #[serde(default)]
    pub variables: Vec<PipelineVariableDeclaration>,
    #[serde(default)]
    pub triggers: Vec<Value>,
}

impl PipelineDeclaration {
    pub fn pipeline_type(&self) -> &str {
        self.pipeline_type.as_deref().unwrap_or("V1")
    }

    pub fn execution_mode(&self) -> &str {
        self.execution_mode.as_deref().unwrap_or("SUPERSEDED")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStore {
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub encryption_key: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineVariableDeclaration {
    pub name: String,
    pub default_value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageDeclaration {
    pub name: String,
    pub actions: Vec<ActionDeclaration>,
    #[serde(default)]
    pub blockers: Vec<Value>,
    pub before_entry: Option<Value>,
    pub on_failure: Option<Value>,
    pub on_success: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionDeclaration {
    pub name: String,
    pub action_type_id: ActionTypeId,
    pub run_order: Option<i32>,
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    #[serde(default)]
    pub output_artifacts: Vec<NamedArtifact>,
    #[serde(default)]
    pub input_artifacts: Vec<NamedArtifact>,
    pub region: Option<String>,
    pub namespace: Option<String>,
    pub timeout_in_minutes: Option<i32>,
}

impl ActionDeclaration {
    pub fn run_order(&self) -> i32 {
        self.run_order.unwrap_or(1)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedArtifact {
    pub name: String,
}

/// `ActionTypeId`: owner/category/provider/version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActionTypeId {
    pub category: String,
    pub owner: String,
    pub provider: String,
    pub version: String,
}

impl std::fmt::Display for ActionTypeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ActionType (Category: '{}', Provider: '{}', Owner: '{}', Version: '{}')",
            self.category, self.provider, self.owner, self.version
        )
    }
}
