//! The volume registry: named and anonymous volumes, labels, `local` driver options, users, prune.
//!
//! (Being written.)
