//! A harness for process-level tests: real `strand broker` processes on loopback ports, which a
//! test can kill with SIGKILL and restart, plus small clients for the admin API and the internal
//! produce/fetch path. Every process is killed when the harness is dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::{
    ClusterDescription, CreateTopicRequest, DescribeClusterRequest, DescribeTopicRequest,
    TopicDescription,
};
use strand_proto::broker::broker_client::BrokerClient;
use strand_proto::broker::{FetchRequest, ProduceRequest};
use tonic::transport::Channel;

/// The `strand` executable: `STRAND_BIN`, or the one cargo built beside this test.
pub fn strand_bin() -> PathBuf {
    if let Ok(path) = std::env::var("STRAND_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/strand
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("strand"))
        .expect("target directory");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p strand` or set STRAND_BIN",
        path.display()
    );
    path
}

/// A loopback port nothing listens on, for a broker a test is about to start.
///
/// Ports come from below Linux's ephemeral range (32768 and up), counting up from a point set
/// by the process id: a port the kernel hands out for `:0` can be taken by any outgoing
/// connection before the broker binds it, while these are only ever chosen here.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    const SPAN: u32 = 20_000;
    let start = (std::process::id() % 400) * 50;
    loop {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// [`free_port`] as a loopback address.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Stops a child process with SIGTERM and waits for it to exit, killing it after `patience`.
pub fn terminate(child: &mut Child, patience: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Ports of one broker.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Kafka listener.
    pub kafka: u16,
    /// gRPC listener.
    pub grpc: u16,
    /// HTTP listener.
    pub http: u16,
}

/// How a [`ProcessCluster`] is started.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra `strand broker` arguments for every broker.
    pub extra_args: Vec<String>,
    /// Each broker on a loopback address of its own (127.x.y.b+1), its connections to the
    /// others leaving from it, so that [`ProcessCluster::cut`] can part two brokers with
    /// firewall rules (needs root and iptables).
    pub own_addresses: bool,
    /// Each broker's data directory on a tmpfs of this many bytes, which
    /// [`ProcessCluster::fill_disk`] can fill up (needs root).
    pub disk_bytes: Option<u64>,
}

/// A cluster of broker processes.
pub struct ProcessCluster {
    /// The tmpfs under each broker's data directory, if they have them: unmounted before the
    /// directory is removed.
    disks: Vec<Tmpfs>,
    dir: tempfile::TempDir,
    ports: Vec<Ports>,
    children: Vec<Option<Child>>,
    extra_args: Vec<String>,
    /// The first three octets of the brokers' own loopback addresses, if they have them.
    network: Option<[u8; 3]>,
    /// Firewall rules [`ProcessCluster::cut`] added: (from, to) broker pairs.
    cuts: Vec<(u32, u32)>,
}

impl ProcessCluster {
    /// Starts `size` brokers and waits until all are registered with a controller.
    pub async fn start(size: u32) -> ProcessCluster {
        Self::start_with(size, &[]).await
    }

    /// Like [`ProcessCluster::start`], with extra `strand broker` arguments for every broker.
    pub async fn start_with(size: u32, extra_args: &[&str]) -> ProcessCluster {
        let options = ClusterOptions {
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            ..ClusterOptions::default()
        };
        Self::start_with_options(size, options).await
    }

    /// Like [`ProcessCluster::start`], started as `options` say.
    pub async fn start_with_options(size: u32, options: ClusterOptions) -> ProcessCluster {
        let ports = (0..size)
            .map(|_| Ports {
                kafka: free_port(),
                grpc: free_port(),
                http: free_port(),
            })
            .collect();
        let mut dir = tempfile::tempdir().unwrap();
        // STRAND_E2E_KEEP=1 keeps the brokers' data and logs for a look afterwards.
        if std::env::var_os("STRAND_E2E_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("broker data and logs kept in {}", dir.path().display());
        }
        // A network of its own per cluster: 127.<pid>.<count>.0/24.
        let network = options.own_addresses.then(|| {
            use std::sync::atomic::{AtomicU8, Ordering};
            static COUNT: AtomicU8 = AtomicU8::new(0);
            let pid = std::process::id();
            [
                127,
                16 + (pid % 200) as u8,
                COUNT.fetch_add(1, Ordering::Relaxed),
            ]
        });
        let disks = match options.disk_bytes {
            Some(bytes) => (0..size)
                .map(|b| Tmpfs::mount(&dir.path().join(format!("broker-{b}")), bytes))
                .collect(),
            None => Vec::new(),
        };
        let mut cluster = ProcessCluster {
            dir,
            ports,
            children: (0..size).map(|_| None).collect(),
            extra_args: options.extra_args,
            network,
            disks,
            cuts: Vec::new(),
        };
        for b in 0..size {
            cluster.spawn(b);
        }
        cluster
            .wait_for(
                "every broker registered",
                Duration::from_secs(60),
                |c| async move {
                    let d = c.describe_cluster().await?;
                    (d.brokers.len() == size as usize && d.controller_id.is_some()).then_some(())
                },
            )
            .await;
        cluster
    }

    /// The data directory of broker `b`.
    pub fn data_dir(&self, b: u32) -> PathBuf {
        self.dir.path().join(format!("broker-{b}"))
    }

    /// The address broker `b` listens on and is reached at.
    pub fn host(&self, b: u32) -> std::net::IpAddr {
        match self.network {
            Some([a, x, y]) => [a, x, y, b as u8 + 1].into(),
            None => [127, 0, 0, 1].into(),
        }
    }

    fn spawn(&mut self, b: u32) {
        let seeds: Vec<String> = (0..self.ports.len().min(3) as u32)
            .map(|s| self.grpc_address(s))
            .collect();
        let p = self.ports[b as usize];
        let host = self.host(b);
        let mut own_address = Vec::new();
        if self.network.is_some() {
            own_address.extend(["--advertised-host".to_string(), host.to_string()]);
            own_address.extend(["--peer-source-address".to_string(), host.to_string()]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(b))
            .unwrap();
        let child = Command::new(strand_bin())
            .arg("broker")
            .args(["--broker-id", &b.to_string()])
            .arg("--data-dir")
            .arg(self.data_dir(b))
            .args(["--kafka-listen", &format!("{host}:{}", p.kafka)])
            .args(["--grpc-listen", &format!("{host}:{}", p.grpc)])
            .args(["--http-listen", &format!("{host}:{}", p.http)])
            .args(["--seeds", &seeds.join(",")])
            .args(own_address)
            .arg("--stop-when-stdin-closes")
            .args(&self.extra_args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("strand broker starts");
        self.children[b as usize] = Some(child);
    }

    /// Starts one more broker (the next id, on new ports) that joins the running cluster.
    pub fn add_broker(&mut self) -> u32 {
        let b = self.ports.len() as u32;
        self.ports.push(Ports {
            kafka: free_port(),
            grpc: free_port(),
            http: free_port(),
        });
        self.children.push(None);
        self.spawn(b);
        b
    }

    /// Stops broker `b` with SIGTERM, as Kubernetes stops a pod, and waits for it to exit
    /// (killing it after 30 s).
    pub fn terminate(&mut self, b: u32) {
        if let Some(mut child) = self.children[b as usize].take() {
            terminate(&mut child, Duration::from_secs(30));
        }
    }

    /// Whether broker `b` answers `/readyz` with 200, as a Kubernetes readiness probe asks.
    pub fn ready(&self, b: u32) -> bool {
        self.readyz(b).is_ok()
    }

    /// Broker `b`'s `/readyz` answer: `Ok` with the body when it is ready, `Err` with the body
    /// (why not) or the reason it could not be asked.
    pub fn readyz(&self, b: u32) -> Result<String, String> {
        use std::io::{Read, Write};
        let addr = self.http_address(b);
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        stream
            .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .map_err(|e| format!("cannot ask {addr}: {e}"))?;
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
            .trim()
            .to_string();
        if response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") {
            Ok(body)
        } else if response.is_empty() {
            Err(format!("no answer from {addr}"))
        } else {
            Err(body)
        }
    }

    /// The HTTP address of broker `b` (`/readyz`, `POST /v1/pre-stop`).
    pub fn http_address(&self, b: u32) -> std::net::SocketAddr {
        std::net::SocketAddr::from((self.host(b), self.ports[b as usize].http))
    }

    /// Where broker `b` writes its log.
    pub fn log_path(&self, b: u32) -> PathBuf {
        self.dir.path().join(format!("broker-{b}.log"))
    }

    /// The Kafka bootstrap servers of the running brokers.
    pub fn bootstrap(&self) -> String {
        self.alive()
            .iter()
            .map(|b| format!("{}:{}", self.host(*b), self.ports[*b as usize].kafka))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A directory that lives as long as the cluster, for test files such as settings.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills broker `b` with SIGKILL.
    pub fn kill(&mut self, b: u32) {
        if let Some(mut child) = self.children[b as usize].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts broker `b` again on its data directory.
    pub fn restart(&mut self, b: u32) {
        self.spawn(b);
    }

    /// Brokers whose process ended by itself since the last call, with how it ended; they
    /// count as stopped (start them again with [`ProcessCluster::restart`]).
    pub fn exited(&mut self) -> Vec<(u32, String)> {
        let mut exited = Vec::new();
        for (b, slot) in self.children.iter_mut().enumerate() {
            if let Some(child) = slot
                && let Ok(Some(status)) = child.try_wait()
            {
                exited.push((b as u32, status.to_string()));
                *slot = None;
            }
        }
        exited
    }

    /// Stops broker `b` with SIGSTOP: it neither answers nor notices time pass.
    pub fn pause(&self, b: u32) {
        assert!(self.signal(b, "-STOP"), "kill -STOP broker {b}");
    }

    /// Lets a paused broker `b` go on with SIGCONT.
    pub fn resume(&self, b: u32) {
        assert!(self.signal(b, "-CONT"), "kill -CONT broker {b}");
    }

    /// Sends `signal` to broker `b`'s process, if it runs; whether that worked.
    fn signal(&self, b: u32, signal: &str) -> bool {
        let Some(child) = &self.children[b as usize] else {
            return true;
        };
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Empties the data directory of broker `b`, which must not be running: it comes back as
    /// a new disk would.
    pub fn wipe(&self, b: u32) {
        assert!(self.children[b as usize].is_none(), "broker {b} is running");
        let dir = self.data_dir(b);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }

    /// Fills broker `b`'s disk but for about `left` bytes (with [`ClusterOptions::disk_bytes`]).
    pub fn fill_disk(&self, b: u32, left: u64) {
        self.disks[b as usize].fill(left);
    }

    /// Gives back what [`ProcessCluster::fill_disk`] took.
    pub fn free_disk(&self, b: u32) {
        self.disks[b as usize].free();
    }

    /// Drops every packet between brokers `a` and `b`, both ways (with
    /// [`ClusterOptions::own_addresses`]).
    pub fn cut(&mut self, a: u32, b: u32) {
        for (from, to) in [(a, b), (b, a)] {
            iptables("-I", self.host(from), self.host(to));
            self.cuts.push((from, to));
        }
    }

    /// Ends every [`ProcessCluster::cut`].
    pub fn heal(&mut self) {
        for (from, to) in std::mem::take(&mut self.cuts) {
            iptables("-D", self.host(from), self.host(to));
        }
    }

    /// Process ids of the running brokers.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }

    /// Sends one batch to broker `b` once; the base offset if `b` leads the partition and a
    /// majority acknowledged.
    pub async fn produce_to(
        &self,
        b: u32,
        topic: &str,
        partition: u32,
        batch: Vec<u8>,
    ) -> Option<i64> {
        self.try_produce_to(b, topic, partition, batch).await.ok()
    }

    /// Like [`ProcessCluster::produce_to`], with the reason when the batch was not acknowledged.
    pub async fn try_produce_to(
        &self,
        b: u32,
        topic: &str,
        partition: u32,
        batch: Vec<u8>,
    ) -> Result<i64, String> {
        if self
            .children
            .get(b as usize)
            .and_then(Option::as_ref)
            .is_none()
        {
            return Err(format!("broker {b} is not running"));
        }
        let channel = self
            .channel(b)
            .await
            .ok_or_else(|| format!("broker {b} is not reachable"))?;
        let req = ProduceRequest {
            topic: topic.into(),
            partition,
            batch: batch.into(),
        };
        let resp = BrokerClient::new(channel)
            .produce(req)
            .await
            .map_err(|s| s.message().to_string())?;
        Ok(resp.into_inner().base_offset)
    }

    /// The admin gRPC address of broker `b`, as `strand --server` takes it.
    pub fn grpc_address(&self, b: u32) -> String {
        format!("{}:{}", self.host(b), self.ports[b as usize].grpc)
    }

    /// Brokers whose process runs.
    pub fn alive(&self) -> Vec<u32> {
        (0..self.children.len() as u32)
            .filter(|b| self.children[*b as usize].is_some())
            .collect()
    }

    async fn channel(&self, b: u32) -> Option<Channel> {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc_address(b)))
                .ok()?;
        endpoint
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(20))
            .connect()
            .await
            .ok()
    }

    /// An admin client of broker `b`.
    pub async fn admin(&self, b: u32) -> Option<AdminClient<Channel>> {
        self.channel(b).await.map(AdminClient::new)
    }

    /// The cluster description, from any running broker.
    pub async fn describe_cluster(&self) -> Option<ClusterDescription> {
        for b in self.alive() {
            let Some(mut admin) = self.admin(b).await else {
                continue;
            };
            if let Ok(d) = admin.describe_cluster(DescribeClusterRequest {}).await {
                return Some(d.into_inner());
            }
        }
        None
    }

    /// A topic's description, from any running broker.
    pub async fn describe(&self, topic: &str) -> Option<TopicDescription> {
        for b in self.alive() {
            let Some(mut admin) = self.admin(b).await else {
                continue;
            };
            if let Ok(d) = admin
                .describe_topic(DescribeTopicRequest { name: topic.into() })
                .await
            {
                return Some(d.into_inner());
            }
        }
        None
    }

    /// Creates a topic.
    pub async fn create_topic(&self, name: &str, partitions: u32, replication_factor: u32) {
        let mut admin = self.admin(self.alive()[0]).await.expect("admin client");
        let req = CreateTopicRequest {
            name: name.into(),
            partitions,
            replication_factor,
            config: Default::default(),
            owner: String::new(),
        };
        admin.create_topic(req).await.expect("topic created");
    }

    /// Sends one batch to the partition's leader once; the base offset if it was acknowledged.
    pub async fn produce_once(&self, topic: &str, partition: u32, batch: Vec<u8>) -> Option<i64> {
        let d = self.describe(topic).await?;
        let leader = d.partitions.get(partition as usize)?.leader?;
        self.children.get(leader as usize)?.as_ref()?;
        let mut client = BrokerClient::new(self.channel(leader).await?);
        let req = ProduceRequest {
            topic: topic.into(),
            partition,
            batch: batch.into(),
        };
        client
            .produce(req)
            .await
            .ok()
            .map(|r| r.into_inner().base_offset)
    }

    /// The record values broker `b`'s replica holds, up to its high watermark.
    pub async fn values(&self, b: u32, topic: &str, partition: u32) -> Option<Vec<String>> {
        let records = self.records(b, topic, partition).await?;
        Some(records.into_iter().map(|(_, value)| value).collect())
    }

    /// The records (offset and value) broker `b`'s replica holds, up to its high watermark.
    pub async fn records(&self, b: u32, topic: &str, partition: u32) -> Option<Vec<(i64, String)>> {
        replica_records(self.channel(b).await?, topic, partition).await
    }

    /// Polls `check` until it returns something; panics with `what` after `limit`.
    pub async fn wait_for<'a, T, F, Fut>(&'a self, what: &str, limit: Duration, check: F) -> T
    where
        F: Fn(&'a ProcessCluster) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = check(self).await {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what} (logs in {})",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        // A paused broker is let go first, so that SIGKILL ends it at once.
        for b in 0..self.children.len() as u32 {
            let _ = self.signal(b, "-CONT");
            self.kill(b);
        }
        self.heal();
    }
}

/// Adds (`-I`) or deletes (`-D`) the rule that drops packets from `from` to `to`.
fn iptables(action: &str, from: std::net::IpAddr, to: std::net::IpAddr) {
    let status = Command::new("iptables")
        .args([
            action,
            "INPUT",
            "-s",
            &from.to_string(),
            "-d",
            &to.to_string(),
        ])
        .args(["-j", "DROP"])
        .status()
        .expect("runs iptables (Debian package iptables)");
    assert!(
        status.success() || action == "-D",
        "iptables {action} {from} -> {to} failed: cutting the network needs root"
    );
}

/// A small tmpfs mounted at a directory for as long as it lives (needs root).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` at `path`.
    pub fn mount(path: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("runs mount");
        assert!(
            status.success(),
            "mounting a tmpfs at {} failed: this needs root",
            path.display()
        );
        Tmpfs(path.to_path_buf())
    }

    /// Fills the file system but for about `left` bytes, with a file that [`Tmpfs::free`]
    /// removes.
    pub fn fill(&self, left: u64) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![7u8; 64 << 10];
        let mut written = 0u64;
        while filler.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        let _ = filler.set_len(written.saturating_sub(left));
    }

    /// Removes what [`Tmpfs::fill`] wrote.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A small deterministic generator, so a failing schedule can be replayed with E2E_SEED.
pub struct Rng(u64);

impl Rng {
    /// The generator of `seed`.
    pub fn new(seed: u64) -> Rng {
        // A xorshift generator stays at zero from zero.
        Rng(seed.max(1))
    }

    /// The generator of `E2E_SEED`, or of a seed from the clock; with the seed, to print.
    pub fn seeded() -> (u64, Rng) {
        let seed = std::env::var("E2E_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (seed, Rng(seed))
    }

    /// A number below `below`.
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// An uncompressed batch of records with these values.
pub fn batch(values: &[String]) -> Vec<u8> {
    let records: Vec<strand_log::RecordSpec<'_>> = values
        .iter()
        .map(|v| (None, Some(v.as_bytes()), 1_700_000_000_000))
        .collect();
    strand_log::build_batch(&records)
}

/// `strand dev` as a child process, stopped (with its brokers) when dropped.
pub struct DevCluster {
    child: Child,
    _dir: tempfile::TempDir,
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// gRPC address of broker 0, for the admin API.
    pub admin: String,
    /// With `--secure`, the client properties file it wrote.
    pub properties: Option<std::path::PathBuf>,
}

impl DevCluster {
    /// Starts `strand dev --brokers N` and waits until it reports that it is up.
    pub fn start(brokers: u16) -> DevCluster {
        DevCluster::start_with(brokers, false)
    }

    /// Starts `strand dev --brokers N --secure` and waits until it reports that it is up.
    pub fn start_secure(brokers: u16) -> DevCluster {
        DevCluster::start_with(brokers, true)
    }

    fn start_with(brokers: u16, secure: bool) -> DevCluster {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().expect("temporary directory");
        // Below the ephemeral port range, in slots of 600 ports (a dev cluster of up to 9
        // brokers uses P..P+81 and P+552..P+633), starting from one picked by process id and
        // taking the first whose ports are all free, so parallel runs do not collide.
        let ports_of = |base: u16| {
            (0..brokers).flat_map(move |i| [base + 10 * i, base + 1 + 10 * i, base + 552 + 10 * i])
        };
        // Clusters started by one process (tests on parallel threads) take successive slots.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let started = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let first = (std::process::id().wrapping_add(started) % 21) as u16;
        let port_base = (0..21)
            .map(|k| 20_000 + ((first + k) % 21) * 600)
            .find(|&base| {
                ports_of(base).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
            })
            .expect("a free slot of ports for strand dev");
        let mut child = Command::new(strand_bin())
            .args(["dev", "--brokers", &brokers.to_string()])
            .args(["--port-base", &port_base.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .args(secure.then_some("--secure"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("strand dev starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut properties = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("strand dev: {line}");
                if let Some(rest) = line.trim().strip_prefix("client properties: ") {
                    properties = rest.split(' ').next().map(std::path::PathBuf::from);
                }
                if line.trim().starts_with("press Ctrl-C") {
                    let _ = tx.send(properties.take());
                }
            }
        });
        let mut dev = DevCluster {
            child,
            _dir: dir,
            bootstrap: (0..brokers)
                .map(|i| format!("127.0.0.1:{}", port_base + 10 * i))
                .collect::<Vec<_>>()
                .join(","),
            admin: format!("127.0.0.1:{}", port_base + 1),
            properties: None,
        };
        dev.properties = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("strand dev reports it is up");
        dev
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The records (offset and value) of `topic`/`partition` as the broker at the other end of
/// `channel` holds them, up to its high watermark, read through its Fetch call.
pub async fn replica_records(
    channel: Channel,
    topic: &str,
    partition: u32,
) -> Option<Vec<(i64, String)>> {
    let mut client = BrokerClient::new(channel);
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let req = FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1 << 22,
            max_wait_ms: 0,
        };
        let resp = client.fetch(req).await.ok()?.into_inner();
        if resp.batches.is_empty() {
            return Some(out);
        }
        let mut bytes = &resp.batches[..];
        while bytes.len() >= 12 {
            let len = i32::from_be_bytes(bytes[8..12].try_into().ok()?) as usize + 12;
            for r in strand_log::decode_records(&bytes[..len]).ok()? {
                out.push((r.offset, String::from_utf8_lossy(&r.value?).into_owned()));
            }
            bytes = &bytes[len..];
        }
        offset = resp.next_offset;
    }
}
