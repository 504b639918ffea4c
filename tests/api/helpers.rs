//! Shared test setup: one PostgreSQL per test process, a fresh database per
//! test, the real server on 127.0.0.1:0, and the official SDK as the client.
//!
//! Database, in order of preference: `DATABASE_URL` (a server we may create
//! databases on), else the embedded cluster mechanism the server itself uses
//! (under `target/tmp`), else a testcontainers PostgreSQL when Docker runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use millrace::config::Config;
use millrace::crypto::SecretBox;
use millrace::store::accounts;
use millrace::store::embedded::EmbeddedPostgres;
use millrace::{App, Server};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{OnceCell, oneshot};

pub const REGION: &str = "us-east-1";

/// A URL for a maintenance database on the test PostgreSQL server.
async fn server_url() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        let url = match std::env::var("DATABASE_URL") {
            Ok(url) => url,
            Err(_) => match EmbeddedPostgres::find_bin_dir() {
                Ok(_) => embedded_url(),
                Err(_) => container_url().await,
            },
        };
        drop_stale_databases(&url).await;
        url
    })
    .await
}

fn embedded_url() -> String {
    static PG: Mutex<Option<(EmbeddedPostgres, std::fs::File)>> = Mutex::new(None);
    // Several test processes may share the cluster (two `cargo test` runs).
    // Each holds a shared lock on `users.lock` while it runs; at exit, the
    // one that can take it exclusively is the last and stops the cluster.
    // The harness leaves through process::exit, which runs no Drop for
    // statics, hence the atexit hook.
    extern "C" fn stop_cluster() {
        use std::os::fd::AsRawFd;
        if let Some((mut pg, users)) = PG.lock().ok().and_then(|mut g| g.take())
            && unsafe { libc::flock(users.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0
        {
            let _ = pg.stop_shared();
        }
    }
    let mut guard = PG.lock().unwrap();
    let (pg, _) = guard.get_or_insert_with(|| {
        use std::os::fd::AsRawFd;
        let dir = test_cluster_dir();
        std::fs::create_dir_all(&dir).expect("creating the test cluster directory");
        let users = std::fs::File::create(dir.join("users.lock")).expect("creating users.lock");
        // Blocks while a finishing process stops the cluster, then starts it again.
        assert_eq!(unsafe { libc::flock(users.as_raw_fd(), libc::LOCK_SH) }, 0, "locking users.lock");
        let pg = EmbeddedPostgres::start(&dir).expect("starting the embedded test cluster");
        unsafe { libc::atexit(stop_cluster) };
        (pg, users)
    });
    pg.database_url("postgres")
}

/// `target/tmp/test-pg`, unless PostgreSQL (which runs as another user when
/// we are root) could not reach it because an ancestor directory is closed to
/// others (a checkout under /root, say): then a directory under /tmp named
/// after the target directory.
fn test_cluster_dir() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let reachable = target.ancestors().all(|d| std::fs::metadata(d).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(true));
    if unsafe { libc::geteuid() } != 0 || reachable {
        return target.join("test-pg");
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.hash(&mut h);
    PathBuf::from(format!("/tmp/millrace-test-pg-{:016x}", h.finish()))
}

async fn container_url() -> String {
    use testcontainers_modules::postgres::Postgres;
    use testcontainers_modules::testcontainers::ImageExt;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    static CONTAINER: OnceLock<testcontainers_modules::testcontainers::ContainerAsync<Postgres>> = OnceLock::new();
    let container = Postgres::default()
        .with_tag("16.4-alpine")
        .start()
        .await
        .expect("no DATABASE_URL, no PostgreSQL binaries and no Docker: nothing to test against");
    let port = container.get_host_port_ipv4(5432).await.expect("container port");
    let _ = CONTAINER.set(container);
    format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres")
}

const TEST_DB_PREFIX: &str = "millrace_test_";

/// Databases of earlier runs; this run's are dropped by the next one. Names
/// carry the creating process's id, so a run never drops the databases of
/// another run still going on the same server.
async fn drop_stale_databases(url: &str) {
    let mut conn = PgConnection::connect(url).await.expect("connecting to the test server");
    let names: Vec<(String,)> = sqlx::query_as("select datname from pg_database where datname like $1")
        .bind(format!("{TEST_DB_PREFIX}%"))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let alive = |name: &str| {
        let pid = name.strip_prefix(TEST_DB_PREFIX).and_then(|rest| rest.split('_').next()).unwrap_or_default();
        !pid.is_empty() && std::path::Path::new("/proc").join(pid).exists()
    };
    for (name,) in names.into_iter().filter(|(n,)| !alive(n)) {
        let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)")).execute(&mut conn).await;
    }
}

/// Replaces the database name of a `postgres://…/<db>[?…]` URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.find("://").map(|i| i + 3).and_then(|s| base[s..].find('/').map(|j| s + j)) {
        Some(slash) => &base[..slash],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

pub async fn fresh_database_url() -> String {
    let url = server_url().await;
    let name = format!("{TEST_DB_PREFIX}{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(url).await.expect("connecting to the test server");
    sqlx::query(&format!("create database \"{name}\"")).execute(&mut conn).await.unwrap();
    with_database(url, &name)
}

#[derive(Clone, Debug)]
pub struct TestAccount {
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub pool: PgPool,
    pub database_url: String,
    pub master_key: String,
    secrets: SecretBox,
    _shutdown: oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Config::for_tests()).await
    }

    pub async fn start_with(config: Config) -> TestServer {
        let database_url = fresh_database_url().await;
        Self::start_on(database_url, config).await
    }

    /// Another server on the same database (a second replica).
    pub async fn start_on(database_url: String, config: Config) -> TestServer {
        let master_key = SecretBox::generate_key_base64();
        Self::start_full(database_url, master_key, config).await
    }

    pub async fn start_full(database_url: String, master_key: String, config: Config) -> TestServer {
        Self::start_with_statement_timeout(database_url, master_key, config, Duration::from_secs(30)).await
    }

    pub async fn start_with_statement_timeout(
        database_url: String,
        master_key: String,
        config: Config,
        statement_timeout: Duration,
    ) -> TestServer {
        // Small pools: several test servers share one PostgreSQL (100 connections).
        let pool = millrace::store::connect(&database_url, 8, statement_timeout).await.expect("connecting and migrating");
        let secrets = SecretBox::from_base64(&master_key).unwrap();
        let app = App::new(pool.clone(), secrets.clone(), config);
        let server = Server::bind(app).await.expect("binding 127.0.0.1:0");
        let addr = server.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestServer { addr, pool, database_url, master_key, secrets, _shutdown: tx }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new tenant with one access key, created as `admin create-account` does.
    pub async fn account(&self, name: &str) -> TestAccount {
        let mut conn = self.pool.acquire().await.unwrap();
        let key = accounts::create_account(&mut conn, &self.secrets, name, None).await.unwrap();
        TestAccount { account_id: key.account_id, access_key_id: key.access_key_id, secret_access_key: key.secret_access_key }
    }

    pub fn client(&self, account: &TestAccount) -> Client {
        self.client_with(&account.access_key_id, &account.secret_access_key, None)
    }

    /// A client whose clock is `skew` away from ours (for expired signatures).
    pub fn client_with(&self, access_key_id: &str, secret: &str, skew: Option<Duration>) -> Client {
        let mut builder = aws_sdk_codepipeline::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(access_key_id, secret, None, None, "test"))
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .retry_config(aws_sdk_codepipeline::config::retry::RetryConfig::disabled());
        if let Some(skew) = skew {
            builder = builder.time_source(SkewedClock(skew));
        }
        Client::from_conf(builder.build())
    }
}

/// A client clock running `.0` behind ours.
#[derive(Debug)]
struct SkewedClock(Duration);

impl aws_smithy_async::time::TimeSource for SkewedClock {
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now() - self.0
    }
}

/// The `__type` the SDK decoded from an error.
pub fn error_code<E, R>(err: &aws_sdk_codepipeline::error::SdkError<E, R>) -> String
where
    E: aws_sdk_codepipeline::error::ProvideErrorMetadata,
{
    use aws_sdk_codepipeline::error::ProvideErrorMetadata;
    err.code().unwrap_or("<none>").to_owned()
}

pub fn error_message<E, R>(err: &aws_sdk_codepipeline::error::SdkError<E, R>) -> String
where
    E: aws_sdk_codepipeline::error::ProvideErrorMetadata,
{
    use aws_sdk_codepipeline::error::ProvideErrorMetadata;
    err.message().unwrap_or("").to_owned()
}

/// A raw HTTP exchange, for requests no SDK would send.
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `POST /` with the given headers and body over a plain socket.
pub async fn raw_post(addr: SocketAddr, headers: &[(String, String)], body: &[u8]) -> RawResponse {
    raw_request(addr, "POST", "/", headers, body).await
}

/// Sends one HTTP/1.1 request over a plain socket and reads the answer.
/// Only the given headers are sent, besides `connection` and `content-length`.
pub async fn raw_request(addr: SocketAddr, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    // Chunked bodies are not expected: the server sets content-length.
    RawResponse { status, headers, body: body.to_owned() }
}

/// Headers of a request signed like the SDKs sign one, with our SigV4 code
/// (itself checked against AWS's published test suite).
pub fn signed_headers(
    addr: SocketAddr,
    account: &TestAccount,
    target: &str,
    body: &[u8],
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, String)> {
    use millrace::protocol::sigv4;
    let amz_date = at.format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = axum_headers(&[
        ("content-type", "application/x-amz-json-1.1"),
        ("host", &addr.to_string()),
        ("x-amz-date", &amz_date),
        ("x-amz-target", target),
    ]);
    let signed: Vec<String> = ["content-type", "host", "x-amz-date", "x-amz-target"].map(String::from).to_vec();
    let credential = sigv4::Credential {
        access_key_id: account.access_key_id.clone(),
        date: at.format("%Y%m%d").to_string(),
        region: REGION.into(),
        service: "codepipeline".into(),
    };
    let creq = sigv4::canonical_request("POST", "/", "", &headers, &signed, &sigv4::sha256_hex(body));
    let sts = sigv4::string_to_sign(&amz_date, &credential, &creq);
    let key = sigv4::signing_key(&account.secret_access_key, &credential.date, REGION, "codepipeline");
    let signature = sigv4::sign(&key, &sts);
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}/{}/codepipeline/aws4_request, SignedHeaders={}, Signature={}",
        account.access_key_id,
        credential.date,
        REGION,
        signed.join(";"),
        signature
    );
    headers.insert("authorization", authorization.parse().unwrap());
    headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned())).collect()
}

fn axum_headers(pairs: &[(&str, &str)]) -> axum::http::HeaderMap {
    let mut map = axum::http::HeaderMap::new();
    for (k, v) in pairs {
        map.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    map
}

/// Calls ListPipelines until it fails (up to 5 s): a deleted access key
/// stops working once every server has heard of it, within milliseconds.
pub async fn refused_soon(
    client: &Client,
) -> aws_sdk_codepipeline::error::SdkError<aws_sdk_codepipeline::operation::list_pipelines::ListPipelinesError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match client.list_pipelines().send().await {
            Err(err) => return err,
            Ok(_) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(5)).await,
            Ok(_) => panic!("a deleted access key still works after 5 s"),
        }
    }
}

/// A small valid two-stage pipeline of built-in actions (S3 source, CodeBuild).
pub fn simple_pipeline(name: &str) -> aws_sdk_codepipeline::types::PipelineDeclaration {
    use aws_sdk_codepipeline::types::*;
    let type_id = |category: ActionCategory, provider: &str| {
        ActionTypeId::builder().category(category).owner(ActionOwner::Aws).provider(provider).version("1").build().unwrap()
    };
    let source = ActionDeclaration::builder()
        .name("Fetch")
        .action_type_id(type_id(ActionCategory::Source, "S3"))
        .configuration("S3Bucket", "sources")
        .configuration("S3ObjectKey", "app.zip")
        .output_artifacts(OutputArtifact::builder().name("src").build().unwrap())
        .build()
        .unwrap();
    let build = ActionDeclaration::builder()
        .name("Compile")
        .action_type_id(type_id(ActionCategory::Build, "CodeBuild"))
        .configuration("ProjectName", "app")
        .input_artifacts(InputArtifact::builder().name("src").build().unwrap())
        .run_order(1)
        .build()
        .unwrap();
    two_stages(name, ("Source", source), ("Build", build))
}

/// A V1 pipeline of two stages with one action each.
pub fn two_stages(
    name: &str,
    first: (&str, aws_sdk_codepipeline::types::ActionDeclaration),
    second: (&str, aws_sdk_codepipeline::types::ActionDeclaration),
) -> aws_sdk_codepipeline::types::PipelineDeclaration {
    use aws_sdk_codepipeline::types::*;
    PipelineDeclaration::builder()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/pipeline")
        .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifacts-bucket").build().unwrap())
        .stages(StageDeclaration::builder().name(first.0).actions(first.1).build().unwrap())
        .stages(StageDeclaration::builder().name(second.0).actions(second.1).build().unwrap())
        .build()
        .unwrap()
}

/// Creates custom action type `<category>/Custom/<provider>/1` with the given
/// (name, required, secret, queryable) properties and 0–5 artifacts each way.
pub async fn custom_action_type(client: &Client, category: &str, provider: &str, properties: &[(&str, bool, bool, bool)]) {
    use aws_sdk_codepipeline::types::{ActionCategory, ActionConfigurationProperty, ArtifactDetails};
    let artifacts = || ArtifactDetails::builder().minimum_count(0).maximum_count(5).build();
    let mut request = client
        .create_custom_action_type()
        .category(ActionCategory::from(category))
        .provider(provider)
        .version("1")
        .input_artifact_details(artifacts())
        .output_artifact_details(artifacts());
    for &(name, required, secret, queryable) in properties {
        request = request.configuration_properties(
            ActionConfigurationProperty::builder()
                .name(name)
                .required(required)
                .key(true)
                .secret(secret)
                .queryable(queryable)
                .build()
                .unwrap(),
        );
    }
    request.send().await.unwrap();
}

/// Fails on any value outside the sets the hot tables' columns may hold,
/// which PostgreSQL no longer checks (migration 0026, for speed): tests that
/// drive executions through their states end with this.
pub async fn assert_known_states(pool: &PgPool) {
    let unknown: Vec<String> = sqlx::query_scalar(
        "select format('job %s: owner %s, status %s', job_id, owner, status) from job \
          where owner not in ('Custom', 'ThirdParty') \
             or status not in ('Queued', 'Dispatched', 'InProgress', 'TimedOut', 'Succeeded', 'Failed') \
         union all \
         select format('action %s: status %s', action_execution_id, status) from action_execution \
          where status not in ('InProgress', 'Abandoned', 'Succeeded', 'Failed') \
         union all \
         select format('stage %s/%s: status %s, retry %s', execution_id, stage_name, status, latest_retry_trigger) from stage_execution \
          where status not in ('InProgress', 'Stopping', 'Stopped', 'Succeeded', 'Failed', 'Cancelled', 'Skipped') \
             or latest_retry_trigger not in ('AutomatedStageRetry', 'ManualStageRetry') \
         union all \
         select format('execution %s: status %s, mode %s, type %s, phase %s, checking %s', \
                       execution_id, status, execution_mode, execution_type, stage_phase, checking) from pipeline_execution \
          where status not in ('InProgress', 'Stopping', 'Stopped', 'Succeeded', 'Superseded', 'Failed', 'Cancelled') \
             or execution_mode not in ('SUPERSEDED', 'QUEUED', 'PARALLEL') or execution_type not in ('STANDARD', 'ROLLBACK') \
             or stage_phase not in ('Waiting', 'Running', 'Done') or checking not in ('BEFORE_ENTRY', 'ON_SUCCESS')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(unknown.is_empty(), "values outside their sets: {unknown:#?}");
}
