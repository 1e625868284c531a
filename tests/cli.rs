//! The controller binary as a shell user meets it: closed pipes, odd files given as inventories,
//! exit statuses. No root, no host.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lvsctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvsctl"))
}

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_lvsctl"))
}

/// Runs to completion within `limit`, or is killed (a hang is a failure, not a stuck test).
fn run(mut cmd: Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (st.code(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reader_that_goes_away_ends_lvsctl_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("big.toml");
    // 50 real servers: render prints far more than a pipe holds, so writes go on after the
    // reader has gone.
    let st = lvsctl().args(["init", "--mode", "dr", "--real-servers", "50", "--out"]).arg(&inv).status().unwrap();
    assert!(st.success());
    let mut child = lvsctl().arg("render").arg(&inv).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("==> "), "{first}");
    // The reader is dropped here, like `| head -1`.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn an_inventory_must_be_a_regular_file_of_reasonable_size() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "#".repeat(5 << 20)).unwrap();
    for (path, want) in [
        (fifo.as_path(), "is a FIFO"),
        (std::path::Path::new("/dev/zero"), "is a device"),
        (dir.path(), "is a directory"),
        (big.as_path(), "bytes, more than an inventory's"),
        (std::path::Path::new("/nonexistent/lab.toml"), "No such file"),
    ] {
        let mut cmd = lvsctl();
        cmd.arg("check").arg(path);
        let (code, err) = run(cmd, Duration::from_secs(20));
        // Exit status 1: the file could not be read; 3 is for inventories that were read and are invalid.
        assert_eq!(code, Some(1), "{}: {err}", path.display());
        assert!(err.contains(want) && err.contains(&path.display().to_string()), "{}: {err}", path.display());
    }
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let out = lvsctl().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(v.starts_with(&format!("lvsctl {}", env!("CARGO_PKG_VERSION"))), "{v}");
    // Built from a git checkout (CI's clone, a developer's tree): the commit is HEAD's.
    let head =
        Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    if let Ok(h) = head
        && h.status.success()
    {
        let h = String::from_utf8_lossy(&h.stdout).trim().to_string();
        assert_eq!(v, format!("lvsctl {} (commit {h})", env!("CARGO_PKG_VERSION")));
    }
}

/// Every problem of an invalid inventory, as rustc prints its errors: `error:` on each, where it
/// is, the source line with a caret under the value, the help; colour only when asked for or on
/// a terminal without NO_COLOR. `check --output json` reports the same problems for programs.
#[test]
fn inventory_problems_are_rendered_like_compiler_errors_and_as_json() {
    let inv = "tests/inventory-errors/dr-rules.toml";
    let text = |args: &[&str], no_color: bool| {
        let mut cmd = lvsctl();
        cmd.args(args).arg("check").arg(inv);
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        String::from_utf8(out.stderr).unwrap()
    };
    let plain = text(&[], false);
    assert_eq!(plain.matches("\nerror: ").count() + plain.starts_with("error: ") as usize, 4, "{plain}");
    assert!(plain.contains(&format!(" --> {inv}:17:11\n")), "{plain}");
    assert!(plain.contains("17 | gateway = \"192.168.188.8\"\n"), "{plain}");
    // The caret sits under the value (column 11) and is as wide as it, labelled with the key path.
    let caret = plain.lines().find(|l| l.contains("^ hosts.web1.gateway")).expect("a caret line");
    assert_eq!(caret.find('^'), Some(caret.find('|').unwrap() + 2 + 10), "{caret}");
    assert_eq!(caret.matches('^').count(), "\"192.168.188.8\"".len(), "{caret}");
    assert!(plain.contains("= help: set gateway to the router's address (192.168.188.200)"), "{plain}");
    assert!(plain.trim_end().ends_with(&format!("error: 3 problems in {inv}; nothing was changed")), "{plain}");
    assert!(!plain.contains('\x1b'), "no escape codes into a pipe:\n{plain}");
    assert!(text(&["--color", "always"], true).contains("\x1b["), "--color always colours even with NO_COLOR");
    assert!(!text(&["--color", "never"], false).contains('\x1b'));

    let out = lvsctl().args(["check", "--output", "json", inv]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = common::schema::parse(bin(), "check", &out.stdout);
    assert_eq!(
        (v["schema_version"].as_u64(), v["command"].as_str(), v["ok"].as_bool()),
        (Some(1), Some("check"), Some(false))
    );
    let d = v["diagnostics"].as_array().unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(
        (d[0]["line"].as_u64(), d[0]["column"].as_u64(), d[0]["end_column"].as_u64(), d[0]["key"].as_str()),
        (Some(17), Some(11), Some(26), Some("hosts.web1.gateway"))
    );
    let ok = lvsctl().args(["check", "--output", "json", "inventories/dr.toml"]).output().unwrap();
    assert!(ok.status.success());
    let v = common::schema::parse(bin(), "check", &ok.stdout);
    assert_eq!((v["lab"].as_str(), v["ok"].as_bool(), v["mode"].as_str()), (Some("dr"), Some(true), Some("dr")));
    assert!(v["diagnostics"].as_array().unwrap().is_empty());
}

/// The README's `lvsctl check lab.toml` is what check prints for that file.
#[test]
fn the_readmes_check_example_is_what_check_prints() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let start = readme.find("$ lvsctl check lab.toml\n").expect("the example in the README")
        + "$ lvsctl check lab.toml\n".len();
    let shown = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let inv = std::fs::read_to_string("inventories/dr.toml").unwrap();
    let inv =
        inv.replacen("role = \"real-server\"", "rol = \"real-server\"", 1).replacen("weight = 3", "weight = 65536", 1);
    std::fs::write(dir.path().join("lab.toml"), inv).unwrap();
    let out = lvsctl().current_dir(dir.path()).args(["check", "lab.toml"]).env_remove("NO_COLOR").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), shown);
}

/// lvsctl-inventory(5) names every key the parser accepts (it is generated from the same
/// definitions), and the README's inventory section mentions each of them.
#[test]
fn every_inventory_key_is_in_the_man_page_and_the_readme() {
    let out = lvsctl().args(["man", "inventory"]).output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with(".TH LVSCTL\\-INVENTORY 5"), "{}", &page[..80.min(page.len())]);
    let readme = std::fs::read_to_string("README.md").unwrap();
    for t in lvsctl::inventory::keys::TABLES {
        for k in t.keys {
            assert!(
                page.contains(&format!("\n.B {}\n", k.name.replace('-', "\\-"))),
                "{}: {} not in the page",
                t.path,
                k.name
            );
            let mentioned = readme.contains(&format!("`{}`", k.name))
                || readme.contains(&format!("{} =", k.name))
                || readme.contains(&format!("`{},", k.name))
                || readme.contains(&format!("`[{}", k.name))
                || readme.contains(&format!("`[[{}", k.name));
            assert!(mentioned, "{}: {} is not in the README", t.path, k.name);
        }
    }
}

/// `render --output json`: the envelope, every host's files with their path on the host, mode
/// as "0644", size and the sha256 of exactly the content given; `--out` is where they went.
#[test]
fn render_gives_its_files_as_json_with_octal_modes_and_their_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let out = lvsctl()
        .args(["render", "--output", "json", "inventories/dr-ha.toml", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "JSON alone: {}", String::from_utf8_lossy(&out.stderr));
    let v = common::schema::parse(bin(), "render", &out.stdout);
    assert_eq!(
        (v["schema_version"].as_u64(), v["command"].as_str(), v["lab"].as_str()),
        (Some(1), Some("render"), Some("dr-ha"))
    );
    let lab = lvsctl::inventory::load(std::path::Path::new("inventories/dr-ha.toml")).unwrap();
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), lab.hosts.len());
    for h in hosts {
        for f in h["files"].as_array().unwrap() {
            let (path, mode, content) =
                (f["path"].as_str().unwrap(), f["mode"].as_str().unwrap(), f["content"].as_str().unwrap());
            assert!(path.starts_with('/'), "{path}");
            assert!(
                mode.len() == 4 && mode.starts_with('0') && mode.chars().all(|c| ('0'..='7').contains(&c)),
                "{mode}"
            );
            assert_eq!(f["sha256"].as_str().unwrap(), lvsctl::resource::sha256(content.as_bytes()), "{path}");
            assert_eq!(f["bytes"].as_u64(), Some(content.len() as u64));
            let written = f["written"].as_str().unwrap();
            assert_eq!(std::fs::read_to_string(written).unwrap(), content, "{written}");
        }
    }
    assert!(
        hosts.iter().any(|h| h["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "/etc/keepalived/keepalived.conf")),
        "the directors' keepalived.conf"
    );
}

/// `lvsctl schema COMMAND` is a JSON Schema for each command, the same as the one kept in
/// tests/golden/schemas (a change of the contract shows in review; `UPDATE_EXPECT=1` rewrites
/// them), and it rejects a document of another command.
#[test]
fn every_command_has_a_schema_and_the_contract_changes_only_on_purpose() {
    let dir = std::path::Path::new("tests/golden/schemas");
    for c in ["check", "plan", "render", "up", "down", "status", "verify", "doctor", "trace", "events"] {
        let schema = common::schema::of(bin(), c);
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{c}: not a JSON Schema: {e}"));
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(format!("{c}.json"));
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(kept == text, "{c}: the schema differs from {} (UPDATE_EXPECT=1 to accept)", path.display());
    }
    let plan = lvsctl().args(["plan", "--output", "json", "inventories/dr.toml"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let up = jsonschema::validator_for(&common::schema::of(bin(), "up")).unwrap();
    assert!(!up.is_valid(&doc), "a plan document is not an up document");
}

/// `plan --output json` of every example is what the plan schema says: the desired state, with
/// file modes as octal strings and a virtual service in the names `status` uses too.
#[test]
fn plan_json_of_every_example_follows_its_schema() {
    for e in std::fs::read_dir("inventories").unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let out = lvsctl().args(["plan", "--output", "json"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        let v = common::schema::parse(bin(), "plan", &out.stdout);
        for h in v["hosts"].as_array().unwrap() {
            for f in h["files"].as_array().unwrap() {
                let mode = f["mode"].as_str().expect("an octal string");
                assert!(mode.len() == 4 && u32::from_str_radix(mode, 8).is_ok(), "{mode}");
            }
        }
    }
}

/// The README's pipe and dry-run examples are what lvsctl prints: each of their lines (durations,
/// sizes and hashes aside; `…` stands for lines left out) is in the snapshot a test of a lab on
/// this machine keeps (tests/golden/output: dr.toml's hosts without its director, as lab t-snap).
#[test]
fn the_readmes_output_examples_are_in_the_snapshots() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for (heading, snapshot) in [
        ("$ lvsctl up inventories/dr.toml | cat\n", "up.plain.txt"),
        ("$ lvsctl up --dry-run inventories/dr.toml\n", "dry-run.plain.txt"),
    ] {
        let start = readme.find(heading).unwrap_or_else(|| panic!("{heading:?} in the README")) + heading.len();
        let block = &readme[start..start + readme[start..].find("```").unwrap()];
        let kept = std::fs::read_to_string(format!("tests/golden/output/{snapshot}")).unwrap();
        let kept = kept.replace("t-snap", "dr").replace("4 hosts", "5 hosts");
        for line in common::normalized(block).lines().filter(|l| l.trim() != "…") {
            assert!(kept.lines().any(|k| k == line), "the README's {line:?} is not in {snapshot}:\n{kept}");
        }
    }
}

/// verify refuses what it cannot do before it reaches any host, each refusal naming its option.
#[test]
fn verify_refuses_options_it_cannot_honour_before_connecting() {
    let inv = concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/dr.toml");
    let cases: [(&[&str], &str); 3] = [
        (&["--host", "web1"], "choose the host that sends with --from HOST, not --host"),
        (&["--failover"], "--failover needs an HA pair of directors"),
        (&["--from", "nosuch"], "--from nosuch: no such host"),
    ];
    for (args, want) in cases {
        let mut cmd = lvsctl();
        cmd.arg("verify").arg(inv).args(args).env("HOME", "/nonexistent");
        let (code, err) = run(cmd, Duration::from_secs(20));
        assert_eq!(code, Some(3), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// trace and capture refuse what they cannot do before reaching any host: an unknown service,
/// VIP, port, host or sender, `--host`; capture never overwrites a file.
#[test]
fn trace_and_capture_refuse_bad_input_before_connecting() {
    let dr = concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/dr.toml");
    let fw = concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/dr-fwmark.toml");
    let t = tempfile::tempdir().unwrap();
    let existing = t.path().join("kept.pcapng");
    std::fs::write(&existing, b"keep me").unwrap();
    let existing = existing.to_str().unwrap();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["trace", dr, "--service", "nope"], 3, "--service nope: no service of that name"),
        (vec!["trace", fw, "--service", "web-all", "--vip", "10.9.9.9"], 3, "not a VIP of service web-all"),
        (vec!["trace", fw, "--service", "dns", "--port", "99"], 3, "--port 99: not a port of service dns"),
        (vec!["trace", dr, "--from", "nosuch"], 3, "--from nosuch: no such host"),
        (vec!["trace", dr, "--host", "web1"], 3, "choose the sender with --from HOST"),
        (vec!["capture", dr, "web9", "--out", "/nonexistent/x.pcapng"], 3, "no host \"web9\""),
        (vec!["capture", dr, "web1", "--out", existing], 1, "never overwrites a file"),
        (vec!["capture", dr, "web1", "--count", "0", "--out", "x.pcapng"], 2, "--count"),
    ];
    for (args, code, want) in cases {
        let mut cmd = lvsctl();
        cmd.args(&args).env("HOME", "/nonexistent");
        let (got, err) = run(cmd, Duration::from_secs(20));
        assert_eq!(got, Some(code), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(existing).unwrap(), b"keep me");
}

/// `import`: saved rules become an inventory `check` accepts; a left-out firewall-mark service
/// makes the import partial (8), a bad line names itself and writes nothing (3), and an existing
/// file is never overwritten. The README's example is what it prints.
#[test]
fn import_writes_an_inventory_check_accepts_and_says_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::write(
        &rules,
        "-A -t 192.168.188.100:80 -s rr\n\
         -a -t 192.168.188.100:80 -r 10.10.0.81:80 -m -w 1\n\
         -a -t 192.168.188.100:80 -r 10.10.0.82:8080 -m -w 1\n",
    )
    .unwrap();
    let out = dir.path().join("lab.toml");
    let o = lvsctl().arg("import").arg(&rules).args(["--name", "prod", "--out"]).arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("wrote ") && err.contains("1 service imported; change every value marked CHANGE"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("{ host = \"rs2\", weight = 1, port = 8080 }") && text.contains("CHANGE"), "{text}");
    let c = lvsctl().arg("check").arg(&out).output().unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert!(String::from_utf8_lossy(&c.stdout).contains("lab prod (nat mode) is valid: 3 hosts, 1 service"));
    let again = lvsctl().arg("import").arg(&rules).arg("--out").arg(&out).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwrites"));

    std::fs::write(&rules, "-A -f 10 -s rr -p 300\n-a -f 10 -r 10.0.0.81:0 -g -w 1\n-A -u 10.0.0.100:53 -s rr\n-a -u 10.0.0.100:53 -r 10.0.0.81:53 -g -w 1\n").unwrap();
    let o = lvsctl().arg("import").arg(&rules).output().unwrap();
    assert_eq!(o.status.code(), Some(8), "partial: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains(":1: firewall-mark service 10"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("port = 53"));

    std::fs::write(&rules, "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w lots\n").unwrap();
    let o = lvsctl().arg("import").arg(&rules).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains(":2: -w lots: not a number") && err.contains("nothing was written"), "{err}");
    assert!(o.stdout.is_empty());
}

/// The sample configurations the keepalived package ships: each is imported, or refused with
/// every construct located (file:line); none panics; every one that holds a virtual server gives
/// an inventory that `check` accepts with `--lab`.
#[test]
fn import_reads_every_keepalived_sample() {
    let dir = std::path::Path::new("/usr/share/doc/keepalived/samples");
    assert!(
        dir.is_dir(),
        "{} is missing: scripts/setup.sh installs keepalived, whose samples this reads",
        dir.display()
    );
    let work = tempfile::tempdir().unwrap();
    let mut with_services = 0;
    let mut samples: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    samples.sort();
    for f in samples.iter().filter(|f| f.file_name().unwrap().to_string_lossy().starts_with("keepalived.conf.")) {
        let text = std::fs::read_to_string(f).unwrap();
        let holds_services = text.lines().any(|l| l.trim_start().starts_with("virtual_server "));
        let out = work.path().join(format!("{}.toml", f.file_name().unwrap().to_string_lossy()));
        let mut cmd = lvsctl();
        cmd.arg("import").arg(f).args(["--lab", "--out"]).arg(&out);
        if text.lines().any(|l| l.starts_with('@')) {
            cmd.args(["--config-id", "high"]);
        }
        let o = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let file = f.display().to_string();
        // Every line said is located in the sample.
        for l in err.lines().filter(|l| !l.starts_with("wrote ") && !l.contains("nothing was written")) {
            let l = l.trim_start_matches("error: ").trim_start_matches("left out: ");
            assert!(l.starts_with(&format!("{file}:")), "{file}: an unlocated line: {l}\n{err}");
        }
        if holds_services {
            with_services += 1;
            assert!(matches!(o.status.code(), Some(0 | 8)), "{file}: {:?}\n{err}", o.status);
            let c = lvsctl().arg("check").arg(&out).output().unwrap();
            assert!(c.status.success(), "{file}: check refuses the import:\n{}", String::from_utf8_lossy(&c.stderr));
        } else {
            assert_eq!(o.status.code(), Some(3), "{file}: no virtual server, nothing to write\n{err}");
        }
    }
    assert!(with_services >= 10, "{with_services} samples with virtual servers");
}

/// keepalived's `include` (a glob, relative to the including file), `$NAME` definitions and `@ID`
/// lines are resolved as keepalived does; without --config-id an `@ID` line is refused where it is.
#[test]
fn import_resolves_keepalived_includes_variables_and_conditionals() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("keepalived.conf"),
        "global_defs {\n  router_id DIRECTOR_1\n}\n$PORT=8080\n\
         virtual_server 192.168.188.100 80 {\n  lb_algo wrr\n  lb_kind DR\n  include conf.d/*.conf\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf.d/web1.conf"),
        "real_server 192.168.188.81 80 {\n@big  weight 5\n@^big  weight 2\n  TCP_CHECK {\n    connect_port ${PORT}\n  }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf.d/web2.conf"),
        "real_server 192.168.188.82 80 {\n  weight 1\n  TCP_CHECK {\n    connect_port $PORT\n  }\n}\n",
    )
    .unwrap();
    let conf = dir.path().join("keepalived.conf");
    let o = lvsctl().arg("import").arg(&conf).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("conf.d/web1.conf:2: `@big`") && err.contains("--config-id"), "{err}");
    let o = lvsctl().arg("import").arg(&conf).args(["--config-id", "big"]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("[hosts.director-1]"), "router_id names the director: {text}");
    assert!(
        text.contains("real_servers = [{ host = \"rs1\", weight = 5 }, { host = \"rs2\", weight = 1 }]"),
        "@big kept, @^big dropped, both included files read in order: {text}"
    );
    assert!(
        text.contains("health_check = { type = \"tcp\", interval = 60, timeout = 5, retries = 1, port = 8080 }"),
        "{text}"
    );
    let o = lvsctl().arg("import").arg(&conf).args(["--config-id", "small"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("{ host = \"rs1\", weight = 2 }"));
}

/// ldirectord's example configuration as the package ships it, and with every sample block in it
/// uncommented: imported with what it cannot say located, never a panic, and `check` accepts the
/// inventory with `--lab`.
#[test]
fn import_reads_ldirectords_example() {
    let example =
        std::path::Path::new("/var/cache/lvsctl-tests/ldirectord/usr/share/doc/ldirectord/examples/ldirectord.cf");
    assert!(
        example.is_file(),
        "{} is missing: scripts/setup.sh fetches it (apt-get download ldirectord)",
        example.display()
    );
    let work = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(example).unwrap();
    // Every sample block: `#virtual=...` and its `#\treal=...` lines without their `#`.
    let every: String = shipped
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '\t') => rest.to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let every_path = work.path().join("every.cf");
    std::fs::write(&every_path, &every).unwrap();
    for (f, least) in [(example.to_path_buf(), 1), (every_path.clone(), 12)] {
        let out = work.path().join(format!("{}.toml", f.file_name().unwrap().to_string_lossy()));
        let o = lvsctl().arg("import").arg(&f).args(["--lab", "--out"]).arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(8), "{}: partial (virtualhost, autoreload, …): {err}", f.display());
        for l in err.lines().filter(|l| l.starts_with("left out: ")) {
            assert!(l.starts_with(&format!("left out: {}:", f.display())), "an unlocated line: {l}");
        }
        let c = lvsctl().arg("check").arg(&out).output().unwrap();
        let said = String::from_utf8_lossy(&c.stdout);
        assert!(
            c.status.success(),
            "{}: check refuses the import:\n{}",
            f.display(),
            String::from_utf8_lossy(&c.stderr)
        );
        let services: usize =
            said.split("hosts, ").nth(1).and_then(|x| x.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
        assert!(services >= least, "{}: {said}", f.display());
    }
    // What the examples hold that an inventory cannot: host names, the director as a real server.
    let o = lvsctl().arg("import").arg(&every_path).arg("--lab").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("real=sql01->sql03:3306: host names are not resolved"), "{err}");
    assert!(err.contains("real server 127.0.0.1: the director itself"), "{err}");
    assert!(err.contains("checktype=external") || err.contains("checktype=ping"), "{err}");
}
