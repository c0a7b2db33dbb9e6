//! `strand`: the Strand command line.

mod admin_cmd;
mod apply_cmd;
mod bench_cmd;
mod broker_cmd;
mod dev_cmd;
mod dev_secure;
mod log_cmd;
mod pre_stop_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Strand: a Kafka-compatible event streaming platform for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "strand", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker, decommission / recommission one, or hand its leaderships over before it
    /// stops.
    Broker(Box<broker_cmd::BrokerCommandArgs>),
    /// Run a local cluster of brokers on 127.0.0.1 (no Kubernetes needed).
    Dev(dev_cmd::DevArgs),
    /// Inspect partition logs on disk.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Create, list, describe, alter and delete topics through the admin API.
    Topic(admin_cmd::TopicArgs),
    /// Describe the cluster through the admin API.
    Cluster(admin_cmd::ClusterArgs),
    /// Create, list and delete Kafka ACLs through the admin API.
    Acl(admin_cmd::AclArgs),
    /// Create, list and delete SCRAM users through the admin API.
    User(admin_cmd::UserArgs),
    /// Create or change the topics that Topic YAML declares, through the admin API.
    Apply(apply_cmd::ApplyArgs),
    /// Measure a cluster with Kafka clients: produce or consume load, throughput and latency.
    Bench(bench_cmd::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Broker(args) => match args.command {
            Some(broker_cmd::BrokerSubcommand::Admin(command)) => {
                admin_cmd::run_broker_admin(command)
            }
            Some(broker_cmd::BrokerSubcommand::PreStop(args)) => pre_stop_cmd::run(args),
            None => broker_cmd::run(args.run),
        },
        Command::Dev(args) => dev_cmd::run(args),
        Command::Log(command) => log_cmd::run(command),
        Command::Topic(args) => admin_cmd::run_topic(args),
        Command::Cluster(args) => admin_cmd::run_cluster(args),
        Command::Acl(args) => admin_cmd::run_acl(args),
        Command::User(args) => admin_cmd::run_user(args),
        Command::Apply(args) => apply_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
