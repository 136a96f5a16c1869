//! Mount specifications (`-v`, `--mount`, `--tmpfs`) and their mounting inside a container root.
//!
//! (Being written: Docker's three syntaxes, bind of files and directories, recursive read-only,
//! propagation, tmpfs, and target resolution inside the root.)
