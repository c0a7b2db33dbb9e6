//! Three `strand broker` processes; each partition's leader is killed with SIGKILL in turn while
//! a writer produces with acknowledgement from a majority. Afterwards every acknowledged record
//! is present exactly once, in order, on every replica.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strand_e2e::{ProcessCluster, Rng, batch};
use tokio::sync::RwLock;

const PARTITIONS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acked_records_survive_leader_kills() {
    let (seed, mut rng) = Rng::seeded();
    println!("seed = {seed} (replay with E2E_SEED={seed})");
    let cluster = Arc::new(RwLock::new(ProcessCluster::start(3).await));
    cluster
        .read()
        .await
        .create_topic("e2e", PARTITIONS, 3)
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked: Vec<Vec<String>> = vec![Vec::new(); PARTITIONS as usize];
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let p = (i % u64::from(PARTITIONS)) as u32;
                // Each attempt is a new record: a retry after a lost acknowledgement must not be
                // counted as a duplicate of a record that did get in.
                let mut attempt = 0;
                loop {
                    let value = format!("w{i}-a{attempt}");
                    let offset = cluster
                        .read()
                        .await
                        .produce_once("e2e", p, batch(std::slice::from_ref(&value)))
                        .await;
                    if offset.is_some() {
                        acked[p as usize].push(value);
                        break;
                    }
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                i += 1;
            }
            acked
        })
    };

    let mut schedule = Vec::new();
    for p in 0..PARTITIONS {
        tokio::time::sleep(Duration::from_millis(500 + rng.next(1000))).await;
        let leader = {
            let c = cluster.read().await;
            c.wait_for("a leader", Duration::from_secs(30), |c| async move {
                c.describe("e2e").await?.partitions[p as usize].leader
            })
            .await
        };
        let down_ms = 300 + rng.next(1500);
        schedule.push(format!(
            "partition {p}: kill -9 broker {leader}, restart after {down_ms} ms"
        ));
        println!("{}", schedule.last().unwrap());
        cluster.write().await.kill(leader);
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        cluster.write().await.restart(leader);
        cluster
            .read()
            .await
            .wait_for(
                "the restarted broker to report",
                Duration::from_secs(30),
                |c| async move {
                    let d = c.describe_cluster().await?;
                    d.brokers.iter().all(|b| b.alive).then_some(())
                },
            )
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let acked = writer.await.unwrap();
    println!("schedule: {schedule:?}");
    println!(
        "acknowledged per partition: {:?}",
        acked.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        acked.iter().all(|a| a.len() > 5),
        "the writer made progress on every partition"
    );

    let cluster = cluster.read().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for b in 0..3 {
        for p in 0..PARTITIONS {
            let want = &acked[p as usize];
            let held = loop {
                let held = cluster.values(b, "e2e", p).await.unwrap_or_default();
                let have_all = want.iter().all(|v| held.contains(v));
                if have_all || Instant::now() > deadline {
                    break held;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let mut unique = held.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                held.len(),
                "broker {b} partition {p} holds a record twice (seed {seed})"
            );
            let positions: Vec<usize> = want
                .iter()
                .map(|v| {
                    held.iter().position(|h| h == v).unwrap_or_else(|| {
                        panic!("broker {b} partition {p} lost acknowledged {v} (seed {seed})")
                    })
                })
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "broker {b} partition {p} reorders records (seed {seed})"
            );
        }
    }
}
