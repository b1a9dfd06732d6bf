//! The HTTP/2 frame size each end of a gRPC connection takes, read off a real socket: the
//! server's `SETTINGS` as a raw HTTP/2 client sees them, and the client's as a raw listener
//! sees them. 256 KiB frames carry a 1 MiB batch (produce) or subscription message (consume)
//! in 4 DATA frames instead of 64 (docs/benchmarks.md, "HTTP/2 frames").

mod common;

use brook_client::Client;
use common::{soon, Harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What each end announces as `SETTINGS_MAX_FRAME_SIZE`.
const FRAME_BYTES_MAX: u32 = 256 << 10;
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;
const MAX_FRAME_SIZE: u16 = 0x5;
/// HTTP/2's frame size when `SETTINGS_MAX_FRAME_SIZE` is left out.
const DEFAULT_FRAME_BYTES: u32 = 16_384;

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
    out.extend_from_slice(payload);
    out
}

/// Reads frames until the peer's first SETTINGS (not an ACK), and returns the frame size it
/// announces there.
async fn announced_frame_size(socket: &mut TcpStream) -> u32 {
    loop {
        let mut head = [0u8; 9];
        socket.read_exact(&mut head).await.expect("frame header");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        socket
            .read_exact(&mut payload)
            .await
            .expect("frame payload");
        if head[3] != SETTINGS || head[4] & ACK != 0 {
            continue;
        }
        let announced = payload.chunks_exact(6).find_map(|param| {
            let id = u16::from_be_bytes([param[0], param[1]]);
            (id == MAX_FRAME_SIZE)
                .then(|| u32::from_be_bytes([param[2], param[3], param[4], param[5]]))
        });
        return announced.unwrap_or(DEFAULT_FRAME_BYTES);
    }
}

#[tokio::test]
async fn the_server_takes_256_kib_frames() {
    let h = Harness::start().await;
    let mut socket = TcpStream::connect(h.server.local_addr())
        .await
        .expect("connect");
    socket.write_all(PREFACE).await.expect("preface");
    socket
        .write_all(&frame(SETTINGS, 0, &[]))
        .await
        .expect("settings");
    assert_eq!(
        soon(announced_frame_size(&mut socket)).await,
        FRAME_BYTES_MAX
    );
}

#[tokio::test]
async fn the_client_takes_256_kib_frames() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    // The client's handshake runs while the raw end below reads what it announces.
    let connecting = tokio::spawn(async move { Client::connect(url).await });
    let (mut socket, _) = soon(listener.accept()).await.expect("accept");
    let mut preface = [0u8; PREFACE.len()];
    soon(socket.read_exact(&mut preface))
        .await
        .expect("preface");
    assert_eq!(&preface[..], PREFACE);
    socket
        .write_all(&frame(SETTINGS, 0, &[]))
        .await
        .expect("settings");
    assert_eq!(
        soon(announced_frame_size(&mut socket)).await,
        FRAME_BYTES_MAX
    );
    connecting.abort();
}

#[tokio::test]
async fn a_batch_larger_than_a_frame_goes_out_and_comes_back_whole() {
    use brook_client::{
        ConsumerConfig, ConsumerEvent, ProducerConfig, ProducerRecord, StartAt, TopicPartition,
    };
    let h = Harness::start().await;
    h.topic("big", 1).await;
    // Three 300 KiB values: one ~900 KiB batch, more than three frames each way.
    let values: Vec<Vec<u8>> = (0..3u8)
        .map(|n| (0..300 << 10).map(|i: u32| (i % 251) as u8 ^ n).collect())
        .collect();
    let producer = h
        .client
        .producer(ProducerConfig::default())
        .expect("producer");
    let records: Vec<ProducerRecord> = values
        .iter()
        .map(|v| ProducerRecord::value(v.clone()))
        .collect();
    let delivery = producer
        .send_batch("big", &records)
        .await
        .expect("accepted");
    producer.flush().await.expect("flush");
    let positions = soon(delivery).await.expect("stored");
    assert_eq!(
        positions.iter().map(|p| p.offset).collect::<Vec<_>>(),
        [0, 1, 2]
    );

    let mut config = ConsumerConfig::default();
    config.auto_commit_interval_ms = None;
    let mut stream = h
        .client
        .consumer(config)
        .expect("consumer")
        .assign(vec![(TopicPartition::new("big", 0), StartAt::Offset(0))])
        .await
        .expect("assign");
    for (offset, value) in values.iter().enumerate() {
        match soon(stream.next_event()).await {
            Some(Ok(ConsumerEvent::Record(record))) => {
                assert_eq!(record.offset, offset as u64);
                assert_eq!(record.value.as_deref(), Some(&value[..]), "offset {offset}");
            }
            other => panic!("expected record {offset}, got {other:?}"),
        }
    }
}
