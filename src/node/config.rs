//! How a node is configured: its name, cookie, EPMD port and limits.

use crate::transport::TlsConfig;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a node needs to start. Defaults follow the BEAM's.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Full node name, `name@host`.
    pub name: String,
    /// The distribution cookie.
    pub cookie: String,
    /// A hidden node is not in the peers' `nodes()`, takes no part in `global` and gets
    /// no `rex` traffic (`-hidden`). Default: visible, as `iex --sname` is.
    pub hidden: bool,
    /// The EPMD port: `ERL_EPMD_PORT`, else 4369.
    pub epmd_port: u16,
    /// `-dist_listen`: when false, the node neither listens for connections nor
    /// registers with EPMD (nor starts one): it only connects out, as `erl_call` does,
    /// and no peer can connect to it. As on the BEAM, this implies `hidden`; its
    /// creation is random. Two such nodes of the same name would not know of each
    /// other, so give each a name of its own. Default true.
    pub dist_listen: bool,
    /// The distribution listening port; 0 picks a free one, as the BEAM does.
    pub listen_port: u16,
    /// `net_ticktime`: a peer silent for four quarters of it in a row is dropped (after
    /// between one and 1.25 times it, as `net_kernel` does); we write at least every
    /// quarter of it. Default 60 s.
    pub tick_time: Duration,
    /// `net_setuptime`: the longest a handshake may take. Default 7 s.
    pub setup_time: Duration,
    /// The largest distribution message accepted, in bytes; a larger one closes that
    /// connection with a log line. Fragmented messages being reassembled count
    /// together against it (a peer can start many). Default 128 MiB.
    pub max_message_size: usize,
    /// The distribution buffer busy limit (`+zdbbl`), in bytes: when more than this
    /// waits to be written to a peer, the connection is busy, and a process that sends
    /// to it waits at its next `receive` (or [`Process::yield_now`](crate::Process::yield_now))
    /// until the writer has caught up, as a BEAM process is suspended on a busy
    /// distribution port; ticks and other connections go on. Default 1 MiB, as the
    /// BEAM's.
    pub dist_buf_busy_limit: usize,
    /// How deeply terms in a message may nest. Default 512.
    pub max_term_depth: usize,
    /// Handshakes in progress at once: when another peer connects while this many are
    /// pending, the oldest pending one is dropped (with a log line), so that peers that
    /// stall cannot keep real ones out. Default 256.
    pub max_pending_handshakes: usize,
    /// How long a connection that has just received data keeps polling for more
    /// before its thread sleeps (at most one connection of the process at a time), as
    /// the BEAM's schedulers busy-wait (`+sbwt`). Waking a sleeping thread costs more
    /// than handling a message, so in a conversation this saves CPU as well as
    /// latency (`docs/benchmarks.md`); an idle node does not spin, nor does a
    /// connection whose peer keeps many requests in flight while every core of the
    /// machine has a runnable thread (on Linux, by `/proc/loadavg` and the online
    /// CPUs), when polling would take a core from one that has work. With a peer that
    /// keeps requests in flight, a connection also tries now and then (after its first
    /// second, for 0.4 s every 0.5 to 2 s) not polling at all, and keeps whichever of
    /// the two brought the peer's messages faster: on two cores shared with a BEAM
    /// caller that keeps 64 small calls in flight, not polling brings 15% more calls
    /// a second for a fifth less CPU, while a Rust caller doing the same gets a sixth
    /// fewer. Each trial's verdict is logged at debug level (`cnode::connection`), with
    /// both rates. `Duration::ZERO` turns it off. Default 100 µs.
    pub busy_poll: Duration,
    /// `global`'s `prevent_overlapping_partitions` (a kernel parameter on the BEAM): when
    /// two nodes of the cluster lose each other, the others drop both, so that no two
    /// partitions overlap. With it we tell the nodes we know of each node we lose, and
    /// act on what they tell us. The nodes of a cluster should agree on it. Default
    /// true, as on OTP 25.
    pub prevent_overlapping_partitions: bool,
    /// TLS distribution, as `-proto_dist inet_tls` (see [`TlsConfig`]): every
    /// connection, both ways, runs inside TLS, and a plain TCP peer is refused. EPMD
    /// stays plain. Default: none (plain TCP, as `erl` without `-proto_dist`).
    pub tls: Option<TlsConfig>,
}

impl NodeConfig {
    /// A visible node `name` (`name@host`) with `cookie` and the defaults.
    pub fn new(name: &str, cookie: &str) -> Self {
        NodeConfig {
            name: name.to_owned(),
            cookie: cookie.to_owned(),
            hidden: false,
            epmd_port: crate::epmd::port_from_env(),
            dist_listen: true,
            listen_port: 0,
            tick_time: Duration::from_secs(60),
            setup_time: Duration::from_secs(7),
            max_message_size: 128 * 1024 * 1024,
            dist_buf_busy_limit: 1024 * 1024,
            max_term_depth: 512,
            max_pending_handshakes: 256,
            busy_poll: Duration::from_micros(100),
            prevent_overlapping_partitions: true,
            tls: None,
        }
    }

    /// The full name for `--sname NAME[@HOST]`: the host defaults to this machine's
    /// short host name, as `erl -sname` does.
    pub fn short_name(name: &str) -> String {
        if name.contains('@') {
            name.to_owned()
        } else {
            let host = hostname();
            format!("{name}@{}", host.split('.').next().unwrap_or("localhost"))
        }
    }

    /// The full name for `--name NAME[@HOST]`: the host defaults to this machine's
    /// fully qualified name, as `erl -name` does.
    pub fn long_name(name: &str) -> String {
        if name.contains('@') {
            name.to_owned()
        } else {
            format!("{name}@{}", hostname())
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The cookie `erl` would use without `-setcookie`: `~/.erlang.cookie`, created with 20
/// random upper-case letters and mode 0400 when absent (as `auth.erl` does).
pub fn default_cookie() -> std::io::Result<String> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let path = home.join(".erlang.cookie");
    match std::fs::read_to_string(&path) {
        Ok(c) => Ok(c.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cookie: String = (0..20)
                .map(|_| (b'A' + rand::random_range(0..26u8)) as char)
                .collect();
            std::fs::write(&path, &cookie)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))?;
            }
            Ok(cookie)
        }
        Err(e) => Err(e),
    }
}
