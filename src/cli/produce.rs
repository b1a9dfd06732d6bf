//! `brook produce TOPIC [VALUE]`: one record given inline (as `nats pub` takes it), or one record
//! per line of standard input, through the batching producer (so piping a large file is fast),
//! each record's outcome checked before exiting.
//!
//! Lines are bytes, not necessarily UTF-8; the line ending (`\n` or `\r\n`) is not part of the
//! record. With `--key-separator`, the text before the first separator is the key and the rest
//! the value; a line without the separator is an error that names the line. `-k KEY` gives
//! every record that key; `-H name=value` (repeatable) adds a header to every record.
//! `--print-positions` prints where each record went, `PARTITION@OFFSET`, one line per record
//! in input order (as rpk's `-o` shows it), so a script can read it back with
//! `brook consume -p P -o OFFSET`.

use std::collections::VecDeque;
use std::io::Write;

use anyhow::{bail, Context};
use brook_client::{Delivery, ProducerConfig, ProducerRecord};
use bytes::Bytes;
use clap::Args;
use tokio::io::AsyncBufReadExt;

use super::remote::{self, ServerArgs};

/// Deliveries awaited at once; past it, reading waits for the oldest, so memory stays bounded
/// however long the input is.
const OUTSTANDING_MAX: usize = 65_536;

#[derive(Debug, Args)]
pub(super) struct ProduceArgs {
    /// Topic to produce to (created with the server's defaults if it allows that).
    topic: String,
    /// The value of one record to produce; without it, one record per line of standard input.
    value: Option<String>,
    /// The key of every record (else null, or from --key-separator).
    #[arg(short, long, conflicts_with = "key_separator")]
    key: Option<String>,
    /// A header of every record, NAME=VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Split each line at the first SEP into key and value (else the key is null).
    #[arg(long, value_name = "SEP", conflicts_with = "value")]
    key_separator: Option<String>,
    /// Print where each record went, PARTITION@OFFSET, one line per record.
    #[arg(long)]
    print_positions: bool,
    /// Send every record to this partition (else by key hash, or spread when keyless).
    #[arg(short, long)]
    partition: Option<u32>,
    #[command(flatten)]
    server: ServerArgs,
}

impl ProduceArgs {
    pub(super) fn run(self) -> anyhow::Result<std::process::ExitCode> {
        remote::run(self.produce())
    }

    async fn produce(self) -> anyhow::Result<()> {
        if self.key_separator.as_deref() == Some("") {
            bail!("--key-separator must not be empty");
        }
        let headers = self.headers()?;
        let client = self.server.connect().await?;
        let producer = client.producer(ProducerConfig::default())?;
        let mut positions = Positions::new(self.print_positions);
        if let Some(value) = &self.value {
            let record = self.record(value.as_bytes(), &headers)?;
            let delivery = producer.send(&self.topic, record).await?;
            producer.flush().await?;
            positions.check(1, delivery).await?;
            return Ok(());
        }
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut outstanding: VecDeque<(u64, Delivery)> = VecDeque::new();
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            if stdin
                .read_until(b'\n', &mut line)
                .await
                .context("cannot read standard input")?
                == 0
            {
                break;
            }
            number += 1;
            let record = self
                .record(trim_line_end(&line), &headers)
                .with_context(|| format!("line {number}"))?;
            let delivery = producer.send(&self.topic, record).await?;
            outstanding.push_back((number, delivery));
            if outstanding.len() >= OUTSTANDING_MAX {
                if let Some((number, delivery)) = outstanding.pop_front() {
                    positions.check(number, delivery).await?;
                }
            }
        }
        producer.flush().await?;
        for (number, delivery) in outstanding {
            positions.check(number, delivery).await?;
        }
        Ok(())
    }

    /// The `-H` headers, checked.
    fn headers(&self) -> anyhow::Result<Vec<(String, Bytes)>> {
        self.headers
            .iter()
            .map(|header| match header.split_once('=') {
                Some((name, value)) if !name.is_empty() => {
                    Ok((name.to_owned(), Bytes::copy_from_slice(value.as_bytes())))
                }
                _ => bail!("header {header:?} is not NAME=VALUE"),
            })
            .collect()
    }

    fn record(&self, line: &[u8], headers: &[(String, Bytes)]) -> anyhow::Result<ProducerRecord> {
        let mut record = match &self.key_separator {
            None => ProducerRecord::value(Bytes::copy_from_slice(line)),
            Some(separator) => {
                let Some(at) = find(line, separator.as_bytes()) else {
                    bail!("no key separator {separator:?}");
                };
                ProducerRecord::keyed(
                    Bytes::copy_from_slice(&line[..at]),
                    Bytes::copy_from_slice(&line[at + separator.len()..]),
                )
            }
        };
        if let Some(key) = &self.key {
            record.key = Some(Bytes::copy_from_slice(key.as_bytes()));
        }
        record.headers = headers.to_vec();
        record.partition = self.partition;
        Ok(record)
    }
}

/// Checks deliveries in input order, printing each position when asked to.
struct Positions {
    print: Option<std::io::StdoutLock<'static>>,
}

impl Positions {
    fn new(print: bool) -> Self {
        Self {
            print: print.then(|| std::io::stdout().lock()),
        }
    }

    async fn check(&mut self, number: u64, delivery: Delivery) -> anyhow::Result<()> {
        let position = delivery
            .await
            .with_context(|| format!("record of line {number} was not stored"))?;
        if let Some(out) = &mut self.print {
            writeln!(out, "{}@{}", position.partition, position.offset)?;
        }
        Ok(())
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(find(b"k:v:w", b":"), Some(1));
        assert_eq!(find(b"k::v", b"::"), Some(1));
        assert_eq!(find(b"kv", b":"), None);
        assert_eq!(trim_line_end(b"a\r\n"), b"a");
        assert_eq!(trim_line_end(b"a"), b"a");
    }
}
