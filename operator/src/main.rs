//! `strand-operator`: the Strand Kubernetes operator's command line.

mod run;

use std::io::Write;

use clap::{Parser, Subcommand};

/// The Strand Kubernetes operator.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions of Cluster and Topic as YAML.
    Crd,
    /// Run the operator: the Cluster and Topic controllers under leader election.
    Run(run::RunArgs),
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Crd => {
            let yaml = strand_operator::crd::all_to_yaml()?;
            std::io::stdout().lock().write_all(yaml.as_bytes())?;
        }
        Command::Run(args) => run::run(args)?,
    }
    Ok(())
}
