//! mountkit: the container storage model composed from the workspace's crates.
