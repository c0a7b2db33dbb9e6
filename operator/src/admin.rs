//! The operator's view of a Strand cluster's admin gRPC API: a small trait the reconcilers call,
//! its gRPC implementation, and the one mapping from a failed call to [`AdminError`].
//!
//! The trait exists so reconcile tests can stand in a fake cluster; the operator process uses
//! [`GrpcAdmin`]. Every call names the admin address of the cluster it is for, so one client
//! serves every Cluster the operator watches.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use prost::Message as _;
use strand_proto::admin::admin_client::AdminClient;
use strand_proto::admin::{
    Acl, AclFilter, BrokerDescription, ClusterDescription, CreateAclsRequest, CreateTopicRequest,
    DecommissionBrokerRequest, DeleteAclsRequest, DeleteScramUserRequest, DeleteTopicRequest,
    DescribeClusterRequest, DescribeTopicRequest, ErrorReason, ListAclsRequest,
    ListScramUsersRequest, ListTopicsRequest, RebalanceProgress, RebalanceStatusRequest,
    RecommissionBrokerRequest, ScramUser, TopicDescription, UpdateTopicRequest,
    UpsertScramUserRequest,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long to wait for the TCP and HTTP/2 handshake with a broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one admin call may take; a slow cluster fails its own objects' reconciles and
/// holds up nobody else's.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an admin call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The cluster refused the call and said why (an `AdminError` in the status details).
    #[error("{message}")]
    Refused {
        /// The reason the cluster gave.
        reason: ErrorReason,
        /// The cluster's message.
        message: String,
        /// For an invalid config, the offending key; empty otherwise.
        config_key: String,
    },
    /// The call failed without a reason from the cluster: it could not be reached, timed
    /// out, or answered with a plain status.
    #[error("admin api at {address}: {message}")]
    Unavailable {
        /// The admin address called.
        address: String,
        /// What went wrong.
        message: String,
    },
}

impl AdminError {
    /// Whether trying again later, with nothing changed by a person, can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            AdminError::Unavailable { .. } => true,
            AdminError::Refused { reason, .. } => matches!(
                reason,
                ErrorReason::Unavailable | ErrorReason::NotController | ErrorReason::Unspecified
            ),
        }
    }

    /// The reason as a `PascalCase` word for a condition or an Event.
    pub fn reason_word(&self) -> &'static str {
        match self {
            AdminError::Unavailable { .. } => "ClusterUnavailable",
            AdminError::Refused { reason, .. } => match reason {
                ErrorReason::Unspecified => "AdminError",
                ErrorReason::TopicExists => "TopicExists",
                ErrorReason::UnknownTopic => "UnknownTopic",
                ErrorReason::InvalidTopicName => "InvalidTopicName",
                ErrorReason::InvalidConfig => "InvalidConfig",
                ErrorReason::NotEnoughBrokers => "NotEnoughBrokers",
                ErrorReason::NotController => "NotController",
                ErrorReason::InvalidPartitions => "InvalidPartitions",
                ErrorReason::InvalidReplicationFactor => "InvalidReplicationFactor",
                ErrorReason::Unavailable => "ClusterUnavailable",
                ErrorReason::UnknownBroker => "UnknownBroker",
                ErrorReason::UnknownPartition => "UnknownPartition",
                ErrorReason::BrokerState => "BrokerState",
                ErrorReason::NotOwner => "TopicNotOwned",
                ErrorReason::InternalTopic => "InternalTopic",
                ErrorReason::InvalidAcl => "InvalidAcl",
                ErrorReason::InvalidCredential => "InvalidCredential",
                ErrorReason::UnknownUser => "UnknownUser",
            },
        }
    }

    /// Maps a non-OK status from `address` to an error; this is the one place that reads
    /// `AdminError` details in the operator.
    pub fn from_status(address: &str, status: &tonic::Status) -> Self {
        let details = (!status.details().is_empty())
            .then(|| strand_proto::admin::AdminError::decode(status.details()).ok())
            .flatten();
        match details {
            Some(admin) => AdminError::Refused {
                reason: ErrorReason::try_from(admin.reason).unwrap_or(ErrorReason::Unspecified),
                message: if admin.message.is_empty() {
                    status.message().to_owned()
                } else {
                    admin.message
                },
                config_key: admin.config_key,
            },
            None => AdminError::Unavailable {
                address: address.to_owned(),
                message: if status.message().is_empty() {
                    format!("the server answered {:?}", status.code())
                } else {
                    status.message().to_owned()
                },
            },
        }
    }
}

/// The mutual TLS of a cluster's admin API: its CA and the admin certificate and key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminTls {
    /// The cluster's CA, which the brokers' certificate must chain to.
    pub ca: String,
    /// The admin certificate presented.
    pub cert: String,
    /// Its private key.
    pub key: String,
}

/// The admin calls the reconcilers make. `address` is a cluster's admin gRPC address as an
/// `https://host:port` URL (`http://` without TLS).
pub trait AdminApi: Send + Sync + 'static {
    /// Sets the TLS of calls to `address`; calls made after a change use it. Without it an
    /// `https://` address cannot be called. A fake cluster has nothing to do with it.
    fn use_tls(&self, address: &str, tls: AdminTls) {
        let _ = (address, tls);
    }

    /// The cluster's id, controller, brokers and partition health.
    fn describe_cluster(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<ClusterDescription, AdminError>> + Send;

    /// The topic named `name`, or `None` when the cluster has no such topic.
    fn describe_topic(
        &self,
        address: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<TopicDescription>, AdminError>> + Send;

    /// Creates a topic.
    fn create_topic(
        &self,
        address: &str,
        request: CreateTopicRequest,
    ) -> impl Future<Output = Result<TopicDescription, AdminError>> + Send;

    /// Adds partitions to a topic and sets or removes config entries.
    fn update_topic(
        &self,
        address: &str,
        request: UpdateTopicRequest,
    ) -> impl Future<Output = Result<TopicDescription, AdminError>> + Send;

    /// Deletes a topic under the request's preconditions (its id, its owner); `false` when
    /// there was none.
    fn delete_topic(
        &self,
        address: &str,
        request: DeleteTopicRequest,
    ) -> impl Future<Output = Result<bool, AdminError>> + Send;

    /// Every topic of the cluster.
    fn list_topics(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Vec<TopicDescription>, AdminError>> + Send;

    /// Starts draining broker `id`: its replicas move away, then it is decommissioned.
    fn decommission_broker(
        &self,
        address: &str,
        id: u32,
    ) -> impl Future<Output = Result<BrokerDescription, AdminError>> + Send;

    /// Makes broker `id` active again.
    fn recommission_broker(
        &self,
        address: &str,
        id: u32,
    ) -> impl Future<Output = Result<BrokerDescription, AdminError>> + Send;

    /// What balancing is doing.
    fn rebalance_status(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<RebalanceProgress, AdminError>> + Send;

    /// The ACLs `filter` matches.
    fn list_acls(
        &self,
        address: &str,
        filter: AclFilter,
    ) -> impl Future<Output = Result<Vec<Acl>, AdminError>> + Send {
        let _ = filter;
        unsupported(address)
    }

    /// Adds ACLs; ones that exist already are kept as they are.
    fn create_acls(
        &self,
        address: &str,
        acls: Vec<Acl>,
    ) -> impl Future<Output = Result<(), AdminError>> + Send {
        let _ = acls;
        unsupported(address)
    }

    /// Deletes the ACLs `filter` matches, returning them.
    fn delete_acls(
        &self,
        address: &str,
        filter: AclFilter,
    ) -> impl Future<Output = Result<Vec<Acl>, AdminError>> + Send {
        let _ = filter;
        unsupported(address)
    }

    /// The SCRAM users, with their mechanisms.
    fn list_scram_users(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Vec<ScramUser>, AdminError>> + Send {
        unsupported(address)
    }

    /// Sets a SCRAM credential (the salted password, never the password).
    fn upsert_scram_user(
        &self,
        address: &str,
        request: UpsertScramUserRequest,
    ) -> impl Future<Output = Result<(), AdminError>> + Send {
        let _ = request;
        unsupported(address)
    }

    /// Deletes every SCRAM credential of `user`; `false` when it had none.
    fn delete_scram_user(
        &self,
        address: &str,
        user: &str,
    ) -> impl Future<Output = Result<bool, AdminError>> + Send {
        let _ = user;
        unsupported(address)
    }
}

/// What an admin that does not manage users and ACLs answers.
fn unsupported<T: Send>(address: &str) -> impl Future<Output = Result<T, AdminError>> + Send {
    let error = AdminError::Unavailable {
        address: address.to_owned(),
        message: "this admin client does not manage users and ACLs".to_owned(),
    };
    async move { Err(error) }
}

/// [`AdminApi`] over gRPC, with one lazily connected channel per cluster address.
#[derive(Default)]
pub struct GrpcAdmin {
    /// Each channel with the TLS it was made with.
    channels: Mutex<HashMap<String, (Option<AdminTls>, Channel)>>,
    /// The TLS of each address, from [`AdminApi::use_tls`].
    tls: Mutex<HashMap<String, AdminTls>>,
}

impl GrpcAdmin {
    /// A client with no channels yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self, address: &str) -> Result<AdminClient<Channel>, AdminError> {
        let unavailable = |message: String| AdminError::Unavailable {
            address: address.to_owned(),
            message,
        };
        let tls = self
            .tls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(address)
            .cloned();
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((made_with, channel)) = channels.get(address)
            && *made_with == tls
        {
            return Ok(AdminClient::new(channel.clone()));
        }
        let mut endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|error| unavailable(format!("invalid admin address: {error}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        if address.starts_with("https://") {
            let Some(tls) = &tls else {
                return Err(unavailable(
                    "no admin certificate for this cluster yet".to_owned(),
                ));
            };
            let config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca))
                .identity(Identity::from_pem(&tls.cert, &tls.key));
            endpoint = endpoint
                .tls_config(config)
                .map_err(|error| unavailable(format!("admin TLS cannot be used: {error}")))?;
        }
        // A lazy channel reconnects by itself when brokers restart or move.
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_owned(), (tls, channel.clone()));
        Ok(AdminClient::new(channel))
    }
}

impl AdminApi for GrpcAdmin {
    fn use_tls(&self, address: &str, tls: AdminTls) {
        self.tls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(address.to_owned(), tls);
    }

    async fn describe_cluster(&self, address: &str) -> Result<ClusterDescription, AdminError> {
        let mut client = self.client(address)?;
        client
            .describe_cluster(DescribeClusterRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn describe_topic(
        &self,
        address: &str,
        name: &str,
    ) -> Result<Option<TopicDescription>, AdminError> {
        let mut client = self.client(address)?;
        let request = DescribeTopicRequest {
            name: name.to_owned(),
        };
        match client.describe_topic(request).await {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(status) => match AdminError::from_status(address, &status) {
                AdminError::Refused {
                    reason: ErrorReason::UnknownTopic,
                    ..
                } => Ok(None),
                error => Err(error),
            },
        }
    }

    async fn create_topic(
        &self,
        address: &str,
        request: CreateTopicRequest,
    ) -> Result<TopicDescription, AdminError> {
        let mut client = self.client(address)?;
        client
            .create_topic(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn update_topic(
        &self,
        address: &str,
        request: UpdateTopicRequest,
    ) -> Result<TopicDescription, AdminError> {
        let mut client = self.client(address)?;
        client
            .update_topic(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn delete_topic(
        &self,
        address: &str,
        request: DeleteTopicRequest,
    ) -> Result<bool, AdminError> {
        let mut client = self.client(address)?;
        client
            .delete_topic(request)
            .await
            .map(|response| response.into_inner().deleted)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn list_topics(&self, address: &str) -> Result<Vec<TopicDescription>, AdminError> {
        let mut client = self.client(address)?;
        client
            .list_topics(ListTopicsRequest {})
            .await
            .map(|response| response.into_inner().topics)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn decommission_broker(
        &self,
        address: &str,
        id: u32,
    ) -> Result<BrokerDescription, AdminError> {
        let mut client = self.client(address)?;
        client
            .decommission_broker(DecommissionBrokerRequest { broker_id: id })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn recommission_broker(
        &self,
        address: &str,
        id: u32,
    ) -> Result<BrokerDescription, AdminError> {
        let mut client = self.client(address)?;
        client
            .recommission_broker(RecommissionBrokerRequest { broker_id: id })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn rebalance_status(&self, address: &str) -> Result<RebalanceProgress, AdminError> {
        let mut client = self.client(address)?;
        client
            .rebalance_status(RebalanceStatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn list_acls(&self, address: &str, filter: AclFilter) -> Result<Vec<Acl>, AdminError> {
        let mut client = self.client(address)?;
        client
            .list_acls(ListAclsRequest {
                filter: Some(filter),
            })
            .await
            .map(|response| response.into_inner().acls)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn create_acls(&self, address: &str, acls: Vec<Acl>) -> Result<(), AdminError> {
        let mut client = self.client(address)?;
        client
            .create_acls(CreateAclsRequest { acls })
            .await
            .map(|_| ())
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn delete_acls(&self, address: &str, filter: AclFilter) -> Result<Vec<Acl>, AdminError> {
        let mut client = self.client(address)?;
        client
            .delete_acls(DeleteAclsRequest {
                filter: Some(filter),
            })
            .await
            .map(|response| response.into_inner().deleted)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn list_scram_users(&self, address: &str) -> Result<Vec<ScramUser>, AdminError> {
        let mut client = self.client(address)?;
        client
            .list_scram_users(ListScramUsersRequest {})
            .await
            .map(|response| response.into_inner().users)
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn upsert_scram_user(
        &self,
        address: &str,
        request: UpsertScramUserRequest,
    ) -> Result<(), AdminError> {
        let mut client = self.client(address)?;
        client
            .upsert_scram_user(request)
            .await
            .map(|_| ())
            .map_err(|status| AdminError::from_status(address, &status))
    }

    async fn delete_scram_user(&self, address: &str, user: &str) -> Result<bool, AdminError> {
        let mut client = self.client(address)?;
        client
            .delete_scram_user(DeleteScramUserRequest {
                user: user.to_owned(),
                mechanism: None,
            })
            .await
            .map(|response| response.into_inner().deleted)
            .map_err(|status| AdminError::from_status(address, &status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_details_are_read_from_the_status() {
        let details = strand_proto::admin::AdminError {
            reason: ErrorReason::InvalidConfig.into(),
            message: "invalid config: `segment.ms` must be between 1 and 9, not 0".into(),
            config_key: "segment.ms".into(),
            ..Default::default()
        };
        let status = tonic::Status::with_details(
            tonic::Code::InvalidArgument,
            "ignored",
            details.encode_to_vec().into(),
        );
        let error = AdminError::from_status("http://a:9093", &status);
        assert_eq!(error.reason_word(), "InvalidConfig");
        assert!(!error.is_transient());
        assert!(error.to_string().starts_with("invalid config"));
    }

    #[test]
    fn a_plain_status_is_transient_and_names_the_address() {
        let error =
            AdminError::from_status("http://a:9093", &tonic::Status::unavailable("refused"));
        assert!(error.is_transient());
        assert_eq!(error.to_string(), "admin api at http://a:9093: refused");
    }
}
