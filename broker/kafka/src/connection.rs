//! One Kafka connection: frames, request headers, and the bounds on what a client may have in
//! flight (`strand_node::limits`).
//!
//! Each connection has a reader and a writer. The reader decodes one request at a time and
//! starts its handler; the part of a handler whose order matters (a produce handing its
//! batches to Raft) runs before the next request is read, and the rest (waiting for the
//! commit, long-polling a fetch) runs concurrently. The writer sends responses strictly in
//! request order, so clients may pipeline, up to `in_flight_requests_max` requests and
//! `in_flight_bytes_max` bytes of them; past either the reader waits. A malformed frame or
//! request, a frame over `request_bytes_max`, or `idle_timeout` without a request while
//! nothing is in flight closes the connection, as Kafka brokers do; everything else is
//! answered with a Kafka error code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind, SaslAuthenticateResponse,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::context::{Context, Shared};
use crate::dispatch::{Pending, dispatch};
use crate::sasl::{Sasl, Step};
use crate::security::Session;
use crate::versions;

fn ready(response: ResponseKind) -> Pending {
    Box::pin(async move { Some(response) })
}

/// Kafka's `sasl.server.max.receive.size`: the largest request a client that has not
/// authenticated yet may send. A larger one closes the connection before it is read, so a
/// client without credentials cannot make the broker read and decrypt megabytes.
const SASL_RECEIVE_MAX: usize = 512 * 1024;

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("request of {size} bytes is over the limit of {limit} (request_bytes_max)")]
    TooLarge { size: i64, limit: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("idle for {0:?} (idle_timeout)")]
    Idle(Duration),
    #[error("no more of a started request for {0:?} (idle_timeout)")]
    Stalled(Duration),
    #[error("{0:?} before SASL authentication")]
    Unauthenticated(ApiKey),
    #[error(
        "request of {0} bytes before SASL authentication is over the limit of {SASL_RECEIVE_MAX} (sasl.server.max.receive.size)"
    )]
    TooLargeUnauthenticated(i32),
    #[error("SASL authentication failed")]
    AuthenticationFailed,
}

/// A queued response: what the writer needs to send it, and the share of the connection's
/// in-flight bytes its request holds until then.
struct Queued {
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    pending: Pending,
    _bytes: OwnedSemaphorePermit,
}

/// Serves one client connection (its two halves, over TCP or TLS) until it ends, breaks a
/// bound, or the broker stops; `_slot` is its place among the broker's `connections_max`.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut reader: impl AsyncRead + Unpin + Send,
    mut writer: impl AsyncWrite + Unpin + Send,
    peer: SocketAddr,
    session: Session,
    _slot: OwnedSemaphorePermit,
) {
    let limits = shared.handles.settings.limits.clone();
    let mut shutdown = shared.handles.shutdown.clone();
    let (tx, mut rx) = mpsc::channel::<Queued>(limits.in_flight_requests_max.max(1));
    // Permits are bytes of requests read and not yet answered.
    let bytes_max = limits.in_flight_bytes_max.clamp(1, Semaphore::MAX_PERMITS);
    let in_flight = Arc::new(Semaphore::new(bytes_max));
    let write = async move {
        let mut out = BytesMut::new();
        while let Some(queued) = rx.recv().await {
            let Some(response) = queued.pending.await else {
                continue;
            };
            out.clear();
            out.put_i32(0);
            if let Err(e) = encode_response(
                &mut out,
                queued.correlation_id,
                queued.api_key,
                queued.version,
                &response,
            ) {
                tracing::error!(api_key = ?queued.api_key, version = queued.version, error = %e,
                    "cannot encode a kafka response");
                return;
            }
            let len = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&len.to_be_bytes());
            if writer.write_all(&out).await.is_err() {
                return;
            }
            // Over TLS the end of a response may still sit in the session's buffer until the
            // next write; a client waiting for it (a consumer between fetches) would wait for
            // that. Flushing once nothing else is ready to go sends it now; over TCP it is
            // free.
            if rx.is_empty() && writer.flush().await.is_err() {
                return;
            }
        }
    };
    let read = async move {
        let mut sasl = session
            .listener
            .protocol
            .sasl()
            .then(|| Sasl::new(shared.handles.settings.security.sasl_mechanisms.clone()));
        let mut context = Context {
            shared,
            peer,
            session: Arc::new(session),
        };
        let idle = || in_flight.available_permits() == bytes_max;
        loop {
            let Some(size) = read_size(&mut reader, limits.idle_timeout, idle).await? else {
                break;
            };
            if size < 0 || size as usize > limits.request_bytes_max {
                return Err(Closed::TooLarge {
                    size: i64::from(size),
                    limit: limits.request_bytes_max,
                });
            }
            let size = size as usize;
            if size > SASL_RECEIVE_MAX && sasl.as_ref().is_some_and(|s| !s.authenticated()) {
                return Err(Closed::TooLargeUnauthenticated(size as i32));
            }
            // Held until the response is sent; a request larger than the whole allowance
            // waits for everything else to be answered and then goes alone.
            let share = u32::try_from(size.clamp(1, bytes_max)).unwrap_or(u32::MAX);
            let permit = in_flight
                .clone()
                .acquire_many_owned(share)
                .await
                .map_err(|_| std::io::Error::other("in-flight bytes closed"))?;
            let frame = read_body(&mut reader, size, limits.idle_timeout).await?;
            let (header, api_key, request) = decode_request(frame)?;
            let version = header.request_api_version;
            tracing::trace!(%peer, ?api_key, version, correlation = header.correlation_id, "kafka request");
            if let Some(sasl) = &sasl
                && !sasl.admits(api_key)
            {
                return Err(Closed::Unauthenticated(api_key));
            }
            let mut failed = false;
            let (pending, reply_version) = match request {
                Decoded::Request(request) => match *request {
                    RequestKind::SaslHandshake(req) => {
                        let response = match &mut sasl {
                            Some(sasl) => sasl.handshake(&req),
                            None => SaslHandshakeResponse::default()
                                .with_error_code(ResponseError::IllegalSaslState.code()),
                        };
                        (ready(ResponseKind::SaslHandshake(response)), version)
                    }
                    RequestKind::SaslAuthenticate(req) => {
                        let (response, step) = match &mut sasl {
                            Some(sasl) => sasl.authenticate(&req, &context.state()),
                            None => (
                                SaslAuthenticateResponse::default()
                                    .with_error_code(ResponseError::IllegalSaslState.code()),
                                Step::Failed,
                            ),
                        };
                        match step {
                            Step::Continue => {}
                            Step::Authenticated(principal) => {
                                let mut session = (*context.session).clone();
                                session.principal = principal;
                                context.session = Arc::new(session);
                            }
                            Step::Failed => failed = true,
                        }
                        (ready(ResponseKind::SaslAuthenticate(response)), version)
                    }
                    request => (dispatch(&context, &header, request).await, version),
                },
                // ApiVersions answers a version it does not speak in the v0 layout.
                Decoded::UnsupportedApiVersions => {
                    let response = versions::unsupported_version();
                    (Box::pin(async move { Some(response) }) as Pending, 0)
                }
            };
            let queued = Queued {
                correlation_id: header.correlation_id,
                api_key,
                version: reply_version,
                pending,
                _bytes: permit,
            };
            if tx.send(queued).await.is_err() {
                break;
            }
            if failed {
                // The answer is sent, then the connection closes.
                return Err(Closed::AuthenticationFailed);
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
        Err(e @ (Closed::Idle(_) | Closed::Stalled(_) | Closed::AuthenticationFailed)) => {
            tracing::debug!(%peer, error = %e, "closing kafka connection")
        }
        Err(e) => tracing::warn!(%peer, error = %e, "closing kafka connection"),
        Ok(()) => {}
    }
}

/// Reads the size prefix of the next frame; `None` at a clean end of stream. Waiting longer
/// than `idle_timeout` closes the connection when it is `idle()` (nothing in flight) or a
/// prefix was started; otherwise it waits on (a long-poll may be outstanding).
async fn read_size(
    reader: &mut (impl AsyncRead + Unpin),
    idle_timeout: Duration,
    idle: impl Fn() -> bool,
) -> Result<Option<i32>, Closed> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        // `read` is cancel safe: a timeout loses no bytes.
        match tokio::time::timeout(idle_timeout, reader.read(&mut prefix[got..])).await {
            Ok(Ok(0)) if got == 0 => return Ok(None),
            Ok(Ok(0)) => {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) if got > 0 => return Err(Closed::Stalled(idle_timeout)),
            Err(_) if idle() => return Err(Closed::Idle(idle_timeout)),
            Err(_) => {}
        }
    }
    Ok(Some(i32::from_be_bytes(prefix)))
}

/// Reads a frame's `size` bytes; a pause of `idle_timeout` in the middle closes the
/// connection.
async fn read_body(
    reader: &mut (impl AsyncRead + Unpin),
    size: usize,
    idle_timeout: Duration,
) -> Result<Bytes, Closed> {
    // Read into uninitialised capacity: zeroing a megabyte frame first costs as much as reading it.
    let mut frame = BytesMut::with_capacity(size);
    let mut rest = (&mut *reader).take(size as u64);
    while frame.len() < size {
        match tokio::time::timeout(idle_timeout, rest.read_buf(&mut frame)).await {
            Ok(Ok(0)) => {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(Closed::Stalled(idle_timeout)),
        }
    }
    Ok(frame.freeze())
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
) -> Result<(), EncodeError> {
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, api_key.response_header_version(version))
        .map_err(|e| EncodeError(e.to_string()))?;
    response
        .encode(out, version)
        .map_err(|e| EncodeError(e.to_string()))
}

/// A response the protocol library cannot encode (a value out of its version's range): a
/// broker bug, logged; the connection is closed.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the response: {0}")]
struct EncodeError(String);

#[cfg(test)]
mod fuzz {
    //! Fuzz targets, run as tests with random inputs (`STRAND_FUZZ_ITERATIONS` of them,
    //! 20,000 by default) and under libFuzzer by `cargo bolero test --package strand-kafka
    //! --lib connection::fuzz::<name>`: request frames as a client may send them. None may
    //! panic. (Handlers are fuzzed end to end on a running broker by the `kafka` test
    //! `random_request_bytes_get_an_answer_or_a_closed_connection_never_a_crash`.)

    use super::*;

    fn iterations() -> usize {
        std::env::var("STRAND_FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000)
    }

    #[test]
    fn request_frames_from_any_bytes() {
        bolero::check!()
            .with_iterations(iterations())
            .for_each(|bytes: &[u8]| {
                let _ = decode_request(Bytes::copy_from_slice(bytes));
            });
    }

    /// A supported API and version in front of any bytes: every request decoder is reached.
    #[test]
    fn request_bodies_of_every_supported_api() {
        let supported = versions::supported_pairs();
        bolero::check!()
            .with_iterations(iterations())
            .with_type::<(u16, i32, Vec<u8>)>()
            .for_each(|(pick, correlation_id, body)| {
                let (key, version) = supported[usize::from(*pick) % supported.len()];
                let mut frame = Vec::with_capacity(8 + body.len());
                frame.extend_from_slice(&key.to_be_bytes());
                frame.extend_from_slice(&version.to_be_bytes());
                frame.extend_from_slice(&correlation_id.to_be_bytes());
                frame.extend_from_slice(body);
                let _ = decode_request(Bytes::from(frame));
            });
    }
}
