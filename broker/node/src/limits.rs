//! Every bound a broker puts on what clients send it, in one table: its default, its unit and
//! why. A bound that is reached refuses or closes only what exceeded it (one request, one
//! connection, one group, one producer) and the broker goes on serving everyone else.
//!
//! | bound | default | Kafka's name | what happens past it |
//! |---|---|---|---|
//! | `request_bytes_max` | 100 MiB | `socket.request.max.bytes` | the connection is closed (Kafka does the same) |
//! | `connections_max` | 10,000 | `max.connections` | a new connection is closed at once |
//! | `in_flight_requests_max` | 64 per connection | (`queued.max.requests`, per broker) | the connection's next request is not read until a response is sent |
//! | `in_flight_bytes_max` | 256 MiB per connection | (`queued.max.request.bytes`) | likewise, by the bytes of requests being handled |
//! | `idle_timeout` | 10 min | `connections.max.idle.ms` | an idle connection is closed |
//! | `groups_max` | 10,000 per coordinator | (none) | groups with no members and no pending ids are dropped; if still full, JoinGroup of a new group: COORDINATOR_NOT_AVAILABLE |
//! | `group_members_max` | 1,000 | `group.max.size` | JoinGroup of a new member: GROUP_MAX_SIZE_REACHED |
//! | `pending_members_max` | 1,000 per group | (none) | JoinGroup asking for a member id: GROUP_MAX_SIZE_REACHED |
//! | `rebalance_wait_max` | 5 min | (none: Kafka waits the client's rebalance timeout) | a JoinGroup or SyncGroup waits at most this long for the rebalance |
//! | `producer_expiry` | 1 day | `producer.id.expiration.ms` | an idempotent producer silent this long is forgotten |
//! | `producers_max` | 10,000 per partition | (none) | the producer silent longest is forgotten |

use std::time::Duration;

/// The bounds, each with the default above. Tests lower them to reach them cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest request a client may send, in bytes: one frame is read whole before it is
    /// decoded, so this bounds a connection's memory for one request.
    pub request_bytes_max: usize,
    /// Kafka connections open at once on one broker: each holds buffers and a task.
    pub connections_max: usize,
    /// Requests of one connection being handled at once (pipelining): each holds its decoded
    /// request and its response to come.
    pub in_flight_requests_max: usize,
    /// Bytes of the requests of one connection being handled at once, so a client pipelining
    /// large produces cannot hold `in_flight_requests_max` × `request_bytes_max` of memory.
    pub in_flight_bytes_max: usize,
    /// How long a connection may send nothing and wait for nothing before it is closed.
    pub idle_timeout: Duration,
    /// Consumer groups one coordinator keeps in memory.
    pub groups_max: usize,
    /// Members of one consumer group.
    pub group_members_max: usize,
    /// Member ids handed out by one group and not yet used to join (Kafka's
    /// MEMBER_ID_REQUIRED round trip): a client asking for ids and never joining would grow
    /// this without end.
    pub pending_members_max: usize,
    /// The longest a JoinGroup or SyncGroup waits for a rebalance, whatever rebalance
    /// timeout the client asks for.
    pub rebalance_wait_max: Duration,
    /// How long an idempotent producer may write nothing to a partition before the partition
    /// forgets it (its next batch starts a new sequence), measured in batch timestamps so
    /// every replica forgets it at the same batch.
    pub producer_expiry: Duration,
    /// Idempotent producers one partition remembers.
    pub producers_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_bytes_max: 100 * 1024 * 1024,
            connections_max: 10_000,
            in_flight_requests_max: 64,
            in_flight_bytes_max: 256 * 1024 * 1024,
            idle_timeout: Duration::from_secs(600),
            groups_max: 10_000,
            group_members_max: 1_000,
            pending_members_max: 1_000,
            rebalance_wait_max: Duration::from_secs(300),
            producer_expiry: Duration::from_secs(24 * 3600),
            producers_max: 10_000,
        }
    }
}
