use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the store and the simulator allocate and free many small JSON nodes
/// per write; glibc's allocator cost a quarter of a simulated status write.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Audits pod lifecycles against Kubernetes' documented restartPolicy semantics.
#[derive(Parser)]
#[command(name = "podwarden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Audit(podwarden::audit::cli::AuditArgs),
    /// Print the PodLifecyclePolicy CustomResourceDefinition as YAML.
    Crd,
    /// Run the sandbox Kubernetes API server.
    Sandbox(podwarden::sandbox::cli::SandboxArgs),
}

fn main() -> ExitCode {
    // Defaults stay when the option is not where mimalloc 2.2 has it.
    let _ = podwarden::alloc::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Audit(args) => podwarden::audit::cli::run(&args),
        Command::Crd => podwarden::crd::print(),
        Command::Sandbox(args) => podwarden::sandbox::cli::run(&args),
    }
}
