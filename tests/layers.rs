//! The crate is a stack of layers (docs/architecture.md), and each layer uses only the
//! ones below it: this reads every file in `src/` and fails on any path into the crate
//! (`crate::...`) that names a module of a higher layer.

use std::path::{Path, PathBuf};

/// The layers, bottom first: each `src/` module (a file or a folder) in one of them.
const LAYERS: &[(&str, &[&str])] = &[
    ("foundation", &["sync", "flags", "malloc", "output", "term"]),
    ("epmd", &["epmd"]),
    ("transport", &["transport"]),
    ("handshake", &["handshake"]),
    ("connection", &["connection"]),
    ("node", &["node"]),
    ("process", &["process"]),
    ("otp", &["otp"]),
    ("crate root", &["lib", "fuzzing"]),
    // The `cnode` command: a crate of its own on top, using the library as a user does.
    ("command-line tool", &["bin"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line names through `crate::`: `crate::node::Node` and each
/// name in `crate::{a, b::c}`.
fn named_modules(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in line.match_indices("crate::") {
        let rest = &line[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut name = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_start = true,
                    c if at_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    ':' if at_start && !name.is_empty() => {
                        found.push(std::mem::take(&mut name));
                        at_start = false;
                    }
                    _ if at_start && !name.is_empty() => {
                        found.push(std::mem::take(&mut name));
                        at_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.push(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn no_file_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let own = layer_of(&module)
            .unwrap_or_else(|| panic!("src/{} is in no layer: add it to LAYERS", module));
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            // Comments (doc links among them) name other layers without using them.
            let code = line.split("//").next().unwrap_or("");
            for named in named_modules(code) {
                let Some(theirs) = layer_of(&named) else {
                    // Items of the crate root (`crate::Node`) are re-exports: name the
                    // module instead, so the layer shows.
                    upward.push(format!(
                        "src/{}:{}: crate::{named} is no module of a layer",
                        relative.display(),
                        n + 1
                    ));
                    continue;
                };
                if theirs > own {
                    upward.push(format!(
                        "src/{}:{}: the {} layer uses crate::{named} of the {} layer above it",
                        relative.display(),
                        n + 1,
                        LAYERS[own].0,
                        LAYERS[theirs].0
                    ));
                }
            }
        }
    }
    assert!(upward.is_empty(), "\n{}", upward.join("\n"));
}

#[test]
fn module_names_are_read_from_paths_and_groups() {
    assert_eq!(named_modules("use crate::node::Node;"), ["node"]);
    assert_eq!(
        named_modules("use crate::{node::{Dest, Node}, term::Term, sync};"),
        ["node", "term", "sync"]
    );
    assert_eq!(
        named_modules("let x = crate::term::int(1); crate::otp::io::f();"),
        ["term", "otp"]
    );
}
