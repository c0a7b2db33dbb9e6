//! The admin core's two faces: the gRPC admin API (`strand.admin.v1`) and the Kafka
//! listener's [`TopicAdmin`]. Each serves a call here when this broker is the controller and
//! passes it to the controller otherwise; refusals become gRPC statuses here, in one place
//! ([`status_of`]), and statuses from the controller become refusals again ([`refusal_of`]).

use std::sync::Arc;

use prost::Message;
use strand_node::{AdminFuture, Refusal, TopicAdmin};
use strand_proto::admin as pb;
use strand_proto::admin::ErrorReason;
use strand_proto::admin::admin_server::Admin as AdminApi;
use tonic::{Request, Response, Status};

use crate::admin::{Admin, Route};
use crate::admin_security as security;

/// Turns a refusal into a status carrying an `AdminError`: the one place this mapping lives.
pub fn status_of(refusal: Refusal) -> Status {
    let reason = ErrorReason::try_from(refusal.reason).unwrap_or(ErrorReason::Unspecified);
    let code = match reason {
        ErrorReason::TopicExists => tonic::Code::AlreadyExists,
        ErrorReason::UnknownTopic | ErrorReason::UnknownBroker | ErrorReason::UnknownPartition => {
            tonic::Code::NotFound
        }
        // The topic's owner or kind forbids the change: the request is well formed, the
        // topic is not in the state it needs.
        ErrorReason::BrokerState | ErrorReason::NotOwner | ErrorReason::InternalTopic => {
            tonic::Code::FailedPrecondition
        }
        ErrorReason::InvalidTopicName
        | ErrorReason::InvalidConfig
        | ErrorReason::InvalidPartitions
        | ErrorReason::InvalidReplicationFactor
        | ErrorReason::InvalidAcl
        | ErrorReason::InvalidCredential => tonic::Code::InvalidArgument,
        ErrorReason::UnknownUser => tonic::Code::NotFound,
        ErrorReason::NotEnoughBrokers => tonic::Code::FailedPrecondition,
        ErrorReason::NotController | ErrorReason::Unavailable => tonic::Code::Unavailable,
        ErrorReason::Unspecified => tonic::Code::FailedPrecondition,
    };
    let details = pb::AdminError {
        reason: refusal.reason,
        message: refusal.message.clone(),
        controller_id: None,
        controller_address: String::new(),
        config_key: refusal.config_key.unwrap_or_default(),
    };
    Status::with_details(code, refusal.message, details.encode_to_vec().into())
}

/// The refusal a status from the controller's admin API carries; a status without one (the
/// controller could not be reached, or did not answer in time) is `Unavailable`.
pub fn refusal_of(status: Status) -> Refusal {
    let details = (!status.details().is_empty())
        .then(|| pb::AdminError::decode(status.details()).ok())
        .flatten();
    match details {
        Some(error) => Refusal {
            reason: error.reason,
            message: error.message,
            config_key: (!error.config_key.is_empty()).then_some(error.config_key),
        },
        None => {
            let reason = match status.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    ErrorReason::Unavailable
                }
                _ => ErrorReason::Unspecified,
            };
            Refusal::new(reason, format!("controller: {}", status.message()))
        }
    }
}

/// The gRPC admin API of one broker.
pub struct AdminService {
    admin: Arc<Admin>,
}

impl AdminService {
    /// The service in front of `admin`.
    pub fn new(admin: Arc<Admin>) -> Self {
        AdminService { admin }
    }
}

impl TopicAdmin for Admin {
    fn create_topic(&self, request: pb::CreateTopicRequest) -> AdminFuture<'_, ()> {
        Box::pin(async move {
            match self.route().await? {
                Route::Here => self.create_here(request).await.map(drop),
                Route::Controller(mut client) => client
                    .create_topic(request)
                    .await
                    .map(drop)
                    .map_err(refusal_of),
            }
        })
    }

    fn update_topic(&self, request: pb::UpdateTopicRequest) -> AdminFuture<'_, ()> {
        Box::pin(async move {
            match self.route().await? {
                Route::Here => self.update_here(request).await.map(drop),
                Route::Controller(mut client) => client
                    .update_topic(request)
                    .await
                    .map(drop)
                    .map_err(refusal_of),
            }
        })
    }

    fn delete_topic(&self, request: pb::DeleteTopicRequest) -> AdminFuture<'_, bool> {
        Box::pin(async move {
            match self.route().await? {
                Route::Here => self.delete_here(request).await.map(|r| r.deleted),
                Route::Controller(mut client) => client
                    .delete_topic(request)
                    .await
                    .map(|r| r.into_inner().deleted)
                    .map_err(refusal_of),
            }
        })
    }
}

/// Serves a call here or passes it to the controller.
macro_rules! routed {
    ($self:ident, $request:ident, $method:ident, $here:expr) => {
        match $self.admin.route().await.map_err(status_of)? {
            Route::Controller(mut client) => client.$method($request.into_inner()).await,
            Route::Here => $here.map(Response::new).map_err(status_of),
        }
    };
}

#[tonic::async_trait]
impl AdminApi for AdminService {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        routed!(
            self,
            request,
            create_topic,
            self.admin.create_here(request.into_inner()).await
        )
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        routed!(
            self,
            request,
            delete_topic,
            self.admin.delete_here(request.into_inner()).await
        )
    }

    async fn update_topic(
        &self,
        request: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        routed!(
            self,
            request,
            update_topic,
            self.admin.update_here(request.into_inner()).await
        )
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        routed!(self, request, describe_topic, {
            let name = request.into_inner().name;
            self.admin.topic(&name).map(|t| self.admin.describe(&t))
        })
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        routed!(self, request, list_topics, {
            Ok::<_, Refusal>(self.admin.list_topics_here())
        })
    }

    async fn describe_cluster(
        &self,
        request: Request<pb::DescribeClusterRequest>,
    ) -> Result<Response<pb::ClusterDescription>, Status> {
        routed!(
            self,
            request,
            describe_cluster,
            Ok::<_, Refusal>(self.admin.describe_cluster_here())
        )
    }

    async fn decommission_broker(
        &self,
        request: Request<pb::DecommissionBrokerRequest>,
    ) -> Result<Response<pb::BrokerDescription>, Status> {
        routed!(self, request, decommission_broker, {
            let id = request.into_inner().broker_id;
            self.admin.decommission_here(id).await
        })
    }

    async fn recommission_broker(
        &self,
        request: Request<pb::RecommissionBrokerRequest>,
    ) -> Result<Response<pb::BrokerDescription>, Status> {
        routed!(self, request, recommission_broker, {
            let id = request.into_inner().broker_id;
            self.admin.recommission_here(id).await
        })
    }

    async fn rebalance(
        &self,
        request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalancePlan>, Status> {
        routed!(self, request, rebalance, {
            let dry_run = request.into_inner().dry_run;
            Ok::<_, Refusal>(self.admin.rebalance_here(dry_run))
        })
    }

    async fn rebalance_status(
        &self,
        request: Request<pb::RebalanceStatusRequest>,
    ) -> Result<Response<pb::RebalanceProgress>, Status> {
        routed!(
            self,
            request,
            rebalance_status,
            Ok::<_, Refusal>(self.admin.rebalance_status_here())
        )
    }

    async fn transfer_leadership(
        &self,
        request: Request<pb::TransferLeadershipRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        routed!(
            self,
            request,
            transfer_leadership,
            self.admin.transfer_here(request.into_inner()).await
        )
    }

    async fn create_acls(
        &self,
        request: Request<pb::CreateAclsRequest>,
    ) -> Result<Response<pb::CreateAclsResponse>, Status> {
        security::create_acls(self.admin.cluster(), request.into_inner())
            .await
            .map(Response::new)
            .map_err(status_of)
    }

    async fn list_acls(
        &self,
        request: Request<pb::ListAclsRequest>,
    ) -> Result<Response<pb::ListAclsResponse>, Status> {
        security::list_acls(self.admin.cluster(), request.get_ref())
            .map(Response::new)
            .map_err(status_of)
    }

    async fn delete_acls(
        &self,
        request: Request<pb::DeleteAclsRequest>,
    ) -> Result<Response<pb::DeleteAclsResponse>, Status> {
        security::delete_acls(self.admin.cluster(), request.into_inner())
            .await
            .map(Response::new)
            .map_err(status_of)
    }

    async fn upsert_scram_user(
        &self,
        request: Request<pb::UpsertScramUserRequest>,
    ) -> Result<Response<pb::ScramUser>, Status> {
        security::upsert_scram_user(self.admin.cluster(), request.into_inner())
            .await
            .map(Response::new)
            .map_err(status_of)
    }

    async fn list_scram_users(
        &self,
        _request: Request<pb::ListScramUsersRequest>,
    ) -> Result<Response<pb::ListScramUsersResponse>, Status> {
        Ok(Response::new(security::list_scram_users(
            self.admin.cluster(),
        )))
    }

    async fn delete_scram_user(
        &self,
        request: Request<pb::DeleteScramUserRequest>,
    ) -> Result<Response<pb::DeleteScramUserResponse>, Status> {
        security::delete_scram_user(self.admin.cluster(), request.into_inner())
            .await
            .map(Response::new)
            .map_err(status_of)
    }
}
