//! Where the replicas of new partitions go: a pure function of the brokers and their current
//! load, used by the controller before it proposes a topic or new partitions.
//!
//! Rules, in priority order: only active brokers; never two replicas of a partition on one
//! broker; a partition's replicas on distinct racks while there are racks left; replicas and
//! preferred leaders spread evenly, counting what each broker already holds. Ties are broken
//! by broker id, so the same input always gives the same placement.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::MAX_PARTITIONS_PER_TOPIC;
use crate::ids::BrokerId;
use crate::state::BrokerState;

/// A broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    /// The broker.
    pub id: BrokerId,
    /// Its failure domain. Brokers without one count as one shared unnamed rack.
    pub rack: Option<String>,
    /// Only active brokers receive replicas.
    pub state: BrokerState,
}

/// What a broker already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Replicas assigned to it.
    pub replicas: u64,
    /// Partitions whose preferred leader (first replica) it is.
    pub leaders: u64,
}

/// Why no placement could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A replication factor of zero.
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    /// Fewer active brokers than the replication factor.
    #[error(
        "replication factor {needed} needs {needed} active brokers, but {available} are active"
    )]
    NotEnoughBrokers {
        /// The replication factor.
        needed: u16,
        /// Active brokers.
        available: usize,
    },
    /// More partitions than one topic may have.
    #[error("{requested} partitions asked for; at most {max} are allowed")]
    TooManyPartitions {
        /// Partitions asked for.
        requested: u32,
        /// [`MAX_PARTITIONS_PER_TOPIC`].
        max: u32,
    },
}

/// A candidate broker and its running counts.
struct Slot<'a> {
    id: BrokerId,
    rack: Option<&'a str>,
    replicas: u64,
    leaders: u64,
}

/// Replica lists, in preference order, for `partitions` new partitions of
/// `replication_factor` replicas each.
///
/// Brokers missing from `current_load` hold nothing yet. Each partition first takes its
/// preferred leader from the brokers that even replica spread allows (those among the
/// `replication_factor` least loaded), choosing the one with the fewest leaders; then it takes
/// followers one by one, from racks it does not use yet while any remain, choosing the broker
/// with the fewest replicas. Counts are updated after every choice, so later partitions see
/// earlier ones.
pub fn place_new_partitions(
    brokers: &[PlacementBroker],
    current_load: &BTreeMap<BrokerId, Load>,
    partitions: u32,
    replication_factor: u16,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    if replication_factor == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if partitions > MAX_PARTITIONS_PER_TOPIC {
        return Err(PlacementError::TooManyPartitions {
            requested: partitions,
            max: MAX_PARTITIONS_PER_TOPIC,
        });
    }
    // Keyed by id so the order of `brokers` cannot change the result; a broker listed twice
    // counts once (its first entry).
    let mut active: BTreeMap<BrokerId, &PlacementBroker> = BTreeMap::new();
    for broker in brokers.iter().filter(|b| b.state == BrokerState::Active) {
        active.entry(broker.id).or_insert(broker);
    }
    let rf = usize::from(replication_factor);
    if rf > active.len() {
        return Err(PlacementError::NotEnoughBrokers {
            needed: replication_factor,
            available: active.len(),
        });
    }
    let mut slots: Vec<Slot<'_>> = active
        .values()
        .map(|b| {
            let load = current_load.get(&b.id).copied().unwrap_or_default();
            Slot {
                id: b.id,
                rack: b.rack.as_deref(),
                replicas: load.replicas,
                leaders: load.leaders,
            }
        })
        .collect();
    let rack_count = slots.iter().map(|s| s.rack).collect::<BTreeSet<_>>().len();

    let mut placed = Vec::with_capacity(partitions as usize);
    for _ in 0..partitions {
        let leader = choose_leader(&slots, rf);
        slots[leader].leaders += 1;
        slots[leader].replicas += 1;
        let mut chosen = vec![leader];
        while chosen.len() < rf {
            let used: BTreeSet<Option<&str>> = chosen.iter().map(|&i| slots[i].rack).collect();
            let fresh_rack_left = used.len() < rack_count;
            let follower = (0..slots.len())
                .filter(|i| !chosen.contains(i))
                .filter(|&i| !fresh_rack_left || !used.contains(&slots[i].rack))
                .min_by_key(|&i| (slots[i].replicas, slots[i].leaders, slots[i].id))
                .expect("rf <= active brokers leaves a candidate for every replica");
            slots[follower].replicas += 1;
            chosen.push(follower);
        }
        placed.push(chosen.iter().map(|&i| slots[i].id).collect());
    }
    Ok(placed)
}

/// The preferred leader of the next partition: among the brokers whose replica count is at
/// most the `rf`-th smallest (so taking one keeps replicas even), the one with the fewest
/// leaders, then the fewest replicas, then the lowest id.
fn choose_leader(slots: &[Slot<'_>], rf: usize) -> usize {
    let mut counts: Vec<u64> = slots.iter().map(|s| s.replicas).collect();
    counts.sort_unstable();
    let threshold = counts[rf - 1];
    (0..slots.len())
        .filter(|&i| slots[i].replicas <= threshold)
        .min_by_key(|&i| (slots[i].leaders, slots[i].replicas, slots[i].id))
        .expect("the rf-th smallest count belongs to some broker")
}
