//! Broker-to-broker calls: identity exchange, metadata writes forwarded to the controller,
//! status reports, and the internal produce/fetch path.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use strand_meta::Command;
use strand_proto::broker as pb;
use strand_proto::broker::broker_server::Broker as BrokerRpc;
use strand_raft::Offset;
use tonic::{Request, Response, Status};

use crate::shared::Inner;
use strand_node::registry::PartitionReplica;
use strand_node::{AppendError, Appended, Writer};

/// Longest a fetch may wait for new data.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
/// Largest fetch response.
const FETCH_BYTES_MAX: u32 = 32 << 20;

/// The broker service of one broker.
pub struct BrokerService {
    inner: Arc<Inner>,
}

impl BrokerService {
    /// The service of the broker `inner`.
    pub fn new(inner: Arc<Inner>) -> Self {
        BrokerService { inner }
    }

    /// The local replica of `topic`-`partition`.
    fn replica(&self, topic: &str, partition: u32) -> Result<Arc<PartitionReplica>, Status> {
        self.inner
            .registry
            .partition_by_name(topic, partition)
            .ok_or_else(|| Status::not_found(format!("{topic}-{partition} is not hosted here")))
    }
}

#[tonic::async_trait]
impl BrokerRpc for BrokerService {
    async fn hello(
        &self,
        _request: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        let state = self.inner.cluster.state();
        let initialized = self
            .inner
            .cluster
            .raft()
            .is_initialized()
            .await
            .unwrap_or(false);
        Ok(Response::new(pb::HelloResponse {
            broker_id: self.inner.cluster.identity().broker_id,
            node_id: self.inner.cluster.identity().node_id,
            cluster_id: state
                .cluster_id()
                .map(|c| c.0.to_string())
                .unwrap_or_default(),
            initialized,
            controller_address: self
                .inner
                .cluster
                .controller()
                .map(|(_, addr)| addr)
                .unwrap_or_default(),
        }))
    }

    async fn propose_metadata(
        &self,
        request: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposeResponse>, Status> {
        let req = request.into_inner();
        let command = Command::from_bytes(&req.command)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let outcome = if self.inner.cluster.is_controller() {
            self.inner
                .cluster
                .propose_here(&command)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?
        } else if let (false, Some((_, addr))) = (req.forwarded, self.inner.cluster.controller()) {
            // Passed on at most once, so a forward never loops.
            self.inner
                .cluster
                .pass_to_controller(&addr, &command)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?
        } else {
            return Err(Status::failed_precondition(
                "this broker is not the controller",
            ));
        };
        let answer = serde_json::to_vec(&outcome).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ProposeResponse {
            answer: answer.into(),
        }))
    }

    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let req = request.into_inner();
        let partition = i32::try_from(req.partition).unwrap_or(i32::MAX);
        let appended = self
            .inner
            .replicas()
            .append(
                &req.topic,
                partition,
                Some(req.batch),
                Writer::Client { acks_all: true },
            )
            .await;
        let applied = match appended {
            Ok(Appended::Submitted { submitted, .. }) => submitted.applied().await,
            Ok(Appended::Duplicate(base_offset)) => {
                return Ok(Response::new(pb::ProduceResponse { base_offset }));
            }
            Err(e) => Err(e),
        };
        match applied {
            Ok(applied) => Ok(Response::new(pb::ProduceResponse {
                base_offset: applied.base_offset.0,
            })),
            Err(e) => Err(status_of_append(&req.topic, req.partition, &e)),
        }
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let req = request.into_inner();
        let replica = self.replica(&req.topic, req.partition)?;
        let mut watermark = replica.sm.high_watermark();
        let deadline =
            Instant::now() + Duration::from_millis(u64::from(req.max_wait_ms)).min(FETCH_WAIT_MAX);
        loop {
            let hw = *watermark.borrow_and_update();
            if hw.0 > req.offset || Instant::now() >= deadline {
                break;
            }
            if tokio::time::timeout_at(deadline, watermark.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        let hw = *watermark.borrow();
        let log = replica.store.log();
        let log = log.read().unwrap_or_else(|p| p.into_inner());
        let batches = log
            .read(
                Offset(req.offset),
                hw,
                req.max_bytes.min(FETCH_BYTES_MAX) as usize,
            )
            .map_err(|e| Status::out_of_range(e.to_string()))?;
        Ok(Response::new(pb::FetchResponse {
            batches: batches.bytes.into(),
            high_watermark: hw.0,
            log_start_offset: log.log_start_offset().0,
            next_offset: batches.next_offset.0,
        }))
    }

    async fn report_status(
        &self,
        request: Request<pb::StatusReport>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        self.inner.record_report(request.into_inner());
        Ok(Response::new(crate::controller::status_reply(&self.inner)))
    }
}

/// The gRPC status for a refused append: the one place this mapping lives. The message says
/// which partition and why, for a person.
fn status_of_append(topic: &str, partition: u32, error: &AppendError) -> Status {
    let message = format!("{topic}-{partition} not written: {error}");
    match error {
        AppendError::NoRecords
        | AppendError::TooLarge { .. }
        | AppendError::UnsupportedFormat(_)
        | AppendError::Corrupt(_)
        | AppendError::Transactional => Status::invalid_argument(message),
        AppendError::UnknownPartition(_) => Status::not_found(message),
        AppendError::InternalTopic(_) => Status::permission_denied(message),
        AppendError::NotLeader(_)
        | AppendError::NotEnoughReplicas(_)
        | AppendError::Producer(_) => Status::failed_precondition(message),
        AppendError::Storage(_) => Status::resource_exhausted(message),
        AppendError::InFlight | AppendError::NotEnoughReplicasAfterAppend(_) => {
            Status::unavailable(message)
        }
        AppendError::TimedOut(_) => Status::deadline_exceeded(message),
    }
}
