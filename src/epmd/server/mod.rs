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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tracing::{debug, warn};

mod messages;
#[cfg(test)]
mod tests;

use messages::{
    names, port_please, Alive2, ALIVE2_REQ, DUMP_REQ, KILL_REQ, MAX_NAME_CHARS, MAX_REQUEST_LEN,
    MAX_SYMBOL_BYTES, NAMES_REQ, PORT_PLEASE2_REQ, STOP_REQ,
};

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
    crate::sync::lock(registry)
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
