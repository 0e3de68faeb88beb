//! What the kubelet keeps of a pod's spec, parsed once per pod uid: its containers
//! (kind, image, restart policy and rules, script), the pod's restart policy, readiness
//! gates and grace period. Restart decisions (SEMANTICS.md B2) live here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::script::{self, Script, ScriptError};

/// A restart policy (pod or container level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Always,
    OnFailure,
    Never,
}

impl Policy {
    fn parse(s: Option<&str>) -> Option<Policy> {
        match s? {
            "Always" => Some(Policy::Always),
            "OnFailure" => Some(Policy::OnFailure),
            "Never" => Some(Policy::Never),
            _ => None,
        }
    }

    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Policy::Always => true,
            Policy::OnFailure => exit_code != 0,
            Policy::Never => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular init container (runs to completion before the next one starts).
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    /// A container of `spec.containers`.
    App,
}

/// One entry of `restartPolicyRules`: exit codes In/NotIn a set, and whether the
/// action restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRule {
    /// `None`: the rule has no `exitCodes` requirement and matches every exit.
    pub exit_codes: Option<(bool, Vec<i32>)>,
    pub restart: bool,
}

impl RestartRule {
    fn matches(&self, exit_code: i32) -> bool {
        match &self.exit_codes {
            None => true,
            Some((true, codes)) => codes.contains(&exit_code),
            Some((false, codes)) => !codes.contains(&exit_code),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CtrSpec {
    pub name: String,
    pub image: String,
    pub kind: Kind,
    pub policy: Option<Policy>,
    pub rules: Vec<RestartRule>,
    pub script: Result<Script, ScriptError>,
}

impl CtrSpec {
    /// `ContainerShouldRestart` (B2): the first matching rule decides; else the
    /// container's policy; else the pod's. Sidecars always restart; a regular init
    /// container of an `Always` pod restarts on failure only (it must complete once).
    pub fn should_restart(&self, pod: Policy, exit_code: i32) -> bool {
        if self.kind == Kind::Sidecar {
            return true;
        }
        let pod = match (self.kind, pod) {
            (Kind::Init, Policy::Always) => Policy::OnFailure,
            _ => pod,
        };
        if self
            .rules
            .iter()
            .find(|r| r.matches(exit_code))
            .is_some_and(|r| r.restart)
        {
            return true;
        }
        self.policy.unwrap_or(pod).restarts(exit_code)
    }

    /// `spec.containers{name}` / `spec.initContainers{name}` for events.
    pub fn field_path(&self) -> String {
        match self.kind {
            Kind::App => format!("spec.containers{{{}}}", self.name),
            Kind::Init | Kind::Sidecar => format!("spec.initContainers{{{}}}", self.name),
        }
    }
}

/// The pod spec as the kubelet uses it: init containers (regular and sidecars) in
/// order, then app containers.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub ctrs: Vec<CtrSpec>,
    /// Index of the first app container in `ctrs`.
    pub first_app: usize,
    pub policy: Policy,
    pub readiness_gates: Vec<String>,
    pub grace_seconds: i64,
}

impl PodPlan {
    pub fn from_pod(pod: &Pod) -> PodPlan {
        let empty = BTreeMap::new();
        let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
        let Some(spec) = pod.spec.as_ref() else {
            return PodPlan {
                ctrs: Vec::new(),
                first_app: 0,
                policy: Policy::Always,
                readiness_gates: Vec::new(),
                grace_seconds: 30,
            };
        };
        let policy = Policy::parse(spec.restart_policy.as_deref()).unwrap_or(Policy::Always);
        let mut ctrs = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            let kind = if c.restart_policy.as_deref() == Some("Always") {
                Kind::Sidecar
            } else {
                Kind::Init
            };
            ctrs.push(ctr_spec(c, kind, annotations));
        }
        let first_app = ctrs.len();
        for c in &spec.containers {
            ctrs.push(ctr_spec(c, Kind::App, annotations));
        }
        PodPlan {
            ctrs,
            first_app,
            policy,
            readiness_gates: spec
                .readiness_gates
                .iter()
                .flatten()
                .map(|g| g.condition_type.clone())
                .collect(),
            grace_seconds: spec.termination_grace_period_seconds.unwrap_or(30).max(0),
        }
    }

    pub fn apps(&self) -> std::ops::Range<usize> {
        self.first_app..self.ctrs.len()
    }
}

fn ctr_spec(c: &Container, kind: Kind, annotations: &BTreeMap<String, String>) -> CtrSpec {
    let script = match annotations.get(&format!("{}{}", script::ANNOTATION_PREFIX, c.name)) {
        Some(text) => script::parse(text),
        None => Ok(Script::default()),
    };
    let rules = c
        .restart_policy_rules
        .iter()
        .flatten()
        .map(|r| RestartRule {
            exit_codes: r
                .exit_codes
                .as_ref()
                .map(|e| (e.operator == "In", e.values.clone().unwrap_or_default())),
            restart: r.action == "Restart",
        })
        .collect();
    CtrSpec {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        kind,
        policy: match kind {
            Kind::Sidecar => Some(Policy::Always),
            _ => Policy::parse(c.restart_policy.as_deref()),
        },
        rules,
        script,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(policy: Option<Policy>, rules: Vec<RestartRule>) -> CtrSpec {
        CtrSpec {
            name: "c".into(),
            image: "i".into(),
            kind: Kind::App,
            policy,
            rules,
            script: Ok(Script::default()),
        }
    }

    #[test]
    fn restart_decisions_follow_rules_then_container_then_pod_policy() {
        let in_42 = RestartRule {
            exit_codes: Some((true, vec![42])),
            restart: true,
        };
        let not_in_0 = RestartRule {
            exit_codes: Some((false, vec![0])),
            restart: true,
        };
        let cases: [(&str, CtrSpec, Policy, i32, bool); 9] = [
            (
                "pod Always, exit 0",
                ctr(None, vec![]),
                Policy::Always,
                0,
                true,
            ),
            (
                "pod OnFailure, exit 0",
                ctr(None, vec![]),
                Policy::OnFailure,
                0,
                false,
            ),
            (
                "pod OnFailure, exit 1",
                ctr(None, vec![]),
                Policy::OnFailure,
                1,
                true,
            ),
            (
                "pod Never, exit 1",
                ctr(None, vec![]),
                Policy::Never,
                1,
                false,
            ),
            (
                "container Never beats pod Always",
                ctr(Some(Policy::Never), vec![]),
                Policy::Always,
                1,
                false,
            ),
            (
                "rule In [42] restarts under Never",
                ctr(Some(Policy::Never), vec![in_42.clone()]),
                Policy::Never,
                42,
                true,
            ),
            (
                "rule In [42] does not match 1: falls back to Never",
                ctr(Some(Policy::Never), vec![in_42]),
                Policy::Never,
                1,
                false,
            ),
            (
                "rule NotIn [0] restarts 3",
                ctr(Some(Policy::Never), vec![not_in_0.clone()]),
                Policy::Never,
                3,
                true,
            ),
            (
                "rule NotIn [0] does not match 0",
                ctr(Some(Policy::Never), vec![not_in_0]),
                Policy::Always,
                0,
                false,
            ),
        ];
        for (case, c, pod, exit, want) in cases {
            assert_eq!(c.should_restart(pod, exit), want, "{case}");
        }
    }
}
