//! The house, enforced: no circle of imports between the files of any crate (read from their
//! `crate::` and `super::` paths, a file's own submodules and parents aside), and no clap type
//! below the command layer. Cargo holds the crates' layers (an upward dependency does not
//! build); this holds the files inside each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file's module path inside its crate: `resource::ipvs_dest`, `host` (for host/mod.rs).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text before a file's unit tests (`#[cfg(test)] mod tests { … }` at its end): tests may
/// reach anywhere.
fn without_tests(s: &str) -> &str {
    match s.find("#[cfg(test)]\nmod tests") {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Which files of the crate each file takes names from.
fn imports(root: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files.iter().map(|f| (module_of(root, f), f.clone())).collect();
    let mut graph = BTreeMap::new();
    for (m, f) in &modules {
        let text = std::fs::read_to_string(f).unwrap();
        let mut to = BTreeSet::new();
        let words: Vec<&str> = without_tests(&text)
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.starts_with("crate::") || w.starts_with("super::"))
            .collect();
        for w in words {
            let mut parts = w.split("::").filter(|p| !p.is_empty());
            let mut base: Vec<String> = match parts.next() {
                Some("crate") => vec![],
                _ => m[..m.len().saturating_sub(1)].to_vec(),
            };
            let rest: Vec<&str> = parts.collect();
            // The longest prefix that names a file of the crate.
            let mut target = None;
            for k in (0..=rest.len()).rev() {
                let mut cand = base.clone();
                cand.extend(rest[..k].iter().map(|s| s.to_string()));
                if modules.contains_key(&cand) {
                    target = Some(cand);
                    break;
                }
            }
            let Some(t) = target.take() else { continue };
            base.clear();
            // A file and its own submodules or parents are one room.
            if t.starts_with(m) || m.starts_with(&t) {
                continue;
            }
            to.insert(t);
        }
        graph.insert(m.clone(), to);
    }
    graph
}

/// The circles of `graph` (strongly connected components of more than one file).
fn circles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(x) = todo.pop() {
            for y in &graph[&x] {
                if seen.insert(y.clone()) {
                    todo.push(y.clone());
                }
            }
        }
        seen
    };
    let mut out = Vec::new();
    let mut placed = BTreeSet::new();
    for m in graph.keys() {
        if placed.contains(m) {
            continue;
        }
        let ahead = reach(m);
        let circle: Vec<String> =
            ahead.iter().filter(|x| *x != m && reach(x).contains(m)).map(|x| x.join("::")).collect();
        if !circle.is_empty() {
            placed.extend(ahead.iter().filter(|x| reach(x).contains(m)).cloned());
            out.push([vec![m.join("::")], circle].concat());
        }
    }
    out
}

#[test]
fn no_crate_has_a_circle_of_imports_between_its_files() {
    for root in ["src", "crates/agent/src", "crates/wire/src"] {
        let found = circles(&imports(Path::new(root)));
        assert!(found.is_empty(), "{root}: files that import each other: {found:?}");
    }
}

#[test]
fn the_checker_sees_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use super::a::A;\npub struct B;\n").unwrap();
    assert_eq!(circles(&imports(dir.path())), [vec!["a".to_string(), "b".to_string()]]);
    std::fs::write(dir.path().join("b.rs"), "pub struct B;\n").unwrap();
    assert!(circles(&imports(dir.path())).is_empty());
}

/// clap's types stay in the command layer: `cli.rs`, `commands/`, `main.rs`.
#[test]
fn no_clap_below_the_commands() {
    let mut files = Vec::new();
    for root in ["src", "crates/agent/src", "crates/wire/src"] {
        rust_files(Path::new(root), &mut files);
    }
    let below: Vec<String> = files
        .iter()
        .filter(|f| !(f.starts_with("src/commands") || f.ends_with("src/cli.rs") || f.ends_with("src/main.rs")))
        .filter(|f| without_tests(&std::fs::read_to_string(f).unwrap()).contains("clap::"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(below.is_empty(), "clap below the commands: {below:?}");
}
