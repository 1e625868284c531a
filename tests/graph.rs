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

/// A box on the picture: left, top, right, bottom.
type Box4 = (f64, f64, f64, f64);

fn overlap(a: Box4, b: Box4) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Every example's SVG: no text runs over a line (a bar, a wire) or over another text. A text's
/// box is its monospace advance (0.6 em a character) from its baseline's 0.8 em above to 0.2 em
/// below; a line's is its length by its stroke width.
#[test]
fn no_text_overlaps_a_line_or_another_text() {
    for inv in examples() {
        assert_no_overlap(&inv.display().to_string(), &graph("svg", &inv));
    }
}

/// A lab as `lab impair`, `lab cut` and `lab stop` leave it: the segment impaired, a link
/// impaired, a link cut, a director stopped; each shown, in red, and still nothing overlaps.
#[test]
fn impairments_and_faults_are_drawn_without_overlap() {
    for inv in examples() {
        let lab = lvsctl::inventory::load(&inv).unwrap();
        let mut t = lvsctl::graph::topology(&lab);
        let seg = t.segments[0].name.clone();
        let (h, i) = t.segments.last().unwrap().members[0].clone();
        let director = lab.director().unwrap().name.clone();
        let mut st = lvsctl::graph::LabState::default();
        st.segments.insert(seg.clone(), "delay 200ms ±20ms, loss 5%".into());
        st.links.insert((h.clone(), i.clone()), "loss 100%".into());
        st.cut.insert((h.clone(), i.clone()));
        st.stopped.insert(director.clone());
        t.overlay(&st);
        let svg = lvsctl::graph::svg(&t);
        let name = format!("{} with impairments", inv.display());
        assert_no_overlap(&name, &svg);
        for want in [
            "impaired: delay 200ms ±20ms, loss 5%".to_string(),
            format!("{i} impaired: loss 100%"),
            format!("{i} cut (lab cut)"),
            "STOPPED (lab stop)".into(),
        ] {
            assert!(svg.contains(&want), "{name}: {want:?} is not drawn");
        }
        assert!(svg.contains(r##"fill="#dddddd""##) && svg.contains("stroke-dasharray"), "{name}");
        let m = lvsctl::graph::mermaid(&t);
        assert!(m.contains("-.-|") && m.contains("STOPPED"), "{name}: {m}");
    }
}

/// No text of `svg` runs over a line or another text.
fn assert_no_overlap(name: &str, svg: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let num = |n: &roxmltree::Node, a: &str, default: f64| n.attribute(a).map_or(default, |v| v.parse().unwrap());
    let mut texts: Vec<(String, Box4)> = Vec::new();
    let mut lines: Vec<Box4> = Vec::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "text" => {
                let fs = num(&n, "font-size", 12.0);
                let t = n.text().unwrap_or_default().to_string();
                let (x, y) = (num(&n, "x", 0.0), num(&n, "y", 0.0));
                let w = t.chars().count() as f64 * 0.6 * fs;
                texts.push((t, (x, y - 0.8 * fs, x + w, y + 0.2 * fs)));
            }
            "line" => {
                let sw = num(&n, "stroke-width", 1.0) / 2.0;
                let (x1, y1, x2, y2) = (num(&n, "x1", 0.0), num(&n, "y1", 0.0), num(&n, "x2", 0.0), num(&n, "y2", 0.0));
                lines.push((x1.min(x2) - sw, y1.min(y2) - sw, x1.max(x2) + sw, y1.max(y2) + sw));
            }
            _ => {}
        }
    }
    assert!(!texts.is_empty() && !lines.is_empty(), "{name}");
    for (i, (t, b)) in texts.iter().enumerate() {
        for l in &lines {
            assert!(!overlap(*b, *l), "{name}: {t:?} runs over a line at {l:?}");
        }
        for (u, c) in &texts[i + 1..] {
            assert!(!overlap(*b, *c), "{name}: {t:?} and {u:?} overlap");
        }
    }
}
