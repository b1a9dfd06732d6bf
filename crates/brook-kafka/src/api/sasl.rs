//! SaslHandshake (key 17) and SaslAuthenticate (key 36): who a Kafka connection is, per KIP-152
//! (docs/security.md).
//!
//! With authentication on (`--auth on`), a connection may send only ApiVersions, SaslHandshake
//! and SaslAuthenticate until it has authenticated; anything else closes it, as Kafka's SASL
//! listeners do. The mechanisms are PLAIN (RFC 4616: the password is checked against the
//! user's salted SCRAM credential) and SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802 / 7677: two
//! SaslAuthenticate round trips; the password never crosses the wire). Users are the broker's
//! ([`brook_broker::auth::Auth`]); every failure is [`brook_door::Authenticator`]'s: one answer
//! (`SASL_AUTHENTICATION_FAILED`, "invalid credentials") for an unknown user and a wrong
//! password, logged with the peer address, slowed after repeated failures, and the connection
//! is closed after the answer, once the client has hung up or after a few seconds (the serve
//! loop's linger: closing first can make a client lose the answer). A connection over mutual
//! TLS starts authenticated as its certificate's subject; SASL on it replaces that principal.
//!
//! Re-authentication (KIP-368) is honoured: a client may run the handshake again on an
//! authenticated connection, as itself. The broker asks for none (`session_lifetime_ms` 0).
//!
//! With authentication off, every connection is `User:ANONYMOUS` and a SaslHandshake is
//! answered `UNSUPPORTED_SASL_MECHANISM` with no mechanism: the client is configured for a SASL
//! listener this broker does not run.

use brook_broker::auth::{Principal, ScramMechanism, ScramPending};
use brook_door::auth::INVALID_CREDENTIALS;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::dispatch::Session;
use crate::state::ListenerState;

/// The door's name in the authentication log.
const DOOR: &str = "Kafka";
/// PLAIN's name.
const PLAIN: &str = "PLAIN";

/// Where a connection is in its SASL exchange.
#[derive(Debug, Default)]
pub(crate) enum Sasl {
    /// No handshake yet (or the last exchange finished).
    #[default]
    Idle,
    /// Handshaken: the next SaslAuthenticate carries this mechanism's first message.
    Chosen(Mechanism),
    /// SCRAM's first round trip done: the next carries the client's final message.
    Scram(ScramPending),
}

/// A mechanism the door offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    fn parse(name: &str) -> Option<Self> {
        if name == PLAIN {
            return Some(Mechanism::Plain);
        }
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .map(Mechanism::Scram)
    }
}

/// The mechanisms offered, strongest first.
fn offered() -> Vec<StrBytes> {
    ScramMechanism::ALL
        .iter()
        .map(|m| m.name())
        .chain([PLAIN])
        .map(StrBytes::from_static_str)
        .collect()
}

/// SaslHandshake: picks the mechanism of the exchange that follows.
pub(crate) fn handshake(
    door: &ListenerState,
    session: &mut Session,
    request: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let mut response = SaslHandshakeResponse::default();
    if !door.config.security.auth.enabled() {
        response.error_code = ResponseError::UnsupportedSaslMechanism.code();
        return response;
    }
    response.mechanisms = offered();
    match Mechanism::parse(request.mechanism.as_str()) {
        Some(mechanism) => session.sasl = Sasl::Chosen(mechanism),
        None => {
            session.sasl = Sasl::Idle;
            response.error_code = ResponseError::UnsupportedSaslMechanism.code();
        }
    }
    response
}

/// SaslAuthenticate: one step of the exchange. On a failure the connection is marked to close
/// after the answer.
pub(crate) async fn authenticate(
    door: &ListenerState,
    session: &mut Session,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let step = std::mem::take(&mut session.sasl);
    let outcome = match step {
        Sasl::Idle => Err(Failure::State),
        Sasl::Chosen(Mechanism::Plain) => plain(door, session, &request.auth_bytes)
            .await
            .map(|principal| (Some(principal), Bytes::new())),
        Sasl::Chosen(Mechanism::Scram(mechanism)) => {
            match door
                .config
                .security
                .auth
                .auth()
                .scram_start(mechanism, &request.auth_bytes)
            {
                Ok((pending, server_first)) => {
                    session.sasl = Sasl::Scram(pending);
                    Ok((None, Bytes::from(server_first)))
                }
                Err(error) => Err(Failure::Credentials {
                    user: scram_user(&request.auth_bytes),
                    mechanism: mechanism.name(),
                    why: error.to_string(),
                }),
            }
        }
        Sasl::Scram(pending) => {
            let mechanism = pending.mechanism().name();
            let user = pending.user().to_owned();
            match door
                .config
                .security
                .auth
                .auth()
                .scram_finish(pending, &request.auth_bytes)
            {
                Ok((principal, server_final)) => Ok((Some(principal), Bytes::from(server_final))),
                Err(error) => Err(Failure::Credentials {
                    user,
                    mechanism,
                    why: error.to_string(),
                }),
            }
        }
    };
    let mut response = SaslAuthenticateResponse::default();
    match outcome {
        Ok((principal, bytes)) => {
            if let Some(principal) = principal {
                if let Err(why) = session.authenticated(principal) {
                    return fail(door, session, Failure::Reauthentication(why)).await;
                }
                door.config.security.auth.succeeded(session.peer);
            }
            response.auth_bytes = bytes;
            response
        }
        Err(failure) => fail(door, session, failure).await,
    }
}

/// Why an exchange failed.
enum Failure {
    /// SaslAuthenticate without a handshake first.
    State,
    Credentials {
        user: String,
        mechanism: &'static str,
        why: String,
    },
    /// A re-authentication as someone else.
    Reauthentication(String),
}

/// The failed answer, after the authenticator has logged, counted and slowed it; the
/// connection closes after it.
async fn fail(
    door: &ListenerState,
    session: &mut Session,
    failure: Failure,
) -> SaslAuthenticateResponse {
    session.sasl = Sasl::Idle;
    session.close_after_response = true;
    let mut response = SaslAuthenticateResponse::default();
    let auth = &door.config.security.auth;
    match failure {
        Failure::State => {
            response.error_code = ResponseError::IllegalSaslState.code();
            response.error_message = Some(StrBytes::from_static_str(
                "SaslAuthenticate before a SaslHandshake",
            ));
        }
        Failure::Credentials {
            user,
            mechanism,
            why,
        } => {
            let refusal = auth
                .refused(DOOR, session.peer, &user, mechanism, &why)
                .await;
            response.error_code = ResponseError::SaslAuthenticationFailed.code();
            response.error_message = Some(StrBytes::from_string(refusal.message));
        }
        Failure::Reauthentication(why) => {
            let _ = auth
                .refused(DOOR, session.peer, "", "re-authentication", &why)
                .await;
            response.error_code = ResponseError::SaslAuthenticationFailed.code();
            response.error_message = Some(StrBytes::from_static_str(INVALID_CREDENTIALS));
        }
    }
    response
}

/// PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`; an authorization id other than the
/// user itself is refused.
async fn plain(
    door: &ListenerState,
    session: &Session,
    message: &[u8],
) -> Result<Principal, Failure> {
    let malformed = |why: &str| Failure::Credentials {
        user: String::new(),
        mechanism: PLAIN,
        why: why.to_owned(),
    };
    let mut parts = message.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "a PLAIN message is authzid NUL user NUL password",
        ));
    };
    let user = std::str::from_utf8(user).map_err(|_| malformed("the user is not UTF-8"))?;
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(Failure::Credentials {
            user: user.to_owned(),
            mechanism: PLAIN,
            why: "an authorization id other than the user".into(),
        });
    }
    door.config
        .security
        .auth
        .password(DOOR, session.peer, user, password, PLAIN)
        .await
        .map_err(|refusal| Failure::Credentials {
            user: user.to_owned(),
            mechanism: PLAIN,
            why: refusal.message,
        })
}

/// The user a SCRAM client-first message names, for the log (empty when unreadable).
fn scram_user(client_first: &[u8]) -> String {
    brook_broker::auth::scram::client_first_user(client_first).unwrap_or_default()
}
