//! Golden plans and rendered files for every example inventory. Regenerate after a deliberate
//! change with `UPDATE_EXPECT=1 cargo test --test golden` and review the diff.

use std::path::{Path, PathBuf};

use lvsctl::plan::{self, Context};
use lvsctl::render::render_host;
use lvsctl::templates::Templates;

const AGENT: &str = "/usr/local/lib/lvsctl/GOLDEN/lvsctl";

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("inventories")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

fn check(path: &Path, got: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, got).unwrap();
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == got => {}
        Ok(expected) => failures.push(format!("{} differs:\n--- expected\n{expected}\n--- got\n{got}", path.display())),
        Err(_) => failures.push(format!("{} is missing (run with UPDATE_EXPECT=1)", path.display())),
    }
}

#[test]
fn plans_and_rendered_files_match_golden() {
    let templates = Templates::embedded();
    let ctx = Context { agent_path: AGENT.into(), templates: &templates };
    let mut failures = Vec::new();
    let examples = examples();
    assert!(examples.len() >= 4);
    for inv in examples {
        let lab = lvsctl::inventory::load(&inv).unwrap();
        let stem = inv.file_stem().unwrap().to_str().unwrap().to_string();
        let plans = plan::plan(&lab, &ctx).unwrap();
        let dir = Path::new("tests/golden").join(&stem);
        check(&dir.join("plan.txt"), &lvsctl::commands::plan::render_text(&lab, &plans), &mut failures);
        check(&dir.join("plan.json"), &(serde_json::to_string_pretty(&plans).unwrap() + "\n"), &mut failures);
        for p in &plans {
            for f in render_host(p, &ctx).unwrap() {
                check(&dir.join(&p.host).join(&f.name), &f.content, &mut failures);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn plan_json_round_trips() {
    let templates = Templates::embedded();
    let ctx = Context { agent_path: AGENT.into(), templates: &templates };
    for inv in examples() {
        let lab = lvsctl::inventory::load(&inv).unwrap();
        let plans = plan::plan(&lab, &ctx).unwrap();
        let json = serde_json::to_string(&plans).unwrap();
        let back: Vec<plan::HostPlan> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plans);
    }
}

#[test]
fn a_request_carries_the_plan_once_and_the_agent_gets_the_whole_plan() {
    use lvsctl::agent::protocol::{Operation, Request};
    let templates = Templates::embedded();
    let ctx = Context { agent_path: AGENT.into(), templates: &templates };
    for inv in examples() {
        let lab = lvsctl::inventory::load(&inv).unwrap();
        for p in plan::plan(&lab, &ctx).unwrap() {
            let full = serde_json::to_string(&p).unwrap();
            let wire = serde_json::to_string(&Request::new(&lab.name, &p.host, Operation::apply(p.clone()))).unwrap();
            // The persisted runtime plan is not sent: the request is the plan once, plus a little.
            let derived = p.files.iter().find(|f| f.runtime_plan).expect("every host persists its runtime plan");
            assert!(wire.len() < full.len() - derived.content.len() + 200, "{}: {} bytes", inv.display(), wire.len());
            let mut back: Request = serde_json::from_str(&wire).unwrap();
            let got = back.op.plan_mut().unwrap();
            assert_ne!(got, &p, "the request lacks the derived content");
            got.fill_derived();
            assert_eq!(got, &p, "{}: the agent derives exactly the controller's content", inv.display());
        }
    }
}
