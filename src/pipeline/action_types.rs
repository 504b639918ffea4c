//! Action types: the built-in catalogue (owners AWS and ThirdParty) and the
//! `ActionType` shape shared with custom types.
//!
//! Built-ins carry the configuration properties and artifact limits of the
//! AWS User Guide (DIGEST §5.6–5.7), so a pipeline using them is validated as
//! AWS would validate it, even though this server only runs custom actions
//! and manual approvals itself.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ActionTypeId;

/// The mask shown instead of a secret configuration value.
pub const SECRET_MASK: &str = "****";

/// The `ActionType` shape of the service model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionType {
    pub id: ActionTypeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<ActionTypeSettings>,
    #[serde(default)]
    pub action_configuration_properties: Vec<ActionConfigurationProperty>,
    pub input_artifact_details: ArtifactDetails,
    pub output_artifact_details: ArtifactDetails,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionTypeSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub third_party_configuration_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_url_template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_url_template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_url_template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionConfigurationProperty {
    pub name: String,
    pub required: bool,
    pub key: bool,
    pub secret: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub queryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactDetails {
    pub minimum_count: i32,
    pub maximum_count: i32,
}

impl ActionType {
    pub fn property(&self, name: &str) -> Option<&ActionConfigurationProperty> {
        self.action_configuration_properties.iter().find(|p| p.name == name)
    }

    pub fn is_secret(&self, key: &str) -> bool {
        self.property(key).is_some_and(|p| p.secret)
    }

    pub fn queryable_property(&self) -> Option<&ActionConfigurationProperty> {
        self.action_configuration_properties.iter().find(|p| p.queryable)
    }

    /// The 2021 integrator-model view (`ActionTypeDeclaration`) of this type.
    pub fn declaration(&self) -> Value {
        let s = self.settings.clone().unwrap_or_default();
        let mut urls = serde_json::Map::new();
        for (k, v) in [
            ("configurationUrl", s.third_party_configuration_url),
            ("entityUrlTemplate", s.entity_url_template),
            ("executionUrlTemplate", s.execution_url_template),
            ("revisionUrlTemplate", s.revision_url_template),
        ] {
            if let Some(v) = v {
                urls.insert(k.into(), Value::String(v));
            }
        }
        let properties: Vec<Value> = self
            .action_configuration_properties
            .iter()
            .map(|p| {
                let mut v = json!({"name": p.name, "optional": !p.required, "key": p.key, "noEcho": p.secret, "queryable": p.queryable});
                if let Some(d) = &p.description {
                    v["description"] = Value::String(d.clone());
                }
                v
            })
            .collect();
        let mut declaration = json!({
            "id": self.id,
            "executor": {"type": "JobWorker", "configuration": {"jobWorkerExecutorConfiguration": {}}},
            "inputArtifactDetails": self.input_artifact_details,
            "outputArtifactDetails": self.output_artifact_details,
            "properties": properties,
        });
        if !urls.is_empty() {
            declaration["urls"] = Value::Object(urls);
        }
        declaration
    }
}

/// (name, required, key, secret) of a built-in property.
type Prop = (&'static str, bool, bool, bool);

fn builtin(owner: &str, category: &str, provider: &str, input: (i32, i32), output: (i32, i32), props: &[Prop]) -> ActionType {
    ActionType {
        id: ActionTypeId { category: category.into(), owner: owner.into(), provider: provider.into(), version: "1".into() },
        settings: None,
        action_configuration_properties: props
            .iter()
            .map(|&(name, required, key, secret)| ActionConfigurationProperty {
                name: name.into(),
                required,
                key,
                secret,
                queryable: false,
                description: None,
                kind: None,
            })
            .collect(),
        input_artifact_details: ArtifactDetails { minimum_count: input.0, maximum_count: input.1 },
        output_artifact_details: ArtifactDetails { minimum_count: output.0, maximum_count: output.1 },
    }
}

/// Every built-in action type, in a stable order.
#[rustfmt::skip] // a table: one built-in type per entry reads best as written
pub fn catalogue() -> &'static [ActionType] {
    use std::sync::OnceLock;
    static CATALOGUE: OnceLock<Vec<ActionType>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        const OPT: bool = false;
        const REQ: bool = true;
        let codebuild: &[Prop] = &[
            ("ProjectName", REQ, true, false),
            ("PrimarySource", OPT, false, false),
            ("BatchEnabled", OPT, false, false),
            ("CombineArtifacts", OPT, false, false),
            ("EnvironmentVariables", OPT, false, false),
        ];
        vec![
            builtin("AWS", "Source", "S3", (0, 0), (1, 1), &[
                ("S3Bucket", REQ, true, false),
                ("S3ObjectKey", REQ, true, false),
                ("PollForSourceChanges", OPT, false, false),
                ("AllowOverrideForS3ObjectKey", OPT, false, false),
            ]),
            builtin("AWS", "Source", "CodeCommit", (0, 0), (1, 1), &[
                ("RepositoryName", REQ, true, false),
                ("BranchName", REQ, true, false),
                ("PollForSourceChanges", OPT, false, false),
                ("OutputArtifactFormat", OPT, false, false),
            ]),
            builtin("AWS", "Source", "ECR", (0, 0), (1, 1), &[("RepositoryName", REQ, true, false), ("ImageTag", OPT, false, false)]),
            builtin("AWS", "Source", "CodeStarSourceConnection", (0, 0), (1, 1), &[
                ("ConnectionArn", REQ, true, false),
                ("FullRepositoryId", REQ, true, false),
                ("BranchName", REQ, true, false),
                ("OutputArtifactFormat", OPT, false, false),
                ("DetectChanges", OPT, false, false),
            ]),
            builtin("ThirdParty", "Source", "GitHub", (0, 0), (1, 1), &[
                ("Owner", REQ, true, false),
                ("Repo", REQ, true, false),
                ("Branch", REQ, true, false),
                ("OAuthToken", REQ, false, true),
                ("PollForSourceChanges", OPT, false, false),
            ]),
            builtin("AWS", "Build", "CodeBuild", (1, 5), (0, 5), codebuild),
            builtin("AWS", "Test", "CodeBuild", (1, 5), (0, 5), codebuild),
            builtin("AWS", "Deploy", "S3", (1, 1), (0, 0), &[
                ("BucketName", REQ, true, false),
                ("Extract", REQ, false, false),
                ("ObjectKey", OPT, false, false),
                ("KMSEncryptionKeyARN", OPT, false, false),
                ("CannedACL", OPT, false, false),
                ("CacheControl", OPT, false, false),
            ]),
            builtin("AWS", "Deploy", "CodeDeploy", (1, 1), (0, 0), &[
                ("ApplicationName", REQ, true, false),
                ("DeploymentGroupName", REQ, true, false),
            ]),
            builtin("AWS", "Deploy", "CloudFormation", (0, 10), (0, 1), &[
                ("ActionMode", REQ, true, false),
                ("StackName", REQ, true, false),
                ("Capabilities", OPT, false, false),
                ("ChangeSetName", OPT, false, false),
                ("OutputFileName", OPT, false, false),
                ("ParameterOverrides", OPT, false, false),
                ("RoleArn", OPT, false, false),
                ("TemplateConfiguration", OPT, false, false),
                ("TemplatePath", OPT, false, false),
            ]),
            builtin("AWS", "Deploy", "ECS", (1, 1), (0, 0), &[
                ("ClusterName", REQ, true, false),
                ("ServiceName", REQ, true, false),
                ("FileName", OPT, false, false),
                ("DeploymentTimeout", OPT, false, false),
            ]),
            builtin("AWS", "Deploy", "ElasticBeanstalk", (1, 1), (0, 0), &[
                ("ApplicationName", REQ, true, false),
                ("EnvironmentName", REQ, true, false),
            ]),
            builtin("AWS", "Invoke", "Lambda", (0, 5), (0, 5), &[
                ("FunctionName", REQ, true, false),
                ("UserParameters", OPT, false, false),
            ]),
            builtin("AWS", "Approval", "Manual", (0, 0), (0, 0), &[
                ("NotificationArn", OPT, false, false),
                ("ExternalEntityLink", OPT, false, false),
                ("CustomData", OPT, false, false),
            ]),
        ]
    })
}

pub fn find_builtin(id: &ActionTypeId) -> Option<&'static ActionType> {
    catalogue().iter().find(|t| &t.id == id)
}

/// Whether this server runs actions of this type itself or hands them to
/// workers; everything else fails its action with a clear message.
pub fn is_manual_approval(id: &ActionTypeId) -> bool {
    id.owner == "AWS" && id.category == "Approval" && id.provider == "Manual"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_unique_ids_and_sane_limits() {
        let mut ids: Vec<&ActionTypeId> = catalogue().iter().map(|t| &t.id).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
        for t in catalogue() {
            assert!(t.input_artifact_details.minimum_count <= t.input_artifact_details.maximum_count, "{}", t.id);
            assert!(t.output_artifact_details.minimum_count <= t.output_artifact_details.maximum_count, "{}", t.id);
            let sources = t.id.category == "Source";
            assert_eq!(sources, t.input_artifact_details.maximum_count == 0 && t.output_artifact_details.minimum_count == 1, "{}", t.id);
        }
    }

    #[test]
    fn github_oauth_token_is_secret() {
        let gh = catalogue().iter().find(|t| t.id.provider == "GitHub").unwrap();
        assert!(gh.is_secret("OAuthToken"));
        assert!(!gh.is_secret("Branch"));
    }
}
