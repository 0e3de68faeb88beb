//! A kubeconfig pointing at the sandbox, for kubectl and for `kube::Client`.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Name of the cluster, user and context in the written kubeconfig.
pub const CONTEXT: &str = "podwarden-sandbox";

/// What a kubeconfig of a sandbox with auth on carries besides the server's URL.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The CA certificate, PEM.
    pub ca_pem: &'a str,
    /// The bearer token of the user.
    pub token: &'a str,
}

/// The kubeconfig YAML for a server at `url`: no credentials (plain HTTP on
/// loopback), or the CA and a bearer token (HTTPS with auth on).
pub fn render(url: &str, credentials: Option<Credentials<'_>>) -> String {
    let (ca, user) = match credentials {
        Some(c) => (
            format!(
                "\n    certificate-authority-data: {}",
                STANDARD.encode(c.ca_pem)
            ),
            // Tokens are base64url or JWTs: no character YAML would read otherwise.
            format!("\n    token: {}", c.token),
        ),
        None => (String::new(), " {}".to_string()),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {url}{ca}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
users:
- name: {CONTEXT}
  user:{user}
preferences: {{}}
"
    )
}

/// Writes the kubeconfig to `path` (replacing it), creating no directories. One with
/// a token is readable by its owner only.
pub fn write(path: &Path, url: &str, credentials: Option<Credentials<'_>>) -> std::io::Result<()> {
    let text = render(url, credentials);
    if credentials.is_none() {
        return std::fs::write(path, text);
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // An existing file keeps its mode on open: narrow it too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(text.as_bytes())
    }
}
