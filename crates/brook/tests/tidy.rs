//! Layering check: dependencies between Brook's crates point one way only
//! (protocol/log/meta/coord → broker → binary), as in the architecture.

use std::path::Path;

fn brook_deps(crate_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("Cargo.toml");
    let table: toml::Table = toml::from_str(&text).expect("valid toml");
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| table.get(*section).and_then(|d| d.as_table()))
        .flat_map(|deps| deps.keys().cloned())
        .filter(|name| name.starts_with("brook"))
        .collect()
}

#[test]
fn crate_dependencies_point_one_way() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates dir");
    let allowed: &[(&str, &[&str])] = &[
        ("brook-protocol", &[]),
        ("brook-log", &["brook-protocol"]),
        ("brook-meta", &[]),
        ("brook-coord", &["brook-protocol"]),
        ("brook-raft", &["brook-meta"]),
        (
            "brook-broker",
            &[
                "brook-protocol",
                "brook-log",
                "brook-meta",
                "brook-coord",
                "brook-raft",
            ],
        ),
        (
            "brook",
            &["brook-broker", "brook-protocol", "brook-log", "brook-meta"],
        ),
    ];
    for (name, ok) in allowed {
        for dep in brook_deps(&crates.join(name)) {
            assert!(
                ok.contains(&dep.as_str()),
                "{name} must not depend on {dep}"
            );
        }
    }
    let mut found: Vec<String> = std::fs::read_dir(crates)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    found.sort();
    let mut expected: Vec<String> = allowed.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected, "a new crate needs a line in this test");
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source file");
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

fn broker_src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates dir")
        .join("brook-broker/src")
}

/// Code lines only: comments (which may name what they forbid) are left out.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

#[test]
fn broker_files_stay_small() {
    for (path, text) in sources(&broker_src()) {
        let lines = text.lines().count();
        assert!(
            lines <= 800,
            "{} has {lines} lines; split it by concern (limit 800)",
            path.display()
        );
    }
}

#[test]
fn broker_never_blocks_an_async_worker_on_a_future() {
    for (path, text) in sources(&broker_src()) {
        for line in code_lines(&text) {
            for banned in ["block_on(", "block_in_place(", "Weak<"] {
                assert!(
                    !line.contains(banned),
                    "{} uses `{banned}`: {line}",
                    path.display()
                );
            }
        }
    }
}

/// The top-level module of a file under `src` (`cluster/isr.rs` → `cluster`).
fn module_of(src: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The broker's top-level modules may not import each other in a loop: data flows one
/// way (metadata → replicas → coordinators and fetchers → handlers → router → server).
#[test]
fn broker_modules_import_each_other_one_way() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = broker_src();
    let files = sources(&src);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(p, _)| module_of(&src, p))
        .filter(|m| m != "lib")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        let from = module_of(&src, path);
        if from == "lib" {
            continue;
        }
        for line in code_lines(text) {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let mut targets = vec![name];
                // `use crate::{a, b::c}` names several modules at once.
                if rest.starts_with('{') {
                    let inner = &rest[1..rest.find('}').unwrap_or(rest.len())];
                    targets = inner
                        .split(',')
                        .map(|t| t.trim().split("::").next().unwrap_or("").to_string())
                        .collect();
                }
                for to in targets {
                    if to != from && modules.contains(&to) {
                        edges.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    // Depth-first search for a back edge; report the loop it closes.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!(
                "broker modules import each other in a loop: {} -> {m}",
                path[i..].join(" -> ")
            );
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        visit(m, &edges, &mut Vec::new(), &mut done);
    }
}
