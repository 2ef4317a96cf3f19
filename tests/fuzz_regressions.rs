//! The fuzz targets (`fuzz/fuzz_targets/`) without cargo-fuzz:
//!
//! * every input kept in `fuzz/regressions/TARGET/` (inputs that once made a target
//!   fail) is replayed through the same entry point, and must now pass;
//! * a short deterministic mutation fuzz of each target, seeded from `fuzz/seeds/`
//!   (frames made by OTP's `term_to_binary` or sent by an OTP node, handshake
//!   messages, literals of Elixir and Erlang), so that a machine without cargo-fuzz still fuzzes a little on every
//!   `scripts/test`.
//!
//! Needs the `fuzzing` feature: `cargo test --features fuzzing --test fuzz_regressions`.
#![cfg(feature = "fuzzing")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TARGETS: [&str; 5] = ["handshake", "frames", "decode", "dist_header", "parse"];

/// What the fuzz target of that name does with `input` (panics count as failures).
fn run(target: &str, input: &[u8]) {
    match target {
        "handshake" => {
            let result = cnode::fuzzing::handshake(input);
            assert!(result.is_err(), "a handshake completed: {result:?}");
        }
        "frames" => {
            let _ = cnode::fuzzing::frames(input);
        }
        "dist_header" => {
            let _ = cnode::fuzzing::headed_frames(input);
        }
        "decode" => {
            let _ = cnode::fuzzing::decode(input);
            let _ = cnode::fuzzing::check_terms(input);
        }
        "parse" => {
            if let Ok(text) = std::str::from_utf8(input) {
                let _ = cnode::term::parse(text);
                let _ = cnode::term::parse_erlang(text);
            }
        }
        other => panic!("no fuzz target {other}"),
    }
}

/// The files in `fuzz/DIR/TARGET/` (not the READMEs), sorted.
fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Runs `target` on `input`, failing with the input in hex if it panics or takes more
/// than a second (the entry points are linear in their input).
fn check(target: &str, what: &str, input: &[u8]) {
    let t0 = Instant::now();
    let outcome = std::panic::catch_unwind(|| run(target, input));
    let hex: String = input.iter().take(512).map(|b| format!("{b:02x}")).collect();
    assert!(
        outcome.is_ok(),
        "{target} failed on {what} ({} bytes): {hex}",
        input.len()
    );
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "{target} took {took:?} on {what} ({} bytes): {hex}",
        input.len()
    );
}

#[test]
fn every_kept_failing_input_now_passes() {
    for target in TARGETS {
        for (path, input) in inputs("regressions", target) {
            check(target, &path.display().to_string(), &input);
        }
    }
}

#[test]
fn the_seeds_pass() {
    for target in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (path, input) in seeds {
            check(target, &path.display().to_string(), &input);
        }
    }
    // The seeds are real messages: the decoder takes every one of them.
    for (path, frame) in inputs("seeds", "decode") {
        assert!(
            cnode::fuzzing::decode(&frame).is_ok(),
            "{}: {:?}",
            path.display(),
            cnode::fuzzing::decode(&frame)
        );
    }
    // ... and so are the headed streams: every frame in them is taken, to the end.
    let end = cnode::fuzzing::headed_frames(&[0]).1;
    for (path, stream) in inputs("seeds", "dist_header") {
        let (messages, stopped) = cnode::fuzzing::headed_frames(&stream);
        assert!(
            messages >= 3 && stopped == end,
            "{}: {messages} messages, then {stopped}",
            path.display()
        );
    }
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that sit on the edges of the formats: ETF tags, length bytes, handshake tags.
const INTERESTING: [u8; 24] = [
    0, 1, 2, 4, 0x7f, 0x80, 0xff, 131, 97, 98, 100, 104, 105, 106, 107, 108, 109, 110, 111, 112,
    116, 119, b'N', b'r',
];

/// One random edit of `input`, in the style of libFuzzer's mutators.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[(PathBuf, Vec<u8>)]) {
    let len = input.len();
    match rng.below(9) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next() as u8;
        }
        2 if len > 0 => {
            let i = rng.below(len);
            input[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        3 => {
            let i = rng.below(len + 1);
            input.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
        }
        4 if len > 1 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(16));
            input.drain(i..i + n);
        }
        5 if len > 0 => {
            // Duplicate a range (repeats make nesting and long lists).
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(64));
            let piece = input[i..i + n].to_vec();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(input.len() + 1);
                input.splice(at..at, piece.iter().copied());
            }
        }
        6 if len >= 4 => {
            // A 32-bit or 16-bit big-endian length overwritten with an edge value.
            let i = rng.below(len - 3);
            let v: u32 = [
                0,
                1,
                0x7fff_ffff,
                0xffff_ffff,
                0xffff,
                len as u32,
                rng.next() as u32,
            ][rng.below(7)];
            if rng.below(2) == 0 {
                input[i..i + 4].copy_from_slice(&v.to_be_bytes());
            } else {
                input[i..i + 2].copy_from_slice(&(v as u16).to_be_bytes());
            }
        }
        7 => {
            // Splice in part of another seed.
            let other = &seeds[rng.below(seeds.len())].1;
            if !other.is_empty() {
                let i = rng.below(other.len());
                let n = 1 + rng.below(other.len() - i);
                let at = rng.below(len + 1);
                input.splice(at..at, other[i..i + n].iter().copied());
            }
        }
        _ if len > 1 => input.truncate(rng.below(len)),
        _ => input.push(rng.next() as u8),
    }
    input.truncate(64 * 1024);
}

/// Mutates the seeds of `target` for `iterations` runs, stacking 1 to 8 edits each.
fn mutation_fuzz(target: &str, iterations: usize) {
    let seeds = inputs("seeds", target);
    let mut rng = Rng(0x5eed ^ target.len() as u64);
    for n in 0..iterations {
        let mut input = seeds[rng.below(seeds.len())].1.clone();
        for _ in 0..1 + rng.below(8) {
            mutate(&mut rng, &mut input, &seeds);
        }
        check(target, &format!("mutation {n}"), &input);
    }
}

#[test]
fn mutation_fuzz_handshake() {
    mutation_fuzz("handshake", 20_000);
}

#[test]
fn mutation_fuzz_frames() {
    mutation_fuzz("frames", 10_000);
}

#[test]
fn mutation_fuzz_decode() {
    mutation_fuzz("decode", 20_000);
}

#[test]
fn mutation_fuzz_dist_header() {
    mutation_fuzz("dist_header", 10_000);
}

#[test]
fn mutation_fuzz_parse() {
    mutation_fuzz("parse", 20_000);
}
