//! SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's KIP-84): the salted
//! credentials users are stored as, checking a password against them (SASL PLAIN, HTTP and
//! gRPC `Basic`), and the server side of the SCRAM exchange (Kafka's SCRAM-SHA-256 and
//! SCRAM-SHA-512).
//!
//! A password is never stored: a credential is the salt, the iteration count, `StoredKey =
//! H(HMAC(SaltedPassword, "Client Key"))` and `ServerKey = HMAC(SaltedPassword, "Server Key")`
//! with `SaltedPassword = PBKDF2-HMAC(password, salt, iterations)`, exactly what Kafka stores
//! (and what `AlterUserScramCredentials` sends: a salted password, never the password). Every
//! comparison of secret bytes is constant-time (`subtle`).
//!
//! An unknown user gets a made-up credential (`ScramCredential::decoy`): a salt derived from
//! the user name and the broker's secret (so it is the same on every attempt, as a real user's
//! is) and a key nothing matches. The exchange then runs the same steps and fails with the same
//! message as a wrong password.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::error::{BrokerError, Result};

/// Iterations of a new credential (Kafka's default and minimum for SCRAM-SHA-256/512).
pub const ITERATIONS_DEFAULT: u32 = 4096;
/// The fewest iterations accepted (Kafka's minimum).
pub const ITERATIONS_MIN: u32 = 4096;
/// The most iterations accepted (Kafka's maximum): checking a password costs this many HMACs.
pub const ITERATIONS_MAX: u32 = 16384;
/// Bytes of a new salt.
const SALT_BYTES: usize = 32;
/// The longest salt accepted from a client (`AlterUserScramCredentials`).
const SALT_BYTES_MAX: usize = 1024;
/// The longest SCRAM message accepted.
pub const SCRAM_MESSAGE_BYTES_MAX: usize = 4096;

/// The one answer to a failed SCRAM exchange, PLAIN or `Basic` check, whatever failed: Kafka's
/// wording.
pub fn invalid_credentials(mechanism: &str) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL \
         mechanism {mechanism}"
    )
}

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Both, strongest first.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha512, ScramMechanism::Sha256];

    /// The SASL name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's code in `DescribeUserScramCredentials` / `AlterUserScramCredentials`.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// Bytes of the hash (and of every key and proof).
    fn digest_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = <Hmac<Sha512>>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// PBKDF2 of `password`: SCRAM's `Hi()`.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.digest_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ScramMechanism {
    type Err = BrokerError;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| BrokerError::InvalidRequest {
                reason: format!("{text:?} is not SCRAM-SHA-256 or SCRAM-SHA-512"),
            })
    }
}

/// Checks an iteration count against Kafka's range.
pub fn check_iterations(iterations: u32) -> Result<()> {
    if (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        Ok(())
    } else {
        Err(BrokerError::InvalidRequest {
            reason: format!(
                "{iterations} SCRAM iterations is outside {ITERATIONS_MIN}..={ITERATIONS_MAX}"
            ),
        })
    }
}

/// A user's stored SCRAM credential for one mechanism.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    stored_key: Vec<u8>,
    #[serde(with = "b64")]
    server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are secret-equivalent for SCRAM: never in a log line.
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// A credential for `password` with a new random salt.
    pub fn new(mechanism: ScramMechanism, password: &[u8], iterations: u32) -> Result<Self> {
        check_iterations(iterations)?;
        let mut salt = vec![0; SALT_BYTES];
        rand::rng().fill_bytes(&mut salt);
        let salted = mechanism.salted_password(password, &salt, iterations);
        Ok(Self::from_salted_password(
            mechanism, salt, iterations, &salted,
        ))
    }

    /// A credential from a salted password a client computed (Kafka's
    /// `AlterUserScramCredentials` upsertion), checked for shape.
    pub fn from_client(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        iterations: u32,
        salted_password: &[u8],
    ) -> Result<Self> {
        check_iterations(iterations)?;
        if salt.is_empty() || salt.len() > SALT_BYTES_MAX {
            return Err(BrokerError::InvalidRequest {
                reason: format!("a SCRAM salt must be 1 to {SALT_BYTES_MAX} bytes"),
            });
        }
        if salted_password.len() != mechanism.digest_len() {
            return Err(BrokerError::InvalidRequest {
                reason: format!(
                    "a {mechanism} salted password is {} bytes, not {}",
                    mechanism.digest_len(),
                    salted_password.len()
                ),
            });
        }
        Ok(Self::from_salted_password(
            mechanism,
            salt,
            iterations,
            salted_password,
        ))
    }

    fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        iterations: u32,
        salted: &[u8],
    ) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        Self {
            mechanism,
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        }
    }

    /// The stand-in for an unknown user: its salt is derived from `user` and `secret` (the
    /// same on every attempt), its keys match no proof and no password.
    pub(crate) fn decoy(mechanism: ScramMechanism, user: &str, secret: &[u8]) -> Self {
        let mut seed = Vec::with_capacity(user.len() + 16);
        seed.extend_from_slice(mechanism.name().as_bytes());
        seed.push(0);
        seed.extend_from_slice(user.as_bytes());
        let derived = mechanism.hmac(secret, &seed);
        let mut keys = vec![0; mechanism.digest_len()];
        rand::rng().fill_bytes(&mut keys);
        Self {
            mechanism,
            salt: derived[..SALT_BYTES.min(derived.len())].to_vec(),
            iterations: ITERATIONS_DEFAULT,
            stored_key: keys.clone(),
            server_key: keys,
        }
    }

    /// Whether `password` is this credential's (SASL PLAIN, `Basic`): it costs `iterations`
    /// HMACs, and the comparison is constant-time.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let salted = self
            .mechanism
            .salted_password(password, &self.salt, self.iterations);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let stored_key = self.mechanism.hash(&client_key);
        stored_key.ct_eq(&self.stored_key).into()
    }

    /// Whether `proof` proves the password for `auth_message` (RFC 5802 section 3).
    fn verify_proof(&self, auth_message: &[u8], proof: &[u8]) -> bool {
        if proof.len() != self.stored_key.len() {
            return false;
        }
        let signature = self.mechanism.hmac(&self.stored_key, auth_message);
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        self.mechanism
            .hash(&client_key)
            .ct_eq(&self.stored_key)
            .into()
    }

    fn server_signature(&self, auth_message: &[u8]) -> Vec<u8> {
        self.mechanism.hmac(&self.server_key, auth_message)
    }
}

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// A message broke the protocol; the reason says how (safe to show the client).
    Malformed(String),
    /// Unknown user or wrong password: one answer for both
    /// ([`invalid_credentials`]).
    InvalidCredentials { user: String },
}

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScramError::Malformed(reason) => write!(f, "invalid SCRAM message: {reason}"),
            ScramError::InvalidCredentials { .. } => f.write_str("invalid credentials"),
        }
    }
}

impl std::error::Error for ScramError {}

fn malformed(reason: impl Into<String>) -> ScramError {
    ScramError::Malformed(reason.into())
}

/// What the server keeps between its first message and the client's final one.
#[derive(Debug)]
pub struct ScramPending {
    user: String,
    /// `false` for an unknown user: the exchange goes on with a decoy and fails at the end.
    known: bool,
    credential: ScramCredential,
    gs2_header: String,
    nonce: String,
    /// `client-first-message-bare + "," + server-first-message`.
    auth_prefix: String,
}

impl ScramPending {
    /// The user named in the client's first message.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The mechanism of the exchange.
    pub fn mechanism(&self) -> ScramMechanism {
        self.credential.mechanism
    }
}

/// The user named in a client-first message, so the caller can look its credential up before
/// [`server_first`].
pub fn client_first_user(client_first: &[u8]) -> std::result::Result<String, ScramError> {
    parse_client_first(client_first).map(|first| first.user)
}

struct ClientFirst {
    gs2_header: String,
    user: String,
    client_nonce: String,
    bare: String,
}

fn parse_client_first(message: &[u8]) -> std::result::Result<ClientFirst, ScramError> {
    if message.len() > SCRAM_MESSAGE_BYTES_MAX {
        return Err(malformed("the client-first message is too long"));
    }
    let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
    // gs2-header: cbind-flag "," [authzid] ","
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts.next().ok_or_else(|| malformed("no GS2 header"))?;
    let bare = parts
        .next()
        .ok_or_else(|| malformed("no client-first-message-bare"))?;
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => {
            return Err(malformed("channel binding is not supported"));
        }
        _ => return Err(malformed("the GS2 header must start with n, y or p=")),
    }
    let mut attributes = bare.split(',');
    let user = match attributes.next() {
        Some(n) if n.starts_with("n=") => unescape_name(&n[2..])?,
        _ => return Err(malformed("the first attribute must be n=USER")),
    };
    let client_nonce = match attributes.next() {
        Some(r) if r.len() > 2 && r.starts_with("r=") => r[2..].to_owned(),
        _ => return Err(malformed("the second attribute must be r=NONCE")),
    };
    for extension in attributes {
        if extension.starts_with("tokenauth=") {
            return Err(malformed("delegation tokens (tokenauth) are not supported"));
        }
    }
    if !authzid.is_empty() {
        let claimed = authzid
            .strip_prefix("a=")
            .ok_or_else(|| malformed("the authorization id must be a=NAME"))?;
        if unescape_name(claimed)? != user {
            return Err(malformed(
                "the authorization id must be the authenticated user",
            ));
        }
    }
    if user.is_empty() {
        return Err(malformed("the user name is empty"));
    }
    Ok(ClientFirst {
        gs2_header: format!("{flag},{authzid},"),
        user,
        client_nonce,
        bare: bare.to_owned(),
    })
}

/// SCRAM's `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape_name(name: &str) -> std::result::Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("a user name may escape only , (=2C) and = (=3D)")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Answers a client-first message with the server-first message. `credential` is the user's
/// (`Some`), or `None` for an unknown user, whose decoy is made from `secret`.
pub fn server_first(
    mechanism: ScramMechanism,
    client_first: &[u8],
    credential: Option<ScramCredential>,
    secret: &[u8],
) -> std::result::Result<(ScramPending, Vec<u8>), ScramError> {
    let first = parse_client_first(client_first)?;
    let known = credential.is_some();
    let credential =
        credential.unwrap_or_else(|| ScramCredential::decoy(mechanism, &first.user, secret));
    let mut server_nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut server_nonce);
    let nonce = format!("{}{}", first.client_nonce, B64.encode(server_nonce));
    let message = format!(
        "r={nonce},s={},i={}",
        B64.encode(&credential.salt),
        credential.iterations
    );
    let pending = ScramPending {
        user: first.user,
        known,
        credential,
        gs2_header: first.gs2_header,
        nonce,
        auth_prefix: format!("{},{message}", first.bare),
    };
    Ok((pending, message.into_bytes()))
}

/// Checks the client-final message; on success the user is authenticated and the answer is the
/// server-final message (`v=` the server's signature).
pub fn server_final(
    pending: ScramPending,
    client_final: &[u8],
) -> std::result::Result<(String, Vec<u8>), ScramError> {
    if client_final.len() > SCRAM_MESSAGE_BYTES_MAX {
        return Err(malformed("the client-final message is too long"));
    }
    let text = std::str::from_utf8(client_final).map_err(|_| malformed("not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or_else(|| malformed("no proof (p=)"))?;
    let mut attributes = without_proof.split(',');
    let binding = attributes
        .next()
        .and_then(|c| c.strip_prefix("c="))
        .ok_or_else(|| malformed("the first attribute must be c=BINDING"))?;
    if binding != B64.encode(&pending.gs2_header) {
        return Err(malformed(
            "the channel binding does not match the GS2 header",
        ));
    }
    let nonce = attributes
        .next()
        .and_then(|r| r.strip_prefix("r="))
        .ok_or_else(|| malformed("the second attribute must be r=NONCE"))?;
    if nonce != pending.nonce {
        return Err(malformed("the nonce is not the one this exchange agreed"));
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| malformed("the proof is not base64"))?;
    let auth_message = format!("{},{without_proof}", pending.auth_prefix);
    let proven = pending
        .credential
        .verify_proof(auth_message.as_bytes(), &proof);
    if !(proven && pending.known) {
        return Err(ScramError::InvalidCredentials { user: pending.user });
    }
    let signature = pending.credential.server_signature(auth_message.as_bytes());
    Ok((
        pending.user,
        format!("v={}", B64.encode(signature)).into_bytes(),
    ))
}

/// Serde for byte fields as base64 text.
mod b64 {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of an exchange, as RFC 5802 computes it.
    fn client_final(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        let mut salt = None;
        let mut iterations = 0;
        let mut nonce = "";
        for attribute in server_first.split(',') {
            match attribute.split_at(2) {
                ("r=", r) => nonce = r,
                ("s=", s) => salt = Some(B64.decode(s).expect("salt")),
                ("i=", i) => iterations = i.parse().expect("iterations"),
                _ => {}
            }
        }
        let salted = mechanism.salted_password(password.as_bytes(), &salt.expect("s="), iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored = mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = mechanism.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn exchange(
        mechanism: ScramMechanism,
        stored: Option<ScramCredential>,
        password: &str,
    ) -> std::result::Result<(String, Vec<u8>), ScramError> {
        let first = b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
        let (pending, server) = server_first(mechanism, first, stored, b"secret")?;
        let server = String::from_utf8(server).expect("utf-8");
        let last = client_final(
            mechanism,
            password,
            "n=alice,r=fyko+d2lbbFgONRv9qkxdawL",
            &server,
        );
        server_final(pending, last.as_bytes())
    }

    #[test]
    fn an_exchange_with_the_right_password_authenticates_both_ways() {
        for mechanism in ScramMechanism::ALL {
            let credential = ScramCredential::new(mechanism, b"s3cret", 4096).expect("credential");
            let (user, server_final) =
                exchange(mechanism, Some(credential.clone()), "s3cret").expect("authenticated");
            assert_eq!(user, "alice");
            assert!(server_final.starts_with(b"v="));
            assert!(matches!(
                exchange(mechanism, Some(credential), "wrong"),
                Err(ScramError::InvalidCredentials { .. })
            ));
            // An unknown user walks the same steps and fails the same way.
            assert!(matches!(
                exchange(mechanism, None, "s3cret"),
                Err(ScramError::InvalidCredentials { .. })
            ));
        }
    }

    #[test]
    fn a_decoy_salt_is_stable_per_user_so_it_tells_nothing() {
        let a = ScramCredential::decoy(ScramMechanism::Sha256, "ghost", b"k");
        let b = ScramCredential::decoy(ScramMechanism::Sha256, "ghost", b"k");
        assert_eq!(a.salt, b.salt);
        assert_eq!(a.salt.len(), SALT_BYTES);
        assert_ne!(
            a.salt,
            ScramCredential::decoy(ScramMechanism::Sha256, "other", b"k").salt
        );
    }

    #[test]
    fn passwords_check_against_the_stored_keys_only() {
        // The stored form is base64 of random salt and keys: a two-letter
        // password turns up in it by chance (about one run in twenty); six
        // letters about once in three hundred million runs.
        let password = b"open sesame!";
        let credential = ScramCredential::new(ScramMechanism::Sha512, password, ITERATIONS_DEFAULT)
            .expect("new");
        assert!(credential.verify_password(password));
        assert!(!credential.verify_password(b"open sesame! "));
        let json = serde_json::to_string(&credential).expect("json");
        assert!(!json.contains("sesame"), "{json}");
        let back: ScramCredential = serde_json::from_str(&json).expect("back");
        assert!(back.verify_password(password));
        assert!(!format!("{credential:?}").contains("key"));
    }

    #[test]
    fn malformed_messages_are_refused_saying_why() {
        let bad: [&[u8]; 6] = [
            b"",
            b"x,,n=a,r=b",
            b"n,,r=b",
            b"n,,n=a",
            b"n,,n=a=,r=b",
            b"n,,n=a,r=b,tokenauth=true",
        ];
        for message in bad {
            assert!(matches!(
                server_first(ScramMechanism::Sha256, message, None, b"k"),
                Err(ScramError::Malformed(_))
            ));
        }
        assert_eq!(unescape_name("a=2Cb=3Dc").expect("escaped"), "a,b=c");
        assert!(check_iterations(100).is_err());
        assert!(
            ScramCredential::from_client(ScramMechanism::Sha256, vec![1], 4096, &[0; 31]).is_err()
        );
    }
}
