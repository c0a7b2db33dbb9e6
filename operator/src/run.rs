//! `strand-operator run`: the operator process. It serves its HTTP port at once, takes part
//! in leader election through a Lease, runs the Cluster and Topic controllers while it leads,
//! and on SIGTERM stops the controllers (letting running reconciles finish), releases the
//! Lease and exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{self, Controller};
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use strand_operator::admin::GrpcAdmin;
use strand_operator::context::Context;
use strand_operator::crd::{Cluster, Topic, User};
use strand_operator::http::{HttpState, router};
use strand_operator::metrics::Metrics;
use strand_operator::{cluster, topic, user};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Seconds a Lease stays valid after its holder last renewed it.
const LEASE_DURATION_SECS: u64 = 15;
/// Seconds before expiry at which the holder renews.
const LEASE_GRACE_SECS: u64 = 5;
/// Reconciles run at once per controller.
const CONCURRENCY: u16 = 8;

/// Settings of `strand-operator run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Address of the HTTP port (`/metrics`, `/healthz`, `/readyz`).
    #[arg(
        long,
        env = "STRAND_OPERATOR_HTTP_LISTEN",
        default_value = "0.0.0.0:9644"
    )]
    http_listen: SocketAddr,
    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "STRAND_OPERATOR_LEASE_NAME",
        default_value = "strand-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease; the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease; its pod name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Namespaces whose Clusters and Topics this operator serves, comma-separated; every
    /// namespace when empty.
    #[arg(
        long,
        env = "STRAND_OPERATOR_WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    watch_namespaces: Vec<String>,
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object a line).
    #[arg(
        long,
        env = "STRAND_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines; ANSI colours only when standard error is a terminal.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// Runs the operator until SIGTERM or Ctrl-C, or until it loses leadership (then it exits
/// with an error, so its restart stands for election again with nothing left running).
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let metrics = Metrics::default();
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_listen))?;
    let app = router(HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    let http = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    info!(http = %args.http_listen, "serving /metrics, /healthz, /readyz");

    let client = Client::try_default()
        .await
        .context("cannot reach the Kubernetes API")?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("strand-operator-{}", std::process::id()));
    let lease = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(LEASE_DURATION_SECS)
        .with_grace(LEASE_GRACE_SECS)
        .with_field_manager("strand-operator-lease")
        .build()
        .await
        .context("cannot set up leader election")?;
    let (mut leading, lease_task) = lease.watch().await;
    ready.store(true, Ordering::Release);
    info!(%identity, lease = %args.lease_name, "standing for leader election");

    let elected = tokio::select! {
        () = shutdown.cancelled() => false,
        led = leading.wait_for(|leading| *leading) => led.map(|_| ()).is_ok(),
    };
    let outcome = if elected {
        let namespaces: Vec<String> = args
            .watch_namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        lead(client, metrics, &namespaces, &shutdown, &mut leading).await
    } else if shutdown.is_cancelled() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("leader election stopped"))
    };
    shutdown.cancel();
    // Dropping the receiver makes the lease task release the Lease and end.
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => info!("lease released"),
        Ok(Err(error)) => warn!(%error, "could not release the lease"),
        Err(error) => warn!(%error, "lease task failed"),
    }
    let _ = http.await;
    outcome
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: shutting down"),
    }
    shutdown.cancel();
}

/// An API of `K` over every namespace, or over one.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Runs both controllers while this replica leads: once over every namespace, or once per
/// namespace it is told to serve.
async fn lead(
    client: Client,
    metrics: Metrics,
    namespaces: &[String],
    shutdown: &CancellationToken,
    leading: &mut tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        info!("leading: starting the controllers for every namespace");
        vec![None]
    } else {
        info!(namespaces = %namespaces.join(","), "leading: starting the controllers");
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let ctx = Arc::new(Context::new(client.clone(), GrpcAdmin::new(), metrics));
    // Controllers stop on shutdown or when leadership is lost.
    let stop = shutdown.child_token();
    let config = controller::Config::default().concurrency(CONCURRENCY);
    let mut running = Vec::new();
    for scope in scopes {
        let topics = Controller::new(api::<Topic>(&client, scope), watcher::Config::default())
            .with_config(config.clone());
        let topic_store = topics.store();
        // A Cluster that appears, changes or goes re-queues its Topics (a Topic waiting for
        // its Cluster, or one whose finalizer waits for it to go).
        let topics = topics
            .watches(
                api::<Cluster>(&client, scope),
                watcher::Config::default(),
                move |cluster: Cluster| topic::topics_of(&cluster, &topic_store.state()),
            )
            .graceful_shutdown_on(stop.clone().cancelled_owned())
            .run(topic::reconcile, topic::error_policy, ctx.clone())
            .for_each(|_| async {});
        running.push(topics.boxed());

        let users = Controller::new(api::<User>(&client, scope), watcher::Config::default())
            .with_config(config.clone());
        let user_store = users.store();
        // A Cluster that appears, changes (its listeners' addresses) or goes re-queues its
        // Users.
        let users = users
            .watches(
                api::<Cluster>(&client, scope),
                watcher::Config::default(),
                move |cluster: Cluster| user::users_of(&cluster, &user_store.state()),
            )
            .graceful_shutdown_on(stop.clone().cancelled_owned())
            .run(user::reconcile, user::error_policy, ctx.clone())
            .for_each(|_| async {});
        running.push(users.boxed());

        let broker_pods = watcher::Config::default()
            .labels("app.kubernetes.io/name=strand,app.kubernetes.io/component=broker");
        let clusters = Controller::new(api::<Cluster>(&client, scope), watcher::Config::default())
            .with_config(config.clone())
            .owns(
                api::<StatefulSet>(&client, scope),
                watcher::Config::default(),
            )
            .watches(api::<Pod>(&client, scope), broker_pods, |pod: Pod| {
                cluster::cluster_of_pod(&pod)
            })
            .graceful_shutdown_on(stop.clone().cancelled_owned())
            .run(cluster::reconcile, cluster::error_policy, ctx.clone())
            .for_each(|_| async {});
        running.push(clusters.boxed());
    }

    let lost = async {
        // Ends when leadership is lost or the lease task stops.
        let _ = leading.wait_for(|leading| !*leading).await;
    };
    let controllers = futures::future::join_all(running);
    tokio::pin!(controllers);
    tokio::select! {
        _ = &mut controllers => Ok(()),
        () = lost => {
            warn!("lost leadership: stopping the controllers");
            stop.cancel();
            controllers.await;
            Err(anyhow::anyhow!("lost leadership of the lease"))
        }
    }
}
