//! `strand dev`: a local cluster of brokers as child processes on 127.0.0.1, for trying Strand
//! out and for tests. Ctrl-C stops every broker; no process outlives the command.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use strand_proto::admin::DescribeClusterRequest;
use strand_proto::admin::admin_client::AdminClient;

/// Options of `strand dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Number of brokers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    brokers: u32,
    /// Keep the cluster's data here (reused by the next run); by default a temporary directory
    /// that is removed on exit.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// First port: broker i listens on Kafka P+10i, gRPC P+1+10i, HTTP P+552+10i.
    #[arg(long, default_value_t = 9092)]
    port_base: u16,
    /// Secure the cluster: Kafka clients speak TLS and authenticate with SASL/SCRAM (or
    /// PLAIN), requests are checked against ACLs, and brokers talk mutual TLS. A CA, the
    /// certificates and an `admin` user are generated; the client properties file printed at
    /// start-up holds everything a client needs (`kcat -F FILE`).
    #[arg(long)]
    secure: bool,
}

/// The ports of broker `i`.
pub fn ports(base: u16, i: u32) -> (u16, u16, u16) {
    let step = 10 * i as u16;
    (base + step, base + 1 + step, base + 552 + step)
}

struct Children(Vec<Child>);

impl Drop for Children {
    /// Closing a broker's standard input asks it to shut down cleanly; one that has not stopped
    /// after ten seconds is killed.
    fn drop(&mut self) {
        for child in &mut self.0 {
            drop(child.stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.0 {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Runs `strand dev`.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    if u32::from(args.port_base) + 10 * args.brokers + 552 > u32::from(u16::MAX) {
        bail!(
            "--port-base {} leaves no room for {} brokers' ports",
            args.port_base,
            args.brokers
        );
    }
    let temporary;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new().prefix("strand-dev-").tempdir()?;
            temporary.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the strand executable")?;
    let seeds: Vec<String> = (0..args.brokers.min(3))
        .map(|i| format!("127.0.0.1:{}", ports(args.port_base, i).1))
        .collect();
    println!("starting {} brokers in {}", args.brokers, dir.display());
    let secure = if args.secure {
        Some(crate::dev_secure::Secure::generate(&dir.join("tls"))?)
    } else {
        None
    };
    let mut children = Children(Vec::new());
    for i in 0..args.brokers {
        let (kafka, grpc, http) = ports(args.port_base, i);
        let log_path = dir.join(format!("broker-{i}.log"));
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(&exe);
        command.arg("broker");
        if let Some(secure) = &secure {
            command.args(secure.broker_args());
        }
        let child = command
            .args(["--broker-id", &i.to_string()])
            .arg("--data-dir")
            .arg(dir.join(format!("broker-{i}")))
            .args(["--kafka-listen", &format!("127.0.0.1:{kafka}")])
            .args(["--auto-create-topics", "true"])
            .args(["--grpc-listen", &format!("127.0.0.1:{grpc}")])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .args(["--advertised-host", "127.0.0.1"])
            .args(["--seeds", &seeds.join(",")])
            .arg("--stop-when-stdin-closes")
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start broker {i}"))?;
        children.0.push(child);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let admin = match &secure {
            Some(secure) => secure.admin_endpoint(&seeds[0])?,
            None => tonic::transport::Endpoint::from_shared(format!("http://{}", seeds[0]))?,
        };
        wait_until_up(&args, &mut children, &dir, &admin).await?;
        let bootstrap: Vec<String> = (0..args.brokers)
            .map(|i| format!("127.0.0.1:{}", ports(args.port_base, i).0))
            .collect();
        let properties = match &secure {
            Some(secure) => Some(secure.create_admin_user(&admin, &bootstrap).await?),
            None => None,
        };
        println!("Strand is up: {} brokers", args.brokers);
        println!("  bootstrap servers: {}", bootstrap.join(","));
        println!("  admin API:         {}", seeds[0]);
        println!("  broker logs:       {}", dir.join("broker-*.log").display());
        if let (Some(secure), Some(properties)) = (&secure, &properties) {
            println!("  security:          TLS + SASL/SCRAM on Kafka, ACLs, mutual TLS between brokers");
            println!("  client properties: {} (user `admin`, a super user)", properties.display());
            println!("    try: kcat -F {} -L", properties.display());
            println!("  admin CLI:         {}", secure.cli_env());
        }
        println!(
            "create a topic: strand topic create demo --partitions 3 --replication-factor {} --server {}",
            args.brokers.min(3),
            seeds[0]
        );
        println!("press Ctrl-C to stop");
        let _ = std::io::stdout().flush();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => println!("\nstopping"),
            _ = term.recv() => println!("stopping"),
            exited = watch_children(&mut children) => println!("{exited}; stopping the others"),
        }
        Ok::<_, anyhow::Error>(())
    })?;
    drop(children);
    Ok(())
}

/// Prints each broker as it registers; fails if a broker exits or the cluster is not up in time.
async fn wait_until_up(
    args: &DevArgs,
    children: &mut Children,
    dir: &std::path::Path,
    admin: &tonic::transport::Endpoint,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = std::collections::BTreeSet::new();
    loop {
        for (i, child) in children.0.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "broker {i} exited ({status}); see {}",
                    dir.join(format!("broker-{i}.log")).display()
                );
            }
        }
        if let Some(d) = describe(admin).await {
            // Brokers register in any order: each is printed once, when first seen.
            for b in &d.brokers {
                if seen.insert(b.broker_id) {
                    println!("  broker {} registered", b.broker_id);
                }
            }
            if d.brokers.len() == args.brokers as usize && d.controller_id.is_some() {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "the cluster did not come up within a minute; see the logs in {}",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn describe(
    admin: &tonic::transport::Endpoint,
) -> Option<strand_proto::admin::ClusterDescription> {
    let mut client = AdminClient::new(admin.connect().await.ok()?);
    let d = client
        .describe_cluster(DescribeClusterRequest {})
        .await
        .ok()?;
    Some(d.into_inner())
}

async fn watch_children(children: &mut Children) -> String {
    loop {
        for (i, child) in children.0.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                return format!("broker {i} exited ({status})");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
