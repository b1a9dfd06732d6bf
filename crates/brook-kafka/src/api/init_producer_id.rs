//! InitProducerId (key 22): a producer id and epoch from the broker's transaction coordinator.
//! An idempotent producer (no `transactional.id`) gets a new id at epoch 0, or, bringing back
//! its id and epoch (v3+, KIP-360, after UNKNOWN_PRODUCER_ID or a sequence error), the same id
//! with the next epoch. A transactional producer gets its transactional id's producer id with
//! the epoch bumped: that fences every older instance, whose open transaction is aborted first
//! (see `Broker::init_producer_id`).

use brook_broker::{BrokerError, ProducerIdAndEpoch};
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::codes;
use crate::producers::{fenced_since, for_version};
use crate::state::ListenerState;

pub(crate) async fn handle(
    door: &ListenerState,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.as_str());
    let expected = (request.producer_id.0 >= 0 && request.producer_epoch >= 0)
        .then(|| ProducerIdAndEpoch::new(request.producer_id.0, request.producer_epoch));
    let answer = match transactional_id {
        // An idempotent producer bringing its id back: the same id, the next epoch (or a new
        // id once the epoch is spent).
        None => match expected {
            Some(p) if p.epoch < i16::MAX - 1 => {
                Ok(ProducerIdAndEpoch::new(p.producer_id, p.epoch + 1))
            }
            _ => {
                door.broker
                    .init_producer_id(None, i64::from(request.transaction_timeout_ms), None)
                    .await
            }
        },
        Some(id) => {
            door.broker
                .init_producer_id(
                    Some(id),
                    i64::from(request.transaction_timeout_ms),
                    expected,
                )
                .await
        }
    };
    match answer {
        Ok(producer) => {
            response.producer_id = ProducerId(producer.producer_id);
            response.producer_epoch = producer.epoch;
        }
        Err(err) => {
            response.error_code = refusal(&err, version);
            response.producer_id = ProducerId(-1);
            response.producer_epoch = -1;
        }
    }
    response
}

fn refusal(err: &BrokerError, version: i16) -> i16 {
    for_version(
        codes::error_code(err),
        version,
        fenced_since::INIT_PRODUCER_ID,
    )
    .code()
}
