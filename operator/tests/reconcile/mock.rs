//! A mock API server (tower-test) that answers the reconcilers' calls from a few stored
//! objects and records every request, and a fake Strand cluster behind the admin trait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use strand_operator::admin::{AdminApi, AdminError};
use strand_proto::admin::{
    BrokerDescription, BrokerDrain, ClusterDescription, CreateTopicRequest, DeleteTopicRequest,
    ErrorReason, PartitionDescription, RebalanceProgress, TopicDescription, UpdateTopicRequest,
};

/// How long a test waits for anything before failing instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// One request the API server received.
#[derive(Debug, Clone)]
pub struct Call {
    /// `GET`, `PATCH`, `POST`, …
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The query string, empty when none.
    pub query: String,
    /// The `Content-Type` header, empty when none.
    pub content_type: String,
    /// The body as JSON, `null` when empty.
    pub body: Value,
}

impl Call {
    /// `METHOD path`, for comparing request sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether the call changes something.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

/// What the mock API server holds: objects by path.
#[derive(Default)]
pub struct ApiState {
    /// Objects by their API path; a missing path answers 404.
    pub objects: BTreeMap<String, Value>,
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "not found", "reason": "NotFound", "code": 404}),
    )
}

/// Answers one call: GET reads a stored object, a status apply patch merges the status into
/// it, a JSON patch of a Topic's finalizers is applied, an Event POST is echoed, another POST
/// creates the object.
fn answer(state: &mut ApiState, call: &Call) -> (StatusCode, Value) {
    match call.method.as_str() {
        "GET" => match state.objects.get(&call.path) {
            Some(object) => (StatusCode::OK, object.clone()),
            // A namespace without volume claims lists none.
            None if call.path.ends_with("/persistentvolumeclaims") => (
                StatusCode::OK,
                json!({"kind": "PersistentVolumeClaimList", "apiVersion": "v1", "metadata": {}, "items": []}),
            ),
            None => not_found(),
        },
        "POST" if call.path.ends_with("/events") => (StatusCode::CREATED, call.body.clone()),
        "POST" => {
            let name = call.body["metadata"]["name"].as_str().unwrap_or_default();
            let path = format!("{}/{name}", call.path);
            if state.objects.contains_key(&path) {
                return (
                    StatusCode::CONFLICT,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "message": "already exists",
                           "reason": "AlreadyExists", "code": 409}),
                );
            }
            state.objects.insert(path, call.body.clone());
            (StatusCode::CREATED, call.body.clone())
        }
        "PATCH" => {
            let (object_path, status) = match call.path.strip_suffix("/status") {
                Some(path) => (path.to_owned(), true),
                None => (call.path.clone(), false),
            };
            let apply = call.content_type == "application/apply-patch+yaml";
            if apply && !status && !state.objects.contains_key(&object_path) {
                // Server-side apply creates what does not exist yet.
                state.objects.insert(object_path.clone(), call.body.clone());
                return (StatusCode::CREATED, call.body.clone());
            }
            let Some(object) = state.objects.get_mut(&object_path) else {
                return not_found();
            };
            if status {
                object["status"] = call.body["status"].clone();
            } else if call.content_type == "application/json-patch+json" {
                let patch: json_patch::Patch = match serde_json::from_value(call.body.clone()) {
                    Ok(patch) => patch,
                    Err(_) => return (StatusCode::BAD_REQUEST, json!({})),
                };
                if json_patch::patch(object, &patch).is_err() {
                    return (StatusCode::UNPROCESSABLE_ENTITY, json!({}));
                }
            } else {
                // Server-side apply of a whole object: store what was applied; the status
                // (the status subresource's) and the generation (the server's) stay.
                let status = object.get("status").cloned();
                let generation = object["metadata"].get("generation").cloned();
                *object = call.body.clone();
                if let Some(status) = status {
                    object["status"] = status;
                }
                if let Some(generation) = generation {
                    object["metadata"]["generation"] = generation;
                }
            }
            (StatusCode::OK, object.clone())
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
    }
}

/// A client whose API server is the mock, and the task that serves it until every client
/// is dropped; the task returns every call it saw.
pub fn client(state: ApiState) -> (Client, tokio::task::JoinHandle<(Vec<Call>, ApiState)>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut state = state;
        let mut calls = Vec::new();
        while let Ok(Some((request, send))) =
            tokio::time::timeout(DEADLINE, handle.next_request()).await
        {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let call = Call {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (code, body) = answer(&mut state, &call);
            calls.push(call);
            let response = Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            send.send_response(response);
        }
        (calls, state)
    });
    (Client::new(service, "default"), server)
}

/// What the fake cluster was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCall {
    /// CreateTopic of this name.
    Create(String),
    /// UpdateTopic of this name.
    Update(String),
    /// DeleteTopic of this name.
    Delete(String),
    /// DecommissionBroker of this id.
    Decommission(u32),
    /// RecommissionBroker of this id.
    Recommission(u32),
}

/// The fake cluster's state.
#[derive(Default)]
pub struct FakeState {
    /// Topics by name.
    pub topics: BTreeMap<String, TopicDescription>,
    /// Writes in the order made.
    pub calls: Vec<AdminCall>,
    /// The cluster's id.
    pub cluster_id: String,
    /// Brokers in the cluster.
    pub brokers: u32,
    /// Brokers that are not active: state and replicas still held.
    pub broker_states: BTreeMap<u32, (String, u32)>,
}

/// A Strand cluster in memory, checking what a real controller refuses for lack of brokers.
#[derive(Clone)]
pub struct FakeCluster(pub Arc<Mutex<FakeState>>);

impl FakeCluster {
    /// A cluster of `brokers` brokers with id `cluster_id`.
    pub fn new(cluster_id: &str, brokers: u32) -> Self {
        FakeCluster(Arc::new(Mutex::new(FakeState {
            cluster_id: cluster_id.to_owned(),
            brokers,
            ..FakeState::default()
        })))
    }

    /// The fake's state.
    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }
}

fn partitions(from: u32, to: u32, rf: u32) -> Vec<PartitionDescription> {
    (from..to)
        .map(|p| PartitionDescription {
            partition: p,
            replicas: (0..rf).collect(),
            leader: Some(0),
            ..PartitionDescription::default()
        })
        .collect()
}

/// Refuses a change to `topic` unless its owner is `expected` (when given), as the metadata
/// group does.
fn check_owner(topic: &TopicDescription, expected: Option<&str>) -> Result<(), AdminError> {
    match expected {
        Some(expected) if expected != topic.owner => Err(refused(
            ErrorReason::NotOwner,
            format!(
                "topic {} is managed by `{}`, not by `{expected}`",
                topic.name, topic.owner
            ),
        )),
        _ => Ok(()),
    }
}

fn refused(reason: ErrorReason, message: String) -> AdminError {
    AdminError::Refused {
        reason,
        message,
        config_key: String::new(),
    }
}

fn broker(state: &FakeState, i: u32) -> BrokerDescription {
    let (broker_state, replicas) = state
        .broker_states
        .get(&i)
        .cloned()
        .unwrap_or_else(|| ("active".into(), 4));
    BrokerDescription {
        broker_id: i,
        state: broker_state,
        grpc_address: format!("main-{i}.main-brokers.default.svc:9093"),
        alive: true,
        replica_count: replicas,
        ..BrokerDescription::default()
    }
}

impl AdminApi for FakeCluster {
    async fn describe_cluster(&self, _: &str) -> Result<ClusterDescription, AdminError> {
        let state = self.state();
        Ok(ClusterDescription {
            cluster_id: state.cluster_id.clone(),
            controller_id: Some(0),
            brokers: (0..state.brokers).map(|i| broker(&state, i)).collect(),
            ..ClusterDescription::default()
        })
    }

    async fn describe_topic(
        &self,
        _: &str,
        name: &str,
    ) -> Result<Option<TopicDescription>, AdminError> {
        Ok(self.state().topics.get(name).cloned())
    }

    async fn create_topic(
        &self,
        _: &str,
        request: CreateTopicRequest,
    ) -> Result<TopicDescription, AdminError> {
        let mut state = self.state();
        state.calls.push(AdminCall::Create(request.name.clone()));
        if request.replication_factor > state.brokers {
            return Err(refused(
                ErrorReason::NotEnoughBrokers,
                format!(
                    "replication factor {} needs {} brokers; the cluster has {}",
                    request.replication_factor, request.replication_factor, state.brokers
                ),
            ));
        }
        let topic = TopicDescription {
            name: request.name.clone(),
            topic_id: format!("id-{}", request.name),
            cluster_id: state.cluster_id.clone(),
            replication_factor: request.replication_factor,
            config: request.config,
            partitions: partitions(0, request.partitions, request.replication_factor),
            owner: request.owner,
            internal: false,
        };
        state.topics.insert(request.name, topic.clone());
        Ok(topic)
    }

    async fn update_topic(
        &self,
        _: &str,
        request: UpdateTopicRequest,
    ) -> Result<TopicDescription, AdminError> {
        let mut state = self.state();
        state.calls.push(AdminCall::Update(request.name.clone()));
        let Some(topic) = state.topics.get_mut(&request.name) else {
            return Err(refused(ErrorReason::UnknownTopic, "unknown topic".into()));
        };
        check_owner(topic, request.expected_owner.as_deref())?;
        if let Some(owner) = request.owner {
            topic.owner = owner;
        }
        if let Some(wanted) = request.partitions {
            let have = u32::try_from(topic.partitions.len()).unwrap();
            let rf = topic.replication_factor;
            topic.partitions.extend(partitions(have, wanted, rf));
        }
        topic.config.extend(request.set_config);
        for key in request.remove_config {
            topic.config.remove(&key);
        }
        // The new factor is taken at once; replicas move later (a test moves them).
        if let Some(rf) = request.replication_factor {
            topic.replication_factor = rf;
        }
        Ok(topic.clone())
    }

    async fn delete_topic(&self, _: &str, request: DeleteTopicRequest) -> Result<bool, AdminError> {
        let mut state = self.state();
        state.calls.push(AdminCall::Delete(request.name.clone()));
        if let Some(topic) = state.topics.get(&request.name) {
            check_owner(topic, request.expected_owner.as_deref())?;
        }
        Ok(state.topics.remove(&request.name).is_some())
    }

    async fn list_topics(&self, _: &str) -> Result<Vec<TopicDescription>, AdminError> {
        Ok(self.state().topics.values().cloned().collect())
    }

    /// Starts draining with the broker's replicas still on it; a test finishes the drain by
    /// setting the broker decommissioned.
    async fn decommission_broker(&self, _: &str, id: u32) -> Result<BrokerDescription, AdminError> {
        let mut state = self.state();
        state.calls.push(AdminCall::Decommission(id));
        state.broker_states.insert(id, ("draining".into(), 4));
        Ok(broker(&state, id))
    }

    async fn recommission_broker(&self, _: &str, id: u32) -> Result<BrokerDescription, AdminError> {
        let mut state = self.state();
        state.calls.push(AdminCall::Recommission(id));
        state.broker_states.remove(&id);
        Ok(broker(&state, id))
    }

    async fn rebalance_status(&self, _: &str) -> Result<RebalanceProgress, AdminError> {
        let state = self.state();
        let draining: Vec<BrokerDrain> = state
            .broker_states
            .iter()
            .filter(|(_, (s, _))| s == "draining")
            .map(|(id, (_, left))| BrokerDrain {
                broker_id: *id,
                replicas_left: *left,
                blocked: String::new(),
            })
            .collect();
        Ok(RebalanceProgress {
            balanced: draining.is_empty(),
            summary: if draining.is_empty() {
                "balanced".into()
            } else {
                format!("{} brokers draining", draining.len())
            },
            draining,
            ..RebalanceProgress::default()
        })
    }
}
