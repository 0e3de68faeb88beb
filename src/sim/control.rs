//! Nodes and the control plane around them.

use super::SimError;
use super::cluster::{Change, Shared};
use super::faults::NodeFault;

#[derive(Debug, Clone)]
pub enum Timer {}

#[derive(Debug, Default)]
pub struct Control {}

impl Control {
    pub fn start(&mut self, _sh: &mut Shared) {}

    pub fn register_node(&mut self, _sh: &mut Shared, _name: &str) -> Result<(), SimError> {
        Ok(())
    }

    pub fn on_pod(&mut self, _sh: &mut Shared, _change: &Change) {}

    pub fn on_node(&mut self, _sh: &mut Shared, _change: &Change) {}

    pub fn fire(&mut self, _sh: &mut Shared, timer: Timer) {
        match timer {}
    }

    pub fn fault(
        &mut self,
        _sh: &mut Shared,
        _node: &str,
        _fault: NodeFault,
    ) -> Result<(), SimError> {
        Ok(())
    }
}
