//! Simulated time. Every duration of the simulation (back-off, tolerations, heartbeats,
//! grace periods) is measured on this clock, and the API server stamps objects with it.
//!
//! Two modes:
//! - **stepped**: time moves only when the simulation is advanced (`SimHandle::advance`),
//!   straight from one due timer to the next, so a test of a 5-minute back-off takes
//!   milliseconds and gives the same result on every run;
//! - **real time** with a speed factor: `speed` simulated seconds per wall-clock second.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use crate::api::Clock;

#[derive(Debug)]
pub struct SimClock {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// Nanoseconds since the Unix epoch, set by the stepping simulation.
    Stepped(AtomicI64),
    RealTime {
        start: jiff::Timestamp,
        anchor: Instant,
        speed: f64,
    },
}

impl SimClock {
    /// A clock that stands still at `start` until [`SimClock::advance_to`] moves it.
    pub fn stepped(start: jiff::Timestamp) -> Self {
        SimClock {
            mode: Mode::Stepped(AtomicI64::new(nanos(start))),
        }
    }

    /// A clock that runs `speed` times faster than the wall clock from `start` on.
    pub fn real_time(start: jiff::Timestamp, speed: f64) -> Self {
        SimClock {
            mode: Mode::RealTime {
                start,
                anchor: Instant::now(),
                speed: if speed.is_finite() && speed > 0.0 {
                    speed
                } else {
                    1.0
                },
            },
        }
    }

    pub fn is_stepped(&self) -> bool {
        matches!(self.mode, Mode::Stepped(_))
    }

    /// Simulated seconds per wall-clock second (none when stepped).
    pub fn speed(&self) -> Option<f64> {
        match self.mode {
            Mode::Stepped(_) => None,
            Mode::RealTime { speed, .. } => Some(speed),
        }
    }

    /// Moves a stepped clock forward to `t` (never backwards); a real-time clock
    /// ignores it.
    pub fn advance_to(&self, t: jiff::Timestamp) {
        if let Mode::Stepped(now) = &self.mode {
            now.fetch_max(nanos(t), Ordering::AcqRel);
        }
    }

    /// Wall-clock time that `d` of simulated time takes at this clock's speed.
    pub fn wall_time(&self, d: std::time::Duration) -> std::time::Duration {
        match self.mode {
            Mode::Stepped(_) => std::time::Duration::ZERO,
            Mode::RealTime { speed, .. } => d.div_f64(speed),
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> jiff::Timestamp {
        match &self.mode {
            Mode::Stepped(now) => from_nanos(now.load(Ordering::Acquire)),
            Mode::RealTime {
                start,
                anchor,
                speed,
            } => {
                let elapsed = anchor.elapsed().mul_f64(*speed);
                let span =
                    jiff::SignedDuration::try_from(elapsed).unwrap_or(jiff::SignedDuration::MAX);
                start.saturating_add(span).unwrap_or(*start)
            }
        }
    }
}

fn nanos(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}

fn from_nanos(n: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(i128::from(n)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_clock_moves_only_forward_and_only_when_told() {
        let start = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let clock = SimClock::stepped(start);
        assert_eq!(clock.now(), start);
        let later = start + jiff::SignedDuration::from_secs(90);
        clock.advance_to(later);
        assert_eq!(clock.now(), later);
        clock.advance_to(start);
        assert_eq!(clock.now(), later, "a stepped clock never goes back");
    }

    #[test]
    fn real_time_clock_runs_at_its_speed() {
        let start = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let clock = SimClock::real_time(start, 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let elapsed = clock.now().duration_since(start);
        assert!(
            elapsed >= jiff::SignedDuration::from_secs(20),
            "{elapsed:?}"
        );
        assert_eq!(
            clock.wall_time(std::time::Duration::from_secs(10)),
            std::time::Duration::from_millis(10)
        );
    }
}
