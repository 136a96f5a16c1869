//! Filesystem primitives that a tool running as root needs to be safe, shared by the mountkit crates.
//!
//! (Being written: atomic metadata writes, file locks, mount-aware removal that never crosses a
//! filesystem boundary, and path resolution inside a root that never follows a link out of it.)
