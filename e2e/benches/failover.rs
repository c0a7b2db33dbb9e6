//! Failover time: from `kill -9` of a partition leader to the partition taking writes again,
//! over 20 kills. Needs a release build of `strand`:
//! `cargo build --release -p strand && cargo bench -p strand-e2e --bench failover`.

use std::time::{Duration, Instant};

use strand_e2e::{ProcessCluster, batch};

const KILLS: u32 = 20;
const PARTITIONS: u32 = 6;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut cluster = ProcessCluster::start(3).await;
        cluster.create_topic("failover", PARTITIONS, 3).await;
        let mut times = Vec::new();
        let mut skipped = 0;
        for kill in 0..KILLS {
            let p = kill % PARTITIONS;
            let leader = cluster
                .wait_for("a leader", Duration::from_secs(60), |c| async move {
                    let d = c.describe("failover").await?;
                    let all_led = d.partitions.iter().all(|p| p.leader.is_some());
                    let all_alive = c.describe_cluster().await?.brokers.iter().all(|b| b.alive);
                    if all_led && all_alive {
                        d.partitions[p as usize].leader
                    } else {
                        None
                    }
                })
                .await;
            // Make sure the leader really leads before timing.
            let value = vec![format!("before-{kill}")];
            let mut last_error = String::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match cluster.try_produce_to(leader, "failover", p, batch(&value)).await {
                    Ok(_) => break,
                    Err(e) => last_error = e,
                }
                if Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if Instant::now() > deadline {
                println!("kill {:>2}: partition {p}: broker {leader} took no write for 20 s ({last_error}); round skipped", kill + 1);
                skipped += 1;
                continue;
            }
            let started = Instant::now();
            cluster.kill(leader);
            // Offer the write to every surviving replica until one leads and commits it.
            let value = vec![format!("after-{kill}")];
            'retry: loop {
                for b in cluster.alive() {
                    if cluster
                        .produce_to(b, "failover", p, batch(&value))
                        .await
                        .is_some()
                    {
                        break 'retry;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let elapsed = started.elapsed();
            println!(
                "kill {:>2}: partition {p}, broker {leader}: writes again after {} ms",
                kill + 1,
                elapsed.as_millis()
            );
            times.push(elapsed);
            cluster.restart(leader);
        }
        times.sort();
        let median = (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2;
        println!(
            "failover over {} kills: median {} ms, max {} ms, min {} ms ({skipped} rounds skipped)",
            times.len(),
            median.as_millis(),
            times.last().unwrap().as_millis(),
            times[0].as_millis()
        );
    });
}
