//! The client side of the `StreamAppend` RPC with record batches sent as they are: tonic's
//! encoder would copy every entry's payload into one buffer per message, the largest single
//! cost of replication after the kernel's own copies. Here each message is a list of chunks
//! (the gRPC frame header and protobuf fields, small, in a buffer of their own; each payload, by
//! reference), which HTTP/2 sends as they are. The bytes on the wire are exactly what prost
//! would encode, so the server side is tonic's.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http_body::Frame;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use strand_proto::raft as pb;
use tonic::Status;
use tonic::client::GrpcService;
use tonic::codec::{Codec, Streaming};
use tonic::transport::Channel;

/// The RPC's path, as the generated server routes it.
const PATH: &str = "/strand.raft.v1.Raft/StreamAppend";
/// Payloads shorter than this are copied next to their fields rather than sent as chunks of
/// their own: each chunk costs an HTTP/2 frame header and an entry in a vectored write.
const PAYLOAD_BY_REFERENCE_MIN: usize = 4096;
/// Field numbers in `AppendEntriesRequest` and `Entry` (raft.proto).
const ENTRIES_FIELD: u32 = 4;
const PAYLOAD_FIELD: u32 = 3;

/// One `AppendEntriesRequest` as a length-prefixed gRPC message, in chunks whose concatenation
/// is the prefix and prost's encoding of `request`.
pub(crate) fn encode(request: pb::AppendEntriesRequest) -> Vec<Bytes> {
    let pb::AppendEntriesRequest {
        target,
        vote,
        prev_log_id,
        entries,
        leader_commit,
    } = request;
    // Fields before and after `entries`, in field order, as prost writes them.
    let head = pb::AppendEntriesRequest {
        target,
        vote,
        prev_log_id,
        entries: Vec::new(),
        leader_commit: None,
    };
    let tail = pb::AppendEntriesRequest {
        leader_commit,
        ..Default::default()
    };
    let entries: Vec<(pb::Entry, Bytes)> = entries
        .into_iter()
        .map(|mut entry| {
            let payload = std::mem::take(&mut entry.payload);
            (entry, payload)
        })
        .collect();
    let entry_len = |fields: &pb::Entry, payload: &Bytes| {
        fields.encoded_len()
            + if payload.is_empty() {
                0
            } else {
                1 + encoded_len_varint(payload.len() as u64) + payload.len()
            }
    };
    let mut message_len = head.encoded_len() + tail.encoded_len();
    for (fields, payload) in &entries {
        let len = entry_len(fields, payload);
        message_len += 1 + encoded_len_varint(len as u64) + len;
    }

    let mut chunks = Vec::with_capacity(2 * entries.len() + 1);
    let mut buf = BytesMut::with_capacity(64 + head.encoded_len() + 32 * entries.len());
    // gRPC's message prefix: not compressed, then the length. A message over 4 GiB cannot be
    // framed; the follower refuses anything over its own limit long before.
    buf.put_u8(0);
    buf.put_u32(u32::try_from(message_len).unwrap_or(u32::MAX));
    head.encode_raw(&mut buf);
    for (fields, payload) in entries {
        encode_key(ENTRIES_FIELD, WireType::LengthDelimited, &mut buf);
        encode_varint(entry_len(&fields, &payload) as u64, &mut buf);
        fields.encode_raw(&mut buf);
        if payload.is_empty() {
            continue;
        }
        encode_key(PAYLOAD_FIELD, WireType::LengthDelimited, &mut buf);
        encode_varint(payload.len() as u64, &mut buf);
        if payload.len() < PAYLOAD_BY_REFERENCE_MIN {
            buf.put_slice(&payload);
        } else {
            chunks.push(buf.split().freeze());
            chunks.push(payload);
        }
    }
    tail.encode_raw(&mut buf);
    if !buf.is_empty() {
        chunks.push(buf.freeze());
    }
    chunks
}

/// Opens a `StreamAppend` call on `channel` sending `requests`; the follower's answers come
/// back as a stream, as the generated client's would.
pub(crate) async fn call<S>(
    channel: &mut Channel,
    requests: S,
) -> Result<Streaming<pb::StreamAppendResponse>, Status>
where
    S: Stream<Item = pb::AppendEntriesRequest> + Send + 'static,
{
    let frames = requests.flat_map(|request| {
        futures_util::stream::iter(
            encode(request)
                .into_iter()
                .map(|chunk| Ok::<_, Status>(Frame::data(chunk))),
        )
    });
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(PATH)
        .version(http::Version::HTTP_2)
        .header(http::header::TE, "trailers")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(tonic::body::Body::new(http_body_util::StreamBody::new(
            frames,
        )))
        .map_err(|e| Status::internal(format!("building the StreamAppend request: {e}")))?;
    std::future::poll_fn(|cx| GrpcService::poll_ready(channel, cx))
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let response = GrpcService::call(channel, request)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    // A call refused at once answers with headers only, `grpc-status` among them.
    if let Some(status) = Status::from_header_map(response.headers())
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    let status_code = response.status();
    let mut codec =
        tonic_prost::ProstCodec::<pb::AppendEntriesRequest, pb::StreamAppendResponse>::default();
    Ok(Streaming::new_response(
        codec.decoder(),
        response.into_body(),
        status_code,
        None,
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = pb::Entry> {
        (
            any::<u64>(),
            any::<u64>(),
            0..3i32,
            prop_oneof![
                Just(0usize),
                1..64usize,
                PAYLOAD_BY_REFERENCE_MIN - 1..PAYLOAD_BY_REFERENCE_MIN + 2,
                20_000..70_000usize
            ],
            any::<u8>(),
        )
            .prop_map(|(term, index, kind, len, fill)| pb::Entry {
                log_id: Some(pb::LogId { term, index }),
                kind,
                payload: Bytes::from(vec![fill; len]),
            })
    }

    fn log_id() -> impl Strategy<Value = Option<pb::LogId>> {
        proptest::option::of(
            (any::<u64>(), any::<u64>()).prop_map(|(term, index)| pb::LogId { term, index }),
        )
    }

    proptest! {
        /// The chunks are byte for byte the gRPC framing of prost's encoding.
        #[test]
        fn chunks_are_what_prost_encodes(
            group in "[a-z-]{0,20}",
            node_id in any::<u64>(),
            prev_log_id in log_id(),
            leader_commit in log_id(),
            entries in proptest::collection::vec(entry(), 0..8),
        ) {
            let request = pb::AppendEntriesRequest {
                target: Some(pb::Target { group, node_id }),
                vote: Some(pb::Vote { term: node_id / 3, node_id, committed: node_id % 2 == 0 }),
                prev_log_id,
                entries,
                leader_commit,
            };
            let body = request.encode_to_vec();
            let mut expected = vec![0u8];
            expected.extend_from_slice(&(body.len() as u32).to_be_bytes());
            expected.extend_from_slice(&body);
            let chunks = encode(request);
            prop_assert!(chunks.iter().all(|c| !c.is_empty()));
            prop_assert_eq!(chunks.concat(), expected);
        }
    }
}
