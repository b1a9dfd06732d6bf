//! Shared by the security tests (tests/security*.rs): certificates made here with rcgen (a CA,
//! a server certificate for `localhost` and `127.0.0.1`, client certificates for mutual TLS),
//! written as PEM files into the test's directory, the client side of TLS (rustls with ring)
//! that trusts the test CA, and the settings of a server with authentication on.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use brook::server::{Listen, ServeConfig};
use brook_broker::auth::{Auth, AuthConfig, Principal};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test certificate authority.
pub(crate) struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

impl TestCa {
    /// A new CA called `name`.
    pub(crate) fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let pem = issuer.pem();
        TestCa { issuer, pem }
    }

    /// A certificate for the server (`localhost`, `127.0.0.1`) and its key, PEM.
    pub(crate) fn server(&self) -> (String, String) {
        self.leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "brook test server",
        )
    }

    /// A client certificate with subject `CN=<cn>,O=brook-tests` and its key, PEM.
    pub(crate) fn client(&self, cn: &str) -> (String, String) {
        self.leaf(Vec::new(), cn)
    }

    fn leaf(&self, names: Vec<String>, cn: &str) -> (String, String) {
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "brook-tests");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate to `dir/<name>`; returns the path.
    pub(crate) fn write(&self, dir: &Path, name: &str) -> PathBuf {
        write(dir, name, &self.pem)
    }
}

/// Writes `text` to `dir/name`; returns the path.
pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a PEM file");
    path
}

/// A rustls client config trusting `ca_pem`, offering `alpn`, with a client certificate when
/// `identity` (certificate PEM, key PEM) is given.
pub(crate) fn client_config(
    ca_pem: &str,
    alpn: &[&[u8]],
    identity: Option<(&str, &str)>,
) -> rustls::ClientConfig {
    #[allow(deprecated)] // ring, as the server: see brook_door::tls
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA added");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client certificate PEM");
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("client key PEM");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client identity")
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// An HTTP/1.1 client over TLS, written by hand on tokio-rustls: one connection, kept alive
/// between requests, so a test can see that a connection opened before a reload is still served.
pub(crate) struct Https {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

impl Https {
    /// Connects to `addr` and runs the handshake for `localhost`, trusting `ca_pem`.
    pub(crate) async fn connect(
        addr: std::net::SocketAddr,
        ca_pem: &str,
        identity: Option<(&str, &str)>,
    ) -> std::io::Result<Https> {
        let config = client_config(ca_pem, &[b"http/1.1"], identity);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut stream = connector.connect(name, tcp).await?;
        // TLS 1.3 sends the server's verdict on a client certificate after the handshake:
        // read nothing yet, but make the first request find out.
        use tokio::io::AsyncWriteExt;
        stream.flush().await?;
        Ok(Https { stream })
    }

    /// Sends one request (a JSON body when given) and reads its answer (by Content-Length).
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> std::io::Result<Answer> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            head.push_str("content-type: application/json\r\n");
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(body.as_bytes()).await?;
        self.stream.flush().await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_end, length) = loop {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while buf.len() < head_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
        Ok(Answer { status, body })
    }
}

/// One request on a new connection.
pub(crate) async fn https(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> std::io::Result<Answer> {
    Https::connect(addr, ca_pem, identity)
        .await?
        .request(method, path, &[], body)
        .await
}

/// Creates `users` in the data directory `data` offline, as `brook user create --data-dir`
/// does; each user's password is `<name>-pw`.
pub(crate) async fn create_users(data: &Path, users: &[&str]) {
    let auth = Auth::open(data, AuthConfig::default())
        .await
        .expect("security store opens");
    for user in users {
        auth.create_user(user, format!("{user}-pw").as_bytes())
            .await
            .expect("user");
    }
}

/// The settings of a server on `data`: every door on a loopback port of its own, durability
/// none, no rebalance delay; authentication as by default (off).
pub(crate) fn loopback_config(data: &Path) -> ServeConfig {
    let mut config = ServeConfig::default();
    config.broker.data_dir = data.to_path_buf();
    config.broker.log.durability = brook_broker::Durability::None;
    config.kafka.group_initial_rebalance_delay = Duration::ZERO;
    let any = Listen::On("127.0.0.1:0".parse().expect("address"));
    config.grpc_addr = any;
    config.kafka_addr = any;
    config.http_addr = any;
    config
}

/// [`loopback_config`] with authentication on and `User:admin` a superuser.
pub(crate) fn auth_config(data: &Path) -> ServeConfig {
    let mut config = loopback_config(data);
    config.auth.enabled = true;
    config.auth.superusers = vec![Principal::user("admin").expect("name")];
    config
}
