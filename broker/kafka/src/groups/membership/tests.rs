//! Table tests of the membership core: each runs a list of requests and sweeps, each at a
//! time in ms from the start, and compares one line per step: its outcome and then the
//! group's state, generation, members and pending ids.

use std::time::{Duration, Instant};

use bytes::Bytes;
use strand_node::Limits;

use super::*;

/// One step, on group `g` unless it says otherwise.
#[derive(Clone)]
enum Step {
    /// JoinGroup of `id` ("": a new member). `v4`: a new member is handed an id first.
    JoinGroup {
        group: &'static str,
        id: &'static str,
        instance: Option<&'static str>,
        v4: bool,
    },
    /// A waiting JoinGroup looks again.
    Waited(&'static str),
    /// SyncGroup, with the leader's assignments (member, assignment), which are stored.
    Sync(&'static str, i32, &'static [(&'static str, &'static str)]),
    /// The leader's SyncGroup whose assignments cannot be stored.
    SyncNotStored(&'static str, i32, &'static [(&'static str, &'static str)]),
    /// JoinGroup of `id` speaking `protocols`, in its order of preference.
    JoinWith(&'static str, &'static [&'static str]),
    /// A waiting SyncGroup looks again.
    Synced(&'static str, i32),
    Heartbeat(&'static str, i32),
    Leave(&'static str),
    Commit(&'static str, i32),
    /// The sweep.
    Expire,
}

use Step::{Commit, Expire, Heartbeat, JoinWith, Leave, Sync, SyncNotStored, Synced, Waited};

fn join(id: &'static str) -> Step {
    Step::JoinGroup {
        group: "g",
        id,
        instance: None,
        v4: false,
    }
}

fn join_v4(id: &'static str) -> Step {
    Step::JoinGroup {
        group: "g",
        id,
        instance: None,
        v4: true,
    }
}

fn join_static(id: &'static str, instance: &'static str) -> Step {
    Step::JoinGroup {
        group: "g",
        id,
        instance: Some(instance),
        v4: true,
    }
}

fn join_group(group: &'static str, id: &'static str) -> Step {
    Step::JoinGroup {
        group,
        id,
        instance: None,
        v4: false,
    }
}

const SESSION_MS: i32 = 10_000;

const TIMING: crate::groups::consumer::Timing = crate::groups::consumer::Timing {
    heartbeat_interval: Duration::from_secs(5),
    session_timeout: Duration::from_secs(45),
};
const REBALANCE_MS: i32 = 60_000;

/// Runs `steps` under `limits` (each at its ms from the start) and compares the lines.
/// Members without an id get `m1`, `m2`, … in the order they ask.
fn check(limits: Limits, steps: &[(u64, Step)], expect: &[&str]) {
    let start = Instant::now();
    let ms = |at: Instant| at.duration_since(start).as_millis();
    let mut core = Membership::default();
    let mut fresh = 0;
    let mut got = Vec::new();
    for (at, step) in steps {
        let now = start + Duration::from_millis(*at);
        let mut group = "g";
        let join_req =
            |id: &str, instance: Option<&str>, v4: bool, protocols: &[&str], fresh| Join {
                member_id: id.to_string(),
                instance_id: instance.map(str::to_string),
                protocol_type: "consumer".into(),
                protocols: protocols
                    .iter()
                    .map(|p| (p.to_string(), Bytes::from_static(b"meta")))
                    .collect(),
                session_timeout_ms: SESSION_MS,
                rebalance_timeout_ms: REBALANCE_MS,
                client_id: "client".into(),
                client_host: "/127.0.0.1".into(),
                id_required: v4,
                fresh_id: format!("m{fresh}"),
            };
        let outcome = match step.clone() {
            Step::JoinGroup {
                group: g,
                id,
                instance,
                v4,
            } => {
                group = g;
                if id.is_empty() {
                    fresh += 1;
                }
                let req = join_req(id, instance, v4, &["range"], fresh);
                show_joining(core.join(g, req, &limits, now), ms)
            }
            JoinWith(id, protocols) => {
                if id.is_empty() {
                    fresh += 1;
                }
                let req = join_req(id, None, false, protocols, fresh);
                show_joining(core.join("g", req, &limits, now), ms)
            }
            Step::Waited(id) => match core.joined("g", id, now) {
                Ok(Some(joined)) => show_joined(id, &joined),
                Ok(None) => "waiting".into(),
                Err(e) => format!("{:?}", e.kafka()),
            },
            Sync(id, generation, given) => {
                let given = given
                    .iter()
                    .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                    .collect();
                match core.sync("g", id, generation, given, now) {
                    Ok(Syncing::Now(assigned)) => show_assigned(&assigned),
                    Ok(Syncing::Waiting { until }) => format!("waiting until {}", ms(until)),
                    Ok(Syncing::Store { .. }) => {
                        match core.stored("g", id, generation, true, &limits, now) {
                            Ok(assigned) => show_assigned(&assigned),
                            Err(e) => format!("{:?}", e.kafka()),
                        }
                    }
                    Err(e) => format!("{:?}", e.kafka()),
                }
            }
            SyncNotStored(id, generation, given) => {
                let given = given
                    .iter()
                    .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                    .collect();
                match core.sync("g", id, generation, given, now) {
                    Ok(Syncing::Store { .. }) => {
                        let stored = core.stored("g", id, generation, false, &limits, now);
                        format!(
                            "not stored: {:?}",
                            stored.map(|_| ()).map_err(|e| e.kafka())
                        )
                    }
                    _ => "no store asked".into(),
                }
            }
            Synced(id, generation) => match core.synced("g", id, generation) {
                Ok(Some(assigned)) => show_assigned(&assigned),
                Ok(None) => "waiting".into(),
                Err(e) => format!("{:?}", e.kafka()),
            },
            Heartbeat(id, generation) => show(core.heartbeat("g", id, generation, now)),
            Leave(id) => show(core.leave("g", id, None, &limits, now)),
            Commit(id, generation) => show(core.check_commit("g", id, generation)),
            Expire => {
                let expired: Vec<String> = core
                    .expire(&limits, &TIMING, now)
                    .into_iter()
                    .map(|(g, m)| format!("{g}/{m}"))
                    .collect();
                format!("expired [{}]", expired.join(" "))
            }
        };
        let state = match core.group(group) {
            Some(g) => format!(
                "{group} {} gen {} [{}] pending {}",
                g.state().name(),
                g.generation(),
                g.members().keys().cloned().collect::<Vec<_>>().join(" "),
                g.pending()
            ),
            None => format!("{group} not held"),
        };
        got.push(format!("{at}: {outcome} | {state}"));
    }
    let expect: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        got,
        expect,
        "\ngot:\n{}\nexpected:\n{}",
        got.join("\n"),
        expect.join("\n")
    );
}

fn show(outcome: Result<(), Refused>) -> String {
    match outcome {
        Ok(()) => "ok".into(),
        Err(e) => format!("{:?}", e.kafka()),
    }
}

fn show_joining(joining: Result<Joining, Refused>, ms: impl Fn(Instant) -> u128) -> String {
    match joining {
        Ok(Joining::IdRequired(id)) => format!("MEMBER_ID_REQUIRED {id}"),
        Ok(Joining::Now { member_id, joined }) => show_joined(&member_id, &joined),
        Ok(Joining::Waiting { member_id, until }) => {
            format!("waiting {member_id} until {}", ms(until))
        }
        Err(e) => format!("{:?}", e.kafka()),
    }
}

fn show_joined(member_id: &str, joined: &Joined) -> String {
    let members: Vec<String> = joined
        .members
        .iter()
        .map(|(id, instance, _)| match instance {
            Some(instance) => format!("{id}/{instance}"),
            None => id.clone(),
        })
        .collect();
    format!(
        "joined {member_id} gen {} leader {} [{}]{}",
        joined.generation,
        joined.leader,
        members.join(" "),
        match joined.protocol.as_deref() {
            Some("range") | None => String::new(),
            Some(other) => format!(" protocol {other}"),
        }
    )
}

fn show_assigned(assigned: &Assigned) -> String {
    format!("assigned {}", String::from_utf8_lossy(&assigned.assignment))
}

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn a_new_member_waits_out_the_initial_delay_and_leads_generation_one() {
    check(
        limits(),
        &[
            (0, join("")),
            (500, Waited("m1")),
            (1000, Waited("m1")),
            (1000, Heartbeat("m1", 1)),
            (1000, Sync("m1", 1, &[("m1", "p0")])),
            (1000, Heartbeat("m1", 1)),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "500: waiting | g PreparingRebalance gen 0 [m1] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1] | g CompletingRebalance gen 1 [m1] pending 0",
            // As in Kafka, a member may heartbeat between its join and its sync.
            "1000: ok | g CompletingRebalance gen 1 [m1] pending 0",
            "1000: assigned p0 | g Stable gen 1 [m1] pending 0",
            "1000: ok | g Stable gen 1 [m1] pending 0",
        ],
    );
}

#[test]
fn a_new_member_is_handed_an_id_to_join_with_which_expires_unused() {
    check(
        limits(),
        &[
            (0, join_v4("")),
            (0, join_v4("m1")),
            (0, join_v4("stranger")),
            (0, join_v4("")),
            (10_000, Expire),
            (10_000, join_v4("m2")),
        ],
        &[
            "0: MEMBER_ID_REQUIRED m1 | g Empty gen 0 [] pending 1",
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "0: UnknownMemberId | g PreparingRebalance gen 0 [m1] pending 0",
            "0: MEMBER_ID_REQUIRED m2 | g PreparingRebalance gen 0 [m1] pending 1",
            "10000: expired [] | g CompletingRebalance gen 1 [m1] pending 0",
            "10000: UnknownMemberId | g CompletingRebalance gen 1 [m1] pending 0",
        ],
    );
}

#[test]
fn the_last_member_to_rejoin_completes_the_rebalance_and_the_leader_assigns() {
    check(
        limits(),
        &[
            (0, join("")),
            (1000, Waited("m1")),
            (1000, Sync("m1", 1, &[("m1", "p0,p1")])),
            (2000, join("")),
            (2000, Heartbeat("m1", 1)),
            (2100, join("m1")),
            (2100, Waited("m2")),
            (2100, Sync("m2", 2, &[])),
            (2100, Sync("m1", 2, &[("m1", "p0"), ("m2", "p1")])),
            (2100, Synced("m2", 2)),
            (2100, Heartbeat("m2", 1)),
            (2100, Heartbeat("m2", 2)),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1] | g CompletingRebalance gen 1 [m1] pending 0",
            "1000: assigned p0,p1 | g Stable gen 1 [m1] pending 0",
            "2000: waiting m2 until 62000 | g PreparingRebalance gen 1 [m1 m2] pending 0",
            "2000: RebalanceInProgress | g PreparingRebalance gen 1 [m1 m2] pending 0",
            "2100: joined m1 gen 2 leader m1 [m1 m2] | g CompletingRebalance gen 2 [m1 m2] pending 0",
            "2100: joined m2 gen 2 leader m1 [] | g CompletingRebalance gen 2 [m1 m2] pending 0",
            "2100: waiting until 62100 | g CompletingRebalance gen 2 [m1 m2] pending 0",
            "2100: assigned p0 | g Stable gen 2 [m1 m2] pending 0",
            "2100: assigned p1 | g Stable gen 2 [m1 m2] pending 0",
            "2100: IllegalGeneration | g Stable gen 2 [m1 m2] pending 0",
            "2100: ok | g Stable gen 2 [m1 m2] pending 0",
        ],
    );
}

/// In a stable group a follower joining again with nothing new gets the current generation
/// back, while the leader joining again starts a rebalance (which is how new partitions of a
/// subscribed topic reach the assignment).
#[test]
fn the_leader_joining_a_stable_group_again_starts_a_rebalance() {
    check(
        limits(),
        &[
            (0, join("")),
            (1000, Waited("m1")),
            (1000, Sync("m1", 1, &[("m1", "p0,p1")])),
            (2000, join("")),
            (2100, join("m1")),
            (2100, Sync("m1", 2, &[("m1", "p0"), ("m2", "p1")])),
            (2100, Waited("m2")),
            (2100, Sync("m2", 2, &[])),
            (3000, join("m2")),
            (4000, join("m1")),
            (4000, Heartbeat("m2", 2)),
            (4100, join("m2")),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1] | g CompletingRebalance gen 1 [m1] pending 0",
            "1000: assigned p0,p1 | g Stable gen 1 [m1] pending 0",
            "2000: waiting m2 until 62000 | g PreparingRebalance gen 1 [m1 m2] pending 0",
            "2100: joined m1 gen 2 leader m1 [m1 m2] | g CompletingRebalance gen 2 [m1 m2] pending 0",
            "2100: assigned p0 | g Stable gen 2 [m1 m2] pending 0",
            "2100: joined m2 gen 2 leader m1 [] | g Stable gen 2 [m1 m2] pending 0",
            "2100: assigned p1 | g Stable gen 2 [m1 m2] pending 0",
            // The follower: its generation back, no rebalance.
            "3000: joined m2 gen 2 leader m1 [] | g Stable gen 2 [m1 m2] pending 0",
            // The leader: a rebalance, which the follower joins when told to.
            "4000: waiting m1 until 64000 | g PreparingRebalance gen 2 [m1 m2] pending 0",
            "4000: RebalanceInProgress | g PreparingRebalance gen 2 [m1 m2] pending 0",
            "4100: joined m2 gen 3 leader m1 [] | g CompletingRebalance gen 3 [m1 m2] pending 0",
        ],
    );
}

#[test]
fn a_leaving_member_and_a_lapsed_session_rebalance_the_rest() {
    check(
        limits(),
        &[
            (0, join("")),
            (0, join("")),
            (1000, Waited("m1")),
            (1000, Sync("m1", 1, &[("m1", "p0"), ("m2", "p1")])),
            (1000, Leave("m1")),
            (1000, Leave("m1")),
            (1000, join("m2")),
            (1000, Sync("m2", 2, &[("m2", "p0,p1")])),
            (11_000, Expire),
            (11_001, Expire),
            (12_001, Expire),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "0: waiting m2 until 60000 | g PreparingRebalance gen 0 [m1 m2] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1 m2] | g CompletingRebalance gen 1 [m1 m2] pending 0",
            "1000: assigned p0 | g Stable gen 1 [m1 m2] pending 0",
            "1000: ok | g PreparingRebalance gen 1 [m2] pending 0",
            "1000: UnknownMemberId | g PreparingRebalance gen 1 [m2] pending 0",
            "1000: joined m2 gen 2 leader m2 [m2] | g CompletingRebalance gen 2 [m2] pending 0",
            "1000: assigned p0,p1 | g Stable gen 2 [m2] pending 0",
            // The session lapses only once more than its timeout has passed.
            "11000: expired [] | g Stable gen 2 [m2] pending 0",
            "11001: expired [g/m2] | g PreparingRebalance gen 2 [] pending 0",
            // With no members left, the rebalance ends at its deadline, in an empty group.
            "12001: expired [] | g Empty gen 3 [] pending 0",
        ],
    );
}

#[test]
fn a_static_member_that_restarts_takes_its_place_and_fences_the_old_id() {
    check(
        limits(),
        &[
            (0, join_static("", "i1")),
            (1000, Waited("m1")),
            (1000, Sync("m1", 1, &[("m1", "p0")])),
            (5000, join_static("", "i1")),
            (5000, Heartbeat("m1", 1)),
            (5000, Heartbeat("m2", 1)),
            (5000, join_static("m2", "i2")),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1/i1] | g CompletingRebalance gen 1 [m1] pending 0",
            "1000: assigned p0 | g Stable gen 1 [m1] pending 0",
            // The current generation back, as it was handed out, with no rebalance.
            "5000: joined m2 gen 1 leader m1 [m1/i1] | g Stable gen 1 [m2] pending 0",
            "5000: UnknownMemberId | g Stable gen 1 [m2] pending 0",
            "5000: ok | g Stable gen 1 [m2] pending 0",
            "5000: FencedInstanceId | g Stable gen 1 [m2] pending 0",
        ],
    );
}

#[test]
fn offsets_are_committed_by_the_current_generation_or_from_outside_an_empty_group() {
    check(
        limits(),
        &[
            (0, Commit("", -1)),
            (0, join("")),
            (1000, Waited("m1")),
            (1000, Commit("m1", 1)),
            (1000, Sync("m1", 1, &[])),
            (1000, Commit("m1", 1)),
            (1000, Commit("m1", 0)),
            (1000, Commit("other", 1)),
            (1000, Commit("", -1)),
        ],
        &[
            "0: ok | g not held",
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1] | g CompletingRebalance gen 1 [m1] pending 0",
            "1000: RebalanceInProgress | g CompletingRebalance gen 1 [m1] pending 0",
            "1000: assigned  | g Stable gen 1 [m1] pending 0",
            "1000: ok | g Stable gen 1 [m1] pending 0",
            "1000: IllegalGeneration | g Stable gen 1 [m1] pending 0",
            "1000: UnknownMemberId | g Stable gen 1 [m1] pending 0",
            "1000: UnknownMemberId | g Stable gen 1 [m1] pending 0",
        ],
    );
}

#[test]
fn past_group_members_max_a_new_member_is_refused_and_the_members_go_on() {
    check(
        Limits {
            group_members_max: 2,
            ..limits()
        },
        &[
            (0, join("")),
            (0, join("")),
            (0, join("")),
            (0, join_v4("")),
            (0, join_static("", "i1")),
            (1000, Waited("m1")),
            (1000, join("m2")),
            (1000, Sync("m1", 1, &[("m1", "p0"), ("m2", "p1")])),
            (1000, Heartbeat("m2", 1)),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "0: waiting m2 until 60000 | g PreparingRebalance gen 0 [m1 m2] pending 0",
            "0: GroupMaxSizeReached | g PreparingRebalance gen 0 [m1 m2] pending 0",
            // No id is handed out to a member that could not join with it.
            "0: GroupMaxSizeReached | g PreparingRebalance gen 0 [m1 m2] pending 0",
            "0: GroupMaxSizeReached | g PreparingRebalance gen 0 [m1 m2] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1 m2] | g CompletingRebalance gen 1 [m1 m2] pending 0",
            "1000: joined m2 gen 1 leader m1 [] | g CompletingRebalance gen 1 [m1 m2] pending 0",
            "1000: assigned p0 | g Stable gen 1 [m1 m2] pending 0",
            "1000: ok | g Stable gen 1 [m1 m2] pending 0",
        ],
    );
}

#[test]
fn past_pending_members_max_no_more_member_ids_are_handed_out_until_some_are_used_or_expire() {
    check(
        Limits {
            pending_members_max: 2,
            ..limits()
        },
        &[
            (0, join_v4("")),
            (0, join_v4("")),
            (0, join_v4("")),
            (0, join_v4("m1")),
            (0, join_v4("")),
            (0, join_v4("")),
            (10_000, join_v4("")),
        ],
        &[
            "0: MEMBER_ID_REQUIRED m1 | g Empty gen 0 [] pending 1",
            "0: MEMBER_ID_REQUIRED m2 | g Empty gen 0 [] pending 2",
            "0: GroupMaxSizeReached | g Empty gen 0 [] pending 2",
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 1",
            "0: MEMBER_ID_REQUIRED m4 | g PreparingRebalance gen 0 [m1] pending 2",
            "0: GroupMaxSizeReached | g PreparingRebalance gen 0 [m1] pending 2",
            // The ids handed out at 0 expired with their session timeout.
            "10000: MEMBER_ID_REQUIRED m6 | g PreparingRebalance gen 0 [m1] pending 1",
        ],
    );
}

#[test]
fn past_groups_max_a_new_group_is_refused_until_a_group_is_idle() {
    check(
        Limits {
            groups_max: 1,
            ..limits()
        },
        &[
            (0, join_group("g", "")),
            (0, join_group("h", "")),
            (0, join_group("g", "")),
            (100, Leave("m1")),
            (100, Leave("m3")),
            (100, join_group("h", "")),
            (60_000, Expire),
            (60_000, join_group("h", "")),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "0: CoordinatorNotAvailable | h not held",
            "0: waiting m3 until 60000 | g PreparingRebalance gen 0 [m1 m3] pending 0",
            "100: ok | g PreparingRebalance gen 0 [m3] pending 0",
            "100: ok | g PreparingRebalance gen 0 [] pending 0",
            // A group with no members is still rebalancing until its deadline.
            "100: CoordinatorNotAvailable | h not held",
            "60000: expired [] | g Empty gen 1 [] pending 0",
            // An empty group holds nothing: it is forgotten to make room.
            "60000: waiting m5 until 120000 | h PreparingRebalance gen 0 [m5] pending 0",
        ],
    );
}

#[test]
fn a_rebalance_and_a_sync_wait_at_most_rebalance_wait_max() {
    check(
        Limits {
            rebalance_wait_max: Duration::from_millis(2000),
            ..limits()
        },
        &[
            (0, join("")),
            (0, join("")),
            (1000, Waited("m1")),
            (1000, Sync("m2", 1, &[])),
            (1000, join("")),
            (2999, Waited("m3")),
            (3000, Waited("m3")),
        ],
        &[
            "0: waiting m1 until 2000 | g PreparingRebalance gen 0 [m1] pending 0",
            "0: waiting m2 until 2000 | g PreparingRebalance gen 0 [m1 m2] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1 m2] | g CompletingRebalance gen 1 [m1 m2] pending 0",
            "1000: waiting until 3000 | g CompletingRebalance gen 1 [m1 m2] pending 0",
            "1000: waiting m3 until 3000 | g PreparingRebalance gen 1 [m1 m2 m3] pending 0",
            "2999: waiting | g PreparingRebalance gen 1 [m1 m2 m3] pending 0",
            // The members that did not join again by the deadline are dropped.
            "3000: joined m3 gen 2 leader m3 [m3] | g CompletingRebalance gen 2 [m3] pending 0",
        ],
    );
}

/// The protocol is voted: each member votes for its first choice among those every member
/// speaks, the most votes win, a tie goes to the leader's preference; a member speaking none
/// of the group's protocols is refused.
#[test]
fn the_protocol_is_voted_and_a_member_with_none_in_common_is_refused() {
    check(
        limits(),
        &[
            (0, JoinWith("", &["range", "roundrobin"])),
            (0, JoinWith("", &["roundrobin", "range"])),
            (0, JoinWith("", &["roundrobin", "range"])),
            (0, JoinWith("", &["cooperative-sticky"])),
            (1000, Waited("m1")),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "0: waiting m2 until 60000 | g PreparingRebalance gen 0 [m1 m2] pending 0",
            "0: waiting m3 until 60000 | g PreparingRebalance gen 0 [m1 m2 m3] pending 0",
            "0: InconsistentGroupProtocol | g PreparingRebalance gen 0 [m1 m2 m3] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1 m2 m3] protocol roundrobin | g CompletingRebalance gen 1 [m1 m2 m3] pending 0",
        ],
    );
}

/// The leader's assignments are handed out only once stored; if they cannot be, the group
/// rebalances again and nobody gets them.
#[test]
fn assignments_that_cannot_be_stored_start_another_rebalance() {
    check(
        limits(),
        &[
            (0, join("")),
            (0, join("")),
            (1000, Waited("m1")),
            (1000, Waited("m2")),
            (1000, Sync("m2", 1, &[])),
            (1000, SyncNotStored("m1", 1, &[("m1", "p0"), ("m2", "p1")])),
            (1000, Synced("m2", 1)),
            (1000, Heartbeat("m2", 1)),
        ],
        &[
            "0: waiting m1 until 60000 | g PreparingRebalance gen 0 [m1] pending 0",
            "0: waiting m2 until 60000 | g PreparingRebalance gen 0 [m1 m2] pending 0",
            "1000: joined m1 gen 1 leader m1 [m1 m2] | g CompletingRebalance gen 1 [m1 m2] pending 0",
            "1000: joined m2 gen 1 leader m1 [] | g CompletingRebalance gen 1 [m1 m2] pending 0",
            "1000: waiting until 61000 | g CompletingRebalance gen 1 [m1 m2] pending 0",
            "1000: not stored: Err(RebalanceInProgress) | g PreparingRebalance gen 1 [m1 m2] pending 0",
            "1000: RebalanceInProgress | g PreparingRebalance gen 1 [m1 m2] pending 0",
            "1000: RebalanceInProgress | g PreparingRebalance gen 1 [m1 m2] pending 0",
        ],
    );
}

/// A new coordinator takes a group over from its stored record: its members heartbeat and
/// commit in the same generation, and keep their assignments.
#[test]
fn a_group_taken_over_from_its_record_keeps_its_generation_and_assignments() {
    let limits = limits();
    let start = Instant::now();
    let mut old = Membership::default();
    for id in ["a", "b"] {
        let req = Join {
            member_id: String::new(),
            instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            id_required: false,
            fresh_id: id.into(),
        };
        old.join("g", req, &limits, start).unwrap();
    }
    let later = start + Duration::from_secs(1);
    old.joined("g", "a", later).unwrap();
    let given = vec![
        ("a".to_string(), Bytes::from_static(b"p0")),
        ("b".to_string(), Bytes::from_static(b"p1")),
    ];
    let Ok(Syncing::Store { record, .. }) = old.sync("g", "a", 1, given, later) else {
        panic!("the leader's sync asks for its assignments to be stored");
    };
    // Bytes of the record, as the new coordinator reads them from the partition.
    let bytes = crate::groups::records::group_value(&record);
    let record = crate::groups::records::decode_group(&bytes).unwrap();
    let mut new = Membership::default();
    let takeover = later + Duration::from_secs(5);
    let records = [("g".to_string(), record)];
    new.restore(|_| true, records.iter().map(|(g, r)| (g, r)), takeover);
    let group = new.group("g").unwrap();
    assert_eq!((group.state(), group.generation()), (State::Stable, 1));
    assert_eq!(new.heartbeat("g", "b", 1, takeover), Ok(()));
    assert_eq!(new.check_commit("g", "a", 1), Ok(()));
    assert_eq!(
        new.synced("g", "b", 1).unwrap().unwrap().assignment,
        Bytes::from_static(b"p1")
    );
    // Sessions start at the takeover: a member is not expired for the coordinator's gap.
    assert!(
        new.expire(&limits, &TIMING, takeover + Duration::from_secs(9))
            .is_empty()
    );
    // A stale member is fenced as Kafka fences it.
    assert_eq!(
        new.heartbeat("g", "b", 0, takeover),
        Err(Refused::IllegalGeneration)
    );
}
