//! The server side of Raft between brokers: one gRPC service carrying every group's RPCs,
//! routed by the group id each request names.

use std::io::Write;
use std::path::{Path, PathBuf};

use openraft::raft::TransferLeaderRequest;
use strand_proto::raft as pb;
use strand_proto::raft::raft_server::Raft as RaftRpc;
use strand_raft::{
    GroupStateMachine, Machine, Offset, Snapshot, SnapshotData, SnapshotMeta, SnapshotSource,
    TypeConfig,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use std::sync::Arc;

use crate::shared::Inner;
use strand_node::convert;
use strand_node::registry::{Group, Registry};

/// The Raft gRPC service of one broker.
pub struct RaftService {
    inner: Arc<Inner>,
    registry: Registry,
    node_id: u64,
}

impl RaftService {
    /// A service routing to the broker's groups, answering only for its current incarnation.
    pub fn new(inner: Arc<Inner>) -> Self {
        RaftService {
            registry: inner.registry.clone(),
            node_id: inner.cluster.identity().node_id,
            inner,
        }
    }

    fn group(&self, target: Option<&pb::Target>) -> Result<Group, Status> {
        let target =
            target.ok_or_else(|| Status::invalid_argument("request names no target group"))?;
        if target.node_id != self.node_id {
            // A request for an earlier incarnation of this broker: this one never promised its
            // votes or held its entries.
            return Err(Status::failed_precondition(format!(
                "this broker is node {}, not node {}",
                self.node_id, target.node_id
            )));
        }
        self.registry
            .get(&target.group)
            .ok_or_else(|| Status::not_found(format!("group {} is not hosted here", target.group)))
    }
}

fn bad_message(e: convert::DecodeError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn fatal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(e.to_string())
}

type Raft<M> = openraft::Raft<TypeConfig, GroupStateMachine<M>>;

async fn append<M: Machine>(
    raft: &Raft<M>,
    req: pb::AppendEntriesRequest,
) -> Result<pb::AppendEntriesResponse, Status> {
    let req = convert::append_from_pb(req).map_err(bad_message)?;
    let resp = raft.append_entries(req).await.map_err(fatal)?;
    Ok(convert::append_response_to_pb(&resp))
}

async fn vote<M: Machine>(
    raft: &Raft<M>,
    req: pb::VoteRequest,
) -> Result<pb::VoteResponse, Status> {
    let pre_vote = req.pre_vote;
    let req = convert::vote_request_from_pb(req).map_err(bad_message)?;
    let resp = if pre_vote {
        raft.pre_vote(req).await.map_err(fatal)?
    } else {
        raft.vote(req).await.map_err(fatal)?
    };
    Ok(convert::vote_response_to_pb(&resp))
}

async fn install<M: Machine>(
    raft: &Raft<M>,
    header: pb::SnapshotHeader,
    staged: PathBuf,
) -> Result<pb::SnapshotResponse, Status> {
    let vote = convert::vote_from_pb(header.vote).map_err(bad_message)?;
    let meta: SnapshotMeta = serde_json::from_slice(&header.meta_json)
        .map_err(|e| Status::invalid_argument(format!("snapshot metadata is not readable: {e}")))?;
    check_snapshot(raft, &vote, &meta).await?;
    let snapshot = Snapshot {
        meta,
        snapshot: SnapshotData {
            next_offset: Offset(header.next_offset),
            machine_state: header.machine_state.to_vec(),
            source: SnapshotSource::Staged(staged),
        },
    };
    let resp = raft
        .install_full_snapshot(vote, snapshot)
        .await
        .map_err(fatal)?;
    Ok(pb::SnapshotResponse {
        vote: Some(convert::vote_to_pb(&resp.vote)),
    })
}

/// Refuses a snapshot no replica following the protocol could send, which openraft would
/// otherwise take as proof that this replica's own state is corrupt (and stop the group):
/// entries past the sender's own term, a membership from after the snapshot's last entry, or
/// a last entry that contradicts what this replica has already committed.
async fn check_snapshot<M: Machine>(
    raft: &Raft<M>,
    vote: &openraft::type_config::alias::VoteOf<TypeConfig>,
    meta: &SnapshotMeta,
) -> Result<(), Status> {
    let Some(last) = &meta.last_log_id else {
        return Ok(());
    };
    if last.leader_id.term > vote.leader_id.term {
        return Err(Status::invalid_argument(format!(
            "snapshot ends at {last}, in a term after the sender's term {}",
            vote.leader_id.term
        )));
    }
    if let Some(membership) = meta.last_membership.log_id()
        && membership > last
    {
        return Err(Status::invalid_argument(format!(
            "snapshot ends at {last} but holds a membership from {membership}"
        )));
    }
    let committed = raft
        .with_raft_state(|state| state.local_committed().cloned())
        .await
        .map_err(fatal)?;
    if let Some(committed) = committed
        && *last > committed
        && last.index <= committed.index
    {
        return Err(Status::invalid_argument(format!(
            "snapshot ends at {last}, which contradicts entry {committed} committed here"
        )));
    }
    Ok(())
}

async fn transfer<M: Machine>(
    raft: &Raft<M>,
    req: pb::TransferLeaderRequest,
) -> Result<pb::Empty, Status> {
    let from = convert::vote_from_pb(req.from_leader).map_err(bad_message)?;
    let req = TransferLeaderRequest::new(
        from,
        req.to_node_id,
        req.last_log_id.map(convert::log_id_from_pb),
    );
    match raft.handle_transfer_leader(req).await.map_err(fatal)? {
        Ok(()) => Ok(pb::Empty {}),
        Err(rejected) => Err(Status::failed_precondition(rejected.to_string())),
    }
}

/// Writes the files of an incoming snapshot into a fresh directory beside the group's own.
async fn receive_files(
    dir: &Path,
    first_file: Option<pb::FileChunk>,
    stream: &mut Streaming<pb::SnapshotChunk>,
) -> Result<PathBuf, Status> {
    let staged = dir.join("snapshot-incoming");
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged)
        .map_err(|e| Status::internal(format!("{}: {e}", staged.display())))?;
    let mut pending = first_file;
    let mut current: Option<(String, std::fs::File)> = None;
    loop {
        let chunk = match pending.take() {
            Some(chunk) => chunk,
            None => match stream.next().await {
                None => break,
                Some(Ok(pb::SnapshotChunk {
                    part: Some(pb::snapshot_chunk::Part::File(f)),
                })) => f,
                Some(Ok(_)) => {
                    return Err(Status::invalid_argument(
                        "snapshot stream holds a second header",
                    ));
                }
                Some(Err(status)) => return Err(status),
            },
        };
        if chunk.name.contains('/') || chunk.name.contains("..") || !chunk.name.ends_with(".log") {
            return Err(Status::invalid_argument(format!(
                "snapshot file name `{}` is not a segment",
                chunk.name
            )));
        }
        let io = |e: std::io::Error| {
            Status::internal(format!("writing snapshot file {}: {e}", chunk.name))
        };
        if current
            .as_ref()
            .map(|(name, _)| name != &chunk.name)
            .unwrap_or(true)
        {
            if let Some((_, file)) = current.take() {
                file.sync_all().map_err(io)?;
            }
            let file = std::fs::File::create(staged.join(&chunk.name)).map_err(io)?;
            current = Some((chunk.name.clone(), file));
        }
        if let Some((_, file)) = current.as_mut() {
            file.write_all(&chunk.data).map_err(io)?;
        }
    }
    if let Some((_, file)) = current {
        file.sync_all()
            .map_err(|e| Status::internal(e.to_string()))?;
    }
    Ok(staged)
}

/// The log storage of a group.
fn store_of(group: &Group) -> &strand_raft::LogStore {
    match group {
        Group::Meta(_, store) => store,
        Group::Partition(p) => &p.store,
    }
}

/// Tells a rejoining replica (`LogStore::rejoining`) what its leader has committed.
fn heard_from_leader(store: &strand_raft::LogStore, req: &pb::AppendEntriesRequest) {
    if let Some(vote) = &req.vote {
        store.heard_from_leader(
            vote.term,
            req.leader_commit.as_ref().map(|c| (c.term, c.index)),
        );
    }
}

/// A replica that lost its state under this broker's identity takes no part in elections
/// until it has caught up: it may have voted in this term already, and may have acknowledged
/// entries it no longer holds.
fn refuse_while_rejoining(group: &Group, what: &str) -> Result<(), Status> {
    if store_of(group).rejoining() {
        return Err(Status::unavailable(format!(
            "this replica lost its state and {what} until it has caught up with its group"
        )));
    }
    Ok(())
}

/// An append to a partition from its committed leader moves the group's election timer.
fn leader_contact(inner: &Inner, req: &pb::AppendEntriesRequest) {
    if req.vote.as_ref().is_some_and(|v| v.committed)
        && let Some(target) = &req.target
    {
        inner
            .contacts
            .touch(&target.group, inner.config.tuning.election_min);
    }
}

/// Answers of one StreamAppend session, as they are flushed.
type AppendAnswers = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::StreamAppendResponse, Status>> + Send>,
>;

/// Runs one replication session on a group: `requests` in, flushed positions out, in order.
/// A fatal error of the group ends the session with an error status.
fn stream_to<M: Machine>(
    raft: &Raft<M>,
    requests: impl tokio_stream::Stream<Item = openraft::raft::AppendEntriesRequest<TypeConfig>>
    + Send
    + 'static,
) -> AppendAnswers {
    Box::pin(raft.stream_append(requests).map(|answer| match answer {
        Ok(result) => Ok(convert::stream_append_result_to_pb(&result)),
        Err(e) => Err(fatal(e)),
    }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    type StreamAppendStream = AppendAnswers;

    async fn stream_append(
        &self,
        request: Request<Streaming<pb::AppendEntriesRequest>>,
    ) -> Result<Response<AppendAnswers>, Status> {
        let mut incoming = request.into_inner();
        let Some(first) = incoming.message().await? else {
            return Ok(Response::new(Box::pin(tokio_stream::empty())));
        };
        let group = self.group(first.target.as_ref())?;
        // A partition's election timer moves with every append from its leader, as with
        // single appends; a transport error, a malformed append or one for another target
        // ends the session, and the leader starts another from what was answered.
        let contacts = matches!(group, Group::Partition(_)).then(|| self.inner.clone());
        let store = store_of(&group).clone();
        // Every append of a session is for the group and incarnation its first one named.
        let target = first.target.clone();
        let requests = tokio_stream::once(Ok(first))
            .chain(incoming)
            .map_while(move |message| {
                let message = message.ok()?;
                if message.target != target {
                    return None;
                }
                if let Some(inner) = &contacts {
                    leader_contact(inner, &message);
                }
                heard_from_leader(&store, &message);
                convert::append_from_pb(message).ok()
            });
        // A session lasts as long as its leader keeps it; a stopping broker ends both of its
        // directions, or the server's graceful shutdown would wait for it.
        let stopped = |inner: &Arc<Inner>| {
            let mut stop = inner.shutdown.subscribe();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        let requests = futures_util::StreamExt::take_until(requests, stopped(&self.inner));
        let answers = match group {
            Group::Meta(raft, _) => stream_to(&raft, requests),
            Group::Partition(p) => stream_to(&p.raft, requests),
        };
        let answers: AppendAnswers = Box::pin(futures_util::StreamExt::take_until(
            answers,
            stopped(&self.inner),
        ));
        Ok(Response::new(answers))
    }

    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        let req = request.into_inner();
        let group = self.group(req.target.as_ref())?;
        heard_from_leader(store_of(&group), &req);
        let resp = match group {
            Group::Meta(raft, _) => append(&raft, req).await?,
            Group::Partition(p) => {
                leader_contact(&self.inner, &req);
                append(&p.raft, req).await?
            }
        };
        Ok(Response::new(resp))
    }

    async fn vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        let req = request.into_inner();
        let group = self.group(req.target.as_ref())?;
        refuse_while_rejoining(&group, "grants no vote")?;
        let resp = match group {
            Group::Meta(raft, _) => vote(&raft, req).await?,
            Group::Partition(p) => vote(&p.raft, req).await?,
        };
        Ok(Response::new(resp))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(pb::SnapshotChunk {
                part: Some(pb::snapshot_chunk::Part::Header(h)),
            })) => h,
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(Status::invalid_argument(
                    "a snapshot stream must start with its header",
                ));
            }
        };
        let group = self.group(header.target.as_ref())?;
        let resp = match group {
            Group::Meta(raft, store) => {
                let staged = receive_files(store.dir(), None, &mut stream).await?;
                install(&raft, header, staged).await?
            }
            Group::Partition(p) => {
                let staged = receive_files(p.store.dir(), None, &mut stream).await?;
                install(&p.raft, header, staged).await?
            }
        };
        Ok(Response::new(resp))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatBatch>,
    ) -> Result<Response<pb::Empty>, Status> {
        crate::heartbeat::deliver(&self.inner, request.into_inner()).await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        if self.inner.balancer.is_leaving() {
            return Err(Status::unavailable(
                "this broker is stopping and takes no leadership",
            ));
        }
        let req = request.into_inner();
        let group = self.group(req.target.as_ref())?;
        refuse_while_rejoining(&group, "takes no leadership")?;
        let resp = match group {
            Group::Meta(raft, _) => transfer(&raft, req).await?,
            Group::Partition(p) => transfer(&p.raft, req).await?,
        };
        Ok(Response::new(resp))
    }
}
