//! overlayfs stacks: mount read-only lowers, an upper and a work directory onto a target.
//!
//! (Being written: the new mount API with `lowerdir+` where the kernel has it, classic mount(2) with short
//! paths otherwise, both up to the kernel's 500-layer limit; option escaping; feature detection.)
