//! One request frame: its API, version and header, its body decoded with the `kafka-protocol`
//! codec, and its response encoded with the header version that API and version call for.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::error::KafkaError;
use crate::frame::{Frame, ResponseFrame, MIN_REQUEST_BYTES};
use crate::versions::{self, Api};

/// What a frame turned out to be.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A request of an API and version this door serves.
    Request(Request),
    /// ApiVersions at a version we do not know (a newer client): KIP-511 says to answer
    /// UNSUPPORTED_VERSION in a version 0 body listing our ranges, so the client can retry.
    UnknownApiVersions { correlation_id: i32 },
}

/// A request whose header has been decoded and whose body is ready to decode.
#[derive(Debug)]
pub(crate) struct Request {
    pub api: &'static Api,
    pub version: i16,
    pub header: RequestHeader,
    body: Bytes,
}

/// Reads the API key, version and header of `frame` (at least [`MIN_REQUEST_BYTES`] long).
pub(crate) fn parse(mut frame: Bytes) -> Result<Incoming, KafkaError> {
    debug_assert!(frame.len() >= MIN_REQUEST_BYTES);
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key)
        .ok()
        .and_then(versions::lookup)
        .ok_or(KafkaError::UnknownApi { key })?;
    if !api.serves(version) {
        if api.key == ApiKey::ApiVersions {
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            return Ok(Incoming::UnknownApiVersions { correlation_id });
        }
        let served = api.served();
        return Err(KafkaError::UnsupportedVersion {
            api: api.name,
            version,
            min: served.min,
            max: served.max,
        });
    }
    let header_version = api.key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| KafkaError::malformed(api.name, version, e))?;
    Ok(Incoming::Request(Request {
        api,
        version,
        header,
        body: frame,
    }))
}

impl Request {
    /// Decodes the body as `T` at this request's version.
    pub(crate) fn decode<T: Decodable>(&mut self) -> Result<T, KafkaError> {
        T::decode(&mut self.body, self.version)
            .map_err(|e| KafkaError::malformed(self.api.name, self.version, e))
    }

    /// Encodes `body` as this request's response.
    pub(crate) fn respond<T: Encodable + HeaderVersion>(
        &self,
        body: &T,
    ) -> Result<Frame, KafkaError> {
        self.respond_sharing(body, Vec::new())
    }

    /// Encodes `body` as this request's response, passing the buffers of `shared` that the
    /// body holds (a Fetch response's record batches) into the frame uncopied.
    pub(crate) fn respond_sharing<T: Encodable + HeaderVersion>(
        &self,
        body: &T,
        shared: Vec<Bytes>,
    ) -> Result<Frame, KafkaError> {
        encode_response(
            self.api.name,
            self.header.correlation_id,
            self.version,
            body,
            shared,
        )
    }

    /// The client id from the header, or `""`.
    pub(crate) fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

/// Encodes a whole response frame: size, header (version from `T`), body at `version`; the
/// buffers of `shared` that the body writes whole become parts of the frame, uncopied.
pub(crate) fn encode_response<T: Encodable + HeaderVersion>(
    api: &'static str,
    correlation_id: i32,
    version: i16,
    body: &T,
    shared: Vec<Bytes>,
) -> Result<Frame, KafkaError> {
    let header_version = T::header_version(version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?))
        .map_err(|e| KafkaError::encode(api, version, e))?;
    let mut frame = ResponseFrame::new(size, shared)?;
    header
        .encode(&mut frame, header_version)
        .and_then(|()| body.encode(&mut frame, version))
        .map_err(|e| KafkaError::encode(api, version, e))?;
    frame.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{
        FetchResponse, MetadataRequest, ProducerId, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    fn request(key: i16, version: i16, rest: &[u8]) -> Bytes {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&key.to_be_bytes());
        buf.extend_from_slice(&version.to_be_bytes());
        buf.extend_from_slice(&7i32.to_be_bytes());
        buf.extend_from_slice(rest);
        buf.freeze()
    }

    #[test]
    fn unknown_api_key_is_refused() {
        let err = parse(request(999, 0, &[0xff, 0xff])).unwrap_err();
        assert!(matches!(err, KafkaError::UnknownApi { key: 999 }), "{err}");
    }

    #[test]
    fn unknown_api_versions_version_gets_the_fallback() {
        match parse(request(18, 99, &[])).unwrap() {
            Incoming::UnknownApiVersions { correlation_id } => assert_eq!(correlation_id, 7),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_header_is_malformed_not_a_panic() {
        // ApiVersions v1 has a header with a client id: a length of 100 with 2 bytes behind it.
        let err = parse(request(18, 1, &[0, 100, b'a', b'b'])).unwrap_err();
        assert!(matches!(err, KafkaError::Malformed { .. }), "{err}");
    }

    /// A 5-byte Metadata v0 body announcing 54 million topics: the patched codec refuses the
    /// count instead of reserving gigabytes (an unpatched kafka-protocol 0.18 aborts here).
    #[test]
    fn malformed_array_count_is_a_decode_error() {
        let mut body = Bytes::from_static(&[0x03, 0x3c, 0x0c, 0x00, 0xb6]);
        assert!(MetadataRequest::decode(&mut body, 0).is_err());
        let mut compact = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
        assert!(MetadataRequest::decode(&mut compact, 9).is_err());
    }

    /// A Fetch response of two topics: partitions with large batches (shared), a small one
    /// (copied), an empty one, an error, aborted transactions.
    fn fetch_response(version: i16, large: &Bytes, small: &Bytes) -> FetchResponse {
        let partition = |index: i32, records: Option<Bytes>| {
            let mut p = PartitionData::default();
            p.partition_index = index;
            p.high_watermark = 1_000 + i64::from(index);
            p.last_stable_offset = 990;
            p.log_start_offset = 3;
            p.records = records;
            p
        };
        let mut failed = partition(2, Some(Bytes::new()));
        failed.error_code = 1;
        let mut aborted = partition(1, Some(small.clone()));
        let mut txn = AbortedTransaction::default();
        txn.producer_id = ProducerId(42);
        txn.first_offset = 17;
        aborted.aborted_transactions = Some(vec![txn]);
        let mut first = FetchableTopicResponse::default();
        first.partitions = vec![partition(0, Some(large.clone())), aborted, failed];
        let mut second = FetchableTopicResponse::default();
        second.partitions = vec![partition(0, Some(large.slice(100..))), partition(1, None)];
        for (topic, name) in [(&mut first, "first"), (&mut second, "second")] {
            if version >= 13 {
                topic.topic_id = uuid::Uuid::from_u128(u128::from(name.len() as u32));
            } else {
                topic.topic = TopicName(StrBytes::from_static_str(name));
            }
        }
        let mut response = FetchResponse::default();
        response.throttle_time_ms = 5;
        response.responses = vec![first, second];
        response
    }

    /// What the door sent before frames had parts: the whole response encoded in one buffer.
    fn encoded_in_one_buffer(correlation_id: i32, version: i16, body: &FetchResponse) -> Vec<u8> {
        let mut header = ResponseHeader::default();
        header.correlation_id = correlation_id;
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, FetchResponse::header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        frame
    }

    #[test]
    fn a_fetch_response_with_shared_batches_is_byte_for_byte_the_one_buffer_encoding() {
        let large = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let small = Bytes::from(vec![9u8; 300]);
        for version in 4..=16 {
            let response = fetch_response(version, &large, &small);
            let shared = crate::api::fetch::stored_batches(&response);
            let frame = encode_response("Fetch", 77, version, &response, shared).unwrap();
            let expected = encoded_in_one_buffer(77, version, &response);
            assert_eq!(frame.len(), expected.len(), "v{version}");
            assert!(
                frame.to_bytes()[..] == expected[..],
                "v{version}: bytes differ"
            );
            // The two large batches went in as references, the small one was copied.
            let parts = frame.parts();
            assert_eq!(
                parts.len(),
                5,
                "v{version}: head, large, middle, large, tail"
            );
            assert_eq!(parts[1].as_ptr(), large.as_ptr(), "v{version}");
            assert_eq!(parts[3].as_ptr(), large[100..].as_ptr(), "v{version}");
            let plain = encode_response("Fetch", 77, version, &response, Vec::new()).unwrap();
            assert_eq!(plain.parts().len(), 1);
            assert!(plain.to_bytes()[..] == expected[..], "v{version}");
        }
    }
}
