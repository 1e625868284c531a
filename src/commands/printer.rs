//! What a command that reaches many hosts prints while it runs, in one of three shapes:
//!
//! - **plain** (a pipe, CI, a file): host-prefixed lines as things happen, no escape codes;
//! - **live** (a terminal): one line per host that redraws (state, step, elapsed, indicatif),
//!   then each host's block when it is done, then the recap, as docker compose and terraform do;
//! - **jsonl** (`--output jsonl`): every event as one JSON line, as it happens.
//!
//! In the plain and live shapes the files and directories a host changed are folded into one line
//! (`-v` lists each), identical notes of several hosts are shown once with the hosts, and a host
//! with nothing to report gets no line: a no-op run prints only its recap.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::agent::protocol::{ChangeEvent, ChangeKind, Status};
use crate::contract::{HostOutcome, StreamLine};
use crate::output::Verbosity;
use crate::remote::HostError;

use super::outcome::Outcome;

/// Prints per-host lines; one lock so lines of different hosts never interleave.
pub struct Printer {
    width: usize,
    quiet: bool,
    /// Connection progress lines (connecting, connected in N s).
    pub progress: bool,
    /// A dry run: planned changes are not printed as they arrive but grouped by host after
    /// the run ([`print_diff`]).
    pub diff: bool,
    /// What the head line of a host's block says it did: "changed", "undone".
    pub verb: &'static str,
    color: bool,
    verbosity: Verbosity,
    /// Notes not shown yet: (message, hosts), in the order first seen.
    notes: Mutex<Vec<(String, Vec<String>)>>,
    /// Notes already shown as they came: (host, message).
    shown: Mutex<Vec<(String, String)>>,
    /// Items held back until their host is done: a live block, or the files plain output folds.
    held: Mutex<BTreeMap<String, Vec<ChangeEvent>>>,
    /// A live block's counts so far: (changed, failed), kept as items come (counting the held
    /// items on each one would be quadratic: 10,000 destinations are 10,000 items).
    tally: Mutex<BTreeMap<String, (usize, usize)>>,
    /// Other lines of a host's live block (the agent installed).
    extra: Mutex<BTreeMap<String, Vec<String>>>,
    live: Option<Live>,
    stream: Option<BTreeMap<std::net::IpAddr, String>>,
    lock: Mutex<()>,
}

/// The live lines of a terminal.
struct Live {
    multi: indicatif::MultiProgress,
    bars: Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

impl Printer {
    pub fn new(hosts: &[String], quiet: bool) -> Printer {
        Printer {
            width: hosts.iter().map(|h| h.len()).max().unwrap_or(4).max(4),
            quiet,
            progress: true,
            diff: false,
            verb: "changed",
            color: crate::output::color_stdout(),
            verbosity: crate::output::verbosity(),
            notes: Mutex::new(Vec::new()),
            shown: Mutex::new(Vec::new()),
            held: Mutex::new(BTreeMap::new()),
            tally: Mutex::new(BTreeMap::new()),
            extra: Mutex::new(BTreeMap::new()),
            live: None,
            stream: None,
            lock: Mutex::new(()),
        }
    }

    /// On a terminal (and not `-q`): a live line per host, each host's block when it is done.
    pub fn live_on_terminal(mut self, hosts: &[String]) -> Printer {
        use std::io::IsTerminal;
        if self.quiet || self.verbosity == Verbosity::Quiet || !std::io::stdout().is_terminal() {
            return self;
        }
        let multi = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout_with_hz(8));
        let template = if self.color {
            format!("{{spinner:.cyan}} {{prefix:{}.bold}}  {{wide_msg}} {{elapsed:>4.dim}}", self.width)
        } else {
            format!("{{spinner}} {{prefix:{}}}  {{wide_msg}} {{elapsed:>4}}", self.width)
        };
        let style = indicatif::ProgressStyle::with_template(&template).expect("a valid template");
        let mut bars = BTreeMap::new();
        for h in hosts {
            let bar = multi.add(indicatif::ProgressBar::new_spinner().with_style(style.clone()));
            bar.set_prefix(h.clone());
            bar.set_message("waiting for a connection slot (--parallel)");
            bar.enable_steady_tick(Duration::from_millis(125));
            bars.insert(h.clone(), bar);
        }
        self.live = Some(Live { multi, bars: Mutex::new(bars) });
        self
    }

    /// `--output jsonl`: events as JSON lines; nothing else is printed.
    pub fn jsonl(mut self, lab: &crate::inventory::Lab) -> Printer {
        let mut hosts = BTreeMap::new();
        for h in &lab.hosts {
            for (_, a) in h.all_addresses() {
                hosts.entry(a.addr()).or_insert_with(|| h.name.clone());
            }
        }
        self.stream = Some(hosts);
        self.quiet = true;
        self
    }

    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    pub fn line(&self, host: &str, text: &str) {
        if self.quiet || self.verbosity == Verbosity::Quiet {
            return;
        }
        self.always(host, text);
    }

    /// A line shown even with `-q`: a problem.
    pub fn problem(&self, host: &str, text: &str) {
        if self.quiet {
            return;
        }
        self.always(host, text);
    }

    fn always(&self, host: &str, text: &str) {
        self.print(&format!("{host:<w$}  {text}", w = self.width));
    }

    /// Prints whole lines above the live ones (or alone).
    fn print(&self, text: &str) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        match &self.live {
            Some(l) => l.multi.suspend(|| crate::outln!("{text}")),
            None => crate::outln!("{text}"),
        }
    }

    fn emit(&self, line: &StreamLine) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        crate::outln!("{}", serde_json::to_string(line).expect("serializes"));
    }

    pub(crate) fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    /// The live line of `host` says what it does now.
    pub fn step(&self, host: &str, what: &str) {
        if let Some(bar) = self.bar(host) {
            bar.set_message(what.to_string());
        }
    }

    fn bar(&self, host: &str) -> Option<indicatif::ProgressBar> {
        self.live.as_ref()?.bars.lock().unwrap_or_else(|e| e.into_inner()).get(host).cloned()
    }

    /// The host got its connection slot: its elapsed time starts now.
    pub fn started(&self, host: &str) {
        if let Some(bar) = self.bar(host) {
            bar.reset_elapsed();
            bar.set_message("connecting");
        }
    }

    /// A step that plain output prints as a line and the live line shows (installing the agent).
    pub fn event(&self, host: &str, text: &str) {
        if self.live.is_some() {
            self.step(host, text);
            self.extra.lock().unwrap_or_else(|e| e.into_inner()).entry(host.to_string()).or_default().push(text.into());
        } else {
            self.line(host, text);
        }
    }

    /// One item of a host: in plain output a line now (files and directories folded until the
    /// host is done), in a live block when the host is done, in jsonl a line now.
    pub fn change(&self, host: &str, c: &ChangeEvent) {
        if self.stream.is_some() {
            return self.emit(&StreamLine::Change { host, change: c });
        }
        if self.diff && c.status == Status::Planned {
            if let Some(bar) = self.bar(host) {
                bar.set_message(format!("checking: {}", c.object));
            }
            return;
        }
        if self.live.is_some() {
            self.held.lock().unwrap_or_else(|e| e.into_inner()).entry(host.to_string()).or_default().push(c.clone());
            let (done, failed) = {
                let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
                let t = tally.entry(host.to_string()).or_default();
                match c.status {
                    Status::Done => t.0 += 1,
                    Status::Failed => t.1 += 1,
                    _ => {}
                }
                *t
            };
            let mut msg = format!("{done} changed");
            if failed > 0 {
                msg.push_str(&format!(", {failed} failed"));
            }
            return self.step(host, &format!("{msg} · {}", c.object));
        }
        if self.folds(c) {
            self.held.lock().unwrap_or_else(|e| e.into_inner()).entry(host.to_string()).or_default().push(c.clone());
            return;
        }
        let problem = matches!(c.status, Status::Failed | Status::Kept | Status::Drift);
        let text = self.plain_item(c);
        if problem { self.problem(host, &text) } else { self.line(host, &text) }
    }

    /// Whether an item waits to be folded with the host's other files and directories, or with
    /// its other failures (one error often fails every item after it: a full disk).
    fn folds(&self, c: &ChangeEvent) -> bool {
        self.verbosity != Verbosity::Verbose
            && (c.status == Status::Done && file_or_dir(c).is_some() || c.status == Status::Failed)
    }

    /// `changed sysctl …: 0 -> 1`, as plain output has always printed an item.
    fn plain_item(&self, c: &ChangeEvent) -> String {
        let (mark, code) = match c.status {
            Status::Done => match c.kind {
                Some(ChangeKind::Add) => ("added", "32"),
                Some(ChangeKind::Remove) => ("removed", "32"),
                _ => ("changed", "32"),
            },
            Status::Planned => ("would change", "36"),
            Status::Drift => ("drifted", "33"),
            Status::Kept => ("kept", "33"),
            Status::Failed => ("FAILED", "31"),
        };
        format!("{} {}", self.paint(code, mark), self.detail(c))
    }

    /// `+ address …: absent -> present` (a change), or `FAILED …: why`, `kept … (why)`.
    fn block_item(&self, c: &ChangeEvent) -> String {
        match c.status {
            Status::Done | Status::Planned => {
                let kind = c.kind.unwrap_or(ChangeKind::Change);
                format!("{} {}", self.paint(kind_color(kind), &kind.sign().to_string()), self.detail(c))
            }
            _ => self.plain_item(c),
        }
    }

    fn detail(&self, c: &ChangeEvent) -> String {
        let mut text = c.object.clone();
        if !(c.before.is_empty() && c.after.is_empty()) {
            text.push_str(&format!(": {} -> {}", c.before, c.after));
        }
        if let Some(e) = &c.error {
            text.push_str(&format!(": {}", self.paint("31", e)));
        } else if c.status == Status::Kept {
            text.push_str(&format!(" ({})", c.reason));
        }
        text
    }

    /// A host is done: its live line goes, its block (or plain's folded line) is printed, or
    /// its jsonl line.
    pub fn host_done(&self, o: &Outcome) {
        if let Some(hosts) = &self.stream {
            let host_of = |a: std::net::IpAddr| hosts.get(&a).cloned();
            return self.emit(&StreamLine::Host(&HostOutcome::of(o, &host_of)));
        }
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).remove(&o.host).unwrap_or_default();
        let extra = self.extra.lock().unwrap_or_else(|e| e.into_inner()).remove(&o.host).unwrap_or_default();
        let Some(live) = &self.live else {
            for line in self.failures(&held) {
                self.problem(&o.host, &line);
            }
            for line in fold(&held, self) {
                self.line(&o.host, &line);
            }
            return;
        };
        if let Some(bar) = live.bars.lock().unwrap_or_else(|e| e.into_inner()).remove(&o.host) {
            bar.finish_and_clear();
            live.multi.remove(&bar);
        }
        let (head, problem) = host_line(o, self.verb);
        let eventful = problem || !held.is_empty() && !self.diff;
        if !(eventful || self.verbosity == Verbosity::Verbose) {
            return;
        }
        let mut block = vec![format!("{:<w$}  {head}", o.host, w = self.width)];
        for e in &extra {
            block.push(format!("  {e}"));
        }
        let (folded, rest): (Vec<&ChangeEvent>, Vec<&ChangeEvent>) = held.iter().partition(|c| self.folds(c));
        for line in self.failures(&held) {
            block.push(format!("  {line}"));
        }
        for c in rest {
            block.push(format!("  {}", self.block_item(c)));
        }
        let folded: Vec<ChangeEvent> = folded.into_iter().cloned().collect();
        for line in fold(&folded, self) {
            block.push(format!("  {line}"));
        }
        self.print(&block.join("\n"));
    }

    /// Every live line is gone (the run ended, or was cut short).
    pub fn clear(&self) {
        if let Some(l) = &self.live {
            for (_, bar) in std::mem::take(&mut *l.bars.lock().unwrap_or_else(|e| e.into_inner())) {
                bar.finish_and_clear();
            }
            let _ = l.multi.clear();
        }
    }

    /// How a drain goes on director `host`: a line each time the count changes (jsonl: each).
    pub fn drain(&self, host: &str, p: &crate::agent::protocol::DrainProgress) {
        if self.stream.is_some() {
            return self.emit(&StreamLine::Drain { host, progress: p });
        }
        let (rs, s) = (&p.real_server, p.elapsed_ms as f64 / 1000.0);
        let left = format!("{} active, {} inactive connection(s)", p.active, p.inactive);
        let text = match p.phase.as_str() {
            "weight-0" => format!("{rs}: weight 0, no new connection goes to it; {left} left"),
            "waiting" => format!("{rs}: {left} left ({s:.0} s)"),
            "drained" => format!("{rs}: drained in {s:.1} s ({left} left)"),
            "removed" => format!("{rs}: taken out of the table"),
            "undrained" => format!("{rs}: weights as planned again ({left})"),
            "timeout" => format!("{rs}: still {left} after {s:.0} s"),
            other => format!("{rs}: {other}, {left}"),
        };
        self.line(host, &text);
    }

    /// A note from `host`: shown now when it is live or with `-v`, else kept for
    /// [`Printer::flush_notes`].
    pub fn note(&self, host: &str, message: &str, live: bool) {
        if self.stream.is_some() {
            return self.emit(&StreamLine::Note { host, message });
        }
        if live || self.verbosity == Verbosity::Verbose {
            self.shown.lock().unwrap_or_else(|e| e.into_inner()).push((host.to_string(), message.to_string()));
            return self.line(host, &format!("note: {message}"));
        }
        self.keep(host, message);
    }

    /// Adds `host` to the hosts of `message`, kept for [`Printer::flush_notes`].
    fn keep(&self, host: &str, message: &str) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        match notes.iter_mut().find(|(m, _)| m == message) {
            Some((_, hosts)) if !hosts.iter().any(|h| h == host) => hosts.push(host.to_string()),
            Some(_) => {}
            None => notes.push((message.to_string(), vec![host.to_string()])),
        }
    }

    /// The notes kept during the run, and those the hosts only wrote into their reports (the
    /// journal entries that could not be undone, the agent removed), each message once with
    /// the hosts it came from.
    pub fn flush_notes(&self, outcomes: &[Outcome]) {
        let shown = std::mem::take(&mut *self.shown.lock().unwrap_or_else(|e| e.into_inner()));
        for o in outcomes {
            if let Ok(r) = &o.result {
                for n in r.notes.iter().filter(|n| !shown.iter().any(|(h, m)| *h == o.host && m == *n)) {
                    self.keep(&o.host, n);
                }
            }
        }
        let notes = std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()));
        for (message, mut hosts) in notes {
            hosts.sort();
            if hosts.len() == 1 {
                self.line(&hosts[0], &format!("note: {message}"));
            } else if !self.quiet && self.verbosity != Verbosity::Quiet {
                self.print(&format!("note ({}): {message}", hosts.join(", ")));
            }
        }
    }
}

impl Printer {
    /// A host's failed items, those with the same error after the first counted in one line.
    fn failures(&self, items: &[ChangeEvent]) -> Vec<String> {
        let mut groups: Vec<(&str, Vec<&ChangeEvent>)> = Vec::new();
        for c in items.iter().filter(|c| c.status == Status::Failed && self.folds(c)) {
            let e = c.error.as_deref().unwrap_or("");
            match groups.iter_mut().find(|(g, _)| *g == e) {
                Some((_, v)) => v.push(c),
                None => groups.push((e, vec![c])),
            }
        }
        let mut out = Vec::new();
        for (_, g) in groups {
            out.push(self.plain_item(g[0]));
            if g.len() > 1 {
                let n = g.len() - 1;
                let items = if n == 1 { "1 more item".to_string() } else { format!("{n} more items") };
                out.push(format!("{} {items} for the same reason (-v lists each)", self.paint("31", "FAILED")));
            }
        }
        out
    }
}

fn kind_color(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Add => "32",
        ChangeKind::Change => "33",
        ChangeKind::Remove => "31",
    }
}

/// The path of a file or directory item (`file /etc/x (0644)`, `dir /etc/lvsctl`).
fn file_or_dir(c: &ChangeEvent) -> Option<(&'static str, &str)> {
    let (what, rest) = c.object.split_once(' ')?;
    let what = match what {
        "file" => "file",
        "dir" => "dir",
        _ => return None,
    };
    Some((what, rest.split(' ').next().unwrap_or(rest)))
}

/// Files and directories of one host, one line per kind of change: `+ 4 files and 2
/// directories under /etc (-v lists each)`.
fn fold(items: &[ChangeEvent], p: &Printer) -> Vec<String> {
    let mut out = Vec::new();
    for kind in [ChangeKind::Add, ChangeKind::Change, ChangeKind::Remove] {
        let of: Vec<(&str, &str)> = items
            .iter()
            .filter(|c| c.status == Status::Done && c.kind.unwrap_or(ChangeKind::Change) == kind)
            .filter_map(file_or_dir)
            .collect();
        if of.is_empty() {
            continue;
        }
        if of.len() == 1 {
            let c = items
                .iter()
                .find(|c| c.status == Status::Done && file_or_dir(c).is_some_and(|f| f == of[0]))
                .expect("the item");
            out.push(if p.live.is_some() { p.block_item(c) } else { p.plain_item(c) });
            continue;
        }
        let files = of.iter().filter(|(w, _)| *w == "file").count();
        let dirs = of.len() - files;
        let mut what = Vec::new();
        if files > 0 {
            what.push(crate::plural(files, "file"));
        }
        if dirs > 0 {
            what.push(if dirs == 1 { "1 directory".to_string() } else { format!("{dirs} directories") });
        }
        let under = common_dir(of.iter().map(|(_, p)| *p));
        let text = format!("{} under {under} (-v lists each)", what.join(" and "));
        out.push(if p.live.is_some() {
            format!("{} {text}", p.paint(kind_color(kind), &kind.sign().to_string()))
        } else {
            let verb = match kind {
                ChangeKind::Add => "added",
                ChangeKind::Change => "changed",
                ChangeKind::Remove => "removed",
            };
            format!("{} {text}", p.paint("32", verb))
        });
    }
    out
}

/// The longest directory every path is under (`/` at least).
fn common_dir<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let mut common: Option<Vec<&str>> = None;
    for p in paths {
        let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
        common = Some(match common {
            None => parts,
            Some(c) => c.iter().zip(&parts).take_while(|(a, b)| a == b).map(|(a, _)| *a).collect(),
        });
    }
    let c = common.unwrap_or_default();
    format!("/{}", c.join("/"))
}

/// A host's head line: `12 changed, 30 unchanged (4.1 s)`, or why it failed; and whether it is a
/// problem.
fn host_line(o: &Outcome, verb: &str) -> (String, bool) {
    match &o.result {
        Ok(r) => {
            let mut text = format!("{} {verb}, {} unchanged", r.changes, r.unchanged);
            if r.failed > 0 {
                text.push_str(&format!(", {} FAILED", r.failed));
            }
            if r.kept > 0 {
                text.push_str(&format!(", {} kept", r.kept));
            }
            for e in &r.errors {
                text.push_str(&format!(", error: {e}"));
            }
            text.push_str(&format!(" ({:.1} s)", o.seconds));
            (text, r.failed > 0 || !r.errors.is_empty() || r.kept > 0)
        }
        Err(e) => (e.to_string(), true),
    }
}

/// How many changes of each kind a dry run found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
}

impl Pending {
    /// Counts one planned change.
    pub fn count(&mut self, c: &ChangeEvent) {
        match c.kind.unwrap_or(ChangeKind::Change) {
            ChangeKind::Add => self.add += 1,
            ChangeKind::Change => self.change += 1,
            ChangeKind::Remove => self.remove += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.add + self.change + self.remove
    }

    /// terraform's line: `Plan: 3 to add, 2 to change, 1 to remove.`
    pub fn line(&self) -> String {
        if self.total() == 0 {
            return "No changes: every host is as planned.".to_string();
        }
        format!("Plan: {} to add, {} to change, {} to remove.", self.add, self.change, self.remove)
    }
}

/// The pending changes of a dry run, as terraform shows a plan: each host's items, `+` added,
/// `~` changed, `-` removed, with before -> after; hosts with none say so in one line.
pub fn print_diff(outcomes: &[Outcome], printer: &Printer) -> Pending {
    let mut n = Pending::default();
    for o in outcomes {
        let planned: Vec<&ChangeEvent> = o.events.iter().filter(|c| c.status == Status::Planned).collect();
        if o.result.is_err() {
            continue;
        }
        if planned.is_empty() {
            crate::outln!("{}: no changes", o.host);
            continue;
        }
        crate::outln!("{}:", o.host);
        for c in planned {
            n.count(c);
            crate::outln!("  {}", printer.block_item(c));
        }
    }
    n
}

/// The per-host summary lines after a run (plain output: a live run printed them in each
/// host's block), and the recap it returns.
pub fn summary(outcomes: &[Outcome], verb: &str, printer: &Printer, started: Instant) -> String {
    let mut changes = 0;
    let mut failed_hosts = Vec::new();
    let mut unreachable = Vec::new();
    for o in outcomes {
        let (text, problem) = host_line(o, verb);
        match &o.result {
            Ok(r) => {
                changes += r.changes;
                if r.failed > 0 || !r.errors.is_empty() {
                    failed_hosts.push(o.host.clone());
                }
                let eventful = r.changes > 0 || problem;
                if printer.is_live() && !printer.diff {
                    // The host's block said it.
                } else if r.failed > 0 || !r.errors.is_empty() {
                    printer.problem(&o.host, &text);
                } else if eventful || printer.verbosity == Verbosity::Verbose {
                    // A host with nothing to report is only counted in the recap (unless -v).
                    printer.line(&o.host, &text);
                }
            }
            Err(e) => {
                if !printer.is_live() || printer.diff {
                    printer.problem(&o.host, &text);
                }
                match e {
                    HostError::Unreachable(_) => unreachable.push(o.host.clone()),
                    HostError::Agent(_) => failed_hosts.push(o.host.clone()),
                }
            }
        }
    }
    let mut s = format!("{} hosts, {changes} {verb}", outcomes.len());
    if !failed_hosts.is_empty() {
        s.push_str(&format!(", failed: {}", failed_hosts.join(" ")));
    }
    if !unreachable.is_empty() {
        s.push_str(&format!(", unreachable: {}", unreachable.join(" ")));
    }
    s.push_str(&format!(", {:.1} s", started.elapsed().as_secs_f64()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(object: &str, kind: ChangeKind) -> ChangeEvent {
        ChangeEvent {
            object: object.into(),
            before: "absent".into(),
            after: "present".into(),
            reason: String::new(),
            status: Status::Done,
            error: None,
            kind: Some(kind),
        }
    }

    #[test]
    fn files_and_directories_fold_into_one_line_per_kind_of_change() {
        let p = Printer::new(&["web1".into()], false);
        let items = vec![
            ev("dir /etc/lvsctl", ChangeKind::Add),
            ev("file /etc/lvsctl/dr.json (0644)", ChangeKind::Add),
            ev("file /etc/sysctl.d/90-lvsctl-dr.conf (0644)", ChangeKind::Add),
            ev("file /etc/systemd/system/lvsctl-dr.service (0644)", ChangeKind::Change),
        ];
        assert!(items.iter().all(|c| p.folds(c)));
        assert_eq!(
            fold(&items, &p),
            vec![
                "added 2 files and 1 directory under /etc (-v lists each)".to_string(),
                "changed file /etc/systemd/system/lvsctl-dr.service (0644): absent -> present".to_string(),
            ]
        );
        assert_eq!(common_dir(["/usr/local/sbin/a", "/usr/local/lib/b"].into_iter()), "/usr/local");
        assert_eq!(common_dir(["/etc/a", "/usr/b"].into_iter()), "/");
        assert!(!p.folds(&ev("address 10.0.0.1/32 dev lo", ChangeKind::Add)));
    }
}
