//! keepalived.conf's syntax, read as keepalived reads it: `#` and `!` comments, `include` of
//! other files (a glob, relative to the including file's directory), `@ID` and `@^ID` conditional
//! lines (kept for the config id keepalived runs with, its `-i`), `$NAME=value` definitions and
//! `$NAME`/`${NAME}` uses, and blocks in braces. What this reader cannot resolve as keepalived
//! would (a sequence `~SEQ`, a multi-line definition, a conditional line without a config id) is
//! refused with its location. Pure but for reading included files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::import::model::Loc;

/// One statement: its words, the block that follows it in braces, and the comments right above
/// it (lvsctl's own files name their services and hosts there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub at: Loc,
    pub words: Vec<String>,
    pub block: Option<Vec<Node>>,
    pub comments: Vec<String>,
}

impl Node {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }
    /// The word after the keyword.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i + 1).map(String::as_str)
    }
}

/// An error of the source, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    pub at: Loc,
    pub message: String,
}

/// Includes nest at most this deep (keepalived's own limit is deeper; a loop is refused anyway).
const MAX_DEPTH: usize = 8;

/// What reading needs besides the text.
pub struct Reading<'a> {
    /// keepalived's config id (`keepalived -i ID`) for `@ID` lines; None refuses them.
    pub config_id: Option<&'a str>,
    /// Read an included file (the real one reads the file system; tests give texts).
    pub open: &'a dyn Fn(&Path) -> std::io::Result<String>,
    /// The files an include pattern names, sorted (as glob(3) gives them).
    pub glob: &'a dyn Fn(&Path) -> std::io::Result<Vec<PathBuf>>,
}

/// A token of the source: a word, a brace, or the end of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Comment(String),
    End,
}

struct Lexer<'a> {
    reading: &'a Reading<'a>,
    vars: BTreeMap<String, String>,
    toks: Vec<(Loc, Tok)>,
    errors: Vec<ConfError>,
    /// Files being read, for include loops.
    stack: Vec<PathBuf>,
}

/// The statements of `text` (the file `name`; includes are found relative to `dir`), or every
/// error with its location.
pub fn read(text: &str, name: &str, dir: Option<&Path>, reading: &Reading) -> Result<Vec<Node>, Vec<ConfError>> {
    let mut lx = Lexer { reading, vars: BTreeMap::new(), toks: Vec::new(), errors: Vec::new(), stack: Vec::new() };
    lx.file(text, name, dir);
    let mut at = 0;
    let nodes = tree(&lx.toks, &mut at, &mut lx.errors, None);
    if lx.errors.is_empty() { Ok(nodes) } else { Err(lx.errors) }
}

impl Lexer<'_> {
    fn error(&mut self, at: &Loc, message: impl Into<String>) {
        self.errors.push(ConfError { at: at.clone(), message: message.into() });
    }

    fn file(&mut self, text: &str, name: &str, dir: Option<&Path>) {
        for (i, raw) in text.lines().enumerate() {
            let at = Loc { file: name.to_string(), line: i + 1 };
            self.line(raw, &at, dir);
        }
    }

    fn line(&mut self, raw: &str, at: &Loc, dir: Option<&Path>) {
        let mut line = raw.trim();
        // `@ID line` is read only by keepalived run with `-i ID`; `@^ID line` by every other.
        if let Some(rest) = line.strip_prefix('@') {
            let (cond, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let (negated, id) = match cond.strip_prefix('^') {
                Some(id) => (true, id),
                None => (false, cond),
            };
            let Some(config_id) = self.reading.config_id else {
                self.error(
                    at,
                    format!(
                        "`@{cond}`: a line for keepalived run with a config id (-i); give the one your directors \
                         run with, `--config-id ID`"
                    ),
                );
                return;
            };
            if (id == config_id) == negated {
                return;
            }
            line = rest.trim();
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            if let Some(c) = line.strip_prefix('#').or_else(|| line.strip_prefix('!')) {
                self.toks.push((at.clone(), Tok::Comment(c.trim().to_string())));
            }
            return;
        }
        if line.starts_with('~') {
            self.error(at, "`~SEQ` sequences are not read by lvsctl import: write the lines out");
            return;
        }
        // A definition: `$NAME=value` (the value to the end of the line).
        if let Some(def) = line.strip_prefix('$')
            && let Some((name, value)) = def.split_once('=')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            if value.ends_with('\\') {
                self.error(at, format!("${name}: a definition over several lines is not read; write it on one"));
                return;
            }
            let value = match self.expand(value.trim(), at) {
                Some(v) => v,
                None => return,
            };
            self.vars.insert(name.to_string(), value);
            return;
        }
        let Some(line) = self.expand(line, at) else { return };
        let words = split(&line);
        if words.first().map(String::as_str) == Some("include") {
            match (words.get(1), words.len()) {
                (Some(pattern), 2) => self.include(pattern, at, dir),
                _ => self.error(at, "include takes one file or pattern"),
            }
            return;
        }
        for w in words {
            let tok = match w.as_str() {
                "{" => Tok::Open,
                "}" => Tok::Close,
                w if w.starts_with('#') || w.starts_with('!') => break,
                _ => Tok::Word(w),
            };
            self.toks.push((at.clone(), tok));
        }
        self.toks.push((at.clone(), Tok::End));
    }

    /// `line` with every `$NAME` and `${NAME}` replaced by its definition.
    fn expand(&mut self, line: &str, at: &Loc) -> Option<String> {
        if !line.contains('$') {
            return Some(line.to_string());
        }
        let mut out = String::new();
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, len) = match after.strip_prefix('{') {
                Some(b) => match b.find('}') {
                    Some(e) => (&b[..e], e + 2),
                    None => {
                        self.error(at, "`${` without its `}`");
                        return None;
                    }
                },
                None => {
                    let e = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                    (&after[..e], e)
                }
            };
            if name.is_empty() {
                out.push('$');
                rest = after;
                continue;
            }
            match self.vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    self.error(at, format!("${name} is used before any `${name}=` line defines it"));
                    return None;
                }
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn include(&mut self, pattern: &str, at: &Loc, dir: Option<&Path>) {
        if self.stack.len() >= MAX_DEPTH {
            self.error(at, format!("include {pattern}: includes nested more than {MAX_DEPTH} deep"));
            return;
        }
        let path = match dir {
            Some(d) => d.join(pattern),
            None => PathBuf::from(pattern),
        };
        if !path.is_absolute() && dir.is_none() {
            self.error(at, format!("include {pattern}: a relative include from standard input: give the file instead"));
            return;
        }
        let files = match (self.reading.glob)(&path) {
            Ok(f) => f,
            Err(e) => {
                self.error(at, format!("include {pattern}: {e}"));
                return;
            }
        };
        // keepalived reads an include that matches nothing as nothing.
        for f in files {
            if self.stack.contains(&f) {
                self.error(at, format!("include {}: it includes itself", f.display()));
                continue;
            }
            let text = match (self.reading.open)(&f) {
                Ok(t) => t,
                Err(e) => {
                    self.error(at, format!("include {}: {e}", f.display()));
                    continue;
                }
            };
            self.stack.push(f.clone());
            let name = f.display().to_string();
            self.file(&text, &name, f.parent());
            self.stack.pop();
        }
    }
}

/// The words of a line: quoted strings are one word (without their quotes), braces are words of
/// their own even when written against another.
fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let flush = |cur: &mut String, words: &mut Vec<String>| {
        if !cur.is_empty() {
            words.push(std::mem::take(cur));
        }
    };
    for c in line.chars() {
        match c {
            '"' => {
                if quoted {
                    words.push(std::mem::take(&mut cur));
                }
                quoted = !quoted;
            }
            _ if quoted => cur.push(c),
            '{' | '}' => {
                flush(&mut cur, &mut words);
                words.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut words),
            _ => cur.push(c),
        }
    }
    flush(&mut cur, &mut words);
    words
}

/// The statements from `toks[*at..]` up to the `}` that closes the block opened at `open`.
fn tree(toks: &[(Loc, Tok)], at: &mut usize, errors: &mut Vec<ConfError>, open: Option<&Loc>) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut cur: Option<Node> = None;
    while let Some((loc, tok)) = toks.get(*at) {
        *at += 1;
        match tok {
            Tok::Comment(c) => {
                if cur.is_none() {
                    comments.push(c.clone());
                }
            }
            Tok::Word(w) => {
                cur.get_or_insert_with(|| Node {
                    at: loc.clone(),
                    words: vec![],
                    block: None,
                    comments: std::mem::take(&mut comments),
                })
                .words
                .push(w.clone());
            }
            Tok::Open => {
                let mut node = cur.take().unwrap_or_else(|| Node {
                    at: loc.clone(),
                    words: vec![],
                    block: None,
                    comments: std::mem::take(&mut comments),
                });
                node.block = Some(tree(toks, at, errors, Some(loc)));
                nodes.push(node);
            }
            Tok::Close => {
                nodes.extend(cur.take());
                if open.is_none() {
                    errors.push(ConfError { at: loc.clone(), message: "a `}` that closes no block".into() });
                    continue;
                }
                return nodes;
            }
            Tok::End => {
                if let Some(n) = cur.take() {
                    nodes.push(n);
                }
            }
        }
    }
    nodes.extend(cur);
    if let Some(o) = open {
        errors.push(ConfError { at: o.clone(), message: "this block's `{` has no `}` before the end".into() });
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_comments_quotes_variables_includes_and_conditionals() {
        let files: BTreeMap<&str, &str> = BTreeMap::from([
            ("/etc/keepalived/conf.d/a.conf", "real_server 10.0.0.1 80 { weight $W }\n"),
            ("/etc/keepalived/conf.d/b.conf", "real_server 10.0.0.2 80 {\n  weight ${W}\n}\n"),
        ]);
        let open = |p: &Path| {
            files
                .get(p.to_str().unwrap())
                .map(|t| t.to_string())
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
        };
        let glob = |p: &Path| -> std::io::Result<Vec<PathBuf>> {
            let pat = p.to_str().unwrap().replace('*', "");
            Ok(files.keys().filter(|k| k.starts_with(pat.trim_end_matches(".conf"))).map(PathBuf::from).collect())
        };
        let text = "! comment\n$W=3\nvirtual_server 10.0.0.100 80 { # trailing\n  lb_algo rr\n@high priority 150\n@^high priority 100\n  include conf.d/*.conf\n  # web3\n  real_server \"10.0.0.3\" 80 {\n  }\n}\n";
        let r = Reading { config_id: Some("low"), open: &open, glob: &glob };
        let nodes = read(text, "keepalived.conf", Some(Path::new("/etc/keepalived")), &r).unwrap();
        assert_eq!(nodes.len(), 1);
        let vs = &nodes[0];
        assert_eq!(vs.words, ["virtual_server", "10.0.0.100", "80"]);
        let b = vs.block.as_ref().unwrap();
        let kw: Vec<String> = b.iter().map(|n| n.words.join(" ")).collect();
        assert_eq!(
            kw,
            [
                "lb_algo rr",
                "priority 100",
                "real_server 10.0.0.1 80",
                "real_server 10.0.0.2 80",
                "real_server 10.0.0.3 80"
            ]
        );
        assert_eq!(b[2].block.as_ref().unwrap()[0].words, ["weight", "3"]);
        assert_eq!(b[3].at.file, "/etc/keepalived/conf.d/b.conf");
        assert_eq!(b[3].block.as_ref().unwrap()[0].words, ["weight", "3"]);
        assert_eq!(b[4].comments, ["web3"]);
        assert_eq!(b[4].at.line, 9);
    }

    #[test]
    fn what_cannot_be_resolved_is_refused_where_it_is() {
        let open = |_: &Path| Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"));
        let glob = |p: &Path| Ok(vec![p.to_path_buf()]);
        let r = Reading { config_id: None, open: &open, glob: &glob };
        let text = "@high priority 150\nweight $NOPE\n~SEQ(x, 1, 3) real_server 10.0.0.$x 80\ninclude missing.conf\nvrrp_instance x {\n";
        let e = read(text, "k.conf", Some(Path::new("/etc/keepalived")), &r).unwrap_err();
        let got: Vec<(usize, bool)> = e.iter().map(|e| (e.at.line, e.at.file == "k.conf")).collect();
        assert_eq!(got, [(1, true), (2, true), (3, true), (4, true), (5, true)], "{e:#?}");
        assert!(e[0].message.contains("--config-id"));
        assert!(e[1].message.contains("$NOPE"));
        assert!(e[2].message.contains("~SEQ"));
        assert!(e[3].message.contains("missing.conf"));
        assert!(e[4].message.contains("no `}`"));
    }
}
