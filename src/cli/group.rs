//! `brook group list|describe|seek|delete`: consumer groups, their members and how far behind
//! they are; moving a group's committed offsets the way `kafka-consumer-groups --reset-offsets`
//! does, and deleting a group. Both changes are for groups without live members (the server
//! refuses them otherwise, and says so).

use std::io::Write;

use anyhow::{bail, Context};
use brook_client::proto::seek_group_request::To;
use brook_client::proto::{
    DescribeGroupResponse, GroupState, GroupSummary, SeekPosition, TopicPartitions,
};
use clap::{Args, Subcommand};

use super::remote::{self, ServerArgs};
use super::{json, table};

#[derive(Debug, Subcommand)]
pub(super) enum GroupCommand {
    /// List consumer groups (with members or committed offsets).
    List(json::ListArgs),
    /// Show a group's members, assignments, committed offsets and lag.
    Describe(DescribeArgs),
    /// Move a group's committed offsets (kafka-consumer-groups --reset-offsets); its consumers
    /// resume there. Only a group without live members.
    Seek(SeekArgs),
    /// Delete a group without live members: its committed offsets.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub(super) struct SeekArgs {
    /// Group id.
    group: String,
    /// Where to: earliest, latest, OFFSET, a DATETIME (2026-12-06T09:00:00Z, with an optional
    /// .mmm and a ±HH:MM zone instead of Z) or @MS (ms since the epoch): the first record at or
    /// after it; shift:N (N records on from the committed offset, back when negative).
    #[arg(long, value_name = "WHERE")]
    to: String,
    /// Only the partitions of this topic (repeatable; default: every partition the group has
    /// committed).
    #[arg(long, short)]
    topic: Vec<String>,
    /// Only print where each partition would go.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct DeleteArgs {
    /// Group id.
    group: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct DescribeArgs {
    /// Group id.
    group: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

impl GroupCommand {
    pub(super) fn run(self) -> anyhow::Result<std::process::ExitCode> {
        remote::run(async move {
            let mut out = std::io::stdout().lock();
            match self {
                GroupCommand::List(args) => {
                    let groups = args.server.connect().await?.admin().list_groups().await?;
                    if args.json {
                        let state = |g: &GroupSummary| state_name(g.state());
                        json::print(&mut out, &json::groups(&groups, state))?;
                        return Ok(());
                    }
                    let rows: Vec<Vec<String>> = groups
                        .into_iter()
                        .map(|g| {
                            let state = state_name(g.state());
                            vec![g.group_id, g.member_count.to_string(), state.to_owned()]
                        })
                        .collect();
                    table::write(&mut out, &["GROUP", "MEMBERS", "STATE"], &rows)?;
                }
                GroupCommand::Describe(args) => {
                    let admin = args.server.connect().await?.admin();
                    let group = admin.describe_group(&args.group).await?;
                    if args.json {
                        let state = state_name(group.state());
                        json::print(&mut out, &json::group(&group, state))?;
                    } else {
                        describe(&mut out, &group)?;
                    }
                }
                GroupCommand::Seek(args) => {
                    let to = parse_to(&args.to)?;
                    let admin = args.server.connect().await?.admin();
                    let moved = admin
                        .seek_group(&args.group, to, &args.topic, args.dry_run)
                        .await?;
                    if moved.is_empty() {
                        bail!(
                            "nothing to move: group {} has no committed offsets{}; name the \
                             topics to move with --topic",
                            args.group,
                            if args.topic.is_empty() {
                                ""
                            } else {
                                " in those topics"
                            }
                        );
                    }
                    let rows: Vec<Vec<String>> = moved
                        .into_iter()
                        .map(|p| {
                            vec![
                                p.topic,
                                p.partition.to_string(),
                                p.from_offset.map_or_else(|| "-".into(), |o| o.to_string()),
                                p.to_offset.to_string(),
                            ]
                        })
                        .collect();
                    let header = ["TOPIC", "PARTITION", "FROM", "TO"];
                    table::write(&mut out, &header, &rows)?;
                    if args.dry_run {
                        writeln!(out, "(dry run: nothing moved)")?;
                    }
                }
                GroupCommand::Delete(args) => {
                    let admin = args.server.connect().await?.admin();
                    admin.delete_group(&args.group).await?;
                    writeln!(out, "deleted group {}", args.group)?;
                }
            }
            Ok(())
        })
    }
}

fn describe(out: &mut impl Write, group: &DescribeGroupResponse) -> anyhow::Result<()> {
    writeln!(out, "group:      {}", group.group_id)?;
    writeln!(out, "state:      {}", state_name(group.state()))?;
    writeln!(out, "generation: {}", group.generation)?;
    writeln!(out, "members:    {}", group.members.len())?;
    if !group.members.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = group
            .members
            .iter()
            .map(|m| {
                vec![
                    m.member_id.clone(),
                    m.client_id.clone(),
                    assigned(&m.assigned),
                ]
            })
            .collect();
        table::write(out, &["MEMBER", "CLIENT", "ASSIGNED"], &rows)?;
    }
    writeln!(out)?;
    let rows: Vec<Vec<String>> = group
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.committed_offset
                    .map_or_else(|| "-".into(), |o| o.to_string()),
                p.high_watermark.to_string(),
                p.lag.to_string(),
                if p.member_id.is_empty() {
                    "-".into()
                } else {
                    p.member_id.clone()
                },
            ]
        })
        .collect();
    let header = [
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "HIGH-WATERMARK",
        "LAG",
        "MEMBER",
    ];
    table::write(out, &header, &rows)?;
    Ok(())
}

/// `orders:0,1 audit:2`
fn assigned(assigned: &[TopicPartitions]) -> String {
    let topics: Vec<String> = assigned
        .iter()
        .map(|t| {
            let partitions: Vec<String> = t.partitions.iter().map(u32::to_string).collect();
            format!("{}:{}", t.topic, partitions.join(","))
        })
        .collect();
    if topics.is_empty() {
        "-".into()
    } else {
        topics.join(" ")
    }
}

fn state_name(state: GroupState) -> &'static str {
    match state {
        GroupState::Stable => "Stable",
        GroupState::Empty => "Empty",
        GroupState::Unspecified => "-",
    }
}

/// `--to`: earliest, latest, OFFSET, DATETIME, @MS or shift:N.
fn parse_to(to: &str) -> anyhow::Result<To> {
    let bad =
        || format!("--to {to:?}: expected earliest, latest, OFFSET, DATETIME, @MS or shift:N");
    Ok(match to {
        "earliest" | "start" | "beginning" => To::Position(SeekPosition::Earliest.into()),
        "latest" | "end" => To::Position(SeekPosition::Latest.into()),
        _ if to.starts_with("shift:") => {
            To::ShiftBy(to["shift:".len()..].parse().with_context(bad)?)
        }
        _ if to.starts_with('@') => To::TimestampMs(to[1..].parse().with_context(bad)?),
        _ if to.bytes().all(|b| b.is_ascii_digit()) => To::Offset(to.parse().with_context(bad)?),
        _ => To::TimestampMs(datetime_ms(to).with_context(bad)?),
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm](Z|±HH:MM)` (RFC 3339; a space may stand for the `T`, and without a
/// zone the time is UTC) as ms since the Unix epoch.
fn datetime_ms(text: &str) -> anyhow::Result<i64> {
    let number = |s: &str| -> anyhow::Result<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            bail!("{s:?} is not a number");
        }
        Ok(s.parse()?)
    };
    let (date, rest) = text
        .split_once(['T', ' '])
        .context("no time: expected YYYY-MM-DDTHH:MM:SS")?;
    let date: Vec<&str> = date.split('-').collect();
    let [year, month, day] = date[..] else {
        bail!("the date is not YYYY-MM-DD");
    };
    let (year, month, day) = (number(year)?, number(month)?, number(day)?);
    let (time, offset_ms) = if let Some(time) = rest.strip_suffix('Z') {
        (time, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let (time, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..]
            .split_once(':')
            .context("the zone is not ±HH:MM")?;
        (
            time,
            sign * (number(hours)? * 60 + number(minutes)?) * 60_000,
        )
    } else {
        (rest, 0)
    };
    let (time, millis) = match time.split_once('.') {
        Some((time, fraction)) if fraction.len() <= 3 => (
            time,
            number(fraction)? * 10_i64.pow(3 - fraction.len() as u32),
        ),
        Some(_) => bail!("more than milliseconds"),
        None => (time, 0),
    };
    let time: Vec<&str> = time.split(':').collect();
    let [hour, minute, second] = time[..] else {
        bail!("the time is not HH:MM:SS");
    };
    let (hour, minute, second) = (number(hour)?, number(minute)?, number(second)?);
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => bail!("no month {month}"),
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        bail!("no such date or time");
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_read_as_rfc_3339() {
        assert_eq!(datetime_ms("1970-01-01T00:00:00Z").expect("epoch"), 0);
        assert_eq!(
            datetime_ms("2026-12-06T09:00:00Z").expect("utc"),
            1_796_547_600_000
        );
        assert_eq!(
            datetime_ms("2026-12-06T10:00:00.250+01:00").expect("zone"),
            1_796_547_600_250
        );
        assert_eq!(
            datetime_ms("2024-02-29 23:59:59").expect("leap day, no zone"),
            1_709_251_199_000
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-12-06",
            "yesterday",
        ] {
            assert!(datetime_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seek_targets_are_parsed() {
        assert_eq!(
            parse_to("earliest").expect("earliest"),
            To::Position(SeekPosition::Earliest.into())
        );
        assert_eq!(
            parse_to("latest").expect("latest"),
            To::Position(SeekPosition::Latest.into())
        );
        assert_eq!(parse_to("42").expect("offset"), To::Offset(42));
        assert_eq!(parse_to("shift:-5").expect("shift"), To::ShiftBy(-5));
        assert_eq!(parse_to("@1000").expect("ms"), To::TimestampMs(1000));
        assert_eq!(
            parse_to("1970-01-01T00:00:01Z").expect("datetime"),
            To::TimestampMs(1000)
        );
        let err = parse_to("shift:x").expect_err("bad shift");
        assert!(err.to_string().contains("expected earliest"), "{err}");
    }
}
