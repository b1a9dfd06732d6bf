//! Correlation ids: the bytes that tie a reply to its request, and their text form.
//!
//! On the wire (Kafka header `kafka_correlationId`, gRPC `bytes`) an id is opaque bytes. Spring's
//! `ReplyingKafkaTemplate` makes them 16 bytes (a random UUID, most significant long first), and
//! so does brook. Where an id travels as text (HTTP, the CLI) it is written so that reading it
//! back gives the same bytes:
//!
//! | bytes                                      | text                                  |
//! |--------------------------------------------|---------------------------------------|
//! | exactly 16                                 | hyphenated UUID, `8-4-4-4-12` hex     |
//! | printable UTF-8 that reads back as itself  | as is (`order-42`)                    |
//! | anything else                              | `0x` and lowercase hex                |
//!
//! Reading text: a hyphenated UUID gives its 16 bytes, `0x` with an even number of hex digits
//! gives those bytes, anything else gives its UTF-8 bytes.

use std::fmt;

use bytes::Bytes;

use crate::error::{BrokerError, Result};

/// The longest correlation id, in bytes. Ids are kept in the broker's index, so they are
/// bounded; 255 leaves room for any UUID, ULID or idempotency key people use.
pub const CORRELATION_ID_BYTES_MAX: usize = 255;

/// The id tying a reply to its request (the `kafka_correlationId` header). Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(Bytes);

impl CorrelationId {
    /// A new random id: a UUID v4's 16 bytes, as Spring's `ReplyingKafkaTemplate` makes them.
    /// The bytes come from the thread's CSPRNG (`rand::rng`, seeded from the OS), not from a
    /// system call per id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        Self(Bytes::copy_from_slice(uuid.as_bytes()))
    }

    /// An id from its bytes: 1 to [`CORRELATION_ID_BYTES_MAX`] of them.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > CORRELATION_ID_BYTES_MAX {
            return Err(BrokerError::invalid(format!(
                "a correlation id must be 1..={CORRELATION_ID_BYTES_MAX} bytes, not {}",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }

    /// An id from its text form (see the module docs).
    pub fn parse(text: &str) -> Result<Self> {
        if let Ok(uuid) = uuid::Uuid::try_parse(text) {
            if is_hyphenated_uuid(text) {
                return Self::from_bytes(Bytes::copy_from_slice(uuid.as_bytes()));
            }
        }
        if let Some(bytes) = text.strip_prefix("0x").and_then(decode_hex) {
            return Self::from_bytes(bytes);
        }
        Self::from_bytes(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// The id's bytes, as they travel in the `kafka_correlationId` header.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The id's text form (see the module docs); [`CorrelationId::parse`] reads it back.
    pub fn to_text(&self) -> String {
        self.to_string()
    }
}

/// `8-4-4-4-12` hex digits: the one UUID spelling brook reads as 16 bytes (the uuid crate also
/// takes braces, `urn:` and plain hex, which would make ids like a 32-digit number ambiguous).
fn is_hyphenated_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn decode_hex(hex: &str) -> Option<Bytes> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    let digits = hex.as_bytes();
    let value = |d: u8| (d as char).to_digit(16);
    digits
        .chunks(2)
        .map(|pair| Some((value(pair[0])? * 16 + value(pair[1])?) as u8))
        .collect::<Option<Vec<u8>>>()
        .map(Bytes::from)
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Ok(uuid) = uuid::Uuid::from_slice(&self.0) {
            return write!(f, "{}", uuid.hyphenated());
        }
        match std::str::from_utf8(&self.0) {
            Ok(text)
                if !text.chars().any(char::is_control)
                    && !text.starts_with("0x")
                    && !is_hyphenated_uuid(text) =>
            {
                f.write_str(text)
            }
            _ => {
                f.write_str("0x")?;
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8]) -> String {
        let id = CorrelationId::from_bytes(Bytes::copy_from_slice(bytes)).expect("valid");
        let text = id.to_text();
        let back = CorrelationId::parse(&text).expect("parses");
        assert_eq!(back, id, "{text:?} reads back as the same bytes");
        text
    }

    #[test]
    fn text_forms_read_back_as_the_same_bytes() {
        let random = CorrelationId::random();
        assert_eq!(random.as_bytes().len(), 16);
        assert_eq!(round_trip(random.as_bytes()).len(), 36);
        assert_eq!(round_trip(b"order-42"), "order-42");
        assert_eq!(round_trip(&[0, 1, 0xff]), "0x0001ff");
        assert_eq!(
            round_trip(b"0xab"),
            "0x30786162",
            "looks like hex: spelled as hex"
        );
        let uuid_text = "123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(round_trip(uuid_text.as_bytes()).len(), 2 + 72);
        assert_eq!(round_trip(b"line\nbreak"), "0x6c696e650a627265616b");
        assert_eq!(
            CorrelationId::parse(uuid_text)
                .expect("uuid")
                .as_bytes()
                .len(),
            16
        );
        assert_eq!(
            CorrelationId::parse("0xzz").expect("text").as_bytes(),
            &Bytes::from_static(b"0xzz")
        );
    }

    #[test]
    fn empty_and_oversized_ids_are_refused() {
        assert!(CorrelationId::from_bytes(Bytes::new()).is_err());
        assert!(CorrelationId::parse("").is_err());
        let long = vec![b'a'; CORRELATION_ID_BYTES_MAX + 1];
        let err = CorrelationId::from_bytes(long).unwrap_err();
        assert!(err.to_string().contains("1..=255"), "{err}");
        assert!(CorrelationId::from_bytes(vec![b'a'; CORRELATION_ID_BYTES_MAX]).is_ok());
    }
}
