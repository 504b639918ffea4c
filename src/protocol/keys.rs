//! Access keys verified once stay in memory, so authenticating a request
//! costs no database round trip.
//!
//! Correctness rests on PostgreSQL's LISTEN/NOTIFY: a trigger on
//! `access_key` (migration 0009) names every updated or deleted key, and
//! [`listen`] drops it here. The cache is used only while that listener is
//! connected; when the connection drops it is emptied and bypassed until
//! listening again, because notifications sent meanwhile are lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::sigv4::Secret;

const CHANNEL: &str = "millrace_access_key";
/// Bounds memory if many keys are used; a full cache simply starts over.
const MAX_ENTRIES: usize = 10_000;

/// The account and the opened secret behind an access key id.
#[derive(Clone)]
pub struct Key {
    pub account_id: String,
    pub secret: Arc<Secret>,
}

#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<String, Key>>,
    listening: AtomicBool,
    /// Bumped by every invalidation: a lookup that read the database before
    /// a bump must not store what it read (it may be the deleted key).
    epoch: AtomicU64,
}

impl KeyCache {
    pub fn get(&self, access_key_id: &str) -> Option<Key> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        self.keys.read().expect("key cache lock").get(access_key_id).cloned()
    }

    /// The epoch to pass to [`KeyCache::put`] after reading the database.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn put(&self, access_key_id: &str, key: Key, read_at: u64) {
        let mut keys = self.keys.write().expect("key cache lock");
        if !self.listening.load(Ordering::Acquire) || self.epoch.load(Ordering::Acquire) != read_at {
            return;
        }
        if keys.len() >= MAX_ENTRIES {
            keys.clear();
        }
        keys.insert(access_key_id.to_owned(), key);
    }

    fn forget(&self, access_key_id: &str) {
        let mut keys = self.keys.write().expect("key cache lock");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        keys.remove(access_key_id);
    }

    fn set_listening(&self, on: bool) {
        let mut keys = self.keys.write().expect("key cache lock");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        keys.clear();
        self.listening.store(on, Ordering::Release);
    }
}

/// Keeps the cache in step with the database until `stop` fires.
pub async fn listen(cache: Arc<KeyCache>, pool: PgPool, mut stop: watch::Receiver<bool>) {
    loop {
        let mut listener = match connect(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for access key changes; keys are read from the database on every request");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        cache.set_listening(true);
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(n)) => cache.forget(n.payload()),
                    // None: the connection was lost, and with it whatever was sent meanwhile.
                    Ok(None) | Err(_) => break,
                },
                _ = stop.changed() => {
                    cache.set_listening(false);
                    return;
                }
            }
        }
        cache.set_listening(false);
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
