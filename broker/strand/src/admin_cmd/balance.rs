//! `strand broker decommission|recommission ID` and `strand cluster rebalance`: balancing
//! through the admin API, with a progress line until the cluster is done.

use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;
use strand_proto::admin::{
    DecommissionBrokerRequest, DescribeClusterRequest, RebalanceRequest, RebalanceStatusRequest,
    RecommissionBrokerRequest,
};

use super::output::{self, OutputFormat, Table};
use super::{Admin, ConnectArgs, block_on};

/// How often progress is asked for.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long to wait for leaderships to reach preferred replicas once no replica moves.
const LEADER_PATIENCE: Duration = Duration::from_secs(30);

/// `strand broker decommission|recommission`.
#[derive(Debug, Subcommand)]
pub enum BrokerAdminCommand {
    /// Move every replica off a broker, then mark it decommissioned; shows progress until done.
    Decommission(BrokerIdArgs),
    /// Make a draining or decommissioned broker active again; balancing gives it a fair share.
    Recommission(BrokerIdArgs),
}

/// The broker a command acts on.
#[derive(Debug, Args)]
pub struct BrokerIdArgs {
    /// The broker id.
    id: u32,
    /// Return once the change is accepted, without waiting for replicas to move.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `strand broker decommission|recommission`.
pub fn run_broker_admin(command: BrokerAdminCommand) -> anyhow::Result<()> {
    match command {
        BrokerAdminCommand::Decommission(args) => block_on(async move {
            let mut admin = Admin::connect(&args.connect.server).await?;
            let answer = admin
                .client
                .decommission_broker(DecommissionBrokerRequest { broker_id: args.id })
                .await;
            let broker = admin.answer(answer)?;
            eprintln!(
                "broker {} is {}; its replicas move to other brokers",
                broker.broker_id, broker.state
            );
            if !args.no_wait {
                wait_for_drain(&mut admin, args.id).await?;
            }
            Ok(())
        }),
        BrokerAdminCommand::Recommission(args) => block_on(async move {
            let mut admin = Admin::connect(&args.connect.server).await?;
            let answer = admin
                .client
                .recommission_broker(RecommissionBrokerRequest { broker_id: args.id })
                .await;
            let broker = admin.answer(answer)?;
            eprintln!(
                "broker {} is {}; balancing gives it a share of replicas and leaders",
                broker.broker_id, broker.state
            );
            if !args.no_wait {
                wait_for_balance(&mut admin, 0).await?;
            }
            Ok(())
        }),
    }
}

/// Polls until the broker is decommissioned, showing how many of its replicas have moved.
async fn wait_for_drain(admin: &mut Admin, id: u32) -> anyhow::Result<()> {
    let mut progress = Progress::new();
    let mut total = None;
    loop {
        let answer = admin
            .client
            .describe_cluster(DescribeClusterRequest {})
            .await;
        let cluster = admin.answer(answer)?;
        let Some(broker) = cluster.brokers.iter().find(|b| b.broker_id == id) else {
            anyhow::bail!("broker {id} is no longer in the cluster");
        };
        if broker.state == "decommissioned" {
            let total = total.unwrap_or(0);
            progress.finish(&format!(
                "broker {id} decommissioned: {total} of {total} replicas moved off; it can be stopped"
            ));
            return Ok(());
        }
        if broker.state == "active" {
            progress.finish(&format!("broker {id} is active again (recommissioned)"));
            return Ok(());
        }
        let left = broker.replica_count + broker.leaving_count;
        let total = *total.get_or_insert(left);
        let answer = admin
            .client
            .rebalance_status(RebalanceStatusRequest {})
            .await;
        let status = admin.answer(answer)?;
        let blocked = status
            .draining
            .iter()
            .find(|d| d.broker_id == id && !d.blocked.is_empty())
            .map(|d| format!(" — {}", d.blocked))
            .unwrap_or_default();
        progress.show(
            total.saturating_sub(left) as usize,
            total as usize,
            &format!(
                "broker {id} draining: {left} replica{} left{blocked}",
                if left == 1 { "" } else { "s" }
            ),
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Polls until no replica moves and nothing is planned (then, for a while, until leaders sit
/// on their preferred replicas), showing moves done against moves known.
async fn wait_for_balance(admin: &mut Admin, planned: usize) -> anyhow::Result<()> {
    let mut progress = Progress::new();
    let mut total = planned;
    let mut moves_done_at: Option<Instant> = None;
    loop {
        let answer = admin
            .client
            .rebalance_status(RebalanceStatusRequest {})
            .await;
        let status = admin.answer(answer)?;
        let left = status.in_progress.len() + status.pending.len();
        total = total.max(left);
        if status.balanced {
            let leaders_settled = status.leader_transfers.is_empty();
            let since = *moves_done_at.get_or_insert_with(Instant::now);
            if leaders_settled || since.elapsed() >= LEADER_PATIENCE {
                progress.finish(&format!(
                    "{total} of {total} moves done; {}",
                    status.summary
                ));
                return Ok(());
            }
        }
        progress.show(total - left, total, &status.summary);
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// `strand cluster rebalance`.
#[derive(Debug, Args)]
pub struct RebalanceArgs {
    /// Only print the moves and leader transfers that balancing would make.
    #[arg(long)]
    dry_run: bool,
    /// Return once balancing has started, without waiting for it to finish.
    #[arg(long)]
    no_wait: bool,
}

/// A replica move as printed; field names are a public interface for scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct MoveView {
    topic: String,
    partition: u32,
    from: Vec<u32>,
    to: Vec<u32>,
    bytes: u64,
}

/// A leader transfer as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TransferView {
    topic: String,
    partition: u32,
    from: Option<u32>,
    to: u32,
}

/// The plan as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PlanView {
    moves: Vec<MoveView>,
    leader_transfers: Vec<TransferView>,
    bytes_to_move: u64,
}

/// Runs `strand cluster rebalance`.
pub fn run_rebalance(connect: ConnectArgs, args: RebalanceArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut admin = Admin::connect(&connect.server).await?;
        let answer = admin
            .client
            .rebalance(RebalanceRequest {
                dry_run: args.dry_run,
            })
            .await;
        let plan = admin.answer(answer)?;
        let view = PlanView {
            moves: plan
                .moves
                .into_iter()
                .map(|m| MoveView {
                    topic: m.topic,
                    partition: m.partition,
                    from: m.from,
                    to: m.to,
                    bytes: m.bytes,
                })
                .collect(),
            leader_transfers: plan
                .leader_transfers
                .into_iter()
                .map(|t| TransferView {
                    topic: t.topic,
                    partition: t.partition,
                    from: t.from,
                    to: t.to,
                })
                .collect(),
            bytes_to_move: plan.bytes_to_move,
        };
        if args.dry_run || connect.output != OutputFormat::Table {
            output::print(connect.output, &view, plan_table)?;
        } else {
            eprintln!(
                "rebalancing: {} replica moves ({} bytes), {} leader transfers",
                view.moves.len(),
                view.bytes_to_move,
                view.leader_transfers.len()
            );
        }
        if !args.dry_run && !args.no_wait {
            wait_for_balance(&mut admin, view.moves.len()).await?;
        }
        Ok(())
    })
}

/// The plan for people.
fn plan_table(plan: &PlanView) -> String {
    if plan.moves.is_empty() && plan.leader_transfers.is_empty() {
        return "The cluster is balanced: no replica moves, no leader transfers.\n".to_owned();
    }
    let mut out = format!(
        "{} replica moves ({} bytes to copy), {} leader transfers\n",
        plan.moves.len(),
        plan.bytes_to_move,
        plan.leader_transfers.len()
    );
    if !plan.moves.is_empty() {
        let mut table = Table::new(&["TOPIC", "PARTITION", "FROM", "TO", "BYTES"]);
        for m in &plan.moves {
            table.row(vec![
                m.topic.clone(),
                m.partition.to_string(),
                output::id_list(&m.from),
                output::id_list(&m.to),
                m.bytes.to_string(),
            ]);
        }
        out.push_str(&table.render());
    }
    if !plan.leader_transfers.is_empty() {
        let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER", "NEW LEADER"]);
        for t in &plan.leader_transfers {
            table.row(vec![
                t.topic.clone(),
                t.partition.to_string(),
                output::id_or_dash(t.from),
                t.to.to_string(),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

/// A progress line on standard error: redrawn in place on a terminal, one line per change
/// otherwise (logs, CI).
struct Progress {
    terminal: bool,
    last: String,
}

impl Progress {
    fn new() -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            last: String::new(),
        }
    }

    fn show(&mut self, done: usize, total: usize, text: &str) {
        let line = format!("{} {text}", bar(done, total));
        if line == self.last {
            return;
        }
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.last = line;
    }

    fn finish(&mut self, text: &str) {
        let mut err = std::io::stderr();
        if self.terminal && !self.last.is_empty() {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{text}");
    }
}

/// `[#####-----] 5/10`.
fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_with_progress() {
        assert_eq!(bar(0, 4), "[--------------------] 0/4");
        assert_eq!(bar(2, 4), "[##########----------] 2/4");
        assert_eq!(bar(0, 0), "[####################] 0/0");
    }

    #[test]
    fn empty_plan_says_balanced() {
        let plan = PlanView {
            moves: vec![],
            leader_transfers: vec![],
            bytes_to_move: 0,
        };
        assert!(plan_table(&plan).starts_with("The cluster is balanced"));
    }
}
