//! The gRPC server of a broker: Raft, admin and broker-to-broker services on one port.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use strand_node::tls::Reloading;

use strand_proto::admin::admin_server::AdminServer;
use strand_proto::broker::broker_server::BrokerServer;
use strand_proto::raft::raft_server::RaftServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Connected;
use tonic::{Request, Status};

use crate::admin::Admin;
use crate::admin_service::AdminService;
use crate::broker_service::BrokerService;
use crate::guard::GrpcGuard;
use crate::raft_service::RaftService;
use crate::shared::Inner;

/// Largest gRPC message a broker accepts or sends (an append of several large batches).
const GRPC_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// A connection to the gRPC port over a transport other than TCP (a simulated network).
pub struct GrpcConnection(Pin<Box<dyn GrpcIo>>);

/// What a [`GrpcConnection`] carries: any byte stream.
pub trait GrpcIo: AsyncRead + AsyncWrite + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + 'static> GrpcIo for T {}

impl GrpcConnection {
    /// A connection over `io`.
    pub fn new(io: impl GrpcIo) -> GrpcConnection {
        GrpcConnection(Box::pin(io))
    }
}

impl Connected for GrpcConnection {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

impl AsyncRead for GrpcConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.as_mut().poll_shutdown(cx)
    }
}

/// Connections to the gRPC port over a transport other than TCP.
pub type GrpcConnections = Pin<Box<dyn Stream<Item = std::io::Result<GrpcConnection>> + Send>>;

/// Where the gRPC port's connections come from.
pub enum GrpcIncoming {
    /// A TCP listener.
    Tcp(TcpListener),
    /// Another transport's connections (no TLS over them).
    Other(GrpcConnections),
}

/// Serves the broker's gRPC services on `incoming` until the broker shuts down.
pub async fn serve_grpc(
    inner: Arc<Inner>,
    admin: Arc<Admin>,
    incoming: GrpcIncoming,
    tls: Option<(Reloading<TlsAcceptor>, GrpcGuard)>,
) {
    let raft = RaftServer::new(RaftService::new(inner.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let admin = AdminServer::new(AdminService::new(admin));
    let broker = BrokerServer::new(BrokerService::new(inner.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let (tls, guard) = match tls {
        Some((tls, guard)) => (Some(tls), Some(guard)),
        None => (None, None),
    };
    // Without TLS every call is let through.
    let check = |only: fn(&GrpcGuard, Request<()>) -> Result<Request<()>, Status>| {
        let guard = guard.clone();
        move |request: Request<()>| match &guard {
            Some(guard) => only(guard, request),
            None => Ok(request),
        }
    };
    let raft = InterceptedService::new(raft, check(GrpcGuard::brokers_only));
    let broker = InterceptedService::new(broker, check(GrpcGuard::brokers_only));
    let admin = InterceptedService::new(admin, check(GrpcGuard::admins_only));
    let mut shutdown = inner.shutdown.subscribe();
    let builder = tonic::transport::Server::builder()
        .initial_stream_window_size(strand_node::network::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(strand_node::network::CONNECTION_WINDOW_BYTES)
        .add_service(raft)
        .add_service(admin)
        .add_service(broker);
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    // Nagle's algorithm off on every accepted connection: the server's own `tcp_nodelay` only
    // applies to listeners it binds. With it on, a follower's small append answers waited for
    // the leader's delayed acknowledgement, 40 ms on Linux, in about one commit of a hundred.
    let result = match (incoming, tls) {
        (GrpcIncoming::Tcp(listener), None) => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            builder
                .serve_with_incoming_shutdown(incoming, stopped)
                .await
        }
        (GrpcIncoming::Tcp(listener), Some(tls)) => {
            builder
                .serve_with_incoming_shutdown(tls_incoming(listener, tls), stopped)
                .await
        }
        // `Broker::start_with` refuses TLS over another transport.
        (GrpcIncoming::Other(connections), _) => {
            builder
                .serve_with_incoming_shutdown(connections, stopped)
                .await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "gRPC server stopped");
    }
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes on the gRPC port in flight at once: a peer opening connections without
/// finishing them holds at most this many tasks and sockets.
const MAX_HANDSHAKES: usize = 128;

/// The gRPC port's connections over TLS, each handshake made with the acceptor current when
/// it was accepted (so renewed certificates are served without a restart) and on its own task
/// (so a slow or silent client holds up no other). Ends when the server stops taking them.
fn tls_incoming(
    listener: TcpListener,
    tls: Reloading<TlsAcceptor>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(16);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "gRPC port cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, _) = tls.current();
            let tx = tx.clone();
            // Handshakes in flight are bounded: past the bound, accepting waits (the kernel's
            // backlog holds the rest) until one finishes or times out.
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "gRPC TLS handshake failed"),
                    Err(_) => tracing::info!(%peer, "gRPC TLS handshake did not finish in time"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
