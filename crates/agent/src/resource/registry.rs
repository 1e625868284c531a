//! What follows from the list of kinds (`kinds!` in `mod.rs`): the `Key`, `Undo` and `Action`
//! enums with one variant per kind, and every dispatch over kinds — by stage (what to read, what
//! to decide, what to show, which keys are wanted) and by journal entry or action (undo, check,
//! merge, act). Mechanics only: what a kind does is in its own file.

/// `kinds! { Variant = "journal tag" => KindType, … }`, in the order the kinds are applied and
/// shown. The variant names the kind in `Key`, `Undo` and `Action`; the tag is the `kind` field
/// of its journal entries (journals on hosts hold it: it never changes).
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $tag:literal => $kind:ty,)*) => {
        /// The identity of one managed object; the journal holds at most one entry per key.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Key {
            $($(#[$doc])* $variant(<$kind as Kind>::Id),)*
        }

        /// How the object is named in messages: `sysctl net.ipv4.ip_forward`, `route default`, …
        impl fmt::Display for Key {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Key::$variant(id) => <$kind as Kind>::fmt_id(id, f),)*
                }
            }
        }

        /// How to undo one change: the journal's entries. The serde shape (`kind` plus the
        /// kind's fields) is what journals on hosts hold; it must stay readable.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum Undo {
            $($(#[$doc])* #[serde(rename = $tag)] $variant(<$kind as Kind>::Record),)*
        }

        /// One effect on the host, as data: what `act` performs.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Action {
            $($(#[$doc])* $variant(<$kind as Kind>::Action),)*
        }

        impl Undo {
            pub fn key(&self) -> Key {
                match self {
                    $(Undo::$variant(r) => Key::$variant(<$kind as Kind>::id(r)),)*
                }
            }

            /// Whether lvsctl of lab `lab` can have written this entry: `down` acts on the
            /// journal as root, so an entry someone else put there (a path outside lvsctl's
            /// files, a sysctl key that climbs out of /proc/sys, a unit of another name) is
            /// refused before anything is undone. `root` is where the host's files are (`/`; a
            /// directory in tests).
            pub fn check(&self, lab: &str, root: &std::path::Path) -> Result<(), String> {
                match self {
                    $(Undo::$variant(r) => <$kind as Kind>::check(r, lab, root),)*
                }
            }

            /// Runtime state is what a reboot loses and `systemctl stop` undoes; the rest is on
            /// disk.
            pub fn is_runtime(&self) -> bool {
                match self {
                    $(Undo::$variant(_) => <$kind as Kind>::RUNTIME,)*
                }
            }

            /// The entry for an object changed again: the first prior stays, what was applied
            /// is new.
            pub fn merge(&self, newer: Undo) -> Undo {
                match (self, newer) {
                    $((Undo::$variant(first), Undo::$variant(newer)) => {
                        Undo::$variant(<$kind as Kind>::merge(first, newer))
                    })*
                    (_, newer) => newer,
                }
            }

            fn wants(&self, w: &mut Wants) {
                match self {
                    $(Undo::$variant(r) => <$kind as Kind>::undo_wants(r, w),)*
                }
            }

            fn decide_undo(&self, live: &Live) -> Decision {
                match self {
                    $(Undo::$variant(r) => <$kind as Kind>::undo(r, live),)*
                }
            }
        }

        impl Action {
            /// Whether the action adds an object, changes one that is there, or removes one (the
            /// diff's `+`, `~` and `-`).
            pub fn kind(&self) -> ChangeKind {
                match self {
                    $(Action::$variant(a) => <$kind as Kind>::sign(a),)*
                }
            }

            fn ipvs_op(&self) -> Option<crate::ipvs::TableOp> {
                match self {
                    $(Action::$variant(a) => <$kind as Kind>::ipvs_op(a),)*
                }
            }

            fn act<S: System>(&self, sys: &mut S, backups: &dyn Backups) -> io::Result<Option<Undo>> {
                match self {
                    $(Action::$variant(a) => Ok(<$kind as Kind>::act(sys, a, backups)?.map(Undo::$variant)),)*
                }
            }
        }

        /// Work that must happen before a change's record is journaled (a backup of the file
        /// it replaces, so that the record can name it).
        pub fn prepare<S: System>(sys: &mut S, change: &mut Change, backups: &mut dyn Backups) -> io::Result<()> {
            match (&change.action, &mut change.record) {
                $((Action::$variant(a), Some(Undo::$variant(r))) => <$kind as Kind>::prepare(sys, a, r, backups),)*
                _ => Ok(()),
            }
        }

        impl Stage {
            /// Whether the stage has objects in `scope` (the runtime scope leaves out what is on
            /// disk).
            pub fn in_scope(self, scope: Scope) -> bool {
                scope == Scope::All $(|| (<$kind as Kind>::STAGE == self && <$kind as Kind>::RUNTIME))*
            }

            /// What the stage's decisions read.
            pub fn wants(self, plan: &HostPlan) -> Wants {
                let mut w = Wants::default();
                $(if <$kind as Kind>::STAGE == self {
                    <$kind as Kind>::wants(plan, &mut w);
                })*
                w
            }

            /// The stage's decisions, in order. Pure.
            pub fn decide(self, plan: &HostPlan, live: &Live, journal: &dyn Recorded, intent: Intent) -> Vec<Decision> {
                let mut out = Vec::new();
                $(if <$kind as Kind>::STAGE == self {
                    out.extend(<$kind as Kind>::decide(plan, live, journal, intent));
                })*
                out
            }
        }

        /// The keys of everything `plan` wants in `scope`; journal entries with other keys are
        /// stale.
        pub fn desired_keys(plan: &HostPlan, scope: Scope) -> BTreeSet<Key> {
            let mut keys = BTreeSet::new();
            $(if scope == Scope::All || <$kind as Kind>::RUNTIME {
                keys.extend(<$kind as Kind>::desired(plan).into_iter().map(Key::$variant));
            })*
            keys
        }

        /// `lvsctl plan`'s lines for one host: (kind, item, reason), in apply order.
        pub fn show(plan: &HostPlan) -> Vec<Line> {
            let mut lines = Vec::new();
            $(lines.extend(<$kind as Kind>::show(plan));)*
            lines
        }

        /// The kinds' stages in registration order (a test holds them to `STAGES`' order).
        #[cfg(test)]
        pub(crate) const REGISTERED: &[(&str, Stage)] = &[$(($tag, <$kind as Kind>::STAGE),)*];
    };
}

pub(super) use kinds;
