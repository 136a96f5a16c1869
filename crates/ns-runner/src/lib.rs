//! Run a process in new namespaces over a root that the caller prepares.
//!
//! (Being written: private propagation, pivot_root, /proc /dev /sys, user and group, workdir, environment,
//! signal forwarding, exit status.)
