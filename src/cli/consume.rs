//! `brook consume TOPIC`: print a topic's records, from chosen partitions or as a consumer-group
//! member, once (up to the end of the log as it was when the command started) or following new
//! records until interrupted.
//!
//! - Where to start: `--offset N` (with `--partition`), `--from-beginning`, else the end of
//!   the log (only new records; useful with `--follow`). With `--group`, each partition starts
//!   at the group's committed offset, and those flags only say where a partition without one
//!   starts.
//! - When to stop: without `--follow`, once every partition read has reached the high
//!   watermark it had at the start; after `--max N` records; on Ctrl-C.
//! - With `--group`, what was printed is committed on exit (and every 5 s while following), so
//!   the next run of the group resumes after it.
//!
//! `--format text` writes each value's bytes as they are, one per line (with
//! `--key-separator SEP`: key, SEP, value). `--format json` writes one object per line:
//! `{"topic","partition","offset","timestamp","key","value","headers"}`, where a key or value
//! is a string when it is UTF-8, `null` when null, and `{"hex": "..."}` otherwise; headers are
//! `[name, value]` pairs in order.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::bail;
use brook_client::proto::TopicDescription;
use brook_client::{
    Assignment, Client, ConsumerConfig, ConsumerEvent, ConsumerRecord, OffsetReset, RecordStream,
    StartAt, TopicPartition,
};
use bytes::Bytes;
use clap::{Args, ValueEnum};

use super::remote::{self, ServerArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The value's bytes, one record per line.
    Text,
    /// One JSON object per record and line.
    Json,
}

#[derive(Debug, Args)]
pub(super) struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Start at the first retained offset (with --group: where the group has no commit).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset (needs --partition).
    #[arg(long, requires = "partition")]
    offset: Option<u64>,
    /// Read only this partition (default: all).
    #[arg(long)]
    partition: Option<u32>,
    /// Consume as a member of this consumer group, committing what was printed.
    #[arg(long, conflicts_with_all = ["partition", "offset"])]
    group: Option<String>,
    /// Keep waiting for new records instead of stopping at the end of the log.
    #[arg(long, short)]
    follow: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    max: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Text format: print the key, SEP, then the value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Where each partition still being read has to get to before a run without `--follow` ends.
type Ends = BTreeMap<TopicPartition, u64>;

impl ConsumeArgs {
    pub(super) fn run(self) -> anyhow::Result<std::process::ExitCode> {
        remote::run(self.consume())
    }

    async fn consume(self) -> anyhow::Result<()> {
        let client = self.server.connect().await?;
        let topic = client.admin().describe_topic(&self.topic).await?;
        if let Some(p) = self.partition {
            if p as usize >= topic.partitions.len() {
                bail!(
                    "topic {} has no partition {p} (it has {})",
                    self.topic,
                    topic.partitions.len()
                );
            }
        }
        if self.max == Some(0) {
            return Ok(());
        }
        let (mut stream, mut ends) = match &self.group {
            Some(group) => (self.join(&client, group).await?, None),
            None => {
                let (stream, ends) = self.assign(&client, &topic).await?;
                (stream, Some(ends))
            }
        };
        let mut out = std::io::stdout().lock();
        let mut printed = 0u64;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        while !self.at_end(ends.as_ref(), &stream) {
            let event = tokio::select! {
                event = stream.next_event() => event,
                _ = &mut interrupted => break,
            };
            match event {
                None => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(ConsumerEvent::Assignment(assignment))) => {
                    let positions = stream.positions().clone();
                    ends = if releasing(&client, &assignment).await? {
                        // Not at the end: partitions are on their way to this member.
                        None
                    } else {
                        let ends = group_ends(
                            &client,
                            &assignment.group,
                            &topic,
                            self.reset(),
                            &assignment.partitions,
                            &positions,
                        );
                        Some(ends.await?)
                    };
                }
                Some(Ok(ConsumerEvent::Record(record))) => {
                    self.print(&mut out, &record)?;
                    if self.follow {
                        out.flush()?;
                    }
                    printed += 1;
                    if self.max == Some(printed) {
                        break;
                    }
                }
            }
        }
        out.flush()?;
        if self.group.is_some() {
            stream.commit().await?;
        }
        Ok(())
    }

    /// Whether a run without `--follow` has read everything it meant to.
    fn at_end(&self, ends: Option<&Ends>, stream: &RecordStream) -> bool {
        let Some(ends) = ends else {
            return false;
        };
        !self.follow
            && ends
                .iter()
                .all(|(tp, end)| stream.positions().get(tp).is_some_and(|p| p >= end))
    }

    fn reset(&self) -> OffsetReset {
        if self.from_beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        }
    }

    async fn join(&self, client: &Client, group: &str) -> anyhow::Result<RecordStream> {
        let mut config = ConsumerConfig::group(group);
        config.reset = self.reset();
        Ok(client
            .consumer(config)?
            .subscribe([self.topic.as_str()])
            .await?)
    }

    /// Partition mode: reads the chosen partitions; ends are their high watermarks now, for
    /// the partitions that start below theirs.
    async fn assign(
        &self,
        client: &Client,
        topic: &TopicDescription,
    ) -> anyhow::Result<(RecordStream, Ends)> {
        let mut partitions = Vec::new();
        let mut ends = Ends::new();
        for p in &topic.partitions {
            if self.partition.is_some_and(|only| only != p.partition) {
                continue;
            }
            let (start, from) = match (self.offset, self.from_beginning) {
                (Some(offset), _) => (StartAt::Offset(offset), offset),
                (None, true) => (StartAt::Earliest, p.log_start_offset),
                (None, false) => (StartAt::Latest, p.high_watermark),
            };
            let tp = TopicPartition::new(self.topic.as_str(), p.partition);
            if from < p.high_watermark {
                ends.insert(tp.clone(), p.high_watermark);
            }
            partitions.push((tp, start));
        }
        let consumer = client.consumer(ConsumerConfig::default())?;
        Ok((consumer.assign(partitions).await?, ends))
    }

    fn print(&self, out: &mut impl Write, record: &ConsumerRecord) -> anyhow::Result<()> {
        match self.format {
            Format::Text => {
                if let Some(separator) = &self.key_separator {
                    out.write_all(record.key.as_deref().unwrap_or_default())?;
                    out.write_all(separator.as_bytes())?;
                }
                out.write_all(record.value.as_deref().unwrap_or_default())?;
                out.write_all(b"\n")?;
            }
            Format::Json => {
                serde_json::to_writer(&mut *out, &to_json(record))?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

/// Whether the group assigned this member partitions it does not own yet (their previous
/// owner is still releasing them): ownership, not the assignment, is what an assignment event
/// carries.
async fn releasing(client: &Client, assignment: &Assignment) -> anyhow::Result<bool> {
    let group = client.admin().describe_group(&assignment.group).await?;
    let Some(member) = group
        .members
        .iter()
        .find(|m| m.member_id == assignment.member_id)
    else {
        return Ok(false);
    };
    let assigned = member
        .assigned
        .iter()
        .map(|t| t.partitions.len())
        .sum::<usize>();
    Ok(assigned > assignment.partitions.len())
}

/// Group mode, after an assignment: where each assigned partition of `topic` starts (this
/// run's position, else the group's commit, else `reset`), and so which still have records
/// below the high watermark they had when the command started.
async fn group_ends(
    client: &Client,
    group: &str,
    topic: &TopicDescription,
    reset: OffsetReset,
    assigned: &[TopicPartition],
    positions: &BTreeMap<TopicPartition, u64>,
) -> anyhow::Result<Ends> {
    let committed = client.admin().fetch_offsets(group, assigned).await?;
    let mut ends = Ends::new();
    for tp in assigned {
        let Some(p) = topic
            .partitions
            .iter()
            .find(|p| p.partition == tp.partition)
        else {
            continue;
        };
        let commit = committed
            .iter()
            .find(|c| c.topic == *tp.topic && c.partition == tp.partition)
            .map(|c| c.offset);
        let start = positions
            .get(tp)
            .copied()
            .or(commit)
            .unwrap_or(match reset {
                OffsetReset::Earliest => p.log_start_offset,
                OffsetReset::Latest => p.high_watermark,
            });
        if start < p.high_watermark {
            ends.insert(tp.clone(), p.high_watermark);
        }
    }
    Ok(ends)
}

fn to_json(record: &ConsumerRecord) -> serde_json::Value {
    let headers: Vec<serde_json::Value> = record
        .headers
        .iter()
        .map(|(name, value)| serde_json::json!([name, json_bytes(Some(value))]))
        .collect();
    serde_json::json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": json_bytes(record.key.as_ref()),
        "value": json_bytes(record.value.as_ref()),
        "headers": headers,
    })
}

/// A string when the bytes are UTF-8, `null` when absent, else `{"hex": "..."}`.
fn json_bytes(bytes: Option<&Bytes>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::Value::String(text.to_owned()),
            Err(_) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                serde_json::json!({ "hex": hex })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_text_null_and_binary_apart() {
        let record = ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp_ms: 42,
            key: None,
            value: Some(Bytes::from_static(&[0xff, 0x00])),
            headers: vec![("h".into(), Bytes::from_static(b"v"))],
        };
        assert_eq!(
            to_json(&record).to_string(),
            r#"{"headers":[["h","v"]],"key":null,"offset":7,"partition":1,"timestamp":42,"topic":"t","value":{"hex":"ff00"}}"#
        );
    }
}
