//! Puts the git commit lvsctl is built from into its version (`lvsctl --version`), when it is
//! built from a git checkout; a build from a source archive says only the package version.

use std::path::Path;
use std::process::Command;

fn main() {
    let git = Path::new(".git");
    // Rebuild the string when HEAD moves: HEAD itself, the branch file it names, packed refs. Only
    // files that exist: cargo takes a missing one as changed, and would rebuild lvsctl every time
    // (a fresh clone has no packed-refs). One that appears later is seen through the others
    // (`git gc` packs a ref by deleting its file; a commit rewrites it).
    // Without any, cargo would rerun this on every change of the package: build.rs stands in.
    println!("cargo:rerun-if-changed=build.rs");
    for f in [".git/HEAD", ".git/packed-refs"] {
        if Path::new(f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(r) = head.trim().strip_prefix("ref: ")
        && git.join(r).exists()
    {
        println!("cargo:rerun-if-changed=.git/{r}");
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_hexdigit()));
    let version = env!("CARGO_PKG_VERSION");
    let full = match commit {
        Some(c) => format!("{version} (commit {c})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=LVSCTL_VERSION={full}");
}
