//! The sandbox's notion of "now": real time by default, a simulated clock for the
//! simulator. Every timestamp the server writes and every age it prints comes from here.

use std::sync::Arc;

pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> jiff::Timestamp;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

pub type SharedClock = Arc<dyn Clock>;
