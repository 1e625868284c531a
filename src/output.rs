//! The controller's standard output. A reader that goes away (`lvsctl plan … | head -1`) is not
//! an error of lvsctl's: it ends quietly, as `cat` would, instead of panicking in `println!`.
//! (The agent writes its own stdout and ignores a closed one: it must finish its host's work.)

use std::io::Write;

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
