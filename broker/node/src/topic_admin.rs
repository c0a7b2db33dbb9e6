//! Topic administration as the Kafka listener asks for it: create, change and delete topics,
//! with refusals as [`Refusal`]s rather than transport statuses. The broker implements it over
//! its admin core, which serves these here on the controller and passes them to the
//! controller elsewhere.

use std::future::Future;
use std::pin::Pin;

use strand_proto::admin as pb;

use crate::meta::Refusal;

/// A boxed future of an admin call.
pub type AdminFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Refusal>> + Send + 'a>>;

/// Topic administration.
pub trait TopicAdmin: Send + Sync {
    /// Creates a topic and waits (briefly) for its partitions to have leaders.
    fn create_topic(&self, request: pb::CreateTopicRequest) -> AdminFuture<'_, ()>;
    /// Changes a topic: partitions, replication factor, configs, owner; all or nothing.
    fn update_topic(&self, request: pb::UpdateTopicRequest) -> AdminFuture<'_, ()>;
    /// Deletes a topic; `false` when there was no such topic.
    fn delete_topic(&self, request: pb::DeleteTopicRequest) -> AdminFuture<'_, bool>;
}
