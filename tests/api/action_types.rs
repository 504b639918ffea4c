//! Custom action types, the built-in catalogue, and secret configuration.

use aws_sdk_codepipeline::types::{ActionCategory, ActionConfigurationProperty, ActionOwner, ActionTypeSettings, ArtifactDetails};
use millrace::crypto::{SEALED_PREFIX, SecretBox};
use serde_json::Value;

use crate::helpers::{TestServer, custom_action_type, error_code, error_message, simple_pipeline};

fn custom_pipeline(name: &str, provider: &str, token: &str) -> aws_sdk_codepipeline::types::PipelineDeclaration {
    use aws_sdk_codepipeline::types::*;
    let mut p = simple_pipeline(name);
    let deploy = ActionDeclaration::builder()
        .name("Ship")
        .action_type_id(
            ActionTypeId::builder()
                .category(ActionCategory::Deploy)
                .owner(ActionOwner::Custom)
                .provider(provider)
                .version("1")
                .build()
                .unwrap(),
        )
        .configuration("Target", "prod")
        .configuration("Token", token)
        .build()
        .unwrap();
    p.stages.push(StageDeclaration::builder().name("Deploy").actions(deploy).build().unwrap());
    p
}

#[tokio::test]
async fn a_custom_action_type_is_listed_and_usable_until_deleted() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    custom_action_type(&client, "Deploy", "Shipper", &[("Target", true, false, true), ("Token", false, true, false)]).await;

    let custom = client.list_action_types().action_owner_filter(ActionOwner::Custom).send().await.unwrap();
    assert_eq!(custom.action_types().len(), 1);
    let t = &custom.action_types()[0];
    assert_eq!(t.id().unwrap().provider(), "Shipper");
    assert_eq!(t.action_configuration_properties().len(), 2);
    let all = client.list_action_types().send().await.unwrap();
    assert!(all.action_types().iter().any(|t| t.id().unwrap().provider() == "CodeBuild"));
    assert!(all.action_types().len() > custom.action_types().len());

    client.create_pipeline().pipeline(custom_pipeline("uses-it", "Shipper", "s3cr3t")).send().await.unwrap();

    // Creating the identical definition again is harmless.
    custom_action_type(&client, "Deploy", "Shipper", &[("Target", true, false, true), ("Token", false, true, false)]).await;
    let err = client
        .create_custom_action_type()
        .category(ActionCategory::Deploy)
        .provider("Shipper")
        .version("1")
        .input_artifact_details(ArtifactDetails::builder().minimum_count(0).maximum_count(1).build())
        .output_artifact_details(ArtifactDetails::builder().minimum_count(0).maximum_count(0).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ActionTypeAlreadyExistsException");

    client.delete_custom_action_type().category(ActionCategory::Deploy).provider("Shipper").version("1").send().await.unwrap();
    client.delete_custom_action_type().category(ActionCategory::Deploy).provider("Shipper").version("1").send().await.unwrap();
    let custom = client.list_action_types().action_owner_filter(ActionOwner::Custom).send().await.unwrap();
    assert!(custom.action_types().is_empty());
    let err = client.create_pipeline().pipeline(custom_pipeline("after-delete", "Shipper", "x")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidActionDeclarationException");
    // The existing pipeline still reads, its secret still masked.
    let got = client.get_pipeline().name("uses-it").send().await.unwrap();
    let config = got.pipeline().unwrap().stages()[2].actions()[0].configuration().unwrap();
    assert_eq!(config.get("Token").map(String::as_str), Some("****"));
}

#[tokio::test]
async fn secrets_are_masked_and_kept_when_the_mask_comes_back() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    custom_action_type(&client, "Deploy", "Shipper", &[("Target", true, false, false), ("Token", true, true, false)]).await;

    let created = client.create_pipeline().pipeline(custom_pipeline("p", "Shipper", "hunter2")).send().await.unwrap();
    let token =
        |p: &aws_sdk_codepipeline::types::PipelineDeclaration| p.stages()[2].actions()[0].configuration().unwrap().get("Token").cloned();
    assert_eq!(token(created.pipeline().unwrap()).as_deref(), Some("****"));
    let fetched = client.get_pipeline().name("p").send().await.unwrap();
    assert_eq!(token(fetched.pipeline().unwrap()).as_deref(), Some("****"));

    // Send the fetched declaration (mask included) back with another change.
    let mut edited = fetched.pipeline().unwrap().clone();
    edited.role_arn = "arn:aws:iam::123456789012:role/other".into();
    let updated = client.update_pipeline().pipeline(edited).send().await.unwrap();
    assert_eq!(token(updated.pipeline().unwrap()).as_deref(), Some("****"));

    let stored: Vec<(i32, Value)> =
        sqlx::query_as("select version, declaration from pipeline_version where account_id = $1 and name = 'p' order by version")
            .bind(&account.account_id)
            .fetch_all(&server.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 2);
    // Stored sealed under the master key, never in the clear; the update
    // kept the sealed value as it was.
    let master = SecretBox::from_base64(&server.master_key).unwrap();
    let aad = millrace::crypto::configuration_aad(&account.account_id);
    let sealed: Vec<String> =
        stored.iter().map(|(_, d)| d["stages"][2]["actions"][0]["configuration"]["Token"].as_str().unwrap().to_owned()).collect();
    assert!(sealed[0].starts_with(SEALED_PREFIX), "{}", sealed[0]);
    assert!(stored.iter().all(|(_, d)| !d.to_string().contains("hunter2")));
    assert_eq!(sealed[1], sealed[0]);
    assert_eq!(master.open_value(&sealed[0], &aad).unwrap(), "hunter2");
    assert!(master.open_value(&sealed[0], b"action-configuration:another-account").is_err());

    // A new value replaces the secret.
    let replaced = custom_pipeline("p", "Shipper", "correct-horse");
    client.update_pipeline().pipeline(replaced).send().await.unwrap();
    let (declaration,): (Value,) =
        sqlx::query_as("select declaration from pipeline_version where account_id = $1 and name = 'p' and version = 3")
            .bind(&account.account_id)
            .fetch_one(&server.pool)
            .await
            .unwrap();
    let token = declaration["stages"][2]["actions"][0]["configuration"]["Token"].as_str().unwrap();
    assert_eq!(master.open_value(token, &aad).unwrap(), "correct-horse");
}

#[tokio::test]
async fn custom_action_type_definitions_follow_the_rules() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let artifacts = || ArtifactDetails::builder().minimum_count(0).maximum_count(1).build();
    let property = |name: &str, required: bool, secret: bool, queryable: bool| {
        ActionConfigurationProperty::builder().name(name).required(required).key(false).secret(secret).queryable(queryable).build().unwrap()
    };
    let attempt = |props: Vec<ActionConfigurationProperty>, settings: Option<ActionTypeSettings>| {
        client
            .create_custom_action_type()
            .category(ActionCategory::Build)
            .provider("Rules")
            .version("1")
            .set_configuration_properties(Some(props))
            .set_settings(settings)
            .input_artifact_details(artifacts())
            .output_artifact_details(artifacts())
            .send()
    };
    for (props, needle) in [
        (vec![property("Q", false, false, true)], "must be required and not secret"),
        (vec![property("Q", true, true, true)], "must be required and not secret"),
        (vec![property("A", true, false, true), property("B", true, false, true)], "at most one queryable"),
        (vec![property("A", true, false, false), property("A", true, false, false)], "more than once"),
    ] {
        let err = attempt(props, None).await.unwrap_err();
        assert_eq!(error_code(&err), "ValidationException");
        assert!(error_message(&err).contains(needle), "{}", error_message(&err));
    }
    let url = ActionTypeSettings::builder().entity_url_template("https://ci/{Config:Secret}").build();
    let err = attempt(vec![property("Secret", true, true, false)], Some(url)).await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let url = ActionTypeSettings::builder().execution_url_template("https://ci/{Config:Project}/{ExternalExecutionId}").build();
    attempt(vec![property("Project", true, false, false)], Some(url)).await.unwrap();

    let too_many: Vec<ActionConfigurationProperty> = (0..11).map(|i| property(&format!("P{i}"), false, false, false)).collect();
    let err = client
        .create_custom_action_type()
        .category(ActionCategory::Build)
        .provider("Big")
        .version("1")
        .set_configuration_properties(Some(too_many))
        .input_artifact_details(artifacts())
        .output_artifact_details(artifacts())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
}

#[tokio::test]
async fn an_account_has_at_most_fifty_custom_action_types() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    for i in 0..50 {
        custom_action_type(&client, "Test", &format!("T{i}"), &[]).await;
    }
    let artifacts = || ArtifactDetails::builder().minimum_count(0).maximum_count(0).build();
    let err = client
        .create_custom_action_type()
        .category(ActionCategory::Test)
        .provider("OneTooMany")
        .version("1")
        .input_artifact_details(artifacts())
        .output_artifact_details(artifacts())
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "LimitExceededException");
}

#[tokio::test]
async fn the_integrator_model_reads_built_ins_and_registers_third_party_types() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let got =
        client.get_action_type().category(ActionCategory::Build).owner("AWS").provider("CodeBuild").version("1").send().await.unwrap();
    let declaration = got.action_type().unwrap();
    assert!(declaration.properties().iter().any(|p| p.name() == "ProjectName" && !p.optional()));
    assert_eq!(declaration.input_artifact_details().unwrap().minimum_count(), 1);

    let err = client
        .get_action_type()
        .category(ActionCategory::Build)
        .owner("ThirdParty")
        .provider("Nope")
        .version("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ActionTypeNotFoundException");

    use aws_sdk_codepipeline::types::*;
    let declaration_for = |owner: &str, provider: &str| {
        ActionTypeDeclaration::builder()
            .id(ActionTypeIdentifier::builder()
                .category(ActionCategory::Test)
                .owner(owner)
                .provider(provider)
                .version("1")
                .build()
                .unwrap())
            .executor(
                ActionTypeExecutor::builder()
                    .r#type(ExecutorType::JobWorker)
                    .configuration(
                        ExecutorConfiguration::builder()
                            .job_worker_executor_configuration(JobWorkerExecutorConfiguration::builder().build())
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .input_artifact_details(ActionTypeArtifactDetails::builder().minimum_count(0).maximum_count(1).build())
            .output_artifact_details(ActionTypeArtifactDetails::builder().minimum_count(0).maximum_count(1).build())
            .properties(ActionTypeProperty::builder().name("Suite").optional(false).key(true).no_echo(false).build().unwrap())
            .build()
    };
    let err = client.update_action_type().action_type(declaration_for("AWS", "CodeBuild")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "RequestFailedException");
    client.update_action_type().action_type(declaration_for("ThirdParty", "Partner")).send().await.unwrap();
    let got =
        client.get_action_type().category(ActionCategory::Test).owner("ThirdParty").provider("Partner").version("1").send().await.unwrap();
    assert_eq!(got.action_type().unwrap().properties()[0].name(), "Suite");
    let listed = client.list_action_types().action_owner_filter(ActionOwner::ThirdParty).send().await.unwrap();
    assert!(listed.action_types().iter().any(|t| t.id().unwrap().provider() == "Partner"));
}

#[tokio::test]
async fn another_account_never_sees_custom_action_types() {
    let server = TestServer::start().await;
    let (a, b) = (server.account("a").await, server.account("b").await);
    let (ca, cb) = (server.client(&a), server.client(&b));
    custom_action_type(&ca, "Deploy", "Shipper", &[("Target", true, false, false), ("Token", false, true, false)]).await;
    let listed = cb.list_action_types().action_owner_filter(ActionOwner::Custom).send().await.unwrap();
    assert!(listed.action_types().is_empty());
    let err = cb.create_pipeline().pipeline(custom_pipeline("p", "Shipper", "x")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidActionDeclarationException");
    // B deleting "its" type of the same id leaves A's alone.
    cb.delete_custom_action_type().category(ActionCategory::Deploy).provider("Shipper").version("1").send().await.unwrap();
    ca.create_pipeline().pipeline(custom_pipeline("p", "Shipper", "x")).send().await.unwrap();
    let other_region = ca.list_action_types().region_filter("eu-west-1").send().await.unwrap();
    assert!(other_region.action_types().is_empty());
}
