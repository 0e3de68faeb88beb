//! Node faults: what `POST /sandbox/v1/nodes/{name}/faults` and
//! [`super::SimHandle::apply_fault`] accept.

use std::fmt;
use std::str::FromStr;

/// A fault of one node (SEMANTICS.md A6, B5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeFault {
    /// Heartbeats stop reaching the API server: the node controller marks the node
    /// Ready=Unknown after the grace period, taints it `unreachable` (NoExecute), sets
    /// its pods' Ready to False; the taint manager deletes pods whose toleration expires.
    /// The containers keep running on the node until it heals.
    Partition,
    /// The node's disk fills or fails: the kubelet's eviction manager evicts every pod for
    /// disk pressure (phase Failed, reason `Evicted`, DisruptionTarget
    /// `TerminationByKubelet`), as upstream, which has no other writer for a disk fault.
    DiskFailure,
    /// Node-pressure eviction: pods fail with reason `Evicted` and DisruptionTarget
    /// `TerminationByKubelet`.
    MemoryPressure,
    /// Graceful node shutdown: pods fail (unless Succeeded), then the node goes silent.
    Shutdown,
    /// The Node object is deleted; PodGC fails and removes its pods.
    Delete,
    /// The `node.kubernetes.io/out-of-service` taint (NoExecute).
    OutOfService,
    /// Undoes every fault (a deleted node registers again).
    Heal,
}

impl NodeFault {
    pub const ALL: [NodeFault; 7] = [
        NodeFault::Partition,
        NodeFault::DiskFailure,
        NodeFault::MemoryPressure,
        NodeFault::Shutdown,
        NodeFault::Delete,
        NodeFault::OutOfService,
        NodeFault::Heal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NodeFault::Partition => "partition",
            NodeFault::DiskFailure => "disk-failure",
            NodeFault::MemoryPressure => "memory-pressure",
            NodeFault::Shutdown => "shutdown",
            NodeFault::Delete => "delete",
            NodeFault::OutOfService => "out-of-service",
            NodeFault::Heal => "heal",
        }
    }
}

impl fmt::Display for NodeFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NodeFault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeFault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = NodeFault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown node fault {s:?} (known: {})", known.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_listed() {
        for f in NodeFault::ALL {
            assert_eq!(f.name().parse::<NodeFault>(), Ok(f));
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.name()));
        }
        let err = "melt".parse::<NodeFault>().unwrap_err();
        assert!(err.contains("melt") && err.contains("partition"), "{err}");
    }
}
