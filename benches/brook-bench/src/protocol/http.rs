//! The HTTP door, as a plain HTTP client (reqwest) uses it: what a script, a webhook or a
//! service without a brook client gets.
//!
//! Producing: one `POST /v1/topics/{topic}/records` JSON request per batch, values in base64
//! (bench values are binary), up to `--in-flight` requests at once, each on a connection of
//! the producer's pool (HTTP/1.1 has one request at a time per connection). Consuming: one
//! server-sent event stream per partition (`GET .../partitions/{p}/stream?offset=`), each
//! event one record as JSON. With `--tls-ca` and an `https://` URL, the same over TLS (reqwest
//! on a rustls configuration with ring that trusts only that CA).

use std::io;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{receive_ready, Ack, BenchConsumer, BenchProducer, ProducerShape, Protocol, TopicSpec};

/// Connects to the HTTP door at `url` (`http://HOST:PORT`, or `https://` trusting `ca_pem`).
pub(super) async fn connect(url: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Box<dyn Protocol>> {
    let clients = Clients::new(url, ca_pem)?;
    let http = Http {
        base: url.trim_end_matches('/').to_owned(),
        client: clients.new_client()?,
        clients,
    };
    let health = http.client.get(http.url("/healthz")).send().await;
    match health {
        Ok(response) if response.status().is_success() => Ok(Box::new(http)),
        Ok(response) => bail!("{url}/healthz answered {}", response.status()),
        Err(e) => Err(e).with_context(|| format!("cannot reach the HTTP door at {url}")),
    }
}

struct Http {
    base: String,
    /// For admin calls; producers and consumers have clients (connection pools) of their own.
    client: reqwest::Client,
    clients: Clients,
}

/// Makes the HTTP clients: plain, or over TLS (each client its own connections and sessions).
#[derive(Clone)]
struct Clients {
    tls: Option<TlsConfig>,
}

/// What `--tls-ca` sets up: reqwest's rustls, in a `bench-http-tls` build only.
#[cfg(feature = "http-tls")]
type TlsConfig = rustls::ClientConfig;
#[cfg(not(feature = "http-tls"))]
type TlsConfig = std::convert::Infallible;

/// The line a build without HTTP over TLS prints for `--tls-ca`.
#[cfg(not(feature = "http-tls"))]
const TLS_REBUILD_HINT: &str = "--protocol http --tls-ca: this build's HTTP client has no TLS: \
                                rebuild with `cargo build --release --features bench-http-tls`";

impl Clients {
    /// `ca_pem`: the PEM `--tls-ca` names; needed by, and only by, an `https://` URL.
    fn new(url: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Clients> {
        let tls = match (url.starts_with("https://"), ca_pem) {
            (true, Some(pem)) => Some(tls_config(pem)?),
            (true, None) => bail!("{url} is TLS: name the CA to trust with --tls-ca FILE"),
            (false, Some(_)) => bail!("--tls-ca needs an https:// --server, not {url}"),
            (false, None) => None,
        };
        Ok(Clients { tls })
    }

    #[cfg(feature = "http-tls")]
    fn new_client(&self) -> anyhow::Result<reqwest::Client> {
        // With rustls-no-provider reqwest sets up TLS for every client, plaintext ones too,
        // and needs a provider: a plaintext client gets one trusting nothing (it never speaks
        // TLS: an https:// URL needs --tls-ca).
        let tls = match &self.tls {
            Some(tls) => tls.clone(),
            None => rustls_config(rustls::RootCertStore::empty())?,
        };
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .context("cannot set up the HTTP client")
    }

    #[cfg(not(feature = "http-tls"))]
    fn new_client(&self) -> anyhow::Result<reqwest::Client> {
        if let Some(never) = self.tls {
            match never {}
        }
        reqwest::Client::builder()
            .build()
            .context("cannot set up the HTTP client")
    }
}

#[cfg(not(feature = "http-tls"))]
fn tls_config(_ca_pem: &[u8]) -> anyhow::Result<TlsConfig> {
    bail!(TLS_REBUILD_HINT)
}

/// A rustls client (ring, as brook's doors) trusting only the certificates in `ca_pem`.
#[cfg(feature = "http-tls")]
fn tls_config(ca_pem: &[u8]) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.context("--tls-ca: bad PEM")?)
            .context("--tls-ca: bad certificate")?;
    }
    if roots.is_empty() {
        bail!("--tls-ca holds no certificate");
    }
    rustls_config(roots)
}

/// A rustls client with ring trusting `roots`.
#[cfg(feature = "http-tls")]
fn rustls_config(roots: rustls::RootCertStore) -> anyhow::Result<rustls::ClientConfig> {
    #[allow(deprecated)] // ring: see brook_door::tls.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Http {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The parts of a topic description the bench reads.
#[derive(Deserialize)]
struct TopicOut {
    partitions: Vec<PartitionOut>,
}

#[derive(Deserialize)]
struct PartitionOut {
    partition: u32,
    high_watermark: u64,
}

/// A failed answer as an error with its body (the door's `{error_code, message}`).
async fn refused(what: &str, response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::anyhow!("{what}: {status}: {body}")
}

impl Protocol for Http {
    fn prepare_topic<'a>(&'a self, spec: &'a TopicSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
        async move {
            let described = self
                .client
                .get(self.url(&format!("/v1/topics/{}", spec.name)))
                .send()
                .await?;
            match described.status() {
                StatusCode::OK => {
                    let topic: TopicOut = described.json().await?;
                    if topic.partitions.len() != spec.partitions as usize {
                        bail!(
                            "topic {} exists with {} partitions, not {}: choose another --topic",
                            spec.name,
                            topic.partitions.len(),
                            spec.partitions
                        );
                    }
                    Ok(false)
                }
                StatusCode::NOT_FOUND => {
                    let config = match spec.durability {
                        Some(durability) => json!({ "durability": durability.to_string() }),
                        None => json!({}),
                    };
                    let body = json!({
                        "name": spec.name,
                        "partitions": spec.partitions,
                        "config": config,
                    });
                    let created = self
                        .client
                        .post(self.url("/v1/topics"))
                        .json(&body)
                        .send()
                        .await?;
                    if !created.status().is_success() {
                        return Err(refused("create topic", created).await);
                    }
                    Ok(true)
                }
                _ => Err(refused("describe topic", described).await),
            }
        }
        .boxed()
    }

    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u64>>> {
        async move {
            let response = self
                .client
                .get(self.url(&format!("/v1/topics/{topic}")))
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(refused("describe topic", response).await);
            }
            let mut topic: TopicOut = response.json().await?;
            topic.partitions.sort_by_key(|p| p.partition);
            Ok(topic.partitions.iter().map(|p| p.high_watermark).collect())
        }
        .boxed()
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let response = self
                .client
                .delete(self.url(&format!("/v1/topics/{topic}")))
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(refused("delete topic", response).await);
            }
            Ok(())
        }
        .boxed()
    }

    fn producer<'a>(
        &'a self,
        topic: &'a str,
        _shape: ProducerShape,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchProducer>>> {
        let producer = self.clients.new_client().map(|client| {
            Box::new(HttpProducer {
                client,
                url: self.url(&format!("/v1/topics/{topic}/records")),
            }) as Box<dyn BenchProducer>
        });
        futures::future::ready(producer).boxed()
    }

    fn consumer<'a>(
        &'a self,
        topic: &'a str,
        starts: Vec<(u32, u64)>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchConsumer>>> {
        async move {
            let client = self.clients.new_client()?;
            let mut values = SelectAll::new();
            for (partition, offset) in starts {
                let url = self.url(&format!(
                    "/v1/topics/{topic}/partitions/{partition}/stream?offset={offset}\
                     &value_encoding=base64"
                ));
                let response = client.get(url).send().await?;
                if !response.status().is_success() {
                    return Err(refused("open stream", response).await);
                }
                values.push(record_values(response));
            }
            Ok(Box::new(HttpConsumer { values }) as Box<dyn BenchConsumer>)
        }
        .boxed()
    }
}

struct HttpProducer {
    client: reqwest::Client,
    url: String,
}

impl BenchProducer for HttpProducer {
    fn send_batch(&self, partition: u32, values: Vec<Bytes>) -> BoxFuture<'_, anyhow::Result<Ack>> {
        let records: Vec<serde_json::Value> = values
            .iter()
            .map(|v| json!({ "value": BASE64.encode(v), "partition": partition }))
            .collect();
        let body = json!({ "value_encoding": "base64", "records": records });
        let request = self.client.post(&self.url).json(&body).send();
        // Sent on a task of its own so the request is on the wire while the workload prepares
        // the next batch; the Ack waits for its answer.
        let answer = tokio::spawn(async move {
            let response = request.await.context("produce")?;
            if !response.status().is_success() {
                return Err(refused("produce", response).await);
            }
            // Read the answer to its end so the connection goes back to the pool.
            response.bytes().await.context("produce answer")?;
            Ok(())
        });
        let ack: Ack = async move { answer.await.context("produce task")? }.boxed();
        futures::future::ready(Ok(ack)).boxed()
    }
}

/// The values of the records of an SSE response, decoded.
fn record_values(response: reqwest::Response) -> BoxStream<'static, io::Result<Bytes>> {
    let state = (response.bytes_stream().boxed(), BytesMut::new(), Vec::new());
    futures::stream::unfold(state, |(mut body, mut buffer, mut ready)| async move {
        loop {
            if let Some(value) = ready.pop() {
                return Some((Ok(value), (body, buffer, ready)));
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    buffer.extend_from_slice(&chunk);
                    match complete_events(&mut buffer) {
                        // Popped from the back: reversed to keep order.
                        Ok(mut values) => {
                            values.reverse();
                            ready = values;
                        }
                        Err(e) => return Some((Err(e), (body, buffer, ready))),
                    }
                }
                Some(Err(e)) => return Some((Err(io::Error::other(e)), (body, buffer, ready))),
                None => return None,
            }
        }
    })
    .boxed()
}

/// The record of an event, as far as the bench reads it.
#[derive(Deserialize)]
struct RecordOut {
    value: Option<String>,
}

/// Takes the complete events off the front of `buffer` and returns their records' values.
fn complete_events(buffer: &mut BytesMut) -> io::Result<Vec<Bytes>> {
    let mut values = Vec::new();
    while let Some(end) = event_end(buffer) {
        let event = buffer.split_to(end);
        let mut data = None;
        let mut named = false;
        for line in event[..].split(|&b| b == b'\n') {
            if let Some(rest) = line.strip_prefix(b"data: ") {
                data = Some(rest);
            } else if line.starts_with(b"event:") {
                named = true;
            }
        }
        let Some(data) = data else { continue }; // a keep-alive comment
        if named {
            let text = String::from_utf8_lossy(data);
            return Err(io::Error::other(format!("the stream failed: {text}")));
        }
        let record: RecordOut = serde_json::from_slice(data).map_err(io::Error::other)?;
        let value = match record.value {
            Some(text) => BASE64.decode(text).map_err(io::Error::other)?,
            None => Vec::new(),
        };
        values.push(Bytes::from(value));
    }
    Ok(values)
}

/// The length of the first complete event in `buffer` (up to and with its blank line).
fn event_end(buffer: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = buffer[from..].iter().position(|&b| b == b'\n') {
        let newline = from + at;
        if buffer.get(newline + 1) == Some(&b'\n') {
            return Some(newline + 2);
        }
        from = newline + 1;
    }
    None
}

struct HttpConsumer {
    values: SelectAll<BoxStream<'static, io::Result<Bytes>>>,
}

impl BenchConsumer for HttpConsumer {
    fn receive<'a>(
        &'a mut self,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> BoxFuture<'a, anyhow::Result<usize>> {
        receive_ready(&mut self.values, value_bytes, sink).boxed()
    }
}

fn value_bytes(value: &Bytes) -> &[u8] {
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    // The TLS connection itself is checked end to end by `benches/tls-bench.sh` (a real
    // `brook serve --tls-cert`, PROTOCOL=http); these are the refusals that need no server.
    #[test]
    fn tls_needs_an_https_url_and_a_real_ca() {
        let no_ca = Clients::new("https://127.0.0.1:8080", None)
            .err()
            .expect("refused");
        assert!(no_ca.to_string().contains("--tls-ca FILE"), "{no_ca}");
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let plain = Clients::new("http://127.0.0.1:8080", Some(pem))
            .err()
            .expect("refused");
        assert!(plain.to_string().contains("needs an https://"), "{plain}");
        let tls = Clients::new("https://127.0.0.1:8080", Some(pem));
        if cfg!(feature = "http-tls") {
            let bad = tls.err().expect("refused");
            assert!(bad.to_string().contains("--tls-ca"), "{bad}");
            let empty = Clients::new("https://127.0.0.1:8080", Some(b""))
                .err()
                .expect("refused");
            assert!(empty.to_string().contains("no certificate"), "{empty}");
        } else {
            let hint = tls.err().expect("refused");
            assert!(hint.to_string().contains("bench-http-tls"), "{hint}");
        }
        let plain = Clients::new("http://127.0.0.1:8080", None).expect("plain");
        assert!(plain.tls.is_none());
        // A plaintext client builds without a process-wide crypto provider.
        plain.new_client().expect("a plaintext client");
    }

    #[test]
    fn events_split_across_chunks_decode_in_order() {
        let mut buffer = BytesMut::from(
            &b": keep-alive\n\ndata: {\"value\":\"AAE=\",\"offset\":0}\nid: 0\n\ndata: {\"va"[..],
        );
        let values = complete_events(&mut buffer).expect("valid");
        assert_eq!(values, vec![Bytes::from_static(&[0, 1])]);
        buffer.extend_from_slice(b"lue\":null}\nid: 1\n\n");
        let values = complete_events(&mut buffer).expect("valid");
        assert_eq!(values, vec![Bytes::new()]);
        assert!(buffer.is_empty());

        buffer.extend_from_slice(b"event: error\ndata: {\"error_code\":\"unknown_topic\"}\n\n");
        let err = complete_events(&mut buffer).expect_err("an error event");
        assert!(err.to_string().contains("unknown_topic"), "{err}");
    }
}
