//! `brook user` and `brook token`: offline administration of a data directory's security store
//! (`<data>/security/`, docs/security.md), like Kafka's `kafka-configs --add-config
//! SCRAM-SHA-256=...` and `rpk acl user create`.
//!
//! They open the store through the broker's own handle ([`Auth::open`]), which takes the
//! store's lock: on the directory of a running broker they fail and say so, since an offline
//! change would be lost under the broker's next write. A password is never an argument (ps
//! shows arguments): `--password-stdin` reads it from standard input. What is printed never
//! holds a secret, except the text of a new token, printed once on stdout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use brook_broker::auth::{Auth, AuthConfig, TokenRecord};

#[derive(Debug, clap::Subcommand)]
pub(super) enum UserCommand {
    /// Create a user with SCRAM-SHA-256 and SCRAM-SHA-512 credentials (salted; no password is
    /// stored). The broker must be stopped.
    #[command(visible_alias = "create")]
    Add {
        /// The user name (its principal is `User:NAME`).
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Read the password from standard input (its first line, or all of it without a
        /// newline). Required: a password is never taken as an argument.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Delete a user and revoke its tokens. The broker must be stopped.
    Remove {
        /// The user name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users and the SCRAM mechanisms (with iterations) they have credentials for.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum TokenCommand {
    /// Create a bearer token acting as USER; its text is printed once (only its hash is kept).
    /// The broker must be stopped.
    Create {
        /// The user the token acts as.
        user: String,
        #[command(flatten)]
        store: StoreArgs,
        /// How long it is valid: a number with `m`, `h` or `d` (1m to 366d).
        #[arg(long, default_value = "30d", value_parser = parse_ttl_ms, value_name = "DURATION")]
        ttl: u64,
    },
    /// Revoke a token by its id (as `brook token list` shows it). The broker must be stopped.
    Revoke {
        /// The token's id (the hex part after `brook_`).
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (of one user, or all): id, user, expiry; never their secrets.
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the store is.
#[derive(Debug, clap::Args)]
pub(super) struct StoreArgs {
    /// The data directory (the broker's `--data-dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

impl StoreArgs {
    /// Opens the store; unless `create`, the data directory must exist already (a mistyped
    /// path is an error, not a new empty store).
    pub(super) fn open(&self, create: bool) -> anyhow::Result<Auth> {
        let dir = &self.data_dir;
        anyhow::ensure!(
            create || dir.is_dir(),
            "{} is not a directory",
            dir.display()
        );
        open_store(dir)
    }
}

fn open_store(dir: &Path) -> anyhow::Result<Auth> {
    Auth::open_blocking(dir, AuthConfig::default())
        .with_context(|| format!("cannot open the security store of {}", dir.display()))
}

impl UserCommand {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            UserCommand::Add { name, store, .. } => {
                let password = read_password()?;
                let auth = store.open(true)?;
                super::remote::run(async move {
                    auth.create_user(&name, &password)
                        .await
                        .with_context(|| format!("cannot add user {name}"))?;
                    println!("user {name} added");
                    Ok(())
                })
            }
            UserCommand::Remove { name, store } => {
                let auth = store.open(false)?;
                super::remote::run(async move {
                    auth.delete_user(&name)
                        .await
                        .with_context(|| format!("cannot remove user {name}"))?;
                    println!("user {name} removed (and its tokens revoked)");
                    Ok(())
                })
            }
            UserCommand::List { store } => {
                let auth = store.open(false)?;
                for user in auth.users() {
                    let mechanisms: Vec<String> = user
                        .mechanisms
                        .iter()
                        .map(|(mechanism, iterations)| format!("{mechanism}({iterations})"))
                        .collect();
                    println!("{}\t{}", user.name, mechanisms.join(","));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

impl TokenCommand {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            TokenCommand::Create { user, store, ttl } => {
                let auth = store.open(false)?;
                super::remote::run(async move {
                    let (record, text) = auth
                        .create_token(&user, ttl)
                        .await
                        .with_context(|| format!("cannot create a token for {user}"))?;
                    println!("{text}");
                    eprintln!(
                        "token {} for {} expires at {} ms since the epoch; it is shown only now",
                        record.id, record.user, record.expires_ms
                    );
                    Ok(())
                })
            }
            TokenCommand::Revoke { id, store } => {
                let auth = store.open(false)?;
                super::remote::run(async move {
                    let record = auth
                        .revoke_token(&id)
                        .await
                        .with_context(|| format!("cannot revoke token {id}"))?;
                    println!("token {} of {} revoked", record.id, record.user);
                    Ok(())
                })
            }
            TokenCommand::List { user, store } => {
                let auth = store.open(false)?;
                for TokenRecord {
                    id,
                    user,
                    created_ms,
                    expires_ms,
                    ..
                } in auth.tokens(user.as_deref())
                {
                    println!("{id}\t{user}\tcreated_ms={created_ms}\texpires_ms={expires_ms}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// The password on standard input: its first line (without the line end), or all of it when
/// there is no newline. The broker checks its length.
fn read_password() -> anyhow::Result<Vec<u8>> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(64 * 1024)
        .read_to_end(&mut input)
        .context("cannot read the password from standard input")?;
    if let Some(end) = input.iter().position(|&b| b == b'\n') {
        input.truncate(end);
        if input.last() == Some(&b'\r') {
            input.pop();
        }
    }
    Ok(input)
}

/// `90m`, `12h`, `30d` as milliseconds; the broker checks the bounds.
fn parse_ttl_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration like 90m, 12h or 30d");
    let (number, unit_ms) = match text.char_indices().last() {
        Some((at, 'm')) => (&text[..at], 60_000),
        Some((at, 'h')) => (&text[..at], 3_600_000),
        Some((at, 'd')) => (&text[..at], 86_400_000),
        _ => return Err(bad()),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    number.checked_mul(unit_ms).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl_ms;

    #[test]
    fn ttls_take_minutes_hours_and_days_only() {
        assert_eq!(parse_ttl_ms("90m"), Ok(5_400_000));
        assert_eq!(parse_ttl_ms("12h"), Ok(43_200_000));
        assert_eq!(parse_ttl_ms("30d"), Ok(2_592_000_000));
        for bad in ["", "30", "d", "-1d", "1.5h", "30s", "99999999999999999999d"] {
            assert!(parse_ttl_ms(bad).is_err(), "{bad}");
        }
    }
}
