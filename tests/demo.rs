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
