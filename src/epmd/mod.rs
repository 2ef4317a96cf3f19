//! EPMD: registering this node and looking up peers, plus an in-process EPMD server used
//! when no EPMD daemon answers and none can be started.
//!
//! The client side is `erl_dist::epmd::EpmdClient` over tokio (through tokio-util's
//! compat layer), on a buffered stream, so that each request is one write and each
//! answer one read. The registration connection stays open for the node's lifetime, as
//! EPMD requires; if EPMD goes away (restarted under us), we register again.

pub mod server;

use erl_dist::epmd::{EpmdClient, NodeEntry};
use std::time::Duration;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// Our registration with EPMD; dropping it unregisters (closes the socket).
pub(crate) struct Registration {
    creation: u32,
    task: tokio::task::JoinHandle<()>,
    _server: Option<server::EpmdServer>,
}

impl Registration {
    /// The creation EPMD handed out when we first registered.
    pub(crate) fn creation(&self) -> u32 {
        self.creation
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long a lost EPMD may take to come back before the log says again that it is
/// missing. No EPMD is started in its place, as a BEAM node starts none after its boot:
/// usually it is being restarted (by hand, or by systemd), and a daemon of ours would
/// take the port it comes back on.
const EPMD_RESTART_GRACE: Duration = Duration::from_secs(10);

/// The longest wait between two attempts to register again.
const MAX_REREGISTER_DELAY: Duration = Duration::from_secs(2);

/// How long EPMD may take to answer a registration. Something that accepts on the EPMD
/// port and never answers would otherwise hold `Node::start` (or re-registration) for
/// ever.
const EPMD_ANSWER_TIME: Duration = Duration::from_secs(5);

async fn try_register(alive: &str, port: u16, epmd_port: u16) -> std::io::Result<(TcpStream, u32)> {
    try_register_within(alive, port, epmd_port, EPMD_ANSWER_TIME).await
}

async fn try_register_within(
    alive: &str,
    port: u16,
    epmd_port: u16,
    limit: Duration,
) -> std::io::Result<(TcpStream, u32)> {
    let attempt = async {
        let stream = TcpStream::connect(("127.0.0.1", epmd_port)).await?;
        let client = EpmdClient::new(buffered(stream));
        let (stream, creation) =
            client
                .register(NodeEntry::new(alive, port))
                .await
                .map_err(|e| match e {
                    // EPMD refuses a name it has (result 1 to ALIVE2_REQ).
                    erl_dist::epmd::EpmdError::RegisterNodeError { .. } => std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("EPMD refused the name {alive}: it is registered"),
                    ),
                    e => std::io::Error::other(e.to_string()),
                })?;
        Ok((stream.into_inner().into_inner(), creation.get()))
    };
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "EPMD on port {epmd_port} did not answer the registration within {limit:?}"
                ),
            ))
        })
}

/// Registers `alive` (the part of the node name before `@`) listening on `port` with the
/// EPMD on `epmd_port`. When no EPMD answers we start one the way `erl` does
/// (`epmd -daemon`), and failing that serve EPMD in-process.
pub(crate) async fn register(
    alive: &str,
    port: u16,
    epmd_port: u16,
) -> std::io::Result<Registration> {
    let mut server = None;
    let first = match try_register(alive, port, epmd_port).await {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            if start_epmd_daemon(epmd_port).await {
                tracing::info!(epmd_port, "started epmd -daemon");
            } else {
                server = Some(server::EpmdServer::bind(epmd_port).await?);
                tracing::info!(
                    epmd_port,
                    "no epmd on this machine: serving EPMD in-process"
                );
            }
            try_register(alive, port, epmd_port).await?
        }
        Err(e) => return Err(e),
    };
    let (stream, creation) = first;
    let alive = alive.to_owned();
    let task = tokio::spawn(async move {
        let mut stream = stream;
        loop {
            // EPMD never writes on a registration socket; a read returns when it closes.
            let mut buf = [0u8; 16];
            loop {
                match tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            tracing::warn!(epmd_port, "lost the EPMD registration; registering again");
            let lost = tokio::time::Instant::now();
            let mut said = false;
            let mut delay = Duration::from_millis(100);
            stream = loop {
                tokio::time::sleep(delay).await;
                match try_register(&alive, port, epmd_port).await {
                    Ok((s, _)) => {
                        tracing::info!(epmd_port, "registered with EPMD again");
                        break s;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        // Gone for longer than a restart takes: said once, and waited
                        // for, as a BEAM node waits (it starts none after its boot).
                        if !said && lost.elapsed() >= EPMD_RESTART_GRACE {
                            said = true;
                            tracing::warn!(
                                epmd_port,
                                "no EPMD for {}s: nodes cannot look this one up by name \
                                 until one runs on the port again (it registers then)",
                                EPMD_RESTART_GRACE.as_secs()
                            );
                        } else {
                            tracing::debug!("EPMD still unavailable");
                        }
                    }
                    Err(e) => tracing::debug!("EPMD registration failed: {e}"),
                }
                delay = (delay * 2).min(MAX_REREGISTER_DELAY);
            };
        }
    });
    Ok(Registration {
        creation,
        task,
        _server: server,
    })
}

/// `epmd -daemon` on `epmd_port`, as `erl` starts it; true once it answers.
async fn start_epmd_daemon(epmd_port: u16) -> bool {
    let spawned = tokio::process::Command::new("epmd")
        .arg("-daemon")
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if !matches!(spawned, Ok(s) if s.success()) {
        return false;
    }
    for _ in 0..50 {
        if TcpStream::connect(("127.0.0.1", epmd_port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// `stream` for `EpmdClient`: it writes a request field by field and reads an answer the
/// same way, so that unbuffered, a registration is ten `sendto`s and as many `recvfrom`s
/// (and with Nagle's algorithm, small segments held back for acknowledgements). Buffered,
/// each request is one write (it flushes after each) and each answer one read. EPMD
/// sends nothing after an answer, so the read buffer `into_inner` drops is empty.
fn buffered(stream: TcpStream) -> Compat<BufStream<TcpStream>> {
    BufStream::new(stream).compat()
}

/// The EPMD port as `erl` finds it: `ERL_EPMD_PORT` if set and valid, else 4369.
pub fn port_from_env() -> u16 {
    std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(erl_dist::epmd::DEFAULT_EPMD_PORT)
}

/// The nodes registered with EPMD on `host`, with their distribution ports, as
/// `epmd -names` lists them.
pub async fn names(host: &str, epmd_port: u16) -> std::io::Result<Vec<(String, u16)>> {
    let stream = TcpStream::connect((host, epmd_port)).await?;
    EpmdClient::new(buffered(stream))
        .get_names()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The distribution port of node `alive` on the host at `ips` (its addresses, tried in
/// order), or `None` if it is not registered.
pub(crate) async fn lookup(
    ips: &[std::net::IpAddr],
    alive: &str,
    epmd_port: u16,
) -> std::io::Result<Option<u16>> {
    let epmds: Vec<std::net::SocketAddr> = ips.iter().map(|&ip| (ip, epmd_port).into()).collect();
    let stream = TcpStream::connect(&epmds[..]).await?;
    let client = EpmdClient::new(buffered(stream));
    let entry = client
        .get_node(alive)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(entry.map(|e| e.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Something on the EPMD port that accepts and never answers: registering fails
    /// with a clear error in bounded time instead of waiting for ever.
    #[tokio::test]
    async fn a_silent_epmd_is_an_error_not_a_hang() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let epmd_port = silent.local_addr().unwrap().port();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let e = try_register_within("x", 1, epmd_port, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("did not answer"), "{e}");
        holder.abort();
    }
}
