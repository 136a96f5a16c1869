//! The privileged part: feature detection, mounting by either method, unmounting.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mountkit_safefs::FinalSymlink;
use mountkit_safefs::mountinfo::MountTable;
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags};
use tracing::{debug, trace};

use crate::error::{Error, Result};
use crate::stack::{Stack, classic_option_len, classic_option_string, classic_options_limit, escape_bytes};

/// The mount source this crate gives its overlays (shown in mountinfo); [`unmount`] only unmounts
/// overlays with this source.
pub const MOUNT_SOURCE: &str = "mountkit";

/// `fsconfig(FSCONFIG_SET_STRING)` copies at most 256 bytes including the NUL (`fs/fsopen.c`).
const FSCONFIG_STRING_MAX: usize = 255;

/// How to talk to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// The new mount API when the kernel has `lowerdir+`, else classic `mount(2)`.
    Auto,
    /// `fsopen`/`fsconfig(lowerdir+)`/`fsmount`/`move_mount` (Linux 6.8+).
    NewApi,
    /// `mount(2)` with one option string of at most a page; long stacks use short names.
    Classic,
}

/// What the running kernel supports, found by trying (see [`features`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    /// `fsopen("overlay")` works.
    pub new_mount_api: bool,
    /// overlayfs takes `lowerdir+` through `fsconfig` and creates a superblock from it.
    pub lowerdir_plus: bool,
}

/// The result of [`features`], once it ran.
static FEATURES: OnceLock<Features> = OnceLock::new();

/// Detects (once per process) what the kernel supports by trying it.
///
/// `new_mount_api`: `fsopen("overlay")` succeeds. `lowerdir_plus`: an overlay context is given two
/// `lowerdir+` layers (two directories in a private tmpfs created with `fsmount` and never
/// attached anywhere) and `FSCONFIG_CMD_CREATE` succeeds. The create step matters: on 6.1
/// `fsconfig(lowerdir+)` is accepted and the error appears only at create. Nothing is ever
/// attached, so detection works in any mount namespace and leaves nothing mounted; all fds are
/// closed before it returns. Any failure counts as "not supported" (the classic fallback is used).
pub fn features() -> &'static Features {
    FEATURES.get_or_init(|| {
        let f = detect();
        debug!(?f, "overlay kernel features detected");
        f
    })
}

fn detect() -> Features {
    let new_mount_api = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(_) => true,
        Err(e) => {
            debug!(error = %e, "fsopen(overlay) failed: no new mount API for overlay");
            false
        }
    };
    let lowerdir_plus = new_mount_api
        && probe_lowerdir_plus()
            .map_err(|e| debug!("lowerdir+ probe: {e}"))
            .is_ok();
    Features {
        new_mount_api,
        lowerdir_plus,
    }
}

fn probe_lowerdir_plus() -> std::result::Result<(), String> {
    // Kernels before about 6.15 refuse layers on a mount that is not attached anywhere (the detached
    // tmpfs below), so probe first with two empty directories in the temp dir; fall back to the
    // detached tmpfs where the temp dir is not writable.
    match probe_lowerdir_plus_in(&std::env::temp_dir()) {
        Ok(()) => Ok(()),
        Err(first) => probe_lowerdir_plus_detached().map_err(|second| format!("{first}; {second}")),
    }
}

/// Creates an overlay context from two empty directories under `dir` with `lowerdir+` (nothing is
/// mounted: the superblock is created and dropped), then removes the directories.
fn probe_lowerdir_plus_in(dir: &Path) -> std::result::Result<(), String> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = dir.join(format!(".mountkit-overlay-probe-{}-{n}", std::process::id()));
    let (a, b) = (base.join("a"), base.join("b"));
    let made = std::fs::create_dir(&base)
        .and_then(|_| std::fs::create_dir(&a))
        .and_then(|_| std::fs::create_dir(&b));
    let result = made
        .map_err(|e| format!("probe dirs in {}: {e}", dir.display()))
        .and_then(|_| {
            let ovl = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
                .map_err(|e| format!("fsopen: {e}"))?;
            for p in [&a, &b] {
                rustix::mount::fsconfig_set_string(&ovl, "lowerdir+", p.as_path())
                    .map_err(|e| format!("fsconfig(lowerdir+): {e}{:?}", kernel_log(ovl.as_fd())))?;
            }
            rustix::mount::fsconfig_create(&ovl)
                .map_err(|e| format!("create: {e} {:?}", kernel_log(ovl.as_fd())))
        });
    let _ = std::fs::remove_dir(&a);
    let _ = std::fs::remove_dir(&b);
    let _ = std::fs::remove_dir(&base);
    result
}

fn probe_lowerdir_plus_detached() -> std::result::Result<(), String> {
    let tmpfs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| format!("fsopen(tmpfs): {e}"))?;
    rustix::mount::fsconfig_create(&tmpfs).map_err(|e| format!("create tmpfs: {e}"))?;
    let mnt = rustix::mount::fsmount(&tmpfs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| format!("fsmount(tmpfs): {e}"))?;
    for d in ["a", "b"] {
        rustix::fs::mkdirat(&mnt, d, Mode::from_raw_mode(0o755)).map_err(|e| format!("mkdir {d}: {e}"))?;
    }
    let ovl =
        rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| format!("fsopen: {e}"))?;
    for d in ["a", "b"] {
        let p = format!("/proc/self/fd/{}/{d}", mnt.as_raw_fd());
        rustix::mount::fsconfig_set_string(&ovl, "lowerdir+", p.as_str())
            .map_err(|e| format!("fsconfig(lowerdir+): {e}{:?}", kernel_log(ovl.as_fd())))?;
    }
    rustix::mount::fsconfig_create(&ovl).map_err(|e| format!("create: {e} {:?}", kernel_log(ovl.as_fd())))?;
    Ok(())
}

/// Reads the messages the kernel logged on a filesystem context fd ("e overlayfs: ...").
fn kernel_log(fs: BorrowedFd<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; ENODATA when none is left. Bound the loop anyway.
    for _ in 0..64 {
        match rustix::io::read(fs, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()),
        }
    }
    out
}

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Checks that every layer exists and is a directory, so errors name the layer before the kernel
/// is asked (mount(2) says only ENOENT, without saying which).
fn check_layers(stack: &Stack) -> Result<()> {
    let check = |role: String, p: &Path| -> Result<()> {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::Layer {
                role,
                path: p.to_path_buf(),
                source: io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error()),
            }),
            Err(source) => Err(Error::Layer {
                role,
                path: p.to_path_buf(),
                source,
            }),
        }
    };
    for (i, p) in stack.lower_dirs().iter().enumerate() {
        check(stack.lower_role(i), p)?;
    }
    if let Some((u, w)) = stack.upper_dirs() {
        check("upperdir".into(), u)?;
        check("workdir".into(), w)?;
    }
    Ok(())
}

fn resolve_method(method: Method) -> Result<Method> {
    let f = features();
    match method {
        Method::Auto if f.lowerdir_plus => Ok(Method::NewApi),
        Method::Auto | Method::Classic => Ok(Method::Classic),
        Method::NewApi if f.lowerdir_plus => Ok(Method::NewApi),
        Method::NewApi => Err(Error::Unsupported {
            method,
            reason: if f.new_mount_api {
                "overlayfs does not take lowerdir+ through fsconfig (needs Linux 6.8+)"
            } else {
                "no new mount API for overlayfs (fsopen failed)"
            },
        }),
    }
}

/// Mounts `stack` on `target` and returns the method used.
///
/// Order of work: validate the stack (count, paths, options; above [`crate::MAX_LOWER_LAYERS`]
/// this fails with [`Error::TooManyLayers`] before any system call), pick the method, mount. When the
/// kernel refuses, every layer is checked to be a directory so that the error names the layer (index
/// bottom first, and path) where mount(2) would only say ENOENT.
///
/// [`Method::Auto`] does not probe: the first mount of the process *is* the probe. It tries the new
/// mount API with `lowerdir+`; if the kernel refuses in a way that means "not supported" (no
/// `fsopen` for overlay, `lowerdir+` unknown to `fsconfig`, or EINVAL at `FSCONFIG_CMD_CREATE` as on
/// 6.1, whose legacy option parser only reads the options then), it mounts with classic mount(2),
/// and the process remembers which one worked. [`features`] (which probes without mounting) is only
/// consulted when it has run already, or for an explicit [`Method::NewApi`].
///
/// `target` is used as given (the kernel follows symlinks in it); to mount inside a container root
/// safely, resolve the target first, or use [`mount_detached`] and `move_mount` onto an fd.
/// Relative layer paths are resolved against the process's working directory.
pub fn mount(stack: &Stack, target: &Path, method: Method) -> Result<Method> {
    stack.validate()?;
    let result = mount_validated(stack, target, method);
    if result.is_err() {
        check_layers(stack)?;
    }
    let used = result?;
    debug!(?target, ?used, "overlay mounted");
    Ok(used)
}

/// What [`Method::Auto`] learnt in this process: 0 nothing yet, 1 the new API works, 2 classic.
static AUTO_LEARNT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn mount_validated(stack: &Stack, target: &Path, method: Method) -> Result<Method> {
    use std::sync::atomic::Ordering::Relaxed;
    let learnt = match (method, FEATURES.get()) {
        (Method::Auto, Some(f)) => {
            if f.lowerdir_plus {
                1
            } else {
                2
            }
        }
        (Method::Auto, None) => AUTO_LEARNT.load(Relaxed),
        _ => 0,
    };
    let used = match (method, learnt) {
        (Method::Auto, 1) => Method::NewApi,
        (Method::Auto, 2) => Method::Classic,
        (Method::Auto, _) => {
            debug!(
                layers = stack.lower_dirs().len(),
                ?target,
                "mounting overlay, trying lowerdir+"
            );
            match new_api_mount(stack, target) {
                Ok(()) => {
                    AUTO_LEARNT.store(1, Relaxed);
                    return Ok(Method::NewApi);
                }
                Err(e) if means_unsupported(&e) => {
                    debug!(error = %e, "new mount API refused; classic mount(2)");
                    classic_mount(stack, target)?;
                    AUTO_LEARNT.store(2, Relaxed);
                    return Ok(Method::Classic);
                }
                Err(e) => return Err(e),
            }
        }
        (m, _) => resolve_method(m)?,
    };
    debug!(
        layers = stack.lower_dirs().len(),
        ?target,
        ?used,
        "mounting overlay"
    );
    match used {
        Method::NewApi => new_api_mount(stack, target)?,
        _ => classic_mount(stack, target)?,
    }
    Ok(used)
}

/// Whether a failure of the new-API path can mean "this kernel does not do overlay's `lowerdir+`
/// through the new mount API" (then classic mount(2) is worth a try).
fn means_unsupported(e: &Error) -> bool {
    let errno = |s: &io::Error| s.raw_os_error();
    let einval = Some(rustix::io::Errno::INVAL.raw_os_error());
    match e {
        // fsopen("overlay") itself: no new mount API, or no overlay in it.
        Error::Io { what, .. } => what.starts_with("fsopen"),
        Error::Config { option, source, .. } => option == "lowerdir+" && errno(source) == einval,
        Error::Create { source, .. } => errno(source) == einval,
        _ => false,
    }
}

fn new_api_mount(stack: &Stack, target: &Path) -> Result<()> {
    let mnt = build_new_api(stack)?;
    trace!(?target, "move_mount overlay onto target");
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Error::Attach {
        target: target.to_path_buf(),
        source: io_err(e),
    })
}

/// Creates the overlay with the new mount API and returns the detached mount's fd, attached nowhere
/// yet: attach it with `move_mount(fd, "", dirfd, path, MOVE_MOUNT_F_EMPTY_PATH)` (for example onto
/// an fd resolved inside a container root), then close the fd: while it is open the mount is busy
/// and [`unmount`] fails with EBUSY. Dropping the fd without attaching it discards the mount.
///
/// Fails with [`Error::Unsupported`] when the kernel lacks `lowerdir+`.
pub fn mount_detached(stack: &Stack) -> Result<OwnedFd> {
    stack.validate()?;
    check_layers(stack)?;
    resolve_method(Method::NewApi)?;
    build_new_api(stack)
}

/// A name the kernel can resolve for `p`: the path itself if `fsconfig` takes it, else
/// `/proc/self/fd/N` of an O_PATH fd that `keep` holds until the overlay is created.
fn fsconfig_name(
    p: &[u8],
    role: &dyn Fn() -> String,
    path: &Path,
    keep: &mut Vec<OwnedFd>,
) -> Result<Vec<u8>> {
    if p.len() <= FSCONFIG_STRING_MAX {
        return Ok(p.to_vec());
    }
    let fd = open_layer(path, role)?;
    let name = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
    keep.push(fd);
    Ok(name)
}

fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)
}

/// Opens the layer directory `path` as an O_PATH fd; an error names it by `role` and path.
fn open_layer(path: &Path, role: impl FnOnce() -> String) -> Result<OwnedFd> {
    open_dir_path(path).map_err(|source| Error::Layer {
        role: role(),
        path: path.to_path_buf(),
        source,
    })
}

fn build_new_api(stack: &Stack) -> Result<OwnedFd> {
    trace!("fsopen(overlay)");
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| Error::Io {
        what: "fsopen(\"overlay\")".into(),
        source: io_err(e),
    })?;
    let set = |key: &str, value: &[u8], what: &dyn Fn() -> String| -> Result<()> {
        let value = CString::new(value).map_err(|_| Error::InvalidOption {
            key: key.into(),
            reason: "contains NUL",
        })?;
        rustix::mount::fsconfig_set_string(&fs, key, value.as_c_str()).map_err(|e| Error::Config {
            option: key.to_owned(),
            what: what(),
            source: io_err(e),
            kernel: kernel_log(fs.as_fd()),
        })
    };
    set("source", MOUNT_SOURCE.as_bytes(), &|| "the mount source".into())?;
    let mut keep = Vec::new();
    let n = stack.lower_dirs().len();
    // lowerdir+ appends below the layers given so far: give them top first. The kernel takes the
    // path verbatim (no unescaping), so `,` `:` `\` need no escape here.
    for (i, p) in stack.lower_dirs().iter().enumerate().rev() {
        let role = || format!("{} {p:?}", stack.lower_role(i));
        let name = fsconfig_name(p.as_os_str().as_bytes(), &role, p, &mut keep)?;
        trace!(index = i, of = n, path = ?p, "fsconfig lowerdir+");
        set("lowerdir+", &name, &role)?;
    }
    if let Some((u, w)) = stack.upper_dirs() {
        // upperdir/workdir are still unescaped by the kernel (ovl_mount_dir), so escape them.
        for (key, p) in [("upperdir", u), ("workdir", w)] {
            let role = || format!("{key} {p:?}");
            let name = fsconfig_name(&escape_bytes(p.as_os_str().as_bytes()), &role, p, &mut keep)?;
            trace!(key, path = ?p, "fsconfig");
            set(key, &name, &role)?;
        }
    }
    for (key, value) in stack.extra_options() {
        trace!(key, ?value, "fsconfig extra option");
        match value {
            Some(v) => set(key, v.as_bytes(), &|| format!("value {v:?}"))?,
            None => rustix::mount::fsconfig_set_flag(&fs, key.as_str()).map_err(|e| Error::Config {
                option: key.clone(),
                what: "a flag".into(),
                source: io_err(e),
                kernel: kernel_log(fs.as_fd()),
            })?,
        }
    }
    trace!("fsconfig(FSCONFIG_CMD_CREATE)");
    rustix::mount::fsconfig_create(&fs).map_err(|e| Error::Create {
        context: format!("{n} lower layers, new mount API"),
        source: io_err(e),
        kernel: kernel_log(fs.as_fd()),
    })?;
    trace!("fsmount");
    let mnt =
        rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).map_err(|e| {
            Error::Create {
                context: format!("fsmount of {n} lower layers"),
                source: io_err(e),
                kernel: kernel_log(fs.as_fd()),
            }
        })?;
    drop(keep);
    Ok(mnt)
}

/// Classic mount(2). If the option string with the paths as given fits in a page, mount with it
/// directly. Otherwise open every layer as an O_PATH fd and, in a helper thread that unshared its
/// filesystem context (`unshare(CLONE_FS)`, so its cwd is private) and did
/// `chdir("/proc/self/fd")`, mount with the fd numbers as relative layer names.
fn classic_mount(stack: &Stack, target: &Path) -> Result<()> {
    let limit = classic_options_limit();
    let lowers: Vec<Vec<u8>> = stack
        .top_first()
        .map(|p| escape_bytes(p.as_os_str().as_bytes()))
        .collect();
    let upper = stack.upper_dirs().map(|(u, w)| {
        (
            escape_bytes(u.as_os_str().as_bytes()),
            escape_bytes(w.as_os_str().as_bytes()),
        )
    });
    let uw = upper.as_ref().map(|(u, w)| (u.as_slice(), w.as_slice()));
    let direct_len = classic_option_len(&lowers, uw, stack.extra_options());
    let n = lowers.len();
    if direct_len <= limit {
        let data = classic_option_string(&lowers, uw, stack.extra_options());
        debug!(len = data.len(), "mount(2) overlay with full paths");
        return classic_syscall(target, data, n, "full paths");
    }
    classic_mount_by_fds(stack, target, n, limit, direct_len)
}

/// Classic mount(2) with short names, for an option string of full paths (`direct_len` bytes) over
/// `limit`: the layers' fd numbers under /proc/self/fd, mounted from a helper thread whose cwd that is.
fn classic_mount_by_fds(
    stack: &Stack,
    target: &Path,
    n: usize,
    limit: usize,
    direct_len: usize,
) -> Result<()> {
    let (fds, data) = fd_name_options(stack, n, limit)?;
    // The target must not depend on the helper's cwd: pin it as an fd, name it absolutely.
    let target_fd = rustix::fs::open(target, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
        Error::Attach {
            target: target.to_path_buf(),
            source: io_err(e),
        }
    })?;
    let target_name = PathBuf::from(format!("/proc/self/fd/{}", target_fd.as_raw_fd()));
    debug!(
        len = data.len(),
        direct_len, "mount(2) overlay with fd-number layer names from a helper thread"
    );
    let result = std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            enter_proc_self_fd()?;
            classic_syscall(&target_name, data, n, "fd-number names")
        })
        .join()
    });
    drop(fds);
    drop(target_fd);
    match result {
        Ok(r) => r.map_err(|e| match e {
            Error::Attach { source, .. } => Error::Attach {
                target: target.to_path_buf(),
                source,
            },
            other => other,
        }),
        Err(_) => Err(Error::Io {
            what: "the mount helper thread panicked".into(),
            source: io::Error::other("helper thread panicked"),
        }),
    }
}

/// Opens every layer of `stack` (`n` lower ones) as an O_PATH fd and returns the fds (held until
/// the mount is made) and the option string that names them by number; an error when even that
/// string is over `limit`.
fn fd_name_options(stack: &Stack, n: usize, limit: usize) -> Result<(Vec<OwnedFd>, Vec<u8>)> {
    let mut fds = Vec::with_capacity(n + 2);
    for (i, p) in stack.lower_dirs().iter().enumerate() {
        fds.push(open_layer(p, || stack.lower_role(i))?);
    }
    let names: Vec<Vec<u8>> = fds
        .iter()
        .rev()
        .map(|fd| fd.as_raw_fd().to_string().into_bytes())
        .collect();
    let mut upper_names = None;
    if let Some((u, w)) = stack.upper_dirs() {
        let uf = open_layer(u, || "upperdir".into())?;
        let wf = open_layer(w, || "workdir".into())?;
        upper_names = Some((
            uf.as_raw_fd().to_string().into_bytes(),
            wf.as_raw_fd().to_string().into_bytes(),
        ));
        fds.push(uf);
        fds.push(wf);
    }
    let uw = upper_names.as_ref().map(|(u, w)| (u.as_slice(), w.as_slice()));
    let len = classic_option_len(&names, uw, stack.extra_options());
    if len > limit {
        return Err(Error::OptionsTooLong { len, max: limit });
    }
    Ok((fds, classic_option_string(&names, uw, stack.extra_options())))
}

/// In the mount helper thread: gives the thread its own filesystem context (`unshare(CLONE_FS)`)
/// and makes /proc/self/fd its cwd, so that fd numbers name the layers.
fn enter_proc_self_fd() -> Result<()> {
    trace!("helper: unshare(CLONE_FS)");
    // SAFETY: CLONE_FS only gives this thread its own root/cwd/umask; no fd table is
    // unshared, so no thread can observe fds from another table.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }.map_err(|e| Error::Io {
        what: "unshare(CLONE_FS) in the mount helper thread".into(),
        source: io_err(e),
    })?;
    trace!("helper: chdir /proc/self/fd");
    rustix::process::chdir("/proc/self/fd").map_err(|e| Error::Io {
        what: "chdir(\"/proc/self/fd\") in the mount helper thread".into(),
        source: io_err(e),
    })
}

fn classic_syscall(target: &Path, data: Vec<u8>, n: usize, how: &str) -> Result<()> {
    let data = CString::new(data).map_err(|_| Error::InvalidOption {
        key: "(option string)".into(),
        reason: "contains NUL",
    })?;
    trace!(?target, how, "mount(2) overlay");
    rustix::mount::mount(
        MOUNT_SOURCE,
        target,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| {
        match e {
            // EINVAL/ENOENT from mount(2) is about the options or layers, not the target.
            rustix::io::Errno::INVAL | rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR
                if target_is_dir(target) =>
            {
                Error::Create {
                    context: format!(
                        "{n} lower layers, mount(2) with {how}; the kernel log (dmesg) has details"
                    ),
                    source: io_err(e),
                    kernel: Vec::new(),
                }
            }
            _ => Error::Attach {
                target: target.to_path_buf(),
                source: io_err(e),
            },
        }
    })
}

fn target_is_dir(target: &Path) -> bool {
    std::fs::metadata(target).is_ok_and(|m| m.is_dir())
}

/// Unmounts the overlay at `target` (see [`unmount_with`]; waits for no user, fails with EBUSY if
/// the overlay is in use).
pub fn unmount(target: &Path) -> Result<()> {
    unmount_with(target, false)
}

/// Unmounts the overlay mounted at `target`, lazily (`MNT_DETACH`) when `detach` is true.
///
/// Refuses anything this crate did not mount: `target` (not followed if it is a symlink) must be
/// the root of a mount whose type is `overlay` and whose source is [`MOUNT_SOURCE`], as
/// `/proc/self/mountinfo` says for the mount id `statx` reports on an O_PATH fd of the target.
/// That fd would keep the mount busy, so it is closed, the path is checked to name the same mount
/// again, and `umount2(target, UMOUNT_NOFOLLOW)` runs; a concurrent rename of the mount point
/// between that last check and the unmount is not guarded against.
pub fn unmount_with(target: &Path, detach: bool) -> Result<()> {
    let unmount_err = |source: io::Error| Error::Unmount {
        target: target.to_path_buf(),
        source,
    };
    let fd = rustix::fs::open(
        target,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| unmount_err(io_err(e)))?;
    // The mount-root attribute comes with any statx; the mount ID from safefs's one statx of it.
    let stx = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::empty())
        .map_err(|e| unmount_err(io_err(e)))?;
    let root = rustix::fs::StatxAttributes::MOUNT_ROOT;
    let is_root = stx.stx_attributes_mask.contains(root) && stx.stx_attributes.contains(root);
    if !is_root {
        return Err(Error::NotMounted {
            target: target.to_path_buf(),
        });
    }
    // No mount ID (before Linux 5.8): no mountinfo line can match, as when the kernel left it 0.
    let mnt_id = mountkit_safefs::mount_id(fd.as_fd(), target).map_err(|e| unmount_err(e.into_io()))?;
    let table = MountTable::read().map_err(|e| Error::MountInfo {
        target: target.to_path_buf(),
        message: e.to_string(),
    })?;
    let Some(info) = mnt_id.and_then(|id| table.by_id(id)) else {
        return Err(Error::NotMounted {
            target: target.to_path_buf(),
        });
    };
    let fs_type = info.fs_type().unwrap_or_default().to_string_lossy().into_owned();
    if fs_type != "overlay" {
        return Err(Error::NotOverlay {
            target: target.to_path_buf(),
            fs_type,
        });
    }
    let source = info.source().unwrap_or_default().to_string_lossy().into_owned();
    if source != MOUNT_SOURCE {
        return Err(Error::NotOurs {
            target: target.to_path_buf(),
            source_name: source,
            expected: MOUNT_SOURCE,
        });
    }
    // The O_PATH fd pins the mount (umount through it would be EBUSY): close it, check that the
    // path still names the same mount, and unmount by path without following a final symlink.
    drop(fd);
    let again = mountkit_safefs::mount_id_at(rustix::fs::CWD, target, FinalSymlink::NoFollow)
        .map_err(|e| unmount_err(e.into_io()))?;
    if again != mnt_id {
        return Err(unmount_err(io::Error::other(
            "the mount at the target changed while it was being checked",
        )));
    }
    let flags = if detach {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    } | UnmountFlags::NOFOLLOW;
    debug!(?target, mnt_id, detach, "umount2 overlay");
    rustix::mount::unmount(target, flags).map_err(|e| unmount_err(io_err(e)))
}
