//! The byte stream under the handshake and the connection: plain TCP, or TLS as OTP's
//! `inet_tls_dist` runs it (the distribution handshake and every frame inside a TLS
//! session, EPMD left plain).
//!
//! TLS is rustls (through tokio-rustls, with ring's cryptography): certificates and
//! keys in PEM, the peer verified as OTP does with `verify_peer` on both sides: the
//! accepting side asks for a client certificate and refuses a peer without one
//! (`fail_if_no_peer_cert`), the connecting side checks the server's chain and that it
//! names the host of the node name (`alex@localhost` must present `localhost`).

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
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
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
    /// certificates peers are verified against.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        Self::from_pem(
            &read(cert.as_ref())?,
            &read(key.as_ref())?,
            &read(ca.as_ref())?,
        )
    }

    /// From an OTP `-ssl_dist_optfile` file, the one the BEAM nodes of the cluster are
    /// started with: the `certfile`, `keyfile` (default: the `certfile`) and `cacertfile`
    /// of its `server` options, else of its `client` options. Peers are verified both
    /// ways whatever its `verify` says: a node never runs TLS that trusts anyone.
    pub fn from_optfile(path: impl AsRef<Path>) -> Result<Self, TlsError> {
        use crate::term::{chardata_to_string, Match};
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let bad = |why: String| TlsError::Pem(format!("{}: {why}", path.display()));
        let term = crate::term::parse_erlang(&text).map_err(|e| bad(e.to_string()))?;
        let sections = term
            .as_list()
            .ok_or_else(|| bad("expected [{server, Opts}, {client, Opts}]".into()))?;
        let option = |role: &str, key: &str| {
            sections.iter().find_map(|s| {
                let [r, opts] = s.as_tuple_n(2)? else {
                    return None;
                };
                if !r.is_atom(role) {
                    return None;
                }
                opts.as_list()?.iter().find_map(|o| {
                    let [k, v] = o.as_tuple_n(2)? else {
                        return None;
                    };
                    k.is_atom(key).then(|| chardata_to_string(v)).flatten()
                })
            })
        };
        let get = |key: &str| option("server", key).or_else(|| option("client", key));
        let cert = get("certfile").ok_or_else(|| bad("no certfile".into()))?;
        let key = get("keyfile").unwrap_or_else(|| cert.clone());
        let ca = get("cacertfile").ok_or_else(|| bad("no cacertfile".into()))?;
        // Relative paths are relative to where the node runs, as for the BEAM.
        Self::from_pem_files(cert, key, ca)
    }

    /// As [`from_pem_files`](TlsConfig::from_pem_files), from the PEM text itself.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Self, TlsError> {
        use pki_types::pem::PemObject;
        let chain: Vec<pki_types::CertificateDer<'static>> =
            pki_types::CertificateDer::pem_slice_iter(cert)
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::Pem(format!("certificate: {e}")))?;
        if chain.is_empty() {
            return Err(TlsError::Pem(
                "certificate: no CERTIFICATE in the PEM".into(),
            ));
        }
        let key = pki_types::PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| TlsError::Pem(format!("key: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in pki_types::CertificateDer::pem_slice_iter(ca) {
            let ca = ca.map_err(|e| TlsError::Pem(format!("CA: {e}")))?;
            roots.add(ca)?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem("CA: no CERTIFICATE in the PEM".into()));
        }
        let roots = Arc::new(roots);
        // ring: no C toolchain or cmake to build, unlike aws-lc-rs. rustls 0.23.48 marks
        // its provider deprecated for lacking post-quantum key exchange; the BEAM's
        // inet_tls_dist peers agree on the classical groups it has (x25519, P-256).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(TlsConfig {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
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
        assert!(e.ends_with("no certfile"), "{e}");
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
