//! Every Kafka request counted and traced: `brook_requests_total{door="kafka",api}` by API
//! name (`Produce`, `Fetch`), its latency, a tracing span carrying the API, the client id and
//! the topic, and its failures by Kafka error name.
//!
//! A Kafka response carries its errors inside, often one per partition, so a request counts as
//! failed with the first error the door derived from a broker error while serving it
//! ([`note_error`], called by `codes::error_code`, the one place those errors are mapped), or
//! `UNANSWERED` when the frame could not be answered at all (the connection then closes).
//! Records appended and fetched are counted per partition ([`records_in`], [`records_out`]).

use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use brook_metrics::{doors, partitions, Door};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use tracing::Instrument;

tokio::task_local! {
    /// The first error code of the request being served on this task.
    static FIRST_ERROR: Cell<Option<ResponseError>>;
}

/// Serves `answer` as the request `key` from `client_id`: inside its span, timed, counted.
pub(crate) async fn request<T, E>(
    key: ApiKey,
    client_id: &str,
    answer: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let api = format!("{key:?}");
    let span = brook_door::trace::request_span(Door::Kafka.label(), &api, client_id, None);
    let started = Instant::now();
    let (result, first_error) = FIRST_ERROR
        .scope(Cell::new(None), async {
            let result = answer.await;
            (result, FIRST_ERROR.with(Cell::get))
        })
        .instrument(span)
        .await;
    let name = match (&result, first_error) {
        (Err(_), _) => Some("UNANSWERED".to_owned()),
        (Ok(_), Some(error)) => Some(doors::code_label(&format!("{error:?}"))),
        (Ok(_), None) => None,
    };
    doors::request(Door::Kafka, &api, name.as_deref(), started.elapsed());
    result
}

/// Notes `error` as the request's error, unless it has one already (or no request is being
/// observed on this task, as in unit tests of a handler).
pub(crate) fn note_error(error: ResponseError) {
    let _ = FIRST_ERROR.try_with(|first| {
        if first.get().is_none() {
            first.set(Some(error));
        }
    });
}

/// A batch of `records` records, `bytes` long, appended to `topic`-`partition`.
pub(crate) fn records_in(topic: &str, partition: u32, records: u32, bytes: usize) {
    brook_door::trace::record_topic(topic);
    partitions::records_in(Door::Kafka, topic, partition, records.into(), bytes as u64);
}

/// Stored batches of `topic`-`partition` sent to a consumer, whole.
pub(crate) fn records_out(topic: &str, partition: u32, batches: &[u8]) {
    brook_door::trace::record_topic(topic);
    if batches.is_empty() {
        return;
    }
    let records = brook_broker::metrics::batch_records(batches);
    partitions::records_out(Door::Kafka, topic, partition, records, batches.len() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_error_noted_is_the_requests() {
        let answer = async {
            note_error(ResponseError::OffsetOutOfRange);
            note_error(ResponseError::UnknownTopicOrPartition);
            Ok::<_, ()>(())
        };
        request(ApiKey::Fetch, "observe-test", answer)
            .await
            .expect("answered");
        let text = brook_metrics::encode(|_| {});
        assert!(
            text.contains(
                "brook_request_errors_total{door=\"kafka\",api=\"Fetch\",code=\"OFFSET_OUT_OF_RANGE\"}"
            ),
            "{text}"
        );
    }
}
