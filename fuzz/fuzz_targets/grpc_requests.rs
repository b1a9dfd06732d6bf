//! The gRPC door's unary calls on arbitrary messages, end to end over a real HTTP/2 connection:
//! the first byte picks one of the `brook.v1.Brook` service's unary methods (from its
//! descriptor set), the rest is sent as its request message's bytes as they are (through
//! `brook_proto::raw::RawCodec`), so the door's protobuf decoding, its conversions and checks
//! of what a decoded request may ask (`brook_server::grpc`), and the broker behind them all
//! meet it. Every call must be answered,
//! with a status saying what was wrong for a bad one, and the door must never panic.
//! Request-reply's `Call` is left out: a well-formed one waits for its reply.
#![no_main]

#[path = "support.rs"]
mod support;

use std::sync::OnceLock;
use std::time::Duration;

use brook_proto::raw::RawCodec;
use brook_server::{Grpc, GrpcConfig};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use prost_types::FileDescriptorSet;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

/// The service's unary methods but `Call`, from its descriptor set, so a method added later is
/// fuzzed too.
fn methods() -> &'static [PathAndQuery] {
    static METHODS: OnceLock<Vec<PathAndQuery>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let set = FileDescriptorSet::decode(brook_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let methods: Vec<PathAndQuery> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(move |s| (f.package(), s)))
            .filter(|(package, s)| format!("{package}.{}", s.name()) == brook_proto::SERVICE_NAME)
            .flat_map(|(_, s)| s.method.iter())
            .filter(|m| !m.client_streaming() && !m.server_streaming() && m.name() != "Call")
            .map(|m| {
                PathAndQuery::from_maybe_shared(format!(
                    "/{}/{}",
                    brook_proto::SERVICE_NAME,
                    m.name()
                ))
                .expect("a method's path")
            })
            .collect();
        assert!(!methods.is_empty(), "the service has unary methods");
        methods
    })
}

/// A channel to the door, which serves until the process ends.
fn channel() -> &'static Channel {
    static CHANNEL: OnceLock<Channel> = OnceLock::new();
    CHANNEL.get_or_init(|| {
        let addr = support::start_door::<Grpc>(GrpcConfig::default());
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .timeout(Duration::from_millis(500));
        support::served()
            .runtime
            .block_on(endpoint.connect())
            .expect("connect")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, message)) = data.split_first() else {
        return;
    };
    let methods = methods();
    let path = methods[usize::from(pick) % methods.len()].clone();
    let channel = channel().clone();
    let message = Bytes::copy_from_slice(message);
    support::served().runtime.block_on(async move {
        let mut client = tonic::client::Grpc::new(channel);
        if client.ready().await.is_err() {
            return;
        }
        // An error status is the door refusing a bad request, as it should.
        let _ = client
            .unary(tonic::Request::new(message), path, RawCodec)
            .await;
    });
});
