//! The process-level fault suite: three `strand broker` processes, each on a loopback address
//! and a small disk of its own, an idempotent acks=all producer (librdkafka) writing all the
//! while, and a seeded schedule of faults, one broker at a time: kill -9 and restart, SIGSTOP
//! and SIGCONT, a restart on an empty disk, a full disk, and the network between it and one or
//! both of the others cut. After each fault the cluster must become whole again by itself.
//! Afterwards every acknowledged record is on every replica at its acknowledged offset, no
//! record is there twice, offsets have no gaps and the replicas hold the same records.
//!
//! `STRAND_FAULTS=N` sets how many faults (default 8, a CI run's worth); `E2E_SEED` replays a
//! schedule. The disk and network faults need root (mount, iptables); without it the schedule
//! holds only the others, and says so.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rdkafka::ClientConfig;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use strand_e2e::{ClusterOptions, ProcessCluster, Rng};
use tokio::sync::RwLock;

const TOPIC: &str = "ledger";
const PARTITIONS: u32 = 3;
const BROKERS: u32 = 3;
/// Records the producer has sent and not yet had an answer for, at most.
const IN_FLIGHT: usize = 200;
/// How long the cluster may take to become whole after a fault.
const RECOVERY_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// kill -9, then a restart on the same disk.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// kill -9, the data directory emptied, a restart.
    EmptyDisk,
    /// The disk filled to its last MiB, then freed.
    FullDisk,
    /// Packets to and from one or both other brokers dropped, then let through.
    Partition,
}

/// The time of day (UTC), as the brokers' logs show it.
fn time_of_day() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// What the producer saw: acknowledged records (partition, offset, value) and failed ones.
#[derive(Default)]
struct Outcome {
    acked: Vec<(u32, i64, String)>,
    /// How many records failed, by the error the client gave.
    failed: BTreeMap<String, usize>,
    /// The producer's fatal error, if it had one.
    fatal: Option<String>,
}

/// Counts the answer for record `value` to partition `p`.
fn settle<E>(
    outcome: &mut Outcome,
    (p, value, result): (u32, String, Result<OwnedDeliveryResult, E>),
) {
    match result {
        Ok(Ok(delivery)) => outcome.acked.push((p, delivery.offset, value)),
        Ok(Err((e, _))) => *outcome.failed.entry(e.to_string()).or_default() += 1,
        Err(_) => *outcome.failed.entry("canceled".into()).or_default() += 1,
    }
}

/// Sends records to every partition in turn, up to [`IN_FLIGHT`] at once, until `stop`; then
/// waits for the answers to what it sent.
async fn produce(producer: FutureProducer, stop: Arc<AtomicBool>) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending = FuturesUnordered::new();
    let mut n = 0u64;
    let mut fatal_seen = false;
    while !stop.load(Ordering::SeqCst) {
        if pending.len() >= IN_FLIGHT {
            if let Some(done) = pending.next().await {
                settle(&mut outcome, done);
            }
            continue;
        }
        let p = (n % u64::from(PARTITIONS)) as u32;
        let value = format!("v{n:08}");
        let record = FutureRecord::<(), _>::to(TOPIC)
            .partition(p as i32)
            .payload(&value);
        match producer.send_result(record) {
            Ok(delivery) => pending.push(async move { (p, value, delivery.await) }),
            Err((e, _)) => {
                // Said once, when first seen, so the brokers' logs can be read at that time.
                if !fatal_seen && let Some((code, reason)) = producer.client().fatal_error() {
                    fatal_seen = true;
                    println!(
                        "the producer failed (seen {} UTC): {code:?}: {reason}",
                        time_of_day()
                    );
                }
                // The client's queue is full (or the producer failed): wait for answers.
                *outcome
                    .failed
                    .entry(format!("not queued: {e}"))
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        n += 1;
        // About a thousand records a second: enough to have batches in flight through every
        // fault, little enough for the small disks.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while let Some(done) = pending.next().await {
        settle(&mut outcome, done);
    }
    if let Some((code, reason)) = producer.client().fatal_error() {
        outcome.fatal = Some(format!("{code:?}: {reason}"));
    }
    outcome
}

/// Waits until every broker is ready (registered, every replica caught up) and every partition
/// has a leader. A broker that stopped by itself (as one does when its metadata log cannot be
/// written) is started again, as Kubernetes would; how many were is counted in `restarts`.
async fn wait_whole(cluster: &RwLock<ProcessCluster>, after: &str, restarts: &mut usize) {
    let deadline = Instant::now() + RECOVERY_LIMIT;
    loop {
        for (b, status) in cluster.write().await.exited() {
            println!("broker {b} stopped by itself ({status}): started again");
            cluster.write().await.restart(b);
            *restarts += 1;
        }
        let cluster = cluster.read().await;
        let not_ready: Vec<String> = (0..BROKERS)
            .filter_map(|b| {
                cluster
                    .readyz(b)
                    .err()
                    .map(|why| format!("broker {b}: {why}"))
            })
            .collect();
        let why = if not_ready.is_empty() {
            match cluster.describe(TOPIC).await {
                Some(d) if d.partitions.iter().all(|p| p.leader.is_some()) => return,
                Some(d) => format!("partitions without a leader: {:?}", d.partitions),
                None => "no broker describes the topic".to_string(),
            }
        } else {
            not_ready.join("; ")
        };
        assert!(
            Instant::now() < deadline,
            "the cluster did not become whole after {after}: {why} (logs in {})",
            cluster.dir().display()
        );
        drop(cluster);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs one fault on broker `b` and returns what it did, in words.
async fn inject(cluster: &RwLock<ProcessCluster>, rng: &mut Rng, fault: Fault, b: u32) -> String {
    let hold =
        |rng: &mut Rng, from: u64, to: u64| Duration::from_millis(from + rng.next(to - from));
    match fault {
        Fault::Kill => {
            let down = hold(rng, 200, 2000);
            cluster.write().await.kill(b);
            tokio::time::sleep(down).await;
            cluster.write().await.restart(b);
            format!("kill -9 broker {b}, restarted after {down:?}")
        }
        Fault::Pause => {
            let paused = hold(rng, 500, 4000);
            cluster.read().await.pause(b);
            tokio::time::sleep(paused).await;
            cluster.read().await.resume(b);
            format!("SIGSTOP broker {b}, SIGCONT after {paused:?}")
        }
        Fault::EmptyDisk => {
            let down = hold(rng, 100, 1000);
            let mut c = cluster.write().await;
            c.kill(b);
            c.wipe(b);
            drop(c);
            tokio::time::sleep(down).await;
            cluster.write().await.restart(b);
            format!("kill -9 broker {b}, emptied its disk, restarted after {down:?}")
        }
        Fault::FullDisk => {
            let full = hold(rng, 1000, 4000);
            cluster.read().await.fill_disk(b, 1 << 20);
            tokio::time::sleep(full).await;
            cluster.read().await.free_disk(b);
            format!("filled broker {b}'s disk for {full:?}")
        }
        Fault::Partition => {
            let cut = hold(rng, 1000, 5000);
            let others: Vec<u32> = (0..BROKERS).filter(|o| *o != b).collect();
            let apart = if rng.next(2) == 0 {
                others
            } else {
                vec![others[rng.next(others.len() as u64) as usize]]
            };
            for o in &apart {
                cluster.write().await.cut(b, *o);
            }
            tokio::time::sleep(cut).await;
            cluster.write().await.heal();
            format!("cut broker {b} off from {apart:?} for {cut:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_records_survive_a_schedule_of_faults() {
    let (seed, mut rng) = Rng::seeded();
    let faults: usize = std::env::var("STRAND_FAULTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8);
    println!("seed = {seed} (replay with E2E_SEED={seed}), {faults} faults");
    let root = is_root();
    let mut kinds = vec![Fault::Kill, Fault::Pause, Fault::EmptyDisk];
    if root {
        kinds.extend([Fault::FullDisk, Fault::Partition]);
    } else {
        println!("not root: no full disks and no network partitions in this schedule");
    }

    let dir = tempfile::tempdir().unwrap();
    // The disk guard's reserve below what a full disk leaves, so that the brokers see it.
    let settings = dir.path().join("settings.yaml");
    std::fs::write(&settings, "disk_reserve_bytes: 8388608\n").unwrap();
    let options = ClusterOptions {
        extra_args: vec!["--config".into(), settings.display().to_string()],
        own_addresses: root,
        disk_bytes: root.then_some(256 << 20),
    };
    let cluster = ProcessCluster::start_with_options(BROKERS, options).await;
    cluster.create_topic(TOPIC, PARTITIONS, 3).await;
    let cluster = RwLock::new(cluster);
    let mut restarts = 0;
    wait_whole(&cluster, "the topic was created", &mut restarts).await;
    let cluster = Arc::new(cluster);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.read().await.bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "300000")
        .set("retry.backoff.ms", "100")
        .create()
        .expect("producer");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(produce(producer, stop.clone()));

    let mut schedule = Vec::new();
    let mut counts: BTreeMap<Fault, usize> = BTreeMap::new();
    for i in 0..faults {
        tokio::time::sleep(Duration::from_millis(200 + rng.next(800))).await;
        let fault = kinds[rng.next(kinds.len() as u64) as usize];
        let b = rng.next(u64::from(BROKERS)) as u32;
        let did = inject(&cluster, &mut rng, fault, b).await;
        println!("fault {} (ended {} UTC): {did}", i + 1, time_of_day());
        schedule.push(did);
        *counts.entry(fault).or_default() += 1;
        wait_whole(&cluster, &schedule[i], &mut restarts).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let outcome = writer.await.unwrap();
    println!(
        "faults: {counts:?}; brokers that stopped by themselves and were started again: {restarts}"
    );
    println!("{} records acknowledged", outcome.acked.len());
    for (error, count) in &outcome.failed {
        println!("{count} records not acknowledged: {error}");
    }
    // A producer that failed is reported after the records are checked, so that its failure
    // says whether anything acknowledged was lost with it.
    if let Some(fatal) = &outcome.fatal {
        println!("the idempotent producer failed: {fatal}");
    }

    let cluster = cluster.read().await;
    // Acknowledged at an offset, and acknowledged without one: librdkafka reports a batch
    // its retry found already written (DUPLICATE_SEQUENCE_NUMBER) as delivered at -1001.
    let mut want: Vec<BTreeMap<i64, &str>> = vec![BTreeMap::new(); PARTITIONS as usize];
    let mut somewhere: Vec<Vec<&str>> = vec![Vec::new(); PARTITIONS as usize];
    for (p, offset, value) in &outcome.acked {
        if *offset >= 0 {
            want[*p as usize].insert(*offset, value);
        } else {
            somewhere[*p as usize].push(value);
        }
    }
    println!(
        "{} acknowledged without an offset",
        somewhere.iter().map(Vec::len).sum::<usize>()
    );
    assert!(
        want.iter().all(|w| w.len() > 10),
        "the producer made progress on every partition (seed {seed})"
    );
    let deadline = Instant::now() + RECOVERY_LIMIT;
    let mut first: Vec<Option<Vec<(i64, String)>>> = vec![None; PARTITIONS as usize];
    let mut duplicates = 0;
    for b in 0..BROKERS {
        for p in 0..PARTITIONS {
            let want = &want[p as usize];
            let held = loop {
                let held = cluster.records(b, TOPIC, p).await.unwrap_or_default();
                let at: HashMap<i64, &str> = held.iter().map(|(o, v)| (*o, v.as_str())).collect();
                let values: std::collections::HashSet<&str> = at.values().copied().collect();
                let missing: Vec<_> = want
                    .iter()
                    .filter(|(offset, value)| at.get(*offset) != Some(*value))
                    .map(|(offset, value)| (*offset, *value))
                    .chain(
                        somewhere[p as usize]
                            .iter()
                            .filter(|value| !values.contains(*value))
                            .map(|value| (-1, *value)),
                    )
                    .take(5)
                    .collect();
                if missing.is_empty() {
                    break held;
                }
                assert!(
                    Instant::now() < deadline,
                    "broker {b} partition {p} lacks acknowledged records (offset, value) \
                     {missing:?} (seed {seed}; schedule {schedule:?})"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let mut seen = HashMap::new();
            for (offset, value) in &held {
                if let Some(before) = seen.insert(value.as_str(), *offset) {
                    duplicates += 1;
                    println!("broker {b} partition {p}: {value} at {before} and at {offset}");
                }
            }
            assert!(
                held.windows(2).all(|w| w[1].0 == w[0].0 + 1),
                "broker {b} partition {p} has a gap in its offsets (seed {seed})"
            );
            match &first[p as usize] {
                None => first[p as usize] = Some(held),
                Some(other) => {
                    let common = other.len().min(held.len());
                    assert_eq!(
                        other[..common],
                        held[..common],
                        "broker {b} partition {p} differs from broker 0 (seed {seed})"
                    );
                }
            }
        }
    }
    assert_eq!(
        duplicates, 0,
        "records stored twice (seed {seed}; schedule {schedule:?})"
    );
    println!(
        "checked: every acknowledged record on all {BROKERS} replicas, no duplicates, no gaps"
    );
    assert_eq!(
        outcome.fatal, None,
        "the idempotent producer failed (seed {seed}; schedule {schedule:?})"
    );
}

/// A broker back on an empty disk answers Kafka clients only once it has caught up with the
/// metadata: before, its first Metadata answer told clients the topics did not exist, and
/// librdkafka failed the records it held for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_back_on_an_empty_disk_answers_metadata_once_it_has_caught_up() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut cluster = ProcessCluster::start(BROKERS).await;
    cluster.create_topic(TOPIC, PARTITIONS, 3).await;
    cluster.kill(2);
    cluster.wipe(2);
    cluster.restart(2);
    // Only the restarted broker, asked as soon as it listens.
    let bootstrap = cluster.bootstrap().rsplit(',').next().unwrap().to_string();
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "10")
        .create()
        .expect("client");
    let metadata = tokio::task::spawn_blocking(move || {
        client.fetch_metadata(Some(TOPIC), Duration::from_secs(60))
    })
    .await
    .unwrap()
    .expect("metadata");
    let topic = &metadata.topics()[0];
    assert_eq!(
        topic.error(),
        None,
        "{bootstrap} answered {:?}",
        topic.error()
    );
    assert_eq!(topic.partitions().len(), PARTITIONS as usize);
}

/// A broker whose metadata log cannot be written (its disk full to the last byte while topics
/// are created) stops with an error, as a Kafka broker halts when its metadata log directory
/// fails, instead of going on with a dead metadata group; started again once there is space,
/// it catches up and is ready. Needs root (a tmpfs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_whose_metadata_log_cannot_be_written_stops_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.yaml");
    std::fs::write(&settings, "disk_reserve_bytes: 0\n").unwrap();
    let options = ClusterOptions {
        extra_args: vec!["--config".into(), settings.display().to_string()],
        own_addresses: false,
        disk_bytes: Some(64 << 20),
    };
    let mut cluster = ProcessCluster::start_with_options(BROKERS, options).await;
    cluster.fill_disk(0, 0);
    // Every topic created is a write to every broker's metadata log.
    let mut created = 0;
    let exited = loop {
        let exited = cluster.exited();
        if !exited.is_empty() {
            break exited;
        }
        assert!(created < 300, "broker 0 went on with a full disk");
        // Asked of broker 1, whose disk has room; the answer does not matter.
        if let Some(mut admin) = cluster.admin(1).await {
            let _ = admin
                .create_topic(strand_proto::admin::CreateTopicRequest {
                    name: format!("t{created}"),
                    partitions: 1,
                    replication_factor: 3,
                    ..Default::default()
                })
                .await;
        }
        created += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exited.len(), 1, "{exited:?}");
    assert_eq!(exited[0].0, 0, "{exited:?}");
    assert!(!exited[0].1.contains("exit status: 0"), "{exited:?}");
    let log = std::fs::read_to_string(cluster.log_path(0)).unwrap();
    assert!(
        log.contains("the metadata group stopped on an error"),
        "broker 0 said why it stopped"
    );
    cluster.free_disk(0);
    cluster.restart(0);
    cluster
        .wait_for(
            "broker 0 ready again, and every broker alive",
            RECOVERY_LIMIT,
            |c| async move {
                let d = c.describe_cluster().await?;
                (c.ready(0) && d.brokers.iter().all(|b| b.alive)).then_some(())
            },
        )
        .await;
}
