//! What `capture` and `trace` share: captures on hosts, each one agent run that streams its
//! packets and keeps capturing until the controller closes its stdin; and, for a trace, the
//! probing host started only once every other host is capturing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fleet::Job;
use crate::agent::protocol::{Event, Report};
use crate::remote::HostError;
use crate::wire::capture::{CaptureEvent, CaptureInterface, CapturedPacket};

/// How long hosts may take to start capturing (connecting included; an emulated host is slow).
const READY_WAIT: Duration = Duration::from_secs(120);

/// Told of each host's packet count as packets arrive (progress).
pub type OnPackets = Arc<dyn Fn(&str, usize) + Send + Sync>;
/// Each watcher's host and whether the lab is up there (None: it never started capturing).
pub type ReadyStates = [(String, Option<bool>)];

/// One host's capture.
#[derive(Debug)]
pub struct Captured {
    pub host: String,
    pub interfaces: Vec<CaptureInterface>,
    pub packets: Vec<CapturedPacket>,
    pub notes: Vec<String>,
    pub result: Result<Report, HostError>,
}

#[derive(Default)]
struct Progress {
    interfaces: Vec<CaptureInterface>,
    lab_up: Option<bool>,
    packets: Vec<CapturedPacket>,
    notes: Vec<String>,
}

/// Starts `job` (a Capture request); `ready` hears (host, lab_up) when it captures, or
/// (host, None) when it ended without.
fn spawn(
    session: &super::Session,
    job: Job,
    release: Option<tokio::sync::watch::Receiver<bool>>,
    ready: tokio::sync::mpsc::UnboundedSender<(String, Option<bool>)>,
    on_packets: OnPackets,
) -> tokio::task::JoinHandle<Captured> {
    let (agent, pool) = (session.agent.clone(), session.pool.clone());
    session.rt.spawn(async move {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let p = progress.clone();
        let host = job.host.clone();
        let said_ready = ready.clone();
        let result = async {
            let (t, _) = pool.get(&job.host, &job.ssh).await?;
            let mut on_event = |e: Event| {
                let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
                match e {
                    Event::Capture(CaptureEvent::Ready { interfaces, lab_up }) => {
                        g.interfaces = interfaces;
                        g.lab_up = Some(lab_up);
                        let _ = said_ready.send((host.clone(), Some(lab_up)));
                    }
                    Event::Capture(CaptureEvent::Packets { packets }) => {
                        g.packets.extend(packets);
                        on_packets(&host, g.packets.len());
                    }
                    Event::Note { message, .. } => g.notes.push(message),
                    Event::Change(_) | Event::Drain(_) | Event::Metrics { .. } | Event::Report(_) => {}
                }
            };
            let release: Option<crate::remote::Release> = release.map(|mut r| {
                Box::pin(async move {
                    let _ = r.wait_for(|v| *v).await;
                }) as crate::remote::Release
            });
            t.run_agent_held(&agent, &job.request, &mut on_event, &mut || {}, release).await
        }
        .await;
        let g = std::mem::take(&mut *progress.lock().unwrap_or_else(|e| e.into_inner()));
        if g.lab_up.is_none() {
            let _ = ready.send((job.host.clone(), None));
        }
        Captured { host: job.host, interfaces: g.interfaces, packets: g.packets, notes: g.notes, result }
    })
}

/// Captures on every `watcher` until the end; once all of them capture (or ended), `go` is told
/// their (host, lab_up) and decides whether `then` runs; the watchers are released when `then` is
/// done (at once when it does not run), or when `stop` resolves first.
pub fn run(
    session: &super::Session,
    watchers: Vec<Job>,
    then: Option<Job>,
    go: &dyn Fn(&ReadyStates) -> bool,
    stop: Option<crate::remote::Release>,
    on_packets: OnPackets,
) -> Vec<Captured> {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let n = watchers.len();
    let mut tasks: Vec<_> = watchers
        .into_iter()
        .map(|j| spawn(session, j, Some(release_rx.clone()), ready_tx.clone(), on_packets.clone()))
        .collect();
    let stop = stop.unwrap_or_else(|| Box::pin(std::future::pending()));
    let release = release_tx.clone();
    let stopper = session.rt.spawn(async move {
        stop.await;
        let _ = release.send(true);
    });
    let states: Vec<(String, Option<bool>)> = session.rt.block_on(async {
        let mut states = Vec::new();
        let deadline = tokio::time::sleep(READY_WAIT);
        tokio::pin!(deadline);
        while states.len() < n {
            tokio::select! {
                m = ready_rx.recv() => match m {
                    Some(s) => states.push(s),
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        states
    });
    // `go` hears it even without `then`: `capture` says when its host captures.
    let go_on = states.len() == n && !*release_tx.borrow() && go(&states);
    if let Some(job) = then {
        if go_on {
            let t = spawn(session, job, None, ready_tx.clone(), on_packets.clone());
            let done = session.rt.block_on(t);
            tasks.push(session.rt.spawn(async move { done.expect("the probing host's task ran") }));
        }
        // The probe is done (or will not be sent): the watchers have seen all they will.
        let _ = release_tx.send(true);
    }
    // Without a probing host, each capture ends by its count or time, or when `stop` resolves.
    let mut captured = Vec::new();
    for t in tasks {
        captured.push(session.rt.block_on(t).unwrap_or_else(|e| Captured {
            host: "?".into(),
            interfaces: vec![],
            packets: vec![],
            notes: vec![],
            result: Err(HostError::Agent(format!("internal error: {e}"))),
        }));
    }
    stopper.abort();
    captured
}
