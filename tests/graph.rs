//! `lvsctl graph`: for every example inventory, the SVG next to it (`inventories/NAME.svg`, shown
//! in the README) is what the command draws now, it is well-formed XML, and it names every host,
//! segment and VIP; Mermaid and DOT name every host and segment too. Regenerate the pictures
//! after a deliberate change with `UPDATE_EXPECT=1 cargo test --test graph` and look at them.

use std::path::PathBuf;
use std::process::Command;

fn lvsctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvsctl"))
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("inventories")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    assert!(v.len() >= 6, "{v:?}");
    v
}

fn graph(format: &str, inv: &PathBuf) -> String {
    let out = lvsctl().args(["graph", "--format", format]).arg(inv).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_example_is_drawn_with_every_host_segment_and_vip() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    for inv in examples() {
        let lab = lvsctl::inventory::load(&inv).unwrap();
        let t = lvsctl::graph::topology(&lab);
        let svg = graph("svg", &inv);
        let doc =
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{}: not well-formed: {e}", inv.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        let shown = |s: &str| texts.iter().any(|t| t.contains(s));
        for h in &lab.hosts {
            assert!(texts.contains(&h.name.as_str()), "{}: host {} not drawn", inv.display(), h.name);
            for (dev, a) in h.all_addresses() {
                assert!(shown(&format!("{dev} {a}")), "{}: {} {dev} {a} not drawn", inv.display(), h.name);
            }
        }
        for s in &t.segments {
            assert!(texts.contains(&s.title().as_str()), "{}: segment {} not drawn", inv.display(), s.name);
        }
        for s in &lab.services {
            assert!(shown(&format!("VIP {}", s.ipvs.vip)), "{}: VIP {} not drawn", inv.display(), s.ipvs.vip);
            assert!(shown(&s.label()), "{}: service {} not listed", inv.display(), s.label());
        }
        // The segments a host is wired to are the inventory's (or its subnets').
        if let Some(spec) = &lab.lab {
            assert_eq!(t.segments.len(), spec.segments.len());
        }
        for format in ["mermaid", "dot"] {
            let text = graph(format, &inv);
            for h in &lab.hosts {
                assert!(text.contains(&format!("host_{}", h.name.replace('-', "_"))), "{format}: {}", h.name);
            }
            for s in &t.segments {
                assert!(text.contains(&s.title()), "{format}: {}", s.name);
            }
        }
        let picture = inv.with_extension("svg");
        if update {
            std::fs::write(&picture, &svg).unwrap();
        } else {
            let kept = std::fs::read_to_string(&picture).unwrap_or_default();
            assert!(kept == svg, "{} is not what `lvsctl graph` draws now: UPDATE_EXPECT=1", picture.display());
        }
    }
}

#[test]
fn the_format_follows_the_file_and_an_unknown_one_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("dr.svg");
    let out = lvsctl().args(["graph", "inventories/dr.toml", "--out"]).arg(&svg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg "));
    let out = lvsctl().args(["graph", "inventories/dr.toml", "--out"]).arg(dir.path().join("dr.png")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use .mmd, .dot or .svg"));
}

#[test]
fn the_readme_shows_each_examples_picture() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for inv in examples() {
        let svg = inv.with_extension("svg");
        assert!(readme.contains(&format!("({})", svg.display())), "README does not show {}", svg.display());
    }
}
