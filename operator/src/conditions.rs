//! The `Ready`, `Reconciling` and `Stalled` conditions both resources report, built so that a
//! status computed twice from the same facts is equal: a transition time only moves when a
//! condition's status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::condition::{PAUSED, READY, RECONCILING, STALLED};

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

    /// The condition that is true for this standing.
    pub fn condition(&self) -> &'static str {
        match self {
            Standing::Ready { .. } => READY,
            Standing::Reconciling { .. } => RECONCILING,
            Standing::Stalled { .. } => STALLED,
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
        let mut conditions = vec![
            build(READY, ready),
            build(RECONCILING, reconciling),
            build(STALLED, stalled),
        ];
        // An object that was paused says it no longer is; one never paused carries no
        // Paused condition at all.
        if let Some(was) = previous.iter().find(|c| c.type_ == PAUSED) {
            conditions.push(if was.status == "False" {
                was.clone()
            } else {
                Condition {
                    type_: PAUSED.to_owned(),
                    status: "False".to_owned(),
                    reason: "Resumed".to_owned(),
                    message: String::new(),
                    observed_generation: generation,
                    last_transition_time: Time(now),
                }
            });
        }
        conditions
    }
}

/// The conditions of a paused object: the others as they were, and `Paused` true. Ready and
/// Stalled keep describing the last reconcile, which is what still runs.
pub fn paused(previous: &[Condition], generation: Option<i64>, now: Timestamp) -> Vec<Condition> {
    let mut conditions: Vec<Condition> = previous
        .iter()
        .filter(|c| c.type_ != PAUSED)
        .cloned()
        .collect();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == PAUSED && c.status == "True")
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    conditions.push(Condition {
        type_: PAUSED.to_owned(),
        status: "True".to_owned(),
        reason: "PausedByAnnotation".to_owned(),
        message: "the strand.dev/paused annotation is \"true\": the operator changes nothing \
                  until it is removed"
            .to_owned(),
        observed_generation: generation,
        last_transition_time,
    });
    conditions
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
