//! Pacing of the controller's writers (Events, replacements, guard finalizers): a token
//! bucket each, so that nothing writes to the API faster than its `--*-qps`.

use std::time::Duration;

/// `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64, now: tokio::time::Instant) -> Self {
        let rate = rate.max(0.01);
        TokenBucket {
            rate,
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            at: now,
        }
    }

    /// Takes a token: when it may be used (now, or when the bucket has refilled it).
    pub fn take(&mut self, now: tokio::time::Instant) -> tokio::time::Instant {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_the_rate_paces() {
        let t0 = tokio::time::Instant::now();
        let mut bucket = TokenBucket::new(5.0, 20.0, t0);
        for _ in 0..20 {
            assert_eq!(bucket.take(t0), t0);
        }
        // The 21st waits a fifth of a second, the 22nd two.
        assert_eq!(bucket.take(t0), t0 + Duration::from_millis(200));
        assert_eq!(bucket.take(t0), t0 + Duration::from_millis(400));
        // A quiet spell refills it, up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..20 {
            assert_eq!(bucket.take(later), later);
        }
        assert!(bucket.take(later) > later);
    }

    #[test]
    fn without_a_burst_writes_are_spaced_by_the_rate() {
        let t0 = tokio::time::Instant::now();
        let mut bucket = TokenBucket::new(5.0, 1.0, t0);
        assert_eq!(bucket.take(t0), t0);
        assert_eq!(bucket.take(t0), t0 + Duration::from_millis(200));
        // Idle for a minute: one write at once, never more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(bucket.take(later), later);
        assert_eq!(bucket.take(later), later + Duration::from_millis(200));
    }
}
