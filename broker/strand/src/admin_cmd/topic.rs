//! `strand topic create|list|describe|alter|delete`.

use clap::{Args, Subcommand};
use strand_proto::admin::{
    CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest, ListTopicsRequest,
    UpdateTopicRequest,
};

use super::config_arg::{ConfigSetting, parse_key, parse_setting, settings_map};
use super::output::{self, OutputFormat};
use super::topic_view::{
    DELETE_JSON_HELP, DeleteView, TOPIC_JSON_HELP, TOPIC_LIST_JSON_HELP, TopicListView, TopicView,
    delete_table, topic_list_table, topic_table,
};
use super::{Admin, ConnectArgs, block_on};

/// `strand topic …`: the connection options and one subcommand.
#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(flatten)]
    connect: ConnectArgs,

    #[command(subcommand)]
    command: TopicCommand,
}

/// Create, inspect, change and delete topics.
#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic; prints it as `describe` does.
    #[command(after_help = TOPIC_JSON_HELP)]
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        partitions: u32,
        /// Number of replicas of each partition.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        replication_factor: u32,
        /// A topic setting as KEY=VALUE; repeat for several.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_setting)]
        config: Vec<ConfigSetting>,
    },
    /// List topics with their partition count and replication factor.
    #[command(after_help = TOPIC_LIST_JSON_HELP)]
    List,
    /// Show a topic's partitions: leader, replicas, high watermark and log start offset.
    #[command(after_help = TOPIC_JSON_HELP)]
    Describe {
        /// Topic name.
        name: String,
    },
    /// Add partitions, change the replication factor or change settings of a topic; prints it
    /// as `describe` does. A new replication factor is reached by moving replicas in the
    /// background (`strand cluster describe` shows progress).
    #[command(after_help = TOPIC_JSON_HELP)]
    Alter {
        /// Topic name.
        name: String,
        /// New total number of partitions; it can only grow.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        partitions: Option<u32>,
        /// New number of replicas of each partition.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        replication_factor: Option<u32>,
        /// Set a topic setting as KEY=VALUE; repeat for several.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_setting)]
        config: Vec<ConfigSetting>,
        /// Remove a topic setting, returning it to the cluster default; repeat for several.
        #[arg(long = "delete-config", value_name = "KEY", value_parser = parse_key)]
        delete_config: Vec<String>,
    },
    /// Delete a topic; deleting a topic that does not exist is not an error.
    #[command(after_help = DELETE_JSON_HELP)]
    Delete {
        /// Topic name.
        name: String,
    },
}

/// Runs one `strand topic` command.
pub fn run_topic(args: TopicArgs) -> anyhow::Result<()> {
    let TopicArgs { connect, command } = args;
    // Argument checks happen here, before connecting, so a typo never reaches the cluster.
    let request = Request::try_from(command)?;
    let format = connect.output;
    block_on(async move {
        let mut admin = Admin::connect(&connect.server).await?;
        request.send(&mut admin, format).await
    })
}

/// A checked topic command, ready to send.
enum Request {
    Create(CreateTopicRequest),
    List,
    Describe(DescribeTopicRequest),
    Alter(UpdateTopicRequest),
    Delete(DeleteTopicRequest),
}

impl TryFrom<TopicCommand> for Request {
    type Error = anyhow::Error;

    fn try_from(command: TopicCommand) -> anyhow::Result<Self> {
        Ok(match command {
            TopicCommand::Create {
                name,
                partitions,
                replication_factor,
                config,
            } => Self::Create(CreateTopicRequest {
                name,
                partitions,
                replication_factor,
                config: settings_map(config)?,
                owner: String::new(),
            }),
            TopicCommand::List => Self::List,
            TopicCommand::Describe { name } => Self::Describe(DescribeTopicRequest { name }),
            TopicCommand::Alter {
                name,
                partitions,
                replication_factor,
                config,
                delete_config,
            } => Self::Alter(alter_request(
                name,
                partitions,
                replication_factor,
                config,
                delete_config,
            )?),
            TopicCommand::Delete { name } => Self::Delete(DeleteTopicRequest {
                name,
                topic_id: String::new(),
                expected_owner: None,
            }),
        })
    }
}

fn alter_request(
    name: String,
    partitions: Option<u32>,
    replication_factor: Option<u32>,
    config: Vec<ConfigSetting>,
    delete_config: Vec<String>,
) -> anyhow::Result<UpdateTopicRequest> {
    if partitions.is_none()
        && replication_factor.is_none()
        && config.is_empty()
        && delete_config.is_empty()
    {
        anyhow::bail!(
            "nothing to alter: pass --partitions, --replication-factor, --config KEY=VALUE or --delete-config KEY"
        );
    }
    let set_config = settings_map(config)?;
    if let Some(key) = delete_config
        .iter()
        .find(|key| set_config.contains_key(*key))
    {
        anyhow::bail!(
            "config key `{key}` is both set with --config and removed with --delete-config"
        );
    }
    Ok(UpdateTopicRequest {
        name,
        partitions,
        set_config,
        remove_config: delete_config,
        replication_factor,
        ..UpdateTopicRequest::default()
    })
}

impl Request {
    async fn send(self, admin: &mut Admin, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            Self::Create(request) => {
                let answer = admin.client.create_topic(request).await;
                let topic = TopicView::from(admin.answer(answer)?);
                output::print(format, &topic, |t| {
                    format!("created topic {}\n{}", t.name, topic_table(t))
                })
            }
            Self::List => {
                let answer = admin.client.list_topics(ListTopicsRequest {}).await;
                let list = TopicListView::new(admin.answer(answer)?.topics);
                output::print(format, &list, topic_list_table)
            }
            Self::Describe(request) => {
                let answer = admin.client.describe_topic(request).await;
                let topic = TopicView::from(admin.answer(answer)?);
                output::print(format, &topic, topic_table)
            }
            Self::Alter(request) => {
                let answer = admin.client.update_topic(request).await;
                let topic = TopicView::from(admin.answer(answer)?);
                output::print(format, &topic, |t| {
                    format!("updated topic {}\n{}", t.name, topic_table(t))
                })
            }
            Self::Delete(request) => {
                let name = request.name.clone();
                let answer = admin.client.delete_topic(request).await;
                let deleted = admin.answer(answer)?.deleted;
                output::print(format, &DeleteView { name, deleted }, delete_table)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alter_without_changes_is_refused() {
        let error = alter_request("t".into(), None, None, Vec::new(), Vec::new()).unwrap_err();
        assert!(error.to_string().starts_with("nothing to alter"), "{error}");
    }

    #[test]
    fn alter_refuses_setting_and_removing_the_same_key() {
        let set = vec![ConfigSetting {
            key: "retention.ms".into(),
            value: "1".into(),
        }];
        let error =
            alter_request("t".into(), None, None, set, vec!["retention.ms".into()]).unwrap_err();
        assert!(error.to_string().contains("`retention.ms`"), "{error}");
    }
}
