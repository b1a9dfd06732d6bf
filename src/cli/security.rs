//! `brook user` and `brook token`: administration of the security store, like Kafka's
//! `kafka-configs --add-config SCRAM-SHA-256=...` and `rpk acl user create`
//! (docs/security.md, "The first user" and "Managing users online").
//!
//! Each command acts where [`super::admin`]'s one rule says: offline on a stopped server's data
//! directory (`--data-dir`: how the first superuser is made), or online through the running
//! server's HTTP door (`--http-addr`) or gRPC door (`-s/--server`), as the caller its
//! credentials file or client certificate names; the caller needs Alter on the cluster to
//! change, Describe to list.
//!
//! A password is never an argument (ps shows arguments): `--password-stdin` reads it from
//! standard input, and the caller's own from a file. What is printed never holds a secret,
//! except the text of a new token, printed once on stdout.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use brook_client::proto as pb;

use super::admin::AdminArgs;

#[derive(Debug, clap::Subcommand)]
pub(super) enum UserCommand {
    /// Create a user with SCRAM-SHA-256 and SCRAM-SHA-512 credentials (salted; no password is
    /// stored).
    #[command(visible_alias = "create")]
    Add {
        /// The user name (its principal is `User:NAME`).
        name: String,
        #[command(flatten)]
        at: AdminArgs,
        /// Read the password from standard input (its first line, or all of it without a
        /// newline). Required: a password is never taken as an argument.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Delete a user and revoke its tokens.
    Remove {
        /// The user name.
        name: String,
        #[command(flatten)]
        at: AdminArgs,
    },
    /// Replace a user's password (both mechanisms).
    Passwd {
        /// The user name.
        name: String,
        #[command(flatten)]
        at: AdminArgs,
        /// Read the new password from standard input. Required, as for `add`.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users and the SCRAM mechanisms (with iterations) they have credentials for.
    List {
        #[command(flatten)]
        at: AdminArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(super) enum TokenCommand {
    /// Create a bearer token acting as USER; its text is printed once (only its hash is kept).
    ///
    Create {
        /// The user the token acts as.
        user: String,
        #[command(flatten)]
        at: AdminArgs,
        /// How long it is valid: a number with `m`, `h` or `d` (1m to 366d).
        #[arg(long, default_value = "30d", value_parser = parse_ttl_ms, value_name = "DURATION")]
        ttl: u64,
    },
    /// Revoke a token by its id (as `brook token list` shows it).
    Revoke {
        /// The token's id (the hex part after `brook_`).
        id: String,
        #[command(flatten)]
        at: AdminArgs,
    },
    /// List tokens (of one user, or all): id, user, expiry; never their secrets.
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        at: AdminArgs,
    },
}

impl UserCommand {
    /// Whether the command goes to a running broker.
    pub(super) fn online(&self) -> bool {
        match self {
            UserCommand::Add { at, .. }
            | UserCommand::Remove { at, .. }
            | UserCommand::Passwd { at, .. }
            | UserCommand::List { at } => at.online(),
        }
    }

    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            UserCommand::Add { name, at, .. } => {
                let password = read_password()?;
                let opened = at.open(true)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    admin
                        .create_user(&name, password)
                        .await
                        .with_context(|| format!("cannot add user {name}"))?;
                    println!("user {name} added");
                    Ok(())
                })
            }
            UserCommand::Passwd { name, at, .. } => {
                let password = read_password()?;
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    admin
                        .set_password(&name, password)
                        .await
                        .with_context(|| format!("cannot change the password of {name}"))?;
                    println!("password of {name} changed");
                    Ok(())
                })
            }
            UserCommand::Remove { name, at } => {
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    admin
                        .delete_user(&name)
                        .await
                        .with_context(|| format!("cannot remove user {name}"))?;
                    println!("user {name} removed (and its tokens revoked)");
                    Ok(())
                })
            }
            UserCommand::List { at } => {
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    let users = admin.users().await.context("cannot list users")?;
                    for (name, mechanisms) in users {
                        println!("{name}\t{}", mechanisms.join(","));
                    }
                    Ok(())
                })
            }
        }
    }
}

impl TokenCommand {
    /// Whether the command goes to a running broker.
    pub(super) fn online(&self) -> bool {
        match self {
            TokenCommand::Create { at, .. }
            | TokenCommand::Revoke { at, .. }
            | TokenCommand::List { at, .. } => at.online(),
        }
    }

    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            TokenCommand::Create { user, at, ttl } => {
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    let (record, text) = admin
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
            TokenCommand::Revoke { id, at } => {
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    let record = admin
                        .revoke_token(&id)
                        .await
                        .with_context(|| format!("cannot revoke token {id}"))?;
                    println!("token {} of {} revoked", record.id, record.user);
                    Ok(())
                })
            }
            TokenCommand::List { user, at } => {
                let opened = at.open(false)?;
                super::remote::run(async move {
                    let mut admin = opened.connect().await?;
                    let tokens = admin
                        .tokens(user.as_deref())
                        .await
                        .context("cannot list tokens")?;
                    for pb::Token {
                        id,
                        user,
                        created_ms,
                        expires_ms,
                    } in tokens
                    {
                        println!("{id}\t{user}\tcreated_ms={created_ms}\texpires_ms={expires_ms}");
                    }
                    Ok(())
                })
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
