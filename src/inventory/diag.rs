//! Diagnostics for inventory files: every problem names the file, line, column and key path,
//! says what is wrong and how to fix it. All problems of a file are collected, not just the first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One problem found in an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `hosts.web1.gateway` or `services[0].real_servers[1].host`.
    /// Empty for problems of the whole document (TOML syntax errors).
    pub key: String,
    pub message: String,
    pub help: Option<String>,
    /// The source line the problem is on, for the caret under it (none for an empty file).
    pub excerpt: Option<Excerpt>,
}

/// One source line made safe to print, and the byte range of the problem in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    /// The line with every control character (and bidirectional override, the "Trojan Source"
    /// trick) replaced by as many `?` as it had bytes, so that offsets stay the same and a
    /// terminal never receives what the file smuggled in. Shared by every problem on the same line: a generated inventory on one long line costs
    /// one copy, not one per problem (annotate-snippets shortens it around the caret).
    pub text: Arc<str>,
    pub span: Range<usize>,
}

/// A character that must not reach a terminal or a rendered file as it is: a control character
/// (escape sequences, carriage returns, forged newlines) or a bidirectional embedding, override,
/// isolate or mark.
pub fn unsafe_to_print(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A source line made safe to print: every unsafe character becomes as many `?` as it had bytes,
/// so that byte offsets (and the caret) stay where they were.
fn printable(line: &str) -> Arc<str> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if !line.chars().any(unsafe_to_print) {
        return line.into();
    }
    line.chars()
        .flat_map(
            |c| if unsafe_to_print(c) { std::iter::repeat_n('?', c.len_utf8()) } else { std::iter::repeat_n(c, 1) },
        )
        .collect::<String>()
        .into()
}

impl fmt::Display for Diagnostic {
    /// One line, for logs: `FILE:LINE:COLUMN: KEY: MESSAGE` and the help.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one inventory; the error type of [`crate::inventory::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// How many problems are printed: a generated inventory with thousands of the same mistake gets
/// a screenful, not a flood.
pub const MAX_SHOWN: usize = 100;

impl Diagnostic {
    /// The problem as rustc and cargo print theirs: `error:` and the message, the file, line and
    /// column, the source line with a caret under the key or value (labelled with its key path),
    /// and the help line. Colour only when `color` is set.
    pub fn render(&self, color: bool) -> String {
        use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
        let origin = format!("{}:{}:{}", self.file.display(), self.line, self.column);
        let title = Level::ERROR.primary_title(&self.message);
        let mut group = match &self.excerpt {
            Some(e) => {
                let mut mark = AnnotationKind::Primary.span(e.span.clone());
                if !self.key.is_empty() {
                    mark = mark.label(&self.key);
                }
                title.element(
                    Snippet::source(&*e.text)
                        .line_start(self.line)
                        .path(self.file.display().to_string())
                        .annotation(mark),
                )
            }
            // Nothing to show under: the location alone, as a note.
            None => title.element(Level::NOTE.message(format!("in {origin}"))),
        };
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help));
        }
        let renderer = if color { Renderer::styled() } else { Renderer::plain() };
        renderer.render(&[group])
    }
}

impl Diagnostics {
    /// Every problem rendered (at most [`MAX_SHOWN`]), separated by blank lines.
    pub fn render(&self, color: bool) -> String {
        let mut out: Vec<String> = self.0.iter().take(MAX_SHOWN).map(|d| d.render(color)).collect();
        if self.0.len() > MAX_SHOWN {
            out.push(format!("… and {} more problems not shown: fix these first", self.0.len() - MAX_SHOWN));
        }
        out.join("\n\n")
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// A list of names for a help line: the first few, then how many more (a help line per error
/// that listed every host made the output grow with the square of the inventory).
pub fn some_of(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!("{}, and {} more", names[..SHOWN].join(", "), names.len() - SHOWN)
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Turns byte offsets of one source text into 1-based line and column (in characters).
pub struct SourceMap<'a> {
    pub file: &'a Path,
    src: &'a str,
    line_starts: Vec<usize>,
    /// Lines made of ASCII only, where a column is a byte offset (no counting per diagnostic).
    ascii_lines: Vec<bool>,
    /// The printable text of each line a problem was found on, by line index.
    printed: RefCell<HashMap<usize, Arc<str>>>,
}

impl<'a> SourceMap<'a> {
    /// The source text of a span (empty when it is not within the file).
    pub fn text(&self, span: std::ops::Range<usize>) -> &'a str {
        self.src.get(span).unwrap_or("")
    }

    pub fn new(file: &'a Path, src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        let ascii_lines = line_starts
            .iter()
            .enumerate()
            .map(|(i, &start)| src[start..line_starts.get(i + 1).copied().unwrap_or(src.len())].is_ascii())
            .collect();
        SourceMap { file, src, line_starts, ascii_lines, printed: RefCell::default() }
    }

    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = if self.ascii_lines[line] { offset - start } else { self.src[start..offset].chars().count() } + 1;
        (line + 1, column)
    }

    pub fn diagnostic(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        let (line, column) = self.position(span.start);
        let start = self.line_starts[line - 1];
        let end = self.line_starts.get(line).map_or(self.src.len(), |next| next - 1);
        let text = self.printed.borrow_mut().entry(line).or_insert_with(|| printable(&self.src[start..end])).clone();
        let at = (span.start.min(self.src.len()) - start).min(text.len());
        let excerpt = Some(Excerpt { span: at..span.end.saturating_sub(start).clamp(at, text.len()), text });
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            help,
            excerpt,
        }
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word_l = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&word_l, &c.to_ascii_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A help line for a value that must be one of `allowed`.
pub fn one_of_help(word: &str, allowed: &[&str]) -> String {
    let list = allowed.join(", ");
    match did_you_mean(word, allowed) {
        Some(s) => format!("did you mean \"{s}\"? expected one of: {list}"),
        None => format!("expected one of: {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        let map = SourceMap::new(Path::new("f.toml"), src);
        assert_eq!(map.position(0), (1, 1));
        assert_eq!(map.position(6), (2, 1));
        // 'é' is two bytes but one column.
        let eq = src.find('=').unwrap();
        let second_eq = src[eq + 1..].find('=').unwrap() + eq + 1;
        assert_eq!(map.position(second_eq), (2, 4));
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let roles = ["client", "router", "director", "real-server"];
        assert_eq!(did_you_mean("realserver", &roles), Some("real-server"));
        assert_eq!(did_you_mean("Director", &roles), Some("director"));
        assert_eq!(did_you_mean("database", &roles), None);
    }
}

#[cfg(test)]
mod cap_tests {
    use super::*;

    #[test]
    fn a_flood_of_problems_prints_a_screenful_and_says_how_many_more() {
        let src = "x = 1\n".repeat(150);
        let map = SourceMap::new(Path::new("f.toml"), &src);
        let d = Diagnostics((0..150).map(|i| map.diagnostic(i * 6..i * 6 + 1, "x", "bad", None)).collect());
        let text = d.to_string();
        assert_eq!(text.lines().filter(|l| l.starts_with("error: bad")).count(), MAX_SHOWN);
        assert!(text.ends_with("… and 50 more problems not shown: fix these first"), "{text}");
    }

    #[test]
    fn columns_count_characters_on_any_line() {
        let src = "a = \"é\" # x\nb = 1\n";
        let map = SourceMap::new(Path::new("f.toml"), src);
        assert_eq!(map.position(src.find('#').unwrap()), (1, 9));
        assert_eq!(map.position(src.find('1').unwrap()), (2, 5));
    }
}
