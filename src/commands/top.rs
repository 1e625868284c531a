//! `lvsctl top`: a live view of every director — per service and real server the connection and
//! packet rates, active and inactive connections, weight and health, and which director is VRRP
//! master — over one streaming agent run per director (the agent's `watch`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::mpsc;

use crate::agent::protocol::{Event, Operation, Report};
use crate::cli::{TopArgs, TopOutput};
use crate::exit;
use crate::remote::HostError;
use crate::wire::metrics::{Family, Value};

/// One real server of one service on one director, at one sample.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Row {
    pub director: String,
    pub service: String,
    pub real_server: String,
    /// New connections a second since the previous sample (None for the first).
    pub conns_per_s: Option<f64>,
    /// Packets a second, both ways, since the previous sample.
    pub packets_per_s: Option<f64>,
    pub active: u64,
    pub inactive: u64,
    pub weight: u64,
    pub state: String,
}

fn int(v: Value) -> u64 {
    match v {
        Value::Int(n) => n,
        Value::Float(f) => f as u64,
    }
}

fn label<'a>(labels: &'a [(String, String)], k: &str) -> &'a str {
    labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("")
}

type Key = (String, String, String);

/// Each real server's values of `name` in `families`.
fn values(families: &[Family], name: &str) -> BTreeMap<Key, (u64, String)> {
    let mut out = BTreeMap::new();
    for f in families.iter().filter(|f| f.name == name) {
        for s in &f.samples {
            let key = (
                label(&s.labels, "director").to_string(),
                label(&s.labels, "service").to_string(),
                label(&s.labels, "real_server").to_string(),
            );
            out.insert(key, (int(s.value), label(&s.labels, "state").to_string()));
        }
    }
    out
}

/// The rows of a director's sample, with rates against its previous one.
pub fn rows(prev: Option<(u64, &[Family])>, now: (u64, &[Family])) -> Vec<Row> {
    let get = |f: &[Family], n: &str| values(f, n);
    let conns = get(now.1, "lvs_real_server_connections_total");
    let pin = get(now.1, "lvs_real_server_packets_in_total");
    let pout = get(now.1, "lvs_real_server_packets_out_total");
    let active = get(now.1, "lvs_real_server_active_connections");
    let inactive = get(now.1, "lvs_real_server_inactive_connections");
    let weight = get(now.1, "lvs_real_server_weight");
    let state = get(now.1, "lvs_real_server_state");
    let before = prev.map(|(at, f)| {
        (
            at,
            get(f, "lvs_real_server_connections_total"),
            get(f, "lvs_real_server_packets_in_total"),
            get(f, "lvs_real_server_packets_out_total"),
        )
    });
    let mut out = Vec::new();
    for (key, (_, s)) in &state {
        let n = |m: &BTreeMap<Key, (u64, String)>| m.get(key).map(|v| v.0);
        let rate = |now_v: Option<u64>, then_v: Option<u64>, dt: f64| match (now_v, then_v) {
            (Some(a), Some(b)) if dt > 0.0 => Some(a.saturating_sub(b) as f64 / dt),
            _ => None,
        };
        let (cps, pps) = match &before {
            Some((at, c0, i0, o0)) => {
                let dt = now.0.saturating_sub(*at) as f64 / 1000.0;
                let pk = |m: &BTreeMap<Key, (u64, String)>, o: &BTreeMap<Key, (u64, String)>| Some(n(m)? + n(o)?);
                (rate(n(&conns), n(c0), dt), rate(pk(&pin, &pout), pk(i0, o0), dt))
            }
            None => (None, None),
        };
        out.push(Row {
            director: key.0.clone(),
            service: key.1.clone(),
            real_server: key.2.clone(),
            conns_per_s: cps,
            packets_per_s: pps,
            active: n(&active).unwrap_or(0),
            inactive: n(&inactive).unwrap_or(0),
            weight: n(&weight).unwrap_or(0),
            state: s.clone(),
        });
    }
    out
}

/// (director, instance, state) of each VRRP instance in a sample.
fn vrrp(families: &[Family]) -> Vec<(String, String, String)> {
    families
        .iter()
        .filter(|f| f.name == "lvs_vrrp_state")
        .flat_map(|f| &f.samples)
        .map(|s| {
            (
                label(&s.labels, "director").to_string(),
                label(&s.labels, "instance").to_string(),
                label(&s.labels, "state").to_string(),
            )
        })
        .collect()
}

fn rate(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into())
}

fn clock(at_ms: u64) -> String {
    let s = at_ms / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// The screen (a terminal) or the block of lines (a pipe) for one tick.
fn render(lab: &str, at_ms: u64, rows: &[Row], vrrp: &[(String, String, String)], screen: bool) -> String {
    let mut s = String::new();
    if screen {
        s += &format!("lvsctl top — lab {lab} — {} UTC (Ctrl-C ends)\n", clock(at_ms));
        for (d, i, st) in vrrp {
            s += &format!("{d}: VRRP {i} {}\n", st.to_uppercase());
        }
        s += &format!(
            "\n{:<10} {:<24} {:<12} {:>8} {:>9} {:>7} {:>9} {:>7}  {}\n",
            "director", "service", "real server", "conn/s", "pkt/s", "active", "inactive", "weight", "state"
        );
        for r in rows {
            s += &format!(
                "{:<10} {:<24} {:<12} {:>8} {:>9} {:>7} {:>9} {:>7}  {}\n",
                r.director,
                r.service,
                r.real_server,
                rate(r.conns_per_s),
                rate(r.packets_per_s),
                r.active,
                r.inactive,
                r.weight,
                r.state
            );
        }
    } else {
        let t = clock(at_ms);
        for (d, i, st) in vrrp {
            s += &format!("{t} {d} vrrp {i} {st}\n");
        }
        for r in rows {
            s += &format!(
                "{t} {} {} {} conn/s={} pkt/s={} active={} inactive={} weight={} state={}\n",
                r.director,
                r.service,
                r.real_server,
                rate(r.conns_per_s),
                rate(r.packets_per_s),
                r.active,
                r.inactive,
                r.weight,
                r.state
            );
        }
    }
    s
}

enum Msg {
    Sample(String, u64, Vec<Family>),
    Done(String, Box<Result<Report, HostError>>),
}

pub fn run(args: &TopArgs) -> anyhow::Result<u8> {
    let connect = super::every_director(&args.inv, &args.connect, "top watches every director: it takes no --host")?;
    let planned = super::Planned::open(&args.inv, &connect, &args.tpl)?;
    let seconds = args.seconds.unwrap_or(86_400);
    let jobs = planned.jobs(&connect.filter, |plan| Operation::Watch {
        plan: plan.clone(),
        interval_ms: args.interval * 1000,
        seconds,
    });
    let (tx, rx) = mpsc::channel::<Msg>();
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let session = &planned.session;
    let n = jobs.len();
    for job in jobs {
        let (agent, pool, tx) = (session.agent.clone(), session.pool.clone(), tx.clone());
        let mut release = release_rx.clone();
        session.rt.spawn(async move {
            let host = job.host.clone();
            let result = async {
                let (t, _) = pool.get(&job.host, &job.ssh).await?;
                let mut on_event = |e: Event| {
                    if let Event::Metrics { at_ms, families } = e {
                        let _ = tx.send(Msg::Sample(host.clone(), at_ms, families));
                    }
                };
                let held: crate::remote::Release = Box::pin(async move {
                    let _ = release.wait_for(|v| *v).await;
                });
                t.run_agent_held(&agent, &job.request, &mut on_event, &mut || {}, Some(held)).await
            }
            .await;
            let _ = tx.send(Msg::Done(job.host.clone(), Box::new(result)));
        });
    }
    drop(tx);
    // Ctrl-C ends the watch: every agent's stdin closes, each sends its report and ends.
    let stop = release_tx.clone();
    session.rt.spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    let screen = args.out.output == TopOutput::Text && std::io::stdout().is_terminal();
    let name = planned.lab.name.clone();
    let mut prev: BTreeMap<String, (u64, Vec<Family>)> = BTreeMap::new();
    let mut latest: BTreeMap<String, (u64, Vec<Family>)> = BTreeMap::new();
    let mut done = 0;
    let mut code = exit::OK;
    while done < n {
        let Ok(msg) = rx.recv() else { break };
        match msg {
            Msg::Sample(host, at, families) => {
                if let Some(old) = latest.insert(host.clone(), (at, families)) {
                    prev.insert(host.clone(), old);
                }
                let mut all_rows = Vec::new();
                let mut all_vrrp = Vec::new();
                for (h, (at, f)) in &latest {
                    let before = prev.get(h).map(|(a, f)| (*a, f.as_slice()));
                    all_rows.extend(rows(before, (*at, f)));
                    all_vrrp.extend(vrrp(f));
                }
                match args.out.output {
                    TopOutput::Jsonl => {
                        let (at, f) = &latest[&host];
                        let before = prev.get(&host).map(|(a, f)| (*a, f.as_slice()));
                        for r in rows(before, (*at, f)) {
                            let line = serde_json::json!({ "at_ms": at, "row": r });
                            crate::outln!("{line}");
                        }
                        for (d, i, st) in vrrp(f) {
                            crate::outln!(
                                "{}",
                                serde_json::json!({ "at_ms": at, "vrrp": { "director": d, "instance": i, "state": st } })
                            );
                        }
                    }
                    TopOutput::Text if screen => {
                        crate::out!("\x1b[H\x1b[2J{}", render(&name, at, &all_rows, &all_vrrp, true));
                    }
                    TopOutput::Text => {
                        // Through a pipe: the lines of this director's sample.
                        let mine: Vec<Row> = all_rows.into_iter().filter(|r| r.director == host).collect();
                        let v: Vec<_> = all_vrrp.into_iter().filter(|v| v.0 == host).collect();
                        crate::out!("{}", render(&name, at, &mine, &v, false));
                    }
                }
            }
            Msg::Done(host, result) => {
                done += 1;
                match *result {
                    Ok(r) if r.errors.is_empty() => {}
                    Ok(r) => {
                        eprintln!("top: {host}: {}", r.errors.join("; "));
                        code = exit::PARTIAL;
                    }
                    Err(e) => {
                        eprintln!("top: {host}: {e}");
                        code = code.max(e.exit_code());
                    }
                }
                // One director gone ends the view for all (it would show half a lab).
                let _ = release_tx.send(true);
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::metrics::Kind;

    fn sample(conns: u64, pkts: u64) -> Vec<Family> {
        let l = |extra: &[(&str, &str)]| -> Vec<(&'static str, String)> {
            let mut v: Vec<(&'static str, String)> =
                vec![("director", "lvs".into()), ("service", "web".into()), ("real_server", "web1".into())];
            for (k, x) in extra {
                v.push((if *k == "state" { "state" } else { "x" }, x.to_string()));
            }
            v
        };
        let mut c = Family::new("lvs_real_server_connections_total", Kind::Counter, "");
        c.push(&l(&[]), conns);
        let mut i = Family::new("lvs_real_server_packets_in_total", Kind::Counter, "");
        i.push(&l(&[]), pkts);
        let mut o = Family::new("lvs_real_server_packets_out_total", Kind::Counter, "");
        o.push(&l(&[]), 0u64);
        let mut w = Family::new("lvs_real_server_weight", Kind::Gauge, "");
        w.push(&l(&[]), 3u64);
        let mut s = Family::new("lvs_real_server_state", Kind::Gauge, "");
        s.push(&l(&[("state", "up")]), 1u64);
        vec![c, i, o, w, s]
    }

    #[test]
    fn rates_come_from_counter_deltas_and_the_first_sample_has_none() {
        let a = sample(10, 100);
        let b = sample(16, 148);
        let first = rows(None, (1_000, &a));
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].conns_per_s, first[0].weight, first[0].state.as_str()), (None, 3, "up"));
        let r = rows(Some((1_000, &a)), (3_000, &b));
        assert_eq!((r[0].conns_per_s, r[0].packets_per_s), (Some(3.0), Some(24.0)));
        let text = render("dr", 3_000, &r, &[("lvs".into(), "VI_1".into(), "master".into())], false);
        assert_eq!(
            text,
            "00:00:03 lvs vrrp VI_1 master\n00:00:03 lvs web web1 conn/s=3.0 pkt/s=24.0 active=0 inactive=0 weight=3 state=up\n"
        );
    }
}
