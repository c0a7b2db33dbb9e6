//! The client side of Raft between brokers: one gRPC channel per peer broker, shared by every
//! group, and openraft's network traits on top of it.

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use openraft::OptionalSend;
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use strand_proto::raft as pb;
use strand_proto::raft::raft_client::RaftClient;
use strand_raft::{NodeId, Snapshot, SnapshotData, SnapshotSource, TypeConfig, Vote};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::tls::Reloading;
use crate::{append_stream, convert};

/// Bytes of a snapshot file sent in one message.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// HTTP/2 flow-control windows of broker-to-broker connections, per stream and per connection.
/// HTTP/2's default of 64 KiB would make an AppendEntries of a few record batches wait for
/// several window updates on its way, each a round trip through a busy peer; with these, an
/// append of up to 32 batches of 1 MiB goes out in one flight.
pub const STREAM_WINDOW_BYTES: u32 = 32 << 20;
/// See [`STREAM_WINDOW_BYTES`]: one connection carries every group's RPCs.
pub const CONNECTION_WINDOW_BYTES: u32 = 128 << 20;
/// How long connecting to a peer may take before the RPC counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Makes the channel of an endpoint over a transport other than the system's TCP (a simulated
/// network, in tests); the endpoint carries the address and the HTTP/2 settings.
pub type Dial = Arc<dyn Fn(Endpoint) -> Channel + Send + Sync>;

/// gRPC channels to peer brokers, one per address. A tonic channel multiplexes every group's
/// RPCs over one HTTP/2 connection.
#[derive(Clone, Default)]
pub struct Peers {
    /// Each channel with the generation of the TLS configuration it was made with.
    channels: Arc<Mutex<HashMap<String, (u64, Channel)>>>,
    /// Mutual TLS to the other brokers, when the cluster's gRPC port has it.
    tls: Option<Reloading<ClientTlsConfig>>,
    /// The local address connections leave from; `None`: the system chooses.
    source: Option<IpAddr>,
    /// How channels connect; `None`: over TCP.
    dial: Option<Dial>,
}

impl Peers {
    /// Channels that speak mutual TLS with `tls` (the broker's certificate and the cluster's
    /// CA). When the files change, channels made after that present the new certificate.
    pub fn with_tls(tls: Reloading<ClientTlsConfig>) -> Peers {
        Peers {
            channels: Default::default(),
            tls: Some(tls),
            source: None,
            dial: None,
        }
    }

    /// These channels, connected by `dial` instead of over TCP.
    pub fn dialing(self, dial: Dial) -> Peers {
        Peers {
            dial: Some(dial),
            ..self
        }
    }

    /// These channels, connecting from the local address `source` (`None`: the system
    /// chooses).
    pub fn leaving_from(self, source: Option<IpAddr>) -> Peers {
        Peers { source, ..self }
    }

    /// The channel to the broker at `addr` (host:port), created on first use and again after
    /// the broker's certificate changed; it connects lazily and reconnects by itself.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let generation = self.tls.as_ref().map_or(0, Reloading::generation);
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((made_with, channel)) = channels.get(addr)
            && *made_with == generation
        {
            return Ok(channel.clone());
        }
        // The configuration is cloned only to make a channel, not on every RPC.
        let tls = self.tls.as_ref().map(Reloading::current);
        let generation = tls.as_ref().map_or(0, |(_, generation)| *generation);
        let endpoint = match tls {
            None => Endpoint::from_shared(format!("http://{addr}"))?,
            Some((tls, _)) => Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls)?,
        };
        let endpoint = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .local_address(self.source)
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let channel = match &self.dial {
            Some(dial) => dial(endpoint),
            None => endpoint.connect_lazy(),
        };
        channels.insert(addr.to_string(), (generation, channel.clone()));
        Ok(channel)
    }
}

/// openraft's network factory for one group.
pub struct GroupNetwork {
    group: String,
    peers: Peers,
}

impl GroupNetwork {
    /// The network of the group named `group`.
    pub fn new(group: String, peers: Peers) -> Self {
        GroupNetwork { group, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(
        &mut self,
        target: NodeId,
        node: &openraft::impls::BasicNode,
    ) -> PeerClient {
        PeerClient {
            group: self.group.clone(),
            target,
            peers: self.peers.clone(),
            addr: node.addr.clone(),
        }
    }
}

/// Sends one group's Raft RPCs to one peer node.
pub struct PeerClient {
    group: String,
    target: NodeId,
    addr: String,
    /// The channel of each RPC comes from here, so a renewed certificate is used from the
    /// next RPC on.
    peers: Peers,
}

fn unreachable<E: std::fmt::Display>(addr: &str, e: E) -> Unreachable<TypeConfig> {
    Unreachable::from_string(format!("broker at {addr}: {e}"))
}

fn rpc_error(addr: &str, status: tonic::Status) -> RPCError<TypeConfig> {
    match status.code() {
        // The peer does not host the group (yet) or is another incarnation: back off.
        tonic::Code::Unavailable | tonic::Code::NotFound | tonic::Code::FailedPrecondition => {
            RPCError::Unreachable(unreachable(addr, status.message()))
        }
        _ => RPCError::Network(NetworkError::from_string(format!(
            "broker at {addr}: {}",
            status.message()
        ))),
    }
}

impl PeerClient {
    fn target(&self) -> pb::Target {
        pb::Target {
            group: self.group.clone(),
            node_id: self.target,
        }
    }

    fn channel(&self) -> Result<Channel, RPCError<TypeConfig>> {
        self.peers
            .channel(&self.addr)
            .map_err(|e| RPCError::Unreachable(unreachable(&self.addr, e)))
    }

    fn client(&self) -> Result<RaftClient<Channel>, RPCError<TypeConfig>> {
        self.channel().map(RaftClient::new)
    }

    async fn vote_rpc(
        &mut self,
        req: VoteRequest<TypeConfig>,
        option: RPCOption,
        pre_vote: bool,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let msg = convert::vote_request_to_pb(&req, self.target(), pre_vote);
        let mut request = tonic::Request::new(msg);
        request.set_timeout(option.hard_ttl());
        let resp = self
            .client()?
            .vote(request)
            .await
            .map_err(|s| rpc_error(&self.addr, s))?;
        convert::vote_response_from_pb(resp.into_inner())
            .map_err(|e| RPCError::Network(NetworkError::from_string(e.to_string())))
    }
}

/// The answers of one StreamAppend session, with how many appends went out on it.
struct Answers {
    responses: tonic::Streaming<pb::StreamAppendResponse>,
    sent: Arc<AtomicU64>,
    received: u64,
    addr: String,
    answer_within: Duration,
}

impl Answers {
    /// The next answer; `None` when the follower ended the session. While appends are
    /// unanswered, the oldest must be answered within `answer_within`; while none are, the
    /// session waits as long as it takes.
    async fn next(
        &mut self,
    ) -> Option<Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>> {
        loop {
            let sent_before = self.sent.load(Ordering::Relaxed);
            match tokio::time::timeout(self.answer_within, self.responses.message()).await {
                Ok(Ok(Some(resp))) => {
                    self.received += 1;
                    return Some(
                        convert::stream_append_result_from_pb(resp).map_err(|e| {
                            RPCError::Network(NetworkError::from_string(e.to_string()))
                        }),
                    );
                }
                Ok(Ok(None)) => return None,
                Ok(Err(status)) => return Some(Err(rpc_error(&self.addr, status))),
                // An append that was already out when this wait began is still unanswered.
                Err(_) if self.received < sent_before => {
                    return Some(Err(RPCError::Network(NetworkError::from_string(format!(
                        "broker at {}: no append answer within {} ms",
                        self.addr,
                        self.answer_within.as_millis()
                    )))));
                }
                Err(_) => {}
            }
        }
    }
}

/// The shortest time an AppendEntries call may take before it counts as failed.
const APPEND_TIMEOUT_MIN: std::time::Duration = std::time::Duration::from_secs(5);

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut request = tonic::Request::new(convert::append_to_pb(&rpc, self.target()));
        // openraft gives appends the heartbeat interval; a payload of large record batches
        // written and fsynced by a busy follower takes longer, and timing it out only makes
        // the leader send it again.
        request.set_timeout(option.hard_ttl().max(APPEND_TIMEOUT_MIN));
        let resp = self
            .client()?
            .append_entries(request)
            .await
            .map_err(|s| rpc_error(&self.addr, s))?;
        convert::append_response_from_pb(resp.into_inner())
            .map_err(|e| RPCError::Network(NetworkError::from_string(e.to_string())))
    }

    /// A replication session over one gRPC stream: appends go out as openraft produces them,
    /// without waiting for each answer, so the follower appends the next one while the last
    /// is being flushed and one fsync covers several. Answers come back in order. A session
    /// stays open while the group is idle (openraft sends new entries on it as they come).
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        let target = self.target();
        let addr = self.addr.clone();
        let channel = self.channel();
        let answer_within = option.hard_ttl().max(APPEND_TIMEOUT_MIN);
        Box::pin(async move {
            let mut input = input;
            // The first append is taken before the call: producing it is where openraft waits
            // out its backoff after failures, and a call to a dead peer fails without taking
            // any, which would retry at once, over and over.
            let Some(first) = input.next().await else {
                let none: BoxStream<'s, _> = Box::pin(futures_util::stream::empty());
                return Ok(none);
            };
            let sent = Arc::new(AtomicU64::new(0));
            let counted = sent.clone();
            let requests = futures_util::stream::iter([first])
                .chain(input)
                .map(move |req| {
                    counted.fetch_add(1, Ordering::Relaxed);
                    convert::append_to_pb(&req, target.clone())
                });
            // A failed call is the session's first answer, as a failed append is, so openraft
            // backs off before the next session.
            let responses = match channel {
                Ok(mut channel) => append_stream::call(&mut channel, requests)
                    .await
                    .map_err(|s| rpc_error(&addr, s)),
                Err(e) => Err(e),
            };
            let answers: BoxStream<'s, _> = match responses {
                Ok(responses) => Box::pin(futures_util::stream::unfold(
                    Some(Answers {
                        responses,
                        sent,
                        received: 0,
                        addr,
                        answer_within,
                    }),
                    |state| async move {
                        let mut state = state?;
                        let answer = state.next().await?;
                        let go_on = answer.is_ok();
                        Some((answer, go_on.then_some(state)))
                    },
                )),
                Err(e) => Box::pin(futures_util::stream::iter([Err(e)])),
            };
            Ok(answers)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_rpc(rpc, option, false).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_rpc(rpc, option, true).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = pb::SnapshotHeader {
            target: Some(self.target()),
            vote: Some(convert::vote_to_pb(&vote)),
            meta_json: serde_json::to_vec(&snapshot.meta)
                .map_err(|e| StreamingError::Network(NetworkError::from_string(e.to_string())))?
                .into(),
            next_offset: snapshot.snapshot.next_offset.0,
            machine_state: snapshot.snapshot.machine_state.into(),
        };
        let spans = match snapshot.snapshot.source {
            SnapshotSource::Local(spans) => spans,
            SnapshotSource::Staged(_) => Vec::new(),
        };
        // Read the files on a blocking thread and hand chunks over a bounded channel, so at most
        // a few chunks are in memory at once.
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::SnapshotChunk>(4);
        let header_chunk = pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::Header(header)),
        };
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if tx.blocking_send(header_chunk).is_err() {
                return Ok(());
            }
            for span in spans {
                let mut file = std::fs::File::open(&span.path)?.take(span.len);
                loop {
                    let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    buf.truncate(n);
                    let chunk = pb::SnapshotChunk {
                        part: Some(pb::snapshot_chunk::Part::File(pb::FileChunk {
                            name: span.name.clone(),
                            data: buf.into(),
                        })),
                    };
                    if tx.blocking_send(chunk).is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut client = self.client().map_err(|e| match e {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            other => StreamingError::Network(NetworkError::from_string(other.to_string())),
        })?;
        let addr = self.addr.clone();
        let send = async move { client.install_snapshot(stream).await };
        let resp = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            resp = send => resp,
        };
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(StreamingError::Network(NetworkError::from_string(format!(
                    "reading snapshot files: {e}"
                ))));
            }
            Err(e) => {
                return Err(StreamingError::Network(NetworkError::from_string(
                    e.to_string(),
                )));
            }
        }
        let resp = resp.map_err(|s| match rpc_error(&addr, s) {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            other => StreamingError::Network(NetworkError::from_string(other.to_string())),
        })?;
        let vote = convert::vote_from_pb(resp.into_inner().vote)
            .map_err(|e| StreamingError::Network(NetworkError::from_string(e.to_string())))?;
        Ok(SnapshotResponse::new(vote))
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let msg = pb::TransferLeaderRequest {
            target: Some(self.target()),
            from_leader: Some(convert::vote_to_pb(req.from_leader())),
            to_node_id: *req.to_node_id(),
            last_log_id: req.last_log_id().map(convert::log_id_to_pb),
        };
        let mut request = tonic::Request::new(msg);
        request.set_timeout(option.hard_ttl());
        self.client()?
            .transfer_leader(request)
            .await
            .map_err(|s| rpc_error(&self.addr, s))?;
        Ok(Ok(()))
    }
}
