//! The structure rules of CreatePipeline and UpdatePipeline (DIGEST §5.4–5.6),
//! checked after the service model's member constraints. The exception type
//! says at which level the declaration is wrong — pipeline
//! (`InvalidStructureException`), stage, action or blocker — and the message
//! names the stage, action or artifact.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::action_types::ActionType;
use super::{ActionDeclaration, ActionTypeId, PipelineDeclaration, StageDeclaration};
use crate::protocol::error::{ApiError, ErrorCode};

pub const MAX_STAGES: usize = 50;
pub const MAX_ACTIONS_PER_STAGE: usize = 50;
pub const MAX_ACTIONS_PER_PIPELINE: usize = 500;

fn structure(msg: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidStructureException, msg)
}

fn stage_error(msg: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidStageDeclarationException, msg)
}

fn action_error(msg: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidActionDeclarationException, msg)
}

/// `types` holds every action type the account may use (built-ins and its
/// live custom types); an action whose type is absent is refused.
pub fn validate(p: &PipelineDeclaration, types: &HashMap<ActionTypeId, ActionType>, region: &str) -> Result<(), ApiError> {
    pipeline_level(p)?;
    let mut stage_names = HashSet::new();
    for (i, stage) in p.stages.iter().enumerate() {
        if !stage_names.insert(stage.name.as_str()) {
            return Err(stage_error(format!("Stage name '{}' is used more than once; stage names must be unique", stage.name)));
        }
        stage_level(p, i, stage)?;
        conditions(p, stage)?;
        for action in &stage.actions {
            action_level(stage, action, types)?;
        }
    }
    artifacts_and_namespaces(p)?;
    triggers(p)?;
    artifact_stores(p, region)
}

/// V2 triggers (pipelines-filter.html): each names a CodeStarSourceConnection
/// source action, at most one trigger per action, and its filters combine
/// as AWS allows (push: tags, or branches with optional file paths; pull
/// request: branches with optional file paths).
fn triggers(p: &PipelineDeclaration) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for trigger in &p.triggers {
        let git = &trigger["gitConfiguration"];
        let name = git["sourceActionName"].as_str().unwrap_or_default();
        let action = p.stages.first().and_then(|s| s.actions.iter().find(|a| a.name == name));
        let is_connection =
            action.is_some_and(|a| a.action_type_id.owner == "AWS" && a.action_type_id.provider == "CodeStarSourceConnection");
        if !is_connection {
            return Err(structure(format!(
                "Trigger names source action '{name}', which is not a CodeStarSourceConnection action of the first stage"
            )));
        }
        if !seen.insert(name) {
            return Err(structure(format!("Source action '{name}' has more than one trigger; one trigger per source action is allowed")));
        }
        for push in git["push"].as_array().into_iter().flatten() {
            let (tags, branches, paths) = (!push["tags"].is_null(), !push["branches"].is_null(), !push["filePaths"].is_null());
            if !((tags && !branches && !paths) || (branches && !tags)) {
                return Err(structure(format!(
                    "A push filter of the trigger for '{name}' must filter on tags alone, or on branches with optional file paths"
                )));
            }
        }
        for pull in git["pullRequest"].as_array().into_iter().flatten() {
            if pull["branches"].is_null() {
                return Err(structure(format!("A pull request filter of the trigger for '{name}' must filter on branches")));
            }
        }
    }
    Ok(())
}

fn pipeline_level(p: &PipelineDeclaration) -> Result<(), ApiError> {
    if p.stages.len() < 2 {
        return Err(structure(format!("Pipeline '{}' has {} stage(s); a pipeline must have at least two stages", p.name, p.stages.len())));
    }
    if p.stages.len() > MAX_STAGES {
        return Err(structure(format!("Pipeline '{}' has {} stages; the limit is {MAX_STAGES}", p.name, p.stages.len())));
    }
    let actions: usize = p.stages.iter().map(|s| s.actions.len()).sum();
    if actions > MAX_ACTIONS_PER_PIPELINE {
        return Err(structure(format!("Pipeline '{}' has {actions} actions; the limit is {MAX_ACTIONS_PER_PIPELINE}", p.name)));
    }
    if p.pipeline_type() == "V1" {
        let v2_only = if p.execution_mode() != "SUPERSEDED" {
            Some(format!("Execution mode {}", p.execution_mode()))
        } else if !p.variables.is_empty() {
            Some("Pipeline variables".to_owned())
        } else if !p.triggers.is_empty() {
            Some("Triggers".to_owned())
        } else if p.stages.iter().any(|s| s.before_entry.is_some() || s.on_success.is_some()) {
            Some("Stage conditions".to_owned())
        } else {
            None
        };
        if let Some(feature) = v2_only {
            return Err(structure(format!("{feature} can only be used with V2 pipelines")));
        }
    }
    let mut variables = HashSet::new();
    for v in &p.variables {
        if !variables.insert(v.name.as_str()) {
            return Err(structure(format!("Pipeline variable '{}' is declared more than once", v.name)));
        }
    }
    Ok(())
}

/// A stage's conditions (stage-conditions.html): each hook's results as AWS
/// allows them (entry: FAIL or SKIP; success: ROLLBACK or FAIL; failure:
/// ROLLBACK or RETRY), no rollback in PARALLEL mode (execution-modes.html),
/// and the configuration of the rules this server evaluates.
fn conditions(p: &PipelineDeclaration, stage: &StageDeclaration) -> Result<(), ApiError> {
    let hooks: [(&str, Option<&Value>, &[&str]); 3] = [
        ("beforeEntry", stage.before_entry.as_ref(), &["FAIL", "SKIP"]),
        ("onSuccess", stage.on_success.as_ref(), &["ROLLBACK", "FAIL"]),
        ("onFailure", stage.on_failure.as_ref(), &["ROLLBACK", "RETRY"]),
    ];
    for (hook_name, hook, allowed) in hooks {
        let Some(hook) = hook else { continue };
        let conditions = hook["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
        let results = conditions.iter().map(|c| &c["result"]).chain(std::iter::once(&hook["result"])).filter_map(Value::as_str);
        for result in results {
            if !allowed.contains(&result) {
                return Err(stage_error(format!(
                    "Stage '{}' {hook_name}: result {result} is not allowed there; use {}",
                    stage.name,
                    allowed.join(" or ")
                )));
            }
            if result == "ROLLBACK" && p.execution_mode() == "PARALLEL" {
                return Err(stage_error(format!("Stage '{}' {hook_name}: PARALLEL pipelines cannot roll back stages", stage.name)));
            }
        }
        for rule in conditions.iter().flat_map(|c| c["rules"].as_array().map(Vec::as_slice).unwrap_or_default()) {
            if let Some(problem) = crate::engine::conditions::configuration_problem(rule) {
                let name = rule["name"].as_str().unwrap_or_default();
                return Err(stage_error(format!("Stage '{}' {hook_name}: rule '{name}': {problem}", stage.name)));
            }
        }
    }
    Ok(())
}

fn stage_level(p: &PipelineDeclaration, index: usize, stage: &StageDeclaration) -> Result<(), ApiError> {
    if !stage.blockers.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidBlockerDeclarationException,
            format!("Stage '{}' declares blockers, which are reserved for future use", stage.name),
        ));
    }
    if stage.actions.is_empty() {
        return Err(stage_error(format!("Stage '{}' has no actions; a stage must have at least one", stage.name)));
    }
    if stage.actions.len() > MAX_ACTIONS_PER_STAGE {
        return Err(stage_error(format!(
            "Stage '{}' has {} actions; the limit is {MAX_ACTIONS_PER_STAGE}",
            stage.name,
            stage.actions.len()
        )));
    }
    let mut names = HashSet::new();
    for action in &stage.actions {
        if !names.insert(action.name.as_str()) {
            return Err(action_error(format!(
                "Action name '{}' is used more than once in stage '{}'; action names must be unique within a stage",
                action.name, stage.name
            )));
        }
        let is_source = action.action_type_id.category == "Source";
        if index == 0 && !is_source {
            return Err(stage_error(format!(
                "The first stage '{}' may contain only source actions, but action '{}' is a {} action",
                stage.name, action.name, action.action_type_id.category
            )));
        }
        if index > 0 && is_source {
            return Err(stage_error(format!(
                "Source action '{}' is in stage '{}'; source actions are only allowed in the first stage of pipeline '{}'",
                action.name, stage.name, p.name
            )));
        }
    }
    Ok(())
}

fn action_level(stage: &StageDeclaration, action: &ActionDeclaration, types: &HashMap<ActionTypeId, ActionType>) -> Result<(), ApiError> {
    let at = || format!("action '{}' in stage '{}'", action.name, stage.name);
    let id = &action.action_type_id;
    let Some(t) = types.get(id) else {
        return Err(action_error(format!("{id} in {} is not available: no such action type exists for this account", at())));
    };
    for property in t.action_configuration_properties.iter().filter(|p| p.required) {
        if !action.configuration.contains_key(&property.name) {
            return Err(action_error(format!("Configuration property '{}' is required by {id} but missing in {}", property.name, at())));
        }
    }
    for (key, value) in &action.configuration {
        let Some(property) = t.property(key) else {
            return Err(action_error(format!("Configuration property '{key}' in {} is not defined by {id}", at())));
        };
        if property.queryable && !(value.len() <= 20 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')) {
            return Err(action_error(format!(
                "Queryable configuration property '{key}' in {} must be at most 20 characters of [A-Za-z0-9_-]",
                at()
            )));
        }
    }
    if id.owner == "AWS" && id.category == "Deploy" && id.provider == "S3" {
        let extract = action.configuration.get("Extract").map(|v| v.eq_ignore_ascii_case("true"));
        if extract == Some(false) && !action.configuration.contains_key("ObjectKey") {
            return Err(action_error(format!("Configuration property 'ObjectKey' is required when 'Extract' is false in {}", at())));
        }
    }
    for (what, count, limits) in [
        ("input", action.input_artifacts.len(), t.input_artifact_details),
        ("output", action.output_artifacts.len(), t.output_artifact_details),
    ] {
        let count = count as i32;
        if count < limits.minimum_count || count > limits.maximum_count {
            return Err(action_error(format!(
                "{} has {count} {what} artifact(s), but {id} takes between {} and {}",
                capitalise(&at()),
                limits.minimum_count,
                limits.maximum_count
            )));
        }
    }
    if action.region.is_some() && (id.category == "Source" || id.owner != "AWS") {
        return Err(action_error(format!(
            "{} cannot set a region: source, custom and third-party actions run in the pipeline's region",
            capitalise(&at())
        )));
    }
    if action.timeout_in_minutes.is_some() && !super::action_types::is_manual_approval(id) {
        return Err(action_error(format!("{} sets timeoutInMinutes, which applies only to manual approval actions", capitalise(&at()))));
    }
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// Output artifact names are unique in the pipeline; every input artifact is
/// the output of an action that runs earlier (an earlier stage, or a lower
/// runOrder in the same stage); namespaces are unique and differ from
/// artifact names.
fn artifacts_and_namespaces(p: &PipelineDeclaration) -> Result<(), ApiError> {
    let mut outputs: HashSet<&str> = HashSet::new();
    for stage in &p.stages {
        for action in &stage.actions {
            for out in &action.output_artifacts {
                if !outputs.insert(out.name.as_str()) {
                    return Err(structure(format!(
                        "Output artifact name '{}' must be unique within the pipeline; it has been used more than once",
                        out.name
                    )));
                }
            }
        }
    }
    let mut produced: HashSet<&str> = HashSet::new();
    for stage in &p.stages {
        let mut orders: Vec<i32> = stage.actions.iter().map(ActionDeclaration::run_order).collect();
        orders.sort_unstable();
        orders.dedup();
        for order in orders {
            let group: Vec<&ActionDeclaration> = stage.actions.iter().filter(|a| a.run_order() == order).collect();
            for action in &group {
                for input in &action.input_artifacts {
                    if !produced.contains(input.name.as_str()) {
                        return Err(structure(format!(
                            "Input artifact '{}' of action '{}' in stage '{}' is not the output of any action that runs before it",
                            input.name, action.name, stage.name
                        )));
                    }
                }
            }
            produced.extend(group.iter().flat_map(|a| a.output_artifacts.iter().map(|o| o.name.as_str())));
        }
    }
    let mut namespaces = HashSet::new();
    for stage in &p.stages {
        for action in &stage.actions {
            if let Some(ns) = &action.namespace
                && (!namespaces.insert(ns.as_str()) || outputs.contains(ns.as_str()))
            {
                return Err(action_error(format!(
                    "Namespace '{ns}' of action '{}' in stage '{}' is not unique: namespaces must be unique across the pipeline definition and differ from artifact names",
                    action.name, stage.name
                )));
            }
        }
    }
    Ok(())
}

fn artifact_stores(p: &PipelineDeclaration, region: &str) -> Result<(), ApiError> {
    let action_regions: HashSet<&str> =
        p.stages.iter().flat_map(|s| s.actions.iter()).filter_map(|a| a.region.as_deref()).filter(|r| *r != region).collect();
    match (&p.artifact_store, &p.artifact_stores) {
        (Some(_), Some(_)) => Err(structure("Pipeline declares both artifactStore and artifactStores; use exactly one".into())),
        (None, None) => Err(structure("Pipeline declares neither artifactStore nor artifactStores; exactly one is required".into())),
        (Some(_), None) if !action_regions.is_empty() => Err(structure(format!(
            "Actions in regions {} need artifactStores with a store per region, not artifactStore",
            sorted(&action_regions)
        ))),
        (Some(_), None) => Ok(()),
        (None, Some(stores)) => {
            let mut needed: HashSet<&str> = action_regions;
            needed.insert(region);
            let missing: HashSet<&str> = needed.into_iter().filter(|r| !stores.contains_key(*r)).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(structure(format!("artifactStores has no artifact store for region(s) {}", sorted(&missing))))
            }
        }
    }
}

fn sorted(set: &HashSet<&str>) -> String {
    let mut v: Vec<&str> = set.iter().copied().collect();
    v.sort_unstable();
    v.join(", ")
}
