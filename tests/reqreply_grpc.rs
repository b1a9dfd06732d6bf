//! Request-reply through the gRPC door: `Call` and `Respond` with the Rust client and with the
//! generated stubs, timeouts that name the correlation id, idempotent retries, and a responder
//! that goes away handing its request to another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_broker::reqreply::Answer as BrokerAnswer;
use brook_broker::{Broker, NewTopic, OffsetSpec, Request};
use brook_client::proto::{self, respond_request::Message};
use brook_client::{Answer, CallRequest, Client, Code, IncomingRequest};
use brook_server::{GrpcConfig, GrpcServer};
use bytes::Bytes;

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> (Broker, GrpcServer, Client) {
    let broker = Broker::ephemeral().await.expect("broker");
    let addr = "127.0.0.1:0".parse().expect("address");
    let server = GrpcServer::start(broker.clone(), addr, GrpcConfig::default())
        .await
        .expect("gRPC server");
    let client = Client::connect(format!("http://{}", server.local_addr()))
        .await
        .expect("client");
    (broker, server, client)
}

async fn requests_in(broker: &Broker, topic: &str) -> u64 {
    broker
        .list_offset(topic, 0, OffsetSpec::Latest)
        .await
        .expect("offset")
        .offset
        .expect("latest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_calls_and_a_client_responds_over_grpc() {
    let (_broker, _server, client) = start().await;
    let responder = client.clone();
    tokio::spawn(async move {
        responder
            .respond("prices", "pricing", |request: IncomingRequest| async move {
                match request.value.as_deref() {
                    Some(b"unknown") => Err("no price for unknown"),
                    value => {
                        let price = format!(
                            "{} costs 3",
                            String::from_utf8_lossy(value.unwrap_or_default())
                        );
                        Ok(Answer {
                            value: Some(Bytes::from(price)),
                            headers: vec![("currency".into(), Bytes::from_static(b"EUR"))],
                        })
                    }
                }
            })
            .await
    });
    let call = CallRequest {
        key: Some(Bytes::from_static(b"k1")),
        headers: vec![("trace".into(), Bytes::from_static(b"t-1"))],
        ..CallRequest::value("apple").with_timeout(WAIT)
    };
    let reply = client.call("prices", call).await.expect("reply");
    assert_eq!(reply.value.as_deref(), Some(&b"apple costs 3"[..]));
    assert_eq!(
        reply.key.as_deref(),
        Some(&b"k1"[..]),
        "the reply keeps the request's key"
    );
    assert_eq!(
        reply.headers,
        vec![("currency".to_owned(), Bytes::from_static(b"EUR"))]
    );
    assert_eq!(reply.correlation_id.len(), 16);
    assert_eq!(&*reply.topic, "__brook_replies");

    let err = client
        .call("prices", CallRequest::value("unknown").with_timeout(WAIT))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unknown, "{err}");
    assert!(err.to_string().contains("no price for unknown"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_responder_is_deadline_exceeded_with_the_id_and_a_retry_gets_the_late_reply() {
    let (broker, _server, client) = start().await;
    broker
        .create_topic(NewTopic::new("quotes", 1))
        .await
        .expect("create");
    // The gRPC deadline alone bounds the wait; the server answers before it fires, with the id.
    let mut request = tonic::Request::new(proto::CallRequest {
        topic: "quotes".into(),
        value: Some(Bytes::from_static(b"q")),
        correlation_id: Bytes::from_static(b"quote-1"),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(1));
    let status = client.grpc().call(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("quote-1"), "{}", status.message());
    let id = status
        .metadata()
        .get_bin("brook-correlation-id-bin")
        .expect("the id trailer")
        .to_bytes()
        .expect("bytes");
    assert_eq!(&id[..], b"quote-1");
    // A random id comes back too.
    let err = client
        .call(
            "quotes",
            CallRequest::value("q2").with_timeout(Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert_eq!(broker.reqreply_stats().waiting_calls, 0);

    tokio::spawn(async move {
        broker
            .respond("quotes", "q", |request: Request| async move {
                Ok::<_, String>(BrokerAnswer::value(request.value.unwrap_or_default()))
            })
            .await
    });
    let retry = CallRequest::value("q")
        .with_correlation_id(id)
        .with_timeout(WAIT);
    let reply = client
        .call("quotes", retry.clone())
        .await
        .expect("the late reply");
    assert_eq!(reply.value.as_deref(), Some(&b"q"[..]));
    let again = client.call("quotes", retry).await.expect("again");
    assert_eq!(again.offset, reply.offset, "the same reply, not a new call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_retried_with_its_id_sends_one_request() {
    let (broker, _server, client) = start().await;
    broker
        .create_topic(NewTopic::new("pay", 1))
        .await
        .expect("create");
    let call = CallRequest::value("10 EUR")
        .with_correlation_id(Bytes::from_static(b"payment-7"))
        .with_timeout(Duration::from_millis(50));
    for _ in 0..3 {
        let err = client.call("pay", call.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
    }
    assert_eq!(requests_in(&broker, "pay").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_that_goes_away_hands_its_request_to_another() {
    let (broker, _server, client) = start().await;
    broker
        .create_topic(NewTopic::new("jobs", 1))
        .await
        .expect("create");
    // A raw Respond stream that takes a request and never answers.
    let open = proto::RespondRequest {
        message: Some(Message::Open(proto::RespondOpen {
            topic: "jobs".into(),
            group_id: "workers".into(),
            max_in_flight: 0,
        })),
    };
    let (mut tx, outbound) = futures::channel::mpsc::channel(4);
    tx.try_send(open).expect("open");
    let mut silent = client
        .grpc()
        .respond(outbound)
        .await
        .expect("respond")
        .into_inner();
    let caller = client.clone();
    let call = tokio::spawn(async move {
        caller
            .call("jobs", CallRequest::value("job").with_timeout(WAIT))
            .await
    });
    let taken = tokio::time::timeout(WAIT, silent.message())
        .await
        .expect("in time")
        .expect("stream")
        .expect("a request")
        .request
        .expect("request");
    assert_eq!(taken.value.as_deref(), Some(&b"job"[..]));

    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let other = client.clone();
    tokio::spawn(async move {
        other
            .respond("jobs", "workers", move |request: IncomingRequest| {
                count.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, String>(Answer::value(request.value.unwrap_or_default())) }
            })
            .await
    });
    // The silent responder leaves without answering: its request goes to the other member.
    drop(tx);
    drop(silent);
    let reply = call.await.expect("task").expect("answered by the other");
    assert_eq!(reply.value.as_deref(), Some(&b"job"[..]));
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_respond_streams_and_calls_are_refused() {
    let (_broker, _server, client) = start().await;
    let stream = |messages: Vec<proto::RespondRequest>| {
        let client = client.clone();
        async move {
            let result = client.grpc().respond(futures::stream::iter(messages)).await;
            let status = match result {
                Err(status) => status,
                Ok(response) => {
                    let mut inbound = response.into_inner();
                    loop {
                        match tokio::time::timeout(WAIT, inbound.message())
                            .await
                            .expect("in time")
                        {
                            Err(status) => break status,
                            Ok(Some(_)) => {}
                            Ok(None) => panic!("the stream ended without an error"),
                        }
                    }
                }
            };
            status
        }
    };
    let reply = |offset| proto::RespondRequest {
        message: Some(Message::Reply(proto::RespondReply {
            partition: 0,
            offset,
            outcome: Some(proto::respond_reply::Outcome::Error("x".into())),
        })),
    };
    let open = |max_in_flight| proto::RespondRequest {
        message: Some(Message::Open(proto::RespondOpen {
            topic: "t".into(),
            group_id: "g".into(),
            max_in_flight,
        })),
    };
    let status = stream(vec![reply(0)]).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("open"), "{}", status.message());
    let status = stream(vec![open(5000)]).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = stream(vec![open(0), reply(42)]).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("offset 42"),
        "{}",
        status.message()
    );

    let reserved = CallRequest {
        headers: vec![("kafka_correlationId".into(), Bytes::new())],
        ..CallRequest::value("v")
    };
    let err = client.call("t", reserved).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = client
        .call("__brook_replies", CallRequest::value("v"))
        .await
        .unwrap_err();
    // The reply topic is internal (refused before the call) and never a request topic.
    assert!(
        matches!(err.code(), Code::PermissionDenied | Code::InvalidArgument),
        "{err}"
    );
    let long_id = CallRequest::value("v").with_correlation_id(vec![b'x'; 256]);
    let err = client.call("t", long_id).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
}
