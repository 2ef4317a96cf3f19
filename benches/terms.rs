//! What the term representation (`cnode::term::Term`) costs, beside the BEAM: decoding
//! and encoding the external format (`Term::from_binary`/`to_binary`, the reader and
//! writer the connections use), dropping, serde's
//! `to_term`/`from_term`, and memory per element (heap bytes counted by this binary's
//! allocator, against `erts_debug:flat_size/1` words on a BEAM).
//!
//! `cargo bench --bench terms` prints a table; the BEAM columns come from `erl` on the
//! PATH (the same terms, `binary_to_term`/`term_to_binary` timed in a loop), and read
//! `-` without it. Without `--bench` (as `cargo test --all-targets` runs it) it is a
//! smoke test on a few iterations.

use cnode::term::{from_term, to_term, Term};
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts the bytes allocated, for memory per element.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size.saturating_sub(layout.size()), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Serialize, Deserialize, Clone)]
struct User {
    name: String,
    age: u32,
    admin: bool,
    tags: Vec<String>,
    scores: Vec<i64>,
}

fn user() -> User {
    User {
        name: "alex".into(),
        age: 30,
        admin: false,
        tags: vec!["a".into(), "b".into(), "c".into()],
        scores: (1..=10).collect(),
    }
}

/// A workload: the Elixir expression that makes the same term, and its element count
/// (for memory per element).
struct Shape {
    name: &'static str,
    elixir: &'static str,
    term: Term,
    elements: usize,
}

fn shapes() -> Vec<Shape> {
    let ints = cnode::term::list((1001..=1200).map(cnode::term::int).collect());
    let atoms = cnode::term::list(
        (0..200)
            .map(|i| cnode::term::atom(["ok", "error", "noreply", "reply"][i % 4]))
            .collect(),
    );
    let users = to_term(&vec![user(); 20]).unwrap();
    vec![
        Shape {
            name: "200 integers",
            elixir: "Enum.to_list(1001..1200)",
            term: ints,
            elements: 200,
        },
        Shape {
            name: "200 atoms",
            elixir: "for i <- 0..199, do: Enum.at([:ok, :error, :noreply, :reply], rem(i, 4))",
            term: atoms,
            elements: 200,
        },
        Shape {
            name: "20 user maps",
            elixir: "for _ <- 1..20, do: %{name: \"alex\", age: 30, admin: false, tags: [\"a\", \"b\", \"c\"], scores: Enum.to_list(1..10)}",
            term: users,
            // Per map: 5 keys + 5 values + 3 tags + 10 scores.
            elements: 20 * 23,
        },
    ]
}

/// Nanoseconds per run of `f`, the best of 5 rounds of `n`.
fn time(n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

/// The BEAM's figures for `elixir`: (decode ns, encode ns, bytes per element), from
/// `erl` with Elixir's code path (the expressions are Elixir).
fn beam(elixir: &str, elements: usize, n: usize) -> Option<(f64, f64, f64)> {
    let script = format!(
        r#"t = {elixir}
b = :erlang.term_to_binary(t)
best = fn f -> Enum.min(for _ <- 1..5, do: elem(:timer.tc(fn -> Enum.each(1..{n}, fn _ -> f.() end) end), 0)) end
dec = best.(fn -> :erlang.binary_to_term(b) end)
enc = best.(fn -> :erlang.term_to_binary(t) end)
IO.puts("BEAM #{{dec * 1000 / {n}}} #{{enc * 1000 / {n}}} #{{:erts_debug.flat_size(t) * 8 / {elements}}}")"#
    );
    let out = Command::new("elixir").arg("-e").arg(script).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("BEAM "))?;
    let v: Vec<f64> = line[5..]
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    (v.len() == 3).then(|| (v[0], v[1], v[2]))
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 2000 } else { 3 };
    println!("| term | decode ns (BEAM) | encode ns (BEAM) | drop ns | bytes/element (BEAM) |");
    println!("|---|---|---|---|---|");
    for shape in shapes() {
        let bytes = shape.term.to_binary().unwrap();
        let decode = time(n, || {
            black_box(Term::from_binary(black_box(&bytes[..])).unwrap());
        });
        let encode = time(n, || {
            black_box(black_box(&shape.term).to_binary().unwrap());
        });
        // Drop alone: clones made before the clock starts.
        let mut copies: Vec<Term> = (0..n).map(|_| shape.term.clone()).collect();
        let t0 = Instant::now();
        while let Some(t) = copies.pop() {
            drop(black_box(t));
        }
        let drop_ns = t0.elapsed().as_nanos() as f64 / n as f64;
        let before = ALLOCATED.load(Ordering::Relaxed);
        let decoded = Term::from_binary(&bytes).unwrap();
        let heap = ALLOCATED.load(Ordering::Relaxed) - before;
        let per_element = (heap + std::mem::size_of::<Term>()) as f64 / shape.elements as f64;
        drop(decoded);
        let theirs = if bench {
            beam(shape.elixir, shape.elements, n)
        } else {
            None
        };
        let show = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.0}"));
        println!(
            "| {} | {decode:.0} ({}) | {encode:.0} ({}) | {drop_ns:.0} | {per_element:.0} ({}) |",
            shape.name,
            show(theirs.map(|t| t.0)),
            show(theirs.map(|t| t.1)),
            show(theirs.map(|t| t.2)),
        );
    }

    let u = user();
    let to = time(n, || {
        black_box(to_term(black_box(&u)).unwrap());
    });
    let t = to_term(&u).unwrap();
    let from = time(n, || {
        black_box(from_term::<User>(black_box(&t)).unwrap());
    });
    println!();
    println!("serde, one user struct (5 fields, 3 tags, 10 scores): to_term {to:.0} ns, from_term {from:.0} ns");
    println!("size_of::<Term>() = {} bytes", std::mem::size_of::<Term>());
}
