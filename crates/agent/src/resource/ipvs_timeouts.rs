//! IPVS's connection timeouts (`ipvsadm --set TCP TCPFIN UDP`), one set per network namespace:
//! set to what the inventory asks for; `down` gives back the ones found before, unless someone
//! changed them since. A timeout the inventory leaves out is neither set nor restored.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Wants};
use crate::host::System;
use crate::plan::{HostPlan, IpvsTimeouts, IpvsTimeoutsSpec};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub prior: IpvsTimeouts,
    pub applied: IpvsTimeouts,
}

/// `ipvsadm --set TCP TCPFIN UDP`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub set: IpvsTimeouts,
}

/// The kind.
pub struct Timeouts;

/// The largest timeout every kernel takes: it keeps them in jiffies in an int (INT_MAX / HZ,
/// HZ at most 1000).
pub const MAX_SECONDS: u32 = 2_147_483;

impl Kind for Timeouts {
    type Id = ();
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Ipvs;

    fn fmt_id(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipvs timeouts")
    }

    fn id(_: &Undo) {}

    fn desired(plan: &HostPlan) -> Vec<()> {
        plan.ipvs_timeouts.iter().map(|_| ()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        if plan.ipvs_timeouts.is_some() {
            w.ipvs_timeouts = true;
            // Absent may only mean that ip_vs, a module of the plan, is not loaded yet.
            w.modules |= !plan.modules.is_empty();
        }
    }

    fn decide(plan: &HostPlan, live: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        plan.ipvs_timeouts.iter().map(|s| decide(s, live.ipvs_timeouts.as_ref(), live.modules_pending(plan))).collect()
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.ipvs_timeouts.iter().map(|s| ("ipvs", format!("timeouts {}", s.describe()), s.reason.clone())).collect()
    }

    fn undo_wants(_: &Undo, w: &mut Wants) {
        w.ipvs_timeouts = true;
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        let key = Key::IpvsTimeouts(());
        let why = "undo what lvsctl changed";
        match live.ipvs_timeouts.as_ref() {
            None => Decision::failed(&key, why, "not read"),
            Some(Err(e)) => Decision::failed(&key, why, e),
            // Unloading ip_vs took them with it; it starts with the kernel's own when loaded.
            Some(Ok(None)) => Decision::same(key, "gone with the ip_vs module"),
            Some(Ok(Some(cur))) if *cur == u.prior => Decision::same(key, format!("are {} again", u.prior)),
            Some(Ok(Some(cur))) if *cur == u.applied => Decision::revert(
                key,
                cur.to_string(),
                u.prior.to_string(),
                super::Action::IpvsTimeouts(Action { set: u.prior }),
            ),
            Some(Ok(Some(cur))) => Decision::Keep {
                key,
                why: format!(
                    "changed by someone else since lvsctl set them (now {cur}, lvsctl set {}, they were {} before): left as they are",
                    u.applied, u.prior
                ),
            },
        }
    }

    fn sign(_: &Action) -> ChangeKind {
        ChangeKind::Change
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        sys.ipvs_set_timeouts(&a.set).map(|_| None)
    }

    /// Timeouts a kernel can hold: each 1 to `MAX_SECONDS`.
    fn check(u: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        let ok = |t: &IpvsTimeouts| [t.tcp, t.tcp_fin, t.udp].iter().all(|v| (1..=MAX_SECONDS).contains(v));
        if ok(&u.prior) && ok(&u.applied) {
            Ok(())
        } else {
            Err(format!("ipvs timeouts {} / {}: not timeouts a kernel holds", u.prior, u.applied))
        }
    }

    fn merge(first: &Undo, newer: Undo) -> Undo {
        Undo { prior: first.prior, ..newer }
    }
}

fn decide(s: &IpvsTimeoutsSpec, live: Option<&super::Fact<Option<IpvsTimeouts>>>, modules_pending: bool) -> Decision {
    let key = Key::IpvsTimeouts(());
    match live {
        None => Decision::failed(&key, &s.reason, "not read"),
        Some(Err(e)) => Decision::failed(&key, &s.reason, e),
        Some(Ok(Some(cur))) => {
            let want = s.applied_to(*cur);
            if want == *cur {
                return Decision::same(key, format!("are {cur}"));
            }
            let record = super::Undo::IpvsTimeouts(Undo { prior: *cur, applied: want });
            let action = super::Action::IpvsTimeouts(Action { set: want });
            Decision::change(key, cur.to_string(), want.to_string(), &s.reason, Some(record), action)
        }
        Some(Ok(None)) => {
            let (object, after, reason) = (key.to_string(), s.describe(), s.reason.clone());
            let error = "IPVS is not loaded (the ip_vs module)".to_string();
            if modules_pending {
                Decision::Pending { object, before: "absent until ip_vs loads".into(), after, reason, error }
            } else {
                Decision::Blocked { object, before: "absent".into(), after, reason, error }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::Fake;
    use crate::plan::ModuleSpec;
    use crate::wire::vocab::Role;

    fn plan(tcp: Option<u32>, udp: Option<u32>) -> HostPlan {
        let mut p = HostPlan::empty("t", "lvs", Role::Director);
        p.ipvs_timeouts = Some(IpvsTimeoutsSpec { tcp, tcp_fin: None, udp, reason: "[ipvs] timeouts".into() });
        p
    }

    fn live(t: Option<IpvsTimeouts>) -> Live {
        Live { ipvs_timeouts: Some(Ok(t)), ..Live::default() }
    }

    fn t(tcp: u32, tcp_fin: u32, udp: u32) -> IpvsTimeouts {
        IpvsTimeouts { tcp, tcp_fin, udp }
    }

    fn decided(p: &HostPlan, l: &Live) -> Decision {
        let mut d = Timeouts::decide(p, l, &Vec::<super::super::Undo>::new(), Intent::Apply);
        assert_eq!(d.len(), 1);
        d.remove(0)
    }

    /// Only the timeouts the inventory names change; the journal holds all three before and after.
    #[test]
    fn sets_what_the_inventory_names_and_records_what_was_there() {
        let d = decided(&plan(Some(60), None), &live(Some(IpvsTimeouts::KERNEL)));
        let Decision::Change(c) = d else { panic!("{d:?}") };
        assert_eq!(
            (c.before.as_str(), c.after.as_str()),
            ("tcp 900 tcp_fin 120 udp 300", "tcp 60 tcp_fin 120 udp 300")
        );
        assert_eq!(
            c.record,
            Some(super::super::Undo::IpvsTimeouts(Undo { prior: IpvsTimeouts::KERNEL, applied: t(60, 120, 300) }))
        );
        let d = decided(&plan(Some(60), None), &live(Some(t(60, 5, 300))));
        assert!(matches!(&d, Decision::Same { why, .. } if why == "are tcp 60 tcp_fin 5 udp 300"), "{d:?}");
    }

    #[test]
    fn waits_for_ip_vs_or_says_it_is_missing() {
        let mut p = plan(Some(60), None);
        assert!(matches!(decided(&p, &live(None)), Decision::Blocked { .. }));
        p.modules.push(ModuleSpec { name: "ip_vs".into(), reason: String::new() });
        let l = Live { modules: Ok(vec![]), ..live(None) };
        assert!(matches!(decided(&p, &l), Decision::Pending { .. }));
        let l = Live { ipvs_timeouts: Some(Err("EPERM".into())), ..Live::default() };
        assert!(matches!(decided(&p, &l), Decision::Failed { .. }));
        assert!(matches!(decided(&p, &Live::default()), Decision::Failed { .. }), "not read is not absent");
    }

    #[test]
    fn down_gives_back_the_prior_unless_someone_changed_them_since() {
        let u = Undo { prior: IpvsTimeouts::KERNEL, applied: t(60, 120, 300) };
        let d = Timeouts::undo(&u, &live(Some(t(60, 120, 300))));
        let Decision::Change(c) = d else { panic!("{d:?}") };
        assert_eq!(c.action, super::super::Action::IpvsTimeouts(Action { set: IpvsTimeouts::KERNEL }));
        assert!(matches!(Timeouts::undo(&u, &live(Some(IpvsTimeouts::KERNEL))), Decision::Same { .. }));
        assert!(matches!(Timeouts::undo(&u, &live(Some(t(61, 120, 300)))), Decision::Keep { .. }));
        assert!(matches!(Timeouts::undo(&u, &live(None)), Decision::Same { .. }), "gone with ip_vs");
        let merged = Timeouts::merge(&u, Undo { prior: t(60, 120, 300), applied: t(70, 120, 300) });
        assert_eq!(merged, Undo { prior: IpvsTimeouts::KERNEL, applied: t(70, 120, 300) });
    }

    #[test]
    fn a_journal_entry_must_hold_timeouts_a_kernel_holds() {
        let root = std::path::Path::new("/");
        assert!(
            Timeouts::check(&Undo { prior: IpvsTimeouts::KERNEL, applied: t(1, 1, MAX_SECONDS) }, "t", root).is_ok()
        );
        assert!(Timeouts::check(&Undo { prior: IpvsTimeouts::KERNEL, applied: t(0, 1, 1) }, "t", root).is_err());
        assert!(Timeouts::check(&Undo { prior: t(MAX_SECONDS + 1, 1, 1), applied: t(1, 1, 1) }, "t", root).is_err());
    }

    /// The kernel leaves a 0 as it is; the fake does the same, and so the act sets all three.
    #[test]
    fn act_sets_them_on_the_host() {
        let mut sys = Fake::new();
        sys.state.ipvs = Some(vec![]);
        let a = Action { set: t(60, 120, 300) };
        Timeouts::act(&mut sys, &a, &crate::resource::NoBackups).unwrap();
        assert_eq!(sys.state.ipvs_timeouts, Some(t(60, 120, 300)));
        assert_eq!(sys.log, ["ipvs set timeouts tcp 60 tcp_fin 120 udp 300"]);
    }
}
