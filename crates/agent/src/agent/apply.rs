//! The executor: the only code that changes a host. For each stage of `resource::STAGES` it
//! reads the facts the stage needs, takes the stage's decisions (pure, in `resource`), and either
//! executes them — journal first, then act — or reports them: planned for a dry run, drift for
//! `status`. Reverting undoes journal entries newest first.

use super::journal::Journal;
use super::protocol::{ChangeEvent, ChangeKind, Event, Report, Status};
use crate::host::{System, is_not_found};
use crate::plan::HostPlan;
use crate::resource::{self, Change, Decision, Intent, Key, Live, STAGES, Scope, Stage, Undo, unit};

#[cfg(feature = "fault-injection")]
pub use super::protocol::Faults;

/// How long a stall injected by `stall_after` lasts.
#[cfg(feature = "fault-injection")]
const STALL_SECONDS: u64 = 5;

/// How many decisions are made and told at a time (the IPVS changes among them in one batch).
const WINDOW: usize = 256;

/// Whether a change may be made: its journal record is durable (`journal_intents`), or why not;
/// or, for IPVS changes made in a batch, how its making went.
#[derive(Debug, PartialEq, Eq)]
enum Ready {
    Recorded,
    Made(Result<(), String>),
    Unprepared(String),
    Unrecorded(String),
}

pub struct Executor<'a, S: System> {
    pub sys: &'a mut S,
    pub journal: &'a mut Journal,
    pub intent: Intent,
    emit: &'a mut dyn FnMut(Event),
    pub report: Report,
    #[cfg(feature = "fault-injection")]
    pub faults: Faults,
    /// A unit file was written or removed: systemd must reload before using it.
    units_changed: bool,
    /// Where the SSH session comes from, and whether `--force` allows cutting it.
    pub session: resource::Session,
    /// The IPVS table as a check read it (a check changes nothing: it is the table still), so
    /// that `status` shows it without a second dump (1,001 of them for 1,000 services).
    pub ipvs_checked: Option<Vec<crate::host::IpvsService>>,
}

fn is_unit_file(key: &Key) -> bool {
    matches!(key, Key::File(p) if p.ends_with(".service"))
}

impl<'a, S: System> Executor<'a, S> {
    pub fn new(
        sys: &'a mut S,
        journal: &'a mut Journal,
        intent: Intent,
        emit: &'a mut dyn FnMut(Event),
        host: &str,
    ) -> Self {
        Executor {
            sys,
            journal,
            intent,
            emit,
            report: Report { host: host.to_string(), ..Default::default() },
            #[cfg(feature = "fault-injection")]
            faults: Faults::default(),
            units_changed: false,
            session: resource::Session::default(),
            ipvs_checked: None,
        }
    }

    pub fn note(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.report.notes.push(message.clone());
        (self.emit)(Event::Note { message, live: false });
    }

    /// One item's outcome; `(object, before, after)` says what it is and how it changes.
    fn event(
        &mut self,
        (object, before, after): (String, String, String),
        reason: &str,
        status: Status,
        error: Option<String>,
        kind: Option<ChangeKind>,
    ) {
        match status {
            Status::Failed => self.report.failed += 1,
            Status::Kept => self.report.kept += 1,
            _ => self.report.changes += 1,
        }
        (self.emit)(Event::Change(ChangeEvent {
            object,
            before,
            after,
            reason: reason.to_string(),
            status,
            error,
            kind,
        }));
        #[cfg(feature = "fault-injection")]
        self.inject_faults(status);
    }

    #[cfg(feature = "fault-injection")]
    fn inject_faults(&self, status: Status) {
        if status == Status::Done
            && let Some(n) = self.faults.abort_after
            && self.report.changes >= n
        {
            // Simulates a crash at a known point: the journal must be enough for `down`.
            std::process::abort();
        }
        if status == Status::Done && self.faults.stall_after == Some(self.report.changes) {
            // Holds the agent mid-apply so that a test can take its controller away.
            std::thread::sleep(std::time::Duration::from_secs(STALL_SECONDS));
        }
    }

    fn failed(&mut self, object: String, reason: &str, error: String) {
        self.event((object, String::new(), String::new()), reason, Status::Failed, Some(error), None);
    }

    /// What a dry run or a check reports for a change it does not make.
    fn unmade(&self) -> Status {
        if self.intent == Intent::DryRun { Status::Planned } else { Status::Drift }
    }

    /// Makes the host match `plan` (or reports how it differs): first what the plan no longer
    /// wants, then every stage in order, each reading the host as the previous ones left it.
    pub fn apply(&mut self, plan: &HostPlan, scope: Scope) {
        let stale = resource::stale(self.journal.newest_first(), plan, scope);
        self.revert(&stale, "no longer in the inventory");
        for stage in STAGES.into_iter().filter(|s| s.in_scope(scope)) {
            if stage == Stage::Unit
                && self.intent == Intent::Apply
                && self.units_changed
                && self.sys.systemd_running()
                && let Err(e) = unit::daemon_reload(self.sys)
            {
                self.failed("systemd daemon-reload".into(), "load the new unit", e.to_string());
            }
            let mut live = Live::read(self.sys, &stage.wants(plan), &self.session);
            let decisions = stage.decide(plan, &live, &*self.journal, self.intent);
            if stage == Stage::Ipvs
                && self.intent == Intent::Check
                && let Ok(Some(table)) = std::mem::replace(&mut live.ipvs, Ok(None))
            {
                self.ipvs_checked = Some(table);
            }
            let mut decisions = self.journal_intents(decisions).into_iter();
            // In windows: the IPVS changes of each go to the kernel in one batch, then each
            // decision of the window is told (so progress shows as the changes are made).
            loop {
                let window: Vec<(Decision, Ready)> = decisions.by_ref().take(WINDOW).collect();
                if window.is_empty() {
                    break;
                }
                for (d, ready) in self.make_ipvs(window) {
                    // The unit's note (systemd does not run here) is a standing fact of the
                    // host: told when the unit file is written, not again on every no-op run.
                    if stage == Stage::Unit && matches!(d, Decision::Note(_)) && !self.units_changed {
                        continue;
                    }
                    self.execute(d, ready);
                }
            }
            // What the stage's changes brought in (modules a load pulled in, …).
            if let Err(e) = self.journal.flush() {
                self.note(format!("cannot record in the journal what the changes brought in: {e}"));
            }
            if stage == Stage::Unit
                && self.intent == Intent::Apply
                && live.systemd
                && let Some(name) = &plan.boot_unit
                && let Err(e) = unit::start_if_inactive(self.sys, name)
            {
                self.note(format!("cannot start {name}: {e}"));
            }
        }
        self.settle();
    }

    /// Prepares a stage's changes and makes all their journal records durable at once (one
    /// append, one fsync), before any of them is made: write-ahead, batched. A change whose
    /// preparation or record failed is not made.
    fn journal_intents(&mut self, decisions: Vec<Decision>) -> Vec<(Decision, Ready)> {
        let mut out: Vec<(Decision, Ready)> = decisions.into_iter().map(|d| (d, Ready::Recorded)).collect();
        if self.intent != Intent::Apply {
            return out;
        }
        let mut staged = false;
        for (d, ready) in &mut out {
            let Decision::Change(c) = d else { continue };
            if let Err(e) = resource::prepare(self.sys, c, self.journal) {
                *ready = Ready::Unprepared(e.to_string());
            } else if let Some(record) = c.record.take() {
                self.journal.stage(record);
                staged = true;
            }
        }
        if staged && let Err(e) = self.journal.flush() {
            let e = e.to_string();
            for (d, ready) in &mut out {
                if matches!(d, Decision::Change(_)) && *ready == Ready::Recorded {
                    *ready = Ready::Unrecorded(e.clone());
                }
            }
        }
        out
    }

    /// Makes the IPVS changes of a window (their records are durable already) in one batch;
    /// each one's outcome is its `Ready::Made`.
    fn make_ipvs(&mut self, mut window: Vec<(Decision, Ready)>) -> Vec<(Decision, Ready)> {
        let actions = window.iter().map(|(d, ready)| match (d, ready) {
            (Decision::Change(c), Ready::Recorded) => Some(&c.action),
            _ => None,
        });
        let made = self.ipvs_batch(actions.collect());
        for ((_, ready), r) in window.iter_mut().zip(made) {
            if let Some(r) = r {
                *ready = Ready::Made(r.map_err(|e| e.to_string()));
            }
        }
        window
    }

    /// Makes the IPVS actions among `actions` (in order; None for what is not to be made here)
    /// in one batch, when this run applies; each one's outcome at its position.
    fn ipvs_batch(&mut self, actions: Vec<Option<&resource::Action>>) -> Vec<Option<std::io::Result<()>>> {
        let mut made: Vec<Option<std::io::Result<()>>> = actions.iter().map(|_| None).collect();
        if self.intent != Intent::Apply {
            return made;
        }
        let (at, ops): (Vec<usize>, Vec<_>) =
            actions.iter().enumerate().filter_map(|(i, a)| a.and_then(resource::ipvs_op).map(|op| (i, op))).unzip();
        if !ops.is_empty() {
            for (i, r) in at.into_iter().zip(self.sys.ipvs_apply(&ops)) {
                made[i] = Some(r);
            }
        }
        made
    }

    /// The end of a run that changed things: the journal folded into one file.
    fn settle(&mut self) {
        if self.intent == Intent::Apply
            && let Err(e) = self.journal.finish()
        {
            self.note(format!("cannot update the journal: {e}"));
        }
    }

    fn execute(&mut self, d: Decision, ready: Ready) {
        match d {
            Decision::Same { .. } => self.report.unchanged += 1,
            Decision::Note(m) => self.note(m),
            Decision::Failed { object, reason, error } => self.failed(object, &reason, error),
            Decision::Blocked { object, before, after, reason, error } => {
                if self.intent == Intent::Check {
                    self.event((object, before, after), &reason, Status::Drift, None, None);
                } else {
                    self.failed(object, &reason, error);
                }
            }
            Decision::Pending { object, before, after, reason, error } => {
                if self.intent == Intent::Apply {
                    self.failed(object, &reason, error);
                } else {
                    // Made possible by an earlier change of the same run: a change of what is there.
                    self.event((object, before, after), &reason, self.unmade(), None, Some(ChangeKind::Change));
                }
            }
            Decision::Keep { key, why } => {
                self.event((key.to_string(), String::new(), String::new()), &why, Status::Kept, None, None)
            }
            Decision::Change(c) if self.intent != Intent::Apply => {
                let kind = Some(c.action.kind());
                self.event((c.key.to_string(), c.before, c.after), &c.reason, self.unmade(), None, kind)
            }
            Decision::Change(c) => match ready {
                Ready::Recorded => self.make(*c),
                Ready::Made(Ok(())) => self.event(
                    (c.key.to_string(), c.before, c.after),
                    &c.reason,
                    Status::Done,
                    None,
                    Some(c.action.kind()),
                ),
                Ready::Made(Err(e)) => {
                    self.event((c.key.to_string(), c.before, c.after), &c.reason, Status::Failed, Some(e), None)
                }
                Ready::Unprepared(e) => self.failed(c.key.to_string(), &c.reason, e),
                Ready::Unrecorded(e) => {
                    let error = format!("cannot write the journal, change not made: {e}");
                    self.event((c.key.to_string(), c.before, c.after), &c.reason, Status::Failed, Some(error), None)
                }
            },
        }
    }

    /// One change, its record already durable (`journal_intents`): a crash at any point leaves
    /// nothing `down` cannot undo.
    fn make(&mut self, c: Change) {
        let object = c.key.to_string();
        match resource::act(self.sys, &c.action, self.journal) {
            Ok(refined) => {
                if is_unit_file(&c.key) {
                    self.units_changed = true;
                }
                self.event((object, c.before, c.after), &c.reason, Status::Done, None, Some(c.action.kind()));
                if let Some(record) = refined {
                    self.journal.stage(record);
                }
            }
            Err(e) => self.event((object, c.before, c.after), &c.reason, Status::Failed, Some(e.to_string()), None),
        }
    }

    /// Undoes every journal entry in `scope`, newest first. Entries that cannot be undone stay.
    pub fn revert_all(&mut self, scope: Scope) {
        let entries = resource::in_scope(self.journal.newest_first(), scope);
        self.revert(&entries, "undo what lvsctl changed");
        if scope == Scope::All && self.intent == Intent::Apply && self.units_changed && self.sys.systemd_running() {
            let _ = unit::daemon_reload(self.sys);
        }
        self.settle();
    }

    /// Undoes `entries` in order, each dropped from the journal unless its undo failed.
    fn revert(&mut self, entries: &[Undo], reason: &str) {
        if entries.is_empty() {
            return;
        }
        let live = Live::read(self.sys, &resource::undo_wants(entries), &self.session);
        for window in entries.chunks(WINDOW) {
            let decisions: Vec<Decision> = window.iter().map(|u| resource::undo(u, &live)).collect();
            // The window's IPVS undos go to the kernel in one batch, in order (a service's
            // destinations before the service: newest first).
            let actions = decisions.iter().map(|d| if let Decision::Change(c) = d { Some(&c.action) } else { None });
            let made = self.ipvs_batch(actions.collect());
            for ((u, decision), made) in window.iter().zip(decisions).zip(made) {
                self.revert_one(u.key(), decision, made, reason);
            }
        }
        // What was undone leaves the journal in one append. Lost in a crash, it is undone again
        // next time: undoing something already undone finds it as it should be, and changes nothing.
        if let Err(e) = self.journal.flush() {
            self.note(format!("cannot update the journal: {e}"));
        }
    }

    /// One undo; `made` is its outcome when it was made in a batch already.
    fn revert_one(&mut self, key: Key, decision: Decision, made: Option<std::io::Result<()>>, reason: &str) {
        let object = key.to_string();
        let drop = match decision {
            Decision::Same { .. } => {
                self.report.unchanged += 1;
                true
            }
            Decision::Change(c) if self.intent != Intent::Apply => {
                let kind = Some(c.action.kind());
                self.event((object, c.before, c.after), reason, self.unmade(), None, kind);
                false
            }
            Decision::Change(c) => {
                match made.unwrap_or_else(|| resource::act(self.sys, &c.action, self.journal).map(|_| ())) {
                    Ok(()) => {
                        self.event((object, c.before, c.after), reason, Status::Done, None, Some(c.action.kind()));
                        true
                    }
                    // Already gone: as good as undone.
                    Err(e) if is_not_found(&e) => {
                        self.report.unchanged += 1;
                        true
                    }
                    Err(e) => {
                        self.event((object, c.before, c.after), reason, Status::Failed, Some(e.to_string()), None);
                        false
                    }
                }
            }
            Decision::Keep { why, .. } => {
                self.event((object, String::new(), String::new()), &why, Status::Kept, None, None);
                true
            }
            Decision::Failed { error, .. } | Decision::Blocked { error, .. } | Decision::Pending { error, .. } => {
                self.failed(object, reason, error);
                false
            }
            Decision::Note(m) => {
                self.note(m);
                false
            }
        };
        if drop && self.intent == Intent::Apply {
            if is_unit_file(&key) {
                self.units_changed = true;
            }
            self.journal.unstage(&key);
        }
    }
}
