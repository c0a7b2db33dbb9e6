//! What the topic commands print: stable JSON/YAML shapes and their tables.
//!
//! The field names here are a public interface for scripts; the help of each command lists
//! them, so a rename is a breaking change.

use std::collections::BTreeMap;

use serde::Serialize;
use strand_proto::admin::{PartitionDescription, TopicDescription};

use super::output::{Table, id_list, id_or_dash};

/// One topic as `topic describe`, `create` and `alter` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicView {
    pub name: String,
    pub topic_id: String,
    pub cluster_id: String,
    pub replication_factor: u32,
    /// Sorted by key so output is stable across calls.
    pub config: BTreeMap<String, String>,
    /// Who manages the topic; `null` for no one.
    pub owner: Option<String>,
    /// An internal topic (`__consumer_offsets`): Strand keeps it for itself.
    pub internal: bool,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionView>,
}

/// One partition of a [`TopicView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    pub partition: u32,
    /// `null` while the partition has no leader.
    pub leader: Option<u32>,
    pub replicas: Vec<u32>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Brokers whose replicas are moving away (they keep them until the move finishes).
    pub leaving: Vec<u32>,
}

/// `topic list`: a summary per topic, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicListView {
    pub topics: Vec<TopicSummary>,
}

/// One line of `topic list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicSummary {
    pub name: String,
    pub topic_id: String,
    pub partition_count: u32,
    pub replication_factor: u32,
}

/// What `topic delete` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteView {
    pub name: String,
    /// `false` when there was no such topic; deleting is idempotent.
    pub deleted: bool,
}

/// Help text listing the JSON fields of [`TopicView`].
pub const TOPIC_JSON_HELP: &str = "\
JSON/YAML output (-o json|yaml), one object:
  name                string
  topic_id            string
  cluster_id          string
  replication_factor  number
  config              object of string to string, sorted by key
  owner               string, who manages the topic, or null for no one
  internal            boolean, true for topics Strand keeps for itself
  partitions          array, sorted by partition, of:
    partition         number
    leader            number, or null while the partition has no leader
    replicas          array of broker ids, the preferred leader first
    high_watermark    number
    log_start_offset  number
    leaving           array of broker ids whose replicas are moving away";

/// Help text listing the JSON fields of [`TopicListView`].
pub const TOPIC_LIST_JSON_HELP: &str = "\
JSON/YAML output (-o json|yaml), one object:
  topics                array, sorted by name, of:
    name                string
    topic_id            string
    partition_count     number
    replication_factor  number";

/// Help text listing the JSON fields of [`DeleteView`].
pub const DELETE_JSON_HELP: &str = "\
JSON/YAML output (-o json|yaml), one object:
  name     string
  deleted  boolean, false when there was no such topic";

impl From<TopicDescription> for TopicView {
    fn from(topic: TopicDescription) -> Self {
        let mut partitions: Vec<PartitionView> = topic
            .partitions
            .into_iter()
            .map(PartitionView::from)
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Self {
            name: topic.name,
            topic_id: topic.topic_id,
            cluster_id: topic.cluster_id,
            replication_factor: topic.replication_factor,
            config: topic.config.into_iter().collect(),
            owner: (!topic.owner.is_empty()).then_some(topic.owner),
            internal: topic.internal,
            partitions,
        }
    }
}

impl From<PartitionDescription> for PartitionView {
    fn from(partition: PartitionDescription) -> Self {
        Self {
            partition: partition.partition,
            leader: partition.leader,
            replicas: partition.replicas,
            high_watermark: partition.high_watermark,
            log_start_offset: partition.log_start_offset,
            leaving: partition.leaving,
        }
    }
}

impl TopicListView {
    /// The summaries of `topics`, sorted by name.
    pub fn new(topics: Vec<TopicDescription>) -> Self {
        let mut topics: Vec<TopicSummary> = topics
            .into_iter()
            .map(|topic| TopicSummary {
                partition_count: u32::try_from(topic.partitions.len()).unwrap_or(u32::MAX),
                name: topic.name,
                topic_id: topic.topic_id,
                replication_factor: topic.replication_factor,
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Self { topics }
    }
}

/// `topic describe` for people: a header line, then one row per partition.
pub fn topic_table(topic: &TopicView) -> String {
    let config = if topic.config.is_empty() {
        "-".to_owned()
    } else {
        topic
            .config
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = format!(
        "Topic: {}{}  Topic id: {}  Partitions: {}  Replication factor: {}  Owner: {}  Config: {}\n",
        topic.name,
        if topic.internal { " (internal)" } else { "" },
        topic.topic_id,
        topic.partitions.len(),
        topic.replication_factor,
        topic.owner.as_deref().unwrap_or("-"),
        config
    );
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "HIGH-WATERMARK",
        "LOG-START",
    ]);
    for p in &topic.partitions {
        table.row(vec![
            p.partition.to_string(),
            id_or_dash(p.leader),
            id_list(&p.replicas),
            p.high_watermark.to_string(),
            p.log_start_offset.to_string(),
        ]);
    }
    out.push_str(&table.render());
    let moving: Vec<String> = topic
        .partitions
        .iter()
        .filter(|p| !p.leaving.is_empty())
        .map(|p| format!("{} (leaving {})", p.partition, id_list(&p.leaving)))
        .collect();
    if !moving.is_empty() {
        out.push_str(&format!("Moving: {}\n", moving.join(", ")));
    }
    out
}

/// `topic list` for people.
pub fn topic_list_table(list: &TopicListView) -> String {
    if list.topics.is_empty() {
        return "no topics\n".to_owned();
    }
    let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICATION", "TOPIC ID"]);
    for topic in &list.topics {
        table.row(vec![
            topic.name.clone(),
            topic.partition_count.to_string(),
            topic.replication_factor.to_string(),
            topic.topic_id.clone(),
        ]);
    }
    table.render()
}

/// `topic delete` for people.
pub fn delete_table(view: &DeleteView) -> String {
    if view.deleted {
        format!("deleted topic {}\n", view.name)
    } else {
        format!("topic {} does not exist; nothing deleted\n", view.name)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(view: &TopicView, expect: Expect) {
        expect.assert_eq(&topic_table(view));
    }

    fn partition(partition: u32, leader: Option<u32>, replicas: Vec<u32>) -> PartitionDescription {
        PartitionDescription {
            partition,
            replicas,
            leader,
            high_watermark: 1200,
            log_start_offset: 7,
            leaving: vec![],
        }
    }

    #[test]
    fn partitions_are_sorted_and_a_missing_leader_shows_a_dash() {
        let topic = TopicDescription {
            name: "orders".into(),
            topic_id: "t-1".into(),
            cluster_id: "c-1".into(),
            replication_factor: 3,
            config: [("retention.ms".to_owned(), "1000".to_owned())].into(),
            partitions: vec![
                partition(1, None, vec![2, 3, 1]),
                partition(0, Some(1), vec![1, 2, 3]),
            ],
            ..TopicDescription::default()
        };
        check(
            &TopicView::from(topic),
            expect![[r#"
                Topic: orders  Topic id: t-1  Partitions: 2  Replication factor: 3  Owner: -  Config: retention.ms=1000
                PARTITION  LEADER  REPLICAS  HIGH-WATERMARK  LOG-START
                0          1       1,2,3     1200            7
                1          -       2,3,1     1200            7
            "#]],
        );
    }

    #[test]
    fn the_owner_and_internal_topics_are_named_in_the_header() {
        let owned = TopicDescription {
            name: "orders".into(),
            topic_id: "t-1".into(),
            replication_factor: 1,
            owner: "strand.dev/Topic/ns/orders/uid1".into(),
            partitions: vec![partition(0, Some(1), vec![1])],
            ..TopicDescription::default()
        };
        check(
            &TopicView::from(owned),
            expect![[r#"
                Topic: orders  Topic id: t-1  Partitions: 1  Replication factor: 1  Owner: strand.dev/Topic/ns/orders/uid1  Config: -
                PARTITION  LEADER  REPLICAS  HIGH-WATERMARK  LOG-START
                0          1       1         1200            7
            "#]],
        );
        let internal = TopicDescription {
            name: "__consumer_offsets".into(),
            topic_id: "t-2".into(),
            replication_factor: 1,
            internal: true,
            partitions: vec![partition(0, Some(1), vec![1])],
            ..TopicDescription::default()
        };
        let view = TopicView::from(internal);
        assert_eq!(view.owner, None);
        check(
            &view,
            expect![[r#"
                Topic: __consumer_offsets (internal)  Topic id: t-2  Partitions: 1  Replication factor: 1  Owner: -  Config: -
                PARTITION  LEADER  REPLICAS  HIGH-WATERMARK  LOG-START
                0          1       1         1200            7
            "#]],
        );
    }

    #[test]
    fn an_empty_topic_list_says_so() {
        assert_eq!(
            topic_list_table(&TopicListView::new(Vec::new())),
            "no topics\n"
        );
    }
}
