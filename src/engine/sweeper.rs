//! Background work with deadlines: jobs dispatched but never acknowledged go
//! back to the queue, jobs or approvals past their timeout fail their
//! action, and stage conditions in progress are evaluated again when due.
//! Safe with several replicas: batches are picked with SKIP LOCKED,
//! every change is a compare-and-set, and each timeout is applied in its own
//! transaction under the pipeline's lock, so two sweepers never apply one
//! twice.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;
use uuid::Uuid;

use super::Scope;
use crate::App;
use crate::store::executions::{self as store, ActionUpdate};
use crate::store::jobs::{self, JobEnd};

const BATCH: i64 = 100;

pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = tick(&app).await {
            tracing::warn!(error = %format!("{e:#}"), "sweeper pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(app.config.sweep_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One pass over everything that is overdue now.
pub async fn tick(app: &App) -> anyhow::Result<()> {
    let now = Utc::now();
    let ack_deadline = now - chrono::Duration::from_std(app.config.job_ack_timeout)?;
    let mut conn = app.pool.acquire().await?;
    let requeued = jobs::requeue_unacknowledged(&mut conn, ack_deadline, 1000).await?;
    if requeued > 0 {
        tracing::info!(requeued, "requeued jobs that were never acknowledged");
    }
    // One pipeline the engine cannot advance must not hold up the others:
    // each item fails on its own, and is tried again at the next pass.
    for (account_id, pipeline, job_id, action_execution_id) in jobs::overdue(&mut conn, now, BATCH).await? {
        let done = time_out(app, &account_id, &pipeline, Some(job_id), action_execution_id, "The job did not finish within its timeout").await;
        warn_unless_done(done, &account_id, &pipeline, "job timeout");
    }
    for (account_id, pipeline, action_execution_id) in store::overdue_actions(&mut conn, now, BATCH).await? {
        let done = time_out(app, &account_id, &pipeline, None, action_execution_id, "The approval was not answered within its timeout").await;
        warn_unless_done(done, &account_id, &pipeline, "approval timeout");
    }
    for (account_id, pipeline, execution_id) in store::due_checks(&mut conn, now, BATCH).await? {
        warn_unless_done(check_again(app, &account_id, &pipeline, execution_id, now).await, &account_id, &pipeline, "stage condition");
    }
    Ok(())
}

fn warn_unless_done(done: anyhow::Result<()>, account_id: &str, pipeline: &str, what: &str) {
    if let Err(e) = done {
        tracing::warn!(%account_id, %pipeline, what, error = %format!("{e:#}"), "sweeper could not apply a deadline");
    }
}

/// Evaluates an execution's stage condition again, unless another sweeper
/// (or an override) got there first.
async fn check_again(app: &App, account_id: &str, pipeline: &str, execution_id: Uuid, now: chrono::DateTime<Utc>) -> anyhow::Result<()> {
    let mut tx = app.pool.begin().await?;
    let Some(locked) = store::lock_pipeline(&mut tx, account_id, pipeline).await? else {
        return Ok(());
    };
    let due = store::get_execution(&mut tx, account_id, pipeline, execution_id).await?.and_then(|e| e.check_due);
    if due.is_none_or(|d| d > now) {
        return Ok(());
    }
    let scope = scope(app, account_id, pipeline, locked.generation);
    super::advance(&mut tx, scope, vec![execution_id]).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    Ok(())
}

async fn time_out(
    app: &App,
    account_id: &str,
    pipeline: &str,
    job_id: Option<Uuid>,
    action_execution_id: Uuid,
    message: &str,
) -> anyhow::Result<()> {
    let mut tx = app.pool.begin().await?;
    let Some(locked) = store::lock_pipeline(&mut tx, account_id, pipeline).await? else {
        return Ok(());
    };
    let scope = scope(app, account_id, pipeline, locked.generation);
    let update = ActionUpdate { status: Some("Failed"), error_code: Some("TimedOut"), error_message: Some(message), ..Default::default() };
    let ended = match job_id {
        Some(job_id) => match jobs::end_job(&mut tx, account_id, job_id, None, "TimedOut", &update).await? {
            JobEnd::Ended { action: Some(ended), .. } => super::action_ended(&mut tx, scope, ended.0, ended.1).await,
            JobEnd::Ended { action: None, .. } => Ok(()),
            // Another sweeper or the worker's own result got there first.
            JobEnd::NotFound | JobEnd::NotInProgress(_) => return Ok(()),
        },
        None => super::complete_action(&mut tx, scope, action_execution_id, &update).await.map(drop),
    };
    ended.map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    Ok(())
}

/// The engine's scope for a pipeline whose lock the sweeper holds.
fn scope<'a>(app: &'a App, account_id: &'a str, pipeline: &'a str, generation: Uuid) -> Scope<'a> {
    Scope { account_id, region: &app.config.region, pipeline, generation, declarations: &app.declarations, secrets: &app.secrets }
}
