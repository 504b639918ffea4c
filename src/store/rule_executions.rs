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
}

const COLUMNS: &str = "seq, execution_id, rule_execution_id, pipeline_version, stage_name, condition_type, condition_index, \
     rule_name, status, summary, input, created_at";

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
pub async fn of_stages(conn: &mut PgConnection, account_id: &str, pipeline: &str, stages: &[(Uuid, String)]) -> Result<Vec<RuleExecutionRow>, sqlx::Error> {
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
