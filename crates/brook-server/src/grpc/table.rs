//! `GetKey`: the table view of a compacted topic at the gRPC door ([`brook_broker::Broker::get`]).

use brook_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert;
use super::service::BrookService;
use super::status::to_status;

/// The latest record of a key, or `found: false`.
pub(crate) async fn get_key(
    service: &BrookService,
    request: Request<pb::GetKeyRequest>,
) -> Result<Response<pb::GetKeyResponse>, Status> {
    let request = request.into_inner();
    let found = service
        .broker
        .get(&request.topic, &request.key)
        .await
        .map_err(|e| to_status(&e))?;
    Ok(Response::new(match found {
        Some(record) => pb::GetKeyResponse {
            found: true,
            partition: record.partition,
            record: Some(convert::consumer_record(record)),
        },
        None => pb::GetKeyResponse::default(),
    }))
}
