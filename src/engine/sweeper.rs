//! Background work with deadlines: jobs dispatched but never acknowledged go
//! back to the queue, jobs or approvals past their timeout fail their
//! action, stage conditions in progress are evaluated again when due,
//! stages whose last result's server died before the engine ran are moved on,
//! and jobs still queued for a type deleted meanwhile fail their action.
//! Safe with several replicas: batches are picked with SKIP LOCKED,
//! every change is a compare-and-set, and each timeout is applied in its own
//! transaction under the pipeline's lock, so two sweepers never apply one
//! twice. A deadline that cannot be applied (the engine fails on it) is
//! tried again later, ever less often, and left out of the batches
//! meanwhile, so that no number of such deadlines holds up the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use crate::App;
use crate::store::executions::{self as store, ActionUpdate};
use crate::store::jobs::{self, JobEnd};

const BATCH: i64 = 100;

/// A running stage whose actions have all ended is moved on by the result
/// that ended the last of them, after its commit (`engine::settle`); if that
/// server died in between, the sweeper does it once the stage has been
/// quiet for this many sweep intervals.
const STRANDED_AFTER_SWEEPS: u32 = 10;

/// How long after a custom type's deletion the sweeper looks for jobs
/// still queued for it: a start that read the type just before the
/// deletion committed can queue one the deletion did not see, and such a
/// start commits within its own request.
const DELETED_TYPES_WATCHED: chrono::Duration = chrono::Duration::hours(1);

pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut failing = Failing::new(app.config.sweep_interval);
    loop {
        if let Err(e) = tick(&app, &mut failing).await {
            tracing::warn!(error = %format!("{e:#}"), "sweeper pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(app.config.sweep_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One pass over everything that is overdue now.
async fn tick(app: &App, failing: &mut Failing) -> anyhow::Result<()> {
    let now = Utc::now();
    let ack_deadline = now - chrono::Duration::from_std(app.config.job_ack_timeout)?;
    let mut conn = app.db.acquire().await?;
    let requeued = jobs::requeue_unacknowledged(&mut conn, ack_deadline, 1000).await?;
    if requeued > 0 {
        tracing::info!(requeued, "requeued jobs that were never acknowledged");
    }
    // One pipeline the engine cannot advance must not hold up the others:
    // each item fails on its own, and waits before it is tried again. Job,
    // action and execution ids never collide, so one list serves all three.
    let skip = failing.waiting(now);
    for (account_id, pipeline, job_id, action_execution_id) in jobs::overdue(&mut conn, now, BATCH, &skip).await? {
        let done =
            time_out(app, &account_id, &pipeline, Some(job_id), action_execution_id, "The job did not finish within its timeout").await;
        failing.note(job_id, done, now, &account_id, &pipeline, "job timeout");
    }
    for (account_id, pipeline, action_execution_id) in store::overdue_actions(&mut conn, now, BATCH, &skip).await? {
        let done =
            time_out(app, &account_id, &pipeline, None, action_execution_id, "The approval was not answered within its timeout").await;
        failing.note(action_execution_id, done, now, &account_id, &pipeline, "approval timeout");
    }
    for (account_id, pipeline, execution_id) in store::due_checks(&mut conn, now, BATCH, &skip).await? {
        let done = check_again(app, &account_id, &pipeline, execution_id, now).await;
        failing.note(execution_id, done, now, &account_id, &pipeline, "stage condition");
    }
    for (account_id, pipeline, action_execution_id, id) in
        jobs::queued_of_deleted_types(&mut conn, now - DELETED_TYPES_WATCHED, BATCH, &skip).await?
    {
        let done = fail_unpollable(app, &account_id, &pipeline, action_execution_id, &id).await;
        failing.note(action_execution_id, done, now, &account_id, &pipeline, "job of a deleted type");
    }
    let quiet_since = now - chrono::Duration::from_std(app.config.sweep_interval * STRANDED_AFTER_SWEEPS)?;
    for (account_id, pipeline, execution_id, mode) in store::stranded(&mut conn, quiet_since, BATCH, &skip).await? {
        tracing::info!(%account_id, %pipeline, %execution_id, "moving on a stage whose actions all ended");
        let done = super::settle(app, &account_id, &pipeline, execution_id, &mode).await.map_err(|e| anyhow::anyhow!("{e}"));
        failing.note(execution_id, done, now, &account_id, &pipeline, "stranded stage");
    }
    Ok(())
}

/// The deadlines (job, action or execution ids) this sweeper could not
/// apply, each with when to try it again: the sweep interval, doubled at
/// every failure up to [`Failing::LONGEST`]. Replicas keep their own.
struct Failing {
    first: Duration,
    items: HashMap<Uuid, (u32, DateTime<Utc>)>,
}

impl Failing {
    const LONGEST: Duration = Duration::from_secs(300);
    /// Beyond this many, the oldest is forgotten (tried at the next pass).
    const MOST: usize = 10_000;

    fn new(first: Duration) -> Failing {
        Failing { first, items: HashMap::new() }
    }

    /// The ids whose next try is still to come: left out of this pass. An
    /// id long past its try that was never noted again was settled
    /// elsewhere (a result, another replica) and is forgotten.
    fn waiting(&mut self, now: DateTime<Utc>) -> Vec<Uuid> {
        let settled = now - chrono::Duration::from_std(Self::LONGEST).unwrap_or(chrono::Duration::MAX);
        self.items.retain(|_, (_, retry_at)| *retry_at > settled);
        self.items.iter().filter(|(_, (_, retry_at))| *retry_at > now).map(|(id, _)| *id).collect()
    }

    fn note(&mut self, id: Uuid, done: anyhow::Result<()>, now: DateTime<Utc>, account_id: &str, pipeline: &str, what: &str) {
        let Err(e) = done else {
            self.items.remove(&id);
            return;
        };
        let failures = self.items.get(&id).map_or(1, |(n, _)| n + 1);
        let wait = self.first.saturating_mul(1 << (failures - 1).min(20)).min(Self::LONGEST);
        let retry_at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        if self.items.len() >= Self::MOST
            && !self.items.contains_key(&id)
            && let Some(oldest) = self.items.iter().min_by_key(|(_, (_, at))| *at).map(|(id, _)| *id)
        {
            self.items.remove(&oldest);
        }
        self.items.insert(id, (failures, retry_at));
        tracing::warn!(
            %account_id, %pipeline, what, %id, failures, retry_in_secs = wait.as_secs_f64(), error = %format!("{e:#}"),
            "sweeper could not apply a deadline"
        );
    }
}

/// Fails an action whose job is queued for a deleted type, in a
/// transaction of its own.
async fn fail_unpollable(
    app: &App,
    account_id: &str,
    pipeline: &str,
    action_execution_id: Uuid,
    id: &crate::pipeline::ActionTypeId,
) -> anyhow::Result<()> {
    let mut tx = app.db.begin().await?;
    super::fail_unpollable(&mut tx, app, account_id, pipeline, action_execution_id, id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    Ok(())
}

/// Evaluates an execution's stage condition again, unless another sweeper
/// (or an override) got there first.
async fn check_again(app: &App, account_id: &str, pipeline: &str, execution_id: Uuid, now: chrono::DateTime<Utc>) -> anyhow::Result<()> {
    let mut tx = app.db.begin().await?;
    let Some(locked) = store::lock_pipeline(&mut tx, account_id, pipeline).await? else {
        return Ok(());
    };
    let due = store::get_execution(&mut tx, account_id, pipeline, execution_id).await?.and_then(|e| e.check_due);
    if due.is_none_or(|d| d > now) {
        return Ok(());
    }
    let scope = super::app_scope(app, account_id, pipeline, locked.generation);
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
    let mut tx = app.db.begin().await?;
    let Some(locked) = store::lock_pipeline(&mut tx, account_id, pipeline).await? else {
        return Ok(());
    };
    let scope = super::app_scope(app, account_id, pipeline, locked.generation);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(failing: &mut Failing, id: Uuid, now: DateTime<Utc>) {
        failing.note(id, Err(anyhow::anyhow!("broken")), now, "a", "p", "test");
    }

    #[test]
    fn a_failing_deadline_waits_ever_longer_and_is_forgotten_once_applied() {
        let secs = |n: f64| chrono::Duration::milliseconds((n * 1000.0) as i64);
        let mut failing = Failing::new(Duration::from_secs(1));
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        fail(&mut failing, id, now);
        assert_eq!(failing.waiting(now), vec![id]);
        assert_eq!(failing.waiting(now + secs(1.5)), Vec::<Uuid>::new(), "1 s after one failure");
        fail(&mut failing, id, now);
        assert_eq!(failing.waiting(now + secs(1.5)), vec![id], "2 s after two");
        assert_eq!(failing.waiting(now + secs(2.5)), Vec::<Uuid>::new());
        for _ in 0..30 {
            fail(&mut failing, id, now);
        }
        assert_eq!(failing.waiting(now + secs(299.0)), vec![id]);
        assert_eq!(failing.waiting(now + secs(301.0)), Vec::<Uuid>::new(), "at most five minutes");
        failing.note(other, Ok(()), now, "a", "p", "test");
        failing.note(id, Ok(()), now, "a", "p", "test");
        assert!(failing.items.is_empty(), "applied at last");

        fail(&mut failing, other, now);
        failing.waiting(now + secs(300.0));
        assert_eq!(failing.items.len(), 1, "due, and tried again at the next pass");
        failing.waiting(now + secs(302.0));
        assert!(failing.items.is_empty(), "never seen again: settled elsewhere");
    }
}
