//! Metrics in Prometheus's text exposition format (version 0.0.4): families with their help and
//! type, samples with labels. The agent gathers them on a director (`lvsctl metrics`, the
//! exporter); the controller merges several directors' into one exposition.

use serde::{Deserialize, Serialize};

/// A metric's type, as `# TYPE` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A sample's value: counters exactly as the kernel counts them, rates and the like as floats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// One series: its labels (name, value) and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: Value,
}

/// A metric family: every series of one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &str, kind: Kind, help: &str) -> Family {
        Family { name: name.into(), help: help.into(), kind, samples: Vec::new() }
    }

    pub fn push(&mut self, labels: &[(&str, String)], value: impl Into<Value>) {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        self.samples.push(Sample { labels, value: value.into() });
    }
}

/// A label value as the format writes it: backslash, double quote and newline escaped.
fn escape_value(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// HELP text: backslash and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

fn number(v: Value) -> String {
    let v = match v {
        Value::Int(n) => return n.to_string(),
        Value::Float(f) => f,
    };
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Families of the same name (from several directors) become one, in the order first seen.
pub fn merge(parts: impl IntoIterator<Item = Family>) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    for f in parts {
        match out.iter_mut().find(|o| o.name == f.name) {
            Some(o) => o.samples.extend(f.samples),
            None => out.push(f),
        }
    }
    out
}

/// The text exposition: `# HELP`, `# TYPE`, then each sample; families without samples are
/// left out (a scraper gets nothing it cannot use).
pub fn exposition(families: &[Family]) -> String {
    let mut s = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        s += &format!("# HELP {} {}\n# TYPE {} {}\n", f.name, escape_help(&f.help), f.name, f.kind.as_str());
        for x in &f.samples {
            s += &f.name;
            if !x.labels.is_empty() {
                let l: Vec<String> = x.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_value(v))).collect();
                s += &format!("{{{}}}", l.join(","));
            }
            s += &format!(" {}\n", number(x.value));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_once_with_their_help_type_and_escaped_labels() {
        let mut a = Family::new("lvs_real_server_connections_total", Kind::Counter, "New connections.\nTo it.");
        a.push(&[("director", "lvs1".into()), ("service", "web \"a\\b\"".into())], 12u64);
        let mut b = a.clone();
        b.samples[0].labels[0].1 = "lvs2".into();
        b.samples[0].value = Value::Float(0.5);
        let empty = Family::new("lvs_unused", Kind::Gauge, "nothing");
        let text = exposition(&merge([a, b, empty]));
        assert_eq!(
            text,
            "# HELP lvs_real_server_connections_total New connections.\\nTo it.\n\
             # TYPE lvs_real_server_connections_total counter\n\
             lvs_real_server_connections_total{director=\"lvs1\",service=\"web \\\"a\\\\b\\\"\"} 12\n\
             lvs_real_server_connections_total{director=\"lvs2\",service=\"web \\\"a\\\\b\\\"\"} 0.5\n"
        );
        assert_eq!(number(Value::Float(f64::NAN)), "NaN");
        assert_eq!(number(Value::Int(u64::MAX)), "18446744073709551615");
        assert_eq!(number(Value::Float(2.0)), "2");
    }
}
