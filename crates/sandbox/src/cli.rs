//! `podwarden sandbox --listen ADDR --kubeconfig FILE [--auth] [--nodes N --speed X
//! --seed S --scenario FILE]`: serve the API (with a simulated cluster behind it unless
//! `--nodes 0`) until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::api::auth::AuthConfig;
use crate::api::server::{Sandbox, SandboxConfig, SandboxHandle};
use crate::api::store::StoreConfig;
use crate::sim::scenario::Scenario;
use crate::sim::{NodeShape, SimConfig, SimHandle, Simulation};

/// Runs the sandbox Kubernetes API server.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on (loopback; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long, default_value = "sandbox.kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Changes kept per resource for watch-from-resourceVersion (older gets 410 Gone).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub history_window: u64,
    /// Changes queued per watcher before a slow watch is closed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_buffer: u64,
    /// Seconds between bookmarks on an idle watch.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub bookmark_seconds: u64,
    /// Serve HTTPS and require bearer tokens, authorized by RBAC: the kubeconfig gets
    /// the CA and an admin token; `kubectl create token` mints ServiceAccount tokens.
    #[arg(long)]
    pub auth: bool,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// The simulated cluster behind the API server.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Simulated nodes (0: the API server alone, nothing schedules or runs pods).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub nodes: u64,
    /// Simulated seconds per wall-clock second (back-off, tolerations, grace periods).
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Seed of every random choice of the simulation (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A scenario file (YAML) of timed steps to play.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// CPU of each node, in millicores.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_cpu_millis: u64,
    /// Memory of each node, in MiB.
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_memory_mib: u64,
    /// Pods each node accepts.
    #[arg(long, default_value_t = 110, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_pods: u64,
    /// Terminated pods kept before PodGC deletes the oldest (0: keep them all), as
    /// kube-controller-manager's flag of the same name.
    #[arg(long, default_value_t = crate::sim::config::TERMINATED_THRESHOLD)]
    pub terminated_pod_gc_threshold: usize,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1_000_000.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a speed factor above 0 and at most 1000000"
        )),
    }
}

impl SimArgs {
    pub fn config(&self) -> SimConfig {
        SimConfig {
            nodes: self.nodes as usize,
            node_shape: NodeShape {
                cpu_millis: self.node_cpu_millis,
                memory_bytes: self.node_memory_mib << 20,
                pods: self.node_pods,
                ..NodeShape::default()
            },
            seed: self.seed,
            speed: Some(self.speed),
            start: None,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
        }
    }
}

/// The `sandbox` subcommand.
pub fn run(args: &SandboxArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: &SandboxArgs) -> anyhow::Result<()> {
    let config = SandboxConfig {
        listen: args.listen,
        store: StoreConfig {
            history_window: args.history_window as usize,
            watch_buffer: args.watch_buffer as usize,
            ..StoreConfig::default()
        },
        bookmark_interval: Duration::from_secs(args.bookmark_seconds),
        auth: args.auth.then(AuthConfig::default),
        ..SandboxConfig::default()
    };
    let steps = match &args.sim.scenario {
        Some(path) => Some(Scenario::load(path)?),
        None => None,
    };
    let running = if args.sim.nodes == 0 && steps.is_none() {
        Running::Api(Sandbox::start(config).await?)
    } else {
        let sim = Simulation::start(config, args.sim.config()).await?;
        if let Some(steps) = steps {
            sim.play(steps);
        }
        Running::Sim(sim)
    };
    // Listening for Ctrl-C before saying the server is up: an interrupt sent as soon as
    // the lines appear must stop it, not kill the process.
    let interrupted = interrupt_listener()?;
    let handle = running.sandbox();
    if let Err(e) = handle.write_kubeconfig(&args.kubeconfig) {
        running.shutdown().await;
        return Err(e.into());
    }
    let path = args.kubeconfig.display();
    println!("podwarden sandbox: Kubernetes API at {}", handle.url());
    println!("kubeconfig written to {path}");
    if let Running::Sim(_) = &running {
        println!(
            "simulated cluster: {} nodes, speed {}x, seed {}{}",
            args.sim.nodes,
            args.sim.speed,
            args.sim.seed,
            match &args.sim.scenario {
                Some(p) => format!(", playing {}", p.display()),
                None => String::new(),
            }
        );
    }
    println!();
    println!("  export KUBECONFIG={path}");
    println!("  kubectl get nodes,pods -A -o wide");
    if args.auth {
        println!(
            "  kubectl create token SERVICEACCOUNT -n NAMESPACE   # HTTPS; RBAC decides what the token may do"
        );
    }
    println!();
    println!("Ctrl-C stops the server.");
    interrupted.await;
    println!("stopping");
    running.shutdown().await;
    Ok(())
}

/// A future that completes on SIGINT, listening from the moment it is made.
#[cfg(unix)]
fn interrupt_listener() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        sigint.recv().await;
    })
}

#[cfg(not(unix))]
fn interrupt_listener() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// The API server alone, or with the simulated cluster behind it.
enum Running {
    Api(SandboxHandle),
    Sim(SimHandle),
}

impl Running {
    fn sandbox(&self) -> &SandboxHandle {
        match self {
            Running::Api(h) => h,
            Running::Sim(s) => s.sandbox(),
        }
    }

    async fn shutdown(self) {
        match self {
            Running::Api(h) => h.shutdown().await,
            Running::Sim(s) => s.shutdown().await,
        }
    }
}
