//! The `Ready`, `Reconciling` and `Stalled` conditions both resources report, built so that a
//! status computed twice from the same facts is equal: a transition time only moves when a
//! condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::condition::{READY, RECONCILING, STALLED};

/// Where an object stands, as the three conditions say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It matches its spec.
    Ready {
        /// Why, as a `PascalCase` word.
        reason: &'static str,
        /// What a person reads.
        message: String,
    },
    /// The operator is working towards the spec, or waiting for the cluster to get there.
    Reconciling {
        /// Why, as a `PascalCase` word.
        reason: &'static str,
        /// What a person reads.
        message: String,
    },
    /// The spec cannot be reached without a person; the message says what to change.
    Stalled {
        /// Why, as a `PascalCase` word.
        reason: &'static str,
        /// What a person reads.
        message: String,
    },
}

impl Standing {
    /// The reason word.
    pub fn reason(&self) -> &'static str {
        match self {
            Standing::Ready { reason, .. }
            | Standing::Reconciling { reason, .. }
            | Standing::Stalled { reason, .. } => reason,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Standing::Ready { message, .. }
            | Standing::Reconciling { message, .. }
            | Standing::Stalled { message, .. } => message,
        }
    }

    /// The three conditions for `generation`, keeping each previous transition time whose
    /// status did not change.
    pub fn conditions(
        &self,
        generation: Option<i64>,
        previous: &[Condition],
        now: Timestamp,
    ) -> Vec<Condition> {
        let (ready, reconciling, stalled) = match self {
            Standing::Ready { .. } => (true, false, false),
            Standing::Reconciling { .. } => (false, true, false),
            Standing::Stalled { .. } => (false, false, true),
        };
        let build = |type_: &str, on: bool| {
            let status = if on { "True" } else { "False" };
            // Every condition carries the standing's reason, which the API server requires
            // to be non-empty. Ready carries the message even when false, since "why not
            // ready" is what `kubectl wait` and Argo CD show.
            let reason = self.reason().to_owned();
            let message = if on || type_ == READY {
                self.message().to_owned()
            } else {
                String::new()
            };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason,
                message,
                observed_generation: generation,
                last_transition_time,
            }
        };
        vec![
            build(READY, ready),
            build(RECONCILING, reconciling),
            build(STALLED, stalled),
        ]
    }
}

/// The condition of `type_` that is `True` in `conditions`, if any.
pub fn is_true<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let reconciling = Standing::Reconciling {
            reason: "Creating",
            message: "creating".into(),
        };
        let first = reconciling.conditions(Some(1), &[], t0);
        let again = reconciling.conditions(Some(1), &first, t1);
        assert_eq!(first, again);

        let ready = Standing::Ready {
            reason: "TopicReady",
            message: "ok".into(),
        };
        let next = ready.conditions(Some(1), &first, t1);
        let time_of = |conditions: &[Condition], type_: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == type_)
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(time_of(&next, READY), Time(t1));
        assert_eq!(time_of(&next, RECONCILING), Time(t1));
        // Stalled was False and stays False.
        assert_eq!(time_of(&next, STALLED), Time(t0));
        assert_eq!(is_true(&next, READY).unwrap().reason, "TopicReady");
        let ready_false = first.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready_false.status, "False");
        assert_eq!(ready_false.message, "creating");
    }
}
