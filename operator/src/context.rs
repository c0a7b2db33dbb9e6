//! What every reconcile shares: the Kubernetes client, the admin client, the event reporter,
//! per-object error backoff, and the one error type of reconciling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::admin::{AdminApi, AdminError};
use crate::conditions::{Standing, is_true};
use crate::crd::condition::STALLED;
use crate::metrics::Metrics;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "strand-operator";

/// The annotation that pauses reconciling an object while it is `"true"`.
pub const PAUSED_ANNOTATION: &str = "strand.dev/paused";

/// Whether `object` carries `strand.dev/paused: "true"`.
pub fn is_paused<K: Resource>(object: &K) -> bool {
    object
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|value| value == "true")
}

/// Why a reconcile failed; the controller retries it with a per-object backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// A call to a cluster's admin API failed in a way that may pass.
    #[error("{0}")]
    Admin(#[from] AdminError),
    /// Adding or removing the Topic finalizer failed, or the cleanup before it.
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The object has no name; objects read from the API server always have one.
    #[error("object has no name")]
    MissingName,
    /// The object has no namespace; Strand's resources are namespaced.
    #[error("object {0} has no namespace")]
    MissingNamespace(String),
    /// The desired objects of a Cluster could not be built.
    #[error("{0}")]
    Desired(#[from] crate::desired::DesiredError),
    /// A certificate or CRL could not be made.
    #[error("{0}")]
    Pki(#[from] crate::pki::PkiError),
}

/// The first retry after an error; each further error in a row doubles it.
const BACKOFF_MIN: Duration = Duration::from_secs(5);
/// The longest wait between retries.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Per-object error backoff: errors in a row per object, forgotten on success.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    fn key<K: Resource<DynamicType = ()>>(object: &K) -> String {
        ObjectRef::from_obj(object).to_string()
    }

    /// Records a failure of `object` and returns how long to wait before retrying it.
    pub fn failed<K: Resource<DynamicType = ()>>(&self, object: &K) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = failures.entry(Self::key(object)).or_insert(0);
        *count = count.saturating_add(1);
        delay_after(*count)
    }

    /// Forgets the failures of `object`.
    pub fn succeeded<K: Resource<DynamicType = ()>>(&self, object: &K) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&Self::key(object));
    }
}

/// The wait after `failures` errors in a row: 5 s, 10 s, 20 s, … up to 5 minutes.
pub fn delay_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// What the reconcilers share.
pub struct Context<A> {
    /// The Kubernetes client.
    pub client: Client,
    /// The admin API of Strand clusters.
    pub admin: A,
    /// Who the operator's Events say they come from.
    pub reporter: Reporter,
    /// Per-object error backoff.
    pub backoff: Backoff,
    /// Reconcile counters.
    pub metrics: Metrics,
}

impl<A: AdminApi> Context<A> {
    /// A context for `client` and `admin`, reporting Events as `strand-operator`.
    pub fn new(client: Client, admin: A, metrics: Metrics) -> Self {
        Context {
            client,
            admin,
            reporter: Reporter {
                controller: FIELD_MANAGER.to_owned(),
                instance: std::env::var("POD_NAME").ok(),
            },
            backoff: Backoff::default(),
            metrics,
        }
    }

    /// Publishes an Event about `object`. An Event that cannot be written is logged and
    /// otherwise ignored: it must not fail the reconcile that had something to say.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(object = %ObjectRef::from_obj(object), %error, "could not publish event");
        }
    }

    /// Publishes a Warning Event when `standing` is a stall that `old` (the object's
    /// conditions as last written) does not already show, so a stalled object does not repeat
    /// it.
    pub async fn warn_on_new_stall<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        old: &[Condition],
        standing: &Standing,
    ) {
        if let Standing::Stalled { reason, message } = standing {
            let already = is_true(old, STALLED).is_some_and(|c| c.reason == *reason);
            if !already {
                self.publish(
                    object,
                    EventType::Warning,
                    reason,
                    "Reconcile",
                    message.clone(),
                )
                .await;
            }
        }
    }

    /// Writes `status` as the status of `object` by server-side apply.
    pub async fn write_status<K, S>(&self, object: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned,
        S: Serialize,
    {
        let namespace = object
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(object.name_any()))?;
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_limit() {
        assert_eq!(delay_after(1), Duration::from_secs(5));
        assert_eq!(delay_after(2), Duration::from_secs(10));
        assert_eq!(delay_after(4), Duration::from_secs(40));
        assert_eq!(delay_after(30), Duration::from_secs(300));
    }
}
