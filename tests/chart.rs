//! What users read against what runs: the Helm chart installs the generated CRDs and
//! passes only flags `podwarden run` takes, and the README mentions every flag of every
//! subcommand's `--help`. (Helm's own lint and render, the upstream schemas and checkov
//! run in `.ci/chart.py`.)

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_chart_installs_the_generated_crds() {
    assert_eq!(
        read("charts/podwarden/crds/podlifecyclepolicies.yaml"),
        read("crds/podlifecyclepolicies.yaml"),
        "copy crds/podlifecyclepolicies.yaml into charts/podwarden/crds/"
    );
}

#[test]
fn every_flag_the_deployment_passes_is_one_podwarden_run_takes() {
    let template = read("charts/podwarden/templates/deployment.yaml");
    let flags: Vec<&str> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|f| f.split(['=', ' ']).next().unwrap_or(f))
        .collect();
    assert!(flags.len() >= 6, "flags found: {flags:?}");
    let help = Command::new(env!("CARGO_BIN_EXE_podwarden"))
        .args(["run", "--help"])
        .output()
        .expect("podwarden runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in flags {
        assert!(
            help.contains(&format!("--{flag}")),
            "the chart passes --{flag}, which `podwarden run` does not take:\n{help}"
        );
    }
}

#[test]
fn every_flag_of_every_subcommand_is_in_the_readme() {
    let readme = read("README.md");
    let mut missing = Vec::new();
    for command in ["run", "audit", "demo", "release-guards", "crd", "sandbox"] {
        let help = Command::new(env!("CARGO_BIN_EXE_podwarden"))
            .args([command, "--help"])
            .output()
            .expect("podwarden runs");
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        let flags = help
            .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
            .filter(|w| w.starts_with("--") && w.len() > 2 && *w != "--help")
            .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()));
        for flag in flags {
            if !readme.contains(flag) {
                missing.push(format!("podwarden {command} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the README does not mention {missing:?}"
    );
}
