//! A token bucket per key (per webhook), in this process's memory.
//!
//! Each replica keeps its own buckets, so behind a load balancer spreading
//! deliveries over N replicas a webhook may start up to N times the rate:
//! the limit bounds a noisy sender, it is not an exact quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many buckets, full (idle) ones are forgotten before a new one
/// is made; a forgotten bucket comes back full, so nothing is lost.
const MAX_BUCKETS: usize = 10_000;

pub struct RateLimiter {
    /// Tokens added per minute, and the bucket size (the burst); 0 = no limit.
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token from `key`'s bucket, or says how long until one is
    /// there.
    pub fn try_acquire(&self, key: &str) -> Result<(), Duration> {
        self.try_acquire_at(key, Instant::now())
    }

    fn try_acquire_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let refilled = |b: &Bucket| (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second).min(capacity);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, b| refilled(b) < capacity);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = refilled(bucket);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.try_acquire_at("a", t0).is_ok());
        }
        let wait = limiter.try_acquire_at("a", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 20.0).abs() < 0.01, "{wait:?}");
        // Other keys have their own buckets.
        assert!(limiter.try_acquire_at("b", t0).is_ok());
        // One token every 20 s.
        assert!(limiter.try_acquire_at("a", t0 + Duration::from_secs(10)).is_err());
        assert!(limiter.try_acquire_at("a", t0 + Duration::from_secs(21)).is_ok());
        assert!(limiter.try_acquire_at("a", t0 + Duration::from_secs(22)).is_err());
        // Never more than the burst, however long it was idle.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.try_acquire_at("a", later).is_ok());
        }
        assert!(limiter.try_acquire_at("a", later).is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| limiter.try_acquire_at("a", t0).is_ok()));
    }

    #[test]
    fn idle_buckets_are_forgotten_when_there_are_too_many() {
        let limiter = RateLimiter::new(60);
        let t0 = Instant::now();
        for i in 0..MAX_BUCKETS {
            limiter.try_acquire_at(&i.to_string(), t0).unwrap();
        }
        limiter.try_acquire_at("new", t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1, "refilled buckets went");
    }
}
