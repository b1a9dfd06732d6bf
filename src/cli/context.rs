//! `brook context add|use|list|show|remove`: named servers, like rpk profiles and nats
//! contexts, so `brook context use prod` points every later command at another broker.
//!
//! Contexts live in one TOML file, `contexts.toml` in brook's config directory:
//! `$BROOK_CONFIG_DIR`, else `$XDG_CONFIG_HOME/brook`, else `~/.config/brook`. It is written
//! whole to a temporary file and renamed over the old one, so a crash never leaves half a file;
//! a file that does not parse is reported with its path, never overwritten.
//!
//! ```toml
//! current = "local"
//!
//! [contexts.local]
//! server = "127.0.0.1:50051"
//! description = "the broker on this machine"
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::table;

#[derive(Debug, Subcommand)]
pub(super) enum ContextCommand {
    /// Add (or replace) a context: a name for the server given with -s HOST:PORT.
    Add(AddArgs),
    /// Make a context the current one: later commands talk to its server.
    Use(NameArgs),
    /// List the contexts; the current one is marked with *.
    List(ListArgs),
    /// Show the server the next command would talk to, and why.
    Show,
    /// Remove a context.
    Remove(NameArgs),
}

#[derive(Debug, Args)]
pub(super) struct AddArgs {
    /// The context's name: letters, digits, `.`, `_` and `-`.
    name: String,
    /// A note shown by `brook context list`.
    #[arg(long)]
    description: Option<String>,
    /// Make it the current context too.
    #[arg(long = "use")]
    make_current: bool,
}

#[derive(Debug, Args)]
pub(super) struct NameArgs {
    /// The context's name.
    name: String,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// One JSON object: `{"current": NAME, "contexts": [{"name", "server", "description"}]}`.
    #[arg(long)]
    json: bool,
}

/// One named server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Context {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The contexts file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Contexts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, Context>,
}

/// Where the contexts file is.
fn path() -> anyhow::Result<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = if let Some(dir) = var("BROOK_CONFIG_DIR") {
        PathBuf::from(dir)
    } else if let Some(dir) = var("XDG_CONFIG_HOME") {
        PathBuf::from(dir).join("brook")
    } else if let Some(home) = var("HOME") {
        PathBuf::from(home).join(".config").join("brook")
    } else {
        bail!("no config directory: set BROOK_CONFIG_DIR (or HOME)");
    };
    Ok(dir.join("contexts.toml"))
}

impl Contexts {
    /// Reads the contexts file; no file is no contexts.
    pub(super) fn load() -> anyhow::Result<Self> {
        let path = path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read contexts {}", path.display()))
            }
        };
        toml::from_str(&text)
            .with_context(|| format!("contexts file {} is not valid", path.display()))
    }

    /// Writes the file whole: a temporary file renamed over the old one.
    fn save(&self) -> anyhow::Result<()> {
        let path = path()?;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create config directory {}", dir.display()))?;
        let text = toml::to_string(self).context("cannot write the contexts as TOML")?;
        let temporary = path.with_extension("toml.tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .with_context(|| format!("cannot write contexts {}", path.display()))
    }

    /// The context called `name`, or an error listing the ones there are.
    pub(super) fn get(&self, name: &str) -> anyhow::Result<&Context> {
        self.contexts.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
            if known.is_empty() {
                anyhow!(
                    "no context {name}: there are none yet (add one with `brook context add \
                     {name} -s HOST:PORT`)"
                )
            } else {
                anyhow!("no context {name} (there are: {})", known.join(", "))
            }
        })
    }

    /// The current context, if one is set and still exists.
    pub(super) fn current(&self) -> Option<(&str, &Context)> {
        let name = self.current.as_deref()?;
        self.contexts.get(name).map(|c| (name, c))
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("context name {name:?} must be 1 to 64 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

impl ContextCommand {
    /// Runs the command; `server` is the global `-s/--server` (the server a context names).
    pub(super) fn run(self, server: Option<&str>) -> anyhow::Result<ExitCode> {
        let mut out = std::io::stdout().lock();
        let mut contexts = Contexts::load()?;
        match self {
            ContextCommand::Add(args) => {
                check_name(&args.name)?;
                let server = match server.map(str::trim) {
                    Some(server) if !server.is_empty() => server.to_owned(),
                    _ => bail!(
                        "say which server the context names: brook context add {} -s HOST:PORT",
                        args.name
                    ),
                };
                let context = Context {
                    server,
                    description: args.description,
                };
                contexts.contexts.insert(args.name.clone(), context);
                if args.make_current || contexts.current.is_none() {
                    contexts.current = Some(args.name.clone());
                }
                contexts.save()?;
                let current = if contexts.current.as_deref() == Some(&args.name) {
                    " (current)"
                } else {
                    ""
                };
                writeln!(out, "added context {}{current}", args.name)?;
            }
            ContextCommand::Use(args) => {
                contexts.get(&args.name)?;
                contexts.current = Some(args.name.clone());
                contexts.save()?;
                writeln!(out, "using context {}", args.name)?;
            }
            ContextCommand::Remove(args) => {
                if contexts.contexts.remove(&args.name).is_none() {
                    contexts.get(&args.name)?;
                }
                if contexts.current.as_deref() == Some(&args.name) {
                    contexts.current = None;
                }
                contexts.save()?;
                writeln!(out, "removed context {}", args.name)?;
            }
            ContextCommand::List(args) if args.json => {
                let list: Vec<serde_json::Value> = contexts
                    .contexts
                    .iter()
                    .map(|(name, c)| {
                        serde_json::json!({
                            "name": name,
                            "server": c.server,
                            "description": c.description,
                        })
                    })
                    .collect();
                let all = serde_json::json!({ "current": contexts.current, "contexts": list });
                writeln!(out, "{all}")?;
            }
            ContextCommand::List(_) => {
                let rows: Vec<Vec<String>> = contexts
                    .contexts
                    .iter()
                    .map(|(name, c)| {
                        let mark = if contexts.current.as_deref() == Some(name) {
                            "*"
                        } else {
                            ""
                        };
                        vec![
                            mark.to_owned(),
                            name.clone(),
                            c.server.clone(),
                            c.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table::write(&mut out, &["", "NAME", "SERVER", "DESCRIPTION"], &rows)?;
            }
            ContextCommand::Show => {
                let target = super::remote::target();
                writeln!(out, "server: {}", target.url)?;
                writeln!(out, "from:   {}", target.from)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contexts_file_reads_back_as_written() {
        let mut contexts = Contexts::default();
        contexts.contexts.insert(
            "prod".into(),
            Context {
                server: "brook.prod:50051".into(),
                description: Some("the real one".into()),
            },
        );
        contexts.current = Some("prod".into());
        let text = toml::to_string(&contexts).expect("TOML");
        assert_eq!(toml::from_str::<Contexts>(&text).expect("parses"), contexts);
        assert!(toml::from_str::<Contexts>("contexts = 3").is_err());
        assert!(check_name("prod-eu.1").is_ok());
        assert!(check_name("no spaces").is_err());
    }
}
