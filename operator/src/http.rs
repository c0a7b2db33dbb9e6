//! The operator's HTTP port: `/metrics` (OpenMetrics text), `/healthz` (the process serves)
//! and `/readyz` (it has started its leader election, as leader or standby).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the HTTP handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// The metrics to serve.
    pub metrics: Metrics,
    /// Set once the operator is ready to lead or to stand by.
    pub ready: Arc<AtomicBool>,
}

/// The router of the operator's HTTP port.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response(),
    }
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_status(app: &Router, path: &str) -> (StatusCode, String) {
        use tower::ServiceExt as _;
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_follows_the_flag_and_metrics_are_served() {
        let state = HttpState {
            metrics: Metrics::default(),
            ready: Arc::default(),
        };
        state.metrics.reconciled("Cluster");
        let app = router(state.clone());
        assert_eq!(get_status(&app, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get_status(&app, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.ready.store(true, Ordering::Release);
        assert_eq!(get_status(&app, "/readyz").await.0, StatusCode::OK);
        let (code, text) = get_status(&app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            text.contains("strand_operator_reconciles_total{kind=\"Cluster\"} 1"),
            "{text}"
        );
    }
}
