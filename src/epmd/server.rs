//! In-process EPMD server.
//!
//! `cargo run --example moebi` has to work on a machine without Erlang: when no EPMD answers
//! and no `epmd` binary is on PATH, the node serves EPMD itself on the EPMD port, speaking
//! the protocol of the real daemon
//! (<https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html#epmd-protocol>) so that
//! `erl`, `epmd -names` and other nodes on the host can use it.
//!
//! Where the documentation is loose, the replies follow what OTP 25's `epmd` does (checked
//! against it): duplicate names get result 1 with creation 99, `NAMES`/`DUMP` list the
//! newest registration first, `KILL_REQ` is answered `NO` (the daemon only honours it
//! with no live nodes or `-relaxed_command_check`; here the node itself is a live node),
//! and `STOP_REQ` is dropped without a reply, as the daemon does without
//! `-relaxed_command_check`. Registrations, dumps and kills are only taken from the host
//! itself, also as the daemon does.
//!
//! Everything a client controls is bounded: request size, time to send the request, time
//! to take a reply, and the number of open sockets.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tracing::{debug, warn};

const DUMP_REQ: u8 = 100;
const KILL_REQ: u8 = 107;
const NAMES_REQ: u8 = 110;
const STOP_REQ: u8 = 115;
const ALIVE2_X_RESP: u8 = 118;
const PORT2_RESP: u8 = 119;
const ALIVE2_REQ: u8 = 120;
const ALIVE2_RESP: u8 = 121;
const PORT_PLEASE2_REQ: u8 = 122;

/// Largest request body accepted. The largest real one, `ALIVE2_REQ` with a 255 character
/// UTF-8 name and as much extra data, is about 2 KiB.
const MAX_REQUEST_LEN: usize = 4096;
/// Longest node name or extra field in bytes (255 characters of up to 4 bytes, as epmd).
const MAX_SYMBOL_BYTES: usize = 255 * 4;
/// Longest node name in characters.
const MAX_NAME_CHARS: usize = 255;
/// Creation epmd answers along with a failed registration.
const FAILED_CREATION: u32 = 99;
/// How long a client may take to send its request (shorter under test, to test it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 10 });
/// How long a client may take to accept a reply.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open sockets served at once; registrations hold theirs for as long as they live.
const MAX_CONNECTIONS: usize = 1024;

/// A running in-process EPMD; dropping the handle (or calling shutdown) stops it.
#[derive(Debug)]
pub struct EpmdServer {
    port: u16,
    task: JoinHandle<()>,
}

impl EpmdServer {
    /// Binds 0.0.0.0:port (like the real epmd, also reachable on 127.0.0.1) and serves in a
    /// tokio task. Port 0 picks a free port; see [`EpmdServer::local_port`].
    pub async fn bind(port: u16) -> io::Result<EpmdServer> {
        Self::bind_with(port, MAX_CONNECTIONS).await
    }

    async fn bind_with(port: u16, max_connections: usize) -> io::Result<EpmdServer> {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await?;
        let port = listener.local_addr()?.port();
        debug!(port, "in-process EPMD listening");
        let task = tokio::spawn(serve(listener, port, max_connections));
        Ok(EpmdServer { port, task })
    }

    /// The port the server listens on.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Stops serving: closes the listener and every connection, which unregisters every
    /// node registered here (as when the epmd daemon dies).
    pub fn shutdown(self) {}
}

impl Drop for EpmdServer {
    fn drop(&mut self) {
        // Aborting drops the accept loop and with it the JoinSet of connection tasks,
        // which aborts those as well.
        self.task.abort();
    }
}

/// One registered node, as given in its `ALIVE2_REQ`.
#[derive(Debug, Clone)]
struct Node {
    port: u16,
    node_type: u8,
    protocol: u8,
    highest_version: u16,
    lowest_version: u16,
    extra: Vec<u8>,
    /// The connection that registered it; the registration ends with that connection.
    conn: u64,
}

#[derive(Debug)]
struct Registry {
    nodes: HashMap<String, Node>,
    next_creation: u32,
}

impl Registry {
    fn new() -> Self {
        Self {
            nodes: HashMap::new(),
            // A random start, like epmd's clock-based one, so that a node re-registering
            // with a restarted server is unlikely to get the creation it had before.
            next_creation: rand::random(),
        }
    }

    /// A new creation for each registration. 0 means "any" and 1..=3 are what pre-OTP-23
    /// epmds hand out, so they are skipped, as OTP 25's epmd does.
    fn creation(&mut self) -> u32 {
        loop {
            let creation = self.next_creation;
            self.next_creation = self.next_creation.wrapping_add(1);
            if creation > 3 {
                return creation;
            }
        }
    }
}

type Shared = Arc<Mutex<Registry>>;

/// Locks the registry. No code panics while holding it, but a poisoned lock would only
/// mean a half-finished insert or remove, which leaves the map consistent.
fn lock(registry: &Shared) -> MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(listener: TcpListener, port: u16, max_connections: usize) {
    let registry: Shared = Arc::new(Mutex::new(Registry::new()));
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    let mut next_conn: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        warn!(%error, "in-process EPMD failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    debug!(%peer, "too many EPMD connections, closing this one");
                    continue;
                };
                next_conn += 1;
                let conn = Connection {
                    id: next_conn,
                    epmd_port: port,
                    registry: registry.clone(),
                };
                connections.spawn(async move {
                    conn.handle(stream, peer).await;
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

struct Connection {
    id: u64,
    epmd_port: u16,
    registry: Shared,
}

impl Connection {
    async fn handle(self, mut stream: TcpStream, peer: SocketAddr) {
        let request = match timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) => {
                debug!(%peer, "EPMD request with a bad length, closing");
                return;
            }
            Ok(Err(error)) => {
                debug!(%peer, %error, "EPMD connection failed before a request");
                return;
            }
            Err(_) => {
                debug!(%peer, "EPMD client sent no request in time, closing");
                return;
            }
        };
        let local = is_local(&stream, peer);
        let reply = match request[0] {
            ALIVE2_REQ if local => return self.alive2(stream, &request).await,
            PORT_PLEASE2_REQ => match port_please(&lock(&self.registry), &request[1..]) {
                Some(reply) => reply,
                None => {
                    debug!(%peer, "malformed PORT_PLEASE2_REQ");
                    return;
                }
            },
            NAMES_REQ => names(&lock(&self.registry), self.epmd_port, false),
            DUMP_REQ if local => names(&lock(&self.registry), self.epmd_port, true),
            // Never stop on request: this server lives as long as the node it serves.
            KILL_REQ if local => b"NO".to_vec(),
            // epmd without -relaxed_command_check closes these without a reply too.
            STOP_REQ => {
                debug!(%peer, "refusing STOP_REQ");
                return;
            }
            tag => {
                debug!(%peer, tag, local, "EPMD request refused or unknown, closing");
                return;
            }
        };
        if let Err(error) = write_reply(&mut stream, &reply).await {
            debug!(%peer, %error, "could not send the EPMD reply");
        }
    }

    /// Registers a node for as long as this connection stays open.
    async fn alive2(self, mut stream: TcpStream, request: &[u8]) {
        let Some(alive) = Alive2::parse(request) else {
            debug!("malformed ALIVE2_REQ, closing");
            return;
        };
        let registration = self.register(&alive);
        let creation = registration.as_ref().map(|r| r.creation);
        let reply = alive.reply(creation);
        if let Err(error) = write_reply(&mut stream, &reply).await {
            debug!(%error, "could not answer ALIVE2_REQ");
            return;
        }
        let Some(registration) = registration else {
            return;
        };
        // The node sends nothing more: end of stream, an error, or stray bytes (which
        // epmd also treats as the end) all end the registration.
        let mut buf = [0; 64];
        let _ = stream.read(&mut buf).await;
        debug!(name = %registration.name, "EPMD registration closed");
        drop(registration);
    }

    /// Registers the node, or `None` (result 1) for what epmd refuses: a name that is not
    /// UTF-8, too long or already taken, or too much extra data. Unlike epmd, an empty
    /// name is refused too: no node can be named that.
    fn register(&self, alive: &Alive2) -> Option<Registration> {
        let Ok(name) = std::str::from_utf8(&alive.name) else {
            debug!("refusing an EPMD registration with a name that is not UTF-8");
            return None;
        };
        let valid = !name.is_empty()
            && name.len() <= MAX_SYMBOL_BYTES
            && name.chars().count() <= MAX_NAME_CHARS
            && alive.extra.len() <= MAX_SYMBOL_BYTES;
        if !valid {
            debug!(%name, "refusing an invalid EPMD registration");
            return None;
        }
        let mut registry = lock(&self.registry);
        if registry.nodes.contains_key(name) {
            debug!(%name, "EPMD name already registered");
            return None;
        }
        let creation = registry.creation();
        registry.nodes.insert(
            name.to_owned(),
            Node {
                port: alive.port,
                node_type: alive.node_type,
                protocol: alive.protocol,
                highest_version: alive.highest_version,
                lowest_version: alive.lowest_version,
                extra: alive.extra.clone(),
                conn: self.id,
            },
        );
        debug!(%name, port = alive.port, creation, "EPMD registration");
        Some(Registration {
            registry: self.registry.clone(),
            name: name.to_owned(),
            conn: self.id,
            creation,
        })
    }
}

/// Removes its entry when dropped, so that a registration ends with its connection even if
/// the connection task is aborted.
struct Registration {
    registry: Shared,
    name: String,
    conn: u64,
    creation: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = lock(&self.registry);
        if registry.nodes.get(&self.name).map(|n| n.conn) == Some(self.conn) {
            registry.nodes.remove(&self.name);
        }
    }
}

/// A parsed `ALIVE2_REQ` (tag byte included in the slice it comes from).
#[derive(Debug, PartialEq)]
struct Alive2 {
    port: u16,
    node_type: u8,
    protocol: u8,
    highest_version: u16,
    lowest_version: u16,
    name: Vec<u8>,
    extra: Vec<u8>,
}

impl Alive2 {
    /// Parses the request; `None` for what epmd drops without a reply: no room for a
    /// name, lengths running past the end, or a NUL in the name.
    fn parse(request: &[u8]) -> Option<Alive2> {
        if request.len() <= 13 {
            return None;
        }
        let u16_at = |at: usize| {
            request
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let name_len = usize::from(u16_at(9)?);
        let name = request.get(11..11 + name_len)?;
        let extra_len = usize::from(u16_at(11 + name_len)?);
        let extra = request.get(13 + name_len..13 + name_len + extra_len)?;
        if name.contains(&0) {
            return None;
        }
        Some(Alive2 {
            port: u16_at(1)?,
            node_type: request[3],
            protocol: request[4],
            highest_version: u16_at(5)?,
            lowest_version: u16_at(7)?,
            name: name.to_vec(),
            extra: extra.to_vec(),
        })
    }

    /// `ALIVE2_X_RESP` with a 32-bit creation for nodes speaking distribution version 6,
    /// the older `ALIVE2_RESP` with a creation in 1..=3 otherwise, as epmd answers.
    fn reply(&self, creation: Option<u32>) -> Vec<u8> {
        let result = u8::from(creation.is_none());
        let creation = creation.unwrap_or(FAILED_CREATION);
        if self.highest_version >= 6 {
            let mut reply = vec![ALIVE2_X_RESP, result];
            reply.extend(creation.to_be_bytes());
            reply
        } else {
            let old = if result == 0 {
                (creation % 3 + 1) as u16
            } else {
                FAILED_CREATION as u16
            };
            let mut reply = vec![ALIVE2_RESP, result];
            reply.extend(old.to_be_bytes());
            reply
        }
    }
}

/// The `PORT2_RESP` to a `PORT_PLEASE2_REQ` for `name`; `None` for a name epmd would not
/// even look up (empty, containing NUL, not UTF-8, too long).
fn port_please(registry: &Registry, name: &[u8]) -> Option<Vec<u8>> {
    let name = name.strip_suffix(&[0]).unwrap_or(name);
    let name = std::str::from_utf8(name).ok()?;
    if name.is_empty() || name.contains('\0') || name.chars().count() > MAX_NAME_CHARS {
        return None;
    }
    let Some(node) = registry.nodes.get(name) else {
        return Some(vec![PORT2_RESP, 1]);
    };
    let mut reply = vec![PORT2_RESP, 0];
    reply.extend(node.port.to_be_bytes());
    reply.push(node.node_type);
    reply.push(node.protocol);
    reply.extend(node.highest_version.to_be_bytes());
    reply.extend(node.lowest_version.to_be_bytes());
    // Both fit in u16: at most MAX_SYMBOL_BYTES, checked at registration.
    reply.extend((name.len() as u16).to_be_bytes());
    reply.extend(name.as_bytes());
    reply.extend((node.extra.len() as u16).to_be_bytes());
    reply.extend(&node.extra);
    Some(reply)
}

/// The reply to `NAMES_REQ`, or with `dump` to `DUMP_REQ`: the EPMD port, then one line per
/// node, newest registration first, in epmd's exact format (parsed by `net_adm:names/0`).
/// A dump has no file descriptors to show, so it shows connection numbers.
fn names(registry: &Registry, epmd_port: u16, dump: bool) -> Vec<u8> {
    let mut nodes: Vec<(&String, &Node)> = registry.nodes.iter().collect();
    nodes.sort_by_key(|(_, node)| std::cmp::Reverse(node.conn));
    let mut reply = u32::from(epmd_port).to_be_bytes().to_vec();
    for (name, node) in nodes {
        let line = if dump {
            format!(
                "active name     <{name}> at port {}, fd = {}\n\0",
                node.port, node.conn
            )
        } else {
            format!("name {name} at port {}\n", node.port)
        };
        reply.extend(line.as_bytes());
    }
    reply
}

/// Reads one length-prefixed request. `None` if the length is 0 or above
/// [`MAX_REQUEST_LEN`]; the returned body is never empty.
async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Vec<u8>>> {
    let len = usize::from(stream.read_u16().await?);
    if len == 0 || len > MAX_REQUEST_LEN {
        return Ok(None);
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn write_reply(stream: &mut (impl AsyncWrite + Unpin), reply: &[u8]) -> io::Result<()> {
    match timeout(WRITE_TIMEOUT, stream.write_all(reply)).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Whether the peer is this host: a loopback address or our own address, as epmd decides.
fn is_local(stream: &TcpStream, peer: SocketAddr) -> bool {
    let peer = peer.ip().to_canonical();
    peer.is_loopback()
        || stream
            .local_addr()
            .is_ok_and(|local| local.ip().to_canonical() == peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use erl_dist::epmd::{EpmdClient, EpmdError, NodeEntry};
    use std::process::Stdio;
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    const WAIT: Duration = Duration::from_secs(5);

    async fn connect(port: u16) -> TcpStream {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .expect("connect")
    }

    async fn client(port: u16) -> EpmdClient<Compat<TcpStream>> {
        EpmdClient::new(connect(port).await.compat())
    }

    async fn names_of(port: u16) -> Vec<(String, u16)> {
        timeout(WAIT, client(port).await.get_names())
            .await
            .expect("names in time")
            .expect("names")
    }

    /// Polls until the server lists exactly `expected`.
    async fn wait_for_names(port: u16, expected: &[(&str, u16)]) {
        let expected: Vec<(String, u16)> =
            expected.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let names = names_of(port).await;
            if names == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "names {names:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends raw bytes and reads everything until the server closes.
    async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
        let mut stream = connect(port).await;
        stream.write_all(bytes).await.expect("write");
        // Half-close, so that even a registration made by accident ends.
        let _ = stream.shutdown().await;
        let mut reply = Vec::new();
        let _ = timeout(WAIT, stream.read_to_end(&mut reply))
            .await
            .expect("server closes");
        reply
    }

    fn request(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as u16).to_be_bytes().to_vec();
        bytes.extend(body);
        bytes
    }

    #[tokio::test]
    async fn register_look_up_list_and_unregister() {
        let server = EpmdServer::bind(0).await.expect("bind");
        let port = server.local_port();
        assert_ne!(port, 0);

        let entry = NodeEntry::new_hidden("alpha", 5555);
        let (registration, creation) = client(port)
            .await
            .register(entry.clone())
            .await
            .expect("register");
        assert!(creation.get() > 3);

        let found = client(port).await.get_node("alpha").await.expect("lookup");
        assert_eq!(found, Some(entry));
        let missing = client(port).await.get_node("beta").await.expect("lookup");
        assert_eq!(missing, None);
        assert_eq!(names_of(port).await, vec![("alpha".to_string(), 5555)]);

        // Newest first, as epmd lists them.
        let (second, next) = client(port)
            .await
            .register(NodeEntry::new("beta", 6666))
            .await
            .expect("register");
        assert_ne!(next.get(), creation.get());
        wait_for_names(port, &[("beta", 6666), ("alpha", 5555)]).await;

        drop(registration);
        wait_for_names(port, &[("beta", 6666)]).await;
        drop(second);
        wait_for_names(port, &[]).await;
        server.shutdown();
    }

    #[tokio::test]
    async fn duplicate_name_is_refused() {
        let server = EpmdServer::bind(0).await.expect("bind");
        let port = server.local_port();
        let (first, creation) = client(port)
            .await
            .register(NodeEntry::new("dup", 1000))
            .await
            .expect("register");
        let second = client(port)
            .await
            .register(NodeEntry::new("dup", 2000))
            .await;
        assert!(matches!(
            second,
            Err(EpmdError::RegisterNodeError { code: 1 })
        ));
        assert_eq!(names_of(port).await, vec![("dup".to_string(), 1000)]);

        // Once the first connection is gone the name is free again, with a new creation.
        drop(first);
        wait_for_names(port, &[]).await;
        let (_again, again) = client(port)
            .await
            .register(NodeEntry::new("dup", 2000))
            .await
            .expect("register again");
        assert_ne!(again.get(), creation.get());
    }

    #[tokio::test]
    async fn replies_match_the_epmd_daemon() {
        let server = EpmdServer::bind(0).await.expect("bind");
        let port = server.local_port();
        // A distribution version 5 node gets the 16-bit ALIVE2_RESP with creation 1..=3.
        let mut alive = vec![ALIVE2_REQ, 0x15, 0xb3, 77, 0, 0, 5, 0, 5, 0, 3];
        alive.extend(b"old\0\0");
        let mut old = connect(port).await;
        old.write_all(&request(&alive)).await.expect("write");
        let mut reply = [0; 4];
        old.read_exact(&mut reply).await.expect("ALIVE2_RESP");
        assert_eq!(reply[..2], [ALIVE2_RESP, 0]);
        assert!((1..=3).contains(&u16::from_be_bytes([reply[2], reply[3]])));
        // The same name again: result 1, creation 99, like epmd.
        alive[6] = 6;
        let reply = exchange(port, &request(&alive)).await;
        assert_eq!(reply, [ALIVE2_X_RESP, 1, 0, 0, 0, 99]);

        let mut names = u32::from(port).to_be_bytes().to_vec();
        names.extend(b"name old at port 5555\n");
        assert_eq!(exchange(port, &request(&[NAMES_REQ])).await, names);
        let dump = exchange(port, &request(&[DUMP_REQ])).await;
        assert!(dump.ends_with(b"active name     <old> at port 5555, fd = 1\n\0"));
        let dump_text = client(port).await.dump().await.expect("dump");
        assert!(dump_text.starts_with("active name     <old> at port 5555"));

        // Lookups, with and without the NUL old clients append.
        let found = exchange(port, &request(b"zold\0")).await;
        assert_eq!(
            found,
            [119, 0, 0x15, 0xb3, 77, 0, 0, 5, 0, 5, 0, 3, b'o', b'l', b'd', 0, 0]
        );
        assert_eq!(exchange(port, &request(b"zx")).await, [PORT2_RESP, 1]);
        assert_eq!(exchange(port, &request(b"z")).await, b"");

        // KILL is refused, STOP and unknown requests are closed without a reply.
        assert_eq!(exchange(port, &request(&[KILL_REQ])).await, b"NO");
        assert_eq!(client(port).await.kill().await.expect("kill"), "NO");
        assert_eq!(exchange(port, &request(b"sold")).await, b"");
        assert_eq!(exchange(port, &request(b"Q")).await, b"");
        wait_for_names(port, &[("old", 5555)]).await;

        // Bytes after a registration end it, as with epmd.
        old.write_all(b"x").await.expect("write");
        wait_for_names(port, &[]).await;
    }

    #[tokio::test]
    async fn bad_lengths_and_stalls_are_dropped() {
        let server = EpmdServer::bind(0).await.expect("bind");
        let port = server.local_port();
        assert_eq!(exchange(port, &[0, 0]).await, b"");
        let mut huge = vec![0x40, 0x00];
        huge.extend(vec![NAMES_REQ; 0x4000]);
        assert_eq!(exchange(port, &huge).await, b"");

        // A client that never finishes its request is dropped after REQUEST_TIMEOUT.
        let mut stall = connect(port).await;
        stall.write_all(&[0, 5, NAMES_REQ]).await.expect("write");
        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        timeout(WAIT, stall.read_to_end(&mut rest))
            .await
            .expect("dropped in time")
            .expect("clean close");
        assert!(rest.is_empty());
        assert!(started.elapsed() >= REQUEST_TIMEOUT - Duration::from_millis(100));

        // Malformed registrations get no reply and register nothing.
        for body in [
            vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 200, b'a', 0, 0],
            vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 1, b'a', 0, 9],
            vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 2, b'a', 0, 0, 0],
            vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 1, b'a', 0],
        ] {
            assert_eq!(exchange(port, &request(&body)).await, b"", "{body:?}");
        }
        // A name that is not UTF-8, or empty, is refused with result 1.
        for body in [
            vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 1, 0xff, 0, 0],
            vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 0, 0, 1, 0],
        ] {
            assert_eq!(
                exchange(port, &request(&body)).await,
                [ALIVE2_X_RESP, 1, 0, 0, 0, 99]
            );
        }
        wait_for_names(port, &[]).await;
    }

    #[tokio::test]
    async fn connections_are_bounded() {
        let server = EpmdServer::bind_with(0, 2).await.expect("bind");
        let port = server.local_port();
        let a = connect(port).await;
        let b = connect(port).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The third is closed at once, well before the request timeout.
        let mut c = connect(port).await;
        let mut rest = Vec::new();
        timeout(REQUEST_TIMEOUT / 2, c.read_to_end(&mut rest))
            .await
            .expect("closed at once")
            .expect("clean close");
        drop((a, b));
        // Slots come back once the idle ones are closed.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let reply = exchange(port, &request(&[NAMES_REQ])).await;
            if reply == u32::from(port).to_be_bytes() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn garbage_never_stops_the_server() {
        let server = EpmdServer::bind(0).await.expect("bind");
        let port = server.local_port();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..300 {
            let len = (next() % 40) as usize;
            let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = body.first_mut() {
                *first = [ALIVE2_REQ, PORT_PLEASE2_REQ, NAMES_REQ, DUMP_REQ, KILL_REQ][i % 5];
            }
            let bytes = if i % 3 == 0 { body } else { request(&body) };
            exchange(port, &bytes).await;
        }
        // Whatever random registrations happened ended with their connections.
        wait_for_names(port, &[]).await;
        for _ in 0..10_000 {
            let len = (next() % 40) as usize;
            let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = Alive2::parse(&body);
            let _ = port_please(&Registry::new(), &body);
        }
    }

    #[tokio::test]
    async fn shutdown_closes_everything() {
        let server = EpmdServer::bind(0).await.expect("bind");
        let port = server.local_port();
        let (mut registration, _) = client(port)
            .await
            .register(NodeEntry::new("gone", 1))
            .await
            .expect("register");
        server.shutdown();
        // The registration socket sees the end of stream, and the port stops answering.
        let mut rest = Vec::new();
        timeout(
            WAIT,
            futures::AsyncReadExt::read_to_end(&mut registration, &mut rest),
        )
        .await
        .expect("closed in time")
        .expect("clean close");
        let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await;
        assert!(refused.is_err());
    }

    #[test]
    fn creations_skip_the_reserved_values() {
        let mut registry = Registry::new();
        registry.next_creation = u32::MAX - 1;
        let creations: Vec<u32> = (0..3).map(|_| registry.creation()).collect();
        assert_eq!(creations, [u32::MAX - 1, u32::MAX, 4]);
    }

    fn on_path(program: &str) -> bool {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    }

    /// A real `erl` registers with this server and `epmd -names` lists it. Skipped where
    /// Erlang is not installed.
    #[tokio::test]
    async fn real_erlang_tools_interoperate() {
        if !on_path("erl") || !on_path("epmd") {
            eprintln!("erl or epmd not on PATH, skipping");
            return;
        }
        let server = EpmdServer::bind(0).await.expect("bind");
        let port = server.local_port();
        let name = format!("cnode_epmd_t{}", std::process::id());
        let mut erl = tokio::process::Command::new("erl")
            .args(["-sname", &name, "-setcookie", "x", "-noshell"])
            .args(["-start_epmd", "false"])
            .env("ERL_EPMD_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn erl");

        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let erl_port = loop {
            let names = names_of(port).await;
            if let Some((_, p)) = names.iter().find(|(n, _)| *n == name) {
                break *p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "erl never registered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };

        let epmd = |arg: &'static str| {
            tokio::process::Command::new("epmd")
                .arg(arg)
                .env("ERL_EPMD_PORT", port.to_string())
                .kill_on_drop(true)
                .output()
        };
        let listed = timeout(WAIT, epmd("-names"))
            .await
            .expect("epmd -names in time")
            .expect("epmd -names");
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(listed.contains(&format!("up and running on port {port} with data:")));
        assert!(listed.contains(&format!("name {name} at port {erl_port}\n")));

        let kill = timeout(WAIT, epmd("-kill"))
            .await
            .expect("epmd -kill in time")
            .expect("epmd -kill");
        assert!(String::from_utf8_lossy(&kill.stdout).contains("Killing not allowed"));

        erl.kill().await.expect("kill erl");
        wait_for_names(port, &[]).await;
    }
}
