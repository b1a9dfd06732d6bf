//! The store: a data directory of topics, each a set of partition logs.
//!
//! Layout of a data directory:
//!
//! ```text
//! <data>/.lock                 flock'ed by the one process using the directory (crate::lock)
//! <data>/topics/<topic>.topic  each topic's id, partition count and config overrides (crate::topic)
//! <data>/<topic>-<partition>/  each partition's log (segments and indexes)
//! ```
//!
//! The store owns every name of the form `<valid topic name>-<digits>` in the data directory:
//! such a directory that no topic file claims is an orphan. On open an orphan that holds no
//! record (an interrupted create: no segment, or empty ones only) is removed; one that holds
//! records (its topic file was lost, or a delete was interrupted after its commit point) is
//! never removed nor served: it is renamed aside to `<topic>-<partition>.orphaned` (see
//! [`crate::names::SET_ASIDE_SUFFIX`]) with a warning saying how to recover it (restore the
//! topic file and rename the directory back) or reclaim its space (remove it). Other
//! components keep their files under names of another shape (`topics/`, `groups/`, ...).
//!
//! Crash safety comes from ordering, with the topic file as the commit point:
//!
//! - **create** makes and opens every partition directory, fsyncs the data directory, and only
//!   then writes the topic file (atomically). A crash before the topic file leaves orphan
//!   partition directories and no topic; the next open removes them with a warning (or sets
//!   them aside, should they already hold records).
//! - **delete** removes the topic file (durably) first, then closes the partitions and removes
//!   their directories. A crash in between leaves orphans; those still holding records are
//!   set aside, and the operator removes them (the topic is gone either way).
//!
//! - **add partitions** makes and opens the new partitions' directories, fsyncs the data
//!   directory, then rewrites the topic file with the new count: a crash before leaves the old
//!   topic and orphans, removed on the next open.
//! - **alter config** validates the topic's new effective config, rewrites the topic file, then
//!   hands the config to every partition.
//!
//! So a topic is either wholly there or wholly gone after any crash. Bad input (a bad name, a
//! partition count outside 1..=[`PARTITIONS_MAX`], an invalid config, an existing or unknown
//! topic) is refused before anything on disk is touched.
//!
//! Concurrency: lookups ([`Store::topic`], [`Store::topics`]) take a read lock for a map access
//! only; create and delete are serialized by a separate admin mutex and do their file work
//! without blocking lookups, publishing the result with a short write lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::fs::{self, FsRef};
use crate::lock::DirLock;
use crate::log::PartitionLog;
use crate::meta;
use crate::names::{
    parse_partition_dir, parse_set_aside_dir, partition_dir_name, set_aside_dir_name,
    validate_topic_name,
};
use crate::topic::{Topic, TopicConfig, TopicMeta, PARTITIONS_MAX};

/// The subdirectory of topic files.
pub(crate) const TOPICS_DIR: &str = "topics";
/// The extension of a topic file.
const TOPIC_FILE_EXT: &str = "topic";

/// A data directory of topics; see the module docs. `Send + Sync`: share it in an `Arc`.
#[derive(Debug)]
pub struct Store {
    fs: FsRef,
    dir: PathBuf,
    defaults: LogConfig,
    /// Open topics by name. Emptied by [`Store::close`].
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes create, delete and close; holds the directory lock until close.
    admin: Mutex<Option<DirLock>>,
}

impl Store {
    /// Opens (creating if missing) the data directory `dir`: takes its lock, removes orphan
    /// partition directories, and opens every topic's partitions with the topic's effective
    /// config (`defaults` with its overrides), recovering them as needed.
    pub fn open(dir: impl Into<PathBuf>, defaults: LogConfig) -> Result<Store> {
        Self::open_in(fs::real(), dir.into(), defaults)
    }

    /// [`Store::open`] on the file system `fs`.
    pub(crate) fn open_in(fs: FsRef, dir: PathBuf, defaults: LogConfig) -> Result<Store> {
        defaults.validate()?;
        create_dir_durably(&fs, &dir)?;
        let lock = DirLock::acquire(&*fs, &dir)?;
        create_dir_durably(&fs, &dir.join(TOPICS_DIR))?;
        let (metas, damaged) = read_topic_files(&fs, &dir)?;
        remove_orphans(&fs, &dir, &metas, &damaged)?;
        // Every partition of every topic, opened in parallel below.
        let mut jobs = Vec::new();
        let mut configs = BTreeMap::new();
        for (name, meta) in &metas {
            let config = effective_config(name, &meta.overrides, &defaults)?;
            jobs.extend((0..meta.partitions).map(|p| (name.clone(), p, config.clone())));
            configs.insert(name.clone(), config);
        }
        let mut opened = open_partitions(&fs, &dir, jobs).into_iter();
        let mut topics = BTreeMap::new();
        for (name, meta) in metas {
            let partitions: Vec<_> = opened.by_ref().take(meta.partitions as usize).collect();
            let config = configs.remove(&name).unwrap_or_else(|| defaults.clone());
            let topic = Topic::new(name.clone(), meta, config, partitions);
            topics.insert(name, Arc::new(topic));
        }
        for (name, (count, reason)) in damaged {
            let partitions = (0..count)
                .map(|p| {
                    let path = dir.join(partition_dir_name(&name, p));
                    let why = format!("{reason} (the partition directory is kept as it is)");
                    Arc::new(PartitionLog::offline(
                        FsRef::clone(&fs),
                        path,
                        defaults.clone(),
                        why,
                    ))
                })
                .collect();
            let topic = Topic::damaged(name.clone(), defaults.clone(), partitions, reason);
            topics.insert(name, Arc::new(topic));
        }
        tracing::info!(dir = %dir.display(), topics = topics.len(), "store opened");
        Ok(Store {
            fs,
            dir,
            defaults,
            topics: RwLock::new(topics),
            admin: Mutex::new(Some(lock)),
        })
    }

    /// Creates a topic of `partitions` partitions with `overrides` over the store's defaults.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        overrides: TopicConfig,
    ) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(LogError::InvalidConfig(format!(
                "partition count {partitions} is outside 1..={PARTITIONS_MAX}"
            )));
        }
        let config = effective_config(name, &overrides, &self.defaults)?;
        let admin = self.admin.lock();
        if admin.is_none() {
            return Err(LogError::Closed);
        }
        if self.topics.read().contains_key(name) {
            return Err(LogError::TopicExists(name.to_owned()));
        }
        let meta = TopicMeta::new(partitions, overrides);
        let mut logs = Vec::with_capacity(partitions as usize);
        let created = (|| {
            for p in 0..partitions {
                logs.push(open_partition(
                    &self.fs,
                    &self.dir,
                    name,
                    p,
                    &config,
                    OnMissing::Create,
                )?);
            }
            // The partition directories must be durable before the topic file names them.
            meta::sync_dir_in(&*self.fs, &self.dir)?;
            meta.write(&*self.fs, &topic_file(&self.dir, name))
        })();
        if let Err(e) = created {
            self.discard_partitions(name, &logs, 0..partitions);
            return Err(e);
        }
        let topic = Arc::new(Topic::new(name.to_owned(), meta, config, logs));
        self.topics
            .write()
            .insert(name.to_owned(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "topic created");
        Ok(topic)
    }

    /// Deletes a topic: its file first (the commit point), then its partitions' directories.
    ///
    /// Holders of the topic's `Arc`s see its partitions closed. If removing a directory fails
    /// the topic is still gone (the error says which directory is left; the next open or a
    /// create of the same name removes it).
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        validate_topic_name(name)?;
        let (_admin, topic) = self.lock_topic(name)?;
        meta::remove_in(&*self.fs, &topic_file(&self.dir, name))?;
        self.topics.write().remove(name);
        let result = remove_partitions(&self.fs, &self.dir, &topic);
        tracing::info!(topic = name, "topic deleted");
        result
    }

    /// Grows topic `name` to `partitions` partitions (Kafka's CreatePartitions) and returns it
    /// with its new partition list; its existing partitions are untouched (a holder of the old
    /// `Arc<Topic>` keeps seeing the old count). The count must be higher than the current one
    /// and at most [`PARTITIONS_MAX`]; nothing changes otherwise.
    pub fn add_partitions(&self, name: &str, partitions: u32) -> Result<Arc<Topic>> {
        let (_admin, topic) = self.lock_topic(name)?;
        self.refuse_damaged(&topic)?;
        let current = topic.partition_count();
        if partitions <= current || partitions > PARTITIONS_MAX {
            return Err(LogError::InvalidConfig(format!(
                "topic {name:?} has {current} partitions: a new count must be above it and at \
                 most {PARTITIONS_MAX}, not {partitions}"
            )));
        }
        let meta = TopicMeta {
            id: topic.id(),
            partitions,
            overrides: topic.overrides().clone(),
        };
        let mut logs = topic.partitions().to_vec();
        let created = (|| {
            for p in current..partitions {
                logs.push(open_partition(
                    &self.fs,
                    &self.dir,
                    name,
                    p,
                    topic.config(),
                    OnMissing::Create,
                )?);
            }
            meta::sync_dir_in(&*self.fs, &self.dir)?;
            meta.write(&*self.fs, &topic_file(&self.dir, name))
        })();
        if let Err(e) = created {
            self.discard_partitions(name, &logs[current as usize..], current..partitions);
            return Err(e);
        }
        let grown = Arc::new(Topic::new(
            name.to_owned(),
            meta,
            topic.config().clone(),
            logs,
        ));
        self.topics
            .write()
            .insert(name.to_owned(), Arc::clone(&grown));
        tracing::info!(
            topic = name,
            from = current,
            to = partitions,
            "partitions added"
        );
        Ok(grown)
    }

    /// Replaces topic `name`'s overrides (Kafka's AlterConfigs), live and durably: the new
    /// effective config is validated, the topic file rewritten, then every partition gets it
    /// (limits from the next append or retention run, a new durability mode at once). Returns
    /// the topic with its new config; nothing changes when the config is invalid.
    pub fn alter_topic_config(&self, name: &str, overrides: TopicConfig) -> Result<Arc<Topic>> {
        let (_admin, topic) = self.lock_topic(name)?;
        self.refuse_damaged(&topic)?;
        let config = effective_config(name, &overrides, &self.defaults)?;
        let meta = TopicMeta {
            id: topic.id(),
            partitions: topic.partition_count(),
            overrides,
        };
        meta.write(&*self.fs, &topic_file(&self.dir, name))?;
        for log in topic.partitions() {
            log.set_config(config.clone())?;
        }
        let altered = Arc::new(Topic::new(
            name.to_owned(),
            meta,
            config,
            topic.partitions().to_vec(),
        ));
        self.topics
            .write()
            .insert(name.to_owned(), Arc::clone(&altered));
        tracing::info!(topic = name, "topic config altered");
        Ok(altered)
    }

    /// A topic whose file is damaged is only ever deleted: rewriting its file from what is
    /// known (no id, default settings) would pass off a guess as the topic.
    fn refuse_damaged(&self, topic: &Topic) -> Result<()> {
        match topic.damaged_reason() {
            Some(reason) => Err(LogError::Offline {
                dir: topic_file(&self.dir, topic.name()),
                reason: reason.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// The admin lock, held for a change of the existing topic `name`, and that topic.
    fn lock_topic(
        &self,
        name: &str,
    ) -> Result<(parking_lot::MutexGuard<'_, Option<DirLock>>, Arc<Topic>)> {
        let admin = self.admin.lock();
        if admin.is_none() {
            return Err(LogError::Closed);
        }
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_owned()))?;
        Ok((admin, topic))
    }

    /// The topic called `name`, if it exists.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The defaults every topic's overrides are laid over.
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// Closes every partition cleanly (flush, checkpoint, clean-shutdown marker) and releases
    /// the directory lock. Every partition is closed even if one fails; the first error is
    /// returned. Calling it again does nothing. Afterwards the store holds no topics and
    /// refuses creates and deletes with [`LogError::Closed`].
    pub fn close(&self) -> Result<()> {
        let mut admin = self.admin.lock();
        let Some(lock) = admin.take() else {
            return Ok(());
        };
        let topics = std::mem::take(&mut *self.topics.write());
        let mut first_error = None;
        for log in topics.values().flat_map(|t| t.partitions()) {
            if let Err(e) = log.close() {
                tracing::error!(dir = %log.dir().display(), error = %e, "closing a partition failed");
                first_error.get_or_insert(e);
            }
        }
        // Only now may another process open the directory.
        drop(lock);
        first_error.map_or(Ok(()), Err)
    }

    /// Undoes a create (or an add of partitions) that failed part way: closes what was opened
    /// and removes every partition directory in `partitions` it may have made. Errors are
    /// logged: the create's own error is the one to report, and leftovers are orphans the next
    /// open removes.
    fn discard_partitions(
        &self,
        name: &str,
        logs: &[Arc<PartitionLog>],
        partitions: std::ops::Range<u32>,
    ) {
        for log in logs {
            if let Err(e) = log.close() {
                tracing::warn!(dir = %log.dir().display(), error = %e, "closing a discarded partition failed");
            }
        }
        for p in partitions {
            let dir = self.dir.join(partition_dir_name(name, p));
            if let Err(e) = remove_dir_if_present(&self.fs, &dir) {
                tracing::warn!(error = %e, "removing a discarded partition failed; the next open removes it");
            }
        }
    }
}

/// The topic file of topic `name` in the data directory `dir`.
pub(crate) fn topic_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(TOPICS_DIR)
        .join(format!("{name}.{TOPIC_FILE_EXT}"))
}

/// The topic whose topic file `path` is (`<name>.topic` with a valid name), if any.
pub(crate) fn topic_of_file(path: &Path) -> Option<&str> {
    let name = path
        .file_name()?
        .to_str()?
        .strip_suffix(TOPIC_FILE_EXT)?
        .strip_suffix('.')?;
    validate_topic_name(name).ok().map(|()| name)
}

/// The effective config of a topic, validated; the error names the topic.
fn effective_config(
    name: &str,
    overrides: &TopicConfig,
    defaults: &LogConfig,
) -> Result<LogConfig> {
    let config = overrides.merged_over(defaults);
    config.validate().map_err(|e| match e {
        LogError::InvalidConfig(reason) => {
            LogError::InvalidConfig(format!("topic {name:?}: {reason}"))
        }
        other => other,
    })?;
    Ok(config)
}

/// What to do when a partition directory of a topic is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnMissing {
    /// Creating a topic: a leftover directory of an earlier topic of the same name (whose
    /// delete could not remove it) is removed first, so the new topic starts empty.
    Create,
    /// Opening a store: the topic file says the directory exists; recreate it empty, loudly.
    Warn,
}

fn open_partition(
    fs: &FsRef,
    dir: &Path,
    topic: &str,
    partition: u32,
    config: &LogConfig,
    on_missing: OnMissing,
) -> Result<Arc<PartitionLog>> {
    let path = dir.join(partition_dir_name(topic, partition));
    match on_missing {
        OnMissing::Create => {
            if remove_dir_if_present(fs, &path)? {
                tracing::warn!(dir = %path.display(), "removed a leftover partition directory of a deleted topic");
            }
        }
        OnMissing::Warn => {
            if !fs.is_dir(&path) {
                tracing::warn!(dir = %path.display(), "partition directory is missing; recreating it empty");
            }
        }
    }
    Ok(Arc::new(PartitionLog::open_in(
        FsRef::clone(fs),
        path,
        config.clone(),
    )?))
}

/// Closes a deleted topic's partitions and removes their directories; the first error wins.
fn remove_partitions(fs: &FsRef, dir: &Path, topic: &Topic) -> Result<()> {
    let mut first_error = None;
    for log in topic.partitions() {
        // The data is being deleted: nothing of it is flushed; a left directory matters.
        log.discard();
        if let Err(e) = remove_dir_if_present(fs, log.dir()) {
            first_error.get_or_insert(e);
        }
    }
    if let Err(e) = meta::sync_dir_in(&**fs, dir) {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(()), Err)
}

/// Removes a directory tree; `Ok(false)` when it was not there.
fn remove_dir_if_present(fs: &FsRef, path: &Path) -> Result<bool> {
    match fs.remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(LogError::io(path, e)),
    }
}

/// Creates `dir` if it is missing, and makes its entry in the parent durable.
fn create_dir_durably(fs: &FsRef, dir: &Path) -> Result<()> {
    fs::create_dir_durably(&**fs, dir).map_err(|e| LogError::io(dir, e))
}

/// Topics whose topic file could not be read: by name, the number of partition directories
/// found for it and why.
type DamagedTopics = BTreeMap<String, (u32, String)>;

/// Reads every topic file. Leftover temporary files of an interrupted write are removed (the
/// rename that commits a topic file never happened, so they hold nothing). A damaged topic
/// file is never skipped (skipping it would lose a topic and then delete its data as
/// orphans), nor does it stop the store: it is logged, and its topic is kept, offline, with
/// every partition directory of its name (see [`Topic::damaged`]).
fn read_topic_files(
    fs: &FsRef,
    dir: &Path,
) -> Result<(BTreeMap<String, TopicMeta>, DamagedTopics)> {
    let topics_dir = dir.join(TOPICS_DIR);
    let mut metas = BTreeMap::new();
    let mut damaged = BTreeMap::new();
    for entry in fs
        .read_dir(&topics_dir)
        .map_err(|e| LogError::io(&topics_dir, e))?
    {
        let path = entry.path;
        if let Some(name) = topic_of_file(&path) {
            match TopicMeta::read(&**fs, &path) {
                Ok(Some(meta)) => {
                    metas.insert(name.to_owned(), meta);
                }
                // Gone since the listing: a topic being deleted by no one (we hold the lock)
                // cannot be; treat it as damaged rather than guess.
                Ok(None) => {
                    damaged.insert(
                        name.to_owned(),
                        format!("topic file {} vanished", path.display()),
                    );
                }
                Err(e) => {
                    tracing::error!(topic = name, error = %e, "the topic file is damaged: the topic is offline until it is repaired or restored");
                    damaged.insert(name.to_owned(), e.to_string());
                }
            }
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("tmp") => {
                tracing::warn!(file = %path.display(), "removing an interrupted topic file write");
                meta::remove_in(&**fs, &path)?;
            }
            _ => tracing::warn!(file = %path.display(), "ignoring a file that is not a topic file"),
        }
    }
    // A damaged topic keeps every partition directory of its name.
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for entry in fs.read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let Some((topic, partition)) = entry.name.to_str().and_then(parse_partition_dir) else {
            continue;
        };
        if entry.is_dir && damaged.contains_key(topic) {
            let count = counts.entry(topic.to_owned()).or_default();
            *count = (*count).max(partition.saturating_add(1).min(PARTITIONS_MAX));
        }
    }
    let damaged = damaged
        .into_iter()
        .map(|(name, reason)| {
            let count = counts.get(&name).copied().unwrap_or(0);
            (name, (count, reason))
        })
        .collect();
    Ok((metas, damaged))
}

/// How many partitions the store opens at once: opening is mostly waiting on the disk (and a
/// recovery's CRC walk), so more than the cores, but bounded.
const PARALLEL_OPENS: usize = 16;

/// Opens the partitions `jobs` (topic, partition, config) in parallel, in their order. A
/// partition that fails to open is logged and replaced by an offline placeholder
/// ([`PartitionLog::offline`]) rather than stopping the store: one damaged directory never
/// keeps the others from serving.
fn open_partitions(
    fs: &FsRef,
    dir: &Path,
    jobs: Vec<(String, u32, LogConfig)>,
) -> Vec<Arc<PartitionLog>> {
    let results: Vec<parking_lot::Mutex<Option<Arc<PartitionLog>>>> =
        jobs.iter().map(|_| parking_lot::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let open_one = |(name, p, config): &(String, u32, LogConfig)| {
        open_partition(fs, dir, name, *p, config, OnMissing::Warn).unwrap_or_else(|e| {
            let path = dir.join(partition_dir_name(name, *p));
            tracing::error!(topic = %name, partition = p, error = %e, "the partition could not be opened: it is offline");
            Arc::new(PartitionLog::offline(
                FsRef::clone(fs),
                path,
                config.clone(),
                e.to_string(),
            ))
        })
    };
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_OPENS.min(jobs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else {
                    break;
                };
                *results[i].lock() = Some(open_one(job));
            });
        }
    });
    results
        .into_iter()
        .zip(&jobs)
        .map(|(slot, job)| slot.into_inner().unwrap_or_else(|| open_one(job)))
        .collect()
}

/// Whether the partition directory `path` holds records: a non-empty file whose name holds
/// `.log` (a segment, or a cleaner's copy of one) or any subdirectory. An interrupted create
/// leaves none of these. In doubt (a name that is not UTF-8) it says yes.
fn holds_records(fs: &dyn fs::Fs, path: &Path) -> std::io::Result<bool> {
    for entry in fs.read_dir(path)? {
        let log_like = entry.name.to_str().is_none_or(|name| name.contains(".log"));
        if entry.is_dir || (log_like && fs.metadata(&entry.path)?.len > 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What the next open does with the orphan partition directory `path` (one no topic file
/// claims): `None` when it holds no record (it is removed), else the path it is set aside to
/// (see the module docs). The one rule both the store and `brook log check` apply.
pub(crate) fn orphan_set_aside_path(fs: &dyn fs::Fs, path: &Path) -> Result<Option<PathBuf>> {
    if !holds_records(fs, path).map_err(|e| LogError::io(path, e))? {
        return Ok(None);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let free = |to: &PathBuf| matches!(fs.metadata(to), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    let first = path.with_file_name(set_aside_dir_name(name, None));
    if free(&first) {
        return Ok(Some(first));
    }
    let mut ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    loop {
        let to = path.with_file_name(set_aside_dir_name(name, Some(ms)));
        if free(&to) {
            return Ok(Some(to));
        }
        ms += 1;
    }
}

/// Removes the partition directories no topic claims that hold no record, and sets aside the
/// ones that do: leftovers of a crash mid-create or mid-delete, or of a lost topic file (see
/// the module docs). Directories set aside before are named in a warning, never opened.
fn remove_orphans(
    fs: &FsRef,
    dir: &Path,
    metas: &BTreeMap<String, TopicMeta>,
    damaged: &DamagedTopics,
) -> Result<()> {
    let mut removed = false;
    for entry in fs.read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let Some(name) = entry.name.to_str() else {
            continue;
        };
        if let Some((topic, partition)) = parse_set_aside_dir(name).filter(|_| entry.is_dir) {
            tracing::warn!(topic, partition, dir = %entry.path.display(), "a set-aside partition directory is still here (never served): restore the topic file and rename it back to recover it, or remove it to reclaim the space");
            continue;
        }
        let Some((topic, partition)) = parse_partition_dir(name) else {
            continue;
        };
        let claimed = damaged.contains_key(topic)
            || metas
                .get(topic)
                .is_some_and(|meta| partition < meta.partitions);
        if claimed || !entry.is_dir {
            continue;
        }
        match orphan_set_aside_path(&**fs, &entry.path)? {
            None => {
                tracing::warn!(dir = %entry.path.display(), "removing an orphan partition directory that holds no record (no topic file claims it; a create was interrupted)");
                remove_dir_if_present(fs, &entry.path)?;
            }
            Some(to) => {
                fs.rename(&entry.path, &to)
                    .map_err(|e| LogError::io(&entry.path, e))?;
                tracing::warn!(topic, partition, dir = %entry.path.display(), set_aside = %to.display(), "no topic file claims this partition directory, yet it holds records (a lost topic file, or a delete interrupted after its commit point): set aside, never served. To recover it restore the topic file and rename the directory back; to reclaim the space remove it");
            }
        }
        removed = true;
    }
    if removed {
        meta::sync_dir_in(&**fs, dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use super::*;
    use crate::batch::{BatchBuilder, Compression, RecordRef};
    use crate::config::Durability;

    fn defaults() -> LogConfig {
        LogConfig {
            durability: Durability::None,
            index_bytes_max: 4096,
            ..LogConfig::default()
        }
    }

    fn batch(value: &[u8]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(RecordRef {
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: 1_700_000_000_000,
        });
        builder.build().expect("build").to_vec()
    }

    /// Every file and directory under `dir`, with each file's size and CRC: what "changes
    /// nothing on disk" is checked against.
    fn listing(dir: &Path) -> Vec<(String, u64, u32)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("read_dir") {
                let path = entry.expect("entry").path();
                let rel = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string();
                if path.is_dir() {
                    out.push((rel + "/", 0, 0));
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).expect("read");
                    out.push((rel, bytes.len() as u64, crc32fast::hash(&bytes)));
                }
            }
        }
        out.sort();
        out
    }

    fn names(store: &Store) -> Vec<String> {
        store.topics().iter().map(|t| t.name().to_owned()).collect()
    }

    #[test]
    fn added_partitions_and_altered_configs_survive_a_reopen_and_bad_ones_change_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        {
            let store = Store::open(&dir, defaults()).expect("open");
            let t = store
                .create_topic("t", 2, TopicConfig::default())
                .expect("create");
            t.partition(1)
                .expect("p1")
                .append(&mut batch(b"kept"))
                .expect("append");
            let before = listing(&dir);
            for bad in [2, 1, PARTITIONS_MAX + 1] {
                assert!(store.add_partitions("t", bad).is_err(), "{bad} accepted");
            }
            assert!(matches!(
                store.add_partitions("nope", 3),
                Err(LogError::UnknownTopic(_))
            ));
            let mut too_small = TopicConfig::default();
            too_small.set("segment.bytes", "1").expect("parses");
            assert!(store.alter_topic_config("t", too_small).is_err());
            assert_eq!(listing(&dir), before, "refused changes touch nothing");

            let grown = store.add_partitions("t", 5).expect("grow");
            assert_eq!(grown.partition_count(), 5);
            assert_eq!(grown.id(), t.id(), "same topic");
            assert!(Arc::ptr_eq(&grown.partitions()[1], &t.partitions()[1]));
            assert_eq!(store.topic("t").expect("t").partition_count(), 5);
            grown
                .partition(4)
                .expect("p4")
                .append(&mut batch(b"new"))
                .expect("append to a new partition");

            let mut overrides = TopicConfig::default();
            overrides.set("retention.ms", "1000").expect("parses");
            let altered = store.alter_topic_config("t", overrides).expect("alter");
            assert_eq!(altered.config().retention_ms_max, Some(1000));
            assert_eq!(
                grown.partition(0).expect("p0").config().retention_ms_max,
                Some(1000),
                "live in the partitions"
            );
            store.close().expect("close");
        }
        let store = Store::open(&dir, defaults()).expect("reopen");
        let t = store.topic("t").expect("t");
        assert_eq!(t.partition_count(), 5);
        assert_eq!(t.config().retention_ms_max, Some(1000));
        assert_eq!(t.partition(1).expect("p1").log_end_offset(), 1);
        assert_eq!(t.partition(4).expect("p4").log_end_offset(), 1);
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
        assert_send_sync::<Topic>();
    }

    #[test]
    fn create_list_delete_and_reopen_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let store = Store::open(&dir, defaults()).expect("open creates the directory");
        let overrides = TopicConfig {
            retention_ms_max: Some(None),
            segment_bytes_max: Some(1 << 20),
            durability: Some(Durability::Sync),
            ..TopicConfig::default()
        };
        let b = store
            .create_topic("b", 1, overrides.clone())
            .expect("create b");
        let a = store
            .create_topic("a.x-1", 3, TopicConfig::default())
            .expect("create a");
        assert_eq!(names(&store), ["a.x-1", "b"], "sorted by name");
        assert_eq!(a.partition_count(), 3);
        assert!(a.partition(3).is_none());
        assert_ne!(a.id(), b.id());
        assert_eq!(b.config(), &overrides.merged_over(&defaults()));
        assert_eq!(b.config().durability, Durability::Sync);
        for p in 0..3 {
            assert!(dir.join(format!("a.x-1-{p}")).is_dir());
        }
        let info = a
            .partition(1)
            .expect("partition 1")
            .append(&mut batch(b"hello"))
            .expect("append");
        assert_eq!(info.base_offset, 0);
        let (a_id, b_id) = (a.id(), b.id());
        drop((a, b));
        store.close().expect("close");

        let store = Store::open(&dir, defaults()).expect("reopen");
        assert_eq!(names(&store), ["a.x-1", "b"]);
        let a = store.topic("a.x-1").expect("a persisted");
        let b = store.topic("b").expect("b persisted");
        assert_eq!((a.id(), b.id()), (a_id, b_id), "ids persist");
        assert_eq!(b.overrides(), &overrides);
        assert_eq!(b.config().retention_ms_max, None);
        let p1 = a.partition(1).expect("partition 1");
        assert_eq!(p1.log_end_offset(), 1);
        let read = p1.read(0, 1 << 20).expect("read");
        assert_eq!(
            &read[..],
            &batch(b"hello")[..],
            "the batch comes back as written"
        );

        store.delete_topic("a.x-1").expect("delete");
        assert!(store.topic("a.x-1").is_none());
        assert_eq!(names(&store), ["b"]);
        assert!(
            p1.append(&mut batch(b"late")).is_err(),
            "a deleted partition takes no appends"
        );
        for p in 0..3 {
            assert!(
                !dir.join(format!("a.x-1-{p}")).exists(),
                "partition {p} removed"
            );
        }
        assert!(!topic_file(&dir, "a.x-1").exists());
        store.close().expect("close");
        let store = Store::open(&dir, defaults()).expect("reopen");
        assert_eq!(names(&store), ["b"]);
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing_on_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path(), defaults()).expect("open");
        store
            .create_topic("t", 2, TopicConfig::default())
            .expect("create");
        let before = listing(tmp.path());
        let long = "x".repeat(250);
        for name in ["", ".", "..", "a/b", "../t", "a\0b", "a b", long.as_str()] {
            assert!(
                matches!(
                    store.create_topic(name, 1, TopicConfig::default()),
                    Err(LogError::InvalidTopicName { .. })
                ),
                "create {name:?}"
            );
            assert!(
                matches!(
                    store.delete_topic(name),
                    Err(LogError::InvalidTopicName { .. })
                ),
                "delete {name:?}"
            );
        }
        for partitions in [0, PARTITIONS_MAX + 1, u32::MAX] {
            assert!(matches!(
                store.create_topic("n", partitions, TopicConfig::default()),
                Err(LogError::InvalidConfig(_))
            ));
        }
        let bad_config = TopicConfig {
            segment_bytes_max: Some(10),
            ..TopicConfig::default()
        };
        match store.create_topic("n", 1, bad_config) {
            Err(LogError::InvalidConfig(reason)) => assert!(reason.contains("\"n\""), "{reason}"),
            other => panic!("bad config gave {other:?}"),
        }
        assert!(matches!(
            store.create_topic("t", 1, TopicConfig::default()),
            Err(LogError::TopicExists(_))
        ));
        assert!(matches!(
            store.delete_topic("nope"),
            Err(LogError::UnknownTopic(_))
        ));
        assert_eq!(
            listing(tmp.path()),
            before,
            "refused requests touched the disk"
        );
        assert_eq!(names(&store), ["t"]);
        assert_eq!(store.topic("t").expect("t").partition_count(), 2);
    }

    #[test]
    fn a_second_opener_in_this_process_is_told_who_holds_the_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path(), defaults()).expect("open");
        let holder = format!("pid {} on host ", std::process::id());
        match Store::open(tmp.path(), defaults()) {
            Err(e @ LogError::Locked { .. }) => {
                assert!(e.to_string().contains(&holder), "{e}");
            }
            other => panic!("second open gave {other:?}"),
        }
        store.close().expect("close");
        assert!(matches!(
            store.create_topic("t", 1, TopicConfig::default()),
            Err(LogError::Closed)
        ));
        store.close().expect("a second close does nothing");
        Store::open(tmp.path(), defaults()).expect("open after close");
    }

    const CHILD_ENV: &str = "BROOK_STORE_LOCK_CHILD_DIR";

    /// Not a test on its own: the child process of
    /// `another_process_holding_the_directory_is_named`. Opens the store named by the
    /// environment, says so, and holds it until its stdin closes.
    #[test]
    #[ignore = "run as a child process by another test"]
    fn lock_holder_child() {
        let Ok(dir) = std::env::var(CHILD_ENV) else {
            return;
        };
        let store = Store::open(dir, defaults()).expect("child opens the store");
        println!("LOCKED");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        store.close().expect("child closes");
    }

    #[test]
    fn another_process_holding_the_directory_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "store::tests::lock_holder_child",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        // Kept open to the end: the child writes its test summary after it lets go.
        let mut lines = BufReader::new(stdout).lines().map_while(|line| line.ok());
        let locked = lines.by_ref().any(|line| line.contains("LOCKED"));
        assert!(locked, "the child never took the lock");
        match Store::open(tmp.path(), defaults()) {
            Err(e @ LogError::Locked { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains(&format!("pid {} on host ", child.id())),
                    "{text}"
                );
            }
            other => panic!("open beside the child gave {other:?}"),
        }
        drop(child.stdin.take());
        lines.for_each(drop);
        assert!(child.wait().expect("wait").success(), "the child failed");
        Store::open(tmp.path(), defaults()).expect("open once the child is gone");
    }

    #[test]
    fn orphans_without_records_are_removed_and_orphans_with_records_set_aside_on_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let store = Store::open(dir, defaults()).expect("open");
        store
            .create_topic("kept", 2, TopicConfig::default())
            .expect("create");
        store
            .create_topic("deleting", 2, TopicConfig::default())
            .expect("create");
        let lost = store
            .create_topic("lost", 2, TopicConfig::default())
            .expect("create");
        lost.partition(1)
            .expect("p1")
            .append(&mut batch(b"acknowledged"))
            .expect("append");
        drop(lost);
        store.close().expect("close");

        // A create that crashed before its topic file: partition directories with data.
        let half = PartitionLog::open(dir.join("half-0"), defaults()).expect("open log");
        half.append(&mut batch(b"x")).expect("append");
        half.close().expect("close");
        std::fs::create_dir(dir.join("half-1")).expect("mkdir");
        // ... and a topic file write interrupted before its rename.
        std::fs::write(dir.join(TOPICS_DIR).join("half.tmp"), b"partial").expect("write");
        // A delete that crashed after removing the topic file.
        std::fs::remove_file(topic_file(dir, "deleting")).expect("rm topic file");
        // A topic file lost to damage, and a directory set aside by an earlier open.
        let lost_file = topic_file(dir, "lost");
        let lost_bytes = std::fs::read(&lost_file).expect("read");
        std::fs::remove_file(&lost_file).expect("rm topic file");
        std::fs::create_dir(dir.join("lost-1.orphaned")).expect("mkdir");
        // A partition beyond a topic's count.
        std::fs::create_dir(dir.join("kept-2")).expect("mkdir");
        // Things that are not partitions of ours are left alone.
        for other in ["groups", "kept-01", "notes-1.txt"] {
            if other.ends_with(".txt") {
                std::fs::write(dir.join(other), b"keep me").expect("write");
            } else {
                std::fs::create_dir(dir.join(other)).expect("mkdir");
            }
        }

        let store = Store::open(dir, defaults()).expect("reopen");
        assert_eq!(names(&store), ["kept"]);
        for gone in [
            "half-0",
            "half-1",
            "deleting-0",
            "deleting-1",
            "lost-0",
            "lost-1",
            "kept-2",
            "topics/half.tmp",
        ] {
            assert!(!dir.join(gone).exists(), "{gone} left behind");
        }
        for kept in [
            "kept-0",
            "kept-1",
            "groups",
            "kept-01",
            "notes-1.txt",
            "half-0.orphaned",
            "lost-1.orphaned",
        ] {
            assert!(dir.join(kept).exists(), "{kept} removed");
        }
        // The name taken, the second choice is stamped; the records are all still there.
        let stamped: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .filter(|name| name.starts_with("lost-1.orphaned."))
            .collect();
        assert_eq!(stamped.len(), 1, "{stamped:?}");
        assert_eq!(
            parse_set_aside_dir(&stamped[0]),
            Some(("lost", 1)),
            "never a partition directory"
        );
        let half = store
            .create_topic("half", 2, TopicConfig::default())
            .expect("create");
        assert_eq!(
            half.partition(0).expect("p0").log_end_offset(),
            0,
            "starts empty"
        );
        store.close().expect("close");

        // Reopening sets nothing aside twice; restoring the topic file and renaming the
        // directory back recovers the records.
        let store = Store::open(dir, defaults()).expect("reopen");
        assert_eq!(names(&store), ["half", "kept"]);
        store.close().expect("close");
        std::fs::write(&lost_file, lost_bytes).expect("restore the topic file");
        std::fs::rename(dir.join(&stamped[0]), dir.join("lost-1")).expect("rename back");
        let store = Store::open(dir, defaults()).expect("reopen");
        let lost = store.topic("lost").expect("recovered");
        let p1 = lost.partition(1).expect("p1");
        assert_eq!(p1.log_end_offset(), 1);
        assert!(!p1.read(0, 1 << 20).expect("read").is_empty());
        assert_eq!(lost.partition(0).expect("p0").log_end_offset(), 0);
    }

    #[test]
    fn a_leftover_directory_does_not_leak_into_a_new_topic_of_the_same_name() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path(), defaults()).expect("open");
        // A directory a failed delete left behind while the store runs.
        let old = PartitionLog::open(tmp.path().join("t-0"), defaults()).expect("open log");
        old.append(&mut batch(b"old")).expect("append");
        old.close().expect("close");
        let t = store
            .create_topic("t", 1, TopicConfig::default())
            .expect("create");
        assert_eq!(t.partition(0).expect("p0").log_end_offset(), 0);
    }

    #[test]
    fn a_damaged_topic_file_takes_its_topic_offline_and_deletes_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path(), defaults()).expect("open");
        store
            .create_topic("t", 2, TopicConfig::default())
            .expect("create");
        let other = store
            .create_topic("u", 1, TopicConfig::default())
            .expect("create");
        other.partitions()[0]
            .append(&mut batch(b"kept"))
            .expect("append");
        store.close().expect("close");
        let file = topic_file(tmp.path(), "t");
        let mut bytes = std::fs::read(&file).expect("read");
        bytes[12] ^= 0xff;
        std::fs::write(&file, &bytes).expect("write");
        let before = listing(tmp.path());
        let store = Store::open(tmp.path(), defaults()).expect("the other topics open");
        let t = store.topic("t").expect("the damaged topic is known");
        let reason = t.damaged_reason().expect("damaged").to_owned();
        assert!(reason.contains("CRC-32"), "{reason}");
        assert_eq!(t.partition_count(), 2, "one per partition directory");
        for log in t.partitions() {
            assert!(matches!(log.status(), crate::LogStatus::Offline { .. }));
            assert!(matches!(log.read(0, 100), Err(LogError::Offline { .. })));
            assert!(matches!(
                log.append(&mut batch(b"x")),
                Err(LogError::Offline { .. })
            ));
        }
        assert!(matches!(
            store.alter_topic_config("t", TopicConfig::default()),
            Err(LogError::Offline { .. })
        ));
        let u = store.topic("u").expect("u");
        assert_eq!(u.partitions()[0].status(), crate::LogStatus::Online);
        assert!(!u.partitions()[0].read(0, 100).expect("read").is_empty());
        store.close().expect("close");
        assert_eq!(
            listing(tmp.path()),
            before,
            "the topic's data must not be treated as orphans, nor its file rewritten"
        );
        // Deleting it is how an operator gets rid of it.
        let store = Store::open(tmp.path(), defaults()).expect("open");
        store.delete_topic("t").expect("delete");
        assert!(!file.exists() && !tmp.path().join("t-0").exists());
    }

    #[test]
    fn a_missing_partition_directory_is_recreated_empty() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path(), defaults()).expect("open");
        let t = store
            .create_topic("t", 2, TopicConfig::default())
            .expect("create");
        t.partition(1)
            .expect("p1")
            .append(&mut batch(b"x"))
            .expect("append");
        drop(t);
        store.close().expect("close");
        std::fs::remove_dir_all(tmp.path().join("t-1")).expect("rm");
        let store = Store::open(tmp.path(), defaults()).expect("reopen");
        let t = store.topic("t").expect("t");
        assert_eq!(t.partition(1).expect("p1").log_end_offset(), 0);
        assert!(tmp.path().join("t-1").is_dir());
    }

    #[test]
    fn defaults_that_break_a_topic_name_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path(), defaults()).expect("open");
        let small = TopicConfig {
            index_bytes_max: Some(2048),
            ..TopicConfig::default()
        };
        store.create_topic("t", 1, small).expect("create");
        store.close().expect("close");
        // The topic pins nothing that fixes a now invalid default.
        let broken = LogConfig {
            segment_ms_max: 0,
            ..defaults()
        };
        assert!(matches!(
            Store::open(tmp.path(), broken),
            Err(LogError::InvalidConfig(_))
        ));
    }
}
