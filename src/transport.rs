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
    /// The name a server's certificate must have, when not its node name's host.
    server_name: Option<String>,
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
        let anchors = chain_from(&read(ca)?, &ca.display().to_string())?;
        let side = Side::new(Some(own), anchors);
        Self::build(side.clone(), side)
    }

    /// From an OTP `-ssl_dist_optfile` file, the one the BEAM nodes of the cluster are
    /// started with. The `server` options make the side that accepts, the `client`
    /// options the side that connects, each with its own: `certfile` and `keyfile`
    /// (default: the `certfile`), or the first of `certs_keys` (a client section
    /// without a certificate presents none, as the BEAM's, and a server with
    /// `fail_if_no_peer_cert` refuses it; a server section must have one); `cacertfile` (its self-signed
    /// certificates are the roots peers' chains must lead to, as OTP has it; an
    /// intermediate there helps build a chain and is no root of its own); `versions`
    /// (`'tlsv1.2'`, `'tlsv1.3'`); `ciphers` (OpenSSL's names,
    /// `"ECDHE-ECDSA-AES256-GCM-SHA384"`, TLS 1.3's, `"TLS_AES_128_GCM_SHA256"`, or OTP's
    /// maps; those rustls does not have are left out with a warning); `supported_groups`
    /// and `eccs` (`x25519`, `secp256r1`, `secp384r1`); `depth` (the intermediate
    /// certificates between a peer's and the root); `server_name_indication` (the name
    /// a server's certificate must have, instead of its node name's host; `disable`
    /// sends no name and takes a certificate of any name, its chain verified, as OTP 26
    /// and later do). A key given
    /// twice counts as its last, as `ssl` takes it; a file with only one section gives
    /// both sides its options.
    ///
    /// Peers are verified both ways, and what would weaken that is refused with the
    /// reason: `{verify, verify_none}`, a section without `cacertfile` or one without a
    /// root, a `crl_check` (revocation is not checked here: a revoked certificate would
    /// pass), `signature_algs` (not restricted here), `verify_fun` and `partial_chain`
    /// (Erlang functions, such as `inet_tls_dist:verify_client/3`, which this node
    /// cannot run), a `password` (decrypt the key first). A client without a certificate
    /// is refused even without `{fail_if_no_peer_cert, true}` (the BEAM's default is
    /// `false`, which accepts it): a warning says so when the server section does not
    /// set it; renegotiation is never accepted
    /// (`secure_renegotiate` is moot). Other options (`reuse_sessions`, ...) are the
    /// BEAM's and left to it. Relative paths are relative to where the program runs, as
    /// for the BEAM.
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
        let (server, client) = match (server.is_empty(), client.is_empty()) {
            (true, true) => return Err(bad("no server or client options".into())),
            (true, false) => (client.clone(), client),
            (false, true) => (server.clone(), server),
            (false, false) => (server, client),
        };
        let demands_certificates = server
            .iter()
            .rfind(|(k, _)| k == "fail_if_no_peer_cert")
            .is_some_and(|(_, v)| v.is_atom("true"));
        if !demands_certificates {
            tracing::warn!(
                "{}: a client without a certificate is refused by this node, where a BEAM \
                 node without {{fail_if_no_peer_cert, true}} accepts it",
                path.display()
            );
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
                "signature_algs" | "signature_algs_cert" => {
                    return Err(bad(format!(
                        "{{{key}, ...}}: the signature algorithms are not restricted by \
                         this node, so a peer the BEAM refuses would be accepted; start it \
                         without {key} only where the restriction is not relied on"
                    )))
                }
                "verify_fun" | "partial_chain" => {
                    return Err(bad(format!(
                        "{{{key}, ...}}: a check written in Erlang, which this node cannot \
                         run, so a peer the BEAM refuses would be accepted (its certificate \
                         is still verified against the cacertfile); start it without \
                         {key} only where that check is not relied on"
                    )))
                }
                "crl_check" if !value.is_atom("false") => {
                    return Err(bad(format!(
                        "{{crl_check, {}}}: certificate revocation is not checked by this \
                         node, so a revoked certificate would be accepted; start it \
                         without crl_check only where revocation is not relied on",
                        value.erlang()
                    )))
                }
                _ => {}
            }
        }
        let identity = |opts: &[(String, Term)]| -> Result<Option<Identity>, TlsError> {
            let file = |k: &str| {
                opts.iter()
                    .rfind(|(key, _)| key == k)
                    .and_then(|(_, v)| chardata_to_string(v))
            };
            // `certs_keys` (OTP 25): a list of maps, the first one taken.
            let from_map = opts
                .iter()
                .rfind(|(k, _)| k == "certs_keys")
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
        // A file the optfile names and that cannot be read: said with the optfile, and
        // where a relative path was looked for.
        let within = |e: TlsError| match e {
            TlsError::Read { path: file, error } => {
                let cwd = std::env::current_dir()
                    .map_or_else(|_| "?".into(), |d| d.display().to_string());
                let relative = if Path::new(&file).is_relative() {
                    format!(" (relative to {cwd}, where the node runs)")
                } else {
                    String::new()
                };
                bad(format!("{file}: {error}{relative}"))
            }
            e => e,
        };
        let (server_id, client_id) = (
            identity(&server).map_err(within)?,
            identity(&client).map_err(within)?,
        );
        // A server section must have a certificate; a client section without one
        // presents none, as the BEAM's (a server with `fail_if_no_peer_cert` refuses it).
        if server_id.is_none() {
            return Err(bad(
                "no certfile (nor certs_keys) in the server section: connections are \
                 accepted with it"
                    .into(),
            ));
        }
        let side = |role: &str, opts: &[(String, Term)], id: Option<Identity>| {
            // The last of a key given twice, as `ssl` takes it.
            let find = |k: &str| opts.iter().rfind(|(key, _)| key == k).map(|(_, v)| v);
            let ca = find("cacertfile")
                .and_then(chardata_to_string)
                .ok_or_else(|| {
                    bad(format!(
                        "no cacertfile in the {role} section: peers are verified against it"
                    ))
                })?;
            let mut side = Side::new(id, chain_from(&read(Path::new(&ca))?, &ca)?);
            if let Some(list) = find("versions") {
                side.versions = Some(versions(list).map_err(|why| bad(format!("{role}: {why}")))?);
            }
            if let Some(ciphers) = find("ciphers") {
                side.ciphers =
                    Some(cipher_suites(ciphers).map_err(|why| bad(format!("{role}: {why}")))?);
            }
            // `eccs` (TLS 1.2's curves) and `supported_groups` (TLS 1.3's): rustls has
            // one list for both; the groups in either, both given, in both.
            let groups = [find("supported_groups"), find("eccs")];
            if groups.iter().any(Option::is_some) {
                side.groups = Some(
                    key_groups(groups.into_iter().flatten())
                        .map_err(|why| bad(format!("{role}: {why}")))?,
                );
            }
            // A host name, or `disable`: no name sent, and a certificate of any name
            // will do (its chain verified), as OTP 26 and later take it (OTP 25 ignores
            // the option and checks the node name's host).
            let indication = find("server_name_indication");
            side.server_name = indication.and_then(chardata_to_string);
            side.any_name = indication.is_some_and(|v| v.is_atom("disable"));
            if let Some(depth) = find("depth") {
                let depth = depth
                    .as_int()
                    .and_then(|d| usize::try_from(d).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "{role}: {{depth, {}}}: expected a number of certificates",
                            depth.erlang()
                        ))
                    })?;
                side.depth = Some(depth);
            }
            Ok::<_, TlsError>(side)
        };
        let server = side("server", &server, server_id).map_err(within)?;
        let client = side("client", &client, client_id).map_err(within)?;
        Self::build(server, client)
    }

    /// As [`from_pem_files`](TlsConfig::from_pem_files), from the PEM text itself.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Self, TlsError> {
        let own = Identity {
            chain: chain_from(cert, "certificate")?,
            key: Arc::new(key_from(key, "key")?),
            source: "the certificate and key given".into(),
        };
        let side = Side::new(Some(own), chain_from(ca, "CA")?);
        Self::build(side.clone(), side)
    }

    fn build(server: Side, client: Side) -> Result<Self, TlsError> {
        let server_config = {
            let id = server
                .id
                .clone()
                .ok_or_else(|| TlsError::Pem("no certificate to accept connections with".into()))?;
            let provider = server.provider();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(server.roots()?),
                provider.clone(),
            )
            .build()?;
            let verifier = Arc::new(server.chains(verifier));
            rustls::ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&server.versions())
                .map_err(|e| versions_error(e, "server"))?
                .with_client_cert_verifier(verifier)
                .with_single_cert(id.chain, id.key.clone_key())
                .map_err(|e| key_error(e, &id.source))?
        };
        let client_config = {
            let provider = client.provider();
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(client.roots()?),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Pem(format!("the CA cannot verify servers: {e}")))?;
            let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = verifier;
            let verifier = Arc::new(client.chains(verifier));
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&client.versions())
                .map_err(|e| versions_error(e, "client"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier);
            let mut config = match &client.id {
                Some(id) => builder
                    .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                    .map_err(|e| key_error(e, &id.source))?,
                None => builder.with_no_client_auth(),
            };
            config.enable_sni = !client.any_name;
            config
        };
        Ok(TlsConfig {
            server: Arc::new(server_config),
            client: Arc::new(client_config),
            server_name: client.server_name,
        })
    }
}

/// rustls's error for a key that is not the certificate's, naming the files.
fn key_error(e: rustls::Error, source: &str) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Pem(format!(
            "{source}: the private key is not the key of the certificate"
        )),
        e => TlsError::Rustls(e),
    }
}

/// rustls's error for versions no cipher suite of the side serves, said so.
fn versions_error(e: rustls::Error, role: &str) -> TlsError {
    TlsError::Pem(format!(
        "{role}: no cipher suite of these ciphers for these versions ({e})"
    ))
}

/// What one side of the TLS connections (accepting or connecting) presents and accepts.
#[derive(Clone)]
struct Side {
    /// What it presents: a server always, a client when its section has a certificate.
    id: Option<Identity>,
    /// The CA certificates (`cacertfile`) peers' chains must lead to.
    anchors: Vec<pki_types::CertificateDer<'static>>,
    versions: Option<Vec<&'static rustls::SupportedProtocolVersion>>,
    ciphers: Option<Vec<rustls::SupportedCipherSuite>>,
    /// The key exchange groups (`supported_groups`, `eccs`).
    groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
    /// The host name the peer's certificate must name when connecting
    /// (`server_name_indication`), instead of the node name's host.
    server_name: Option<String>,
    /// A server certificate of any name will do, its chain verified
    /// (`{server_name_indication, disable}`); no name is sent either.
    any_name: bool,
    /// The most intermediate certificates a peer's chain may have (`depth`).
    depth: Option<usize>,
}

impl Side {
    fn new(id: Option<Identity>, anchors: Vec<pki_types::CertificateDer<'static>>) -> Self {
        Side {
            id,
            anchors,
            versions: None,
            ciphers: None,
            groups: None,
            server_name: None,
            any_name: false,
            depth: None,
        }
    }

    /// The trust anchors: the self-signed certificates of `cacertfile`, as OTP trusts
    /// a chain that ends at a root (an intermediate there helps build chains, as
    /// [`extra`](Self::extra), and is no anchor of its own).
    fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in self.roots_der() {
            roots
                .add(ca)
                .map_err(|e| TlsError::Pem(format!("cacertfile: {e}")))?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem(
                "cacertfile holds no self-signed CA certificate: peers' chains are \
                 verified up to a root, as OTP verifies them (an intermediate alone is \
                 not trusted)"
                    .into(),
            ));
        }
        Ok(roots)
    }

    fn roots_der(&self) -> Vec<pki_types::CertificateDer<'static>> {
        let self_signed = |c: &&pki_types::CertificateDer<'static>| {
            names(c).is_some_and(|(issuer, subject)| issuer == subject)
        };
        self.anchors.iter().filter(self_signed).cloned().collect()
    }

    /// `inner`, verifying with this side's roots, intermediates and depth.
    fn chains<V: ?Sized>(&self, inner: Arc<V>) -> Chains<V> {
        Chains {
            inner,
            any_name: self.any_name,
            depth: self.depth,
            roots: self.roots_der(),
            extra: self.extra(),
        }
    }

    /// The certificates of `cacertfile` that are not roots (intermediates).
    fn extra(&self) -> Vec<pki_types::CertificateDer<'static>> {
        let roots = self.roots_der();
        self.anchors
            .iter()
            .filter(|c| !roots.contains(c))
            .cloned()
            .collect()
    }

    fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        self.versions
            .clone()
            .unwrap_or_else(|| rustls::DEFAULT_VERSIONS.to_vec())
    }

    /// ring's cryptography, with this side's cipher suites.
    fn provider(&self) -> Arc<rustls::crypto::CryptoProvider> {
        // ring: no C toolchain or cmake to build, unlike aws-lc-rs. rustls 0.23.48 marks
        // its provider deprecated for lacking post-quantum key exchange; the BEAM's
        // inet_tls_dist peers agree on the classical groups it has (x25519, P-256).
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(ciphers) = &self.ciphers {
            provider.cipher_suites = ciphers.clone();
        }
        if let Some(groups) = &self.groups {
            provider.kx_groups = groups.clone();
        }
        Arc::new(provider)
    }
}

/// `{versions, [...]}`: the ones rustls speaks.
fn versions(list: &Term) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let mut versions = Vec::new();
    for v in list.as_list().unwrap_or_default() {
        match v.as_atom() {
            Some("tlsv1.3") => versions.push(&rustls::version::TLS13),
            Some("tlsv1.2") => versions.push(&rustls::version::TLS12),
            // Older ones are not offered by rustls; a list of only those is an error.
            _ => {}
        }
    }
    if versions.is_empty() {
        return Err(format!(
            "{{versions, {}}}: only 'tlsv1.2' and 'tlsv1.3' are spoken here",
            list.erlang()
        ));
    }
    Ok(versions)
}

/// `{ciphers, ...}`: a string of OpenSSL names joined by `:`, a list of names, or a
/// list of OTP's maps (`#{key_exchange => ecdhe_ecdsa, cipher => aes_128_gcm, mac =>
/// aead, prf => sha256}`); the suites of them rustls has, in the order given.
fn cipher_suites(value: &Term) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
    // One string (a charlist, not a list of them): names joined by `:`.
    let one_string = value
        .as_list()
        .is_some_and(|l| l.iter().all(|e| e.as_int().is_some()))
        || matches!(value, Term::Binary(_));
    let names: Vec<String> = match chardata_to_string(value) {
        Some(joined) if one_string => joined.split(':').map(str::to_owned).collect(),
        _ => value
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(|c| chardata_to_string(c).or_else(|| suite_of_map(c)))
            .collect(),
    };
    #[allow(deprecated)]
    let all = rustls::crypto::ring::default_provider().cipher_suites;
    let mut chosen = Vec::new();
    let mut left_out = Vec::new();
    for name in &names {
        let iana = iana_name(name.trim());
        let found = all
            .iter()
            .any(|s| format!("{:?}", s.suite()).replacen("TLS13_", "TLS_", 1) == iana);
        if !found {
            left_out.push(name.trim());
        }
        if let Some(suite) = all
            .iter()
            .find(|s| format!("{:?}", s.suite()).replacen("TLS13_", "TLS_", 1) == iana)
        {
            if !chosen
                .iter()
                .any(|c: &rustls::SupportedCipherSuite| c.suite() == suite.suite())
            {
                chosen.push(*suite);
            }
        }
    }
    if !chosen.is_empty() && !left_out.is_empty() {
        tracing::warn!(
            "TLS ciphers left out, not spoken here: {} (rustls has the AES-GCM and \
             ChaCha20-Poly1305 suites with ECDHE, and TLS 1.3's)",
            left_out.join(", ")
        );
    }
    if chosen.is_empty() {
        return Err(format!(
            "{{ciphers, {}}}: none of these is spoken here (rustls has the AES-GCM and \
             ChaCha20-Poly1305 suites with ECDHE, and TLS 1.3's)",
            value.erlang()
        ));
    }
    Ok(chosen)
}

/// The key exchange groups of `{supported_groups, [...]}` and `{eccs, [...]}` that
/// rustls has: `x25519`, `secp256r1`, `secp384r1`.
fn key_groups<'a>(
    lists: impl Iterator<Item = &'a Term>,
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    use rustls::crypto::ring::kx_group;
    let mut given = Vec::new();
    let mut chosen: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    for list in lists {
        given.push(list.erlang().to_string());
        for g in list.as_list().unwrap_or_default() {
            let group: &'static dyn rustls::crypto::SupportedKxGroup = match g.as_atom() {
                Some("x25519") => kx_group::X25519,
                Some("secp256r1") => kx_group::SECP256R1,
                Some("secp384r1") => kx_group::SECP384R1,
                _ => continue,
            };
            if !chosen.iter().any(|c| c.name() == group.name()) {
                chosen.push(group);
            }
        }
    }
    if chosen.is_empty() {
        return Err(format!(
            "{}: none of these groups is spoken here (x25519, secp256r1, secp384r1 are)",
            given.join(", ")
        ));
    }
    Ok(chosen)
}

/// A cipher suite's IANA name from OpenSSL's (`ECDHE-RSA-AES128-GCM-SHA256`), or the
/// name as it is.
fn iana_name(name: &str) -> String {
    let openssl = [
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
        (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            "ECDHE-RSA-AES256-GCM-SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ),
        (
            "ECDHE-RSA-CHACHA20-POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
    ];
    openssl
        .iter()
        .find(|(o, _)| *o == name)
        .map_or_else(|| name.to_owned(), |(_, iana)| (*iana).to_owned())
}

/// OTP's map of a suite as its IANA name.
fn suite_of_map(m: &Term) -> Option<String> {
    let Term::Map(map) = m else { return None };
    let get = |k: &str| map.map.get(&crate::term::atom(k)).and_then(|v| v.as_atom());
    let cipher = match get("cipher")? {
        "aes_128_gcm" => "AES_128_GCM",
        "aes_256_gcm" => "AES_256_GCM",
        "chacha20_poly1305" => "CHACHA20_POLY1305",
        _ => return None,
    };
    let prf = get("prf")?.to_ascii_uppercase();
    Some(match get("key_exchange")? {
        "any" => format!("TLS_{cipher}_{prf}"),
        "ecdhe_ecdsa" => format!("TLS_ECDHE_ECDSA_WITH_{cipher}_{prf}"),
        "ecdhe_rsa" => format!("TLS_ECDHE_RSA_WITH_{cipher}_{prf}"),
        _ => return None,
    })
}

/// A verifier that takes the intermediates of `cacertfile` to build peers' chains
/// (beside those the peer sends), and refuses a chain with more intermediate
/// certificates than `depth` (OTP's `depth`) between the peer's and a root.
#[derive(Debug)]
struct Chains<V: ?Sized> {
    inner: Arc<V>,
    /// A server certificate of any name (`{server_name_indication, disable}`).
    any_name: bool,
    depth: Option<usize>,
    roots: Vec<pki_types::CertificateDer<'static>>,
    extra: Vec<pki_types::CertificateDer<'static>>,
}

impl<V: ?Sized> Chains<V> {
    /// The peer's intermediates and ours.
    fn pool<'a>(
        &self,
        intermediates: &[pki_types::CertificateDer<'a>],
    ) -> Vec<pki_types::CertificateDer<'a>> {
        let mut pool = intermediates.to_vec();
        pool.extend(self.extra.iter().cloned());
        pool
    }

    fn check(
        &self,
        end_entity: &pki_types::CertificateDer<'_>,
        pool: &[pki_types::CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        let Some(depth) = self.depth else {
            return Ok(());
        };
        match path_intermediates(end_entity, pool, &self.roots) {
            Some(n) if n <= depth => Ok(()),
            Some(n) => Err(rustls::Error::General(format!(
                "the certificate chain has {n} intermediate certificates, more than depth {depth}"
            ))),
            None => Err(rustls::Error::General(format!(
                "the certificate chain's length could not be told, so depth {depth} cannot be kept"
            ))),
        }
    }
}

/// The intermediate certificates between `end_entity` and one of `roots`, following
/// issuer names through `pool`.
fn path_intermediates(
    end_entity: &[u8],
    pool: &[pki_types::CertificateDer<'_>],
    roots: &[pki_types::CertificateDer<'static>],
) -> Option<usize> {
    let (mut issuer, _) = names(end_entity)?;
    for n in 0..=pool.len() {
        if roots
            .iter()
            .any(|r| names(r).is_some_and(|(_, s)| s == issuer))
        {
            return Some(n);
        }
        let next = pool
            .iter()
            .find(|c| names(c).is_some_and(|(_, s)| s == issuer))?;
        issuer = names(next)?.0;
    }
    None
}

/// A certificate's issuer and subject names, as DER (`TBSCertificate`'s fourth and
/// sixth fields, after an optional version).
fn names(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    /// One DER element: its tag, all its bytes, its content, and what follows it.
    type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);
    fn tlv(b: &[u8]) -> Option<Element<'_>> {
        let tag = *b.first()?;
        let first = *b.get(1)?;
        let (len, head) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = len << 8 | usize::from(*b.get(2 + i)?);
            }
            (len, 2 + n)
        };
        let end = head.checked_add(len)?;
        (end <= b.len()).then(|| (tag, &b[..end], &b[head..end], &b[end..]))
    }
    let (_, _, certificate, _) = tlv(cert)?;
    let (_, _, tbs, _) = tlv(certificate)?;
    let (tag, _, _, after_version) = tlv(tbs)?;
    let fields = if tag == 0xa0 { after_version } else { tbs };
    let (_, _, _, rest) = tlv(fields)?; // serialNumber
    let (_, _, _, rest) = tlv(rest)?; // signature
    let (_, issuer, _, rest) = tlv(rest)?;
    let (_, _, _, rest) = tlv(rest)?; // validity
    let (_, subject, _, _) = tlv(rest)?;
    Some((issuer, subject))
}

/// The signature checks of a [`Chains`] verifier: its inner verifier's.
macro_rules! delegate_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

impl rustls::server::danger::ClientCertVerifier
    for Chains<dyn rustls::server::danger::ClientCertVerifier>
{
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &pki_types::CertificateDer<'_>,
        intermediates: &[pki_types::CertificateDer<'_>],
        now: pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let pool = self.pool(intermediates);
        let verified = self.inner.verify_client_cert(end_entity, &pool, now)?;
        self.check(end_entity, &pool)?;
        Ok(verified)
    }

    delegate_signatures!();
}

impl rustls::client::danger::ServerCertVerifier
    for Chains<dyn rustls::client::danger::ServerCertVerifier>
{
    fn verify_server_cert(
        &self,
        end_entity: &pki_types::CertificateDer<'_>,
        intermediates: &[pki_types::CertificateDer<'_>],
        server_name: &pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        let pool = self.pool(intermediates);
        let verified =
            match self
                .inner
                .verify_server_cert(end_entity, &pool, server_name, ocsp_response, now)
            {
                // The name is checked last, the chain (and its dates) having passed.
                Err(rustls::Error::InvalidCertificate(
                    NotValidForName | NotValidForNameContext { .. },
                )) if self.any_name => rustls::client::danger::ServerCertVerified::assertion(),
                verified => verified?,
            };
        self.check(end_entity, &pool)?;
        Ok(verified)
    }

    delegate_signatures!();
}

/// A certificate chain and its key: what one side presents.
#[derive(Clone)]
struct Identity {
    chain: Vec<pki_types::CertificateDer<'static>>,
    key: Arc<pki_types::PrivateKeyDer<'static>>,
    /// Where they came from, for errors: `cert.pem and key.pem`.
    source: String,
}

impl Identity {
    fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Identity {
            chain: chain_from(&read(cert)?, &cert.display().to_string())?,
            key: Arc::new(key_from(&read(key)?, &key.display().to_string())?),
            source: format!("{} and {}", cert.display(), key.display()),
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
        let host = tls.server_name.as_deref().unwrap_or(host);
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
    // What rustls makes of plain distribution's first bytes (a length, then `N`).
    let plain = if e.to_string().contains("InvalidContentType") {
        " (the peer does not speak TLS: a node without -proto_dist inet_tls?)"
    } else {
        ""
    };
    io::Error::new(e.kind(), format!("{what} {peer}: {e}{plain}"))
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
        assert!(
            e.contains("no certfile (nor certs_keys) in the server section"),
            "{e}"
        );
        let broken = write("b.conf", "[{server, [{certfile, \"c.pem\"}}].");
        let e = TlsConfig::from_optfile(&broken).unwrap_err().to_string();
        assert!(e.contains("1:"), "{e}");
        let missing = write(
            "c.conf",
            "[{client, [{certfile, \"/nonexistent/c.pem\"}, {cacertfile, \"ca.pem\"}]}].",
        );
        let e = TlsConfig::from_optfile(&missing).unwrap_err().to_string();
        assert!(e.contains("c.conf: /nonexistent/c.pem: "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
