//! Records as JSON: how a request's keys, values and header values become bytes, and how
//! stored bytes are shown to a reader.
//!
//! The request says how each part is written ("encoding"): `json` (the JSON value itself is
//! the bytes, stored exactly as sent), `text` (a JSON string, stored as its UTF-8), or
//! `base64` (a JSON string of standard base64, padding optional). Defaults: keys and header
//! values `text`, values `json`. A missing or `null` key or value means none (a tombstone
//! value), in every encoding.
//!
//! A reader asks for encodings the same way. Bytes that cannot be shown as asked are shown in
//! the next encoding that can show them, and the record says so: UTF-8 that is not JSON, asked
//! as `json`, comes as `text` (`"value_encoding": "text"`); bytes that are not UTF-8 come as
//! `base64`. A reader never gets an error for a record someone else produced, nor a silently
//! mangled one. A JSON value is shown on one line: its line breaks, which can only be
//! whitespace between tokens, become spaces.

use axum::http::StatusCode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine as _};
use brook_broker::{ConsumerRecord, ProduceRecord};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ApiError;

/// Standard base64; decoding takes input with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How a key, value or header value is written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Encoding {
    Json,
    Text,
    Base64,
}

fn text() -> Encoding {
    Encoding::Text
}

fn json() -> Encoding {
    Encoding::Json
}

/// The encodings of one request: in a JSON produce body, or in the query string of a read or
/// a streaming produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) struct Encodings {
    #[serde(default = "text")]
    pub(crate) key_encoding: Encoding,
    #[serde(default = "json")]
    pub(crate) value_encoding: Encoding,
    #[serde(default = "text")]
    pub(crate) header_encoding: Encoding,
}

impl Default for Encodings {
    fn default() -> Self {
        Self {
            key_encoding: text(),
            value_encoding: json(),
            header_encoding: text(),
        }
    }
}

/// A record to produce, as JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordIn {
    #[serde(default)]
    key: Option<Box<RawValue>>,
    #[serde(default)]
    value: Option<Box<RawValue>>,
    #[serde(default)]
    headers: Vec<HeaderIn>,
    /// `None`: by key, else the broker's sticky choice.
    #[serde(default)]
    partition: Option<u32>,
    /// Create time in ms since the epoch; `None`: the broker's clock.
    #[serde(default)]
    timestamp: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderIn {
    key: String,
    #[serde(default)]
    value: Option<Box<RawValue>>,
}

impl RecordIn {
    /// The record as the broker takes it; `at` names it in errors (`records[3]`, `line 7`).
    pub(crate) fn into_record(
        self,
        encodings: Encodings,
        at: &str,
    ) -> Result<ProduceRecord, ApiError> {
        let part = |raw: Option<Box<RawValue>>, encoding, what: &str| {
            raw.map(|raw| decode(&raw, encoding))
                .transpose()
                .map_err(|reason| ApiError::bad_request(format!("{at}.{what}: {reason}")))
        };
        let mut headers = Vec::with_capacity(self.headers.len());
        for (i, header) in self.headers.into_iter().enumerate() {
            let value = part(
                header.value,
                encodings.header_encoding,
                &format!("headers[{i}].value"),
            )?;
            headers.push((header.key, value.unwrap_or_default()));
        }
        Ok(ProduceRecord {
            key: part(self.key, encodings.key_encoding, "key")?,
            value: part(self.value, encodings.value_encoding, "value")?,
            headers,
            timestamp: self.timestamp,
            partition: self.partition,
        })
    }
}

/// The bytes a URL path segment (already percent-decoded) stands for in `encoding`: the text
/// itself for `text` and `json`, its decoding for `base64`.
pub(crate) fn decode_path(segment: String, encoding: Encoding) -> Result<Bytes, String> {
    match encoding {
        Encoding::Json | Encoding::Text => Ok(Bytes::from(segment)),
        Encoding::Base64 => BASE64
            .decode(segment)
            .map(Bytes::from)
            .map_err(|e| format!("not valid base64: {e}")),
    }
}

/// The bytes `raw` stands for in `encoding`.
fn decode(raw: &RawValue, encoding: Encoding) -> Result<Bytes, String> {
    let string = || {
        serde_json::from_str::<String>(raw.get()).map_err(|_| {
            format!(
                "with {} encoding this must be a JSON string, not {}",
                name(encoding),
                raw.get().chars().take(40).collect::<String>()
            )
        })
    };
    match encoding {
        Encoding::Json => Ok(Bytes::copy_from_slice(raw.get().as_bytes())),
        Encoding::Text => string().map(Bytes::from),
        Encoding::Base64 => BASE64
            .decode(string()?)
            .map(Bytes::from)
            .map_err(|e| format!("not valid base64: {e}")),
    }
}

fn name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "json",
        Encoding::Text => "text",
        Encoding::Base64 => "base64",
    }
}

/// A record as a reader receives it.
#[derive(Debug, Serialize)]
pub(crate) struct RecordOut<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    key: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_encoding: Option<Encoding>,
    value: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<Encoding>,
    headers: Vec<HeaderOut<'a>>,
}

#[derive(Debug, Serialize)]
struct HeaderOut<'a> {
    key: &'a str,
    value: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<Encoding>,
}

/// `record` shown in `encodings`.
pub(crate) fn show_record(record: &ConsumerRecord, encodings: Encodings) -> RecordOut<'_> {
    let (key, key_encoding) = split(
        record
            .key
            .as_ref()
            .map(|k| encode(k, encodings.key_encoding)),
    );
    let (value, value_encoding) = split(
        record
            .value
            .as_ref()
            .map(|v| encode(v, encodings.value_encoding)),
    );
    let headers = record
        .headers
        .iter()
        .map(|(key, value)| {
            let (value, value_encoding) = encode(value, encodings.header_encoding);
            HeaderOut {
                key,
                value,
                value_encoding,
            }
        })
        .collect();
    RecordOut {
        topic: &record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key,
        key_encoding,
        value,
        value_encoding,
        headers,
    }
}

fn split(
    shown: Option<(Box<RawValue>, Option<Encoding>)>,
) -> (Option<Box<RawValue>>, Option<Encoding>) {
    match shown {
        Some((raw, fallback)) => (Some(raw), fallback),
        None => (None, None),
    }
}

/// `bytes` as JSON in `encoding`, else in the next encoding that can show them (`json`, then
/// `text`, then `base64`), returned as the fallback.
fn encode(bytes: &[u8], encoding: Encoding) -> (Box<RawValue>, Option<Encoding>) {
    let utf8 = std::str::from_utf8(bytes).ok();
    let as_json = || {
        utf8.and_then(|text| serde_json::from_str::<&RawValue>(text).ok())
            .map(one_line)
    };
    let as_text = || utf8.and_then(json_string);
    let (shown, fallback) = match encoding {
        Encoding::Json => match as_json() {
            Some(raw) => (Some(raw), None),
            None => (as_text(), Some(Encoding::Text)),
        },
        Encoding::Text => (as_text(), None),
        Encoding::Base64 => (None, None),
    };
    match shown {
        Some(raw) => (raw, fallback),
        None => {
            let base64 = json_string(&BASE64.encode(bytes));
            let fallback = (encoding != Encoding::Base64).then_some(Encoding::Base64);
            // A JSON string of base64 always serializes; the null is unreachable.
            (base64.unwrap_or_else(null), fallback)
        }
    }
}

/// `raw` on one line, so a record is one line of JSON (one `data:` line of an event stream). A
/// line break in JSON text can only be whitespace between tokens (inside strings it is
/// escaped), so a space in its place keeps the value the same.
fn one_line(raw: &RawValue) -> Box<RawValue> {
    let text = raw.get();
    if !text.bytes().any(|b| b == b'\n' || b == b'\r') {
        return raw.to_owned();
    }
    RawValue::from_string(text.replace(['\r', '\n'], " ")).unwrap_or_else(|_| raw.to_owned())
}

fn json_string(text: &str) -> Option<Box<RawValue>> {
    serde_json::to_string(text)
        .ok()
        .and_then(|s| RawValue::from_string(s).ok())
}

fn null() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

/// Where a produced record went, as JSON.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PositionOut {
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
}

impl From<brook_broker::RecordPosition> for PositionOut {
    fn from(p: brook_broker::RecordPosition) -> Self {
        Self {
            partition: p.partition,
            offset: p.offset,
            timestamp: p.timestamp,
        }
    }
}

/// 400 for a request whose record list is empty: nothing to do is most likely a mistake.
pub(crate) fn no_records() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the request has no records: send {\"records\": [{\"value\": ...}, ...]}",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str, encodings: Encodings) -> Result<ProduceRecord, ApiError> {
        serde_json::from_str::<RecordIn>(json)
            .expect("parses")
            .into_record(encodings, "records[0]")
    }

    #[test]
    fn each_encoding_decodes_and_round_trips() {
        let json = record(
            r#"{"key": "k", "value": {"a": [1, 2]}, "headers": [{"key": "h", "value": "v"}]}"#,
            Encodings::default(),
        )
        .expect("valid");
        assert_eq!(json.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(json.value.as_deref(), Some(&br#"{"a": [1, 2]}"#[..]));
        assert_eq!(json.headers, vec![("h".to_owned(), Bytes::from("v"))]);

        let binary = Encodings {
            key_encoding: Encoding::Base64,
            value_encoding: Encoding::Base64,
            header_encoding: Encoding::Base64,
        };
        let b64 = record(r#"{"key": "/wA", "value": "AAE="}"#, binary).expect("valid");
        assert_eq!(b64.key.as_deref(), Some(&[255u8, 0][..]));
        assert_eq!(b64.value.as_deref(), Some(&[0u8, 1][..]));

        let stored = ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 3,
            timestamp: 9,
            key: b64.key,
            value: json.value,
            headers: vec![("h".to_owned(), Bytes::from_static(&[0xff]))],
        };
        let shown = serde_json::to_value(show_record(&stored, Encodings::default())).expect("json");
        // The key is not UTF-8: shown in base64, and marked.
        assert_eq!(shown["key"], "/wA=");
        assert_eq!(shown["key_encoding"], "base64");
        assert_eq!(shown["value"], serde_json::json!({"a": [1, 2]}));
        assert!(shown.get("value_encoding").is_none());
        assert_eq!(shown["headers"][0]["value"], "/w==");
        assert_eq!(shown["headers"][0]["value_encoding"], "base64");
    }

    #[test]
    fn bytes_fall_back_from_json_to_text_to_base64() {
        let show = |bytes: &'static [u8], encoding| {
            let (raw, fallback) = encode(bytes, encoding);
            (raw.get().to_owned(), fallback)
        };
        assert_eq!(show(b"[1]", Encoding::Json), ("[1]".to_owned(), None));
        assert_eq!(
            show(b"plain", Encoding::Json),
            ("\"plain\"".to_owned(), Some(Encoding::Text))
        );
        assert_eq!(
            show(&[0xff], Encoding::Json),
            ("\"/w==\"".to_owned(), Some(Encoding::Base64))
        );
        assert_eq!(show(b"[1]", Encoding::Text), ("\"[1]\"".to_owned(), None));
        assert_eq!(
            show(b"[1]", Encoding::Base64),
            ("\"WzFd\"".to_owned(), None)
        );
    }

    #[test]
    fn json_values_are_shown_on_one_line_and_mean_the_same() {
        let (raw, fallback) = encode(b"{\r\n\"a\": \"x\\ny\"\n}", Encoding::Json);
        assert_eq!(fallback, None);
        assert!(!raw.get().contains(['\r', '\n']), "{}", raw.get());
        let value: serde_json::Value = serde_json::from_str(raw.get()).expect("still JSON");
        assert_eq!(value["a"], "x\ny");
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_refused_with_its_place() {
        let text = Encodings {
            value_encoding: Encoding::Text,
            ..Encodings::default()
        };
        let err = record(r#"{"value": 12}"#, text).expect_err("not a string");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("records[0].value"), "{}", err.message);

        let b64 = Encodings {
            value_encoding: Encoding::Base64,
            ..Encodings::default()
        };
        let err = record(r#"{"value": "not base64!"}"#, b64).expect_err("bad base64");
        assert!(err.message.contains("base64"), "{}", err.message);

        assert!(serde_json::from_str::<RecordIn>(r#"{"vlaue": 1}"#).is_err());
    }

    #[test]
    fn null_and_missing_values_are_none() {
        let r = record(r#"{"key": null}"#, Encodings::default()).expect("valid");
        assert_eq!((r.key, r.value), (None, None));
    }
}
