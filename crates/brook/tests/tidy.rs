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
        ("brook-coord", &[]),
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
        ("brook", &["brook-broker", "brook-protocol", "brook-log"]),
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
