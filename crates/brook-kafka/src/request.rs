//! One request frame: its API, version and header, its body decoded with the `kafka-protocol`
//! codec, and its response encoded with the header version that API and version call for.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::error::KafkaError;
use crate::frame::{ResponseFrame, MIN_REQUEST_BYTES};
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
    ) -> Result<Bytes, KafkaError> {
        encode_response(
            self.api.name,
            self.header.correlation_id,
            self.version,
            body,
        )
    }

    /// The client id from the header, or `""`.
    pub(crate) fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

/// Encodes a whole response frame: size, header (version from `T`), body at `version`.
pub(crate) fn encode_response<T: Encodable + HeaderVersion>(
    api: &'static str,
    correlation_id: i32,
    version: i16,
    body: &T,
) -> Result<Bytes, KafkaError> {
    let header_version = T::header_version(version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?))
        .map_err(|e| KafkaError::encode(api, version, e))?;
    let mut frame = ResponseFrame::with_capacity(size);
    header
        .encode(frame.body_mut(), header_version)
        .and_then(|()| body.encode(frame.body_mut(), version))
        .map_err(|e| KafkaError::encode(api, version, e))?;
    frame.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::MetadataRequest;

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
}
