//! The record headers of request-reply, and turning records into requests and replies.
//!
//! The names are Spring Kafka's (`KafkaHeaders.REPLY_TOPIC`, `REPLY_PARTITION`,
//! `CORRELATION_ID`), so a Spring `ReplyingKafkaTemplate` caller or `@SendTo` responder, or any
//! Kafka client that sets them by hand, talks to brook's callers and responders unchanged:
//!
//! | header                 | on       | bytes                                              |
//! |------------------------|----------|----------------------------------------------------|
//! | `kafka_replyTopic`     | request  | the reply topic's name, UTF-8                      |
//! | `kafka_replyPartition` | request  | optional: the reply partition, 4-byte big-endian   |
//! | `kafka_correlationId`  | both     | the correlation id, opaque (16 bytes from brook)   |
//! | `brook_error`          | reply    | present on an error reply: the handler's message   |
//! | `brook_replyMac`       | reply    | binds the reply to its call ([`super::binding`])   |
//!
//! Where a header appears twice the last one counts, as Kafka's `Headers.lastHeader`.

use bytes::Bytes;

use super::id::CorrelationId;
use super::{Answer, Call, Reply, ReplyTo, Request};
use crate::error::{BrokerError, Result};
use crate::types::{ConsumerRecord, ProduceRecord};

/// Where the reply goes (Spring `KafkaHeaders.REPLY_TOPIC`).
pub const REPLY_TOPIC_HEADER: &str = "kafka_replyTopic";
/// Which partition of the reply topic (Spring `KafkaHeaders.REPLY_PARTITION`).
pub const REPLY_PARTITION_HEADER: &str = "kafka_replyPartition";
/// The correlation id (Spring `KafkaHeaders.CORRELATION_ID`).
pub const CORRELATION_ID_HEADER: &str = "kafka_correlationId";
/// Marks an error reply; its value is the handler's message.
pub const ERROR_HEADER: &str = "brook_error";
/// Binds a reply in brook's reply topic to its call ([`super::binding`]).
pub const REPLY_MAC_HEADER: &str = "brook_replyMac";

/// Headers the broker writes itself: a caller or handler may not set them.
const RESERVED: [&str; 5] = [
    REPLY_TOPIC_HEADER,
    REPLY_PARTITION_HEADER,
    CORRELATION_ID_HEADER,
    ERROR_HEADER,
    REPLY_MAC_HEADER,
];

/// The last header named `name`.
fn last<'a>(headers: &'a [(String, Bytes)], name: &str) -> Option<&'a Bytes> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `headers` without the request-reply ones: what a handler or caller sees.
fn user_headers(headers: Vec<(String, Bytes)>) -> Vec<(String, Bytes)> {
    headers
        .into_iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .collect()
}

/// Refuses user headers that would be mistaken for the broker's own.
pub(crate) fn check_user_headers(headers: &[(String, Bytes)]) -> Result<()> {
    match headers.iter().find(|(k, _)| RESERVED.contains(&k.as_str())) {
        Some((name, _)) => Err(BrokerError::invalid(format!(
            "header {name:?} is set by the broker for request-reply; use another name"
        ))),
        None => Ok(()),
    }
}

/// The request record of `call`, asking for the reply in `reply_topic`-`reply_partition`.
pub(crate) fn request_record(
    call: Call,
    id: &CorrelationId,
    reply_topic: &str,
    reply_partition: u32,
) -> ProduceRecord {
    let mut headers = call.headers;
    headers.reserve_exact(3);
    headers.push((
        REPLY_TOPIC_HEADER.to_owned(),
        Bytes::copy_from_slice(reply_topic.as_bytes()),
    ));
    headers.push((
        REPLY_PARTITION_HEADER.to_owned(),
        Bytes::copy_from_slice(&reply_partition.to_be_bytes()),
    ));
    headers.push((CORRELATION_ID_HEADER.to_owned(), id.as_bytes().clone()));
    ProduceRecord {
        key: call.key,
        value: call.value,
        headers,
        timestamp: None,
        partition: call.partition,
    }
}

/// The correlation id of a record, if it carries a well-formed one.
pub(crate) fn correlation_id(headers: &[(String, Bytes)]) -> Option<CorrelationId> {
    last(headers, CORRELATION_ID_HEADER).and_then(|b| CorrelationId::from_bytes(b.clone()).ok())
}

/// The reply MAC a record carries, if any.
pub(crate) fn reply_mac(headers: &[(String, Bytes)]) -> Option<&Bytes> {
    last(headers, REPLY_MAC_HEADER)
}

/// The reply topic a request names, if it names a valid one.
pub(crate) fn reply_topic(headers: &[(String, Bytes)]) -> Option<&str> {
    let name = std::str::from_utf8(last(headers, REPLY_TOPIC_HEADER)?).ok()?;
    crate::names::validate_topic_name(name).ok()?;
    Some(name)
}

/// Reads a consumed record as a request. `Err` names what is missing or malformed.
pub(crate) fn parse_request(record: ConsumerRecord) -> Result<Request, &'static str> {
    let correlation_id =
        correlation_id(&record.headers).ok_or("no valid kafka_correlationId header")?;
    let topic = reply_topic(&record.headers)
        .ok_or("no kafka_replyTopic header naming a valid topic")?
        .to_owned();
    let partition = match last(&record.headers, REPLY_PARTITION_HEADER) {
        None => None,
        Some(bytes) => {
            let be: [u8; 4] = bytes[..]
                .try_into()
                .map_err(|_| "a kafka_replyPartition header that is not 4 bytes")?;
            Some(
                u32::try_from(i32::from_be_bytes(be))
                    .map_err(|_| "a negative kafka_replyPartition")?,
            )
        }
    };
    Ok(Request {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key: record.key,
        value: record.value,
        headers: user_headers(record.headers),
        correlation_id,
        reply_to: ReplyTo { topic, partition },
        mac: None,
    })
}

/// The reply record answering `request` with `outcome` (an `Err` is the handler's message),
/// bound to its call by the MAC the request was delivered with, if any. It keeps the request's
/// key, so a reply topic reads like its request topic.
pub(crate) fn reply_record(
    request: &Request,
    outcome: std::result::Result<Answer, String>,
) -> ProduceRecord {
    let (value, mut headers) = match outcome {
        Ok(answer) => (answer.value, user_headers(answer.headers)),
        Err(message) => (
            None,
            vec![(ERROR_HEADER.to_owned(), Bytes::from(message.into_bytes()))],
        ),
    };
    headers.reserve_exact(2);
    headers.push((
        CORRELATION_ID_HEADER.to_owned(),
        request.correlation_id.as_bytes().clone(),
    ));
    if let Some(mac) = &request.mac {
        headers.push((REPLY_MAC_HEADER.to_owned(), mac.bytes().clone()));
    }
    ProduceRecord {
        key: request.key.clone(),
        value,
        headers,
        timestamp: None,
        partition: request.reply_to.partition,
    }
}

/// What of a reply record's headers its caller needs ([`parse_reply`]): all but the
/// correlation id and the MAC, which only bind the record to the call.
pub(crate) fn for_caller(headers: &[(String, Bytes)]) -> Vec<(String, Bytes)> {
    headers
        .iter()
        .filter(|(k, _)| k != CORRELATION_ID_HEADER && k != REPLY_MAC_HEADER)
        .cloned()
        .collect()
}

/// Reads a consumed reply record (whose correlation id is `id`) as the answer to a call on
/// `topic`: the reply, or `HandlerFailed` for an error reply.
pub(crate) fn parse_reply(
    record: ConsumerRecord,
    topic: &str,
    id: &CorrelationId,
) -> Result<Reply> {
    if let Some(message) = last(&record.headers, ERROR_HEADER) {
        return Err(BrokerError::HandlerFailed {
            topic: topic.to_owned(),
            correlation_id: id.to_text(),
            message: String::from_utf8_lossy(message).into_owned(),
        });
    }
    Ok(Reply {
        correlation_id: id.clone(),
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key: record.key,
        value: record.value,
        headers: user_headers(record.headers),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn consumed(record: ProduceRecord) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from("requests"),
            partition: 2,
            offset: 7,
            timestamp: 1,
            key: record.key,
            value: record.value,
            headers: record.headers,
        }
    }

    #[test]
    fn a_request_carries_springs_headers_and_reads_back() {
        let id = CorrelationId::random();
        let call = Call {
            headers: vec![("trace".into(), Bytes::from_static(b"t1"))],
            ..Call::new("price?")
        };
        let record = request_record(call.clone(), &id, "__brook_replies", 3);
        let partition = last(&record.headers, REPLY_PARTITION_HEADER).expect("partition");
        assert_eq!(&partition[..], &[0, 0, 0, 3], "4-byte big-endian int");
        let topic = last(&record.headers, REPLY_TOPIC_HEADER).expect("topic");
        assert_eq!(&topic[..], b"__brook_replies");
        let request = parse_request(consumed(record)).expect("well formed");
        assert_eq!(request.correlation_id, id);
        assert_eq!(request.reply_to.topic, "__brook_replies");
        assert_eq!(request.reply_to.partition, Some(3));
        assert_eq!(request.headers, call.headers, "only the caller's headers");
        assert_eq!(request.value.as_deref(), Some(&b"price?"[..]));
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let id = CorrelationId::random();
        let good = request_record(Call::new("v"), &id, "replies", 0);
        let without = |name: &str| {
            let mut r = good.clone();
            r.headers.retain(|(k, _)| k != name);
            consumed(r)
        };
        assert!(parse_request(without(CORRELATION_ID_HEADER)).is_err());
        assert!(parse_request(without(REPLY_TOPIC_HEADER)).is_err());
        let no_partition = parse_request(without(REPLY_PARTITION_HEADER)).expect("optional");
        assert_eq!(no_partition.reply_to.partition, None);
        let mut bad = good.clone();
        bad.headers
            .push((REPLY_PARTITION_HEADER.into(), Bytes::from_static(&[1, 2])));
        assert!(parse_request(consumed(bad)).is_err());
        let mut negative = good.clone();
        negative.headers.push((
            REPLY_PARTITION_HEADER.into(),
            Bytes::from_static(&[0xff; 4]),
        ));
        assert!(parse_request(consumed(negative)).is_err());
        let mut bad_topic = good;
        bad_topic
            .headers
            .push((REPLY_TOPIC_HEADER.into(), Bytes::from_static(b"a/b")));
        assert!(parse_request(consumed(bad_topic)).is_err());
    }

    #[test]
    fn replies_carry_the_id_and_errors_come_back_as_errors() {
        let id = CorrelationId::random();
        let request =
            parse_request(consumed(request_record(Call::new("v"), &id, "r", 0))).expect("ok");
        let answer = Answer {
            value: Some(Bytes::from_static(b"42")),
            headers: vec![(CORRELATION_ID_HEADER.into(), Bytes::from_static(b"forged"))],
        };
        let reply = consumed(reply_record(&request, Ok(answer)));
        assert_eq!(
            correlation_id(&reply.headers),
            Some(id.clone()),
            "a handler cannot forge it"
        );
        let parsed = parse_reply(reply, "requests", &id).expect("a reply");
        assert_eq!(parsed.value.as_deref(), Some(&b"42"[..]));
        assert!(parsed.headers.is_empty());
        let failed = consumed(reply_record(&request, Err("out of stock".into())));
        let err = parse_reply(failed, "requests", &id).unwrap_err();
        assert!(
            matches!(&err, BrokerError::HandlerFailed { message, .. } if message == "out of stock"),
            "{err}"
        );
        assert!(check_user_headers(&[(ERROR_HEADER.into(), Bytes::new())]).is_err());
        assert!(check_user_headers(&[("x".into(), Bytes::new())]).is_ok());
    }
}
