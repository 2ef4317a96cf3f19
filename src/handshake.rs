//! The distribution handshake (protocol version 6, the `N` messages of OTP 23+).
//!
//! We implement it ourselves rather than use `erl_dist::handshake` because a listening node
//! needs what that one lacks: the cookie digest compared in constant time, the mandatory
//! OTP 25 flags enforced with `not_allowed` as the BEAM does, the peer's name at hand for
//! the log line when its cookie is wrong, and the `nok` / `ok_simultaneous` / `alive`
//! statuses decided against our own connection table. Every message is a 2-byte length
//! and at most 64 KiB, read exactly; the caller bounds the whole exchange in time
//! (`net_setuptime`).
//!
//! Reference: `dist_util.erl` and the "Distribution Handshake" section of the
//! `erl_dist_protocol` documentation.

use crate::flags;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What we say about ourselves in the handshake.
#[derive(Debug, Clone)]
pub(crate) struct LocalIdentity {
    pub name: String,
    pub creation: u32,
    pub flags: u64,
    pub cookie: String,
    /// Handshake messages with a 4-byte length, as `inet_tls_dist` sends them inside
    /// TLS (`{packet, 4}`); 2 bytes on plain TCP.
    pub wide_lengths: bool,
}

/// The peer as the handshake revealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerIdentity {
    pub name: String,
    pub flags: u64,
    pub creation: u32,
}

/// The status the accepting side sends after the peer's name (see `dist_util:recv_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    /// We were connecting to the peer too and our name is smaller: our attempt yields.
    OkSimultaneous,
    /// We were connecting to the peer too and our name is greater: its attempt yields.
    Nok,
    /// We already have a connection to a node of that name.
    Alive,
    NotAllowed,
}

impl Status {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Status::Ok => b"ok",
            Status::OkSimultaneous => b"ok_simultaneous",
            Status::Nok => b"nok",
            Status::Alive => b"alive",
            Status::NotAllowed => b"not_allowed",
        }
    }
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer could not be reached: the socket failed or closed, no EPMD answered on
    /// its host, or its name is of the other kind (long or short). Said as the error
    /// says it.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// EPMD on the peer's host answered, and no node of that name is registered with
    /// it: the node is not running (or uses another EPMD port).
    #[error("{name} is not registered with EPMD on {host}")]
    NotRegistered {
        /// The name before the `@`.
        name: String,
        /// The host.
        host: String,
    },
    /// The peer sent something that is not the expected handshake message.
    #[error("unexpected handshake message: {0}")]
    Protocol(String),
    /// The node that answered under the name asked for calls itself by another: a
    /// host that names the same machine another way (`alex@vm` for a node started as
    /// `alex@localhost`). A BEAM node's `net_adm:ping/1` gives `pang` at once.
    #[error("connected to {wanted} but it calls itself {name}")]
    OtherName {
        /// The name connected to.
        wanted: String,
        /// The name it gave.
        name: String,
    },
    /// The peer lacks flags OTP 25 requires.
    #[error("node {peer} cannot handle {missing}")]
    MissingFlags {
        /// The peer's name.
        peer: String,
        /// Names of the missing mandatory flags.
        missing: String,
    },
    /// The peer proved it does not hold our cookie (or we do not hold its).
    #[error(
        "connection attempt from node {peer} rejected: invalid challenge reply (wrong cookie)"
    )]
    WrongCookie {
        /// The peer's name.
        peer: String,
    },
    /// The peer closed the connection on our challenge reply: it found our digest
    /// wrong, which is what a BEAM node does when the cookies differ.
    #[error("node {peer} closed the connection on our challenge reply (the cookies differ)")]
    CookieRefused {
        /// The peer's name.
        peer: String,
    },
    /// The handshake did not complete within `net_setuptime`.
    #[error("no complete handshake within net_setuptime")]
    Timeout,
    /// The peer's challenge acknowledgement did not match: it has another cookie.
    #[error("node {peer} answered with an invalid challenge ack (wrong cookie)")]
    WrongCookieAck {
        /// The peer's name.
        peer: String,
    },
    /// The accepting side refused to continue.
    #[error("node {peer} refused the connection with status {status:?}")]
    Refused {
        /// The peer's name.
        peer: String,
        /// The status it sent.
        status: String,
    },
    /// We refused to continue (status `nok`, `alive` declined or `not_allowed`).
    #[error("handshake with {peer} ended with our status {status:?}")]
    Declined {
        /// The peer's name.
        peer: String,
        /// Our status.
        status: String,
    },
}

/// `md5(Cookie ++ integer_to_list(Challenge))`, as `dist_util:gen_digest/2`.
fn digest(cookie: &str, challenge: u32) -> [u8; 16] {
    md5::compute(format!("{cookie}{challenge}")).0
}

/// Compares digests without an early exit, so timing reveals nothing about the cookie.
fn digest_eq(a: &[u8; 16], b: &[u8]) -> bool {
    if b.len() != 16 {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The longest handshake message we take: the longest real one, a name message with a
/// 255-byte name, is 270 bytes. A longer length is refused at once, not waited for.
const MAX_MESSAGE: usize = 1024;

async fn read_msg<S: AsyncRead + Unpin>(s: &mut S, wide: bool) -> Result<Vec<u8>, HandshakeError> {
    let len = if wide {
        s.read_u32().await? as usize
    } else {
        s.read_u16().await? as usize
    };
    if len == 0 {
        return Err(HandshakeError::Protocol("empty message".into()));
    }
    if len > MAX_MESSAGE {
        // A TLS record's first bytes (a content type 0x14-0x17, then version 3.x) read as
        // a length: the peer speaks TLS distribution.
        let first_two = if wide { len >> 16 } else { len };
        let tls = (0x14..=0x17).contains(&(first_two >> 8)) && first_two & 0xff == 3;
        return Err(HandshakeError::Protocol(if tls {
            "the peer speaks TLS (a node started with -proto_dist inet_tls): this node \
             needs the cluster's TLS configuration"
                .to_owned()
        } else {
            format!("message of {len} bytes, longer than any handshake message")
        }));
    }
    let mut buf = vec![0; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_msg<S: AsyncWrite + Unpin>(
    s: &mut S,
    wide: bool,
    body: &[u8],
) -> Result<(), HandshakeError> {
    let len = u16::try_from(body.len())
        .map_err(|_| HandshakeError::Protocol("handshake message too long".into()))?;
    let mut out = Vec::with_capacity(4 + body.len());
    if wide {
        out.extend_from_slice(&u32::from(len).to_be_bytes());
    } else {
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(body);
    s.write_all(&out).await?;
    s.flush().await?;
    Ok(())
}

/// Takes fixed-size fields off a message, failing cleanly when it is short.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HandshakeError> {
        if self.0.len() < n {
            return Err(HandshakeError::Protocol("message truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, HandshakeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, HandshakeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, HandshakeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn name(&mut self) -> Result<String, HandshakeError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        let name = std::str::from_utf8(bytes)
            .map_err(|_| HandshakeError::Protocol("node name is not UTF-8".into()))?;
        if !valid_node_name(name) {
            return Err(HandshakeError::Protocol(format!(
                "invalid node name {name:?}"
            )));
        }
        Ok(name.to_owned())
    }
}

/// `name@host` with both parts non-empty and no control characters.
pub(crate) fn valid_node_name(name: &str) -> bool {
    match name.split_once('@') {
        Some((n, h)) => {
            !n.is_empty()
                && !h.is_empty()
                && !h.contains('@')
                && name.len() <= 255
                && name.chars().all(|c| !c.is_control())
        }
        None => false,
    }
}

fn name_message(local: &LocalIdentity) -> Vec<u8> {
    let mut m = vec![b'N'];
    m.extend_from_slice(&local.flags.to_be_bytes());
    m.extend_from_slice(&local.creation.to_be_bytes());
    m.extend_from_slice(&(local.name.len() as u16).to_be_bytes());
    m.extend_from_slice(local.name.as_bytes());
    m
}

/// Runs the initiating side against a node we looked up, expecting it to be `peer_name`.
/// `still_pending` answers the peer's `alive` (it holds a connection to us):
/// `dist_util:recv_status` asks net_kernel whether this attempt is still the one pending
/// for the peer. If so, the connection the peer holds is a dead one of ours and we go
/// on (`true`); if not, we meanwhile got connected through the peer's own attempt and
/// this one must give way (`false`), or the peer would drop the live connection.
pub(crate) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    local: &LocalIdentity,
    peer_name: &str,
    still_pending: impl FnOnce() -> bool,
) -> Result<PeerIdentity, HandshakeError> {
    write_msg(s, local.wide_lengths, &name_message(local)).await?;

    let status = read_msg(s, local.wide_lengths).await?;
    let status = status
        .strip_prefix(b"s")
        .ok_or_else(|| HandshakeError::Protocol("expected status".into()))?;
    match status {
        b"ok" | b"ok_simultaneous" => {}
        b"alive" if still_pending() => write_msg(s, local.wide_lengths, b"strue").await?,
        b"alive" => {
            write_msg(s, local.wide_lengths, b"sfalse").await?;
            return Err(HandshakeError::Refused {
                peer: peer_name.to_owned(),
                status: "alive (already connected)".into(),
            });
        }
        other => {
            return Err(HandshakeError::Refused {
                peer: peer_name.to_owned(),
                status: String::from_utf8_lossy(other).into_owned(),
            })
        }
    }

    let challenge = read_msg(s, local.wide_lengths).await?;
    let mut f = Fields(&challenge);
    if f.take(1)? != b"N" {
        return Err(HandshakeError::Protocol("expected challenge 'N'".into()));
    }
    let peer_flags = f.u64()?;
    let peer_challenge = f.u32()?;
    let peer_creation = f.u32()?;
    let name = f.name()?;
    if name != peer_name {
        return Err(HandshakeError::OtherName {
            wanted: peer_name.to_string(),
            name: name.to_string(),
        });
    }
    check_mandatory(&name, peer_flags)?;

    let my_challenge: u32 = rand::random();
    let mut reply = vec![b'r'];
    reply.extend_from_slice(&my_challenge.to_be_bytes());
    reply.extend_from_slice(&digest(&local.cookie, peer_challenge));
    write_msg(s, local.wide_lengths, &reply).await?;

    let ack = read_msg(s, local.wide_lengths).await.map_err(|e| match e {
        HandshakeError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            HandshakeError::CookieRefused { peer: name.clone() }
        }
        other => other,
    })?;
    let mut f = Fields(&ack);
    if f.take(1)? != b"a" || !digest_eq(&digest(&local.cookie, my_challenge), f.take(16)?) {
        return Err(HandshakeError::WrongCookieAck { peer: name });
    }
    Ok(PeerIdentity {
        name,
        flags: peer_flags,
        creation: peer_creation,
    })
}

/// Runs the accepting side. `decide` sees the peer's name and flags and picks the status
/// (it consults the connection table for simultaneous connects).
pub(crate) async fn accept<S, D>(
    s: &mut S,
    local: &LocalIdentity,
    decide: D,
) -> Result<PeerIdentity, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: FnOnce(&str, u64) -> Status,
{
    let msg = read_msg(s, local.wide_lengths).await?;
    let mut f = Fields(&msg);
    match f.take(1)? {
        b"N" => {}
        // OTP 25 closes on the old version 5 name message without a status; so do we.
        b"n" => return Err(HandshakeError::Protocol("old 'n' (v5) name message".into())),
        tag => {
            return Err(HandshakeError::Protocol(format!(
                "expected name, got tag {}",
                tag[0]
            )))
        }
    }
    let peer_flags = f.u64()?;
    let peer_creation = f.u32()?;
    let name = f.name()?;
    // A peer that asks for a name (dynamic node names): this node gives none out, and
    // one that asks while naming itself is lying; closed, as a BEAM node closes the
    // second.
    if peer_flags & flags::NAME_ME != 0 {
        return Err(HandshakeError::Protocol(format!(
            "{name} asks for a dynamic node name (DFLAG_NAME_ME), which this node does not give"
        )));
    }

    let status = if let Err(e) = check_mandatory(&name, peer_flags) {
        write_msg(
            s,
            local.wide_lengths,
            &[b"s", Status::NotAllowed.as_bytes()].concat(),
        )
        .await?;
        return Err(e);
    } else {
        decide(&name, peer_flags)
    };
    write_msg(s, local.wide_lengths, &[b"s", status.as_bytes()].concat()).await?;
    match status {
        Status::Ok | Status::OkSimultaneous => {}
        Status::Alive => {
            let answer = read_msg(s, local.wide_lengths).await?;
            if answer != b"strue" {
                return Err(HandshakeError::Declined {
                    peer: name,
                    status: "alive (peer gave up)".into(),
                });
            }
        }
        Status::Nok | Status::NotAllowed => {
            return Err(HandshakeError::Declined {
                peer: name,
                status: String::from_utf8_lossy(status.as_bytes()).into_owned(),
            })
        }
    }

    let my_challenge: u32 = rand::random();
    let mut challenge = vec![b'N'];
    challenge.extend_from_slice(&local.flags.to_be_bytes());
    challenge.extend_from_slice(&my_challenge.to_be_bytes());
    challenge.extend_from_slice(&local.creation.to_be_bytes());
    challenge.extend_from_slice(&(local.name.len() as u16).to_be_bytes());
    challenge.extend_from_slice(local.name.as_bytes());
    write_msg(s, local.wide_lengths, &challenge).await?;

    let reply = read_msg(s, local.wide_lengths).await?;
    let mut f = Fields(&reply);
    if f.take(1)? != b"r" {
        return Err(HandshakeError::Protocol(
            "expected challenge reply 'r'".into(),
        ));
    }
    let peer_challenge = f.u32()?;
    if !digest_eq(&digest(&local.cookie, my_challenge), f.take(16)?) {
        return Err(HandshakeError::WrongCookie { peer: name });
    }
    let mut ack = vec![b'a'];
    ack.extend_from_slice(&digest(&local.cookie, peer_challenge));
    write_msg(s, local.wide_lengths, &ack).await?;
    Ok(PeerIdentity {
        name,
        flags: peer_flags,
        creation: peer_creation,
    })
}

fn check_mandatory(peer: &str, peer_flags: u64) -> Result<(), HandshakeError> {
    let missing = flags::missing_mandatory(peer_flags);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HandshakeError::MissingFlags {
            peer: peer.to_owned(),
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str, cookie: &str) -> LocalIdentity {
        LocalIdentity {
            wide_lengths: false,
            name: name.into(),
            creation: 7,
            flags: flags::advertised(true),
            cookie: cookie.into(),
        }
    }

    #[tokio::test]
    async fn same_cookie_completes_both_ways() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = identity("b@h", "c");
        let client = identity("a@h", "c");
        let (r1, r2) = tokio::join!(
            accept(&mut b, &server, |_, _| Status::Ok),
            connect(&mut a, &client, "b@h", || true)
        );
        assert_eq!(r1.unwrap().name, "a@h");
        assert_eq!(r2.unwrap().name, "b@h");
    }

    #[tokio::test]
    async fn wrong_cookie_is_refused_with_peer_name() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = identity("b@h", "c");
        let client = identity("a@h", "other");
        let (r1, r2) = tokio::join!(
            async {
                let r = accept(&mut b, &server, |_, _| Status::Ok).await;
                // The acceptor closes on a wrong cookie, as dist_util does.
                drop(b);
                r
            },
            connect(&mut a, &client, "b@h", || true)
        );
        assert!(matches!(r1, Err(HandshakeError::WrongCookie { ref peer }) if peer == "a@h"));
        assert!(r2.is_err());
    }

    #[tokio::test]
    async fn missing_mandatory_flags_get_not_allowed() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = identity("b@h", "c");
        let mut client = identity("a@h", "c");
        client.flags &= !flags::BIG_CREATION;
        let (r1, r2) = tokio::join!(
            accept(&mut b, &server, |_, _| Status::Ok),
            connect(&mut a, &client, "b@h", || true)
        );
        assert!(matches!(r1, Err(HandshakeError::MissingFlags { .. })));
        assert!(
            matches!(r2, Err(HandshakeError::Refused { ref status, .. }) if status == "not_allowed")
        );
    }

    #[tokio::test]
    async fn a_peer_asking_for_a_name_while_naming_itself_is_closed() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = identity("b@h", "c");
        let mut client = identity("a@h", "c");
        client.flags |= flags::NAME_ME;
        // The accepting side closes: its end of the pipe goes with it.
        let accepted = async move { accept(&mut b, &server, |_, _| Status::Ok).await };
        let (r1, r2) = tokio::join!(accepted, connect(&mut a, &client, "b@h", || true));
        assert!(
            matches!(&r1, Err(HandshakeError::Protocol(why)) if why.contains("DFLAG_NAME_ME")),
            "{r1:?}"
        );
        assert!(r2.is_err());
    }

    #[tokio::test]
    async fn alive_goes_on_only_while_the_attempt_is_pending() {
        for pending in [true, false] {
            let (mut a, mut b) = tokio::io::duplex(1024);
            let (server, client) = (identity("b@h", "c"), identity("a@h", "c"));
            let (r1, r2) = tokio::join!(
                accept(&mut b, &server, |_, _| Status::Alive),
                connect(&mut a, &client, "b@h", || pending)
            );
            assert_eq!(r1.is_ok(), pending, "{r1:?}");
            assert_eq!(r2.is_ok(), pending, "{r2:?}");
        }
    }

    #[tokio::test]
    async fn an_absurd_length_is_refused_without_waiting_for_it() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = identity("b@h", "c");
        // 65,535 bytes announced, 3 sent, and the socket left open.
        a.write_all(&[0xff, 0xff, b'N', 0, 0]).await.unwrap();
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            accept(&mut b, &server, |_, _| Status::Ok),
        )
        .await
        .expect("refused at once");
        assert!(matches!(r, Err(HandshakeError::Protocol(ref m)) if m.contains("65535")));
        drop(a);
    }

    #[test]
    fn digest_matches_dist_util() {
        // md5("c" ++ "2226401368"), from a capture of a real handshake.
        let d = digest("c", 2226401368);
        assert!(digest_eq(&d, &d));
        let mut other = d;
        other[15] ^= 1;
        assert!(!digest_eq(&d, &other));
        assert!(!digest_eq(&d, &d[..15]));
    }

    #[test]
    fn node_names_are_checked() {
        assert!(valid_node_name("alex@localhost"));
        assert!(!valid_node_name("alex"));
        assert!(!valid_node_name("@h"));
        assert!(!valid_node_name("a@"));
        assert!(!valid_node_name("a@b@c"));
    }
}
