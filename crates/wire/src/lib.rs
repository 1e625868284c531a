//! lvsctl's wire vocabulary: what the controller and the agent say to each other. The plans of
//! hosts (`plan`), the requests, events and reports of the agent protocol (`protocol`, `event`),
//! the facts hosts report (`host`, `facts`, `ha`, `probe`), IPVS's objects (`ipvs`), the words of
//! a lab that plans carry (`vocab`), on-host paths (`paths`) and the name rules both sides apply
//! (`names`). Data and its rules only: no I/O, no command line, no SSH, no templates.

pub mod event;
pub mod facts;
pub mod ha;
pub mod host;
pub mod ipvs;
pub mod names;
pub mod paths;
pub mod plan;
pub mod probe;
pub mod protocol;
pub mod vocab;
