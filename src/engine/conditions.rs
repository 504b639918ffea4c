//! Stage conditions (V2). A stage's `beforeEntry`, `onSuccess` and
//! `onFailure` hooks each hold a condition of rules; the condition is met
//! when every rule succeeds, and its `result` applies when it is not (entry:
//! FAIL or SKIP; success: FAIL or ROLLBACK; failure: ROLLBACK or RETRY).
//! This server evaluates `VariableCheck` rules against the variables the
//! stage's actions see. Every other rule provider needs an AWS service this
//! server does not reach: such a rule fails with a message saying so, so a
//! condition that needs one is never met (a gate that cannot be checked
//! stays closed).

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

/// A condition that was not met: the result to apply and why.
#[derive(Debug, PartialEq)]
pub struct Unmet {
    pub result: String,
    pub why: String,
}

/// What one rule of a condition came to, as a rule execution records it.
#[derive(Debug)]
pub struct RuleOutcome {
    /// Which condition of the hook.
    pub condition: usize,
    pub rule_name: String,
    /// Failed: with why.
    pub failure: Option<String>,
    /// RuleExecutionInput: type, configuration and resolved configuration.
    pub input: Value,
}

/// Evaluates every rule of a stage hook (`beforeEntry`, `onSuccess`, `onFailure`):
/// what each came to, and the first condition that is not met (None when
/// all are, or there are none).
pub fn check(hook: Option<&Value>, vars: &HashMap<String, String>) -> (Vec<RuleOutcome>, Option<Unmet>) {
    let mut outcomes = Vec::new();
    let mut unmet = None;
    let conditions = hook.and_then(|h| h.get("conditions")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (index, condition) in conditions.iter().enumerate() {
        for r in condition["rules"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let failure = rule(r, vars).err();
            if let (Some(why), None) = (&failure, &unmet) {
                // onFailure may state its result on the hook rather than the condition.
                let result = condition["result"].as_str().or_else(|| hook.and_then(|h| h["result"].as_str()));
                unmet = Some(Unmet { result: result.unwrap_or("FAIL").to_owned(), why: why.clone() });
            }
            outcomes.push(RuleOutcome { condition: index, rule_name: r["name"].as_str().unwrap_or_default().to_owned(), failure, input: input(r, vars) });
        }
    }
    (outcomes, unmet)
}

/// A rule's input as ListRuleExecutions shows it, references resolved
/// where they can be.
fn input(rule: &Value, vars: &HashMap<String, String>) -> Value {
    let mut resolved = rule["configuration"].clone();
    for v in resolved.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
        if let Some(r) = v.as_str().and_then(|s| super::resolve(s, vars).ok()) {
            *v = Value::String(r);
        }
    }
    let mut input = serde_json::json!({
        "ruleTypeId": rule["ruleTypeId"],
        "configuration": rule.get("configuration").cloned().unwrap_or_else(|| serde_json::json!({})),
        "resolvedConfiguration": if resolved.is_null() { serde_json::json!({}) } else { resolved },
        "inputArtifacts": [],
    });
    for key in ["roleArn", "region"] {
        if let Some(v) = rule.get(key) {
            input[key] = v.clone();
        }
    }
    input
}

/// Whether a stage hook holds any condition.
pub fn any(hook: Option<&Value>) -> bool {
    hook.and_then(|h| h.get("conditions")).and_then(Value::as_array).is_some_and(|c| !c.is_empty())
}

fn rule(rule: &Value, vars: &HashMap<String, String>) -> Result<(), String> {
    let name = rule["name"].as_str().unwrap_or_default();
    let provider = rule["ruleTypeId"]["provider"].as_str().unwrap_or_default();
    if provider != "VariableCheck" {
        return Err(format!("rule '{name}': {provider} rules cannot be evaluated by this server"));
    }
    variable_check(&rule["configuration"], vars).map_err(|why| format!("rule '{name}': {why}"))
}

/// `Variable` (usually a `#{namespace.name}` reference), `Operator` (EQ,
/// NE, CONTAINS, MATCHES) and `Value`.
fn variable_check(config: &Value, vars: &HashMap<String, String>) -> Result<(), String> {
    let text = |key: &str| config[key].as_str().ok_or_else(|| format!("configuration {key} is missing"));
    let (variable, operator, expected) = (text("Variable")?, text("Operator")?, text("Value")?);
    let actual = super::resolve(variable, vars).map_err(|unknown| format!("variable {unknown} has no value"))?;
    let holds = match operator {
        "EQ" => actual == expected,
        "NE" => actual != expected,
        "CONTAINS" => actual.contains(expected),
        "MATCHES" => Regex::new(expected).map_err(|e| format!("Value is not a valid regular expression: {e}"))?.is_match(&actual),
        other => return Err(format!("unknown Operator {other}")),
    };
    if holds { Ok(()) } else { Err(format!("{variable} is '{actual}', not {operator} '{expected}'")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(result: &str, rules: Value) -> Value {
        json!({"conditions": [{"result": result, "rules": rules}]})
    }

    fn var_check(name: &str, operator: &str, value: &str) -> Value {
        json!({"name": name, "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "VariableCheck", "version": "1"},
               "configuration": {"Variable": "#{Build.Branch}", "Operator": operator, "Value": value}})
    }

    #[test]
    fn variable_checks_compare_and_name_what_failed() {
        let vars: HashMap<String, String> = [("Build.Branch".to_owned(), "release/1.2".to_owned())].into();
        for (op, value) in [("EQ", "release/1.2"), ("NE", "main"), ("CONTAINS", "release"), ("MATCHES", "^release/\\d+\\.\\d+$")] {
            assert_eq!(check(Some(&hook("FAIL", json!([var_check("r", op, value)]))), &vars).1, None, "{op} {value}");
        }
        let (outcomes, unmet) = check(Some(&hook("SKIP", json!([var_check("ok", "NE", "x"), var_check("branch", "EQ", "main")]))), &vars);
        let unmet = unmet.unwrap();
        assert_eq!(unmet.result, "SKIP");
        assert_eq!(outcomes.iter().map(|o| (o.rule_name.as_str(), o.failure.is_none())).collect::<Vec<_>>(), [("ok", true), ("branch", false)]);
        assert_eq!(outcomes[0].input["resolvedConfiguration"]["Variable"], "release/1.2");
        assert_eq!(outcomes[0].input["configuration"]["Variable"], "#{Build.Branch}");
        assert_eq!(unmet.why, "rule 'branch': #{Build.Branch} is 'release/1.2', not EQ 'main'");
        let unknown = check(Some(&hook("FAIL", json!([var_check("r", "EQ", "x")]))), &HashMap::new()).1.unwrap();
        assert_eq!(unknown.why, "rule 'r': variable Build.Branch has no value");
    }

    #[test]
    fn rules_this_server_cannot_run_are_not_met() {
        let alarm = json!([{"name": "alarm", "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "CloudWatchAlarm", "version": "1"}}]);
        let unmet = check(Some(&hook("FAIL", alarm)), &HashMap::new()).1.unwrap();
        assert_eq!(unmet.why, "rule 'alarm': CloudWatchAlarm rules cannot be evaluated by this server");
        assert_eq!(check(None, &HashMap::new()).1, None);
        assert_eq!(check(Some(&json!({"conditions": []})), &HashMap::new()).1, None);
    }
}
