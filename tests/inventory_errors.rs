//! Every bad inventory under tests/inventory-errors/ must produce exactly the diagnostics in its
//! sibling `.err` file (file:line:col, key, message, help). Regenerate after a deliberate wording
//! change with `UPDATE_EXPECT=1 cargo test --test inventory_errors` and review the diff.

use std::path::{Path, PathBuf};

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/inventory-errors")
        .expect("corpus directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_bad_inventory_reports_exactly_its_expected_diagnostics() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    let files = corpus();
    assert!(files.len() >= 15, "the corpus shrank to {} files", files.len());
    for toml in files {
        let err = lvsctl::inventory::load(Path::new(&toml))
            .err()
            .unwrap_or_else(|| panic!("{} unexpectedly validated", toml.display()));
        let got = format!("{err}\n");
        // What the file smuggled in (escapes, bidi overrides) never reaches the terminal.
        assert!(
            !got.chars().any(|c| c != '\n' && lvsctl::inventory::diag::unsafe_to_print(c)),
            "{}: a control character in the rendered diagnostics:\n{got:?}",
            toml.display()
        );
        let expected_path = toml.with_extension("err");
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected =
            std::fs::read_to_string(&expected_path).unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        if got != expected {
            failures.push(format!("{}:\n--- expected\n{expected}--- got\n{got}", toml.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_inventory_is_valid() {
    for entry in std::fs::read_dir("inventories").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            lvsctl::inventory::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}
