//! `cargo xtask vm-test`: (being written) boots QEMU guests and runs the privileged suite in them.

/// Entry point of `cargo xtask vm-test`.
pub fn main(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("vm-test is not written yet")
}
