//! The kubelets of every simulated node (one component holding per-node state).

use std::sync::Arc;

use crate::sandbox::object::StoredObject;

use super::SimError;
use super::cluster::{Change, Shared};
use super::faults::NodeFault;

#[derive(Debug, Clone)]
pub enum Timer {}

#[derive(Debug, Default)]
pub struct Kubelet {}

impl Kubelet {
    pub fn start(&mut self, _sh: &mut Shared) {}

    pub fn on_pod(&mut self, _sh: &mut Shared, _change: &Change) {}

    pub fn on_node(&mut self, _sh: &mut Shared, _change: &Change) {}

    pub fn fire(&mut self, _sh: &mut Shared, timer: Timer) {
        match timer {}
    }

    pub fn fault(&mut self, _sh: &mut Shared, _node: &str, _fault: NodeFault) {}

    pub fn inject(
        &mut self,
        _sh: &mut Shared,
        pod: &Arc<StoredObject>,
        rule: &str,
    ) -> Result<(), SimError> {
        Err(SimError::CannotInject {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            rule: rule.to_string(),
            why: "not available yet".into(),
        })
    }
}
