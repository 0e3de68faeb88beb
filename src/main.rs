use clap::{Parser, Subcommand};

/// Audits pod lifecycles against Kubernetes' documented restartPolicy semantics.
#[derive(Parser)]
#[command(name = "podwarden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
