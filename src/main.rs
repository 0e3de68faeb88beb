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
    Run(podwarden::controller::cli::RunArgs),
    Demo(podwarden::demo::DemoArgs),
    ReleaseGuards(podwarden::controller::release::ReleaseArgs),
    /// Print the PodLifecyclePolicy CustomResourceDefinition as YAML.
    Crd,
    /// Run the sandbox Kubernetes API server.
    Sandbox(podwarden_sandbox::cli::SandboxArgs),
}

fn main() -> ExitCode {
    // Defaults stay when the option is not where mimalloc 2.2 has it.
    let _ = podwarden_sandbox::alloc::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Audit(args) => podwarden::audit::cli::run(&args),
        Command::Run(args) => podwarden::controller::cli::run(&args),
        Command::Demo(args) => podwarden::demo::run(&args),
        Command::ReleaseGuards(args) => podwarden::controller::release::run(&args),
        Command::Crd => print_crd(),
        Command::Sandbox(args) => podwarden_sandbox::cli::run(&args),
    }
}

/// `podwarden crd`: print the CRD YAML on standard output.
fn print_crd() -> std::process::ExitCode {
    use std::io::Write;
    let written = podwarden_model::policy::crd_yaml()
        .map_err(|e| e.to_string())
        .and_then(|yaml| match std::io::stdout().write_all(yaml.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
            _ => Ok(()),
        });
    match written {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podwarden crd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
