//! Shared set-up of the tests that drive the real kubectl against the sandbox: a
//! sandbox with its own kubeconfig and cache directory, kubectl runs that fail the
//! test with kubectl's output, and readers of kubectl's tables.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use podwarden_sandbox::api::{Sandbox, SandboxConfig, SandboxHandle};
use tokio::process::Command;

pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn kubectl_available() -> bool {
    let ok = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: kubectl is not installed");
    }
    ok
}

/// A path inside the sandbox crate.
pub fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A sandbox with its own kubeconfig and kubectl cache directory.
pub struct Cluster {
    pub handle: SandboxHandle,
    pub dir: PathBuf,
}

impl Cluster {
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, SandboxConfig::default()).await
    }

    pub async fn start_with(test: &str, config: SandboxConfig) -> Self {
        let handle = Sandbox::start(config).await.expect("sandbox starts");
        let dir = std::env::temp_dir().join(format!(
            "podwarden-sandbox-kubectl-{}-{test}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        handle.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
        Cluster { handle, dir }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(self.dir.join("kubeconfig"));
        c.arg("--cache-dir").arg(self.dir.join("cache"));
        c.args(args);
        c.env_remove("KUBECONFIG");
        c.kill_on_drop(true);
        c
    }

    /// Runs kubectl; returns stdout, failing the test (with stderr) on a non-zero exit.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(DEADLINE, self.command(args).output())
            .await
            .expect("kubectl finished")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(DEADLINE, self.command(args).output())
            .await
            .expect("kubectl finished")
            .unwrap();
        assert!(!out.status.success(), "kubectl {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes `yaml` to a file of the test's directory and returns its path.
    pub fn file(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The column names of a kubectl table (multi-word names split into words).
pub fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The cells of the row whose first (or, with a namespace column, second) cell is
/// `name`.
pub fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| {
            l.split_whitespace().next() == Some(name) || l.split_whitespace().nth(1) == Some(name)
        })
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .split_whitespace()
        .collect()
}
