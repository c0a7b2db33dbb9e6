//! Offsets retention, as Kafka's `offsets.retention.minutes`: the offsets of a group that has
//! been empty for the retention expire (counted from when it emptied, or from the commit
//! when that is not known), and so do a live `consumer` group's offsets of topics none of
//! its members subscribes to any more (counted from the commit). A group left with no
//! offsets and no members is forgotten, its record removed.

use std::collections::BTreeSet;
use std::time::Duration;

use strand_node::now_ms;

use super::offsets::{GroupOffsets, OffsetRecord, group_tombstone, tombstone};
use super::records::GroupRecord;
use super::{OFFSETS_TOPIC, coordinator};
use crate::context::Context;

/// Expires what is due in every `__consumer_offsets` partition led and loaded here.
pub(super) async fn expire_offsets(ctx: &Context, retention: Duration) {
    let now = now_ms();
    let retention_ms = retention.as_millis().min(i64::MAX as u128) as i64;
    let groups = &ctx.shared.groups;
    // What expires, per partition, decided under the store's lock and written after it.
    let plans: Vec<(u32, i32, Vec<OffsetRecord>, Vec<String>)> =
        groups.offsets().each(|partition, term, cache| {
            let mut records = Vec::new();
            let mut forgotten = Vec::new();
            for (group, offsets) in cache.offsets() {
                let live = groups.read(|core| core.live_topics(group));
                let due = due(
                    offsets,
                    live.as_ref(),
                    cache.record(group),
                    now,
                    retention_ms,
                );
                if due.is_empty() {
                    continue;
                }
                for (topic, p) in &due {
                    records.push(tombstone(group, topic, *p));
                }
                if live.is_none() && due.len() == offsets.len() {
                    if cache.record(group).is_some() {
                        records.push(group_tombstone(group));
                    }
                    forgotten.push(group.clone());
                }
                tracing::info!(
                    %group,
                    partitions = due.len(),
                    "committed offsets expired (offsets.retention.minutes)"
                );
            }
            (partition, term, records, forgotten)
        });
    for (partition, term, records, forgotten) in plans {
        if records.is_empty() {
            continue;
        }
        // Only the term that decided writes: a later one decides again from its own load.
        if ctx
            .leader_replica(OFFSETS_TOPIC, partition as i32)
            .map(|(_, t)| t)
            != Ok(term)
        {
            continue;
        }
        let written = groups
            .offsets()
            .write(&ctx.handles().replicas, term, partition, records)
            .await;
        if let Err(e) = written {
            tracing::warn!(
                partition,
                ?e,
                "expired offsets not removed; the next check retries"
            );
            continue;
        }
        for group in forgotten {
            if coordinator(ctx, &group).is_ok() {
                groups.update(&group, |core| core.forget(&group));
            }
        }
    }
}

/// The offsets of a group that are due to expire. `live`: the group has members, and these
/// are the topics they subscribe to (`None` inside: not a `consumer` group, or a
/// subscription that does not decode, and nothing of a live group expires).
fn due(
    offsets: &GroupOffsets,
    live: Option<&Option<BTreeSet<String>>>,
    record: Option<&GroupRecord>,
    now: i64,
    retention_ms: i64,
) -> Vec<(String, i32)> {
    let emptied = record
        .filter(|r| r.members.is_empty() && r.state_ms >= 0)
        .map(|r| r.state_ms);
    offsets
        .iter()
        .filter(|((topic, _), committed)| match live {
            Some(Some(subscribed)) => {
                !subscribed.contains(topic) && now - committed.commit_ms >= retention_ms
            }
            Some(None) => false,
            None => now - emptied.unwrap_or(committed.commit_ms) >= retention_ms,
        })
        .map(|(key, _)| key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::records::Committed;

    fn offsets(commits: &[(&str, i64)]) -> GroupOffsets {
        commits
            .iter()
            .map(|(topic, commit_ms)| {
                (
                    (topic.to_string(), 0),
                    Committed {
                        offset: 1,
                        leader_epoch: 0,
                        metadata: String::new(),
                        commit_ms: *commit_ms,
                    },
                )
            })
            .collect()
    }

    fn emptied_at(state_ms: i64) -> GroupRecord {
        GroupRecord {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: None,
            leader: None,
            state_ms,
            members: Vec::new(),
        }
    }

    fn topics(due: Vec<(String, i32)>) -> Vec<String> {
        due.into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn an_empty_groups_offsets_expire_a_retention_after_it_emptied() {
        let o = offsets(&[("a", 0), ("b", 50)]);
        // Emptied at 100: nothing is due before 100 + retention, whatever the commit times.
        assert!(due(&o, None, Some(&emptied_at(100)), 1_099, 1_000).is_empty());
        assert_eq!(
            topics(due(&o, None, Some(&emptied_at(100)), 1_100, 1_000)),
            ["a", "b"]
        );
        // Without a record, each offset counts from its commit.
        assert_eq!(topics(due(&o, None, None, 1_020, 1_000)), ["a"]);
    }

    #[test]
    fn a_live_groups_offsets_expire_only_for_topics_it_no_longer_subscribes_to() {
        let o = offsets(&[("a", 0), ("b", 0)]);
        let subscribed = Some(BTreeSet::from(["a".to_string()]));
        assert_eq!(
            topics(due(&o, Some(&subscribed), None, 5_000, 1_000)),
            ["b"]
        );
        assert!(due(&o, Some(&subscribed), None, 999, 1_000).is_empty());
        // A group whose subscriptions are unknown keeps everything while it has members.
        assert!(due(&o, Some(&None), None, 5_000, 1_000).is_empty());
    }
}
