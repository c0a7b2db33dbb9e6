//! The partition replicas as writers and readers see them: find the local leader of a
//! partition, and append to it through the one path every writer takes, with every guard in
//! one place.

use std::sync::Arc;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use strand_meta::{BrokerId, ClusterState, Topic};

use crate::append::{AppendError, CheckedBatch, TopicRules, Writer};
use crate::cluster::{Cluster, now_ms};
use crate::disk::DiskGuard;
use crate::producers::Verdict;
use crate::registry::{Group, PartitionReplica, Registry, Submitted, partition_group};
use crate::views::SharedViews;

/// The partition replicas hosted here, with what their guards look at. Cheap to clone.
#[derive(Clone)]
pub struct Replicas {
    cluster: Cluster,
    registry: Registry,
    views: Arc<SharedViews>,
    disk: Arc<DiskGuard>,
}

/// An append handed to Raft.
pub enum Appended {
    /// Queued in order; its outcome comes once committed.
    Submitted {
        /// The write, to wait for.
        submitted: Submitted,
        /// The log start offset when it was queued.
        log_start_offset: i64,
        /// The time stamped under `LogAppendTime`; -1 otherwise.
        log_append_time: i64,
    },
    /// A retry of an idempotent batch already written, at this base offset.
    Duplicate(i64),
}

impl Replicas {
    /// The replicas of `registry`, guarded by the cluster state, the controller's views and
    /// this broker's disk.
    pub fn new(
        cluster: Cluster,
        registry: Registry,
        views: Arc<SharedViews>,
        disk: Arc<DiskGuard>,
    ) -> Replicas {
        Replicas {
            cluster,
            registry,
            views,
            disk,
        }
    }

    /// The groups hosted here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The local replica of `topic`/`partition` if it leads, with its leader epoch.
    pub fn leader(
        &self,
        state: &ClusterState,
        topic: &str,
        partition: i32,
    ) -> Result<(Arc<PartitionReplica>, i32), AppendError> {
        let unknown = || AppendError::UnknownPartition(format!("{topic}-{partition}"));
        let meta = state.topic_by_name(topic).ok_or_else(unknown)?;
        let index = u32::try_from(partition).map_err(|_| unknown())?;
        if index as usize >= meta.partitions.len() {
            return Err(unknown());
        }
        let not_led = || AppendError::NotLeader(format!("{topic}-{partition} is not led here"));
        let Some(Group::Partition(replica)) = self.registry.get(&partition_group(meta.id, index))
        else {
            return Err(not_led());
        };
        // Read in place: this runs for every partition of every produce and fetch.
        let (leads, term) = {
            let watch = replica.raft.metrics();
            let metrics = watch.borrow_watched();
            (
                metrics.state == openraft::ServerState::Leader
                    && metrics.current_leader == Some(self.cluster.node_id()),
                metrics.current_term,
            )
        };
        if !leads {
            return Err(not_led());
        }
        Ok((replica, i32::try_from(term).unwrap_or(i32::MAX)))
    }

    /// The replicas of a partition caught up with the leader (Kafka's ISR), from the
    /// controller's view.
    pub fn in_sync(&self, topic: &Topic, partition: u32) -> Vec<BrokerId> {
        let Some(assignment) = topic.partitions.get(partition as usize) else {
            return Vec::new();
        };
        let lagging = self
            .views
            .get(&partition_group(topic.id, partition))
            .map(|v| v.lagging)
            .unwrap_or_default();
        assignment
            .replicas
            .iter()
            .filter(|b| !lagging.contains(b) && self.views.alive(**b))
            .copied()
            .collect()
    }

    /// Appends `records` to `topic`/`partition` for `writer`: the one write path. The guards,
    /// in order: internal topics take only the broker's writes; this replica must lead; no
    /// broker holding a replica may be short of disk; acks=all needs `min.insync.replicas`
    /// in sync; the batch must pass [`CheckedBatch::check`] under the topic's rules; an
    /// idempotent producer's batch must be next in its sequence. Returns once the batch is
    /// queued in Raft, so appends made one after another keep their order.
    pub async fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Option<Bytes>,
        writer: Writer,
    ) -> Result<Appended, AppendError> {
        let state = self.cluster.state();
        let meta = state.topic_by_name(topic);
        if meta.is_some_and(Topic::is_internal) && writer != Writer::Broker {
            // Kafka answers the same (ReplicaManager.appendToLocalLog).
            return Err(AppendError::InternalTopic(topic.to_string()));
        }
        let rules =
            TopicRules::of(meta.and_then(|t| strand_meta::validate_topic_config(&t.config).ok()));
        let (replica, _) = self.leader(&state, topic, partition)?;
        let guarded = self
            .check_space(&state, topic, partition)
            .and_then(|()| match meta {
                Some(meta) if writer.acks_all() && rules.min_insync_replicas > 1 => {
                    self.check_in_sync(meta, partition, rules.min_insync_replicas)
                }
                _ => Ok(()),
            });
        if let Err(e) = guarded {
            hold_producer(&replica, records.as_deref());
            return Err(e);
        }
        let batch = CheckedBatch::check(records, &rules, now_ms())?;
        // The term an idempotent batch was checked and reserved in; it is written only in it.
        let checked_in = if batch.is_idempotent() {
            match check_idempotent(&replica, &batch)? {
                Idempotent::Duplicate(base_offset) => return Ok(Appended::Duplicate(base_offset)),
                Idempotent::Reserved { term } => Some(term),
            }
        } else {
            None
        };
        let log_start_offset = replica
            .store
            .log()
            .read()
            .map(|l| l.log_start_offset().0)
            .unwrap_or(-1);
        let log_append_time = batch.log_append_time();
        let header = *batch.header();
        replica.renew_lease_if_due().await;
        // acks=all promises `min.insync.replicas` copies, checked here against the ISR as
        // the controller last saw it and again at commit, where it counts the replicas that
        // hold the batch (`Submitted::applied`).
        let copies = if writer.acks_all() {
            rules.min_insync_replicas as usize
        } else {
            0
        };
        match replica.submit(batch, checked_in).await {
            Ok(submitted) => Ok(Appended::Submitted {
                submitted: submitted.require_copies(copies),
                log_start_offset,
                log_append_time,
            }),
            Err(e) => {
                if checked_in.is_some() {
                    replica.producers.unreserve(&header);
                }
                Err(e)
            }
        }
    }

    /// Refuses a write when a broker holding a replica of the partition is short of disk
    /// space: this one, as measured here, or another, as the controller last heard.
    fn check_space(
        &self,
        state: &ClusterState,
        topic: &str,
        partition: i32,
    ) -> Result<(), AppendError> {
        if self.disk.is_low() {
            return Err(AppendError::Storage(format!(
                "broker {} has {} bytes of disk free, below its reserve of {}; retry once space is freed",
                self.cluster.broker_id(),
                self.disk.free(),
                self.disk.reserve()
            )));
        }
        let full = state
            .topic_by_name(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            .and_then(|a| a.hosts().find(|b| self.views.disk_low(*b)));
        match full {
            Some(full) => Err(AppendError::Storage(format!(
                "broker {full}, which holds a replica of {topic}-{partition}, is nearly out of disk space; retry once space is freed"
            ))),
            None => Ok(()),
        }
    }

    /// Refuses an acks=all write when fewer replicas are in sync (Kafka's ISR, as Metadata
    /// reports it) than the topic's `min.insync.replicas`.
    fn check_in_sync(&self, meta: &Topic, partition: i32, min: u32) -> Result<(), AppendError> {
        let Ok(index) = u32::try_from(partition) else {
            return Ok(());
        };
        let in_sync = self.in_sync(meta, index);
        if in_sync.len() >= min as usize {
            return Ok(());
        }
        let brokers: Vec<String> = in_sync.iter().map(|b| b.0.to_string()).collect();
        Err(AppendError::NotEnoughReplicas(format!(
            "{}-{partition} has {} replicas in sync (brokers [{}]), fewer than its min.insync.replicas of {min}",
            meta.name,
            in_sync.len(),
            brokers.join(", ")
        )))
    }
}

/// An idempotent producer's batch refused by a guard before its sequence was checked: its
/// later batches wait for it (`ProducerState::refused_before_check`).
fn hold_producer(replica: &PartitionReplica, records: Option<&[u8]>) {
    let Some(header) = records
        .and_then(|r| strand_log::BatchHeader::parse(r).ok())
        .filter(|h| h.producer_id >= 0)
    else {
        return;
    };
    let term = replica.raft.metrics().borrow_watched().current_term;
    replica.producers.refused_before_check(term, &header);
}

/// An idempotent producer's batch, checked.
enum Idempotent {
    /// Already written, at this first offset.
    Duplicate(i64),
    /// Next in its producer's sequence, reserved in this term: to be written.
    Reserved { term: u64 },
}

/// Checks an idempotent producer's batch: a retry of a written batch is answered with its
/// offset, a gap or an old epoch is refused, and anything else is reserved and written.
fn check_idempotent(
    replica: &PartitionReplica,
    batch: &CheckedBatch,
) -> Result<Idempotent, AppendError> {
    let (leading, applied_term, term) = {
        let watch = replica.raft.metrics();
        let metrics = watch.borrow_watched();
        (
            metrics.state == openraft::ServerState::Leader,
            metrics.last_applied.map(|l| l.leader_id.term),
            metrics.current_term,
        )
    };
    // Leadership first, as Kafka checks it: a follower's producer state lags the leader's, so
    // a batch sent to a replica that just stopped leading looked like a sequence gap there
    // (OUT_OF_ORDER_SEQUENCE_NUMBER, fatal to an idempotent client) instead of being sent on
    // to the new leader.
    if !leading {
        return Err(AppendError::NotLeader(
            "this replica does not lead the partition".to_string(),
        ));
    }
    // Until this leader has applied its own first entry, earlier leaders' batches may still be
    // unapplied, and a retry of one of them would not be recognised.
    if applied_term != Some(term) {
        replica
            .producers
            .refused_while_applying(term, batch.header());
        return Err(AppendError::NotLeader(
            "the new leader is still applying earlier entries".to_string(),
        ));
    }
    match replica.producers.check(term, batch.header()) {
        Verdict::Append => Ok(Idempotent::Reserved { term }),
        Verdict::Duplicate(base_offset) => Ok(Idempotent::Duplicate(base_offset)),
        Verdict::InFlight => Err(AppendError::InFlight),
        Verdict::Refused(e) => {
            if e == kafka_protocol::ResponseError::OutOfOrderSequenceNumber {
                // Fatal to the client (librdkafka stops the producer): say what was expected.
                let header = batch.header();
                tracing::warn!(
                    topic = %replica.topic,
                    partition = replica.partition,
                    producer = header.producer_id,
                    epoch = header.producer_epoch,
                    first = header.base_sequence,
                    records = header.last_offset_delta + 1,
                    term,
                    held = %replica.producers.describe(header.producer_id, header.producer_epoch),
                    "refused an idempotent batch out of sequence"
                );
            }
            Err(AppendError::Producer(e))
        }
    }
}
