//! The system calls rustix does not wrap, each with its reason, and the container process's stack.
//!
//! Everything else in this crate calls rustix: typed flags, and in its `linux_raw` backend (the one
//! this workspace builds) each call is the system call itself, with no glibc state and no `errno`
//! touched, which suits the container process (it shares the caller's memory until its exec).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(crate) fn cpath(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str())
}

pub(crate) fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "contains a NUL byte"))
}

// Signals stay with libc: rustix has signal masks and dispositions only in its `runtime` module (for
// programs without a libc; its calls bypass glibc's handling of the signals glibc reserves), no
// `signalfd`, and a `Signal` type that admits real-time numbers only through an unchecked constructor.

/// The set {SIGINT, SIGTERM, SIGHUP}: the signals the caller forwards to the container.
pub(crate) fn forwarded_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// The signals forwarded to the container.
pub(crate) const FORWARDED: &[libc::c_int] = &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// `pthread_sigmask(how, set)`, returning the previous mask.
pub(crate) fn sigmask(how: libc::c_int, set: &libc::sigset_t) -> io::Result<libc::sigset_t> {
    // SAFETY: both pointers are to live sigset_t values.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        let r = libc::pthread_sigmask(how, set, &mut old);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(old)
    }
}

/// `kill(pid, sig)` with any signal number the caller gives (real-time ones included; the kernel
/// checks it).
pub(crate) fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes two integers.
    cvt(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// Leaves the process at once with `code`, skipping destructors and atexit handlers (in the container
/// process). libc's: rustix has `exit_group` only in its `runtime` module.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// The container process's stack: an 8 MiB anonymous mapping (committed only as it is touched) with a
/// guard page at its bottom, unmapped on drop. The container process runs on it from `clone` until
/// its exec, sharing the caller's memory, so it cannot use the caller's stack.
pub(crate) struct ChildStack {
    base: *mut std::ffi::c_void,
    len: usize,
}

impl ChildStack {
    const LEN: usize = 8 << 20;

    pub(crate) fn new() -> io::Result<ChildStack> {
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing; nothing
        // else refers to it.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                Self::LEN,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::STACK,
            )
        }?;
        let stack = ChildStack { base, len: Self::LEN };
        // SAFETY: the lowest page of our own mapping becomes the guard (stacks grow down).
        unsafe { rustix::mm::mprotect(base, 4096, MprotectFlags::empty()) }?;
        Ok(stack)
    }

    /// The initial stack pointer: the mapping's end (page-aligned, so 16-byte aligned).
    pub(crate) fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our mapping, as clone(2) expects for a downward-growing stack.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used (the child has exec'd or exited: CLONE_VFORK).
        let _ = unsafe { rustix::mm::munmap(self.base, self.len) };
    }
}
