//! Balancing with real `strand broker` processes while a Kafka producer (librdkafka, acks=all,
//! idempotent) writes: scaling out and rebalancing, scaling in by decommission, a broker
//! failing for longer than the failure timeout, replication-factor changes, and a rolling
//! restart by SIGTERM. Afterwards a consumer reads every acknowledged record back.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use strand_e2e::{ProcessCluster, Rng, strand_bin};
use strand_proto::admin::UpdateTopicRequest;

/// Long enough for every move of these small topics on a loaded 2-core machine.
const BALANCE_LIMIT: Duration = Duration::from_secs(120);

/// A settings file for every broker of a test.
fn settings(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("settings.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Records read by position: (partition, offset) to value.
type Positions = HashMap<(i32, i64), String>;

/// A producer writing keyed records until stopped, remembering what was acknowledged, and a
/// consumer reading every partition meanwhile, remembering what it saw where.
struct Traffic {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    reader: LiveReader,
    acked: Arc<Mutex<Vec<(i32, i64, String)>>>,
    errors: Arc<Mutex<Vec<String>>>,
    /// The longest a record waited for its acknowledgement, its partition and when it was
    /// sent: records go one at a time, so this is also the longest the producer stood still.
    longest_wait: Arc<Mutex<(Duration, i32, std::time::SystemTime)>>,
}

/// A kcat consumer reading every partition of a topic from the start, without a consumer
/// group: a group would create the consumer offsets topic, whose replicas the balancing
/// checks would then count. librdkafka follows leaders as they move and retries through a
/// broker going away. Killed when dropped.
struct LiveReader {
    child: std::process::Child,
    output: Option<(
        std::thread::JoinHandle<String>,
        std::thread::JoinHandle<String>,
    )>,
}

impl LiveReader {
    fn start(bootstrap: &str, topic: &str) -> LiveReader {
        let mut child = Command::new("kcat")
            .args(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning"])
            .args(["-f", "%p %o %s\\n"])
            .args(["-X", "enable.auto.commit=false"])
            .args(["-X", "topic.metadata.refresh.interval.ms=1000"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kcat is installed (apt-get install kcat)");
        // Drained as they come, so a full pipe never stops the consumer.
        let drain = |mut from: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = from.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("kcat's output")));
        let stderr = drain(Box::new(child.stderr.take().expect("kcat's errors")));
        LiveReader {
            child,
            output: Some((stdout, stderr)),
        }
    }

    /// Stops the consumer; what it read, and what it said on standard error. SIGTERM, so kcat
    /// writes out what it buffered; SIGKILL if it has not stopped within 10 s.
    fn finish(mut self) -> (Positions, String) {
        strand_e2e::terminate(&mut self.child, Duration::from_secs(10));
        let (stdout, stderr) = self.output.take().expect("finished once");
        let text = stdout.join().unwrap_or_default();
        (positions(&text), stderr.join().unwrap_or_default())
    }
}

impl Drop for LiveReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a [`LiveReader`] printed: partition, offset and value per record.
fn positions(output: &str) -> Positions {
    // A line cut short when kcat was killed does not count.
    output
        .split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n'))
        .filter_map(|line| {
            let mut fields = line.splitn(3, ' ');
            let p = fields.next()?.parse().ok()?;
            let offset = fields.next()?.parse().ok()?;
            Some(((p, offset), fields.next()?.to_string()))
        })
        .collect()
}

impl Traffic {
    fn start(bootstrap: &str, topic: &str) -> Traffic {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .create()
            .expect("producer");
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let longest_wait = Arc::new(Mutex::new((
            Duration::ZERO,
            -1,
            std::time::SystemTime::UNIX_EPOCH,
        )));
        let task = {
            let (stop, acked, errors) = (stop.clone(), acked.clone(), errors.clone());
            let longest_wait = longest_wait.clone();
            let topic = topic.to_string();
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let value = format!("v{n}");
                    let key = format!("k{}", n % 64);
                    let record = FutureRecord::to(&topic).key(&key).payload(&value);
                    let (sent, sent_at) = (std::time::Instant::now(), std::time::SystemTime::now());
                    match producer.send(record, Duration::from_secs(120)).await {
                        Ok(delivery) => {
                            let mut longest = longest_wait.lock().unwrap();
                            if sent.elapsed() > longest.0 {
                                *longest = (sent.elapsed(), delivery.partition, sent_at);
                            }
                            acked
                                .lock()
                                .unwrap()
                                .push((delivery.partition, delivery.offset, value))
                        }
                        Err((e, _)) => errors.lock().unwrap().push(e.to_string()),
                    }
                    n += 1;
                }
            })
        };
        let reader = LiveReader::start(bootstrap, topic);
        Traffic {
            stop,
            task,
            reader,
            acked,
            errors,
            longest_wait,
        }
    }

    /// The longest a record has waited for its acknowledgement so far, its partition, and
    /// when it was sent (UTC time of day, as the brokers' logs show it).
    fn longest_wait(&self) -> (Duration, i32, String) {
        let (wait, partition, sent_at) = *self.longest_wait.lock().unwrap();
        let ms = sent_at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            % 86_400_000;
        let at = format!(
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        );
        (wait, partition, at)
    }

    /// Stops writing and reading; what was acknowledged, after checking nothing failed, and
    /// what the consumer read meanwhile.
    async fn finish(self) -> (Vec<(i32, i64, String)>, Positions) {
        let (wait, partition, at) = self.longest_wait();
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let (consumed, said) = self.reader.finish();
        assert!(
            !consumed.is_empty(),
            "the live consumer read nothing: {said}"
        );
        println!("{} records read while writing", consumed.len());
        let errors = self.errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "produce errors reached the client: {errors:?}"
        );
        let acked = self.acked.lock().unwrap().clone();
        assert!(!acked.is_empty(), "nothing was acknowledged");
        println!(
            "{} records acknowledged; the longest wait was {wait:?}, on partition {partition}, \
             sent at {at} UTC",
            acked.len()
        );
        (acked, consumed)
    }
}

/// Reads every partition from the start to its end and checks that each acknowledged record
/// is there, at its offset, exactly once, and that every record the live consumer saw is still
/// there at the position it was read from (nothing a consumer could see was lost or replaced).
fn check_all_present(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    (acked, consumed): &(Vec<(i32, i64, String)>, Positions),
) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "balancing-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut ends = BTreeMap::new();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        // Leaders may still move (leader balancing after a restart), and librdkafka does not
        // retry a watermark query that reached a former leader.
        let mut attempts = 0;
        let (_, high) = loop {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(30)) {
                Ok(marks) => break marks,
                Err(e) if attempts < 20 => {
                    attempts += 1;
                    println!("watermarks of {topic}-{p}: {e}; asking again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("watermarks of {topic}-{p}: {e}"),
            }
        };
        ends.insert(p, high);
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let total: i64 = ends.values().sum();
    let mut read = Positions::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while (read.len() as i64) < total {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {total} records",
            read.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            read.insert((m.partition(), m.offset()), value);
        }
    }
    let mut seen = HashMap::new();
    for value in read.values() {
        *seen.entry(value.clone()).or_insert(0) += 1;
    }
    for (p, offset, value) in acked {
        assert_eq!(
            read.get(&(*p, *offset)),
            Some(value),
            "acknowledged record {value} at {topic}-{p}@{offset}"
        );
        assert_eq!(seen[value], 1, "record {value} is stored once");
    }
    for ((p, offset), value) in consumed {
        assert_eq!(
            read.get(&(*p, *offset)),
            Some(value),
            "record read while writing at {topic}-{p}@{offset}"
        );
    }
}

/// Replica and leader counts per running broker, once every partition has its replication
/// factor, a leader, nothing moving and nothing under-replicated.
async fn settled(
    cluster: &ProcessCluster,
    topic: &str,
    rf: usize,
) -> Option<(BTreeMap<u32, usize>, BTreeMap<u32, usize>)> {
    let d = cluster.describe(topic).await?;
    let c = cluster.describe_cluster().await?;
    if c.under_replicated_partitions > 0 {
        return None;
    }
    let mut replicas = BTreeMap::new();
    let mut leaders = BTreeMap::new();
    for p in &d.partitions {
        if p.replicas.len() != rf || !p.leaving.is_empty() {
            return None;
        }
        let leader = p.leader?;
        // Leader balancing has put each leader on its preferred replica.
        if leader != p.replicas[0] {
            return None;
        }
        *leaders.entry(leader).or_default() += 1;
        for r in &p.replicas {
            *replicas.entry(*r).or_default() += 1;
        }
    }
    Some((replicas, leaders))
}

fn within_one(counts: &BTreeMap<u32, usize>, brokers: &[u32]) -> bool {
    let values: Vec<usize> = brokers
        .iter()
        .map(|b| counts.get(b).copied().unwrap_or(0))
        .collect();
    values.iter().max().unwrap() - values.iter().min().unwrap() <= 1
}

/// `strand ARGS --server <broker b>`, which must succeed; its standard output and error.
fn strand_out(cluster: &ProcessCluster, b: u32, args: &[&str]) -> (String, String) {
    let output = Command::new(strand_bin())
        .args(args)
        .args(["--server", &cluster.grpc_address(b)])
        .output()
        .expect("strand runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "strand {args:?} failed: {stderr}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
}

/// Like [`strand_out`], for commands that report on standard error.
fn strand(cluster: &ProcessCluster, b: u32, args: &[&str]) -> String {
    strand_out(cluster, b, args).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_out_three_to_five_spreads_replicas_and_leaders() {
    let dir = tempfile::tempdir().unwrap();
    // Replicas move when asked (`strand cluster rebalance`), so the test sees the plan first.
    let config = settings(dir.path(), "auto_balance: false\n");
    let mut cluster = ProcessCluster::start_with(3, &["--config", &config]).await;
    cluster.create_topic("grow", 10, 3).await;
    let traffic = Traffic::start(&cluster.bootstrap(), "grow");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let new = [cluster.add_broker(), cluster.add_broker()];
    cluster
        .wait_for("five brokers registered", BALANCE_LIMIT, |c| async move {
            let d = c.describe_cluster().await?;
            (d.brokers.iter().filter(|b| b.alive).count() == 5).then_some(())
        })
        .await;
    let (plan, _) = strand_out(
        &cluster,
        0,
        &["cluster", "rebalance", "--dry-run", "-o", "json"],
    );
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("plan as JSON");
    // Each of the two new brokers gets 6 of the 30 replicas, and nothing else moves.
    let added: usize = plan["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .map(|m| {
            let from = m["from"].as_array().unwrap();
            m["to"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| !from.contains(b))
                .count()
        })
        .sum();
    assert_eq!(added, 12, "{plan}");
    let progress = strand(&cluster, 0, &["cluster", "rebalance"]);
    println!("strand cluster rebalance:\n{progress}");
    assert!(progress.contains("moves done"), "{progress}");

    let all = [0, 1, 2, new[0], new[1]];
    let (replicas, leaders) = cluster
        .wait_for(
            "replicas and leaders spread over five brokers",
            BALANCE_LIMIT,
            |c| async move {
                let (replicas, leaders) = settled(c, "grow", 3).await?;
                (within_one(&replicas, &all) && within_one(&leaders, &all))
                    .then_some((replicas, leaders))
            },
        )
        .await;
    println!("replicas per broker {replicas:?}, leaders per broker {leaders:?}");
    let outcome = traffic.finish().await;
    check_all_present(&cluster.bootstrap(), "grow", 10, &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_in_five_to_three_by_decommission_loses_nothing() {
    let cluster = ProcessCluster::start(5).await;
    cluster.create_topic("shrink", 10, 3).await;
    let traffic = Traffic::start(&cluster.bootstrap(), "shrink");
    // Sample leaders while brokers drain: no partition may be without one.
    let leaderless = Arc::new(Mutex::new(Vec::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cluster = Arc::new(tokio::sync::RwLock::new(cluster));
    let sampler = {
        let (cluster, leaderless, sampling) =
            (cluster.clone(), leaderless.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::SeqCst) {
                if let Some(d) = cluster.read().await.describe("shrink").await {
                    for p in d.partitions.iter().filter(|p| p.leader.is_none()) {
                        leaderless.lock().unwrap().push(p.partition);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    for b in [4, 3] {
        let out = strand(
            &*cluster.read().await,
            0,
            &["broker", "decommission", &b.to_string()],
        );
        println!("strand broker decommission {b}:\n{out}");
        assert!(out.contains(&format!("broker {b} decommissioned")), "{out}");
    }
    sampling.store(false, Ordering::SeqCst);
    sampler.await.unwrap();
    let mut cluster = Arc::into_inner(cluster).unwrap().into_inner();
    for b in [4, 3] {
        cluster.terminate(b);
    }
    let (replicas, leaders) = cluster
        .wait_for(
            "replicas and leaders on the three remaining brokers",
            BALANCE_LIMIT,
            |c| async move {
                let (replicas, leaders) = settled(c, "shrink", 3).await?;
                (replicas.keys().all(|b| *b < 3) && within_one(&leaders, &[0, 1, 2]))
                    .then_some((replicas, leaders))
            },
        )
        .await;
    println!("replicas per broker {replicas:?}, leaders per broker {leaders:?}");
    let d = cluster.describe_cluster().await.unwrap();
    for b in d.brokers.iter().filter(|b| b.broker_id >= 3) {
        assert_eq!(b.state, "decommissioned");
    }
    assert_eq!(
        *leaderless.lock().unwrap(),
        Vec::<u32>::new(),
        "partitions sampled without a leader"
    );
    let outcome = traffic.finish().await;
    check_all_present(&cluster.bootstrap(), "shrink", 10, &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_down_past_the_failure_timeout_has_its_replicas_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let config = settings(dir.path(), "broker_failure_timeout_ms: 5000\n");
    let mut cluster = ProcessCluster::start_with(4, &["--config", &config]).await;
    cluster.create_topic("heal", 8, 3).await;
    let traffic = Traffic::start(&cluster.bootstrap(), "heal");
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.kill(3);
    cluster
        .wait_for(
            "every partition back to three replicas without broker 3",
            BALANCE_LIMIT,
            |c| async move {
                let (replicas, _) = settled(c, "heal", 3).await?;
                (!replicas.contains_key(&3)).then_some(())
            },
        )
        .await;
    // Back again, broker 3 gets a fair share.
    cluster.restart(3);
    cluster
        .wait_for(
            "broker 3 holding a fair share again",
            BALANCE_LIMIT,
            |c| async move {
                let (replicas, leaders) = settled(c, "heal", 3).await?;
                (within_one(&replicas, &[0, 1, 2, 3]) && within_one(&leaders, &[0, 1, 2, 3]))
                    .then_some(())
            },
        )
        .await;
    let outcome = traffic.finish().await;
    check_all_present(&cluster.bootstrap(), "heal", 8, &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_factor_grows_and_shrinks_on_a_live_topic() {
    let cluster = ProcessCluster::start(3).await;
    cluster.create_topic("factor", 3, 1).await;
    let traffic = Traffic::start(&cluster.bootstrap(), "factor");
    tokio::time::sleep(Duration::from_secs(2)).await;

    for rf in [3u32, 1] {
        let mut admin = cluster.admin(0).await.unwrap();
        admin
            .update_topic(UpdateTopicRequest {
                name: "factor".into(),
                replication_factor: Some(rf),
                ..UpdateTopicRequest::default()
            })
            .await
            .expect("replication factor changed");
        cluster
            .wait_for(
                &format!("replication factor {rf} on every partition"),
                BALANCE_LIMIT,
                |c| async move { settled(c, "factor", rf as usize).await },
            )
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let outcome = traffic.finish().await;
    check_all_present(&cluster.bootstrap(), "factor", 3, &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_by_sigterm_surfaces_no_produce_error() {
    let mut cluster = ProcessCluster::start(3).await;
    cluster.create_topic("roll", 6, 3).await;
    let traffic = Traffic::start(&cluster.bootstrap(), "roll");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // As a StatefulSet rolls its pods: stop one (SIGTERM, after which it hands its
    // leaderships over), start it again, and go on once its readiness probe passes, which it
    // does only when none of its replicas is behind.
    for b in (0..3).rev() {
        cluster.terminate(b);
        cluster.restart(b);
        cluster
            .wait_for(
                &format!("broker {b} ready again"),
                BALANCE_LIMIT,
                |c| async move { c.ready(b).then_some(()) },
            )
            .await;
        // Ready means caught up: the controller, a report or two later, agrees.
        cluster
            .wait_for(
                &format!("no partition under-replicated once broker {b} is ready"),
                Duration::from_secs(10),
                |c| async move {
                    let d = c.describe_cluster().await?;
                    (d.under_replicated_partitions == 0).then_some(())
                },
            )
            .await;
    }
    cluster
        .wait_for(
            "leaders back on their preferred replicas",
            BALANCE_LIMIT,
            |c| async move { settled(c, "roll", 3).await.map(|_| ()) },
        )
        .await;
    let outcome = traffic.finish().await;
    check_all_present(&cluster.bootstrap(), "roll", 6, &outcome);
}

/// What a person would look at when a broker does not become ready or balancing does not
/// finish: every broker's `/readyz`, `strand cluster describe`, the topic and the rebalance
/// status.
async fn diagnose(cluster: &ProcessCluster, topic: &str) -> String {
    let mut out = String::new();
    for b in cluster.alive() {
        let answer = match cluster.readyz(b) {
            Ok(body) => body,
            Err(why) => why,
        };
        out.push_str(&format!("broker {b} /readyz: {answer}\n"));
    }
    let Some(b) = cluster.alive().first().copied() else {
        return out;
    };
    for args in [
        &["cluster", "describe"][..],
        &["topic", "describe", topic],
        &["cluster", "rebalance", "--dry-run"],
    ] {
        let output = Command::new(strand_bin())
            .args(args)
            .args(["--server", &cluster.grpc_address(b)])
            .output()
            .expect("strand runs");
        out.push_str(&format!(
            "strand {}:\n{}{}\n",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if let Some(mut admin) = cluster.admin(b).await
        && let Ok(status) = admin
            .rebalance_status(strand_proto::admin::RebalanceStatusRequest {})
            .await
    {
        out.push_str(&format!("rebalance status: {:?}\n", status.into_inner()));
    }
    out
}

/// Polls `check` until it holds; panics after `limit` with `what` and what [`diagnose`] sees.
async fn wait_or_explain<T, F, Fut>(
    cluster: &ProcessCluster,
    topic: &str,
    what: &str,
    limit: Duration,
    check: F,
) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if std::time::Instant::now() >= deadline {
            let why = diagnose(cluster, topic).await;
            panic!(
                "timed out after {limit:?} waiting for: {what}\n{why}(logs in {})",
                cluster.dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Partitions whose replicas move now, and moves planned after them.
async fn moves_left(cluster: &ProcessCluster) -> Option<(usize, usize)> {
    for b in cluster.alive() {
        let Some(mut admin) = cluster.admin(b).await else {
            continue;
        };
        if let Ok(status) = admin
            .rebalance_status(strand_proto::admin::RebalanceStatusRequest {})
            .await
        {
            let status = status.into_inner();
            return Some((status.in_progress.len(), status.pending.len()));
        }
    }
    None
}

/// Once seen on Kubernetes: a rolling restart overlapping the moves of a scale-out left two
/// moves stuck and the restarted broker never ready, after a leader offered its leadership to
/// a broker that was itself restarting (see `balance::offer_leadership` in `strand-server`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_during_replica_moves_finishes_with_every_broker_ready() {
    const TOPIC: &str = "roll-moving";
    const PARTITIONS: u32 = 24;
    let (seed, mut rng) = Rng::seeded();
    println!("seed = {seed} (replay with E2E_SEED={seed})");
    // More moves at once than the default two, so that every restart meets several of them
    // at each of their steps.
    let dir = tempfile::tempdir().unwrap();
    let config = settings(dir.path(), "max_concurrent_moves: 6\n");
    let mut cluster = ProcessCluster::start_with(3, &["--config", &config]).await;
    cluster.create_topic(TOPIC, PARTITIONS, 3).await;
    let traffic = Traffic::start(&cluster.bootstrap(), TOPIC);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Scale out 3 -> 5 and rebalance, as the operator does: the controller starts moving
    // replicas onto the new brokers, a few partitions at a time.
    cluster.add_broker();
    cluster.add_broker();
    cluster
        .wait_for("five brokers registered", BALANCE_LIMIT, |c| async move {
            let d = c.describe_cluster().await?;
            (d.brokers.iter().filter(|b| b.alive).count() == 5).then_some(())
        })
        .await;
    let started = strand(&cluster, 0, &["cluster", "rebalance", "--no-wait"]);
    println!("strand cluster rebalance --no-wait:\n{started}");
    cluster
        .wait_for("replica moves under way", BALANCE_LIMIT, |c| async move {
            let (in_progress, _) = moves_left(c).await?;
            (in_progress > 0).then_some(())
        })
        .await;

    // A StatefulSet's rolling restart, highest ordinal first, while the moves go on: the
    // preStop hook hands leaderships over, SIGTERM stops the broker, the pod is replaced and
    // the broker comes back on the same disk, and the next pod goes only once this one's
    // readiness probe passes. Replacing a pod takes seconds, longer than a status report stays
    // fresh, so the others see the broker gone before it is back; the probe's period spreads
    // when the next one starts. The seed picks both.
    let schedule: Vec<(u32, Duration, Duration)> = (0..5)
        .rev()
        .map(|b| {
            let down = Duration::from_millis(4_000 + rng.next(4_000));
            (b, down, Duration::from_millis(rng.next(2_000)))
        })
        .collect();
    println!("rolling restart schedule (broker, time down, pause after ready): {schedule:?}");
    for (b, down, pause) in schedule {
        let moving = moves_left(&cluster).await;
        let pre_stop = Command::new(strand_bin())
            .args(["broker", "pre-stop", "--timeout", "30s"])
            .args(["--http-address", &cluster.http_address(b).to_string()])
            .output()
            .expect("strand broker pre-stop runs");
        println!(
            "broker {b} (moves in flight and pending: {moving:?}): pre-stop: {}{}",
            String::from_utf8_lossy(&pre_stop.stdout).trim(),
            String::from_utf8_lossy(&pre_stop.stderr).trim()
        );
        assert!(pre_stop.status.success(), "pre-stop of broker {b} failed");
        cluster.terminate(b);
        tokio::time::sleep(down).await;
        cluster.restart(b);
        let c = &cluster;
        wait_or_explain(
            c,
            TOPIC,
            &format!("broker {b} ready after its restart"),
            BALANCE_LIMIT,
            || async move { c.ready(b).then_some(()) },
        )
        .await;
        tokio::time::sleep(pause).await;
    }

    // The moves finish: nothing in flight or planned, every partition with exactly its three
    // voters and nobody leaving, leaders on their preferred replicas, and every broker ready.
    let c = &cluster;
    let (replicas, leaders) = wait_or_explain(
        c,
        TOPIC,
        "the rebalance finished with every broker ready",
        BALANCE_LIMIT,
        || async move {
            if moves_left(c).await? != (0, 0) || !(0..5).all(|b| c.ready(b)) {
                return None;
            }
            settled(c, TOPIC, 3).await
        },
    )
    .await;
    println!("replicas per broker {replicas:?}, leaders per broker {leaders:?}");
    assert_eq!(
        replicas.len(),
        5,
        "every broker holds replicas: {replicas:?}"
    );
    let outcome = traffic.finish().await;
    check_all_present(&cluster.bootstrap(), TOPIC, PARTITIONS as i32, &outcome);
}
