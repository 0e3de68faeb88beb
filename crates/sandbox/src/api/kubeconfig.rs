//! A kubeconfig pointing at the sandbox, for kubectl and for `kube::Client`.

use std::path::Path;

/// Name of the cluster, user and context in the written kubeconfig.
pub const CONTEXT: &str = "podwarden-sandbox";

/// The kubeconfig YAML for a server at `url` (plain HTTP on loopback, no credentials).
pub fn render(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {url}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
users:
- name: {CONTEXT}
  user: {{}}
preferences: {{}}
"
    )
}

/// Writes the kubeconfig to `path` (replacing it), creating no directories.
pub fn write(path: &Path, url: &str) -> std::io::Result<()> {
    std::fs::write(path, render(url))
}
