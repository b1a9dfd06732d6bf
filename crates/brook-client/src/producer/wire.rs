//! The producer's `ProduceStream` call, with its request body written here rather than by
//! tonic's encoder, so a batch's bytes reach the socket without a copy.
//!
//! tonic encodes each request message into a buffer of its own before hyper sends it: for a
//! raw batch that is a copy of the whole batch (and a fresh buffer of its size) per request.
//! Here each request is handed to hyper as two chunks: the gRPC frame header and the protobuf
//! fields in front of the batch (a few dozen bytes, encoded here exactly as prost encodes them),
//! then the batch's own [`Bytes`], which HTTP/2 writes to the socket as they are. A probe (whole
//! records, left to the server to place) is small and is encoded by prost as usual. Answers are
//! decoded by tonic's own gRPC decoder ([`Streaming`]), so status, trailers and message limits
//! are handled as for every other call.

use std::pin::Pin;
use std::task::{Context, Poll};

use brook_proto::v1;
use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use tokio::sync::mpsc;
use tonic::codec::Streaming;
use tonic::codegen::http;
use tonic::codegen::Service;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_prost::ProstDecoder;

use crate::client::RESPONSE_BYTES_MAX;

/// The method's path: `brook.v1.Brook/ProduceStream` (proto/brook/v1).
const PATH: &str = "/brook.v1.Brook/ProduceStream";
/// The gRPC length prefix: a compression flag (0: none) and the message length (u32, big
/// endian).
const GRPC_HEADER_LEN: usize = 5;

/// One request as it goes on the wire: the framed protobuf before the batch, and the batch's
/// bytes (`None` for a request whose whole message is in `head`).
#[derive(Debug)]
pub(crate) struct Framed {
    head: Bytes,
    batch: Option<Bytes>,
}

impl Framed {
    /// A request carrying `batch` as its raw batch for `partition`; `batch` is not copied.
    /// `awaited` (field 3) goes in front of the produce field, so that the batch stays last:
    /// protobuf decoders take fields in any order, and without it the bytes are prost's own.
    pub(crate) fn raw_batch(
        sequence: u64,
        topic: &str,
        partition: u32,
        batch: Bytes,
        awaited: bool,
    ) -> Framed {
        let field = |tag: u32, len: usize| key_len(tag) + encoded_len_varint(len as u64) + len;
        // proto3 leaves out fields at their default (0, "", empty bytes), as prost does.
        let raw_batch = if partition != 0 {
            key_len(1) + encoded_len_varint(u64::from(partition))
        } else {
            0
        } + if batch.is_empty() {
            0
        } else {
            field(2, batch.len())
        };
        let produce = if topic.is_empty() {
            0
        } else {
            field(1, topic.len())
        } + field(3, raw_batch);
        let message = if sequence != 0 {
            key_len(1) + encoded_len_varint(sequence)
        } else {
            0
        } + if awaited { key_len(3) + 1 } else { 0 }
            + field(2, produce);
        let mut head = BytesMut::with_capacity(GRPC_HEADER_LEN + message - batch.len());
        put_grpc_header(&mut head, message);
        if sequence != 0 {
            encode_key(1, WireType::Varint, &mut head);
            encode_varint(sequence, &mut head);
        }
        if awaited {
            encode_key(3, WireType::Varint, &mut head);
            encode_varint(1, &mut head);
        }
        encode_key(2, WireType::LengthDelimited, &mut head);
        encode_varint(produce as u64, &mut head);
        if !topic.is_empty() {
            encode_key(1, WireType::LengthDelimited, &mut head);
            encode_varint(topic.len() as u64, &mut head);
            head.put_slice(topic.as_bytes());
        }
        encode_key(3, WireType::LengthDelimited, &mut head);
        encode_varint(raw_batch as u64, &mut head);
        if partition != 0 {
            encode_key(1, WireType::Varint, &mut head);
            encode_varint(u64::from(partition), &mut head);
        }
        if !batch.is_empty() {
            encode_key(2, WireType::LengthDelimited, &mut head);
            encode_varint(batch.len() as u64, &mut head);
        }
        Framed {
            head: head.freeze(),
            batch: (!batch.is_empty()).then_some(batch),
        }
    }

    /// Any request, encoded whole by prost (a probe's records).
    pub(crate) fn message(request: &v1::ProduceStreamRequest) -> Framed {
        let message = request.encoded_len();
        let mut head = BytesMut::with_capacity(GRPC_HEADER_LEN + message);
        put_grpc_header(&mut head, message);
        request.encode_raw(&mut head);
        Framed {
            head: head.freeze(),
            batch: None,
        }
    }
}

fn put_grpc_header(head: &mut BytesMut, message: usize) {
    head.put_u8(0);
    // A request is at most the producer's batch limit (8 MiB) plus a topic name: far below
    // u32::MAX, which the caller's limits ensure.
    head.put_u32(message as u32);
}

/// The request body: the framed requests the pipeline queues, in order, until it drops its
/// sender (the end of the stream).
struct RequestBody {
    requests: mpsc::Receiver<Framed>,
    /// The batch of the request whose head went out last.
    batch: Option<Bytes>,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(batch) = this.batch.take() {
            return Poll::Ready(Some(Ok(Frame::data(batch))));
        }
        this.requests.poll_recv(cx).map(|request| {
            request.map(|Framed { head, batch, .. }| {
                this.batch = batch;
                Ok(Frame::data(head))
            })
        })
    }
}

/// Opens a `ProduceStream` on `channel`: the sender takes framed requests (up to `queue`
/// waiting), the stream yields the answers.
pub(crate) async fn open(
    channel: &Channel,
    queue: usize,
) -> Result<(mpsc::Sender<Framed>, Streaming<v1::ProduceStreamResponse>), Status> {
    let (sender, requests) = mpsc::channel(queue.max(1));
    let body = tonic::body::Body::new(RequestBody {
        requests,
        batch: None,
    });
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(PATH)
        .version(http::Version::HTTP_2)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(body)
        .map_err(|e| Status::internal(format!("a produce stream request: {e}")))?;
    let mut channel = channel.clone();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| Status::from_error(e.into()))?;
    let response = channel
        .call(request)
        .await
        .map_err(|e| Status::from_error(e.into()))?;
    let http_status = response.status();
    // A status in the headers is a trailers-only answer: the call failed (or ended) at once.
    let trailers_only = match Status::from_header_map(response.headers()) {
        Some(status) if status.code() != Code::Ok => return Err(status),
        Some(_) => true,
        None => false,
    };
    let decoder = ProstDecoder::<v1::ProduceStreamResponse>::default();
    let body = response.into_body();
    let answers = if trailers_only {
        Streaming::new_empty(decoder, body)
    } else {
        Streaming::new_response(decoder, body, http_status, None, Some(RESPONSE_BYTES_MAX))
    };
    Ok((sender, answers))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What tonic would have sent: the gRPC prefix and prost's encoding of the whole message.
    fn prost_framed(request: &v1::ProduceStreamRequest) -> Vec<u8> {
        let body = request.encode_to_vec();
        let mut framed = vec![0];
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
        framed
    }

    fn wire(framed: Framed) -> Vec<u8> {
        let mut bytes = framed.head.to_vec();
        if let Some(batch) = framed.batch {
            bytes.extend_from_slice(&batch);
        }
        bytes
    }

    #[test]
    fn a_raw_batch_request_is_framed_byte_for_byte_as_prost_frames_it() {
        // Zero values (left out by proto3) and every varint width the lengths can take.
        let long_topic = "long-topic-name".repeat(10);
        for len in [0, 1, 100, 127, 128, 16_383, 16_384, 1 << 20] {
            let data = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            for sequence in [0, 1, 127, 128, u64::MAX] {
                for topic in ["", "t", long_topic.as_str()] {
                    for partition in [0, 1, 300, u32::MAX] {
                        let request = v1::ProduceStreamRequest {
                            sequence,
                            produce: Some(v1::ProduceRequest {
                                topic: topic.to_owned(),
                                records: Vec::new(),
                                raw_batch: Some(v1::RawBatch {
                                    partition,
                                    data: data.clone(),
                                }),
                            }),
                            awaited: false,
                        };
                        let framed =
                            Framed::raw_batch(sequence, topic, partition, data.clone(), false);
                        if len > 0 {
                            let sent = framed.batch.as_ref().expect("the batch rides apart");
                            assert_eq!(sent.as_ptr(), data.as_ptr(), "not copied");
                        }
                        assert_eq!(
                            wire(framed),
                            prost_framed(&request),
                            "sequence {sequence}, topic {topic:?}, partition {partition}, {len} B"
                        );
                    }
                }
            }
        }
    }

    /// With `awaited` the fields are in another order than prost's, and decode to the same
    /// message.
    #[test]
    fn an_awaited_raw_batch_request_decodes_as_prost_encodes_it() {
        for sequence in [0, 1, u64::MAX] {
            for partition in [0, 7] {
                let data = Bytes::from_static(b"batch bytes");
                let request = v1::ProduceStreamRequest {
                    sequence,
                    produce: Some(v1::ProduceRequest {
                        topic: "t".to_owned(),
                        records: Vec::new(),
                        raw_batch: Some(v1::RawBatch {
                            partition,
                            data: data.clone(),
                        }),
                    }),
                    awaited: true,
                };
                let framed = wire(Framed::raw_batch(sequence, "t", partition, data, true));
                let expected = prost_framed(&request);
                assert_eq!(framed.len(), expected.len(), "the same length prefix");
                assert_eq!(framed[..5], expected[..5], "the gRPC prefix");
                let decoded = v1::ProduceStreamRequest::decode(&framed[5..]).expect("decode");
                assert_eq!(decoded, request);
            }
        }
    }

    #[test]
    fn a_probe_is_framed_whole_by_prost() {
        let request = v1::ProduceStreamRequest {
            sequence: 7,
            produce: Some(v1::ProduceRequest {
                topic: "t".into(),
                records: vec![v1::ProducerRecord {
                    value: Some(Bytes::from_static(b"v")),
                    ..Default::default()
                }],
                raw_batch: None,
            }),
            awaited: true,
        };
        assert_eq!(wire(Framed::message(&request)), prost_framed(&request));
    }
}
