//! Replica placement: the invariants hold for random brokers and topics, one topic after another.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strand_meta::{
    BrokerId, BrokerState, ClusterState, Command, Load, PlacementBroker, PlacementError, TopicKind,
    place_new_partitions,
};

use super::{cluster_id, register, topic_id};

fn broker(id: u32, rack: Option<&str>, state: BrokerState) -> PlacementBroker {
    PlacementBroker {
        id: BrokerId(id),
        rack: rack.map(str::to_owned),
        state,
    }
}

/// Adds a placement to the running load, as `ClusterState::load` would count it.
fn add_load(load: &mut BTreeMap<BrokerId, Load>, placed: &[Vec<BrokerId>]) {
    for replicas in placed {
        for (position, id) in replicas.iter().enumerate() {
            let entry = load.entry(*id).or_default();
            entry.replicas += 1;
            entry.leaders += u64::from(position == 0);
        }
    }
}

fn spread(values: impl Iterator<Item = u64>) -> u64 {
    let values: Vec<u64> = values.collect();
    values.iter().max().unwrap_or(&0) - values.iter().min().unwrap_or(&0)
}

/// The rules every placement keeps whatever the load: shape, active brokers only, distinct
/// brokers and, while there are racks left, distinct racks.
fn check_rules(brokers: &[PlacementBroker], placed: &[Vec<BrokerId>], partitions: u32, rf: u16) {
    let active: BTreeMap<BrokerId, Option<&str>> = brokers
        .iter()
        .filter(|b| b.state == BrokerState::Active)
        .map(|b| (b.id, b.rack.as_deref()))
        .collect();
    let racks = active.values().collect::<BTreeSet<_>>().len();
    assert_eq!(placed.len(), partitions as usize);
    for replicas in placed {
        assert_eq!(replicas.len(), usize::from(rf));
        let distinct: BTreeSet<_> = replicas.iter().collect();
        assert_eq!(
            distinct.len(),
            replicas.len(),
            "two replicas on one broker: {replicas:?}"
        );
        assert!(
            replicas.iter().all(|id| active.contains_key(id)),
            "inactive broker in {replicas:?}"
        );
        let used: BTreeSet<_> = replicas.iter().map(|id| active[id]).collect();
        assert_eq!(
            used.len(),
            racks.min(usize::from(rf)),
            "racks not spread: {replicas:?}"
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Racks {
    None,
    /// Every active broker has a rack, and every rack holds as many active brokers.
    Even(usize),
    /// Racks of any size, some brokers without one.
    Uneven(usize),
}

fn brokers_strategy() -> impl Strategy<Value = (Vec<PlacementBroker>, Racks)> {
    let racks = prop_oneof![
        Just(Racks::None),
        (1usize..=4).prop_map(Racks::Even),
        (1usize..=4).prop_map(Racks::Uneven),
    ];
    (
        racks,
        prop::collection::btree_set(0u32..40, 1..=12),
        prop::collection::vec((0u8..10, 0usize..5), 12),
    )
        .prop_map(|(racks, ids, extras)| {
            let brokers = ids
                .iter()
                .zip(extras)
                .enumerate()
                .map(|(n, (&id, (state_roll, rack_roll)))| {
                    let state = match (racks, state_roll) {
                        // Even racks must stay even among the active brokers.
                        (Racks::Even(_), _) | (_, 0..=6) => BrokerState::Active,
                        (_, 7 | 8) => BrokerState::Draining,
                        _ => BrokerState::Decommissioned,
                    };
                    let rack = match racks {
                        Racks::None => None,
                        Racks::Even(r) => Some(format!("rack-{}", n % r)),
                        Racks::Uneven(r) if rack_roll < r => Some(format!("rack-{rack_roll}")),
                        Racks::Uneven(_) => None,
                    };
                    PlacementBroker {
                        id: BrokerId(id),
                        rack,
                        state,
                    }
                })
                .collect::<Vec<_>>();
            (brokers, racks)
        })
        .prop_filter(
            "even racks need a multiple of the rack count",
            |(brokers, racks)| match racks {
                Racks::Even(r) => brokers.len() % r == 0,
                _ => true,
            },
        )
}

fn topics_strategy() -> impl Strategy<Value = Vec<(u32, u16)>> {
    prop::collection::vec((1u32..40, 1u16..=4), 1..6)
}

proptest! {
    #[test]
    fn placements_stay_even_one_topic_after_another(
        (brokers, racks) in brokers_strategy(),
        topics in topics_strategy(),
    ) {
        let active: Vec<BrokerId> = brokers
            .iter()
            .filter(|b| b.state == BrokerState::Active)
            .map(|b| b.id)
            .collect();
        let mut load = BTreeMap::new();
        for (partitions, rf) in topics {
            let placed = match place_new_partitions(&brokers, &load, partitions, rf) {
                Err(PlacementError::NotEnoughBrokers { needed, available }) => {
                    prop_assert!(usize::from(needed) > available);
                    prop_assert_eq!(available, active.len());
                    continue;
                }
                other => other.unwrap(),
            };
            check_rules(&brokers, &placed, partitions, rf);
            add_load(&mut load, &placed);
            // With uneven racks, spreading racks must win over spreading brokers. With even
            // racks, the rack rule fixes which brokers a partition may use, and placing one
            // topic at a time (without knowing the next) keeps counts within two, not one.
            let allowed = match racks {
                Racks::None => Some(1),
                Racks::Even(_) => Some(2),
                Racks::Uneven(_) => None,
            };
            if let Some(allowed) = allowed {
                let at = |id: &BrokerId| load.get(id).copied().unwrap_or_default();
                let replicas = spread(active.iter().map(|id| at(id).replicas));
                let leaders = spread(active.iter().map(|id| at(id).leaders));
                prop_assert!(replicas <= allowed, "replica spread {} in {:?}", replicas, load);
                prop_assert!(leaders <= allowed, "leader spread {} in {:?}", leaders, load);
            }
        }
        for broker in brokers.iter().filter(|b| b.state != BrokerState::Active) {
            prop_assert!(!load.contains_key(&broker.id));
        }
    }

    #[test]
    fn placement_does_not_depend_on_broker_order(
        (brokers, _racks) in brokers_strategy(),
        (partitions, rf) in (1u32..40, 1u16..=4),
        rotation in 0usize..12,
    ) {
        let mut shuffled = brokers.clone();
        shuffled.reverse();
        let len = shuffled.len();
        shuffled.rotate_left(rotation % len);
        let load = BTreeMap::new();
        prop_assert_eq!(
            place_new_partitions(&brokers, &load, partitions, rf),
            place_new_partitions(&shuffled, &load, partitions, rf)
        );
    }

    #[test]
    fn placement_never_widens_an_existing_replica_imbalance(
        (brokers, _racks) in brokers_strategy().prop_filter("no racks", |(_, r)| matches!(r, Racks::None)),
        loads in prop::collection::vec((0u64..30, 0u64..10), 12),
        (partitions, rf) in (1u32..40, 1u16..=4),
    ) {
        let active: Vec<BrokerId> = brokers.iter().filter(|b| b.state == BrokerState::Active).map(|b| b.id).collect();
        prop_assume!(usize::from(rf) <= active.len());
        let mut load: BTreeMap<BrokerId, Load> = active
            .iter()
            .zip(loads)
            .map(|(id, (replicas, leaders))| (*id, Load { replicas, leaders: leaders.min(replicas) }))
            .collect();
        // Leaders are not checked: from an arbitrary load (a broker with many replicas and
        // no leaderships), evening out replicas can force leaderships onto brokers that
        // already lead more. Replica moves are costly and leader transfers cheap, so
        // replicas win, and leader balancing evens out the rest.
        let before = spread(active.iter().map(|id| load[id].replicas));
        let placed = place_new_partitions(&brokers, &load, partitions, rf).unwrap();
        check_rules(&brokers, &placed, partitions, rf);
        add_load(&mut load, &placed);
        prop_assert!(spread(active.iter().map(|id| load[id].replicas)) <= before.max(1));
    }

    #[test]
    fn topics_placed_from_cluster_load_stay_even(
        broker_count in 1u32..10,
        topics in topics_strategy(),
    ) {
        let mut state = ClusterState::new();
        state.apply(&Command::Bootstrap { cluster_id: cluster_id(1) }).unwrap();
        for b in 0..broker_count {
            state.apply(&register(b, u64::from(b), None)).unwrap();
        }
        for (seed, (partitions, rf)) in topics.into_iter().enumerate() {
            let Ok(assignments) =
                place_new_partitions(&state.placement_brokers(), &state.load(), partitions, rf)
            else {
                prop_assert!(u32::from(rf) > broker_count);
                continue;
            };
            state.apply(&Command::CreateTopic {
                topic_id: topic_id(seed as u128),
                name: format!("topic-{seed}"),
                kind: TopicKind::User,
                replication_factor: rf,
                config: BTreeMap::new(),
                assignments,
                now_ms: 0,
                owner: None,
            }).unwrap();
            let load = state.load();
            prop_assert!(spread(load.values().map(|l| l.replicas)) <= 1, "{:?}", load);
            prop_assert!(spread(load.values().map(|l| l.leaders)) <= 1, "{:?}", load);
        }
    }
}

#[test]
fn three_brokers_six_partitions_rf3_lead_twice_each() {
    let brokers: Vec<_> = (0..3)
        .map(|id| broker(id, None, BrokerState::Active))
        .collect();
    let placed = place_new_partitions(&brokers, &BTreeMap::new(), 6, 3).unwrap();
    let mut load = BTreeMap::new();
    add_load(&mut load, &placed);
    assert!(
        load.values().all(|l| *l
            == Load {
                replicas: 6,
                leaders: 2
            }),
        "{load:?}"
    );
}

#[test]
fn replicas_go_to_distinct_racks_when_there_are_enough() {
    let brokers = [
        broker(0, Some("a"), BrokerState::Active),
        broker(1, Some("a"), BrokerState::Active),
        broker(2, Some("b"), BrokerState::Active),
        broker(3, Some("b"), BrokerState::Active),
        broker(4, Some("c"), BrokerState::Active),
        broker(5, Some("c"), BrokerState::Active),
    ];
    let placed = place_new_partitions(&brokers, &BTreeMap::new(), 12, 3).unwrap();
    check_rules(&brokers, &placed, 12, 3);
}

#[test]
fn new_broker_takes_the_new_partitions_first() {
    let brokers: Vec<_> = (0..4)
        .map(|id| broker(id, None, BrokerState::Active))
        .collect();
    let mut load: BTreeMap<BrokerId, Load> = (0..3)
        .map(|id| {
            (
                BrokerId(id),
                Load {
                    replicas: 4,
                    leaders: 2,
                },
            )
        })
        .collect();
    let placed = place_new_partitions(&brokers, &load, 2, 1).unwrap();
    assert_eq!(placed, vec![vec![BrokerId(3)], vec![BrokerId(3)]]);
    load.insert(
        BrokerId(3),
        Load {
            replicas: 4,
            leaders: 2,
        },
    );
    let placed = place_new_partitions(&brokers, &load, 4, 1).unwrap();
    let ids: BTreeSet<BrokerId> = placed.into_iter().flatten().collect();
    assert_eq!(ids.len(), 4, "one each once the new broker has caught up");
}

#[test]
fn impossible_requests_are_refused() {
    let brokers = [
        broker(0, None, BrokerState::Active),
        broker(1, None, BrokerState::Draining),
    ];
    let none = BTreeMap::new();
    assert_eq!(
        place_new_partitions(&brokers, &none, 1, 2),
        Err(PlacementError::NotEnoughBrokers {
            needed: 2,
            available: 1
        })
    );
    assert_eq!(
        place_new_partitions(&brokers, &none, 1, 0),
        Err(PlacementError::ZeroReplicationFactor)
    );
    assert!(matches!(
        place_new_partitions(&brokers, &none, 10_001, 1),
        Err(PlacementError::TooManyPartitions { .. })
    ));
}
