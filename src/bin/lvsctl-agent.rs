//! lvsctl-agent: what `lvsctl up` installs on every host and runs there over SSH, and what the
//! boot unit runs. It holds only the agent's code path (no command line parser, inventory,
//! templates, SSH client or lab code), so the upload stays small. It takes the same arguments as
//! `lvsctl agent …`, which installed boot units call:
//!
//!   lvsctl-agent agent serve                        one JSON request on stdin, JSON lines out
//!   lvsctl-agent agent boot start|stop --lab LAB    the boot unit's start and stop
//!   lvsctl-agent agent metrics --lab LAB --listen ADDR:PORT
//!                                                   the exporter `up` starts on directors

use std::process::ExitCode;

const USAGE: &str = "usage: lvsctl-agent agent serve | lvsctl-agent agent boot start|stop --lab LAB
       lvsctl-agent agent metrics --lab LAB --listen ADDR:PORT
lvsctl's on-host agent, run by `lvsctl up`, `down`, `status`, `verify`, `doctor` over SSH and by the
lvsctl-LAB.service boot unit; not meant to be run by hand.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match args.as_slice() {
        ["agent", "serve"] => lvsctl_agent::agent::serve(),
        ["agent", "boot", action @ ("start" | "stop"), "--lab", lab] => lvsctl_agent::agent::boot(action, lab),
        ["agent", "metrics", "--lab", lab, "--listen", listen] => lvsctl_agent::agent::exporter::run(lab, listen),
        ["--version"] => {
            println!("lvsctl-agent {}", env!("LVSCTL_VERSION"));
            0
        }
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
