//! The authentication hook every door goes through: who a connection or a request is, and what
//! happens when it fails.
//!
//! The users, tokens and the authorizer are the broker's ([`brook_broker::auth::Auth`]); what
//! is the same on every door is here, in [`Authenticator`]:
//!
//! - with authentication off every client is `User:ANONYMOUS` (credentials it sends are not
//!   looked at);
//! - with it on, a password (SASL PLAIN, `authorization: Basic`) or a bearer token
//!   (`authorization: Bearer`) is checked, or, with neither, the subject of a client
//!   certificate the TLS handshake verified (mutual TLS) is the principal;
//! - a failure gets one answer whatever failed (an unknown user and a wrong password cost the
//!   same work: the broker checks an unknown user against a decoy credential), is logged with
//!   the client's address, and is counted per address: from the fourth failure in a row an
//!   address waits before it is answered, 200 ms doubling up to 5 s, so guessing passwords
//!   from one address is slow. A success clears the count; ten quiet minutes forget it.
//!
//! [`Security`] is what a door's settings carry: its TLS (if any) and this hook.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use brook_broker::auth::{Auth, Identity, Principal};
use tokio::time::Instant;

use crate::tls::Tls;

/// Failures in a row from one address before its answers are slowed.
const FREE_FAILURES: u32 = 3;
/// The first wait, doubled at each further failure.
const PENALTY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait.
const PENALTY_MAX: Duration = Duration::from_secs(5);
/// A count of failures is forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses tracked at most; past it, those quiet longest are forgotten.
const ADDRESSES_MAX: usize = 10_000;

/// The one message a failed authentication gets, on every door.
pub const INVALID_CREDENTIALS: &str = "authentication failed: invalid credentials";

/// Credentials from an `authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { user: String, password: Vec<u8> },
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user:?}, <password>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<token>)"),
        }
    }
}

impl Credentials {
    /// Parses an `authorization` header's value: `Basic base64(user:password)` or
    /// `Bearer TOKEN` (schemes case-insensitive, RFC 7235).
    pub fn parse(header: &str) -> Result<Self, String> {
        let (scheme, value) = header
            .trim()
            .split_once(' ')
            .ok_or("the authorization header is not `Basic ...` or `Bearer ...`")?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = B64
                .decode(value)
                .map_err(|_| "Basic credentials are not base64")?;
            let colon = decoded
                .iter()
                .position(|b| *b == b':')
                .ok_or("Basic credentials are not user:password")?;
            let user = String::from_utf8(decoded[..colon].to_vec())
                .map_err(|_| "the Basic user name is not UTF-8")?;
            Ok(Credentials::Basic {
                user,
                password: decoded[colon + 1..].to_vec(),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Credentials::Bearer(value.to_owned()))
        } else {
            Err(format!(
                "the authorization scheme {scheme:?} is not Basic or Bearer"
            ))
        }
    }
}

/// Why a client was not let in: the message it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    /// Whether it sent no credentials at all (HTTP then asks for them).
    pub missing: bool,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The authentication hook of the doors (see the module docs). Clone it freely: clones share
/// their failure counts, so one address is slowed on every door at once.
///
/// The default (authentication off) is one handle for the process, so two default settings
/// compare equal.
#[derive(Clone)]
pub struct Authenticator {
    auth: Auth,
    failures: Arc<Failures>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        static OFF: std::sync::OnceLock<Authenticator> = std::sync::OnceLock::new();
        OFF.get_or_init(|| Authenticator::new(Auth::disabled()))
            .clone()
    }
}

impl PartialEq for Authenticator {
    fn eq(&self, other: &Self) -> bool {
        self.auth == other.auth && Arc::ptr_eq(&self.failures, &other.failures)
    }
}

impl Eq for Authenticator {}

impl Authenticator {
    /// The hook over the broker's users, tokens and ACLs.
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            failures: Arc::default(),
        }
    }

    /// The broker's users, tokens, ACLs and authorizer.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Whether clients must authenticate.
    pub fn enabled(&self) -> bool {
        self.auth.enabled()
    }

    /// Who a request from `peer` is, from its `authorization` header and the subject of its
    /// client certificate (mutual TLS). With authentication off: anonymous.
    pub async fn identify(
        &self,
        door: &'static str,
        peer: SocketAddr,
        authorization: Option<&str>,
        tls_subject: Option<&str>,
    ) -> Result<Identity, Refusal> {
        if !self.enabled() {
            return Ok(Identity::anonymous(peer.ip()));
        }
        let principal = match (authorization, tls_subject) {
            (Some(header), _) => match Credentials::parse(header) {
                Ok(Credentials::Basic { user, password }) => {
                    self.password(door, peer, &user, &password, "Basic").await?
                }
                Ok(Credentials::Bearer(token)) => self.token(door, peer, &token).await?,
                Err(reason) => {
                    return Err(self
                        .refused(door, peer, "", "authorization header", &reason)
                        .await)
                }
            },
            (None, Some(subject)) => match Principal::user(subject) {
                Ok(principal) => principal,
                Err(_) => {
                    return Err(self
                        .refused(
                            door,
                            peer,
                            subject,
                            "client certificate",
                            "unusable subject",
                        )
                        .await)
                }
            },
            (None, None) => {
                return Err(Refusal {
                    message: "authentication required: send `authorization: Basic` (a user and \
                              password) or `authorization: Bearer` (a token)"
                        .into(),
                    missing: true,
                })
            }
        };
        Ok(Identity::new(principal, peer.ip()))
    }

    /// Checks `user`'s `password` (SASL PLAIN, `Basic`; `mechanism` names it in the log).
    pub async fn password(
        &self,
        door: &'static str,
        peer: SocketAddr,
        user: &str,
        password: &[u8],
        mechanism: &str,
    ) -> Result<Principal, Refusal> {
        match self.auth.verify_password(user, password).await {
            Some(principal) => {
                self.succeeded(peer);
                Ok(principal)
            }
            None => Err(self
                .refused(door, peer, user, mechanism, "invalid credentials")
                .await),
        }
    }

    /// Checks a bearer token.
    pub async fn token(
        &self,
        door: &'static str,
        peer: SocketAddr,
        token: &str,
    ) -> Result<Principal, Refusal> {
        match self.auth.verify_token(token) {
            Some(principal) => {
                self.succeeded(peer);
                Ok(principal)
            }
            None => Err(self
                .refused(
                    door,
                    peer,
                    "",
                    "Bearer",
                    "invalid, expired or revoked token",
                )
                .await),
        }
    }

    /// A failed authentication from `peer`: logged with the address (`why` stays in the log),
    /// counted, and answered after the address's wait.
    pub async fn refused(
        &self,
        door: &'static str,
        peer: SocketAddr,
        user: &str,
        mechanism: &str,
        why: &str,
    ) -> Refusal {
        let (failures, wait) = self.failures.failed(peer.ip());
        tracing::warn!(
            door,
            %peer,
            user,
            mechanism,
            why,
            failures,
            wait_ms = wait.as_millis() as u64,
            "authentication failed"
        );
        tokio::time::sleep(wait).await;
        Refusal {
            message: INVALID_CREDENTIALS.into(),
            missing: false,
        }
    }

    /// A successful authentication from `peer`: its count of failures is cleared.
    pub fn succeeded(&self, peer: SocketAddr) {
        self.failures.succeeded(peer.ip());
    }
}

/// Failures in a row per address.
#[derive(Debug, Default)]
struct Failures {
    by_addr: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Failures {
    /// Counts a failure from `addr`: the count now, and how long to wait before answering.
    fn failed(&self, addr: IpAddr) -> (u32, Duration) {
        let now = Instant::now();
        let mut by_addr = self.by_addr.lock().unwrap_or_else(PoisonError::into_inner);
        if by_addr.len() >= ADDRESSES_MAX && !by_addr.contains_key(&addr) {
            by_addr.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
            if by_addr.len() >= ADDRESSES_MAX {
                by_addr.clear();
            }
        }
        let entry = by_addr.entry(addr).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        (entry.0, penalty(entry.0))
    }

    fn succeeded(&self, addr: IpAddr) {
        self.by_addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&addr);
    }
}

/// The wait after the `failures`-th failure in a row.
fn penalty(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    (PENALTY_FIRST * 2u32.pow(doublings)).min(PENALTY_MAX)
}

/// What a door's settings carry about security: its TLS (none: plaintext) and the
/// authentication hook. The default is plaintext with authentication off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub tls: Option<Tls>,
    pub auth: Authenticator,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_parse_into_credentials() {
        let basic = format!("Basic {}", B64.encode("alice:pa:ss"));
        assert_eq!(
            Credentials::parse(&basic).expect("basic"),
            Credentials::Basic {
                user: "alice".into(),
                password: b"pa:ss".to_vec()
            }
        );
        assert_eq!(
            Credentials::parse("bearer brook_x").expect("bearer"),
            Credentials::Bearer("brook_x".into())
        );
        for bad in [
            "",
            "Basic",
            "Basic !!!",
            "Digest abc",
            &format!("Basic {}", B64.encode("nocolon")),
        ] {
            assert!(Credentials::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{:?}", Credentials::parse(&basic).expect("basic")).contains("pa:ss"));
    }

    #[test]
    fn failures_in_a_row_are_slowed_and_a_success_forgives() {
        assert_eq!(penalty(1), Duration::ZERO);
        assert_eq!(penalty(3), Duration::ZERO);
        assert_eq!(penalty(4), PENALTY_FIRST);
        assert_eq!(penalty(5), PENALTY_FIRST * 2);
        assert_eq!(penalty(40), PENALTY_MAX);
        let failures = Failures::default();
        let addr: IpAddr = "10.1.2.3".parse().expect("ip");
        for expected in 1..=4 {
            assert_eq!(failures.failed(addr).0, expected);
        }
        failures.succeeded(addr);
        assert_eq!(failures.failed(addr), (1, Duration::ZERO));
    }

    #[tokio::test]
    async fn with_auth_off_everyone_is_anonymous_and_with_it_on_credentials_are_needed() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let off = Authenticator::default();
        let who = off.identify("HTTP", peer, None, None).await.expect("open");
        assert!(who.principal.is_anonymous());

        let auth = Auth::in_memory(brook_broker::auth::AuthConfig::enabled(Vec::new()));
        auth.create_user("alice", b"pw").await.expect("user");
        let on = Authenticator::new(auth);
        let missing = on
            .identify("HTTP", peer, None, None)
            .await
            .expect_err("needed");
        assert!(missing.missing);
        let basic = format!("Basic {}", B64.encode("alice:pw"));
        let who = on
            .identify("HTTP", peer, Some(&basic), None)
            .await
            .expect("alice");
        assert_eq!(who.principal.to_string(), "User:alice");
        let wrong = format!("Basic {}", B64.encode("alice:nope"));
        let unknown = format!("Basic {}", B64.encode("ghost:pw"));
        let a = on
            .identify("HTTP", peer, Some(&wrong), None)
            .await
            .expect_err("wrong");
        let b = on
            .identify("HTTP", peer, Some(&unknown), None)
            .await
            .expect_err("unknown");
        assert_eq!(a, b, "one answer for both");
        let who = on
            .identify("HTTP", peer, None, Some("CN=app,O=acme"))
            .await
            .expect("mTLS subject");
        assert_eq!(who.principal.to_string(), "User:CN=app,O=acme");
    }
}
