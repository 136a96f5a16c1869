//! The `mountkit` command.
fn main() {}
