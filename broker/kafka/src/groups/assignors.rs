//! The coordinator's assignors of the consumer group protocol (KIP-848): `uniform`, Kafka's
//! default, which spreads partitions evenly and keeps each where it was when it can, and
//! `range`, which gives each member a contiguous range of each topic it subscribes to, so
//! members of topics with the same partition count get the same partition numbers.

use std::collections::{BTreeMap, BTreeSet};

use super::consumer::{Assignment, TopicView};

/// Whether the coordinator has an assignor of this name.
pub(crate) fn known(name: &str) -> bool {
    matches!(name, "uniform" | "range")
}

/// The target assignment of every member (by id, with the topics it subscribes to) of the
/// partitions of `topics`; `previous` is the target before.
pub(crate) fn assign(
    assignor: &str,
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, TopicView>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    if assignor == "range" {
        for (name, view) in topics {
            let subscribers: Vec<&String> = members
                .iter()
                .filter(|(_, ts)| ts.contains(name))
                .map(|(id, _)| id)
                .collect();
            if subscribers.is_empty() {
                continue;
            }
            let (n, m) = (view.partitions.max(0) as usize, subscribers.len());
            let mut next = 0;
            for (i, id) in subscribers.into_iter().enumerate() {
                let count = n / m + usize::from(i < n % m);
                let partitions = (next..next + count).map(|p| p as i32);
                out.entry(id.clone())
                    .or_default()
                    .entry(view.id)
                    .or_default()
                    .extend(partitions);
                next += count;
            }
        }
        for a in out.values_mut() {
            a.retain(|_, ps| !ps.is_empty());
        }
        return out;
    }
    uniform(members, topics, previous, out)
}

fn uniform(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, TopicView>,
    previous: &BTreeMap<String, Assignment>,
    mut out: BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let name_of: BTreeMap<_, _> = topics.iter().map(|(n, v)| (v.id, n.clone())).collect();
    let eligible = |member: &str, topic: &uuid::Uuid| {
        name_of
            .get(topic)
            .is_some_and(|n| members.get(member).is_some_and(|ts| ts.contains(n)))
    };
    let mut count: BTreeMap<String, usize> = members.keys().map(|id| (id.clone(), 0)).collect();
    let mut owner: BTreeMap<(uuid::Uuid, i32), String> = BTreeMap::new();
    // Where each partition was, if its member is still here and still subscribes.
    for (id, assignment) in previous {
        for (topic, partitions) in assignment {
            let Some(view) = name_of.get(topic).and_then(|n| topics.get(n)) else {
                continue;
            };
            for p in partitions.iter().filter(|p| **p < view.partitions) {
                if eligible(id, topic) {
                    owner.insert((*topic, *p), id.clone());
                    *count.entry(id.clone()).or_default() += 1;
                }
            }
        }
    }
    // The rest, each to the subscriber with the fewest.
    for view in topics.values() {
        for p in 0..view.partitions {
            if owner.contains_key(&(view.id, p)) {
                continue;
            }
            let least = count
                .iter()
                .filter(|(id, _)| eligible(id, &view.id))
                .min_by_key(|(_, n)| **n)
                .map(|(id, _)| id.clone());
            if let Some(id) = least {
                *count.entry(id.clone()).or_default() += 1;
                owner.insert((view.id, p), id);
            }
        }
    }
    // Even out: a partition moves from a member to one with at least two fewer that may take
    // it, until none can.
    let bound = owner.len() * members.len().max(1);
    for _ in 0..bound {
        let moved = owner.iter().rev().find_map(|((topic, p), from)| {
            let to = count
                .iter()
                .filter(|(id, n)| **n + 2 <= count[from] && eligible(id, topic))
                .min_by_key(|(_, n)| **n)
                .map(|(id, _)| id.clone())?;
            Some(((*topic, *p), from.clone(), to))
        });
        let Some((partition, from, to)) = moved else {
            break;
        };
        *count.entry(from).or_default() -= 1;
        *count.entry(to.clone()).or_default() += 1;
        owner.insert(partition, to);
    }
    for ((topic, p), id) in owner {
        out.entry(id)
            .or_default()
            .entry(topic)
            .or_default()
            .insert(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn topics(specs: &[(&str, u128, i32)]) -> BTreeMap<String, TopicView> {
        specs
            .iter()
            .map(|(n, id, p)| {
                (
                    n.to_string(),
                    TopicView {
                        id: Uuid::from_u128(*id),
                        partitions: *p,
                    },
                )
            })
            .collect()
    }

    fn members(specs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        specs
            .iter()
            .map(|(id, ts)| (id.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(out: &BTreeMap<String, Assignment>) -> Vec<usize> {
        out.values()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .collect()
    }

    #[test]
    fn range_gives_each_member_a_contiguous_range_of_each_topic() {
        let t = topics(&[("a", 1, 5), ("b", 2, 5)]);
        let m = members(&[("m1", &["a", "b"]), ("m2", &["a", "b"])]);
        let out = assign("range", &m, &t, &BTreeMap::new());
        let a = Uuid::from_u128(1);
        assert_eq!(out["m1"][&a], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["m2"][&a], BTreeSet::from([3, 4]));
        assert_eq!(out["m1"][&Uuid::from_u128(2)], BTreeSet::from([0, 1, 2]));
    }

    #[test]
    fn uniform_spreads_evenly_and_keeps_partitions_where_they_were() {
        let t = topics(&[("a", 1, 6)]);
        let two = members(&[("m1", &["a"]), ("m2", &["a"])]);
        let first = assign("uniform", &two, &t, &BTreeMap::new());
        assert_eq!(counts(&first), [3, 3]);
        // A third member takes one from each, and the others keep the rest.
        let three = members(&[("m1", &["a"]), ("m2", &["a"]), ("m3", &["a"])]);
        let second = assign("uniform", &three, &t, &first);
        assert_eq!(counts(&second), [2, 2, 2]);
        let a = Uuid::from_u128(1);
        for id in ["m1", "m2"] {
            assert!(
                second[id][&a].is_subset(&first[id][&a]),
                "{id} moved: {second:?}"
            );
        }
        // A member that leaves hands its partitions to the others.
        let back = assign("uniform", &two, &t, &second);
        assert_eq!(counts(&back), [3, 3]);
    }

    #[test]
    fn uniform_gives_a_topic_only_to_its_subscribers() {
        let t = topics(&[("a", 1, 4), ("b", 2, 2)]);
        let m = members(&[("m1", &["a", "b"]), ("m2", &["a"])]);
        let out = assign("uniform", &m, &t, &BTreeMap::new());
        assert_eq!(counts(&out), [3, 3]);
        assert!(!out["m2"].contains_key(&Uuid::from_u128(2)));
    }
}
