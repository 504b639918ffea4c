//! A private PostgreSQL cluster for Millrace, used when no `DATABASE_URL` is
//! configured, so that a single binary plus a data directory is a complete
//! installation.
//!
//! # Layout under the data directory
//!
//! ```text
//! <data_dir>/pg/       the cluster (PGDATA), created by initdb on first use
//! <data_dir>/run/      the Unix socket directory (.s.PGSQL.5432 and its lock)
//! <data_dir>/pg.log    the server log (appended to by every start)
//! <data_dir>/pg.lock   flock(2) held while a Millrace process starts or stops the cluster
//! ```
//!
//! If `<data_dir>/run/.s.PGSQL.5432` would exceed the kernel's limit for a
//! socket path (107 bytes on Linux), or contains a comma (libpq reads `host`
//! as a comma-separated list), the socket directory is instead
//! `/tmp/millrace-pg-<hash of the data dir path>`: every process computes the
//! same name, so a second Millrace process still finds a running cluster.
//!
//! # Invariants
//!
//! * **Ownership.** PostgreSQL refuses to run as root. When Millrace runs as
//!   root, initdb, pg_ctl and the server run as the user that owns
//!   `<data_dir>/pg` if that is not root (so root never changes who owns a
//!   cluster that exists, possibly running as a non-root Millrace), otherwise
//!   as the `postgres` system user, else `nobody`; `pg/`, `run/` and `pg.log`
//!   are chowned to that user. Root itself stays the client: it can connect
//!   through the owner-only socket because root bypasses file permissions.
//!   Without root everything belongs to the current user.
//! * **Unix socket only.** The server gets `listen_addresses=''` on its command
//!   line (and in postgresql.conf in case someone starts it by hand), and
//!   pg_hba rejects TCP. Authentication is `trust`, so whoever can reach the
//!   socket is superuser: the socket and its directory are mode 0700, which
//!   limits that to the cluster owner and root. Not using TCP also means the
//!   cluster never collides with a system PostgreSQL on 127.0.0.1:5432.
//! * **Who stops it.** [`EmbeddedPostgres::start`] reuses a server that is
//!   already running for the data directory (say the main server is up and an
//!   admin command starts) and then never stops it: only the instance whose
//!   `pg_ctl start` launched the server stops it, on [`EmbeddedPostgres::stop`]
//!   or drop. A crashed Millrace therefore leaves its server running, and the
//!   next Millrace adopts it without ever stopping it.
//! * **Bounded waits.** Every child process has a deadline, pg_ctl waits at
//!   most 60 s, and a failing command's stderr (and, for a failed start, the
//!   end of `pg.log`) is part of the error.

use anyhow::{Context, Result, anyhow, bail};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The database that [`EmbeddedPostgres::start`] creates for Millrace.
pub const DATABASE: &str = "millrace";
/// The superuser created by initdb; with trust auth it needs no password.
pub const SUPERUSER: &str = "postgres";
/// Only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
pub const PORT: u16 = 5432;

const CLUSTER_DIR: &str = "pg";
const SOCKET_DIR: &str = "run";
const LOG_FILE: &str = "pg.log";
const LOCK_FILE: &str = "pg.lock";

const PG_CTL_WAIT_SECS: u64 = 60;
// pg_ctl enforces its own -t; ours only catches a pg_ctl that hangs anyway.
const PG_CTL_TIMEOUT: Duration = Duration::from_secs(PG_CTL_WAIT_SECS + 30);
// initdb fsyncs a few thousand files, which can be slow on a busy disk.
const INITDB_TIMEOUT: Duration = Duration::from_secs(300);
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);
// A concurrent start may legitimately hold the lock through initdb plus pg_ctl.
const LOCK_TIMEOUT: Duration = Duration::from_secs(420);
// How long a server found running may take to accept connections (it may be
// still recovering after a crash, or another process's start is finishing).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

const NOT_FOUND: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found: install PostgreSQL (e.g. `apt-get install postgresql`) or set DATABASE_URL to use an existing server";

/// A PostgreSQL cluster private to one Millrace data directory.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    /// Canonical, so the socket path and the URL are absolute.
    data_dir: PathBuf,
    bin_dir: PathBuf,
    socket_dir: PathBuf,
    /// `Some` only when we are root and must not run PostgreSQL as ourselves.
    run_as: Option<RunAs>,
    started_by_us: bool,
}

#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl EmbeddedPostgres {
    /// Finds the directory holding initdb, pg_ctl and postgres: `pg_config
    /// --bindir` if pg_config is on PATH, else the directory `initdb` on PATH
    /// resolves to, else the highest version in `/usr/lib/postgresql/<v>/bin`.
    pub fn find_bin_dir() -> Result<PathBuf> {
        // libpq-dev ships a pg_config without the server, so each candidate
        // must really contain the server binaries before we settle on it.
        if let Some(pg_config) = find_on_path("pg_config") {
            let mut cmd = Command::new(pg_config);
            cmd.arg("--bindir");
            if let Ok(out) = run(&mut cmd, Duration::from_secs(10))
                && out.status.success()
            {
                let dir = PathBuf::from(OsStr::from_bytes(out.stdout.trim_ascii()));
                if has_server_binaries(&dir) {
                    return Ok(dir);
                }
            }
        }
        // Debian puts only symlinks to some binaries on PATH; the real
        // directory also has psql, which we need.
        if let Some(initdb) = find_on_path("initdb")
            && let Ok(real) = fs::canonicalize(initdb)
            && let Some(dir) = real.parent()
            && has_server_binaries(dir)
        {
            return Ok(dir.to_path_buf());
        }
        let mut best: Option<(Vec<u32>, PathBuf)> = None;
        if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(version) = parse_version(&name.to_string_lossy()) else {
                    continue;
                };
                let dir = entry.path().join("bin");
                if has_server_binaries(&dir) && best.as_ref().is_none_or(|(v, _)| version > *v) {
                    best = Some((version, dir));
                }
            }
        }
        best.map(|(_, dir)| dir).ok_or_else(|| anyhow!(NOT_FOUND))
    }

    /// Creates the cluster on first use, starts it unless a server for this
    /// data directory is already running (then it is reused and never stopped
    /// by this instance), and creates the `millrace` database if missing.
    pub fn start(data_dir: &Path) -> Result<EmbeddedPostgres> {
        let mut pg = Self::locate(data_dir)?;
        let lock = DirLock::acquire(&pg.data_dir.join(LOCK_FILE))?;
        let result = pg.bring_up();
        if result.is_err() && pg.started_by_us {
            // Stop while still holding the lock: Drop would take it again.
            if let Err(e) = pg.stop_locked() {
                tracing::warn!(error = %format!("{e:#}"), "could not stop embedded PostgreSQL after a failed start");
            }
            pg.started_by_us = false;
        }
        drop(lock);
        match result {
            Ok(()) => Ok(pg),
            Err(e) => Err(match pg.traversal_hint() {
                Some(hint) => e.context(hint),
                None => e,
            }),
        }
    }

    /// A URL for `database` that sqlx and libpq both understand, e.g.
    /// `postgres://postgres@localhost:5432/millrace?host=%2Fvar%2Flib%2Fmillrace%2Frun`.
    /// The `host` query parameter names the socket directory and overrides
    /// `localhost`; the port is explicit so that a PGPORT in the environment
    /// cannot make the client look for another socket file.
    pub fn database_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{PORT}/{}?host={}",
            percent_encode(database.as_bytes()),
            percent_encode(self.socket_dir.as_os_str().as_bytes())
        )
    }

    /// The directory holding the server's Unix socket (`.s.PGSQL.5432`).
    pub fn socket_dir(&self) -> PathBuf {
        self.socket_dir.clone()
    }

    /// The canonical data directory this instance manages.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether this instance launched the server (and so will stop it).
    pub fn started_by_us(&self) -> bool {
        self.started_by_us
    }

    /// Stops the server (`pg_ctl stop -m fast`) if this instance started it;
    /// otherwise, or when called again, does nothing.
    pub fn stop(&mut self) -> Result<()> {
        if !self.started_by_us {
            return Ok(());
        }
        let _lock = DirLock::acquire(&self.data_dir.join(LOCK_FILE))?;
        self.stop_locked()
    }

    /// Stops the cluster even if another process started it: for the last
    /// of several processes sharing one cluster (the test suites do).
    pub fn stop_shared(&mut self) -> Result<()> {
        self.started_by_us = true;
        self.stop()
    }

    fn locate(data_dir: &Path) -> Result<Self> {
        let mut bin_dir = Self::find_bin_dir()?;
        fs::create_dir_all(data_dir).with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let data_dir = fs::canonicalize(data_dir).with_context(|| format!("cannot resolve data directory {}", data_dir.display()))?;
        // A cluster only runs under its own major version, and Debian keeps
        // the old version installed next to the new one after an upgrade.
        if let Ok(version) = fs::read_to_string(data_dir.join(CLUSTER_DIR).join("PG_VERSION")) {
            let matching = Path::new("/usr/lib/postgresql").join(version.trim()).join("bin");
            if parse_version(version.trim()).is_some() && has_server_binaries(&matching) {
                bin_dir = matching;
            }
        }
        let run_as = choose_run_as(&data_dir.join(CLUSTER_DIR))?;
        let socket_dir = choose_socket_dir(&data_dir);
        Ok(EmbeddedPostgres { data_dir, bin_dir, socket_dir, run_as, started_by_us: false })
    }

    fn cluster_dir(&self) -> PathBuf {
        self.data_dir.join(CLUSTER_DIR)
    }

    fn bring_up(&mut self) -> Result<()> {
        self.prepare_layout()?;
        if !self.cluster_dir().join("PG_VERSION").exists() {
            self.initdb()?;
        }
        if self.server_running()? {
            tracing::info!(data_dir = %self.data_dir.display(), "reusing the embedded PostgreSQL server that is already running");
            self.wait_until_ready()?;
        } else {
            self.start_server()?;
        }
        self.ensure_database(DATABASE)
    }

    fn prepare_layout(&self) -> Result<()> {
        let cluster = self.cluster_dir();
        if !cluster.exists() {
            fs::DirBuilder::new().mode(0o700).create(&cluster).with_context(|| format!("cannot create {}", cluster.display()))?;
        }
        let log = self.data_dir.join(LOG_FILE);
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        if let Some(user) = &self.run_as {
            // Only a root-owned (or just created) cluster gets here with the
            // wrong owner; see choose_run_as.
            if fs::metadata(&cluster)?.uid() != user.uid {
                chown_tree(&cluster, user, true).with_context(|| format!("cannot give {} to user {}", cluster.display(), user.name))?;
            }
            chown_if_needed(&log, user)?;
            // A later Millrace running as the cluster owner itself (not root)
            // must be able to open the lock.
            chown_if_needed(&self.data_dir.join(LOCK_FILE), user)?;
        }
        self.prepare_socket_dir()
    }

    fn prepare_socket_dir(&self) -> Result<()> {
        let dir = &self.socket_dir;
        let owner = self.run_as.as_ref().map_or_else(|| unsafe { libc::geteuid() }, |u| u.uid);
        // Inside the data directory the path is ours to fix; the /tmp fallback
        // is shared with every local user, so there we only accept a directory
        // that is already the owner's, never a symlink or someone else's.
        let ours = dir.starts_with(&self.data_dir);
        match fs::symlink_metadata(dir) {
            Ok(meta) => {
                if !meta.is_dir() || (!ours && meta.uid() != owner) {
                    bail!(
                        "socket directory {} is not a directory owned by uid {owner}: remove it or use a shorter data directory path",
                        dir.display()
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(dir)
                    .with_context(|| format!("cannot create socket directory {}", dir.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
        }
        if let Some(user) = &self.run_as {
            chown_if_needed(dir, user)?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {} to its owner", dir.display()))
    }

    fn initdb(&self) -> Result<()> {
        let cluster = self.cluster_dir();
        if fs::read_dir(&cluster)?.next().is_some() {
            bail!(
                "{} is not empty but has no PG_VERSION (an interrupted initdb?): move it away to create a new cluster",
                cluster.display()
            );
        }
        tracing::info!(dir = %cluster.display(), "creating the embedded PostgreSQL cluster");
        // C.UTF-8 gives Unicode-aware upper()/lower() with code-point ordering
        // that glibc upgrades cannot change; systems without that locale
        // (initdb: `invalid locale name "C.UTF-8"`) get plain C. initdb
        // empties the directory again when it fails, so a retry is clean.
        let result = self.run_initdb("C.UTF-8").or_else(|e| {
            if format!("{e:#}").contains("invalid locale name") {
                tracing::warn!("locale C.UTF-8 is not available; creating the cluster with locale C");
                self.run_initdb("C")
            } else {
                Err(e)
            }
        });
        result.context("could not create the embedded PostgreSQL cluster")?;
        self.append_conf_defaults()
    }

    fn run_initdb(&self, locale: &str) -> Result<()> {
        let mut cmd = self.pg_command("initdb");
        cmd.args(["-D", CLUSTER_DIR, "-U", SUPERUSER, "--encoding=UTF8"])
            .arg(format!("--locale={locale}"))
            // TCP is off anyway; rejecting it in pg_hba keeps trust auth
            // local even if someone turns TCP on.
            .args(["--auth-local=trust", "--auth-host=reject"]);
        run_checked(&mut cmd, INITDB_TIMEOUT).map(drop)
    }

    /// Makes a server started by hand (plain `pg_ctl start`) as closed as ours.
    fn append_conf_defaults(&self) -> Result<()> {
        let conf = self.cluster_dir().join("postgresql.conf");
        let mut file = fs::OpenOptions::new().append(true).open(&conf).with_context(|| format!("cannot open {}", conf.display()))?;
        file.write_all(
            b"\n# Millrace embedded cluster: reachable only through its Unix socket.\n\
              listen_addresses = ''\n\
              unix_socket_permissions = 0700\n",
        )
        .with_context(|| format!("cannot write {}", conf.display()))
    }

    fn start_server(&mut self) -> Result<()> {
        // The postmaster checks the socket's lock file exactly as it checks
        // postmaster.pid, so the same stale PIDs would stop it here.
        let socket_lock = self.socket_dir.join(format!(".s.PGSQL.{PORT}.lock"));
        if let Some(pid) = read_pid(&socket_lock)
            && let Some(reason) = stale_pid_reason(pid, &fs::canonicalize(self.cluster_dir())?)
        {
            tracing::warn!(pid, file = %socket_lock.display(), "removing stale socket lock file: {reason}");
            fs::remove_file(&socket_lock).with_context(|| format!("cannot remove stale {}", socket_lock.display()))?;
        }
        tracing::info!(data_dir = %self.data_dir.display(), socket_dir = %self.socket_dir.display(), "starting embedded PostgreSQL");
        let mut cmd = self.pg_command("pg_ctl");
        cmd.args(["start", "-D", CLUSTER_DIR, "-l", LOG_FILE, "-w", "-t"])
            .arg(PG_CTL_WAIT_SECS.to_string())
            .arg("-o")
            .arg(self.server_options());
        if let Err(e) = run_checked(&mut cmd, PG_CTL_TIMEOUT) {
            // A start that timed out leaves a server coming up that nobody
            // would own; an immediate stop is safe (WAL recovery next time).
            if self.server_running().unwrap_or(false) {
                let mut stop = self.pg_command("pg_ctl");
                stop.args(["stop", "-D", CLUSTER_DIR, "-m", "immediate", "-w", "-t"]).arg(PG_CTL_WAIT_SECS.to_string());
                let _ = run_checked(&mut stop, PG_CTL_TIMEOUT);
            }
            let log = self.data_dir.join(LOG_FILE);
            return Err(e.context(format!(
                "could not start the embedded PostgreSQL server; end of {}:\n{}",
                log.display(),
                log_tail(&log, 20)
            )));
        }
        self.started_by_us = true;
        self.psql("postgres", "select 1").map(drop)
    }

    /// Options for `pg_ctl -o`. pg_ctl pastes this string into a `/bin/sh -c`
    /// command line, hence the shell quoting; `-D` and `-l` are relative to
    /// the data directory (our working directory) so they need none.
    fn server_options(&self) -> OsString {
        // unix_socket_directories is a comma-separated list in which a
        // double-quoted entry may contain commas, with "" for a quote.
        let mut dir = vec![b'"'];
        for &b in self.socket_dir.as_os_str().as_bytes() {
            if b == b'"' {
                dir.push(b'"');
            }
            dir.push(b);
        }
        dir.push(b'"');
        // Claims walk the job queue's partial index from its head, where
        // claimed jobs leave dead entries until a vacuum: every 5 s rather
        // than the default minute keeps that walk short (see
        // benches/README.md).
        let mut opts = format!("-c listen_addresses= -p {PORT} -c unix_socket_permissions=0700 -c autovacuum_naptime=5 -k ").into_bytes();
        opts.extend(shell_quote(&dir));
        OsString::from_vec(opts)
    }

    /// Whether a server for this cluster is running, according to pg_ctl,
    /// after discarding a postmaster.pid whose PID is no live postmaster of
    /// this cluster. pg_ctl (and the postmaster's own check) only ask whether
    /// the PID exists, which goes wrong in two cases seen in containers: a
    /// crashed postmaster that its parent (PID 1) never reaped stays a zombie,
    /// and after a restart the old PID often belongs to another process of the
    /// same user (a system PostgreSQL also runs as `postgres`). Either would
    /// make us "reuse" a server that is not there, and block a new start.
    fn server_running(&self) -> Result<bool> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.args(["status", "-D", CLUSTER_DIR]);
        let out = run(&mut cmd, PG_CTL_TIMEOUT)?;
        match out.status.code() {
            Some(0) => {}
            Some(3) => return Ok(false),
            _ => return Err(command_error(&cmd, &out)),
        }
        let cluster = fs::canonicalize(self.cluster_dir())?;
        let pid_file = cluster.join("postmaster.pid");
        let Some(pid) = read_pid(&pid_file) else {
            return Ok(true);
        };
        let Some(reason) = stale_pid_reason(pid, &cluster) else {
            return Ok(true);
        };
        tracing::warn!(pid, file = %pid_file.display(), "removing stale postmaster.pid: {reason}");
        fs::remove_file(&pid_file).with_context(|| format!("cannot remove stale {}", pid_file.display()))?;
        Ok(false)
    }

    fn wait_until_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.psql("postgres", "select 1") {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!(
                        "a PostgreSQL server is running for {} but did not accept connections on {} within {}s",
                        self.cluster_dir().display(),
                        self.socket_dir.display(),
                        READY_TIMEOUT.as_secs()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    fn ensure_database(&self, name: &str) -> Result<()> {
        let literal = name.replace('\'', "''");
        let exists = self.psql("postgres", &format!("select 1 from pg_database where datname = '{literal}'"))?;
        if exists.trim() != "1" {
            tracing::info!(database = name, "creating database in the embedded PostgreSQL");
            let ident = name.replace('"', "\"\"");
            self.psql("postgres", &format!("create database \"{ident}\""))?;
        }
        Ok(())
    }

    fn stop_locked(&mut self) -> Result<()> {
        if !self.server_running()? {
            self.started_by_us = false;
            return Ok(());
        }
        tracing::info!(data_dir = %self.data_dir.display(), "stopping embedded PostgreSQL");
        let mut fast = self.pg_command("pg_ctl");
        fast.args(["stop", "-D", CLUSTER_DIR, "-m", "fast", "-w", "-t"]).arg(PG_CTL_WAIT_SECS.to_string());
        if let Err(e) = run_checked(&mut fast, PG_CTL_TIMEOUT) {
            // Usually a client that would not let go; an immediate stop is
            // crash-safe (WAL replay on next start) and frees the data dir.
            tracing::warn!(error = %format!("{e:#}"), "fast shutdown failed; using immediate shutdown");
            let mut immediate = self.pg_command("pg_ctl");
            immediate.args(["stop", "-D", CLUSTER_DIR, "-m", "immediate", "-w", "-t"]).arg(PG_CTL_WAIT_SECS.to_string());
            run_checked(&mut immediate, PG_CTL_TIMEOUT).context("could not stop the embedded PostgreSQL server")?;
        }
        self.started_by_us = false;
        if !self.socket_dir.starts_with(&self.data_dir) {
            // Don't leave litter in /tmp; the server removed its socket and
            // lock file, so this fails harmlessly only if something else is there.
            let _ = fs::remove_dir(&self.socket_dir);
        }
        Ok(())
    }

    /// A command for a server-side binary, run as the cluster owner from the
    /// data directory.
    fn pg_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.current_dir(&self.data_dir);
        scrub_pg_env(&mut cmd);
        if let Some(user) = &self.run_as {
            // std also drops the supplementary groups when uid is set.
            cmd.uid(user.uid).gid(user.gid).env("HOME", &user.home).env("USER", &user.name).env("LOGNAME", &user.name);
        }
        cmd
    }

    /// Runs SQL through the socket as ourselves, exactly as Millrace will
    /// connect, and returns the unaligned, tuples-only output.
    fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let local = self.bin_dir.join("psql");
        let psql = if local.is_file() {
            local
        } else {
            find_on_path("psql").ok_or_else(|| anyhow!("psql was found neither in {} nor on PATH", self.bin_dir.display()))?
        };
        let mut cmd = Command::new(psql);
        scrub_pg_env(&mut cmd);
        cmd.env("PGCONNECT_TIMEOUT", "10").args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"]).arg(&self.socket_dir).args([
            "-p",
            &PORT.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-c",
            sql,
        ]);
        let out = run_checked(&mut cmd, PSQL_TIMEOUT)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Why the cluster owner probably cannot reach the data directory, judged
    /// by mode bits (ACLs are not consulted, hence only a hint on failure).
    fn traversal_hint(&self) -> Option<String> {
        let user = self.run_as.as_ref()?;
        for dir in self.data_dir.ancestors() {
            let meta = fs::metadata(dir).ok()?;
            let bit = if meta.uid() == user.uid {
                0o100
            } else if meta.gid() == user.gid {
                0o010
            } else {
                0o001
            };
            if meta.mode() & bit == 0 {
                return Some(format!(
                    "PostgreSQL refuses to run as root, so the embedded cluster runs as user `{}` (uid {}), \
                     which cannot enter {} (mode {:o}, owner uid {}): make every directory down to {} \
                     searchable by that user (e.g. `chmod o+x`) or choose another data directory",
                    user.name,
                    user.uid,
                    dir.display(),
                    meta.mode() & 0o7777,
                    meta.uid(),
                    self.data_dir.display()
                ));
            }
        }
        None
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %format!("{e:#}"), data_dir = %self.data_dir.display(), "failed to stop embedded PostgreSQL");
        }
    }
}

fn choose_run_as(cluster_dir: &Path) -> Result<Option<RunAs>> {
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    if let Ok(meta) = fs::metadata(cluster_dir)
        && meta.uid() != 0
    {
        let uid = meta.uid();
        return Ok(Some(lookup_user(UserKey::Uid(uid)).unwrap_or_else(|| RunAs {
            name: uid.to_string(),
            uid,
            gid: meta.gid(),
            home: cluster_dir.to_path_buf(),
        })));
    }
    ["postgres", "nobody"].into_iter().filter_map(|name| lookup_user(UserKey::Name(name))).find(|user| user.uid != 0).map(Some).ok_or_else(
        || {
            anyhow!(
                "running as root, but there is no `postgres` or `nobody` user to run the embedded PostgreSQL as \
                 (PostgreSQL refuses to run as root): create a `postgres` system user or set DATABASE_URL"
            )
        },
    )
}

/// `<data_dir>/run` when its socket path fits in `sockaddr_un` and libpq can
/// name it, else a directory in /tmp named after the data directory, so that
/// every process for the same data directory agrees on it.
fn choose_socket_dir(data_dir: &Path) -> PathBuf {
    let preferred = data_dir.join(SOCKET_DIR);
    // libpq (psql, and any libpq-based admin tool) splits `host` at commas.
    if socket_path_fits(&preferred) && !preferred.as_os_str().as_bytes().contains(&b',') {
        return preferred;
    }
    let fallback = PathBuf::from(format!("/tmp/millrace-pg-{:016x}", fnv1a(data_dir.as_os_str().as_bytes())));
    tracing::warn!(
        preferred = %preferred.display(),
        fallback = %fallback.display(),
        "the socket path under the data directory is too long for a Unix socket or contains a comma; using a directory in /tmp"
    );
    fallback
}

fn socket_path_fits(dir: &Path) -> bool {
    // sun_path is 108 bytes on Linux (104 on the BSDs), including the NUL.
    const SUN_PATH_LEN: usize = if cfg!(target_os = "linux") { 108 } else { 104 };
    let file = format!("/.s.PGSQL.{PORT}");
    dir.as_os_str().len() + file.len() < SUN_PATH_LEN
}

/// Stable across Rust releases (unlike DefaultHasher), because separate
/// Millrace binaries must derive the same fallback socket directory.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

enum UserKey<'a> {
    Name(&'a str),
    Uid(u32),
}

fn lookup_user(key: UserKey<'_>) -> Option<RunAs> {
    let name_c = match key {
        UserKey::Name(name) => Some(CString::new(name).ok()?),
        UserKey::Uid(_) => None,
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: getpw*_r only write into `pwd` and `buf`, both live and
        // correctly sized here; the strings read below point into `buf`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            match (&key, &name_c) {
                (UserKey::Name(_), Some(c)) => libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result),
                (UserKey::Uid(uid), _) => libc::getpwuid_r(*uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result),
                (UserKey::Name(_), None) => return None,
            }
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        let (name, home) = unsafe {
            (
                CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
                PathBuf::from(OsStr::from_bytes(CStr::from_ptr(pwd.pw_dir).to_bytes())),
            )
        };
        return Some(RunAs { name, uid: pwd.pw_uid, gid: pwd.pw_gid, home });
    }
}

fn chown_if_needed(path: &Path, user: &RunAs) -> Result<()> {
    let meta = fs::metadata(path)?;
    if meta.uid() != user.uid || meta.gid() != user.gid {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .with_context(|| format!("cannot give {} to user {}", path.display(), user.name))?;
    }
    Ok(())
}

/// Follows a symlinked top directory (the cluster may live on another disk)
/// but never symlinks inside it.
fn chown_tree(path: &Path, user: &RunAs, top: bool) -> io::Result<()> {
    if top {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))?;
    } else {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))?;
    }
    let is_dir = if top { fs::metadata(path)?.is_dir() } else { fs::symlink_metadata(path)?.is_dir() };
    if is_dir {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), user, false)?;
        }
    }
    Ok(())
}

/// Exclusive flock on a file in the data directory, so that two Millrace
/// processes neither initdb nor start the same cluster at once, and a stop
/// cannot pull the server away from a start that decided to reuse it.
/// The fd is close-on-exec (as all std files are), so the postmaster never
/// inherits the lock.
struct DirLock(#[allow(dead_code)] fs::File);

impl DirLock {
    fn acquire(path: &Path) -> Result<Self> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            // SAFETY: flock on a descriptor owned by `file`.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(DirLock(file));
            }
            let err = io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EWOULDBLOCK) | Some(libc::EINTR)) {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
            if Instant::now() >= deadline {
                bail!(
                    "another process has held {} for over {}s while starting or stopping the embedded PostgreSQL",
                    path.display(),
                    LOCK_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Variables such as PGPORT or PGDATA would silently redirect initdb, pg_ctl,
/// the server itself (it takes its default port from PGPORT) or psql.
fn scrub_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.as_bytes().starts_with(b"PG") {
            cmd.env_remove(key);
        }
    }
}

struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs a command with a deadline, capturing its output.
fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}", describe(cmd)))?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} did not finish within {}s", describe(cmd), timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A grandchild that kept our pipe open must not hang us after the child
    // has exited, so output collection gets a short grace period only.
    let grace = Duration::from_secs(5);
    Ok(Output { status, stdout: stdout.recv_timeout(grace).unwrap_or_default(), stderr: stderr.recv_timeout(grace).unwrap_or_default() })
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

/// Like [`run`], but a non-zero exit is an error carrying the output.
fn run_checked(cmd: &mut Command, timeout: Duration) -> Result<Vec<u8>> {
    let out = run(cmd, timeout)?;
    if out.status.success() { Ok(out.stdout) } else { Err(command_error(cmd, &out)) }
}

fn command_error(cmd: &Command, out: &Output) -> anyhow::Error {
    let mut text = String::from_utf8_lossy(out.stderr.trim_ascii()).into_owned();
    let stdout = String::from_utf8_lossy(out.stdout.trim_ascii());
    if !stdout.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&stdout);
    }
    anyhow!("{} failed ({}): {}", describe(cmd), out.status, text)
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    if let Some(dir) = cmd.get_current_dir() {
        text.push_str(&format!(" (in {})", dir.display()));
    }
    format!("`{text}`")
}

/// Why `pid` cannot be the postmaster of `cluster`, judged from /proc; `None`
/// when it may be (or /proc cannot tell, e.g. no permission: then pg_ctl's
/// answer stands).
fn stale_pid_reason(pid: i32, cluster: &Path) -> Option<&'static str> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which may itself contain ") ".
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    if matches!(state, 'Z' | 'X') {
        return Some("the postmaster died and is an unreaped zombie");
    }
    // The postmaster's working directory is always its data directory.
    match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) if cwd != cluster => Some("its PID now belongs to another process"),
        _ => None,
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    // Very old servers wrote a negative PID for single-user mode.
    text.lines().next()?.trim().parse::<i32>().ok().map(i32::abs).filter(|&pid| pid > 0)
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

fn shell_quote(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in bytes {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Everything but RFC 3986 unreserved characters is escaped, so the result is
/// safe in a URL path segment and in a query value alike.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|name| dir.join(name).is_file())
}

fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tempfile makes 0700 directories, which the `postgres` user could not
    /// enter when the tests run as root.
    fn scratch() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn query(pg: &EmbeddedPostgres, sql: &str) -> String {
        pg.psql(DATABASE, sql).unwrap().trim().to_string()
    }

    fn is_running(data_dir: &Path) -> bool {
        EmbeddedPostgres::locate(data_dir).unwrap().server_running().unwrap()
    }

    #[test]
    fn start_creates_cluster_and_database() {
        let tmp = scratch();
        let data = tmp.path().join("data");
        let pg = EmbeddedPostgres::start(&data).unwrap();
        assert!(pg.started_by_us());
        assert!(data.join("pg/PG_VERSION").is_file());
        assert_eq!(pg.socket_dir(), fs::canonicalize(&data).unwrap().join("run"));
        assert!(pg.socket_dir().join(".s.PGSQL.5432").exists());
        query(&pg, "create table t(x int); insert into t values (42)");
        assert_eq!(query(&pg, "select x from t"), "42");
        assert_eq!(query(&pg, "select current_database()"), "millrace");
    }

    #[test]
    fn data_survives_stop_and_start() {
        let tmp = scratch();
        let mut pg = EmbeddedPostgres::start(tmp.path()).unwrap();
        query(&pg, "create table t(x int); insert into t values (42)");
        pg.stop().unwrap();
        assert!(!is_running(tmp.path()));
        pg.stop().unwrap();
        drop(pg);

        let pg = EmbeddedPostgres::start(tmp.path()).unwrap();
        assert!(pg.started_by_us());
        assert_eq!(query(&pg, "select x from t"), "42");
    }

    #[test]
    fn second_start_reuses_running_server() {
        let tmp = scratch();
        let first = EmbeddedPostgres::start(tmp.path()).unwrap();
        let second = EmbeddedPostgres::start(tmp.path()).unwrap();
        assert!(first.started_by_us());
        assert!(!second.started_by_us());
        assert_eq!(first.database_url(DATABASE), second.database_url(DATABASE));
        query(&second, "create table t(x int); insert into t values (42)");

        drop(second);
        assert!(is_running(tmp.path()));
        assert_eq!(query(&first, "select x from t"), "42");

        drop(first);
        assert!(!is_running(tmp.path()));
    }

    #[test]
    fn server_does_not_listen_on_tcp() {
        let tmp = scratch();
        let pg = EmbeddedPostgres::start(tmp.path()).unwrap();
        assert_eq!(query(&pg, "show listen_addresses"), "");
        assert_eq!(query(&pg, "show unix_socket_permissions"), "0700");
        let hba = fs::read_to_string(tmp.path().join("pg/pg_hba.conf")).unwrap();
        assert!(hba.lines().any(|l| l.starts_with("host") && l.trim_end().ends_with("reject")), "{hba}");
    }

    #[test]
    fn database_url_points_at_the_socket_dir() {
        let tmp = scratch();
        let pg = EmbeddedPostgres::locate(tmp.path()).unwrap();
        let dir = fs::canonicalize(tmp.path()).unwrap().join("run");
        let encoded = dir.to_str().unwrap().replace('/', "%2F");
        assert_eq!(pg.database_url("millrace"), format!("postgres://postgres@localhost:5432/millrace?host={encoded}"));
        assert_eq!(percent_encode(b"a b/c%"), "a%20b%2Fc%25");
    }

    #[test]
    fn long_data_dir_falls_back_to_short_socket_dir() {
        let tmp = scratch();
        let mut data = tmp.path().to_path_buf();
        for _ in 0..4 {
            data.push("a-rather-long-directory-name");
            fs::create_dir(&data).unwrap();
            fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(!socket_path_fits(&data.join("run")));
        let pg = EmbeddedPostgres::start(&data).unwrap();
        assert!(pg.socket_dir().to_str().unwrap().starts_with("/tmp/millrace-pg-"));
        assert!(socket_path_fits(&pg.socket_dir()));
        assert_eq!(query(&pg, "select 1"), "1");
        let again = EmbeddedPostgres::start(&data).unwrap();
        assert!(!again.started_by_us());
        drop(again);
        let socket_dir = pg.socket_dir();
        drop(pg);
        assert!(!socket_dir.exists());
    }

    /// Kills the postmaster like a crash would and waits until its children
    /// have exited too (they still hold its shared memory until then).
    fn crash(pg: EmbeddedPostgres) {
        let cluster = fs::canonicalize(pg.cluster_dir()).unwrap();
        let pid = read_pid(&cluster.join("postmaster.pid")).unwrap();
        // Nothing left to stop: keep Drop from trying.
        std::mem::forget(pg);
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let alive = fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .any(|entry| fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == cluster));
            if !alive {
                return;
            }
            assert!(Instant::now() < deadline, "postgres processes outlived the postmaster");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn stale_postmaster_pid_does_not_block_start() {
        let tmp = scratch();
        let pg = EmbeddedPostgres::start(tmp.path()).unwrap();
        query(&pg, "create table t(x int); insert into t values (42)");
        crash(pg);

        // The PID in postmaster.pid is dead: pg_ctl and postgres cope.
        let pg = EmbeddedPostgres::start(tmp.path()).unwrap();
        assert!(pg.started_by_us());
        assert_eq!(query(&pg, "select x from t"), "42");
        let run_as = pg.run_as.clone();
        crash(pg);

        // The PID now belongs to a live process of the same user, as after a
        // reboot; pg_ctl would call that a running server.
        let mut sleeper = Command::new("sleep");
        sleeper.arg("60");
        if let Some(user) = &run_as {
            sleeper.uid(user.uid).gid(user.gid);
        }
        let mut sleeper = sleeper.spawn().unwrap();
        let pid_file = tmp.path().join("pg/postmaster.pid");
        let text = fs::read_to_string(&pid_file).unwrap();
        let rest = text.split_once('\n').unwrap().1;
        fs::write(&pid_file, format!("{}\n{rest}", sleeper.id())).unwrap();
        let result = EmbeddedPostgres::start(tmp.path());
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let pg = result.unwrap();
        assert!(pg.started_by_us());
        assert_eq!(query(&pg, "select x from t"), "42");
    }

    #[test]
    fn not_found_message_is_exact() {
        assert_eq!(
            anyhow!(NOT_FOUND).to_string(),
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found: install PostgreSQL (e.g. `apt-get install postgresql`) or set DATABASE_URL to use an existing server"
        );
    }

    #[test]
    fn server_options_quote_the_socket_dir() {
        let tmp = scratch();
        let mut pg = EmbeddedPostgres::locate(tmp.path()).unwrap();
        pg.socket_dir = PathBuf::from("/tmp/it's a \"dir\",x");
        assert_eq!(
            pg.server_options(),
            OsString::from(
                "-c listen_addresses= -p 5432 -c unix_socket_permissions=0700 -c autovacuum_naptime=5 -k '\"/tmp/it'\\''s a \"\"dir\"\",x\"'"
            )
        );
    }
}
