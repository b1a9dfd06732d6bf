//! `brook migrate`: moves topics, their records and their groups' committed offsets from one
//! place to another: a brook data directory (offline: no brook may run on it) into a Kafka
//! cluster, a running brook (through its Kafka door, `kafka://HOST:9092`) into a cluster, or,
//! the reverse, a cluster's topics into a data directory to debug them at home.
//!
//! Both sides are a `brook::Backend` (the local log, or a Kafka cluster through librdkafka), so
//! the copy is written once. What it does, per topic (`--topics` picks, default all but
//! internal ones, named `__...`):
//!
//! 1. creates the topic on the target with the same partition count and the settings the
//!    target understands (`brook.durability` does not go to Kafka: a cluster's durability is
//!    replication), or reuses one with the same partition count;
//! 2. copies every partition in offset order: keys, values, headers and timestamps, committed
//!    records only (no transaction markers, nothing aborted). Records are re-batched by the
//!    target's producer, compressed with the codec of the batch they were stored in (a Kafka
//!    target gets one producer per codec);
//! 3. sets each group's committed offsets on the target, translated: a group that had
//!    consumed up to a record resumes right after the copy of that record (offsets on the
//!    target start where its partition was, and leave out gaps the source had).
//!
//! **Resumable.** Before the first record goes to a target partition, its end offset then is
//! written to the state file (`--state`, fsynced); a target partition that already holds
//! records the state file does not know of is refused, so a run without the right state file
//! copies nothing twice either. After an interruption the next run counts what the partition
//! gained since, skips that many records of the source and copies the rest: nothing twice, as
//! long as nothing else writes to the target's partitions meanwhile (the count would be off,
//! which the run reports when it cannot add up). `--dry-run` prints the plan and changes nothing;
//! `--rate` caps records per second.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use brook::broker::{
    Backend, Broker, BrokerConfig, ConsumerRecord, NewTopic, OffsetCommit, ProduceRecord,
    TopicConfig, TopicDescription, TopicPartition,
};
use brook_log::batch::{Batches, Compression};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Bytes read from the source at a time.
const READ_BYTES: usize = 1 << 20;
/// brook's own topic setting, which a Kafka cluster does not have.
const DURABILITY: &str = "brook.durability";
/// How a Kafka side is named.
const SCHEME: &str = "kafka://";
/// How internal topics are named (Kafka's `__consumer_offsets`, brook's `__brook_replies`):
/// their records are a system's own state, not an application's, so they are left out unless
/// named.
const INTERNAL_PREFIX: &str = "__";

/// Copy topics, records and committed offsets between a brook data directory and a Kafka
/// cluster (either way), resumably.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  brook migrate --from ./brook-data --to kafka://kafka-1:9092,kafka-2:9092 --dry-run\n  \
                  brook migrate --from kafka://brook-host:9092 --to kafka://kafka-1:9092   # a running brook\n  \
                  brook migrate --from kafka://kafka-1:9092 --to ./debug-data --topics orders\n\
                  See docs/scale-out.md."
)]
pub(super) struct MigrateArgs {
    /// Where the records are: a brook data directory (no brook may be running on it), or
    /// kafka://HOST:PORT[,HOST:PORT...] (a Kafka cluster, or a running brook's Kafka door).
    #[arg(long, value_name = "DATA_DIR|URL")]
    from: String,
    /// Where they go: kafka://HOST:PORT[,HOST:PORT...], or a brook data directory.
    #[arg(long, value_name = "URL|DATA_DIR")]
    to: String,
    /// Only these topics (comma-separated). Default: every topic but internal ones (named
    /// `__...`: Kafka's own, brook's request-reply replies).
    #[arg(long, value_delimiter = ',', value_name = "TOPIC,...")]
    topics: Vec<String>,
    /// Print what would be created, copied and committed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where progress is recorded, so a run that was interrupted resumes without copying
    /// anything twice.
    #[arg(long, value_name = "FILE", default_value = "brook-migrate.json")]
    state: PathBuf,
    /// A librdkafka property for the Kafka side (security.protocol=SASL_SSL, sasl.username=...);
    /// repeatable.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    /// Replicas of each topic created on a Kafka cluster. Default: the cluster's default.
    #[arg(long, value_name = "N")]
    replication_factor: Option<u16>,
    /// Copy at most this many records per second (0: as fast as the target takes them).
    #[arg(long, value_name = "RECORDS", default_value_t = 0)]
    rate: u64,
}

impl MigrateArgs {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
        runtime.block_on(self.migrate())
    }

    async fn migrate(self) -> anyhow::Result<ExitCode> {
        let properties = self
            .kafka_properties
            .iter()
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| anyhow!("--kafka-property {p:?} is not KEY=VALUE"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let kafka = Kafka {
            properties,
            replication_factor: self.replication_factor,
        };
        if self.from == self.to {
            bail!("--from and --to are the same place: {}", self.from);
        }
        let from = Side::open(&self.from, &kafka, Role::Source).await?;
        let to = Side::open(
            &self.to,
            &kafka,
            Role::Target {
                dry_run: self.dry_run,
            },
        )
        .await?;
        let plan = Plan::make(&from, &to, &self.topics).await?;
        plan.print(&from, &to);
        if self.dry_run {
            println!("dry run: nothing was changed");
            return Ok(ExitCode::SUCCESS);
        }
        let mut state = State::load(&self.state, &self.from, &self.to).await?;
        let mut copy = Copy {
            from: &from,
            to,
            kafka: &kafka,
            progress: progress(plan.offsets()),
            rate: self.rate,
            started: Instant::now(),
            sent: 0,
        };
        let outcome = copy.run(&plan, &mut state).await;
        copy.progress.finish_and_clear();
        let translated = outcome?;
        commit_groups(&copy.to, &plan, &translated).await?;
        state.finished = true;
        state.save().await?;
        copy.to.close().await?;
        from.close().await?;
        println!(
            "migrated {} topics and {} groups: {} records copied now, {} before",
            plan.topics.len(),
            plan.groups.len(),
            copy.sent,
            translated.resumed,
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// What the Kafka side's clients are given.
#[derive(Debug)]
struct Kafka {
    properties: Vec<(String, String)>,
    replication_factor: Option<u16>,
}

impl Kafka {
    /// The cluster at `url`, its producer compressing with `codec`.
    #[cfg(feature = "kafka-backend")]
    async fn connect(&self, url: &str, codec: Compression) -> anyhow::Result<Backend> {
        let mut config = brook::kafka::ClusterConfig::from_url(url)?;
        config.properties = self.properties.clone();
        config
            .producer_properties
            .push(("compression.type".into(), codec.name().into()));
        config.replication_factor = self.replication_factor;
        // A migration creates every topic itself, with the source's partition count.
        config.broker.auto_create_topics = false;
        Ok(brook::kafka::connect_with(config).await?)
    }

    #[cfg(not(feature = "kafka-backend"))]
    async fn connect(&self, _url: &str, _codec: Compression) -> anyhow::Result<Backend> {
        bail!(
            "this brook was built without the kafka-backend feature (librdkafka): rebuild with \
             `cargo build --features kafka-backend`"
        )
    }
}

/// Which end of the migration a side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Target { dry_run: bool },
}

/// One end of the migration.
struct Side {
    /// How it was named on the command line.
    name: String,
    backend: Backend,
    /// A Kafka cluster's URL; `None` for a data directory.
    url: Option<String>,
    /// The same cluster with producers compressing with other codecs (a Kafka target).
    by_codec: HashMap<Compression, Backend>,
}

impl Side {
    async fn open(name: &str, kafka: &Kafka, role: Role) -> anyhow::Result<Side> {
        let (backend, url) = if name.starts_with(SCHEME) {
            let backend = kafka
                .connect(name, Compression::None)
                .await
                .with_context(|| format!("cannot reach {name}"))?;
            (backend, Some(name.to_owned()))
        } else {
            let dir = Path::new(name);
            if role == (Role::Target { dry_run: true }) && !dir.exists() {
                // A dry run creates nothing, not even the data directory.
                (Backend::Local(Broker::ephemeral().await?), None)
            } else {
                if role == Role::Source && !dir.is_dir() {
                    bail!("{name} is neither kafka://HOST:PORT nor a brook data directory");
                }
                let broker = Broker::open(BrokerConfig::new(dir))
                    .await
                    .with_context(|| format!("cannot open the data directory {name}"))?;
                (Backend::Local(broker), None)
            }
        };
        Ok(Side {
            name: name.to_owned(),
            backend,
            url,
            by_codec: HashMap::new(),
        })
    }

    /// How the plan names this side.
    fn kind(&self) -> &'static str {
        match self.url {
            Some(_) => "Kafka cluster",
            None => "brook data directory",
        }
    }

    fn is_kafka(&self) -> bool {
        self.url.is_some()
    }

    /// Where records compressed with `codec` are produced.
    async fn producer(&mut self, codec: Compression, kafka: &Kafka) -> anyhow::Result<Backend> {
        let Some(url) = &self.url else {
            return Ok(self.backend.clone());
        };
        if codec == Compression::None {
            return Ok(self.backend.clone());
        }
        if let Some(backend) = self.by_codec.get(&codec) {
            return Ok(backend.clone());
        }
        let backend = kafka.connect(url, codec).await?;
        self.by_codec.insert(codec, backend.clone());
        Ok(backend)
    }

    async fn close(&self) -> anyhow::Result<()> {
        for backend in self.by_codec.values().chain(std::iter::once(&self.backend)) {
            backend
                .close()
                .await
                .with_context(|| format!("cannot close {}", self.name))?;
        }
        Ok(())
    }
}

/// What will be done.
struct Plan {
    topics: Vec<TopicPlan>,
    /// Internal topics (`__` names: Kafka's, brook's reply topic) left out by default.
    skipped: Vec<String>,
    /// Each group's committed offsets in the migrated topics.
    groups: BTreeMap<String, Vec<(TopicPartition, u64)>>,
}

struct TopicPlan {
    source: TopicDescription,
    /// The target's partition count when the topic exists there already.
    existing: Option<u32>,
    /// The settings that go to the target, and those that cannot.
    settings: Vec<(&'static str, String)>,
    dropped: Vec<(&'static str, String)>,
}

impl Plan {
    async fn make(from: &Side, to: &Side, only: &[String]) -> anyhow::Result<Plan> {
        let listed = from.backend.list_topics().await?;
        for topic in only {
            if !listed.iter().any(|t| &t.name == topic) {
                bail!("topic {topic:?} is not on {}", from.name);
            }
        }
        let existing: HashMap<String, u32> = to
            .backend
            .list_topics()
            .await?
            .into_iter()
            .map(|t| (t.name, t.partitions))
            .collect();
        let mut topics = Vec::new();
        let mut skipped = Vec::new();
        for topic in listed {
            if !only.is_empty() && !only.contains(&topic.name) {
                continue;
            }
            if only.is_empty() && topic.name.starts_with(INTERNAL_PREFIX) {
                skipped.push(topic.name);
                continue;
            }
            let source = from.backend.describe_topic(&topic.name).await?;
            let existing = existing.get(&topic.name).copied();
            if let Some(count) = existing {
                if count as usize != source.partitions.len() {
                    bail!(
                        "topic {:?} has {} partitions on {} but {count} on {}: the partitions \
                         must match, so keys stay where they are",
                        topic.name,
                        source.partitions.len(),
                        from.name,
                        to.name
                    );
                }
            }
            let (dropped, settings) = source
                .overrides
                .iter()
                .cloned()
                .partition(|(key, _)| to.is_kafka() && *key == DURABILITY);
            topics.push(TopicPlan {
                source,
                existing,
                settings,
                dropped,
            });
        }
        let names: BTreeSet<&str> = topics.iter().map(|t| t.source.name.as_str()).collect();
        let mut groups = BTreeMap::new();
        for listing in from.backend.list_groups().await? {
            let committed: Vec<(TopicPartition, u64)> = from
                .backend
                .committed_offsets(&listing.group, &[])
                .await?
                .into_iter()
                .filter(|(tp, _)| names.contains(tp.topic.as_str()))
                .map(|(tp, c)| (tp, c.offset))
                .collect();
            if !committed.is_empty() {
                groups.insert(listing.group, committed);
            }
        }
        Ok(Plan {
            topics,
            skipped,
            groups,
        })
    }

    /// Offsets to walk in all: the progress bar's length.
    fn offsets(&self) -> u64 {
        self.topics
            .iter()
            .flat_map(|t| &t.source.partitions)
            .map(|p| p.high_watermark.saturating_sub(p.log_start_offset))
            .sum()
    }

    fn print(&self, from: &Side, to: &Side) {
        println!(
            "migrate from {} ({}) to {} ({})",
            from.name,
            from.kind(),
            to.name,
            to.kind()
        );
        for topic in &self.topics {
            let partitions = topic.source.partitions.len();
            let action = match topic.existing {
                Some(_) => "exists on the target: copy what an earlier run with this --state \
                             did not (a partition holding other records is refused)"
                    .to_owned(),
                None => "create".to_owned(),
            };
            let offsets: u64 = topic
                .source
                .partitions
                .iter()
                .map(|p| p.high_watermark.saturating_sub(p.log_start_offset))
                .sum();
            println!(
                "topic {}: {partitions} partitions, {offsets} offsets, {action}",
                topic.source.name
            );
            if !topic.settings.is_empty() {
                println!("  settings: {}", settings_text(&topic.settings));
            }
            if !topic.dropped.is_empty() {
                println!(
                    "  not carried: {} (a Kafka cluster's durability is replication: set the \
                     replication factor and min.insync.replicas)",
                    settings_text(&topic.dropped)
                );
            }
        }
        for topic in &self.skipped {
            println!("topic {topic}: internal, not copied (name it in --topics to copy it)");
        }
        for (group, committed) in &self.groups {
            let positions: Vec<String> = committed
                .iter()
                .map(|(tp, offset)| format!("{tp} at {offset}"))
                .collect();
            println!("group {group}: {}", positions.join(", "));
        }
    }
}

fn settings_text(settings: &[(&'static str, String)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The progress bar on standard error (drawn only on a terminal).
fn progress(length: u64) -> ProgressBar {
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} offsets ({per_sec}, {eta}) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The migration's progress on disk: where each target partition stood before its first
/// record was copied.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    from: String,
    to: String,
    /// `topic-partition` -> where copying it began.
    partitions: BTreeMap<String, Started>,
    finished: bool,
    #[serde(skip)]
    path: PathBuf,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Started {
    /// The source's log start offset: the first record copied is the first at or after it.
    source_start: u64,
    /// The target partition's end offset before anything was copied into it.
    target_base: u64,
}

impl State {
    /// The state at `path`, or a new one when there is none; one of another migration is
    /// refused.
    async fn load(path: &Path, from: &str, to: &str) -> anyhow::Result<State> {
        let owned = path.to_owned();
        let text = tokio::task::spawn_blocking(move || match std::fs::read_to_string(&owned) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await?
        .with_context(|| format!("cannot read the state file {}", path.display()))?;
        let Some(text) = text else {
            return Ok(State {
                from: from.to_owned(),
                to: to.to_owned(),
                partitions: BTreeMap::new(),
                finished: false,
                path: path.to_owned(),
            });
        };
        let mut state: State = serde_json::from_str(&text)
            .with_context(|| format!("the state file {} is damaged", path.display()))?;
        if state.from != from || state.to != to {
            bail!(
                "the state file {} belongs to the migration from {} to {}: give this one its own \
                 --state",
                path.display(),
                state.from,
                state.to
            );
        }
        state.path = path.to_owned();
        Ok(state)
    }

    /// Writes the state durably: a new file, fsynced, renamed over the old one.
    async fn save(&self) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_durably(&path, text.as_bytes()))
            .await?
            .with_context(|| format!("cannot write the state file {}", self.path.display()))
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Source offsets translated to target offsets, per partition; and the records an earlier run
/// had copied.
#[derive(Debug, Default)]
struct Translated {
    offsets: BTreeMap<TopicPartition, BTreeMap<u64, u64>>,
    resumed: u64,
}

/// The copy in progress.
struct Copy<'a> {
    from: &'a Side,
    to: Side,
    kafka: &'a Kafka,
    progress: ProgressBar,
    rate: u64,
    started: Instant,
    /// Records copied by this run.
    sent: u64,
}

impl Copy<'_> {
    async fn run(&mut self, plan: &Plan, state: &mut State) -> anyhow::Result<Translated> {
        let mut translated = Translated::default();
        for topic in &plan.topics {
            let name = &topic.source.name;
            if topic.existing.is_none() {
                let mut config = TopicConfig::default();
                for (key, value) in &topic.settings {
                    config
                        .set(key, value)
                        .with_context(|| format!("topic {name}: setting {key}={value}"))?;
                }
                let partitions = u32::try_from(topic.source.partitions.len())?;
                let mut new = NewTopic::new(name.clone(), partitions);
                new.config = config;
                self.to
                    .backend
                    .create_topic(new)
                    .await
                    .with_context(|| format!("cannot create topic {name} on {}", self.to.name))?;
            }
            for partition in &topic.source.partitions {
                let tp = TopicPartition::new(name.clone(), partition.partition);
                let wanted: BTreeSet<u64> = plan
                    .groups
                    .values()
                    .flatten()
                    .filter(|(g, _)| *g == tp)
                    .map(|(_, offset)| *offset)
                    .collect();
                let (offsets, resumed) = self
                    .partition(&tp, partition.high_watermark, &wanted, state)
                    .await
                    .with_context(|| format!("cannot copy {tp}"))?;
                translated.offsets.insert(tp, offsets);
                translated.resumed += resumed;
            }
            self.progress.suspend(|| println!("topic {name}: copied"));
        }
        Ok(translated)
    }

    /// Copies `tp` from where the source starts to `end`, skipping what an earlier run copied.
    /// Returns each of `wanted` (source offsets) translated, and how many records were there
    /// already.
    async fn partition(
        &mut self,
        tp: &TopicPartition,
        end: u64,
        wanted: &BTreeSet<u64>,
        state: &mut State,
    ) -> anyhow::Result<(BTreeMap<u64, u64>, u64)> {
        let key = tp.to_string();
        let (topic, partition) = (tp.topic.as_str(), tp.partition);
        let (source_start, _) = self.from.backend.log_range(topic, partition).await?;
        let (target_start, target_end) = self.to.backend.log_range(topic, partition).await?;
        let started = match state.partitions.get(&key) {
            Some(started) => *started,
            None if target_end > target_start => bail!(
                "{tp} on {} holds {} records this migration did not copy (its --state {} does \
                 not know the partition): run with the --state of the migration that copied \
                 them, or move into an empty topic, so nothing is copied twice",
                self.to.name,
                target_end - target_start,
                state.path.display()
            ),
            None => {
                let started = Started {
                    source_start,
                    target_base: target_end,
                };
                state.partitions.insert(key.clone(), started);
                // Before the first record goes: a resumed run counts from here.
                state.save().await?;
                started
            }
        };
        if source_start > started.source_start {
            bail!(
                "the source's log of {tp} now starts at {source_start}, past {} where this \
                 migration began: records it had not copied are gone (retention?); start over \
                 with a new --state and an empty target",
                started.source_start
            );
        }
        let copied_before = target_end.saturating_sub(started.target_base);
        let mut translated = BTreeMap::new();
        let mut pending = wanted.iter().copied().peekable();
        let mut seen = 0u64;
        let mut position = started.source_start;
        while position < end {
            let fetched = self
                .from
                .backend
                .fetch(topic, partition, position, READ_BYTES, Duration::ZERO)
                .await?;
            let codecs = codecs(&fetched.batches)?;
            let records = fetched.records()?;
            let mut chunk: Vec<(Compression, ConsumerRecord)> = Vec::new();
            for record in records {
                while let Some(offset) = pending.next_if(|offset| *offset <= record.offset) {
                    translated.insert(offset, started.target_base + seen);
                }
                if seen >= copied_before {
                    let codec = codec_of(&codecs, record.offset);
                    chunk.push((codec, record));
                }
                seen += 1;
            }
            let next = fetched.next_offset();
            self.send(topic, partition, chunk).await?;
            self.progress.inc(next.saturating_sub(position));
            if next <= position {
                break;
            }
            position = next;
        }
        for offset in pending {
            translated.insert(offset, started.target_base + seen);
        }
        if copied_before > seen {
            bail!(
                "{tp} on the target has {copied_before} records more than where this migration \
                 began, but the source has only {seen}: something else wrote to it"
            );
        }
        Ok((translated, copied_before))
    }

    /// Appends `chunk` to the target partition in order, one produce per run of one codec (and,
    /// under `--rate`, of at most a tenth of a second's records, so the pace is even).
    async fn send(
        &mut self,
        topic: &str,
        partition: u32,
        chunk: Vec<(Compression, ConsumerRecord)>,
    ) -> anyhow::Result<()> {
        let most = match self.rate {
            0 => usize::MAX,
            rate => usize::try_from(rate / 10).unwrap_or(usize::MAX).max(1),
        };
        let mut rest = chunk.as_slice();
        while let Some((codec, _)) = rest.first() {
            let run = rest
                .iter()
                .take(most)
                .take_while(|(c, _)| c == codec)
                .count();
            let (now, later) = rest.split_at(run);
            let records: Vec<ProduceRecord> = now
                .iter()
                .map(|(_, r)| ProduceRecord {
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers: r.headers.clone(),
                    timestamp: Some(r.timestamp),
                    partition: Some(partition),
                })
                .collect();
            let target = self.to.producer(*codec, self.kafka).await?;
            target.produce(topic, records).await?;
            self.sent += run as u64;
            self.throttle().await;
            rest = later;
        }
        Ok(())
    }

    /// Sleeps long enough to keep to `--rate`.
    async fn throttle(&self) {
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// The codec of each stored batch in `batches`: (first offset, last offset, codec).
fn codecs(batches: &[u8]) -> anyhow::Result<Vec<(u64, u64, Compression)>> {
    Batches::new(batches)
        .map(|batch| {
            let batch = batch?;
            let header = batch.header;
            let first = u64::try_from(header.base_offset).unwrap_or_default();
            let last = u64::try_from(header.last_offset()).unwrap_or_default();
            Ok((first, last, header.compression()?))
        })
        .collect()
}

/// The codec of the batch holding `offset`.
fn codec_of(codecs: &[(u64, u64, Compression)], offset: u64) -> Compression {
    codecs
        .iter()
        .find(|(first, last, _)| (*first..=*last).contains(&offset))
        .map_or(Compression::None, |(_, _, codec)| *codec)
}

/// Commits each group's offsets on the target, translated.
async fn commit_groups(to: &Side, plan: &Plan, translated: &Translated) -> anyhow::Result<()> {
    for (group, committed) in &plan.groups {
        let commits: Vec<OffsetCommit> = committed
            .iter()
            .filter_map(|(tp, offset)| {
                let target = translated.offsets.get(tp)?.get(offset)?;
                Some(OffsetCommit::new(tp.topic.clone(), tp.partition, *target))
            })
            .collect();
        if commits.is_empty() {
            continue;
        }
        let positions: Vec<String> = commits
            .iter()
            .map(|c| format!("{} at {}", c.topic_partition, c.offset))
            .collect();
        to.backend
            .commit_offsets(group, commits)
            .await
            .with_context(|| {
                format!(
                    "cannot set group {group}'s offsets on {} (stop its consumers there first)",
                    to.name
                )
            })?;
        println!("group {group}: {}", positions.join(", "));
    }
    Ok(())
}
