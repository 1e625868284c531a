//! Rules for names and addresses that both sides apply: the inventory refuses what breaks them,
//! the agent refuses a journal entry that breaks them.

use std::net::IpAddr;

/// Why the kernel (or our own naming rules) would refuse an interface name, if it would.
pub fn interface_name_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > 15 {
        return Some(format!("is {} bytes long; Linux interface names have at most 15", s.len()));
    }
    if s == "." || s == ".." {
        return Some("is reserved by the kernel".into());
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))) {
        let what = if c == '/' {
            "'/' (the kernel refuses it)".to_string()
        } else if c.is_whitespace() {
            "whitespace (the kernel refuses it)".to_string()
        } else if c.is_control() {
            "a control character".to_string()
        } else if c == ':' {
            "':' (reserved for address labels)".to_string()
        } else {
            format!("{c:?}, which shells and tools treat specially")
        };
        return Some(format!("contains {what}"));
    }
    if s.starts_with('-') {
        return Some("starts with '-', which tools read as an option".into());
    }
    None
}

/// fe80::/10: valid on one link only.
pub fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(a) if a.is_unicast_link_local())
}
