//! The operator's Prometheus metrics: reconciles and their failures per kind.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of the reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `Cluster` or `Topic`.
    pub kind: &'static str,
}

/// Counters the reconcilers bump; cheap to clone, every clone counts into the same registry.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciles started.
    pub reconciles: Family<KindLabels, Counter>,
    /// Reconciles that ended in an error and will be retried after a backoff.
    pub failures: Family<KindLabels, Counter>,
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
        Metrics {
            reconciles,
            failures,
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

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
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
        let text = metrics.encode().unwrap();
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
