//! The server process: a loopback listener, one task per connection, and the handle
//! tests and the CLI drive it with (address, client, faults, restart, shutdown).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::faults::Faults;
use super::http::{self, HttpState, RestartHook};
use super::kubeconfig;
use super::store::{Store, StoreConfig};

/// How the sandbox server is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    pub store: StoreConfig,
    /// How often an idle watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Seed of the sampled faults (429/500/503 fractions).
    pub fault_seed: u64,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// More endpoints served beside the API (the simulator's admin endpoints).
    pub extra_routes: Option<axum::Router>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: StoreConfig::default(),
            bookmark_interval: Duration::from_secs(5),
            fault_seed: 0x5eed,
            max_connections: 4096,
            extra_routes: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the kubeconfig to {path}: {source}")]
    Kubeconfig {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot build a client for the sandbox: {0}")]
    Client(#[from] kube::Error),
}

/// Entry point: `Sandbox::start(config).await?` serves until the handle shuts it down.
pub struct Sandbox;

impl Sandbox {
    /// Binds, then serves a fresh store in the background on the current tokio runtime.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        let store = Store::new(config.store.clone());
        Self::start_with_store(config, store).await
    }

    /// Serves an existing store (the simulator keeps the store across server restarts).
    pub async fn start_with_store(
        config: SandboxConfig,
        store: Store,
    ) -> Result<SandboxHandle, SandboxError> {
        let listen_error = |source| SandboxError::Listen {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        Ok(Self::serve(listener, addr, store, config))
    }

    fn serve(
        listener: TcpListener,
        addr: SocketAddr,
        store: Store,
        config: SandboxConfig,
    ) -> SandboxHandle {
        let faults = Arc::new(Faults::new(config.fault_seed));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (restart_tx, _) = watch::channel(0u64);
        let restart_tx = Arc::new(restart_tx);
        let hook = {
            let restart_tx = restart_tx.clone();
            let store = store.clone();
            RestartHook(Arc::new(move || {
                store.close_all_watches();
                restart_tx.send_modify(|g| *g += 1);
            }))
        };
        let state = HttpState {
            store: store.clone(),
            faults: faults.clone(),
            bookmark_interval: config.bookmark_interval,
            address: addr.to_string(),
            restart: hook.clone(),
        };
        let router = match config.extra_routes {
            Some(extra) => http::router(state).merge(extra),
            None => http::router(state),
        };
        let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let task = tokio::spawn(accept_loop(
            listener,
            router,
            shutdown_rx,
            restart_tx.clone(),
            permits,
        ));
        SandboxHandle {
            addr,
            store,
            faults,
            restart: hook,
            shutdown: shutdown_tx,
            task: Some(task),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
    restart: Arc<watch::Sender<u64>>,
    permits: Arc<Semaphore>,
) {
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "sandbox accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut restart_rx = restart.subscribe();
        let mut shutdown_rx = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = restart_rx.changed() => {}
                _ = shutdown_rx.changed() => {}
            }
        });
    }
}

/// A running sandbox server.
pub struct SandboxHandle {
    addr: SocketAddr,
    store: Store,
    faults: Arc<Faults>,
    restart: RestartHook,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The in-process store: same objects and resourceVersions as over HTTP.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Fault controls and counters.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// A `kube::Config` for this server (namespace `default`).
    pub fn kube_config(&self) -> kube::Config {
        let uri: ::http::Uri = self.url().parse().unwrap_or_default();
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        config
    }

    /// A `kube::Client` talking to this server over HTTP.
    pub fn client(&self) -> Result<kube::Client, SandboxError> {
        Ok(kube::Client::try_from(self.kube_config())?)
    }

    /// The kubeconfig YAML for this server.
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SandboxError> {
        kubeconfig::write(path, &self.url()).map_err(|source| SandboxError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// Closes every open watch; returns how many were open (counted as a fault).
    pub fn close_all_watches(&self) -> usize {
        let n = self.store.close_all_watches();
        self.faults.count_watches_closed(n as u64);
        n
    }

    /// "Restarts" the server: drops every connection, keeps the data (counted).
    pub fn restart(&self) {
        self.faults.count_restart();
        (self.restart.0)();
    }

    /// Stops accepting, drops every connection and waits for the listener to close.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
