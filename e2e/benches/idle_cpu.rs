//! Idle CPU of a 3-broker cluster holding 300 partitions with replication factor 3: the cost of
//! keeping hundreds of idle Raft groups alive. Needs a release build of `strand`:
//! `cargo build --release -p strand && cargo bench -p strand-e2e --bench idle_cpu`.

use std::time::{Duration, Instant};

use strand_e2e::ProcessCluster;

const PARTITIONS: u32 = 300;
const SETTLE: Duration = Duration::from_secs(15);
const MEASURE: Duration = Duration::from_secs(60);

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cluster = ProcessCluster::start(3).await;
        println!("creating {PARTITIONS} partitions, replication factor 3");
        cluster.create_topic("idle", PARTITIONS, 3).await;
        cluster
            .wait_for("every partition led", Duration::from_secs(180), |c| async move {
                let d = c.describe("idle").await?;
                let led = d.partitions.iter().filter(|p| p.leader.is_some()).count();
                (led == PARTITIONS as usize).then_some(())
            })
            .await;
        println!("all partitions led; settling for {} s", SETTLE.as_secs());
        tokio::time::sleep(SETTLE).await;
        let pids = cluster.pids();
        let before: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
        let start = Instant::now();
        for i in 0..MEASURE.as_secs() / 10 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            println!("  measuring… {} s", (i + 1) * 10);
        }
        let after: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
        let share = (after - before) / start.elapsed().as_secs_f64() * 100.0;
        println!("idle CPU of 3 brokers with {PARTITIONS} partitions (RF 3): {share:.1}% of one core in total");
    });
}
