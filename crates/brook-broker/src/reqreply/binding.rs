//! Binding a reply to its call, so a reply nobody was asked for is never delivered.
//!
//! A request's correlation id is readable by anyone who reads its topic, so the id alone cannot
//! tell a reply from a forgery. Each reply in brook's reply topic therefore carries a second
//! header, `brook_replyMac`: HMAC-SHA-256 of the correlation id under a key only the broker
//! holds (`ReplyKey`). The broker hands that value to a responder with each request it
//! delivers (the embedded [`Responder`](super::Responder), the gRPC `Respond` stream that
//! wraps it), never through the log, and its [`Replier`](super::Replier) writes it on the reply;
//! the reader of the reply topic delivers and indexes only replies whose MAC checks, and counts
//! the rest (`unbound_replies`). So a client that reads a request and appends a reply with its
//! id by any other way (a Kafka or gRPC or HTTP produce, the embedded `produce`, a hand-made
//! [`Request`](super::Request)) is ignored, whoever it is.
//!
//! The key is 32 random bytes in `<data dir>/reqreply.key` (created on first use, mode 0600),
//! so replies in the log still check after a restart. A gateway (a Kafka cluster backend) has
//! no data directory: its key lives in memory, so replies appended before a gateway restart do
//! not check after it (a retry of such a call times out; docs/request-reply.md).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::id::CorrelationId;
use crate::error::{BrokerError, Result};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "reqreply.key";
/// Bytes of the key and of a MAC.
const KEY_BYTES: usize = 32;

/// The broker's secret for binding replies to calls.
#[derive(Clone)]
pub(crate) struct ReplyKey([u8; KEY_BYTES]);

impl std::fmt::Debug for ReplyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyKey(..)")
    }
}

/// The MAC a reply to a call carries; what a responder got with the request. Its `Debug`
/// shows nothing of it. Only the broker makes one (`ReplyKey::mac`), and it remembers the
/// id it was made for, so the responder's hand-over of its own reply can tell the binding
/// holds without computing the MAC again (`ReplyMac::binds`).
#[derive(Clone, PartialEq, Eq)]
pub struct ReplyMac {
    bytes: Bytes,
    id: CorrelationId,
}

impl std::fmt::Debug for ReplyMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyMac(..)")
    }
}

impl ReplyMac {
    /// The header value.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Whether this is the MAC of replies to `id`: true exactly when [`ReplyKey::checks`]
    /// would pass for `id` under the key that made it.
    pub(crate) fn binds(&self, id: &CorrelationId) -> bool {
        self.id == *id
    }
}

impl ReplyKey {
    /// A fresh random key, kept nowhere (a gateway's).
    pub(crate) fn random() -> Self {
        let mut key = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// The key of the data directory `dir`: read from its key file, or made and written there
    /// (synced) when it has none. Blocking: run it on the blocking pool. A key file of the
    /// wrong size is an error naming the file, never replaced silently (replies in the log
    /// would stop checking).
    pub(crate) fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
                    BrokerError::invalid(format!(
                        "{}: a request-reply key of {} bytes, expected {KEY_BYTES}; restore it \
                         from a backup, or delete it (replies already in the log then stop \
                         being delivered)",
                        path.display(),
                        bytes.len()
                    ))
                })?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random();
                write_new(&path, &key.0)?;
                Ok(key)
            }
            Err(e) => Err(brook_log::LogError::io(&path, e).into()),
        }
    }

    /// The MAC of replies to the call with correlation id `id`.
    pub(crate) fn mac(&self, id: &CorrelationId) -> ReplyMac {
        ReplyMac {
            bytes: Bytes::copy_from_slice(&self.digest(id)),
            id: id.clone(),
        }
    }

    /// Whether `claimed` is the MAC of replies to `id` (compared in constant time).
    pub(crate) fn checks(&self, id: &CorrelationId, claimed: &[u8]) -> bool {
        self.digest(id).as_slice().ct_eq(claimed).into()
    }

    fn digest(&self, id: &CorrelationId) -> [u8; KEY_BYTES] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(b"brook reply v1\0");
        mac.update(id.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Writes `key` to a new file at `path` readable by its owner only, synced with its directory.
fn write_new(path: &PathBuf, key: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |e| -> BrokerError { brook_log::LogError::io(path, e).into() };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(key).map_err(io)?;
    file.sync_all().map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_checks_for_its_id_and_key_only() {
        let key = ReplyKey::random();
        let id = CorrelationId::parse("order-42").expect("id");
        let mac = key.mac(&id);
        assert!(key.checks(&id, mac.bytes()));
        let other = CorrelationId::parse("order-43").expect("id");
        assert!(!key.checks(&other, mac.bytes()));
        assert!(!ReplyKey::random().checks(&id, mac.bytes()));
        assert!(!key.checks(&id, b""));
        assert!(mac.binds(&id) && !mac.binds(&other));
        assert_eq!(format!("{mac:?}"), "ReplyMac(..)");
    }

    #[test]
    fn the_key_survives_a_reopen_and_a_bad_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = CorrelationId::random();
        let first = ReplyKey::load_or_create(dir.path()).expect("created");
        let again = ReplyKey::load_or_create(dir.path()).expect("read");
        assert!(again.checks(&id, first.mac(&id).bytes()));
        std::fs::write(dir.path().join(KEY_FILE), b"short").expect("write");
        let err = ReplyKey::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains(KEY_FILE), "{err}");
    }
}
