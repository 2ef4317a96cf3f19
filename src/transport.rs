//! The byte stream under the handshake and the connection: plain TCP, or TLS as OTP's
//! `inet_tls_dist` runs it (the distribution handshake and every frame inside a TLS
//! session, EPMD left plain).
//!
//! TLS is rustls (through tokio-rustls, with ring's cryptography): certificates and
//! keys in PEM, the peer verified as OTP does with `verify_peer` on both sides: the
//! accepting side asks for a client certificate and refuses a peer without one
//! (`fail_if_no_peer_cert`), the connecting side checks the server's chain and that it
//! names the host of the node name (`alex@localhost` must present `localhost`).

use crate::term::{chardata_to_string, Inspect, Match, Term};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};
use tokio_rustls::TlsStream;

/// TLS for a node's distribution: one certificate for both roles, and the CA its peers'
/// certificates must chain to. A node with it never speaks plain TCP distribution.
///
/// Next to an `erl -proto_dist inet_tls -ssl_dist_optfile dist.conf` whose `dist.conf`
/// names `certfile`, `keyfile` and `cacertfile` with `{verify, verify_peer}` (and
/// `{fail_if_no_peer_cert, true}` on the server side), the same three files:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = cnode::NodeConfig::new("moebi@localhost", "secret_token");
/// config.tls = Some(cnode::TlsConfig::from_pem_files("cert.pem", "key.pem", "ca.pem")?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why (in the message, not also as the error's source).
        error: io::Error,
    },
    /// The PEM text holds no certificate or key of the kind wanted.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the certificates or the key.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// The CA cannot verify clients.
    #[error("{0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

impl TlsConfig {
    /// From PEM files: this node's certificate (chain), its private key, and the CA
    /// certificates peers are verified against. An error names the file.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let own = Identity::from_files(cert.as_ref(), key.as_ref())?;
        let ca = ca.as_ref();
        let roots = roots_from(&read(ca)?, &ca.display().to_string())?;
        Self::build(own.clone(), own, roots, None)
    }

    /// From an OTP `-ssl_dist_optfile` file, the one the BEAM nodes of the cluster are
    /// started with. The `server` options make the side that accepts, the `client`
    /// options the side that connects (a section without a certificate takes the other
    /// one's): `certfile` and `keyfile` (default: the `certfile`), or the first of
    /// `certs_keys`; `cacertfile`; `versions` (`'tlsv1.2'`, `'tlsv1.3'`). Peers are
    /// verified both ways: a `{verify, verify_none}` or a missing `cacertfile` is an
    /// error, as is a `password` (decrypt the key first); the other options (`depth`,
    /// `secure_renegotiate`, ciphers) are the BEAM's and left to it. Relative paths are
    /// relative to where the program runs, as for the BEAM.
    pub fn from_optfile(path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| TlsError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let bad = |why: String| TlsError::Pem(format!("{}: {why}", path.display()));
        let term = crate::term::parse_erlang(&text).map_err(|e| bad(e.to_string()))?;
        let sections = term
            .as_list()
            .ok_or_else(|| bad("expected [{server, Opts}, {client, Opts}]".into()))?;
        let options = |role: &str| -> Vec<(String, Term)> {
            let mut found = Vec::new();
            for section in sections {
                let Some([r, opts]) = section.as_tuple_n(2) else {
                    continue;
                };
                if !r.is_atom(role) {
                    continue;
                }
                for o in opts.as_list().unwrap_or_default() {
                    if let Some([Term::Atom(k), v]) = o.as_tuple_n(2) {
                        found.push((k.name().to_owned(), v.clone()));
                    }
                }
            }
            found
        };
        let (server, client) = (options("server"), options("client"));
        if server.is_empty() && client.is_empty() {
            return Err(bad("no server or client options".into()));
        }
        for (key, value) in server.iter().chain(&client) {
            match key.as_str() {
                "verify" if value.is_atom("verify_none") => {
                    return Err(bad("{verify, verify_none}: a Rust node always verifies \
                         its peers (give a cacertfile and verify_peer)"
                        .into()))
                }
                "password" => {
                    return Err(bad("{password, _}: encrypted keys are not read here; \
                         give the key decrypted (openssl pkey -in key.pem -out plain.pem)"
                        .into()))
                }
                _ => {}
            }
        }
        let identity = |opts: &[(String, Term)]| -> Result<Option<Identity>, TlsError> {
            let file = |k: &str| {
                opts.iter()
                    .find(|(key, _)| key == k)
                    .and_then(|(_, v)| chardata_to_string(v))
            };
            // `certs_keys` (OTP 25): a list of maps, the first one taken.
            let from_map = opts
                .iter()
                .find(|(k, _)| k == "certs_keys")
                .and_then(|(_, v)| v.as_list()?.first().cloned())
                .and_then(|m| {
                    let get = |k: &str| {
                        let Term::Map(map) = &m else { return None };
                        map.map
                            .get(&crate::term::atom(k))
                            .and_then(chardata_to_string)
                    };
                    Some((get("certfile")?, get("keyfile")))
                });
            let (cert, key) = match (file("certfile"), from_map) {
                (Some(cert), _) => (cert, file("keyfile")),
                (None, Some((cert, key))) => (cert, key),
                (None, None) => return Ok(None),
            };
            let key = key.unwrap_or_else(|| cert.clone());
            Identity::from_files(Path::new(&cert), Path::new(&key)).map(Some)
        };
        let (server_id, client_id) = (identity(&server)?, identity(&client)?);
        let (server_id, client_id) = match (server_id, client_id) {
            (Some(s), Some(c)) => (s, c),
            (Some(one), None) | (None, Some(one)) => (one.clone(), one),
            (None, None) => return Err(bad("no certfile (nor certs_keys)".into())),
        };
        let find = |k: &str| {
            server
                .iter()
                .chain(&client)
                .find(|(key, _)| key == k)
                .map(|(_, v)| v)
        };
        let ca = find("cacertfile")
            .and_then(chardata_to_string)
            .ok_or_else(|| bad("no cacertfile: peers are verified against it".into()))?;
        let roots = roots_from(&read(Path::new(&ca))?, &ca)?;
        let versions = match find("versions") {
            None => None,
            Some(list) => {
                let mut versions = Vec::new();
                for v in list.as_list().unwrap_or_default() {
                    match v.as_atom() {
                        Some("tlsv1.3") => versions.push(&rustls::version::TLS13),
                        Some("tlsv1.2") => versions.push(&rustls::version::TLS12),
                        // Older ones are not offered by rustls; a list of only those
                        // is an error below.
                        _ => {}
                    }
                }
                if versions.is_empty() {
                    return Err(bad(format!(
                        "{{versions, {}}}: only 'tlsv1.2' and 'tlsv1.3' are spoken here",
                        list.erlang()
                    )));
                }
                Some(versions)
            }
        };
        Self::build(server_id, client_id, roots, versions)
    }

    /// As [`from_pem_files`](TlsConfig::from_pem_files), from the PEM text itself.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Self, TlsError> {
        let own = Identity {
            chain: chain_from(cert, "certificate")?,
            key: Arc::new(key_from(key, "key")?),
        };
        Self::build(own.clone(), own, roots_from(ca, "CA")?, None)
    }

    fn build(
        server_id: Identity,
        client_id: Identity,
        roots: rustls::RootCertStore,
        versions: Option<Vec<&'static rustls::SupportedProtocolVersion>>,
    ) -> Result<Self, TlsError> {
        let roots = Arc::new(roots);
        // ring: no C toolchain or cmake to build, unlike aws-lc-rs. rustls 0.23.48 marks
        // its provider deprecated for lacking post-quantum key exchange; the BEAM's
        // inet_tls_dist peers agree on the classical groups it has (x25519, P-256).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = versions.unwrap_or_else(|| rustls::DEFAULT_VERSIONS.to_vec());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(server_id.chain, server_id.key.clone_key())?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)?
            .with_root_certificates(roots)
            .with_client_auth_cert(client_id.chain, client_id.key.clone_key())?;
        Ok(TlsConfig {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// A certificate chain and its key: what one side presents.
#[derive(Clone)]
struct Identity {
    chain: Vec<pki_types::CertificateDer<'static>>,
    key: Arc<pki_types::PrivateKeyDer<'static>>,
}

impl Identity {
    fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Identity {
            chain: chain_from(&read(cert)?, &cert.display().to_string())?,
            key: Arc::new(key_from(&read(key)?, &key.display().to_string())?),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.display().to_string(),
        error,
    })
}

/// The certificates of a PEM text (`what` names it in errors: a file, or "certificate").
fn chain_from(pem: &[u8], what: &str) -> Result<Vec<pki_types::CertificateDer<'static>>, TlsError> {
    use pki_types::pem::PemObject;
    let chain: Vec<_> = pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(format!("{what}: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Pem(format!("{what}: no CERTIFICATE in the PEM")));
    }
    Ok(chain)
}

/// The private key of a PEM text.
fn key_from(pem: &[u8], what: &str) -> Result<pki_types::PrivateKeyDer<'static>, TlsError> {
    use pki_types::pem::PemObject;
    let text = String::from_utf8_lossy(pem);
    if text.contains("ENCRYPTED") {
        return Err(TlsError::Pem(format!(
            "{what}: an encrypted key; give it decrypted (openssl pkey -in {what} -out plain.pem)"
        )));
    }
    pki_types::PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| TlsError::Pem(format!("{what}: no private key in the PEM ({e})")))
}

/// The CA certificates of a PEM text.
fn roots_from(pem: &[u8], what: &str) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in chain_from(pem, what)? {
        roots
            .add(ca)
            .map_err(|e| TlsError::Pem(format!("{what}: {e}")))?;
    }
    Ok(roots)
}

/// A connection's byte stream.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Connects to `port` on `host`, at the first of its addresses `ips` that answers,
    /// then TLS (for the name `host`) when `tls` is given.
    pub(crate) async fn connect(
        host: &str,
        ips: &[std::net::IpAddr],
        port: u16,
        tls: Option<&TlsConfig>,
    ) -> io::Result<Stream> {
        let addrs: Vec<std::net::SocketAddr> = ips.iter().map(|&ip| (ip, port).into()).collect();
        let tcp = TcpStream::connect(&addrs[..]).await?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls else {
            return Ok(Stream::Plain(tcp));
        };
        let name = pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error("TLS with", host, e))?;
        Ok(Stream::Tls(Box::new(TlsStream::Client(stream))))
    }

    /// An accepted socket, with TLS when `tls` is given.
    pub(crate) async fn accept(tcp: TcpStream, tls: Option<&TlsConfig>) -> io::Result<Stream> {
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls else {
            return Ok(Stream::Plain(tcp));
        };
        let addr = tcp
            .peer_addr()
            .map_or_else(|_| "the peer".to_owned(), |a| a.to_string());
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
        let stream = acceptor
            .accept(tcp)
            .await
            .map_err(|e| tls_error("TLS from", &addr, e))?;
        Ok(Stream::Tls(Box::new(TlsStream::Server(stream))))
    }

    /// Reading and writing halves, for the connection's reader and writer tasks.
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

/// A TLS failure as the log says it: `TLS from 127.0.0.1:5555: invalid peer certificate: UnknownIssuer`.
fn tls_error(what: &str, peer: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {peer}: {e}"))
}

pub(crate) enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

pub(crate) enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

/// A TLS peer that closes its socket without a `close_notify` (a BEAM node halting does)
/// has closed the connection, as on plain TCP: an end of input, not an error.
fn eof_is_end(r: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
    match r {
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
        other => other,
    }
}

macro_rules! delegate_read {
    ($t:ty, $($v:ident),*) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => eof_is_end(Pin::new(s).poll_read(cx, buf)),)*
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($t:ty, $($v:ident),*) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_write(cx, buf),)*
                }
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_write_vectored(cx, bufs),)*
                }
            }
            fn is_write_vectored(&self) -> bool {
                match self {
                    $(Self::$v(s) => s.is_write_vectored(),)*
                }
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_flush(cx),)*
                }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => Pin::new(s).poll_shutdown(cx),)*
                }
            }
        }
    };
}

delegate_read!(Stream, Plain, Tls);
delegate_write!(Stream, Plain, Tls);
delegate_read!(ReadHalf, Plain, Tls);
delegate_write!(WriteHalf, Plain, Tls);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optfile_without_what_it_needs_says_so() {
        let dir = std::env::temp_dir().join(format!("cnode-optfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let no_cert = write("a.conf", "[{server, [{cacertfile, \"ca.pem\"}]}].");
        let e = TlsConfig::from_optfile(&no_cert).unwrap_err().to_string();
        assert!(e.ends_with("no certfile (nor certs_keys)"), "{e}");
        let broken = write("b.conf", "[{server, [{certfile, \"c.pem\"}}].");
        let e = TlsConfig::from_optfile(&broken).unwrap_err().to_string();
        assert!(e.contains("1:"), "{e}");
        let missing = write(
            "c.conf",
            "[{client, [{certfile, \"/nonexistent/c.pem\"}, {cacertfile, \"ca.pem\"}]}].",
        );
        let e = TlsConfig::from_optfile(&missing).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/c.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
