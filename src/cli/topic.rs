//! `brook topic create|list|describe|alter|add-partitions|trim|delete`: topic administration on
//! a running server, the verbs `kafka-topics`, `kafka-configs`, `kafka-delete-records` and
//! `rpk topic` users reach for.
//!
//! Settings are named as Kafka names them (`retention.ms`), brook's own names (`retention_ms_max`)
//! being aliases; the server checks names and values (one table, brook-log's), so every door
//! refuses the same things with the same words.

use std::io::Write;

use anyhow::{bail, Context};
use brook_client::proto::{
    ConfigChange, ConfigOperation, Durability, PartitionCompaction, TopicConfig, TopicDescription,
};
use brook_client::NewTopic;
use clap::{Args, Subcommand};

use super::remote::{self, ServerArgs};
use super::{json, table};

#[derive(Debug, Subcommand)]
pub(super) enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition counts.
    List(json::ListArgs),
    /// Show a topic's partitions (offsets, sizes) and settings.
    Describe(DescribeArgs),
    /// Change a topic's settings, live and durably (kafka-configs --alter).
    Alter(AlterArgs),
    /// Grow a topic to more partitions; keyed records then follow the new count, as in Kafka.
    AddPartitions(AddPartitionsArgs),
    /// Delete a topic's records below an offset: the log start moves forward
    /// (kafka-delete-records).
    Trim(TrimArgs),
    /// Delete a topic and all its data.
    Delete(NameArgs),
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// Topic name: [a-zA-Z0-9._-], at most 249 characters.
    name: String,
    /// Number of partitions (default: the server's default).
    #[arg(long, short)]
    partitions: Option<u32>,
    /// A setting that differs from the server's defaults, KEY=VALUE (repeatable), by Kafka's
    /// name or brook's: retention.ms (-1: forever), retention.bytes (-1: no limit),
    /// segment.bytes, segment.ms, max.message.bytes, brook.durability (sync, interval:MS or
    /// none), index.interval.bytes, segment.index.bytes; compaction: cleanup.policy (delete,
    /// compact or compact,delete), min.cleanable.dirty.ratio (0 to 1), min.compaction.lag.ms,
    /// max.compaction.lag.ms, delete.retention.ms.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Succeed without change when the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct DescribeArgs {
    /// Topic name.
    name: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct AlterArgs {
    /// Topic name.
    name: String,
    /// Set a setting, KEY=VALUE (repeatable), by Kafka's name or brook's (see `brook topic
    /// create --help`).
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Drop the topic's own value of a setting, so the server's default applies (repeatable).
    #[arg(long = "delete", short = 'd', value_name = "KEY")]
    delete: Vec<String>,
    /// Only check that the change would be accepted.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(super) struct PartitionCount {
    /// The new number of partitions in all (kafka-topics --alter --partitions N).
    #[arg(long, value_name = "N")]
    to: Option<u32>,
    /// How many partitions to add (rpk topic add-partitions --num N).
    #[arg(long, short, value_name = "N")]
    num: Option<u32>,
}

#[derive(Debug, Args)]
pub(super) struct AddPartitionsArgs {
    /// Topic name.
    name: String,
    #[command(flatten)]
    count: PartitionCount,
    /// Only check that the topic could grow so.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct TrimArgs {
    /// Topic name.
    name: String,
    /// Delete the records below this offset (the new log start), or below the high watermark
    /// with `end`.
    #[arg(long, value_name = "OFFSET|end")]
    before: String,
    /// Only this partition (default: every partition of the topic).
    #[arg(long, short)]
    partition: Option<u32>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct NameArgs {
    /// Topic name.
    name: String,
    #[command(flatten)]
    server: ServerArgs,
}

impl TopicCommand {
    pub(super) fn run(self) -> anyhow::Result<std::process::ExitCode> {
        remote::run(async move {
            let mut out = std::io::stdout().lock();
            match self {
                TopicCommand::Create(args) => {
                    let mut configs = std::collections::BTreeMap::new();
                    for setting in &args.config {
                        let (key, value) = key_value(setting)?;
                        configs.insert(key.to_owned(), value.to_owned());
                    }
                    let topic = NewTopic {
                        name: args.name,
                        partitions: args.partitions.unwrap_or(0),
                        configs,
                        if_not_exists: args.if_not_exists,
                        ..NewTopic::default()
                    };
                    let admin = args.server.connect().await?.admin();
                    let created = admin.create_topic(topic).await?;
                    let n = created.partitions.len();
                    let plural = if n == 1 { "" } else { "s" };
                    writeln!(
                        out,
                        "created topic {} with {n} partition{plural}",
                        created.name
                    )?;
                }
                TopicCommand::List(args) => {
                    let topics = args.server.connect().await?.admin().list_topics().await?;
                    if args.json {
                        json::print(&mut out, &json::topics(&topics))?;
                        return Ok(());
                    }
                    let rows: Vec<Vec<String>> = topics
                        .into_iter()
                        .map(|t| vec![t.name, t.partition_count.to_string()])
                        .collect();
                    table::write(&mut out, &["TOPIC", "PARTITIONS"], &rows)?;
                }
                TopicCommand::Describe(args) => {
                    let admin = args.server.connect().await?.admin();
                    let topic = admin.describe_topic(&args.name).await?;
                    if args.json {
                        let settings = topic.config.as_ref().map(settings).unwrap_or_default();
                        json::print(&mut out, &json::topic(&topic, &settings))?;
                    } else {
                        describe(&mut out, &topic)?;
                    }
                }
                TopicCommand::Alter(args) => alter(&mut out, args).await?,
                TopicCommand::AddPartitions(args) => {
                    let admin = args.server.connect().await?.admin();
                    let to = match (args.count.to, args.count.num) {
                        (Some(to), _) => to,
                        (None, Some(num)) => {
                            let now = admin.describe_topic(&args.name).await?.partitions.len();
                            u32::try_from(now)
                                .ok()
                                .and_then(|now| now.checked_add(num))
                                .context("--num: too many partitions")?
                        }
                        (None, None) => bail!("say --to N or --num N"),
                    };
                    let topic = admin.add_partitions(&args.name, to, args.dry_run).await?;
                    let verb = if args.dry_run { "would grow" } else { "grew" };
                    writeln!(out, "{verb} topic {} to {to} partitions", topic.name)?;
                }
                TopicCommand::Trim(args) => {
                    let before = match args.before.as_str() {
                        "end" => None,
                        offset => Some(offset.parse::<u64>().with_context(|| {
                            format!("--before {offset:?}: not an offset or `end`")
                        })?),
                    };
                    let admin = args.server.connect().await?.admin();
                    let starts = admin
                        .delete_records(&args.name, args.partition, before)
                        .await?;
                    let rows: Vec<Vec<String>> = starts
                        .iter()
                        .map(|p| vec![p.partition.to_string(), p.log_start_offset.to_string()])
                        .collect();
                    table::write(&mut out, &["PARTITION", "LOG-START"], &rows)?;
                }
                TopicCommand::Delete(args) => {
                    let admin = args.server.connect().await?.admin();
                    admin.delete_topic(&args.name).await?;
                    writeln!(out, "deleted topic {}", args.name)?;
                }
            }
            Ok(())
        })
    }
}

/// `brook topic alter`: every `-c` a SET, every `-d` a DELETE, sent as one all-or-nothing
/// change; prints the topic's own settings afterwards.
async fn alter(out: &mut impl Write, args: AlterArgs) -> anyhow::Result<()> {
    if args.config.is_empty() && args.delete.is_empty() {
        bail!("nothing to change: say -c KEY=VALUE or -d KEY");
    }
    let mut changes = Vec::with_capacity(args.config.len() + args.delete.len());
    for setting in &args.config {
        let (key, value) = key_value(setting)?;
        changes.push(ConfigChange {
            key: key.to_owned(),
            operation: ConfigOperation::Set.into(),
            value: value.to_owned(),
        });
    }
    for key in args.delete {
        changes.push(ConfigChange {
            key,
            operation: ConfigOperation::Delete.into(),
            value: String::new(),
        });
    }
    let admin = args.server.connect().await?.admin();
    let topic = admin
        .alter_topic_config(&args.name, changes, args.dry_run)
        .await?;
    let verb = if args.dry_run {
        "would alter"
    } else {
        "altered"
    };
    writeln!(out, "{verb} topic {}", topic.name)?;
    writeln!(out, "overrides:  {}", overrides(&topic))?;
    Ok(())
}

/// The settings a topic sets itself, by Kafka's name: `retention.ms=-1 cleanup.policy=compact`.
fn overrides(topic: &TopicDescription) -> String {
    let own: Vec<String> = topic
        .configs
        .iter()
        .filter(|c| c.overridden)
        .map(|c| format!("{}={}", c.key, c.value))
        .collect();
    if own.is_empty() {
        "-".into()
    } else {
        own.join(" ")
    }
}

fn describe(out: &mut impl Write, topic: &TopicDescription) -> anyhow::Result<()> {
    writeln!(out, "topic:      {}", topic.name)?;
    writeln!(out, "id:         {}", topic.topic_id)?;
    writeln!(out, "partitions: {}", topic.partitions.len())?;
    if let Some(config) = &topic.config {
        let settings: Vec<String> = settings(config)
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        writeln!(out, "settings:   {}", settings.join(" "))?;
    }
    writeln!(out, "overrides:  {}", overrides(topic))?;
    writeln!(out)?;
    // A compacted topic also shows what the cleaner did to each partition.
    let compacted = topic.partitions.iter().any(|p| p.compaction.is_some());
    let rows: Vec<Vec<String>> = topic
        .partitions
        .iter()
        .map(|p| {
            let mut row = vec![
                p.partition.to_string(),
                p.log_start_offset.to_string(),
                p.high_watermark.to_string(),
                p.log_end_offset.to_string(),
                p.size_bytes.to_string(),
                p.segment_count.to_string(),
            ];
            if compacted {
                row.extend(compaction_columns(p.compaction.as_ref()));
            }
            row
        })
        .collect();
    let mut header = vec![
        "PARTITION",
        "LOG-START",
        "HIGH-WATERMARK",
        "LOG-END",
        "SIZE-BYTES",
        "SEGMENTS",
    ];
    if compacted {
        header.extend([
            "DIRTY-RATIO",
            "CLEANS",
            "RECLAIMED-BYTES",
            "KEYS",
            "CLEANING",
        ]);
    }
    table::write(out, &header, &rows)?;
    Ok(())
}

/// The cleaner's figures for one partition: dirty ratio, cleans, bytes reclaimed, keys in its
/// key index, and the progress of a clean running now (`-` when idle).
fn compaction_columns(compaction: Option<&PartitionCompaction>) -> Vec<String> {
    let Some(c) = compaction else {
        return vec!["-".into(); 5];
    };
    let ratio = if c.cleanable_bytes == 0 {
        0.0
    } else {
        c.dirty_bytes as f64 / c.cleanable_bytes as f64
    };
    let cleaning = match (c.progress_bytes * 100).checked_div(c.progress_total_bytes) {
        Some(percent) => format!("{percent}%"),
        None => "-".to_owned(),
    };
    vec![
        format!("{ratio:.2}"),
        c.cleans.to_string(),
        c.bytes_reclaimed.to_string(),
        c.keys.to_string(),
        cleaning,
    ]
}

/// The settings a description holds, as `(key, value)` text, in the order of `--config`'s help.
fn settings(config: &TopicConfig) -> Vec<(&'static str, String)> {
    let text = |value: Option<String>| value.unwrap_or_else(|| "-".into());
    let durability = match config.durability() {
        Durability::Sync => "sync".to_owned(),
        Durability::None => "none".to_owned(),
        Durability::Interval => {
            format!(
                "interval:{}",
                text(config.durability_interval_ms.map(|ms| ms.to_string()))
            )
        }
        Durability::Unspecified => "-".to_owned(),
    };
    vec![
        (
            "segment_bytes_max",
            text(config.segment_bytes_max.map(|v| v.to_string())),
        ),
        (
            "segment_ms_max",
            text(config.segment_ms_max.map(|v| v.to_string())),
        ),
        (
            "retention_bytes_max",
            text(config.retention_bytes_max.map(|v| v.to_string())),
        ),
        (
            "retention_ms_max",
            text(config.retention_ms_max.map(|v| v.to_string())),
        ),
        (
            "message_bytes_max",
            text(config.message_bytes_max.map(|v| v.to_string())),
        ),
        ("durability", durability),
        (
            "index_interval_bytes",
            text(config.index_interval_bytes.map(|v| v.to_string())),
        ),
        (
            "index_bytes_max",
            text(config.index_bytes_max.map(|v| v.to_string())),
        ),
        ("cleanup.policy", text(config.cleanup_policy.clone())),
        (
            "min.cleanable.dirty.ratio",
            text(config.min_cleanable_dirty_ratio.map(|v| v.to_string())),
        ),
        (
            "min.compaction.lag.ms",
            text(config.min_compaction_lag_ms.map(|v| v.to_string())),
        ),
        (
            "max.compaction.lag.ms",
            text(config.max_compaction_lag_ms.map(|v| v.to_string())),
        ),
        (
            "delete.retention.ms",
            text(config.delete_retention_ms.map(|v| v.to_string())),
        ),
    ]
}

/// Splits one `KEY=VALUE`; the server checks the key and the value.
fn key_value(setting: &str) -> anyhow::Result<(&str, &str)> {
    match setting.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key, value)),
        _ => bail!("--config {setting:?}: expected KEY=VALUE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_split_at_the_first_equals_sign() {
        assert_eq!(
            key_value("retention.ms=-1").expect("split"),
            ("retention.ms", "-1")
        );
        assert_eq!(
            key_value("brook.durability=interval:50").expect("split"),
            ("brook.durability", "interval:50")
        );
        assert_eq!(key_value("x=a=b").expect("split"), ("x", "a=b"));
        for bad in ["nonsense", "=1"] {
            let err = key_value(bad).expect_err(bad);
            assert!(err.to_string().contains("expected KEY=VALUE"), "{err}");
        }
    }

    #[test]
    fn effective_settings_show_durability_with_its_interval() {
        let mut config = TopicConfig {
            durability_interval_ms: Some(50),
            cleanup_policy: Some("compact".into()),
            ..TopicConfig::default()
        };
        config.set_durability(Durability::Interval);
        let shown = settings(&config);
        assert!(shown.contains(&("durability", "interval:50".to_owned())));
        assert!(shown.contains(&("cleanup.policy", "compact".to_owned())));
    }
}
