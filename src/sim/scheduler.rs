//! The scheduler.

use super::cluster::{Change, Shared};

#[derive(Debug, Clone)]
pub enum Timer {}

#[derive(Debug, Default)]
pub struct Scheduler {}

impl Scheduler {
    pub fn start(&mut self, _sh: &mut Shared) {}

    pub fn on_pod(&mut self, _sh: &mut Shared, _change: &Change) {}

    pub fn on_node(&mut self, _sh: &mut Shared, _change: &Change) {}

    pub fn fire(&mut self, _sh: &mut Shared, timer: Timer) {
        match timer {}
    }
}
