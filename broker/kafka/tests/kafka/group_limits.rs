//! The bounds on consumer groups (`strand_node::limits`): past each one only the JoinGroup or
//! SyncGroup that crossed it is refused or cut short, with Kafka's error, and the coordinator
//! goes on serving the groups and members it has.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use strand_node::Limits;
use strand_server::KafkaSettings;

use super::{Cluster, wire};

/// The session timeout of every member here: longer than any wait these tests expect, so no
/// session lapses in them.
const SESSION_MS: i32 = 30_000;
/// The rebalance timeout every member asks for: far longer than the tests run.
const REBALANCE_MS: i32 = 120_000;

/// A cluster whose brokers have `limits`, with a `__consumer_offsets` of one partition, so one
/// broker coordinates every group.
async fn cluster_with(dir: &std::path::Path, limits: Limits) -> Cluster {
    let cluster = Cluster::start_with(
        dir,
        KafkaSettings {
            limits,
            ..Default::default()
        },
    )
    .await;
    cluster
        .create_topic_with("__consumer_offsets", 1, &[("cleanup.policy", "compact")])
        .await;
    cluster
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The Kafka address of the broker coordinating `group`, once FindCoordinator names one.
async fn coordinator(cluster: &Cluster, group: &str) -> SocketAddr {
    let mut conn = wire::Conn::open(cluster.kafka[0]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: FindCoordinatorResponse = conn
            .call(
                ApiKey::FindCoordinator,
                3,
                &FindCoordinatorRequest::default().with_key(text(group)),
            )
            .await;
        if found.error_code == 0 {
            return cluster.kafka[usize::try_from(found.node_id.0).expect("a broker id")];
        }
        assert!(Instant::now() < deadline, "{group} has no coordinator");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// JoinGroup v5 of `member` ("": a new member asking for an id) to `group`.
async fn join(conn: &mut wire::Conn, group: &str, member: &str) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(text(group).into())
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(text(member))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(b"metadata")),
        ]);
    conn.call(ApiKey::JoinGroup, 5, &request).await
}

/// A new member of `group` on a connection of its own: asks for a member id, then joins with
/// it and waits for the rebalance; the connection and the join's answer.
async fn join_new(at: SocketAddr, group: &str) -> (wire::Conn, JoinGroupResponse) {
    let mut conn = wire::Conn::open(at).await;
    let asked = join(&mut conn, group, "").await;
    assert_eq!(
        asked.error_code,
        ResponseError::MemberIdRequired.code(),
        "{asked:?}"
    );
    let joined = join(&mut conn, group, &asked.member_id).await;
    (conn, joined)
}

/// SyncGroup v3 of `member` in `generation`, handing in `assignments` if it leads.
async fn sync(
    conn: &mut wire::Conn,
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(text(group).into())
        .with_generation_id(generation)
        .with_member_id(text(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(id, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(text(id))
                        .with_assignment(Bytes::from_static(assignment))
                })
                .collect(),
        );
    conn.call(ApiKey::SyncGroup, 3, &request).await
}

/// Heartbeat v3 of `member` in `generation`: its error code.
async fn heartbeat(conn: &mut wire::Conn, group: &str, generation: i32, member: &str) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(text(group).into())
        .with_generation_id(generation)
        .with_member_id(text(member));
    let answer: HeartbeatResponse = conn.call(ApiKey::Heartbeat, 3, &request).await;
    answer.error_code
}

/// The two members of a generation as (leader, follower), each with its connection.
fn by_role(
    a: (wire::Conn, JoinGroupResponse),
    b: (wire::Conn, JoinGroupResponse),
) -> (
    (wire::Conn, JoinGroupResponse),
    (wire::Conn, JoinGroupResponse),
) {
    assert_eq!(
        (a.1.error_code, b.1.error_code),
        (0, 0),
        "{:?} {:?}",
        a.1,
        b.1
    );
    assert_eq!(a.1.generation_id, b.1.generation_id);
    if a.1.leader == a.1.member_id {
        (a, b)
    } else {
        (b, a)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_group_members_max_a_new_member_is_refused_and_the_members_keep_their_group() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        group_members_max: 2,
        ..Default::default()
    };
    let cluster = cluster_with(dir.path(), limits).await;
    let at = coordinator(&cluster, "full").await;
    let (a, b) = tokio::join!(join_new(at, "full"), join_new(at, "full"));
    let ((mut leader_conn, leader), (mut follower_conn, follower)) = by_role(a, b);
    assert_eq!(leader.members.len(), 2, "{leader:?}");

    let mut third = wire::Conn::open(at).await;
    let refused = join(&mut third, "full", "").await;
    assert_eq!(
        refused.error_code,
        ResponseError::GroupMaxSizeReached.code(),
        "{refused:?}"
    );

    // The members go on: the leader assigns, both get their assignments and heartbeat.
    let generation = leader.generation_id;
    let (leader_id, follower_id) = (leader.member_id.to_string(), follower.member_id.to_string());
    let assignments: [(&str, &'static [u8]); 2] = [(&leader_id, b"p0"), (&follower_id, b"p1")];
    let (led, followed) = tokio::join!(
        sync(
            &mut leader_conn,
            "full",
            generation,
            &leader_id,
            &assignments
        ),
        sync(&mut follower_conn, "full", generation, &follower_id, &[]),
    );
    assert_eq!((led.error_code, &led.assignment[..]), (0, &b"p0"[..]));
    assert_eq!(
        (followed.error_code, &followed.assignment[..]),
        (0, &b"p1"[..])
    );
    assert_eq!(
        heartbeat(&mut leader_conn, "full", generation, &leader_id).await,
        0
    );
    assert_eq!(
        heartbeat(&mut follower_conn, "full", generation, &follower_id).await,
        0
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_pending_members_max_a_request_for_a_member_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        pending_members_max: 2,
        ..Default::default()
    };
    let cluster = cluster_with(dir.path(), limits).await;
    let at = coordinator(&cluster, "asking").await;
    let mut conn = wire::Conn::open(at).await;
    let first = join(&mut conn, "asking", "").await;
    let second = join(&mut conn, "asking", "").await;
    let third = join(&mut conn, "asking", "").await;
    assert_eq!(
        [first.error_code, second.error_code, third.error_code],
        [
            ResponseError::MemberIdRequired.code(),
            ResponseError::MemberIdRequired.code(),
            ResponseError::GroupMaxSizeReached.code(),
        ],
        "{third:?}"
    );

    // An id handed out still joins, and another group still hands out ids.
    let joined = join(&mut conn, "asking", &first.member_id).await;
    assert_eq!(
        (joined.error_code, joined.generation_id),
        (0, 1),
        "{joined:?}"
    );
    let other = join(&mut conn, "another", "").await;
    assert_eq!(other.error_code, ResponseError::MemberIdRequired.code());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_groups_max_a_new_group_is_refused_until_a_group_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        groups_max: 1,
        ..Default::default()
    };
    let cluster = cluster_with(dir.path(), limits).await;
    let at = coordinator(&cluster, "first").await;
    let (mut conn, first) = join_new(at, "first").await;
    assert_eq!(first.error_code, 0, "{first:?}");
    let member = first.member_id.to_string();
    let generation = first.generation_id;
    let synced = sync(&mut conn, "first", generation, &member, &[(&member, b"p0")]).await;
    assert_eq!(synced.error_code, 0);

    let mut other = wire::Conn::open(at).await;
    let refused = join(&mut other, "second", "").await;
    assert_eq!(
        refused.error_code,
        ResponseError::CoordinatorNotAvailable.code(),
        "{refused:?}"
    );
    assert_eq!(heartbeat(&mut conn, "first", generation, &member).await, 0);

    // Once the first group is empty it holds nothing, and the second group takes its place.
    let left: LeaveGroupResponse = conn
        .call(
            ApiKey::LeaveGroup,
            3,
            &LeaveGroupRequest::default()
                .with_group_id(text("first").into())
                .with_members(vec![
                    MemberIdentity::default().with_member_id(text(&member)),
                ]),
        )
        .await;
    assert_eq!(left.members[0].error_code, 0, "{left:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = join(&mut other, "second", "").await;
        if answer.error_code == ResponseError::MemberIdRequired.code() {
            break;
        }
        assert_eq!(
            answer.error_code,
            ResponseError::CoordinatorNotAvailable.code()
        );
        assert!(
            Instant::now() < deadline,
            "the second group was never taken"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_and_a_sync_wait_at_most_rebalance_wait_max() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        rebalance_wait_max: Duration::from_secs(2),
        ..Default::default()
    };
    // Well under the members' rebalance timeout (120 s) and session timeout (30 s), so an
    // answer within it comes from the bound, not from a timeout or a lapsed session.
    let within = Duration::from_secs(15);
    let cluster = cluster_with(dir.path(), limits).await;
    let at = coordinator(&cluster, "slow").await;
    let (a, b) = tokio::join!(join_new(at, "slow"), join_new(at, "slow"));
    let ((mut leader_conn, leader), (mut follower_conn, follower)) = by_role(a, b);
    let generation = leader.generation_id;
    let (leader_id, follower_id) = (leader.member_id.to_string(), follower.member_id.to_string());

    // The leader does not hand in assignments: the follower's sync is cut short.
    let started = Instant::now();
    let cut = sync(&mut follower_conn, "slow", generation, &follower_id, &[]).await;
    assert_eq!(cut.error_code, ResponseError::RebalanceInProgress.code());
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
    let led = sync(&mut leader_conn, "slow", generation, &leader_id, &[]).await;
    assert_eq!(led.error_code, 0);

    // A new member starts a rebalance the others never join: it ends at the bound, without
    // them.
    let started = Instant::now();
    let (mut conn, joined) = join_new(at, "slow").await;
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.generation_id, generation + 1);
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.members.len(), 1, "{joined:?}");
    assert_eq!(
        heartbeat(&mut leader_conn, "slow", generation, &leader_id).await,
        ResponseError::UnknownMemberId.code()
    );

    // The new generation is served as any other.
    let member = joined.member_id.to_string();
    let synced = sync(
        &mut conn,
        "slow",
        joined.generation_id,
        &member,
        &[(&member, b"p0")],
    )
    .await;
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"p0"[..]));
    assert_eq!(
        heartbeat(&mut conn, "slow", joined.generation_id, &member).await,
        0
    );
    cluster.shutdown().await;
}
