//! The gRPC server of a broker: Raft, admin and broker-to-broker services on one port.

use std::sync::Arc;

use strand_proto::admin::admin_server::AdminServer;
use strand_proto::broker::broker_server::BrokerServer;
use strand_proto::raft::raft_server::RaftServer;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use crate::admin::Admin;
use crate::admin_service::AdminService;
use crate::broker_service::BrokerService;
use crate::guard::GrpcGuard;
use crate::raft_service::RaftService;
use crate::shared::Inner;

/// Largest gRPC message a broker accepts or sends (an append of several large batches).
const GRPC_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// Serves the broker's gRPC services on `listener` until the broker shuts down.
pub async fn serve_grpc(
    inner: Arc<Inner>,
    admin: Arc<Admin>,
    listener: tokio::net::TcpListener,
    tls: Option<(tonic::transport::ServerTlsConfig, GrpcGuard)>,
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
    // Nagle's algorithm off on every accepted connection: the server's own `tcp_nodelay` only
    // applies to listeners it binds. With it on, a follower's small append answers waited for
    // the leader's delayed acknowledgement, 40 ms on Linux, in about one commit of a hundred.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = match builder.tls_config(tls) {
            Ok(builder) => builder,
            Err(e) => {
                tracing::error!(error = %e, "gRPC TLS cannot be used; the gRPC port stays closed");
                return;
            }
        };
    }
    let result = builder
        .initial_stream_window_size(strand_node::network::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(strand_node::network::CONNECTION_WINDOW_BYTES)
        .add_service(raft)
        .add_service(admin)
        .add_service(broker)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "gRPC server stopped");
    }
}
