//! `verify --failover`'s judging, pure: the client's series of requests around a failover in, the
//! outage and the phases' verdicts out (what `lvsctl verify --failover` prints and its JSON).

use serde::Serialize;

use super::ServiceResult;
use crate::agent::probe::Sample;

/// A request every INTERVAL_MS during a failover phase.
pub const INTERVAL_MS: u64 = 200;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Phase {
    /// The longest time the VIP went unanswered (seconds here, milliseconds in JSON).
    #[serde(rename = "outage_ms", serialize_with = "as_ms")]
    #[schemars(rename = "outage_ms", with = "u64")]
    pub outage_s: f64,
    pub requests: usize,
    pub failed: usize,
    /// Requests that failed after the VIP answered again.
    pub failed_after: usize,
    /// The director holding the VIPs at the end.
    pub holder: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Failover {
    pub master: String,
    pub backup: String,
    pub service: String,
    /// `--max-outage` (seconds here, milliseconds in JSON).
    #[serde(rename = "max_outage_ms", serialize_with = "as_ms")]
    #[schemars(rename = "max_outage_ms", with = "u64")]
    pub max_outage_s: f64,
    pub takeover: Phase,
    /// The connection opened before the failover: who answered it after, or why it failed.
    #[serde(serialize_with = "held_json")]
    #[schemars(with = "Option<Held>")]
    pub held: Option<Result<String, String>>,
    pub through_backup: Vec<ServiceResult>,
    pub failback: Phase,
    pub preempt: bool,
    pub problems: Vec<String>,
}

/// The held connection in JSON: the body that answered it, or why it failed.
#[derive(Serialize, schemars::JsonSchema)]
struct Held<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn held_json<S: serde::Serializer>(h: &Option<Result<String, String>>, s: S) -> Result<S::Ok, S::Error> {
    h.as_ref()
        .map(|r| match r {
            Ok(body) => Held { answered_by: Some(body), error: None },
            Err(e) => Held { answered_by: None, error: Some(e) },
        })
        .serialize(s)
}

fn as_ms<S: serde::Serializer>(seconds: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64((seconds * 1000.0).round() as u64)
}

impl Failover {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let t = &self.takeover;
        s.push_str(&format!(
            "\nfailover: {} was master; keepalived stopped on it while {} requests went to {} (one every {} ms)\n",
            self.master, t.requests, self.service, INTERVAL_MS
        ));
        s.push_str(&format!(
            "  takeover: the VIP went unanswered for {:.1} s (at most {:.0} s allowed); {} failed, {} of them after it answered again; VIPs now on {}\n",
            t.outage_s,
            self.max_outage_s,
            t.failed,
            t.failed_after,
            t.holder.as_deref().unwrap_or("no single director")
        ));
        match &self.held {
            Some(Ok(who)) => s.push_str(&format!(
                "  a connection opened before the failover completed after it (connection sync): answered by {who}\n"
            )),
            Some(Err(e)) => s.push_str(&format!("  a connection opened before the failover did not complete: {e}\n")),
            None => {}
        }
        for r in &self.through_backup {
            s.push_str(&format!("  through {}: ", self.backup));
            s.push_str(&super::render(r, "the client"));
        }
        let f = &self.failback;
        s.push_str(&format!(
            "  failback: keepalived started again on {}: {:.1} s without an answer, {} failed; VIPs now on {}{}\n",
            self.master,
            f.outage_s,
            f.failed,
            f.holder.as_deref().unwrap_or("no single director"),
            if self.preempt { "" } else { " (preempt = false: the backup keeps them)" }
        ));
        if self.ok() {
            s.push_str(&format!("verify --failover: ok, {:.1} s of outage\n", t.outage_s));
        } else {
            for p in &self.problems {
                s.push_str(&format!("  FAILED: {p}\n"));
            }
            s.push_str("verify --failover: FAILED\n");
        }
        s
    }
}

/// The longest time without an answer in a series, in seconds (a request that answered marks
/// the VIP answered at the time it was sent), and the failures after that stretch.
pub fn outage(samples: &[Sample], interval_ms: u64) -> (f64, usize) {
    let ok: Vec<bool> = samples.iter().map(|s| s.answer.body.is_some()).collect();
    let mut worst = 0u64;
    let mut worst_end = 0usize;
    let mut last_ok: Option<u64> = None;
    let mut i = 0;
    while i < samples.len() {
        if ok[i] {
            last_ok = Some(samples[i].at_ms);
            i += 1;
            continue;
        }
        let from = last_ok.unwrap_or(samples[i].at_ms);
        let mut j = i;
        while j < samples.len() && !ok[j] {
            j += 1;
        }
        // Unanswered until the next answer (or, never answered again, the end of the series).
        let to = if j < samples.len() {
            samples[j].at_ms
        } else {
            let l = &samples[j - 1];
            l.at_ms + l.answer.ms
        };
        let gap = to.saturating_sub(from).saturating_sub(if last_ok.is_some() { interval_ms } else { 0 });
        if gap >= worst {
            worst = gap;
            worst_end = j;
        }
        i = j;
    }
    let after = ok[worst_end.min(ok.len())..].iter().filter(|o| !**o).count();
    (worst as f64 / 1000.0, after)
}

pub fn summarize(samples: &[Sample], holder: Option<String>) -> Phase {
    let (outage_s, failed_after) = outage(samples, INTERVAL_MS);
    Phase {
        outage_s,
        requests: samples.len(),
        failed: samples.iter().filter(|s| s.answer.body.is_none()).count(),
        failed_after,
        holder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::probe::Answer;

    fn series(pattern: &str) -> Vec<Sample> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| Sample {
                at_ms: i as u64 * 200,
                answer: Answer {
                    body: (c == '.').then(|| "web1".into()),
                    from: None,
                    error: (c != '.').then(|| "timed out".into()),
                    ms: if c == '.' { 5 } else { 1000 },
                },
            })
            .collect()
    }

    #[test]
    fn the_outage_is_the_longest_time_without_an_answer() {
        assert_eq!(outage(&series("........"), 200), (0.0, 0));
        // Answered at 0.6 s, then next at 1.6 s: 0.8 s beyond the pace.
        assert_eq!(outage(&series("...XXXX..."), 200), (0.8, 0));
        // A failure after the recovery is counted.
        assert_eq!(outage(&series("..XXXXXX..X.."), 200).1, 1);
        // Never answered again: until the end of the last request.
        let (o, _) = outage(&series("..XXX"), 200);
        assert!((o - 1.4).abs() < 1e-9, "from the last answer at 0.2 s to the end at 1.8 s: {o}");
    }
}
