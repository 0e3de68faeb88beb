//! The README's first command: `podwarden demo` runs the controller against the embedded
//! simulated cluster and passes only when every injection is found and no violation
//! appears that was not injected.

use std::process::Command;

use podwarden_sandbox::sim::VIOLATION_RULES;

#[test]
fn the_demo_finds_every_injection_and_no_false_violation() {
    let out = Command::new(env!("CARGO_BIN_EXE_podwarden"))
        .args(["demo", "--seed", "7"])
        .output()
        .expect("podwarden demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("PASS"), "{stdout}");
    assert!(!stdout.contains("VIOLATION NOT INJECTED"), "{stdout}");
    for rule in VIOLATION_RULES {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(rule))
            .unwrap_or_else(|| panic!("no scorecard row for {rule}:\n{stdout}"));
        let counts: Vec<u32> = row
            .split_whitespace()
            .skip(1)
            .take(2)
            .filter_map(|n| n.parse().ok())
            .collect();
        assert!(
            counts.len() == 2 && counts[0] >= 1 && counts[0] == counts[1],
            "{rule}: every injection found:\n{stdout}"
        );
    }
}

#[test]
fn seeded_random_scenarios_have_full_recall_and_no_false_violation() {
    let out = Command::new(env!("CARGO_BIN_EXE_podwarden"))
        .args(["demo", "--seed", "100", "--runs", "3"])
        .output()
        .expect("podwarden demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seeds = stdout.lines().filter(|l| l.starts_with("seed ")).count();
    assert_eq!(seeds, 3, "{stdout}");
    assert!(stdout.contains("3/3 scenarios passed"), "{stdout}");
    assert!(stdout.contains("violations not injected 0"), "{stdout}");
}

/// Manifests as an install would apply them: a ServiceAccount, a Deployment running
/// `podwarden run` as it, and a ClusterRole bound to it with `rules` (YAML).
fn manifests(rules: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: warden, namespace: ops}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: warden, namespace: ops}}
spec:
  selector: {{matchLabels: {{app: warden}}}}
  template:
    metadata: {{labels: {{app: warden}}}}
    spec:
      serviceAccountName: warden
      containers:
        - {{name: warden, image: "podwarden:test", args: [run, --event-qps=20]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: warden}}
rules:
{rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: warden}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: warden}}
subjects: [{{kind: ServiceAccount, name: warden, namespace: ops}}]
"#
    )
}

fn demo_installing(test: &str, text: &str) -> (bool, String) {
    let path =
        std::env::temp_dir().join(format!("podwarden-demo-{}-{test}.yaml", std::process::id()));
    std::fs::write(&path, text).expect("write manifests");
    let out = Command::new(env!("CARGO_BIN_EXE_podwarden"))
        .args(["demo", "--seed", "3", "--install"])
        .arg(&path)
        .output()
        .expect("podwarden demo runs");
    let _ = std::fs::remove_file(&path);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn installed_under_its_service_account_the_demo_passes_with_the_rights_it_needs_only() {
    // Everything the controller calls, in the role of the Deployment's ServiceAccount,
    // over HTTPS with a token from the TokenRequest API.
    let enough = r#"  - {apiGroups: [""], resources: [pods], verbs: [get, list, watch, create, patch]}
  - {apiGroups: [""], resources: [nodes], verbs: [get, list, watch]}
  - {apiGroups: [events.k8s.io], resources: [events], verbs: [create, get, list, patch]}
  - {apiGroups: [podwarden.dev], resources: [podlifecyclepolicies], verbs: [list, watch]}
  - {apiGroups: [podwarden.dev], resources: [podlifecyclepolicies/status], verbs: [patch]}"#;
    let (passed, out) = demo_installing("enough", &manifests(enough));
    assert!(passed, "{out}");
    assert!(
        out.contains("runs as ServiceAccount ops/warden over HTTPS"),
        "{out}"
    );
    assert!(out.contains("PASS"), "{out}");

    // Without the right to patch pods (the orphan guard), the API refuses it and the
    // demo says so.
    let (passed, out) = demo_installing(
        "no-patch",
        &manifests(&enough.replace("create, patch]", "create]")),
    );
    assert!(!passed, "{out}");
    assert!(
        out.contains("User \"system:serviceaccount:ops:warden\" cannot patch resource \"pods\""),
        "{out}"
    );
}

#[test]
fn an_install_file_that_runs_no_podwarden_is_refused_by_name() {
    let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: warden, namespace: ops}\n";
    let (passed, out) = demo_installing("no-workload", text);
    assert!(!passed);
    assert!(out.contains("no Deployment runs `podwarden run`"), "{out}");
}
