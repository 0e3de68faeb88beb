//! `podwarden run`: finds the cluster as kubectl does, starts the controller, runs until
//! interrupted or until a background task fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::Options;
use super::leader::{LeaseConfig, LeaseTimings};

/// Watches the cluster and audits every pod transition a PodLifecyclePolicy selects.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Kubeconfig file (default: in-cluster service account, else `KUBECONFIG`, else
    /// `~/.kube/config`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Event writes per second, in total.
    #[arg(long, default_value_t = 5.0, value_parser = parse_qps)]
    pub event_qps: f64,
    /// Run as one of several replicas: elect a leader on a Lease; only the holder writes.
    #[arg(long)]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(long, default_value = "podwarden")]
    pub lease_name: String,
    /// The Lease's namespace (default: `POD_NAMESPACE`, else `default`).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Orphan recreation records what it would do (Events `OrphanWouldBeRecreated`,
    /// metrics) for every policy, and creates no pod.
    #[arg(long)]
    pub dry_run: bool,
    /// Replacement pods created per second, at most, after a burst of 20.
    #[arg(long, default_value_t = 5.0, value_parser = parse_qps)]
    pub create_qps: f64,
    /// Orphan-guard finalizer writes per second, at most.
    #[arg(long, default_value_t = 20.0, value_parser = parse_qps)]
    pub guard_qps: f64,
    /// Audit only the pods whose uid hashes to shard i of n (`i/n`, e.g. `0/4`). Run one
    /// replica (or one leader-elected group) per shard; with `--leader-elect` each shard
    /// elects on its own Lease (`<lease-name>-shard-i-of-n`). Shard 0 writes the policy
    /// totals.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<super::shard::Shard>,
    /// Read the pods and policies of this namespace only; repeat it (or separate names
    /// with commas) for several, at most 64. The default reads every namespace. Nodes are
    /// read cluster-wide either way. Lets podwarden run with a Role per namespace (and a
    /// ClusterRole for nodes only).
    #[arg(long = "namespace", value_name = "NAMESPACE", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// `text` (readable on a terminal) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

fn parse_shard(s: &str) -> Result<super::shard::Shard, String> {
    s.parse()
        .map_err(|e: super::shard::ShardError| e.to_string())
}

pub fn parse_qps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(q) if q.is_finite() && q > 0.0 && q <= 1000.0 => Ok(q),
        _ => Err(format!("{s:?} is not a rate between 0 and 1000 per second")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no cluster found: {0} (set KUBECONFIG, pass --kubeconfig, or run in a cluster)")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("kubeconfig: {0}")]
    Config(#[source] kube::config::KubeconfigError),
    #[error("cannot build a client: {0}")]
    Client(#[source] kube::Error),
}

/// A client for the cluster the arguments name, found as kubectl finds it.
pub async fn connect(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
) -> Result<Client, ConnectError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|source| ConnectError::Kubeconfig {
                path: path.clone(),
                source,
            })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(ConnectError::Config)?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(ConnectError::Config)?,
        None => Config::infer().await.map_err(ConnectError::Infer)?,
    };
    Client::try_from(config).map_err(ConnectError::Client)
}

/// This replica's identity on the Lease: its name and a suffix no other process has
/// (two processes on one host must not share an identity).
fn unique_identity(instance: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{instance}_{}_{nanos:08x}", std::process::id())
}

/// A multi-threaded runtime for `podwarden <command>`; says why on standard error when
/// there is none.
pub fn runtime(command: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("podwarden {command}: cannot start the runtime: {e}");
            None
        }
    }
}

pub fn init_logs(format: &str) {
    init_logs_at(format, "info");
}

/// Warnings only unless `RUST_LOG` says otherwise (the demo prints its own progress).
pub fn init_logs_quiet() {
    // A watch cut when the embedded sandbox stops is not worth a line.
    init_logs_at("text", "warn,kube_client=off");
}

fn init_logs_at(format: &str, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second initialisation (tests, demo) keeps the first.
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The controller's options from its arguments: `instance` names this replica,
/// `pod_namespace` (the pod's own namespace) is where the Lease goes unless
/// `--lease-namespace` says otherwise.
pub fn options(
    args: &RunArgs,
    instance: String,
    pod_namespace: Option<String>,
) -> Result<Options, String> {
    let scope = super::scope::Scope::new(args.namespaces.iter().cloned())
        .map_err(|e| format!("--namespace: {e}"))?;
    let leader_election = args.leader_elect.then(|| LeaseConfig {
        namespace: args
            .lease_namespace
            .clone()
            .or(pod_namespace)
            .unwrap_or_else(|| "default".into()),
        name: args.lease_name.clone(),
        identity: unique_identity(&instance),
        timings: LeaseTimings::default(),
    });
    Ok(Options {
        event_qps: args.event_qps,
        http_addr: Some(args.http_addr),
        instance,
        leader_election,
        dry_run: args.dry_run,
        create_qps: args.create_qps,
        guard_qps: args.guard_qps,
        shard: args.shard,
        scope,
    })
}

pub fn run(args: &RunArgs) -> ExitCode {
    init_logs(&args.log_format);
    let instance = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "podwarden".into());
    let options = match options(args, instance, std::env::var("POD_NAMESPACE").ok()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("podwarden run: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = runtime("run") else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let client = match connect(args.kubeconfig.as_ref(), args.context.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("podwarden run: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut handle = match super::start(client, options).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("podwarden run: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(http = ?handle.http_addr, "podwarden is running");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted; stopping");
                handle.shutdown().await;
                ExitCode::SUCCESS
            }
            name = handle.died() => {
                eprintln!("podwarden run: the {name} stopped");
                ExitCode::FAILURE
            }
        }
    })
}
