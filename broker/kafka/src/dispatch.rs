//! Dispatch: each request to its handler, started in request order.

use std::future::Future;
use std::pin::Pin;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::context::Context;
use crate::{acls, admin, fetch, groups, metadata, produce, versions};

/// A response still being produced; `None` when the request gets no response (acks=0).
pub(crate) type Pending = Pin<Box<dyn Future<Output = Option<ResponseKind>> + Send>>;

/// Starts handling a request and returns its response to come. The ordered part (a produce
/// handing batches to Raft) is done when this returns.
pub(crate) async fn dispatch(
    ctx: &Context,
    header: &RequestHeader,
    request: RequestKind,
) -> Pending {
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
        RequestKind::ConsumerGroupHeartbeat(req) => {
            let client_id = header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            later!(
                ConsumerGroupHeartbeat,
                groups::consumer_group_heartbeat(ctx, req, version, client_id)
            )
        }
        RequestKind::ConsumerGroupDescribe(req) => later!(
            ConsumerGroupDescribe,
            groups::consumer_group_describe(ctx, req, version)
        ),
        RequestKind::SyncGroup(req) => later!(SyncGroup, groups::sync_group(ctx, req, version)),
        RequestKind::Heartbeat(req) => later!(Heartbeat, groups::heartbeat(ctx, req, version)),
        RequestKind::LeaveGroup(req) => {
            later!(LeaveGroup, groups::leave_group(ctx, req, version))
        }
        RequestKind::OffsetCommit(req) => {
            later!(OffsetCommit, groups::offset_commit(ctx, req, version))
        }
        RequestKind::OffsetDelete(req) => {
            later!(OffsetDelete, groups::offset_delete(ctx, req, version))
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
        RequestKind::CreateAcls(req) => later!(CreateAcls, acls::create_acls(ctx, req, version)),
        RequestKind::DescribeAcls(req) => {
            later!(DescribeAcls, acls::describe_acls(ctx, req, version))
        }
        RequestKind::DeleteAcls(req) => later!(DeleteAcls, acls::delete_acls(ctx, req, version)),
        RequestKind::DescribeUserScramCredentials(req) => later!(
            DescribeUserScramCredentials,
            acls::describe_user_scram_credentials(ctx, req, version)
        ),
        RequestKind::AlterUserScramCredentials(req) => later!(
            AlterUserScramCredentials,
            acls::alter_user_scram_credentials(ctx, req, version)
        ),
        other => {
            // `versions::supported` lets through only the requests handled above (SASL's
            // are answered by the connection).
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler");
            Box::pin(async { None })
        }
    }
}
