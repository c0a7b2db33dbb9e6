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
/// use yet while any remain and then from the racks it uses least, the broker with the fewest
/// replicas (then the fewest followers) first. The leader that leaves replica, leader and follower counts most even wins.
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
    for turn in 0..partitions as usize {
        let chosen = place_one(&slots, rf, rack_count, turn);
        for (position, &i) in chosen.iter().enumerate() {
            slots[i].replicas += 1;
            if position == 0 {
                slots[i].leaders += 1;
            }
        }
        placed.push(chosen);
    }
    even_out_leaders(&mut slots, &mut placed);
    Ok(placed
        .iter()
        .map(|chosen| chosen.iter().map(|&i| slots[i].id).collect())
        .collect())
}

/// Moves preferred leadership of the new partitions between their replicas until every broker
/// leads its target: the total split evenly, the spare leaders going to the brokers with the
/// most replicas so that follower counts come out even as well.
///
/// Placing one partition at a time cannot see that an early choice of leader leaves no good
/// choice later; this pass fixes that with augmenting paths (a broker over its target hands a
/// partition to another of its replicas, which may hand one of its own on, until a broker under
/// its target takes one), so it reaches the targets whenever the replica sets allow. Existing
/// partitions are never touched, and a broker it cannot relieve keeps what it has.
fn even_out_leaders(slots: &mut [Slot<'_>], placed: &mut [Vec<usize>]) {
    let n = slots.len();
    let total: u64 = slots.iter().map(|s| s.leaders).sum();
    let (base, spare) = (total / n as u64, (total % n as u64) as usize);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| {
        (
            std::cmp::Reverse(slots[i].replicas),
            std::cmp::Reverse(slots[i].leaders),
            slots[i].id,
        )
    });
    let mut target = vec![base; n];
    for &i in order.iter().take(spare) {
        target[i] += 1;
    }
    let mut stuck = vec![false; n];
    while let Some(over) = (0..n).find(|&i| !stuck[i] && slots[i].leaders > target[i]) {
        match augmenting_path(slots, placed, &target, over) {
            Some(path) => {
                for (partition, new_leader) in path {
                    let replicas = &mut placed[partition];
                    let at = replicas
                        .iter()
                        .position(|&r| r == new_leader)
                        .expect("a path only names replicas of the partition");
                    slots[replicas[0]].leaders -= 1;
                    slots[new_leader].leaders += 1;
                    replicas.swap(0, at);
                }
            }
            None => stuck[over] = true,
        }
    }
}

/// A chain of (partition, new leader) hand-overs from `from` to a broker under its target, or
/// `None` when no broker under its target can be reached. Breadth first, so the chain is short.
fn augmenting_path(
    slots: &[Slot<'_>],
    placed: &[Vec<usize>],
    target: &[u64],
    from: usize,
) -> Option<Vec<(usize, usize)>> {
    let mut led_by: Vec<Vec<usize>> = vec![Vec::new(); slots.len()];
    for (partition, replicas) in placed.iter().enumerate() {
        led_by[replicas[0]].push(partition);
    }
    // For each reached broker, the partition and broker it was reached through.
    let mut came_from: Vec<Option<(usize, usize)>> = vec![None; slots.len()];
    let mut reached = vec![false; slots.len()];
    reached[from] = true;
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(broker) = queue.pop_front() {
        for &partition in &led_by[broker] {
            for &next in &placed[partition][1..] {
                if reached[next] {
                    continue;
                }
                reached[next] = true;
                came_from[next] = Some((partition, broker));
                if slots[next].leaders < target[next] {
                    let mut path = Vec::new();
                    let mut at = next;
                    while let Some((partition, previous)) = came_from[at] {
                        path.push((partition, at));
                        at = previous;
                    }
                    // Hand over from the start of the chain, so each partition still has one
                    // leader at every step.
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(next);
            }
        }
    }
    None
}

/// Replicas, leaders and brokers in each rack.
type RackTotals<'a> = BTreeMap<Option<&'a str>, (u64, u64, u64)>;

fn rack_totals<'a>(slots: &[Slot<'a>]) -> RackTotals<'a> {
    let mut totals = RackTotals::new();
    for slot in slots {
        let (replicas, leaders, brokers) = totals.entry(slot.rack).or_default();
        *replicas += slot.replicas;
        *leaders += slot.leaders;
        *brokers += 1;
    }
    totals
}

/// A count per broker in a rack, scaled by a million so racks of different sizes compare as
/// integers.
fn per_broker(count: u64, brokers: u64) -> u64 {
    count.saturating_mul(1_000_000) / brokers.max(1)
}

/// The slots of one new partition, leader first.
fn place_one(slots: &[Slot<'_>], rf: usize, rack_count: usize, turn: usize) -> Vec<usize> {
    let racks = rack_totals(slots);
    let rack_load: BTreeMap<Option<&str>, u64> = racks
        .iter()
        .map(|(&rack, &(replicas, _, brokers))| (rack, per_broker(replicas, brokers)))
        .collect();
    // Brokers alike in counts and rack lead to the same outcome, so one of each kind (the
    // lowest id, as slots are sorted by id) is enough to try.
    let mut kinds = BTreeSet::new();
    (0..slots.len())
        .filter(|&i| kinds.insert((slots[i].leaders, slots[i].replicas, slots[i].rack)))
        .map(|leader| {
            let chosen = with_followers(slots, &rack_load, leader, rf, rack_count, turn);
            let key = (
                evenness_after(slots, &racks, &chosen),
                rack_load[&slots[leader].rack],
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

/// `leader` followed by `rf - 1` followers: fresh racks first while any remain, then the racks
/// this partition uses least (so a partition with more replicas than racks spreads them
/// round-robin, and no rack fills up ahead of the others), then the fewest replicas, then the
/// emptier rack, then the fewest followers, then the lowest id.
fn with_followers(
    slots: &[Slot<'_>],
    rack_load: &BTreeMap<Option<&str>, u64>,
    leader: usize,
    rf: usize,
    rack_count: usize,
    turn: usize,
) -> Vec<usize> {
    let mut chosen = vec![leader];
    while chosen.len() < rf {
        // A partition has few replicas, so a vector beats a set here.
        let mut used: Vec<Option<&str>> = chosen.iter().map(|&i| slots[i].rack).collect();
        used.sort_unstable();
        used.dedup();
        let fresh_rack_left = used.len() < rack_count;
        let in_rack =
            |rack: Option<&str>| chosen.iter().filter(|&&c| slots[c].rack == rack).count();
        let follower = (0..slots.len())
            .filter(|i| !chosen.contains(i))
            .filter(|&i| !fresh_rack_left || !used.contains(&slots[i].rack))
            .min_by_key(|&i| {
                let slot = &slots[i];
                let rack = rack_load[&slot.rack];
                let rotated = (i + slots.len() - turn % slots.len()) % slots.len();
                (
                    in_rack(slot.rack),
                    slot.replicas,
                    rack,
                    slot.followers(),
                    rotated,
                )
            })
            .expect("rf <= active brokers leaves a candidate for every replica");
        chosen.push(follower);
    }
    chosen
}

/// How uneven replica, leader and follower counts would be with `chosen` placed, smaller is
/// better: each spread (max - min) counted as at least 1, since within one is the goal, then
/// how far apart the racks' replicas and leaders per broker are (a partition with fewer
/// replicas than racks must go to the emptier ones, or later partitions that cover every rack
/// can never even the racks out), then the sum of the three spreads.
fn evenness_after(
    slots: &[Slot<'_>],
    racks: &RackTotals<'_>,
    chosen: &[usize],
) -> (u64, u64, u64, u64, u64) {
    let mut spans = [Span::default(); 5];
    for (i, slot) in slots.iter().enumerate() {
        let position = chosen.iter().position(|&c| c == i);
        let replicas = slot.replicas + u64::from(position.is_some());
        let leaders = slot.leaders + u64::from(position == Some(0));
        spans[0].add(replicas);
        spans[1].add(leaders);
        spans[2].add(replicas - leaders.min(replicas));
    }
    for (rack, &(replicas, leaders, brokers)) in racks {
        let added = chosen.iter().filter(|&&c| slots[c].rack == *rack).count() as u64;
        let led = u64::from(slots[chosen[0]].rack == *rack);
        spans[3].add(per_broker(replicas + added, brokers));
        spans[4].add(per_broker(leaders + led, brokers));
    }
    let [r, l, f, rack_r, rack_l] = spans.map(|s| s.max - s.min);
    (r.max(1), l.max(1), f.max(1), rack_r + rack_l, r + l + f)
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
