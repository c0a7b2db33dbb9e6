//! A simulated cluster: three brokers and a client as hosts of one turmoil simulation, in one
//! thread, on simulated time and a simulated network. A seeded schedule crashes and restarts
//! brokers (their files stay, as after kill -9, or are gone, as when a pod comes back on an
//! empty volume), cuts them off from the others, and slows links, while the client writes through the brokers' produce call as an idempotent producer
//! (each partition's batches in sequence, each sent again until it is acknowledged). Then
//! every fault is healed and the checker reads every replica: every acknowledged record at its
//! offset, no record twice, replicas alike.
//!
//! `STRAND_SIM_SEEDS=N` runs N seeds (default 4), `STRAND_SIM_SEED=S` one seed; the seed and
//! its schedule are printed. Time, the network and the schedule are the simulation's; the
//! brokers' disks are real files, and openraft's election timeouts and a few hash maps draw on
//! the process's randomness, so a seed replays the same schedule of faults but not always the
//! same interleaving of the brokers' work.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::{CreateTopicRequest, DescribeClusterRequest, DescribeTopicRequest};
use strand_proto::broker::ProduceRequest;
use strand_proto::broker::broker_client::BrokerClient;
use strand_server::{
    BalancingSettings, Broker, BrokerConfig, GrpcConnection, KafkaSettings, RaftTuning, Transport,
};
use tonic::transport::{Channel, Endpoint};

const BROKERS: u32 = 3;
const PORT: u16 = 9000;
const TOPIC: &str = "ledger";
const PARTITIONS: u32 = 2;
/// Faults are injected from the end of the warm-up to the end of the chaos.
const WARM_UP: Duration = Duration::from_secs(5);
const CHAOS_END: Duration = Duration::from_secs(40);
/// How long, after the chaos, every replica has to hold every acknowledged record.
const CONVERGE: Duration = Duration::from_secs(120);
/// How long one call of the client may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

fn host(b: u32) -> String {
    format!("broker-{b}")
}

/// Channels over the simulated network.
fn dial() -> strand_node::network::Dial {
    Arc::new(|endpoint: Endpoint| {
        endpoint.connect_with_connector_lazy(tower::service_fn(
            |uri: tonic::codegen::http::Uri| async move {
                let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
                let stream = turmoil::net::TcpStream::connect(authority).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            },
        ))
    })
}

fn channel(b: u32) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{}:{PORT}", host(b))).unwrap();
    dial()(endpoint)
}

fn config(dir: &Path, b: u32) -> BrokerConfig {
    let unused = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    BrokerConfig {
        broker_id: b,
        data_dir: dir.join(host(b)),
        grpc_listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)),
        grpc_advertised: format!("{}:{PORT}", host(b)),
        peer_source_address: None,
        // Registered and advertised, though not served in the simulation.
        kafka_advertised: format!("{}:9092", host(b)),
        kafka_listen: unused,
        kafka: KafkaSettings::default(),
        http_listen: unused,
        http_advertised: format!("{}:8080", host(b)),
        seeds: (0..BROKERS)
            .map(|b| format!("{}:{PORT}", host(b)))
            .collect(),
        rack: None,
        tuning: RaftTuning::default(),
        balancing: BalancingSettings::default(),
        disk_reserve_bytes: 0,
        grpc_tls: None,
        grpc_access: Default::default(),
        http_tls: None,
    }
}

/// Whether each broker said it is ready (`/readyz`) when last asked, as Kubernetes watches it:
/// a disk is emptied only while every broker is, as a StatefulSet's rolling update and a
/// PodDisruptionBudget wait for it. Emptying a second disk before the first broker's new
/// incarnation holds its replicas again could lose what only those two disks held.
type Ready = Rc<RefCell<[bool; BROKERS as usize]>>;

/// Runs broker `b` until its host is crashed, saying in `ready` whether it is ready.
async fn broker(dir: PathBuf, b: u32, ready: Ready) -> turmoil::Result {
    let listener =
        turmoil::net::TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
    let incoming = stream::unfold(listener, |listener| async move {
        let accepted = listener
            .accept()
            .await
            .map(|(stream, _)| GrpcConnection::new(stream));
        Some((accepted, listener))
    });
    let transport = Transport::Other {
        dial: dial(),
        incoming: Box::pin(incoming),
    };
    let broker = Broker::start_with(config(&dir, b), transport).await?;
    let mut ticks = 0u64;
    loop {
        let not_ready = strand_server::not_ready(broker.inner());
        ready.borrow_mut()[b as usize] = not_ready.is_none();
        ticks += 1;
        // Every 2 s, with STRAND_SIM_LOG=sim=debug: the metadata group as this broker sees it.
        if ticks.is_multiple_of(20) {
            use openraft::async_runtime::WatchReceiver;
            let watch = broker.inner().cluster.raft().metrics();
            let m = watch.borrow_watched();
            tracing::debug!(
                target: "sim",
                state = ?m.state,
                leader = ?m.current_leader,
                vote = %m.vote,
                applied = ?m.last_applied,
                membership = %m.membership_config,
                ?not_ready,
                "metadata group"
            );
            for (group, replica) in broker.inner().registry.partitions() {
                let watch = replica.raft.metrics();
                let m = watch.borrow_watched();
                tracing::debug!(
                    target: "sim",
                    %group,
                    state = ?m.state,
                    leader = ?m.current_leader,
                    vote = %m.vote,
                    last = ?m.last_log_index,
                    applied = ?m.last_applied.as_ref().map(|l| l.index),
                    membership = %m.membership_config,
                    committed_membership = %m.committed_membership_config,
                    "partition group"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the client wrote: acknowledged records by partition and offset.
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<(u32, i64), String>,
    /// Attempts refused or unanswered, each sent again.
    refused: usize,
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

/// The leader of each partition, as some broker describes the topic.
async fn leaders() -> Option<Vec<Option<u32>>> {
    for b in 0..BROKERS {
        let mut admin = AdminClient::new(channel(b));
        let request = DescribeTopicRequest { name: TOPIC.into() };
        if let Ok(d) = timed(admin.describe_topic(request)).await {
            return Some(d.partitions.iter().map(|p| p.leader).collect());
        }
    }
    None
}

/// The records of `partition` as broker `b`'s replica holds them, by offset.
async fn replica(b: u32, partition: u32) -> Result<BTreeMap<i64, String>, String> {
    let read = strand_e2e::replica_records(channel(b), TOPIC, partition);
    // A few calls' time: a replica cut off mid-read is tried again by the checker's loop.
    let read = tokio::time::timeout(CALL_TIMEOUT * 5, read).await;
    let records = read.ok().flatten().ok_or("cannot read the replica")?;
    let mut by_offset = BTreeMap::new();
    for (offset, value) in records {
        if by_offset.insert(offset, value).is_some() {
            return Err(format!("offset {offset} read twice"));
        }
    }
    Ok(by_offset)
}

/// The client's producer id.
const PRODUCER: i64 = 7;

/// Sends `batch` to the leader of `partition` until it is acknowledged, and returns its
/// offset; gives up after [`CHAOS_END`] and [`CONVERGE`] of trying, longer than the faults
/// last.
async fn write(partition: u32, batch: Vec<u8>, ledger: &RefCell<Ledger>) -> Result<i64, String> {
    let give_up = tokio::time::Instant::now() + CHAOS_END + CONVERGE;
    let mut why = String::new();
    while tokio::time::Instant::now() < give_up {
        let leader = leaders()
            .await
            .and_then(|l| l.get(partition as usize).copied().flatten());
        if let Some(leader) = leader {
            let mut client = BrokerClient::new(channel(leader));
            let request = ProduceRequest {
                topic: TOPIC.into(),
                partition,
                batch: batch.clone().into(),
            };
            match timed(client.produce(request)).await {
                Ok(r) => return Ok(r.base_offset),
                // The broker lost track of the producer's sequence: a Kafka client stops here
                // (librdkafka's fatal "sequence desynchronization"), however often it retries.
                Err(e) if e.contains("out of order sequence") => {
                    return Err(format!(
                        "broker {leader} refused it as out of sequence: {e}"
                    ));
                }
                Err(e) => {
                    ledger.borrow_mut().refused += 1;
                    why = format!("broker {leader}: {e}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(why)
}

/// Writes until the chaos ends, then waits for every replica to hold every acknowledged
/// record and checks them.
async fn client(ledger: Rc<RefCell<Ledger>>) -> turmoil::Result {
    let started = tokio::time::Instant::now();
    // The cluster forms.
    loop {
        let mut admin = AdminClient::new(channel(0));
        if let Ok(d) = timed(admin.describe_cluster(DescribeClusterRequest {})).await
            && d.brokers.len() == BROKERS as usize
            && d.controller_id.is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{:?}: the cluster formed", turmoil::sim_elapsed());
    loop {
        let mut admin = AdminClient::new(channel(0));
        let request = CreateTopicRequest {
            name: TOPIC.into(),
            partitions: PARTITIONS,
            replication_factor: BROKERS,
            ..Default::default()
        };
        if timed(admin.create_topic(request)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{:?}: topic created", turmoil::sim_elapsed());
    // An idempotent producer: each partition's batches in sequence, each sent again until it
    // is acknowledged, as a Kafka client retries.
    let mut sequence = [0i32; PARTITIONS as usize];
    while started.elapsed() < CHAOS_END {
        for p in 0..PARTITIONS {
            let seq = sequence[p as usize];
            let value = format!("p{p}-{seq:06}");
            let batch = strand_log::build_producer_batch(
                (PRODUCER, 0, seq),
                &[(None, Some(value.as_bytes()), 1_700_000_000_000)],
            );
            let offset = write(p, batch, &ledger)
                .await
                .map_err(|why| format!("{value} (sequence {seq}) was never acknowledged: {why}"))?;
            let previous = ledger.borrow_mut().acked.insert((p, offset), value.clone());
            if let Some(previous) = previous {
                return Err(format!(
                    "{TOPIC}-{p}: offset {offset} acknowledged for {previous} and again for {value}"
                )
                .into());
            }
            sequence[p as usize] += 1;
        }
    }
    println!("{:?}: writes done, checking", turmoil::sim_elapsed());
    // Every fault is healed now; the replicas converge.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let acked = ledger.borrow().acked.clone();
    loop {
        match check(&acked).await {
            Ok(()) => return Ok(()),
            Err(why) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("after the faults were healed: {why}").into());
            }
            Err(why) => {
                println!("{:?}: {why}", turmoil::sim_elapsed());
                tokio::time::sleep(Duration::from_millis(500)).await
            }
        }
    }
}

/// Every acknowledged record at its offset on every replica, no record twice, replicas alike.
async fn check(acked: &BTreeMap<(u32, i64), String>) -> Result<(), String> {
    for p in 0..PARTITIONS {
        let mut replicas = Vec::new();
        for b in 0..BROKERS {
            let records = replica(b, p)
                .await
                .map_err(|e| format!("broker {b}: {e}"))?;
            let mut seen = HashSet::new();
            if let Some(twice) = records.values().find(|v| !seen.insert(*v)) {
                return Err(format!("{TOPIC}-{p} on broker {b} holds {twice} twice"));
            }
            for ((_, offset), value) in acked.range((p, i64::MIN)..=(p, i64::MAX)) {
                if records.get(offset) != Some(value) {
                    return Err(format!(
                        "{TOPIC}-{p} on broker {b}: acknowledged {value} at offset {offset}, found {:?}",
                        records.get(offset)
                    ));
                }
            }
            replicas.push(records);
        }
        if replicas.iter().any(|r| *r != replicas[0]) {
            let lengths: Vec<usize> = replicas.iter().map(BTreeMap::len).collect();
            return Err(format!(
                "{TOPIC}-{p}: the replicas differ (records held: {lengths:?})"
            ));
        }
    }
    Ok(())
}

/// What a seed did: its faults, and the client's writes.
struct Outcome {
    faults: usize,
    /// Of them, crashes after which the broker came back on an empty disk.
    emptied: usize,
    acked: usize,
    refused: usize,
}

/// Runs one seed: the schedule of faults, then the check.
fn run(seed: u64) -> Result<Outcome, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(CHAOS_END + CONVERGE + Duration::from_secs(60))
        .max_message_latency(Duration::from_millis(20))
        .tcp_capacity(4096)
        .build();
    let ready: Ready = Rc::default();
    for b in 0..BROKERS {
        let dir = dir.path().to_path_buf();
        let ready = ready.clone();
        sim.host(host(b), move || broker(dir.clone(), b, ready.clone()));
    }
    let ledger = Rc::new(RefCell::new(Ledger::default()));
    sim.client("client", client(ledger.clone()));
    let mut rng = strand_e2e::Rng::new(seed);
    let mut schedule = Vec::new();
    let mut faults = 0;
    let mut emptied = 0;
    let mut next_fault = WARM_UP;
    // A crashed broker, when it comes back and whether on an empty disk; a cut-off broker and
    // when it is reconnected.
    let mut down: Option<(u32, Duration, bool)> = None;
    let mut cut: Option<(u32, Duration)> = None;
    let mut slow: Option<(u32, u32, Duration)> = None;
    // STRAND_SIM_QUIET=1: no faults.
    let quiet = std::env::var("STRAND_SIM_QUIET").is_ok_and(|v| v == "1");
    let others = |b: u32| (0..BROKERS).filter(move |o| *o != b).map(host);
    loop {
        let now = sim.elapsed();
        let healing = now >= CHAOS_END;
        if let Some((b, until, empty)) = down
            && (healing || now >= until)
        {
            if empty {
                std::fs::remove_dir_all(dir.path().join(host(b)))
                    .map_err(|e| format!("cannot empty broker {b}'s disk: {e}"))?;
            }
            sim.bounce(host(b));
            let how = if empty { " on an empty disk" } else { "" };
            schedule.push(format!("{now:?}: broker {b} restarted{how}"));
            down = None;
        }
        if let Some((b, until)) = cut
            && (healing || now >= until)
        {
            for o in others(b) {
                sim.release(host(b), o);
            }
            schedule.push(format!("{now:?}: broker {b} reconnected"));
            cut = None;
        }
        if let Some((a, b, until)) = slow
            && (healing || now >= until)
        {
            sim.set_link_latency(host(a), host(b), Duration::ZERO);
            schedule.push(format!("{now:?}: link {a}-{b} back to normal"));
            slow = None;
        }
        if !healing && now >= next_fault && !quiet {
            let b = rng.next(u64::from(BROKERS)) as u32;
            let hold = Duration::from_millis(300 + rng.next(4000));
            match rng.next(4) {
                0 if down.is_none() => {
                    sim.crash(host(b));
                    ready.borrow_mut()[b as usize] = false;
                    schedule.push(format!("{now:?}: broker {b} crashed for {hold:?}"));
                    down = Some((b, now + hold, false));
                    faults += 1;
                }
                3 if down.is_none() && ready.borrow().iter().all(|r| *r) => {
                    sim.crash(host(b));
                    ready.borrow_mut()[b as usize] = false;
                    schedule.push(format!(
                        "{now:?}: broker {b} crashed for {hold:?}, to come back on an empty disk"
                    ));
                    down = Some((b, now + hold, true));
                    faults += 1;
                    emptied += 1;
                }
                1 if cut.is_none() => {
                    // Held, not dropped: TCP sends again what a cut link lost, so a connection
                    // delivers every byte in order once the cut heals (or is reset). Dropping
                    // turmoil's segments instead leaves holes in a stream, which no network
                    // does, and can stall an HTTP/2 connection forever (a lost WINDOW_UPDATE).
                    for o in others(b) {
                        sim.hold(host(b), o);
                    }
                    schedule.push(format!("{now:?}: broker {b} cut off for {hold:?}"));
                    cut = Some((b, now + hold));
                    faults += 1;
                }
                2 if slow.is_none() => {
                    let to = (b + 1 + rng.next(u64::from(BROKERS) - 1) as u32) % BROKERS;
                    let latency = Duration::from_millis(50 + rng.next(400));
                    sim.set_link_latency(host(b), host(to), latency);
                    schedule.push(format!(
                        "{now:?}: link {b}-{to} slowed to {latency:?} for {hold:?}"
                    ));
                    slow = Some((b, to, now + hold));
                    faults += 1;
                }
                _ => {}
            }
            next_fault = now + Duration::from_millis(500 + rng.next(2500));
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(format!("{e}\nschedule:\n{}", schedule.join("\n"))),
        }
    }
    let ledger = ledger.borrow();
    Ok(Outcome {
        faults,
        emptied,
        acked: ledger.acked.len(),
        refused: ledger.refused,
    })
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("STRAND_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count: u64 = std::env::var("STRAND_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let (first, _) = strand_e2e::Rng::seeded();
    (0..count).map(|i| first.wrapping_add(i)).collect()
}

/// Log lines stamped with the simulation's time.
struct SimElapsed;

impl tracing_subscriber::fmt::time::FormatTime for SimElapsed {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "[{:?}]", turmoil::sim_elapsed().unwrap_or_default())
    }
}

#[test]
fn acknowledged_writes_survive_simulated_crashes_and_partitions() {
    if let Ok(filter) = std::env::var("STRAND_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_timer(SimElapsed)
            .with_ansi(false)
            .with_test_writer()
            .try_init();
    }
    for seed in seeds() {
        let wall = std::time::Instant::now();
        match run(seed) {
            Ok(o) => println!(
                "seed {seed}: {} faults ({} crashes onto an empty disk), {} writes acknowledged, {} attempts refused or unanswered and sent again, checked in {:?} of wall time",
                o.faults,
                o.emptied,
                o.acked,
                o.refused,
                wall.elapsed()
            ),
            Err(why) => panic!("seed {seed} (replay with STRAND_SIM_SEED={seed}): {why}"),
        }
    }
}
