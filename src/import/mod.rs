//! `lvsctl import` (issue 31, in steps): what exists — saved ipvsadm rules, keepalived.conf,
//! ldirectord.cf, live hosts — read into an inventory. Each source format has a pure reader here
//! that gives its services and real servers, or every problem with its line.

pub mod inventory;
pub mod ipvsadm;
pub mod keepalived;
pub mod ldirectord;
pub mod live;
pub mod model;
