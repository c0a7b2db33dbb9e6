//! The operator's Prometheus metrics: reconciles, their failures and durations per kind, and
//! the objects of each kind by the condition they stand in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `Cluster`, `Topic` or `User`.
    pub kind: &'static str,
}

/// Labels of the objects gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StandingLabels {
    /// `Cluster`, `Topic` or `User`.
    pub kind: &'static str,
    /// `Ready`, `Reconciling`, `Stalled` or `Paused`.
    pub condition: &'static str,
}

/// What the reconcilers record; cheap to clone, every clone counts into the same registry.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciles started.
    pub reconciles: Family<KindLabels, Counter>,
    /// Reconciles that ended in an error and will be retried after a backoff.
    pub failures: Family<KindLabels, Counter>,
    /// How long reconciles take, in seconds.
    pub durations: Family<KindLabels, Histogram>,
    /// Objects per kind and the condition they last stood in.
    pub objects: Family<StandingLabels, Gauge>,
    standings: Arc<Mutex<BTreeMap<(&'static str, String), &'static str>>>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("strand_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<KindLabels, Counter>::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed and will be retried",
            failures.clone(),
        );
        let durations = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            // 5 ms to about 20 s.
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take",
            durations.clone(),
        );
        let objects = Family::<StandingLabels, Gauge>::default();
        registry.register(
            "objects",
            "Objects by kind and the condition they stand in",
            objects.clone(),
        );
        Metrics {
            reconciles,
            failures,
            durations,
            objects,
            standings: Arc::default(),
            registry: Arc::new(registry),
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `kind`.
    pub fn reconciled(&self, kind: &'static str) {
        self.reconciles.get_or_create(&KindLabels { kind }).inc();
    }

    /// Counts a failed reconcile of `kind`.
    pub fn failed(&self, kind: &'static str) {
        self.failures.get_or_create(&KindLabels { kind }).inc();
    }

    /// Starts timing a reconcile of `kind`; the time is recorded when the guard drops.
    pub fn timer(&self, kind: &'static str) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            started: std::time::Instant::now(),
        }
    }

    /// Records how long a reconcile of `kind` took.
    pub fn took(&self, kind: &'static str, elapsed: Duration) {
        self.durations
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
    }

    /// Records the condition object `key` of `kind` stands in; `None` when it is gone.
    pub fn stands(&self, kind: &'static str, key: String, condition: Option<&'static str>) {
        let mut standings = self.standings.lock().unwrap_or_else(|e| e.into_inner());
        match condition {
            Some(condition) => standings.insert((kind, key), condition),
            None => standings.remove(&(kind, key)),
        };
        for condition in ["Ready", "Reconciling", "Stalled", "Paused"] {
            let count = standings
                .iter()
                .filter(|((k, _), c)| *k == kind && **c == condition)
                .count();
            self.objects
                .get_or_create(&StandingLabels { kind, condition })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Times one reconcile; see [`Metrics::timer`].
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: &'static str,
    started: std::time::Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics.took(self.kind, self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.reconciled("Topic");
        metrics.reconciled("Topic");
        metrics.failed("Cluster");
        metrics.took("Topic", Duration::from_millis(30));
        metrics.stands("Topic", "a/x".into(), Some("Ready"));
        metrics.stands("Topic", "a/y".into(), Some("Stalled"));
        metrics.stands("Topic", "a/z".into(), Some("Ready"));
        metrics.stands("Topic", "a/z".into(), None);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("strand_operator_objects{kind=\"Topic\",condition=\"Ready\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("strand_operator_reconcile_duration_seconds_count{kind=\"Topic\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("strand_operator_reconciles_total{kind=\"Topic\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("strand_operator_reconcile_failures_total{kind=\"Cluster\"} 1"),
            "{text}"
        );
    }
}
