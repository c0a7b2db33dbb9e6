//! `strand bench produce|consume`: a Kafka-protocol load generator built on librdkafka, the
//! client most non-JVM applications use, so it measures what applications would see.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;

/// Options of `strand bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Produce records as fast as asked (or flat out) and report throughput and latency.
    Produce(ProduceArgs),
    /// Read a topic from the start with one consumer and report throughput.
    Consume(ConsumeArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Kafka bootstrap servers.
    #[arg(
        short = 'b',
        long,
        default_value = "127.0.0.1:9092",
        env = "STRAND_BOOTSTRAP"
    )]
    bootstrap_servers: String,
    /// Topic to use.
    #[arg(short, long, default_value = "strand-bench")]
    topic: String,
    /// Client properties file (librdkafka style, as `kcat -F` reads, such as the one `strand
    /// dev --secure` writes): `security.protocol`, `sasl.*`, `ssl.*`, `bootstrap.servers`.
    #[arg(short = 'F', long, value_name = "FILE")]
    client_config: Option<std::path::PathBuf>,
    /// One more client property, `KEY=VALUE` (applied after the file). Repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    property: Vec<String>,
    /// Output of the final report.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Acks {
    /// No acknowledgement.
    #[value(name = "0")]
    None,
    /// The leader's (served as all by Strand).
    #[value(name = "1")]
    Leader,
    /// Every in-sync replica's.
    All,
}

#[derive(Debug, Args)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    /// Partitions of the topic when it has to be created.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Replication factor of the topic when it has to be created.
    #[arg(long, default_value_t = 3)]
    replication_factor: i32,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Distinct record keys, cycled through; 0 sends records without keys.
    #[arg(long, default_value_t = 0)]
    keys: u64,
    #[arg(long, value_enum, default_value_t = Acks::All)]
    acks: Acks,
    /// Compression codec: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Records per second across all producers; 0 is flat out.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to produce, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Producer clients, each with its own connections.
    #[arg(long, default_value_t = 1)]
    producers: u32,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// Longest time to read, in seconds; reading stops earlier at the end of the topic.
    #[arg(long, default_value_t = 60)]
    duration: u64,
}

/// The final report of a run.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(skip)]
    output: Output,
    mode: &'static str,
    topic: String,
    seconds: f64,
    records: u64,
    bytes: u64,
    mb_per_second: f64,
    records_per_second: f64,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<Latency>,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Latency {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Latency {
            p50: ms(histogram.value_at_quantile(0.50)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

const MB: f64 = 1_000_000.0;

impl Report {
    fn of(common: &Common, mode: &'static str, seconds: f64, t: &Tally) -> Report {
        Report {
            output: common.output,
            mode,
            topic: common.topic.clone(),
            seconds,
            records: t.records,
            bytes: t.bytes,
            mb_per_second: t.bytes as f64 / MB / seconds,
            records_per_second: t.records as f64 / seconds,
            errors: t.errors,
            latency_ms: t
                .latency
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(Latency::of),
        }
    }
}

/// Runs `strand bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = match args.what {
        BenchCommand::Produce(args) => runtime.block_on(produce(args))?,
        BenchCommand::Consume(args) => consume(args)?,
    };
    print_report(&report)
}

fn print_report(report: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match report.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        Output::Text => {
            writeln!(
                out,
                "{}: {} records, {:.1} MB in {:.1} s: {:.1} MB/s, {:.0} records/s, {} errors",
                report.mode,
                report.records,
                report.bytes as f64 / MB,
                report.seconds,
                report.mb_per_second,
                report.records_per_second,
                report.errors
            )?;
            if let Some(l) = &report.latency_ms {
                writeln!(
                    out,
                    "latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                    l.p50, l.p99, l.p999, l.max
                )?;
            }
        }
    }
    Ok(())
}

fn client_config(common: &Common) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &common.bootstrap_servers);
    if let Some(path) = &common.client_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .with_context(|| format!("{}: `{line}` is not KEY=VALUE", path.display()))?;
            config.set(key.trim(), value.trim());
        }
    }
    for property in &common.property {
        let (key, value) = property
            .split_once('=')
            .with_context(|| format!("-X `{property}` is not KEY=VALUE"))?;
        config.set(key, value);
    }
    Ok(config)
}

/// Creates the topic unless it exists.
async fn ensure_topic(args: &ProduceArgs) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(&args.common)?
        .create()
        .context("cannot create a Kafka admin client")?;
    let topic = NewTopic::new(
        &args.common.topic,
        args.partitions,
        TopicReplication::Fixed(args.replication_factor),
    );
    let results = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .context("cannot reach the cluster to create the topic")?;
    for result in results {
        match result {
            Ok(_) => eprintln!(
                "created topic {} ({} partitions, RF {})",
                args.common.topic, args.partitions, args.replication_factor
            ),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// How often a producer at a target rate hands its next records to the client: short, so the
/// offered load is steady rather than a burst that queues behind itself.
const TICK: Duration = Duration::from_millis(1);

/// How long the end of a run waits for the deliveries still outstanding.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Before the clock starts, the first records of a producer's sequence, each awaited: one to
/// every partition (with keys, one per key, up to [`WARM_UP_KEYS_MAX`], each where the
/// partitioner puts it). The producer then has the topic's metadata and a connection to every
/// partition leader, so the run measures the cluster rather than the client's start-up. The
/// records count in the totals (a consumer reads them back) but not in the latency. Returns
/// the sequence number the run goes on from.
async fn warm_up(
    producer: &Arc<BenchProducer>,
    args: &ProduceArgs,
    value: &[u8],
    mut n: u64,
    tally: &Mutex<Tally>,
) -> anyhow::Result<u64> {
    let topic = args.common.topic.as_str();
    let client = producer.clone();
    let name = topic.to_string();
    let metadata = tokio::task::spawn_blocking(move || {
        client
            .client()
            .fetch_metadata(Some(&name), Duration::from_secs(10))
    })
    .await?
    .with_context(|| format!("cannot read the metadata of topic {topic}"))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as u64);
    let records = if args.keys > 0 {
        args.keys.min(WARM_UP_KEYS_MAX)
    } else {
        partitions
    };
    for i in 0..records {
        let key = record_key(n, args.keys);
        n += 1;
        let mut record = BaseRecord::with_opaque_to(topic, UNTIMED).payload(value);
        record = match &key {
            Some(key) => record.key(key.as_bytes()),
            None => record.partition(i as i32),
        };
        producer
            .send(record)
            .map_err(|(e, _)| anyhow::anyhow!("warm-up record to topic {topic}: {e}"))?;
    }
    let client = producer.clone();
    tokio::task::spawn_blocking(move || client.flush(Duration::from_secs(30)))
        .await?
        .with_context(|| format!("warm-up records to topic {topic} were not delivered"))?;
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(error) = &t.last_error {
        bail!("warm-up record to topic {topic}: {error}");
    }
    Ok(n)
}

/// The key of a producer's `n`th record: `key-0` to `key-{keys - 1}` in turn, or none.
fn record_key(n: u64, keys: u64) -> Option<String> {
    (keys > 0).then(|| format!("key-{}", n % keys))
}

/// Keys a keyed run warms up at most.
const WARM_UP_KEYS_MAX: u64 = 64;

/// Counts shared by the producers and the progress line.
#[derive(Default)]
struct Tally {
    records: u64,
    bytes: u64,
    errors: u64,
    latency: Option<Histogram<u64>>,
    last_error: Option<String>,
}

/// The producer of `strand bench produce`: librdkafka's own thread polls for delivery reports
/// and hands each to [`Deliveries`].
type BenchProducer = ThreadedProducer<Deliveries>;

/// A record's delivery opaque that asks for it to be counted but not timed (a warm-up record).
const UNTIMED: usize = 0;

/// Counts each delivery report into the tally where librdkafka reports it, with no future or
/// channel per record, so the load generator leaves the CPU it shares to the brokers.
struct Deliveries {
    tally: Arc<Mutex<Tally>>,
    /// Send times are microseconds since this instant, plus one (see [`UNTIMED`]).
    epoch: Instant,
}

impl Deliveries {
    /// The delivery opaque of a record handed over now.
    fn now(&self) -> usize {
        self.epoch.elapsed().as_micros() as usize + 1
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        let now = self.now();
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(message) => {
                t.records += 1;
                t.bytes += (message.payload_len() + message.key_len()) as u64;
                if sent != UNTIMED
                    && let Some(h) = t.latency.as_mut()
                {
                    let _ = h.record(now.saturating_sub(sent).max(1) as u64);
                }
            }
            Err((e, _)) => {
                t.errors += 1;
                t.last_error = Some(e.to_string());
            }
        }
    }
}

async fn produce(args: ProduceArgs) -> anyhow::Result<Report> {
    if args.producers == 0 {
        bail!("--producers must be at least 1");
    }
    ensure_topic(&args).await?;
    let acks = match args.acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    };
    let tally = Arc::new(Mutex::new(Tally {
        latency: Some(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        ..Default::default()
    }));
    let value: Arc<Vec<u8>> = Arc::new((0..args.record_size).map(|i| (i % 251) as u8).collect());
    let epoch = Instant::now();
    let mut producers = Vec::new();
    for p in 0..args.producers {
        let context = Deliveries {
            tally: tally.clone(),
            epoch,
        };
        let producer: BenchProducer = client_config(&args.common)?
            .set("acks", acks)
            .set("compression.codec", &args.compression)
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .create_with_context(context)
            .context("cannot create a Kafka producer")?;
        let producer = Arc::new(producer);
        let first = u64::from(p) << 40;
        let next = warm_up(&producer, &args, &value, first, &tally).await?;
        producers.push((producer, next));
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for (producer, first) in producers {
        let topic = args.common.topic.clone();
        let value = value.clone();
        let keys = args.keys;
        let per_producer_rate = args.rate / u64::from(args.producers);
        tasks.push(tokio::spawn(async move {
            let mut n: u64 = first;
            let paced_from = Instant::now();
            let mut next_tick = paced_from;
            let mut handed: u64 = 0;
            'run: while Instant::now() < until {
                let batch = if per_producer_rate > 0 {
                    let now = Instant::now();
                    if now < next_tick {
                        tokio::time::sleep(next_tick - now).await;
                    }
                    next_tick += TICK;
                    // As many as the rate asks for by now, so any rate comes out exact.
                    let due = u128::from(per_producer_rate) * paced_from.elapsed().as_micros()
                        / 1_000_000;
                    u64::try_from(due)
                        .unwrap_or(u64::MAX)
                        .saturating_sub(handed)
                } else {
                    1000
                };
                handed += batch;
                for _ in 0..batch {
                    let key = record_key(n, keys);
                    n += 1;
                    let sent = producer.context().now();
                    let mut record = BaseRecord::with_opaque_to(&topic, sent).payload(&value[..]);
                    if let Some(key) = &key {
                        record = record.key(key.as_bytes());
                    }
                    let mut record = record;
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((
                                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                r,
                            )) => {
                                record = r;
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            Err((e, _)) => {
                                eprintln!("produce: {e}");
                                break 'run;
                            }
                        }
                    }
                }
                tokio::task::yield_now().await;
            }
            // Every record handed over is delivered or failed before the run ends.
            tokio::task::spawn_blocking(move || producer.flush(DRAIN_TIMEOUT)).await
        }));
    }
    let progress = progress_line(tally.clone(), started, true);
    for task in tasks {
        if let Err(e) = task.await?? {
            eprintln!("\nproduce: not every record was delivered within {DRAIN_TIMEOUT:?}: {e}");
        }
    }
    progress.abort();
    eprintln!();
    let elapsed = started.elapsed().as_secs_f64();
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Report::of(&args.common, "produce", elapsed, &t))
}

/// Prints a progress line on standard error every second.
fn progress_line(
    tally: Arc<Mutex<Tally>>,
    started: Instant,
    latency: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = (0u64, Instant::now());
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let t = tally.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let rate = (t.bytes - last.0) as f64 / MB / now.duration_since(last.1).as_secs_f64();
            last = (t.bytes, now);
            let p99 = t
                .latency
                .as_ref()
                .filter(|h| latency && !h.is_empty())
                .map(|h| format!(", p99 {:.1} ms", h.value_at_quantile(0.99) as f64 / 1000.0))
                .unwrap_or_default();
            eprint!(
                "\r{:>4.0} s  {} records  {:.1} MB/s now{}  {} errors   ",
                started.elapsed().as_secs_f64(),
                t.records,
                rate,
                p99,
                t.errors
            );
            let _ = std::io::stderr().flush();
        }
    })
}

fn consume(args: ConsumeArgs) -> anyhow::Result<Report> {
    let consumer: BaseConsumer = client_config(&args.common)?
        .set("group.id", "strand-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .create()
        .context("cannot create a Kafka consumer")?;
    let topic = &args.common.topic;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("cannot read the topic's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic {topic} has no partitions (does it exist?)");
    }
    let mut ends = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .with_context(|| format!("cannot read the end of partition {p}"))?;
        if high > low {
            ends.insert(*p, high);
        }
        assignment.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let progress = runtime.enter();
    let line = progress_line(tally.clone(), started, false);
    let until = started + Duration::from_secs(args.duration);
    let mut pending = ends.clone();
    let handle = std::thread::spawn({
        let tally = tally.clone();
        move || {
            while !pending.is_empty() && Instant::now() < until {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let size =
                            m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len);
                        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                        t.records += 1;
                        t.bytes += size as u64;
                        if pending
                            .get(&m.partition())
                            .is_some_and(|end| m.offset() + 1 >= *end)
                        {
                            pending.remove(&m.partition());
                        }
                    }
                    Some(Err(_)) => tally.lock().unwrap_or_else(|p| p.into_inner()).errors += 1,
                    None => {}
                }
            }
        }
    });
    runtime.block_on(async {
        while !handle.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    line.abort();
    drop(progress);
    eprintln!();
    let elapsed = started.elapsed().as_secs_f64();
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Report::of(&args.common, "consume", elapsed, &t))
}
