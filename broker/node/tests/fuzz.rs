//! Fuzz targets, run as tests with random inputs (`STRAND_FUZZ_ITERATIONS` of them, 20,000 by
//! default) and under libFuzzer by `cargo bolero test --package strand-node --test fuzz
//! <name>`: a produced batch through the write path's checks, and the gRPC messages of Raft as
//! the broker decodes them. None may panic.

use bytes::Bytes;
use prost::Message;
use strand_node::{CheckedBatch, TopicRules, convert};
use strand_proto::raft as pb;

fn iterations() -> usize {
    std::env::var("STRAND_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Any bytes as a produced batch, under every codec a topic may ask for and either timestamp
/// type: refused with a reason or taken.
#[test]
fn produced_batches_from_any_bytes() {
    use strand_log::Compression;
    let codecs = [
        None,
        Some(Compression::None),
        Some(Compression::Gzip),
        Some(Compression::Snappy),
        Some(Compression::Lz4),
        Some(Compression::Zstd),
    ];
    bolero::check!()
        .with_iterations(iterations())
        .with_type::<(Vec<u8>, u8, bool)>()
        .for_each(|(bytes, codec, log_append_time)| {
            let rules = TopicRules {
                max_message_bytes: 1 << 20,
                min_insync_replicas: 1,
                compression: codecs[usize::from(*codec) % codecs.len()],
                log_append_time: *log_append_time,
            };
            let _ =
                CheckedBatch::check(Some(Bytes::from(bytes.clone())), &rules, 1_700_000_000_000);
        });
}

/// A valid batch with bytes overwritten: gets past the first checks far more often.
#[test]
fn produced_batches_with_damage() {
    let valid = strand_log::build_batch(&[
        (Some(&b"key"[..]), Some(&b"value"[..]), 1_700_000_000_000),
        (None, Some(&b"second"[..]), 1_700_000_000_001),
    ]);
    bolero::check!()
        .with_iterations(iterations())
        .with_type::<(Vec<(u8, u8)>, bool)>()
        .for_each(|(flips, recompress)| {
            let mut bytes = valid.clone();
            for (position, byte) in flips {
                let at = usize::from(*position) % bytes.len();
                bytes[at] = *byte;
            }
            let rules = TopicRules {
                max_message_bytes: 1 << 20,
                min_insync_replicas: 1,
                compression: recompress.then_some(strand_log::Compression::Gzip),
                log_append_time: false,
            };
            let _ = CheckedBatch::check(Some(Bytes::from(bytes)), &rules, 1_700_000_000_000);
        });
}

/// Any bytes as the Raft messages a peer sends, decoded as the Raft service decodes them.
#[test]
fn raft_messages_from_any_bytes() {
    bolero::check!()
        .with_iterations(iterations())
        .for_each(|bytes: &[u8]| {
            if let Ok(req) = pb::AppendEntriesRequest::decode(bytes) {
                let _ = convert::append_from_pb(req);
            }
            if let Ok(req) = pb::VoteRequest::decode(bytes) {
                let _ = convert::vote_request_from_pb(req);
            }
            if let Ok(resp) = pb::AppendEntriesResponse::decode(bytes) {
                let _ = convert::append_response_from_pb(resp);
            }
            if let Ok(resp) = pb::VoteResponse::decode(bytes) {
                let _ = convert::vote_response_from_pb(resp);
            }
        });
}
