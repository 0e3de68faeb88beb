//! The Helm chart against the code it installs: its CRDs are the generated ones, and
//! every flag its Deployment passes is one `podwarden run` takes. (Helm's own lint and
//! render, the upstream schemas and checkov run in `.ci/chart.py`.)

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
