//! Stage conditions (V2). A stage's `beforeEntry`, `onSuccess` and
//! `onFailure` hooks each hold a condition of rules; the condition is met
//! when every rule succeeds, and its `result` applies when it is not (entry:
//! FAIL or SKIP; success: FAIL or ROLLBACK; failure: ROLLBACK or RETRY).
//! This server evaluates `VariableCheck` rules against the variables the
//! stage's actions see, and `DeploymentWindow` rules against the clock: a
//! closed window keeps the rule in progress until it opens (or the rule's
//! `timeoutInMinutes` passes), and the execution waits for it. Every other
//! rule provider needs an AWS service this server does not reach: such a
//! rule fails with a message saying so, so a condition that needs one is
//! never met (a gate that cannot be checked stays closed).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use regex::Regex;
use serde_json::Value;

/// A condition that was not met: the result to apply and why.
#[derive(Debug, PartialEq)]
pub struct Unmet {
    pub result: String,
    pub why: String,
}

/// What a hook's conditions come to now.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Met,
    Unmet(Unmet),
    /// A rule is still in progress and none has failed: evaluate again at
    /// this time.
    Pending(DateTime<Utc>),
}

/// What one rule came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Succeeded,
    Failed(String),
    /// Not decided yet; evaluate again at this time.
    InProgress(DateTime<Utc>),
    /// Still undecided when another rule had already failed the condition.
    Abandoned,
}

impl Verdict {
    /// The status a rule execution records.
    pub fn status(&self) -> &'static str {
        match self {
            Verdict::Succeeded => "Succeeded",
            Verdict::Failed(_) => "Failed",
            Verdict::InProgress(_) => "InProgress",
            Verdict::Abandoned => "Abandoned",
        }
    }

    pub fn summary(&self) -> Option<&str> {
        match self {
            Verdict::Failed(why) => Some(why),
            Verdict::Abandoned => Some("Not needed: another rule of the condition failed"),
            _ => None,
        }
    }
}

/// What one rule of a condition came to, as a rule execution records it.
#[derive(Debug)]
pub struct RuleOutcome {
    /// Which condition of the hook.
    pub condition: usize,
    pub rule_name: String,
    pub verdict: Verdict,
    /// RuleExecutionInput: type, configuration and resolved configuration.
    pub input: Value,
}

/// Evaluates the rules of a stage hook (`beforeEntry`, `onSuccess`,
/// `onFailure`) at `now`: what each came to, and what the hook's
/// conditions come to. `open`: None for a first evaluation; for the next
/// ones while the hook waits, the rules still in progress, by (condition,
/// rule name), with when they began (for their timeouts) — only those are
/// evaluated again, the others have succeeded. `can_wait`: false for a hook
/// that cannot wait (onFailure: the stage has failed), where a closed
/// window fails its rule at once.
pub fn check(
    hook: Option<&Value>,
    vars: &HashMap<String, String>,
    now: DateTime<Utc>,
    open: Option<&HashMap<(usize, String), DateTime<Utc>>>,
    can_wait: bool,
) -> (Vec<RuleOutcome>, Decision) {
    let mut outcomes = Vec::new();
    let mut unmet = None;
    let mut due: Option<DateTime<Utc>> = None;
    let conditions = hook.and_then(|h| h.get("conditions")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (index, condition) in conditions.iter().enumerate() {
        for r in condition["rules"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let rule_name = r["name"].as_str().unwrap_or_default().to_owned();
            let evaluated = match open.map(|o| o.get(&(index, rule_name.clone()))) {
                None => rule(r, vars, now, None),
                Some(Some(started)) => rule(r, vars, now, Some(*started)),
                Some(None) => Verdict::Succeeded,
            };
            let verdict = match evaluated {
                Verdict::InProgress(opens) if !can_wait => {
                    Verdict::Failed(format!("rule '{rule_name}': the deployment window is closed until {}", opens.to_rfc3339()))
                }
                v => v,
            };
            match (&verdict, &unmet) {
                (Verdict::Failed(why), None) => {
                    // onFailure may state its result on the hook rather than the condition.
                    let result = condition["result"].as_str().or_else(|| hook.and_then(|h| h["result"].as_str()));
                    unmet = Some(Unmet { result: result.unwrap_or("FAIL").to_owned(), why: why.clone() });
                }
                (Verdict::InProgress(at), _) => due = Some(due.map_or(*at, |d| d.min(*at))),
                _ => {}
            }
            outcomes.push(RuleOutcome { condition: index, rule_name, verdict, input: input(r, vars) });
        }
    }
    let decision = match (unmet, due) {
        (Some(unmet), _) => {
            for o in outcomes.iter_mut().filter(|o| matches!(o.verdict, Verdict::InProgress(_))) {
                o.verdict = Verdict::Abandoned;
            }
            Decision::Unmet(unmet)
        }
        (None, Some(at)) => Decision::Pending(at),
        (None, None) => Decision::Met,
    };
    (outcomes, decision)
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

fn rule(rule: &Value, vars: &HashMap<String, String>, now: DateTime<Utc>, started: Option<DateTime<Utc>>) -> Verdict {
    let name = rule["name"].as_str().unwrap_or_default();
    let named = |why: String| Verdict::Failed(format!("rule '{name}': {why}"));
    match rule["ruleTypeId"]["provider"].as_str().unwrap_or_default() {
        "VariableCheck" => variable_check(&rule["configuration"], vars).map_or_else(named, |()| Verdict::Succeeded),
        "DeploymentWindow" => match deployment_window(&rule["configuration"], vars, now) {
            Err(why) => named(why),
            Ok(None) => Verdict::Succeeded,
            Ok(Some(opens)) => {
                let Some(minutes) = rule["timeoutInMinutes"].as_i64() else { return Verdict::InProgress(opens) };
                let deadline = started.unwrap_or(now) + chrono::Duration::minutes(minutes);
                if now >= deadline {
                    named(format!("the deployment window did not open within the rule's timeout of {minutes} minutes"))
                } else {
                    Verdict::InProgress(opens.min(deadline))
                }
            }
        },
        provider => named(format!("{provider} rules cannot be evaluated by this server")),
    }
}

/// `Cron` (AWS's form: seconds minutes hours day-of-month month day-of-week
/// [year], with `?`, `L`, `W` and `#`; weekdays 1-7 are SUN-SAT) and
/// `TimeZone` (IANA name, default UTC). None: the window is open at `now`;
/// else when it next opens.
fn deployment_window(config: &Value, vars: &HashMap<String, String>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        config[key].as_str().map(|v| super::resolve(v, vars).map_err(|unknown| format!("variable {unknown} has no value"))).transpose()
    };
    let cron = text("Cron")?.ok_or("configuration Cron is missing")?;
    let zone: Tz = match text("TimeZone")? {
        None => Tz::UTC,
        Some(z) => z.parse().map_err(|_| format!("TimeZone '{z}' is not a time zone name of the IANA database"))?,
    };
    let cron = window_cron(&cron)?;
    let local = now.with_timezone(&zone);
    if cron.is_time_matching(&local).map_err(|e| format!("Cron cannot be evaluated: {e}"))? {
        return Ok(None);
    }
    let opens = cron.find_next_occurrence(&local, false).map_err(|_| "the deployment window given by Cron never opens".to_owned())?;
    Ok(Some(opens.with_timezone(&Utc)))
}

fn window_cron(text: &str) -> Result<Cron, String> {
    let mut fields: Vec<&str> = text.split_whitespace().collect();
    if !(6..=7).contains(&fields.len()) {
        return Err(format!(
            "Cron '{text}' must have 6 or 7 fields: seconds, minutes, hours, day-of-month, month, day-of-week and an optional year"
        ));
    }
    // AWS takes only `*` for seconds, and a window is whole minutes; `0`
    // (the Quartz habit) means the same here rather than one second a minute.
    if fields[0] == "0" {
        fields[0] = "*";
    }
    // Quartz: `L` alone in day-of-week is its last day, Saturday (7).
    if fields[5] == "L" {
        fields[5] = "7";
    }
    // Quartz semantics: `?` leaves one day field free, so both must hold.
    let parser = CronParser::builder().seconds(Seconds::Required).year(Year::Optional).dom_and_dow(true).alternative_weekdays(true).build();
    parser.parse(&fields.join(" ")).map_err(|e| format!("Cron '{text}' is not a valid cron expression: {e}"))
}

/// What is wrong with a rule's configuration, for the rule types this
/// server evaluates, as far as it can be told before the rule runs (values
/// with `#{…}` references are checked when they are resolved).
pub fn configuration_problem(rule: &Value) -> Option<String> {
    let config = &rule["configuration"];
    let literal = |key: &str| config[key].as_str().filter(|v| !v.contains("#{"));
    let missing = |keys: &[&str]| keys.iter().find(|k| config[**k].as_str().is_none()).map(|k| format!("configuration {k} is missing"));
    match rule["ruleTypeId"]["provider"].as_str().unwrap_or_default() {
        "VariableCheck" => missing(&["Variable", "Operator", "Value"]).or_else(|| {
            let operator = literal("Operator")?;
            if !["EQ", "NE", "CONTAINS", "MATCHES"].contains(&operator) {
                return Some(format!("Operator {operator} is not one of EQ, NE, CONTAINS, MATCHES"));
            }
            let pattern = literal("Value").filter(|_| operator == "MATCHES")?;
            Regex::new(pattern).err().map(|e| format!("Value is not a valid regular expression: {e}"))
        }),
        "DeploymentWindow" => missing(&["Cron"]).or_else(|| literal("Cron").and_then(|cron| window_cron(cron).err())).or_else(|| {
            literal("TimeZone")
                .filter(|z| z.parse::<Tz>().is_err())
                .map(|z| format!("TimeZone '{z}' is not a time zone name of the IANA database"))
        }),
        _ => None,
    }
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
    use chrono::TimeZone;
    use serde_json::json;

    fn hook(result: &str, rules: Value) -> Value {
        json!({"conditions": [{"result": result, "rules": rules}]})
    }

    fn var_check(name: &str, operator: &str, value: &str) -> Value {
        json!({"name": name, "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "VariableCheck", "version": "1"},
               "configuration": {"Variable": "#{Build.Branch}", "Operator": operator, "Value": value}})
    }

    fn window(cron: &str, zone: Option<&str>, timeout: Option<i64>) -> Value {
        let mut r = json!({"name": "window", "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "DeploymentWindow", "version": "1"},
                           "configuration": {"Cron": cron}});
        if let Some(z) = zone {
            r["configuration"]["TimeZone"] = json!(z);
        }
        if let Some(t) = timeout {
            r["timeoutInMinutes"] = json!(t);
        }
        r
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn decide(hook: &Value, vars: &HashMap<String, String>) -> Decision {
        check(Some(hook), vars, Utc::now(), None, true).1
    }

    fn unmet(d: Decision) -> Unmet {
        match d {
            Decision::Unmet(u) => u,
            other => panic!("expected an unmet condition, got {other:?}"),
        }
    }

    #[test]
    fn variable_checks_compare_and_name_what_failed() {
        let vars: HashMap<String, String> = [("Build.Branch".to_owned(), "release/1.2".to_owned())].into();
        for (op, value) in [("EQ", "release/1.2"), ("NE", "main"), ("CONTAINS", "release"), ("MATCHES", "^release/\\d+\\.\\d+$")] {
            assert_eq!(decide(&hook("FAIL", json!([var_check("r", op, value)])), &vars), Decision::Met, "{op} {value}");
        }
        let (outcomes, decision) = check(
            Some(&hook("SKIP", json!([var_check("ok", "NE", "x"), var_check("branch", "EQ", "main")]))),
            &vars,
            Utc::now(),
            None,
            true,
        );
        let unmet = unmet(decision);
        assert_eq!(unmet.result, "SKIP");
        assert_eq!(
            outcomes.iter().map(|o| (o.rule_name.as_str(), o.verdict.status())).collect::<Vec<_>>(),
            [("ok", "Succeeded"), ("branch", "Failed")]
        );
        assert_eq!(outcomes[0].input["resolvedConfiguration"]["Variable"], "release/1.2");
        assert_eq!(outcomes[0].input["configuration"]["Variable"], "#{Build.Branch}");
        assert_eq!(unmet.why, "rule 'branch': #{Build.Branch} is 'release/1.2', not EQ 'main'");
        let unknown = self::unmet(decide(&hook("FAIL", json!([var_check("r", "EQ", "x")])), &HashMap::new()));
        assert_eq!(unknown.why, "rule 'r': variable Build.Branch has no value");
    }

    #[test]
    fn a_condition_waiting_again_evaluates_only_its_rules_in_progress() {
        // Two windows: 09:00-09:59 and Saturdays. At Friday 09:30 the first is
        // open and the second closed; at Saturday 12:00 the first has closed, but it
        // succeeded already: the condition is met.
        let mut hours = window("* * 9 ? * * *", None, None);
        hours["name"] = json!("hours");
        let both = hook("FAIL", json!([hours, window("* * * ? * SAT *", None, None)]));
        let (outcomes, first) = check(Some(&both), &HashMap::new(), at(2026, 11, 27, 9, 30, 0), None, true);
        assert_eq!(first, Decision::Pending(at(2026, 11, 28, 0, 0, 0)));
        assert_eq!(outcomes.iter().map(|o| o.verdict.status()).collect::<Vec<_>>(), ["Succeeded", "InProgress"]);
        let open: HashMap<(usize, String), DateTime<Utc>> = [((0, "window".to_owned()), at(2026, 11, 27, 9, 30, 0))].into();
        let (outcomes, again) = check(Some(&both), &HashMap::new(), at(2026, 11, 28, 12, 0, 0), Some(&open), true);
        assert_eq!(again, Decision::Met);
        assert_eq!(outcomes.iter().map(|o| o.verdict.status()).collect::<Vec<_>>(), ["Succeeded", "Succeeded"]);
    }

    #[test]
    fn rule_configuration_is_checked_where_it_is_literal() {
        assert_eq!(configuration_problem(&var_check("r", "EQ", "x")), None);
        assert_eq!(configuration_problem(&var_check("r", "GT", "x")).unwrap(), "Operator GT is not one of EQ, NE, CONTAINS, MATCHES");
        assert!(configuration_problem(&var_check("r", "MATCHES", "(")).unwrap().starts_with("Value is not a valid regular expression"));
        assert_eq!(configuration_problem(&window("* * 9-16 ? * MON-FRI *", Some("Europe/Berlin"), None)), None);
        assert!(configuration_problem(&window("* * 25 ? * * *", None, None)).unwrap().contains("is not a valid cron expression"));
        assert!(configuration_problem(&window("* * * * *", None, None)).unwrap().contains("must have 6 or 7 fields"));
        assert!(configuration_problem(&window("* * * * * ?", Some("Mars/Olympus"), None)).unwrap().contains("Mars/Olympus"));
        assert_eq!(configuration_problem(&window("#{variables.window}", None, None)), None, "resolved when it runs");
        let mut no_cron = window("* * * * * ?", None, None);
        no_cron["configuration"] = json!({});
        assert_eq!(configuration_problem(&no_cron).unwrap(), "configuration Cron is missing");
    }

    #[test]
    fn rules_this_server_cannot_run_are_not_met() {
        let alarm =
            json!([{"name": "alarm", "ruleTypeId": {"category": "Rule", "owner": "AWS", "provider": "CloudWatchAlarm", "version": "1"}}]);
        let unmet = unmet(decide(&hook("FAIL", alarm), &HashMap::new()));
        assert_eq!(unmet.why, "rule 'alarm': CloudWatchAlarm rules cannot be evaluated by this server");
        assert_eq!(check(None, &HashMap::new(), Utc::now(), None, true).1, Decision::Met);
        assert_eq!(decide(&json!({"conditions": []}), &HashMap::new()), Decision::Met);
    }

    #[test]
    fn a_deployment_window_is_open_or_says_when_it_opens() {
        // Weekdays 09:00-17:59 in Berlin (UTC+1 in winter); 2026-11-27 is a Friday.
        let office = hook("FAIL", json!([window("0 * 9-17 ? * MON-FRI *", Some("Europe/Berlin"), None)]));
        let vars = HashMap::new();
        assert_eq!(check(Some(&office), &vars, at(2026, 11, 27, 8, 30, 0), None, true).1, Decision::Met);
        assert_eq!(check(Some(&office), &vars, at(2026, 11, 27, 16, 59, 59), None, true).1, Decision::Met);
        // Friday 18:00 in Berlin: closed until Monday 09:00 (08:00 UTC).
        let (outcomes, decision) = check(Some(&office), &vars, at(2026, 11, 27, 17, 0, 0), None, true);
        assert_eq!(decision, Decision::Pending(at(2026, 11, 30, 8, 0, 0)));
        assert_eq!(outcomes[0].verdict.status(), "InProgress");
        // Quartz weekdays: 1 is Sunday.
        let sundays = hook("FAIL", json!([window("* * * ? * 1", None, None)]));
        assert_eq!(check(Some(&sundays), &vars, at(2026, 11, 29, 12, 0, 0), None, true).1, Decision::Met);
        assert_eq!(check(Some(&sundays), &vars, at(2026, 11, 28, 12, 0, 0), None, true).1, Decision::Pending(at(2026, 11, 29, 0, 0, 0)));
        // `L` alone in day-of-week is Saturday; `6L` the month's last Friday; `2#1` its first Monday.
        let saturdays = hook("FAIL", json!([window("* * * ? * L *", None, None)]));
        assert_eq!(check(Some(&saturdays), &vars, at(2026, 11, 27, 12, 0, 0), None, true).1, Decision::Pending(at(2026, 11, 28, 0, 0, 0)));
        let last_friday = hook("FAIL", json!([window("* * * ? * 6L *", None, None)]));
        assert_eq!(
            check(Some(&last_friday), &vars, at(2026, 11, 28, 12, 0, 0), None, true).1,
            Decision::Pending(at(2026, 12, 25, 0, 0, 0))
        );
        let first_monday = hook("FAIL", json!([window("* * * ? * 2#1 *", None, None)]));
        assert_eq!(
            check(Some(&first_monday), &vars, at(2026, 11, 28, 12, 0, 0), None, true).1,
            Decision::Pending(at(2026, 12, 7, 0, 0, 0))
        );
        // A year field: this window has passed for good.
        let gone = hook("FAIL", json!([window("* * * * * ? 2020", None, None)]));
        assert_eq!(
            unmet(check(Some(&gone), &vars, at(2026, 11, 28, 12, 0, 0), None, true).1).why,
            "rule 'window': the deployment window given by Cron never opens"
        );
    }

    #[test]
    fn a_closed_window_fails_after_the_rules_timeout_and_bad_configuration_fails_at_once() {
        let r = hook("FAIL", json!([window("* * 9 ? * * *", None, Some(30))]));
        let began = at(2026, 11, 28, 12, 0, 0);
        let started: HashMap<(usize, String), DateTime<Utc>> = [((0, "window".to_owned()), began)].into();
        assert_eq!(check(Some(&r), &HashMap::new(), began, None, true).1, Decision::Pending(at(2026, 11, 28, 12, 30, 0)));
        let late = unmet(check(Some(&r), &HashMap::new(), at(2026, 11, 28, 12, 30, 0), Some(&started), true).1);
        assert_eq!(late.why, "rule 'window': the deployment window did not open within the rule's timeout of 30 minutes");
        let bad_zone = unmet(decide(&hook("FAIL", json!([window("* * * * * ?", Some("Mars/Olympus"), None)])), &HashMap::new()));
        assert!(bad_zone.why.contains("TimeZone 'Mars/Olympus'"), "{}", bad_zone.why);
        let short = unmet(decide(&hook("FAIL", json!([window("* * * * *", None, None)])), &HashMap::new()));
        assert!(short.why.contains("must have 6 or 7 fields"), "{}", short.why);
        // A failed rule settles the condition: a rule still waiting is abandoned.
        let (outcomes, decision) = check(
            Some(&hook("FAIL", json!([window("* * * ? * * 2199", None, None), var_check("v", "EQ", "x")]))),
            &HashMap::new(),
            began,
            None,
            true,
        );
        assert!(matches!(decision, Decision::Unmet(_)));
        assert_eq!(outcomes.iter().map(|o| o.verdict.status()).collect::<Vec<_>>(), ["Abandoned", "Failed"]);
    }
}
