//! `brook acl list|add|remove`: offline administration of a data directory's ACLs
//! (docs/security.md, "Authorization"), like `kafka-acls --add|--remove|--list`. A running
//! broker's ACLs are changed through its admin APIs instead (Kafka's CreateAcls, gRPC
//! `CreateAcls`, HTTP `/v1/acls`): the store is locked while it runs, and these commands say so.
//!
//! The rule is given as `kafka-acls` gives it: `--principal User:NAME`, `--operation`, one
//! resource (`--topic`, `--group`, `--transactional-id` or `--cluster`), and `--prefixed`,
//! `--deny`, `--host` when not the defaults (literal, allow, any host). The words are parsed by
//! the broker's [`AclText`], the one place every door reads them.

use std::process::ExitCode;

use anyhow::Context;
use brook_broker::auth::AclText;

use super::security::StoreArgs;

#[derive(Debug, clap::Subcommand)]
pub(super) enum AclCommand {
    /// Add a rule. The broker must be stopped.
    Add {
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove the rules the options select (at least one option). The broker must be stopped.
    Remove {
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the rules the options select (all without any).
    List {
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        store: StoreArgs,
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
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            AclCommand::Add { rule, store } => {
                let acl = rule
                    .text()
                    .binding()
                    .context("not a complete ACL: give --principal, --operation and a resource")?;
                let auth = store.open(false)?;
                super::remote::run(async move {
                    auth.create_acls(vec![acl.clone()])
                        .await
                        .context("cannot add the ACL")?;
                    println!("added: {acl}");
                    Ok(())
                })
            }
            AclCommand::Remove { rule, store } => {
                let text = rule.text();
                anyhow::ensure!(
                    text != AclText::default(),
                    "say which ACLs to remove (--principal, --topic, ...): removing every rule \
                     takes an explicit --principal 'User:*' or a resource"
                );
                let filter = text.filter()?;
                let auth = store.open(false)?;
                super::remote::run(async move {
                    let removed = auth
                        .delete_acls(vec![filter])
                        .await
                        .context("cannot remove ACLs")?;
                    let removed: Vec<_> = removed.into_iter().flatten().collect();
                    for acl in &removed {
                        println!("removed: {acl}");
                    }
                    eprintln!("{} ACL(s) removed", removed.len());
                    Ok(())
                })
            }
            AclCommand::List { rule, store } => {
                let filter = rule.text().filter()?;
                let auth = store.open(false)?;
                for acl in auth.acls(&filter) {
                    println!("{acl}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
