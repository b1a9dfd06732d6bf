//! `brook topic create|list|describe|delete`: topic administration on a running server.

use std::io::Write;

use anyhow::{bail, Context};
use brook_client::proto::{Durability, PartitionCompaction, TopicConfig, TopicDescription};
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
    /// A setting that differs from the server's defaults, KEY=VALUE (repeatable):
    /// segment_bytes_max, segment_ms_max, retention_bytes_max (-1: no limit), retention_ms_max
    /// (-1: forever), message_bytes_max, durability (sync, interval:MS or none),
    /// index_interval_bytes, index_bytes_max; compaction: cleanup.policy (delete, compact or
    /// compact,delete), min.cleanable.dirty.ratio (0 to 1), min.compaction.lag.ms,
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
                    let mut config = TopicConfig::default();
                    for setting in &args.config {
                        apply_setting(&mut config, setting)?;
                    }
                    let topic = NewTopic {
                        name: args.name,
                        partitions: args.partitions.unwrap_or(0),
                        config,
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

/// Applies one `KEY=VALUE` to `config`.
fn apply_setting(config: &mut TopicConfig, setting: &str) -> anyhow::Result<()> {
    let Some((key, value)) = setting.split_once('=') else {
        bail!("--config {setting:?}: expected KEY=VALUE");
    };
    let context = || format!("--config {key}: bad value {value:?}");
    match key {
        "segment_bytes_max" => {
            config.segment_bytes_max = Some(value.parse().with_context(context)?)
        }
        "segment_ms_max" => config.segment_ms_max = Some(value.parse().with_context(context)?),
        "retention_bytes_max" => {
            config.retention_bytes_max = Some(value.parse().with_context(context)?)
        }
        "retention_ms_max" => config.retention_ms_max = Some(value.parse().with_context(context)?),
        "message_bytes_max" => {
            config.message_bytes_max = Some(value.parse().with_context(context)?)
        }
        "index_interval_bytes" => {
            config.index_interval_bytes = Some(value.parse().with_context(context)?)
        }
        "index_bytes_max" => config.index_bytes_max = Some(value.parse().with_context(context)?),
        "cleanup.policy" | "cleanup_policy" => config.cleanup_policy = Some(value.to_owned()),
        "min.cleanable.dirty.ratio" | "min_cleanable_dirty_ratio" => {
            config.min_cleanable_dirty_ratio = Some(value.parse().with_context(context)?)
        }
        "min.compaction.lag.ms" | "min_compaction_lag_ms" => {
            config.min_compaction_lag_ms = Some(value.parse().with_context(context)?)
        }
        "max.compaction.lag.ms" | "max_compaction_lag_ms" => {
            config.max_compaction_lag_ms = Some(value.parse().with_context(context)?)
        }
        "delete.retention.ms" | "delete_retention_ms" => {
            config.delete_retention_ms = Some(value.parse().with_context(context)?)
        }
        "durability" => match value.split_once(':') {
            None if value == "sync" => config.set_durability(Durability::Sync),
            None if value == "none" => config.set_durability(Durability::None),
            Some(("interval", ms)) => {
                config.set_durability(Durability::Interval);
                config.durability_interval_ms = Some(ms.parse().with_context(context)?);
            }
            _ => bail!("--config durability: {value:?} is not sync, interval:MS or none"),
        },
        _ => bail!(
            "--config: unknown setting {key:?} (known: segment_bytes_max, segment_ms_max, \
             retention_bytes_max, retention_ms_max, message_bytes_max, durability, \
             index_interval_bytes, index_bytes_max, cleanup.policy, min.cleanable.dirty.ratio, \
             min.compaction.lag.ms, max.compaction.lag.ms, delete.retention.ms)"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_into_the_topic_config() {
        let mut config = TopicConfig::default();
        apply_setting(&mut config, "retention_ms_max=-1").expect("retention");
        apply_setting(&mut config, "durability=interval:50").expect("durability");
        apply_setting(&mut config, "cleanup.policy=compact").expect("policy");
        apply_setting(&mut config, "min_cleanable_dirty_ratio=0.2").expect("an alias");
        assert_eq!(config.cleanup_policy.as_deref(), Some("compact"));
        assert_eq!(config.min_cleanable_dirty_ratio, Some(0.2));
        assert_eq!(config.retention_ms_max, Some(-1));
        assert_eq!(config.durability(), Durability::Interval);
        assert_eq!(config.durability_interval_ms, Some(50));
        let shown = settings(&config);
        assert!(shown.contains(&("durability", "interval:50".to_owned())));
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let mut config = TopicConfig::default();
        for (setting, expected) in [
            ("nonsense", "expected KEY=VALUE"),
            ("color=blue", "unknown setting \"color\""),
            (
                "segment_bytes_max=lots",
                "--config segment_bytes_max: bad value \"lots\"",
            ),
            ("durability=sometimes", "is not sync, interval:MS or none"),
        ] {
            let err = apply_setting(&mut config, setting).expect_err(setting);
            assert!(err.to_string().contains(expected), "{setting}: {err}");
        }
        assert_eq!(config, TopicConfig::default(), "nothing applied");
    }
}
