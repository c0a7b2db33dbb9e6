//! The broker's HTTP port: `/healthz` (the process is alive), `/readyz` (registered with the
//! controller and every local replica caught up), `/metrics` (Prometheus text format).
//!
//! Readiness is what paces a rolling restart: the StatefulSet replaces the next pod only once
//! the restarted one is ready, and a broker is ready only when none of its replicas is behind
//! its leader, as the leaders last reported to the controller.

use openraft::async_runtime::WatchReceiver;
use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::broker::Inner;

/// Serves the HTTP port until the broker shuts down.
pub async fn serve(inner: Arc<Inner>, listener: tokio::net::TcpListener) {
    let mut stop = inner.shutdown.subscribe();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(inner);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

/// Why the broker is not ready yet, if it is not.
pub fn not_ready(inner: &Inner) -> Option<String> {
    let state = inner.cluster();
    match state.broker(inner.broker_id()) {
        Some(b) if b.node_id.0 == inner.identity.node_id => {}
        _ => return Some("not registered with the controller yet".into()),
    }
    let me = inner.broker_id();
    let behind: Vec<String> = inner
        .registry
        .partitions()
        .into_iter()
        .filter(|(group, r)| {
            let watch = r.raft.metrics();
            let m = watch.borrow_watched();
            m.current_leader.is_none()
                || m.last_applied.map(|l| l.index) < m.local_committed.map(|c| c.index)
                || inner
                    .views
                    .get(group)
                    .is_some_and(|v| v.lagging.contains(&me))
        })
        .map(|(_, r)| format!("{}-{}", r.topic, r.partition))
        .collect();
    if behind.is_empty() {
        None
    } else {
        Some(format!("replicas not caught up: {}", behind.join(", ")))
    }
}

async fn readyz(State(inner): State<Arc<Inner>>) -> (StatusCode, String) {
    match not_ready(&inner) {
        None => (StatusCode::OK, "ready\n".into()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
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
    controller.set(i64::from(inner.is_controller()));
    registry.register(
        "controller",
        "1 when this broker is the controller",
        controller,
    );
    let version: prometheus_client::metrics::gauge::Gauge = Default::default();
    version.set(inner.cluster().version() as i64);
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
