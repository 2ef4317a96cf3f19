//! The BEAM's own framing with real BEAM nodes: atoms through the atom cache both ways,
//! large messages in fragments both ways with small ones passing them, and a busy
//! connection (`dist_buf_busy_limit`, the BEAM's `+zdbbl`) holding its sender, not
//! memory, while the peer does not read; a large message given away is never copied,
//! even while its connection is coming up.

mod support;

use cnode::term::{atom, binary, int, tuple, Match, Term};
use cnode::{Node, NodeConfig, Process};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{in_process, unique_name, BeamNode, Epmd};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(30);

async fn start_node(prefix: &str, epmd_port: u16) -> Node {
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name(prefix)), COOKIE);
    config.epmd_port = epmd_port;
    Node::start(config).await.expect("the node starts")
}

/// The system allocator, counting the bytes this test process holds and the most it
/// held since [`Counting::reset_peak`].
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grew(by: usize) {
        let now = HELD.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    /// The bytes held now, which the peak starts from again.
    fn reset_peak() -> usize {
        let now = HELD.load(Ordering::Relaxed);
        PEAK.store(now, Ordering::Relaxed);
        now
    }
}

// SAFETY: every call is passed to `System` as it came; the counters are only counters.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = std::alloc::System.alloc(layout);
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = std::alloc::System.alloc_zeroed(layout);
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(p, layout);
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let q = std::alloc::System.realloc(p, layout, size);
        if !q.is_null() {
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
            Counting::grew(size);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time: the busy-connection test reads this process's memory, which
/// the others' 20 MB messages would blur.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// `{From, Message}` to `:mirror` comes back to `From` as `Message`, whatever it is.
fn start_mirror(node: &Node) {
    node.spawn_registered("mirror", |mut p: Process| async move {
        loop {
            let m = p.receive().await;
            if let Some([Term::Pid(from), message]) =
                m.as_tuple_n(2).map(|e| [e[0].clone(), e[1].clone()])
            {
                p.send(from, message);
            }
        }
    })
    .expect("the name is free");
}

/// Thousands of distinct atoms, more than the 2048 entries of a cache and more than a
/// header's 255 references, go to a Rust process and back unchanged, again and again
/// (so both sides' caches are full, reused and overwritten), alongside the seed's chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atoms_round_trip_through_both_caches() {
    let _serial = SERIAL.lock().await;
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("cache", epmd.port()).await;
    start_mirror(&node);
    let me = node.name().to_owned();
    let got = blocking(|| {
        alex.eval(&format!(
            r#"atoms = for i <- 1..3000, do: String.to_atom("atom_#{{i}}_#{{rem(i * 7919, 3001)}}")
               Enum.all?(1..5, fn round ->
                 msg = {{:round, round, Enum.shuffle(atoms), %{{"k" => [:c, :d], a: :b}}}}
                 send({{:mirror, :"{me}"}}, {{self(), msg}})
                 receive do
                   ^msg -> true
                 after 20_000 -> false
                 end
               end)"#
        ))
    });
    assert_eq!(got.trim(), "true");
}

/// A 20 MB message goes from a BEAM node to a Rust process and back (fragments both
/// ways); while it travels, small messages on the same connection keep arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_travel_in_fragments_with_small_ones_passing() {
    let _serial = SERIAL.lock().await;
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("frag", epmd.port()).await;
    start_mirror(&node);
    let me = node.name().to_owned();
    let got = blocking(|| {
        alex.eval(&format!(
            r#"big = :crypto.strong_rand_bytes(20_000_000)
               send({{:mirror, :"{me}"}}, {{self(), {{:big, big}}}})
               for i <- 1..50, do: send({{:mirror, :"{me}"}}, {{self(), {{:small, i}}}})
               smalls = for i <- 1..50 do
                 receive do {{:small, ^i}} -> i after 20_000 -> :lost end
               end
               back = receive do {{:big, b}} -> b == big after 20_000 -> :timeout end
               {{back, smalls == Enum.to_list(1..50)}}"#
        ))
    });
    assert_eq!(got.trim(), "{true, true}");
    // And from a Rust process: two 20 MB binaries to a BEAM process, given away (each
    // goes out from its own buffer, the second fragmented after the first), whole and
    // in order.
    let a = alex.node_name();
    blocking(|| {
        alex.eval(
            "Process.register(spawn(fn -> for _ <- 1..2, do: receive(do: ({from, b} -> send(from, {:size, byte_size(b), :erlang.md5(b)}))) end), :measure)",
        )
    });
    let first: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    let second: Vec<u8> = first.iter().rev().copied().collect();
    let expected: Vec<Term> = [&first, &second]
        .iter()
        .map(|b| {
            tuple(vec![
                atom("size"),
                int(20_000_000),
                binary(md5::compute(b).0),
            ])
        })
        .collect();
    let replies = in_process(&node, move |mut p| async move {
        let me = Term::Pid(p.pid());
        for bytes in [first, second] {
            p.send(
                ("measure", a.as_str()),
                tuple(vec![me.clone(), binary(bytes)]),
            );
        }
        vec![p.receive_timeout(WAIT).await, p.receive_timeout(WAIT).await]
    })
    .await;
    assert_eq!(replies, expected.into_iter().map(Some).collect::<Vec<_>>());
}

/// On a one-thread runtime, as the Rust Moebi runs by default: a Rust process sends a
/// 32 MB message to a BEAM node while another makes small calls to that node over the
/// same connection; the calls are answered between the message's fragments (the writer
/// lets other tasks run between them while small messages go out too), and the
/// message arrives whole. (How long the calls
/// take meanwhile is measured by `scripts/bench`, not here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_thread_small_calls_go_on_while_a_large_message_leaves() {
    const SIZE: usize = 32_000_000;
    let _serial = SERIAL.lock().await;
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    blocking(|| {
        alex.eval("{:ok, _} = Chat.Echo.start(:echo)");
        alex.eval(
            "Process.register(spawn(fn -> receive do {from, b} -> send(from, {:size, byte_size(b)}) end end), :measure)",
        )
    });
    let (a, port) = (alex.node_name(), epmd.port());
    let (size, calls) = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a one-thread runtime");
        rt.block_on(async move {
            let node = start_node("onethread", port).await;
            assert!(node.connect(&a).await);
            let arrived = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (done, to, n) = (arrived.clone(), a.clone(), node.clone());
            let caller = tokio::spawn(async move {
                in_process(&n, move |mut p| async move {
                    let mut calls = 0;
                    while !done.load(Ordering::SeqCst) {
                        let r = p
                            .call(("echo", to.as_str()), atom("small"), Some(WAIT))
                            .await;
                        assert_eq!(r.ok(), Some(atom("small")));
                        calls += 1;
                    }
                    calls
                })
                .await
            });
            let size = in_process(&node, move |mut p| async move {
                let me = Term::Pid(p.pid());
                p.send(
                    ("measure", a.as_str()),
                    tuple(vec![me, binary(vec![7; SIZE])]),
                );
                let size = p.receive_timeout(WAIT).await;
                arrived.store(true, Ordering::SeqCst);
                size
            })
            .await;
            (size, caller.await.expect("the caller finishes"))
        })
    })
    .join()
    .expect("the one-thread node's thread");
    assert_eq!(size, Some(tuple(vec![atom("size"), int(SIZE as i64)])));
    // Each answered as sent (checked in the loop); how many fit in is the machine's.
    assert!(calls >= 1);
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A peer that stops reading (its BEAM stopped with SIGSTOP): a Rust process sending it
/// 1 MB messages is held at its `yield_now` once the connection is busy, and memory
/// stays bounded; meanwhile another connection works as usual. Once the peer reads
/// again, every message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_holds_the_sender_not_memory() {
    const SENDS: usize = 200;
    let _serial = SERIAL.lock().await;
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let kate = blocking(|| BeamNode::start(&unique_name("kate"), COOKIE, &epmd));
    blocking(|| {
        alex.eval(
            "Process.register(spawn(fn -> Stream.repeatedly(fn -> receive do m -> m end end) |> Enum.reduce(0, fn
               {:count, from}, n -> send(from, {:count, n}); n
               _, n -> n + 1 end) end), :sink)",
        );
        kate.eval("{:ok, _} = Chat.Echo.start(:echo)");
    });
    let node = start_node("busy", epmd.port()).await;
    let (a, k) = (alex.node_name(), kate.node_name());
    // Connected first, so that the stop holds a live connection.
    assert!(node.connect(&a).await);
    let stop = |signal: &str| {
        let status = std::process::Command::new("kill")
            .args([signal, &alex.os_pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    stop("-STOP");
    let before = rss_kib();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let to = a.clone();
    node.spawn(move |mut p| async move {
        p.register("held").expect("the name is free");
        let payload = binary(&vec![1u8; 1_000_000][..]);
        for _ in 0..SENDS {
            p.send(("sink", to.as_str()), &payload);
            counter.fetch_add(1, Ordering::Relaxed);
            p.yield_now().await;
        }
        Ok(())
    });
    // And from code that is no process, with `Node::send_async`.
    let sent_async = Arc::new(AtomicUsize::new(0));
    let (counter, to, sender) = (sent_async.clone(), a.clone(), node.clone());
    tokio::spawn(async move {
        let payload = binary(&vec![2u8; 1_000_000][..]);
        for _ in 0..SENDS {
            sender.send_async(("sink", to.as_str()), &payload).await;
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Held: far fewer than 2 x 200 MB went out (the kernel's socket buffers and the
    // 1 MiB busy limit hold a few), and this process did not grow by what was not sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_at = sent.load(Ordering::Relaxed);
    let held_async_at = sent_async.load(Ordering::Relaxed);
    assert!(
        held_at < SENDS / 4 && held_async_at < SENDS / 4,
        "{held_at} and {held_async_at} of {SENDS} sends went through"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sent.load(Ordering::Relaxed), held_at, "the sender is held");
    assert_eq!(
        sent_async.load(Ordering::Relaxed),
        held_async_at,
        "send_async is held"
    );
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
    // Meanwhile another connection works.
    let echoed = in_process(&node, move |mut p| async move {
        p.call(("echo", k.as_str()), atom("still_here"), Some(WAIT))
            .await
    })
    .await;
    assert_eq!(echoed.ok(), Some(atom("still_here")));
    // Seen from a BEAM node, the held process is suspended, as a BEAM sender is.
    let status = blocking(|| {
        kate.eval(&format!(
            "n = :\"{}\"
            :erpc.call(n, :erlang, :process_info, [:erpc.call(n, :erlang, :whereis, [:held]), :status])",
            node.name()
        ))
    });
    assert_eq!(status.trim(), "{:status, :suspended}");
    // The peer reads again: everything arrives.
    stop("-CONT");
    let deadline = Instant::now() + WAIT;
    while (sent.load(Ordering::Relaxed) < SENDS || sent_async.load(Ordering::Relaxed) < SENDS)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent.load(Ordering::Relaxed), SENDS);
    assert_eq!(sent_async.load(Ordering::Relaxed), SENDS);
    let count = blocking(|| {
        alex.eval(&format!(
            "Enum.find_value(1..200, fn _ ->
               send(:sink, {{:count, self()}})
               receive do {{:count, n}} when n >= {SENDS} * 2 -> n; {{:count, _}} -> Process.sleep(100); nil end
             end)"
        ))
    });
    assert_eq!(count.trim(), (2 * SENDS).to_string());
}

/// A message given away to a node this one is not connected to yet waits in the
/// connection's queue as it was given: sending a 32 MB binary so allocates next to
/// nothing, where a copy would be 32 MB more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_given_away_before_its_connection_is_up_is_not_copied() {
    let _serial = SERIAL.lock().await;
    let epmd = Epmd::start();
    let node = start_node("queue", epmd.port()).await;
    // A node EPMD does not know: the connection is being set up when the send comes,
    // then fails, and the queue with it is dropped.
    let nobody = format!("{}@localhost", unique_name("nobody"));
    let grown = in_process(&node, move |p| async move {
        let big = binary(vec![7u8; 32 << 20]);
        let before = Counting::reset_peak();
        p.send(("sink", nobody.as_str()), big);
        PEAK.load(Ordering::Relaxed) - before
    })
    .await;
    assert!(
        grown < 4 << 20,
        "sending 32 MB given away allocated {grown} bytes more"
    );
}
