//! The balancing planner: its rules hold on the result of any plan, planning again on a plan's
//! result yields nothing, and the common cases (scale out, drain, failure, replication-factor
//! changes) move what they must and nothing more.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strand_meta::{BrokerId, PlanBroker, PlanPartition, PlanState, TopicId, apply_plan, plan};

use super::topic_id;

fn broker(id: u32, rack: Option<&str>, state: PlanState) -> PlanBroker {
    PlanBroker {
        id: BrokerId(id),
        rack: rack.map(str::to_owned),
        state,
    }
}

fn active(ids: impl IntoIterator<Item = u32>) -> Vec<PlanBroker> {
    ids.into_iter()
        .map(|id| broker(id, None, PlanState::Active))
        .collect()
}

fn partition(topic: TopicId, n: u32, replicas: &[u32], rf: u16) -> PlanPartition {
    PlanPartition {
        topic,
        partition: n,
        replicas: replicas.iter().copied().map(BrokerId).collect(),
        leader: replicas.first().copied().map(BrokerId),
        replication_factor: rf,
        size_bytes: 1000 + u64::from(n),
    }
}

/// Replica and preferred-leader counts per active broker.
fn counts(
    brokers: &[PlanBroker],
    partitions: &[PlanPartition],
) -> (BTreeMap<BrokerId, usize>, BTreeMap<BrokerId, usize>) {
    let mut replicas: BTreeMap<BrokerId, usize> = brokers
        .iter()
        .filter(|b| b.state == PlanState::Active)
        .map(|b| (b.id, 0))
        .collect();
    let mut leaders = replicas.clone();
    for p in partitions {
        for (at, b) in p.replicas.iter().enumerate() {
            if let Some(n) = replicas.get_mut(b) {
                *n += 1;
                if at == 0 {
                    *leaders.get_mut(b).unwrap() += 1;
                }
            }
        }
    }
    (replicas, leaders)
}

fn spread(counts: &BTreeMap<BrokerId, usize>) -> usize {
    counts.values().max().unwrap_or(&0) - counts.values().min().unwrap_or(&0)
}

/// The rules every result keeps, whatever the input.
fn check_rules(brokers: &[PlanBroker], after: &[PlanPartition]) {
    let active: BTreeMap<BrokerId, &str> = brokers
        .iter()
        .filter(|b| b.state == PlanState::Active)
        .map(|b| (b.id, b.rack.as_deref().unwrap_or("")))
        .collect();
    let racks = active.values().collect::<BTreeSet<_>>().len();
    for p in after {
        let rf = usize::from(p.replication_factor);
        let distinct: BTreeSet<_> = p.replicas.iter().collect();
        assert_eq!(distinct.len(), p.replicas.len(), "a broker twice: {p:?}");
        assert!(
            p.replicas.len() <= rf,
            "more replicas than the factor: {p:?}"
        );
        let on_active = p.replicas.iter().filter(|b| active.contains_key(b)).count();
        assert_eq!(
            on_active,
            rf.min(active.len()),
            "replicas on active brokers short of the factor while brokers are free: {p:?}"
        );
        if on_active == p.replicas.len() {
            let used: BTreeSet<_> = p.replicas.iter().map(|b| active[b]).collect();
            assert_eq!(
                used.len(),
                p.replicas.len().min(racks),
                "racks not spread: {p:?}"
            );
        }
        if let Some(first) = p.replicas.first()
            && !active.contains_key(first)
        {
            assert!(
                p.replicas.iter().all(|b| !active.contains_key(b)),
                "an inactive preferred leader while an active replica exists: {p:?}"
            );
        }
    }
}

/// Brokers 0..n with optional racks and some draining or down; the generator for the
/// property tests.
fn brokers_strategy() -> impl Strategy<Value = Vec<PlanBroker>> {
    (1u32..=8, 0u32..=3, prop::collection::vec(0u8..10, 8)).prop_map(|(n, racks, states)| {
        (0..n)
            .map(|id| {
                let rack = (racks > 0).then(|| format!("rack-{}", id % racks));
                let state = match states[id as usize] {
                    0 => PlanState::Draining,
                    1 => PlanState::Down,
                    _ => PlanState::Active,
                };
                PlanBroker {
                    id: BrokerId(id),
                    rack,
                    state,
                }
            })
            .collect()
    })
}

/// Partitions of up to three topics on brokers 0..10 (some unknown to the cluster), often
/// crowded on the first brokers, as after a scale-out.
fn partitions_strategy() -> impl Strategy<Value = Vec<PlanPartition>> {
    prop::collection::vec(
        (
            1u16..=3,
            prop::collection::vec(prop::collection::vec(0u32..10, 1..=4), 1..12),
            any::<bool>(),
        ),
        1..=3,
    )
    .prop_map(|topics| {
        let mut out = Vec::new();
        for (t, (rf, lists, crowded)) in topics.into_iter().enumerate() {
            for (n, list) in lists.into_iter().enumerate() {
                let mut replicas: Vec<u32> = if crowded {
                    (0..u32::from(rf)).collect()
                } else {
                    list
                };
                replicas.dedup();
                let mut p = partition(topic_id(t as u128 + 1), n as u32, &replicas, rf);
                p.size_bytes = (n as u64 * 7919) % 5000;
                out.push(p);
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn results_keep_the_rules_and_planning_again_changes_nothing(
        brokers in brokers_strategy(),
        partitions in partitions_strategy(),
    ) {
        let first = plan(&brokers, &partitions);
        prop_assert_eq!(&plan(&brokers, &partitions), &first, "deterministic");
        let after = apply_plan(&partitions, &first);
        check_rules(&brokers, &after);
        let again = plan(&brokers, &after);
        prop_assert!(again.moves.is_empty(), "moves after balancing: {:?}", again.moves);
        prop_assert!(
            again.leader_transfers.is_empty(),
            "transfers after balancing: {:?}",
            again.leader_transfers
        );
        for m in &first.moves {
            let before = partitions
                .iter()
                .find(|p| p.topic == m.topic && p.partition == m.partition)
                .unwrap();
            let added = m.to.iter().filter(|b| !m.from.contains(b)).count() as u64;
            prop_assert_eq!(m.bytes, before.size_bytes * added);
        }
    }

    #[test]
    fn without_racks_replicas_and_leaders_are_within_one(
        n in 1u32..=8,
        partitions in partitions_strategy(),
    ) {
        let brokers = active(0..n);
        let after = apply_plan(&partitions, &plan(&brokers, &partitions));
        check_rules(&brokers, &after);
        let (replicas, leaders) = counts(&brokers, &after);
        prop_assert!(spread(&replicas) <= 1, "replicas {:?}", replicas);
        prop_assert!(spread(&leaders) <= 1, "leaders {:?}", leaders);
    }

    #[test]
    fn with_even_racks_replicas_are_within_one(
        per_rack in 1u32..=3,
        racks in 2u32..=3,
        partitions in partitions_strategy(),
    ) {
        let brokers: Vec<PlanBroker> = (0..per_rack * racks)
            .map(|id| broker(id, Some(&format!("rack-{}", id % racks)), PlanState::Active))
            .collect();
        let after = apply_plan(&partitions, &plan(&brokers, &partitions));
        check_rules(&brokers, &after);
        let (replicas, _) = counts(&brokers, &after);
        prop_assert!(spread(&replicas) <= 1, "replicas {:?}", replicas);
    }
}

#[test]
fn scaling_three_brokers_to_five_moves_two_fifths_of_the_replicas() {
    let topic = topic_id(1);
    let partitions: Vec<PlanPartition> = (0..10)
        .map(|n| {
            let first = n % 3;
            partition(topic, n, &[first, (first + 1) % 3, (first + 2) % 3], 3)
        })
        .collect();
    let brokers = active(0..5);
    let plan = plan(&brokers, &partitions);
    let after = apply_plan(&partitions, &plan);
    let (replicas, leaders) = counts(&brokers, &after);
    assert!(replicas.values().all(|n| *n == 6), "{replicas:?}");
    assert!(leaders.values().all(|n| *n == 2), "{leaders:?}");
    // Twelve replicas must reach brokers 3 and 4, and no more move.
    let relocated: usize = plan
        .moves
        .iter()
        .map(|m| m.to.iter().filter(|b| !m.from.contains(b)).count())
        .sum();
    assert_eq!(relocated, 12);
    assert_eq!(
        plan.bytes_moved(),
        plan.moves
            .iter()
            .map(|m| {
                let added = m.to.iter().filter(|b| !m.from.contains(b)).count() as u64;
                (1000 + u64::from(m.partition)) * added
            })
            .sum::<u64>()
    );
}

#[test]
fn a_draining_broker_is_emptied_and_a_down_one_replaced() {
    let topic = topic_id(1);
    let partitions: Vec<PlanPartition> = (0..8)
        .map(|n| partition(topic, n, &[n % 4, (n + 1) % 4, (n + 2) % 4], 3))
        .collect();
    for state in [PlanState::Draining, PlanState::Down] {
        let mut brokers = active(0..5);
        brokers[3].state = state;
        let after = apply_plan(&partitions, &plan(&brokers, &partitions));
        check_rules(&brokers, &after);
        assert!(after.iter().all(|p| !p.replicas.contains(&BrokerId(3))));
        let (replicas, leaders) = counts(&brokers, &after);
        assert!(spread(&replicas) <= 1, "{replicas:?}");
        assert!(spread(&leaders) <= 1, "{leaders:?}");
    }
}

#[test]
fn draining_below_the_replication_factor_keeps_the_replica() {
    let topic = topic_id(1);
    let partitions = vec![partition(topic, 0, &[0, 1, 2], 3)];
    let mut brokers = active(0..3);
    brokers[2].state = PlanState::Draining;
    let plan = plan(&brokers, &partitions);
    assert!(plan.moves.is_empty(), "{plan:?}");
}

#[test]
fn replication_factor_grows_and_shrinks() {
    let topic = topic_id(1);
    let brokers = active(0..3);
    let one: Vec<PlanPartition> = (0..3).map(|n| partition(topic, n, &[n], 3)).collect();
    let grown = apply_plan(&one, &plan(&brokers, &one));
    assert!(grown.iter().all(|p| p.replicas.len() == 3));
    for (p, before) in grown.iter().zip(&one) {
        assert_eq!(
            p.replicas[0], before.replicas[0],
            "the leader keeps its place"
        );
    }
    let shrink: Vec<PlanPartition> = grown
        .into_iter()
        .map(|mut p| {
            p.replication_factor = 1;
            p
        })
        .collect();
    let shrunk = apply_plan(&shrink, &plan(&brokers, &shrink));
    let (replicas, _) = counts(&brokers, &shrunk);
    assert!(shrunk.iter().all(|p| p.replicas.len() == 1));
    assert!(replicas.values().all(|n| *n == 1), "{replicas:?}");
    for p in &shrunk {
        assert_eq!(Some(p.replicas[0]), p.leader, "the current leader stays");
    }
}

#[test]
fn a_balanced_cluster_has_an_empty_plan() {
    let topic = topic_id(1);
    let partitions: Vec<PlanPartition> = (0..6)
        .map(|n| partition(topic, n, &[n % 3, (n + 1) % 3], 2))
        .collect();
    assert!(plan(&active(0..3), &partitions).is_empty());
}

#[test]
fn a_leader_off_its_preferred_replica_is_transferred() {
    let topic = topic_id(1);
    let mut p = partition(topic, 0, &[0, 1, 2], 3);
    p.leader = Some(BrokerId(2));
    let plan = plan(&active(0..3), &[p]);
    assert!(plan.moves.is_empty());
    assert_eq!(plan.leader_transfers.len(), 1);
    assert_eq!(plan.leader_transfers[0].to, BrokerId(0));
}
