//! The Kafka door's request decoding on arbitrary frames, end to end over a real socket: the
//! frame split, the API key and version lookup, the request header, each API's body decoder
//! (the patched `kafka-protocol` codec) and the handlers behind them, with their checks of
//! what a decoded request may ask. The input is one frame's body (API key, version, header,
//! body): the target prefixes its length. The door must answer or close, never panic.
#![no_main]

#[path = "support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::OnceLock;

use brook_kafka::{Kafka, KafkaConfig};
use libfuzzer_sys::fuzz_target;

fn door() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| support::start_door::<Kafka>(KafkaConfig::default()))
}

fuzz_target!(|data: &[u8]| {
    let addr = door();
    let mut frame = Vec::with_capacity(data.len() + 4);
    frame.extend_from_slice(&(data.len() as i32).to_be_bytes());
    frame.extend_from_slice(data);
    support::exchange(addr, &frame);
});
