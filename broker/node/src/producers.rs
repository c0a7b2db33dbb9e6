//! Idempotent producers: each partition's state machine keeps, per producer id, its epoch and
//! its last few batches (sequence range and offset), so a batch retried after a leader change
//! is recognised and answered with its first offset instead of being written twice.
//!
//! Every replica applies the same batches, so the state is the same everywhere and travels in
//! snapshots. The leader also tracks batches handed to Raft but not yet applied (in flight),
//! checked and reserved in request order before a batch is submitted.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use strand_log::{BatchHeader, Offset};
use strand_raft::{Batch, LogId, Machine};

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

#[derive(Debug, Default)]
struct Producers {
    applied: HashMap<i64, Producer>,
    in_flight: HashMap<i64, InFlight>,
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
#[derive(Debug, Clone, Default)]
pub struct ProducerState(Arc<Mutex<Producers>>);

fn last_seq(header: &BatchHeader) -> i32 {
    header.base_sequence.wrapping_add(header.last_offset_delta)
}

/// The sequence after `seq`, wrapping as Kafka's do.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerState {
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
        if let Some(from) = retry_from
            && first != from
        {
            return Verdict::Refused(ResponseError::NotLeaderOrFollower);
        }
        if let Some(previous) = previous
            && first != next_seq(previous)
        {
            return Verdict::Refused(ResponseError::OutOfOrderSequenceNumber);
        }
        let flight = producers.in_flight.entry(id).or_insert(InFlight {
            term,
            epoch: header.producer_epoch,
            batches: VecDeque::new(),
            retry_from: None,
        });
        if flight.epoch != header.producer_epoch {
            flight.epoch = header.producer_epoch;
            flight.batches.clear();
        }
        flight.retry_from = None;
        flight.batches.push_back((first, last));
        Verdict::Append
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

impl Machine for ProducerState {
    fn apply(&mut self, _log_id: LogId, batch: &Batch, base_offset: Offset) -> Option<Bytes> {
        let header = BatchHeader::parse(&batch.0).ok()?;
        if header.producer_id < 0 {
            return None;
        }
        let mut producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (first, last) = (header.base_sequence, last_seq(&header));
        if let Some(flight) = producers.in_flight.get_mut(&header.producer_id) {
            flight.batches.retain(|b| *b != (first, last));
        }
        let producer = producers.applied.entry(header.producer_id).or_default();
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
        None
    }

    fn snapshot(&self) -> Vec<u8> {
        let producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_vec(&producers.applied).unwrap_or_default()
    }

    fn restore(&mut self, state: &[u8]) -> io::Result<()> {
        let applied = if state.is_empty() {
            HashMap::new()
        } else {
            serde_json::from_slice(state).map_err(io::Error::other)?
        };
        let mut producers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        producers.applied = applied;
        producers.in_flight.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            partition_leader_epoch: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: first,
            records_count: count,
        }
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
    fn a_new_term_drops_the_old_terms_reservations() {
        let state = ProducerState::default();
        assert_eq!(state.check(1, &batch(0, 5)), Verdict::Append);
        // The batch was lost with its term: the new leader takes it again.
        assert_eq!(state.check(2, &batch(0, 5)), Verdict::Append);
    }
}
