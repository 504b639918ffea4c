//! CreatePipeline structure rules, one row per rule (DIGEST §5.4–5.6).

use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{TestServer, raw_post, signed_headers};

fn s3_source(name: &str, output: &str) -> Value {
    json!({"name": name, "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
           "configuration": {"S3Bucket": "b", "S3ObjectKey": "k"}, "outputArtifacts": [{"name": output}]})
}

fn codebuild(name: &str, input: &str, output: Option<&str>, run_order: i32) -> Value {
    let mut a = json!({"name": name, "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
           "configuration": {"ProjectName": "p"}, "inputArtifacts": [{"name": input}], "runOrder": run_order});
    if let Some(o) = output {
        a["outputArtifacts"] = json!([{"name": o}]);
    }
    a
}

fn approval(name: &str) -> Value {
    json!({"name": name, "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}})
}

fn window_rule(cron: &str) -> Value {
    json!({"name": "window", "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "DeploymentWindow", "version": "1"},
           "configuration": {"Cron": cron, "TimeZone": "Europe/Berlin"}})
}

fn base() -> Value {
    json!({
        "name": "p", "roleArn": "arn:aws:iam::123456789012:role/r",
        "artifactStore": {"type": "S3", "location": "bucket"},
        "stages": [
            {"name": "Source", "actions": [s3_source("Fetch", "src")]},
            {"name": "Build", "actions": [codebuild("Compile", "src", Some("bin"), 1)]},
            {"name": "Approve", "actions": [approval("Ok")]},
        ]
    })
}

type Mutation = fn(&mut Value);

/// (what the row checks, change to the valid base, expected __type or "ok", text the message must contain)
const RULES: &[(&str, Mutation, &str, &str)] = &[
    ("the base pipeline is valid", |_| {}, "ok", ""),
    ("at least two stages", |p| p["stages"].as_array_mut().unwrap().truncate(1), "InvalidStructureException", "at least two stages"),
    (
        "at most fifty stages",
        |p| {
            let extra: Vec<Value> = (0..50).map(|i| json!({"name": format!("S{i}"), "actions": [approval("a")]})).collect();
            p["stages"].as_array_mut().unwrap().extend(extra);
        },
        "InvalidStructureException",
        "limit is 50",
    ),
    ("stage names are unique", |p| p["stages"][2]["name"] = json!("Build"), "InvalidStageDeclarationException", "'Build'"),
    ("a stage has actions", |p| p["stages"][2]["actions"] = json!([]), "InvalidStageDeclarationException", "'Approve'"),
    (
        "at most fifty actions per stage",
        |p| {
            p["stages"][2]["actions"] = Value::Array((0..51).map(|i| approval(&format!("a{i}"))).collect());
        },
        "InvalidStageDeclarationException",
        "limit is 50",
    ),
    (
        "the first stage holds only source actions",
        |p| {
            p["stages"][0]["actions"].as_array_mut().unwrap().push(approval("Early"));
        },
        "InvalidStageDeclarationException",
        "'Early'",
    ),
    (
        "source actions appear only in the first stage",
        |p| {
            p["stages"][2]["actions"].as_array_mut().unwrap().push(s3_source("Late", "late"));
        },
        "InvalidStageDeclarationException",
        "'Late'",
    ),
    (
        "action names are unique within a stage",
        |p| {
            p["stages"][2]["actions"].as_array_mut().unwrap().push(approval("Ok"));
        },
        "InvalidActionDeclarationException",
        "'Ok'",
    ),
    (
        "output artifact names are unique in the pipeline",
        |p| {
            p["stages"][1]["actions"][0]["outputArtifacts"] = json!([{"name": "src"}]);
        },
        "InvalidStructureException",
        "'src'",
    ),
    (
        "inputs come from an earlier action",
        |p| {
            p["stages"][1]["actions"][0]["inputArtifacts"] = json!([{"name": "nowhere"}]);
        },
        "InvalidStructureException",
        "'nowhere'",
    ),
    (
        "an input is not produced by a parallel action",
        |p| {
            p["stages"][1]["actions"].as_array_mut().unwrap().push(codebuild("Test", "bin", None, 1));
        },
        "InvalidStructureException",
        "'bin'",
    ),
    (
        "an input may come from a lower runOrder in the same stage",
        |p| {
            p["stages"][1]["actions"].as_array_mut().unwrap().push(codebuild("Test", "bin", None, 2));
        },
        "ok",
        "",
    ),
    (
        "input artifact counts are within the provider's limits",
        |p| {
            p["stages"][2]["actions"][0]["inputArtifacts"] = json!([{"name": "src"}]);
        },
        "InvalidActionDeclarationException",
        "input artifact",
    ),
    (
        "output artifact counts are within the provider's limits",
        |p| {
            p["stages"][0]["actions"][0]["outputArtifacts"] = json!([]);
        },
        "InvalidActionDeclarationException",
        "output artifact",
    ),
    (
        "the action type exists",
        |p| {
            p["stages"][2]["actions"][0]["actionTypeId"]["provider"] = json!("Nope");
        },
        "InvalidActionDeclarationException",
        "Provider: 'Nope'",
    ),
    (
        "required configuration is present",
        |p| {
            p["stages"][1]["actions"][0]["configuration"] = json!({});
        },
        "InvalidActionDeclarationException",
        "'ProjectName'",
    ),
    (
        "unknown configuration keys are refused",
        |p| {
            p["stages"][1]["actions"][0]["configuration"]["Colour"] = json!("blue");
        },
        "InvalidActionDeclarationException",
        "'Colour'",
    ),
    ("runOrder is at least 1", |p| p["stages"][1]["actions"][0]["runOrder"] = json!(0), "ValidationException", "runOrder"),
    ("runOrder is at most 999", |p| p["stages"][1]["actions"][0]["runOrder"] = json!(1000), "ValidationException", "runOrder"),
    (
        "not both artifactStore and artifactStores",
        |p| {
            p["artifactStores"] = json!({"us-east-1": {"type": "S3", "location": "bucket"}});
        },
        "InvalidStructureException",
        "both",
    ),
    (
        "one of artifactStore and artifactStores",
        |p| {
            p.as_object_mut().unwrap().remove("artifactStore");
        },
        "InvalidStructureException",
        "neither",
    ),
    (
        "artifactStores covers the pipeline's region",
        |p| {
            p.as_object_mut().unwrap().remove("artifactStore");
            p["artifactStores"] = json!({"eu-west-1": {"type": "S3", "location": "bucket"}});
        },
        "InvalidStructureException",
        "us-east-1",
    ),
    (
        "a cross-region action needs artifactStores",
        |p| {
            p["stages"][1]["actions"][0]["region"] = json!("eu-west-1");
        },
        "InvalidStructureException",
        "eu-west-1",
    ),
    (
        "artifactStores covers every action region",
        |p| {
            p.as_object_mut().unwrap().remove("artifactStore");
            p["artifactStores"] =
                json!({"us-east-1": {"type": "S3", "location": "bucket"}, "eu-west-1": {"type": "S3", "location": "eu-bucket"}});
            p["stages"][1]["actions"][0]["region"] = json!("eu-west-1");
        },
        "ok",
        "",
    ),
    (
        "source actions cannot be cross-region",
        |p| {
            p["stages"][0]["actions"][0]["region"] = json!("eu-west-1");
        },
        "InvalidActionDeclarationException",
        "region",
    ),
    (
        "blockers are reserved",
        |p| {
            p["stages"][2]["blockers"] = json!([{"name": "b", "type": "Schedule"}]);
        },
        "InvalidBlockerDeclarationException",
        "'Approve'",
    ),
    ("QUEUED needs a V2 pipeline", |p| p["executionMode"] = json!("QUEUED"), "InvalidStructureException", "V2"),
    (
        "QUEUED works on V2",
        |p| {
            p["executionMode"] = json!("QUEUED");
            p["pipelineType"] = json!("V2")
        },
        "ok",
        "",
    ),
    (
        "variables need a V2 pipeline",
        |p| p["variables"] = json!([{"name": "env", "defaultValue": "dev"}]),
        "InvalidStructureException",
        "V2",
    ),
    (
        "namespaces are unique",
        |p| {
            p["stages"][0]["actions"][0]["namespace"] = json!("ns");
            p["stages"][1]["actions"][0]["namespace"] = json!("ns");
        },
        "InvalidActionDeclarationException",
        "'ns'",
    ),
    (
        "timeoutInMinutes only on manual approvals",
        |p| {
            p["stages"][1]["actions"][0]["timeoutInMinutes"] = json!(60);
        },
        "InvalidActionDeclarationException",
        "timeoutInMinutes",
    ),
    (
        "a trigger names a connection source action",
        |p| {
            p["pipelineType"] = json!("V2");
            p["triggers"] = json!([{"providerType": "CodeStarSourceConnection", "gitConfiguration": {"sourceActionName": "Fetch"}}]);
        },
        "InvalidStructureException",
        "'Fetch'",
    ),
    (
        "a trigger's push filter is a valid combination",
        |p| {
            p["pipelineType"] = json!("V2");
            p["stages"][0]["actions"][0] = json!({"name": "Git", "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeStarSourceConnection", "version": "1"},
            "configuration": {"ConnectionArn": "arn:aws:codestar-connections:us-east-1:123456789012:connection/x", "FullRepositoryId": "o/r", "BranchName": "main"},
            "outputArtifacts": [{"name": "src"}]});
            p["triggers"] = json!([{"providerType": "CodeStarSourceConnection", "gitConfiguration": {"sourceActionName": "Git",
            "push": [{"tags": {"includes": ["v*"]}, "branches": {"includes": ["main"]}}]}}]);
        },
        "InvalidStructureException",
        "push filter",
    ),
    (
        "a valid V2 trigger is accepted",
        |p| {
            p["pipelineType"] = json!("V2");
            p["stages"][0]["actions"][0] = json!({"name": "Git", "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeStarSourceConnection", "version": "1"},
            "configuration": {"ConnectionArn": "arn:aws:codestar-connections:us-east-1:123456789012:connection/x", "FullRepositoryId": "o/r", "BranchName": "main"},
            "outputArtifacts": [{"name": "src"}]});
            p["triggers"] = json!([{"providerType": "CodeStarSourceConnection", "gitConfiguration": {"sourceActionName": "Git",
            "push": [{"branches": {"includes": ["main"]}, "filePaths": {"includes": ["src/**"]}}]}}]);
        },
        "ok",
        "",
    ),
    (
        "an entry condition's result is FAIL or SKIP",
        |p| {
            p["pipelineType"] = json!("V2");
            p["stages"][1]["beforeEntry"] = json!({"conditions": [{"result": "ROLLBACK", "rules": [window_rule("* * * ? * MON-FRI *")]}]});
        },
        "InvalidStageDeclarationException",
        "beforeEntry: result ROLLBACK",
    ),
    (
        "PARALLEL pipelines do not roll back",
        |p| {
            p["pipelineType"] = json!("V2");
            p["executionMode"] = json!("PARALLEL");
            p["stages"][1]["onFailure"] = json!({"result": "ROLLBACK"});
        },
        "InvalidStageDeclarationException",
        "PARALLEL",
    ),
    (
        "a DeploymentWindow's Cron is a valid cron expression",
        |p| {
            p["pipelineType"] = json!("V2");
            p["stages"][1]["beforeEntry"] = json!({"conditions": [{"result": "FAIL", "rules": [window_rule("* * 9-17 * *")]}]});
        },
        "InvalidStageDeclarationException",
        "rule 'window': Cron",
    ),
    (
        "a valid deployment window is accepted",
        |p| {
            p["pipelineType"] = json!("V2");
            p["stages"][1]["onSuccess"] = json!({"conditions": [{"result": "ROLLBACK", "rules": [window_rule("* * 9-16 ? * MON-FRI *")]}]});
        },
        "ok",
        "",
    ),
    ("names follow the pattern", |p| p["stages"][1]["name"] = json!("Build It"), "ValidationException", "pipeline.stages.2.member.name"),
];

#[tokio::test]
async fn every_structure_rule_is_enforced_with_the_right_exception() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let mut failures = Vec::new();
    for (i, (rule, mutate, expected, needle)) in RULES.iter().enumerate() {
        let mut pipeline = base();
        pipeline["name"] = json!(format!("rule-{i}"));
        mutate(&mut pipeline);
        let body = json!({ "pipeline": pipeline }).to_string();
        let headers = signed_headers(server.addr, &account, "CodePipeline_20150709.CreatePipeline", body.as_bytes(), Utc::now());
        let r = raw_post(server.addr, &headers, body.as_bytes()).await;
        let got = if r.status == 200 { "ok".to_owned() } else { r.json()["__type"].as_str().unwrap_or("?").to_owned() };
        let message = if r.status == 200 { String::new() } else { r.json()["message"].as_str().unwrap_or("").to_owned() };
        if got != *expected || !message.contains(needle) || (r.status != 200 && r.status != 400) {
            failures.push(format!("{rule}: expected {expected} containing {needle:?}, got {} {got}: {message}", r.status));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // Refused pipelines left nothing behind.
    let listed = server.client(&account).list_pipelines().send().await.unwrap();
    let ok_rows = RULES.iter().filter(|r| r.2 == "ok").count();
    assert_eq!(listed.pipelines().len(), ok_rows);
}
