//! `brook acl list|add|remove`: the ACLs of a server (docs/security.md, "Authorization"), like
//! `kafka-acls --add|--remove|--list`. They act where every admin command does
//! ([`super::admin`]): offline on a stopped server's data directory (`--data-dir`; the store is
//! locked while a server runs, and the commands say so), or online through the running
//! server's HTTP door (`--http-addr`, `/v1/acls`) or gRPC door (`-s`, `CreateAcls`, ...), as
//! the caller its credentials file or client certificate names (Alter on the cluster to change,
//! Describe to list).
//!
//! The rule is given as `kafka-acls` gives it: `--principal User:NAME`, `--operation`, one
//! resource (`--topic`, `--group`, `--transactional-id` or `--cluster`), and `--prefixed`,
//! `--deny`, `--host` when not the defaults (literal, allow, any host). The words are parsed by
//! the broker's [`AclText`], the one place every door reads them.

use std::process::ExitCode;

use anyhow::Context;
use brook_broker::auth::AclText;

use super::admin::AdminArgs;

#[derive(Debug, clap::Subcommand)]
pub(super) enum AclCommand {
    /// Add a rule.
    Add {
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        at: AdminArgs,
    },
    /// Remove the rules the options select (at least one option).
    Remove {
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        at: AdminArgs,
    },
    /// List the rules the options select (all without any).
    List {
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        at: AdminArgs,
    },
}

/// A rule, or (for `list` and `remove`) a filter: options left out match anything.
#[derive(Debug, clap::Args)]
#[group(multiple = true)]
pub(super) struct RuleArgs {
    /// The principal: `User:NAME`, or `User:*` for everyone.
    #[arg(long)]
    principal: Option<String>,
    /// The operation: all, read, write, create, delete, alter, describe, describe-configs,
    /// alter-configs, idempotent-write, cluster-action.
    #[arg(long)]
    operation: Option<String>,
    /// A topic (a name, a prefix with --prefixed, or `*`).
    #[arg(long, group = "resource")]
    topic: Option<String>,
    /// A consumer group.
    #[arg(long, group = "resource")]
    group: Option<String>,
    /// A transactional id.
    #[arg(long, group = "resource")]
    transactional_id: Option<String>,
    /// The cluster (creating topics, ACLs, describing configs, idempotent writes).
    #[arg(long, group = "resource")]
    cluster: bool,
    /// The name is a prefix: the rule covers every name starting with it.
    #[arg(long)]
    prefixed: bool,
    /// A deny rule (deny wins over any allow).
    #[arg(long)]
    deny: bool,
    /// Only from this IP address (default: any host).
    #[arg(long)]
    host: Option<String>,
}

impl RuleArgs {
    fn text(&self) -> AclText<'_> {
        let (resource_type, resource_name) = if let Some(t) = &self.topic {
            (Some("topic"), Some(t.as_str()))
        } else if let Some(g) = &self.group {
            (Some("group"), Some(g.as_str()))
        } else if let Some(t) = &self.transactional_id {
            (Some("transactional-id"), Some(t.as_str()))
        } else if self.cluster {
            (Some("cluster"), Some(brook_broker::auth::acl::CLUSTER_NAME))
        } else {
            (None, None)
        };
        AclText {
            resource_type,
            resource_name,
            pattern_type: self.prefixed.then_some("prefixed"),
            principal: self.principal.as_deref(),
            host: self.host.as_deref(),
            operation: self.operation.as_deref(),
            permission: self.deny.then_some("deny"),
        }
    }
}

impl AclCommand {
    /// Whether the command goes to a running server.
    pub(super) fn online(&self) -> bool {
        match self {
            AclCommand::Add { at, .. }
            | AclCommand::Remove { at, .. }
            | AclCommand::List { at, .. } => at.online(),
        }
    }

    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            AclCommand::Add { rule, at } => {
                // Checked here, so a bad rule never reaches a server.
                let acl = rule
                    .text()
                    .binding()
                    .context("not a complete ACL: give --principal, --operation and a resource")?;
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    admin
                        .create_acl(&rule.text(), &acl)
                        .await
                        .context("cannot add the ACL")?;
                    println!("added: {acl}");
                    Ok(())
                })
            }
            AclCommand::Remove { rule, at } => {
                let text = rule.text();
                anyhow::ensure!(
                    text != AclText::default(),
                    "say which ACLs to remove (--principal, --topic, ...): removing every rule \
                     takes an explicit --principal 'User:*' or a resource"
                );
                // Checked here, so a bad filter never reaches a server.
                text.filter()?;
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    let removed = admin
                        .delete_acls(&rule.text())
                        .await
                        .context("cannot remove ACLs")?;
                    for acl in &removed {
                        println!("removed: {acl}");
                    }
                    eprintln!("{} ACL(s) removed", removed.len());
                    Ok(())
                })
            }
            AclCommand::List { rule, at } => {
                rule.text().filter()?;
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    let acls = admin.acls(&rule.text()).await.context("cannot list ACLs")?;
                    for acl in acls {
                        println!("{acl}");
                    }
                    Ok(())
                })
            }
        }
    }
}
