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
            // The leader to kill: the one the description names, once it takes a write. The
            // description is built from the brokers' status reports (each second, trusted for
            // 3 s), so just after a restart it can still name the broker that led before; as
            // a Kafka client refreshes its metadata on NOT_LEADER, ask again until the named
            // leader takes the write.
            let value = vec![format!("before-{kill}")];
            let mut last_error = String::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut leader = None;
            while leader.is_none() && Instant::now() < deadline {
                let named = cluster
                    .wait_for("a leader", Duration::from_secs(60), |c| async move {
                        let d = c.describe("failover").await?;
                        let all_led = d.partitions.iter().all(|p| p.leader.is_some());
                        let all_alive =
                            c.describe_cluster().await?.brokers.iter().all(|b| b.alive);
                        if all_led && all_alive {
                            d.partitions[p as usize].leader
                        } else {
                            None
                        }
                    })
                    .await;
                match cluster.try_produce_to(named, "failover", p, batch(&value)).await {
                    Ok(_) => leader = Some(named),
                    Err(e) => {
                        last_error = format!("broker {named}: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            let Some(leader) = leader else {
                println!("kill {:>2}: partition {p}: no named leader took a write for 20 s ({last_error}); round skipped", kill + 1);
                // What every replica says of the partition, for the record.
                for b in cluster.alive() {
                    let answer = cluster.try_produce_to(b, "failover", p, batch(&value)).await;
                    println!("    broker {b}: {answer:?}");
                }
                skipped += 1;
                continue;
            };
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
