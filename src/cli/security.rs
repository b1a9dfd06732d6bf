//! `brook user` and `brook token`: administration of the security store, like Kafka's
//! `kafka-configs --add-config SCRAM-SHA-256=...` and `rpk acl user create`
//! (docs/security.md, "The first user" and "Managing users online").
//!
//! Two ways, one set of commands:
//! - offline, `--data-dir DIR`: on a stopped broker's data directory (`<data>/security/`),
//!   through the broker's own handle ([`Auth::open`]), which takes the store's lock: on the
//!   directory of a running broker they fail and say so, since an offline change would be lost
//!   under the broker's next write. This is how the first superuser is made;
//! - online, without `--data-dir`: through the running broker's gRPC admin calls (`CreateUser`,
//!   `ListTokens`, ...) at the run's server (`-s/--server`, `BROOK_SERVER`, the context),
//!   authenticated with `--credentials-file FILE` (`USER:PASSWORD` for Basic, or a token's text
//!   for Bearer); the caller needs Alter on the cluster to change, Describe to list.
//!
//! A password is never an argument (ps shows arguments): `--password-stdin` reads it from
//! standard input, and the caller's own from a file. What is printed never holds a secret,
//! except the text of a new token, printed once on stdout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use brook_broker::auth::{Auth, AuthConfig, TokenRecord};
use brook_client::proto as pb;
use brook_client::proto::brook_client::BrookClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

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

/// Where the store is.
#[derive(Debug, clap::Args)]
pub(super) struct StoreArgs {
    /// The data directory (the broker's `--data-dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

/// Where the command acts: a stopped broker's data directory, or the running broker.
#[derive(Debug, clap::Args)]
pub(super) struct AdminArgs {
    /// Act offline on this stopped broker's data directory (its `--data-dir`). Without it the
    /// command asks the running broker (`-s/--server`) through its admin API.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Online: a file with your credentials for the running broker, `USER:PASSWORD` (Basic) or
    /// a token's text (Bearer), one line. Needed when the broker runs with `--auth on`.
    #[arg(
        long,
        env = "BROOK_CREDENTIALS_FILE",
        value_name = "FILE",
        conflicts_with = "data_dir"
    )]
    credentials_file: Option<PathBuf>,
}

impl AdminArgs {
    /// Whether the command goes to a running broker (and so needs the run's server resolved).
    pub(super) fn online(&self) -> bool {
        self.data_dir.is_none()
    }

    /// The store of a stopped broker, or the running broker's admin API.
    fn open(&self, create: bool) -> anyhow::Result<Admin> {
        match &self.data_dir {
            Some(dir) => Ok(Admin::Offline(
                StoreArgs {
                    data_dir: dir.clone(),
                }
                .open(create)?,
            )),
            None => Ok(Admin::Online {
                authorization: self.authorization()?,
            }),
        }
    }

    /// The `authorization` header the credentials file makes.
    fn authorization(&self) -> anyhow::Result<Option<MetadataValue<tonic::metadata::Ascii>>> {
        use base64::Engine as _;
        let Some(path) = &self.credentials_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the credentials file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end();
        // A token's text has no `:` (base64url); a user name may start like one.
        let header =
            if line.starts_with(brook_broker::auth::tokens::TOKEN_PREFIX) && !line.contains(':') {
                format!("Bearer {line}")
            } else if line.contains(':') {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(line)
                )
            } else {
                anyhow::bail!(
                    "the credentials file {} holds neither USER:PASSWORD nor a token",
                    path.display()
                );
            };
        let value = header.parse().with_context(|| {
            format!(
                "the credentials file {} is not one line of text",
                path.display()
            )
        })?;
        Ok(Some(value))
    }
}

/// The store the command changes: opened offline, or reached through the running broker.
enum Admin {
    Offline(Auth),
    Online {
        authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    },
}

/// The running broker's admin API with the caller's credentials.
struct Online {
    grpc: BrookClient<Channel>,
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Online {
    async fn connect(
        authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    ) -> anyhow::Result<Self> {
        let client = super::remote::connect().await?;
        Ok(Self {
            grpc: client.grpc(),
            authorization,
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }
}

/// A refusal of the running broker in words: its message, and what to do when it is about
/// credentials or rights.
fn refused(what: String, status: tonic::Status) -> anyhow::Error {
    let hint = match status.code() {
        tonic::Code::Unauthenticated => {
            " (give --credentials-file with USER:PASSWORD or a token of a user who may)"
        }
        tonic::Code::PermissionDenied => " (it takes Alter on the cluster, Describe to list)",
        _ => "",
    };
    anyhow::anyhow!("{what}: {}{hint}", status.message())
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
                let admin = at.open(true)?;
                super::remote::run(async move {
                    match admin {
                        Admin::Offline(auth) => auth
                            .create_user(&name, &password)
                            .await
                            .with_context(|| format!("cannot add user {name}"))?,
                        Admin::Online { authorization } => {
                            let mut online = Online::connect(authorization).await?;
                            let request = online.request(pb::CreateUserRequest {
                                name: name.clone(),
                                password: password.into(),
                            });
                            online
                                .grpc
                                .create_user(request)
                                .await
                                .map_err(|s| refused(format!("cannot add user {name}"), s))?;
                        }
                    }
                    println!("user {name} added");
                    Ok(())
                })
            }
            UserCommand::Passwd { name, at, .. } => {
                let password = read_password()?;
                let admin = at.open(false)?;
                super::remote::run(async move {
                    match admin {
                        Admin::Offline(auth) => auth
                            .set_password(&name, &password)
                            .await
                            .with_context(|| format!("cannot change the password of {name}"))?,
                        Admin::Online { authorization } => {
                            let mut online = Online::connect(authorization).await?;
                            let request = online.request(pb::SetPasswordRequest {
                                name: name.clone(),
                                password: password.into(),
                            });
                            online.grpc.set_password(request).await.map_err(|s| {
                                refused(format!("cannot change the password of {name}"), s)
                            })?;
                        }
                    }
                    println!("password of {name} changed");
                    Ok(())
                })
            }
            UserCommand::Remove { name, at } => {
                let admin = at.open(false)?;
                super::remote::run(async move {
                    match admin {
                        Admin::Offline(auth) => auth
                            .delete_user(&name)
                            .await
                            .with_context(|| format!("cannot remove user {name}"))?,
                        Admin::Online { authorization } => {
                            let mut online = Online::connect(authorization).await?;
                            let request =
                                online.request(pb::DeleteUserRequest { name: name.clone() });
                            online
                                .grpc
                                .delete_user(request)
                                .await
                                .map_err(|s| refused(format!("cannot remove user {name}"), s))?;
                        }
                    }
                    println!("user {name} removed (and its tokens revoked)");
                    Ok(())
                })
            }
            UserCommand::List { at } => {
                let admin = at.open(false)?;
                super::remote::run(async move {
                    let users: Vec<(String, Vec<String>)> = match admin {
                        Admin::Offline(auth) => auth
                            .users()
                            .into_iter()
                            .map(|user| {
                                let mechanisms = user.mechanism_names();
                                (user.name, mechanisms)
                            })
                            .collect(),
                        Admin::Online { authorization } => {
                            let mut online = Online::connect(authorization).await?;
                            let request = online.request(pb::ListUsersRequest {});
                            online
                                .grpc
                                .list_users(request)
                                .await
                                .map_err(|s| refused("cannot list users".into(), s))?
                                .into_inner()
                                .users
                                .into_iter()
                                .map(|user| (user.name, user.mechanisms))
                                .collect()
                        }
                    };
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
                let admin = at.open(false)?;
                super::remote::run(async move {
                    let what = || format!("cannot create a token for {user}");
                    let (record, text) = match admin {
                        Admin::Offline(auth) => {
                            let (record, text) =
                                auth.create_token(&user, ttl).await.with_context(what)?;
                            (shown(record), text)
                        }
                        Admin::Online { authorization } => {
                            let mut online = Online::connect(authorization).await?;
                            let request = online.request(pb::CreateTokenRequest {
                                user: user.clone(),
                                ttl_ms: ttl,
                            });
                            let created = online
                                .grpc
                                .create_token(request)
                                .await
                                .map_err(|s| refused(what(), s))?
                                .into_inner();
                            let record = created
                                .token
                                .context("the broker answered no token record")?;
                            (record, created.text)
                        }
                    };
                    println!("{text}");
                    eprintln!(
                        "token {} for {} expires at {} ms since the epoch; it is shown only now",
                        record.id, record.user, record.expires_ms
                    );
                    Ok(())
                })
            }
            TokenCommand::Revoke { id, at } => {
                let admin = at.open(false)?;
                super::remote::run(async move {
                    let what = || format!("cannot revoke token {id}");
                    let record = match admin {
                        Admin::Offline(auth) => {
                            shown(auth.revoke_token(&id).await.with_context(what)?)
                        }
                        Admin::Online { authorization } => {
                            let mut online = Online::connect(authorization).await?;
                            let request = online.request(pb::RevokeTokenRequest { id: id.clone() });
                            online
                                .grpc
                                .revoke_token(request)
                                .await
                                .map_err(|s| refused(what(), s))?
                                .into_inner()
                                .token
                                .context("the broker answered no token record")?
                        }
                    };
                    println!("token {} of {} revoked", record.id, record.user);
                    Ok(())
                })
            }
            TokenCommand::List { user, at } => {
                let admin = at.open(false)?;
                super::remote::run(async move {
                    let tokens: Vec<pb::Token> = match admin {
                        Admin::Offline(auth) => auth
                            .tokens(user.as_deref())
                            .into_iter()
                            .map(shown)
                            .collect(),
                        Admin::Online { authorization } => {
                            let mut online = Online::connect(authorization).await?;
                            let request = online.request(pb::ListTokensRequest { user });
                            online
                                .grpc
                                .list_tokens(request)
                                .await
                                .map_err(|s| refused("cannot list tokens".into(), s))?
                                .into_inner()
                                .tokens
                        }
                    };
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

/// A token record as both ways show it (never its secret).
fn shown(record: TokenRecord) -> pb::Token {
    pb::Token {
        id: record.id,
        user: record.user,
        created_ms: record.created_ms,
        expires_ms: record.expires_ms,
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
