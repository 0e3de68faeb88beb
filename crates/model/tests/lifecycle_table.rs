//! SEMANTICS.md A6, the restartPolicy example table: every row for each of Always,
//! OnFailure and Never, as sequences of pod snapshots. The legal sequence gives no
//! violation (nor warning); the illegal variant gives the named rule.

mod common;

use common::*;
use podwarden_model::{RuleId, Severity};

/// A pod with the given containers, scheduled at t0 and running from t2 (ready at t3).
fn started(policy: &str, names: &[&str]) -> Seq {
    let mut seq = Seq::new();
    let pod = Pod::new("web").policy(policy).containers(names);
    seq.push(pod.clone().kubelet_conditions(0));
    let mut running = seq.last().phase("Running");
    for n in names {
        running = running.run(n, 2, true);
    }
    seq.push(running.kubelet_conditions(3));
    seq
}

/// The phase the kubelet writes at t10 after `exited` happened, for the legal branch.
fn after_exit(seq: &mut Seq, change: impl Fn(Pod) -> Pod, phase: &str) {
    let next = change(seq.last()).phase(phase);
    seq.push(next.kubelet_conditions(10));
}

fn restart_at(seq: &mut Seq, name: &str, at: i64) {
    let next = seq
        .last()
        .restart(name, at)
        .phase("Running")
        .run(name, at, true);
    seq.push(next.kubelet_conditions(at + 1));
}

struct Row {
    situation: &'static str,
    policy: &'static str,
    legal: fn(&str) -> Seq,
    illegal: fn(&str) -> Seq,
    illegal_rule: RuleId,
}

// Row 1: one container, exits 0.
fn exit0_restarts(p: &str) -> Seq {
    let mut s = started(p, &["app"]);
    after_exit(&mut s, |pod| pod.exit("app", 0, 2, 10), "Running");
    restart_at(&mut s, "app", 10);
    s
}
fn exit0_succeeds(p: &str) -> Seq {
    let mut s = started(p, &["app"]);
    after_exit(&mut s, |pod| pod.exit("app", 0, 2, 10), "Succeeded");
    s
}
fn exit0_wrongly_succeeds(p: &str) -> Seq {
    exit0_succeeds(p)
}
fn exit0_wrongly_restarts(p: &str) -> Seq {
    exit0_restarts(p)
}

// Row 2: one container, exits non-zero.
fn exit1_restarts(p: &str) -> Seq {
    let mut s = started(p, &["app"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Running");
    restart_at(&mut s, "app", 10);
    s
}
fn exit1_fails(p: &str) -> Seq {
    let mut s = started(p, &["app"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Failed");
    s
}
fn exit1_wrongly_fails(p: &str) -> Seq {
    exit1_fails(p)
}
fn exit1_wrongly_restarts(p: &str) -> Seq {
    let mut s = exit1_fails(p);
    restart_at(&mut s, "app", 20);
    s
}

// Row 3: two containers, one exits non-zero.
fn one_of_two_restarts(p: &str) -> Seq {
    let mut s = started(p, &["app", "helper"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Running");
    restart_at(&mut s, "app", 10);
    s
}
fn one_of_two_stays_down(p: &str) -> Seq {
    let mut s = started(p, &["app", "helper"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Running");
    s
}
fn one_of_two_wrongly_fails_pod(p: &str) -> Seq {
    let mut s = started(p, &["app", "helper"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Failed");
    s
}
fn one_of_two_wrongly_restarts(p: &str) -> Seq {
    let mut s = one_of_two_stays_down(p);
    restart_at(&mut s, "app", 20);
    s
}

// Row 4: ... then the second also exits (none running).
fn both_exit_then_restart(p: &str) -> Seq {
    let mut s = started(p, &["app", "helper"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Running");
    after_exit(&mut s, |pod| pod.exit("helper", 1, 2, 10), "Running");
    restart_at(&mut s, "app", 10);
    restart_at(&mut s, "helper", 10);
    s
}
fn both_exit_pod_fails(p: &str) -> Seq {
    let mut s = started(p, &["app", "helper"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Running");
    after_exit(&mut s, |pod| pod.exit("helper", 1, 2, 10), "Failed");
    s
}
fn both_exit_wrongly_fail(p: &str) -> Seq {
    both_exit_pod_fails(p)
}
/// OnFailure: the helper finishes fine, the app failed; the pod is reported Succeeded.
fn both_exit_wrongly_succeed(p: &str) -> Seq {
    let mut s = started(p, &["app", "helper"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Running");
    after_exit(&mut s, |pod| pod.exit("helper", 0, 2, 10), "Succeeded");
    s
}
fn both_exit_wrongly_keep_running(p: &str) -> Seq {
    let mut s = started(p, &["app", "helper"]);
    after_exit(&mut s, |pod| pod.exit("app", 1, 2, 10), "Running");
    after_exit(&mut s, |pod| pod.exit("helper", 1, 2, 10), "Running");
    s
}

// Row 5: one container killed for exceeding its memory limit.
fn oom_restarts(p: &str) -> Seq {
    let mut s = started(p, &["app"]);
    after_exit(
        &mut s,
        |pod| pod.state("app", oom(2, 10)).ready("app", false),
        "Running",
    );
    restart_at(&mut s, "app", 10);
    s
}
fn oom_fails(p: &str) -> Seq {
    let mut s = started(p, &["app"]);
    after_exit(
        &mut s,
        |pod| pod.state("app", oom(2, 10)).ready("app", false),
        "Failed",
    );
    s
}
fn oom_wrongly_restarts(p: &str) -> Seq {
    let mut s = oom_fails(p);
    restart_at(&mut s, "app", 20);
    s
}

fn table() -> Vec<Row> {
    use RuleId::*;
    vec![
        Row {
            situation: "one container, exits 0: restart, phase stays Running",
            policy: "Always",
            legal: exit0_restarts,
            illegal: exit0_wrongly_succeeds,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "one container, exits 0: phase Succeeded",
            policy: "OnFailure",
            legal: exit0_succeeds,
            illegal: exit0_wrongly_restarts,
            illegal_rule: RestartAgainstPolicy,
        },
        Row {
            situation: "one container, exits 0: phase Succeeded",
            policy: "Never",
            legal: exit0_succeeds,
            illegal: exit0_wrongly_restarts,
            illegal_rule: RestartAgainstPolicy,
        },
        Row {
            situation: "one container, exits non-zero: restart, Running",
            policy: "Always",
            legal: exit1_restarts,
            illegal: exit1_wrongly_fails,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "one container, exits non-zero: restart, Running",
            policy: "OnFailure",
            legal: exit1_restarts,
            illegal: exit1_wrongly_fails,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "one container, exits non-zero: phase Failed",
            policy: "Never",
            legal: exit1_fails,
            illegal: exit1_wrongly_restarts,
            illegal_rule: RestartAgainstPolicy,
        },
        Row {
            situation: "two containers, one exits non-zero: restart it, Running",
            policy: "Always",
            legal: one_of_two_restarts,
            illegal: one_of_two_wrongly_fails_pod,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "two containers, one exits non-zero: restart it, Running",
            policy: "OnFailure",
            legal: one_of_two_restarts,
            illegal: one_of_two_wrongly_fails_pod,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "two containers, one exits non-zero: no restart, Running",
            policy: "Never",
            legal: one_of_two_stays_down,
            illegal: one_of_two_wrongly_restarts,
            illegal_rule: RestartAgainstPolicy,
        },
        Row {
            situation: "then the second also exits: restart, Running",
            policy: "Always",
            legal: both_exit_then_restart,
            illegal: both_exit_wrongly_fail,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "then the second also exits: restart, Running",
            policy: "OnFailure",
            legal: both_exit_then_restart,
            illegal: both_exit_wrongly_succeed,
            illegal_rule: SucceededWithFailedContainer,
        },
        Row {
            situation: "then the second also exits: phase Failed",
            policy: "Never",
            legal: both_exit_pod_fails,
            illegal: both_exit_wrongly_keep_running,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "one container OOMKilled: restart, Running",
            policy: "Always",
            legal: oom_restarts,
            illegal: oom_fails,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "one container OOMKilled: restart, Running",
            policy: "OnFailure",
            legal: oom_restarts,
            illegal: oom_fails,
            illegal_rule: PhaseMismatch,
        },
        Row {
            situation: "one container OOMKilled: phase Failed",
            policy: "Never",
            legal: oom_fails,
            illegal: oom_wrongly_restarts,
            illegal_rule: RestartAgainstPolicy,
        },
    ]
}

#[test]
fn legal_sequences_give_no_violation_or_warning() {
    for row in table() {
        let findings = (row.legal)(row.policy).audit();
        assert!(
            serious(&findings).is_empty(),
            "{} [{}]: {:#?}",
            row.situation,
            row.policy,
            serious(&findings)
        );
    }
}

#[test]
fn illegal_variants_give_the_named_rule() {
    for row in table() {
        let findings = (row.illegal)(row.policy).audit();
        assert!(
            rules_of(&findings).contains(&row.illegal_rule),
            "{} [{}]: want {}, got {:#?}",
            row.situation,
            row.policy,
            row.illegal_rule,
            findings
        );
    }
}

#[test]
fn every_policy_appears_for_every_row() {
    let rows = table();
    for situation in [
        "exits 0",
        "exits non-zero",
        "one exits non-zero",
        "second also exits",
        "OOMKilled",
    ] {
        for policy in ["Always", "OnFailure", "Never"] {
            assert!(
                rows.iter()
                    .any(|r| r.situation.contains(situation) && r.policy == policy),
                "{situation} / {policy} missing"
            );
        }
    }
}

#[test]
fn oom_kill_is_reported_once_as_info_for_each_policy() {
    for (policy, seq) in [
        ("Always", oom_restarts as fn(&str) -> Seq),
        ("OnFailure", oom_restarts),
        ("Never", oom_fails),
    ] {
        let findings = seq(policy).audit();
        let ooms: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == RuleId::OomKilled)
            .collect();
        assert_eq!(ooms.len(), 1, "{policy}: {findings:#?}");
        assert_eq!(ooms[0].severity, Severity::Info);
        assert_eq!(ooms[0].container.as_deref(), Some("app"));
    }
}

/// A6, further cases: disk failure while running kills every container and fails the pod
/// (the kubelet records why); a partitioned node's pods get Ready False, then are deleted
/// by the taint manager and stay Running/Terminating while the node is unreachable.
#[test]
fn node_faults_in_the_table_are_legal() {
    for policy in ["Always", "OnFailure", "Never"] {
        let mut disk = started(policy, &["app", "helper"]);
        let killed = disk
            .last()
            .exit("app", 137, 2, 20)
            .exit("helper", 137, 2, 20)
            .phase("Failed")
            .reason("Evicted")
            .cond("DisruptionTarget", "True", 20)
            .cond_reason("DisruptionTarget", "TerminationByKubelet");
        disk.push(killed.kubelet_conditions(20));
        let findings = disk.audit();
        assert!(
            serious(&findings).is_empty(),
            "disk failure [{policy}]: {findings:#?}"
        );

        let mut partition = started(policy, &["app"]);
        let not_ready = partition.last().cond("Ready", "False", 50);
        partition.push(not_ready.clone());
        let deleted = not_ready
            .deleting(350)
            .cond("DisruptionTarget", "True", 350)
            .cond_reason("DisruptionTarget", "DeletionByTaintManager");
        partition.push(deleted);
        let findings = partition.audit();
        assert!(
            serious(&findings).is_empty(),
            "partition [{policy}]: {findings:#?}"
        );
    }
}
