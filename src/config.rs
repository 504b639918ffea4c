//! Command line and configuration. Every flag is also an environment variable:
//!
//! | flag | variable | default |
//! |---|---|---|
//! | `--listen` | `MILLRACE_LISTEN` | `127.0.0.1:8080` |
//! | `--database-url` | `DATABASE_URL` | none: run the embedded cluster |
//! | `--data-dir` | `MILLRACE_DATA_DIR` | `./millrace-data` |
//! | `--db-max-connections` | `MILLRACE_DB_MAX_CONNECTIONS` | 16 |
//! | `--master-key` | `MILLRACE_MASTER_KEY` | `<data-dir>/master.key`, created on first start |
//! | `--region` | `MILLRACE_REGION` | `us-east-1` |
//! | `--public-url` | `MILLRACE_PUBLIC_URL` | `http://<bound listen address>` |
//! | `--dev` | `MILLRACE_DEV` | on in embedded mode |
//! | `--allow-insecure-dev` | `MILLRACE_ALLOW_INSECURE_DEV` | off |
//! | — | `MILLRACE_DEV_ACCESS_KEY_ID` / `MILLRACE_DEV_SECRET_ACCESS_KEY` | `test` / `test` |
//! | `--max-body-bytes` | `MILLRACE_MAX_BODY_BYTES` | 4 MiB |
//! | `--request-timeout-secs` | `MILLRACE_REQUEST_TIMEOUT_SECS` | 30 |
//! | `--job-ack-timeout-secs` | `MILLRACE_JOB_ACK_TIMEOUT_SECS` | 60 |
//! | `--job-timeout-secs` | `MILLRACE_JOB_TIMEOUT_SECS` | 86400 |
//! | `--sweep-interval-ms` | `MILLRACE_SWEEP_INTERVAL_MS` | 1000 |
//! | `--artifact-access-key-id` / `--artifact-secret-access-key` / `--artifact-session-token` | `MILLRACE_ARTIFACT_*` | none |
//! | `--trusted-proxies` | `MILLRACE_TRUSTED_PROXIES` | none |
//! | `--webhook-rate-per-minute` | `MILLRACE_WEBHOOK_RATE_PER_MINUTE` | 60 |
//!
//! The configuration is parsed once at start and passed down as a value;
//! nothing reads the environment after that.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::crypto::SecretBox;

#[derive(Parser, Debug)]
#[command(name = "millrace", version, about = "A self-hosted CI/CD control plane that speaks the AWS CodePipeline API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process; the size difference between variants is moot.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Manage accounts, access keys and third-party clients directly in the database (works whether or not the server runs).
    Admin(AdminArgs),
}

/// Where the data lives; shared by `serve` and `admin`.
#[derive(Args, Debug, Clone)]
pub struct StorageArgs {
    /// PostgreSQL URL. Without it, a private cluster is run under the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded cluster and the generated master key.
    #[arg(long, env = "MILLRACE_DATA_DIR", default_value = "./millrace-data")]
    pub data_dir: PathBuf,
    /// Most connections this process opens to PostgreSQL, two of them kept
    /// outside the request gate (`store::db`). More is not faster: beyond a
    /// few per PostgreSQL core, backends contend with each other
    /// (benches/README.md, session 7).
    #[arg(long, env = "MILLRACE_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(3..))]
    pub db_max_connections: u32,
    /// PostgreSQL cancels a statement of this process that runs longer, and
    /// ends a session of it left idle inside a transaction that long (a
    /// replica frozen or cut off mid-transaction), so that neither holds a
    /// connection or a lock indefinitely. Keep it at most the request
    /// timeout; 0 disables both. Migrations are not limited. At most
    /// PostgreSQL's limit for both settings (2^31 - 1 ms).
    #[arg(long, env = "MILLRACE_DB_STATEMENT_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=2_147_483))]
    pub db_statement_timeout_secs: u64,
    /// Base64 of 32 bytes that encrypts stored secret keys. Replicas sharing a database must share it.
    #[arg(long, env = "MILLRACE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[arg(long, env = "MILLRACE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The region the server answers for; requests must be signed for it.
    #[arg(long, env = "MILLRACE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Base URL under which clients (e.g. GitHub) reach this server; webhook URLs start with it.
    /// Defaults to http://<listen address>.
    #[arg(long, env = "MILLRACE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Create the development account 000000000000 with access key `test`/`test`.
    #[arg(long, env = "MILLRACE_DEV")]
    pub dev: bool,
    /// Allow --dev on an address other than loopback.
    #[arg(long, env = "MILLRACE_ALLOW_INSECURE_DEV")]
    pub allow_insecure_dev: bool,
    #[arg(long, env = "MILLRACE_DEV_ACCESS_KEY_ID", default_value = "test", hide = true)]
    pub dev_access_key_id: String,
    #[arg(long, env = "MILLRACE_DEV_SECRET_ACCESS_KEY", default_value = "test", hide = true, hide_env_values = true)]
    pub dev_secret_access_key: String,
    /// Requests with larger bodies are refused.
    #[arg(long, env = "MILLRACE_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// A request still running after this long is answered with an error.
    #[arg(long, env = "MILLRACE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// A polled job not acknowledged within this many seconds is queued again with a new nonce.
    #[arg(long, env = "MILLRACE_JOB_ACK_TIMEOUT_SECS", default_value_t = 60)]
    pub job_ack_timeout_secs: u64,
    /// An acknowledged custom job not finished this many seconds after it was polled times out and fails its action.
    #[arg(long, env = "MILLRACE_JOB_TIMEOUT_SECS", default_value_t = 24 * 3600)]
    pub job_timeout_secs: u64,
    /// Commit job claims (PollForJobs, PollForThirdPartyJobs) without waiting
    /// for the WAL flush. Faster polls; the cost: if PostgreSQL itself
    /// crashes, claims of its last moments are undone, those jobs are handed
    /// out again and their first workers' acknowledgements are refused
    /// (InvalidNonceException). Every other change stays durable.
    #[arg(long, env = "MILLRACE_ASYNC_CLAIM_COMMIT")]
    pub async_claim_commit: bool,
    /// Credentials handed to job workers as `artifactCredentials`, for the
    /// S3-compatible store that holds artifacts (e.g. MinIO). Unset: none are issued.
    #[arg(long, env = "MILLRACE_ARTIFACT_ACCESS_KEY_ID")]
    pub artifact_access_key_id: Option<String>,
    #[arg(long, env = "MILLRACE_ARTIFACT_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub artifact_secret_access_key: Option<String>,
    #[arg(long, env = "MILLRACE_ARTIFACT_SESSION_TOKEN", hide_env_values = true)]
    pub artifact_session_token: Option<String>,
    /// How often the sweeper looks for overdue jobs and approvals.
    #[arg(long, env = "MILLRACE_SWEEP_INTERVAL_MS", default_value_t = 1000)]
    pub sweep_interval_ms: u64,
    /// Comma-separated CIDR blocks (or addresses) of reverse proxies whose
    /// X-Forwarded-For is believed when checking a webhook's AllowedIPRange.
    #[arg(long, env = "MILLRACE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Executions each webhook may start per minute (also the burst); more
    /// deliveries are answered 429. 0 means no limit.
    #[arg(long, env = "MILLRACE_WEBHOOK_RATE_PER_MINUTE", default_value_t = 60)]
    pub webhook_rate_per_minute: u32,
}

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an account (tenant) with one access key; prints {"accountId","accessKeyId","secretAccessKey"}.
    CreateAccount {
        #[arg(long)]
        name: String,
        /// 12 digits; random when omitted.
        #[arg(long)]
        account_id: Option<String>,
    },
    /// Add an access key to an account; prints the same JSON as create-account.
    CreateAccessKey {
        #[arg(long)]
        account_id: String,
    },
    /// Print every account and its access key ids as JSON lines.
    ListAccounts,
    /// Revoke an access key.
    DeleteAccessKey {
        #[arg(long)]
        access_key_id: String,
    },
    /// Issue a clientId/clientToken pair for the account's partner (ThirdParty) job workers;
    /// prints {"accountId","clientId","clientToken"}. The token is shown only this once.
    CreateThirdPartyClient {
        #[arg(long)]
        account_id: String,
    },
    /// Print third-party client ids (never tokens) as JSON lines, of one account or all.
    ListThirdPartyClients {
        #[arg(long)]
        account_id: Option<String>,
    },
    /// Revoke a third-party client: its token stops working at once.
    DeleteThirdPartyClient {
        #[arg(long)]
        client_id: uuid::Uuid,
    },
}

/// Credentials of the development account, created at start when enabled.
#[derive(Clone)]
pub struct DevCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for DevCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// `artifactCredentials` for job workers; never printed.
#[derive(Clone)]
pub struct ArtifactCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl std::fmt::Debug for ArtifactCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub region: String,
    /// Base URL of this server as others reach it, without a trailing `/`.
    /// `None` means `http://<listen>`; [`crate::Server::bind`] fills it in
    /// with the address actually bound (port 0 picks one).
    pub public_url: Option<String>,
    pub dev: Option<DevCredentials>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub job_ack_timeout: Duration,
    pub job_timeout: Duration,
    /// Job claims commit without waiting for the WAL flush (`--async-claim-commit`).
    pub async_claim_commit: bool,
    pub sweep_interval: Duration,
    pub artifact_credentials: Option<ArtifactCredentials>,
    /// Peers whose X-Forwarded-For names the webhook sender's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Per-webhook start rate (and burst); 0 disables the limit.
    pub webhook_rate_per_minute: u32,
}

impl Config {
    /// Defaults suitable for tests and embedding: loopback on any port, no dev account.
    pub fn for_tests() -> Config {
        Config {
            listen: "127.0.0.1:0".parse().expect("loopback address"),
            region: "us-east-1".into(),
            public_url: None,
            dev: None,
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            job_ack_timeout: Duration::from_secs(60),
            job_timeout: Duration::from_secs(24 * 3600),
            async_claim_commit: false,
            sweep_interval: Duration::from_millis(200),
            artifact_credentials: None,
            trusted_proxies: Vec::new(),
            webhook_rate_per_minute: 60,
        }
    }

    /// The base of every URL this server hands out (webhook URLs).
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.listen),
        }
    }
}

/// An absolute http(s) URL without query or fragment; a trailing `/` is
/// dropped so paths can be appended.
fn parse_public_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .with_context(|| format!("--public-url must start with http:// or https://, got '{url}'"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
        bail!("--public-url must be an absolute URL with a host and no query or fragment, got '{url}'");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Comma-separated CIDR blocks; a bare address means just that host.
fn parse_trusted_proxies(list: &str) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| format!("--trusted-proxies: '{s}' is not an IP address or CIDR block"))
        })
        .collect()
}

impl ServeArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        // Dev credentials are public knowledge; the embedded default is a
        // laptop setup, so it gets them unless a real database is named.
        let dev = self.dev || self.storage.database_url.is_none();
        if dev && !self.listen.ip().is_loopback() && !self.allow_insecure_dev {
            bail!(
                "refusing to serve the development account (access key `{}`) on non-loopback address {}: \
                 listen on 127.0.0.1, use DATABASE_URL without --dev, or pass --allow-insecure-dev",
                self.dev_access_key_id,
                self.listen
            );
        }
        if self.region.is_empty() {
            bail!("--region must not be empty");
        }
        let public_url = self.public_url.as_deref().filter(|u| !u.trim().is_empty()).map(parse_public_url).transpose()?;
        Ok(Config {
            listen: self.listen,
            region: self.region.clone(),
            public_url,
            dev: dev.then(|| DevCredentials {
                access_key_id: self.dev_access_key_id.clone(),
                secret_access_key: self.dev_secret_access_key.clone(),
            }),
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            job_ack_timeout: Duration::from_secs(self.job_ack_timeout_secs),
            job_timeout: Duration::from_secs(self.job_timeout_secs),
            async_claim_commit: self.async_claim_commit,
            sweep_interval: Duration::from_millis(self.sweep_interval_ms.max(10)),
            artifact_credentials: match (&self.artifact_access_key_id, &self.artifact_secret_access_key) {
                (Some(id), Some(secret)) => Some(ArtifactCredentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: self.artifact_session_token.clone().unwrap_or_default(),
                }),
                (None, None) => None,
                _ => bail!("--artifact-access-key-id and --artifact-secret-access-key go together"),
            },
            trusted_proxies: self.trusted_proxies.as_deref().map(parse_trusted_proxies).transpose()?.unwrap_or_default(),
            webhook_rate_per_minute: self.webhook_rate_per_minute,
        })
    }
}

impl StorageArgs {
    /// The configured master key, or the one kept in `<data-dir>/master.key`
    /// (created with mode 0600 on first use).
    pub fn secret_box(&self) -> anyhow::Result<SecretBox> {
        // An empty value (e.g. `MILLRACE_MASTER_KEY=` from compose) means unset.
        if let Some(key) = self.master_key.as_deref().filter(|k| !k.trim().is_empty()) {
            return SecretBox::from_base64(key).context("MILLRACE_MASTER_KEY");
        }
        let path = self.data_dir.join("master.key");
        let key = read_or_create_key(&path)?;
        SecretBox::from_base64(&key).with_context(|| format!("{}", path.display()))
    }
}

fn read_or_create_key(path: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(key) = std::fs::read_to_string(path) {
        return Ok(key);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = SecretBox::generate_key_base64();
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            f.write_all(key.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        // Another process (an admin command next to the server) won the race.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_absolute_and_lose_their_trailing_slash() {
        assert_eq!(parse_public_url("https://ci.example.com/").unwrap(), "https://ci.example.com");
        assert_eq!(parse_public_url("http://10.0.0.5:8080/millrace").unwrap(), "http://10.0.0.5:8080/millrace");
        for bad in ["ci.example.com", "ftp://x", "https://", "https:///x", "https://x/?a=1", "https://x/#f"] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_are_cidr_blocks_or_addresses() {
        let nets = parse_trusted_proxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,").unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert!(parse_trusted_proxies("10.0.0.0/8,proxy.local").is_err());
    }

    #[test]
    fn without_a_public_url_the_listen_address_is_used() {
        let mut config = Config::for_tests();
        assert_eq!(config.public_base_url(), "http://127.0.0.1:0");
        config.public_url = Some("https://ci.example.com".into());
        assert_eq!(config.public_base_url(), "https://ci.example.com");
    }

    fn serve(args: &[&str]) -> anyhow::Result<Config> {
        let cli = Cli::try_parse_from(["millrace", "serve"].iter().chain(args)).expect("arguments parse");
        match cli.command {
            Command::Serve(s) => s.config(),
            Command::Admin(_) => unreachable!(),
        }
    }

    #[test]
    fn the_dev_account_is_refused_on_a_public_address_unless_allowed() {
        let err = serve(&["--dev", "--listen", "0.0.0.0:8080", "--database-url", "postgres://x/y"]).unwrap_err();
        assert!(err.to_string().contains("--allow-insecure-dev"), "{err}");
        // The embedded default implies --dev.
        assert!(serve(&["--listen", "0.0.0.0:8080"]).is_err());
        assert!(serve(&["--dev", "--listen", "0.0.0.0:8080", "--allow-insecure-dev"]).unwrap().dev.is_some());
        assert!(serve(&["--listen", "0.0.0.0:8080", "--database-url", "postgres://x/y"]).unwrap().dev.is_none());
        assert!(serve(&[]).unwrap().dev.is_some());
    }
}
