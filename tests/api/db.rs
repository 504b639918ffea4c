//! Connections to PostgreSQL: the gate in front of sqlx's pool
//! (`store::db`), on a real connection pool, and the timeouts that keep a
//! stuck statement or transaction from holding a connection or a lock.

use std::time::{Duration, Instant};

use millrace::config::Config;
use millrace::crypto::SecretBox;
use millrace::store::db::{Db, OUTSIDE};
use sqlx::{Connection, PgConnection};

use crate::helpers::{TestServer, error_code, fresh_database_url, simple_pipeline};

async fn backend(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("select pg_backend_pid()").fetch_one(conn).await.unwrap()
}

/// Connections out of sqlx's pool: held, or kept by the gate.
fn out(pool: &sqlx::PgPool) -> usize {
    pool.size() as usize - pool.num_idle()
}

/// [`out`] once a dropped connection had time to reach sqlx's pool.
async fn handed_back(pool: &sqlx::PgPool) -> usize {
    for _ in 0..100 {
        if out(pool) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out(pool)
}

/// A connection released after its statement is the next one handed out;
/// one dropped instead goes back to sqlx's pool. The gate admits as many
/// callers as the pool has connections but [`OUTSIDE`], which stay free
/// for direct users of the pool.
#[tokio::test]
async fn the_gate_reuses_released_connections_and_keeps_room_outside() {
    let pool = millrace::store::connect(&fresh_database_url().await, 8, Duration::from_secs(30)).await.unwrap();
    let db = Db::new(pool.clone());
    let mut first = db.acquire().await.unwrap();
    let pid = backend(&mut first).await;
    first.release();
    assert_eq!(out(&pool), 1, "released: kept by the gate, not handed back to sqlx (which would test it)");
    let mut again = db.acquire().await.unwrap();
    assert_eq!(backend(&mut again).await, pid, "the released connection comes back");
    drop(again);
    assert_eq!(handed_back(&pool).await, 0, "dropped: handed back to sqlx");

    let mut held = Vec::new();
    for _ in 0..8 - OUTSIDE {
        held.push(db.acquire().await.unwrap());
    }
    assert!(tokio::time::timeout(Duration::from_millis(200), db.acquire()).await.is_err(), "one caller too many waits");
    let mut direct = Vec::new();
    for _ in 0..OUTSIDE {
        direct.push(tokio::time::timeout(Duration::from_secs(2), pool.acquire()).await.expect("room outside the gate").unwrap());
    }
    let waiting = tokio::spawn({
        let db = db.clone();
        async move { db.begin().await.map(drop) }
    });
    held.pop().unwrap().release();
    tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("a released permit lets the next caller in").unwrap().unwrap();
}

/// A committed transaction's connection stays at the gate like a released
/// one; a transaction dropped before its end is rolled back on its way
/// back to sqlx, and its connection is clean for the next caller.
#[tokio::test]
async fn committed_transactions_stay_at_the_gate_and_dropped_ones_roll_back() {
    let pool = millrace::store::connect(&fresh_database_url().await, 8, Duration::from_secs(30)).await.unwrap();
    let db = Db::new(pool.clone());
    sqlx::query("create table probe (n int)").execute(&pool).await.unwrap();
    let rows =
        |pool: sqlx::PgPool| async move { sqlx::query_scalar::<_, i32>("select n from probe order by n").fetch_all(&pool).await.unwrap() };

    let mut tx = db.begin().await.unwrap();
    let pid = backend(&mut tx).await;
    sqlx::query("insert into probe values (1)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(out(&pool), 1, "committed: kept by the gate");
    assert_eq!(rows(pool.clone()).await, [1]);

    let mut tx = db.begin().await.unwrap();
    assert_eq!(backend(&mut tx).await, pid, "the committed transaction's connection comes back");
    sqlx::query("insert into probe values (2)").execute(&mut *tx).await.unwrap();
    drop(tx);
    assert_eq!(handed_back(&pool).await, 0, "dropped: handed back to sqlx");
    assert_eq!(rows(pool.clone()).await, [1], "the dropped transaction was rolled back");

    let mut tx = db.begin().await.unwrap();
    sqlx::query("insert into probe values (3)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rows(pool.clone()).await, [1, 3], "the next transaction is a transaction of its own, not a savepoint of the dropped one");
}

/// A server whose statements PostgreSQL cancels after `timeout` (and whose
/// sessions idle in a transaction it ends after as long), with requests
/// allowed far longer; an account and a pipeline with its first execution.
async fn server_with_statement_timeout(timeout: Duration) -> (TestServer, aws_sdk_codepipeline::Client, String) {
    let config = Config { request_timeout: Duration::from_secs(20), ..Config::for_tests() };
    let server =
        TestServer::start_with_statement_timeout(fresh_database_url().await, SecretBox::generate_key_base64(), config, timeout).await;
    let account = server.account("timeouts").await;
    let client = server.client(&account);
    client.create_pipeline().pipeline(simple_pipeline("locked")).send().await.unwrap();
    (server, client, account.account_id)
}

async fn executions(client: &aws_sdk_codepipeline::Client) -> usize {
    client.list_pipeline_executions().pipeline_name("locked").send().await.unwrap().pipeline_execution_summaries().len()
}

/// Locks the pipeline's row as an update would, until `conn`'s transaction ends.
async fn lock_pipeline(conn: &mut PgConnection, account_id: &str) {
    sqlx::query("select 1 from pipeline where account_id = $1 and name = 'locked' for update")
        .bind(account_id)
        .execute(conn)
        .await
        .unwrap();
}

/// Backends of the server's database waiting for a lock.
async fn lock_waiters(server: &TestServer) -> i64 {
    sqlx::query_scalar("select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")
        .fetch_one(&server.pool)
        .await
        .unwrap()
}

/// A request whose statement waits behind a lock held elsewhere (an
/// operator's session here) is cancelled by PostgreSQL at the statement
/// timeout, well before the request's own: the client is told to retry,
/// the connection is free again rather than still waiting inside
/// PostgreSQL, nothing was written, and the same call works once the lock
/// is gone.
#[tokio::test]
async fn a_statement_stuck_behind_a_lock_is_cancelled_and_the_request_told_to_retry() {
    let (server, client, account_id) = server_with_statement_timeout(Duration::from_secs(1)).await;
    let before = executions(&client).await;
    let mut operator = PgConnection::connect(&server.database_url).await.unwrap();
    let mut held = operator.begin().await.unwrap();
    lock_pipeline(&mut held, &account_id).await;

    let started = Instant::now();
    let err = client.start_pipeline_execution().name("locked").send().await.unwrap_err();
    assert_eq!(error_code(&err), "RequestTimeoutException");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503), "a status every SDK retries");
    assert!(started.elapsed() < Duration::from_secs(8), "cancelled at the statement timeout, not the request's: {:?}", started.elapsed());
    assert_eq!(lock_waiters(&server).await, 0, "the cancelled statement no longer waits inside PostgreSQL");

    held.rollback().await.unwrap();
    client.start_pipeline_execution().name("locked").send().await.unwrap();
    assert_eq!(executions(&client).await, before + 1, "the cancelled start left nothing behind");
}

/// A server session left idle inside a transaction, as a replica frozen or
/// cut off mid-request would leave it, is ended by PostgreSQL after the
/// statement timeout, and its locks with it: a request waiting for one of
/// them goes through instead of timing out.
#[tokio::test]
async fn a_session_left_idle_in_a_transaction_is_ended_and_its_locks_released() {
    let timeout = Duration::from_secs(2);
    let (server, client, account_id) = server_with_statement_timeout(timeout).await;
    let before = executions(&client).await;
    let mut frozen = server.pool.acquire().await.unwrap();
    sqlx::query("begin").execute(&mut *frozen).await.unwrap();
    lock_pipeline(&mut frozen, &account_id).await;
    let idle_since = Instant::now();

    // Half the timeout later: the frozen session ends at the timeout, this
    // request's statement would be cancelled half a timeout after that.
    tokio::time::sleep(timeout / 2).await;
    client.start_pipeline_execution().name("locked").send().await.expect("the frozen session's lock was released");
    assert!(idle_since.elapsed() >= timeout, "it had to wait for the frozen session to end");
    assert_eq!(executions(&client).await, before + 1);
    assert!(sqlx::query("select 1").execute(&mut *frozen).await.is_err(), "PostgreSQL ended the frozen session");
}
