//! CreateCustomActionType, DeleteCustomActionType, ListActionTypes,
//! GetActionType, UpdateActionType.
//!
//! Custom types (owner Custom) belong to one account and are never visible to
//! another. The integrator model (GetActionType/UpdateActionType) addresses
//! owners AWS and ThirdParty only: AWS types are the built-in catalogue and
//! cannot be changed; an account registers its own ThirdParty types with
//! UpdateActionType, since there is no partner onboarding on a self-hosted
//! server.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;

use super::tags::{self, Resource, ResourceArn, Tag};
use super::{Cx, page_token};
use crate::pipeline::ActionTypeId;
use crate::pipeline::action_types::{self, ActionConfigurationProperty, ActionType, ActionTypeSettings, ArtifactDetails};
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::action_types as store;

/// Quota: custom action types per account (DIGEST §5.1).
pub const MAX_CUSTOM_ACTION_TYPES: i64 = 50;
const LIST_PAGE: usize = 100;

/// Every type the account may use in a pipeline: built-ins plus its own live
/// types; with `include_deleted`, also its deleted ones.
pub async fn types_for_account(
    conn: &mut PgConnection,
    account_id: &str,
    include_deleted: bool,
) -> Result<HashMap<ActionTypeId, ActionType>, ApiError> {
    let mut types: HashMap<ActionTypeId, ActionType> = action_types::catalogue().iter().map(|t| (t.id.clone(), t.clone())).collect();
    for t in store::list(conn, account_id, include_deleted).await? {
        types.insert(t.id.clone(), t);
    }
    Ok(types)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCustomActionTypeInput {
    category: String,
    provider: String,
    version: String,
    settings: Option<ActionTypeSettings>,
    #[serde(default)]
    configuration_properties: Vec<ActionConfigurationProperty>,
    input_artifact_details: ArtifactDetails,
    output_artifact_details: ArtifactDetails,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCustomActionTypeOutput {
    action_type: ActionType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<Tag>,
}

fn validation(msg: String) -> ApiError {
    ApiError::validation(msg)
}

/// The rules of the model's `configurationProperties` doc: unique names, at
/// most one queryable property, which is required and not secret; URL
/// templates reference only required, non-secret properties; artifact
/// minimums do not exceed maximums.
fn check_definition(t: &ActionType) -> Result<(), ApiError> {
    let mut names = HashSet::new();
    for p in &t.action_configuration_properties {
        if !names.insert(p.name.as_str()) {
            return Err(validation(format!("Configuration property '{}' is declared more than once", p.name)));
        }
        if p.queryable && (!p.required || p.secret) {
            return Err(validation(format!("Queryable configuration property '{}' must be required and not secret", p.name)));
        }
    }
    if t.action_configuration_properties.iter().filter(|p| p.queryable).count() > 1 {
        return Err(validation("An action type may have at most one queryable configuration property".into()));
    }
    for (what, d) in [("inputArtifactDetails", t.input_artifact_details), ("outputArtifactDetails", t.output_artifact_details)] {
        if d.minimum_count > d.maximum_count {
            return Err(validation(format!("{what}: minimumCount {} exceeds maximumCount {}", d.minimum_count, d.maximum_count)));
        }
    }
    if let Some(s) = &t.settings {
        for template in [&s.entity_url_template, &s.execution_url_template, &s.revision_url_template, &s.third_party_configuration_url]
            .into_iter()
            .flatten()
        {
            for name in config_references(template) {
                let ok = t.property(name).is_some_and(|p| p.required && !p.secret);
                if !ok {
                    return Err(validation(format!(
                        "URL template '{template}' references {{Config:{name}}}, which is not a required, non-secret configuration property"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The `<name>`s of `{Config:<name>}` placeholders.
fn config_references(template: &str) -> Vec<&str> {
    template.match_indices("{Config:").filter_map(|(i, m)| template[i + m.len()..].split_once('}').map(|(name, _)| name)).collect()
}

fn already_exists(id: &ActionTypeId) -> ApiError {
    ApiError::new(
        ErrorCode::ActionTypeAlreadyExistsException,
        format!("{id} already exists with a different definition; use a new version"),
    )
}

/// Errors: ValidationException, LimitExceededException, ActionTypeAlreadyExistsException.
pub async fn create_custom_action_type(cx: Cx, input: CreateCustomActionTypeInput) -> Result<CreateCustomActionTypeOutput, ApiError> {
    let action_type = ActionType {
        id: ActionTypeId { category: input.category, owner: "Custom".into(), provider: input.provider, version: input.version },
        settings: input.settings,
        action_configuration_properties: input.configuration_properties,
        input_artifact_details: input.input_artifact_details,
        output_artifact_details: input.output_artifact_details,
    };
    check_definition(&action_type)?;
    tags::validate_tags(&input.tags)?;
    let mut tx = cx.db().begin().await?;
    lock_account(&mut tx, &cx.account_id, "action_type").await?;
    match store::get(&mut tx, &cx.account_id, &action_type.id).await? {
        // Creating the same definition again is harmless (and revives a
        // deleted type); a different definition needs a new version.
        Some(existing) if existing.definition.0 != action_type => return Err(already_exists(&action_type.id)),
        Some(existing) if !existing.deleted => {}
        _ => {
            if store::count_live_custom(&mut tx, &cx.account_id).await? >= MAX_CUSTOM_ACTION_TYPES {
                return Err(ApiError::new(
                    ErrorCode::LimitExceededException,
                    format!("The account already has {MAX_CUSTOM_ACTION_TYPES} custom action types, the limit"),
                ));
            }
            store::upsert(&mut tx, &cx.account_id, &action_type, None).await?;
        }
    }
    tags::add_tags(&mut tx, &cx.account_id, &type_arn(&cx, &action_type.id), &input.tags).await?;
    tx.commit().await?;
    Ok(CreateCustomActionTypeOutput { action_type, tags: input.tags })
}

fn type_arn(cx: &Cx, id: &ActionTypeId) -> String {
    let resource = Resource::ActionType {
        owner: id.owner.clone(),
        category: id.category.clone(),
        provider: id.provider.clone(),
        version: id.version.clone(),
    };
    ResourceArn::of(cx, resource).to_string()
}

/// Serialises quota checks of one account and family across replicas.
pub async fn lock_account(conn: &mut PgConnection, account_id: &str, family: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtext($1), hashtext($2))").bind(account_id).bind(family).execute(conn).await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteCustomActionTypeInput {
    category: String,
    provider: String,
    version: String,
}

/// Deleting a type that does not exist (or is already deleted) succeeds.
pub async fn delete_custom_action_type(cx: Cx, input: DeleteCustomActionTypeInput) -> Result<super::Empty, ApiError> {
    let id = ActionTypeId { category: input.category, owner: "Custom".into(), provider: input.provider, version: input.version };
    let mut tx = cx.db().begin().await?;
    if store::mark_deleted(&mut tx, &cx.account_id, &id).await? {
        tags::delete_tags_of(&mut tx, &cx.account_id, &type_arn(&cx, &id)).await?;
        crate::engine::fail_queued_of_deleted(&mut tx, &cx.app, &cx.account_id, &id).await?;
    }
    tx.commit().await?;
    Ok(super::Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListActionTypesInput {
    action_owner_filter: Option<String>,
    next_token: Option<String>,
    region_filter: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListActionTypesOutput {
    action_types: Vec<ActionType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn sort_key(id: &ActionTypeId) -> String {
    format!("{}/{}/{}/{}", id.owner, id.category, id.provider, id.version)
}

/// Errors: ValidationException, InvalidNextTokenException.
pub async fn list_action_types(cx: Cx, input: ListActionTypesInput) -> Result<ListActionTypesOutput, ApiError> {
    let after = page_token::decode(input.next_token.as_deref())?;
    if input.region_filter.as_deref().is_some_and(|r| r != cx.region()) {
        return Ok(ListActionTypesOutput { action_types: vec![], next_token: None });
    }
    let mut conn = cx.db().acquire().await?;
    let mut types: Vec<ActionType> = types_for_account(&mut conn, &cx.account_id, false)
        .await?
        .into_values()
        .filter(|t| input.action_owner_filter.as_ref().is_none_or(|o| &t.id.owner == o))
        .filter(|t| after.as_ref().is_none_or(|a| sort_key(&t.id) > *a))
        .collect();
    types.sort_by_key(|t| sort_key(&t.id));
    let next_token = (types.len() > LIST_PAGE).then(|| page_token::encode(&sort_key(&types[LIST_PAGE - 1].id)));
    types.truncate(LIST_PAGE);
    Ok(ListActionTypesOutput { action_types: types, next_token })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetActionTypeInput {
    category: String,
    owner: String,
    provider: String,
    version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetActionTypeOutput {
    action_type: Value,
}

fn not_found(id: &ActionTypeId) -> ApiError {
    ApiError::new(ErrorCode::ActionTypeNotFoundException, format!("{id} was not found"))
}

/// Errors: ActionTypeNotFoundException, ValidationException.
pub async fn get_action_type(cx: Cx, input: GetActionTypeInput) -> Result<GetActionTypeOutput, ApiError> {
    let id = ActionTypeId { category: input.category, owner: input.owner, provider: input.provider, version: input.version };
    if let Some(t) = action_types::find_builtin(&id) {
        return Ok(GetActionTypeOutput { action_type: t.declaration() });
    }
    let mut conn = cx.db().acquire().await?;
    match store::get(&mut conn, &cx.account_id, &id).await? {
        Some(row) if !row.deleted => {
            Ok(GetActionTypeOutput { action_type: row.declaration.unwrap_or_else(|| row.definition.0.declaration()) })
        }
        _ => Err(not_found(&id)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateActionTypeInput {
    action_type: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeclarationView {
    id: ActionTypeId,
    input_artifact_details: ArtifactDetails,
    output_artifact_details: ArtifactDetails,
    #[serde(default)]
    properties: Vec<DeclaredProperty>,
    urls: Option<DeclaredUrls>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeclaredProperty {
    name: String,
    optional: bool,
    key: bool,
    no_echo: bool,
    #[serde(default)]
    queryable: bool,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeclaredUrls {
    configuration_url: Option<String>,
    entity_url_template: Option<String>,
    execution_url_template: Option<String>,
    revision_url_template: Option<String>,
}

/// Errors: RequestFailedException (built-in types), ValidationException.
pub async fn update_action_type(cx: Cx, input: UpdateActionTypeInput) -> Result<super::Empty, ApiError> {
    let view: DeclarationView = serde_json::from_value(input.action_type.clone()).map_err(|e| ApiError::serialization(e.to_string()))?;
    if view.id.owner == "AWS" || action_types::find_builtin(&view.id).is_some() {
        return Err(ApiError::new(ErrorCode::RequestFailedException, format!("{} is built in and cannot be updated", view.id)));
    }
    let definition = ActionType {
        id: view.id,
        settings: view.urls.map(|u| ActionTypeSettings {
            third_party_configuration_url: u.configuration_url,
            entity_url_template: u.entity_url_template,
            execution_url_template: u.execution_url_template,
            revision_url_template: u.revision_url_template,
        }),
        action_configuration_properties: view
            .properties
            .into_iter()
            .map(|p| ActionConfigurationProperty {
                name: p.name,
                required: !p.optional,
                key: p.key,
                secret: p.no_echo,
                queryable: p.queryable,
                description: p.description,
                kind: None,
            })
            .collect(),
        input_artifact_details: view.input_artifact_details,
        output_artifact_details: view.output_artifact_details,
    };
    check_definition(&definition)?;
    let mut tx = cx.db().begin().await?;
    store::upsert(&mut tx, &cx.account_id, &definition, Some(&input.action_type)).await?;
    tx.commit().await?;
    Ok(super::Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_references_are_found() {
        assert_eq!(config_references("https://ci/{Config:Project}/x/{ExternalExecutionId}/{Config:Job}"), vec!["Project", "Job"]);
        assert!(config_references("https://ci/").is_empty());
    }
}
