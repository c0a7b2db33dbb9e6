//! `strand cluster describe`: brokers, their states and load, the controller and what
//! balancing is doing; `strand cluster rebalance` is in `balance.rs`.

use clap::{Args, Subcommand};
use serde::Serialize;
use strand_proto::admin::{
    BrokerDescription, ClusterDescription, DescribeClusterRequest, RebalanceStatusRequest,
};

use super::balance::{RebalanceArgs, run_rebalance};
use super::output::{self, Table};
use super::{Admin, ConnectArgs, block_on};

/// `strand cluster …`: the connection options and one subcommand.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    connect: ConnectArgs,

    #[command(subcommand)]
    command: ClusterCommand,
}

/// Inspect the cluster as a whole.
#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the brokers, their states, leader and replica counts, and the controller.
    #[command(after_help = CLUSTER_JSON_HELP)]
    Describe,
    /// Move replicas and leaders until every broker holds a fair share; shows progress until
    /// done. With --dry-run, only print the plan.
    Rebalance(RebalanceArgs),
}

/// Help text listing the JSON fields of [`ClusterView`].
const CLUSTER_JSON_HELP: &str = "\
JSON/YAML output (-o json|yaml), one object:
  cluster_id                   string
  controller_id                number, or null while no controller is known
  under_replicated_partitions  number
  leaderless_partitions        number
  balancing                    string: what balancing is doing, e.g. balanced
  brokers                      array, sorted by broker_id, of:
    broker_id                  number
    node_id                    number (the broker's Raft node id for this incarnation)
    state                      string: active, draining or decommissioned
    kafka_address              string
    grpc_address               string (the admin API address)
    rack                       string, or null
    leader_count               number
    replica_count              number (replicas assigned to it)
    leaving_count              number (replicas it still hosts that are moving away)
    alive                      boolean";

/// `cluster describe` output; field names are a public interface for scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ClusterView {
    cluster_id: String,
    controller_id: Option<u32>,
    under_replicated_partitions: u32,
    leaderless_partitions: u32,
    balancing: String,
    brokers: Vec<BrokerView>,
}

/// One broker of a [`ClusterView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct BrokerView {
    broker_id: u32,
    node_id: u64,
    state: String,
    kafka_address: String,
    grpc_address: String,
    rack: Option<String>,
    leader_count: u32,
    replica_count: u32,
    leaving_count: u32,
    alive: bool,
}

impl ClusterView {
    fn new(cluster: ClusterDescription, balancing: String) -> Self {
        let mut brokers: Vec<BrokerView> =
            cluster.brokers.into_iter().map(BrokerView::from).collect();
        brokers.sort_by_key(|b| b.broker_id);
        Self {
            cluster_id: cluster.cluster_id,
            controller_id: cluster.controller_id,
            under_replicated_partitions: cluster.under_replicated_partitions,
            leaderless_partitions: cluster.leaderless_partitions,
            balancing,
            brokers,
        }
    }
}

impl From<BrokerDescription> for BrokerView {
    fn from(broker: BrokerDescription) -> Self {
        Self {
            broker_id: broker.broker_id,
            node_id: broker.node_id,
            state: broker.state,
            kafka_address: broker.kafka_address,
            grpc_address: broker.grpc_address,
            rack: broker.rack,
            leader_count: broker.leader_count,
            replica_count: broker.replica_count,
            leaving_count: broker.leaving_count,
            alive: broker.alive,
        }
    }
}

/// Runs one `strand cluster` command.
pub fn run_cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let ClusterArgs { connect, command } = args;
    match command {
        ClusterCommand::Describe => block_on(async move {
            let mut admin = Admin::connect(&connect.server).await?;
            let answer = admin
                .client
                .describe_cluster(DescribeClusterRequest {})
                .await;
            let description = admin.answer(answer)?;
            let answer = admin
                .client
                .rebalance_status(RebalanceStatusRequest {})
                .await;
            let balancing = admin.answer(answer)?.summary;
            let cluster = ClusterView::new(description, balancing);
            output::print(connect.output, &cluster, cluster_table)
        }),
        ClusterCommand::Rebalance(args) => run_rebalance(connect, args),
    }
}

/// `cluster describe` for people: a header line, then one row per broker.
fn cluster_table(cluster: &ClusterView) -> String {
    let controller = match cluster.controller_id {
        Some(id) => format!("broker {id}"),
        None => "none".to_owned(),
    };
    let mut out = format!(
        "Cluster: {}  Controller: {}  Under-replicated partitions: {}  Leaderless partitions: {}\n",
        cluster.cluster_id,
        controller,
        cluster.under_replicated_partitions,
        cluster.leaderless_partitions
    );
    let mut table = Table::new(&[
        "BROKER", "STATE", "ADDRESS", "ADMIN", "RACK", "LEADERS", "REPLICAS", "LEAVING", "ALIVE",
    ]);
    for broker in &cluster.brokers {
        table.row(vec![
            broker.broker_id.to_string(),
            broker.state.clone(),
            broker.kafka_address.clone(),
            broker.grpc_address.clone(),
            broker.rack.clone().unwrap_or_else(|| "-".to_owned()),
            broker.leader_count.to_string(),
            broker.replica_count.to_string(),
            broker.leaving_count.to_string(),
            if broker.alive { "yes" } else { "no" }.to_owned(),
        ]);
    }
    out.push_str(&table.render());
    out.push_str(&format!("Balancing: {}\n", cluster.balancing));
    out
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn brokers_are_sorted_and_a_missing_rack_shows_a_dash() {
        let broker = |broker_id, rack: Option<&str>, alive| BrokerDescription {
            broker_id,
            node_id: u64::from(broker_id) + 100,
            state: "active".into(),
            kafka_address: format!("b{broker_id}:9092"),
            grpc_address: format!("b{broker_id}:9093"),
            rack: rack.map(str::to_owned),
            leader_count: 2,
            replica_count: 6,
            leaving_count: 0,
            alive,
        };
        let cluster = ClusterDescription {
            cluster_id: "c-1".into(),
            controller_id: None,
            brokers: vec![broker(1, None, false), broker(0, Some("zone-a"), true)],
            under_replicated_partitions: 3,
            leaderless_partitions: 0,
        };
        expect![[r#"
            Cluster: c-1  Controller: none  Under-replicated partitions: 3  Leaderless partitions: 0
            BROKER  STATE   ADDRESS  ADMIN    RACK    LEADERS  REPLICAS  LEAVING  ALIVE
            0       active  b0:9092  b0:9093  zone-a  2        6         0        yes
            1       active  b1:9092  b1:9093  -       2        6         0        no
            Balancing: balanced
        "#]]
        .assert_eq(&cluster_table(&ClusterView::new(
            cluster,
            "balanced".into(),
        )));
    }
}
