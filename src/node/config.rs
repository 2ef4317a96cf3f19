//! How a node is configured: its name, cookie, EPMD port and limits.

use crate::transport::TlsConfig;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a node needs to start. Defaults follow the BEAM's. Its `Debug` leaves
/// the cookie out.
#[derive(Clone)]
pub struct NodeConfig {
    /// Full node name, `name@host`.
    pub name: String,
    /// The distribution cookie.
    pub cookie: String,
    /// Long names (`erl -name`) or short (`-sname`): a node of long names connects to
    /// nodes whose host has a dot or is an IP address, one of short names to hosts
    /// without a dot, as a BEAM node (`inet_tcp_dist:splitnode/3`). Default: long when
    /// the name's own host has a dot or is an IP address ([`is_long`](Self::is_long));
    /// set it for a long name whose host has none, as `erl -name app@localhost`.
    pub long_names: bool,
    /// A hidden node is not in the peers' `nodes()`, syncs `global` with no peer (the
    /// names registered on it are its own) and gets no `rex` traffic (`-hidden`).
    /// Default: visible, as `iex --sname` is.
    pub hidden: bool,
    /// The EPMD port: `ERL_EPMD_PORT`, else 4369.
    pub epmd_port: u16,
    /// `-dist_listen`: when false, the node neither listens for connections nor
    /// registers with EPMD (nor starts one): it only connects out, as `erl_call` does,
    /// and no peer can connect to it. As on the BEAM, this implies `hidden`; its
    /// creation is random. Two such nodes of the same name would not know of each
    /// other, so give each a name of its own. Default true.
    pub dist_listen: bool,
    /// The distribution listening port; 0 picks a free one, as the BEAM does
    /// (`-kernel inet_dist_listen_min P inet_dist_listen_max P` fixes one there).
    pub listen_port: u16,
    /// The address the distribution listens on: every interface (`0.0.0.0`; `::`,
    /// IPv4 included, for a name whose host is an IPv6 address, as `-proto_dist
    /// inet6_tcp`) by default, as the BEAM's; `127.0.0.1` keeps it to this machine, as
    /// `-kernel inet_dist_use_interface {127,0,0,1}`.
    pub listen_address: std::net::IpAddr,
    /// `net_ticktime`: a peer from which no whole packet (a frame, a tick) came for four
    /// quarters of it in a row is dropped (after between one and 1.25 times it, as
    /// `net_kernel` does: bytes of a frame that trickles in do not count); we write at
    /// least every quarter of it. Default 60 s.
    pub tick_time: Duration,
    /// `net_setuptime`: the longest a handshake may take. Default 7 s.
    pub setup_time: Duration,
    /// The largest distribution message accepted, in bytes; a larger one closes that
    /// connection with a log line (a BEAM node has no such limit). Default 1 GiB, what
    /// a peer may have in progress at once ([`max_reassembly`](Self::max_reassembly)).
    pub max_message_size: usize,
    /// The bytes of fragmented messages a peer may have in progress on one connection,
    /// together: a BEAM node sends a large message from each of its processes at once,
    /// their fragments interleaved (four 50 MB messages are 200 MB in progress). Beyond
    /// it the connection closes with a log line, so that a peer that starts messages
    /// and never ends them cannot take memory without bound. What is counted is what
    /// arrived, never what a header announced. Default 1 GiB.
    pub max_reassembly: usize,
    /// The distribution buffer busy limit (`+zdbbl`), in bytes: when more than this
    /// waits to be written to a peer, the connection is busy, and a process that sends
    /// to it waits at its next `receive` (or [`Process::yield_now`](crate::Process::yield_now))
    /// until the writer has caught up, as a BEAM process is suspended on a busy
    /// distribution port; ticks and other connections go on. Default 1 MiB, as the
    /// BEAM's.
    pub dist_buf_busy_limit: usize,
    /// How deeply terms in a message may nest; a message nested deeper closes its
    /// connection. Default 4,096. A BEAM node has no such limit, and iodata built by
    /// appending in a loop (`[acc, x]`) nests a level per append. Decoding, encoding,
    /// printing, comparing, hashing and cloning a term move onto fresh stack segments
    /// as they go deeper, on any thread; dropping one does not, and takes about 200
    /// bytes of the thread's stack a level in a debug build (64 in a release build):
    /// 4,096 levels are 0.8 MiB of a tokio worker's 2 MiB. To take deeper terms,
    /// raise this together with the stack of the runtime's threads
    /// (`tokio::runtime::Builder::thread_stack_size`), as Moebi does.
    pub max_term_depth: usize,
    /// How many processes the node may hold at once (`erl +P`), its own among them: a
    /// peer's remote spawn, `rpc` or `erpc` call that would go beyond it is refused
    /// with `system_limit` (`Too many processes` in the log), as on a BEAM node, so
    /// that a peer cannot grow the node until the memory runs out. The node's own code
    /// is not held to it. Default 262,144, the BEAM's.
    pub max_processes: usize,
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

impl std::fmt::Debug for NodeConfig {
    /// Every field but the cookie, which logs and panics must not show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field is shown (or hidden) by choice.
        let NodeConfig {
            name,
            cookie: _,
            long_names,
            hidden,
            epmd_port,
            dist_listen,
            listen_port,
            listen_address,
            tick_time,
            setup_time,
            max_message_size,
            max_reassembly,
            dist_buf_busy_limit,
            max_term_depth,
            max_processes,
            max_pending_handshakes,
            busy_poll,
            prevent_overlapping_partitions,
            tls,
        } = self;
        f.debug_struct("NodeConfig")
            .field("name", name)
            .field("cookie", &"<hidden>")
            .field("long_names", long_names)
            .field("hidden", hidden)
            .field("epmd_port", epmd_port)
            .field("dist_listen", dist_listen)
            .field("listen_port", listen_port)
            .field("listen_address", listen_address)
            .field("tick_time", tick_time)
            .field("setup_time", setup_time)
            .field("max_message_size", max_message_size)
            .field("max_reassembly", max_reassembly)
            .field("dist_buf_busy_limit", dist_buf_busy_limit)
            .field("max_term_depth", max_term_depth)
            .field("max_processes", max_processes)
            .field("max_pending_handshakes", max_pending_handshakes)
            .field("busy_poll", busy_poll)
            .field(
                "prevent_overlapping_partitions",
                prevent_overlapping_partitions,
            )
            .field("tls", tls)
            .finish()
    }
}

impl NodeConfig {
    /// A visible node `name` (`name@host`) with `cookie` and the defaults.
    pub fn new(name: &str, cookie: &str) -> Self {
        NodeConfig {
            name: name.to_owned(),
            cookie: cookie.to_owned(),
            long_names: Self::is_long(name),
            hidden: false,
            epmd_port: crate::epmd::port_from_env(),
            dist_listen: true,
            listen_port: 0,
            listen_address: default_listen_address(name),
            tick_time: Duration::from_secs(60),
            setup_time: Duration::from_secs(7),
            max_message_size: 1024 * 1024 * 1024,
            max_reassembly: 1024 * 1024 * 1024,
            dist_buf_busy_limit: 1024 * 1024,
            max_term_depth: 4096,
            max_pending_handshakes: 256,
            max_processes: 262_144,
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

    /// Whether `name` is a long name (`erl -name`): its host has a dot or is an IP
    /// address. A node of short names connects to short names only, and the other way
    /// round; `erl -sname` refuses a long one ("Can't set short node name!").
    pub fn is_long(name: &str) -> bool {
        name.split_once('@')
            .is_some_and(|(_, host)| is_long_host(host))
    }

    /// The full name for `--name NAME[@HOST]`: the host defaults to this machine's
    /// fully qualified name, as `erl -name` does: its host name when that has a domain,
    /// else the canonical name the resolver gives it, else the host name with the
    /// `domain` (or first `search`) of `/etc/resolv.conf`. Where none has a domain,
    /// [`NodeError::NoDomain`](super::NodeError::NoDomain), as `erl -name NAME` refuses to start ("Can't set long
    /// node name!"): a name such as `NAME@vm` is one no long-named BEAM node connects to.
    pub fn long_name(name: &str) -> Result<String, super::NodeError> {
        if name.contains('@') {
            return Ok(name.to_owned());
        }
        let host = hostname();
        fully_qualified(&host)
            .map(|fqdn| format!("{name}@{fqdn}"))
            .ok_or(super::NodeError::NoDomain(host))
    }
}

/// `host` with its domain: as it is when it has one, else the resolver's canonical name
/// for it, else with `/etc/resolv.conf`'s domain.
fn fully_qualified(host: &str) -> Option<String> {
    if host.contains('.') {
        return Some(host.to_owned());
    }
    if let Some(canonical) = canonical_name(host).filter(|c| c.contains('.')) {
        return Some(canonical);
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    let domain = conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("domain" | "search") => words.next().map(str::to_owned),
            _ => None,
        }
    })?;
    Some(format!("{host}.{}", domain.trim_end_matches('.')))
}

/// The canonical name `getaddrinfo(3)` gives `host` (`AI_CANONNAME`), as `inet_db`
/// finds the domain of a host name that has none. std's resolver does not give it.
#[cfg(not(target_os = "linux"))]
fn canonical_name(_host: &str) -> Option<String> {
    None
}

/// The canonical name `getaddrinfo(3)` gives `host` (`AI_CANONNAME`), as `inet_db`
/// finds the domain of a host name that has none. std's resolver does not give it.
#[cfg(target_os = "linux")]
fn canonical_name(host: &str) -> Option<String> {
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: `hints` is a zeroed addrinfo with the fields getaddrinfo reads set; the
    // list it returns is read only while it lives and freed once, below.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        hints.ai_family = libc::AF_UNSPEC;
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut found: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut found) != 0 {
            return None;
        }
        let name = (!found.is_null() && !(*found).ai_canonname.is_null()).then(|| {
            std::ffi::CStr::from_ptr((*found).ai_canonname)
                .to_string_lossy()
                .into_owned()
        });
        libc::freeaddrinfo(found);
        name
    }
}

/// Every interface: IPv6's (which takes IPv4 too) for a name whose host is an IPv6
/// address, as a BEAM node so named runs `-proto_dist inet6_tcp`; IPv4's otherwise, as
/// the BEAM's `inet_tcp`.
fn default_listen_address(name: &str) -> std::net::IpAddr {
    let v6 = name
        .split_once('@')
        .is_some_and(|(_, host)| host.parse::<std::net::Ipv6Addr>().is_ok());
    if v6 {
        std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    }
}

/// Whether `host` is a long name's: it has a dot, or it is an IP address.
pub(crate) fn is_long_host(host: &str) -> bool {
    host.contains('.') || host.parse::<std::net::IpAddr>().is_ok()
}

/// This machine's host name, as `gethostname(2)` gives it (`localhost` when none).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The cookie `erl` would use without `-setcookie`, found as `auth.erl` finds it:
/// `~/.erlang.cookie`, else `$XDG_CONFIG_HOME/erlang/.erlang.cookie` (`~/.config/...`
/// by default), else a new `~/.erlang.cookie` of 20 random upper-case letters, mode
/// 0400. As on the BEAM, a cookie file others may read or write, one with characters
/// other than printable ASCII (but for the line end), or an empty one is an error, and
/// so is no `HOME` with no cookie under `XDG_CONFIG_HOME`.
pub fn default_cookie() -> std::io::Result<String> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    cookie_in(var("HOME"), var("XDG_CONFIG_HOME"))
}

/// The cookie of a node started as an Elixir release starts one: `$RELEASE_COOKIE`
/// when it is set and not empty, else [`default_cookie`]. What a program that takes
/// `--cookie` uses without it, as Moebi and the `cnode` command do.
pub fn release_cookie() -> std::io::Result<String> {
    match std::env::var("RELEASE_COOKIE") {
        Ok(cookie) if !cookie.is_empty() => Ok(cookie),
        _ => default_cookie(),
    }
}

/// [`default_cookie`] with `HOME` and `XDG_CONFIG_HOME` as given.
fn cookie_in(home: Option<PathBuf>, xdg_config: Option<PathBuf>) -> std::io::Result<String> {
    let xdg = xdg_config
        .or_else(|| home.as_ref().map(|h| h.join(".config")))
        .map(|config| config.join("erlang").join(".erlang.cookie"));
    let home_path = home.map(|h| h.join(".erlang.cookie"));
    for path in home_path.iter().chain(xdg.iter()) {
        if let Some(cookie) = read_cookie(path)? {
            return Ok(cookie);
        }
    }
    let Some(path) = home_path.or(xdg) else {
        return Err(std::io::Error::other(
            "no home for the cookie file (HOME is not set)",
        ));
    };
    let cookie: String = (0..20)
        .map(|_| (b'A' + rand::random_range(0..26u8)) as char)
        .collect();
    std::fs::write(&path, &cookie).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("failed to create cookie file {}: {e}", path.display()),
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))?;
    }
    Ok(cookie)
}

/// The cookie in `path` (`None` when there is no such file), checked as `auth.erl`
/// checks it.
fn read_cookie(path: &std::path::Path) -> std::io::Result<Option<String>> {
    let bad = |why: String| std::io::Error::other(why);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(format!("error when reading {}: {e}", path.display()))),
    };
    if !meta.is_file() {
        return Err(bad(format!(
            "cookie file {} is not a regular file",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(bad(format!(
                "cookie file {} must be accessible by owner only",
                path.display()
            )));
        }
    }
    let text = std::fs::read(path)
        .map_err(|e| bad(format!("error when reading {}: {e}", path.display())))?;
    // Printable ASCII, then nothing but line ends and spaces (`check_cookie/2`).
    let end = text
        .iter()
        .position(|b| !(b' '..=b'~').contains(b))
        .unwrap_or(text.len());
    if text[end..]
        .iter()
        .any(|b| !matches!(b, b'\n' | b'\r' | b' '))
    {
        return Err(bad(format!(
            "bad characters in cookie file {}",
            path.display()
        )));
    }
    if end == 0 {
        return Err(bad(format!(
            "too short cookie string in {}",
            path.display()
        )));
    }
    Ok(Some(String::from_utf8_lossy(&text[..end]).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::cookie_in;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// A directory of this test's own, emptied.
    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cnode-cookie-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_cookie_is_found_and_checked_as_auth_erl_does() {
        let home = dir("home");
        let xdg = home.join(".config/erlang/.erlang.cookie");
        // Only under XDG: that one, and no ~/.erlang.cookie made.
        write(&xdg, "XDGCOOKIE\n", 0o400);
        assert_eq!(cookie_in(Some(home.clone()), None).unwrap(), "XDGCOOKIE");
        assert!(!home.join(".erlang.cookie").exists());
        // ~/.erlang.cookie first; a trailing line end is not the cookie's.
        write(&home.join(".erlang.cookie"), "HOMECOOKIE\r\n", 0o600);
        assert_eq!(cookie_in(Some(home.clone()), None).unwrap(), "HOMECOOKIE");
        // Readable by others, bad characters, empty: errors, as erl refuses them.
        for (text, mode, why) in [
            ("HOMECOOKIE", 0o644, "must be accessible by owner only"),
            ("HOME\u{7}COOKIE", 0o600, "bad characters"),
            ("\n", 0o600, "too short"),
        ] {
            write(&home.join(".erlang.cookie"), text, mode);
            let e = cookie_in(Some(home.clone()), None).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        // Neither file: ~/.erlang.cookie made, 20 letters, owner-read only.
        let fresh = dir("fresh");
        let made = cookie_in(Some(fresh.clone()), None).unwrap();
        assert_eq!(made.len(), 20);
        assert!(made.bytes().all(|b| b.is_ascii_uppercase()));
        let meta = std::fs::metadata(fresh.join(".erlang.cookie")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o400);
        assert_eq!(cookie_in(Some(fresh.clone()), None).unwrap(), made);
        // No HOME: XDG_CONFIG_HOME's, else an error (no file made in the directory).
        let config = dir("config");
        assert!(cookie_in(None, None).is_err());
        write(&config.join("erlang/.erlang.cookie"), "XDGONLY", 0o400);
        assert_eq!(cookie_in(None, Some(config.clone())).unwrap(), "XDGONLY");
        for d in [home, fresh, config] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    /// A name whose host is an IPv6 address listens on `::`, as `-proto_dist
    /// inet6_tcp`; any other on `0.0.0.0`; `long_names` follows the host.
    #[test]
    fn defaults_follow_the_name() {
        let v6 = super::NodeConfig::new("a@::1", "c");
        assert_eq!(v6.listen_address.to_string(), "::");
        assert!(v6.long_names);
        let short = super::NodeConfig::new("a@localhost", "c");
        assert_eq!(short.listen_address.to_string(), "0.0.0.0");
        assert!(!short.long_names);
        assert!(super::NodeConfig::new("a@10.0.0.5", "c").long_names);
    }

    #[test]
    fn debug_leaves_the_cookie_out() {
        let config = super::NodeConfig::new("moebi@localhost", "s3cr3t_cookie");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t_cookie"), "{shown}");
        assert!(shown.contains("moebi@localhost"), "{shown}");
    }
}
