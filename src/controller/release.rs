//! `podwarden release-guards`: removes the orphan-guard finalizer from every pod that
//! carries it. What to run once podwarden is uninstalled (the chart's post-delete hook
//! runs it), since a guarded pod waits for podwarden before its deletion completes.
//! Run it with no podwarden replica running: a running one would add the guards back.
//!
//! Bounds: pods listed in pages of [`PAGE_SIZE`](super::pods::PAGE_SIZE); at most `--qps`
//! writes per second; each write retried on a conflict up to
//! [`WRITE_ATTEMPTS`](super::guard::WRITE_ATTEMPTS) times.

use std::path::PathBuf;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use super::guard::{self, FINALIZER, Written};
use super::orphans::PodRef;
use super::pace::TokenBucket;
use super::scope::Scope;

/// Removes the orphan-guard finalizer (`podwarden.dev/orphan-guard`) from every pod
/// that carries it, once podwarden no longer runs.
#[derive(Debug, Clone, clap::Args)]
pub struct ReleaseArgs {
    /// Kubeconfig file (default: in-cluster service account, else `KUBECONFIG`, else
    /// `~/.kube/config`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Only the pods of this namespace; repeat it, or separate names with commas. The
    /// default is every namespace.
    #[arg(long = "namespace", value_name = "NAMESPACE", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Finalizer writes per second, at most.
    #[arg(long, default_value_t = 20.0, value_parser = super::cli::parse_qps)]
    pub qps: f64,
}

/// What a release did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Released {
    /// Finalizers removed.
    pub released: usize,
    /// Pods gone, or without the finalizer, by the time they were written.
    pub gone: usize,
    /// Pods whose write failed.
    pub failed: Vec<String>,
}

/// Removes the finalizer from every pod of `scope` that has it.
pub async fn release(client: &Client, scope: &Scope, qps: f64) -> Result<Released, kube::Error> {
    let mut guarded = Vec::new();
    for (_, api) in scope.apis::<Pod>(client) {
        guarded.extend(guarded_pods(&api).await?);
    }
    let mut bucket = TokenBucket::new(qps, 1.0, tokio::time::Instant::now());
    let mut out = Released::default();
    for pod in guarded {
        tokio::time::sleep_until(bucket.take(tokio::time::Instant::now())).await;
        match guard::set_finalizer(client, &pod, false).await {
            Written::Has(false) => out.released += 1,
            Written::Has(true) | Written::Retry => {
                out.failed.push(format!("{}/{}", pod.namespace, pod.name))
            }
            Written::Gone => out.gone += 1,
        }
    }
    Ok(out)
}

/// The pods of `api` that carry the finalizer, listed in pages.
async fn guarded_pods(api: &Api<Pod>) -> Result<Vec<PodRef>, kube::Error> {
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(super::pods::PAGE_SIZE);
    loop {
        let page = api.list(&params).await?;
        for pod in &page.items {
            let m = &pod.metadata;
            let guarded = m
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
            if let (true, Some(namespace), Some(name), Some(uid)) =
                (guarded, &m.namespace, &m.name, &m.uid)
            {
                out.push(PodRef {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: uid.clone(),
                });
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

pub fn run(args: &ReleaseArgs) -> ExitCode {
    super::cli::init_logs("text");
    let scope = match Scope::new(args.namespaces.iter().cloned()) {
        Ok(scope) => scope,
        Err(e) => {
            eprintln!("podwarden release-guards: --namespace: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = super::cli::runtime("release-guards") else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let client =
            match super::cli::connect(args.kubeconfig.as_ref(), args.context.as_deref()).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("podwarden release-guards: {e}");
                    return ExitCode::FAILURE;
                }
            };
        match release(&client, &scope, args.qps).await {
            Ok(r) => {
                println!(
                    "released {} orphan guard(s); {} pod(s) gone or already released; {} failed",
                    r.released,
                    r.gone,
                    r.failed.len()
                );
                for pod in &r.failed {
                    eprintln!("podwarden release-guards: could not release {pod}");
                }
                if r.failed.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("podwarden release-guards: cannot list pods: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
