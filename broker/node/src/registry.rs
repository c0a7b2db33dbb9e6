//! The Raft groups this broker runs, by group id, for the RPC server to route to.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use openraft::async_runtime::WatchReceiver;
use strand_raft::{GroupStateMachine, LogStore, TypeConfig};

use crate::append::{AppendError, CheckedBatch};
use crate::producers::ProducerState;

use crate::meta::MetaMachine;

/// The metadata group's Raft handle.
pub type MetaRaft = openraft::Raft<TypeConfig, GroupStateMachine<MetaMachine>>;
/// A partition group's Raft handle.
pub type PartitionRaft = openraft::Raft<TypeConfig, GroupStateMachine<ProducerState>>;

/// The id of the metadata group.
pub const META_GROUP: &str = "meta";

/// The group id of a partition.
pub fn partition_group(topic_id: strand_meta::TopicId, partition: u32) -> String {
    format!("{}/{partition}", topic_id.0)
}

/// One local replica of a partition.
#[derive(Clone)]
pub struct PartitionReplica {
    /// The Raft handle.
    pub raft: PartitionRaft,
    /// The log storage (and through it the partition log).
    pub store: LogStore,
    /// The state machine (high watermark, idempotent producers).
    pub sm: GroupStateMachine<ProducerState>,
    /// The idempotent producers' state, shared with the state machine.
    pub producers: ProducerState,
    /// The topic name, for the data path.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
}

/// Attempts at a write whose leader lease lapsed, each after renewing it.
const LEASE_RENEWALS_MAX: u32 = 3;

impl PartitionReplica {
    /// Renews this leader's quorum lease when less than a quarter of it is left, so the writes
    /// queued next are taken. openraft refuses a write while the lease has lapsed, and a
    /// refused write can only be written again behind the writes queued after it: that
    /// reorders a producer's batches in the log, and an idempotent producer's next batch then
    /// looks like a gap (OUT_OF_ORDER_SEQUENCE_NUMBER, fatal to the client). An idle
    /// partition's lease lapses because coalesced heartbeats do not report back
    /// (`heartbeat.rs`); a leader just elected may not have one yet.
    pub(crate) async fn renew_lease_if_due(&self) {
        let mut metrics = self.raft.metrics();
        let (before, alone) = {
            let m = metrics.borrow_watched();
            let voters = m.membership_config.membership().voter_ids().count();
            (m.last_quorum_acked, voters <= 1)
        };
        // A group of one is its own quorum: its lease never lapses.
        if alone || renewal_skipped(&self.topic) {
            return;
        }
        let lease = std::time::Duration::from_millis(self.raft.config().election_timeout_max);
        let left = before
            .as_ref()
            .map(|acked| lease.saturating_sub(openraft::Instant::elapsed(&**acked)));
        if left.is_some_and(|left| left > lease / 4) {
            return;
        }
        let _ = self.raft.trigger().heartbeat().await;
        let renewed = metrics
            .wait_until(|m: &openraft::RaftMetrics<TypeConfig>| m.last_quorum_acked != before);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), renewed).await;
    }

    /// Writes one batch through Raft and returns what applying it produced (its base offset).
    ///
    /// An idle partition's leader hears no acknowledgements, because its heartbeats are sent
    /// coalesced per broker (see `heartbeat.rs`), so its quorum lease lapses; a write then
    /// renews the lease with one Raft heartbeat round and goes on.
    async fn write(
        &self,
        batch: strand_raft::Batch,
    ) -> Result<
        (strand_raft::Applied, u64),
        openraft::error::RaftError<TypeConfig, openraft::error::ClientWriteError<TypeConfig>>,
    > {
        use openraft::error::{ClientWriteError, ForwardReason, RaftError};
        let mut renewals = 0;
        loop {
            match self.raft.client_write(batch.clone()).await {
                Ok(resp) => return Ok((resp.data, resp.log_id.index)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))
                    if f.reason == ForwardReason::LeaseExpired && renewals < LEASE_RENEWALS_MAX =>
                {
                    renewals += 1;
                    let mut metrics = self.raft.metrics();
                    let before = metrics.borrow_watched().last_quorum_acked;
                    let _ = self.raft.trigger().heartbeat().await;
                    let renewed = metrics.wait_until(|m: &openraft::RaftMetrics<TypeConfig>| {
                        m.last_quorum_acked != before
                    });
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), renewed).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How long a committed acks=all write waits for `min.insync.replicas` copies when the caller
/// gives no deadline (Kafka producers' default `request.timeout.ms`).
const COPIES_WAIT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30);

/// What Raft answers for a write.
type WriteOutcome = Result<
    openraft::raft::ClientWriteResponse<TypeConfig>,
    openraft::error::ClientWriteError<TypeConfig>,
>;

/// A write handed to Raft, in order, whose outcome is still to come.
pub struct Submitted {
    replica: PartitionReplica,
    /// Replicas (the leader included) that must hold the batch durably before it is
    /// acknowledged: `min.insync.replicas` for an acks=all write, else 0.
    copies: usize,
    batch: strand_raft::Batch,
    outcome: Outcome,
}

/// Raft's answer to a submitted write: still to come, or already here.
enum Outcome {
    Pending(tokio::sync::oneshot::Receiver<WriteOutcome>),
    Ready(Box<WriteOutcome>),
}

impl PartitionReplica {
    /// Hands a batch to Raft and returns once it is queued, so batches submitted one after the
    /// other are appended in that order; [`Submitted::applied`] waits for the commit.
    /// Only [`crate::Replicas::append`] calls it, after every guard.
    ///
    /// An idempotent producer's batch (`checked_in` is the term its sequence was checked and
    /// reserved in) is written only in that term, and this returns only once Raft has taken
    /// it into its log or refused it. Raft refuses a write whose leader lease has lapsed, or
    /// whose leader has changed, when it comes to it in its queue, and a write queued behind
    /// may still be taken once the lease is renewed: the producer's next batch would then be
    /// in the log without this one, a gap its client reads as this one delivered (librdkafka
    /// acknowledges a batch whose successor was acknowledged). Waiting here means the
    /// connection's next request, the producer's next batch, is checked knowing this one's
    /// fate: refused here, the reservation is taken back and the later batches are told to
    /// retry until the client sends this one again.
    pub(crate) async fn submit(
        &self,
        batch: CheckedBatch,
        checked_in: Option<u64>,
    ) -> Result<Submitted, AppendError> {
        let batch = batch.into_raft();
        let (responder, mut receiver) = openraft::impls::ProgressResponder::complete_only();
        let write = self.raft.write(batch.clone()).responder(responder);
        let write = match checked_in {
            Some(term) => write.with_leader(term),
            None => write,
        };
        write.await.map_err(|e| fatal(&e))?;
        let outcome = if checked_in.is_some() {
            // Raft's core handles its queue in order: once it has run this, it has taken or
            // refused the write, and a refusal is already in the receiver.
            self.raft
                .with_raft_state(|_| ())
                .await
                .map_err(|e| fatal(&e))?;
            use tokio::sync::oneshot::error::TryRecvError;
            match receiver.try_recv() {
                Err(TryRecvError::Empty) => Outcome::Pending(receiver),
                Err(TryRecvError::Closed) => {
                    return Err(AppendError::NotLeader(
                        "the partition's raft group stopped before taking the batch".to_string(),
                    ));
                }
                Ok(Err(e)) => return Err(refused(&e)),
                Ok(Ok(done)) => Outcome::Ready(Box::new(Ok(done))),
            }
        } else {
            Outcome::Pending(receiver)
        };
        Ok(Submitted {
            replica: self.clone(),
            copies: 0,
            batch,
            outcome,
        })
    }

    /// Waits until at least `copies` replicas (this leader included) hold the entry at
    /// `index` durably, as Raft's matched log ids say, or until `deadline`. Raft's commit
    /// already puts an entry on a majority of the voters, so only more than that waits.
    async fn wait_for_copies(
        &self,
        index: u64,
        copies: usize,
        deadline: tokio::time::Instant,
    ) -> Result<(), AppendError> {
        let mut metrics = self.raft.metrics();
        let holding = |m: &openraft::RaftMetrics<TypeConfig>| {
            m.replication.as_ref().map(|replication| {
                replication
                    .values()
                    .filter(|matched| matched.as_ref().is_some_and(|l| l.index >= index))
                    .count()
            })
        };
        let majority = {
            let m = metrics.borrow_watched();
            m.membership_config.membership().voter_ids().count() / 2 + 1
        };
        if copies <= majority {
            return Ok(());
        }
        let reached = metrics.wait_until(|m: &openraft::RaftMetrics<TypeConfig>| {
            holding(m).is_none_or(|n| n >= copies)
        });
        let held = match tokio::time::timeout_at(deadline, reached).await {
            Ok(Ok(m)) => holding(&m),
            Ok(Err(_)) => None,
            Err(_) => Some(holding(&metrics.borrow_watched()).unwrap_or(0)),
        };
        match held {
            Some(n) if n >= copies => Ok(()),
            Some(n) => Err(AppendError::NotEnoughReplicasAfterAppend(format!(
                "{}-{} committed the batch, but only {n} of its replicas hold it, fewer than its min.insync.replicas of {copies}",
                self.topic, self.partition
            ))),
            None => Err(AppendError::NotLeader(
                "this replica stopped leading the partition before min.insync.replicas replicas held the batch".to_string(),
            )),
        }
    }
}

impl Submitted {
    /// Asks [`Submitted::applied`] to answer only once `copies` replicas (the leader
    /// included) hold the batch durably: an acks=all write and its topic's
    /// `min.insync.replicas`.
    pub(crate) fn require_copies(mut self, copies: usize) -> Self {
        self.copies = copies;
        self
    }

    /// What applying the batch produced, once it is committed (and held by the replicas
    /// [`Submitted::require_copies`] asked for, waiting up to 30 s for them).
    pub async fn applied(self) -> Result<strand_raft::Applied, AppendError> {
        self.applied_by(None).await
    }

    /// [`Submitted::applied`], answering by `deadline`: a batch not committed by then is
    /// `TimedOut`; a committed batch that fewer replicas than required hold by then is
    /// `NotEnoughReplicasAfterAppend` (it is in the log, as with Kafka's error of that name).
    pub async fn applied_by(
        self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<strand_raft::Applied, AppendError> {
        let replica = self.replica.clone();
        let copies = self.copies;
        let committed = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, self.committed())
                .await
                .map_err(|_| AppendError::TimedOut("not committed in time".to_string()))?,
            None => self.committed().await,
        };
        let (applied, index) = committed?;
        if copies > 1 {
            let deadline =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + COPIES_WAIT_DEFAULT);
            replica.wait_for_copies(index, copies, deadline).await?;
        }
        Ok(applied)
    }

    /// What applying the batch produced and its Raft index, once it is committed. A batch
    /// refused because the leader's lease lapsed is written again through
    /// `PartitionReplica::write`, which renews the lease first, unless an idempotent producer
    /// wrote it: written again it would land behind that producer's later batches, so it is
    /// refused (the client retries it, and the producer's later batches in this term are
    /// refused until it does). `PartitionReplica::submit` already waited for Raft to take an
    /// idempotent batch, so this is only a second line.
    async fn committed(self) -> Result<(strand_raft::Applied, u64), AppendError> {
        use openraft::error::{ClientWriteError, ForwardReason, RaftError};
        let outcome = match self.outcome {
            Outcome::Ready(outcome) => Ok(*outcome),
            Outcome::Pending(receiver) => receiver.await,
        };
        match outcome {
            Ok(Ok(response)) => Ok((response.data, response.log_id.index)),
            Ok(Err(ClientWriteError::ForwardToLeader(f)))
                if f.reason == ForwardReason::LeaseExpired =>
            {
                if let Some(header) = idempotent(&self.batch) {
                    self.replica.producers.unreserve(&header);
                    return Err(refused(&ClientWriteError::ForwardToLeader(f)));
                }
                self.replica.write(self.batch).await.map_err(|e| match e {
                    RaftError::Fatal(fatal_error) => fatal(&fatal_error),
                    RaftError::APIError(e) => AppendError::NotLeader(e.to_string()),
                })
            }
            Ok(Err(e)) => Err(refused(&e)),
            Err(_) => Err(AppendError::NotLeader(
                "the partition's raft group stopped".to_string(),
            )),
        }
    }
}

/// Whether failpoint `raft::lease_renewal` is on for `topic` (its argument, a topic name; none
/// for every topic): a test lets a leader's lease lapse before a write, as it does when a
/// renewal's heartbeat round is not answered in time.
fn renewal_skipped(topic: &str) -> bool {
    #[cfg(feature = "failpoints")]
    {
        fail::eval("raft::lease_renewal", |only| {
            only.is_none_or(|only| only == topic)
        })
        .unwrap_or(false)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = topic;
        false
    }
}

/// A write Raft refused, as the client's error: it goes to the partition's leader and
/// retries.
fn refused(error: &openraft::error::ClientWriteError<TypeConfig>) -> AppendError {
    use openraft::error::{ClientWriteError, ForwardReason};
    match error {
        ClientWriteError::ForwardToLeader(f) if f.reason == ForwardReason::LeaseExpired => {
            AppendError::NotLeader(
                "the leader's lease lapsed before the batch was taken; retry".to_string(),
            )
        }
        other => AppendError::NotLeader(other.to_string()),
    }
}

/// The header of an idempotent producer's batch; `None` for any other.
fn idempotent(batch: &strand_raft::Batch) -> Option<strand_log::BatchHeader> {
    strand_log::BatchHeader::parse(&batch.0)
        .ok()
        .filter(|h| h.producer_id >= 0)
}

/// A Raft group's fatal error as a refusal: a storage failure is the log's, anything else
/// (the group stopped) sends the client to the next leader.
fn fatal(error: &openraft::error::Fatal<TypeConfig>) -> AppendError {
    match error {
        openraft::error::Fatal::StorageError(e) => {
            AppendError::Storage(format!("the partition's log cannot be written: {e}"))
        }
        other => AppendError::NotLeader(format!("the partition's raft group stopped: {other}")),
    }
}

/// A group hosted here.
#[derive(Clone)]
pub enum Group {
    /// The metadata group, and its log storage.
    Meta(MetaRaft, LogStore),
    /// A partition.
    Partition(Arc<PartitionReplica>),
}

/// Groups by id. Cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    groups: Arc<RwLock<HashMap<Arc<str>, Group>>>,
}

impl Registry {
    /// The group with this id, if it runs here.
    pub fn get(&self, id: &str) -> Option<Group> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Adds or replaces a group.
    pub fn insert(&self, id: &str, group: Group) {
        self.groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Arc::from(id), group);
    }

    /// Removes a group, returning it.
    pub fn remove(&self, id: &str) -> Option<Group> {
        self.groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// Every local partition replica, by group id. Cheap: the timers call it several times a
    /// second, so it copies only reference counts.
    pub fn partitions(&self) -> Vec<(Arc<str>, Arc<PartitionReplica>)> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(id, g)| match g {
                Group::Partition(p) => Some((id.clone(), p.clone())),
                Group::Meta(..) => None,
            })
            .collect()
    }

    /// The local replica of `topic`/`partition`, by name.
    pub fn partition_by_name(&self, topic: &str, partition: u32) -> Option<Arc<PartitionReplica>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find_map(|g| match g {
                Group::Partition(p) if p.topic == topic && p.partition == partition => {
                    Some(p.clone())
                }
                _ => None,
            })
    }
}
