//! The consumer protocol's core: members join, share, hand partitions over only once they
//! are given up, leave, are fenced and expire.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::*;

const T: Uuid = Uuid::from_u128(7);

fn topics(partitions: i32) -> Topics {
    Topics::from([("t".to_string(), TopicView { id: T, partitions })])
}

fn join(id: &str) -> Beat {
    Beat {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 60_000,
        subscribed: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

/// A heartbeat of `id` at `epoch` that owns `owned` of topic `t`.
fn beat(id: &str, epoch: i32, owned: &[i32]) -> Beat {
    Beat {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned_of(owned)),
        ..Default::default()
    }
}

fn owned_of(partitions: &[i32]) -> Assignment {
    if partitions.is_empty() {
        return Assignment::new();
    }
    Assignment::from([(T, partitions.iter().copied().collect::<BTreeSet<i32>>())])
}

fn partitions(beaten: &Beaten) -> Option<Vec<i32>> {
    beaten.assignment.as_ref().map(|a| {
        a.get(&T)
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    })
}

#[test]
fn partitions_move_to_a_new_member_only_once_the_old_owner_gave_them_up() {
    let now = Instant::now();
    let t = topics(4);
    let mut g = ConsumerGroup::default();
    let a = g.heartbeat(join("a"), &t, 10, now).unwrap();
    assert_eq!(
        (a.member_epoch, partitions(&a)),
        (1, Some(vec![0, 1, 2, 3]))
    );
    // b joins: the group moves to epoch 2, but a still owns everything, so b gets nothing yet.
    let b = g.heartbeat(join("b"), &t, 10, now).unwrap();
    assert_eq!((b.member_epoch, partitions(&b)), (2, Some(vec![])));
    assert_eq!(state_name(&g), "Reconciling");
    // a is told to keep two partitions (its epoch stays until it has revoked the others).
    let a = g
        .heartbeat(beat("a", 1, &[0, 1, 2, 3]), &t, 10, now)
        .unwrap();
    assert_eq!(a.member_epoch, 1);
    let kept = partitions(&a).unwrap();
    assert_eq!(kept.len(), 2);
    // Until a says it gave them up, b still gets nothing.
    let b = g.heartbeat(beat("b", 2, &[]), &t, 10, now).unwrap();
    assert_eq!(partitions(&b), None);
    let a = g.heartbeat(beat("a", 1, &kept), &t, 10, now).unwrap();
    assert_eq!((a.member_epoch, partitions(&a)), (2, None));
    let b = g.heartbeat(beat("b", 2, &[]), &t, 10, now).unwrap();
    let given = partitions(&b).unwrap();
    assert_eq!(given.len(), 2);
    assert!(given.iter().all(|p| !kept.contains(p)));
    g.heartbeat(beat("b", 2, &given), &t, 10, now).unwrap();
    assert_eq!(state_name(&g), "Stable");
    // b leaves: a gets everything in the next epoch.
    assert_eq!(
        g.heartbeat(beat("b", -1, &[]), &t, 10, now)
            .unwrap()
            .member_epoch,
        -1
    );
    let a = g.heartbeat(beat("a", 2, &kept), &t, 10, now).unwrap();
    assert_eq!(
        (a.member_epoch, partitions(&a)),
        (3, Some(vec![0, 1, 2, 3]))
    );
}

#[test]
fn a_member_ahead_of_its_epoch_or_behind_it_is_fenced_and_a_lost_response_is_not() {
    let now = Instant::now();
    let t = topics(2);
    let mut g = ConsumerGroup::default();
    g.heartbeat(join("a"), &t, 10, now).unwrap();
    assert_eq!(
        g.heartbeat(beat("a", 5, &[]), &t, 10, now),
        Err(Refused::FencedMemberEpoch)
    );
    assert_eq!(
        g.heartbeat(beat("nobody", 1, &[]), &t, 10, now),
        Err(Refused::UnknownMember)
    );
    // Partitions added: epoch 2. The response is lost; a heartbeat at epoch 1 owning what it
    // had is taken, and one owning what it was never given is fenced.
    let t3 = topics(3);
    g.heartbeat(beat("a", 1, &[0, 1]), &t3, 10, now).unwrap();
    assert_eq!(
        g.heartbeat(beat("a", 1, &[0, 1]), &t3, 10, now)
            .map(|b| b.member_epoch),
        Ok(2)
    );
    assert_eq!(
        g.heartbeat(beat("a", 1, &[5]), &t3, 10, now),
        Err(Refused::FencedMemberEpoch)
    );
    // Offset commits: at the member's epoch only.
    assert_eq!(g.check_commit("a", 2), Ok(()));
    assert_eq!(g.check_commit("a", 1), Err(Refused::StaleMemberEpoch));
    assert_eq!(g.check_commit("b", 2), Err(Refused::UnknownMember));
    assert_eq!(g.check_commit("", -1), Err(Refused::UnknownMember));
}

#[test]
fn a_silent_member_expires_and_one_that_does_not_revoke_in_time_is_removed() {
    let now = Instant::now();
    let t = topics(2);
    let timing = Timing {
        heartbeat_interval: Duration::from_secs(1),
        session_timeout: Duration::from_secs(10),
    };
    let mut g = ConsumerGroup::default();
    g.heartbeat(join("a"), &t, 10, now).unwrap();
    let mut slow = join("b");
    slow.rebalance_timeout_ms = 5_000;
    g.heartbeat(slow, &t, 10, now).unwrap();
    // a must give one up; it goes on heartbeating but keeps it past its rebalance timeout.
    let a = g.heartbeat(beat("a", 1, &[0, 1]), &t, 10, now).unwrap();
    assert_eq!(partitions(&a).map(|p| p.len()), Some(1));
    let later = now + Duration::from_secs(61);
    g.heartbeat(beat("b", 2, &[]), &t, 10, later).unwrap();
    g.heartbeat(beat("a", 1, &[0, 1]), &t, 10, later).unwrap();
    assert_eq!(g.expire(&timing, later), ["a"]);
    // b, alone, takes both; then goes silent and expires.
    let b = g.heartbeat(beat("b", 2, &[]), &t, 10, later).unwrap();
    assert_eq!(partitions(&b), Some(vec![0, 1]));
    assert!(
        g.expire(&timing, later + Duration::from_secs(10))
            .is_empty()
    );
    assert_eq!(g.expire(&timing, later + Duration::from_secs(11)), ["b"]);
    assert_eq!(state_name(&g), "Empty");
    assert_eq!(g.check_commit("", -1), Ok(()));
}

#[test]
fn bad_joins_are_refused_with_kafkas_errors() {
    let now = Instant::now();
    let t = topics(1);
    let mut g = ConsumerGroup::default();
    let mut nothing = join("a");
    nothing.subscribed = None;
    assert!(matches!(
        g.heartbeat(nothing, &t, 10, now),
        Err(Refused::InvalidRequest(_))
    ));
    let mut assignor = join("a");
    assignor.assignor = Some("sticky".into());
    assert_eq!(
        g.heartbeat(assignor, &t, 10, now),
        Err(Refused::UnsupportedAssignor)
    );
    let mut regex = join("a");
    regex.regex = Some("(".into());
    assert_eq!(g.heartbeat(regex, &t, 10, now), Err(Refused::InvalidRegex));
    g.heartbeat(join("a"), &t, 1, now).unwrap();
    assert_eq!(g.heartbeat(join("b"), &t, 1, now), Err(Refused::GroupFull));
    // A regular expression subscribes to the topics it matches.
    let mut by_regex = join("a");
    by_regex.subscribed = Some(Vec::new());
    by_regex.regex = Some("^t$".into());
    let a = g.heartbeat(by_regex, &t, 1, now).unwrap();
    assert_eq!(partitions(&a), Some(vec![0]));
}
