//! InitProducerId (key 22): gives an idempotent producer its id and epoch. A producer that
//! brings back its id and epoch (v3+, KIP-360: after an UNKNOWN_PRODUCER_ID or a sequence
//! error) gets the same id with the next epoch, which restarts its sequences.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::state::ListenerState;

pub(crate) fn handle(
    door: &ListenerState,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !id.0.is_empty())
    {
        // Transactions need a transaction coordinator and read_committed fetches; brook has
        // neither yet, so a transactional producer is refused up front.
        response.error_code = ResponseError::InvalidRequest.code();
        response.producer_id = ProducerId(-1);
        response.producer_epoch = -1;
        return response;
    }
    let (id, epoch) = match (request.producer_id.0, request.producer_epoch) {
        (id, epoch) if id >= 0 && (0..i16::MAX).contains(&epoch) => (id, epoch + 1),
        _ => (door.producers.allocate_id(), 0),
    };
    response.producer_id = ProducerId(id);
    response.producer_epoch = epoch;
    response
}
