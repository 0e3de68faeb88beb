//! `podwarden sandbox`: serves, writes a kubeconfig, says how to use it, stops on
//! Ctrl-C; bad flags, a taken port and an unwritable kubeconfig path are clear errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn podwarden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_podwarden"))
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "podwarden-sandbox-cli-{}-{name}",
        std::process::id()
    ))
}

#[test]
fn bad_flags_are_rejected() {
    let out = podwarden()
        .args(["sandbox", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'not-an-address' for '--listen"),
        "{err}"
    );
    let out = podwarden()
        .args(["sandbox", "--history-window", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let kubeconfig = temp("taken");
    let out = podwarden()
        .args([
            "sandbox",
            "--listen",
            &addr,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(!kubeconfig.exists());
}

#[test]
fn an_unwritable_kubeconfig_path_is_a_clear_error() {
    let out = podwarden()
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
            "/nonexistent-dir/kubeconfig",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write the kubeconfig to /nonexistent-dir/kubeconfig"),
        "{err}"
    );
}

#[test]
fn serves_writes_a_kubeconfig_and_stops_on_interrupt() {
    let kubeconfig = temp("serve");
    let mut child = podwarden()
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let mut rest = String::new();
    for _ in 0..4 {
        rest.push_str(&lines.next().unwrap().unwrap());
        rest.push('\n');
    }
    assert!(
        rest.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{rest}"
    );
    let written = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(written.contains(&format!("server: {url}")), "{written}");
    let mut stream = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("ok"),
        "{response}"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let _ = std::fs::remove_file(&kubeconfig);
}

#[test]
fn bad_simulation_flags_and_scenarios_are_clear_errors() {
    for (speed, needle) in [("0", "\"0\" is not a speed factor"), ("fast", "\"fast\"")] {
        let out = podwarden()
            .args(["sandbox", "--speed", speed])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
    }
    let missing = temp("no-such-scenario.yaml");
    let bad = temp("bad-scenario.yaml");
    std::fs::write(&bad, "steps:\n  - at: later\n    delete: {name: web}\n").unwrap();
    for (path, needle) in [
        (&missing, "cannot read scenario".to_string()),
        (
            &bad,
            format!("scenario {} is not valid: steps[0].at", bad.display()),
        ),
    ] {
        let out = podwarden()
            .args(["sandbox", "--listen", "127.0.0.1:0", "--scenario"])
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&needle), "{err}");
    }
    let _ = std::fs::remove_file(bad);
}
