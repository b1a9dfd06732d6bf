//! How `brook consume` prints a record: as text, as JSON, or through a kcat-style format.
//!
//! - `text`: the value's bytes as they are, one record per line (with `--key-separator SEP`:
//!   key, SEP, value; with `--print-offsets`: `PARTITION@OFFSET` and a tab first).
//! - `json`: one object per line, the HTTP door's record shape: `{"topic", "partition",
//!   "offset", "timestamp", "key", "value", "headers": [{"key", "value"}]}`. Bytes that are
//!   UTF-8 are a string; others are base64 with `"key_encoding"`/`"value_encoding":
//!   "base64"` beside them (the same rule the HTTP door applies); a null key or value is
//!   `null`.
//! - a format with `%` placeholders, as kcat's `-f`: `%t` topic, `%p` partition, `%o` offset,
//!   `%k` key, `%v` value, `%h` headers (`name=value` joined by `,`), `%T` timestamp (ms),
//!   `%K`/`%S` key/value length (-1 for null), `%%` a percent sign; `\n`, `\t`, `\\` escapes.
//!   Nothing is added after a record: end the format with `\n` for one record per line.

use std::io::Write;

use anyhow::bail;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use brook_client::ConsumerRecord;
use bytes::Bytes;

/// How records are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Format {
    Text,
    Json,
    Template(Vec<Piece>),
}

/// A piece of a format: literal bytes, or a field of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece {
    Literal(u8),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Headers,
    Timestamp,
    KeyLength,
    ValueLength,
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;

    /// `text`, `json`, or a format with placeholders.
    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text {
            "text" => return Ok(Format::Text),
            "json" => return Ok(Format::Json),
            _ => {}
        }
        let mut pieces = Vec::new();
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            let piece = match b {
                b'%' => match bytes.next() {
                    Some(b't') => Piece::Topic,
                    Some(b'p') => Piece::Partition,
                    Some(b'o') => Piece::Offset,
                    Some(b'k') => Piece::Key,
                    Some(b'v' | b's') => Piece::Value,
                    Some(b'h') => Piece::Headers,
                    Some(b'T') => Piece::Timestamp,
                    Some(b'K') => Piece::KeyLength,
                    Some(b'S') => Piece::ValueLength,
                    Some(b'%') => Piece::Literal(b'%'),
                    Some(other) => bail!(
                        "unknown placeholder %{} in the format (known: %t %p %o %k %v %h %T %K %S %%)",
                        other as char
                    ),
                    None => bail!("the format ends with a lone %"),
                },
                b'\\' => match bytes.next() {
                    Some(b'n') => Piece::Literal(b'\n'),
                    Some(b't') => Piece::Literal(b'\t'),
                    Some(b'r') => Piece::Literal(b'\r'),
                    Some(b'0') => Piece::Literal(0),
                    Some(b'\\') => Piece::Literal(b'\\'),
                    Some(other) => bail!("unknown escape \\{} in the format", other as char),
                    None => bail!("the format ends with a lone \\"),
                },
                literal => Piece::Literal(literal),
            };
            pieces.push(piece);
        }
        if !pieces.iter().any(|p| !matches!(p, Piece::Literal(_))) {
            bail!(
                "format {text:?} is not text, json, or a format with a placeholder (%v: the value)"
            );
        }
        Ok(Format::Template(pieces))
    }
}

/// What `text` adds around a record.
#[derive(Debug, Clone, Default)]
pub(super) struct TextOptions {
    pub key_separator: Option<String>,
    pub print_offsets: bool,
}

/// Writes `record` in `format`.
pub(super) fn write(
    out: &mut impl Write,
    format: &Format,
    text: &TextOptions,
    record: &ConsumerRecord,
) -> std::io::Result<()> {
    match format {
        Format::Text => {
            if text.print_offsets {
                write!(out, "{}@{}\t", record.partition, record.offset)?;
            }
            if let Some(separator) = &text.key_separator {
                out.write_all(record.key.as_deref().unwrap_or_default())?;
                out.write_all(separator.as_bytes())?;
            }
            out.write_all(record.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")
        }
        Format::Json => {
            serde_json::to_writer(&mut *out, &to_json(record))?;
            out.write_all(b"\n")
        }
        Format::Template(pieces) => {
            for piece in pieces {
                write_piece(out, *piece, record)?;
            }
            Ok(())
        }
    }
}

fn write_piece(out: &mut impl Write, piece: Piece, record: &ConsumerRecord) -> std::io::Result<()> {
    let length = |bytes: Option<&Bytes>| bytes.map_or(-1, |b| b.len() as i64);
    match piece {
        Piece::Literal(b) => out.write_all(&[b]),
        Piece::Topic => out.write_all(record.topic.as_bytes()),
        Piece::Partition => write!(out, "{}", record.partition),
        Piece::Offset => write!(out, "{}", record.offset),
        Piece::Key => out.write_all(record.key.as_deref().unwrap_or_default()),
        Piece::Value => out.write_all(record.value.as_deref().unwrap_or_default()),
        Piece::Timestamp => write!(out, "{}", record.timestamp_ms),
        Piece::KeyLength => write!(out, "{}", length(record.key.as_ref())),
        Piece::ValueLength => write!(out, "{}", length(record.value.as_ref())),
        Piece::Headers => {
            for (i, (name, value)) in record.headers.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(name.as_bytes())?;
                out.write_all(b"=")?;
                out.write_all(value)?;
            }
            Ok(())
        }
    }
}

/// The HTTP door's record shape.
pub(super) fn to_json(record: &ConsumerRecord) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("topic".into(), record.topic.to_string().into());
    object.insert("partition".into(), record.partition.into());
    object.insert("offset".into(), record.offset.into());
    object.insert("timestamp".into(), record.timestamp_ms.into());
    put_bytes(&mut object, "key", record.key.as_ref());
    put_bytes(&mut object, "value", record.value.as_ref());
    let headers: Vec<serde_json::Value> = record
        .headers
        .iter()
        .map(|(name, value)| {
            let mut header = serde_json::Map::new();
            header.insert("key".into(), name.clone().into());
            put_bytes(&mut header, "value", Some(value));
            header.into()
        })
        .collect();
    object.insert("headers".into(), headers.into());
    object.into()
}

/// `field`: a string when the bytes are UTF-8, `null` when absent, else base64 with
/// `field_encoding: "base64"` beside it.
fn put_bytes(
    object: &mut serde_json::Map<String, serde_json::Value>,
    field: &str,
    bytes: Option<&Bytes>,
) {
    let value = match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => text.into(),
            Err(_) => {
                object.insert(format!("{field}_encoding"), "base64".into());
                BASE64.encode(bytes).into()
            }
        },
    };
    object.insert(field.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp_ms: 42,
            key: None,
            value: Some(Bytes::from_static(&[0xff, 0x00])),
            headers: vec![("h".into(), Bytes::from_static(b"v"))],
        }
    }

    #[test]
    fn json_keeps_text_null_and_binary_apart() {
        assert_eq!(
            to_json(&record()).to_string(),
            r#"{"headers":[{"key":"h","value":"v"}],"key":null,"offset":7,"partition":1,"timestamp":42,"topic":"t","value":"/wA=","value_encoding":"base64"}"#
        );
    }

    #[test]
    fn a_format_fills_its_placeholders() {
        let mut record = record();
        record.key = Some(Bytes::from_static(b"k"));
        record.value = Some(Bytes::from_static(b"hello"));
        let format: Format = r"%t/%p@%o %k=%v [%h] %T %K %S 100%%\n"
            .parse()
            .expect("format");
        let mut out = Vec::new();
        write(&mut out, &format, &TextOptions::default(), &record).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "t/1@7 k=hello [h=v] 42 1 5 100%\n"
        );
        assert!("%x".parse::<Format>().is_err());
        assert!("no placeholder".parse::<Format>().is_err());
        assert!("trailing %".parse::<Format>().is_err());
    }

    #[test]
    fn text_can_show_where_each_record_is() {
        let mut out = Vec::new();
        let options = TextOptions {
            key_separator: None,
            print_offsets: true,
        };
        let mut record = record();
        record.value = Some(Bytes::from_static(b"v"));
        write(&mut out, &Format::Text, &options, &record).expect("write");
        assert_eq!(out, b"1@7\tv\n");
    }
}
