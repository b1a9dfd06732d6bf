//! ApiVersions (key 18): tells a client which APIs and versions this door serves, straight from
//! the table in `versions`, and answers unknown versions the KIP-511 way.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use crate::error::KafkaError;
use crate::frame::Frame;
use crate::request::{encode_response, Request};
use crate::versions::APIS;

/// The answer to an ApiVersions request this door can read.
pub(crate) fn handle(request: &Request) -> Result<Frame, KafkaError> {
    request.respond(&response(0))
}

/// The answer to an ApiVersions request at a version we do not know: UNSUPPORTED_VERSION in a
/// version 0 body (every client can read it) that still lists our ranges, so the client retries
/// with the highest version both sides know.
pub(crate) fn unknown_version(correlation_id: i32) -> Result<Frame, KafkaError> {
    let body = response(ResponseError::UnsupportedVersion.code());
    encode_response("ApiVersions", correlation_id, 0, &body, Vec::new())
}

fn response(error_code: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = APIS
        .iter()
        .map(|api| {
            let mut entry = ApiVersion::default();
            entry.api_key = api.key as i16;
            entry.min_version = api.advertised.min;
            entry.max_version = api.advertised.max;
            entry
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn fallback_is_a_v0_body_with_header_v0_listing_the_ranges() {
        let frame = unknown_version(42).unwrap();
        let mut body = frame.to_bytes().slice(4..);
        let header = ResponseHeader::decode(&mut body, 0).unwrap();
        assert_eq!(header.correlation_id, 42);
        let response = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert!(body.is_empty(), "nothing after the v0 body");
        assert_eq!(response.error_code, 35);
        let own = response
            .api_keys
            .iter()
            .find(|k| k.api_key == 18)
            .expect("ApiVersions listed");
        assert_eq!((own.min_version, own.max_version), (0, 3));
        assert_eq!(response.api_keys.len(), APIS.len());
    }
}
