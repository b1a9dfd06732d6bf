//! `brook log repair`: the one change the offline tools make, on a stopped broker's data
//! directory. After corruption a partition is read-only up to the damage (the broker's error
//! and `brook log check` name this command); `--truncate-to OFFSET` drops every batch from the
//! one holding OFFSET on, durably, so that appends resume there. What is dropped is gone: look
//! first with `brook log dump`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use brook_log::inspect;
use brook_log::LogConfig;

#[derive(Debug, clap::Args)]
pub(crate) struct RepairArgs {
    /// The data directory (the broker's `--data-dir`); the broker must be stopped.
    #[arg(long)]
    data_dir: PathBuf,
    /// The topic of the partition to repair.
    #[arg(long)]
    topic: String,
    /// The partition to repair.
    #[arg(long)]
    partition: u32,
    /// Drop every batch whose last offset is at or past OFFSET (a batch holding OFFSET goes
    /// whole): the log then ends at OFFSET, or where that batch began.
    #[arg(long, value_name = "OFFSET")]
    truncate_to: u64,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

impl RepairArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        brook_broker::validate_topic_name(&self.topic)?;
        let dir = inspect::partition_dir(&self.data_dir, &self.topic, self.partition);
        anyhow::ensure!(
            dir.is_dir(),
            "{} is not a partition directory of {}",
            dir.display(),
            self.data_dir.display()
        );
        let preview = inspect::preview_open(
            &dir,
            inspect::topic_config(&self.data_dir, &self.topic, &LogConfig::default()),
        );
        let end = preview.log_end_offset;
        println!(
            "{}-{}: log {}..{} ({})",
            self.topic,
            self.partition,
            preview.log_start_offset,
            end,
            match &preview.status {
                brook_log::LogStatus::Online => "online".to_owned(),
                other => format!("{other:?}"),
            }
        );
        if !self.yes
            && !confirm(&format!(
                "drop every batch of {}-{} from the one holding offset {} on, for good?",
                self.topic, self.partition, self.truncate_to
            ))?
        {
            println!("nothing changed");
            return Ok(ExitCode::from(crate::cli::EXIT_PROBLEM_FOUND));
        }
        let done = inspect::truncate_partition(
            &self.data_dir,
            &self.topic,
            self.partition,
            self.truncate_to,
            &LogConfig::default(),
        )
        .with_context(|| format!("repairing {}-{}", self.topic, self.partition))?;
        println!(
            "{}-{}: truncated from offset {} to {}{}",
            self.topic,
            self.partition,
            done.log_end_before,
            done.log_end_after,
            if done.was_read_only {
                "; the damage is gone and appends resume"
            } else {
                ""
            }
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Asks on the terminal; anything but `y`/`yes` is no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
