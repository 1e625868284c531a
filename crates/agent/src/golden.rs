//! The plans the agent's tests start from: the planner's own output for the example inventories,
//! as lvsctl's golden test keeps it (`tests/golden/NAME/plan.json`, checked against the planner
//! on every run), so the agent's tests need no planner and can never test a stale plan.

use crate::plan::HostPlan;

/// Every host's plan of example inventory `inventories/NAME.toml`.
pub fn plans(name: &str) -> Vec<HostPlan> {
    let path = format!("{}/../../tests/golden/{name}/plan.json", env!("CARGO_MANIFEST_DIR"));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One host's plan of example inventory NAME.
pub fn plan(name: &str, host: &str) -> HostPlan {
    plans(name).into_iter().find(|p| p.host == host).unwrap_or_else(|| panic!("no host {host} in {name}"))
}
