//! A cluster spanning hosts: alex (a real Elixir node with the Chat app) and Moebi (the
//! Rust example) each on a test host of their own (a network namespace), joined by a veth
//! pair, with long names (`--name alex@10.x.y.1`). Each host runs its own EPMD on the
//! standard port, as real hosts do.
//!
//! Needs root (for `ip netns`), as CI has; without it the test fails with the reason.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Two network namespaces joined by a veth pair; removed (with what runs in them) on drop.
struct Hosts {
    names: [String; 2],
    addrs: [String; 2],
    children: Vec<Child>,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "`{}` failed (this test needs root for network namespaces): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Hosts {
    fn new() -> Hosts {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = (std::process::id() % 200) * 10 + N.fetch_add(1, Ordering::Relaxed) % 10;
        let names = [format!("cnode{id}a"), format!("cnode{id}b")];
        // 10.201.X.0/24 with X from the id: our own test hosts, no other network.
        let net = format!("10.201.{}", id % 250);
        let addrs = [format!("{net}.1"), format!("{net}.2")];
        let veth = [format!("cv{id}a"), format!("cv{id}b")];
        for n in &names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            run(&["ip", "netns", "add", n]);
            run(&["ip", "netns", "exec", n, "ip", "link", "set", "lo", "up"]);
        }
        run(&[
            "ip", "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ]);
        for i in 0..2 {
            run(&["ip", "link", "set", &veth[i], "netns", &names[i]]);
            run(&[
                "ip",
                "netns",
                "exec",
                &names[i],
                "ip",
                "addr",
                "add",
                &format!("{}/24", addrs[i]),
                "dev",
                &veth[i],
            ]);
            run(&[
                "ip", "netns", "exec", &names[i], "ip", "link", "set", &veth[i], "up",
            ]);
        }
        Hosts {
            names,
            addrs,
            children: Vec::new(),
        }
    }

    /// Starts `args` on host `i`, with its own process group.
    fn spawn(&mut self, i: usize, args: &[&str], dir: Option<&std::path::Path>) -> usize {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[i]])
            .args(args)
            .env("ERL_EPMD_PORT", "4369")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        self.children.push(cmd.spawn().expect("spawn in namespace"));
        self.children.len() - 1
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for c in &mut self.children {
            unsafe { libc_kill(-(c.id() as i32), 9) };
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn wait_for_epmd(hosts: &Hosts, i: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ok = Command::new("ip")
            .args(["netns", "exec", &hosts.names[i], "epmd", "-names"])
            .env("ERL_EPMD_PORT", "4369")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("epmd did not start on host {i}");
}

fn read_all(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut s);
    }
    s
}

#[test]
fn chat_across_two_hosts_with_long_names() {
    support::ensure_chat_compiled();
    let moebi_bin = support::moebi_binary();
    let mut hosts = Hosts::new();
    let (alex_host, moebi_host) = (hosts.addrs[0].clone(), hosts.addrs[1].clone());
    let moebi = format!("moebi@{moebi_host}");
    let alex = format!("alex@{alex_host}");

    hosts.spawn(0, &["epmd"], None);
    hosts.spawn(1, &["epmd"], None);
    wait_for_epmd(&hosts, 0);
    wait_for_epmd(&hosts, 1);
    let moebi_idx = hosts.spawn(
        1,
        &[
            moebi_bin.to_str().unwrap(),
            "--name",
            &moebi,
            "--cookie",
            "secret_token",
        ],
        None,
    );
    // Wait for Moebi's registration on its host.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let names = Command::new("ip")
            .args(["netns", "exec", &hosts.names[1], "epmd", "-names"])
            .env("ERL_EPMD_PORT", "4369")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if names.contains("name moebi ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moebi did not register on its host"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // iex --name alex@<host a> -S mix, then the seed's commands against moebi on host b.
    let script = format!(
        "IO.inspect(Node.ping(:\"{moebi}\"), label: \"ping\")
         IO.inspect(Chat.send_message(:\"{moebi}\", \"hi across hosts\"), label: \"send_message\")
         IO.inspect(Node.list(), label: \"nodes\")"
    );
    let alex_idx = hosts.spawn(
        0,
        &[
            "timeout",
            "60",
            "elixir",
            "--name",
            &alex,
            "--cookie",
            "secret_token",
            "--erl",
            "-start_epmd false",
            "-S",
            "mix",
            "run",
            "--no-compile",
            "-e",
            &script,
        ],
        Some(&support::chat_dir()),
    );
    let alex_child = &mut hosts.children[alex_idx];
    let status = alex_child.wait().expect("alex ran");
    let alex_out = read_all(alex_child);
    assert!(status.success(), "alex failed:\n{alex_out}");
    assert!(
        alex_out.contains("ping: :pong"),
        "alex pings moebi across hosts:\n{alex_out}"
    );
    assert!(
        alex_out.contains("chicken?"),
        "moebi answers on alex's terminal:\n{alex_out}"
    );
    assert!(alex_out.contains("send_message: :ok"), "{alex_out}");
    assert!(
        alex_out.contains(&format!("nodes: [:\"{moebi}\"]")),
        "{alex_out}"
    );

    // Moebi printed the message on its own terminal.
    let moebi_child = &mut hosts.children[moebi_idx];
    unsafe { libc_kill(-(moebi_child.id() as i32), 15) };
    let moebi_out = read_all(moebi_child);
    assert!(
        moebi_out.lines().any(|l| l == "hi across hosts"),
        "moebi prints the message:\n{moebi_out}"
    );
}
