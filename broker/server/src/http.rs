//! The broker's HTTP port: `/healthz` (the process is alive), `/readyz` (registered with the
//! controller and every local replica caught up), `/metrics` (Prometheus text format), and
//! `POST /v1/pre-stop?timeout_ms=N`, the hand-over a stopping broker makes (see
//! `hand_over.rs`), started before SIGTERM by `strand broker pre-stop`. The port has no
//! authentication, so pre-stop is answered only on the loopback interface: the pod's own
//! preStop hook reaches it there, and nobody elsewhere can make a broker give up its
//! leaderships.
//!
//! Readiness is what paces a rolling restart: the StatefulSet replaces the next pod only once
//! the restarted one is ready, and a broker is ready only when none of its replicas is behind
//! its leader, as the leaders last reported to the controller.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use openraft::async_runtime::WatchReceiver;
use strand_node::tls::Reloading;
use tokio_rustls::TlsAcceptor;

use crate::shared::Inner;

/// How long `POST /v1/pre-stop` waits for leaderships to be taken when the request names no
/// `timeout_ms`.
const PRE_STOP_TIMEOUT: Duration = Duration::from_secs(90);
/// The longest `timeout_ms` accepted: past it, the hook would outlast any sensible
/// termination grace period.
const PRE_STOP_TIMEOUT_MAX: Duration = Duration::from_secs(600);

/// How long a client has to complete its TLS handshake on the HTTP port.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the HTTP port until the broker shuts down, over TLS with `tls`.
pub async fn serve(
    inner: Arc<Inner>,
    listener: tokio::net::TcpListener,
    tls: Option<Reloading<TlsAcceptor>>,
) {
    let mut stop = inner.shutdown.subscribe();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/pre-stop", post(pre_stop))
        .with_state(inner);
    if let Some(tls) = tls {
        serve_tls(app, listener, tls, stop).await;
        return;
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

/// The HTTP port over TLS: each connection's handshake and requests on a task of its own, so
/// a client that stalls its handshake or speaks plaintext holds up no one else.
async fn serve_tls(
    app: Router,
    listener: tokio::net::TcpListener,
    tls: Reloading<TlsAcceptor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP port: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let (acceptor, _) = tls.current();
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "HTTP port: TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "HTTP port: TLS handshake not completed in time");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTP port: connection ended");
            }
        });
    }
}

/// Why the broker is not ready yet, if it is not.
pub fn not_ready(inner: &Inner) -> Option<String> {
    let state = inner.cluster.state();
    if !inner.cluster.registered_in(&state) {
        return Some("not registered with the controller yet".into());
    }
    if let Some(why) = metadata_voter_missing(inner, &state) {
        return Some(why);
    }
    let me = inner.cluster.broker_id();
    // Assigned here: a replica this broker is giving up may stay a learner until it goes.
    let assigned_here = |topic: &str, partition: u32| {
        state
            .topic_by_name(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .is_some_and(|a| a.replicas.contains(&me))
    };
    let behind: Vec<String> = inner
        .registry
        .partitions()
        .into_iter()
        .filter_map(|(group, r)| {
            let watch = r.raft.metrics();
            let m = watch.borrow_watched();
            // A replica that is not a voter yet (a new incarnation of this broker after an
            // empty disk, or a replica moved here) does not count towards its partition's
            // copies: until the controller has made it one, the partition has one copy fewer,
            // and another broker restarted on an empty disk meanwhile (a rolling restart goes
            // on to the next pod once this one is ready) would take a second of three.
            // A voter of the committed membership, in both of its configurations while a change
            // is under way: a configuration appended but not committed may still be lost, and
            // while the change is joint, the old configuration's majority is needed too.
            // (A replica that has received nothing yet has an empty membership: not a voter.)
            let configs = m.committed_membership_config.get_joint_config();
            let voter = !configs.is_empty() && configs.iter().all(|voters| voters.contains(&m.id));
            let why = if m.current_leader.is_none() {
                "no leader known"
            } else if m.last_applied.map(|l| l.index) < m.local_committed.map(|c| c.index) {
                "applying"
            } else if !voter && assigned_here(&r.topic, r.partition) {
                "not a voter yet"
            } else if inner
                .views
                .get(&group)
                .is_some_and(|v| v.lagging.contains(&me))
            {
                "behind its leader"
            } else {
                return None;
            };
            Some(format!("{}-{} ({why})", r.topic, r.partition))
        })
        .collect();
    if behind.is_empty() {
        None
    } else {
        Some(format!("replicas not caught up: {}", behind.join(", ")))
    }
}

/// Why this broker should not count as ready for the metadata group's sake: a configuration of
/// the group's committed membership (two while a change is under way) does not hold it and has
/// fewer voters among the brokers' current incarnations than the controller keeps (3, or 5 from
/// five brokers on). That is a new incarnation after an empty disk whose predecessor the
/// controller has not replaced yet, or whose replacement is not committed: were another
/// broker's disk emptied meanwhile (a rolling restart goes on to the next pod once this one is
/// ready), the group could be left without a majority of its voters, and no controller could
/// be elected again.
fn metadata_voter_missing(inner: &Inner, state: &strand_meta::ClusterState) -> Option<String> {
    let watch = inner.cluster.raft().metrics();
    let metrics = watch.borrow_watched();
    let live: Vec<u64> = state
        .brokers()
        .values()
        .filter(|b| b.state != strand_meta::BrokerState::Decommissioned)
        .map(|b| b.node_id.0)
        .collect();
    let kept = crate::controller::metadata_voters_kept(live.len());
    let configs = metrics.committed_membership_config.get_joint_config();
    if configs.is_empty() {
        return Some("has not received the metadata group's membership yet".into());
    }
    configs
        .iter()
        .filter(|voters| !voters.contains(&metrics.id))
        .map(|voters| voters.iter().filter(|v| live.contains(v)).count())
        .find(|current| *current < kept)
        .map(|current| {
            format!(
                "not a voter of the metadata group yet (it has {current} of the {kept} voters it keeps)"
            )
        })
}

async fn readyz(State(inner): State<Arc<Inner>>) -> (StatusCode, String) {
    match not_ready(&inner) {
        None => (StatusCode::OK, "ready\n".into()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// Hands this broker's leaderships over and answers, once it leads nothing or the timeout
/// passed, with the [`HandOver`](crate::HandOver) as JSON.
async fn pre_stop(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> Response {
    if !peer.ip().to_canonical().is_loopback() {
        tracing::warn!(%peer, "pre-stop refused: it is only taken from this host (the pod's preStop hook)");
        return (
            StatusCode::FORBIDDEN,
            "pre-stop is only taken from this host: run `strand broker pre-stop` beside the broker\n",
        )
            .into_response();
    }
    let timeout = match pre_stop_timeout(query.as_deref()) {
        Ok(timeout) => timeout,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    tracing::info!(
        timeout_ms = timeout.as_millis() as u64,
        "pre-stop: handing leaderships over"
    );
    let report = crate::hand_over::hand_over_all(&inner, timeout).await;
    match serde_json::to_string(&report) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// A pre-stop query string that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum QueryError {
    /// `timeout_ms` is not a number.
    #[error("timeout_ms must be a number of milliseconds, not `{0}`")]
    NotMilliseconds(String),
    /// Another parameter.
    #[error("unknown query parameter `{0}`; only timeout_ms is known")]
    Unknown(String),
    /// Over the longest hand-over allowed.
    #[error("timeout_ms may be at most {}, not {}", PRE_STOP_TIMEOUT_MAX.as_millis(), .0.as_millis())]
    TooLong(Duration),
}

/// The `timeout_ms` of a pre-stop query string, or the default.
fn pre_stop_timeout(query: Option<&str>) -> Result<Duration, QueryError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(PRE_STOP_TIMEOUT);
    };
    let mut timeout = PRE_STOP_TIMEOUT;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("timeout_ms", value)) => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| QueryError::NotMilliseconds(value.to_string()))?;
                timeout = Duration::from_millis(ms);
            }
            _ => {
                return Err(QueryError::Unknown(pair.to_string()));
            }
        }
    }
    if timeout > PRE_STOP_TIMEOUT_MAX {
        return Err(QueryError::TooLong(timeout));
    }
    Ok(timeout)
}

async fn metrics(State(inner): State<Arc<Inner>>) -> String {
    let mut registry = prometheus_client::registry::Registry::with_prefix("strand");
    let partitions = inner.registry.partitions();
    let leaders = partitions
        .iter()
        .filter(|(_, r)| r.raft.metrics().borrow_watched().state == openraft::ServerState::Leader)
        .count();
    let replicas: prometheus_client::metrics::gauge::Gauge = Default::default();
    replicas.set(partitions.len() as i64);
    registry.register(
        "partition_replicas",
        "Partition replicas hosted by this broker",
        replicas,
    );
    let led: prometheus_client::metrics::gauge::Gauge = Default::default();
    led.set(leaders as i64);
    registry.register("partition_leaders", "Partitions this broker leads", led);
    let controller: prometheus_client::metrics::gauge::Gauge = Default::default();
    controller.set(i64::from(inner.cluster.is_controller()));
    registry.register(
        "controller",
        "1 when this broker is the controller",
        controller,
    );
    let version: prometheus_client::metrics::gauge::Gauge = Default::default();
    version.set(inner.cluster.state().version() as i64);
    registry.register(
        "metadata_version",
        "Number of metadata changes applied",
        version,
    );
    let ready: prometheus_client::metrics::gauge::Gauge = Default::default();
    ready.set(i64::from(not_ready(&inner).is_none()));
    registry.register("ready", "1 when the broker is ready", ready);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        let _ = writeln!(out, "# metrics could not be encoded");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_stop_timeout_comes_from_the_query_or_the_default() {
        assert_eq!(pre_stop_timeout(None), Ok(PRE_STOP_TIMEOUT));
        assert_eq!(pre_stop_timeout(Some("")), Ok(PRE_STOP_TIMEOUT));
        assert_eq!(
            pre_stop_timeout(Some("timeout_ms=2500")),
            Ok(Duration::from_millis(2500))
        );
        assert_eq!(
            pre_stop_timeout(Some("timeout_ms=soon")),
            Err(QueryError::NotMilliseconds("soon".into()))
        );
        assert!(pre_stop_timeout(Some("timeout=1")).is_err());
        assert!(pre_stop_timeout(Some("timeout_ms=600001")).is_err());
    }
}
