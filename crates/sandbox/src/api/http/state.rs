//! What every part of the HTTP layer shares: the state handed to each request and the
//! limits of bodies and watches.

use std::sync::Arc;
use std::time::Duration;

use super::super::auth::Auth;
use super::super::faults::Faults;
use super::super::store::Store;

/// Largest request body accepted (the real server's limit is 3 MiB).
pub(super) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Watch and list responses are flushed in chunks of about this size.
pub(super) const CHUNK_BYTES: usize = 256 * 1024;
/// A watch without `timeoutSeconds` ends after this long (the real server picks 30-60 min).
pub(super) const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// What the HTTP layer shares across requests.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub store: Store,
    pub faults: Arc<Faults>,
    /// How often an idle watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// `host:port` the server is reachable at (for `/api`).
    pub address: String,
    /// Run by `POST /sandbox/v1/faults/restart` (drops every connection).
    pub restart: RestartHook,
    /// Credentials and policy when auth is on (serves the TokenRequest API).
    pub auth: Option<Arc<Auth>>,
}

/// Drops every open connection of the server (keeping the data).
#[derive(Clone)]
pub struct RestartHook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for RestartHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestartHook")
    }
}
