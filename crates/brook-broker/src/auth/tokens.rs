//! Bearer tokens for the gRPC and HTTP doors: `brook token create NAME --data-dir DIR --ttl 24h`.
//!
//! A token is `brook_<id>_<secret>`: a public id (16 hex digits, what `list` shows and `revoke`
//! takes) and 32 random bytes of secret (base64url). Only the SHA-256 of the secret is stored,
//! so the store's file grants nothing; the token is shown once, when it is created. A token
//! acts as its user, stops working at its expiry, and is revoked at once (the next request
//! with it is refused) by `revoke` or by deleting its user.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::bounds::{Bounds, DAY_MS};

/// What every token starts with, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "brook_";
/// The range of a token's time to live, in milliseconds: a minute to a year.
pub const TOKEN_TTL_MS: Bounds = Bounds::new(60_000, 366 * DAY_MS);
/// The most tokens kept at once; creating one more is refused (expired ones are dropped first).
pub const TOKENS_MAX: usize = 10_000;

const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A stored token: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The public id (hex).
    pub id: String,
    /// The user it acts as.
    pub user: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// SHA-256 of the secret, hex.
    hash: String,
}

impl TokenRecord {
    /// Whether the token has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// A new token: its record, and the one text that grants it.
pub(crate) fn mint(user: &str, now_ms: u64, ttl_ms: u64) -> (TokenRecord, String) {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    let mut rng = rand::rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex(&id);
    let record = TokenRecord {
        id: id.clone(),
        user: user.to_owned(),
        created_ms: now_ms,
        expires_ms: now_ms.saturating_add(ttl_ms),
        hash: hex(&Sha256::digest(secret)),
    };
    let text = format!("{TOKEN_PREFIX}{id}_{}", B64URL.encode(secret));
    (record, text)
}

/// The id and the secret's hash of a token's text; `None` when it is not shaped as one.
pub(crate) fn parse(token: &str) -> Option<(&str, String)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 2 * ID_BYTES || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let secret = B64URL.decode(secret).ok()?;
    (secret.len() == SECRET_BYTES).then(|| (id, hex(&Sha256::digest(secret))))
}

/// Whether `hash` is `record`'s, in constant time.
pub(crate) fn matches(record: &TokenRecord, hash: &str) -> bool {
    record.hash.as_bytes().ct_eq(hash.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_back_to_its_record_and_nothing_else_does() {
        let (record, text) = mint("alice", 1_000, 60_000);
        assert!(text.starts_with("brook_"));
        assert!(!serde_json::to_string(&record)
            .expect("json")
            .contains(&text[23..]));
        let (id, hash) = parse(&text).expect("a token");
        assert_eq!(id, record.id);
        assert!(matches(&record, &hash));
        let (other, other_text) = mint("alice", 1_000, 60_000);
        assert!(!matches(&other, &hash));
        assert!(!matches(&record, &parse(&other_text).expect("token").1));
        for bad in [
            "",
            "brook_",
            "brook_zz_abc",
            "bearer",
            &text[..text.len() - 2],
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        assert!(!record.expired(60_999));
        assert!(record.expired(61_000));
    }
}
