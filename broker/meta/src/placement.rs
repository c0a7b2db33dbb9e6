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

impl Slot<'_> {
    fn followers(&self) -> u64 {
        self.replicas - self.leaders.min(self.replicas)
    }
}

/// Replica lists, in preference order, for `partitions` new partitions of
/// `replication_factor` replicas each.
///
/// Brokers missing from `current_load` hold nothing yet. Partitions are placed one at a time,
/// and counts are updated after each, so later partitions see earlier ones. For each
/// partition, every kind of broker (by leader count, replica count and rack) is tried as the
/// preferred leader; followers are then taken one by one, from racks the partition does not
/// use yet while any remain, the broker with the fewest replicas (then the fewest followers)
/// first. The leader that leaves replica, leader and follower counts most even wins.
///
/// Followers count as well as leaders and replicas because a broker that leads little but
/// follows much cannot have both its replica and its leader counts even once later topics
/// arrive: keeping all three within one of each other is what lets every later placement keep
/// replicas and leaders within one.
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
        let chosen = place_one(&slots, rf, rack_count);
        for (position, &i) in chosen.iter().enumerate() {
            slots[i].replicas += 1;
            if position == 0 {
                slots[i].leaders += 1;
            }
        }
        placed.push(chosen.iter().map(|&i| slots[i].id).collect());
    }
    Ok(placed)
}

/// The slots of one new partition, leader first.
fn place_one(slots: &[Slot<'_>], rf: usize, rack_count: usize) -> Vec<usize> {
    // Brokers alike in counts and rack lead to the same outcome, so one of each kind (the
    // lowest id, as slots are sorted by id) is enough to try.
    let mut kinds = BTreeSet::new();
    (0..slots.len())
        .filter(|&i| kinds.insert((slots[i].leaders, slots[i].replicas, slots[i].rack)))
        .map(|leader| {
            let chosen = with_followers(slots, leader, rf, rack_count);
            let key = (
                evenness_after(slots, &chosen),
                slots[leader].leaders,
                slots[leader].replicas,
                slots[leader].id,
            );
            (key, chosen)
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, chosen)| chosen)
        .expect("at least rf >= 1 active brokers")
}

/// `leader` followed by `rf - 1` followers: fresh racks first while any remain, then the
/// fewest replicas, then the fewest followers, then the lowest id.
fn with_followers(slots: &[Slot<'_>], leader: usize, rf: usize, rack_count: usize) -> Vec<usize> {
    let mut chosen = vec![leader];
    while chosen.len() < rf {
        // A partition has few replicas, so a vector beats a set here.
        let mut used: Vec<Option<&str>> = chosen.iter().map(|&i| slots[i].rack).collect();
        used.sort_unstable();
        used.dedup();
        let fresh_rack_left = used.len() < rack_count;
        let follower = (0..slots.len())
            .filter(|i| !chosen.contains(i))
            .filter(|&i| !fresh_rack_left || !used.contains(&slots[i].rack))
            .min_by_key(|&i| (slots[i].replicas, slots[i].followers(), slots[i].id))
            .expect("rf <= active brokers leaves a candidate for every replica");
        chosen.push(follower);
    }
    chosen
}

/// How uneven replica, leader and follower counts would be with `chosen` placed, smaller is
/// better: each spread (max - min) counted as at least 1, since within one is the goal, then
/// their sum.
fn evenness_after(slots: &[Slot<'_>], chosen: &[usize]) -> (u64, u64, u64, u64) {
    let mut spans = [Span::default(); 3];
    for (i, slot) in slots.iter().enumerate() {
        let position = chosen.iter().position(|&c| c == i);
        let replicas = slot.replicas + u64::from(position.is_some());
        let leaders = slot.leaders + u64::from(position == Some(0));
        spans[0].add(replicas);
        spans[1].add(leaders);
        spans[2].add(replicas - leaders.min(replicas));
    }
    let [r, l, f] = spans.map(|s| s.max - s.min);
    (r.max(1), l.max(1), f.max(1), r + l + f)
}

#[derive(Clone, Copy)]
struct Span {
    min: u64,
    max: u64,
}

impl Default for Span {
    fn default() -> Self {
        Span {
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Span {
    fn add(&mut self, value: u64) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }
}
