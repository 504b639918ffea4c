//! The server's one door to its connections: sqlx's pool behind a fair
//! gate with a permit per connection (but [`OUTSIDE`]).
//!
//! sqlx tests every connection handed back to its pool with a round trip
//! (a Sync, answered by PostgreSQL), whatever the connection did, and
//! offers no way out. A job call is one statement: that test was half of
//! its round trips, and skipping it here made 8–12 % more job lifecycles
//! per second (benches/README.md, session 10). A connection whose statement
//! completed ([`Conn::release`]) is idle at PostgreSQL's ReadyForQuery,
//! with nothing to test, so it waits here for the next caller instead, and
//! so does the connection of a committed transaction ([`Tx`]). Everything
//! else goes back through sqlx as before: a connection dropped
//! mid-statement (a cancelled request), after an error, or in a
//! transaction, which sqlx's test then rolls back.
//!
//! Connections waiting here still count against the pool's size, so every
//! caller takes a permit first: whoever holds one finds a connection here
//! or room in the pool, and callers are served in arrival order. The pool
//! keeps [`OUTSIDE`] connections beyond the permits for callers outside the
//! gate.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgTransactionManager;
use sqlx::{PgConnection, PgPool, Postgres, TransactionManager};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections of the pool left to callers outside the gate: the access
/// key listener (`protocol::keys`), which holds one for good, and direct
/// users of the pool (tests, the benchmark's own queries).
pub const OUTSIDE: usize = 2;

/// A connection that sat idle this long is handed back to sqlx, whose
/// pool checks it before its next use (`store::connect`).
const FRESH: Duration = Duration::from_secs(5);

/// Connections released after their statement, newest last, with when.
type Idle = Arc<Mutex<Vec<(Instant, PoolConnection<Postgres>)>>>;

#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    permits: Arc<Semaphore>,
    idle: Idle,
}

impl Db {
    pub fn new(pool: PgPool) -> Db {
        let size = pool.options().get_max_connections() as usize;
        Db { pool, permits: Arc::new(Semaphore::new(size.saturating_sub(OUTSIDE).max(1))), idle: Default::default() }
    }

    /// The pool itself, for callers outside the gate: startup, and the
    /// access key listener, which holds one of its connections for good.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        let permit = self.permit().await?;
        let conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(Conn { conn: Some(conn), idle: self.idle.clone(), _permit: permit })
    }

    /// A transaction on a connection of the gate.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut tx = Tx { conn: Some(self.acquire().await?) };
        PgTransactionManager::begin(&mut tx, None).await?;
        Ok(tx)
    }

    /// Hands every idle connection back to the pool (before it closes).
    pub fn drain(&self) {
        self.idle.lock().expect("never poisoned").clear();
    }

    /// A permit, waited for as long as sqlx waits for a connection.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, sqlx::Error> {
        let wait = self.pool.options().get_acquire_timeout();
        match tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await {
            Ok(permit) => Ok(permit.expect("the gate is never closed")),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    fn take_idle(&self) -> Option<PoolConnection<Postgres>> {
        let mut idle = self.idle.lock().expect("never poisoned");
        while let Some((since, conn)) = idle.pop() {
            if since.elapsed() < FRESH {
                return Some(conn);
            }
            drop(conn);
        }
        None
    }
}

/// A connection held with a permit of [`Db`]. Dropped, it goes back to
/// sqlx's pool (which tests it); [`Conn::release`] keeps it for the next
/// caller.
pub struct Conn {
    conn: Option<PoolConnection<Postgres>>,
    idle: Idle,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// Hands the connection back untested. Only after a statement that ran
    /// to its end (success or a database error) outside a transaction: the
    /// connection is then idle, waiting for the next statement.
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.idle.lock().expect("never poisoned").push((Instant::now(), conn));
        }
    }
}

impl Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("held until dropped or released")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("held until dropped or released")
    }
}

/// A transaction on a connection of [`Db`], begun and ended as sqlx's own
/// `Transaction` does. Committed, its connection is idle again and stays
/// at the gate like a released one, so a commit costs no test round trip.
/// Dropped before, or after a failed commit, its rollback is queued and
/// the connection goes back through sqlx, whose test sends it.
pub struct Tx {
    conn: Option<Conn>,
}

impl Tx {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        PgTransactionManager::commit(&mut self).await?;
        if let Some(conn) = self.conn.take() {
            conn.release();
        }
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            PgTransactionManager::start_rollback(conn);
        }
    }
}

impl Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("held until committed or dropped")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("held until committed or dropped")
    }
}
