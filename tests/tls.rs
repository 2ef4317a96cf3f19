//! TLS distribution (`-proto_dist inet_tls`): the seed's session with a real Elixir node
//! and Moebi both under TLS, in both directions, Rust-to-Rust, and the peers a TLS node
//! must refuse. Certificates are made here with rcgen (a CA, a node certificate for
//! `localhost` for both roles, and another CA).

mod support;

use cnode::term::{atom, binary, Match};
use cnode::{Node, NodeConfig, TlsConfig};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{unique_name, BeamNode, Epmd, RustNode};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(20);

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn config(&self) -> TlsConfig {
        TlsConfig::from_pem_files(
            self.file("cert.pem"),
            self.file("key.pem"),
            self.file("ca.pem"),
        )
        .expect("the test's certificates load")
    }
    /// A certificate from the trusted CA that expired yesterday.
    fn expired(&self) -> TlsConfig {
        TlsConfig::from_pem_files(
            self.file("expired-cert.pem"),
            self.file("expired-key.pem"),
            self.file("ca.pem"),
        )
        .expect("the expired certificates load")
    }
    /// A certificate for localhost from a CA the nodes do not trust.
    fn stranger(&self) -> TlsConfig {
        TlsConfig::from_pem_files(
            self.file("other-cert.pem"),
            self.file("other-key.pem"),
            self.file("other-ca.pem"),
        )
        .expect("the other certificates load")
    }
}

/// A CA: its PEM written as `{prefix}ca.pem`.
fn ca(dir: &Path, prefix: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, format!("{prefix}test CA"));
    let key = KeyPair::generate().unwrap();
    let cert = ca.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{prefix}ca.pem")), cert.pem()).unwrap();
    (cert, key)
}

/// A certificate for `host` (`localhost` unless said) for server and client use, signed
/// by `ca`, written as `{prefix}cert.pem` and `{prefix}key.pem`; with `expired`, its
/// validity ended yesterday.
fn leaf(dir: &Path, prefix: &str, ca: &(rcgen::Certificate, rcgen::KeyPair), expired: bool) {
    leaf_for(dir, prefix, ca, expired, "localhost")
}

fn leaf_for(
    dir: &Path,
    prefix: &str,
    ca: &(rcgen::Certificate, rcgen::KeyPair),
    expired: bool,
    host: &str,
) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let mut leaf = CertificateParams::new(vec![host.to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, host);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    if expired {
        let now = std::time::SystemTime::now();
        let day = Duration::from_secs(86_400);
        leaf.not_before = (now - 30 * day).into();
        leaf.not_after = (now - day).into();
    }
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca.0, &ca.1).unwrap();
    std::fs::write(dir.join(format!("{prefix}cert.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{prefix}key.pem")), key.serialize_pem()).unwrap();
}

/// The certificates, and `dist.conf` as OTP's "Using SSL for Erlang Distribution" has
/// it: `verify_peer` both ways, a client certificate required.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cnode-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trusted = ca(&dir, "");
        leaf(&dir, "", &trusted, false);
        // An expired certificate from the CA the nodes trust.
        leaf(&dir, "expired-", &trusted, true);
        // One for another host, from the same CA.
        leaf_for(&dir, "elsewhere-", &trusted, false, "elsewhere.example");
        let other = ca(&dir, "other-");
        leaf(&dir, "other-", &other, false);
        let f = |n: &str| dir.join(n).display().to_string();
        let conf = format!(
            "[{{server, [{{certfile, \"{c}\"}}, {{keyfile, \"{k}\"}}, {{cacertfile, \"{a}\"}},\n\
             {{verify, verify_peer}}, {{fail_if_no_peer_cert, true}}, {{secure_renegotiate, true}}]}},\n\
             {{client, [{{certfile, \"{c}\"}}, {{keyfile, \"{k}\"}}, {{cacertfile, \"{a}\"}},\n\
             {{verify, verify_peer}}, {{secure_renegotiate, true}}]}}].\n",
            c = f("cert.pem"),
            k = f("key.pem"),
            a = f("ca.pem"),
        );
        std::fs::write(dir.join("dist.conf"), conf).unwrap();
        Pki { dir }
    })
}

async fn rust_node(prefix: &str, epmd: &Epmd, tls: Option<TlsConfig>) -> Node {
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name(prefix)), COOKIE);
    config.epmd_port = epmd.port();
    config.hidden = true;
    config.setup_time = Duration::from_secs(5);
    config.tls = tls;
    Node::start(config).await.expect("the node starts")
}

/// Moebi with the BEAM nodes' own `-ssl_dist_optfile`.
fn moebi_optfile(epmd: &Epmd, pki: &Pki) -> RustNode {
    let conf = pki.file("dist.conf");
    RustNode::start(
        &unique_name("moebi"),
        COOKIE,
        epmd,
        &["--ssl-dist-optfile", conf.to_str().unwrap()],
    )
}

fn moebi_tls(epmd: &Epmd, pki: &Pki) -> RustNode {
    let (cert, key, ca) = (
        pki.file("cert.pem"),
        pki.file("key.pem"),
        pki.file("ca.pem"),
    );
    RustNode::start(
        &unique_name("moebi"),
        COOKIE,
        epmd,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-ca",
            ca.to_str().unwrap(),
            "--net-setuptime",
            "3",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_session_under_tls_with_a_real_elixir_node() {
    let pki = pki();
    // The BEAM nodes of this test run `-proto_dist inet_tls` (every test in this file
    // that starts one wants it).
    std::env::set_var(
        "ERL_AFLAGS",
        format!(
            "-proto_dist inet_tls -ssl_dist_optfile {}",
            pki.file("dist.conf").display()
        ),
    );
    let epmd = Epmd::start();
    let moebi = tokio::task::block_in_place(|| moebi_tls(&epmd, pki));
    let alex = tokio::task::block_in_place(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let m = moebi.node_name();
    tokio::task::block_in_place(|| {
        let pong = alex.eval(&format!("Node.ping(:{m})"));
        assert_eq!(
            pong,
            ":pong",
            "{}\n{}\n{}",
            moebi.log(),
            alex.output(),
            alex.eval(":init.get_arguments()")
        );
        // The seed's exchange: Moebi prints, then starts "chicken?" on alex.
        assert_eq!(
            alex.eval(&format!("Chat.send_message(:{m}, \"hi\")")),
            ":ok"
        );
        assert!(moebi.wait_for_lines("hi", 1, WAIT), "{}", moebi.output());
        assert!(alex.wait_for_output("chicken?", WAIT), "{}", alex.output());
        // Remote spawn, output on the caller.
        alex.eval(&format!("Node.spawn(:{m}, Moebi, :say_name, [])"));
        assert!(
            alex.wait_for_output("Hi, my name is Moebi", WAIT),
            "{}",
            alex.output()
        );
        // global sees Moebi as a node of the cluster.
        assert_eq!(alex.eval(":global.sync()"), ":ok");
    });

    // A Rust node that connects to alex (TLS as the client), and to Moebi: Rust to Rust.
    let rusty = rust_node("rusty", &epmd, Some(pki.config())).await;
    let a = alex.node_name();
    let node = rusty
        .erpc_call(&a, "erlang", "node", vec![], WAIT)
        .await
        .expect("erpc over TLS");
    assert_eq!(node.as_atom(), Some(a.as_str()));
    let printed = rusty
        .task_async(
            ("Elixir.Chat.TaskSupervisor", a.as_str()),
            "Elixir.Chat",
            "receive_message",
            vec![binary("over TLS")],
        )
        .await_timeout(WAIT)
        .await
        .expect("a task on alex");
    assert!(printed.is_atom("ok"));
    let pong = rusty
        .erpc_call(&m, "erlang", "node", vec![], WAIT)
        .await
        .expect("Rust to Rust over TLS");
    assert_eq!(pong, atom(&m));

    // Moebi started with the BEAM nodes' own optfile.
    let kate = tokio::task::block_in_place(|| moebi_optfile(&epmd, pki));
    let k = kate.node_name();
    tokio::task::block_in_place(|| {
        assert_eq!(
            alex.eval(&format!("Node.ping(:{k})")),
            ":pong",
            "{}",
            kate.log()
        );
    });

    // The `cnode` command in the TLS cluster: with the nodes' optfile, or the PEM files.
    let conf = pki.file("dist.conf").display().to_string();
    let (cert, key, ca) = (
        pki.file("cert.pem").display().to_string(),
        pki.file("key.pem").display().to_string(),
        pki.file("ca.pem").display().to_string(),
    );
    let cnode = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnode"))
            .args(["--timeout", "20", "--cookie", COOKIE])
            .args(args)
            .env("ERL_EPMD_PORT", epmd.port().to_string())
            .output()
            .expect("cnode runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let called = cnode(&["--ssl-dist-optfile", &conf, "call", &a, ":erlang.node"]);
    assert_eq!(called, (Some(0), format!(":{a}"), String::new()));
    let pem = ["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca];
    let pinged = cnode(&[&pem[..], &["ping", &m]].concat());
    assert_eq!(pinged.0, Some(0), "{pinged:?}");
    assert_eq!(pinged.1, "pong");
    // Without TLS, a TLS node cannot be reached.
    let plain = cnode(&["ping", &m]);
    assert_eq!(plain.0, Some(3), "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_our_trust_are_refused_and_the_node_goes_on() {
    let pki = pki();
    let epmd = Epmd::start();
    let moebi = tokio::task::block_in_place(|| moebi_tls(&epmd, pki));
    let m = moebi.node_name();

    // A plain TCP node.
    let plain = rust_node("plain", &epmd, None).await;
    let e = plain.try_connect(&m).await.expect_err("plain TCP refused");
    assert!(e.to_string().contains("the peer speaks TLS"), "{e}");
    // A node whose certificate another CA signed (and which does not trust ours).
    let stranger = rust_node("stranger", &epmd, Some(pki.stranger())).await;
    assert!(stranger.try_connect(&m).await.is_err());
    // An expired certificate.
    let expired = rust_node("expired", &epmd, Some(pki.expired())).await;
    assert!(expired.try_connect(&m).await.is_err());
    // A TLS client with no certificate, where one is required.
    let no_cert = {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        let ca = std::fs::read(pki.file("ca.pem")).unwrap();
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        for c in tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        #[allow(deprecated)] // ring's provider, as the library's (src/transport.rs)
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(
            std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        std::sync::Arc::new(config)
    };
    let port = epmd
        .names()
        .into_iter()
        .find(|(n, _)| m.starts_with(&format!("{n}@")))
        .map(|(_, p)| p)
        .expect("moebi is registered");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    // TLS 1.3 finishes the client's side before the server has checked it: the refusal
    // comes as the first read.
    if let Ok(mut tls) = tokio_rustls::TlsConnector::from(no_cert)
        .connect(name, tcp)
        .await
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = tls.write_all(&[0, 0, 0, 1, b'N']).await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(WAIT, tls.read(&mut byte)).await;
        assert!(
            !matches!(read, Ok(Ok(1))),
            "a client without a certificate got an answer"
        );
    }
    // Garbage instead of a ClientHello, and a socket that says nothing.
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4])
        .unwrap();
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage
        .set_read_timeout(Some(WAIT))
        .expect("a read timeout");
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);

    let t0 = Instant::now();
    let logged = |needle: &str| moebi.wait_for_log(needle, WAIT);
    assert!(logged("TLS from 127.0.0.1"), "{}", moebi.log());
    for why in [
        "UnknownCA",
        "certificate expired",
        "peer sent no certificates",
        "InvalidContentType (the peer does not speak TLS",
    ] {
        assert!(logged(why), "{why}:\n{}", moebi.log());
    }
    // The stalled socket is dropped within net_setuptime (3 s here).
    assert!(logged("timed out (net_setuptime)"), "{}", moebi.log());
    assert!(t0.elapsed() < WAIT);

    // 300 half-open sockets at once: the oldest pending handshakes make way, and a
    // real peer still gets in.
    let held: Vec<_> = (0..300)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let friend = rust_node("friend", &epmd, Some(pki.config())).await;
    assert!(friend.try_connect(&m).await.is_ok(), "{}", moebi.log());
    drop(held);
}

/// What a BEAM node's `-ssl_dist_optfile` may hold beside the three files: the OTP 25
/// `certs_keys` form, `versions`, a section of its own for each side; and what a Rust
/// node refuses with a reason rather than run differently (`verify_none`, an encrypted
/// key, no CA), each error naming the file.
#[test]
fn optfiles_are_read_as_the_beam_reads_them_or_refused_with_a_reason() {
    let pki = pki();
    let f = |n: &str| pki.file(n).display().to_string();
    let (cert, key, ca) = (f("cert.pem"), f("key.pem"), f("ca.pem"));
    let optfile = |name: &str, text: String| {
        let path = pki.file(name);
        std::fs::write(&path, text).unwrap();
        TlsConfig::from_optfile(&path).map_err(|e| e.to_string())
    };
    let ok = [
        format!("[{{server, [{{certs_keys, [#{{certfile => \"{cert}\", keyfile => \"{key}\"}}]}}, {{cacertfile, \"{ca}\"}}]}}]."),
        format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca}\"}}, {{versions, ['tlsv1.2']}}]}}]."),
        format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca}\"}}]}},
                 {{client, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca}\"}}]}}]."),
    ];
    for (i, text) in ok.into_iter().enumerate() {
        let read = optfile(&format!("ok-{i}.conf"), text.clone());
        assert!(read.is_ok(), "{text}: {read:?}");
    }
    let refused = [
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{verify, verify_none}}]}}]."),
            "verify_none",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{password, \"s3cret\"}}, {{cacertfile, \"{ca}\"}}]}}]."),
            "encrypted keys",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}]}}]."),
            "no cacertfile",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{cert}\"}}, {{cacertfile, \"{ca}\"}}]}}]."),
            "cert.pem: no private key",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca}\"}}, {{versions, ['tlsv1.1']}}]}}]."),
            "only 'tlsv1.2' and 'tlsv1.3'",
        ),
    ];
    for (i, (text, why)) in refused.into_iter().enumerate() {
        let read = optfile(&format!("refused-{i}.conf"), text.clone());
        let err = read.expect_err(&text);
        assert!(err.contains(why), "{text}: {err}");
    }
}

/// Each section of an optfile keeps its own `cacertfile`, `versions`, `ciphers` and
/// `depth`, as the BEAM's `ssl` takes them (the connecting side trusted the accepting
/// side's CAs); what would let a certificate through that a BEAM node refuses is refused
/// at start: `crl_check` (no revocation is checked here), a section without a CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_of_an_optfile_keeps_its_own_trust() {
    let pki = pki();
    let epmd = Epmd::start();
    let f = |n: &str| pki.file(n).display().to_string();
    let (cert, key, ca_pem) = (f("cert.pem"), f("key.pem"), f("ca.pem"));
    let write = |name: &str, text: &str| {
        let path = pki.file(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // Both CAs in one file: the accepting side trusts either, the connecting side ours.
    let both = format!(
        "{}{}",
        std::fs::read_to_string(pki.file("ca.pem")).unwrap(),
        std::fs::read_to_string(pki.file("other-ca.pem")).unwrap()
    );
    let both = write("both-ca.pem", &both).display().to_string();
    let split = write(
        "split.conf",
        &format!(
            "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{both}\"}}]}},
              {{client, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}]}}]."
        ),
    );
    let ours = rust_node(
        "split",
        &epmd,
        Some(TlsConfig::from_optfile(&split).unwrap()),
    )
    .await;
    // Another CA's node that trusts both CAs.
    let theirs =
        TlsConfig::from_pem_files(pki.file("other-cert.pem"), pki.file("other-key.pem"), &both)
            .unwrap();
    let theirs = rust_node("other", &epmd, Some(theirs)).await;
    assert!(
        ours.try_connect(theirs.name()).await.is_err(),
        "the connecting side trusted the server section's CAs"
    );
    assert!(
        theirs.try_connect(ours.name()).await.is_ok(),
        "the accepting side trusts both"
    );

    // Ciphers: a suite each side does not share fails; a shared one connects.
    let only = |name: &str, cipher: &str| {
        let conf = write(
            name,
            &format!(
                "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}},
                  {{versions, ['tlsv1.2']}}, {{ciphers, \"{cipher}\"}}]}}]."
            ),
        );
        TlsConfig::from_optfile(conf).unwrap()
    };
    let aes = rust_node(
        "aes",
        &epmd,
        Some(only("aes.conf", "ECDHE-ECDSA-AES128-GCM-SHA256")),
    )
    .await;
    let chacha = rust_node(
        "chacha",
        &epmd,
        Some(only("chacha.conf", "ECDHE-ECDSA-CHACHA20-POLY1305")),
    )
    .await;
    let aes_too = rust_node(
        "aes2",
        &epmd,
        Some(only(
            "aes2.conf",
            "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
        )),
    )
    .await;
    assert!(
        chacha.try_connect(aes.name()).await.is_err(),
        "no suite in common"
    );
    assert!(
        aes_too.try_connect(aes.name()).await.is_ok(),
        "a suite in common"
    );

    // depth: a chain through an intermediate CA passes depth 1 and not depth 0.
    let dir = &pki.dir;
    let (root, intermediate) = {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let root = ca(dir, "root-");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "intermediate CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &root.0, &root.1).unwrap();
        (root, (cert, key))
    };
    leaf(dir, "deep-", &intermediate, false);
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(dir.join("deep-cert.pem")).unwrap(),
        intermediate.0.pem()
    );
    let chain = write("deep-chain.pem", &chain).display().to_string();
    drop(root);
    let root_ca = f("root-ca.pem");
    let deep = write(
        "deep.conf",
        &format!(
            "[{{server, [{{certfile, \"{chain}\"}}, {{keyfile, \"{}\"}}, {{cacertfile, \"{both}\"}}]}}].",
            f("deep-key.pem")
        ),
    );
    let deep = rust_node("deep", &epmd, Some(TlsConfig::from_optfile(deep).unwrap())).await;
    let strict = |name: &str, depth: u32| {
        let conf = write(
            name,
            &format!(
                "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{root_ca}\"}}, {{depth, {depth}}}]}},
                  {{client, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}]}}]."
            ),
        );
        TlsConfig::from_optfile(conf).unwrap()
    };
    let depth0 = rust_node("depth0", &epmd, Some(strict("depth0.conf", 0))).await;
    let depth1 = rust_node("depth1", &epmd, Some(strict("depth1.conf", 1))).await;
    assert!(
        deep.try_connect(depth0.name()).await.is_err(),
        "depth 0 let an intermediate through"
    );
    assert!(
        deep.try_connect(depth1.name()).await.is_ok(),
        "depth 1 refused one intermediate"
    );
    // The intermediate in the verifying side's cacertfile: it builds the chain, and still
    // counts against depth (a peer may send its certificate alone); an intermediate
    // alone in cacertfile is no trust anchor, as OTP trusts none.
    let root_and_intermediate = write(
        "root-int.pem",
        &format!(
            "{}{}",
            std::fs::read_to_string(&root_ca).unwrap(),
            intermediate.0.pem()
        ),
    )
    .display()
    .to_string();
    let bundle = |name: &str, depth: u32| {
        let conf = write(
            name,
            &format!(
                "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{root_and_intermediate}\"}}, {{depth, {depth}}}]}},
                  {{client, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}]}}]."
            ),
        );
        TlsConfig::from_optfile(conf).unwrap()
    };
    let bundle0 = rust_node("bundle0", &epmd, Some(bundle("bundle0.conf", 0))).await;
    let bundle1 = rust_node("bundle1", &epmd, Some(bundle("bundle1.conf", 1))).await;
    let alone = write(
        "alone.conf",
        &format!(
            "[{{server, [{{certfile, \"{}\"}}, {{keyfile, \"{}\"}}, {{cacertfile, \"{both}\"}}]}}].",
            f("deep-cert.pem"),
            f("deep-key.pem")
        ),
    );
    let alone = rust_node(
        "alone",
        &epmd,
        Some(TlsConfig::from_optfile(alone).unwrap()),
    )
    .await;
    assert!(
        deep.try_connect(bundle0.name()).await.is_err(),
        "depth 0, intermediate in cacertfile"
    );
    assert!(
        alone.try_connect(bundle0.name()).await.is_err(),
        "depth 0, the certificate alone"
    );
    assert!(
        alone.try_connect(bundle1.name()).await.is_ok(),
        "the chain built from cacertfile"
    );
    let only_intermediate = write("int-only.pem", &intermediate.0.pem())
        .display()
        .to_string();
    let e = TlsConfig::from_optfile(write(
        "int-only.conf",
        &format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{only_intermediate}\"}}]}}]."),
    ))
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(e.contains("no self-signed CA certificate"), "{e}");

    // A key given twice: the last, as ssl takes it.
    let twice = write(
        "twice.conf",
        &format!(
            "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{}\"}}, {{cacertfile, \"{ca_pem}\"}}]}}].",
            f("other-ca.pem")
        ),
    );
    let twice = rust_node(
        "twice",
        &epmd,
        Some(TlsConfig::from_optfile(twice).unwrap()),
    )
    .await;
    assert!(
        aes_too.try_connect(twice.name()).await.is_ok(),
        "the last cacertfile is ours"
    );
    // Key exchange groups: none in common fails.
    let groups = |name: &str, group: &str| {
        let conf = write(
            name,
            &format!(
                "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}},
                  {{versions, ['tlsv1.3']}}, {{supported_groups, [{group}]}}]}}]."
            ),
        );
        TlsConfig::from_optfile(conf).unwrap()
    };
    let p384 = rust_node("p384", &epmd, Some(groups("p384.conf", "secp384r1"))).await;
    let x25519 = rust_node("x25519", &epmd, Some(groups("x25519.conf", "x25519"))).await;
    assert!(
        x25519.try_connect(p384.name()).await.is_err(),
        "no group in common"
    );
    // server_name_indication: the name the server's certificate must have.
    let elsewhere = write(
        "sni.conf",
        &format!(
            "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}]}},
              {{client, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}},
                         {{server_name_indication, \"elsewhere.example\"}}]}}]."
        ),
    );
    let elsewhere = rust_node(
        "sni",
        &epmd,
        Some(TlsConfig::from_optfile(elsewhere).unwrap()),
    )
    .await;
    assert!(
        elsewhere.try_connect(aes_too.name()).await.is_err(),
        "a localhost certificate is not elsewhere.example"
    );
    // A server whose certificate names another host is refused, unless the client says
    // `{server_name_indication, disable}`, as OTP 26 and later take it: any name, the
    // chain still verified.
    let far = TlsConfig::from_pem_files(
        pki.file("elsewhere-cert.pem"),
        pki.file("elsewhere-key.pem"),
        pki.file("ca.pem"),
    )
    .unwrap();
    let far = rust_node("far", &epmd, Some(far)).await;
    assert!(
        aes_too.try_connect(far.name()).await.is_err(),
        "an elsewhere.example certificate is not localhost's"
    );
    let any_name = |name: &str, ca: &str| {
        let conf = write(
            name,
            &format!(
                "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}]}},
                  {{client, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca}\"}},
                             {{server_name_indication, disable}}]}}]."
            ),
        );
        TlsConfig::from_optfile(conf).unwrap()
    };
    let anyhost = rust_node("anyhost", &epmd, Some(any_name("disable.conf", &ca_pem))).await;
    assert!(
        anyhost.try_connect(far.name()).await.is_ok(),
        "disable takes a certificate of any name"
    );
    let stranger = rust_node(
        "anystranger",
        &epmd,
        Some(any_name("disable-other.conf", &f("other-ca.pem"))),
    )
    .await;
    assert!(
        stranger.try_connect(far.name()).await.is_err(),
        "disable still verifies the chain"
    );
    // A client section without a certificate presents none, as the BEAM's: refused by
    // a server that requires one.
    let certless = write(
        "certless.conf",
        &format!(
            "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}]}},
              {{client, [{{cacertfile, \"{ca_pem}\"}}, {{verify, verify_peer}}]}}]."
        ),
    );
    let certless = rust_node(
        "certless",
        &epmd,
        Some(TlsConfig::from_optfile(certless).unwrap()),
    )
    .await;
    assert!(
        certless.try_connect(aes_too.name()).await.is_err(),
        "a client without a certificate"
    );
    assert!(
        aes_too.try_connect(certless.name()).await.is_ok(),
        "its server side presents the server section's"
    );

    // Refused at start, with the reason.
    for (text, why) in [
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}, {{crl_check, true}}]}}]."),
            "revocation is not checked",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}]}},
                      {{client, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}]}}]."),
            "no cacertfile in the server section",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}, {{ciphers, [\"AES128-SHA\"]}}]}}]."),
            "none of these is spoken here",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}, {{signature_algs, [rsa_pss_rsae_sha256]}}]}}]."),
            "signature algorithms are not restricted",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}}, {{verify_fun, {{fun inet_tls_dist:verify_client/3, []}}}}]}}]."),
            "a check written in Erlang",
        ),
        (
            format!("[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{}\"}}, {{cacertfile, \"{ca_pem}\"}}]}}].", f("other-key.pem")),
            "the private key is not the key of the certificate",
        ),
    ] {
        let path = write("refused.conf", &text);
        let err = TlsConfig::from_optfile(&path).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(why), "{text}: {err}");
    }
    // OTP's maps and a list of names read as the names do.
    let maps = write(
        "maps.conf",
        &format!(
            "[{{server, [{{certfile, \"{cert}\"}}, {{keyfile, \"{key}\"}}, {{cacertfile, \"{ca_pem}\"}},
              {{ciphers, [#{{key_exchange => any, cipher => aes_128_gcm, mac => aead, prf => sha256}},
                          \"TLS_AES_256_GCM_SHA384\", \"ECDHE-ECDSA-AES256-GCM-SHA384\"]}}]}}]."
        ),
    );
    assert!(TlsConfig::from_optfile(maps).is_ok());
}
