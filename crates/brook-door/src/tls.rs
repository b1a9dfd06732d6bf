//! TLS on a door (rustls with the ring provider: no OpenSSL), with certificates reloaded
//! without dropping a connection.
//!
//! [`TlsFiles`] names a PEM certificate chain, its private key and, for mutual TLS, the CA
//! that signs client certificates. [`Tls::load`] reads them once for the process; each door
//! takes its own view with [`Tls::for_door`] (the gRPC and HTTP doors offer `h2` by ALPN, the
//! Kafka door nothing, as Kafka's SSL listener). [`Tls::reload`] (the server calls it on
//! SIGHUP) reads the files again: handshakes from then on use the new certificate and CA,
//! connections already open keep theirs. A reload that fails keeps the old material and says
//! why.
//!
//! With a client CA, every client must present a certificate it signed (mutual TLS); the
//! certificate's subject is then the connection's principal ([`Stream::client_subject`],
//! `User:CN=app,O=acme` in Kafka's RFC 2253 spelling).
//!
//! A handshake runs on the connection's own task, within [`HANDSHAKE_MAX`]; a client that
//! speaks plaintext to a TLS port fails its handshake and is closed, touching nothing else.
//! [`Incoming`] does the handshakes for a door whose protocol library takes ready connections
//! (tonic, axum), so a slow handshake never holds the accept loop.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::accept::Acceptor;
use crate::connection::Connection;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_MAX: Duration = Duration::from_secs(10);

/// What a TLS connection reads from its socket at once. rustls asks for at most 4 KiB per
/// read (a TLS record is up to 16 KiB), so without a buffer beneath it a client's large
/// requests (a Kafka produce of a megabyte) cost a system call per 4 KiB where the plaintext
/// door reads them in one; the copy out of this buffer costs less than those calls.
const SOCKET_READ_BYTES: usize = 64 * 1024;

/// The socket under TLS: read through a buffer of [`SOCKET_READ_BYTES`], written directly.
type Socket = BufReader<Connection>;

/// Handshakes finished but not yet taken by the door (tonic, axum) at once; past it, the
/// finished connections wait (their handshake task holds them).
const READY_MAX: usize = 64;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} holds no {expected} in PEM")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("bad {what} {path}: {reason}")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// The files TLS is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM, leaf first (`--tls-cert`).
    pub cert: PathBuf,
    /// Its private key, PEM: PKCS#8, PKCS#1 or SEC1 (`--tls-key`).
    pub key: PathBuf,
    /// The CA whose certificates clients must present (`--tls-client-ca`): mutual TLS.
    pub client_ca: Option<PathBuf>,
}

/// What the files hold, as rustls takes it.
struct Material {
    key: Arc<CertifiedKey>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// The certificate material of the process, swapped whole on reload.
struct Shared {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Material>>,
}

/// TLS for the doors: the material every door shares and this door's settings (ALPN). Clone
/// it freely; every clone sees a reload.
#[derive(Clone)]
pub struct Tls {
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.shared.files)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Tls {
    /// The same material (and so the same reloads).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for Tls {}

impl Tls {
    /// Reads `files` (blocking: call it before serving, or on the blocking pool).
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        // ring, not aws-lc-rs: no C toolchain beyond cc to build. rustls 0.23.48 deprecates
        // ring's provider only for lacking post-quantum key exchange, which no Kafka, gRPC or
        // HTTP client here negotiates yet.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let material = read_material(&files, &provider)?;
        let shared = Arc::new(Shared {
            files,
            provider,
            current: RwLock::new(Arc::new(material)),
        });
        Self::with_alpn(shared, Vec::new())
    }

    /// This TLS for a door that offers `alpn` (`[b"h2"]` for gRPC, `[b"h2", b"http/1.1"]` for
    /// HTTP, none for Kafka).
    pub fn for_door(&self, alpn: &[&[u8]]) -> Self {
        Self::with_alpn(
            Arc::clone(&self.shared),
            alpn.iter().map(|p| p.to_vec()).collect(),
        )
        .unwrap_or_else(|_| self.clone())
    }

    fn with_alpn(shared: Arc<Shared>, alpn: Vec<Vec<u8>>) -> Result<Self, TlsError> {
        let builder = ServerConfig::builder_with_provider(Arc::clone(&shared.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid {
                what: "TLS setup",
                path: shared.files.cert.clone(),
                reason: e.to_string(),
            })?;
        let builder = if shared.files.client_ca.is_some() {
            builder.with_client_cert_verifier(Arc::new(Current(Arc::clone(&shared))))
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_cert_resolver(Arc::new(Current(Arc::clone(&shared))));
        config.alpn_protocols = alpn;
        Ok(Self {
            shared,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The files this TLS is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.shared.files
    }

    /// Reads the files again; new handshakes use what they hold now. On failure the old
    /// material stays. Blocking.
    pub fn reload(&self) -> Result<(), TlsError> {
        let material = read_material(&self.shared.files, &self.shared.provider)?;
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(material);
        Ok(())
    }

    /// Runs the server side of the handshake on `connection`, within [`HANDSHAKE_MAX`].
    pub async fn accept(&self, connection: Connection) -> io::Result<Stream> {
        let peer = connection.peer_addr();
        let socket = BufReader::with_capacity(SOCKET_READ_BYTES, connection);
        match tokio::time::timeout(HANDSHAKE_MAX, self.acceptor.accept(socket)).await {
            Ok(Ok(stream)) => Ok(Stream::tls(stream)),
            Ok(Err(error)) => Err(io::Error::new(
                error.kind(),
                format!("TLS handshake with {peer} failed: {error}"),
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake with {peer} took longer than {} s",
                    HANDSHAKE_MAX.as_secs()
                ),
            )),
        }
    }
}

fn current(shared: &Shared) -> Arc<Material> {
    Arc::clone(
        &shared
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

fn read_material(files: &TlsFiles, provider: &Arc<CryptoProvider>) -> Result<Material, TlsError> {
    let certs = read_certs("certificate", &files.cert)?;
    let key_pem = read_file("private key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
        what: "private key",
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let key = CertifiedKey::from_der(certs, key, provider).map_err(|e| TlsError::Invalid {
        what: "certificate and key",
        path: files.cert.clone(),
        reason: e.to_string(),
    })?;
    let client_verifier = match &files.client_ca {
        None => None,
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("client CA", path)? {
                roots.add(cert).map_err(|e| TlsError::Invalid {
                    what: "client CA",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .build()
                    .map_err(|e| TlsError::Invalid {
                        what: "client CA",
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
            Some(verifier)
        }
    };
    Ok(Material {
        key: Arc::new(key),
        client_verifier,
    })
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The material in use now, as rustls asks for it: the server's certificate, and the client
/// CA's verdict.
struct Current(Arc<Shared>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Current")
    }
}

impl Current {
    fn verifier(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        current(&self.0).client_verifier.clone()
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&current(&self.0).key))
    }
}

impl ClientCertVerifier for Current {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional (RFC 8446 4.2.4); the CA can change on reload, so none are sent.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.verifier() {
            Some(verifier) => verifier.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General("no client CA is configured".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A door's connection, in the clear or over TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(Connection),
    Tls(Box<TlsStream<Socket>>),
}

impl Stream {
    fn tls(stream: TlsStream<Socket>) -> Self {
        Stream::Tls(Box::new(stream))
    }

    fn connection(&self) -> &Connection {
        match self {
            Stream::Plain(connection) => connection,
            Stream::Tls(stream) => stream.get_ref().0.get_ref(),
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.connection().peer_addr()
    }

    /// The door's end of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.connection().local_addr()
    }

    /// Whether the connection is over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The subject of the client's certificate (mutual TLS), in RFC 2253 order
    /// (`CN=app,O=acme,C=DE`): the name Kafka makes its principal from.
    pub fn client_subject(&self) -> Option<String> {
        let Stream::Tls(stream) = self else {
            return None;
        };
        let leaf = stream.get_ref().1.peer_certificates()?.first()?;
        subject_of(leaf.as_ref())
    }
}

/// The subject of a DER certificate, RFC 4514 (RFC 2253's successor, same order and syntax).
pub fn subject_of(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate.subject.to_string())
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A door's connections, handshaken: for a protocol library that takes ready connections one
/// at a time (tonic, axum). Each handshake runs on its own task, so none holds up the next
/// client. Dropping it stops accepting (the listening socket closes).
#[derive(Debug)]
pub struct Incoming {
    ready: mpsc::Receiver<Stream>,
    task: JoinHandle<()>,
}

impl Incoming {
    /// Takes `connections` from `acceptor`, over `tls` when it is set.
    pub fn new(mut acceptor: Acceptor, tls: Option<Tls>) -> Self {
        let (tx, ready) = mpsc::channel(READY_MAX);
        let door = acceptor.door();
        let task = tokio::spawn(async move {
            loop {
                let connection = tokio::select! {
                    connection = acceptor.accept() => connection,
                    () = tx.closed() => break,
                };
                match &tls {
                    None => {
                        if tx.send(Stream::Plain(connection)).await.is_err() {
                            break;
                        }
                    }
                    Some(tls) => {
                        let (tls, tx) = (tls.clone(), tx.clone());
                        tokio::spawn(async move {
                            match tls.accept(connection).await {
                                Ok(stream) => {
                                    let _ = tx.send(stream).await;
                                }
                                Err(error) => tracing::debug!(door, %error, "TLS handshake failed"),
                            }
                        });
                    }
                }
            }
        });
        Self { ready, task }
    }

    /// The next connection ready to serve.
    pub async fn next(&mut self) -> Stream {
        match self.ready.recv().await {
            Some(stream) => stream,
            // The accepting task never ends while this lives; if it did, there is no next.
            None => std::future::pending().await,
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}
