//! `podwarden sandbox --listen ADDR --kubeconfig FILE`: serve until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::server::{Sandbox, SandboxConfig};
use super::store::StoreConfig;

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
        ..SandboxConfig::default()
    };
    let handle = Sandbox::start(config).await?;
    if let Err(e) = handle.write_kubeconfig(&args.kubeconfig) {
        handle.shutdown().await;
        return Err(e.into());
    }
    let path = args.kubeconfig.display();
    println!("podwarden sandbox: Kubernetes API at {}", handle.url());
    println!("kubeconfig written to {path}");
    println!();
    println!("  export KUBECONFIG={path}");
    println!("  kubectl get namespaces");
    println!();
    println!("Ctrl-C stops the server.");
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    handle.shutdown().await;
    Ok(())
}
