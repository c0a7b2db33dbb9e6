//! Idempotent producers: each partition's state machine keeps, per producer id, its epoch and
//! its last few batches (sequence range and offset), so a batch retried after a leader change
//! is recognised and answered with its first offset instead of being written twice.
//!
//! Every replica applies the same batches, so the state is the same everywhere and travels in
//! snapshots. The leader also tracks batches handed to Raft but not yet applied (in flight),
//! checked and reserved in request order before a batch is submitted.
//!
//! A producer is forgotten when it has been silent `producer_expiry` (measured in batch
//! timestamps, so every replica forgets it at the same batch) or when more than
//! `producers_max` are remembered; its next batch is then checked as one never seen.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use strand_log::{BatchHeader, Offset};
use strand_raft::{Batch, LogId, Machine};

use crate::Limits;

/// Batches remembered per producer, as Kafka keeps (`max.in.flight.requests.per.connection`
/// may be at most 5 with idempotence).
const REMEMBERED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Written {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Producer {
    epoch: i16,
    batches: VecDeque<Written>,
    /// The max timestamp of its last batch. `None` for a producer restored from a snapshot
    /// taken before producers expired: it is not expired by time until its next batch gives
    /// it a timestamp (an upgrade does not forget active producers), and it is the first to
    /// go past `producers_max`.
    #[serde(default)]
    last_timestamp: Option<i64>,
    /// The Raft index of its last batch, to order producers whose timestamps tie by which
    /// wrote last (0 in an old snapshot).
    #[serde(default)]
    last_index: u64,
}

/// How long a producer has been silent, ordered oldest first: its last timestamp, the Raft
/// index of its last batch, its id.
type Age = (Option<i64>, u64, i64);

impl Producer {
    fn age(&self, id: i64) -> Age {
        (self.last_timestamp, self.last_index, id)
    }
}

/// Batches of one producer submitted by this leader in `term` and not applied yet.
#[derive(Debug, Clone)]
struct InFlight {
    term: u64,
    epoch: i16,
    batches: VecDeque<(i32, i32)>,
    /// The first sequence of a batch whose submission failed: the client resends from
    /// there, and batches it had pipelined behind it are told to retry too, as Kafka's
    /// leader refuses them (they would otherwise look like a gap).
    retry_from: Option<i32>,
}

impl InFlight {
    /// Nothing in flight yet, in `term` and `epoch`.
    fn new(term: u64, epoch: i16) -> Self {
        InFlight {
            term,
            epoch,
            batches: VecDeque::new(),
            retry_from: None,
        }
    }
}

#[derive(Debug)]
struct Producers {
    applied: HashMap<i64, Producer>,
    /// The applied producers by age, so the one silent longest is found without a scan.
    by_age: BTreeSet<Age>,
    in_flight: HashMap<i64, InFlight>,
    /// `producer_expiry` in milliseconds, the unit of batch timestamps.
    expiry_ms: i64,
    producers_max: usize,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; it is reserved as in flight.
    Append,
    /// Already written at this first offset: answer without writing.
    Duplicate(i64),
    /// Still in flight from an earlier attempt: the client should retry shortly.
    InFlight,
    /// Refused.
    Refused(ResponseError),
}

/// The producer state of one partition replica, shared by its state machine and its leader.
///
/// Every replica of a partition must be given the same limits: they decide which producers
/// the applied state forgets, and the replicas' states must stay the same.
#[derive(Debug, Clone)]
pub struct ProducerState(Arc<Mutex<Producers>>);

impl Default for ProducerState {
    fn default() -> Self {
        ProducerState::new(&Limits::default())
    }
}

fn last_seq(header: &BatchHeader) -> i32 {
    header.base_sequence.wrapping_add(header.last_offset_delta)
}

/// The sequence after `seq`, wrapping as Kafka's do.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerState {
    /// An empty state that forgets producers past `limits.producer_expiry` and
    /// `limits.producers_max`.
    pub fn new(limits: &Limits) -> Self {
        ProducerState(Arc::new(Mutex::new(Producers {
            applied: HashMap::new(),
            by_age: BTreeSet::new(),
            in_flight: HashMap::new(),
            expiry_ms: i64::try_from(limits.producer_expiry.as_millis()).unwrap_or(i64::MAX),
            producers_max: limits.producers_max,
        })))
    }

    /// Checks an idempotent batch against what is applied and in flight in `term`, and
    /// reserves it when it may be written.
    pub fn check(&self, term: u64, header: &BatchHeader) -> Verdict {
        let mut producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let id = header.producer_id;
        let (first, last) = (header.base_sequence, last_seq(header));
        if producers.in_flight.get(&id).is_some_and(|f| f.term != term) {
            producers.in_flight.remove(&id);
        }
        let applied = producers.applied.get(&id).cloned();
        if let Some(written) = applied.as_ref().and_then(|p| {
            (p.epoch == header.producer_epoch)
                .then(|| {
                    p.batches
                        .iter()
                        .find(|w| w.first_seq == first && w.last_seq == last)
                })
                .flatten()
        }) {
            return Verdict::Duplicate(written.base_offset);
        }
        let flight = producers.in_flight.get(&id);
        if flight
            .is_some_and(|f| f.epoch == header.producer_epoch && f.batches.contains(&(first, last)))
        {
            return Verdict::InFlight;
        }
        let known_epoch = flight
            .map(|f| f.epoch)
            .into_iter()
            .chain(applied.as_ref().map(|p| p.epoch))
            .max();
        // The last sequence of this epoch: in flight if any batch is, else applied.
        let previous = flight
            .filter(|f| f.epoch == header.producer_epoch)
            .and_then(|f| f.batches.back().map(|(_, l)| *l))
            .or_else(|| {
                applied
                    .as_ref()
                    .filter(|p| p.epoch == header.producer_epoch)
                    .and_then(|p| p.batches.back().map(|w| w.last_seq))
            });
        match known_epoch {
            Some(known) if header.producer_epoch < known => {
                return Verdict::Refused(ResponseError::InvalidProducerEpoch);
            }
            Some(known) if header.producer_epoch > known && first != 0 => {
                return Verdict::Refused(ResponseError::OutOfOrderSequenceNumber);
            }
            _ => {}
        }
        let retry_from = flight
            .filter(|f| f.epoch == header.producer_epoch)
            .and_then(|f| f.retry_from);
        // Held for an earlier batch the client must send again: a batch that would be a gap
        // is told to retry. One right after what is written or in flight is no gap (the batch
        // held for turned out written already) and goes on.
        if let Some(from) = retry_from
            && first != from
            && previous.is_none_or(|previous| first != next_seq(previous))
        {
            return Verdict::Refused(ResponseError::NotLeaderOrFollower);
        }
        if let Some(previous) = previous
            && first != next_seq(previous)
        {
            return Verdict::Refused(ResponseError::OutOfOrderSequenceNumber);
        }
        let flight = producers
            .in_flight
            .entry(id)
            .or_insert_with(|| InFlight::new(term, header.producer_epoch));
        if flight.epoch != header.producer_epoch {
            flight.epoch = header.producer_epoch;
            flight.batches.clear();
        }
        flight.retry_from = None;
        flight.batches.push_back((first, last));
        Verdict::Append
    }

    /// What this replica holds of producer `id` in `epoch`, for a log line when one of its
    /// batches is refused: the sequence ranges of its batches in flight and of its last
    /// batches written.
    pub fn describe(&self, id: i64, epoch: i16) -> String {
        let producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let in_flight: Vec<(i32, i32)> = producers
            .in_flight
            .get(&id)
            .filter(|f| f.epoch == epoch)
            .map(|f| f.batches.iter().copied().collect())
            .unwrap_or_default();
        let written: Vec<(i32, i32)> = producers
            .applied
            .get(&id)
            .filter(|p| p.epoch == epoch)
            .map(|p| {
                p.batches
                    .iter()
                    .map(|w| (w.first_seq, w.last_seq))
                    .collect()
            })
            .unwrap_or_default();
        format!("in flight {in_flight:?}, written {written:?}")
    }

    /// Records that an idempotent batch was refused by a guard before its sequence was
    /// checked (a disk short of space, too few replicas in sync): when it was the producer's
    /// next batch, the producer's later batches in this term are told to retry
    /// (NOT_LEADER_OR_FOLLOWER) until the client sends it again, as after a failed
    /// submission. Answered as a gap (OUT_OF_ORDER_SEQUENCE_NUMBER), librdkafka bumps the
    /// producer's epoch and sends every batch it has not seen acknowledged again under new
    /// sequence numbers, on every partition: one whose answer was lost but which did get in
    /// (a dropped connection, a timeout) is then written twice. Only producers this replica
    /// knows are held, so a client cannot grow the table with made-up producer ids.
    pub fn refused_before_check(&self, term: u64, header: &BatchHeader) {
        let mut producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let id = header.producer_id;
        let (first, last) = (header.base_sequence, last_seq(header));
        if producers.in_flight.get(&id).is_some_and(|f| f.term != term) {
            producers.in_flight.remove(&id);
        }
        let flight = producers
            .in_flight
            .get(&id)
            .filter(|f| f.epoch == header.producer_epoch);
        let previous = match flight.and_then(|f| f.batches.back().map(|(_, l)| *l)) {
            Some(l) => Some(l),
            None => producers
                .applied
                .get(&id)
                .filter(|p| p.epoch == header.producer_epoch)
                .and_then(|p| p.batches.back().map(|w| w.last_seq)),
        };
        // Its next batch, by a producer known here; a retry of an earlier one or a gap is
        // answered on its own when it gets through.
        let Some(previous) = previous else {
            return;
        };
        if first != next_seq(previous) {
            return;
        }
        let flight = producers
            .in_flight
            .entry(id)
            .or_insert_with(|| InFlight::new(term, header.producer_epoch));
        if flight.retry_from.is_none() && !flight.batches.contains(&(first, last)) {
            flight.retry_from = Some(first);
        }
    }

    /// Records that an idempotent batch was refused because this leader, new in `term`, had
    /// not applied its predecessors' entries yet, so its producer state could not be trusted:
    /// until the client sends this batch again, the producer's later batches in this term that
    /// would look like a gap are told to retry (NOT_LEADER_OR_FOLLOWER), as after a failed
    /// submission. Refused as a gap (OUT_OF_ORDER_SEQUENCE_NUMBER), the batch pipelined behind
    /// this one made librdkafka bump its epoch and send again, under new sequence numbers,
    /// every batch it had not seen acknowledged, writing twice one whose answer the old leader
    /// took down with it. Unlike [`ProducerState::refused_before_check`], the producer may not
    /// be known yet (its last batches may be among those not applied), so any is held, up to
    /// `producers_max` of them.
    pub fn refused_while_applying(&self, term: u64, header: &BatchHeader) {
        let mut producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let id = header.producer_id;
        if producers.in_flight.get(&id).is_some_and(|f| f.term != term) {
            producers.in_flight.remove(&id);
        }
        if !producers.in_flight.contains_key(&id)
            && producers.in_flight.len() >= producers.producers_max
        {
            return;
        }
        let flight = producers
            .in_flight
            .entry(id)
            .or_insert_with(|| InFlight::new(term, header.producer_epoch));
        if flight.epoch == header.producer_epoch && flight.retry_from.is_none() {
            flight.retry_from = Some(header.base_sequence);
        }
    }

    /// Takes back the reservation of a batch that never reached the log (its submission to
    /// Raft failed), so the client's retry of it is checked afresh. Only that batch: the
    /// producer's earlier batches were submitted and may still commit, and forgetting them
    /// made the next batch look like a gap (OUT_OF_ORDER_SEQUENCE_NUMBER, fatal to an
    /// idempotent librdkafka producer) or a retry of them a second copy. A batch that was
    /// submitted but whose commit was not seen stays reserved: in this term it is either
    /// committed (and answered as a duplicate once applied) or the term ends, and a new term
    /// drops every reservation of the old one.
    pub fn unreserve(&self, header: &BatchHeader) {
        let mut producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let batch = (header.base_sequence, last_seq(header));
        if let Some(flight) = producers.in_flight.get_mut(&header.producer_id)
            && flight.epoch == header.producer_epoch
        {
            flight.batches.retain(|b| *b != batch);
            if flight.retry_from.is_none() {
                flight.retry_from = Some(batch.0);
            }
        }
    }
}

impl Producers {
    /// Records an applied batch at Raft index `index`, then forgets whom it makes too old.
    fn apply(&mut self, index: u64, header: &BatchHeader, base_offset: Offset) {
        if header.producer_id >= 0 {
            self.record(index, header, base_offset);
        }
        self.expire(header.max_timestamp, header.producer_id);
    }

    fn record(&mut self, index: u64, header: &BatchHeader, base_offset: Offset) {
        let id = header.producer_id;
        let (first, last) = (header.base_sequence, last_seq(header));
        if let Some(flight) = self.in_flight.get_mut(&id) {
            flight.batches.retain(|b| *b != (first, last));
            // Nothing left in flight and nothing to retry: the applied state says all the
            // reservation did, and dropping it keeps the leader's map as small as the batches
            // in flight.
            if flight.batches.is_empty()
                && flight.retry_from.is_none()
                && flight.epoch == header.producer_epoch
            {
                self.in_flight.remove(&id);
            }
        }
        let producer = self.applied.entry(id).or_default();
        self.by_age.remove(&producer.age(id));
        if header.producer_epoch != producer.epoch {
            producer.epoch = header.producer_epoch;
            producer.batches.clear();
        }
        producer.batches.push_back(Written {
            first_seq: first,
            last_seq: last,
            base_offset: base_offset.0,
        });
        while producer.batches.len() > REMEMBERED {
            producer.batches.pop_front();
        }
        producer.last_timestamp = Some(header.max_timestamp);
        producer.last_index = index;
        self.by_age.insert(producer.age(id));
    }

    /// Forgets, after a batch with max timestamp `now` from producer `current` (-1 for none):
    /// the producer silent longest if its last timestamp is more than `producer_expiry`
    /// before `now`, then the oldest ones while more than `producers_max` remain.
    ///
    /// At most one producer is expired by time per batch, judged against that batch's own
    /// timestamp, with no clock kept from one batch to the next. Under CreateTime the
    /// timestamp is the client's: a client stamping the year 3000 could otherwise make every
    /// other producer look expired with one batch, and a clock carried forward would let the
    /// honest batches after it finish the job. This way each eviction costs the client one
    /// batch, the price `producers_max` already sets (once the table is full, one batch under
    /// a new producer id evicts the oldest). The honest case loses little: silent producers
    /// go at least as fast as new ones can arrive (one per batch), and `producers_max` bounds
    /// the memory meanwhile. A client whose clock is behind only makes itself look old; one
    /// whose clock is ahead keeps its own entry longer, never more than `producers_max`
    /// entries in all. Keeping the producers ordered by age makes this O(log n) a batch,
    /// where a sweep every N batches would scan them all and forget in bursts.
    fn expire(&mut self, now: i64, current: i64) {
        let horizon = now.saturating_sub(self.expiry_ms);
        // Producers restored without a timestamp sort first; they wait for a batch of theirs.
        let with_time: Age = (Some(i64::MIN), 0, i64::MIN);
        if let Some(&oldest) = self.by_age.range(with_time..).next()
            && oldest.0.is_some_and(|t| t < horizon)
        {
            self.forget(oldest);
        }
        while self.applied.len() > self.producers_max {
            // The producer that just wrote is kept if any other can go: its retry is the one
            // most likely to come, and a few milliseconds of clock skew should not lose it.
            let oldest = self
                .by_age
                .iter()
                .find(|age| age.2 != current)
                .or_else(|| self.by_age.first())
                .copied();
            let Some(oldest) = oldest else { break };
            self.forget(oldest);
        }
    }

    /// Forgets a producer, and the leader's reservation of it when none of its batches is in
    /// flight, so that its next batch is checked as one never seen.
    fn forget(&mut self, age: Age) {
        let id = age.2;
        self.by_age.remove(&age);
        self.applied.remove(&id);
        if self
            .in_flight
            .get(&id)
            .is_some_and(|f| f.batches.is_empty())
        {
            self.in_flight.remove(&id);
        }
    }
}

impl Machine for ProducerState {
    fn apply(
        &mut self,
        log_id: LogId,
        _batch: &Batch,
        header: &BatchHeader,
        base_offset: Offset,
    ) -> Option<Bytes> {
        let mut producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        producers.apply(log_id.index, header, base_offset);
        None
    }

    fn snapshot(&self) -> Vec<u8> {
        let producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_vec(&producers.applied).unwrap_or_default()
    }

    fn restore(&mut self, state: &[u8]) -> io::Result<()> {
        let applied: HashMap<i64, Producer> = if state.is_empty() {
            HashMap::new()
        } else {
            serde_json::from_slice(state).map_err(io::Error::other)?
        };
        let mut producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        producers.by_age = applied.iter().map(|(id, p)| p.age(*id)).collect();
        producers.applied = applied;
        producers.in_flight.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i32, count: i32) -> BatchHeader {
        batch_of(7, 0, first, count, 0)
    }

    fn batch_of(producer: i64, epoch: i16, first: i32, count: i32, time: i64) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            partition_leader_epoch: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: time,
            max_timestamp: time,
            producer_id: producer,
            producer_epoch: epoch,
            base_sequence: if producer < 0 { -1 } else { first },
            records_count: count,
        }
    }

    const DAY: i64 = 24 * 3600 * 1000;

    fn limits(producers_max: usize) -> Limits {
        Limits {
            producers_max,
            ..Limits::default()
        }
    }

    /// Writes through the leader's path: checked, then applied at the next Raft index, whose
    /// number is also the batch's offset.
    struct Leader {
        state: ProducerState,
        index: u64,
        next_seq: HashMap<i64, i32>,
    }

    impl Leader {
        fn new(limits: &Limits) -> Leader {
            Leader {
                state: ProducerState::new(limits),
                index: 0,
                next_seq: HashMap::new(),
            }
        }

        /// A one-record batch from `producer` (epoch 0) stamped `time`: its header.
        fn write(&mut self, producer: i64, time: i64) -> BatchHeader {
            let seq = self.next_seq.entry(producer).or_insert(0);
            let header = batch_of(producer, 0, *seq, 1, time);
            *seq += 1;
            if producer >= 0 {
                assert_eq!(self.state.check(1, &header), Verdict::Append);
            }
            self.index += 1;
            let mut producers = self.state.0.lock().unwrap();
            producers.apply(self.index, &header, Offset(self.index as i64));
            header
        }

        fn remembered(&self) -> Vec<i64> {
            let producers = self.state.0.lock().unwrap();
            let mut ids: Vec<i64> = producers.applied.keys().copied().collect();
            ids.sort();
            assert_eq!(producers.by_age.len(), ids.len());
            ids
        }
    }

    /// Batches a producer might send next, from its last one: the retry of it, the next one,
    /// one after a gap, and the first of a new epoch at sequence 0 and past it.
    fn probes(last: &BatchHeader) -> [BatchHeader; 5] {
        let (id, seq, time) = (last.producer_id, last.base_sequence, last.max_timestamp);
        [
            *last,
            batch_of(id, 0, seq + 1, 1, time),
            batch_of(id, 0, seq + 5, 1, time),
            batch_of(id, 1, 0, 1, time),
            batch_of(id, 1, 3, 1, time),
        ]
    }

    #[test]
    fn producers_silent_longest_are_forgotten_and_then_treated_as_never_seen() {
        struct Case {
            name: &'static str,
            producers_max: usize,
            /// (producer, batch timestamp), applied in order; -1 is a non-idempotent batch.
            writes: &'static [(i64, i64)],
            remembered: &'static [i64],
        }
        let cases = [
            Case {
                name: "silent past the expiry: forgotten",
                producers_max: 10,
                writes: &[(1, 0), (2, DAY + 1)],
                remembered: &[2],
            },
            Case {
                name: "silent exactly the expiry: remembered",
                producers_max: 10,
                writes: &[(1, 0), (2, DAY)],
                remembered: &[1, 2],
            },
            Case {
                name: "a batch without a producer id expires too",
                producers_max: 10,
                writes: &[(1, 0), (-1, DAY + 1)],
                remembered: &[],
            },
            Case {
                name: "one producer expires per batch",
                producers_max: 10,
                writes: &[(1, 0), (2, 0), (3, DAY + 1)],
                remembered: &[2, 3],
            },
            Case {
                name: "the next batch expires the next one",
                producers_max: 10,
                writes: &[(1, 0), (2, 0), (3, DAY + 1), (3, DAY + 2)],
                remembered: &[3],
            },
            Case {
                name: "a timestamp from the far future expires one producer, not all",
                producers_max: 10,
                writes: &[(1, 0), (2, 0), (3, 0), (9, 1000 * DAY), (2, 1), (3, 2)],
                remembered: &[2, 3, 9],
            },
            Case {
                name: "past producers_max the oldest timestamp goes",
                producers_max: 2,
                writes: &[(1, 10), (2, 30), (3, 20)],
                remembered: &[2, 3],
            },
            Case {
                name: "equal timestamps: the one that wrote first goes",
                producers_max: 2,
                writes: &[(2, 5), (1, 5), (3, 5)],
                remembered: &[1, 3],
            },
            Case {
                name: "the producer that just wrote stays, however old its clock",
                producers_max: 2,
                writes: &[(1, 50), (2, 60), (3, 10)],
                remembered: &[2, 3],
            },
        ];
        for case in cases {
            let scenario = || {
                let mut leader = Leader::new(&limits(case.producers_max));
                let mut last = HashMap::new();
                for &(producer, time) in case.writes {
                    last.insert(producer, leader.write(producer, time));
                }
                (leader, last)
            };
            let (leader, last) = scenario();
            assert_eq!(leader.remembered(), case.remembered, "{}", case.name);
            for (&producer, header) in last.iter().filter(|(p, _)| **p >= 0) {
                if case.remembered.contains(&producer) {
                    // A retry of its last batch is still recognised.
                    let offset = leader.state.0.lock().unwrap().applied[&producer]
                        .batches
                        .back()
                        .unwrap()
                        .base_offset;
                    assert_eq!(
                        leader.state.check(1, header),
                        Verdict::Duplicate(offset),
                        "{}: producer {producer}",
                        case.name
                    );
                    continue;
                }
                // Each probe on its own scenario, as a check reserves what it accepts.
                for probe in probes(header) {
                    let (forgetful, _) = scenario();
                    let never_seen = ProducerState::new(&limits(case.producers_max));
                    assert_eq!(
                        forgetful.state.check(1, &probe),
                        never_seen.check(1, &probe),
                        "{}: producer {producer}, probe {probe:?}",
                        case.name
                    );
                }
            }
        }
    }

    #[test]
    fn a_restored_snapshot_keeps_the_producers_timestamps() {
        let mut leader = Leader::new(&Limits::default());
        leader.write(1, 0);
        let kept = leader.write(2, DAY / 2);
        let mut restored = ProducerState::default();
        restored.restore(&leader.state.snapshot()).unwrap();
        let mut follower = Leader {
            state: restored,
            index: leader.index,
            next_seq: leader.next_seq.clone(),
        };
        assert_eq!(follower.remembered(), [1, 2]);
        follower.write(3, DAY + 1);
        // Producer 1's timestamp came through the snapshot: it expired.
        assert_eq!(follower.remembered(), [2, 3]);
        assert_eq!(follower.state.check(1, &kept), Verdict::Duplicate(2));
    }

    #[test]
    fn a_snapshot_from_before_producers_expired_restores() {
        let old = br#"{"7":{"epoch":0,"batches":[{"first_seq":0,"last_seq":4,"base_offset":0}]}}"#;
        let mut state = ProducerState::new(&limits(2));
        state.restore(old).unwrap();
        assert_eq!(state.check(1, &batch(0, 5)), Verdict::Duplicate(0));
        let mut leader = Leader {
            state,
            index: 1,
            next_seq: HashMap::new(),
        };
        // Without a timestamp it is not expired by time, even by a batch far ahead of it...
        leader.write(1, 1000 * DAY);
        assert_eq!(leader.remembered(), [1, 7]);
        // ...and it is the first to go past producers_max.
        leader.write(2, 0);
        assert_eq!(leader.remembered(), [1, 2]);
    }

    #[test]
    fn a_batch_that_never_reached_the_log_leaves_earlier_ones_reserved() {
        let state = ProducerState::default();
        let (a, b, c) = (batch(0, 5), batch(5, 5), batch(10, 5));
        assert_eq!(state.check(1, &a), Verdict::Append);
        assert_eq!(state.check(1, &b), Verdict::Append);
        // b's submission fails; a was submitted and is still on its way to commit.
        state.unreserve(&b);
        // c, pipelined behind b, is told to retry (not refused as a gap), as Kafka's leader
        // would refuse it.
        assert_eq!(
            state.check(1, &c),
            Verdict::Refused(ResponseError::NotLeaderOrFollower)
        );
        // The client resends b, then c: both follow a, no gap.
        assert_eq!(state.check(1, &b), Verdict::Append);
        assert_eq!(state.check(1, &c), Verdict::Append);
        // A retry of a while it is in flight is not written twice.
        assert_eq!(state.check(1, &a), Verdict::InFlight);
    }

    #[test]
    fn a_batch_refused_before_its_check_holds_the_ones_pipelined_behind_it() {
        let state = ProducerState::default();
        let (a, b, c) = (batch(0, 5), batch(5, 5), batch(10, 5));
        assert_eq!(state.check(1, &a), Verdict::Append);
        state.0.lock().unwrap().apply(1, &a, Offset(0));
        // b is refused before its sequence is looked at (the disk was short of space); the
        // space is back when c, pipelined behind it, arrives: c is told to retry, not
        // refused as a gap (which makes librdkafka renumber and resend what it has not seen
        // acknowledged).
        state.refused_before_check(1, &b);
        assert_eq!(
            state.check(1, &c),
            Verdict::Refused(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(state.check(1, &b), Verdict::Append);
        assert_eq!(state.check(1, &c), Verdict::Append);
        // A retry of an applied batch, a gap, or a producer never seen holds nothing.
        state.refused_before_check(1, &a);
        state.refused_before_check(1, &batch(40, 5));
        state.refused_before_check(1, &batch_of(99, 0, 0, 1, 0));
        assert_eq!(state.check(1, &batch(15, 5)), Verdict::Append);
        assert!(!state.0.lock().unwrap().in_flight.contains_key(&99));
    }

    #[test]
    fn a_batch_refused_while_a_new_leader_applies_holds_the_ones_pipelined_behind_it() {
        let state = ProducerState::default();
        let (a, b, c) = (batch(0, 5), batch(5, 5), batch(10, 5));
        // a was written by the previous leader; this one, new in term 2, has not applied it
        // yet when b arrives, and refuses b.
        state.refused_while_applying(2, &b);
        state.0.lock().unwrap().apply(1, &a, Offset(0));
        // c, pipelined behind b, arrives once a is applied: told to retry, not refused as a
        // gap.
        assert_eq!(
            state.check(2, &c),
            Verdict::Refused(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(state.check(2, &b), Verdict::Append);
        assert_eq!(state.check(2, &c), Verdict::Append);

        // Held for a batch that turns out written already (a retry of a): the next one is no
        // gap and goes on; a real gap is still one.
        let state = ProducerState::default();
        state.refused_while_applying(2, &a);
        state.0.lock().unwrap().apply(1, &a, Offset(0));
        assert_eq!(state.check(2, &a), Verdict::Duplicate(0));
        assert_eq!(
            state.check(2, &c),
            Verdict::Refused(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(state.check(2, &b), Verdict::Append);
        assert_eq!(state.check(2, &c), Verdict::Append);
        assert_eq!(
            state.check(2, &batch(20, 5)),
            Verdict::Refused(ResponseError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn a_new_term_drops_the_old_terms_reservations() {
        let state = ProducerState::default();
        assert_eq!(state.check(1, &batch(0, 5)), Verdict::Append);
        // The batch was lost with its term: the new leader takes it again.
        assert_eq!(state.check(2, &batch(0, 5)), Verdict::Append);
    }
}
