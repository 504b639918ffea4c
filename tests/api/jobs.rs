//! Job workers: claims, nonces, timeouts, isolation and concurrency, with
//! real connections.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::*;
use millrace::config::Config;

use crate::helpers::{TestServer, assert_known_states, custom_action_type, error_code};

fn type_id(category: ActionCategory, provider: &str) -> ActionTypeId {
    ActionTypeId::builder().category(category).owner(ActionOwner::Custom).provider(provider).version("1").build().unwrap()
}

/// A V2 PARALLEL pipeline: custom source, then one custom `Worker` action.
async fn worker_pipeline(client: &Client, name: &str, queryable: bool) {
    worker_pipeline_in_pool(client, name, queryable, "blue").await
}

/// A V2 pipeline of the given mode: the custom `Checkout` source, then `stages`.
fn source_then(name: &str, mode: ExecutionMode, stages: Vec<(&str, Vec<ActionDeclaration>)>) -> PipelineDeclaration {
    let source = ActionDeclaration::builder()
        .name("Checkout")
        .action_type_id(type_id(ActionCategory::Source, "Repo"))
        .output_artifacts(OutputArtifact::builder().name("code").build().unwrap())
        .build()
        .unwrap();
    let mut p = PipelineDeclaration::builder()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/pipeline")
        .pipeline_type(PipelineType::V2)
        .execution_mode(mode)
        .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifacts").build().unwrap())
        .stages(StageDeclaration::builder().name("Source").actions(source).build().unwrap());
    for (stage, actions) in stages {
        p = p.stages(StageDeclaration::builder().name(stage).set_actions(Some(actions)).build().unwrap());
    }
    p.build().unwrap()
}

/// A custom `Worker` action for workers of `pool`, reading the source's artifact.
fn work_action(name: &str, pool: &str) -> ActionDeclaration {
    ActionDeclaration::builder()
        .name(name)
        .action_type_id(worker_type())
        .configuration("Pool", pool)
        .input_artifacts(InputArtifact::builder().name("code").build().unwrap())
        .build()
        .unwrap()
}

/// [`worker_pipeline`] whose Work action asks for workers of `pool`.
async fn worker_pipeline_in_pool(client: &Client, name: &str, queryable: bool, pool: &str) {
    custom_action_type(client, "Source", "Repo", &[]).await;
    custom_action_type(client, "Build", "Worker", &[("Pool", true, false, queryable)]).await;
    let p = source_then(name, ExecutionMode::Parallel, vec![("Work", vec![work_action("Work", pool)])]);
    client.create_pipeline().pipeline(p).send().await.unwrap();
    // Run the CreatePipeline execution to the end, so the tests start from
    // an empty queue.
    let jobs = client.poll_for_jobs().action_type_id(type_id(ActionCategory::Source, "Repo")).send().await.unwrap();
    let job = &jobs.jobs()[0];
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
    let mut poll = client.poll_for_jobs().action_type_id(worker_type());
    if queryable {
        poll = poll.query_param("Pool", pool);
    }
    let jobs = poll.send().await.unwrap();
    let job = &jobs.jobs()[0];
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
}

#[tokio::test]
async fn a_pipeline_created_again_under_its_name_runs_its_new_definition() {
    // Servers cache declarations: the deleted pipeline's version 1 must not
    // stand in for the new pipeline's version 1.
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    worker_pipeline_in_pool(&client, "p", false, "blue").await;
    client.delete_pipeline().name("p").send().await.unwrap();
    worker_pipeline_in_pool(&client, "p", false, "green").await;
    start_many(&client, "p", 1).await;
    let jobs = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap();
    let configuration = jobs.jobs()[0].data().unwrap().action_configuration().unwrap().configuration().unwrap();
    assert_eq!(configuration.get("Pool").map(String::as_str), Some("green"));
}

/// DeletePipeline takes its actions and jobs with it (they have no foreign
/// key to cascade): a worker holding one of its jobs is told it is gone, and
/// nothing of it is left in the tables, while another pipeline's stay.
#[tokio::test]
async fn a_deleted_pipeline_takes_its_actions_and_jobs_with_it() {
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    worker_pipeline(&client, "p", false).await;
    worker_pipeline(&client, "q", false).await;
    start_many(&client, "p", 3).await;
    start_many(&client, "q", 1).await;
    let claimed = client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(10).send().await.unwrap();
    assert_eq!(claimed.jobs().len(), 4);
    client.delete_pipeline().name("p").send().await.unwrap();
    let pipeline_of = |job: &Job| job.data().unwrap().pipeline_context().unwrap().pipeline_name().unwrap().to_owned();
    for job in claimed.jobs() {
        let ack = client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await;
        if pipeline_of(job) == "p" {
            assert_eq!(error_code(&ack.unwrap_err()), "JobNotFoundException");
        } else {
            ack.unwrap();
        }
    }
    let count = |table: &'static str, pipeline: &'static str| {
        let pool = server.pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table} where pipeline_name = $1"))
                .bind(pipeline)
                .fetch_one(&pool)
                .await
                .unwrap();
            n
        }
    };
    assert_eq!((count("job", "p").await, count("action_execution", "p").await), (0, 0));
    assert!(count("job", "q").await >= 2 && count("action_execution", "q").await >= 2, "q's are kept");
}

/// Starts `n` executions whose source revision is given up front, so each
/// queues exactly one Work job.
async fn start_many(client: &Client, pipeline: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
        let starts = chunk.iter().map(|i| {
            let client = client.clone();
            let pipeline = pipeline.to_owned();
            let i = *i;
            tokio::spawn(async move {
                let revision = SourceRevisionOverride::builder()
                    .action_name("Checkout")
                    .revision_type(SourceRevisionType::CommitId)
                    .revision_value(format!("rev-{i}"))
                    .build()
                    .unwrap();
                client
                    .start_pipeline_execution()
                    .name(pipeline)
                    .source_revisions(revision)
                    .send()
                    .await
                    .unwrap()
                    .pipeline_execution_id()
                    .unwrap()
                    .to_owned()
            })
        });
        for s in starts.collect::<Vec<_>>() {
            ids.push(s.await.unwrap());
        }
    }
    ids
}

fn worker_type() -> ActionTypeId {
    type_id(ActionCategory::Build, "Worker")
}

#[tokio::test]
async fn sixteen_pollers_claim_a_thousand_jobs_exactly_once() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    worker_pipeline(&client, "p", false).await;
    start_many(&client, "p", 1000).await;
    let pollers = (0..16).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let out = client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(10).send().await.unwrap();
                if out.jobs().is_empty() {
                    return mine;
                }
                mine.extend(out.jobs().iter().map(|j| j.id().unwrap().to_owned()));
            }
        })
    });
    let mut all = Vec::new();
    for p in pollers.collect::<Vec<_>>() {
        all.extend(p.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 1000, "every job claimed");
    assert_eq!(unique.len(), 1000, "no job claimed twice");
}

/// Concurrent polls, acknowledgements and results share statements
/// (`store::batch`); each still gets only its own account's jobs, and only
/// its own nonce works.
#[tokio::test]
async fn calls_sharing_a_statement_get_only_their_own_accounts_answers() {
    let server = TestServer::start().await;
    let (a, b) = (server.account("a").await, server.account("b").await);
    let (client, other) = (server.client(&a), server.client(&b));
    // Two actions a stage: their results take the shared statement, not
    // the transaction of a job alone in its group.
    fan_out_pipeline(&client, "p", ExecutionMode::Parallel, 2).await;
    fan_out_pipeline(&other, "p", ExecutionMode::Parallel, 2).await;
    let mut executions = HashSet::new();
    executions.extend(start_many(&client, "p", 12).await.into_iter().map(|e| ("a", e)));
    executions.extend(start_many(&other, "p", 12).await.into_iter().map(|e| ("b", e)));

    // Both accounts poll their types of the same id at once, one job a poll.
    let polls = (0..48).map(|i| {
        let (who, client) = if i % 2 == 0 { ("a", client.clone()) } else { ("b", other.clone()) };
        tokio::spawn(async move {
            let out = client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(1).send().await.unwrap();
            out.jobs().iter().map(|j| (who, j.clone())).collect::<Vec<_>>()
        })
    });
    let mut jobs = Vec::new();
    for p in polls.collect::<Vec<_>>() {
        jobs.extend(p.await.unwrap());
    }
    assert_eq!(jobs.len(), 48, "every poll got one job");
    for (who, job) in &jobs {
        let execution = job.data().unwrap().pipeline_context().unwrap().pipeline_execution_id().unwrap();
        assert!(executions.contains(&(*who, execution.to_owned())), "{who} polled a job of its own execution");
    }

    // At once: every job is acknowledged by the other account with its
    // nonce and by its owner with a wrong one; half of them also by their
    // owner with the right one.
    let acks = jobs.iter().enumerate().flat_map(|(i, (who, job))| {
        let (mine, theirs) = if *who == "a" { (&client, &other) } else { (&other, &client) };
        let (id, nonce) = (job.id().unwrap().to_owned(), job.nonce().unwrap().to_owned());
        let mut calls =
            vec![(theirs.clone(), nonce.clone(), "JobNotFoundException"), (mine.clone(), "wrong".into(), "InvalidNonceException")];
        if i % 2 == 0 {
            calls.push((mine.clone(), nonce, "InProgress"));
        }
        calls.into_iter().map(move |(client, nonce, expected)| {
            let id = id.clone();
            tokio::spawn(async move {
                let answer = match client.acknowledge_job().job_id(id).nonce(nonce).send().await {
                    Ok(out) => out.status().unwrap().as_str().to_owned(),
                    Err(e) => error_code(&e),
                };
                (answer, expected)
            })
        })
    });
    for ack in acks.collect::<Vec<_>>() {
        let (answer, expected) = ack.await.unwrap();
        assert_eq!(answer, expected);
    }

    // Results likewise: the other account's find no job; the owner's end
    // the acknowledged jobs and are refused for the others.
    let results = jobs.iter().enumerate().flat_map(|(i, (who, job))| {
        let (mine, theirs) = if *who == "a" { (&client, &other) } else { (&other, &client) };
        let mine_expected = if i % 2 == 0 { "ok" } else { "InvalidJobStateException" };
        [(theirs.clone(), "JobNotFoundException"), (mine.clone(), mine_expected)].map(|(client, expected)| {
            let id = job.id().unwrap().to_owned();
            tokio::spawn(async move {
                let answer = match client.put_job_success_result().job_id(id).send().await {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => error_code(&e),
                };
                (answer, expected)
            })
        })
    });
    for result in results.collect::<Vec<_>>() {
        let (answer, expected) = result.await.unwrap();
        assert_eq!(answer, expected);
    }
}

#[tokio::test]
async fn two_servers_on_one_database_share_the_work_without_double_claims() {
    let mut config = Config::for_tests();
    config.sweep_interval = Duration::from_millis(50);
    let one = TestServer::start_with(config.clone()).await;
    let two = TestServer::start_full(one.database_url.clone(), one.master_key.clone(), config).await;
    let account = one.account("a").await;
    let (c1, c2) = (one.client(&account), two.client(&account));
    worker_pipeline(&c1, "p", false).await;
    let ids = start_many(&c2, "p", 60).await;
    let workers = (0..8).map(|i| {
        let client = if i % 2 == 0 { c1.clone() } else { c2.clone() };
        tokio::spawn(async move {
            let mut done = Vec::new();
            for _ in 0..200 {
                let out = client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(3).send().await.unwrap();
                if out.jobs().is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                for job in out.jobs() {
                    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
                    client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
                    done.push(job.id().unwrap().to_owned());
                }
            }
            done
        })
    });
    let mut all = Vec::new();
    for w in workers.collect::<Vec<_>>() {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no job was completed twice");
    assert_eq!(all.len(), 60);
    for id in ids {
        let e = c1.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(&id).send().await.unwrap();
        assert_eq!(e.pipeline_execution().unwrap().status(), Some(&PipelineExecutionStatus::Succeeded), "{id}");
    }
    assert_known_states(&one.pool).await;
}

/// A job alone in its stage ends through the transaction at once on the
/// server that handed it out (a hint it keeps); on another replica, or
/// the second time, the result takes the usual way and means the same.
#[tokio::test]
async fn results_of_jobs_alone_in_their_stage_mean_the_same_on_every_replica() {
    let one = TestServer::start().await;
    let two = TestServer::start_full(one.database_url.clone(), one.master_key.clone(), Config::for_tests()).await;
    let account = one.account("a").await;
    let (c1, c2) = (one.client(&account), two.client(&account));
    worker_pipeline(&c1, "p", false).await;
    let ids = start_many(&c1, "p", 3).await;
    let mut jobs = Vec::new();
    while jobs.len() < 3 {
        jobs.extend(c1.poll_for_jobs().action_type_id(worker_type()).max_batch_size(3).send().await.unwrap().jobs().to_vec());
    }
    for j in &jobs {
        c1.acknowledge_job().job_id(j.id().unwrap()).nonce(j.nonce().unwrap()).send().await.unwrap();
    }
    let failure = FailureDetails::builder().r#type(FailureType::JobFailed).message("broke").build().unwrap();
    c1.put_job_success_result().job_id(jobs[0].id().unwrap()).send().await.unwrap();
    c1.put_job_failure_result().job_id(jobs[1].id().unwrap()).failure_details(failure).send().await.unwrap();
    c2.put_job_success_result().job_id(jobs[2].id().unwrap()).send().await.unwrap();
    for (client, j) in [(&c1, &jobs[0]), (&c2, &jobs[0]), (&c1, &jobs[2])] {
        let err = client.put_job_success_result().job_id(j.id().unwrap()).send().await.unwrap_err();
        assert_eq!(error_code(&err), "InvalidJobStateException", "a second result");
    }
    let mut statuses = Vec::new();
    for j in &jobs {
        let execution = j.data().unwrap().pipeline_context().unwrap().pipeline_execution_id().unwrap().to_owned();
        assert!(ids.contains(&execution));
        let e = c2.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(&execution).send().await.unwrap();
        statuses.push(e.pipeline_execution().unwrap().status().cloned().unwrap());
    }
    use PipelineExecutionStatus::{Failed, Succeeded};
    assert_eq!(statuses, [Succeeded, Failed, Succeeded]);
}

/// `--async-claim-commit`: the claim's own transaction skips the WAL flush,
/// nothing after it on the same connection does, and the job runs to the end.
#[tokio::test]
async fn an_asynchronous_claim_commit_ends_with_the_claim() {
    let server = TestServer::start_with(Config { async_claim_commit: true, ..Config::for_tests() }).await;
    let account = server.account("a").await;
    let client = server.client(&account);
    worker_pipeline(&client, "p", false).await;
    let ids = start_many(&client, "p", 2).await;
    let worker = millrace::pipeline::ActionTypeId {
        category: "Build".into(),
        owner: "Custom".into(),
        provider: "Worker".into(),
        version: "1".into(),
    };
    let setting = "select current_setting('synchronous_commit')";
    let mut conn = server.pool.acquire().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let claim = millrace::store::jobs::Claim { async_commit: true, job_timeout: std::time::Duration::from_secs(60) };
    let polled = millrace::store::jobs::poll(&mut tx, &account.account_id, &worker, None, None, 1, claim).await.unwrap();
    assert_eq!(polled.jobs.len(), 1, "the claim ran");
    let (inside,): (String,) = sqlx::query_as(setting).fetch_one(&mut *tx).await.unwrap();
    assert_eq!(inside, "off", "the claim's transaction does not wait for the flush");
    tx.rollback().await.unwrap();
    let (after,): (String,) = sqlx::query_as(setting).fetch_one(&mut *conn).await.unwrap();
    assert_eq!(after, "on", "the next transaction on the connection waits again");
    drop(conn);

    // Through the API, both executions' jobs run to the end.
    let mut done = 0;
    while done < 2 {
        for j in client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(2).send().await.unwrap().jobs() {
            client.acknowledge_job().job_id(j.id().unwrap()).nonce(j.nonce().unwrap()).send().await.unwrap();
            client.put_job_success_result().job_id(j.id().unwrap()).send().await.unwrap();
            done += 1;
        }
    }
    for id in &ids {
        let e = client.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(id).send().await.unwrap();
        assert_eq!(e.pipeline_execution().unwrap().status(), Some(&PipelineExecutionStatus::Succeeded));
    }
}

#[tokio::test]
async fn a_job_never_acknowledged_is_redelivered_with_a_new_nonce() {
    let mut config = Config::for_tests();
    // Long enough that the redelivered job is not taken back again before
    // the second worker acknowledges it on a loaded machine.
    config.job_ack_timeout = Duration::from_secs(2);
    config.sweep_interval = Duration::from_millis(50);
    let server = TestServer::start_with(config).await;
    let account = server.account("a").await;
    let client = server.client(&account);
    worker_pipeline(&client, "p", false).await;
    start_many(&client, "p", 1).await;
    let first = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap().jobs()[0].clone();
    assert!(client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap().jobs().is_empty());
    // The first worker disappears; after the ack timeout the job comes back.
    let mut again = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let out = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap();
        if let Some(j) = out.jobs().first() {
            again = Some(j.clone());
            break;
        }
    }
    let again = again.expect("the job was redelivered");
    assert_eq!(again.id(), first.id());
    assert_ne!(again.nonce(), first.nonce());
    let err = client.acknowledge_job().job_id(first.id().unwrap()).nonce(first.nonce().unwrap()).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidNonceException", "the first worker's late ack is refused");
    let ok = client.acknowledge_job().job_id(again.id().unwrap()).nonce(again.nonce().unwrap()).send().await.unwrap();
    assert_eq!(ok.status(), Some(&JobStatus::InProgress));
}

#[tokio::test]
async fn an_acknowledged_job_past_its_timeout_fails_its_action() {
    acknowledged_job_times_out(false).await;
}

/// A job claimed before migration 0027 (or by a replica still running the
/// code before it) has no deadline: its acknowledgement sets one, and it
/// times out like any other.
#[tokio::test]
async fn a_job_claimed_without_a_deadline_gets_one_when_acknowledged() {
    acknowledged_job_times_out(true).await;
}

async fn acknowledged_job_times_out(claimed_without_deadline: bool) {
    let mut config = Config::for_tests();
    config.job_timeout = Duration::from_millis(300);
    config.sweep_interval = Duration::from_millis(50);
    let server = TestServer::start_with(config).await;
    let account = server.account("a").await;
    let client = server.client(&account);
    worker_pipeline(&client, "p", false).await;
    let id = start_many(&client, "p", 1).await.remove(0);
    let job = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap().jobs()[0].clone();
    if claimed_without_deadline {
        let job_id = uuid::Uuid::parse_str(job.id().unwrap()).unwrap();
        sqlx::query("update job set timeout_at = null where job_id = $1").bind(job_id).execute(&server.pool).await.unwrap();
    }
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    let mut status = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let e = client.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(&id).send().await.unwrap();
        status = e.pipeline_execution().unwrap().status().cloned();
        if status == Some(PipelineExecutionStatus::Failed) {
            break;
        }
    }
    assert_eq!(status, Some(PipelineExecutionStatus::Failed));
    let err = client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidJobStateException");
    let ack = client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    assert_eq!(ack.status(), Some(&JobStatus::TimedOut));
}

/// A deadline the engine cannot apply (here: a pipeline whose stored
/// declaration is unreadable) does not hold up the others in the pass.
/// More deadlines the engine cannot apply than a sweeper pass takes (100)
/// wait apart, and the others are applied.
#[tokio::test]
async fn deadlines_that_cannot_be_applied_do_not_hold_up_the_others() {
    let mut quiet = Config::for_tests();
    quiet.job_timeout = Duration::from_millis(300);
    quiet.sweep_interval = Duration::from_secs(3600);
    let server = TestServer::start_with(quiet.clone()).await;
    let client = server.client(&server.account("a").await);
    worker_pipeline(&client, "p", false).await;
    worker_pipeline(&client, "q", false).await;
    let ps = start_many(&client, "p", 101).await;
    let mut acked = 0;
    while acked < 101 {
        for job in client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(100).send().await.unwrap().jobs() {
            client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
            acked += 1;
        }
    }
    // q's job times out after all of p's.
    let q = start_many(&client, "q", 1).await.remove(0);
    let job = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap().jobs()[0].clone();
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    sqlx::query("update pipeline_version set declaration = '{\"unreadable\": true}' where name = 'p'").execute(&server.pool).await.unwrap();
    // A replica that has not read p's declaration before sweeps.
    let mut sweeping = quiet;
    sweeping.sweep_interval = Duration::from_millis(50);
    let _replica = TestServer::start_full(server.database_url.clone(), server.master_key.clone(), sweeping).await;
    let mut status = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = execution_in(&client, "q", &q).await.status().cloned();
        if status == Some(PipelineExecutionStatus::Failed) {
            break;
        }
    }
    assert_eq!(status, Some(PipelineExecutionStatus::Failed), "q's job timed out");
    assert_eq!(execution_in(&client, "p", &ps[0]).await.status(), Some(&PipelineExecutionStatus::InProgress), "p's are tried again later");
}

async fn execution_in(client: &Client, pipeline: &str, id: &str) -> PipelineExecution {
    client
        .get_pipeline_execution()
        .pipeline_name(pipeline)
        .pipeline_execution_id(id)
        .send()
        .await
        .unwrap()
        .pipeline_execution()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn job_calls_refuse_bad_nonces_states_types_and_other_accounts() {
    let server = TestServer::start().await;
    let (a, b) = (server.account("a").await, server.account("b").await);
    let (client, other) = (server.client(&a), server.client(&b));
    worker_pipeline(&client, "p", true).await;
    start_many(&client, "p", 1).await;

    // queryParam must match the type's queryable property.
    let err = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    let err = client.poll_for_jobs().action_type_id(worker_type()).query_param("Other", "x").send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException");
    assert!(client.poll_for_jobs().action_type_id(worker_type()).query_param("Pool", "green").send().await.unwrap().jobs().is_empty());
    let job = client.poll_for_jobs().action_type_id(worker_type()).query_param("Pool", "blue").send().await.unwrap().jobs()[0].clone();
    let job_id = job.id().unwrap();

    // Another account: the type and the job do not exist for it.
    let err = other.poll_for_jobs().action_type_id(worker_type()).query_param("Pool", "blue").send().await.unwrap_err();
    assert_eq!(error_code(&err), "ActionTypeNotFoundException");
    let err = other.acknowledge_job().job_id(job_id).nonce(job.nonce().unwrap()).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = other.get_job_details().job_id(job_id).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = other.put_job_success_result().job_id(job_id).send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");

    let err = client.acknowledge_job().job_id(job_id).nonce("not-the-nonce").send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidNonceException");
    let err = client.acknowledge_job().job_id("00000000-0000-4000-8000-000000000000").nonce("n").send().await.unwrap_err();
    assert_eq!(error_code(&err), "JobNotFoundException");
    let err = client.put_job_success_result().job_id(job_id).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidJobStateException", "a result before the ack");
    let details = client.get_job_details().job_id(job_id).send().await.unwrap();
    assert_eq!(details.job_details().unwrap().account_id(), Some(a.account_id.as_str()));

    client.acknowledge_job().job_id(job_id).nonce(job.nonce().unwrap()).send().await.unwrap();
    let nul = ExecutionDetails::builder().summary("a\0b").build();
    let err = client.put_job_success_result().job_id(job_id).execution_details(nul).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ValidationException", "PostgreSQL cannot store a NUL character");
    let too_big = "x".repeat(130_000);
    let err = client
        .put_job_success_result()
        .job_id(job_id)
        .output_variables("big", &too_big[..1000])
        .output_variables("k", "v")
        .continuation_token("t")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "ValidationException", "variables only without a continuation token");

    // A continuation token completes this job and queues the next one.
    client.put_job_success_result().job_id(job_id).continuation_token("step-2").send().await.unwrap();
    let next = client.poll_for_jobs().action_type_id(worker_type()).query_param("Pool", "blue").send().await.unwrap().jobs()[0].clone();
    assert_ne!(next.id(), job.id());
    assert_eq!(next.data().unwrap().continuation_token(), Some("step-2"));
    let err = client.put_job_success_result().job_id(job_id).send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidJobStateException", "a finished job takes no second result");

    // AWS-owned and deleted types cannot be polled.
    let aws =
        ActionTypeId::builder().category(ActionCategory::Build).owner(ActionOwner::Aws).provider("CodeBuild").version("1").build().unwrap();
    assert_eq!(error_code(&client.poll_for_jobs().action_type_id(aws).send().await.unwrap_err()), "ValidationException");
    client.delete_custom_action_type().category(ActionCategory::Source).provider("Repo").version("1").send().await.unwrap();
    let err = client.poll_for_jobs().action_type_id(type_id(ActionCategory::Source, "Repo")).send().await.unwrap_err();
    assert_eq!(error_code(&err), "ActionTypeNotFoundException");
}

#[tokio::test]
async fn a_connection_killed_mid_transaction_leaves_the_state_as_it_was() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    worker_pipeline(&client, "p", false).await;
    let count = |pool: sqlx::PgPool| async move {
        let (e,): (i64,) = sqlx::query_as("select count(*) from pipeline_execution").fetch_one(&pool).await.unwrap();
        let (j,): (i64,) = sqlx::query_as("select count(*) from job").fetch_one(&pool).await.unwrap();
        let (a,): (i64,) = sqlx::query_as("select count(*) from action_execution").fetch_one(&pool).await.unwrap();
        (e, j, a)
    };
    let before = count(server.pool.clone()).await;

    let mut tx = server.pool.begin().await.unwrap();
    let (pid,): (i32,) = sqlx::query_as("select pg_backend_pid()").fetch_one(&mut *tx).await.unwrap();
    let locked = millrace::store::executions::lock_pipeline(&mut tx, &account.account_id, "p").await.unwrap().unwrap();
    let declarations = millrace::engine::Declarations::default();
    let secrets = millrace::crypto::SecretBox::from_base64(&millrace::crypto::SecretBox::generate_key_base64()).unwrap();
    let scope = millrace::engine::Scope {
        account_id: &account.account_id,
        region: "us-east-1",
        pipeline: "p",
        generation: locked.generation,
        declarations: &declarations,
        secrets: &secrets,
    };
    let mut start = millrace::engine::Start::triggered_by("StartPipelineExecution", None);
    start.source_overrides = vec![serde_json::json!({"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": "r"})];
    millrace::engine::start_execution(&mut tx, scope, locked.current_version, start).await.unwrap();
    // The engine wrote an execution, its actions and a job; now the
    // connection dies before the commit.
    sqlx::query("select pg_terminate_backend($1)").bind(pid).execute(&server.pool).await.unwrap();
    assert!(tx.commit().await.is_err());

    assert_eq!(count(server.pool.clone()).await, before);
    assert!(client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap().jobs().is_empty());
    // The pipeline is not left locked.
    start_many(&client, "p", 1).await;
}

#[tokio::test]
async fn configured_artifact_credentials_reach_workers_with_their_jobs() {
    let mut config = Config::for_tests();
    config.artifact_credentials = Some(millrace::config::ArtifactCredentials {
        access_key_id: "minio-key".into(),
        secret_access_key: "minio-secret".into(),
        session_token: String::new(),
    });
    let server = TestServer::start_with(config).await;
    let account = server.account("a").await;
    let client = server.client(&account);
    worker_pipeline(&client, "p", false).await;
    start_many(&client, "p", 1).await;
    let job = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap().jobs()[0].clone();
    let creds = job.data().unwrap().artifact_credentials().unwrap();
    assert_eq!((creds.access_key_id(), creds.secret_access_key()), ("minio-key", "minio-secret"));
    let details = client.get_job_details().job_id(job.id().unwrap()).send().await.unwrap();
    assert!(details.job_details().unwrap().data().unwrap().artifact_credentials().is_some());
    let (stored,): (serde_json::Value,) =
        sqlx::query_as("select data from job where job_id = $1::uuid").bind(job.id().unwrap()).fetch_one(&server.pool).await.unwrap();
    assert!(stored.get("artifactCredentials").is_none(), "credentials are never stored with the job");
}

/// Source, then `width` parallel Work actions, then one Final action.
async fn fan_out_pipeline(client: &Client, name: &str, mode: ExecutionMode, width: usize) {
    custom_action_type(client, "Source", "Repo", &[]).await;
    custom_action_type(client, "Build", "Worker", &[("Pool", true, false, false)]).await;
    let work = (0..width).map(|i| work_action(&format!("Work{i}"), "blue")).collect();
    let p = source_then(name, mode, vec![("Work", work), ("Final", vec![work_action("Final", "blue")])]);
    client.create_pipeline().pipeline(p).send().await.unwrap();
}

/// Workers on two servers finish the jobs of executions whose stages fan
/// out, all at once: every execution must get through every stage (results
/// of one stage's actions race to be the last one out). The sweeper, which
/// would move on a stage whose last result left it behind, is off.
async fn fan_out_under_concurrent_results(mode: ExecutionMode) {
    fan_out_worked_by(mode, 8, 2).await;
}

/// The executions of [`fan_out_under_concurrent_results`], with `workers`
/// workers claiming `batch` jobs at a time.
async fn fan_out_worked_by(mode: ExecutionMode, workers: usize, batch: i32) {
    let mut config = Config::for_tests();
    config.sweep_interval = Duration::from_secs(3600);
    let one = TestServer::start_with(config.clone()).await;
    let two = TestServer::start_full(one.database_url.clone(), one.master_key.clone(), config).await;
    let account = one.account("a").await;
    let (c1, c2) = (one.client(&account), two.client(&account));
    fan_out_pipeline(&c1, "p", mode.clone(), 4).await;
    // The CreatePipeline execution waits for its source job: finish it with
    // the workers below.
    let source = c1.poll_for_jobs().action_type_id(type_id(ActionCategory::Source, "Repo")).send().await.unwrap();
    let job = &source.jobs()[0];
    c1.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    c1.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
    let mut ids = start_many(&c2, "p", 12).await;
    let first = c1.list_pipeline_executions().pipeline_name("p").send().await.unwrap();
    ids.push(first.pipeline_execution_summaries().last().unwrap().pipeline_execution_id().unwrap().to_owned());
    let expected = ids.len() * 5;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..workers)
        .map(|i| {
            let client = if i % 2 == 0 { c1.clone() } else { c2.clone() };
            let (done, stop) = (done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let out = client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(batch).send().await.unwrap();
                    if out.jobs().is_empty() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    for job in out.jobs() {
                        client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
                        client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    // Until every execution has ended (or a minute has passed).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut statuses = Vec::new();
    while std::time::Instant::now() < deadline {
        statuses.clear();
        for id in &ids {
            let e = c1.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(id).send().await.unwrap();
            statuses.push(e.pipeline_execution().unwrap().status().unwrap().clone());
        }
        if !statuses.contains(&PipelineExecutionStatus::InProgress) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let done = done.load(std::sync::atomic::Ordering::SeqCst);
    if mode == ExecutionMode::Superseded {
        // Executions waiting at a stage give way to newer ones; the newest
        // started runs to the end.
        assert!(
            statuses.iter().all(|s| matches!(s, PipelineExecutionStatus::Succeeded | PipelineExecutionStatus::Superseded)),
            "{statuses:?}"
        );
        let listed = c1.list_pipeline_executions().pipeline_name("p").send().await.unwrap();
        let newest = &listed.pipeline_execution_summaries()[0];
        assert_eq!(newest.status(), Some(&PipelineExecutionStatus::Succeeded), "{statuses:?}");
        assert!(done <= expected);
    } else {
        assert!(statuses.iter().all(|s| *s == PipelineExecutionStatus::Succeeded), "{statuses:?}");
        assert_eq!(done, expected, "every Work and Final job ran once");
    }
}

#[tokio::test]
async fn parallel_executions_fan_out_under_concurrent_results() {
    fan_out_under_concurrent_results(ExecutionMode::Parallel).await;
}

#[tokio::test]
async fn queued_executions_fan_out_under_concurrent_results() {
    fan_out_under_concurrent_results(ExecutionMode::Queued).await;
}

#[tokio::test]
async fn superseded_executions_fan_out_under_concurrent_results() {
    fan_out_under_concurrent_results(ExecutionMode::Superseded).await;
}

/// One worker ends a stage's actions one after another: each result but
/// the last finds a sibling nobody is ending yet and leaves the stage to
/// it; the last finds none and moves the execution on, with no sweeper.
#[tokio::test]
async fn a_fan_out_ended_one_result_at_a_time_moves_on() {
    fan_out_worked_by(ExecutionMode::Parallel, 1, 10).await;
}

/// A stage whose actions all ended, but whose last result's server died
/// before the engine moved the execution on (here: both results written
/// straight to the database), is moved on by the sweeper once quiet.
#[tokio::test]
async fn a_stage_left_behind_by_its_last_result_is_moved_on_by_the_sweeper() {
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let p = source_then(
        "p",
        ExecutionMode::Parallel,
        vec![("Work", vec![work_action("A", "blue"), work_action("B", "blue")]), ("Final", vec![work_action("F", "blue")])],
    );
    create_past_source(&client, p).await;
    let work = client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(10).send().await.unwrap();
    assert_eq!(work.jobs().len(), 2);
    for job in work.jobs() {
        client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    }
    sqlx::query("update job set status = 'Succeeded' where status = 'InProgress'").execute(&server.pool).await.unwrap();
    sqlx::query("update action_execution set status = 'Succeeded' where stage_name = 'Work'").execute(&server.pool).await.unwrap();
    let mut last = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap().jobs().to_vec();
        if !last.is_empty() {
            break;
        }
    }
    let action = last.first().map(|j| j.data().unwrap().pipeline_context().unwrap().action().unwrap().name().unwrap().to_owned());
    assert_eq!(action.as_deref(), Some("F"), "the Final stage started");
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    assert_eq!(state.stage_states()[1].latest_execution().unwrap().status(), &StageExecutionStatus::Succeeded);
}

/// The first result of a two-action stage decides nothing (one statement),
/// the second ends the stage (the engine): both fill the execution URL from
/// the type's template, and a failure that comes first still fails the
/// stage once the other action is done.
#[tokio::test]
async fn results_before_and_at_the_end_of_a_stage_record_the_same_details() {
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    custom_action_type(&client, "Source", "Repo", &[]).await;
    client
        .create_custom_action_type()
        .category(ActionCategory::Build)
        .provider("Worker")
        .version("1")
        .settings(ActionTypeSettings::builder().execution_url_template("https://ci.example/{Config:Pool}/{ExternalExecutionId}").build())
        .configuration_properties(
            ActionConfigurationProperty::builder().name("Pool").required(true).key(true).secret(false).build().unwrap(),
        )
        .input_artifact_details(ArtifactDetails::builder().minimum_count(0).maximum_count(5).build())
        .output_artifact_details(ArtifactDetails::builder().minimum_count(0).maximum_count(5).build())
        .send()
        .await
        .unwrap();
    let p = source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue"), work_action("B", "green")])]);
    client.create_pipeline().pipeline(p).send().await.unwrap();
    let source = client.poll_for_jobs().action_type_id(type_id(ActionCategory::Source, "Repo")).send().await.unwrap();
    let job = &source.jobs()[0];
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
    let work = client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(2).send().await.unwrap();
    assert_eq!(work.jobs().len(), 2);
    for job in work.jobs() {
        client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    }
    let action_of = |job: &Job| job.data().unwrap().pipeline_context().unwrap().action().unwrap().name().unwrap().to_owned();
    let (first, second) = (&work.jobs()[0], &work.jobs()[1]);
    let failure =
        FailureDetails::builder().r#type(FailureType::JobFailed).message("tests failed").external_execution_id("run-1").build().unwrap();
    client.put_job_failure_result().job_id(first.id().unwrap()).failure_details(failure).send().await.unwrap();
    let again = client.put_job_success_result().job_id(first.id().unwrap()).send().await.unwrap_err();
    assert_eq!(error_code(&again), "InvalidJobStateException");

    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let stage = &state.stage_states()[1];
    assert_eq!(stage.latest_execution().unwrap().status(), &StageExecutionStatus::InProgress, "the other action still runs");
    let action = |state: &aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput, name: &str| {
        state.stage_states()[1].action_states().iter().find(|a| a.action_name() == Some(name)).unwrap().latest_execution().unwrap().clone()
    };
    let failed = action(&state, &action_of(first));
    assert_eq!(failed.status(), Some(&ActionExecutionStatus::Failed));
    let pool = |job: &Job| job.data().unwrap().action_configuration().unwrap().configuration().unwrap()["Pool"].clone();
    assert_eq!(failed.external_execution_url(), Some(format!("https://ci.example/{}/run-1", pool(first)).as_str()));

    let details = ExecutionDetails::builder().external_execution_id("run-2").summary("built").build();
    client.put_job_success_result().job_id(second.id().unwrap()).execution_details(details).send().await.unwrap();
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    assert_eq!(state.stage_states()[1].latest_execution().unwrap().status(), &StageExecutionStatus::Failed);
    let succeeded = action(&state, &action_of(second));
    assert_eq!(succeeded.status(), Some(&ActionExecutionStatus::Succeeded));
    assert_eq!(succeeded.summary(), Some("built"));
    assert_eq!(succeeded.external_execution_url(), Some(format!("https://ci.example/{}/run-2", pool(second)).as_str()));
    let id = state.stage_states()[1].latest_execution().unwrap().pipeline_execution_id().to_owned();
    let e = client.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(id).send().await.unwrap();
    let e = e.pipeline_execution().unwrap();
    assert_eq!(e.status(), Some(&PipelineExecutionStatus::Failed));
    assert!(e.status_summary().unwrap().contains("tests failed"), "{:?}", e.status_summary());
}

/// Creates the `Source/Repo` and `Build/Worker` types and pipeline `p`, and
/// finishes the CreatePipeline execution's source job: its Work jobs queue.
async fn create_past_source(client: &Client, p: PipelineDeclaration) {
    custom_action_type(client, "Source", "Repo", &[]).await;
    custom_action_type(client, "Build", "Worker", &[("Pool", true, false, false)]).await;
    client.create_pipeline().pipeline(p).send().await.unwrap();
    let source = client.poll_for_jobs().action_type_id(type_id(ActionCategory::Source, "Repo")).send().await.unwrap();
    let job = &source.jobs()[0];
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
}

/// Polls, acknowledges and finishes every queued Worker job: failing those
/// of the actions named in `fail`. Answers the actions that ran.
async fn finish_work(client: &Client, fail: &[&str]) -> Vec<String> {
    let polled = client.poll_for_jobs().action_type_id(worker_type()).max_batch_size(10).send().await.unwrap();
    let mut ran = Vec::new();
    for job in polled.jobs() {
        let action = job.data().unwrap().pipeline_context().unwrap().action().unwrap().name().unwrap().to_owned();
        client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
        if fail.contains(&action.as_str()) {
            let failure = FailureDetails::builder().r#type(FailureType::JobFailed).message("flaky").build().unwrap();
            client.put_job_failure_result().job_id(job.id().unwrap()).failure_details(failure).send().await.unwrap();
        } else {
            client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
        }
        ran.push(action);
    }
    ran.sort();
    ran
}

/// A stage whose onFailure result is RETRY runs its failed actions once
/// more by itself; a second failure fails the execution, and a manual retry
/// then counts on its own.
#[tokio::test]
async fn a_stage_declared_to_retry_on_failure_runs_its_failed_actions_again_once() {
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut p = source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue"), work_action("B", "blue")])]);
    let retry = RetryConfiguration::builder().retry_mode(StageRetryMode::FailedActions).build();
    p.stages[1].on_failure =
        Some(FailureConditions::builder().result(aws_sdk_codepipeline::types::Result::Retry).retry_configuration(retry).build());
    create_past_source(&client, p).await;

    assert_eq!(finish_work(&client, &["A"]).await, ["A", "B"]);
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let work = &state.stage_states()[1];
    assert_eq!(work.latest_execution().unwrap().status(), &StageExecutionStatus::InProgress, "retried, not failed");
    let meta = work.retry_stage_metadata().unwrap();
    assert_eq!((meta.auto_stage_retry_attempt(), meta.manual_stage_retry_attempt()), (Some(1), Some(0)));
    assert_eq!(meta.latest_retry_trigger(), Some(&RetryTrigger::AutomatedStageRetry));
    let id = work.latest_execution().unwrap().pipeline_execution_id().to_owned();

    assert_eq!(finish_work(&client, &["A"]).await, ["A"], "only the failed action runs again");
    let status = |e: aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionOutput| {
        e.pipeline_execution().unwrap().status().unwrap().clone()
    };
    let e = client.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(&id).send().await.unwrap();
    assert_eq!(status(e), PipelineExecutionStatus::Failed, "the automatic retry happens once");

    retry_work(&client, &id, StageRetryMode::FailedActions).await;
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    let e = client.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(&id).send().await.unwrap();
    assert_eq!(status(e), PipelineExecutionStatus::Succeeded);
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let meta = state.stage_states()[1].retry_stage_metadata().unwrap().clone();
    assert_eq!((meta.auto_stage_retry_attempt(), meta.manual_stage_retry_attempt()), (Some(1), Some(1)));
    assert_eq!(meta.latest_retry_trigger(), Some(&RetryTrigger::ManualStageRetry));
}

/// A V2 stage whose onFailure result is ROLLBACK returns to the newest
/// execution that succeeded in it: a new ROLLBACK execution (trigger
/// AutomatedRollback) runs the stage again with that execution's artifacts.
/// With no such execution, a failure just fails.
#[tokio::test]
async fn a_stage_declared_to_roll_back_on_failure_reruns_the_last_good_execution() {
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut p = source_then("p", ExecutionMode::Superseded, vec![("Work", vec![work_action("A", "blue")])]);
    p.stages[1].on_failure = Some(FailureConditions::builder().result(aws_sdk_codepipeline::types::Result::Rollback).build());
    create_past_source(&client, p).await;
    assert_eq!(finish_work(&client, &["A"]).await, ["A"]);
    let executions =
        || async { client.list_pipeline_executions().pipeline_name("p").send().await.unwrap().pipeline_execution_summaries().to_vec() };
    let listed = executions().await;
    assert_eq!(listed.len(), 1, "nothing succeeded in Work before: no rollback");
    assert_eq!(listed[0].status(), Some(&PipelineExecutionStatus::Failed));

    let good = start_many(&client, "p", 1).await.remove(0);
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    let bad = start_many(&client, "p", 1).await.remove(0);
    assert_eq!(finish_work(&client, &["A"]).await, ["A"]);
    let listed = executions().await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    let (rollback, failed) = (&listed[0], &listed[1]);
    assert_eq!((failed.pipeline_execution_id(), failed.status()), (Some(bad.as_str()), Some(&PipelineExecutionStatus::Failed)));
    assert_eq!(rollback.trigger().unwrap().trigger_type(), Some(&TriggerType::AutomatedRollback));
    assert_eq!(rollback.execution_type(), Some(&ExecutionType::Rollback));
    assert_eq!(rollback.rollback_metadata().unwrap().rollback_target_pipeline_execution_id(), Some(good.as_str()));
    assert_eq!(rollback.status(), Some(&PipelineExecutionStatus::InProgress));

    let polled = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap();
    let job = &polled.jobs()[0];
    let input = &job.data().unwrap().input_artifacts()[0];
    let key = input.location().unwrap().s3_location().unwrap().object_key();
    assert!(key.contains(&good), "the rollback works on the good execution's artifact: {key}");
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
    let id = rollback.pipeline_execution_id().unwrap();
    let e = client.get_pipeline_execution().pipeline_name("p").pipeline_execution_id(id).send().await.unwrap();
    assert_eq!(e.pipeline_execution().unwrap().status(), Some(&PipelineExecutionStatus::Succeeded));
}

/// An onFailure hook with a condition rolls back only when the condition
/// is not met: a failure while the rule holds just fails; a failure while
/// it does not starts the rollback. The rule's outcome shows as the stage's
/// onFailure condition state.
#[tokio::test]
async fn a_failure_condition_decides_whether_the_stage_rolls_back() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut p = source_then("p", ExecutionMode::Superseded, vec![("Work", vec![work_action("A", "blue")])]);
    p.variables = Some(vec![PipelineVariableDeclaration::builder().name("canary").default_value("healthy").build().unwrap()]);
    let check = condition(Outcome::Rollback, variable_check("canary-healthy", "#{variables.canary}", "EQ", "healthy"));
    p.stages[1].on_failure = Some(FailureConditions::builder().result(Outcome::Rollback).conditions(check).build());
    create_past_source(&client, p).await;
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    let good = client.list_pipeline_executions().pipeline_name("p").send().await.unwrap().pipeline_execution_summaries()[0].clone();
    let good = good.pipeline_execution_id().unwrap().to_owned();

    let client = &client;
    let start = |canary: &'static str| async move {
        let revision =
            SourceRevisionOverride::builder().action_name("Checkout").revision_type(SourceRevisionType::CommitId).revision_value("abc");
        let canary = PipelineVariable::builder().name("canary").value(canary).build().unwrap();
        let started = client.start_pipeline_execution().name("p").source_revisions(revision.build().unwrap()).variables(canary);
        started.send().await.unwrap().pipeline_execution_id().unwrap().to_owned()
    };
    let executions =
        || async { client.list_pipeline_executions().pipeline_name("p").send().await.unwrap().pipeline_execution_summaries().to_vec() };

    let held = start("healthy").await;
    assert_eq!(finish_work(client, &["A"]).await, ["A"]);
    let listed = executions().await;
    assert_eq!(listed.len(), 2, "the condition was met: no rollback");
    assert_eq!((listed[0].pipeline_execution_id(), listed[0].status()), (Some(held.as_str()), Some(&PipelineExecutionStatus::Failed)));
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let on_failure = state.stage_states()[1].on_failure_condition_state().unwrap();
    assert_eq!(on_failure.latest_execution().unwrap().status(), Some(&ConditionExecutionStatus::Succeeded));

    let broken = start("degraded").await;
    assert_eq!(finish_work(client, &["A"]).await, ["A"]);
    let listed = executions().await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!((listed[1].pipeline_execution_id(), listed[1].status()), (Some(broken.as_str()), Some(&PipelineExecutionStatus::Failed)));
    assert_eq!(listed[0].trigger().unwrap().trigger_type(), Some(&TriggerType::AutomatedRollback));
    assert_eq!(listed[0].rollback_metadata().unwrap().rollback_target_pipeline_execution_id(), Some(good.as_str()));
    let filter = RuleExecutionFilter::builder().pipeline_execution_id(&broken).build();
    let rules = client.list_rule_executions().pipeline_name("p").filter(filter).send().await.unwrap();
    let rule = &rules.rule_execution_details()[0];
    assert_eq!((rule.rule_name(), rule.status()), (Some("canary-healthy"), Some(&RuleExecutionStatus::Failed)));
    assert_eq!(rule.input().unwrap().resolved_configuration().unwrap()["Variable"], "degraded");
    assert_known_states(&server.pool).await;
}

/// A job is marked alone when its action is the only one of its runOrder
/// group (its result then skips the one-statement attempt and goes straight
/// to the engine); a fan-out group's jobs are not. Results behave the same.
#[tokio::test]
async fn jobs_know_whether_their_action_is_alone_in_its_group() {
    let server = TestServer::start().await;
    let account = server.account("a").await;
    let client = server.client(&account);
    let mut last = work_action("C", "blue");
    last.run_order = Some(2);
    let p = source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue"), work_action("B", "blue"), last])]);
    create_past_source(&client, p).await;
    let alone = || async {
        let rows: Vec<(String, bool)> = sqlx::query_as(
            "select a.action_name, j.alone from job j join action_execution a using (account_id, action_execution_id) \
             where j.account_id = $1 order by a.action_name",
        )
        .bind(&account.account_id)
        .fetch_all(&server.pool)
        .await
        .unwrap();
        rows
    };
    let expect = |v: &[(&str, bool)]| v.iter().map(|(n, a)| (n.to_string(), *a)).collect::<Vec<_>>();
    assert_eq!(alone().await, expect(&[("A", false), ("B", false), ("Checkout", true)]));
    assert_eq!(finish_work(&client, &[]).await, ["A", "B"]);
    assert_eq!(finish_work(&client, &[]).await, ["C"]);
    assert_eq!(alone().await, expect(&[("A", false), ("B", false), ("C", true), ("Checkout", true)]));
    let e = client.list_pipeline_executions().pipeline_name("p").send().await.unwrap();
    assert_eq!(e.pipeline_execution_summaries()[0].status(), Some(&PipelineExecutionStatus::Succeeded));
}

/// StartPipelineExecution reads the disabled transitions with the
/// pipeline's lock: a started PARALLEL execution whose source succeeds at
/// once still stops before a disabled Inbound transition, and goes on when
/// it is enabled.
#[tokio::test]
async fn a_started_execution_waits_at_a_transition_disabled_before_it_started() {
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    create_past_source(&client, source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue")])])).await;
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    let work = StageTransitionType::Inbound;
    client
        .disable_stage_transition()
        .pipeline_name("p")
        .stage_name("Work")
        .transition_type(work.clone())
        .reason("freeze")
        .send()
        .await
        .unwrap();
    let id = start_many(&client, "p", 1).await.remove(0);
    assert_eq!(finish_work(&client, &[]).await, Vec::<String>::new(), "the execution waits at the transition");
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    assert_eq!(state.stage_states()[1].inbound_execution().map(|e| e.pipeline_execution_id()), Some(id.as_str()));
    client.enable_stage_transition().pipeline_name("p").stage_name("Work").transition_type(work).send().await.unwrap();
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    assert_eq!(execution_of(&client, &id).await.status(), Some(&PipelineExecutionStatus::Succeeded));

    // The same before the first stage (which a PARALLEL start otherwise enters as it inserts the execution).
    let source = StageTransitionType::Inbound;
    client
        .disable_stage_transition()
        .pipeline_name("p")
        .stage_name("Source")
        .transition_type(source.clone())
        .reason("freeze")
        .send()
        .await
        .unwrap();
    let held = start_many(&client, "p", 1).await.remove(0);
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    assert_eq!(state.stage_states()[0].inbound_execution().map(|e| e.pipeline_execution_id()), Some(held.as_str()));
    assert_eq!(state.stage_states()[0].latest_execution().map(|e| e.pipeline_execution_id()), Some(id.as_str()), "it has not entered");
    client.enable_stage_transition().pipeline_name("p").stage_name("Source").transition_type(source).send().await.unwrap();
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    assert_eq!(execution_of(&client, &held).await.status(), Some(&PipelineExecutionStatus::Succeeded));
}

/// A PARALLEL start whose source action has a revision writes the
/// source's success, the move into the next stage and that stage's jobs in
/// one statement: every read shows each step as if it had been written
/// alone, and the stages after it run as usual.
#[tokio::test]
async fn a_parallel_start_past_its_source_shows_every_step_it_took() {
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let stages = vec![("Work", vec![work_action("A", "blue")]), ("Ship", vec![work_action("B", "blue")])];
    create_past_source(&client, source_then("p", ExecutionMode::Parallel, stages)).await;
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    assert_eq!(finish_work(&client, &[]).await, ["B"]);

    let id = start_many(&client, "p", 1).await.remove(0);
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let latest = |i: usize| state.stage_states()[i].latest_execution().cloned().unwrap();
    assert_eq!(latest(0).pipeline_execution_id(), id);
    assert_eq!(latest(0).status(), &StageExecutionStatus::Succeeded);
    assert_eq!(latest(1).pipeline_execution_id(), id);
    assert_eq!(latest(1).status(), &StageExecutionStatus::InProgress);
    let source = state.stage_states()[0].action_states()[0].latest_execution().unwrap();
    assert_eq!(source.status(), Some(&ActionExecutionStatus::Succeeded));
    let execution = execution_of(&client, &id).await;
    assert_eq!(execution.artifact_revisions()[0].revision_id(), Some("rev-0"));
    let filter = ActionExecutionFilter::builder().pipeline_execution_id(&id).build();
    let actions = client.list_action_executions().pipeline_name("p").filter(filter).send().await.unwrap();
    let status_of = |name: &str| {
        let a = actions.action_execution_details().iter().find(|a| a.action_name() == Some(name)).unwrap();
        a.status().cloned()
    };
    assert_eq!(status_of("Checkout"), Some(ActionExecutionStatus::Succeeded));
    let checkout = actions.action_execution_details().iter().find(|a| a.action_name() == Some("Checkout")).unwrap();
    let result = checkout.output().unwrap().execution_result().unwrap();
    assert_eq!(result.external_execution_id(), Some("rev-0"));
    assert_eq!(status_of("A"), Some(ActionExecutionStatus::InProgress));
    assert!(actions.action_execution_details().iter().all(|a| a.action_name() != Some("B")), "Ship has not started");

    let polled = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap();
    let job = &polled.jobs()[0];
    let input = &job.data().unwrap().input_artifacts()[0];
    assert_eq!(input.revision(), Some("rev-0"), "the job's input is the source's revision");
    assert_eq!(job.data().unwrap().pipeline_context().unwrap().pipeline_execution_id(), Some(id.as_str()));
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    client.put_job_success_result().job_id(job.id().unwrap()).send().await.unwrap();
    assert_eq!(finish_work(&client, &[]).await, ["B"]);
    assert_eq!(execution_of(&client, &id).await.status(), Some(&PipelineExecutionStatus::Succeeded));
    assert_known_states(&server.pool).await;
}

/// A start that waits for the pipeline's lock behind a
/// DisableStageTransition sees that transition disabled once it gets the
/// lock, though its statement began before the disable committed.
#[tokio::test]
async fn a_start_that_waited_for_the_lock_sees_a_transition_disabled_meanwhile() {
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    create_past_source(&client, source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue")])])).await;
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    // Another transaction holds the pipeline's exclusive lock: the disable
    // queues behind it, then the start behind both.
    let mut holder = server.pool.begin().await.unwrap();
    sqlx::query("select 1 from pipeline where name = 'p' for update").execute(&mut *holder).await.unwrap();
    let disable = client.disable_stage_transition().pipeline_name("p").stage_name("Work").transition_type(StageTransitionType::Inbound);
    let disable = tokio::spawn(disable.reason("freeze").send());
    lock_waiters(&server, 1).await;
    let start = tokio::spawn({
        let client = client.clone();
        async move { start_many(&client, "p", 1).await.remove(0) }
    });
    lock_waiters(&server, 2).await;
    holder.commit().await.unwrap();
    disable.await.unwrap().unwrap();
    let id = start.await.unwrap();
    assert_eq!(finish_work(&client, &[]).await, Vec::<String>::new(), "the execution waits at the transition");
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    assert_eq!(state.stage_states()[1].inbound_execution().map(|e| e.pipeline_execution_id()), Some(id.as_str()));
}

/// An approval answered while a lock-free result of the stage's other
/// action is still committing, a result that read the approval in progress
/// and so left the stage to it: the answer waits for that commit and moves
/// the stage on. The sweeper, which would repair a stage left behind, is off.
#[tokio::test]
async fn an_approval_answered_while_a_sibling_result_commits_moves_the_stage_on() {
    let mut config = Config::for_tests();
    config.sweep_interval = Duration::from_secs(3600);
    let server = TestServer::start_with(config).await;
    let client = server.client(&server.account("a").await);
    let manual =
        ActionTypeId::builder().category(ActionCategory::Approval).owner(ActionOwner::Aws).provider("Manual").version("1").build().unwrap();
    let gate = ActionDeclaration::builder().name("Gate").action_type_id(manual).build().unwrap();
    create_past_source(&client, source_then("p", ExecutionMode::Parallel, vec![("Work", vec![gate, work_action("A", "blue")])])).await;
    let polled = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap();
    let job = &polled.jobs()[0];
    client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
    // GetPipelineState shows no tokens of PARALLEL pipelines.
    let (token,): (uuid::Uuid,) =
        sqlx::query_as("select approval_token from action_execution where action_name = 'Gate'").fetch_one(&server.pool).await.unwrap();

    // A's result, written as `jobs::end_unlocked` writes it and not yet committed.
    let mut result = server.pool.begin().await.unwrap();
    let job_id = uuid::Uuid::parse_str(job.id().unwrap()).unwrap();
    sqlx::query("update job set status = 'Succeeded' where job_id = $1").bind(job_id).execute(&mut *result).await.unwrap();
    sqlx::query("update action_execution set status = 'Succeeded' where action_name = 'A' and status = 'InProgress'")
        .execute(&mut *result)
        .await
        .unwrap();
    let approved = ApprovalResult::builder().status(ApprovalStatus::Approved).summary("ship it").build().unwrap();
    let answer =
        client.put_approval_result().pipeline_name("p").stage_name("Work").action_name("Gate").token(token.to_string()).result(approved);
    let answer = tokio::spawn(answer.send());
    for _ in 0..1000 {
        if answer.is_finished() || lock_waiting(&server).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    result.commit().await.unwrap();
    answer.await.unwrap().unwrap();
    let first = client.list_pipeline_executions().pipeline_name("p").send().await.unwrap();
    let id = first.pipeline_execution_summaries()[0].pipeline_execution_id().unwrap().to_owned();
    assert_eq!(execution_of(&client, &id).await.status(), Some(&PipelineExecutionStatus::Succeeded), "the answer moved the stage on");
}

/// How many backends of the test's database wait for a lock.
async fn lock_waiting(server: &TestServer) -> i64 {
    let (waiting,): (i64,) =
        sqlx::query_as("select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")
            .fetch_one(&server.pool)
            .await
            .unwrap();
    waiting
}

/// Waits until `n` backends of the test's database wait for a lock.
async fn lock_waiters(server: &TestServer, n: i64) {
    for _ in 0..1000 {
        if lock_waiting(server).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} backends never waited for a lock");
}

fn variable_check(name: &str, variable: &str, operator: &str, value: &str) -> RuleDeclaration {
    let id =
        RuleTypeId::builder().category(RuleCategory::Rule).owner(RuleOwner::Aws).provider("VariableCheck").version("1").build().unwrap();
    RuleDeclaration::builder()
        .name(name)
        .rule_type_id(id)
        .configuration("Variable", variable)
        .configuration("Operator", operator)
        .configuration("Value", value)
        .build()
        .unwrap()
}

fn condition(result: aws_sdk_codepipeline::types::Result, rule: RuleDeclaration) -> Condition {
    Condition::builder().result(result).rules(rule).build()
}

/// RetryStageExecution of stage `Work` of pipeline `p`.
async fn retry_work(client: &Client, id: &str, mode: StageRetryMode) {
    let retry = client.retry_stage_execution().pipeline_name("p").stage_name("Work").pipeline_execution_id(id);
    retry.retry_mode(mode).send().await.unwrap();
}

async fn execution_of(client: &Client, id: &str) -> PipelineExecution {
    execution_in(client, "p", id).await
}

/// Entry conditions: an unmet FAIL condition fails the execution at the
/// stage, an unmet SKIP condition skips the stage, a met one lets the
/// execution in. VariableCheck rules read pipeline variables.
#[tokio::test]
async fn entry_conditions_gate_or_skip_their_stage() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let types = client.list_rule_types().rule_owner_filter(RuleOwner::Aws).send().await.unwrap();
    let listed: Vec<_> = types.rule_types().iter().map(|t| t.id().unwrap().provider().to_owned()).collect();
    assert_eq!(listed, ["VariableCheck", "DeploymentWindow"], "the rule types this server evaluates");
    let properties: Vec<_> = types.rule_types()[0].rule_configuration_properties().iter().map(|p| p.name().to_owned()).collect();
    assert_eq!(properties, ["Variable", "Operator", "Value"]);
    let mut p = source_then(
        "p",
        ExecutionMode::Parallel,
        vec![("Work", vec![work_action("A", "blue")]), ("Final", vec![work_action("F", "blue")])],
    );
    p.variables = Some(vec![
        PipelineVariableDeclaration::builder().name("env").default_value("prod").build().unwrap(),
        PipelineVariableDeclaration::builder().name("deploy").default_value("no").build().unwrap(),
    ]);
    let gate = condition(Outcome::Fail, variable_check("prod-only", "#{variables.env}", "EQ", "prod"));
    p.stages[1].before_entry = Some(BeforeEntryConditions::builder().conditions(gate).build().unwrap());
    let skip = condition(Outcome::Skip, variable_check("deploys", "#{variables.deploy}", "MATCHES", "^(yes|true)$"));
    p.stages[2].before_entry = Some(BeforeEntryConditions::builder().conditions(skip).build().unwrap());
    create_past_source(&client, p).await;
    assert_eq!(finish_work(&client, &[]).await, ["A"], "env is prod: Work runs; deploy is no: Final is skipped");
    let first = client.list_pipeline_executions().pipeline_name("p").send().await.unwrap().pipeline_execution_summaries()[0].clone();
    assert_eq!(first.status(), Some(&PipelineExecutionStatus::Succeeded));
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    assert_eq!(state.stage_states()[2].latest_execution().unwrap().status(), &StageExecutionStatus::Skipped);

    let start = |vars: &[(&str, &str)]| {
        let mut request = client.start_pipeline_execution().name("p").source_revisions(
            SourceRevisionOverride::builder()
                .action_name("Checkout")
                .revision_type(SourceRevisionType::CommitId)
                .revision_value("abc")
                .build()
                .unwrap(),
        );
        for (name, value) in vars {
            request = request.variables(PipelineVariable::builder().name(*name).value(*value).build().unwrap());
        }
        async move { request.send().await.unwrap().pipeline_execution_id().unwrap().to_owned() }
    };
    let dev = start(&[("env", "dev")]).await;
    let e = execution_of(&client, &dev).await;
    assert_eq!(e.status(), Some(&PipelineExecutionStatus::Failed));
    let summary = e.status_summary().unwrap();
    assert!(
        summary.contains("Stage 'Work' entry condition not met") && summary.contains("'prod-only'") && summary.contains("'dev'"),
        "{summary}"
    );
    assert_eq!(finish_work(&client, &[]).await, Vec::<String>::new(), "nothing ran");

    // What the rules came to: ListRuleExecutions and the stage's condition state.
    let listed = client.list_rule_executions().pipeline_name("p").send().await.unwrap();
    let rules: Vec<_> = listed.rule_execution_details().iter().map(|r| (r.rule_name().unwrap(), r.status().unwrap().as_str())).collect();
    assert_eq!(rules, [("prod-only", "Failed"), ("deploys", "Failed"), ("prod-only", "Succeeded")], "newest first");
    let filter = RuleExecutionFilter::builder().pipeline_execution_id(&dev).build();
    let of_dev = client.list_rule_executions().pipeline_name("p").filter(filter).send().await.unwrap();
    let rule = &of_dev.rule_execution_details()[0];
    assert_eq!((of_dev.rule_execution_details().len(), rule.stage_name()), (1, Some("Work")));
    assert_eq!(rule.input().unwrap().configuration().unwrap()["Variable"], "#{variables.env}");
    assert_eq!(rule.input().unwrap().resolved_configuration().unwrap()["Variable"], "dev");
    let why = rule.output().unwrap().execution_result().unwrap().external_execution_summary().unwrap();
    assert!(why.contains("'dev'"), "{why}");
    let paged = client.list_rule_executions().pipeline_name("p").max_results(2).send().await.unwrap();
    let rest = client.list_rule_executions().pipeline_name("p").next_token(paged.next_token().unwrap()).send().await.unwrap();
    assert_eq!((paged.rule_execution_details().len(), rest.rule_execution_details().len(), rest.next_token()), (2, 1, None));
    let other = server.client(&server.account("b").await);
    let err = other.list_rule_executions().pipeline_name("p").send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException", "another account sees none of them");
    let unknown = RuleExecutionFilter::builder().pipeline_execution_id("4c1e7a52-0000-4000-8000-000000000000").build();
    let err = client.list_rule_executions().pipeline_name("p").filter(unknown).send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineExecutionNotFoundException");
    let err = client.list_rule_executions().pipeline_name("p").next_token("not-a-token").send().await.unwrap_err();
    assert_eq!(error_code(&err), "InvalidNextTokenException");
    let err = client.list_rule_executions().pipeline_name("nope").send().await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException");
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let gate = state.stage_states()[1].before_entry_condition_state().unwrap();
    assert_eq!(gate.latest_execution().unwrap().status(), Some(&ConditionExecutionStatus::Failed));
    let rule_state = &gate.condition_states()[0].rule_states()[0];
    assert_eq!(rule_state.rule_name(), Some("prod-only"));
    assert_eq!(rule_state.latest_execution().unwrap().status(), Some(&RuleExecutionStatus::Failed));

    let deploy = start(&[("deploy", "yes")]).await;
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    assert_eq!(finish_work(&client, &[]).await, ["F"], "deploy is yes: Final runs");
    assert_eq!(execution_of(&client, &deploy).await.status(), Some(&PipelineExecutionStatus::Succeeded));
    assert_known_states(&server.pool).await;
}

/// A success condition whose rule this server cannot run (here a CloudWatch
/// alarm) is never met: its FAIL result fails the stage after its actions
/// succeeded, saying why.
#[tokio::test]
async fn a_success_condition_that_cannot_be_checked_fails_its_stage() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut p = source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue")])]);
    let id =
        RuleTypeId::builder().category(RuleCategory::Rule).owner(RuleOwner::Aws).provider("CloudWatchAlarm").version("1").build().unwrap();
    let alarm = RuleDeclaration::builder().name("healthy").rule_type_id(id).configuration("AlarmName", "errors").build().unwrap();
    p.stages[1].on_success = Some(SuccessConditions::builder().conditions(condition(Outcome::Fail, alarm)).build().unwrap());
    create_past_source(&client, p).await;
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    let first = client.list_pipeline_executions().pipeline_name("p").send().await.unwrap().pipeline_execution_summaries()[0].clone();
    let e = execution_of(&client, first.pipeline_execution_id().unwrap()).await;
    assert_eq!(e.status(), Some(&PipelineExecutionStatus::Failed));
    assert_eq!(
        e.status_summary(),
        Some("Stage 'Work' success condition not met: rule 'healthy': CloudWatchAlarm rules cannot be evaluated by this server")
    );
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let work = &state.stage_states()[1];
    assert_eq!(work.latest_execution().unwrap().status(), &StageExecutionStatus::Failed);
    assert_eq!(work.action_states()[0].latest_execution().unwrap().status(), Some(&ActionExecutionStatus::Succeeded));
}

fn deployment_window(cron: &str) -> RuleDeclaration {
    let id =
        RuleTypeId::builder().category(RuleCategory::Rule).owner(RuleOwner::Aws).provider("DeploymentWindow").version("1").build().unwrap();
    RuleDeclaration::builder().name("window").rule_type_id(id).configuration("Cron", cron).configuration("TimeZone", "UTC").build().unwrap()
}

/// A window closed now that opens next month.
fn closed_window() -> String {
    use chrono::Datelike;
    format!("* * * ? {} * *", chrono::Utc::now().month() % 12 + 1)
}

async fn override_condition(
    client: &Client,
    stage: &str,
    id: &str,
    kind: ConditionType,
) -> std::result::Result<
    (),
    aws_sdk_codepipeline::error::SdkError<aws_sdk_codepipeline::operation::override_stage_condition::OverrideStageConditionError>,
> {
    client
        .override_stage_condition()
        .pipeline_name("p")
        .stage_name(stage)
        .pipeline_execution_id(id)
        .condition_type(kind)
        .send()
        .await
        .map(drop)
}

async fn latest_execution_id(client: &Client) -> String {
    let listed = client.list_pipeline_executions().pipeline_name("p").send().await.unwrap();
    listed.pipeline_execution_summaries()[0].pipeline_execution_id().unwrap().to_owned()
}

/// A closed DeploymentWindow keeps an entry condition in progress: the
/// execution holds the stage (QUEUED: the next one waits for it) without
/// starting its actions, until OverrideStageCondition lets it in; the
/// condition then shows Overridden.
#[tokio::test]
async fn an_entry_condition_waiting_for_its_window_holds_the_stage_until_overridden() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut p = source_then("p", ExecutionMode::Queued, vec![("Work", vec![work_action("A", "blue")])]);
    let gate = condition(Outcome::Fail, deployment_window(&closed_window()));
    p.stages[1].before_entry = Some(BeforeEntryConditions::builder().conditions(gate).build().unwrap());
    create_past_source(&client, p).await;
    assert_eq!(finish_work(&client, &[]).await, Vec::<String>::new(), "the window is closed: nothing runs");
    let first = latest_execution_id(&client).await;
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let work = &state.stage_states()[1];
    assert_eq!(
        work.latest_execution().map(|e| (e.pipeline_execution_id(), e.status())),
        Some((first.as_str(), &StageExecutionStatus::InProgress))
    );
    let gate = work.before_entry_condition_state().unwrap();
    assert_eq!(gate.latest_execution().unwrap().status(), Some(&ConditionExecutionStatus::InProgress));
    assert_eq!(gate.condition_states()[0].rule_states()[0].latest_execution().unwrap().status(), Some(&RuleExecutionStatus::InProgress));
    let second = start_many(&client, "p", 1).await.remove(0);
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    assert_eq!(
        state.stage_states()[1].inbound_execution().map(|e| e.pipeline_execution_id()),
        Some(second.as_str()),
        "QUEUED: it waits its turn"
    );

    let over = |stage: &'static str, id: String, kind: ConditionType| {
        let client = client.clone();
        async move { override_condition(&client, stage, &id, kind).await }
    };
    let refused = [
        (over("Work", first.clone(), ConditionType::OnSuccess).await, "ConditionNotOverridableException"),
        (over("Source", first.clone(), ConditionType::BeforeEntry).await, "ConditionNotOverridableException"),
        (over("Work", second.clone(), ConditionType::BeforeEntry).await, "ConditionNotOverridableException"),
        (over("Nope", first.clone(), ConditionType::BeforeEntry).await, "StageNotFoundException"),
        (
            over("Work", "4c1e7a52-0000-4000-8000-000000000000".into(), ConditionType::BeforeEntry).await,
            "PipelineExecutionNotFoundException",
        ),
    ];
    for (i, (result, code)) in refused.into_iter().enumerate() {
        assert_eq!(error_code(&result.unwrap_err()), code, "case {i}");
    }
    let other = server.client(&server.account("b").await);
    let err = override_condition(&other, "Work", &first, ConditionType::BeforeEntry).await.unwrap_err();
    assert_eq!(error_code(&err), "PipelineNotFoundException", "another account cannot override it");

    over("Work", first.clone(), ConditionType::BeforeEntry).await.unwrap();
    assert_eq!(finish_work(&client, &[]).await, ["A"], "overridden: the stage's actions run");
    assert_eq!(execution_of(&client, &first).await.status(), Some(&PipelineExecutionStatus::Succeeded));
    let filter = RuleExecutionFilter::builder().pipeline_execution_id(&first).build();
    let rules = client.list_rule_executions().pipeline_name("p").filter(filter).send().await.unwrap();
    let rule = &rules.rule_execution_details()[0];
    assert_eq!(rule.status(), Some(&RuleExecutionStatus::Abandoned), "the rule never finished");
    let summary = rule.output().unwrap().execution_result().unwrap().external_execution_summary().unwrap();
    assert!(summary.starts_with("Overridden by arn:"), "{summary}");
    let err = over("Work", first.clone(), ConditionType::BeforeEntry).await.unwrap_err();
    assert_eq!(error_code(&err), "ConditionNotOverridableException", "only once");

    // The stage is free: the second execution enters and waits for the window in turn.
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let work = &state.stage_states()[1];
    assert_eq!(work.latest_execution().map(|e| e.pipeline_execution_id()), Some(second.as_str()));
    assert_eq!(
        work.before_entry_condition_state().unwrap().latest_execution().unwrap().status(),
        Some(&ConditionExecutionStatus::InProgress)
    );
}

/// An execution waiting for a DeploymentWindow goes on by itself when the
/// window opens: the sweepers of two replicas evaluate the condition again
/// when it is due, once between them.
#[tokio::test]
async fn a_waiting_execution_enters_its_stage_when_the_window_opens() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    use chrono::Timelike;
    let mut config = Config::for_tests();
    config.sweep_interval = Duration::from_millis(50);
    let server = TestServer::start_with(config.clone()).await;
    let _replica = TestServer::start_full(server.database_url.clone(), server.master_key.clone(), config).await;
    let client = server.client(&server.account("a").await);
    // Open for a few seconds, starting 8 seconds from now.
    let now = chrono::Utc::now().second();
    let seconds: Vec<String> = (8..14).map(|d| ((now + d) % 60).to_string()).collect();
    let window = deployment_window(&format!("{} * * * * ?", seconds.join(",")));
    let mut p = source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue")])]);
    p.stages[1].before_entry = Some(BeforeEntryConditions::builder().conditions(condition(Outcome::Fail, window)).build().unwrap());
    create_past_source(&client, p).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut ran = Vec::new();
    while ran.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        ran = finish_work(&client, &[]).await;
    }
    assert_eq!(ran, ["A"], "the execution entered when the window opened");
    assert_eq!(execution_of(&client, &latest_execution_id(&client).await).await.status(), Some(&PipelineExecutionStatus::Succeeded));
    let rules = client.list_rule_executions().pipeline_name("p").send().await.unwrap();
    assert_eq!(rules.rule_execution_details().len(), 1, "one evaluation, settled in place");
    let rule = &rules.rule_execution_details()[0];
    assert_eq!(rule.status(), Some(&RuleExecutionStatus::Succeeded));
    assert!(rule.last_update_time().unwrap().secs() > rule.start_time().unwrap().secs(), "it was in progress before it succeeded");
}

/// A success condition waiting for its window keeps the stage in progress
/// after its actions succeeded; a stop ends the wait (the rule is
/// abandoned), and an override lets the execution succeed.
#[tokio::test]
async fn a_success_condition_waiting_for_its_window_ends_with_a_stop_or_an_override() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut p = source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue")])]);
    let gate = condition(Outcome::Fail, deployment_window(&closed_window()));
    p.stages[1].on_success = Some(SuccessConditions::builder().conditions(gate).build().unwrap());
    create_past_source(&client, p).await;
    let first = latest_execution_id(&client).await;
    let second = start_many(&client, "p", 1).await.remove(0);
    assert_eq!(finish_work(&client, &[]).await, ["A", "A"]);
    for id in [&first, &second] {
        assert_eq!(execution_of(&client, id).await.status(), Some(&PipelineExecutionStatus::InProgress), "both wait for the window");
    }
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let work = &state.stage_states()[1];
    assert_eq!(
        work.on_success_condition_state().unwrap().latest_execution().unwrap().status(),
        Some(&ConditionExecutionStatus::InProgress)
    );
    assert_eq!(work.action_states()[0].latest_execution().unwrap().status(), Some(&ActionExecutionStatus::Succeeded));

    client.stop_pipeline_execution().pipeline_name("p").pipeline_execution_id(&first).reason("not today").send().await.unwrap();
    assert_eq!(execution_of(&client, &first).await.status(), Some(&PipelineExecutionStatus::Stopped));
    let filter = RuleExecutionFilter::builder().pipeline_execution_id(&first).build();
    let rules = client.list_rule_executions().pipeline_name("p").filter(filter).send().await.unwrap();
    assert_eq!(rules.rule_execution_details()[0].status(), Some(&RuleExecutionStatus::Abandoned));

    let err = override_condition(&client, "Work", &first, ConditionType::OnSuccess).await.unwrap_err();
    assert_eq!(error_code(&err), "ConditionNotOverridableException", "a stopped execution waits for nothing");
    override_condition(&client, "Work", &second, ConditionType::OnSuccess).await.unwrap();
    assert_eq!(execution_of(&client, &second).await.status(), Some(&PipelineExecutionStatus::Succeeded));
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let work = &state.stage_states()[1];
    assert_eq!(work.latest_execution().unwrap().status(), &StageExecutionStatus::Succeeded);
    assert_eq!(
        work.on_success_condition_state().unwrap().latest_execution().unwrap().status(),
        Some(&ConditionExecutionStatus::Overridden)
    );
    assert_known_states(&server.pool).await;
}

/// A stage retried after its success condition failed evaluates it again;
/// the condition's state shows the newest evaluation only.
#[tokio::test]
async fn a_retried_stage_shows_its_newest_condition_evaluation() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut action = work_action("A", "blue");
    action.namespace = Some("W".into());
    let mut p = source_then("p", ExecutionMode::Superseded, vec![("Work", vec![action])]);
    let green = condition(Outcome::Fail, variable_check("green", "#{W.light}", "EQ", "green"));
    p.stages[1].on_success = Some(SuccessConditions::builder().conditions(green).build().unwrap());
    create_past_source(&client, p).await;
    let finish_with = |light: &'static str| {
        let client = client.clone();
        async move {
            let polled = client.poll_for_jobs().action_type_id(worker_type()).send().await.unwrap();
            let job = &polled.jobs()[0];
            client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await.unwrap();
            client.put_job_success_result().job_id(job.id().unwrap()).output_variables("light", light).send().await.unwrap();
        }
    };
    finish_with("red").await;
    let id = latest_execution_id(&client).await;
    assert_eq!(execution_of(&client, &id).await.status(), Some(&PipelineExecutionStatus::Failed));
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let gate = state.stage_states()[1].on_success_condition_state().unwrap();
    assert_eq!(gate.latest_execution().unwrap().status(), Some(&ConditionExecutionStatus::Failed));

    retry_work(&client, &id, StageRetryMode::AllActions).await;
    finish_with("green").await;
    assert_eq!(execution_of(&client, &id).await.status(), Some(&PipelineExecutionStatus::Succeeded));
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let gate = state.stage_states()[1].on_success_condition_state().unwrap();
    assert_eq!(gate.latest_execution().unwrap().status(), Some(&ConditionExecutionStatus::Succeeded));
    let rules = gate.condition_states()[0].rule_states();
    assert_eq!(rules.len(), 1, "the newest evaluation of the rule");
    assert_eq!(rules[0].latest_execution().unwrap().status(), Some(&RuleExecutionStatus::Succeeded));
    let history = client.list_rule_executions().pipeline_name("p").send().await.unwrap();
    let statuses: Vec<_> = history.rule_execution_details().iter().map(|r| r.status().unwrap().as_str()).collect();
    assert_eq!(statuses, ["Succeeded", "Failed"], "ListRuleExecutions keeps both, newest first");
}

/// Retrying a stage that was never entered (stopped while its entry
/// condition waited for the window) goes through the entry condition
/// again: a retry is no way around a gate.
#[tokio::test]
async fn a_retry_of_a_stage_never_entered_checks_its_entry_condition_again() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut p = source_then("p", ExecutionMode::Superseded, vec![("Work", vec![work_action("A", "blue")])]);
    let gate = condition(Outcome::Fail, deployment_window(&closed_window()));
    p.stages[1].before_entry = Some(BeforeEntryConditions::builder().conditions(gate).build().unwrap());
    create_past_source(&client, p).await;
    let id = latest_execution_id(&client).await;
    client.stop_pipeline_execution().pipeline_name("p").pipeline_execution_id(&id).send().await.unwrap();
    assert_eq!(execution_of(&client, &id).await.status(), Some(&PipelineExecutionStatus::Stopped));
    retry_work(&client, &id, StageRetryMode::FailedActions).await;
    assert_eq!(finish_work(&client, &[]).await, Vec::<String>::new(), "the window is still closed");
    let state = client.get_pipeline_state().name("p").send().await.unwrap();
    let gate = state.stage_states()[1].before_entry_condition_state().unwrap();
    assert_eq!(gate.latest_execution().unwrap().status(), Some(&ConditionExecutionStatus::InProgress));
    override_condition(&client, "Work", &id, ConditionType::BeforeEntry).await.unwrap();
    assert_eq!(finish_work(&client, &[]).await, ["A"]);
    assert_eq!(execution_of(&client, &id).await.status(), Some(&PipelineExecutionStatus::Succeeded));
}

/// UpdatePipeline cancels an execution waiting for its window like any
/// other: the rule is abandoned, not left in progress.
#[tokio::test]
async fn an_update_cancels_an_execution_waiting_for_its_window() {
    use aws_sdk_codepipeline::types::Result as Outcome;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    let mut p = source_then("p", ExecutionMode::Parallel, vec![("Work", vec![work_action("A", "blue")])]);
    let gate = condition(Outcome::Fail, deployment_window(&closed_window()));
    p.stages[1].before_entry = Some(BeforeEntryConditions::builder().conditions(gate).build().unwrap());
    create_past_source(&client, p).await;
    let id = latest_execution_id(&client).await;
    let current = client.get_pipeline().name("p").send().await.unwrap().pipeline().unwrap().clone();
    client.update_pipeline().pipeline(current).send().await.unwrap();
    assert_eq!(execution_of(&client, &id).await.status(), Some(&PipelineExecutionStatus::Cancelled));
    let filter = RuleExecutionFilter::builder().pipeline_execution_id(&id).build();
    let rules = client.list_rule_executions().pipeline_name("p").filter(filter).send().await.unwrap();
    assert_eq!(rules.rule_execution_details()[0].status(), Some(&RuleExecutionStatus::Abandoned));
    let err = override_condition(&client, "Work", &id, ConditionType::BeforeEntry).await.unwrap_err();
    assert_eq!(error_code(&err), "ConditionNotOverridableException");
}

/// A result that saw a sibling being ended at the same time waits for that
/// sibling's writer, and then reads the sibling as the writer left it; a
/// sibling nobody is writing is simply still running.
#[tokio::test]
async fn a_result_waits_for_a_sibling_being_ended_and_reads_it_as_left() {
    use millrace::store::executions::ended_all;
    let server = TestServer::start().await;
    let client = server.client(&server.account("a").await);
    worker_pipeline(&client, "p", false).await;
    start_many(&client, "p", 1).await;
    let (account_id, id): (String, uuid::Uuid) = sqlx::query_as(
        "select account_id, action_execution_id from action_execution where pipeline_name = 'p' and status = 'InProgress' limit 1",
    )
    .fetch_one(&server.pool)
    .await
    .unwrap();
    let mut conn = server.pool.acquire().await.unwrap();
    assert!(!ended_all(&mut conn, &account_id, &[id]).await.unwrap(), "nobody ends it: still running");

    let mut writer = server.pool.begin().await.unwrap();
    sqlx::query("update action_execution set status = 'Succeeded' where action_execution_id = $1")
        .bind(id)
        .execute(&mut *writer)
        .await
        .unwrap();
    let commit = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.commit().await.unwrap();
    });
    let started = std::time::Instant::now();
    assert!(ended_all(&mut conn, &account_id, &[id]).await.unwrap(), "ended by the writer it waited for");
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited for the writer's commit");
    commit.await.unwrap();
}
