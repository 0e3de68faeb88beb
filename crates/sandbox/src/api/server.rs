//! The server process: a loopback listener, one task per connection, and the handle
//! tests and the CLI drive it with (address, client, faults, restart, shutdown).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::auth::{Auth, AuthConfig};
use super::error::ApiError;
use super::faults::Faults;
use super::http::{self, HttpState, RestartHook};
use super::kubeconfig::{self, Credentials};
use super::store::{Store, StoreConfig};

/// A TLS handshake not done by then is dropped (a client that connects and stays
/// silent must not hold a connection permit).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `Some`: HTTPS, bearer tokens and RBAC (see [`auth`]); `None` (the default):
    /// plain HTTP, every request allowed.
    pub auth: Option<AuthConfig>,
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
            auth: None,
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
    #[error("cannot set up authentication: {0}")]
    Auth(String),
    #[error("cannot mint a token: {0}")]
    Token(ApiError),
    #[error("the sandbox runs without auth: start it with SandboxConfig::auth set to mint tokens")]
    AuthOff,
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
        Self::serve(listener, addr, store, config)
    }

    fn serve(
        listener: TcpListener,
        addr: SocketAddr,
        store: Store,
        config: SandboxConfig,
    ) -> Result<SandboxHandle, SandboxError> {
        let auth = match config.auth {
            Some(auth_config) => Some(Arc::new(
                Auth::new(auth_config, store.clone(), addr.ip()).map_err(SandboxError::Auth)?,
            )),
            None => None,
        };
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
            auth: auth.clone(),
        };
        let router = match config.extra_routes {
            Some(extra) => http::router(state).merge(extra),
            None => http::router(state),
        };
        // Auth guards every route, the extra ones included.
        let router = match &auth {
            Some(auth) => router.layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                http::guard,
            )),
            None => router,
        };
        let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let tls = auth.as_ref().map(|a| a.tls().acceptor().clone());
        let task = tokio::spawn(accept_loop(
            listener,
            router,
            tls,
            shutdown_rx,
            restart_tx.clone(),
            permits,
        ));
        Ok(SandboxHandle {
            addr,
            store,
            faults,
            restart: hook,
            auth,
            shutdown: shutdown_tx,
            task: Some(task),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
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
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let serve = async move {
                match tls {
                    None => serve_connection(stream, service).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => serve_connection(stream, service).await,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "sandbox TLS handshake failed")
                            }
                            Err(_) => tracing::debug!("sandbox TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = restart_rx.changed() => {}
                _ = shutdown_rx.changed() => {}
            }
        });
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection, plain or TLS, until it closes.
async fn serve_connection<S>(stream: S, service: TowerToHyperService<axum::Router>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await;
}

/// A running sandbox server.
pub struct SandboxHandle {
    addr: SocketAddr,
    store: Store,
    faults: Arc<Faults>,
    restart: RestartHook,
    auth: Option<Arc<Auth>>,
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

    /// `http://127.0.0.1:PORT`, or `https://` with auth on.
    pub fn url(&self) -> String {
        let scheme = if self.auth.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The in-process store: same objects and resourceVersions as over HTTP.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Fault controls and counters.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// A `kube::Config` for this server (namespace `default`); with auth on, over
    /// HTTPS trusting the sandbox's CA, as user `admin`.
    pub fn kube_config(&self) -> kube::Config {
        match &self.auth {
            Some(auth) => self.kube_config_for_token(auth.admin_token()),
            None => self.plain_kube_config(),
        }
    }

    fn plain_kube_config(&self) -> kube::Config {
        let uri: ::http::Uri = self.url().parse().unwrap_or_default();
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        config
    }

    /// A `kube::Config` that sends `token` as its bearer token (over HTTPS trusting
    /// the sandbox's CA when auth is on): what a controller running under a
    /// ServiceAccount uses.
    pub fn kube_config_for_token(&self, token: &str) -> kube::Config {
        let mut config = self.plain_kube_config();
        config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
        if let Some(auth) = &self.auth {
            config.root_cert = Some(vec![auth.tls().ca_der().to_vec()]);
        }
        config
    }

    /// A `kube::Client` talking to this server (as `admin` when auth is on).
    pub fn client(&self) -> Result<kube::Client, SandboxError> {
        Ok(kube::Client::try_from(self.kube_config())?)
    }

    /// A `kube::Client` authenticating with `token`.
    pub fn client_for_token(&self, token: &str) -> Result<kube::Client, SandboxError> {
        Ok(kube::Client::try_from(self.kube_config_for_token(token))?)
    }

    /// Credentials and policy, when auth is on.
    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_deref()
    }

    /// The admin's bearer token, when auth is on.
    pub fn admin_token(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.admin_token())
    }

    /// The CA certificate (PEM) clients trust, when auth is on.
    pub fn ca_pem(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.tls().ca_pem())
    }

    /// Mints a token for ServiceAccount `namespace/name`, as a TokenRequest does
    /// (`expiration` defaults to an hour, at least 10 minutes, cut to
    /// [`AuthConfig::max_token_expiration`]).
    pub fn create_token(
        &self,
        namespace: &str,
        name: &str,
        expiration: Option<Duration>,
    ) -> Result<String, SandboxError> {
        let auth = self.auth.as_ref().ok_or(SandboxError::AuthOff)?;
        let mut request = serde_json::json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {}});
        if let Some(e) = expiration {
            request["spec"]["expirationSeconds"] =
                serde_json::json!(i64::try_from(e.as_secs()).unwrap_or(i64::MAX));
        }
        let answer = auth
            .request_token(namespace, name, &request)
            .map_err(SandboxError::Token)?;
        answer
            .pointer("/status/token")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                SandboxError::Token(ApiError::Internal("no token in the TokenRequest".into()))
            })
    }

    /// The kubeconfig YAML for this server (with auth on: the CA and the admin token).
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url(), self.credentials())
    }

    fn credentials(&self) -> Option<Credentials<'_>> {
        self.auth.as_ref().map(|a| Credentials {
            ca_pem: a.tls().ca_pem(),
            token: a.admin_token(),
        })
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SandboxError> {
        kubeconfig::write(path, &self.url(), self.credentials()).map_err(|source| {
            SandboxError::Kubeconfig {
                path: path.display().to_string(),
                source,
            }
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
