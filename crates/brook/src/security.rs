//! A server's security (docs/security.md): TLS and authentication on its doors.
//!
//! TLS: one certificate and key (PEM files) for every door, an optional client CA (mutual
//! TLS), and a switch per door to opt out.
//!
//! [`TlsSettings::load`] reads the files once for the process; each door that is on gets its
//! own view of the same material ([`brook_door::tls::Tls::for_door`]: `h2` by ALPN for gRPC,
//! `h2` and `http/1.1` for HTTP, nothing for Kafka, as Kafka's SSL listener), so one
//! [`Tls::reload`] (`brook serve` calls it on SIGHUP) changes every door's certificate for the
//! next handshakes without dropping a connection. The metrics port stays plaintext.

use std::path::PathBuf;

use brook_broker::auth::Auth;
use brook_door::tls::{Tls, TlsFiles};
use brook_door::Authenticator;

use crate::server::{ServeConfig, ServeError};

/// ALPN of the gRPC door over TLS.
const GRPC_ALPN: &[&[u8]] = &[b"h2"];
/// ALPN of the HTTP door over TLS.
const HTTP_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Where the TLS material is and which doors serve it. Default: no TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// The certificate chain, PEM, leaf first (`tls_cert`). With `key`, turns TLS on.
    pub cert: Option<PathBuf>,
    /// Its private key, PEM (`tls_key`).
    pub key: Option<PathBuf>,
    /// The CA client certificates must be signed by (`tls_client_ca`): mutual TLS.
    pub client_ca: Option<PathBuf>,
    /// Whether the gRPC door serves TLS when it is on (`grpc_tls`, default true).
    pub grpc: bool,
    /// Whether the Kafka door does (`kafka_tls`).
    pub kafka: bool,
    /// Whether the HTTP door does (`http_tls`).
    pub http: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            client_ca: None,
            grpc: true,
            kafka: true,
            http: true,
        }
    }
}

impl TlsSettings {
    /// The files, when TLS is on; an error when only one of certificate and key is set, or a
    /// client CA without them.
    pub fn files(&self) -> Result<Option<TlsFiles>, String> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.client_ca.clone(),
            })),
            (None, None) if self.client_ca.is_none() => Ok(None),
            (None, None) => Err("tls_client_ca needs tls_cert and tls_key".into()),
            (Some(_), None) => Err("tls_cert needs tls_key".into()),
            (None, Some(_)) => Err("tls_key needs tls_cert".into()),
        }
    }

    /// Reads the files (on the blocking pool) and sets each door's TLS in `config`; returns
    /// the material (to reload), `None` when TLS is off.
    pub async fn load(config: &mut ServeConfig) -> Result<Option<Tls>, ServeError> {
        let files = config
            .tls
            .files()
            .map_err(|reason| ServeError::Invalid { reason })?;
        let Some(files) = files else {
            return Ok(None);
        };
        let tls = tokio::task::spawn_blocking(move || Tls::load(files))
            .await
            .map_err(|e| ServeError::Invalid {
                reason: format!("reading the TLS files failed: {e}"),
            })?
            .map_err(|e| ServeError::Invalid {
                reason: e.to_string(),
            })?;
        if config.tls.grpc {
            config.grpc.security.tls = Some(tls.for_door(GRPC_ALPN));
        }
        if config.tls.kafka {
            config.kafka.security.tls = Some(tls.for_door(&[]));
        }
        if config.tls.http {
            config.http.security.tls = Some(tls.for_door(HTTP_ALPN));
        }
        Ok(Some(tls))
    }
}

/// Authentication: with `config.auth` enabled, opens the users, tokens and ACLs of the data
/// directory (`<data>/security/`, locked while the server runs) and gives every door the one
/// [`Authenticator`] over them, so a user, a token or a failure count is the same on each.
/// `None` with authentication off (every client is `User:ANONYMOUS`).
pub async fn open_auth(config: &mut ServeConfig) -> Result<Option<Auth>, ServeError> {
    if !config.auth.enabled {
        return Ok(None);
    }
    let auth = Auth::open(&config.broker.data_dir, config.auth.clone())
        .await
        .map_err(|source| ServeError::Open {
            data_dir: config.broker.data_dir.display().to_string(),
            source,
        })?;
    tracing::info!(
        superusers = config.auth.superusers.len(),
        acls = auth.acls(&Default::default()).len(),
        "auth is on: clients must authenticate, and may do only what an ACL allows \
         (superusers: anything)"
    );
    let authenticator = Authenticator::new(auth.clone());
    config.grpc.security.auth = authenticator.clone();
    config.kafka.security.auth = authenticator.clone();
    config.http.security.auth = authenticator;
    Ok(Some(auth))
}

/// Parses `on`/`off` (and `true`/`false`), as a door's TLS switch is written.
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("{other:?} is not on or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_and_key_come_together() {
        let mut s = TlsSettings::default();
        assert_eq!(s.files(), Ok(None));
        s.client_ca = Some("ca.pem".into());
        assert!(s.files().is_err());
        s.cert = Some("cert.pem".into());
        assert!(s.files().expect_err("no key").contains("tls_key"));
        s.key = Some("key.pem".into());
        let files = s.files().expect("valid").expect("on");
        assert_eq!(files.client_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(parse_switch("off"), Ok(false));
        assert!(parse_switch("maybe").is_err());
    }
}
