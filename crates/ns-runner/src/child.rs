//! What runs after `clone`: the container process (PID 1 of the new PID namespace), one function per
//! step, in the order the crate docs give. It shares the caller's memory until its exec (see the crate
//! docs): it frees only what it owns, and calls the kernel, not glibc, where glibc would act on the
//! caller's threads.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use mountkit_safefs::{FinalSymlink, inroot};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{FileType, Mode};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::process::Signal;
use rustix::thread::{Gid, Uid, UnshareFlags};
use tracing::{debug, trace};

use crate::confine::{self, Network};
use crate::sys;
use crate::user::{self, ResolvedUser};
use crate::wire::{self, Msg};
use crate::{Error, Prepare, PrepareError, Spec};

/// A failed step: which one and why (a message naming the object and the cause).
fn fail(step: &'static str, cause: impl std::fmt::Display) -> Error {
    Error::Setup {
        step,
        cause: cause.to_string(),
    }
}

/// The container process, cloned by [`crate::spawn`] as PID 1 of a new PID namespace: runs every step
/// up to exec; on failure reports on the status pipe and exits with the failure's code. Never returns.
pub(crate) fn container_main(
    spec: &Spec,
    prepare: Prepare,
    prepare_error: &mut Option<PrepareError>,
    status: OwnedFd,
    lifeline: OwnedFd,
    terminal: Option<RawFd>,
) -> ! {
    let run = std::panic::AssertUnwindSafe(|| container(spec, prepare, prepare_error, lifeline, terminal));
    let err = match std::panic::catch_unwind(run) {
        Ok(Err(e)) => e,
        Ok(Ok(never)) => match never {},
        Err(payload) => fail("panic", panic_text(payload.as_ref())),
    };
    let code = err.exit_code();
    wire::send(status.as_fd(), &Msg::Failed(err));
    sys::exit_now(code)
}

/// The text of a panic payload (`panic!` with a string or a format).
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

/// The container process: every step from "die with the caller" to exec. Returns only on failure.
fn container(
    spec: &Spec,
    prepare: Prepare,
    prepare_error: &mut Option<PrepareError>,
    lifeline: OwnedFd,
    terminal: Option<RawFd>,
) -> Result<std::convert::Infallible, Error> {
    die_with_parent(lifeline)?;
    new_session()?;
    set_umask();
    unshare_namespaces(spec.network)?;
    if spec.network == Network::None {
        confine::loopback_up().map_err(|e| fail("network", e))?;
    }
    make_rprivate()?;
    let root = run_prepare(prepare, prepare_error)?;
    // One open checks that the root exists and is a directory (the error names it).
    let rootfd =
        inroot::open_root(&root).map_err(|e| fail("prepare", format!("the root is not usable: {e}")))?;
    let rootfd = ensure_mount_point(&root, rootfd)?;
    if !spec.privileged {
        nodev_tree(rootfd.as_fd(), &root)?;
    }
    mount_proc(rootfd.as_fd())?;
    mount_dev(rootfd.as_fd(), spec.privileged)?;
    if let Some(init) = &spec.init {
        bind_init(rootfd.as_fd(), init)?;
    }
    mount_sys(rootfd.as_fd(), spec.privileged)?;
    if !spec.privileged {
        mask_paths(rootfd.as_fd())?;
    }
    if spec.readonly_root {
        remount_root_readonly(rootfd.as_fd(), &root)?;
    }
    drop(rootfd);
    if let Some(h) = &spec.hostname {
        set_hostname(h)?;
    }
    pivot_root(&root)?;
    confine_and_exec(spec, true, terminal)
}

/// Steps 7-10, shared by the container process and a process that enters a running container
/// (`enter.rs`): the user, the terminal or stdin, the working directory (created when missing only
/// with `create_workdir`: a container's start, as Docker's `WORKDIR`; `exec -w` does not), the
/// environment, seccomp, capabilities and user, descriptors, signals, `no_new_privs`, exec. Returns
/// only on failure.
pub(crate) fn confine_and_exec(
    spec: &Spec,
    create_workdir: bool,
    terminal: Option<RawFd>,
) -> Result<std::convert::Infallible, Error> {
    let user = lookup_user(spec)?;
    // The terminal (`Spec::tty`: a pty of the new devpts) or `/dev/null` as stdin; see tty.rs.
    crate::tty::setup_stdio(spec, user.uid, terminal)?;
    enter_workdir(spec.workdir.as_deref(), create_workdir)?;
    let env = user::build_env(&spec.env, spec.hostname.as_deref(), &user.home);
    let path = user::env_get(&env, "PATH")
        .unwrap_or(user::DEFAULT_PATH)
        .to_string();
    let argv = to_cstrings(&spec.args, "exec")?;
    let envp = to_cstrings(&env, "environment")?;
    // The filter goes in while this process still has CAP_SYS_ADMIN (runc's order: no need for
    // no_new_privs), unless no_new_privs was asked for: then as late as possible.
    let seccomp = spec.seccomp.as_deref().filter(|f| !f.is_empty());
    if let Some(filter) = seccomp.filter(|_| !spec.no_new_privs) {
        load_seccomp(filter)?;
    }
    drop_privileges(&user, spec.capabilities.as_ref().map(confine::mask))?;
    close_fds()?;
    reset_signals();
    if spec.no_new_privs {
        confine::no_new_privs().map_err(|e| fail("no-new-privileges", e))?;
        if let Some(filter) = seccomp {
            load_seccomp(filter)?;
        }
    }
    Err(exec(&argv, &envp, &path))
}

/// Step 1: die with the caller (`PR_SET_PDEATHSIG`), then check it is still there: the lifeline pipe's
/// write end lives only in the caller (until the exec), so a hang-up means it is gone. (`getppid` cannot
/// tell: it is 0 for PID 1 of a namespace.)
pub(crate) fn die_with_parent(lifeline: OwnedFd) -> Result<(), Error> {
    trace!("prctl(PR_SET_PDEATHSIG, SIGKILL)");
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| fail("die-with-parent", format!("prctl(PR_SET_PDEATHSIG): {e}")))?;
    let mut pfd = [PollFd::new(&lifeline, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let r = rustix::event::poll(&mut pfd, Some(&now));
    if matches!(r, Ok(n) if n > 0) && pfd[0].revents().intersects(PollFlags::HUP | PollFlags::IN) {
        sys::exit_now(125);
    }
    Ok(())
}

/// Step 1 (cont.): a new session, without a controlling terminal (see `confine::new_session`).
pub(crate) fn new_session() -> Result<(), Error> {
    confine::new_session().map_err(|e| fail("session", format!("setsid: {e}")))
}

/// Docker's (runc's) default umask, 022, whatever the caller's is.
pub(crate) fn set_umask() {
    trace!("umask 022");
    rustix::process::umask(Mode::from_raw_mode(0o022));
}

/// Step 1 (cont.): new mount, UTS and IPC namespaces (the PID namespace was made by the caller), and
/// a network namespace with `--network none` (its `lo` is brought up next).
fn unshare_namespaces(network: Network) -> Result<(), Error> {
    let mut flags = UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC;
    if network == Network::None {
        flags |= UnshareFlags::NEWNET;
    }
    debug!(?flags, "unshare");
    // SAFETY: no descriptor table is unshared (no CLONE_FILES), so no descriptor can be seen from a
    // table it does not belong to.
    unsafe { rustix::thread::unshare_unsafe(flags) }
        .map_err(|e| fail("namespaces", format!("unshare({flags:?}): {e}")))?;
    Ok(())
}

/// Step 2: `mount --make-rprivate /`, so nothing mounted from here on propagates to the host.
fn make_rprivate() -> Result<(), Error> {
    debug!("mount --make-rprivate /");
    rustix::mount::mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)
        .map_err(|e| fail("mount-private", format!("cannot make / recursively private: {e}")))
}

/// Step 3: the caller's preparation, which returns the root.
/// The caller's error is sent as text (what the status pipe carries) and also left in `slot`, from which
/// the caller's [`crate::spawn`] returns it typed (the two processes share memory until the exec).
fn run_prepare(prepare: Prepare, slot: &mut Option<PrepareError>) -> Result<PathBuf, Error> {
    debug!("running the caller's root preparation");
    let root = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(prepare)) {
        Ok(Ok(root)) => root,
        Ok(Err(e)) => {
            let text = e.to_string();
            *slot = Some(e);
            return Err(fail("prepare", text));
        }
        Err(p) => {
            return Err(fail(
                "prepare",
                format!("the preparation panicked: {}", panic_text(p.as_ref())),
            ));
        }
    };
    debug!(root = %root.display(), "root prepared");
    Ok(root)
}

/// Step 3 (cont.): pivot_root needs the new root to be a mount point; bind it onto itself if it is not
/// (and return a descriptor of the bind).
fn ensure_mount_point(root: &Path, fd: OwnedFd) -> Result<OwnedFd, Error> {
    // No mount ID (before Linux 5.8) or an error: bind it, which is harmless on a mount point too.
    let here = mountkit_safefs::mount_id(fd.as_fd(), root);
    let parent = mountkit_safefs::mount_id_at(fd.as_fd(), Path::new(".."), FinalSymlink::Follow);
    let is_mount = matches!((&here, &parent), (Ok(Some(a)), Ok(Some(b))) if a != b);
    if is_mount {
        trace!(root = %root.display(), "root is a mount point already");
        return Ok(fd);
    }
    debug!(root = %root.display(), "bind-mounting the root onto itself (rbind)");
    rustix::mount::mount_bind_recursive(root, root).map_err(|e| {
        fail(
            "root-mount",
            format!("cannot bind {} onto itself: {e}", root.display()),
        )
    })?;
    inroot::open_root(root).map_err(|e| fail("root-mount", e))
}

/// Step 3b (not with `privileged`): `nodev` on every mount of the prepared tree, so that no device node
/// the container can create or find there (made with `mknod` in the root filesystem, a volume, a bind
/// or a tmpfs, or shipped in an image layer, a volume or a host directory) can be opened: `open` fails
/// with `EACCES`. There is no device cgroup here to refuse the host's devices as Docker's does, and
/// this holds whatever the seccomp policy (`mknod` stays allowed: `CAP_MKNOD` is in Docker's default
/// set, and a node it makes is inert, as under Docker's device cgroup). One
/// `mount_setattr(AT_RECURSIVE, MOUNT_ATTR_NODEV)` covers the root and every mount the caller made
/// under it; before Linux 5.12 each mount is bind-remounted with `nodev` added, keeping its other
/// flags. What is mounted later is `nodev` by itself (`/proc`, `/sys`, `/dev` and `/dev/shm`), holds
/// the host's own nodes (the ones bound into `/dev`), or needs none (`/dev/pts`, whose ptys the
/// kernel makes).
fn nodev_tree(root: BorrowedFd<'_>, root_path: &Path) -> Result<(), Error> {
    use mountkit_safefs::MountAttr;
    debug!(root = %root_path.display(), "mount_setattr(AT_RECURSIVE, MOUNT_ATTR_NODEV)");
    let done = match mountkit_safefs::set_mount_attr(root, MountAttr::NODEV, true) {
        Err(e) if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) => {
            debug!("mount_setattr unavailable (Linux < 5.12): remounting each mount nodev");
            mountkit_safefs::remount_tree_adding(root, MountAttr::NODEV)
        }
        done => done,
    };
    done.map_err(|e| {
        fail(
            "nodev",
            format!(
                "cannot make the mounts at and under {} nodev: {e}",
                root_path.display()
            ),
        )
    })
}

/// Mounts `what` onto the resolved `target` with `mount`, given `/proc/self/fd/N` of the target.
fn mount_at(
    step: &'static str,
    what: &str,
    target: BorrowedFd<'_>,
    mount: impl FnOnce(&Path) -> rustix::io::Result<()>,
) -> Result<(), Error> {
    let path = inroot::fd_path(target);
    debug!(step, what, target = %path.display(), "mount");
    mount(&path).map_err(|e| fail(step, format!("cannot mount {what}: {e}")))
}

fn in_root_dir(step: &'static str, root: BorrowedFd<'_>, path: &str, mode: u32) -> Result<OwnedFd, Error> {
    inroot::mkdir_all(root, Path::new(path), mode).map_err(|e| fail(step, e))
}

/// Step 4a: a new proc for the new PID namespace at `/proc` (nosuid, nodev, noexec).
fn mount_proc(root: BorrowedFd<'_>) -> Result<(), Error> {
    let target = in_root_dir("proc", root, "proc", 0o555)?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount_at("proc", "proc on /proc", target.as_fd(), |at| {
        rustix::mount::mount("proc", at, "proc", flags, None)
    })
}

/// Device nodes of the container's `/dev`: name, major, minor (Docker's and runc's defaults).
const DEV_NODES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
/// Symlinks created in the container's `/dev`.
const DEV_LINKS: &[(&str, &str)] = &[
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Step 4b: a minimal `/dev`: tmpfs, the device nodes, a new devpts instance, `/dev/shm`, `/dev/mqueue`
/// (optional), and the usual symlinks.
///
/// Unless `privileged`, the tmpfs is `nodev` (so a node made there with `mknod` cannot be opened, see
/// [`nodev_tree`]) and the device nodes are the host's, bind-mounted onto empty files (as rootless
/// runc does): a bind keeps the flags of the host's `/dev` mount, so they still work. With
/// `privileged`, the tmpfs allows devices and the nodes are made with `mknod`, as runc does (the
/// host's are bound where `mknod` is refused, as in a user namespace); a node made there works, as
/// under Docker's `--privileged` (whose host devices are not added here).
///
/// Everything below the new tmpfs is made by this function in a filesystem nobody else can see yet, so
/// after resolving `dev` once (inside the root), names are created relative to that descriptor and
/// mounted through `/proc/self/fd/N/NAME`, without resolving again.
fn mount_dev(root: BorrowedFd<'_>, privileged: bool) -> Result<(), Error> {
    let target = in_root_dir("dev", root, "dev", 0o755)?;
    let mut flags = MountFlags::NOSUID | MountFlags::STRICTATIME;
    if !privileged {
        flags |= MountFlags::NODEV;
    }
    mount_at("dev", "tmpfs on /dev", target.as_fd(), |at| {
        rustix::mount::mount("tmpfs", at, "tmpfs", flags, Some(c"mode=755,size=65536k"))
    })?;
    drop(target);
    let dev = inroot::resolve(root, Path::new("dev")).map_err(|e| fail("dev", e))?;
    let at = |name: &str| PathBuf::from(format!("/proc/self/fd/{}/{name}", dev.as_raw_fd()));
    // Unless privileged, the host's nodes are bound onto empty files (the tmpfs is nodev). With
    // privileged, device nodes are created with mknod, as runc does outside user namespaces (mode
    // 0666: umask 0 for the duration); where mknod is refused (a user namespace), the host's node is
    // bound instead.
    let old_umask = rustix::process::umask(Mode::empty());
    let mut made = Ok(());
    for (node, major, minor) in DEV_NODES {
        if !privileged {
            made = bind_host_node(dev.as_fd(), node, &at(node));
            if made.is_err() {
                break;
            }
            continue;
        }
        let r = rustix::fs::mknodat(
            &dev,
            *node,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(*major, *minor),
        );
        if let Err(e) = r {
            trace!(node, error = %e, "mknod refused; bind-mounting the host's node");
            made = bind_host_node(dev.as_fd(), node, &at(node));
            if made.is_err() {
                break;
            }
        }
    }
    rustix::process::umask(old_umask);
    made?;
    let mkdir = |name: &str, mode: u32| {
        rustix::fs::mkdirat(&dev, name, Mode::from_raw_mode(mode))
            .map(|_| at(name))
            .map_err(|e| fail("dev", format!("cannot create /dev/{name}: {e}")))
    };
    let pts = mkdir("pts", 0o755)?;
    let pts_flags = MountFlags::NOSUID | MountFlags::NOEXEC;
    debug!(step = "dev", "devpts on /dev/pts");
    let devpts = |opts| rustix::mount::mount("devpts", &pts, "devpts", pts_flags, Some(opts));
    if devpts(c"newinstance,ptmxmode=0666,mode=0620,gid=5").is_err() {
        devpts(c"newinstance,ptmxmode=0666,mode=0620")
            .map_err(|e| fail("dev", format!("cannot mount devpts on /dev/pts: {e}")))?;
    }
    let shm = mkdir("shm", 0o1777)?;
    debug!(step = "dev", "tmpfs on /dev/shm");
    rustix::mount::mount(
        "shm",
        &shm,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(c"mode=1777,size=65536k"),
    )
    .map_err(|e| fail("dev", format!("cannot mount tmpfs on /dev/shm: {e}")))?;
    let mq = mkdir("mqueue", 0o755)?;
    let mq_flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if let Err(e) = rustix::mount::mount("mqueue", &mq, "mqueue", mq_flags, None) {
        debug!(error = %e, "no /dev/mqueue (optional)");
    }
    for (name, target) in DEV_LINKS {
        trace!(name, target, "symlink in /dev");
        rustix::fs::symlinkat(*target, &dev, *name)
            .map_err(|e| fail("dev", format!("cannot create /dev/{name} -> {target}: {e}")))?;
    }
    Ok(())
}

/// An empty file at `/dev/NAME` with the host's `/dev/NAME` bound onto it (skipped when the host has no
/// such node): unless `privileged`, and where `mknod` is refused.
fn bind_host_node(dev: BorrowedFd<'_>, node: &str, target: &Path) -> Result<(), Error> {
    let host = format!("/dev/{node}");
    if std::fs::metadata(&host).is_err() {
        debug!(node, "host has no such device; skipped");
        return Ok(());
    }
    rustix::fs::mknodat(dev, node, FileType::RegularFile, Mode::from_raw_mode(0o666), 0)
        .map_err(|e| fail("dev", format!("cannot create /dev/{node}: {e}")))?;
    debug!(step = "dev", node, "bind-mounting the host's node");
    rustix::mount::mount_bind(&host, target)
        .map_err(|e| fail("dev", format!("cannot mount {host} on /dev/{node}: {e}")))
}

/// Step 4b, with `Spec::init`: the host's program bound read-only (and nosuid) at `/dev/init`, onto
/// an empty file made in the new /dev tmpfs (not in the image's rootfs: nothing shows in its writable
/// layer).
fn bind_init(root: BorrowedFd<'_>, init: &Path) -> Result<(), Error> {
    let dev = inroot::resolve(root, Path::new("dev")).map_err(|e| fail("init", e))?;
    rustix::fs::mknodat(&dev, "init", FileType::RegularFile, Mode::from_raw_mode(0o755), 0)
        .map_err(|e| fail("init", format!("cannot create /dev/init: {e}")))?;
    let target = PathBuf::from(format!("/proc/self/fd/{}/init", dev.as_raw_fd()));
    debug!(step = "init", init = %init.display(), "bind-mounting the init program at /dev/init");
    rustix::mount::mount_bind(init, &target).map_err(|e| {
        fail(
            "init",
            format!("cannot mount {} on /dev/init: {e}", init.display()),
        )
    })?;
    let flags = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
    rustix::mount::mount_remount(&target, flags, "")
        .map_err(|e| fail("init", format!("cannot make /dev/init read-only: {e}")))
}

/// Step 4c: sysfs read-only at `/sys` (read-write when `privileged`); if the kernel refuses a new
/// sysfs, a recursive bind of the host's `/sys`, read-only unless `privileged`.
fn mount_sys(root: BorrowedFd<'_>, privileged: bool) -> Result<(), Error> {
    let target = in_root_dir("sys", root, "sys", 0o555)?;
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if !privileged {
        flags |= MountFlags::RDONLY;
    }
    let Err(e) = mount_at("sys", "sysfs on /sys", target.as_fd(), |at| {
        rustix::mount::mount("sysfs", at, "sysfs", flags, None)
    }) else {
        return Ok(());
    };
    debug!(error = %e, "sysfs refused; falling back to an rbind of the host's /sys");
    if privileged {
        return mount_at("sys", "/sys (rbind) on /sys", target.as_fd(), |at| {
            rustix::mount::mount_bind_recursive("/sys", at)
        });
    }
    bind_host_sys_readonly(root, target.as_fd())
}

/// The fallback for `/sys`: the host's `/sys` bound recursively onto `target`, then made read-only
/// recursively with `mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)`.
fn bind_host_sys_readonly(root: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Error> {
    mount_at("sys", "/sys (rbind) on /sys", target, |at| {
        rustix::mount::mount_bind_recursive("/sys", at)
    })?;
    let bound = inroot::resolve(root, Path::new("sys")).map_err(|e| fail("sys", e))?;
    mountkit_safefs::set_read_only(bound.as_fd(), true)
        .map_err(|e| fail("sys", format!("cannot make the /sys bind read-only: {e}")))?;
    Ok(())
}

/// Docker's default read-only paths (bound onto themselves, read-only).
const READONLY_PATHS: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];
/// Docker's default masked paths (a read-only empty tmpfs over directories, `/dev/null` over files).
const MASKED_PATHS: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/sched_debug",
    "proc/scsi",
    "proc/timer_list",
    "proc/timer_stats",
    "sys/devices/virtual/powercap",
    "sys/firmware",
];

/// Step 4d: Docker's masked and read-only paths under `/proc` and `/sys` (not with `privileged`), so
/// that the container does not change host-wide kernel settings. They hold because the process loses
/// `CAP_SYS_ADMIN` (step 10: Docker's default capabilities), without which it cannot unmount or
/// remount them. Paths this kernel does not have are skipped.
///
/// `proc` and `sys` are resolved once inside the root; below them every name is the kernel's own (the
/// fresh proc and sysfs mounted above, or the host's `/sys`), so each path is reached through
/// `/proc/self/fd/N/REST` without resolving it again.
fn mask_paths(root: BorrowedFd<'_>) -> Result<(), Error> {
    let step = "masked-paths";
    // A bind remount: read-only, nosuid, nodev, noexec.
    let ro =
        MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let proc = inroot::resolve(root, Path::new("proc")).map_err(|e| fail(step, e))?;
    let sys = inroot::resolve(root, Path::new("sys")).map_err(|e| fail(step, e))?;
    // (descriptor of the base, path below it, path for messages)
    let split = |p: &'static str| {
        let (base, rest) = p.split_once('/').unwrap_or((p, ""));
        let fd = if base == "proc" { &proc } else { &sys };
        (fd.as_fd(), rest)
    };
    let path_of =
        |fd: BorrowedFd<'_>, rest: &str| PathBuf::from(format!("/proc/self/fd/{}/{rest}", fd.as_raw_fd()));
    for p in READONLY_PATHS {
        let (base, rest) = split(p);
        let path = path_of(base, rest);
        trace!(step, path = p, "read-only bind onto itself");
        match rustix::mount::mount_bind_recursive(&path, &path) {
            Ok(()) => {}
            Err(Errno::NOENT) => {
                trace!(path = p, "absent; not made read-only");
                continue;
            }
            Err(e) => return Err(fail(step, format!("cannot bind /{p} onto itself: {e}"))),
        }
        // The path now leads to the new bind (the top mount).
        rustix::mount::mount_remount(&path, ro, "")
            .map_err(|e| fail(step, format!("cannot make /{p} read-only: {e}")))?;
    }
    for p in MASKED_PATHS {
        let (base, rest) = split(p);
        // Whether it is a directory, a final symlink not followed.
        let is_dir = match rustix::fs::statat(base, rest, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
            Err(_) => {
                trace!(path = p, "absent; not masked");
                continue;
            }
        };
        let path = path_of(base, rest);
        if is_dir {
            trace!(step, path = p, "empty read-only tmpfs over it");
            let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
            rustix::mount::mount("tmpfs", &path, "tmpfs", flags, Some(c"size=0"))
                .map_err(|e| fail(step, format!("cannot mount an empty tmpfs over /{p}: {e}")))?;
        } else {
            trace!(step, path = p, "/dev/null over it, read-only");
            rustix::mount::mount_bind("/dev/null", &path)
                .map_err(|e| fail(step, format!("cannot bind /dev/null over /{p}: {e}")))?;
            rustix::mount::mount_remount(&path, ro, "")
                .map_err(|e| fail(step, format!("cannot make /{p} read-only: {e}")))?;
        }
    }
    Ok(())
}

/// Step 5: the root mount (not the mounts under it) becomes read-only, keeping its other flags.
fn remount_root_readonly(root: BorrowedFd<'_>, root_path: &Path) -> Result<(), Error> {
    debug!(root = %root_path.display(), "remounting the root read-only");
    mountkit_safefs::remount_read_only(root).map_err(|e| {
        fail(
            "readonly-root",
            format!("cannot remount {} read-only: {e}", root_path.display()),
        )
    })
}

/// Step 6a: the hostname, in the new UTS namespace.
fn set_hostname(name: &str) -> Result<(), Error> {
    debug!(hostname = name, "sethostname");
    rustix::system::sethostname(name.as_bytes())
        .map_err(|e| fail("hostname", format!("cannot set hostname {name:?}: {e}")))?;
    Ok(())
}

/// Step 6b: `pivot_root(".", ".")` in the new root, then detach the old root stacked on top of it.
fn pivot_root(root: &Path) -> Result<(), Error> {
    let step = "pivot-root";
    debug!(root = %root.display(), "pivot_root");
    std::env::set_current_dir(root).map_err(|e| fail(step, format!("chdir {}: {e}", root.display())))?;
    rustix::process::pivot_root(".", ".")
        .map_err(|e| fail(step, format!("pivot_root into {}: {e}", root.display())))?;
    // The old root now sits on top of ".".
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| fail(step, format!("cannot detach the old root: {e}")))?;
    std::env::set_current_dir("/").map_err(|e| fail(step, format!("chdir /: {e}")))?;
    Ok(())
}

fn read_optional(path: &str) -> Result<String, Error> {
    match std::fs::read(path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(fail("user", format!("cannot read the container's {path}: {e}"))),
    }
}

/// Step 7a: the user, from the container's own `/etc/passwd` and `/etc/group`.
fn lookup_user(spec: &Spec) -> Result<ResolvedUser, Error> {
    let passwd = user::parse_passwd(&read_optional("/etc/passwd")?);
    let group = user::parse_group(&read_optional("/etc/group")?);
    let mut u = user::resolve_user(spec.user.as_deref(), &passwd, &group)?;
    for g in user::resolve_additional_groups(&spec.groups, &group)? {
        if !u.supplementary.contains(&g) {
            u.supplementary.push(g);
        }
    }
    debug!(uid = u.uid, gid = u.gid, groups = ?u.supplementary, "user resolved");
    Ok(u)
}

/// Step 8: the working directory, created (owned by root, mode 0755) when missing and `create`, as
/// Docker does.
fn enter_workdir(workdir: Option<&str>, create: bool) -> Result<(), Error> {
    let dir = workdir.unwrap_or("/");
    debug!(workdir = dir, "chdir");
    use std::os::unix::fs::DirBuilderExt;
    if create && let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir) {
        return Err(fail(
            "workdir",
            format!("cannot create working directory {dir}: {e}"),
        ));
    }
    std::env::set_current_dir(dir)
        .map_err(|e| fail("workdir", format!("cannot enter working directory {dir}: {e}")))
}

fn to_cstrings(items: &[String], step: &'static str) -> Result<Vec<CString>, Error> {
    items
        .iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| fail(step, format!("{s:?} contains a NUL byte"))))
        .collect()
}

/// Step 10a: the capabilities and the user, in runc's order: drop from the bounding set what `caps`
/// (a mask; `None`: leave the credentials alone) lacks; `PR_SET_KEEPCAPS`; setgroups, setgid, setuid;
/// clear `PR_SET_KEEPCAPS`; one `capset` (effective and permitted: `caps` for uid 0, empty for another
/// user; inheritable: `caps`); ambient set emptied. See `confine.rs`.
fn drop_privileges(u: &ResolvedUser, caps: Option<u64>) -> Result<(), Error> {
    let step = "privileges";
    // What the set asks for and this process has: the caller's own permitted set bounds it (no
    // capset can raise past it; this project's host root lacks CAP_SYS_RESOURCE, for instance).
    let caps = match caps {
        Some(set) => Some(set & confine::permitted().map_err(|e| fail("capabilities", e))?),
        None => None,
    };
    if let Some(set) = caps {
        debug!(
            bounding = format_args!("{set:#x}"),
            "dropping from the bounding set"
        );
        confine::drop_bounding(set).map_err(|e| fail("capabilities", e))?;
        confine::keep_caps(true).map_err(|e| fail("capabilities", e))?;
    }
    debug!(uid = u.uid, gid = u.gid, "setgroups, setgid, setuid");
    let groups: Vec<Gid> = u
        .supplementary
        .iter()
        .map(|&g| Gid::from_raw_unchecked(g))
        .collect();
    // The system calls themselves (rustix's per-thread set*id), not glibc's wrappers: this process
    // shares the caller's memory, and in a multi-threaded caller glibc's set*id runs its "setxid
    // broadcast", which walks the caller's thread list in that memory, flags each thread's descriptor
    // and signals it to change credentials too. The signals miss here (the caller's threads are not in
    // the container's PID namespace), but that is luck, not design; the system calls change this
    // process alone (its only thread). `from_raw_unchecked`: an ID of -1 goes to the kernel, which
    // refuses it (EINVAL), as it did when these were `syscall(SYS_set*id)`.
    rustix::thread::set_thread_groups(&groups)
        .map_err(|e| fail(step, format!("setgroups {:?}: {e}", u.supplementary)))?;
    rustix::thread::set_thread_gid(Gid::from_raw_unchecked(u.gid))
        .map_err(|e| fail(step, format!("setgid {}: {e}", u.gid)))?;
    rustix::thread::set_thread_uid(Uid::from_raw_unchecked(u.uid))
        .map_err(|e| fail(step, format!("setuid {}: {e}", u.uid)))?;
    if let Some(set) = caps {
        confine::keep_caps(false).map_err(|e| fail("capabilities", e))?;
        confine::apply_sets(set, u.uid).map_err(|e| fail("capabilities", e))?;
    }
    Ok(())
}

/// Step 10a (or last, with `no_new_privs`): the seccomp filter, compiled by the caller. The kernel
/// takes a filter from a process with `CAP_SYS_ADMIN` or `no_new_privs`; where this process lacks the
/// capability (a runner started without it), `no_new_privs` is set first.
fn load_seccomp(filter: &crate::seccomp::Filter) -> Result<(), Error> {
    if !confine::has_sys_admin() {
        debug!("no CAP_SYS_ADMIN: setting no_new_privs before loading the filter");
        confine::no_new_privs().map_err(|e| fail("seccomp", e))?;
    }
    debug!(
        programs = filter.programs(),
        instructions = filter.instructions(),
        "seccomp(SECCOMP_SET_MODE_FILTER)"
    );
    filter.load().map_err(|e| fail("seccomp", e))
}

/// Step 10a: every descriptor above 2 is closed at exec (the status pipe included, which is how the
/// caller learns that exec succeeded).
fn close_fds() -> Result<(), Error> {
    trace!("close_range(3, ~0, CLOSE_RANGE_CLOEXEC)");
    // libc's syscall: rustix has no close_range.
    // SAFETY: close_range only flags descriptors; nothing is closed under our feet.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd (the container's new /proc) instead.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| fail("fds", format!("cannot list /proc/self/fd: {e}")))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // libc's fcntl on a bare number: one of these (the listing's own) is closed by now, which a
        // rustix `BorrowedFd` must never be.
        // SAFETY: sets FD_CLOEXEC; a descriptor closed meanwhile (the directory's) just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Step 10b: default dispositions for every signal, then an empty mask (Rust ignores SIGPIPE, and the
/// forwarded signals were blocked: neither may leak into the command).
fn reset_signals() {
    trace!("resetting signal dispositions and mask");
    // libc: rustix has dispositions and masks only in its `runtime` module (see sys.rs).
    // SAFETY: signal() and sigprocmask with valid arguments; errors for SIGKILL/SIGSTOP and the
    // libc-reserved real-time signals are expected and ignored.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// libc's execve: rustix has one only in its `runtime` module, for programs without a libc.
fn exec_errno(path: &CString, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> io::Error {
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into live CStrings.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Step 10c: execve with `execvp` semantics over the container's `PATH`.
fn exec(argv: &[CString], envp: &[CString], path_var: &str) -> Error {
    let Some(argv0) = argv.first() else {
        return fail("exec", "no command given");
    };
    let command = String::from_utf8_lossy(argv0.as_bytes()).into_owned();
    let mut av: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    av.push(std::ptr::null());
    let mut ev: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    ev.push(std::ptr::null());
    let candidates: Vec<PathBuf> = if command.contains('/') {
        vec![PathBuf::from(&command)]
    } else {
        path_var
            .split(':')
            .map(|d| {
                if d.is_empty() {
                    Path::new(".").join(&command)
                } else {
                    Path::new(d).join(&command)
                }
            })
            .collect()
    };
    let mut denied: Option<io::Error> = None;
    for cand in &candidates {
        let Ok(c) = sys::cpath(cand) else { continue };
        let err = exec_errno(&c, &av, &ev);
        match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
                // ENOENT on a file that exists: its ELF interpreter (dynamic loader) is missing.
                if std::fs::symlink_metadata(cand).is_ok_and(|m| m.is_file()) {
                    return Error::CannotExecute {
                        command,
                        cause: format!(
                            "{}: {err} (its interpreter or dynamic loader is missing)",
                            cand.display()
                        ),
                    };
                }
            }
            Some(libc::EACCES) => denied = Some(err),
            _ => {
                return Error::CannotExecute {
                    command,
                    cause: format!("{}: {err}", cand.display()),
                };
            }
        }
    }
    match denied {
        Some(err) => Error::CannotExecute {
            command,
            cause: err.to_string(),
        },
        None => Error::NotFound { command },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn sys_fallback_is_a_recursive_read_only_bind() {
        mountkit_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        mountkit_testutil::in_mount_ns(|| {
            let rootfd = inroot::open_root(&root).unwrap();
            let target = in_root_dir("sys", rootfd.as_fd(), "sys", 0o555).unwrap();
            bind_host_sys_readonly(rootfd.as_fd(), target.as_fd()).unwrap();
            assert!(root.join("sys/kernel").is_dir(), "host /sys content is visible");
            let e = std::fs::create_dir(root.join("sys/x")).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
            let mine = format!(" {}/sys", root.display());
            let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let lines: Vec<&str> = mi.lines().filter(|l| l.contains(&mine)).collect();
            assert!(!lines.is_empty());
            for l in &lines {
                let opts = l.split(' ').nth(5).unwrap();
                assert!(opts.split(',').any(|o| o == "ro"), "submount not read-only: {l}");
            }
        });
    }

    #[test]
    fn dev_layout_constants() {
        assert!(super::DEV_NODES.contains(&("null", 1, 3)) && super::DEV_NODES.contains(&("tty", 5, 0)));
        assert!(
            super::DEV_LINKS
                .iter()
                .any(|(n, t)| *n == "ptmx" && *t == "pts/ptmx")
        );
    }
}
