//! The controller's standard output. A reader that goes away (`lvsctl plan … | head -1`) is not
//! an error of lvsctl's: it ends quietly, as `cat` would, instead of panicking in `println!`.
//! (The agent writes its own stdout and ignores a closed one: it must finish its host's work.)

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};

/// `--color`, set once by `main` (auto until then, as for library users and tests).
static COLOR: AtomicU8 = AtomicU8::new(0);

/// `--color`: None is auto (decided per stream), Some(on) always or never.
pub fn set_color(forced: Option<bool>) {
    COLOR.store(
        match forced {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Ordering::Relaxed,
    );
}

/// Whether to colour what goes to a stream that is (or is not) a terminal: `--color always` and
/// `never` decide alone; auto colours a terminal unless NO_COLOR is set to anything but "".
pub fn color(terminal: bool) -> bool {
    match COLOR.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// `-q`, `-v`, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(1);

pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, Ordering::Relaxed);
}

pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        2 => Verbosity::Verbose,
        _ => Verbosity::Normal,
    }
}

pub fn color_stdout() -> bool {
    color(std::io::stdout().is_terminal())
}

pub fn color_stderr() -> bool {
    color(std::io::stderr().is_terminal())
}

/// Writes `args` to stdout; on a closed pipe the command ends here with status 0.
pub fn write(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        // Anything else (a full disk behind a redirect) is reported once, then the same exit.
        eprintln!("lvsctl: cannot write the output: {e}");
        std::process::exit(crate::exit::ERROR as i32);
    }
}

/// `println!` for the controller's output.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` for the controller's output.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write(format_args!($($t)*)) };
}

/// The version of every command's JSON; raised when a field changes meaning or goes away (new
/// fields may appear without it).
pub const SCHEMA_VERSION: u32 = 1;

/// What every command's `--output json` starts with: which contract, which command, which lab,
/// and whether it succeeded.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Envelope<'a> {
    pub schema_version: u32,
    pub command: &'a str,
    pub lab: Option<&'a str>,
    pub ok: bool,
}

impl<'a> Envelope<'a> {
    pub fn new(command: &'a str, lab: Option<&'a str>, ok: bool) -> Self {
        Envelope { schema_version: SCHEMA_VERSION, command, lab, ok }
    }
}
