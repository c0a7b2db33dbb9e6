//! Time and bytes moved to rebalance a 3-broker cluster holding 1 GiB per broker onto 5
//! brokers. Needs a release build of `strand`:
//! `cargo build --release -p strand && cargo bench -p strand-e2e --bench rebalance`.
//!
//! `REBALANCE_MIB` changes the data per broker (default 1024).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use strand_e2e::ProcessCluster;
use strand_proto::admin::{RebalanceRequest, RebalanceStatusRequest};

const PARTITIONS: u32 = 12;
const VALUE_BYTES: usize = 64 * 1024;

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() {
    let mib: u64 = std::env::var("REBALANCE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut cluster = ProcessCluster::start(3).await;
        cluster.create_topic("rebalance", PARTITIONS, 3).await;
        // With replication factor 3 on 3 brokers every broker holds all data.
        let target = mib << 20;
        println!("writing {mib} MiB (held by each of the 3 brokers)");
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap())
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "262144")
            .create()
            .expect("producer");
        let value = vec![b'x'; VALUE_BYTES];
        let mut pending = VecDeque::new();
        let started = Instant::now();
        let records = target / VALUE_BYTES as u64;
        for n in 0..records {
            let key = n.to_string();
            loop {
                let record = FutureRecord::to("rebalance").key(&key).payload(&value);
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back(delivery);
                        break;
                    }
                    Err(_) => {
                        if let Some(d) = pending.pop_front() {
                            let _ = d.await;
                        }
                    }
                }
            }
            if n % (records / 10).max(1) == 0 {
                println!("  {}%", n * 100 / records);
            }
        }
        for d in pending {
            d.await.expect("delivered").expect("acknowledged");
        }
        println!(
            "written in {:.1} s; adding brokers 3 and 4",
            started.elapsed().as_secs_f64()
        );
        let before: Vec<u64> = (0..3).map(|b| disk_bytes(&cluster.data_dir(b))).collect();
        let new = [cluster.add_broker(), cluster.add_broker()];
        cluster
            .wait_for("five brokers registered", Duration::from_secs(60), |c| async move {
                let d = c.describe_cluster().await?;
                (d.brokers.iter().filter(|b| b.alive).count() == 5).then_some(())
            })
            .await;
        let mut admin = cluster.admin(0).await.unwrap();
        let start = Instant::now();
        let plan = admin
            .rebalance(RebalanceRequest { dry_run: false })
            .await
            .expect("rebalance")
            .into_inner();
        println!(
            "plan: {} replica moves, {} bytes to copy",
            plan.moves.len(),
            plan.bytes_to_move
        );
        loop {
            let status = admin
                .rebalance_status(RebalanceStatusRequest {})
                .await
                .expect("status")
                .into_inner();
            if status.balanced {
                break;
            }
            println!("  {:.0} s: {}", start.elapsed().as_secs_f64(), status.summary);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let took = start.elapsed();
        let moved: u64 = new.iter().map(|b| disk_bytes(&cluster.data_dir(*b))).sum();
        let after: Vec<u64> = (0..3).map(|b| disk_bytes(&cluster.data_dir(b))).collect();
        println!("brokers 0-2 on disk before: {before:?} bytes, after: {after:?} bytes");
        println!(
            "rebalanced 3 -> 5 brokers holding {mib} MiB each in {:.1} s: {} replica moves, {:.2} GiB on the new brokers ({:.0} MB/s)",
            took.as_secs_f64(),
            plan.moves.len(),
            moved as f64 / f64::from(1u32 << 30),
            moved as f64 / took.as_secs_f64() / 1e6
        );
    });
}
