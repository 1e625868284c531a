//! A checked walk over a spanned TOML tree.
//!
//! serde's derive stops at the first error; users fixing an inventory want every problem of the
//! file at once, each at its line. So the parser walks `toml::de::DeTable` (which keeps spans) by
//! hand: getters record a diagnostic and return `None` instead of failing, and `Table::finish`
//! reports keys nobody asked for, with a did-you-mean.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostic, SourceMap, did_you_mean};

pub struct Reader<'s> {
    pub map: SourceMap<'s>,
    pub diags: Vec<Diagnostic>,
    /// Span of every key path that was read, so later cross-field checks can point at it.
    spans: HashMap<String, Range<usize>>,
}

impl<'s> Reader<'s> {
    pub fn new(map: SourceMap<'s>) -> Self {
        Reader { map, diags: Vec::new(), spans: HashMap::new() }
    }

    pub fn error(&mut self, span: Range<usize>, key: &str, msg: impl Into<String>, help: Option<String>) {
        let d = self.map.diagnostic(span, key, msg, help);
        self.diags.push(d);
    }

    /// Records a problem at the span of a key path read earlier (or of its closest parent).
    pub fn error_at(&mut self, key: &str, msg: impl Into<String>, help: Option<String>) {
        let span = self.span_of(key);
        self.error(span, key, msg, help);
    }

    pub fn span_of(&self, key: &str) -> Range<usize> {
        let mut k = key;
        loop {
            if let Some(s) = self.spans.get(k) {
                return s.clone();
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => return 0..0,
            }
        }
    }

    fn remember(&mut self, key: &str, span: Range<usize>) {
        self.spans.insert(key.to_string(), span);
    }
}

/// Joins a key onto a path, quoting keys that are not bare TOML keys (`interfaces."eth0.100"`).
pub fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare { key.to_string() } else { format!("{key:?}") };
    if parent.is_empty() { key } else { format!("{parent}.{key}") }
}

/// A value at a key path.
#[derive(Clone, Copy)]
pub struct Node<'t, 'i> {
    pub value: &'t Spanned<DeValue<'i>>,
}

#[derive(Clone)]
pub struct Item<'t, 'i> {
    pub path: String,
    pub node: Node<'t, 'i>,
}

impl<'t, 'i> Item<'t, 'i> {
    pub fn span(&self) -> Range<usize> {
        self.node.value.span()
    }

    fn type_error(&self, r: &mut Reader, expected: &str) {
        let found = type_name(self.node.value.get_ref());
        r.error(self.span(), &self.path, format!("expected {expected}, found {found}"), None);
    }

    pub fn str(&self, r: &mut Reader) -> Option<&'t str> {
        match self.node.value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_error(r, "a string");
                None
            }
        }
    }

    /// Free text that lvsctl prints and renders into files (names, descriptions): no control
    /// characters, which could move the cursor, recolour a terminal or forge an output line, and
    /// no bidirectional overrides, which make a line read differently from what it is.
    pub fn text(&self, r: &mut Reader) -> Option<&'t str> {
        let s = self.str(r)?;
        if let Some(c) = s.chars().find(|&c| crate::inventory::diag::unsafe_to_print(c)) {
            let what = if c.is_control() { "control" } else { "bidirectional formatting" };
            r.error(
                self.span(),
                &self.path,
                format!("contains the {what} character {:?}", c),
                Some("write it on one line in plain characters (no tabs, escapes, control or bidirectional formatting characters): lvsctl prints it and writes it into files".into()),
            );
            return None;
        }
        Some(s)
    }

    pub fn int(&self, r: &mut Reader) -> Option<i128> {
        match self.node.value.get_ref() {
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(v) => Some(v),
                // Never a silent None: the key would count as absent (a service dropped, a
                // default used instead), and `check` would call the inventory valid.
                Err(e) => {
                    let text = r.map.text(self.span()).trim().to_string();
                    let msg = match e.kind() {
                        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                            format!("integer {text} is far too large")
                        }
                        _ => format!("{text} is not an integer (no digits after its prefix)"),
                    };
                    r.error(self.span(), &self.path, msg, Some("write a decimal integer, e.g. 80".into()));
                    None
                }
            },
            _ => {
                self.type_error(r, "an integer");
                None
            }
        }
    }

    /// An integer within `range`; outside it is an error naming the range.
    pub fn int_in(&self, r: &mut Reader, lo: i128, hi: i128, what: &str) -> Option<i128> {
        let v = self.int(r)?;
        if v < lo || v > hi {
            r.error(
                self.span(),
                &self.path,
                format!("{what} {v} is out of range"),
                Some(format!("use a value from {lo} to {hi}")),
            );
            return None;
        }
        Some(v)
    }

    pub fn bool(&self, r: &mut Reader) -> Option<bool> {
        match self.node.value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(r, "true or false");
                None
            }
        }
    }

    pub fn array(&self, r: &mut Reader) -> Option<Vec<Item<'t, 'i>>> {
        match self.node.value.get_ref() {
            DeValue::Array(a) => Some(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let path = format!("{}[{i}]", self.path);
                        r.remember(&path, v.span());
                        Item { path, node: Node { value: v } }
                    })
                    .collect(),
            ),
            _ => {
                self.type_error(r, "an array");
                None
            }
        }
    }

    pub fn table(&self, r: &mut Reader) -> Option<Table<'t, 'i>> {
        match self.node.value.get_ref() {
            DeValue::Table(t) => Some(Table::new(self.path.clone(), self.span(), t)),
            _ => {
                self.type_error(r, "a table");
                None
            }
        }
    }

    pub fn is_table(&self) -> bool {
        matches!(self.node.value.get_ref(), DeValue::Table(_))
    }

    pub fn is_array(&self) -> bool {
        matches!(self.node.value.get_ref(), DeValue::Array(_))
    }

    pub fn is_bool(&self) -> bool {
        matches!(self.node.value.get_ref(), DeValue::Boolean(_))
    }

    pub fn is_str(&self) -> bool {
        matches!(self.node.value.get_ref(), DeValue::String(_))
    }
}

fn type_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub struct Table<'t, 'i> {
    pub path: String,
    pub span: Range<usize>,
    map: &'t DeTable<'i>,
    used: RefCell<BTreeSet<String>>,
}

impl<'t, 'i> Table<'t, 'i> {
    pub fn new(path: String, span: Range<usize>, map: &'t DeTable<'i>) -> Self {
        Table { path, span, map, used: RefCell::new(BTreeSet::new()) }
    }

    /// The value under `key`, if present; marks the key as known.
    pub fn get(&self, r: &mut Reader, key: &str) -> Option<Item<'t, 'i>> {
        self.used.borrow_mut().insert(key.to_string());
        let (_, v) = self.map.iter().find(|(k, _)| k.get_ref().as_ref() == key)?;
        let path = join(&self.path, key);
        r.remember(&path, v.span());
        Some(Item { path, node: Node { value: v } })
    }

    /// Like `get`, but a missing key is an error that says what to add.
    pub fn require(&self, r: &mut Reader, key: &str, help: &str) -> Option<Item<'t, 'i>> {
        let item = self.get(r, key);
        if item.is_none() {
            let what = if self.path.is_empty() { "the inventory".to_string() } else { format!("[{}]", self.path) };
            r.error(
                self.span.clone(),
                &join(&self.path, key),
                format!("missing required key in {what}"),
                Some(help.to_string()),
            );
        }
        item
    }

    /// Every entry, in file order; all keys count as known.
    pub fn entries(&self, r: &mut Reader) -> Vec<(String, Range<usize>, Item<'t, 'i>)> {
        self.map
            .iter()
            .map(|(k, v)| {
                let key = k.get_ref().to_string();
                self.used.borrow_mut().insert(key.clone());
                let path = join(&self.path, &key);
                r.remember(&path, v.span());
                (key, k.span(), Item { path, node: Node { value: v } })
            })
            .collect()
    }

    /// Reports every key of this table that no getter asked for.
    pub fn finish(self, r: &mut Reader, known: &[&str]) {
        let used = self.used.into_inner();
        for (k, _) in self.map.iter() {
            let key = k.get_ref().as_ref();
            if used.contains(key) {
                continue;
            }
            let path = join(&self.path, key);
            let where_ =
                if self.path.is_empty() { "at the top level".to_string() } else { format!("in [{}]", self.path) };
            let list = known.join(", ");
            let help = match did_you_mean(key, known) {
                Some(s) => format!("did you mean \"{s}\"? known keys {where_}: {list}"),
                None => format!("known keys {where_}: {list}"),
            };
            r.error(k.span(), &path, format!("unknown key \"{key}\""), Some(help));
        }
    }
}
