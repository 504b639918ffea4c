//! Rule executions: what each rule of a stage condition came to.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::executions::ExecutionRow;

pub struct NewRuleExecution<'a> {
    pub condition_index: i32,
    pub rule_name: &'a str,
    pub status: &'a str,
    pub summary: Option<&'a str>,
    pub input: &'a Value,
}

/// Records the rules of one hook (`BEFORE_ENTRY`, `ON_SUCCESS`, `ON_FAILURE`) of a stage
/// of an execution, in one statement.
pub async fn insert(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    e: &ExecutionRow,
    stage: &str,
    condition_type: &str,
    rules: &[NewRuleExecution<'_>],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into rule_execution (account_id, pipeline_name, execution_id, rule_execution_id, pipeline_version, stage_name, \
            condition_type, condition_index, rule_name, status, summary, input) \
         select $1, $2, $3, gen_random_uuid(), $4, $5, $6, n.condition_index, n.rule_name, n.status, n.summary, n.input \
         from unnest($7::int[], $8::text[], $9::text[], $10::text[], $11::jsonb[]) with ordinality \
            as n(condition_index, rule_name, status, summary, input, ord) order by n.ord",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(e.execution_id)
    .bind(e.pipeline_version)
    .bind(stage)
    .bind(condition_type)
    .bind(rules.iter().map(|r| r.condition_index).collect::<Vec<_>>())
    .bind(rules.iter().map(|r| r.rule_name.to_owned()).collect::<Vec<_>>())
    .bind(rules.iter().map(|r| r.status.to_owned()).collect::<Vec<_>>())
    .bind(rules.iter().map(|r| r.summary.map(str::to_owned)).collect::<Vec<_>>())
    .bind(rules.iter().map(|r| r.input.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleExecutionRow {
    pub seq: i64,
    pub execution_id: Uuid,
    pub rule_execution_id: Uuid,
    pub pipeline_version: i32,
    pub stage_name: String,
    pub condition_type: String,
    pub condition_index: i32,
    pub rule_name: String,
    pub status: String,
    pub summary: Option<String>,
    pub input: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RuleExecutionRow {
    /// RuleExecutionStatus has no Overridden: a rule whose condition was
    /// overridden did not finish.
    pub fn api_status(&self) -> &str {
        if self.status == "Overridden" { "Abandoned" } else { &self.status }
    }
}

const COLUMNS: &str = "seq, execution_id, rule_execution_id, pipeline_version, stage_name, condition_type, condition_index, \
     rule_name, status, summary, input, created_at, updated_at";

/// Newest first, of one execution or all, before `before_seq`.
pub async fn list(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Option<Uuid>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<RuleExecutionRow>, sqlx::Error> {
    super::history_page(conn, &format!("select {COLUMNS} from rule_execution"), account_id, pipeline, execution_id, before_seq, limit).await
}

/// The rules evaluated for each (execution, stage) pair given, oldest first.
pub async fn of_stages(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    stages: &[(Uuid, String)],
) -> Result<Vec<RuleExecutionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from rule_execution r join unnest($3::uuid[], $4::text[]) as k(e, s) \
            on r.execution_id = k.e and r.stage_name = k.s collate \"C\" \
         where r.account_id = $1 and r.pipeline_name = $2 order by r.seq"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(stages.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(stages.iter().map(|s| s.1.clone()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

/// The rules of one hook of a stage of an execution still in progress.
pub async fn in_progress(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Uuid,
    stage: &str,
    condition_type: &str,
) -> Result<Vec<RuleExecutionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from rule_execution where account_id = $1 and pipeline_name = $2 and execution_id = $3 \
            and status = 'InProgress' and stage_name = $4 and condition_type = $5 order by seq"
    ))
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .bind(stage)
    .bind(condition_type)
    .fetch_all(conn)
    .await
}

/// Records how rules that were in progress ended: (rule execution, status, summary).
pub async fn settle(conn: &mut PgConnection, account_id: &str, settled: &[(Uuid, &str, Option<&str>)]) -> Result<(), sqlx::Error> {
    if settled.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update rule_execution r set status = n.status, summary = n.summary, updated_at = now() \
         from unnest($2::uuid[], $3::text[], $4::text[]) as n(id, status, summary) \
         where r.account_id = $1 and r.rule_execution_id = n.id and r.status = 'InProgress'",
    )
    .bind(account_id)
    .bind(settled.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(settled.iter().map(|s| s.1.to_owned()).collect::<Vec<_>>())
    .bind(settled.iter().map(|s| s.2.map(str::to_owned)).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every rule of the execution still in progress (of one stage hook
/// when given) with `status` (Abandoned: stopped; Overridden) and
/// `summary`.
pub async fn close_open(
    conn: &mut PgConnection,
    account_id: &str,
    pipeline: &str,
    execution_id: Uuid,
    hook: Option<(&str, &str)>,
    status: &str,
    summary: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update rule_execution set status = $6, summary = coalesce($7, summary), updated_at = now() \
         where account_id = $1 and pipeline_name = $2 and execution_id = $3 and status = 'InProgress' \
            and ($4::text is null or (stage_name = $4 and condition_type = $5))",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .bind(hook.map(|h| h.0))
    .bind(hook.map(|h| h.1))
    .bind(status)
    .bind(summary)
    .execute(conn)
    .await?;
    Ok(())
}
