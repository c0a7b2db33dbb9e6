//! The balancing planner: a pure function from the brokers and the existing partitions to the
//! replica moves and leader transfers that balance the cluster. The controller executes its
//! plans; the admin API shows them (`Rebalance` with `dry_run`).
//!
//! Rules, in priority order:
//! 1. a partition has its replication factor in replicas, never two on one broker;
//! 2. nothing new goes to a draining or down broker, and replicas there move to active
//!    brokers, as long as an active broker can take them (otherwise they stay: a partition
//!    never loses a replica to a drain the cluster cannot absorb);
//! 3. a partition's replicas are on distinct racks while its racks are fewer than the racks of
//!    the active brokers;
//! 4. replica counts of active brokers within one of each other, reached by moving replicas
//!    from the fullest broker to the emptiest, smallest partitions first;
//! 5. preferred leaders (the first replica of each list) within one of each other across
//!    active brokers, reached by reordering replica lists only, which moves no data.
//!
//! Each relocation is one a rule asks for, so the plan moves as few replicas as it can, and a
//! plan of a balanced cluster is empty: planning again on a plan's result changes nothing.
//! Brokers without a rack count as one unnamed rack. Ties are broken by broker id and by
//! (topic, partition), so the same input always gives the same plan.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ids::{BrokerId, TopicId};

/// What a broker can take, for the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    /// Takes replicas and leadership.
    Active,
    /// Being emptied: its replicas move away.
    Draining,
    /// Unreachable for longer than the failure timeout: its replicas are re-created elsewhere.
    Down,
}

/// A broker as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanBroker {
    /// The broker.
    pub id: BrokerId,
    /// Its failure domain; brokers without one share an unnamed rack.
    pub rack: Option<String>,
    /// Whether it takes replicas.
    pub state: PlanState,
}

/// One existing partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPartition {
    /// Its topic.
    pub topic: TopicId,
    /// Its number.
    pub partition: u32,
    /// Its replicas, in preference order: the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// The broker leading it now, when known.
    pub leader: Option<BrokerId>,
    /// How many replicas it should have (it differs from `replicas.len()` after a change).
    pub replication_factor: u16,
    /// Bytes of its log, so small partitions move first.
    pub size_bytes: u64,
}

/// A new replica list for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMove {
    /// The topic.
    pub topic: TopicId,
    /// The partition.
    pub partition: u32,
    /// Its replicas now.
    pub from: Vec<BrokerId>,
    /// Its replicas after the move, in preference order.
    pub to: Vec<BrokerId>,
    /// Bytes copied: the partition's size for every broker in `to` that is not in `from`
    /// (zero for a new order of the same brokers).
    pub bytes: u64,
}

/// Leadership of one partition handed to its (new) preferred replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderTransfer {
    /// The topic.
    pub topic: TopicId,
    /// The partition.
    pub partition: u32,
    /// The broker leading it now, when known.
    pub from: Option<BrokerId>,
    /// The broker that should lead it.
    pub to: BrokerId,
}

/// The moves and transfers that balance the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Replica list changes, at most one per partition, in (topic, partition) order.
    pub moves: Vec<ReplicaMove>,
    /// Leader transfers, in (topic, partition) order.
    pub leader_transfers: Vec<LeaderTransfer>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.leader_transfers.is_empty()
    }

    /// Bytes copied to new replicas if every move is made.
    pub fn bytes_moved(&self) -> u64 {
        self.moves.iter().map(|m| m.bytes).sum()
    }
}

/// The partitions with every move and transfer of `plan` applied.
pub fn apply_plan(partitions: &[PlanPartition], plan: &Plan) -> Vec<PlanPartition> {
    let moves: BTreeMap<(TopicId, u32), &ReplicaMove> = plan
        .moves
        .iter()
        .map(|m| ((m.topic, m.partition), m))
        .collect();
    let transfers: BTreeMap<(TopicId, u32), BrokerId> = plan
        .leader_transfers
        .iter()
        .map(|t| ((t.topic, t.partition), t.to))
        .collect();
    partitions
        .iter()
        .map(|p| {
            let key = (p.topic, p.partition);
            let mut p = p.clone();
            if let Some(m) = moves.get(&key) {
                p.replicas = m.to.clone();
            }
            if let Some(to) = transfers.get(&key) {
                p.leader = Some(*to);
            }
            p
        })
        .collect()
}

/// The cluster as the planner works on it: replica lists being rewritten and the counts of
/// active brokers.
struct Work<'a> {
    active: BTreeSet<BrokerId>,
    racks: BTreeMap<BrokerId, &'a str>,
    rack_count: usize,
    lists: Vec<Vec<BrokerId>>,
    load: BTreeMap<BrokerId, usize>,
    /// Each partition's place in the order partitions are considered (smallest first).
    rank: Vec<usize>,
    /// Per active broker, the partitions it holds, by (rank, index).
    hosted: BTreeMap<BrokerId, BTreeSet<(usize, usize)>>,
}

impl Work<'_> {
    fn is_active(&self, b: BrokerId) -> bool {
        self.active.contains(&b)
    }

    fn rack(&self, b: BrokerId) -> Option<&str> {
        self.racks.get(&b).copied()
    }

    /// Distinct racks among `list` without position `skip`.
    fn racks_of(&self, list: &[BrokerId], skip: Option<usize>) -> BTreeSet<Option<&str>> {
        list.iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, b)| self.rack(*b))
            .collect()
    }

    /// The best active broker to hold a replica of `list` in place of position `skip` (or as
    /// a new one): not in the list, on a rack the rest of the list does not use while there is
    /// one, then the fewest replicas, then the lowest id.
    fn candidate(&self, list: &[BrokerId], skip: Option<usize>) -> Option<BrokerId> {
        let used = self.racks_of(list, skip);
        self.active
            .iter()
            .filter(|b| !list.contains(b))
            .min_by_key(|b| {
                (
                    used.contains(&self.rack(**b)),
                    self.load.get(b).copied().unwrap_or(0),
                    **b,
                )
            })
            .copied()
    }

    /// Counts a replica of partition `i` on `b`.
    fn add(&mut self, b: BrokerId, i: usize) {
        if self.is_active(b) {
            *self.load.entry(b).or_default() += 1;
            self.hosted.entry(b).or_default().insert((self.rank[i], i));
        }
    }

    /// Uncounts a replica of partition `i` on `b`.
    fn remove(&mut self, b: BrokerId, i: usize) {
        if let Some(n) = self.load.get_mut(&b) {
            *n = n.saturating_sub(1);
        }
        if let Some(set) = self.hosted.get_mut(&b) {
            set.remove(&(self.rank[i], i));
        }
    }

    fn replace(&mut self, i: usize, at: usize, with: BrokerId) {
        let old = std::mem::replace(&mut self.lists[i][at], with);
        self.remove(old, i);
        self.add(with, i);
    }
}

/// The moves and leader transfers that balance the cluster. See the module documentation for
/// the rules.
pub fn plan(brokers: &[PlanBroker], partitions: &[PlanPartition]) -> Plan {
    // Keyed by id so the order of `brokers` cannot change the result; a broker listed twice
    // counts once (its first entry).
    let mut by_id: BTreeMap<BrokerId, &PlanBroker> = BTreeMap::new();
    for b in brokers {
        by_id.entry(b.id).or_insert(b);
    }
    let active: BTreeSet<BrokerId> = by_id
        .values()
        .filter(|b| b.state == PlanState::Active)
        .map(|b| b.id)
        .collect();
    let racks: BTreeMap<BrokerId, &str> = by_id
        .values()
        .map(|b| (b.id, b.rack.as_deref().unwrap_or("")))
        .collect();
    let rack_count = active
        .iter()
        .map(|b| racks.get(b).copied())
        .collect::<BTreeSet<_>>()
        .len();
    // Smallest partitions first: when a choice exists, they are the ones that move.
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by_key(|&i| {
        (
            partitions[i].size_bytes,
            partitions[i].topic,
            partitions[i].partition,
        )
    });
    let mut rank = vec![0; partitions.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    let mut work = Work {
        load: active.iter().map(|b| (*b, 0)).collect(),
        hosted: BTreeMap::new(),
        rank,
        active,
        racks,
        rack_count,
        lists: partitions
            .iter()
            .map(|p| {
                let mut seen = BTreeSet::new();
                p.replicas
                    .iter()
                    .copied()
                    .filter(|b| seen.insert(*b))
                    .collect()
            })
            .collect(),
    };
    for (i, list) in work.lists.clone().into_iter().enumerate() {
        for b in list {
            work.add(b, i);
        }
    }
    for &i in &order {
        fix_partition(&mut work, &partitions[i], i);
    }
    even_out_replicas(&mut work);
    lead_from_active(&mut work);
    even_out_leaders(&mut work);

    let mut plan = Plan::default();
    let mut by_key: Vec<usize> = (0..partitions.len()).collect();
    by_key.sort_by_key(|&i| (partitions[i].topic, partitions[i].partition));
    for i in by_key {
        let p = &partitions[i];
        let to = &work.lists[i];
        if *to != p.replicas {
            let added = to.iter().filter(|b| !p.replicas.contains(b)).count() as u64;
            plan.moves.push(ReplicaMove {
                topic: p.topic,
                partition: p.partition,
                from: p.replicas.clone(),
                to: to.clone(),
                bytes: p.size_bytes.saturating_mul(added),
            });
        }
        if let (Some(leader), Some(&first)) = (p.leader, to.first())
            && leader != first
            && work.is_active(first)
        {
            plan.leader_transfers.push(LeaderTransfer {
                topic: p.topic,
                partition: p.partition,
                from: Some(leader),
                to: first,
            });
        }
    }
    plan
}

/// Rules 1–3 for one partition: the replication factor, replicas off draining and down
/// brokers, racks spread.
fn fix_partition(work: &mut Work<'_>, p: &PlanPartition, i: usize) {
    let rf = usize::from(p.replication_factor.max(1));
    // Too many replicas: drop those on brokers that cannot keep them, then the most loaded,
    // keeping the current leader while another can go.
    while work.lists[i].len() > rf {
        let list = &work.lists[i];
        let at = (0..list.len())
            .max_by_key(|&at| {
                let b = list[at];
                (
                    !work.is_active(b),
                    Some(b) != p.leader,
                    work.load.get(&b).copied().unwrap_or(0),
                    at,
                )
            })
            .unwrap_or(0);
        let gone = work.lists[i].remove(at);
        work.remove(gone, i);
    }
    // Replicas on brokers that are not active move when an active broker can take them.
    for at in 0..work.lists[i].len() {
        let b = work.lists[i][at];
        if work.is_active(b) {
            continue;
        }
        if let Some(to) = work.candidate(&work.lists[i], Some(at)) {
            work.replace(i, at, to);
        }
    }
    // Two replicas on one rack while a rack is unused: the more loaded one moves.
    if work.rack_count > 1 {
        loop {
            let list = &work.lists[i];
            let distinct = work.racks_of(list, None).len();
            if distinct >= list.len().min(work.rack_count) {
                break;
            }
            let mut seen = BTreeSet::new();
            let duplicates: Vec<usize> = (0..list.len())
                .filter(|&at| !seen.insert(work.rack(list[at])))
                .collect();
            let Some((at, to)) = duplicates.into_iter().find_map(|at| {
                let to = work.candidate(&work.lists[i], Some(at))?;
                let racks_after = {
                    let mut l = work.lists[i].clone();
                    l[at] = to;
                    work.racks_of(&l, None).len()
                };
                (racks_after > distinct).then_some((at, to))
            }) else {
                break;
            };
            work.replace(i, at, to);
        }
    }
    // Too few: add replicas while active brokers are left.
    while work.lists[i].len() < rf {
        let Some(to) = work.candidate(&work.lists[i], None) else {
            break;
        };
        work.lists[i].push(to);
        work.add(to, i);
    }
}

/// Rule 4: moves replicas from the fullest active brokers to the emptiest until their counts
/// are within one, never breaking rule 3 (a move keeps the partition's number of racks). When
/// no replica can go straight from one to the other (racks in the way), a replica goes from
/// the fullest to a third broker while one of that broker's goes on to the emptiest.
fn even_out_replicas(work: &mut Work<'_>) {
    // Every step lowers the sum of squared counts, so this ends; the bound is a backstop.
    let bound = work.lists.iter().map(Vec::len).sum::<usize>() + 1;
    for _ in 0..bound {
        let mut by_load: Vec<(usize, BrokerId)> = work.load.iter().map(|(b, n)| (*n, *b)).collect();
        by_load.sort();
        let pairs: Vec<(BrokerId, BrokerId)> = by_load
            .iter()
            .rev()
            .flat_map(|&(high, from)| {
                by_load
                    .iter()
                    .take_while(move |(low, _)| *low + 2 <= high)
                    .map(move |&(_, to)| (from, to))
            })
            .collect();
        let direct = pairs
            .iter()
            .find_map(|&(from, to)| relocation(work, from, to).map(|(i, at)| (i, at, to)));
        if let Some((i, at, to)) = direct {
            work.replace(i, at, to);
            continue;
        }
        if !pairs
            .iter()
            .any(|&(from, to)| relocate_through(work, from, to))
        {
            return;
        }
    }
}

/// One replica from `from` to some third broker and one from that broker to `to`, when both
/// moves keep their partitions' racks; whether it was done.
fn relocate_through(work: &mut Work<'_>, from: BrokerId, to: BrokerId) -> bool {
    let others: Vec<BrokerId> = work
        .active
        .iter()
        .copied()
        .filter(|b| *b != from && *b != to)
        .collect();
    for via in others {
        let Some((i, at)) = relocation(work, from, via) else {
            continue;
        };
        work.replace(i, at, via);
        if let Some((j, at2)) = relocation(work, via, to).filter(|(j, _)| *j != i) {
            work.replace(j, at2, to);
            return true;
        }
        work.replace(i, at, from);
    }
    false
}

/// A partition holding `from` but not `to` whose replica on `from` can go to `to` without
/// losing a rack; its index and the replica's position. The smallest such partition, and
/// among partitions of equal standing one where `from` is the preferred leader when `from`
/// leads more than `to` (leadership moves along) and one where it is not otherwise.
fn relocation(work: &Work<'_>, from: BrokerId, to: BrokerId) -> Option<(usize, usize)> {
    let leads = |b: BrokerId| work.lists.iter().filter(|l| l.first() == Some(&b)).count();
    let move_leadership = leads(from) > leads(to) + 1;
    let mut fallback = None;
    for &(_, i) in work.hosted.get(&from)? {
        let list = &work.lists[i];
        let Some(at) = list.iter().position(|b| *b == from) else {
            continue;
        };
        if list.contains(&to) {
            continue;
        }
        let before = work.racks_of(list, None).len();
        let mut after = work.racks_of(list, Some(at));
        after.insert(work.rack(to));
        if after.len() < before {
            continue;
        }
        if (at == 0) == move_leadership {
            return Some((i, at));
        }
        fallback.get_or_insert((i, at));
    }
    fallback
}

/// A partition whose preferred leader is not active but which has an active replica gets
/// that replica first: the one leading the fewest partitions.
fn lead_from_active(work: &mut Work<'_>) {
    let mut leaders = leader_counts(work);
    for i in 0..work.lists.len() {
        let list = &work.lists[i];
        if list.first().is_none_or(|b| work.is_active(*b)) {
            continue;
        }
        let Some(at) = (1..list.len())
            .filter(|&at| work.is_active(list[at]))
            .min_by_key(|&at| (leaders.get(&list[at]).copied().unwrap_or(0), list[at]))
        else {
            continue;
        };
        let new = list[at];
        work.lists[i].swap(0, at);
        *leaders.entry(new).or_default() += 1;
    }
}

fn leader_counts(work: &Work<'_>) -> BTreeMap<BrokerId, usize> {
    let mut leaders: BTreeMap<BrokerId, usize> = work.active.iter().map(|b| (*b, 0)).collect();
    for list in &work.lists {
        if let Some(first) = list.first()
            && let Some(n) = leaders.get_mut(first)
        {
            *n += 1;
        }
    }
    leaders
}

/// Rule 5: hands preferred leadership along chains of partitions (a broker leading too many
/// gives a partition to another of its replicas, which may give one of its own on, until a
/// broker leading two or more fewer than the first takes one) until leader counts are within
/// one. Only replica order changes, unless no chain exists (partitions with one replica, say):
/// then a partition the fullest broker leads and one the emptiest follows trade those two
/// replicas, which keeps replica counts and evens leaders.
fn even_out_leaders(work: &mut Work<'_>) {
    let bound = work.lists.len() + 1;
    for _ in 0..bound {
        let leaders = leader_counts(work);
        let mut by_count: Vec<(usize, BrokerId)> = leaders.iter().map(|(b, n)| (*n, *b)).collect();
        by_count.sort();
        if let Some(path) = by_count
            .iter()
            .rev()
            .find_map(|&(high, from)| leader_path(work, &leaders, from, high))
        {
            for (i, new_leader) in path {
                let at = work.lists[i]
                    .iter()
                    .position(|b| *b == new_leader)
                    .unwrap_or(0);
                work.lists[i].swap(0, at);
            }
            continue;
        }
        let traded = by_count.iter().rev().any(|&(high, from)| {
            by_count
                .iter()
                .take_while(|(low, _)| *low + 2 <= high)
                .any(|&(_, to)| trade_leadership(work, from, to))
        });
        if !traded {
            return;
        }
    }
}

/// A partition led by `from` without a replica on `to`, and one with a follower on `to`
/// without a replica on `from`: `to` takes the first one's lead replica and `from` the
/// second one's follower, when both keep their racks; whether it was done.
fn trade_leadership(work: &mut Work<'_>, from: BrokerId, to: BrokerId) -> bool {
    let keeps_racks = |work: &Work<'_>, i: usize, at: usize, with: BrokerId| {
        let list = &work.lists[i];
        let before = work.racks_of(list, None).len();
        let mut after = work.racks_of(list, Some(at));
        after.insert(work.rack(with));
        after.len() >= before
    };
    let led = work
        .hosted
        .get(&from)
        .into_iter()
        .flatten()
        .find_map(|&(_, i)| {
            let list = &work.lists[i];
            (list.first() == Some(&from) && !list.contains(&to) && keeps_racks(work, i, 0, to))
                .then_some(i)
        });
    let Some(i) = led else {
        return false;
    };
    let followed = work
        .hosted
        .get(&to)
        .into_iter()
        .flatten()
        .find_map(|&(_, j)| {
            let list = &work.lists[j];
            let at = list.iter().position(|b| *b == to)?;
            (j != i && at > 0 && !list.contains(&from) && keeps_racks(work, j, at, from))
                .then_some((j, at))
        });
    let Some((j, at)) = followed else {
        return false;
    };
    work.replace(i, 0, to);
    work.replace(j, at, from);
    true
}

/// Breadth first from `from` (leading `high` partitions): a chain of (partition, new
/// preferred leader) ending at an active broker leading at most `high - 2`.
fn leader_path(
    work: &Work<'_>,
    leaders: &BTreeMap<BrokerId, usize>,
    from: BrokerId,
    high: usize,
) -> Option<Vec<(usize, BrokerId)>> {
    let mut led_by: BTreeMap<BrokerId, Vec<usize>> = BTreeMap::new();
    for (i, list) in work.lists.iter().enumerate() {
        if let Some(first) = list.first() {
            led_by.entry(*first).or_default().push(i);
        }
    }
    let mut came_from: BTreeMap<BrokerId, (BrokerId, usize)> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut visited = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        for &i in led_by.get(&node).map(Vec::as_slice).unwrap_or(&[]) {
            for &next in &work.lists[i][1..] {
                if !work.is_active(next) || !visited.insert(next) {
                    continue;
                }
                came_from.insert(next, (node, i));
                if leaders.get(&next).copied().unwrap_or(0) + 2 <= high {
                    let mut path = Vec::new();
                    let mut at = next;
                    while let Some(&(prev, i)) = came_from.get(&at) {
                        path.push((i, at));
                        at = prev;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(next);
            }
        }
    }
    None
}
