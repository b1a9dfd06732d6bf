//! `brook group list|describe`: consumer groups, their members and how far behind they are.

use std::io::Write;

use brook_client::proto::{DescribeGroupResponse, GroupState, GroupSummary, TopicPartitions};
use clap::{Args, Subcommand};

use super::remote::{self, ServerArgs};
use super::{json, table};

#[derive(Debug, Subcommand)]
pub(super) enum GroupCommand {
    /// List consumer groups (with members or committed offsets).
    List(json::ListArgs),
    /// Show a group's members, assignments, committed offsets and lag.
    Describe(DescribeArgs),
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
