//! lvsctl's nftables table (`table inet lvsctl-LAB`): the rules that mark the packets of
//! firewall-mark services, and the source NAT rules of one-armed NAT services. The table is lvsctl's alone; no other table or rule is read or
//! touched. It goes to the kernel as data: a JSON transaction fed to the host's `nft -j -f -`
//! (never a ruleset text). A table that differs from the plan is replaced whole in one
//! transaction (add, delete, add: atomic); `down` deletes it, or puts back the table of that
//! name that was there before lvsctl.
//!
//! Objects are compared as `nft -j list table` prints them, without their handles: the JSON
//! lvsctl writes is in that very form, so a table as planned reads back equal.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants,
};
use crate::host::System;
pub use crate::host::{NFT_FAMILY as FAMILY, NftObjects as Objects};
use crate::plan::{HostPlan, MarkRuleSpec, NftTableSpec, SnatRuleSpec};

/// The marking chain: prerouting, priority mangle (-150), before IPVS sees the packets.
pub const CHAIN: &str = "prerouting";
const PRIO_MANGLE: i64 = -150;
/// The source NAT chain: postrouting, priority srcnat (100), after IPVS forwarded the request.
pub const SNAT_CHAIN: &str = "postrouting";
const PRIO_SRCNAT: i64 = 100;
/// nftables keeps at most 128 bytes of a comment; lvsctl's are shorter.
const COMMENT_MAX: usize = 64;

/// lvsctl changed table `table`; `prior` is what was there before (None: no such table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub table: String,
    pub prior: Option<Objects>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The table becomes exactly `objects` (created when absent: `created`).
    Replace { table: String, objects: Objects, created: bool },
    /// `nft delete table inet NAME`
    Delete(String),
}

fn key(spec: &NftTableSpec) -> Key {
    Key::Nft(spec.name.clone())
}

/// The kind.
pub struct Nft;

impl Kind for Nft {
    /// The table's name (family inet).
    type Id = String;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Nftables;

    fn fmt_id(name: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nftables table {FAMILY} {name}")
    }

    fn id(u: &Undo) -> String {
        u.table.clone()
    }

    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.nftables.iter().map(|t| t.name.clone()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.nft.extend(plan.nftables.iter().map(|t| t.name.clone()));
    }

    fn decide(plan: &HostPlan, live: &Live, journal: &dyn Recorded, _: Intent) -> Vec<Decision> {
        decide(plan.nftables.as_ref(), live, journal)
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.nftables.iter().flat_map(show).collect()
    }

    fn undo_wants(u: &Undo, w: &mut Wants) {
        w.nft.insert(u.table.clone());
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        undo(u, live)
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Replace { created: true, .. } => ChangeKind::Add,
            Action::Replace { .. } => ChangeKind::Change,
            Action::Delete(_) => ChangeKind::Remove,
        }
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        act(sys, a).map(|_| None)
    }

    fn check(u: &Undo, lab: &str, _: &std::path::Path) -> Result<(), String> {
        check(u, lab)
    }

    fn merge(first: &Undo, newer: Undo) -> Undo {
        Undo { prior: first.prior.clone(), ..newer }
    }
}

/// The objects of the planned table, in the form (and order: chains, then each chain's rules)
/// `nft -j list table` prints them. Each chain is there when it has rules.
pub fn objects(spec: &NftTableSpec) -> Objects {
    let mut v = Vec::new();
    if !spec.rules.is_empty() {
        v.push(json!({"chain": {
            "family": FAMILY, "table": spec.name, "name": CHAIN,
            "type": "filter", "hook": "prerouting", "prio": PRIO_MANGLE, "policy": "accept",
        }}));
    }
    if !spec.snat.is_empty() {
        v.push(json!({"chain": {
            "family": FAMILY, "table": spec.name, "name": SNAT_CHAIN,
            "type": "nat", "hook": "postrouting", "prio": PRIO_SRCNAT, "policy": "accept",
        }}));
    }
    v.extend(spec.rules.iter().map(|r| rule(&spec.name, r)));
    v.extend(spec.snat.iter().map(|r| snat_rule(&spec.name, r)));
    v
}

/// `ct direction original ct original ip daddr VIP meta l4proto tcp ct original proto-dst PORT
/// [ip daddr RIP] snat ip to DIP`: the conntrack entry's original direction is the client's
/// request to the VIP (IPVS keeps it with `conntrack = 1`), whatever IPVS rewrote since; nft needs
/// the protocol known before it matches a port.
fn snat_rule(table: &str, r: &SnatRuleSpec) -> Value {
    let family = if r.vip.is_ipv6() { "ip6" } else { "ip" };
    let mut expr = vec![
        json!({"match": {"op": "==", "left": {"ct": {"key": "direction"}}, "right": "original"}}),
        json!({"match": {"op": "==", "left": {"ct": {"key": format!("{family} daddr"), "dir": "original"}}, "right": r.vip.to_string()}}),
        json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": r.protocol.as_str()}}),
        json!({"match": {"op": "==", "left": {"ct": {"key": "proto-dst", "dir": "original"}}, "right": r.port}}),
    ];
    if let Some(d) = r.daddr {
        expr.push(json!({"match": {"op": "==", "left": {"payload": {"protocol": family, "field": "daddr"}}, "right": d.to_string()}}));
    }
    expr.push(json!({"snat": {"family": family, "addr": r.to.to_string()}}));
    json!({"rule": {
        "family": FAMILY, "table": table, "chain": SNAT_CHAIN, "comment": comment(&r.service), "expr": expr,
    }})
}

fn rule(table: &str, r: &MarkRuleSpec) -> Value {
    let family = if r.vip.is_ipv6() { "ip6" } else { "ip" };
    let mut ports = r.ports.clone();
    ports.sort_unstable();
    // nft prints one port as a number, several as an anonymous set.
    let dport = match ports.as_slice() {
        [one] => json!(one),
        many => json!({ "set": many }),
    };
    json!({"rule": {
        "family": FAMILY, "table": table, "chain": CHAIN, "comment": comment(&r.service),
        "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": family, "field": "daddr"}}, "right": r.vip.to_string()}},
            {"match": {"op": "==", "left": {"payload": {"protocol": r.protocol.as_str(), "field": "dport"}}, "right": dport}},
            {"mangle": {"key": {"meta": {"key": "mark"}}, "value": r.mark}},
        ],
    }})
}

/// A comment nftables keeps as written: at most `COMMENT_MAX` bytes, cut at a character.
fn comment(s: &str) -> String {
    let mut end = s.len().min(COMMENT_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The JSON transaction that makes table `name` hold exactly `objects`: adding the table first
/// makes the delete succeed when it is absent, and the whole batch is atomic.
pub fn replace_commands(name: &str, objects: &[Value]) -> Value {
    let table = json!({"table": {"family": FAMILY, "name": name}});
    let mut cmds = vec![json!({"add": table}), json!({"delete": table}), json!({"add": table})];
    cmds.extend(objects.iter().map(|o| json!({"add": o})));
    json!({ "nftables": cmds })
}

pub fn delete_commands(name: &str) -> Value {
    json!({"nftables": [{"delete": {"table": {"family": FAMILY, "name": name}}}]})
}

pub use crate::wire::facts::NftFact;

/// The table as doctor sees it: there or not, as planned or not.
pub fn fact<S: System>(sys: &mut S, spec: &NftTableSpec) -> NftFact {
    let mut f =
        NftFact { table: spec.name.clone(), planned_rules: spec.rules.len() + spec.snat.len(), ..Default::default() };
    match sys.nft_table(&spec.name) {
        Ok(None) => {}
        Ok(Some(have)) => {
            f.rules = Some(have.iter().filter(|x| x.get("rule").is_some()).count());
            f.as_planned = have == objects(spec);
        }
        Err(e) => f.error = Some(e.to_string()),
    }
    f
}

fn describe(objects: Option<&Objects>) -> String {
    match objects {
        None => "absent".into(),
        Some(o) => {
            let rules = o.iter().filter(|x| x.get("rule").is_some()).count();
            format!("{} object(s), {}", o.len(), crate::plural(rules, "rule"))
        }
    }
}

fn decide(spec: Option<&NftTableSpec>, live: &Live, journal: &dyn Recorded) -> Vec<Decision> {
    let Some(spec) = spec else { return vec![] };
    let key = key(spec);
    let want = objects(spec);
    let after = match (spec.rules.len(), spec.snat.len()) {
        (m, 0) => format!("{m} marking rule(s)"),
        (0, n) => format!("{n} source NAT rule(s)"),
        (m, n) => format!("{m} marking rule(s), {n} source NAT rule(s)"),
    };
    match live.nft.get(&spec.name) {
        None => vec![Decision::failed(&key, &spec.reason, "not read")],
        Some(Err(e)) => vec![Decision::failed(&key, &spec.reason, e)],
        Some(Ok(Some(have))) if *have == want => vec![Decision::same(key, "holds the planned rules, and nothing else")],
        Some(Ok(have)) => {
            let prior = match journal.recorded(&key) {
                Some(AnyUndo::Nft(u)) => u.prior.clone(),
                _ => have.clone(),
            };
            let record = AnyUndo::Nft(Undo { table: spec.name.clone(), prior });
            let action =
                AnyAction::Nft(Action::Replace { table: spec.name.clone(), objects: want, created: have.is_none() });
            vec![Decision::change(key, describe(have.as_ref()), after, &spec.reason, Some(record), action)]
        }
    }
}

fn undo(u: &Undo, live: &Live) -> Decision {
    let key = Key::Nft(u.table.clone());
    let have = match live.nft.get(&u.table) {
        None => return Decision::failed(&key, "undo what lvsctl changed", "not read"),
        Some(Err(e)) => return Decision::failed(&key, "undo what lvsctl changed", e),
        Some(Ok(h)) => h,
    };
    match (&u.prior, have) {
        (None, None) => Decision::same(key, "already gone"),
        (None, Some(h)) => {
            Decision::revert(key, describe(Some(h)), "absent", AnyAction::Nft(Action::Delete(u.table.clone())))
        }
        (Some(p), Some(h)) if p == h => Decision::same(key, "as it was before lvsctl"),
        (Some(p), h) => Decision::revert(
            key,
            describe(h.as_ref()),
            format!("{} (as before lvsctl)", describe(Some(p))),
            AnyAction::Nft(Action::Replace { table: u.table.clone(), objects: p.clone(), created: h.is_none() }),
        ),
    }
}

fn act<S: System>(sys: &mut S, a: &Action) -> io::Result<()> {
    match a {
        Action::Replace { table, objects, .. } => sys.nft_apply(&replace_commands(table, objects)),
        Action::Delete(table) => match sys.nft_apply(&delete_commands(table)) {
            Err(e) if crate::host::is_not_found(&e) => Ok(()),
            r => r,
        },
    }
}

fn show(s: &NftTableSpec) -> Vec<super::Line> {
    let mut v = Vec::new();
    if !s.rules.is_empty() {
        v.push(("nft", format!("table {FAMILY} {} chain {CHAIN} (priority mangle)", s.name), s.reason.clone()));
    }
    for r in &s.rules {
        let family = if r.vip.is_ipv6() { "ip6" } else { "ip" };
        let ports: Vec<String> = r.ports.iter().map(u16::to_string).collect();
        let ports = if ports.len() == 1 { ports[0].clone() } else { format!("{{ {} }}", ports.join(", ")) };
        v.push((
            "",
            format!("  {family} daddr {} {} dport {ports} meta mark set {}", r.vip, r.protocol, r.mark),
            format!("service {}", r.service),
        ));
    }
    if !s.snat.is_empty() {
        let why = if s.rules.is_empty() { s.reason.clone() } else { "one-armed NAT's source NAT".into() };
        v.push(("nft", format!("table {FAMILY} {} chain {SNAT_CHAIN} (priority srcnat)", s.name), why));
    }
    for r in &s.snat {
        let family = if r.vip.is_ipv6() { "ip6" } else { "ip" };
        let only = r.daddr.map(|d| format!(" {family} daddr {d}")).unwrap_or_default();
        v.push((
            "",
            format!("  ct original {family} daddr {} {} dport {}{only} snat to {}", r.vip, r.protocol, r.port, r.to),
            format!("service {}: the real servers see {} as the client", r.service, r.to),
        ));
    }
    v
}

/// A journal entry lvsctl of lab `lab` can have written: its own table, and a prior whose
/// objects all belong to that table (restoring it can touch nothing else).
fn check(u: &Undo, lab: &str) -> Result<(), String> {
    let want = crate::plan::nft_table_name(lab);
    if u.table != want {
        return Err(format!("nftables table {:?} is not lab {lab}'s ({want})", u.table));
    }
    for o in u.prior.iter().flatten() {
        let body = o.as_object().filter(|m| m.len() == 1).and_then(|m| m.values().next());
        let ours = body.is_some_and(|b| {
            b.get("family").and_then(Value::as_str) == Some(FAMILY)
                && b.get("table").and_then(Value::as_str) == Some(want.as_str())
        });
        if !ours {
            return Err(format!("an object of the prior {want} belongs to another table: {o}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Nftables;

    fn spec() -> NftTableSpec {
        NftTableSpec {
            name: "lvsctl-lab".into(),
            rules: vec![
                MarkRuleSpec {
                    vip: "192.168.188.100".parse().unwrap(),
                    protocol: crate::ipvs::Protocol::Tcp,
                    ports: vec![443, 80],
                    mark: 10,
                    service: "web-all".into(),
                },
                MarkRuleSpec {
                    vip: "2001:db8:188::100".parse().unwrap(),
                    protocol: crate::ipvs::Protocol::Tcp,
                    ports: vec![80],
                    mark: 10,
                    service: "web-all".into(),
                },
            ],
            snat: vec![],
            reason: "r".into(),
        }
    }

    /// What nft 1.0.6 printed for the table `replace_commands` created, in a network namespace.
    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "lvsctl-lab", "handle": 4}}, {"chain": {"family": "inet", "table": "lvsctl-lab", "name": "prerouting", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}, {"rule": {"family": "inet", "table": "lvsctl-lab", "chain": "prerouting", "handle": 3, "comment": "web-all", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.168.188.100"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 443]}}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 10}}]}}, {"rule": {"family": "inet", "table": "lvsctl-lab", "chain": "prerouting", "handle": 4, "comment": "web-all", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "2001:db8:188::100"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 10}}]}}]}"#;

    #[test]
    fn the_planned_table_reads_back_equal_from_nfts_listing() {
        let listed = crate::host::linux::nft::parse_listing(&serde_json::from_str(LISTING).unwrap()).unwrap();
        assert_eq!(listed, objects(&spec()));
    }

    /// doctor's view of the table: absent, as planned after `replace_commands`, changed.
    /// What nft 1.0.6 printed (in a network namespace of this machine) for a table of lvsctl's
    /// with a marking rule and two one-armed NAT rules, one of them for one real server only.
    const LISTING_WITH_SNAT: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "lvsctl-lab", "handle": 1}}, {"chain": {"family": "inet", "table": "lvsctl-lab", "name": "prerouting", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}, {"chain": {"family": "inet", "table": "lvsctl-lab", "name": "postrouting", "handle": 2, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}, {"rule": {"family": "inet", "table": "lvsctl-lab", "chain": "prerouting", "handle": 4, "comment": "web-all", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.168.188.100"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [80, 443]}}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 10}}]}}, {"rule": {"family": "inet", "table": "lvsctl-lab", "chain": "postrouting", "handle": 5, "comment": "web", "expr": [{"match": {"op": "==", "left": {"ct": {"key": "direction"}}, "right": "original"}}, {"match": {"op": "==", "left": {"ct": {"key": "ip daddr", "dir": "original"}}, "right": "192.168.188.100"}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"match": {"op": "==", "left": {"ct": {"key": "proto-dst", "dir": "original"}}, "right": 80}}, {"snat": {"family": "ip", "addr": "192.168.188.8"}}]}}, {"rule": {"family": "inet", "table": "lvsctl-lab", "chain": "postrouting", "handle": 6, "comment": "dns", "expr": [{"match": {"op": "==", "left": {"ct": {"key": "direction"}}, "right": "original"}}, {"match": {"op": "==", "left": {"ct": {"key": "ip6 daddr", "dir": "original"}}, "right": "2001:db8:188::100"}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"match": {"op": "==", "left": {"ct": {"key": "proto-dst", "dir": "original"}}, "right": 53}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "2001:db8:20::81"}}, {"snat": {"family": "ip6", "addr": "2001:db8:188::8"}}]}}]}"#;

    #[test]
    fn a_table_with_source_nat_reads_back_equal_from_nfts_listing() {
        let mut s = spec();
        s.rules.truncate(1);
        s.snat = vec![
            SnatRuleSpec {
                vip: "192.168.188.100".parse().unwrap(),
                protocol: crate::ipvs::Protocol::Tcp,
                port: 80,
                daddr: None,
                to: "192.168.188.8".parse().unwrap(),
                service: "web".into(),
            },
            SnatRuleSpec {
                vip: "2001:db8:188::100".parse().unwrap(),
                protocol: crate::ipvs::Protocol::Udp,
                port: 53,
                daddr: Some("2001:db8:20::81".parse().unwrap()),
                to: "2001:db8:188::8".parse().unwrap(),
                service: "dns".into(),
            },
        ];
        let listed = crate::host::linux::nft::parse_listing(&serde_json::from_str(LISTING_WITH_SNAT).unwrap()).unwrap();
        assert_eq!(listed, objects(&s));
        // Source NAT alone: its chain, no marking chain.
        s.rules.clear();
        let only: Vec<String> =
            objects(&s).iter().filter_map(|o| o["chain"]["name"].as_str().map(String::from)).collect();
        assert_eq!(only, [SNAT_CHAIN]);
    }

    #[test]
    fn the_fact_tells_absent_planned_and_changed_apart() {
        let s = spec();
        let mut sys = crate::host::fake::Fake::new();
        let f = fact(&mut sys, &s);
        assert_eq!((f.rules, f.as_planned, f.planned_rules), (None, false, 2));
        // Doctor names the table it looked for.
        assert_eq!(f.table, s.name);
        sys.nft_apply(&replace_commands(&s.name, &objects(&s))).unwrap();
        let f = fact(&mut sys, &s);
        assert_eq!((f.rules, f.as_planned), (Some(2), true));
        let mut fewer = objects(&s);
        fewer.pop();
        sys.nft_apply(&replace_commands(&s.name, &fewer)).unwrap();
        let f = fact(&mut sys, &s);
        assert_eq!((f.rules, f.as_planned, f.error), (Some(1), false, None));
    }

    #[test]
    fn a_table_as_planned_is_left_alone_and_any_other_is_replaced() {
        let s = spec();
        let mut live = Live::default();
        live.nft.insert(s.name.clone(), Ok(Some(objects(&s))));
        let none: Vec<AnyUndo> = vec![];
        assert!(matches!(decide(Some(&s), &live, &none)[..], [Decision::Same { .. }]));
        // A rule someone added to lvsctl's table is drift: the table is replaced whole.
        let mut extra = objects(&s);
        extra.push(extra[1].clone());
        live.nft.insert(s.name.clone(), Ok(Some(extra.clone())));
        let [Decision::Change(c)] = &decide(Some(&s), &live, &none)[..] else { panic!() };
        assert_eq!(c.record, Some(AnyUndo::Nft(Undo { table: s.name.clone(), prior: Some(extra) })));
        // Absent: created, and down deletes it.
        live.nft.insert(s.name.clone(), Ok(None));
        let [Decision::Change(c)] = &decide(Some(&s), &live, &none)[..] else { panic!() };
        assert!(matches!(c.action, AnyAction::Nft(Action::Replace { created: true, .. })));
        let Some(AnyUndo::Nft(u)) = &c.record else { panic!() };
        live.nft.insert(s.name.clone(), Ok(Some(objects(&s))));
        let Decision::Change(d) = undo(u, &live) else { panic!() };
        assert_eq!(d.action, AnyAction::Nft(Action::Delete(s.name.clone())));
    }

    #[test]
    fn a_journal_cannot_make_down_touch_another_table() {
        let ok = Undo { table: "lvsctl-lab".into(), prior: Some(objects(&spec())) };
        assert_eq!(check(&ok, "lab"), Ok(()));
        assert!(check(&Undo { table: "filter".into(), prior: None }, "lab").is_err());
        let mut other = objects(&spec());
        other.push(json!({"rule": {"family": "ip", "table": "filter", "chain": "input", "expr": []}}));
        assert!(check(&Undo { table: "lvsctl-lab".into(), prior: Some(other) }, "lab").is_err());
    }

    #[test]
    fn the_transaction_replaces_the_table_atomically() {
        let c = replace_commands("lvsctl-lab", &objects(&spec()));
        let cmds = c["nftables"].as_array().unwrap();
        let verbs: Vec<&str> = cmds.iter().map(|x| x.as_object().unwrap().keys().next().unwrap().as_str()).collect();
        assert_eq!(verbs, ["add", "delete", "add", "add", "add", "add"]);
        assert_eq!(comment(&"é".repeat(40)).len(), 64);
    }
}
