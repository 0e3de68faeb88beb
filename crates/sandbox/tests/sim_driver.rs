//! The simulation's driver and admin endpoints: stepped time, errors that name what
//! was wrong, the ground-truth log.

mod sim_common;

use serde_json::{Value, json};
use sim_common::*;

async fn post(sim: &podwarden_sandbox::sim::SimHandle, path: &str, body: &str) -> (u16, Value) {
    let url = format!("{}{path}", sim.sandbox().url());
    request("POST", &url, Some(body)).await
}

async fn get_json(sim: &podwarden_sandbox::sim::SimHandle, path: &str) -> (u16, String) {
    let url = format!("{}{path}", sim.sandbox().url());
    let (code, body) = raw("GET", &url, None).await;
    (code, body)
}

/// A tiny HTTP/1.1 client over a TCP stream (the admin endpoints are plain JSON).
async fn raw(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

async fn request(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let (code, body) = raw(method, url, body).await;
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn stepped_clock_moves_only_when_advanced_and_stamps_objects() {
    let sim = cluster(1).await;
    let t0 = sim.now();
    assert_eq!(t0.as_second(), START);
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert_eq!(
        sim.now(),
        t0,
        "a stepped clock does not follow the wall clock"
    );
    advance(&sim, 90);
    assert_eq!(sim.now().as_second(), START + 90);
    let created = create(
        &sim,
        pod("stamped", "Always", &[], &[c("app", "run=1s forever")]),
    )
    .await;
    let stamp = created
        .metadata
        .creation_timestamp
        .expect("creationTimestamp")
        .0;
    assert_eq!(
        stamp.as_second(),
        START + 90,
        "the API server uses the simulated clock"
    );

    let (code, body) = post(&sim, "/sandbox/v1/clock/advance", r#"{"seconds": 30}"#).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["stepped"], json!(true));
    assert_eq!(sim.now().as_second(), START + 120);
}

#[tokio::test]
async fn admin_errors_name_what_was_wrong() {
    let sim = cluster(1).await;
    let cases: [(&str, &str, u16, &str); 7] = [
        (
            "/sandbox/v1/nodes/nope/faults",
            r#"{"fault": "partition"}"#,
            404,
            "nope",
        ),
        (
            "/sandbox/v1/nodes/node-0/faults",
            r#"{"fault": "melt"}"#,
            400,
            "melt",
        ),
        (
            "/sandbox/v1/nodes/node-0/faults",
            r#"{"faults": "partition"}"#,
            400,
            "\"fault\"",
        ),
        ("/sandbox/v1/nodes/node-0/faults", "not json", 400, "JSON"),
        (
            "/sandbox/v1/pods/default/ghost/inject",
            r#"{"rule": "terminal-phase-ready"}"#,
            404,
            "default/ghost",
        ),
        (
            "/sandbox/v1/pods/default/ghost/inject",
            r#"{"rule": "no-such-rule"}"#,
            400,
            "no-such-rule",
        ),
        (
            "/sandbox/v1/clock/advance",
            r#"{"seconds": -4}"#,
            400,
            "seconds",
        ),
    ];
    for (path, body, code, needle) in cases {
        let (got, status) = post(&sim, path, body).await;
        assert_eq!(got, code, "{path} {body}: {status}");
        assert_eq!(status["kind"], json!("Status"), "{status}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{path} {body}: {message:?} should name {needle:?}"
        );
    }
    let (code, text) = get_json(&sim, "/sandbox/v1/ground-truth").await;
    assert_eq!((code, text.as_str()), (200, ""), "nothing injected yet");
}

#[tokio::test]
async fn real_time_clock_cannot_be_advanced_by_hand() {
    let sim = cluster_with(podwarden_sandbox::sim::SimConfig {
        nodes: 1,
        speed: Some(10.0),
        ..stepped()
    })
    .await;
    assert!(matches!(
        sim.advance(std::time::Duration::from_secs(1)),
        Err(podwarden_sandbox::sim::SimError::NotStepped)
    ));
    let (code, body) = post(&sim, "/sandbox/v1/clock/advance", r#"{"seconds": 1}"#).await;
    assert_eq!(code, 409, "{body}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_scenario_plays_its_steps_at_their_times_and_logs_failures() {
    let sim = cluster(2).await;
    let text = r#"
steps:
  - at: 10s
    create:
      - apiVersion: v1
        kind: Pod
        metadata: {name: web}
        spec: {containers: [{name: app, image: nginx}]}
    count: 3
  - at: 20s
    delete: {name: web-1}
  - at: 30s
    fault: {node: node-1, fault: partition}
  - at: 40s
    fault: {node: node-9, fault: partition}
"#;
    let steps = podwarden_sandbox::sim::scenario::Scenario::parse(text, "test.yaml")
        .expect("valid scenario");
    sim.play(steps);
    advance(&sim, 9);
    assert!(try_get(&sim, "web-0").await.is_none(), "nothing before 10s");
    advance(&sim, 1);
    for name in ["web-0", "web-1", "web-2"] {
        let pod = get(&sim, name).await;
        let created = pod.metadata.creation_timestamp.expect("stamped").0;
        assert_eq!(created.as_second(), START + 10, "{name}");
    }
    advance(&sim, 10);
    let web1 = try_get(&sim, "web-1").await;
    assert!(
        web1.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "web-1 deleted at 20s"
    );
    advance(&sim, 20);
    let (code, nodes) = get_json(&sim, "/sandbox/v1/nodes").await;
    assert_eq!(code, 200);
    let nodes: Value = serde_json::from_str(&nodes).expect("JSON");
    assert_eq!(
        nodes["nodes"]["node-1"]["partitioned"],
        json!(true),
        "{nodes}"
    );
    assert_eq!(
        nodes["nodes"]["node-0"]["partitioned"],
        json!(false),
        "{nodes}"
    );
    let (_, log) = get_json(&sim, "/sandbox/v1/scenario").await;
    let log: Value = serde_json::from_str(&log).expect("JSON");
    let lines: Vec<&str> = log["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].contains("created 3 objects"), "{lines:?}");
    assert!(
        lines[3].contains("failed") && lines[3].contains("node-9"),
        "{lines:?}"
    );
}

#[test]
fn every_example_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/scenarios") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let steps = podwarden_sandbox::sim::scenario::Scenario::load(&path)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!steps.is_empty(), "{} has no steps", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 3, "example scenarios found: {seen}");
}
