//! Where `brook user`, `brook token` and `brook acl` act, and how they get there: one rule for
//! every admin command (docs/security.md, "Managing users online").
//!
//! 1. `--data-dir DIR`: offline, on the security store of a stopped server's data directory (a
//!    broker's, or a gateway's, which holds only that store), through the broker's own handle
//!    ([`Auth::open`]). It takes the store's lock, so on the directory of a running server the
//!    command fails and says so: an offline write would be lost under the server's next one.
//! 2. else `--http-addr HOST:PORT` (or an `http://` / `https://` URL): online, through the HTTP
//!    door's admin routes (`/v1/users`, `/v1/tokens`, `/v1/acls`), for a server whose gRPC door
//!    is off, or that only its HTTP door's address is known of;
//! 3. else online through the gRPC door's admin calls, at the run's server (`-s/--server`,
//!    `BROOK_SERVER`, the context, the default: [`super::remote`]).
//!
//! Online, the caller is `--credentials-file FILE` (one line: `USER:PASSWORD` for Basic, or a
//! token's text for Bearer), or else the client certificate it presents (`--tls-cert` and
//! `--tls-key`: its subject is the principal when the server asks for client certificates,
//! `--tls-client-ca`). TLS is on when the address says `https://` or a `--tls-*` flag is
//! given; `--tls-ca` names the CA the server's certificate must chain to, and is required then
//! (the CLI trusts no system store). Either door answers the same refusals, which are said in
//! brook's words with what to do about them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use brook_broker::auth::{AclBinding, AclText, Auth, AuthConfig};
use brook_client::proto as pb;
use brook_client::proto::brook_client::BrookClient;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// How long connecting to a server (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an admin request may take once sent.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from the HTTP door (a listing of every ACL, user or token).
const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Where an admin command acts, and as whom when it acts online.
#[derive(Debug, clap::Args)]
pub(super) struct AdminArgs {
    /// Act offline on this stopped server's data directory (its `--data-dir`). Without it the
    /// command asks the running server through its admin API.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Online through the HTTP door at HOST:PORT (or http:// / https:// URL) instead of the
    /// gRPC door at -s/--server: for a server whose gRPC door is off.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "data_dir")]
    http_addr: Option<String>,
    /// Online: a file with your credentials for the running server, `USER:PASSWORD` (Basic) or
    /// a token's text (Bearer), one line. Needed when the server runs with `--auth on`, unless
    /// a client certificate (--tls-cert) is your principal.
    #[arg(
        long,
        env = "BROOK_CREDENTIALS_FILE",
        value_name = "FILE",
        conflicts_with = "data_dir"
    )]
    credentials_file: Option<PathBuf>,
    /// Online over TLS: the CA certificate (PEM) the server's certificate must chain to.
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    tls_ca: Option<PathBuf>,
    /// Online over TLS: a client certificate (PEM) to present; with the server's
    /// --tls-client-ca its subject is your principal (`User:CN=...`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "data_dir"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        conflicts_with = "data_dir"
    )]
    tls_key: Option<PathBuf>,
}

impl AdminArgs {
    /// Whether the command goes to a running server through its gRPC door (and so needs the
    /// run's server resolved).
    pub(super) fn online(&self) -> bool {
        self.data_dir.is_none() && self.http_addr.is_none()
    }

    /// Opens the store (offline; unless `create`, the data directory must exist already, so a
    /// mistyped path is an error, not a new empty store), or reads what reaching the running
    /// server takes (credentials, TLS files): blocking file IO, so before the command's runtime
    /// runs; [`Opened::connect`] then connects.
    pub(super) fn open(&self, create: bool) -> anyhow::Result<Opened> {
        if let Some(dir) = &self.data_dir {
            return Ok(Opened::Ready(Admin::Offline(open_store(dir, create)?)));
        }
        let authorization = self.authorization()?;
        let tls = self.tls()?;
        match &self.http_addr {
            Some(addr) => Ok(Opened::Ready(Admin::Http(HttpAdmin::new(
                addr,
                tls,
                authorization,
            )?))),
            None => Ok(Opened::Grpc {
                tls,
                authorization: authorization
                    .map(|header| header.parse())
                    .transpose()
                    .context("the credentials file is not one line of text")?,
            }),
        }
    }

    /// The `authorization` header the credentials file makes.
    fn authorization(&self) -> anyhow::Result<Option<String>> {
        use base64::Engine as _;
        let Some(path) = &self.credentials_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the credentials file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end();
        // A token's text has no `:` (base64url); a user name may start like one.
        if line.starts_with(brook_broker::auth::tokens::TOKEN_PREFIX) && !line.contains(':') {
            Ok(Some(format!("Bearer {line}")))
        } else if line.contains(':') {
            Ok(Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(line)
            )))
        } else {
            bail!(
                "the credentials file {} holds neither USER:PASSWORD nor a token",
                path.display()
            )
        }
    }

    /// The TLS files, read, when a `--tls-*` flag is given.
    fn tls(&self) -> anyhow::Result<Option<TlsFiles>> {
        if self.tls_ca.is_none() && self.tls_cert.is_none() {
            return Ok(None);
        }
        let read = |flag: &str, path: &Path| {
            std::fs::read(path).with_context(|| format!("cannot read --{flag} {}", path.display()))
        };
        let ca = match &self.tls_ca {
            Some(path) => read("tls-ca", path)?,
            None => bail!(
                "TLS needs --tls-ca FILE: the CA certificate the server's certificate is signed \
                 by (no system store is trusted)"
            ),
        };
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((read("tls-cert", cert)?, read("tls-key", key)?)),
            _ => None,
        };
        Ok(Some(TlsFiles { ca, identity }))
    }
}

/// The PEM files of a TLS connection: the CA to trust and the client's own certificate and key.
pub(super) struct TlsFiles {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Opens the security store of `dir`.
fn open_store(dir: &Path, create: bool) -> anyhow::Result<Auth> {
    anyhow::ensure!(
        create || dir.is_dir(),
        "{} is not a directory",
        dir.display()
    );
    Auth::open_blocking(dir, AuthConfig::default())
        .with_context(|| format!("cannot open the security store of {}", dir.display()))
}

/// An admin command's store, opened, or the gRPC door still to connect to.
pub(super) enum Opened {
    Ready(Admin),
    Grpc {
        tls: Option<TlsFiles>,
        authorization: Option<MetadataValue<Ascii>>,
    },
}

impl Opened {
    /// The store itself, or the running server (gRPC: connected now; HTTP: one connection per
    /// request).
    pub(super) async fn connect(self) -> anyhow::Result<Admin> {
        match self {
            Opened::Ready(admin) => Ok(admin),
            Opened::Grpc { tls, authorization } => GrpcAdmin::connect(tls, authorization)
                .await
                .map(Admin::Grpc),
        }
    }
}

/// A user as listed: its name and its SCRAM mechanisms (`SCRAM-SHA-256(4096)`).
pub(super) type UserRow = (String, Vec<String>);

/// The store an admin command changes: opened offline, or reached through a door.
pub(super) enum Admin {
    Offline(Auth),
    Grpc(GrpcAdmin),
    Http(HttpAdmin),
}

impl Admin {
    pub(super) async fn create_user(
        &mut self,
        name: &str,
        password: Vec<u8>,
    ) -> anyhow::Result<()> {
        match self {
            Admin::Offline(auth) => Ok(auth.create_user(name, &password).await?),
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::CreateUserRequest {
                    name: name.to_owned(),
                    password: password.into(),
                });
                grpc.client.create_user(request).await.map_err(refused)?;
                Ok(())
            }
            Admin::Http(http) => {
                let password = text_password(password)?;
                let body = json!({"name": name, "password": password});
                http.call(Method::POST, "/v1/users", Some(body)).await?;
                Ok(())
            }
        }
    }

    pub(super) async fn set_password(
        &mut self,
        name: &str,
        password: Vec<u8>,
    ) -> anyhow::Result<()> {
        match self {
            Admin::Offline(auth) => Ok(auth.set_password(name, &password).await?),
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::SetPasswordRequest {
                    name: name.to_owned(),
                    password: password.into(),
                });
                grpc.client.set_password(request).await.map_err(refused)?;
                Ok(())
            }
            Admin::Http(http) => {
                let body = json!({"password": text_password(password)?});
                let path = format!("/v1/users/{}/password", encode(name));
                http.call(Method::PUT, &path, Some(body)).await?;
                Ok(())
            }
        }
    }

    pub(super) async fn delete_user(&mut self, name: &str) -> anyhow::Result<()> {
        match self {
            Admin::Offline(auth) => Ok(auth.delete_user(name).await?),
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::DeleteUserRequest {
                    name: name.to_owned(),
                });
                grpc.client.delete_user(request).await.map_err(refused)?;
                Ok(())
            }
            Admin::Http(http) => {
                let path = format!("/v1/users/{}", encode(name));
                http.call(Method::DELETE, &path, None).await?;
                Ok(())
            }
        }
    }

    pub(super) async fn users(&mut self) -> anyhow::Result<Vec<UserRow>> {
        match self {
            Admin::Offline(auth) => Ok(auth
                .users()
                .into_iter()
                .map(|user| {
                    let mechanisms = user.mechanism_names();
                    (user.name, mechanisms)
                })
                .collect()),
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::ListUsersRequest {});
                let users = grpc.client.list_users(request).await.map_err(refused)?;
                Ok(users
                    .into_inner()
                    .users
                    .into_iter()
                    .map(|user| (user.name, user.mechanisms))
                    .collect())
            }
            Admin::Http(http) => {
                let answer = http.call(Method::GET, "/v1/users", None).await?;
                list(&answer, "users")?
                    .iter()
                    .map(|user| {
                        let name = string(user, "name")?;
                        let mechanisms = field(user, "mechanisms")?
                            .as_array()
                            .map(|all| {
                                all.iter()
                                    .filter_map(|m| m.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        Ok((name, mechanisms))
                    })
                    .collect()
            }
        }
    }

    /// A new token for `user`: its record and its text (shown once).
    pub(super) async fn create_token(
        &mut self,
        user: &str,
        ttl_ms: u64,
    ) -> anyhow::Result<(pb::Token, String)> {
        match self {
            Admin::Offline(auth) => {
                let (record, text) = auth.create_token(user, ttl_ms).await?;
                Ok((shown(record), text))
            }
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::CreateTokenRequest {
                    user: user.to_owned(),
                    ttl_ms,
                });
                let created = grpc
                    .client
                    .create_token(request)
                    .await
                    .map_err(refused)?
                    .into_inner();
                let record = created
                    .token
                    .context("the server answered no token record")?;
                Ok((record, created.text))
            }
            Admin::Http(http) => {
                let body = json!({"user": user, "ttl_ms": ttl_ms});
                let answer = http.call(Method::POST, "/v1/tokens", Some(body)).await?;
                Ok((token(&answer)?, string(&answer, "token_text")?))
            }
        }
    }

    pub(super) async fn revoke_token(&mut self, id: &str) -> anyhow::Result<pb::Token> {
        match self {
            Admin::Offline(auth) => Ok(shown(auth.revoke_token(id).await?)),
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::RevokeTokenRequest { id: id.to_owned() });
                grpc.client
                    .revoke_token(request)
                    .await
                    .map_err(refused)?
                    .into_inner()
                    .token
                    .context("the server answered no token record")
            }
            Admin::Http(http) => {
                let path = format!("/v1/tokens/{}", encode(id));
                token(&http.call(Method::DELETE, &path, None).await?)
            }
        }
    }

    /// The tokens (of `user`, or all), never their secrets.
    pub(super) async fn tokens(&mut self, user: Option<&str>) -> anyhow::Result<Vec<pb::Token>> {
        match self {
            Admin::Offline(auth) => Ok(auth.tokens(user).into_iter().map(shown).collect()),
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::ListTokensRequest {
                    user: user.map(str::to_owned),
                });
                Ok(grpc
                    .client
                    .list_tokens(request)
                    .await
                    .map_err(refused)?
                    .into_inner()
                    .tokens)
            }
            Admin::Http(http) => {
                let path = match user {
                    Some(user) => format!("/v1/tokens?user={}", encode(user)),
                    None => "/v1/tokens".to_owned(),
                };
                let answer = http.call(Method::GET, &path, None).await?;
                list(&answer, "tokens")?.iter().map(token).collect()
            }
        }
    }

    /// Adds the rule `acl`, which the words `text` name (an online server reads the words).
    pub(super) async fn create_acl(
        &mut self,
        text: &AclText<'_>,
        acl: &AclBinding,
    ) -> anyhow::Result<()> {
        match self {
            Admin::Offline(auth) => auth.create_acls(vec![acl.clone()]).await?,
            Admin::Grpc(grpc) => {
                let word = |w: Option<&str>| w.unwrap_or_default().to_owned();
                let request = grpc.request(pb::CreateAclsRequest {
                    acls: vec![pb::Acl {
                        resource_type: word(text.resource_type),
                        resource_name: word(text.resource_name),
                        pattern_type: word(text.pattern_type),
                        principal: word(text.principal),
                        host: word(text.host),
                        operation: word(text.operation),
                        permission: word(text.permission),
                    }],
                });
                grpc.client.create_acls(request).await.map_err(refused)?;
            }
            Admin::Http(http) => {
                let rule: serde_json::Map<String, Value> = words(text)
                    .into_iter()
                    .filter_map(|(name, word)| Some((name.to_owned(), json!(word?))))
                    .collect();
                let body = json!({ "acls": [rule] });
                http.call(Method::POST, "/v1/acls", Some(body)).await?;
            }
        }
        Ok(())
    }

    /// The rules the filter `text` selects (every rule when it names nothing).
    pub(super) async fn acls(&mut self, text: &AclText<'_>) -> anyhow::Result<Vec<AclBinding>> {
        match self {
            Admin::Offline(auth) => Ok(auth.acls(&text.filter()?)),
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::ListAclsRequest {
                    filter: Some(proto_filter(text)),
                });
                let acls = grpc.client.list_acls(request).await.map_err(refused)?;
                acls.into_inner().acls.iter().map(proto_binding).collect()
            }
            Admin::Http(http) => {
                let path = format!("/v1/acls{}", query(text));
                let answer = http.call(Method::GET, &path, None).await?;
                list(&answer, "acls")?.iter().map(json_binding).collect()
            }
        }
    }

    /// Removes the rules the filter `text` selects; returns them.
    pub(super) async fn delete_acls(
        &mut self,
        text: &AclText<'_>,
    ) -> anyhow::Result<Vec<AclBinding>> {
        match self {
            Admin::Offline(auth) => {
                let removed = auth.delete_acls(vec![text.filter()?]).await?;
                Ok(removed.into_iter().flatten().collect())
            }
            Admin::Grpc(grpc) => {
                let request = grpc.request(pb::DeleteAclsRequest {
                    filter: Some(proto_filter(text)),
                });
                let acls = grpc.client.delete_acls(request).await.map_err(refused)?;
                acls.into_inner().acls.iter().map(proto_binding).collect()
            }
            Admin::Http(http) => {
                let path = format!("/v1/acls{}", query(text));
                let answer = http.call(Method::DELETE, &path, None).await?;
                list(&answer, "acls")?.iter().map(json_binding).collect()
            }
        }
    }
}

/// A token record as every way shows it (never its secret).
fn shown(record: brook_broker::auth::TokenRecord) -> pb::Token {
    pb::Token {
        id: record.id,
        user: record.user,
        created_ms: record.created_ms,
        expires_ms: record.expires_ms,
    }
}

/// The HTTP door takes a password as JSON text.
fn text_password(password: Vec<u8>) -> anyhow::Result<String> {
    String::from_utf8(password).map_err(|_| {
        anyhow::anyhow!(
            "the HTTP door takes passwords as UTF-8 text: this one is not (use the gRPC door, or \
             --data-dir on a stopped server)"
        )
    })
}

/// A rule's or filter's words by the names the admin calls give them.
fn words<'a>(text: &AclText<'a>) -> [(&'static str, Option<&'a str>); 7] {
    [
        ("resource_type", text.resource_type),
        ("resource_name", text.resource_name),
        ("pattern_type", text.pattern_type),
        ("principal", text.principal),
        ("host", text.host),
        ("operation", text.operation),
        ("permission", text.permission),
    ]
}

fn proto_filter(text: &AclText<'_>) -> pb::AclFilter {
    let word = |w: Option<&str>| w.map(str::to_owned);
    pb::AclFilter {
        resource_type: word(text.resource_type),
        resource_name: word(text.resource_name),
        pattern_type: word(text.pattern_type),
        principal: word(text.principal),
        host: word(text.host),
        operation: word(text.operation),
        permission: word(text.permission),
    }
}

/// A rule the gRPC door answered, read back with the broker's own parser.
fn proto_binding(acl: &pb::Acl) -> anyhow::Result<AclBinding> {
    fn word(w: &str) -> Option<&str> {
        (!w.is_empty()).then_some(w)
    }
    let text = AclText {
        resource_type: word(&acl.resource_type),
        resource_name: word(&acl.resource_name),
        pattern_type: word(&acl.pattern_type),
        principal: word(&acl.principal),
        host: word(&acl.host),
        operation: word(&acl.operation),
        permission: word(&acl.permission),
    };
    text.binding()
        .context("the server answered an ACL this brook cannot read")
}

/// A rule the HTTP door answered, read back the same way.
fn json_binding(acl: &Value) -> anyhow::Result<AclBinding> {
    let word = |name: &str| acl.get(name).and_then(Value::as_str);
    let text = AclText {
        resource_type: word("resource_type"),
        resource_name: word("resource_name"),
        pattern_type: word("pattern_type"),
        principal: word("principal"),
        host: word("host"),
        operation: word("operation"),
        permission: word("permission"),
    };
    text.binding()
        .context("the server answered an ACL this brook cannot read")
}

/// `?name=value&...` of the words given (empty when none is).
fn query(text: &AclText<'_>) -> String {
    let pairs: Vec<String> = words(text)
        .into_iter()
        .filter_map(|(name, word)| Some(format!("{name}={}", encode(word?))))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// `text` percent-encoded for a path segment or a query value (RFC 3986: all but unreserved).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn field<'v>(answer: &'v Value, name: &str) -> anyhow::Result<&'v Value> {
    answer
        .get(name)
        .with_context(|| format!("the server's answer has no {name:?}: {answer}"))
}

fn string(answer: &Value, name: &str) -> anyhow::Result<String> {
    field(answer, name)?
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the server's {name:?} is not text: {answer}"))
}

fn list<'v>(answer: &'v Value, name: &str) -> anyhow::Result<&'v Vec<Value>> {
    field(answer, name)?
        .as_array()
        .with_context(|| format!("the server's {name:?} is not a list: {answer}"))
}

/// A token record as the HTTP door answers it.
fn token(answer: &Value) -> anyhow::Result<pb::Token> {
    let number = |name: &str| {
        field(answer, name)?
            .as_u64()
            .with_context(|| format!("the server's {name:?} is not a number: {answer}"))
    };
    Ok(pb::Token {
        id: string(answer, "id")?,
        user: string(answer, "user")?,
        created_ms: number("created_ms")?,
        expires_ms: number("expires_ms")?,
    })
}

/// Why a server refused, and what to do about it when it is about credentials or rights.
#[derive(Debug, thiserror::Error)]
#[error("{message}{}", hint(.refusal))]
pub(super) struct Refused {
    refusal: Refusal,
    message: String,
}

/// The kinds of refusal that call for the caller to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 401 / UNAUTHENTICATED.
    Unauthenticated,
    /// 403 / PERMISSION_DENIED.
    Denied,
    Other,
}

fn hint(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::Unauthenticated => {
            " (give --credentials-file with USER:PASSWORD or a token of a user who may, or \
             --tls-cert/--tls-key with a certificate the server takes)"
        }
        Refusal::Denied => " (it takes Alter on the cluster, Describe to list)",
        Refusal::Other => "",
    }
}

/// A gRPC door's refusal in words.
fn refused(status: tonic::Status) -> Refused {
    let refusal = match status.code() {
        tonic::Code::Unauthenticated => Refusal::Unauthenticated,
        tonic::Code::PermissionDenied => Refusal::Denied,
        _ => Refusal::Other,
    };
    Refused {
        refusal,
        message: status.message().to_owned(),
    }
}

/// The running server's gRPC admin calls with the caller's credentials.
pub(super) struct GrpcAdmin {
    client: BrookClient<Channel>,
    authorization: Option<MetadataValue<Ascii>>,
}

impl GrpcAdmin {
    /// Connects to the run's server, over TLS when `tls` is given (`host:port` then means
    /// `https://host:port`).
    async fn connect(
        tls: Option<TlsFiles>,
        authorization: Option<MetadataValue<Ascii>>,
    ) -> anyhow::Result<Self> {
        let client = match tls {
            None => super::remote::connect().await?,
            Some(files) => {
                let target = super::remote::target();
                let url = match target.url.strip_prefix("http://") {
                    Some(rest) => format!("https://{rest}"),
                    None => target.url.clone(),
                };
                let mut config = tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(files.ca));
                if let Some((cert, key)) = files.identity {
                    config = config.identity(tonic::transport::Identity::from_pem(cert, key));
                }
                let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
                    .with_context(|| format!("{url} is not a server address"))?
                    .tls_config(config)
                    .context("cannot use the TLS files")?;
                super::remote::connect_endpoint(endpoint, &target).await?
            }
        };
        Ok(Self {
            client: client.grpc(),
            authorization,
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(REQUEST_TIMEOUT);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }
}

/// The running server's HTTP admin routes: one HTTP/1.1 request per connection (an admin
/// command makes one), over TLS when asked.
pub(super) struct HttpAdmin {
    /// `host:port`, to connect to and to send as `Host`.
    authority: String,
    /// The host alone, the name the server's certificate must carry.
    host: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    authorization: Option<String>,
}

impl HttpAdmin {
    /// `addr` is `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`.
    fn new(
        addr: &str,
        tls: Option<TlsFiles>,
        authorization: Option<String>,
    ) -> anyhow::Result<Self> {
        let addr = addr.trim();
        // Some(true): https://, Some(false): http://, None: a bare HOST:PORT.
        let (https, authority) = if let Some(rest) = addr.strip_prefix("https://") {
            (Some(true), rest)
        } else if let Some(rest) = addr.strip_prefix("http://") {
            (Some(false), rest)
        } else if addr.contains("://") {
            bail!("--http-addr {addr}: not HOST:PORT, http:// or https://");
        } else {
            (None, addr)
        };
        let authority = authority.trim_end_matches('/');
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => host,
            _ => bail!("--http-addr {addr}: not HOST:PORT (a port is needed)"),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match tls {
            Some(_) if https == Some(false) => bail!(
                "--http-addr {addr} is plain http, and --tls-* flags ask for TLS: write https:// \
                 (or HOST:PORT)"
            ),
            Some(files) => Some(Arc::new(client_config(files)?)),
            None if https == Some(true) => bail!(
                "--http-addr {addr} is https: give --tls-ca FILE, the CA certificate the \
                 server's certificate is signed by"
            ),
            None => None,
        };
        Ok(Self {
            authority: authority.to_owned(),
            host,
            tls,
            authorization,
        })
    }

    /// Sends one request and answers its JSON body (`null` for none); a refusal is a
    /// [`Refused`] with the door's message.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let what = format!("{method} {path} at {}", self.authority);
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, self.send(method, path, body))
            .await
            .map_err(|_| anyhow::anyhow!("{what}: no answer in {REQUEST_TIMEOUT:?}"))?
            .with_context(|| what.clone())?;
        let answer: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{what}: the answer ({status}) is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?
        };
        if status.is_success() {
            return Ok(answer);
        }
        let refusal = match status {
            StatusCode::UNAUTHORIZED => Refusal::Unauthenticated,
            StatusCode::FORBIDDEN => Refusal::Denied,
            _ => Refusal::Other,
        };
        let message = answer
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{status}: {answer}"), str::to_owned);
        Err(Refused { refusal, message }.into())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(header) = &self.authorization {
            request = request.header(hyper::header::AUTHORIZATION, header);
        }
        let body = match body {
            Some(body) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .context("cannot build the request")?;
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("cannot connect in {CONNECT_TIMEOUT:?}"))?
        .with_context(|| {
            format!(
                "cannot connect to {} — is `brook serve` running with its HTTP door there?",
                self.authority
            )
        })?;
        tcp.set_nodelay(true).ok();
        match &self.tls {
            None => exchange(tcp, request).await,
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .with_context(|| format!("{} is not a TLS server name", self.host))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| anyhow::anyhow!("no TLS handshake in {CONNECT_TIMEOUT:?}"))?
                    .context("the TLS handshake failed")?;
                exchange(stream, request).await
            }
        }
    }
}

/// One HTTP/1.1 exchange on `io`: the status and the whole body (bounded).
async fn exchange<S>(
    io: S,
    request: hyper::Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .context("cannot speak HTTP/1.1 to the server")?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .context("the request failed")?;
    let status = response.status();
    let body = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the answer: {e}"))?
        .to_bytes();
    drop(sender);
    driver.abort();
    Ok((status, body))
}

/// A rustls client configuration (ring, as brook's doors) trusting `files.ca`, presenting
/// `files.identity` when given, speaking HTTP/1.1.
fn client_config(files: TlsFiles) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    #[allow(deprecated)] // ring, as brook_door::tls
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&files.ca) {
        roots
            .add(cert.context("--tls-ca is not a PEM certificate")?)
            .context("--tls-ca holds a certificate rustls cannot use")?;
    }
    anyhow::ensure!(!roots.is_empty(), "--tls-ca holds no certificate");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS protocol version")?
        .with_root_certificates(roots);
    let mut config = match files.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .context("--tls-cert is not PEM certificates")?;
            anyhow::ensure!(!certs.is_empty(), "--tls-cert holds no certificate");
            let key = PrivateKeyDer::from_pem_slice(&key).context("--tls-key is not a PEM key")?;
            builder
                .with_client_auth_cert(certs, key)
                .context("--tls-cert and --tls-key do not make a client identity")?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_percent_encoded_and_only_given_ones_queried() {
        assert_eq!(encode("User:alice"), "User%3Aalice");
        assert_eq!(encode("a b/c*"), "a%20b%2Fc%2A");
        assert_eq!(query(&AclText::default()), "");
        let text = AclText {
            principal: Some("User:*"),
            resource_type: Some("topic"),
            ..AclText::default()
        };
        assert_eq!(query(&text), "?resource_type=topic&principal=User%3A%2A");
    }

    #[test]
    fn an_http_address_needs_a_port_and_https_needs_a_ca() {
        assert!(HttpAdmin::new("localhost", None, None).is_err());
        assert!(HttpAdmin::new("ftp://localhost:1", None, None).is_err());
        let https = HttpAdmin::new("https://localhost:8080", None, None);
        assert!(https.is_err_and(|e| e.to_string().contains("--tls-ca")));
        let plain = HttpAdmin::new("http://[::1]:8080/", None, None).expect("plain");
        assert_eq!(plain.authority, "[::1]:8080");
        assert_eq!(plain.host, "::1");
    }
}
