//! `brook consume TOPIC...`: print topics' records, from chosen partitions or as a consumer-group
//! member, once (up to the end of the log as it was when the command started) or following new
//! records until interrupted.
//!
//! - Where to start, kcat and rpk style: `-o/--offset start` (or `beginning`), `end` (the
//!   default: only new records), `N` (that offset in every partition read), `-N` (the last N
//!   records of each partition), `@MS` (the first record with a timestamp at or after MS ms
//!   since the epoch, found by binary search over the partition's record timestamps: exact
//!   when they grow with the offset, as broker-assigned times do). `--from-beginning` is
//!   `-o start`. With `--group`, each partition starts at the group's committed offset, and
//!   `-o start|end` only says where a partition without one starts.
//! - When to stop: without `--follow`, once every partition read has reached the high
//!   watermark it had at the start; after `-n/--max N` records; on Ctrl-C.
//! - While following, a lost connection (a server restart) is retried with a growing pause,
//!   and reading resumes after the last record printed (in a group: from the group's last
//!   commit, so a few records may be printed twice).
//! - With `--group`, what was printed is committed on exit (and every 5 s), so the next run of
//!   the group resumes after it.
//!
//! How records are printed (`-f text|json|FORMAT`, `--key-separator`, `--print-offsets`) is
//! [`super::records`]'.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context as _};
use brook_client::proto::TopicDescription;
use brook_client::{
    Assignment, Client, ClientError, Code, ConsumerConfig, ConsumerEvent, FetchRequest,
    OffsetReset, RecordStream, StartAt, TopicPartition,
};
use clap::Args;

use super::records::{self, Format, TextOptions};
use super::remote::{self, ServerArgs};

/// Where each partition starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    Beginning,
    End,
    Offset(u64),
    /// This many records before the end.
    FromEnd(u64),
    /// The first record at or after this timestamp (ms since the epoch).
    Timestamp(i64),
}

impl std::str::FromStr for Start {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not start, end, an offset, -N (the last N records) or @MS (a \
                 timestamp in ms)"
            )
        };
        match text {
            "start" | "beginning" | "earliest" => Ok(Start::Beginning),
            "end" | "latest" => Ok(Start::End),
            _ => {
                if let Some(ms) = text.strip_prefix('@') {
                    ms.parse().map(Start::Timestamp).map_err(|_| bad())
                } else if let Some(n) = text.strip_prefix('-') {
                    n.parse().map(Start::FromEnd).map_err(|_| bad())
                } else {
                    text.parse().map(Start::Offset).map_err(|_| bad())
                }
            }
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct ConsumeArgs {
    /// Topics to read.
    #[arg(required = true, value_name = "TOPIC")]
    topics: Vec<String>,
    /// Where to start: start, end, OFFSET, -N (the last N records), @MS (a timestamp).
    #[arg(short = 'o', long, value_name = "WHERE", allow_hyphen_values = true)]
    offset: Option<Start>,
    /// Start at the first retained offset (`-o start`).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Read only this partition of each topic (default: all).
    #[arg(short, long)]
    partition: Option<u32>,
    /// Consume as a member of this consumer group, committing what was printed.
    #[arg(short, long, conflicts_with = "partition")]
    group: Option<String>,
    /// Keep waiting for new records instead of stopping at the end of the log.
    #[arg(short = 'F', long)]
    follow: bool,
    /// Stop after this many records.
    #[arg(short = 'n', long, visible_alias = "num", value_name = "N")]
    max: Option<u64>,
    /// text (values, one per line), json (one object per record), or a format such as
    /// '%t/%p@%o %k=%v\n' (%t topic, %p partition, %o offset, %k key, %v value, %h headers,
    /// %T timestamp).
    #[arg(short = 'f', long, default_value = "text", value_name = "FORMAT")]
    format: Format,
    /// Text format: print the key, SEP, then the value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Text format: print PARTITION@OFFSET and a tab before each record.
    #[arg(long)]
    print_offsets: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Where each partition still being read has to get to before a run without `--follow` ends.
type Ends = BTreeMap<TopicPartition, u64>;

/// The longest pause between two reconnection attempts while following.
const RECONNECT_PAUSE_MAX: Duration = Duration::from_secs(5);

impl ConsumeArgs {
    pub(super) fn run(self) -> anyhow::Result<std::process::ExitCode> {
        remote::run(self.consume())
    }

    fn start(&self) -> Start {
        match (self.offset, self.from_beginning) {
            (Some(start), _) => start,
            (None, true) => Start::Beginning,
            (None, false) => Start::End,
        }
    }

    fn text_options(&self) -> TextOptions {
        TextOptions {
            key_separator: self.key_separator.clone(),
            print_offsets: self.print_offsets,
        }
    }

    async fn consume(self) -> anyhow::Result<()> {
        if self.group.is_some() && !matches!(self.start(), Start::Beginning | Start::End) {
            bail!(
                "with --group a partition starts at the group's committed offset; -o can only \
                 say where one without a commit starts (start or end)"
            );
        }
        let mut client = self.server.connect().await?;
        let mut topics = Vec::with_capacity(self.topics.len());
        for name in &self.topics {
            let topic = client.admin().describe_topic(name).await?;
            if let Some(p) = self.partition {
                if p as usize >= topic.partitions.len() {
                    bail!(
                        "topic {name} has no partition {p} (it has {})",
                        topic.partitions.len()
                    );
                }
            }
            topics.push(topic);
        }
        if self.max == Some(0) {
            return Ok(());
        }
        let (mut stream, mut ends) = self.open(&client, &topics, None).await?;
        let text = self.text_options();
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
                Some(Err(e)) if self.follow && lost_connection(&e) => {
                    out.flush()?;
                    let positions = stream.positions().clone();
                    client = reconnect(&e).await?;
                    (stream, ends) = self.open(&client, &topics, Some(&positions)).await?;
                }
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
                            &topics,
                            self.reset(),
                            &assignment.partitions,
                            &positions,
                        );
                        Some(ends.await?)
                    };
                }
                Some(Ok(ConsumerEvent::Record(record))) => {
                    records::write(&mut out, &self.format, &text, &record)?;
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

    /// Opens the stream: a group subscription, or the chosen partitions (resuming at
    /// `positions` after a reconnection). Partition mode also says where each partition ends.
    async fn open(
        &self,
        client: &Client,
        topics: &[TopicDescription],
        positions: Option<&BTreeMap<TopicPartition, u64>>,
    ) -> anyhow::Result<(RecordStream, Option<Ends>)> {
        match &self.group {
            Some(group) => Ok((self.join(client, group).await?, None)),
            None => {
                let (stream, ends) = self.assign(client, topics, positions).await?;
                Ok((stream, Some(ends)))
            }
        }
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
        if self.start() == Start::Beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        }
    }

    async fn join(&self, client: &Client, group: &str) -> anyhow::Result<RecordStream> {
        let mut config = ConsumerConfig::group(group);
        config.reset = self.reset();
        Ok(client.consumer(config)?.subscribe(&self.topics).await?)
    }

    /// Partition mode: reads the chosen partitions; ends are their high watermarks now, for
    /// the partitions that start below theirs.
    async fn assign(
        &self,
        client: &Client,
        topics: &[TopicDescription],
        positions: Option<&BTreeMap<TopicPartition, u64>>,
    ) -> anyhow::Result<(RecordStream, Ends)> {
        let mut partitions = Vec::new();
        let mut ends = Ends::new();
        for topic in topics {
            for p in &topic.partitions {
                if self.partition.is_some_and(|only| only != p.partition) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.as_str(), p.partition);
                let resumed = positions.and_then(|positions| positions.get(&tp)).copied();
                let from = match (resumed, self.start()) {
                    (Some(position), _) => position,
                    (None, Start::Beginning) => p.log_start_offset,
                    (None, Start::End) => p.high_watermark,
                    (None, Start::Offset(offset)) => offset,
                    (None, Start::FromEnd(n)) => {
                        p.high_watermark.saturating_sub(n).max(p.log_start_offset)
                    }
                    (None, Start::Timestamp(ms)) => {
                        let range = (p.log_start_offset, p.high_watermark);
                        offset_at(client, &tp, range, ms).await?
                    }
                };
                let start = match (resumed, self.start()) {
                    (None, Start::Beginning) => StartAt::Earliest,
                    (None, Start::End) => StartAt::Latest,
                    _ => StartAt::Offset(from),
                };
                if from < p.high_watermark {
                    ends.insert(tp.clone(), p.high_watermark);
                }
                partitions.push((tp, start));
            }
        }
        let consumer = client.consumer(ConsumerConfig::default())?;
        Ok((consumer.assign(partitions).await?, ends))
    }
}

/// The first offset in `[start, end)` of `tp` whose record's timestamp is at least `ms` (`end`
/// when there is none), by binary search: one small fetch per step.
async fn offset_at(
    client: &Client,
    tp: &TopicPartition,
    (start, end): (u64, u64),
    ms: i64,
) -> anyhow::Result<u64> {
    let (mut low, mut high) = (start, end);
    while low < high {
        let middle = low + (high - low) / 2;
        let mut request = FetchRequest::new(tp.topic.to_string(), tp.partition, middle);
        request.max_bytes = 1;
        let fetched = client
            .fetch(request)
            .await
            .with_context(|| format!("cannot look up @{ms} in {}/{}", tp.topic, tp.partition))?;
        match fetched.records.first() {
            // Records at `middle` and after it are older: the answer is further on.
            Some(record) if record.timestamp_ms < ms => low = record.offset.max(middle) + 1,
            Some(_) => high = middle,
            // Nothing readable from `middle` (removed, or past the end): look before it.
            None => high = middle,
        }
    }
    Ok(low)
}

/// Whether `e` means the connection to the server went away (a restart, a network cut), so
/// following should reconnect rather than stop.
fn lost_connection(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

/// Connects again after `lost`, with a pause that doubles up to [`RECONNECT_PAUSE_MAX`]; gives
/// up only on Ctrl-C.
async fn reconnect(lost: &ClientError) -> anyhow::Result<Client> {
    let mut pause = Duration::from_millis(100);
    let _ = writeln!(
        std::io::stderr(),
        "brook: connection lost ({lost}); reconnecting"
    );
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = tokio::signal::ctrl_c() => bail!("interrupted while reconnecting"),
        }
        match remote::connect().await {
            Ok(client) => {
                let _ = writeln!(std::io::stderr(), "brook: reconnected; resuming");
                return Ok(client);
            }
            Err(_) => pause = (pause * 2).min(RECONNECT_PAUSE_MAX),
        }
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

/// Group mode, after an assignment: where each assigned partition starts (this run's position,
/// else the group's commit, else `reset`), and so which still have records below the high
/// watermark they had when the command started.
async fn group_ends(
    client: &Client,
    group: &str,
    topics: &[TopicDescription],
    reset: OffsetReset,
    assigned: &[TopicPartition],
    positions: &BTreeMap<TopicPartition, u64>,
) -> anyhow::Result<Ends> {
    let committed = client.admin().fetch_offsets(group, assigned).await?;
    let mut ends = Ends::new();
    for tp in assigned {
        let Some(p) = topics
            .iter()
            .filter(|t| t.name == *tp.topic)
            .flat_map(|t| &t.partitions)
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
                _ => p.high_watermark,
            });
        if start < p.high_watermark {
            ends.insert(tp.clone(), p.high_watermark);
        }
    }
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::Start;

    #[test]
    fn starts_read_as_kcat_and_rpk_write_them() {
        assert_eq!("start".parse(), Ok(Start::Beginning));
        assert_eq!("beginning".parse(), Ok(Start::Beginning));
        assert_eq!("end".parse(), Ok(Start::End));
        assert_eq!("42".parse(), Ok(Start::Offset(42)));
        assert_eq!("-10".parse(), Ok(Start::FromEnd(10)));
        assert_eq!(
            "@1700000000000".parse(),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert!("soon".parse::<Start>().is_err());
        assert!("-x".parse::<Start>().is_err());
    }
}
