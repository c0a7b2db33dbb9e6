//! `strand apply -f FILE|DIR [--dry-run]`: applies Topic YAML, the same documents the operator
//! takes, to any Strand cluster through the admin API, without Kubernetes.
//!
//! The Topic spec is read by a serde type of its own that mirrors the CRD's spec (the operator
//! crate would bring Kubernetes into the broker's command line); config values are checked
//! with `strand-meta`'s key table, the one the metadata group and the CRD schema follow.
//! Every file is read and checked before the first call, so a bad document changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Deserialize;
use strand_meta::{TopicKind, check_entry, validate_topic_name};
use strand_proto::admin::{
    CreateTopicRequest, ListTopicsRequest, TopicDescription, UpdateTopicRequest,
};

use crate::admin_cmd::{Admin, DEFAULT_SERVER, block_on};

/// The API version of the Topic resource this command reads.
const API_VERSION: &str = "strand.dev/v1alpha1";

/// `strand apply`: the files to apply and where.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A YAML file of Topic documents, or a directory of `.yaml` / `.yml` files; repeat for
    /// several.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    paths: Vec<PathBuf>,

    /// Show what would be created or changed, and change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Admin gRPC address of any broker, as HOST:PORT.
    #[arg(long, env = "STRAND_SERVER", default_value = DEFAULT_SERVER, value_name = "HOST:PORT")]
    server: String,
}

/// One YAML document, as far as telling a Topic from anything else needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
}

/// The spec of a Topic resource, mirroring the CRD's: unknown fields are refused, as the API
/// server refuses them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TopicSpec {
    /// Read so the same YAML passes; a cluster is whatever `--server` names.
    #[serde(default)]
    #[allow(dead_code)]
    cluster_ref: Option<serde_json::Value>,
    #[serde(default)]
    topic_name: Option<String>,
    partitions: i64,
    replication_factor: i64,
    #[serde(default)]
    config: BTreeMap<String, serde_json::Value>,
    /// Read so the same YAML passes; it matters only when a Topic object is deleted.
    #[serde(default)]
    #[allow(dead_code)]
    deletion_policy: Option<String>,
}

/// A topic as the files declare it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DesiredTopic {
    /// `FILE, document N`, for messages.
    source: String,
    name: String,
    partitions: u32,
    replication_factor: u32,
    config: BTreeMap<String, String>,
}

/// What applying one topic takes.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// The topic does not exist.
    Create(CreateTopicRequest),
    /// The topic differs; one line per change.
    Update(UpdateTopicRequest, Vec<String>),
    /// The topic matches.
    Unchanged,
}

/// Runs `strand apply`.
pub fn run(args: ApplyArgs) -> anyhow::Result<()> {
    let topics = read_all(&args.paths)?;
    if topics.is_empty() {
        println!("no Topic documents found");
        return Ok(());
    }
    block_on(apply(&args.server, topics, args.dry_run))
}

async fn apply(server: &str, topics: Vec<DesiredTopic>, dry_run: bool) -> anyhow::Result<()> {
    let mut admin = Admin::connect(server).await?;
    let listed = admin.client.list_topics(ListTopicsRequest {}).await;
    let existing: BTreeMap<String, TopicDescription> = admin
        .answer(listed)?
        .topics
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let prefix = if dry_run { "(dry run) " } else { "" };
    let mut failed = Vec::new();
    for topic in &topics {
        let step = match plan(topic, existing.get(&topic.name)) {
            Ok(step) => step,
            Err(error) => {
                eprintln!("error: {error}");
                failed.push(topic.name.clone());
                continue;
            }
        };
        let result = match step {
            Step::Unchanged => {
                println!("{prefix}{}: unchanged", topic.name);
                Ok(())
            }
            Step::Create(request) => {
                println!(
                    "{prefix}created topic {} ({} partitions, RF {})",
                    topic.name, request.partitions, request.replication_factor
                );
                if dry_run {
                    Ok(())
                } else {
                    let created = admin.client.create_topic(request).await;
                    admin.answer(created).map(drop)
                }
            }
            Step::Update(request, changes) => {
                for change in &changes {
                    println!("{prefix}{}: {change}", topic.name);
                }
                if dry_run {
                    Ok(())
                } else {
                    let updated = admin.client.update_topic(request).await;
                    admin.answer(updated).map(drop)
                }
            }
        };
        if let Err(error) = result {
            eprintln!("error: topic {}: {error}", topic.name);
            failed.push(topic.name.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} topics not applied: {}",
            failed.len(),
            topics.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The step that brings `observed` (`None` when the topic does not exist) to `desired`, or
/// why it cannot be taken.
fn plan(desired: &DesiredTopic, observed: Option<&TopicDescription>) -> anyhow::Result<Step> {
    let Some(observed) = observed else {
        return Ok(Step::Create(CreateTopicRequest {
            name: desired.name.clone(),
            partitions: desired.partitions,
            replication_factor: desired.replication_factor,
            config: desired.config.clone().into_iter().collect(),
            owner: String::new(),
        }));
    };
    let name = &desired.name;
    let actual = u32::try_from(observed.partitions.len()).unwrap_or(u32::MAX);
    if desired.partitions < actual {
        bail!(
            "{}: topic {name} has {actual} partitions and the file asks for {}; partitions can \
             only grow",
            desired.source,
            desired.partitions
        );
    }
    let mut request = UpdateTopicRequest {
        name: name.clone(),
        ..UpdateTopicRequest::default()
    };
    let mut changes = Vec::new();
    if desired.replication_factor != observed.replication_factor {
        request.replication_factor = Some(desired.replication_factor);
        changes.push(format!(
            "replication factor {} → {} (replicas move in the background)",
            observed.replication_factor, desired.replication_factor
        ));
    }
    if desired.partitions > actual {
        request.partitions = Some(desired.partitions);
        changes.push(format!("partitions {actual} → {}", desired.partitions));
    }
    for (key, value) in &desired.config {
        match observed.config.get(key) {
            Some(old) if old == value => continue,
            Some(old) => changes.push(format!("{key} {old} → {value}")),
            None => changes.push(format!("{key} (default) → {value}")),
        }
        request.set_config.insert(key.clone(), value.clone());
    }
    let observed_keys: BTreeSet<&String> = observed.config.keys().collect();
    for key in observed_keys {
        if !desired.config.contains_key(key) {
            changes.push(format!("{key} {} → (default)", observed.config[key]));
            request.remove_config.push(key.clone());
        }
    }
    if changes.is_empty() {
        Ok(Step::Unchanged)
    } else {
        Ok(Step::Update(request, changes))
    }
}

/// Every Topic in `paths`, checked; notes on standard error for documents of other kinds.
fn read_all(paths: &[PathBuf]) -> anyhow::Result<Vec<DesiredTopic>> {
    let mut topics: Vec<DesiredTopic> = Vec::new();
    for path in paths {
        for file in files(path)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            for topic in parse(&file.display().to_string(), &text)? {
                if let Some(other) = topics.iter().find(|t| t.name == topic.name) {
                    bail!(
                        "topic {} is declared twice: {} and {}",
                        topic.name,
                        other.source,
                        topic.source
                    );
                }
                topics.push(topic);
            }
        }
    }
    Ok(topics)
}

/// `path` itself, or the `.yaml` and `.yml` files directly in it, sorted by name.
fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let file = entry?.path();
        let yaml = file
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// The Topics in one file's YAML stream.
fn parse(file: &str, text: &str) -> anyhow::Result<Vec<DesiredTopic>> {
    let documents: Vec<Option<Document>> = serde_saphyr::from_multiple(text)
        .with_context(|| format!("{file}: not valid YAML documents"))?;
    let mut topics = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let source = format!("{file}, document {}", index + 1);
        // An empty document (a trailing `---`) holds nothing.
        let Some(document) = document else { continue };
        match (document.kind.as_deref(), document.api_version.as_deref()) {
            (Some("Topic"), Some(API_VERSION)) => topics.push(topic(&source, document)?),
            (Some("Topic"), other) => bail!(
                "{source}: a Topic of apiVersion {} is not understood; expected {API_VERSION}",
                other.unwrap_or("(none)")
            ),
            (kind, _) => eprintln!(
                "note: {source}: skipping a {} document; only Topics are applied",
                kind.unwrap_or("kindless")
            ),
        }
    }
    Ok(topics)
}

fn topic(source: &str, document: Document) -> anyhow::Result<DesiredTopic> {
    let spec = document
        .spec
        .with_context(|| format!("{source}: the Topic has no spec"))?;
    let spec: TopicSpec = serde_json::from_value(spec)
        .with_context(|| format!("{source}: the Topic's spec is not valid"))?;
    let name = spec
        .topic_name
        .clone()
        .or(document.metadata.name)
        .with_context(|| {
            format!("{source}: the Topic has neither spec.topicName nor metadata.name")
        })?;
    validate_topic_name(&name, TopicKind::User)
        .map_err(|error| anyhow::anyhow!("{source}: topic name `{name}` is not valid: {error}"))?;
    let partitions = u32::try_from(spec.partitions)
        .ok()
        .filter(|p| *p >= 1)
        .with_context(|| {
            format!(
                "{source}: spec.partitions is {}; it must be at least 1",
                spec.partitions
            )
        })?;
    let replication_factor = u32::try_from(spec.replication_factor)
        .ok()
        .filter(|rf| (1..=7).contains(rf))
        .with_context(|| {
            format!(
                "{source}: spec.replicationFactor is {}; it must be 1 to 7",
                spec.replication_factor
            )
        })?;
    let mut config = BTreeMap::new();
    for (key, value) in spec.config {
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => bail!("{source}: spec.config.{key} must be a string or a number, not {other}"),
        };
        check_entry(&key, &value)
            .map_err(|error| anyhow::anyhow!("{source}: spec.config: {error}"))?;
        config.insert(key, value);
    }
    Ok(DesiredTopic {
        source: source.to_owned(),
        name,
        partitions,
        replication_factor,
        config,
    })
}

#[cfg(test)]
mod tests;
