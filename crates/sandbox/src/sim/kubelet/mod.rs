//! The kubelets of every simulated node (one component holding per-node state): pods
//! bound to a node run their containers' scripts (see [`script`]) and the kubelet
//! writes their status through the API as the real one does (status patches with field
//! manager `kubelet`, a final delete with grace 0), following SEMANTICS.md A4-A6 and
//! B1-B6. This is an implementation independent of the auditor's model.
//!
//! Status manager (B3): every status the kubelet computes goes to its per-pod cache
//! first, whether or not the node can reach the API server; condition
//! lastTransitionTimes move against that cache, never against the API's copy. A
//! partitioned node writes nothing; when it heals, each pod's latest cached status is
//! written once, so states computed meanwhile are coalesced (Ready True -> False ->
//! True reaches the API as True(t1) -> True(t3)), and a Ready the node lifecycle
//! controller set False meanwhile is overwritten with the kubelet's cached condition
//! and its own, older time (the two writers of Ready). A terminal phase found in the
//! API on heal (PodGC failed the pod) is kept.
//!
//! Faulty-kubelet mode ([`Kubelet::inject`]): one status write that breaks one rule of
//! B7 (see `inject` for each rule's write). The pod must already be in a state that can
//! carry the rule (else `CannotInject` says what is missing); after an injection the
//! kubelet writes nothing more for that pod except its final delete, so the injected
//! write is the only definite violation for it. `running-unbound` goes to a pod no
//! kubelet runs (bound to no node), written by name as a kubelet would for a pod of
//! that name it ran before.
//!
//! Bounds: per pod, the parsed spec (containers, policies, scripts) and a few words per
//! container, freed when the pod is deleted; the whole Pod is decoded once per uid (on
//! admission); watch events of known pods cost a byte search (for
//! `deletionTimestamp`), plus a small decode for pods with readiness gates. One live
//! timer per pod (older ones are recognized by a generation counter and ignored).

mod inject;
mod pod;
mod report;
pub mod script;
pub mod spec;
pub mod status;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::api::DeleteOptions;
use crate::api::object::{ObjectKey, StoredObject};

use super::error::SimError;
use super::node_faults::NodeFault;
use super::world::{Change, ChangeKind, KubeletTimer, Timer, World};
use pod::{Cx, End, PodState, SIGKILL_EXIT, SIGTERM_EXIT};
use spec::PodPlan;
use status::{Ctr, Wait};

#[derive(Debug, Default)]
struct NodeState {
    pods: BTreeSet<u64>,
    /// Pods bound to the node while its kubelet could not see them (down or
    /// partitioned); admitted when it heals.
    parked: BTreeSet<ObjectKey>,
    /// Pod IPs handed out.
    next_ip: u32,
}

#[derive(Debug, Default)]
pub struct Kubelet {
    pods: HashMap<u64, PodState>,
    by_uid: HashMap<String, u64>,
    nodes: HashMap<String, NodeState>,
    next_id: u64,
}

impl Kubelet {
    pub fn start(&mut self, _sh: &mut World) {}

    /// Pods tracked (for tests and bounds checks).
    pub fn tracked_pods(&self) -> usize {
        self.pods.len()
    }

    pub fn on_pod(&mut self, sh: &mut World, change: &Change) {
        let obj = &change.object;
        if change.kind == ChangeKind::Deleted {
            if let Some(id) = self.by_uid.get(&obj.uid).copied() {
                self.forget(id);
            }
            if let Some(node) = obj.field("spec.nodeName")
                && let Some(n) = self.nodes.get_mut(&node)
            {
                n.parked.remove(&obj.key());
            }
            return;
        }
        let Some(node) = obj.field("spec.nodeName").filter(|n| !n.is_empty()) else {
            return;
        };
        let Some(sim) = sh.node_sims.get(&node) else {
            return;
        };
        if !sim.reachable() {
            // The kubelet sees nothing now; it catches up when the node heals.
            if !self.by_uid.contains_key(&obj.uid) {
                self.nodes.entry(node).or_default().parked.insert(obj.key());
            }
            return;
        }
        match self.by_uid.get(&obj.uid).copied() {
            Some(id) => self.update(sh, id, obj),
            None => self.admit(sh, obj, &node),
        }
    }

    pub fn on_node(&mut self, _sh: &mut World, _change: &Change) {}

    pub fn fire(&mut self, sh: &mut World, timer: KubeletTimer) {
        match timer {
            KubeletTimer::Wake { id, generation } => {
                let Some(st) = self.pods.get_mut(&id) else {
                    return;
                };
                if st.generation != generation {
                    return;
                }
                st.wake = None;
                self.run(sh, id, false);
            }
        }
    }

    pub fn fault(&mut self, sh: &mut World, node: &str, fault: NodeFault) {
        let ids: Vec<u64> = self
            .nodes
            .get(node)
            .map(|n| n.pods.iter().copied().collect())
            .unwrap_or_default();
        match fault {
            NodeFault::Partition | NodeFault::OutOfService => {}
            NodeFault::DiskFailure => {
                for id in ids {
                    self.terminate(sh, id, End::DiskFailure, SIGKILL_EXIT, false);
                }
            }
            NodeFault::MemoryPressure => {
                for id in ids {
                    self.terminate(sh, id, End::Evicted, SIGKILL_EXIT, false);
                }
            }
            NodeFault::Shutdown => {
                for id in ids {
                    self.terminate(sh, id, End::Shutdown, SIGTERM_EXIT, true);
                }
            }
            NodeFault::Delete => {
                for id in ids {
                    if let Some(st) = self.pods.get(&id) {
                        let key = (st.namespace.clone(), st.name.clone());
                        self.nodes
                            .entry(node.to_string())
                            .or_default()
                            .parked
                            .insert(key);
                    }
                    self.forget(id);
                }
            }
            NodeFault::Heal => self.heal(sh, node, ids),
        }
    }

    pub fn inject(
        &mut self,
        sh: &mut World,
        pod: &Arc<StoredObject>,
        rule: &str,
    ) -> Result<(), SimError> {
        let cannot = |why: String| SimError::CannotInject {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            rule: rule.to_string(),
            why,
        };
        if rule == "running-unbound" {
            // No kubelet runs an unbound pod: a faulty one writes to it by name.
            let api: Pod = pod
                .decode()
                .map_err(|e| cannot(format!("the pod cannot be decoded: {e}")))?;
            let patch = inject::unbound_patch(&api, sh.now()).map_err(cannot)?;
            return write_injected(sh, pod, patch);
        }
        let Some(id) = self.by_uid.get(&pod.uid).copied() else {
            return Err(cannot(
                "no kubelet runs this pod (not bound, or its node is down)".into(),
            ));
        };
        let Some(st) = self.pods.get_mut(&id) else {
            return Err(cannot("no kubelet runs this pod".into()));
        };
        if !sh.node_sim(&st.node).reachable() {
            return Err(cannot(format!(
                "node {} cannot reach the API server",
                st.node
            )));
        }
        let api: Pod = pod
            .decode()
            .map_err(|e| cannot(format!("the pod cannot be decoded: {e}")))?;
        let patch = inject::violating_patch(st, &api, rule, sh.now()).map_err(cannot)?;
        write_injected(sh, pod, patch)?;
        st.frozen = true;
        st.generation += 1;
        st.wake = None;
        for c in &mut st.ctrs {
            c.due = None;
        }
        Ok(())
    }

    // ---- pods ----------------------------------------------------------------

    fn forget(&mut self, id: u64) {
        if let Some(st) = self.pods.remove(&id) {
            self.by_uid.remove(&st.uid);
            if let Some(n) = self.nodes.get_mut(&st.node) {
                n.pods.remove(&id);
            }
        }
    }

    /// A pod newly seen on a node whose kubelet runs.
    fn admit(&mut self, sh: &mut World, obj: &StoredObject, node: &str) {
        let pod: Pod = match obj.decode() {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(pod = %obj.name, error = %e, "kubelet cannot decode pod");
                return;
            }
        };
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            return; // nothing to run
        }
        let ran_before = status
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|l| {
                l.iter()
                    .any(|c| c.container_id.is_some() || c.restart_count > 0)
            });
        if pod.metadata.deletion_timestamp.is_some() && !ran_before {
            delete_at_once(sh, obj);
            return;
        }
        let now = sh.now();
        let (id, ips) = self.place(node);
        let mut st = admitted_state(obj, node, &pod, now, ips);
        let mut cx = Cx {
            sh,
            now,
            talk: true,
        };
        if ran_before {
            // Its containers were lost with the kubelet that ran them.
            st.adopt_lost(&pod, now);
            st.finish(&mut cx, End::Lost, SIGKILL_EXIT);
        } else {
            schedule_first_starts(&mut st, now);
        }
        self.by_uid.insert(st.uid.clone(), id);
        self.pods.insert(id, st);
        let sim = cx.sh.node_sim(node);
        if sim.memory_pressure {
            self.terminate(cx.sh, id, End::Evicted, SIGKILL_EXIT, false);
        } else if sim.disk_failed {
            self.terminate(cx.sh, id, End::DiskFailure, SIGKILL_EXIT, false);
        }
        self.run(cx.sh, id, false);
    }

    /// A new pod's id on this kubelet and its (host, pod) IPs on `node`.
    fn place(&mut self, node: &str) -> (u64, ([u8; 4], [u8; 4])) {
        self.next_id += 1;
        let id = self.next_id;
        let n = self.nodes.entry(node.to_string()).or_default();
        n.next_ip = n.next_ip.wrapping_add(1);
        let node_no = node_number(node);
        let host_ip = [10, 0, (node_no >> 8) as u8, node_no as u8];
        let pod_ip = [
            10,
            128 + ((node_no >> 8) & 63) as u8,
            node_no as u8,
            (n.next_ip % 254 + 1) as u8,
        ];
        n.pods.insert(id);
        (id, (host_ip, pod_ip))
    }

    /// A change of a known pod on a reachable node.
    fn update(&mut self, sh: &mut World, id: u64, obj: &StoredObject) {
        let Some(st) = self.pods.get_mut(&id) else {
            return;
        };
        let mut act = false;
        if !st.deleting && memchr::memmem::find(&obj.json, b"\"deletionTimestamp\"").is_some() {
            act = true;
            if st.frozen {
                st.deleting = true;
            } else {
                let now = sh.now();
                let mut cx = Cx {
                    sh: &mut *sh,
                    now,
                    talk: true,
                };
                st.begin_delete(&mut cx);
            }
        }
        if !st.plan.readiness_gates.is_empty() {
            let conditions = light_conditions(obj);
            let ok = pod::gates_ok(&st.plan.readiness_gates, &conditions);
            if ok != st.gates_ok {
                st.gates_ok = ok;
                st.changed = true;
                act = true;
            }
        }
        if act {
            self.run(sh, id, false);
        }
    }

    /// Steps the pod to now, writes what changed, and sets its next timer.
    fn run(&mut self, sh: &mut World, id: u64, force_talk: bool) {
        let Some(st) = self.pods.get_mut(&id) else {
            return;
        };
        let now = sh.now();
        let talk = force_talk || sh.node_sim(&st.node).reachable();
        let mut cx = Cx { sh, now, talk };
        st.step(&mut cx);
        st.flush(&mut cx);
        if let Some(t) = st.next_due()
            && st.wake != Some(t)
        {
            st.generation += 1;
            st.wake = Some(t);
            cx.sh.schedule(
                t,
                Timer::Kubelet(KubeletTimer::Wake {
                    id,
                    generation: st.generation,
                }),
            );
        }
    }

    /// A kubelet termination (eviction, disk failure, shutdown) of one pod.
    fn terminate(&mut self, sh: &mut World, id: u64, end: End, exit: i32, force_talk: bool) {
        let Some(st) = self.pods.get_mut(&id) else {
            return;
        };
        if st.frozen || st.end.is_some() {
            return;
        }
        let now = sh.now();
        let talk = force_talk || sh.node_sim(&st.node).reachable();
        let mut cx = Cx { sh, now, talk };
        st.finish(&mut cx, end, exit);
        match end {
            End::Evicted => st.event(
                &mut cx,
                None,
                true,
                "Evicted",
                "The node was low on resource: memory. ",
            ),
            End::DiskFailure => {
                st.event(&mut cx, None, true, "Evicted", pod::DISK_PRESSURE_MESSAGE)
            }
            _ => {}
        }
        self.run(sh, id, force_talk);
    }

    /// The node is back: catch up on what changed meanwhile, write every pod's latest
    /// cached status (only the latest: what was computed meanwhile is coalesced, and
    /// its condition times are the kubelet's own, whatever the node lifecycle
    /// controller wrote meanwhile, as upstream's status manager reconciles), admit pods
    /// bound while it was away.
    fn heal(&mut self, sh: &mut World, node: &str, ids: Vec<u64>) {
        for id in ids {
            let Some(st) = self.pods.get_mut(&id) else {
                continue;
            };
            let key = (st.namespace.clone(), st.name.clone());
            let current = sh.pods.get(&key).filter(|o| o.uid == st.uid).cloned();
            let Some(obj) = current else {
                self.forget(id);
                continue;
            };
            // PodGC may have failed it meanwhile (an out-of-service node): the kubelet
            // never moves a terminal API phase back (upstream `generateAPIPodStatus`).
            if st.written_terminal.is_none() {
                st.written_terminal = match obj.field("status.phase").as_deref() {
                    Some("Succeeded") => Some(status::PodPhase::Succeeded),
                    Some("Failed") => Some(status::PodPhase::Failed),
                    _ => None,
                };
            }
            st.changed = true;
            st.unsent = true;
            self.update(sh, id, &obj);
            self.run(sh, id, false);
        }
        let parked = self
            .nodes
            .get_mut(node)
            .map(|n| std::mem::take(&mut n.parked))
            .unwrap_or_default();
        for key in parked {
            let Some(obj) = sh.pods.get(&key).cloned() else {
                continue;
            };
            let bound = obj.field("spec.nodeName").is_some_and(|n| n == node);
            if bound && !self.by_uid.contains_key(&obj.uid) {
                self.admit(sh, &obj, node);
            }
        }
    }
}

/// A faulty kubelet's status patch (strategic merge, field manager `kubelet`).
fn write_injected(
    sh: &World,
    pod: &StoredObject,
    patch: serde_json::Value,
) -> Result<(), SimError> {
    let opts = crate::api::WriteOptions {
        subresource: crate::api::Subresource::Status,
        field_manager: Some("kubelet".into()),
        ..Default::default()
    };
    sh.store.patch(
        &sh.apis.pods,
        Some(&pod.namespace),
        &pod.name,
        &crate::api::Patch::Strategic(patch),
        &opts,
    )?;
    Ok(())
}

/// The (type, status) of every condition of a stored pod, without decoding the rest.
fn light_conditions(obj: &StoredObject) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Lite {
        status: Option<LiteStatus>,
    }
    #[derive(serde::Deserialize)]
    struct LiteStatus {
        conditions: Option<Vec<LiteCond>>,
    }
    #[derive(serde::Deserialize)]
    struct LiteCond {
        #[serde(rename = "type")]
        kind: String,
        status: String,
    }
    serde_json::from_slice::<Lite>(&obj.json)
        .ok()
        .and_then(|l| l.status)
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.kind, c.status))
        .collect()
}

/// A pod deleted before any of its containers ran goes at once (grace 0).
fn delete_at_once(sh: &mut World, obj: &StoredObject) {
    let pods = sh.apis.pods.clone();
    let opts = DeleteOptions {
        grace_period_seconds: Some(0),
        precondition_uid: Some(obj.uid.clone()),
        ..Default::default()
    };
    let _ = sh
        .store
        .delete(&pods, Some(&obj.namespace), &obj.name, &opts);
}

/// The state of a pod a kubelet admits: its plan, containers waiting to be created
/// (or for their init containers), the conditions it finds in the API.
fn admitted_state(
    obj: &StoredObject,
    node: &str,
    pod: &Pod,
    now: jiff::Timestamp,
    (host_ip, pod_ip): ([u8; 4], [u8; 4]),
) -> PodState {
    let plan = PodPlan::from_pod(pod);
    let status = pod.status.as_ref();
    let wait = if plan.first_app > 0 {
        Wait::PodInitializing
    } else {
        Wait::ContainerCreating
    };
    let conditions: Vec<(String, String)> = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect();
    let start = status
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0);
    PodState {
        namespace: obj.namespace.clone(),
        name: obj.name.clone(),
        uid: obj.uid.clone(),
        node: node.to_string(),
        ctrs: plan.ctrs.iter().map(|_| Ctr::new(wait)).collect(),
        gates_ok: pod::gates_ok(&plan.readiness_gates, &conditions),
        plan: Box::new(plan),
        start: jiff::Timestamp::from_second(start.as_second()).unwrap_or(start),
        host_ip,
        pod_ip,
        conds: report::api_conditions(pod),
        initialized: false,
        init_failed: false,
        end: None,
        deleting: pod.metadata.deletion_timestamp.is_some(),
        delete_sent: false,
        frozen: false,
        changed: true,
        unsent: false,
        written_terminal: None,
        generation: 0,
        wake: None,
    }
}

/// Init (or the app containers) start once the sandbox is up.
fn schedule_first_starts(st: &mut PodState, now: jiff::Timestamp) {
    st.initialized = st.plan.first_app == 0;
    let first = now.saturating_add(pod::START_DELAY).unwrap_or(now);
    for i in 0..st.ctrs.len() {
        let first_init = i == 0;
        let app_without_init = st.initialized;
        if first_init || app_without_init {
            st.ctrs[i].due = Some((first, status::Act::Start));
        }
    }
}

/// `node-12` -> 12; other names hash to a number.
fn node_number(node: &str) -> u32 {
    if let Some(n) = node.rsplit('-').next().and_then(|s| s.parse::<u32>().ok()) {
        return n;
    }
    node.bytes()
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 4096
}
