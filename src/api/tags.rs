//! TagResource, UntagResource, ListTagsForResource, and the tag helpers the
//! creating operations (CreatePipeline, CreateCustomActionType, PutWebhook)
//! and deleting operations share.
//!
//! Taggable resources and their ARNs (SEMANTICS §1):
//! - pipeline `arn:aws:codepipeline:<region>:<account>:<name>`
//! - custom action type `arn:aws:codepipeline:<region>:<account>:actiontype:Custom/<category>/<provider>/<version>`
//!   (`actionType` is accepted too: the IAM documentation spells it so)
//! - webhook `arn:aws:codepipeline:<region>:<account>:webhook:<name>`
//!
//! Tags are stored under the ARN in its canonical form ([`ResourceArn`]'s
//! `Display`), which is the form the creating operations build. An ARN of
//! another account, region or partition names a resource that does not
//! exist here: ResourceNotFoundException, exactly as for a missing one, so
//! a caller learns nothing about other tenants.
//!
//! Rules (UG limits): at most 50 tags per resource, keys unique and case
//! sensitive, key 1–128 and value 0–256 characters (the model's bounds; the
//! UG's "1–256" for values is not enforced), keys beginning with `aws:` are
//! reserved. TagResource upserts by key; UntagResource ignores absent keys.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{Cx, page_token};
use crate::protocol::error::{ApiError, ErrorCode};
use crate::store::{action_types, pipelines, tags, webhooks};

/// Most tags one resource may carry (UG limits).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// The Smithy `Tag` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResourceInput {
    resource_arn: String,
    tags: Vec<Tag>,
}

#[derive(Serialize)]
pub struct TagResourceOutput {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResourceInput {
    resource_arn: String,
    tag_keys: Vec<String>,
}

#[derive(Serialize)]
pub struct UntagResourceOutput {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceInput {
    resource_arn: String,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceOutput {
    tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// What a CodePipeline ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Pipeline { name: String },
    ActionType { owner: String, category: String, provider: String, version: String },
    Webhook { name: String },
}

/// A parsed CodePipeline resource ARN. `Display` gives the canonical form
/// tags are stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceArn {
    pub partition: String,
    pub region: String,
    pub account_id: String,
    pub resource: Resource,
}

impl fmt::Display for ResourceArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:{}:codepipeline:{}:{}:", self.partition, self.region, self.account_id)?;
        match &self.resource {
            Resource::Pipeline { name } => write!(f, "{name}"),
            Resource::ActionType { owner, category, provider, version } => {
                write!(f, "actiontype:{owner}/{category}/{provider}/{version}")
            }
            Resource::Webhook { name } => write!(f, "webhook:{name}"),
        }
    }
}

const ACTION_CATEGORIES: &[&str] = &["Source", "Build", "Deploy", "Test", "Invoke", "Approval", "Compute"];
const ACTION_OWNERS: &[&str] = &["AWS", "ThirdParty", "Custom"];

/// `[A-Za-z0-9.@\-_]{1,100}`: pipeline and webhook names (model patterns).
fn is_resource_name(s: &str) -> bool {
    (1..=100).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".@-_".contains(&b))
}

/// `[0-9A-Za-z_-]{1,max}`: action type providers and versions.
fn is_action_type_part(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ResourceArn {
    /// A resource of the calling account in the server's region.
    pub fn of(cx: &Cx, resource: Resource) -> ResourceArn {
        ResourceArn { partition: "aws".into(), region: cx.region().to_owned(), account_id: cx.account_id.clone(), resource }
    }

    /// Errors: InvalidArnException when `arn` is not a pipeline, action type
    /// or webhook ARN.
    pub fn parse(arn: &str) -> Result<ResourceArn, ApiError> {
        Self::parse_parts(arn).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidArnException,
                format!("'{arn}' is not the ARN of a CodePipeline pipeline, custom action type or webhook"),
            )
        })
    }

    fn parse_parts(arn: &str) -> Option<ResourceArn> {
        let mut parts = arn.splitn(6, ':');
        let (prefix, partition, service, region, account_id, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // `aws(-\w+)*`, as the model's ResourceArn pattern: aws, aws-cn, aws-us-gov...
        let partition_ok = partition.strip_prefix("aws").is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix('-')
                    .is_some_and(|r| r.split('-').all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')))
        });
        let region_ok = !region.is_empty() && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let account_ok = account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit());
        if prefix != "arn" || service != "codepipeline" || !partition_ok || !region_ok || !account_ok {
            return None;
        }
        let resource = if let Some(name) = resource.strip_prefix("webhook:") {
            is_resource_name(name).then(|| Resource::Webhook { name: name.to_owned() })?
        } else if let Some(id) = resource.strip_prefix("actiontype:").or_else(|| resource.strip_prefix("actionType:")) {
            let mut id = id.split('/');
            let (owner, category, provider, version) = (id.next()?, id.next()?, id.next()?, id.next()?);
            let well_formed = id.next().is_none()
                && ACTION_OWNERS.contains(&owner)
                && ACTION_CATEGORIES.contains(&category)
                && is_action_type_part(provider, 35)
                && is_action_type_part(version, 9);
            well_formed.then(|| Resource::ActionType {
                owner: owner.to_owned(),
                category: category.to_owned(),
                provider: provider.to_owned(),
                version: version.to_owned(),
            })?
        } else {
            is_resource_name(resource).then(|| Resource::Pipeline { name: resource.to_owned() })?
        };
        Some(ResourceArn { partition: partition.to_owned(), region: region.to_owned(), account_id: account_id.to_owned(), resource })
    }
}

fn resource_not_found(arn: &str) -> ApiError {
    ApiError::new(ErrorCode::ResourceNotFoundException, format!("The resource '{arn}' does not exist"))
}

fn invalid_tags(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidTagsException, message)
}

fn too_many_tags(count: usize) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyTagsException,
        format!("A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; this request would leave it with {count}"),
    )
}

/// Keys beginning with `aws:` (in any case) belong to AWS.
fn is_reserved_key(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// Checks a tag list given to any operation: at most 50, keys unique, not
/// reserved, and within the model's lengths.
///
/// Errors: TooManyTagsException, InvalidTagsException.
pub fn validate_tags(tags: &[Tag]) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(too_many_tags(tags.len()));
    }
    let mut seen = HashSet::new();
    for tag in tags {
        let key_len = tag.key.chars().count();
        if !(1..=128).contains(&key_len) {
            return Err(invalid_tags("Tag keys must be 1 to 128 characters long"));
        }
        if tag.value.chars().count() > 256 {
            return Err(invalid_tags(format!("The value of tag '{}' is longer than 256 characters", tag.key)));
        }
        if is_reserved_key(&tag.key) {
            return Err(invalid_tags(format!("Tag key '{}' is reserved: keys may not begin with 'aws:'", tag.key)));
        }
        if !seen.insert(tag.key.as_str()) {
            return Err(invalid_tags(format!("Tag key '{}' appears more than once", tag.key)));
        }
    }
    Ok(())
}

fn split(tags: &[Tag]) -> (Vec<String>, Vec<String>) {
    tags.iter().map(|t| (t.key.clone(), t.value.clone())).unzip()
}

/// Adds `tags` to the resource named by the canonical `arn`, overwriting
/// the values of keys it already has. Call inside the transaction that
/// checked the resource exists.
///
/// Errors: TooManyTagsException (more than 50 after the merge), InvalidTagsException.
pub async fn add_tags(conn: &mut PgConnection, account_id: &str, arn: &str, tags: &[Tag]) -> Result<(), ApiError> {
    validate_tags(tags)?;
    tags::lock_resource(conn, account_id, arn).await?;
    let (keys, values) = split(tags);
    let total = tags::count_other_keys(conn, account_id, arn, &keys).await? as usize + keys.len();
    if total > MAX_TAGS_PER_RESOURCE {
        return Err(too_many_tags(total));
    }
    tags::upsert(conn, account_id, arn, &keys, &values).await?;
    Ok(())
}

/// Makes `tags` the resource's whole tag set (for a newly created resource).
///
/// Errors: TooManyTagsException, InvalidTagsException.
pub async fn replace_tags(conn: &mut PgConnection, account_id: &str, arn: &str, tags: &[Tag]) -> Result<(), ApiError> {
    validate_tags(tags)?;
    tags::lock_resource(conn, account_id, arn).await?;
    tags::delete_all(conn, account_id, arn).await?;
    let (keys, values) = split(tags);
    tags::upsert(conn, account_id, arn, &keys, &values).await?;
    Ok(())
}

/// Removes every tag of a resource. Call in the transaction that deletes
/// the resource (before or after its row goes): it takes the same lock as
/// TagResource, so a concurrent TagResource either finishes first (and its
/// tags are removed here) or runs after the commit and finds no resource.
pub async fn delete_tags_of(conn: &mut PgConnection, account_id: &str, arn: &str) -> Result<(), ApiError> {
    tags::lock_resource(conn, account_id, arn).await?;
    tags::delete_all(conn, account_id, arn).await?;
    Ok(())
}

/// All tags of a resource in key order, for operation outputs.
pub async fn tags_of(conn: &mut PgConnection, account_id: &str, arn: &str) -> Result<Vec<Tag>, ApiError> {
    let rows = tags::list(conn, account_id, arn, None, None).await?;
    Ok(rows.into_iter().map(|r| Tag { key: r.key, value: r.value }).collect())
}

/// The canonical ARN of an existing resource of the caller's.
///
/// With `lock`, takes the resource's tag lock first, so the existence check
/// cannot race the resource's deletion (see [`delete_tags_of`]).
///
/// Errors: ResourceNotFoundException.
async fn resolve(cx: &Cx, conn: &mut PgConnection, given: &str, arn: &ResourceArn, lock: bool) -> Result<String, ApiError> {
    if arn.partition != "aws" || arn.region != cx.region() || arn.account_id != cx.account_id {
        return Err(resource_not_found(given));
    }
    let canonical = arn.to_string();
    if lock {
        tags::lock_resource(conn, &cx.account_id, &canonical).await?;
    }
    let exists = match &arn.resource {
        Resource::Pipeline { name } => pipelines::exists(conn, &cx.account_id, name).await?,
        Resource::Webhook { name } => webhooks::exists(conn, &cx.account_id, name).await?,
        // Built-in (AWS, ThirdParty) action types are nobody's to tag.
        Resource::ActionType { owner, category, provider, version } => {
            owner == "Custom" && action_types::custom_exists(conn, &cx.account_id, category, provider, version).await?
        }
    };
    if !exists {
        return Err(resource_not_found(given));
    }
    Ok(canonical)
}

/// Errors: ValidationException, InvalidArnException, ResourceNotFoundException,
/// TooManyTagsException, InvalidTagsException.
pub async fn tag_resource(cx: Cx, input: TagResourceInput) -> Result<TagResourceOutput, ApiError> {
    let arn = ResourceArn::parse(&input.resource_arn)?;
    validate_tags(&input.tags)?;
    let mut tx = cx.db().begin().await?;
    let canonical = resolve(&cx, &mut tx, &input.resource_arn, &arn, true).await?;
    add_tags(&mut tx, &cx.account_id, &canonical, &input.tags).await?;
    tx.commit().await?;
    Ok(TagResourceOutput {})
}

/// Removing a key the resource does not have is not an error.
///
/// Errors: ValidationException, InvalidArnException, ResourceNotFoundException,
/// InvalidTagsException (an `aws:` key).
pub async fn untag_resource(cx: Cx, input: UntagResourceInput) -> Result<UntagResourceOutput, ApiError> {
    let arn = ResourceArn::parse(&input.resource_arn)?;
    if let Some(key) = input.tag_keys.iter().find(|k| is_reserved_key(k)) {
        return Err(invalid_tags(format!("Tag key '{key}' is reserved: keys beginning with 'aws:' cannot be removed")));
    }
    let mut tx = cx.db().begin().await?;
    let canonical = resolve(&cx, &mut tx, &input.resource_arn, &arn, true).await?;
    tags::delete_keys(&mut tx, &cx.account_id, &canonical, &input.tag_keys).await?;
    tx.commit().await?;
    Ok(UntagResourceOutput {})
}

/// All tags in one page unless `maxResults` asks for fewer (the model doc
/// says the call does not paginate; botocore's paginator still may).
///
/// Errors: ValidationException, InvalidArnException, ResourceNotFoundException,
/// InvalidNextTokenException.
pub async fn list_tags_for_resource(cx: Cx, input: ListTagsForResourceInput) -> Result<ListTagsForResourceOutput, ApiError> {
    let arn = ResourceArn::parse(&input.resource_arn)?;
    let after = page_token::decode(input.next_token.as_deref())?;
    let mut conn = cx.db().acquire().await?;
    let canonical = resolve(&cx, &mut conn, &input.resource_arn, &arn, false).await?;
    // One extra row tells whether another page exists.
    let limit = input.max_results;
    let mut rows = tags::list(&mut conn, &cx.account_id, &canonical, after.as_deref(), limit.map(|l| l + 1)).await?;
    let next_token = match limit {
        Some(limit) if rows.len() as i64 > limit => {
            rows.truncate(limit as usize);
            rows.last().map(|r| page_token::encode(&r.key))
        }
        _ => None,
    };
    let tags = rows.into_iter().map(|r| Tag { key: r.key, value: r.value }).collect();
    Ok(ListTagsForResourceOutput { tags, next_token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag { key: k.into(), value: v.into() }
    }

    #[test]
    fn the_three_arn_forms_parse_and_print_canonically() {
        let p = ResourceArn::parse("arn:aws:codepipeline:us-east-1:123456789012:my-pipe").unwrap();
        assert_eq!(p.resource, Resource::Pipeline { name: "my-pipe".into() });
        assert_eq!(p.to_string(), "arn:aws:codepipeline:us-east-1:123456789012:my-pipe");

        let w = ResourceArn::parse("arn:aws:codepipeline:us-east-1:123456789012:webhook:hook.1").unwrap();
        assert_eq!(w.resource, Resource::Webhook { name: "hook.1".into() });
        assert_eq!(w.to_string(), "arn:aws:codepipeline:us-east-1:123456789012:webhook:hook.1");

        let a = ResourceArn::parse("arn:aws:codepipeline:eu-west-1:123456789012:actionType:Custom/Build/Make_r-1/12").unwrap();
        assert_eq!(
            a.resource,
            Resource::ActionType { owner: "Custom".into(), category: "Build".into(), provider: "Make_r-1".into(), version: "12".into() }
        );
        assert_eq!(a.to_string(), "arn:aws:codepipeline:eu-west-1:123456789012:actiontype:Custom/Build/Make_r-1/12");

        let cn = ResourceArn::parse("arn:aws-cn:codepipeline:cn-north-1:123456789012:p").unwrap();
        assert_eq!(cn.partition, "aws-cn");
        let gov = ResourceArn::parse("arn:aws-us-gov:codepipeline:us-gov-west-1:123456789012:p").unwrap();
        assert_eq!(gov.partition, "aws-us-gov");
    }

    #[test]
    fn other_strings_are_invalid_arns() {
        for bad in [
            "arn:aws:codepipeline:us-east-1:123456789012:pipe/stage",
            "arn:aws:codepipeline:us-east-1:123456789012:pipe/stage/action",
            "arn:aws:codepipeline:us-east-1:123456789012:webhook:",
            "arn:aws:codepipeline:us-east-1:123456789012:webhook:a/b",
            "arn:aws:codepipeline:us-east-1:123456789012:actiontype:Custom/Build/p",
            "arn:aws:codepipeline:us-east-1:123456789012:actiontype:Custom/Build/p/1/x",
            "arn:aws:codepipeline:us-east-1:123456789012:actiontype:Custom/Bake/p/1",
            "arn:aws:codepipeline:us-east-1:123456789012:actiontype:Nobody/Build/p/1",
            "arn:aws:codepipeline:us-east-1:123456789012:actiontype:Custom/Build/p/1234567890",
            "arn:aws:codepipeline:us-east-1:123456789012:foo:bar",
            "arn:aws:codepipeline:us-east-1:12345678901x:p",
            "arn:aws:codepipeline:us-east-1:us-west-2:123456789012:p",
            "arn:aws:codebuild:us-east-1:123456789012:p",
            "arn:aws:codepipeline::123456789012:p",
            "arn:aws-:codepipeline:us-east-1:123456789012:p",
        ] {
            let e = ResourceArn::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArnException, "{bad}");
        }
    }

    #[test]
    fn tag_lists_are_checked() {
        assert!(validate_tags(&[]).is_ok());
        assert!(validate_tags(&[tag("team", ""), tag("Team", "x"), tag("awsome", "y")]).is_ok());
        let code = |tags: &[Tag]| validate_tags(tags).unwrap_err().code;
        assert_eq!(code(&[tag("a", "1"), tag("a", "2")]), ErrorCode::InvalidTagsException);
        assert_eq!(code(&[tag("aws:created", "1")]), ErrorCode::InvalidTagsException);
        assert_eq!(code(&[tag("AWS:x", "1")]), ErrorCode::InvalidTagsException);
        assert_eq!(code(&[tag("", "1")]), ErrorCode::InvalidTagsException);
        assert_eq!(code(&[tag(&"k".repeat(129), "1")]), ErrorCode::InvalidTagsException);
        assert_eq!(code(&[tag("k", &"v".repeat(257))]), ErrorCode::InvalidTagsException);
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(code(&many), ErrorCode::TooManyTagsException);
        assert!(validate_tags(&many[..50]).is_ok());
    }
}
