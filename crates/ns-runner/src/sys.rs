//! Thin `libc` wrappers: each turns `-1` into an `io::Error` and nothing more.
//!
//! Kept separate so the unsafe surface is small and the steps in `child.rs` read like a script.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(crate) fn cvt_long(r: libc::c_long) -> io::Result<libc::c_long> {
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

/// `mount(2)`.
pub(crate) fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(|s| cstr(OsStr::new(s))).transpose()?;
    let target = cpath(target)?;
    let fstype = fstype.map(|s| cstr(OsStr::new(s))).transpose()?;
    let data = data.map(|s| cstr(OsStr::new(s))).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string alive for the call.
    cvt(unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    })?;
    Ok(())
}

/// The mount ID of `name` below `dir` (`""`: `dir` itself) from statx `STATX_MNT_ID`, following
/// symlinks.
pub(crate) fn mount_id_at(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let c = cstr(OsStr::new(name))?;
    let flags = if name.is_empty() { libc::AT_EMPTY_PATH } else { 0 };
    // SAFETY: statx fills a zeroed plain-data struct; the name is NUL-terminated, the fd live.
    unsafe {
        let mut st: libc::statx = std::mem::zeroed();
        cvt(libc::statx(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags,
            libc::STATX_MNT_ID,
            &mut st,
        ))?;
        if st.stx_mask & libc::STATX_MNT_ID == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "statx gave no mount ID",
            ));
        }
        Ok(st.stx_mnt_id)
    }
}

/// Per-mount flags of the mount holding `path`, as `MS_*` bits fit for a bind remount.
pub(crate) fn mount_flags(path: &Path) -> io::Result<libc::c_ulong> {
    let c = cpath(path)?;
    // SAFETY: statvfs fills a zeroed plain-data struct; the path is NUL-terminated.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        cvt(libc::statvfs(c.as_ptr(), &mut st))?;
        st
    };
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(pairs
        .iter()
        .filter(|(st_bit, _)| st.f_flag & *st_bit != 0)
        .fold(0, |acc, (_, ms)| acc | ms))
}

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

/// `si_code` of a signal the kernel generated (a terminal's Ctrl-C, for instance).
pub(crate) const SI_KERNEL: i32 = 0x80;

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

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which we then own.
    unsafe {
        cvt(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
        Ok((
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        ))
    }
}

/// Leaves the process at once with `code`, skipping destructors and atexit handlers (in the container process).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Whether `name` below `dir` is a directory (`fstatat` without following a final symlink).
pub(crate) fn is_dir_at(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let name = cstr(OsStr::new(name))?;
    // SAFETY: fstatat into a zeroed stat buffer, with a NUL-terminated name and a live descriptor.
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        cvt(libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ))?;
        st
    };
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// The container process's stack: an 8 MiB anonymous mapping (committed only as it is touched) with a
/// guard page at its bottom, unmapped on drop. The container process runs on it from `clone` until
/// its exec, sharing the caller's memory, so it cannot use the caller's stack.
pub(crate) struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    const LEN: usize = 8 << 20;

    pub(crate) fn new() -> io::Result<ChildStack> {
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len: Self::LEN };
        // SAFETY: the lowest page of our own mapping becomes the guard (stacks grow down).
        cvt(unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) })?;
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
        unsafe { libc::munmap(self.base, self.len) };
    }
}
