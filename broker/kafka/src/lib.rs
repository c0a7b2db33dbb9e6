//! The Kafka protocol listener: frames, request headers and dispatch to the handlers.
//!
//! Each connection has a reader and a writer. The reader decodes one request at a time and
//! starts its handler; the part of a handler whose order matters (a produce handing its
//! batches to Raft) runs before the next request is read, and the rest (waiting for the
//! commit, long-polling a fetch) runs concurrently. The writer sends responses strictly in
//! request order, so clients may pipeline. A malformed frame or request closes the
//! connection, as Kafka brokers do; everything else is answered with a Kafka error code.

mod admin;
mod context;
mod errors;
mod fetch;
pub mod groups;
mod metadata;
mod produce;
mod versions;

pub use context::Handles;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use std::sync::Mutex;
use std::time::Duration;

use strand_node::Limits;

use crate::context::{Context, Shared};

/// Kafka listener settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `auto.create.topics.enable`: Metadata for an unknown topic creates it.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of an automatically created topic or of a CreateTopics
    /// request that leaves the count to the broker.
    pub default_partitions: u32,
    /// `default.replication.factor`: likewise for the replication factor; capped at the
    /// number of active brokers when a topic is created automatically.
    pub default_replication_factor: u16,
    /// `log.retention.check.interval.ms`: how often replicas apply retention and compaction.
    pub retention_check_interval: Duration,
    /// The bounds on what clients send (`strand_node::limits`).
    pub limits: Limits,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            auto_create_topics: false,
            default_partitions: 1,
            default_replication_factor: 3,
            retention_check_interval: Duration::from_secs(300),
            limits: Limits::default(),
        }
    }
}

/// The largest request accepted (Kafka's `socket.request.max.bytes` default).
pub const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
/// Responses queued per connection before the reader waits for the writer.
const IN_FLIGHT_MAX: usize = 64;

/// A response still being produced; `None` when the request gets no response (acks=0).
type Pending = Pin<Box<dyn Future<Output = Option<ResponseKind>> + Send>>;

/// Serves Kafka clients on `listener` until the broker shuts down.
pub async fn serve(handles: Handles, listener: TcpListener) {
    let mut shutdown = handles.shutdown.clone();
    let shared = Arc::new(Shared {
        handles,
        groups: Default::default(),
        producer_ids: Mutex::new(0..0),
    });
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    tokio::spawn(groups::run(Context {
        shared: shared.clone(),
        peer: local,
    }));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(shared.clone(), stream, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka listener cannot accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("request of {0} bytes is over the limit of {MAX_REQUEST_BYTES}")]
    TooLarge(i64),
    #[error("malformed request: {0}")]
    Malformed(String),
}

async fn connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let mut shutdown = shared.handles.shutdown.clone();
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<(i32, ApiKey, i16, Pending)>(IN_FLIGHT_MAX);
    let write = async move {
        let mut out = BytesMut::new();
        while let Some((correlation_id, api_key, version, pending)) = rx.recv().await {
            let Some(response) = pending.await else {
                continue;
            };
            out.clear();
            out.put_i32(0);
            if let Err(e) = encode_response(&mut out, correlation_id, api_key, version, &response) {
                tracing::error!(?api_key, version, error = %e, "cannot encode a kafka response");
                return;
            }
            let len = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&len.to_be_bytes());
            if writer.write_all(&out).await.is_err() {
                return;
            }
        }
    };
    let read = async move {
        let context = Context { shared, peer };
        while let Some(frame) = read_frame(&mut reader).await? {
            let (header, api_key, request) = decode_request(frame)?;
            let version = header.request_api_version;
            tracing::trace!(%peer, ?api_key, version, correlation = header.correlation_id, "kafka request");
            let (pending, reply_version) = match request {
                Decoded::Request(request) => (dispatch(&context, &header, *request).await, version),
                // ApiVersions answers a version it does not speak in the v0 layout.
                Decoded::UnsupportedApiVersions => {
                    let response = versions::unsupported_version();
                    (Box::pin(async move { Some(response) }) as Pending, 0)
                }
            };
            if tx
                .send((header.correlation_id, api_key, reply_version, pending))
                .await
                .is_err()
            {
                break;
            }
        }
        Ok::<(), Closed>(())
    };
    // The writer ends once the reader has ended and every queued response is sent.
    let outcome = tokio::select! {
        (read, ()) = async { tokio::join!(read, write) } => read,
        _ = shutdown.changed() => Ok(()),
    };
    match outcome {
        Err(Closed::Io(e)) => tracing::debug!(%peer, error = %e, "kafka connection failed"),
        Err(e) => tracing::warn!(%peer, error = %e, "closing kafka connection"),
        Ok(()) => {}
    }
}

/// Reads one size-prefixed frame; `None` at a clean end of stream.
async fn read_frame(reader: &mut (impl AsyncReadExt + Unpin)) -> Result<Option<Bytes>, Closed> {
    let size = match reader.read_i32().await {
        Ok(size) => size,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if size < 0 || size as usize > MAX_REQUEST_BYTES {
        return Err(Closed::TooLarge(i64::from(size)));
    }
    // Read into uninitialised capacity: zeroing a megabyte frame first costs as much as reading it.
    let size = size as usize;
    let mut frame = BytesMut::with_capacity(size);
    let mut rest = (&mut *reader).take(size as u64);
    while frame.len() < size {
        if rest.read_buf(&mut frame).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(Some(frame.freeze()))
}

enum Decoded {
    Request(Box<RequestKind>),
    /// An ApiVersions request of a version this broker does not speak: answered, not closed.
    UnsupportedApiVersions,
}

/// Splits a frame into its header and request. An unknown API, an unsupported version (other
/// than of ApiVersions) or bytes that do not decode close the connection.
fn decode_request(mut frame: Bytes) -> Result<(RequestHeader, ApiKey, Decoded), Closed> {
    if frame.len() < 8 {
        return Err(Closed::Malformed(format!(
            "a request header needs 8 bytes, got {}",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key =
        ApiKey::try_from(key).map_err(|_| Closed::Malformed(format!("unknown api key {key}")))?;
    if !versions::supported(api_key, version) {
        if matches!(api_key, ApiKey::ApiVersions) {
            // Only the correlation id is needed, and the v0 header always carries it.
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            let header = RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(version)
                .with_correlation_id(correlation_id);
            return Ok((header, api_key, Decoded::UnsupportedApiVersions));
        }
        return Err(Closed::Malformed(format!(
            "{api_key:?} version {version} is not supported"
        )));
    }
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| Closed::Malformed(format!("{api_key:?} v{version} header: {e}")))?;
    let request = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|e| Closed::Malformed(format!("{api_key:?} v{version}: {e}")))?;
    if frame.has_remaining() {
        tracing::debug!(
            ?api_key,
            version,
            left = frame.remaining(),
            "request has trailing bytes"
        );
    }
    Ok((header, api_key, Decoded::Request(Box::new(request))))
}

fn encode_response(
    out: &mut BytesMut,
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    response: &ResponseKind,
) -> Result<(), String> {
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, api_key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    response.encode(out, version).map_err(|e| e.to_string())
}

/// Starts handling a request and returns its response to come. The ordered part (a produce
/// handing batches to Raft) is done when this returns.
async fn dispatch(ctx: &Context, header: &RequestHeader, request: RequestKind) -> Pending {
    let version = header.request_api_version;
    let ctx = ctx.clone();
    macro_rules! later {
        ($kind:ident, $e:expr) => {
            Box::pin(async move { Some(ResponseKind::$kind($e.await)) }) as Pending
        };
    }
    match request {
        RequestKind::ApiVersions(_) => Box::pin(async move { Some(versions::api_versions()) }),
        RequestKind::Metadata(req) => later!(Metadata, metadata::metadata(ctx, req, version)),
        RequestKind::Produce(req) => produce::produce(ctx, req, version).await,
        RequestKind::Fetch(req) => later!(Fetch, fetch::fetch(ctx, req, version)),
        RequestKind::ListOffsets(req) => {
            later!(ListOffsets, fetch::list_offsets(ctx, req, version))
        }
        RequestKind::OffsetForLeaderEpoch(req) => later!(
            OffsetForLeaderEpoch,
            fetch::offset_for_leader_epoch(ctx, req, version)
        ),
        RequestKind::FindCoordinator(req) => {
            later!(FindCoordinator, groups::find_coordinator(ctx, req, version))
        }
        RequestKind::JoinGroup(req) => {
            let client_id = header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            later!(JoinGroup, groups::join_group(ctx, req, version, client_id))
        }
        RequestKind::SyncGroup(req) => later!(SyncGroup, groups::sync_group(ctx, req, version)),
        RequestKind::Heartbeat(req) => later!(Heartbeat, groups::heartbeat(ctx, req, version)),
        RequestKind::LeaveGroup(req) => {
            later!(LeaveGroup, groups::leave_group(ctx, req, version))
        }
        RequestKind::OffsetCommit(req) => {
            later!(OffsetCommit, groups::offset_commit(ctx, req, version))
        }
        RequestKind::OffsetFetch(req) => {
            later!(OffsetFetch, groups::offset_fetch(ctx, req, version))
        }
        RequestKind::ListGroups(req) => {
            later!(ListGroups, groups::list_groups(ctx, req, version))
        }
        RequestKind::DescribeGroups(req) => {
            later!(DescribeGroups, groups::describe_groups(ctx, req, version))
        }
        RequestKind::DeleteGroups(req) => {
            later!(DeleteGroups, groups::delete_groups(ctx, req, version))
        }
        RequestKind::InitProducerId(req) => {
            later!(InitProducerId, produce::init_producer_id(ctx, req, version))
        }
        RequestKind::DescribeConfigs(req) => {
            later!(DescribeConfigs, admin::describe_configs(ctx, req, version))
        }
        RequestKind::IncrementalAlterConfigs(req) => later!(
            IncrementalAlterConfigs,
            admin::incremental_alter_configs(ctx, req, version)
        ),
        RequestKind::DescribeCluster(req) => {
            later!(DescribeCluster, admin::describe_cluster(ctx, req, version))
        }
        RequestKind::CreateTopics(req) => {
            later!(CreateTopics, admin::create_topics(ctx, req, version))
        }
        RequestKind::DeleteTopics(req) => {
            later!(DeleteTopics, admin::delete_topics(ctx, req, version))
        }
        RequestKind::CreatePartitions(req) => {
            later!(
                CreatePartitions,
                admin::create_partitions(ctx, req, version)
            )
        }
        other => {
            // `versions::supported` lets through only the requests handled above.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler");
            Box::pin(async { None })
        }
    }
}
