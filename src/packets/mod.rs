//! Captured packets on the controller: written as pcapng (`lvsctl capture`), walked hop by hop
//! against the lab's mode (`lvsctl trace`).

pub mod pcapng;
pub mod walk;
