//! Faults on demand: closed watches, 410 Gone, throttling and server errors, latency,
//! and restarts that drop every connection but keep the data. Each injected fault is
//! counted so tests can assert what happened.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::object::splitmix;

/// Standing faults: applied to every request to `/api` and `/apis` while set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    /// Fraction (0..=1) of requests answered 429 TooManyRequests with Retry-After.
    pub throttle_fraction: f64,
    /// Fraction of requests answered 500 InternalError.
    pub error_fraction: f64,
    /// Fraction of requests answered 503 ServiceUnavailable.
    pub unavailable_fraction: f64,
    /// Retry-After seconds sent with 429 and 503.
    pub retry_after_seconds: u32,
    /// Latency added to every request, in milliseconds.
    pub latency_millis: u64,
    /// Close each watch after it has sent this many events (bookmarks excluded).
    pub close_watches_after_events: Option<u64>,
}

/// How many times each fault was injected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultCounts {
    pub watches_closed: u64,
    pub watches_closed_after_events: u64,
    pub gone_sent: u64,
    pub throttled: u64,
    pub internal_errors: u64,
    pub unavailable: u64,
    pub delayed: u64,
    pub restarts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    watches_closed: AtomicU64,
    watches_closed_after_events: AtomicU64,
    gone_sent: AtomicU64,
    throttled: AtomicU64,
    internal_errors: AtomicU64,
    unavailable: AtomicU64,
    delayed: AtomicU64,
    restarts: AtomicU64,
}

/// The fault switchboard shared by the server and its handle.
#[derive(Debug)]
pub struct Faults {
    config: Mutex<FaultConfig>,
    gone_pending: AtomicU64,
    rng: AtomicU64,
    counters: Counters,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(0x5eed)
    }
}

impl Faults {
    /// `seed` makes sampled faults reproducible.
    pub fn new(seed: u64) -> Self {
        Faults {
            config: Mutex::new(FaultConfig::default()),
            gone_pending: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> FaultConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_config(&self, config: FaultConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Clears standing faults and pending one-shot faults (counters are kept).
    pub fn clear(&self) {
        self.set_config(FaultConfig::default());
        self.gone_pending.store(0, Ordering::Relaxed);
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounts {
            watches_closed: get(&c.watches_closed),
            watches_closed_after_events: get(&c.watches_closed_after_events),
            gone_sent: get(&c.gone_sent),
            throttled: get(&c.throttled),
            internal_errors: get(&c.internal_errors),
            unavailable: get(&c.unavailable),
            delayed: get(&c.delayed),
            restarts: get(&c.restarts),
        }
    }

    /// Answer the next `n` watch requests with 410 Gone.
    pub fn gone_next_watches(&self, n: u64) {
        self.gone_pending.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether this watch request takes a pending 410 (and counts it).
    pub fn take_gone(&self) -> bool {
        let taken = self
            .gone_pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if taken {
            self.counters.gone_sent.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    pub(crate) fn count_watches_closed(&self, n: u64) {
        self.counters.watches_closed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count_watch_closed_after_events(&self) {
        self.counters
            .watches_closed_after_events
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_restart(&self) {
        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// The latency to add to a request, if any (counted).
    pub fn latency(&self) -> Option<Duration> {
        let ms = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latency_millis;
        (ms > 0).then(|| {
            self.counters.delayed.fetch_add(1, Ordering::Relaxed);
            Duration::from_millis(ms)
        })
    }

    /// Draws whether this request fails, and how (counted).
    pub fn sample_error(&self) -> Option<ApiError> {
        let config = self.config();
        let total = config.throttle_fraction + config.error_fraction + config.unavailable_fraction;
        if total <= 0.0 {
            return None;
        }
        let draw = self.next_unit();
        let retry = config.retry_after_seconds;
        if draw < config.throttle_fraction {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
            return Some(ApiError::TooManyRequests {
                message: "Too many requests, please try again later.".into(),
                retry_after_seconds: retry,
            });
        }
        if draw < config.throttle_fraction + config.error_fraction {
            self.counters
                .internal_errors
                .fetch_add(1, Ordering::Relaxed);
            return Some(ApiError::Internal("injected fault".into()));
        }
        if draw < total {
            self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
            return Some(ApiError::ServiceUnavailable(
                "the server is currently unable to handle the request".into(),
            ));
        }
        None
    }

    fn next_unit(&self) -> f64 {
        let x = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        (splitmix(x) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_faults_follow_fractions_and_are_counted() {
        let f = Faults::new(7);
        f.set_config(FaultConfig {
            throttle_fraction: 0.5,
            ..Default::default()
        });
        let hits = (0..1000).filter(|_| f.sample_error().is_some()).count();
        assert!((400..600).contains(&hits), "{hits}");
        assert_eq!(f.counts().throttled, hits as u64);
    }

    #[test]
    fn gone_is_one_shot() {
        let f = Faults::default();
        f.gone_next_watches(1);
        assert!(f.take_gone());
        assert!(!f.take_gone());
        assert_eq!(f.counts().gone_sent, 1);
    }
}
