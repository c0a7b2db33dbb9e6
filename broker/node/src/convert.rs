//! Conversions between openraft's messages and the Raft protobuf messages. The one place that
//! knows both.

use bytes::Bytes;
use openraft::EntryPayload;
use openraft::entry::RaftEntry;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use strand_proto::raft as pb;
use strand_raft::{Batch, Entry, LogId, TypeConfig, Vote, log_id};

/// A message that arrived malformed from a peer.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A required field is absent.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A membership entry is not readable.
    #[error("membership entry {index} is not readable: {reason}")]
    Membership {
        /// The entry's index.
        index: u64,
        /// What was wrong.
        reason: String,
    },
    /// An entry of unknown kind.
    #[error("entry {0} has an unknown kind")]
    UnknownKind(u64),
}

/// A vote in its protobuf form.
pub fn vote_to_pb(v: &Vote) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.voted_for,
        committed: v.committed,
    }
}

/// A vote from its protobuf form; a missing vote is an error.
pub fn vote_from_pb(v: Option<pb::Vote>) -> Result<Vote, DecodeError> {
    let v = v.ok_or(DecodeError::Missing("vote"))?;
    Ok(if v.committed {
        Vote::new_committed(v.term, v.node_id)
    } else {
        Vote::new(v.term, v.node_id)
    })
}

/// A log id in its protobuf form.
pub fn log_id_to_pb(id: &LogId) -> pb::LogId {
    pb::LogId {
        term: id.leader_id.term,
        index: id.index,
    }
}

/// A log id from its protobuf form.
pub fn log_id_from_pb(id: pb::LogId) -> LogId {
    log_id(id.term, id.index)
}

fn entry_to_pb(e: &Entry) -> pb::Entry {
    let (kind, payload) = match &e.payload {
        EntryPayload::Blank => (pb::EntryKind::Blank, Bytes::new()),
        EntryPayload::Normal(batch) => (pb::EntryKind::Data, batch.0.clone()),
        EntryPayload::Membership(m) => (
            pb::EntryKind::Membership,
            // Serializing a membership (sets of integers and addresses) cannot fail.
            Bytes::from(serde_json::to_vec(m).unwrap_or_default()),
        ),
    };
    pb::Entry {
        log_id: Some(log_id_to_pb(&e.log_id)),
        kind: kind as i32,
        payload,
    }
}

fn entry_from_pb(e: pb::Entry) -> Result<Entry, DecodeError> {
    let id = log_id_from_pb(e.log_id.ok_or(DecodeError::Missing("entry log id"))?);
    let payload = match pb::EntryKind::try_from(e.kind) {
        Ok(pb::EntryKind::Blank) => EntryPayload::Blank,
        Ok(pb::EntryKind::Data) => EntryPayload::Normal(Batch(e.payload)),
        Ok(pb::EntryKind::Membership) => {
            EntryPayload::Membership(serde_json::from_slice(&e.payload).map_err(|err| {
                DecodeError::Membership {
                    index: id.index,
                    reason: err.to_string(),
                }
            })?)
        }
        _ => return Err(DecodeError::UnknownKind(id.index)),
    };
    Ok(Entry::new(id, payload))
}

/// An AppendEntries request for `target`, in its protobuf form.
pub fn append_to_pb(
    req: &AppendEntriesRequest<TypeConfig>,
    target: pb::Target,
) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        target: Some(target),
        vote: Some(vote_to_pb(&req.vote)),
        prev_log_id: req.prev_log_id.as_ref().map(log_id_to_pb),
        entries: req.entries.iter().map(entry_to_pb).collect(),
        leader_commit: req.leader_commit.as_ref().map(log_id_to_pb),
    }
}

/// An AppendEntries request from its protobuf form.
pub fn append_from_pb(
    req: pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, DecodeError> {
    Ok(AppendEntriesRequest {
        vote: vote_from_pb(req.vote)?,
        prev_log_id: req.prev_log_id.map(log_id_from_pb),
        entries: req
            .entries
            .into_iter()
            .map(entry_from_pb)
            .collect::<Result<_, _>>()?,
        leader_commit: req.leader_commit.map(log_id_from_pb),
    })
}

/// An AppendEntries answer in its protobuf form.
pub fn append_response_to_pb(
    resp: &AppendEntriesResponse<TypeConfig>,
) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match resp {
        AppendEntriesResponse::Success => R::Success(pb::Empty {}),
        AppendEntriesResponse::PartialSuccess(matched) => R::PartialSuccess(pb::PartialSuccess {
            matched: matched.as_ref().map(log_id_to_pb),
        }),
        AppendEntriesResponse::Conflict => R::Conflict(pb::Empty {}),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote_to_pb(v)),
    };
    pb::AppendEntriesResponse {
        result: Some(result),
    }
}

/// An AppendEntries answer from its protobuf form.
pub fn append_response_from_pb(
    resp: pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<TypeConfig>, DecodeError> {
    use pb::append_entries_response::Result as R;
    Ok(
        match resp.result.ok_or(DecodeError::Missing("append result"))? {
            R::Success(_) => AppendEntriesResponse::Success,
            R::PartialSuccess(p) => {
                AppendEntriesResponse::PartialSuccess(p.matched.map(log_id_from_pb))
            }
            R::Conflict(_) => AppendEntriesResponse::Conflict,
            R::HigherVote(v) => AppendEntriesResponse::HigherVote(vote_from_pb(Some(v))?),
        },
    )
}

/// A (pre-)vote request for `target`, in its protobuf form.
pub fn vote_request_to_pb(
    req: &VoteRequest<TypeConfig>,
    target: pb::Target,
    pre_vote: bool,
) -> pb::VoteRequest {
    pb::VoteRequest {
        target: Some(target),
        vote: Some(vote_to_pb(&req.vote)),
        last_log_id: req.last_log_id.as_ref().map(log_id_to_pb),
        leadership_transfer: req.leadership_transfer,
        pre_vote,
    }
}

/// A vote request from its protobuf form.
pub fn vote_request_from_pb(req: pb::VoteRequest) -> Result<VoteRequest<TypeConfig>, DecodeError> {
    let mut out = VoteRequest::new(vote_from_pb(req.vote)?, req.last_log_id.map(log_id_from_pb));
    out.leadership_transfer = req.leadership_transfer;
    Ok(out)
}

/// A vote answer in its protobuf form.
pub fn vote_response_to_pb(resp: &VoteResponse<TypeConfig>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&resp.vote)),
        vote_granted: resp.vote_granted,
        last_log_id: resp.last_log_id.as_ref().map(log_id_to_pb),
    }
}

/// A vote answer from its protobuf form.
pub fn vote_response_from_pb(
    resp: pb::VoteResponse,
) -> Result<VoteResponse<TypeConfig>, DecodeError> {
    Ok(VoteResponse::new(
        vote_from_pb(resp.vote)?,
        resp.last_log_id.map(log_id_from_pb),
        resp.vote_granted,
    ))
}

/// One result of a pipelined append stream, in its protobuf form.
pub fn stream_append_result_to_pb(
    result: &openraft::raft::StreamAppendResult<TypeConfig>,
) -> pb::StreamAppendResponse {
    use openraft::raft::StreamAppendError;
    use pb::stream_append_response::Result as R;
    let result = match result {
        Ok(flushed) => R::Flushed(pb::PartialSuccess {
            matched: flushed.as_ref().map(log_id_to_pb),
        }),
        Err(StreamAppendError::Conflict(id)) => R::Conflict(log_id_to_pb(id)),
        Err(StreamAppendError::HigherVote(v)) => R::HigherVote(vote_to_pb(v)),
    };
    pb::StreamAppendResponse {
        result: Some(result),
    }
}

/// One result of a pipelined append stream, from its protobuf form.
pub fn stream_append_result_from_pb(
    resp: pb::StreamAppendResponse,
) -> Result<openraft::raft::StreamAppendResult<TypeConfig>, DecodeError> {
    use openraft::raft::StreamAppendError;
    use pb::stream_append_response::Result as R;
    Ok(
        match resp
            .result
            .ok_or(DecodeError::Missing("stream append result"))?
        {
            R::Flushed(p) => Ok(p.matched.map(log_id_from_pb)),
            R::Conflict(id) => Err(StreamAppendError::Conflict(log_id_from_pb(id))),
            R::HigherVote(v) => Err(StreamAppendError::HigherVote(vote_from_pb(Some(v))?)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::impls::BasicNode;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn append_requests_round_trip_through_protobuf() {
        let nodes = BTreeMap::from([
            (1, BasicNode { addr: "a:1".into() }),
            (2, BasicNode { addr: "b:2".into() }),
        ]);
        let membership = strand_raft::Membership::new(vec![BTreeSet::from([1, 2])], nodes).unwrap();
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(2, 9)),
            entries: vec![
                Entry::new(log_id(3, 10), EntryPayload::Blank),
                Entry::new(
                    log_id(3, 11),
                    EntryPayload::Normal(Batch(Bytes::from_static(b"batch"))),
                ),
                Entry::new(log_id(3, 12), EntryPayload::Membership(membership)),
            ],
            leader_commit: Some(log_id(2, 9)),
        };
        let target = pb::Target {
            group: "g".into(),
            node_id: 2,
        };
        let back = append_from_pb(append_to_pb(&req, target)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{req:?}"));
    }

    #[test]
    fn a_malformed_message_is_an_error_not_a_panic() {
        let req = pb::AppendEntriesRequest {
            vote: None,
            ..Default::default()
        };
        assert!(matches!(
            append_from_pb(req),
            Err(DecodeError::Missing("vote"))
        ));
        let resp = pb::AppendEntriesResponse { result: None };
        assert!(append_response_from_pb(resp).is_err());
    }
}
