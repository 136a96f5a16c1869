//! `vmt-exit <status>`: ends the QEMU guest with an exit status the host can read.
//!
//! Writes one byte to QEMU's `isa-debug-exit` device (I/O port 0xf4), which makes QEMU exit with
//! `(byte << 1) | 1`: 0x10 when `<status>` is 0 (QEMU exits 33), 0x11 otherwise (QEMU exits 35).
//! The Debian cloud kernels have no `/dev/port`, so this takes I/O permission with ioperm(2).
//! Built by `cargo xtask vm-test` with plain `rustc` (static, no crates), so the workspace is untouched.

use std::arch::asm;

unsafe extern "C" {
    fn ioperm(from: std::ffi::c_ulong, num: std::ffi::c_ulong, turn_on: std::ffi::c_int) -> std::ffi::c_int;
}

const PORT: u16 = 0xf4;

fn main() {
    let status: i32 = match std::env::args().nth(1).map(|s| s.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: vmt-exit <status>");
            std::process::exit(2);
        }
    };
    let byte: u8 = if status == 0 { 0x10 } else { 0x11 };
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    if unsafe { ioperm(PORT.into(), 4, 1) } != 0 {
        eprintln!("vmt-exit: ioperm(0xf4): {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit device (the host starts QEMU with it); the write ends the VM.
    unsafe { asm!("out dx, al", in("dx") PORT, in("al") byte, options(nomem, nostack)) };
    // Not reached under QEMU; without the device the write is ignored.
    eprintln!("vmt-exit: isa-debug-exit did not end the VM (device missing?)");
    std::process::exit(1);
}
