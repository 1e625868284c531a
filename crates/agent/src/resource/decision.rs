//! What a kind decides for one object: already as planned, a change (with the record to journal
//! before it and the action that makes it), blocked, pending, kept, failed; and the diff's sign
//! of a change.

use std::fmt;

use super::{Action, Key, Undo};
pub use crate::wire::event::ChangeKind;

/// A change to make: `before` becomes `after`. `record` is journaled before `action` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Key,
    pub before: String,
    pub after: String,
    pub reason: String,
    pub record: Option<Undo>,
    pub action: Action,
}

/// What one object needs, decided from the plan, the live facts and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Already as planned (or, for an undo, as it was before lvsctl): nothing to do, and why.
    Same {
        key: Key,
        why: String,
    },
    Change(Box<Change>),
    /// Wanted but impossible as the host is (a missing interface, an address someone else
    /// holds): a failure when applying, drift for `status`.
    Blocked {
        object: String,
        before: String,
        after: String,
        reason: String,
        error: String,
    },
    /// Possible only after an earlier change of the same run (tunl0's sysctls exist once ipip is
    /// loaded): a dry run says so, `status` reports drift, an apply that gets here failed.
    Pending {
        object: String,
        before: String,
        after: String,
        reason: String,
        error: String,
    },
    /// Undo only: someone else changed the object after lvsctl did, so it is left as it is.
    Keep {
        key: Key,
        why: String,
    },
    /// The facts could not be read.
    Failed {
        object: String,
        reason: String,
        error: String,
    },
    /// Something to tell the user that changes nothing.
    Note(String),
}

impl Decision {
    pub(super) fn change(
        key: Key,
        before: impl Into<String>,
        after: impl Into<String>,
        reason: &str,
        record: Option<Undo>,
        action: Action,
    ) -> Self {
        Decision::Change(Box::new(Change {
            key,
            before: before.into(),
            after: after.into(),
            reason: reason.to_string(),
            record,
            action,
        }))
    }
    pub(super) fn same(key: Key, why: impl Into<String>) -> Self {
        Decision::Same { key, why: why.into() }
    }
    pub(super) fn failed(object: impl fmt::Display, reason: &str, error: &str) -> Self {
        Decision::Failed { object: object.to_string(), reason: reason.to_string(), error: error.to_string() }
    }
    /// An undo: `before` becomes `after` by `action` (nothing is journaled).
    pub(super) fn revert(key: Key, before: impl Into<String>, after: impl Into<String>, action: Action) -> Self {
        Decision::change(key, before, after, "", None, action)
    }
}
