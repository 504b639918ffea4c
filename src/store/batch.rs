//! One statement for several requests of the same kind.
//!
//! PostgreSQL's cost of a small statement is mostly what every statement
//! pays (a round trip, the executor's start-up, a commit and its WAL flush),
//! not its rows. A [`Lane`] runs one statement at a time for its kind of
//! request; the requests that arrive while it runs wait for it and then
//! share the next one. A request that finds its lane idle goes at once, so
//! nothing waits for company: batches form only under load, as many as the
//! load brings (group commit, at the statement level). Every request still
//! gets its own answer, and a statement that fails fails only the requests
//! it carried.
//!
//! A lane's statement runs in a task of its own, so a request whose client
//! goes away (its future dropped) leaves the others' statement alone.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// What a failed statement tells each request it carried.
pub type Failure = Arc<sqlx::Error>;

struct Waiting<I, O> {
    item: I,
    weight: usize,
    reply: oneshot::Sender<Result<O, Failure>>,
}

/// Requests of one kind, by key (requests of different keys never share a
/// statement). A key is present while a statement of its lane runs, with
/// the requests that wait for the next.
pub struct Lane<K, I, O> {
    waiting: Mutex<HashMap<K, Vec<Waiting<I, O>>>>,
    /// The most weight one statement carries (more than this only when a
    /// single request weighs more).
    capacity: usize,
}

impl<K, I, O> Lane<K, I, O>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    I: Send + 'static,
    O: Send + 'static,
{
    pub fn new(capacity: usize) -> Lane<K, I, O> {
        Lane { waiting: Mutex::new(HashMap::new()), capacity }
    }

    /// Runs `item` (of `weight`) in a statement of `key`'s lane: `run`
    /// takes the items of one statement and answers one output per item, in
    /// their order. Every request of a lane passes the same `run`; the one
    /// that finds the lane idle starts it.
    pub async fn submit<F, Fut>(self: &Arc<Self>, key: K, item: I, weight: usize, run: F) -> Result<O, Failure>
    where
        F: FnMut(&K, Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, sqlx::Error>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let me = Waiting { item, weight, reply };
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            match waiting.get_mut(&key) {
                Some(queue) => {
                    queue.push(me);
                    None
                }
                None => {
                    waiting.insert(key.clone(), Vec::new());
                    Some(me)
                }
            }
        };
        if let Some(me) = first {
            tokio::spawn(Arc::clone(self).drive(key, vec![me], run));
        }
        // The sender is dropped unanswered only if the statement's task
        // panicked; `Running` has then closed the lane.
        answer.await.unwrap_or_else(|_| Err(Arc::new(sqlx::Error::WorkerCrashed)))
    }

    /// Runs statements for `key` until nobody waits.
    async fn drive<F, Fut>(self: Arc<Self>, key: K, mut batch: Vec<Waiting<I, O>>, mut run: F)
    where
        F: FnMut(&K, Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, sqlx::Error>> + Send + 'static,
    {
        let running = Running { lane: &self, key: &key };
        loop {
            let (items, replies): (Vec<I>, Vec<_>) = batch.into_iter().map(|w| (w.item, w.reply)).unzip();
            let count = items.len();
            match run(&key, items).await {
                Ok(outputs) if outputs.len() == count => {
                    for (reply, output) in replies.into_iter().zip(outputs) {
                        let _ = reply.send(Ok(output));
                    }
                }
                Ok(outputs) => {
                    let e = Arc::new(sqlx::Error::Protocol(format!("a batch of {count} got {} answers", outputs.len())));
                    replies.into_iter().for_each(|r| drop(r.send(Err(e.clone()))));
                }
                Err(e) => {
                    let e = Arc::new(e);
                    replies.into_iter().for_each(|r| drop(r.send(Err(e.clone()))));
                }
            }
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let queue = waiting.get_mut(&key).expect("a running lane keeps its key");
            if queue.is_empty() {
                waiting.remove(&key);
                std::mem::forget(running);
                return;
            }
            batch = take(queue, self.capacity);
        }
    }
}

/// The longest prefix of `queue` within `capacity` (at least one request).
fn take<I, O>(queue: &mut Vec<Waiting<I, O>>, capacity: usize) -> Vec<Waiting<I, O>> {
    let mut total = 0;
    let n = queue
        .iter()
        .position(|w| {
            total += w.weight;
            total > capacity
        })
        .unwrap_or(queue.len())
        .max(1);
    queue.drain(..n).collect()
}

/// Closes the lane if its task unwinds, so that later requests start a new
/// one instead of waiting forever; those waiting get `WorkerCrashed`.
struct Running<'a, K: Eq + Hash, I, O> {
    lane: &'a Lane<K, I, O>,
    key: &'a K,
}

impl<K: Eq + Hash, I, O> Drop for Running<'_, K, I, O> {
    fn drop(&mut self) {
        self.lane.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Submits items 0..n of `weight` at once to a lane whose statement
    /// doubles its items, slowly: the answers, sorted, and how many
    /// statements ran.
    async fn submit_at_once(lane: &Arc<Lane<u8, u32, u32>>, n: u32, weight: usize) -> (Vec<u32>, usize) {
        let statements = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..n)
            .map(|i| {
                let (lane, statements) = (lane.clone(), statements.clone());
                let doubler = move |_: &u8, items: Vec<u32>| {
                    statements.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(items.into_iter().map(|i| i * 2).collect())
                    }
                };
                tokio::spawn(async move { lane.submit(0, i, weight, doubler).await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap().unwrap());
        }
        answers.sort();
        (answers, statements.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn requests_that_arrive_while_a_statement_runs_share_the_next() {
        let lane = Arc::new(Lane::new(100));
        let (answers, statements) = submit_at_once(&lane, 10, 1).await;
        assert_eq!(answers, (0..10).map(|i| i * 2).collect::<Vec<_>>());
        // The first goes alone; the nine that came meanwhile go together.
        assert_eq!(statements, 2);
        assert!(lane.waiting.lock().unwrap().is_empty(), "an idle lane keeps nothing");
    }

    #[tokio::test]
    async fn a_statement_carries_at_most_its_capacity() {
        let lane = Arc::new(Lane::new(4));
        let (_, statements) = submit_at_once(&lane, 9, 2).await;
        // One alone, then eight of weight 2, two to a statement of capacity 4.
        assert_eq!(statements, 5);
    }

    #[tokio::test]
    async fn a_failed_statement_fails_its_requests_and_the_lane_goes_on() {
        let lane = Arc::new(Lane::<u8, u32, u32>::new(100));
        let failing = |_: &u8, _: Vec<u32>| async { Err::<Vec<u32>, _>(sqlx::Error::PoolTimedOut) };
        assert!(matches!(*lane.submit(0, 1, 1, failing).await.unwrap_err(), sqlx::Error::PoolTimedOut));
        let panicking = |_: &u8, _: Vec<u32>| async { panic!("a bug in a statement") };
        assert!(matches!(*lane.submit(0, 1, 1, panicking).await.unwrap_err(), sqlx::Error::WorkerCrashed));
        let fine = |_: &u8, items: Vec<u32>| async move { Ok(items) };
        assert_eq!(lane.submit(0, 7, 1, fine).await.unwrap(), 7);
    }
}
