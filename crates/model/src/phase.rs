//! The phase the kubelet computes (SEMANTICS B1, `getPhase`) and the container restart
//! decision (B2, `ContainerShouldRestart`), read from what the API shows.

use super::view::{
    ContainerRestartPolicy, ContainerSpec, ContainerState, Phase, PodView, RestartPolicy,
};

/// Whether a container that exited with `exit_code` will be restarted: the first matching
/// `restartPolicyRules` entry with action `Restart`, else the container's `restartPolicy`,
/// else the pod's.
pub fn container_should_restart(c: &ContainerSpec, pod: RestartPolicy, exit_code: i32) -> bool {
    let rule_restarts = c
        .restart_policy_rules
        .iter()
        .find(|r| r.exit_codes.as_ref().is_none_or(|e| e.matches(exit_code)))
        .is_some_and(|r| &*r.action == "Restart");
    if rule_restarts {
        return true;
    }
    match c.restart_policy {
        Some(ContainerRestartPolicy::Always) => true,
        Some(ContainerRestartPolicy::OnFailure) => exit_code != 0,
        Some(ContainerRestartPolicy::Never) => false,
        None => match pod {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        },
    }
}

/// Says in words which policy decides for `c` and `exit_code`, for messages.
pub fn describe_policy(c: &ContainerSpec, pod: RestartPolicy, exit_code: i32) -> String {
    let matched = c
        .restart_policy_rules
        .iter()
        .position(|r| r.exit_codes.as_ref().is_none_or(|e| e.matches(exit_code)));
    let base = match c.restart_policy {
        Some(p) => format!("container restartPolicy is {p:?}"),
        None => format!("restartPolicy is {}", pod.as_str()),
    };
    match (matched, c.restart_policy_rules.is_empty()) {
        (Some(i), _) => format!(
            "restartPolicyRules[{i}] (action {}) matches exit {exit_code} and {base}",
            c.restart_policy_rules[i].action
        ),
        (None, false) => format!("no restartPolicyRules entry matches exit {exit_code} and {base}"),
        (None, true) => base,
    }
}

/// Whether any exit of `c` could ever be restarted (pod Never, no container-level policy
/// that restarts, no rules).
pub fn may_ever_restart(c: &ContainerSpec, pod: RestartPolicy) -> bool {
    !c.restart_policy_rules.is_empty()
        || match c.restart_policy {
            Some(p) => p != ContainerRestartPolicy::Never,
            None => pod != RestartPolicy::Never,
        }
}

/// `getPhase` with the container-restart-rules decision (the default from 1.35; without
/// container-level rules it reduces exactly to the older pod-policy form).
pub fn get_phase(pod: &PodView, pod_is_terminal: bool, pod_has_initialized: bool) -> Phase {
    let policy = pod.restart_policy();
    let mut pending_sidecars = 0;
    let mut pending_init = 0;
    let mut failed_init_not_restartable = 0;

    for c in pod.spec.init_containers.iter().filter(|c| !c.is_sidecar()) {
        let Some(st) = pod.init_container_status(&c.name) else {
            pending_init += 1;
            continue;
        };
        match (&st.state, &st.last_state) {
            (ContainerState::Running { .. }, _) => pending_init += 1,
            (ContainerState::Terminated(t), _) => {
                if t.exit_code != 0 && !container_should_restart(c, policy, t.exit_code) {
                    failed_init_not_restartable += 1;
                }
            }
            (ContainerState::Waiting { .. }, ContainerState::Terminated(t)) => {
                if t.exit_code != 0 && !container_should_restart(c, policy, t.exit_code) {
                    failed_init_not_restartable += 1;
                }
            }
            _ => pending_init += 1,
        }
    }

    let (mut unknown, mut running, mut waiting) = (0, 0, 0);
    let (mut stopped, mut stopped_not_restartable, mut succeeded) = (0, 0, 0);

    for c in pod.spec.init_containers.iter().filter(|c| c.is_sidecar()) {
        let Some(st) = pod.init_container_status(&c.name) else {
            unknown += 1;
            continue;
        };
        match (&st.state, &st.last_state) {
            (ContainerState::Running { .. }, _) => {
                if st.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            }
            // Terminated sidecars do not count towards the phase.
            (ContainerState::Terminated(_), _) => {}
            (ContainerState::Waiting { .. }, ContainerState::Terminated(_)) => {}
            (ContainerState::Waiting { .. }, _) => {
                pending_sidecars += 1;
                waiting += 1;
            }
            (ContainerState::None, _) => {
                pending_sidecars += 1;
                unknown += 1;
            }
        }
    }

    for c in pod.spec.containers.iter() {
        let Some(st) = pod.container_status(&c.name) else {
            unknown += 1;
            continue;
        };
        match (&st.state, &st.last_state) {
            (ContainerState::Running { .. }, _) => running += 1,
            (ContainerState::Terminated(t), _)
            | (ContainerState::Waiting { .. }, ContainerState::Terminated(t)) => {
                stopped += 1;
                if !container_should_restart(c, policy, t.exit_code) {
                    stopped_not_restartable += 1;
                }
                // A crash-looping container's last exit says nothing about success.
                if st.state.terminated().is_some_and(|t| t.exit_code == 0) {
                    succeeded += 1;
                }
            }
            (ContainerState::Waiting { .. }, _) => waiting += 1,
            (ContainerState::None, _) => unknown += 1,
        }
    }

    if failed_init_not_restartable > 0 {
        return Phase::Failed;
    }
    if pending_init > 0 || (pending_sidecars > 0 && !pod_has_initialized) || waiting > 0 {
        return Phase::Pending;
    }
    if running > 0 && unknown == 0 {
        return Phase::Running;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
        }
        if stopped != stopped_not_restartable {
            return Phase::Running;
        }
        return if stopped == succeeded {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
    }
    Phase::Pending
}

/// The phase the API should show for `cur`, given the phase the API showed before (if
/// known). The kubelet never moves a terminal API phase back: once the API is terminal a
/// computed non-terminal phase is replaced by it; a pod that shows evidence of being
/// terminal keeps its observed terminal phase the same way.
pub fn expected_phase(prev_phase: Option<Phase>, cur: &PodView) -> Phase {
    if let Some(p) = prev_phase.filter(|p| p.is_terminal()) {
        return p;
    }
    let terminal = cur.terminal_evidence();
    let computed = get_phase(cur, terminal, cur.has_initialized());
    let observed = cur.phase();
    if !computed.is_terminal() && observed.is_terminal() && terminal {
        return observed;
    }
    // The API server sets deletionTimestamp; the kubelet only then starts terminating and
    // writes the terminal phase later. Until it does, the phase it wrote for the live pod
    // is still the expected one.
    if computed.is_terminal() && !observed.is_terminal() && !cur.status_terminal_evidence() {
        let live = get_phase(cur, false, cur.has_initialized());
        if live == observed {
            return live;
        }
    }
    computed
}
