//! The kubelet's side of a Node: registration (labels, capacity, allocatable,
//! addresses, nodeInfo), the Lease renewed every 10 s, and the node status, patched
//! when a condition changes or every 5 minutes as a heartbeat (upstream
//! `nodeStatusReportFrequency`), so 1,000 idle nodes cost about 3 node writes a second.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::object::{self, StoredObject};
use crate::api::{ApiError, Patch, Subresource, WriteOptions};

use super::super::error::SimError;
use super::super::world::{ControlTimer, Timer, World};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i64 = 40;
pub const RENEW_INTERVAL: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);
pub const STATUS_REPORT_INTERVAL: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);
pub const KUBELET_VERSION: &str = "v1.33.2";
pub const REGION: &str = "sandbox-central1";

const KUBELET: &str = "kubelet";

/// Per simulated node (bound: nodes ever registered).
#[derive(Debug, Default)]
pub struct Nodes {
    states: BTreeMap<String, NodeState>,
}

#[derive(Debug)]
struct NodeState {
    /// Stable index: addresses, zone.
    index: u32,
    /// Tells the current heartbeat timer from those of an earlier registration.
    epoch: u64,
    last_report: jiff::Timestamp,
    /// (node resourceVersion, fault flags) at which the node's conditions were found
    /// to be what the kubelet reports: the next heartbeat skips reading the Node.
    in_line: Option<(u64, Flags)>,
}

/// The fault flags the reported conditions depend on.
type Flags = (bool, bool, bool);

fn flags(sh: &World, name: &str) -> Flags {
    let sim = sh.node_sim(name);
    (sim.memory_pressure, sim.disk_failed, sim.shut_down)
}

/// What a status report did.
enum Report {
    /// Patched; the node's new resourceVersion.
    Wrote(u64),
    /// Nothing to change at this resourceVersion.
    InLine(u64),
    Failed,
}

impl NodeState {
    /// Reports unless nothing can have changed; records what it found.
    fn report(&mut self, sh: &World, name: &str, heartbeat_due: bool) {
        let key = flags(sh, name);
        let version = sh.nodes.get(name).map(|n| n.resource_version);
        if !heartbeat_due && version.is_some() && self.in_line == version.map(|v| (v, key)) {
            return;
        }
        match report_status(sh, name, heartbeat_due) {
            Report::Wrote(v) => {
                self.last_report = sh.now();
                self.in_line = Some((v, key));
            }
            Report::InLine(v) => self.in_line = Some((v, key)),
            Report::Failed => self.in_line = None,
        }
    }
}

/// A node condition as the kubelet reports it.
struct Cond {
    kind: &'static str,
    status: &'static str,
    reason: &'static str,
    message: &'static str,
}

impl Nodes {
    /// Creates the Node (if missing) and its Lease, and starts the heartbeats.
    pub fn register(&mut self, sh: &mut World, name: &str) -> Result<(), SimError> {
        let next = self.states.len() as u32;
        let now = sh.now();
        let state = self.states.entry(name.to_string()).or_insert(NodeState {
            index: next,
            epoch: 0,
            last_report: now,
            in_line: None,
        });
        state.epoch += 1;
        state.last_report = now;
        let node = node_object(sh, name, state.index, now);
        let created =
            match sh
                .store
                .create(&sh.apis.nodes, None, node, &kubelet_opts(Subresource::Main))
            {
                Ok(n) => n,
                Err(ApiError::AlreadyExists { .. }) => sh.store.get(&sh.apis.nodes, None, name)?,
                Err(e) => return Err(e.into()),
            };
        renew_lease(sh, name, Some(&created));
        // Spread the heartbeats over the interval, deterministically per seed.
        let jitter = jiff::SignedDuration::from_millis(sh.rng.below(10_000) as i64);
        let epoch = state.epoch;
        sh.schedule_in(
            RENEW_INTERVAL.checked_sub(jitter).unwrap_or(RENEW_INTERVAL),
            Timer::Control(ControlTimer::Heartbeat {
                node: name.to_string(),
                epoch,
            }),
        );
        Ok(())
    }

    /// One heartbeat: renew the lease, report the status if due; then the next one.
    pub fn heartbeat(&mut self, sh: &mut World, name: &str, epoch: u64) {
        let Some(state) = self.states.get_mut(name) else {
            return;
        };
        if state.epoch != epoch {
            return;
        }
        let sim = sh.node_sim(name);
        if sim.deleted {
            return; // a healed node registers again, with a new epoch
        }
        if sim.reachable() {
            renew_lease(sh, name, None);
            let due = sh.now().duration_since(state.last_report) >= STATUS_REPORT_INTERVAL;
            state.report(sh, name, due);
        }
        sh.schedule_in(
            RENEW_INTERVAL,
            Timer::Control(ControlTimer::Heartbeat {
                node: name.to_string(),
                epoch,
            }),
        );
    }

    /// Graceful node shutdown: the kubelet's last status says NotReady ("node is
    /// shutting down") before the machine goes silent.
    pub fn shutting_down(&mut self, sh: &mut World, name: &str) {
        if let Some(state) = self.states.get_mut(name) {
            state.report(sh, name, false);
        }
    }

    /// After a fault or a heal: report at once (if the node can reach the API).
    pub fn report_now(&mut self, sh: &mut World, name: &str) {
        if !sh.node_sim(name).reachable() {
            return;
        }
        renew_lease(sh, name, None);
        if let Some(state) = self.states.get_mut(name) {
            state.report(sh, name, false);
        }
    }
}

fn kubelet_opts(subresource: Subresource) -> WriteOptions {
    WriteOptions {
        subresource,
        field_manager: Some(KUBELET.into()),
        ..Default::default()
    }
}

/// The conditions the kubelet of `name` reports now.
fn desired_conditions(sh: &World, name: &str) -> [Cond; 4] {
    let sim = sh.node_sim(name);
    let memory = if sim.memory_pressure {
        Cond {
            kind: "MemoryPressure",
            status: "True",
            reason: "KubeletHasInsufficientMemory",
            message: "kubelet has insufficient memory available",
        }
    } else {
        Cond {
            kind: "MemoryPressure",
            status: "False",
            reason: "KubeletHasSufficientMemory",
            message: "kubelet has sufficient memory available",
        }
    };
    let disk = if sim.disk_failed {
        Cond {
            kind: "DiskPressure",
            status: "True",
            reason: "KubeletHasDiskPressure",
            message: "kubelet has disk pressure",
        }
    } else {
        Cond {
            kind: "DiskPressure",
            status: "False",
            reason: "KubeletHasNoDiskPressure",
            message: "kubelet has no disk pressure",
        }
    };
    [
        memory,
        disk,
        Cond {
            kind: "PIDPressure",
            status: "False",
            reason: "KubeletHasSufficientPID",
            message: "kubelet has sufficient PID available",
        },
        if sim.shut_down {
            Cond {
                kind: "Ready",
                status: "False",
                reason: "KubeletNotReady",
                message: "node is shutting down",
            }
        } else {
            Cond {
                kind: "Ready",
                status: "True",
                reason: "KubeletReady",
                message: "kubelet is posting ready status",
            }
        },
    ]
}

/// Patches the node's conditions when one differs from what the kubelet reports, or
/// when `heartbeat_due`.
fn report_status(sh: &World, name: &str, heartbeat_due: bool) -> Report {
    let desired = desired_conditions(sh, name);
    let Some(cached) = sh.nodes.get(name) else {
        return Report::Failed;
    };
    let current = cached.value();
    let conditions = object::path(&current, &["status", "conditions"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let find = |kind: &str| conditions.iter().find(|c| c["type"] == kind);
    let differs = desired.iter().any(|d| {
        find(d.kind).is_none_or(|c| {
            c["status"] != d.status || c["reason"] != d.reason || c["message"] != d.message
        })
    });
    if !differs && !heartbeat_due {
        return Report::InLine(cached.resource_version);
    }
    let now = object::format_time(sh.now());
    let result = sh.store.update_object(
        &sh.apis.nodes,
        None,
        name,
        &kubelet_opts(Subresource::Status),
        |_, node| {
            let old = object::path(node, &["status", "conditions"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let list: Vec<Value> = desired
                .iter()
                .map(|d| {
                    let transition = old
                        .iter()
                        .find(|c| c["type"] == d.kind && c["status"] == d.status)
                        .and_then(|c| c.get("lastTransitionTime").cloned())
                        .unwrap_or_else(|| json!(now));
                    json!({"type": d.kind, "status": d.status, "lastHeartbeatTime": now,
                           "lastTransitionTime": transition, "reason": d.reason,
                           "message": d.message})
                })
                .collect();
            crate::api::patch::set_path(node, &["status", "conditions"], Value::Array(list));
            Ok(())
        },
    );
    match result {
        Ok(node) => Report::Wrote(node.resource_version),
        Err(_) => Report::Failed,
    }
}

/// Renews (or creates) the node's Lease.
fn renew_lease(sh: &World, name: &str, node: Option<&StoredObject>) {
    let now = object::format_micro_time(sh.now());
    let patch = Patch::Merge(json!({"spec": {"renewTime": now, "holderIdentity": name}}));
    let renewed = sh.store.patch(
        &sh.apis.leases,
        Some(LEASE_NAMESPACE),
        name,
        &patch,
        &kubelet_opts(Subresource::Main),
    );
    if !matches!(renewed, Err(ApiError::NotFound { .. })) {
        return;
    }
    let uid = node
        .map(|n| n.uid.clone())
        .or_else(|| sh.nodes.get(name).map(|n| n.uid.clone()))
        .unwrap_or_default();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": now},
    });
    if let Err(e) = sh.store.create(
        &sh.apis.leases,
        Some(LEASE_NAMESPACE),
        lease,
        &kubelet_opts(Subresource::Main),
    ) {
        tracing::debug!(node = name, error = %e, "lease not created");
    }
}

/// Reserved for the system as GKE computes it: cpu (millicores) from the core count,
/// memory (bytes) from the memory size plus a 100Mi eviction threshold.
fn reserved(cpu_millis: u64, memory: u64) -> (u64, u64) {
    let tiers_cpu = [(1000u64, 60u64), (1000, 10), (2000, 5)];
    let mut left = cpu_millis;
    let mut cpu = 0;
    for (size, per_mille) in tiers_cpu {
        let part = left.min(size);
        cpu += part * per_mille / 1000;
        left -= part;
    }
    cpu += left * 25 / 10_000;
    const GI: u64 = 1 << 30;
    let tiers_mem = [(4 * GI, 25u64), (4 * GI, 20), (8 * GI, 10), (112 * GI, 6)];
    let mut left = memory;
    let mut mem = 0;
    for (size, percent) in tiers_mem {
        let part = left.min(size);
        mem += part / 100 * percent;
        left -= part;
    }
    mem += left / 100 * 2;
    (cpu, mem + (100 << 20))
}

fn cpu_quantity(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn zone_name(index: u32, zones: u32) -> String {
    let z = index % zones.max(1);
    match char::from_u32('a' as u32 + z) {
        Some(c) if z < 26 => format!("{REGION}-{c}"),
        _ => format!("{REGION}-z{z}"),
    }
}

/// The Node a kubelet registers: what `kubectl get nodes -o wide` shows of a real one.
fn node_object(sh: &World, name: &str, index: u32, now: jiff::Timestamp) -> Value {
    let shape = &sh.node_shape;
    let (cpu_res, mem_res) = reserved(shape.cpu_millis, shape.memory_bytes);
    let storage: u64 = 100 << 30;
    let kib = |b: u64| format!("{}Ki", b / 1024);
    let capacity = json!({
        "cpu": cpu_quantity(shape.cpu_millis),
        "ephemeral-storage": kib(storage),
        "hugepages-1Gi": "0", "hugepages-2Mi": "0",
        "memory": kib(shape.memory_bytes),
        "pods": shape.pods.to_string(),
    });
    let allocatable = json!({
        "cpu": cpu_quantity(shape.cpu_millis.saturating_sub(cpu_res)),
        "ephemeral-storage": (storage / 10 * 9).to_string(),
        "hugepages-1Gi": "0", "hugepages-2Mi": "0",
        "memory": kib(shape.memory_bytes.saturating_sub(mem_res)),
        "pods": shape.pods.to_string(),
    });
    let ip = format!("10.0.{}.{}", index / 250, index % 250 + 2);
    let t = object::format_time(now);
    let conditions: Vec<Value> = desired_conditions(sh, name)
        .iter()
        .map(|d| {
            json!({"type": d.kind, "status": d.status, "lastHeartbeatTime": t,
                   "lastTransitionTime": t, "reason": d.reason, "message": d.message})
        })
        .collect();
    let word = |salt: u64| object::splitmix(u64::from(index).wrapping_mul(0x9e37) ^ salt);
    let id = format!("{:016x}{:016x}", word(1), word(2));
    let boot = format!("{:016x}{:016x}", word(3), word(4));
    let uuid = |h: &str| {
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": shape.instance_type,
                "beta.kubernetes.io/os": "linux",
                "failure-domain.beta.kubernetes.io/region": REGION,
                "failure-domain.beta.kubernetes.io/zone": zone_name(index, shape.zones),
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": shape.instance_type,
                "topology.kubernetes.io/region": REGION,
                "topology.kubernetes.io/zone": zone_name(index, shape.zones),
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "podCIDR": format!("10.244.{}.0/24", index % 256),
            "podCIDRs": [format!("10.244.{}.0/24", index % 256)],
            "providerID": format!("sandbox://{REGION}/{name}"),
        },
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": uuid(&boot),
                "containerRuntimeVersion": "containerd://2.0.5",
                "kernelVersion": "6.8.0-1028-sandbox",
                "kubeProxyVersion": "",
                "kubeletVersion": KUBELET_VERSION,
                "machineID": id,
                "operatingSystem": "linux",
                "osImage": "Ubuntu 24.04.2 LTS",
                "systemUUID": uuid(&id),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_resources_follow_the_gke_tiers() {
        let (cpu, mem) = reserved(4000, 16 << 30);
        assert_eq!(
            cpu, 80,
            "6% of the first core, 1% of the second, 0.5% of the next two"
        );
        // 25% of 4Gi + 20% of 4Gi + 10% of 8Gi, plus the 100Mi eviction threshold.
        let gi = 1u64 << 30;
        assert_eq!(
            mem,
            4 * gi / 100 * 25 + 4 * gi / 100 * 20 + 8 * gi / 100 * 10 + (100 << 20)
        );
        assert_eq!(zone_name(4, 3), "sandbox-central1-b");
        assert_eq!(cpu_quantity(3920), "3920m");
    }
}
