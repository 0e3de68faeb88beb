//! `podwarden audit` end to end: every input format kubectl prints, output formats, exit
//! status, and broken input (exit 2, the document named, the rest still audited).

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pod-events.jsonl");

fn podwarden(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podwarden"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podwarden runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("podwarden finishes")
}

fn events() -> Vec<Value> {
    std::fs::read_to_string(EXAMPLE)
        .expect("example stream")
        .lines()
        .map(|l| serde_json::from_str(l).expect("example line"))
        .collect()
}

/// The pod objects of the example stream, without deletions.
fn objects() -> Vec<Value> {
    events()
        .into_iter()
        .filter(|e| e["type"] != "DELETED")
        .map(|e| e["object"].clone())
        .collect()
}

/// (rule, pod, resourceVersion) of each finding printed with `-o json`.
fn findings(out: &Output) -> BTreeSet<(String, String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("{\"summary\""))
        .map(|l| {
            let f: Value = serde_json::from_str(l).expect("one JSON finding per line");
            let s = |k: &str| f[k].as_str().expect(k).to_string();
            (s("rule"), s("pod"), s("resourceVersion"))
        })
        .collect()
}

/// The `{"summary": ...}` line `-o json` ends with.
fn json_summary(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().expect("a summary line");
    let v: Value = serde_json::from_str(last).expect("summary JSON");
    v["summary"].clone()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).expect("YAML")
}

fn reference() -> BTreeSet<(String, String, String)> {
    let out = podwarden(&["audit", "-o", "json", EXAMPLE], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let f = findings(&out);
    assert!(
        f.iter()
            .any(|(r, p, _)| r == "restart-against-policy" && p == "db-migrate"),
        "{f:?}"
    );
    f
}

#[test]
fn every_kubectl_format_gives_the_same_findings() {
    let want = reference();
    let objs = objects();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": objs});
    let pretty_stream: String = objs
        .iter()
        .map(|o| serde_json::to_string_pretty(o).expect("json") + "\n")
        .collect();
    let one_per_line: String = objs.iter().map(|o| o.to_string() + "\n").collect();
    let yaml_list = yaml(&list);
    let yaml_stream: String = objs.iter().map(|o| format!("---\n{}", yaml(o))).collect();
    let watch_events = std::fs::read(EXAMPLE).expect("example");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "kubectl get pods -o json (List)",
            serde_json::to_vec_pretty(&list).expect("json"),
        ),
        (
            "kubectl get pods -w -o json (concatenated)",
            pretty_stream.into_bytes(),
        ),
        (
            "kubectl get pods -w -o json --output-watch-events",
            watch_events,
        ),
        ("one JSON document per line", one_per_line.into_bytes()),
        ("kubectl get pods -o yaml (List)", yaml_list.into_bytes()),
        (
            "kubectl get pods -w -o yaml (multi-document)",
            yaml_stream.into_bytes(),
        ),
    ];
    for (name, input) in cases {
        let out = podwarden(&["audit", "-o", "json", "-"], &input);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert_eq!(findings(&out), want, "{name}");
        assert!(stderr(&out).is_empty(), "{name}: {}", stderr(&out));
    }
}

#[test]
fn table_output_has_a_header_rows_and_a_summary() {
    let out = podwarden(&["audit", EXAMPLE], b"");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    for col in ["SEVERITY", "RULE", "POD", "RV", "MESSAGE"] {
        assert!(header.contains(col), "{header}");
    }
    // Columns are aligned: MESSAGE starts at the same offset on every row.
    let at = header.find("MESSAGE").expect("MESSAGE column");
    let rows: Vec<&str> = lines.clone().take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), reference().len());
    for row in &rows {
        assert!(row.len() > at && row.as_bytes()[at - 1] == b' ', "{row}");
    }
    assert!(text.contains("pods: 6, snapshots: 27"), "{text}");
    assert!(text.contains("restart-against-policy"), "{text}");
}

#[test]
fn json_findings_carry_every_field() {
    let out = podwarden(&["audit", "-o", "json", EXAMPLE], b"");
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("restart-against-policy"))
        .expect("restart-against-policy finding")
        .to_string();
    let f: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(f["severity"], "violation");
    assert_eq!(f["namespace"], "shop");
    assert_eq!(f["pod"], "db-migrate");
    assert_eq!(f["uid"], "c1d2e3f4-a5b6-4c7d-8e9f-a0b1c2d3e4f5");
    assert_eq!(f["container"], "migrate");
    assert_eq!(f["expected"], "terminated");
    assert_eq!(f["observed"], "running");
    assert_eq!(
        f["message"],
        "container migrate was restarted although restartPolicy is Never: terminated (exit 1) -> running"
    );
}

#[test]
fn clean_input_exits_zero() {
    let clean: Vec<u8> = events()
        .into_iter()
        .filter(|e| e["object"]["metadata"]["name"] == "report-nightly-29140-7wq5d")
        .map(|e| e.to_string() + "\n")
        .collect::<String>()
        .into_bytes();
    let out = podwarden(&["audit", "-"], &clean);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pods: 1, snapshots: 5, findings: 0"));
}

#[test]
fn broken_documents_are_named_and_the_rest_is_audited() {
    let mut input = String::new();
    let lines: Vec<String> = std::fs::read_to_string(EXAMPLE)
        .expect("example")
        .lines()
        .map(String::from)
        .collect();
    // document 3 is not JSON, document 5 has a bad phase, document 8 is truncated JSON in
    // the middle of the stream, and the last one ends the input mid-document.
    for (i, l) in lines.iter().enumerate() {
        match i {
            2 => input.push_str("{this is not json\n"),
            4 => input.push_str(&l.replace("\"phase\":\"Running\"", "\"phase\":\"Exploded\"")),
            7 => input.push_str(&l[..l.len() / 2]),
            _ => input.push_str(l),
        }
        input.push('\n');
    }
    input.push_str("{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\"");
    let out = podwarden(&["audit", "-o", "json", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("document 3:"), "{err}");
    assert!(
        err.contains("document 5: object.status.phase: unknown variant `Exploded`"),
        "{err}"
    );
    assert!(err.contains("document 8:"), "{err}");
    assert!(
        err.contains(&format!("document {}:", lines.len() + 1)),
        "{err}"
    );
    assert_eq!(err.lines().count(), 4, "{err}");
    // The violations later in the stream are still found.
    let f = findings(&out);
    assert!(
        f.iter()
            .any(|(r, p, _)| r == "restart-against-policy" && p == "db-migrate"),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|(r, _, _)| r == "ready-without-containers-ready"),
        "{f:?}"
    );
}

#[test]
fn broken_list_items_and_yaml_documents_are_named() {
    let mut objs = objects();
    objs[1]["status"]["containerStatuses"] = serde_json::json!("nope");
    let list = serde_json::json!({"kind": "List", "items": objs});
    let out = podwarden(&["audit", "-o", "json", "-"], list.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("document 1, item 2: status.containerStatuses"),
        "{}",
        stderr(&out)
    );
    assert!(!findings(&out).is_empty());

    let good = yaml(&objects()[0]);
    let input = format!("---\n{good}---\nmetadata: [unclosed\n---\n{good}");
    let out = podwarden(&["audit", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("document 2:"), "{}", stderr(&out));
    // Both good documents are read; the second is the same state again (same uid and
    // resourceVersion), counted as a duplicate rather than audited twice.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pods: 1, snapshots: 1,"), "{text}");
    assert!(text.contains("1 duplicate"), "{text}");
}

#[test]
fn watch_error_events_and_other_kinds_are_reported() {
    let input = concat!(
        r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (41000)","reason":"Expired","code":410}}"#,
        "\n",
        r#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"41000"}}}"#,
        "\n",
        r#"{"kind":"Service","metadata":{"name":"web","uid":"s1"}}"#,
        "\n",
        r#"{"type":"RESYNC","object":{}}"#,
        "\n"
    );
    let out = podwarden(&["audit", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("document 1: watch ERROR event: too old resource version"),
        "{err}"
    );
    assert!(err.contains("(reason Expired, code 410)"), "{err}");
    assert!(
        err.contains("document 3: kind \"Service\" is not a Pod"),
        "{err}"
    );
    assert!(
        err.contains("document 4: unknown watch event type \"RESYNC\""),
        "{err}"
    );
    assert!(
        !err.contains("document 2"),
        "bookmarks are not errors: {err}"
    );
}

#[test]
fn missing_file_and_bad_flags_are_clear_errors() {
    let out = podwarden(&["audit", "/nonexistent/pods.json"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read /nonexistent/pods.json"),
        "{}",
        stderr(&out)
    );

    let out = podwarden(&["audit", "-o", "xml", EXAMPLE], b"");
    assert_eq!(out.status.code(), Some(2), "clap's usage error status");
    assert!(
        stderr(&out).contains("invalid value 'xml'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn empty_input_is_a_clean_audit() {
    let out = podwarden(&["audit", "-"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pods: 0, snapshots: 0"));
}

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy.yaml");

#[test]
fn a_policy_applies_its_namespace_selector_and_rules() {
    let out = podwarden(&["audit", "--policy", POLICY, EXAMPLE], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // The thumbnailer pod is not part of the shop: its 4 snapshots are out of scope.
    assert!(text.contains("pods: 5, snapshots: 23"), "{text}");
    assert!(
        text.contains("snapshots outside the policy's scope: 4"),
        "{text}"
    );

    // A policy that disables a rule and sits in another namespace.
    let dir = std::env::temp_dir().join(format!("podwarden-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let quiet = dir.join("quiet.yaml");
    std::fs::write(
        &quiet,
        "apiVersion: podwarden.dev/v1alpha1\nkind: PodLifecyclePolicy\nmetadata: {name: q, namespace: shop}\n\
         spec:\n  rules:\n    disabled: [restart-against-policy, terminal-phase-regression]\n",
    )
    .expect("write policy");
    let out = podwarden(
        &[
            "audit",
            "-o",
            "json",
            "--policy",
            quiet.to_str().expect("utf-8"),
            EXAMPLE,
        ],
        b"",
    );
    let f = findings(&out);
    assert!(
        !f.iter().any(|(r, _, _)| r == "restart-against-policy"),
        "{f:?}"
    );
    assert!(
        f.iter().any(|(r, _, _)| r == "restart-count-decreased"),
        "{f:?}"
    );

    let elsewhere = dir.join("elsewhere.yaml");
    std::fs::write(
        &elsewhere,
        "apiVersion: podwarden.dev/v1alpha1\nkind: PodLifecyclePolicy\nmetadata: {name: e, namespace: payments}\nspec: {}\n",
    )
    .expect("write policy");
    let out = podwarden(
        &[
            "audit",
            "--policy",
            elsewhere.to_str().expect("utf-8"),
            EXAMPLE,
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pods: 0, snapshots: 0"));
}

#[test]
fn a_broken_policy_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("podwarden-badpolicy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: podwarden.dev/v1alpha1\nkind: PodLifecyclePolicy\nmetadata: {name: b}\nspec:\n  rules:\n    stuckPendingAfter: 5x\n",
    )
    .expect("write policy");
    let out = podwarden(
        &["audit", "--policy", bad.to_str().expect("utf-8"), EXAMPLE],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("spec.rules.stuckPendingAfter"), "{err}");
    assert!(err.contains("5x"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing is audited under a broken policy"
    );

    let out = podwarden(
        &["audit", "--policy", "/nonexistent/policy.yaml", EXAMPLE],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/policy.yaml"),
        "{}",
        stderr(&out)
    );
}

/// A bare pod as `kubectl get -o json` prints it, one line.
fn pod_line(name: &str, rv: &str, created: &str, status: Value, extra_meta: Value) -> String {
    let mut metadata = serde_json::json!({
        "name": name, "namespace": "shop", "uid": format!("uid-{name}"),
        "resourceVersion": rv, "creationTimestamp": created,
    });
    if let (Some(m), Some(extra)) = (metadata.as_object_mut(), extra_meta.as_object()) {
        m.extend(extra.clone());
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"nodeName": "worker-2", "restartPolicy": "Always",
                 "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        "status": status,
    })
    .to_string()
        + "\n"
}

fn pending_status() -> Value {
    serde_json::json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient memory.",
         "lastTransitionTime": "2026-11-02T09:00:00Z", "lastProbeTime": null}]})
}

fn running_status(started: &str) -> Value {
    serde_json::json!({"phase": "Running", "startTime": started, "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": started}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": started}}}]})
}

fn rules_in(out: &Output) -> Vec<String> {
    findings(out).into_iter().map(|(r, _, _)| r).collect()
}

/// The audit clock counts what already happened, not deletionTimestamp (a deadline in
/// the future while a pod terminates); `--now` moves the end of the input.
#[test]
fn deletion_deadlines_do_not_move_the_clock_and_now_ends_the_input() {
    // A pod Pending since 09:00 (unschedulable); another deleted at 09:09 with a one-hour
    // grace period: its deletionTimestamp is 10:09.
    let input = pod_line(
        "queued",
        "100",
        "2026-11-02T09:00:00Z",
        pending_status(),
        Value::Null,
    ) + &pod_line(
        "draining",
        "101",
        "2026-11-02T09:00:00Z",
        running_status("2026-11-02T09:09:00Z"),
        serde_json::json!({"deletionTimestamp": "2026-11-02T10:09:00Z",
                               "deletionGracePeriodSeconds": 3600}),
    );
    let out = podwarden(&["audit", "-o", "json", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        findings(&out).is_empty(),
        "clock stayed at 09:09: {:?}",
        findings(&out)
    );

    // Ending the input at 10:15: queued has been Pending 75 minutes, draining is 6
    // minutes past its deletion deadline.
    let out = podwarden(
        &["audit", "-o", "json", "--now", "2026-11-02T10:15:00Z", "-"],
        input.as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings only: {}",
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        rules_in(&out),
        ["stuck-pending", "stuck-terminating"],
        "{text}"
    );
    assert!(
        text.contains(
            "PodScheduled Unschedulable: 0/3 nodes are available: 3 Insufficient memory."
        ),
        "the scheduler's message: {text}"
    );
    assert!(text.contains("node.kubernetes.io/out-of-service"), "{text}");
    assert!(text.contains("node worker-2 returns"), "{text}");

    // 10:13 is only 4 minutes past the deadline.
    let out = podwarden(
        &[
            "audit",
            "-o",
            "json",
            "--now",
            "2026-11-02T10:13:00+00:00",
            "-",
        ],
        input.as_bytes(),
    );
    assert_eq!(rules_in(&out), ["stuck-pending"]);

    // The machine's clock is years after 2026-11-02 ... or the test machine is wrong.
    let old = input.replace("2026-11-02", "2001-03-04");
    let out = podwarden(&["audit", "--now", "wall", "-"], old.as_bytes());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("stuck-pending") && text.contains("stuck-terminating"),
        "{text}"
    );
}

#[test]
fn a_bad_now_names_the_flag_and_the_value() {
    let out = podwarden(&["audit", "--now", "tomorrow-ish", EXAMPLE], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--now") && err.contains("tomorrow-ish"),
        "{err}"
    );
    assert!(err.contains("RFC 3339") && err.contains("wall"), "{err}");
    assert!(out.stdout.is_empty());
}

/// Deadlines are evaluated as the input's clock passes them, not only at the end: a
/// later snapshot of another pod moves the clock.
#[test]
fn deadlines_fire_as_the_clock_advances() {
    let input = pod_line(
        "queued",
        "100",
        "2026-11-02T09:00:00Z",
        pending_status(),
        Value::Null,
    ) + &pod_line(
        "other",
        "101",
        "2026-11-02T09:00:00Z",
        running_status("2026-11-02T09:11:00Z"),
        Value::Null,
    );
    let out = podwarden(&["audit", "-o", "json", "-"], input.as_bytes());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0]["rule"], "stuck-pending", "{lines:?}");
    assert_eq!(lines[0]["pod"], "queued");
    assert_eq!(lines[0]["resourceVersion"], "100");
    assert!(
        lines[0]["message"].as_str().is_some_and(|m| m
            .starts_with("pod has been Pending for 11m since 2026-11-02T09:00:00Z (limit 10m)")),
        "{lines:?}"
    );
}

/// A recorder that relists sends states again and older ones: neither is a transition,
/// both are counted in the summary, in text and in JSON.
#[test]
fn stale_and_duplicate_snapshots_are_counted_not_audited() {
    let crashed = serde_json::json!({"phase": "Running", "startTime": "2026-11-02T09:00:01Z",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-02T09:03:00Z"}],
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 1,
            "state": {"running": {"startedAt": "2026-11-02T09:03:00Z"}},
            "lastState": {"terminated": {"exitCode": 1, "startedAt": "2026-11-02T09:00:02Z", "finishedAt": "2026-11-02T09:03:00Z"}}}]});
    let first = pod_line(
        "web",
        "99",
        "2026-11-02T09:00:00Z",
        running_status("2026-11-02T09:00:01Z"),
        Value::Null,
    );
    let second = pod_line("web", "100", "2026-11-02T09:00:00Z", crashed, Value::Null);
    // 99 after 100: older as an etcd revision, though "99" > "100" as text.
    let input = first.clone() + &second + &first + &second;
    let out = podwarden(&["audit", "-o", "json", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{:?}", findings(&out));
    let summary = json_summary(&out);
    assert_eq!(summary["snapshots"], 2, "{summary}");
    assert_eq!(summary["stale"], 1, "{summary}");
    assert_eq!(summary["duplicates"], 1, "{summary}");
    assert_eq!(summary["pods"], 1, "{summary}");

    let out = podwarden(&["audit", "-"], input.as_bytes());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pods: 1, snapshots: 2,"), "{text}");
    assert!(
        text.contains("snapshots not audited: 1 duplicate (resourceVersion seen before), 1 stale (older resourceVersion)"),
        "{text}"
    );
}
