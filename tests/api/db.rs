//! The gate in front of sqlx's pool (`store::db`), on a real connection pool.

use std::time::Duration;

use millrace::store::db::{Db, OUTSIDE};
use sqlx::PgConnection;

use crate::helpers::fresh_database_url;

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
    let pool = millrace::store::connect(&fresh_database_url().await, 8).await.unwrap();
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
    let pool = millrace::store::connect(&fresh_database_url().await, 8).await.unwrap();
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
