//! The TLS write path of a door's connection (`brook_door::tls::Stream`) over real sockets,
//! against a real rustls client: nothing is lost, reordered or left behind. Frames written the
//! way HTTP/2 writes them (a 9-byte header and a 16 KiB payload in one vectored write, partial
//! writes taken) arrive whole and in order while the client reads slowly (the socket fills and
//! the door's writes wait for room); one answer of megabytes written at once arrives whole to a
//! reader that takes it in small pieces; a small answer followed by a flush arrives at once, many
//! times over on one connection, as the Kafka door answers requests; shutdown delivers the last
//! bytes and then the end of the stream.

use std::sync::Arc;
use std::time::Duration;

use brook_door::tls::{Incoming, Stream, Tls, TlsFiles};
use brook_door::{Acceptor, ConnectionLimits, Listener};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);
/// An HTTP/2 DATA frame as h2 writes it: header, then the payload (the peer's default
/// SETTINGS_MAX_FRAME_SIZE).
const FRAME_HEADER: usize = 9;
const FRAME_PAYLOAD: usize = 16_384;

/// A door over TLS on a loopback port and a client connected to it, handshaken.
struct Pair {
    server: Stream,
    client: TlsStream<TcpStream>,
    _dir: tempfile::TempDir,
}

async fn pair() -> Pair {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let cert_path = dir.path().join("server.pem");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    let tls = Tls::load(TlsFiles {
        cert: cert_path,
        key: key_path,
        client_ca: None,
    })
    .expect("TLS loads");

    let listener = Listener::bind("tls-test", "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr();
    let mut incoming = Incoming::new(Acceptor::new(listener, ConnectionLimits::new(4)), Some(tls));

    #[allow(deprecated)] // ring, as the door: see brook_door::tls
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("CA added");
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let (client, server) = tokio::join!(
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
        tokio::time::timeout(PATIENCE, incoming.next())
    );
    Pair {
        server: server.expect("the door hands over the connection"),
        client: client.expect("client handshake"),
        _dir: dir,
    }
}

/// Byte `i` of the stream the server writes.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[tokio::test]
async fn frames_written_vectored_arrive_whole_and_in_order_to_a_slow_reader() {
    let Pair {
        mut server,
        mut client,
        _dir,
    } = pair().await;
    assert!(server.is_tls());
    const FRAMES: usize = 512; // 8 MiB: far more than the send buffer and the socket's
    const TAIL: &[u8] = b"end";
    let total = FRAMES * (FRAME_HEADER + FRAME_PAYLOAD) + TAIL.len();

    let writer = tokio::spawn(async move {
        let frame_len = FRAME_HEADER + FRAME_PAYLOAD;
        let stream: Vec<u8> = (0..FRAMES * frame_len).map(pattern).collect();
        for frame in stream.chunks(frame_len) {
            let (header, payload) = frame.split_at(FRAME_HEADER);
            let (mut header, mut payload) = (header, payload);
            // As tokio_util's poll_write_buf does: vectored, taking partial writes.
            while !header.is_empty() || !payload.is_empty() {
                let slices = [
                    std::io::IoSlice::new(header),
                    std::io::IoSlice::new(payload),
                ];
                let n = server.write_vectored(&slices).await.expect("write");
                assert!(n > 0, "a write took nothing");
                let from_header = n.min(header.len());
                header = &header[from_header..];
                payload = &payload[n - from_header..];
            }
        }
        server.write_all(TAIL).await.expect("write the tail");
        server.flush().await.expect("flush");
        server // kept open: what arrives must have been flushed, not sent at close
    });

    // The client starts late, so the socket fills and the door's writes wait for room.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut received = vec![0; total];
    tokio::time::timeout(PATIENCE, client.read_exact(&mut received))
        .await
        .expect("everything arrives without the door closing")
        .expect("read");
    let body = &received[..total - TAIL.len()];
    if let Some(at) = (0..body.len()).find(|&i| body[i] != pattern(i)) {
        panic!("byte {at} of {total} differs");
    }
    assert_eq!(&received[total - TAIL.len()..], TAIL);
    let _server = writer.await.expect("writer");
}

#[tokio::test]
async fn one_large_answer_arrives_whole_to_a_slow_reader() {
    let Pair {
        mut server,
        mut client,
        _dir,
    } = pair().await;
    // A Kafka fetch answer: megabytes in one write_all and a flush, so rustls's send buffer
    // fills, drains into a full socket, and fills again, many times over.
    const TOTAL: usize = 8 * 1024 * 1024 + 5;
    let writer = tokio::spawn(async move {
        let answer: Vec<u8> = (0..TOTAL).map(pattern).collect();
        server.write_all(&answer).await.expect("write");
        server.flush().await.expect("flush");
        server
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut received = vec![0; TOTAL];
    // Read in small pieces, as a slow reader would.
    let mut at = 0;
    while at < TOTAL {
        let end = (at + 3000).min(TOTAL);
        let n = tokio::time::timeout(PATIENCE, client.read(&mut received[at..end]))
            .await
            .expect("bytes keep arriving")
            .expect("read");
        assert!(n > 0, "the stream ended at byte {at} of {TOTAL}");
        at += n;
    }
    if let Some(i) = (0..TOTAL).find(|&i| received[i] != pattern(i)) {
        panic!("byte {i} of {TOTAL} differs");
    }
    let _server = writer.await.expect("writer");
}

#[tokio::test]
async fn a_small_answer_and_a_flush_arrive_at_once_every_time() {
    let Pair {
        mut server,
        mut client,
        _dir,
    } = pair().await;
    // Request, answer, as the Kafka door does: write the answer, flush, wait for the next.
    for round in 0..200u32 {
        let request = round.to_be_bytes();
        client.write_all(&request).await.expect("request");
        client.flush().await.expect("client flush");
        let mut got = [0; 4];
        tokio::time::timeout(PATIENCE, server.read_exact(&mut got))
            .await
            .expect("the request arrives")
            .expect("read request");
        assert_eq!(got, request);
        let answer = (round * 7).to_be_bytes();
        server.write_all(&answer).await.expect("answer");
        server.flush().await.expect("flush");
        let mut back = [0; 4];
        tokio::time::timeout(PATIENCE, client.read_exact(&mut back))
            .await
            .unwrap_or_else(|_| panic!("round {round}: the flushed answer did not arrive"))
            .expect("read answer");
        assert_eq!(back, answer);
    }
    // Shutdown sends what is held, then close_notify: the client reads the last bytes and EOF.
    server.write_all(b"bye").await.expect("last write");
    server.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut rest))
        .await
        .expect("EOF arrives")
        .expect("read to the end");
    assert_eq!(rest, b"bye");
}
