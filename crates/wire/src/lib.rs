//! lvsctl's wire vocabulary: what the controller and the agent say to each other. The plans of
//! hosts (`plan`), the requests, events and reports of the agent protocol (`protocol`, `event`),
//! the facts hosts report (`host`, `facts`, `ha`, `probe`), IPVS's objects (`ipvs`), the words of
//! a lab that plans carry (`vocab`), on-host paths (`paths`) and the name rules both sides apply
//! (`names`). Data and its rules only: no I/O, no command line, no SSH, no templates.

pub mod capture;
pub mod drain;
pub mod event;
pub mod facts;
pub mod ha;
pub mod host;
pub mod ipvs;
pub mod metrics;
pub mod names;
pub mod packet;
pub mod paths;
pub mod plan;
pub mod probe;
pub mod protocol;
pub mod service;
pub mod vocab;

/// `1 host`, `2 hosts`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
