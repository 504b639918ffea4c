//! Job-lifecycle benchmark: W workers doing PollForJobs → AcknowledgeJob →
//! PutJobSuccessResult through the real HTTP API (SigV4; the official SDK,
//! or with `--client lean` the SDK's signer alone) against the real server,
//! while a feeder keeps the queue full with StartPipelineExecution calls. See `benches/README.md`.
//!
//! ```text
//! cargo run --release --example bench -- [--workers 16] [--batch 1] [--duration-secs 60]
//!     [--pipelines 64] [--actions 1] [--backoff-ms 0] [--feeders 8] [--seed-finished 0] [--prefill 0] [--empty]
//!     [--client sdk|lean] [--async-claim-commit] [--db-max-connections 16] [--database-url URL] [--data-dir DIR] [--keep] [--log]
//! ```
//!
//! Without `--database-url` (or `DATABASE_URL`), the embedded cluster under
//! `--data-dir` (default `<target>/bench-pg`) is started (or reused), and
//! every run gets a fresh database in it, dropped at the end unless `--keep`.
//! With a URL, that database is used as is (a fresh account isolates the run).
//!
//! `--prefill N` queues N jobs before the clock starts; the feeder then only
//! starts executions once fewer than its target remain, so the first part of
//! the run measures the worker path without the feeder's load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_codepipeline::types::*;
use millrace::config::Config;
use millrace::crypto::SecretBox;
use millrace::store::accounts;
use millrace::store::embedded::EmbeddedPostgres;
use millrace::{App, Server};
use sqlx::{Connection, PgConnection, PgPool};

const REGION: &str = "us-east-1";

#[derive(Debug, Clone, clap::Parser)]
#[command(about = "Job-lifecycle benchmark (see benches/README.md)")]
struct Args {
    /// Concurrent workers (PollForJobs → AcknowledgeJob → PutJobSuccessResult).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    workers: u32,
    /// maxBatchSize of every poll.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100))]
    batch: i32,
    #[arg(long = "duration-secs", default_value = "60", value_parser = secs)]
    duration: Duration,
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pipelines: u32,
    /// Parallel Work actions per execution: one job each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    actions: u32,
    /// A worker that found no job waits this long before polling again.
    #[arg(long = "backoff-ms", default_value = "0", value_parser = millis)]
    backoff: Duration,
    /// Tasks calling StartPipelineExecution to keep the queue full.
    #[arg(long, default_value_t = 8)]
    feeders: u32,
    /// First insert this many finished jobs (a big job table).
    #[arg(long, default_value_t = 0)]
    seed_finished: i64,
    /// Queue this many jobs before the clock starts.
    #[arg(long, default_value_t = 0)]
    prefill: i64,
    /// No feeders: the workers poll an empty queue.
    #[arg(long)]
    empty: bool,
    /// Use this database as is instead of a fresh one in the embedded cluster.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The embedded cluster's directory (default `<target>/bench-pg`).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Keep the run's database.
    #[arg(long)]
    keep: bool,
    /// Log the server's requests.
    #[arg(long)]
    log: bool,
    /// Who makes the workers' and feeders' calls: the official SDK, or a lean
    /// client (the SDK's own SigV4 signer over pooled HTTP/1.1, JSON by hand)
    /// that leaves more of the shared cores to the server and PostgreSQL.
    #[arg(long, value_enum, default_value_t = ClientKind::Sdk)]
    client: ClientKind,
    /// The server's `--async-claim-commit`: claims do not wait for the WAL flush.
    #[arg(long)]
    async_claim_commit: bool,
    /// The server's `--db-max-connections`.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..))]
    db_max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClientKind {
    Sdk,
    Lean,
}

fn secs(s: &str) -> std::result::Result<Duration, std::num::ParseIntError> {
    s.parse().map(Duration::from_secs)
}

fn millis(s: &str) -> std::result::Result<Duration, std::num::ParseIntError> {
    s.parse().map(Duration::from_millis)
}

fn type_id(category: ActionCategory, provider: &str) -> ActionTypeId {
    ActionTypeId::builder().category(category).owner(ActionOwner::Custom).provider(provider).version("1").build().unwrap()
}

fn source_type() -> ActionTypeId {
    type_id(ActionCategory::Source, "BenchRepo")
}

fn worker_type() -> ActionTypeId {
    type_id(ActionCategory::Build, "BenchWorker")
}

fn client(endpoint: &str, key: &accounts::IssuedKey) -> Client {
    let conf = aws_sdk_codepipeline::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(&key.access_key_id, &key.secret_access_key, None, None, "bench"))
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .retry_config(aws_sdk_codepipeline::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// The calls the workers and feeders make, through either client.
#[derive(Clone)]
enum Api {
    Sdk(Client),
    Lean(Arc<Lean>),
}

impl Api {
    /// Claims up to `batch` jobs: their ids and nonces.
    async fn poll(&self, batch: i32) -> anyhow::Result<Vec<(String, String)>> {
        match self {
            Api::Sdk(c) => {
                let out = c.poll_for_jobs().action_type_id(worker_type()).max_batch_size(batch).send().await.map_err(debug)?;
                Ok(out.jobs().iter().map(|j| (j.id().unwrap_or_default().to_owned(), j.nonce().unwrap_or_default().to_owned())).collect())
            }
            Api::Lean(c) => {
                let input = serde_json::json!({
                    "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "BenchWorker", "version": "1"},
                    "maxBatchSize": batch,
                });
                let out = c.call("PollForJobs", input).await?;
                let jobs = out["jobs"].as_array().context("PollForJobs answered no jobs array")?;
                Ok(jobs.iter().map(|j| (text(&j["id"]), text(&j["nonce"]))).collect())
            }
        }
    }

    async fn acknowledge(&self, id: &str, nonce: &str) -> anyhow::Result<()> {
        match self {
            Api::Sdk(c) => c.acknowledge_job().job_id(id).nonce(nonce).send().await.map(drop).map_err(debug),
            Api::Lean(c) => c.call("AcknowledgeJob", serde_json::json!({"jobId": id, "nonce": nonce})).await.map(drop),
        }
    }

    async fn succeed(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Api::Sdk(c) => c.put_job_success_result().job_id(id).send().await.map(drop).map_err(debug),
            Api::Lean(c) => c.call("PutJobSuccessResult", serde_json::json!({"jobId": id})).await.map(drop),
        }
    }

    /// Starts an execution whose source action takes `revision` at once.
    async fn start(&self, pipeline: &str, revision: String) -> anyhow::Result<()> {
        match self {
            Api::Sdk(c) => {
                let revision = SourceRevisionOverride::builder()
                    .action_name("Checkout")
                    .revision_type(SourceRevisionType::CommitId)
                    .revision_value(revision)
                    .build()?;
                c.start_pipeline_execution().name(pipeline).source_revisions(revision).send().await.map(drop).map_err(debug)
            }
            Api::Lean(c) => {
                let input = serde_json::json!({
                    "name": pipeline,
                    "sourceRevisions": [{"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": revision}],
                });
                c.call("StartPipelineExecution", input).await.map(drop)
            }
        }
    }
}

fn debug(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// A lean AWS JSON 1.1 client: what a load generator needs and no more.
struct Lean {
    http: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, http_body_util::Full<axum::body::Bytes>>,
    endpoint: String,
    host: String,
    credentials: Credentials,
}

impl Lean {
    fn new(endpoint: &str, key: &accounts::IssuedKey) -> anyhow::Result<Lean> {
        let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let host = endpoint.strip_prefix("http://").context("the endpoint is not http://")?.to_owned();
        let credentials = Credentials::new(&key.access_key_id, &key.secret_access_key, None, None, "bench");
        Ok(Lean { http, endpoint: format!("http://{host}/"), host, credentials })
    }

    async fn call(&self, operation: &str, input: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use http_body_util::BodyExt;

        let body = serde_json::to_vec(&input)?;
        let mut request = http::Request::post(&self.endpoint)
            .header("host", &self.host)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("CodePipeline_20150709.{operation}"))
            .body(())?;
        let identity = self.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("codepipeline")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers = request.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap_or_default()));
        let signable = SignableRequest::new("POST", self.endpoint.as_str(), headers, SignableBody::Bytes(&body))?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let response = self.http.request(request.map(|()| http_body_util::Full::new(body.into()))).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{operation}: HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// Latencies of one call type, in microseconds.
#[derive(Default)]
struct Samples(Vec<u32>);

impl Samples {
    fn add(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }
    fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }
    fn row(&mut self, name: &str) -> String {
        if self.0.is_empty() {
            return format!("| {name} | 0 | – | – | – |");
        }
        self.0.sort_unstable();
        let q = |p: f64| self.0[((self.0.len() as f64 * p).ceil() as usize).clamp(1, self.0.len()) - 1] as f64 / 1000.0;
        format!("| {name} | {} | {:.2} | {:.2} | {:.2} |", self.0.len(), q(0.50), q(0.99), *self.0.last().unwrap() as f64 / 1000.0)
    }
}

#[derive(Default)]
struct WorkerStats {
    poll: Samples,
    empty_poll: Samples,
    ack: Samples,
    result: Samples,
}

struct Shared {
    stop: AtomicBool,
    /// Jobs queued by the feeder and not yet claimed (an estimate: the feeder's count).
    queued: AtomicI64,
    completed: AtomicU64,
    started: AtomicU64,
    errors: AtomicU64,
    /// The feeder starts executions while fewer jobs than this are queued.
    target: AtomicI64,
}

fn note_error(shared: &Shared, what: &str, e: impl std::fmt::Debug) {
    let n = shared.errors.fetch_add(1, Ordering::Relaxed);
    if n < 5 {
        eprintln!("error in {what}: {e:?}");
    }
}

async fn worker(api: Api, shared: Arc<Shared>, batch: i32, backoff: Duration) -> WorkerStats {
    let mut s = WorkerStats::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let jobs = match api.poll(batch).await {
            Ok(jobs) => jobs,
            Err(e) => {
                note_error(&shared, "PollForJobs", e);
                continue;
            }
        };
        if jobs.is_empty() {
            s.empty_poll.add(t.elapsed());
            if !backoff.is_zero() {
                tokio::time::sleep(backoff).await;
            }
            continue;
        }
        s.poll.add(t.elapsed());
        shared.queued.fetch_sub(jobs.len() as i64, Ordering::Relaxed);
        for (id, nonce) in &jobs {
            let t = Instant::now();
            if let Err(e) = api.acknowledge(id, nonce).await {
                note_error(&shared, "AcknowledgeJob", e);
                continue;
            }
            s.ack.add(t.elapsed());
            let t = Instant::now();
            if let Err(e) = api.succeed(id).await {
                note_error(&shared, "PutJobSuccessResult", e);
                continue;
            }
            s.result.add(t.elapsed());
            shared.completed.fetch_add(1, Ordering::Relaxed);
        }
    }
    s
}

/// Keeps at least `low` jobs queued by starting executions (one Work job each),
/// spread round-robin over the pipelines.
async fn feeder(api: Api, shared: Arc<Shared>, pipelines: Arc<Vec<String>>, actions: usize, me: usize) -> Samples {
    let mut samples = Samples::default();
    let mut n = me;
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.queued.load(Ordering::Relaxed) >= shared.target.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let pipeline = &pipelines[n % pipelines.len()];
        let revision = format!("rev-{me}-{n}");
        n += 1;
        let t = Instant::now();
        match api.start(pipeline, revision).await {
            Ok(()) => {
                samples.add(t.elapsed());
                shared.queued.fetch_add(actions as i64, Ordering::Relaxed);
                shared.started.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => note_error(&shared, "StartPipelineExecution", e),
        }
    }
    samples
}

async fn create_pipeline(client: &Client, name: &str, actions: usize) -> anyhow::Result<()> {
    let source = ActionDeclaration::builder()
        .name("Checkout")
        .action_type_id(source_type())
        .output_artifacts(OutputArtifact::builder().name("code").build()?)
        .build()?;
    let work = (0..actions)
        .map(|i| {
            ActionDeclaration::builder()
                .name(if actions == 1 { "Work".to_owned() } else { format!("Work{i}") })
                .action_type_id(worker_type())
                .input_artifacts(InputArtifact::builder().name("code").build()?)
                .build()
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let p = PipelineDeclaration::builder()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/pipeline")
        .pipeline_type(PipelineType::V2)
        .execution_mode(ExecutionMode::Parallel)
        .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifacts").build()?)
        .stages(StageDeclaration::builder().name("Source").actions(source).build()?)
        .stages(StageDeclaration::builder().name("Work").set_actions(Some(work)).build()?)
        .build()?;
    client.create_pipeline().pipeline(p).send().await?;
    Ok(())
}

/// Polls `type_id` until `n` jobs were claimed and completed.
async fn drain(client: &Client, type_id: ActionTypeId, n: usize) -> anyhow::Result<()> {
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while done < n {
        if Instant::now() > deadline {
            bail!("only {done} of {n} setup jobs of {type_id:?} showed up");
        }
        let out = client.poll_for_jobs().action_type_id(type_id.clone()).max_batch_size(100).send().await?;
        for job in out.jobs() {
            client.acknowledge_job().job_id(job.id().unwrap()).nonce(job.nonce().unwrap()).send().await?;
            client.put_job_success_result().job_id(job.id().unwrap()).send().await?;
            done += 1;
        }
        if out.jobs().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or("?".into());
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or("?".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!("nproc {cpus}, {total} RAM, CPU: {model}, loadavg at start: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

async fn pg_settings(pool: &PgPool) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let (version,): (String,) = sqlx::query_as("select current_setting('server_version')").fetch_one(pool).await?;
    out.push(format!("PostgreSQL {version}"));
    for name in ["shared_buffers", "synchronous_commit", "fsync", "max_connections", "autovacuum_naptime"] {
        let (v,): (String,) = sqlx::query_as("select current_setting($1)").bind(name).fetch_one(pool).await?;
        out.push(format!("{name}={v}"));
    }
    let (opts,): (Option<Vec<String>>,) = sqlx::query_as("select reloptions from pg_class where relname = 'job'").fetch_one(pool).await?;
    out.push(format!("job reloptions={}", opts.unwrap_or_default().join(",")));
    Ok(out.join(", "))
}

/// EXPLAIN (ANALYZE, BUFFERS) of PollForJobs' statement (`store::jobs::POLL`)
/// as the server runs it (prepared, generic plan), in a transaction that is
/// rolled back (nothing is claimed).
async fn explain_claim(pool: &PgPool, account_id: &str, limit: i32) -> anyhow::Result<String> {
    use sqlx::Row;
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(&format!("prepare bench_claim as {}", millrace::store::jobs::POLL)).execute(&mut *tx).await?;
    let account: u64 = account_id.parse().context("account ids are digits")?;
    let explain = format!(
        "explain (analyze, buffers) execute bench_claim('{account}', 'Custom', 'Build', 'BenchWorker', '1', null, null, {limit}, false, 86400)"
    );
    let rows = sqlx::raw_sql(&explain).fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    rows.iter().map(|r| r.try_get::<String, _>(0).map_err(Into::into)).collect::<anyhow::Result<Vec<_>>>().map(|l| l.join("\n"))
}

async fn seed_finished(pool: &PgPool, account_id: &str, pipeline: &str, n: i64) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut conn = pool.acquire().await?;
    // A million rows may take longer than the server's statement timeout.
    sqlx::query("set statement_timeout = 0").execute(&mut *conn).await?;
    // Any finished execution of this pipeline satisfies the foreign key; the
    // rows copy a real job's data so the heap looks like a real one.
    let (execution_id, data): (uuid::Uuid, serde_json::Value) = sqlx::query_as(
        "select j.execution_id, j.data from job j join pipeline_execution e using (account_id, pipeline_name, execution_id) \
         where j.account_id = $1 and j.pipeline_name = $2 and e.status = 'Succeeded' and j.status = 'Succeeded' limit 1",
    )
    .bind(account_id)
    .bind(pipeline)
    .fetch_one(&mut *conn)
    .await
    .context("finding a finished execution to attach seeded jobs to")?;
    sqlx::query(
        "insert into job (job_id, account_id, pipeline_name, execution_id, action_execution_id, owner, category, provider, version, \
                          status, nonce, data, dispatched_at, timeout_at, created_at, updated_at) \
         select gen_random_uuid(), $1, $2, $3, gen_random_uuid(), 'Custom', 'Build', 'BenchWorker', '1', \
                'Succeeded', gen_random_uuid()::text, $4, now(), now() + interval '1 day', now(), now() \
         from generate_series(1, $5)",
    )
    .bind(account_id)
    .bind(pipeline)
    .bind(execution_id)
    .bind(&data)
    .bind(n)
    .execute(&mut *conn)
    .await?;
    let inserted = t.elapsed();
    sqlx::query("vacuum analyze job").execute(&mut *conn).await?;
    sqlx::query("reset statement_timeout").execute(&mut *conn).await?;
    println!(
        "seeded {n} finished jobs in {:.1} s (+ VACUUM ANALYZE {:.1} s)",
        inserted.as_secs_f64(),
        (t.elapsed() - inserted).as_secs_f64()
    );
    Ok(())
}

/// The name of the server's threads (its own tokio runtime), so their CPU
/// time can be told from the clients'.
const SERVER_THREADS: &str = "bench-server";

/// CPU seconds used so far: by the server's threads, by the rest of this
/// process (the clients), and by each `postgres` process on the machine
/// (including children it has reaped, such as autovacuum workers), by pid.
#[derive(Clone, Default)]
struct Cpu {
    server: f64,
    clients: f64,
    postgres: std::collections::HashMap<u32, f64>,
}

/// CPU seconds between two [`Cpu`] readings.
struct CpuUsed {
    server: f64,
    clients: f64,
    postgres: f64,
}

impl Cpu {
    fn now() -> Cpu {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let stat = |path: std::path::PathBuf| std::fs::read_to_string(path).ok();
        let process = stat("/proc/self/stat".into()).and_then(|s| ticks(&s, false)).unwrap_or(0.0);
        let mut server = 0.0;
        for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
            if let Some(s) = stat(task.path().join("stat")).filter(|s| comm(s) == Some(SERVER_THREADS)) {
                server += ticks(&s, false).unwrap_or(0.0);
            }
        }
        let mut postgres = std::collections::HashMap::new();
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>()
                && let Some(s) = stat(p.path().join("stat")).filter(|s| comm(s) == Some("postgres"))
            {
                postgres.insert(pid, ticks(&s, true).unwrap_or(0.0) / hz);
            }
        }
        Cpu { server: server / hz, clients: (process - server) / hz, postgres }
    }

    /// What was used since `start`. PostgreSQL's is summed over the
    /// processes alive now (a process that has gone, such as a previous
    /// run's cluster shutting down, took its time with it; one that started
    /// since counts in full).
    fn since(&self, start: &Cpu) -> CpuUsed {
        let postgres = self.postgres.iter().map(|(pid, t)| t - start.postgres.get(pid).copied().unwrap_or(0.0)).sum();
        CpuUsed { server: self.server - start.server, clients: self.clients - start.clients, postgres }
    }
}

/// The command name in a `/proc/…/stat` line.
fn comm(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// utime + stime (+ cutime + cstime with `children`) of a `/proc/…/stat`
/// line, in clock ticks.
fn ticks(stat: &str, children: bool) -> Option<f64> {
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    let sum = |range: std::ops::Range<usize>| range.map(|i| fields.get(i).and_then(|f| f.parse::<f64>().ok())).sum::<Option<f64>>();
    // Fields 14–15 (utime, stime) and 16–17 (cutime, cstime), counted from the state (field 3).
    sum(if children { 11..15 } else { 11..13 })
}

struct Db {
    url: String,
    /// (maintenance URL, database name) to drop at the end.
    drop: Option<(String, String)>,
    _embedded: Option<EmbeddedPostgres>,
}

async fn database(args: &Args) -> anyhow::Result<Db> {
    if let Some(url) = args.database_url.as_ref().filter(|u| !u.is_empty()) {
        return Ok(Db { url: url.clone(), drop: None, _embedded: None });
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let dir = args.data_dir.clone().unwrap_or_else(|| std::path::PathBuf::from(target).join("bench-pg"));
    let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir)).await??;
    let admin = pg.database_url("postgres");
    let name = format!("millrace_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await?;
    sqlx::query(&format!("create database \"{name}\"")).execute(&mut conn).await?;
    let url = pg.database_url(&name);
    let drop = (!args.keep).then(|| (admin, name.clone()));
    if args.keep {
        println!("keeping database {name}: {url}");
    }
    Ok(Db { url, drop, _embedded: Some(pg) })
}

// The server binary's allocator (src/main.rs), so that the server measured here runs as it does there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    if args.log {
        millrace::telemetry::init();
    }
    let db = database(&args).await?;
    // The server's default statement timeout (`--db-statement-timeout-secs`).
    let pool = millrace::store::connect(&db.url, args.db_max_connections, Duration::from_secs(30)).await?;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key_base64())?;
    let key = {
        let mut conn = pool.acquire().await?;
        accounts::create_account(&mut conn, &secrets, "bench", None).await?
    };
    let config = Config { async_claim_commit: args.async_claim_commit, ..Config::for_tests() };
    let app = App::new(pool.clone(), secrets, config);
    let sweep = app.config.sweep_interval;
    // The server runs on its own runtime and threads, as it would in its
    // own process, so its CPU time can be measured apart from the clients'.
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound, address) = tokio::sync::oneshot::channel();
    let served = std::thread::Builder::new().name(SERVER_THREADS.into()).spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread().thread_name(SERVER_THREADS).enable_all().build()?;
        runtime.block_on(async move {
            let server = Server::bind(app).await?;
            let _ = bound.send(server.local_addr());
            server
                .run(async {
                    let _ = shutdown_rx.await;
                })
                .await
        })
    })?;
    let endpoint = format!("http://{}", address.await.context("the server did not start")?);

    let client = client(&endpoint, &key);
    // Setup: action types, pipelines, and their CreatePipeline executions run to the end.
    let artifacts = || ArtifactDetails::builder().minimum_count(0).maximum_count(5).build();
    for (category, provider) in [("Source", "BenchRepo"), ("Build", "BenchWorker")] {
        client
            .create_custom_action_type()
            .category(ActionCategory::from(category))
            .provider(provider)
            .version("1")
            .input_artifact_details(artifacts())
            .output_artifact_details(artifacts())
            .send()
            .await?;
    }
    let names: Vec<String> = (0..args.pipelines).map(|i| format!("bench-{i}")).collect();
    for name in &names {
        create_pipeline(&client, name, args.actions as usize).await?;
    }
    drain(&client, source_type(), names.len()).await?;
    drain(&client, worker_type(), names.len() * args.actions as usize).await?;
    if args.seed_finished > 0 {
        seed_finished(&pool, &key.account_id, &names[0], args.seed_finished).await?;
    }

    let api = match args.client {
        ClientKind::Sdk => Api::Sdk(client.clone()),
        ClientKind::Lean => Api::Lean(Arc::new(Lean::new(&endpoint, &key)?)),
    };
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        queued: AtomicI64::new(0),
        completed: AtomicU64::new(0),
        started: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        target: AtomicI64::new(0),
    });
    let low = (2 * args.workers as i64 * args.batch as i64).max(32) * 2;
    shared.target.store(low.max(args.prefill), Ordering::Relaxed);
    let names = Arc::new(names);
    let mut feeders = Vec::new();
    if !args.empty {
        for i in 0..args.feeders {
            feeders.push(tokio::spawn(feeder(api.clone(), shared.clone(), names.clone(), args.actions as usize, i as usize)));
        }
        // Fill the queue before the clock starts.
        let fill = Instant::now();
        let goal = low.max(args.prefill);
        while shared.queued.load(Ordering::Relaxed) < goal && fill.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if args.prefill > 0 {
            println!("prefilled {} jobs in {:.1} s", shared.queued.load(Ordering::Relaxed), fill.elapsed().as_secs_f64());
        }
        shared.target.store(low, Ordering::Relaxed);
        // Statistics as a server that has run for a while has them (autovacuum
        // analyzes within a minute); plans made while the tables were empty
        // would otherwise last the whole of a short run.
        sqlx::query("analyze").execute(&pool).await?;
        shared.started.store(0, Ordering::Relaxed);
    }

    println!("machine: {}", machine());
    println!("database: {}", pg_settings(&pool).await?);
    println!(
        "settings: workers={} maxBatchSize={} empty-poll backoff={}ms duration={}s pipelines={} (V2 PARALLEL) actions per execution={} feeders={} queue target>={} prefill={} seed_finished={} empty={} client={:?} async-claim-commit={} \
         server pool={} connections, sweeper every {}ms, client and server in one process on two tokio runtimes ({} threads each)",
        args.workers,
        args.batch,
        args.backoff.as_millis(),
        args.duration.as_secs(),
        names.len(),
        args.actions,
        if args.empty { 0 } else { args.feeders },
        if args.empty { 0 } else { low },
        args.prefill,
        args.seed_finished,
        args.empty,
        args.client,
        args.async_claim_commit,
        args.db_max_connections,
        sweep.as_millis(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );

    let stats_on = sqlx::query("create extension if not exists pg_stat_statements").execute(&pool).await.is_ok()
        && sqlx::query("select pg_stat_statements_reset()").execute(&pool).await.is_ok();
    let started_at = Instant::now();
    let cpu_at_start = Cpu::now();
    let workers: Vec<_> = (0..args.workers).map(|_| tokio::spawn(worker(api.clone(), shared.clone(), args.batch, args.backoff))).collect();
    let mut windows = Vec::new();
    let (mut last_done, mut last_started) = (0u64, 0u64);
    let window = Duration::from_secs(10).min(args.duration);
    let mut next = started_at + window;
    while next <= started_at + args.duration {
        tokio::time::sleep_until(next.into()).await;
        let (done, started) = (shared.completed.load(Ordering::Relaxed), shared.started.load(Ordering::Relaxed));
        let secs = window.as_secs_f64();
        let line = format!(
            "| {:>4}–{:<4} s | {:>7.0} | {:>7.0} | {:>6} |",
            (next - window - started_at).as_secs(),
            (next - started_at).as_secs(),
            (done - last_done) as f64 / secs,
            (started - last_started) as f64 / secs,
            shared.queued.load(Ordering::Relaxed),
        );
        eprintln!("{line}");
        windows.push(line);
        (last_done, last_started) = (done, started);
        next += window;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = started_at.elapsed();
    let cpu = Cpu::now().since(&cpu_at_start);
    let mut stats = WorkerStats::default();
    for w in workers {
        let s = w.await?;
        stats.poll.extend(s.poll);
        stats.empty_poll.extend(s.empty_poll);
        stats.ack.extend(s.ack);
        stats.result.extend(s.result);
    }
    let mut starts = Samples::default();
    for f in feeders {
        starts.extend(f.await?);
    }
    let done = shared.completed.load(Ordering::Relaxed);
    println!();
    println!(
        "completed job lifecycles: {done} in {:.1} s = {:.0}/s; executions started: {} ({:.0}/s); errors: {}",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        shared.started.load(Ordering::Relaxed),
        shared.started.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        shared.errors.load(Ordering::Relaxed)
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let available = cores * elapsed.as_secs_f64();
    let share = |t: f64| 100.0 * t / available;
    let per = |t: f64| 1000.0 * t / done.max(1) as f64;
    println!(
        "CPU during the run ({cores} cores × {:.1} s = {available:.1} s): PostgreSQL {:.1} s ({:.0} %), server {:.1} s ({:.0} %), clients {:.1} s ({:.0} %)",
        elapsed.as_secs_f64(),
        cpu.postgres,
        share(cpu.postgres),
        cpu.server,
        share(cpu.server),
        cpu.clients,
        share(cpu.clients),
    );
    let backend = per(cpu.postgres) + per(cpu.server);
    println!(
        "CPU per lifecycle (the feeders' starts included): PostgreSQL {:.3} ms, server {:.3} ms, clients {:.3} ms; \
         server + PostgreSQL {backend:.3} ms, i.e. at most {:.0} lifecycles/s on these cores with the clients on another machine",
        per(cpu.postgres),
        per(cpu.server),
        per(cpu.clients),
        1000.0 * cores / backend.max(f64::MIN_POSITIVE),
    );
    println!();
    println!("| window | lifecycles/s | starts/s | queued at end |");
    println!("|---|---:|---:|---:|");
    for w in &windows {
        println!("{w}");
    }
    println!();
    println!("| call | count | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    println!("{}", stats.poll.row("PollForJobs (got jobs)"));
    println!("{}", stats.empty_poll.row("PollForJobs (empty)"));
    println!("{}", stats.ack.row("AcknowledgeJob"));
    println!("{}", stats.result.row("PutJobSuccessResult"));
    println!("{}", starts.row("StartPipelineExecution (feeder)"));
    println!();
    let (job_rows, queued): (i64, i64) =
        sqlx::query_as("select count(*), count(*) filter (where status = 'Queued') from job").fetch_one(&pool).await?;
    let (live, dead, vacuums): (i64, i64, i64) =
        sqlx::query_as("select n_live_tup, n_dead_tup, autovacuum_count from pg_stat_user_tables where relname = 'job'")
            .fetch_one(&pool)
            .await?;
    if stats_on {
        let lifecycles = done.max(1) as f64;
        let rows: Vec<(i64, f64, f64, f64, String)> = sqlx::query_as(
            "select calls, total_exec_time, mean_exec_time, shared_blks_hit::float8 / greatest(calls, 1), \
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
             from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database()) \
             order by total_exec_time desc limit 25",
        )
        .fetch_all(&pool)
        .await?;
        let (calls, total): (i64, f64) = sqlx::query_as(
            "select sum(calls)::int8, sum(total_exec_time) from pg_stat_statements \
             where dbid = (select oid from pg_database where datname = current_database())",
        )
        .fetch_one(&pool)
        .await?;
        println!(
            "pg_stat_statements during the run: {calls} statements ({:.1} per lifecycle), {:.0} ms executing ({:.2} ms per lifecycle)",
            calls as f64 / lifecycles,
            total,
            total / lifecycles
        );
        println!("| calls/lifecycle | total ms | mean ms | buffers/call | statement |");
        println!("|---:|---:|---:|---:|---|");
        for (c, t, m, b, q) in rows {
            println!("| {:.2} | {:.0} | {:.3} | {:.1} | `{}` |", c as f64 / lifecycles, t, m, b, q.replace('|', "\\|"));
        }
        println!();
    }
    println!(
        "job table after the run: {job_rows} rows ({queued} queued); pg_stat: n_live_tup={live} n_dead_tup={dead} autovacuum_count={vacuums}"
    );
    println!();
    println!("EXPLAIN (ANALYZE, BUFFERS) of the claim (limit {}, prepared, generic plan), after the run, rolled back:", args.batch);
    println!("{}", explain_claim(&pool, &key.account_id, args.batch).await?);

    let _ = shutdown.send(());
    tokio::task::spawn_blocking(move || served.join()).await?.map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
    pool.close().await;
    if let Some((admin, name)) = &db.drop {
        let mut conn = PgConnection::connect(admin).await?;
        sqlx::query(&format!("drop database if exists \"{name}\" with (force)")).execute(&mut conn).await?;
    }
    Ok(())
}
