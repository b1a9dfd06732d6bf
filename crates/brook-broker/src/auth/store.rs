//! Where users, tokens and ACLs are kept: `<data>/security/security.meta`, one file in brook's
//! checked envelope (magic `BRSC`, CRC-32, replaced atomically and durably; brook-log's
//! `meta`), whose payload is JSON. The directory is made `0700`, the file `0600`.
//!
//! The file holds no password and no token: users are salted SCRAM credentials, tokens the
//! SHA-256 of their secret. It also holds the broker's own random secret, from which the decoy
//! credentials of unknown users are derived (so their salts stay the same across restarts).
//!
//! One process at a time: `<data>/security/.lock` is locked (`flock`) while a broker (or an
//! offline `brook user create --data-dir`) has the store open, so an offline change cannot
//! race a running broker; that is told to use the admin API instead.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use brook_log::meta;
use brook_log::LogError;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::acl::{AclBinding, AclIndex};
use super::scram::{ScramCredential, ScramMechanism};
use super::tokens::TokenRecord;
use crate::error::{BrokerError, Result};

/// The store's directory inside a data directory.
pub const SECURITY_DIR: &str = "security";
const FILE: &str = "security.meta";
const LOCK: &str = ".lock";
const MAGIC: [u8; 4] = *b"BRSC";
const VERSION: u16 = 1;
const WHAT: &str = "security";

/// A user: a SCRAM credential per mechanism it has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct User {
    pub(crate) credentials: BTreeMap<ScramMechanism, ScramCredential>,
}

/// Everything the store holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    #[serde(with = "hex_secret")]
    pub(crate) secret: [u8; 32],
    #[serde(default)]
    pub(crate) users: BTreeMap<String, User>,
    #[serde(default)]
    pub(crate) tokens: BTreeMap<String, TokenRecord>,
    #[serde(default)]
    pub(crate) acls: BTreeSet<AclBinding>,
    /// `acls` filed for checks: derived, never stored; [`State::reindex`] after a change.
    #[serde(skip)]
    pub(crate) index: AclIndex,
}

impl State {
    /// An empty store with a new secret.
    pub(crate) fn new() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Self {
            secret,
            users: BTreeMap::new(),
            tokens: BTreeMap::new(),
            acls: BTreeSet::new(),
            index: AclIndex::default(),
        }
    }

    /// Files `acls` anew into `index`: after reading the store and after every change.
    pub(crate) fn reindex(&mut self) {
        self.index = AclIndex::new(&self.acls);
    }
}

/// The open store: its directory, locked while this lives.
#[derive(Debug)]
pub(crate) struct Files {
    path: PathBuf,
    /// Holding the file keeps the lock.
    _lock: File,
}

impl Files {
    /// Opens (creating) the store of the data directory `data_dir` and reads it. Blocking.
    pub(crate) fn open(data_dir: &Path) -> Result<(Files, State)> {
        let dir = data_dir.join(SECURITY_DIR);
        create_private_dir(&dir)?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    path: dir,
                    holder: "a running broker (change users, tokens and ACLs through its admin \
                             API, or stop it first)"
                        .into(),
                }
                .into())
            }
            Err(fs::TryLockError::Error(e)) => return Err(LogError::io(&lock_path, e).into()),
        }
        let path = dir.join(FILE);
        let files = Files { path, _lock: lock };
        let state = match meta::read(&files.path, MAGIC, WHAT)? {
            Some((VERSION, payload)) => {
                serde_json::from_slice(&payload).map_err(|e| LogError::BadMetaFile {
                    what: WHAT,
                    path: files.path.clone(),
                    reason: e.to_string(),
                })?
            }
            Some((version, _)) => {
                return Err(LogError::BadMetaFile {
                    what: WHAT,
                    path: files.path.clone(),
                    reason: format!("version {version} is not {VERSION}: written by another brook"),
                }
                .into())
            }
            None => {
                let state = State::new();
                files.save(&state)?;
                state
            }
        };
        Ok((files, state))
    }

    /// Replaces the file with `state`, durably. Blocking.
    pub(crate) fn save(&self, state: &State) -> Result<()> {
        let payload = serde_json::to_vec(state).map_err(|e| BrokerError::Task {
            reason: format!("cannot encode the security store: {e}"),
        })?;
        meta::write(&self.path, MAGIC, VERSION, &payload)?;
        set_mode(&self.path, 0o600)
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
    set_mode(dir, 0o700)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| LogError::io(path, e).into())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// Serde for the secret as hex text.
mod hex_secret {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if text.len() != 64 {
            return Err(serde::de::Error::custom("the secret is 64 hex digits"));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_reopens_with_what_was_saved_and_locks_out_a_second_opener() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (files, mut state) = Files::open(dir.path()).expect("open");
        let credential =
            ScramCredential::new(ScramMechanism::Sha256, b"pw", 4096).expect("credential");
        state
            .users
            .entry("alice".into())
            .or_default()
            .credentials
            .insert(ScramMechanism::Sha256, credential);
        files.save(&state).expect("save");
        let second = Files::open(dir.path()).expect_err("locked");
        assert!(second.to_string().contains("locked"), "{second}");
        drop(files);
        let (_files, back) = Files::open(dir.path()).expect("reopen");
        assert_eq!(back.users, state.users);
        assert_eq!(back.secret, state.secret);
        let text = fs::read(dir.path().join(SECURITY_DIR).join(FILE)).expect("read");
        assert!(!String::from_utf8_lossy(&text).contains("\"pw\""));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(SECURITY_DIR).join(FILE))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
