//! Loop-backed volumes: the ext4 image made at create (a sparse file, `mkfs.ext4`), and its mount at
//! `_data` through a loop device that clears itself (`LO_FLAGS_AUTOCLEAR`) when its last opener goes: the
//! mount, or this process if it dies before mounting. So a loop device never outlives the mount. See
//! "Size limits" in docs/volumes.md.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::mount::MountFlags;
use tracing::{debug, warn};

use crate::{Error, Result};

const LOOP_CONTROL: &str = "/dev/loop-control";
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>` (Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn fail(name: &str, what: String) -> impl FnOnce(std::io::Error) -> Error {
    let name = name.to_string();
    move |source| Error::SizeLimit { name, what, source }
}

/// Finds a program of e2fsprogs: on `PATH`, else in the sbin directories a non-login root shell may lack.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn run(name: &str, prog: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let path = program(prog).ok_or_else(|| {
        fail(name, format!("run {prog} (package e2fsprogs)"))(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not found on PATH nor in /usr/sbin, /sbin",
        ))
    })?;
    debug!(volume = name, program = %path.display(), ?args, "running");
    let out = Command::new(&path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(fail(name, format!("run {}", path.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(name, format!("run {}", path.display()))(
            std::io::Error::other(format!("{}: {}", out.status, stderr.trim())),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mkfs(name: &str, image: &Path, bytes: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(image)
        .map_err(|e| Error::io("create", image, e))?;
    file.set_len(bytes.next_multiple_of(4096))
        .map_err(|e| Error::io("size", image, e))?;
    drop(file);
    let args = ["-F", "-q", "-m", "0", "-E", "root_owner=0:0"].map(std::ffi::OsStr::new);
    run(
        name,
        "mkfs.ext4",
        &args.into_iter().chain([image.as_os_str()]).collect::<Vec<_>>(),
    )?;
    Ok(())
}

/// The bytes of ext4's own metadata (journal, inode tables, group descriptors) in `image`, as
/// `dumpe2fs -h` reports them; `None` when it cannot tell.
fn overhead(name: &str, image: &Path) -> Option<u64> {
    let out = run(name, "dumpe2fs", &[std::ffi::OsStr::new("-h"), image.as_os_str()]).ok()?;
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(field("Overhead clusters:")? * field("Block size:")?)
}

/// Makes the image of the volume `name`: a sparse file with an ext4 on it that has `bytes` for data (the
/// file is larger by ext4's own metadata, measured on a first `mkfs`; no blocks reserved for root), its
/// root directory empty (`lost+found` removed, so that the volume can be populated from the image).
pub(crate) fn make_image(name: &str, image: &Path, bytes: u64) -> Result<()> {
    mkfs(name, image, bytes)?;
    match overhead(name, image) {
        Some(extra) => mkfs(name, image, bytes + extra)?,
        None => warn!(
            volume = name,
            "cannot measure ext4's overhead (dumpe2fs): the volume holds less than its size"
        ),
    }
    if let Err(e) = run(
        name,
        "debugfs",
        &[
            std::ffi::OsStr::new("-w"),
            std::ffi::OsStr::new("-R"),
            std::ffi::OsStr::new("rmdir lost+found"),
            image.as_os_str(),
        ],
    ) {
        warn!(
            volume = name,
            "lost+found stays in the volume (it will not be populated from an image): {e}"
        );
    }
    Ok(())
}

fn ioctl_int(fd: &File, request: libc::c_ulong, arg: libc::c_ulong) -> std::io::Result<libc::c_int> {
    // SAFETY: `request` takes an integer argument (or none).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn loop_info(image: &Path) -> LoopInfo64 {
    let mut info = LoopInfo64 {
        device: 0,
        inode: 0,
        rdevice: 0,
        offset: 0,
        sizelimit: 0,
        number: 0,
        encrypt_type: 0,
        encrypt_key_size: 0,
        flags: LO_FLAGS_AUTOCLEAR,
        file_name: [0; 64],
        crypt_name: [0; 64],
        encrypt_key: [0; 32],
        init: [0; 2],
    };
    let name = image.as_os_str().as_bytes();
    let n = name.len().min(63);
    info.file_name[..n].copy_from_slice(&name[..n]);
    info
}

/// Binds `backing` to the loop device open as `dev`, to clear itself on last close.
fn configure(dev: &File, backing: &File, image: &Path) -> std::io::Result<()> {
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info: loop_info(image),
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`.
    if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &raw const config) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) {
        return Err(e);
    }
    // Before Linux 5.8: two steps (a death between them would leave the device bound; the kernels
    // mountkit is tested on all have LOOP_CONFIGURE). A failed second step unbinds.
    ioctl_int(dev, LOOP_SET_FD, backing.as_raw_fd() as libc::c_ulong)?;
    let info = loop_info(image);
    // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64`.
    if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64, &raw const info) } < 0 {
        let e = std::io::Error::last_os_error();
        let _ = ioctl_int(dev, 0x4C01, 0); // LOOP_CLR_FD
        return Err(e);
    }
    Ok(())
}

/// Attaches `image` to a free loop device (open, self-clearing) and returns it with its path.
fn attach(name: &str, image: &Path) -> Result<(File, PathBuf)> {
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(image)
        .map_err(|e| Error::io("open", image, e))?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(LOOP_CONTROL)
        .map_err(fail(name, format!("open {LOOP_CONTROL} (no loop devices?)")))?;
    let mut last = None;
    for _ in 0..32 {
        let n = ioctl_int(&control, LOOP_CTL_GET_FREE, 0)
            .map_err(fail(name, "get a free loop device".to_string()))?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(d) => d,
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        match configure(&dev, &backing, image) {
            Ok(()) => {
                debug!(volume = name, device = %path.display(), image = %image.display(), "loop device attached");
                return Ok((dev, path));
            }
            // Another process took it between GET_FREE and ours: ask again.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = Some(e),
            Err(e) => {
                return Err(fail(
                    name,
                    format!("attach {} to {}", image.display(), path.display()),
                )(e));
            }
        }
    }
    Err(fail(name, format!("attach {}", image.display()))(
        last.unwrap_or_else(|| std::io::Error::other("no free loop device")),
    ))
}

/// Mounts the volume's `image` at `target` (ext4, `flags`) through a self-clearing loop device. When the
/// mount fails, or this process dies before it is made, the device clears itself as its fd closes.
pub(crate) fn mount(name: &str, image: &Path, target: &Path, flags: MountFlags) -> Result<()> {
    let (dev, path) = attach(name, image)?;
    debug!(volume = name, device = %path.display(), target = %target.display(), "mounting volume image");
    let result = rustix::mount::mount(&path, target, "ext4", flags, None::<&std::ffi::CStr>);
    drop(dev); // the mount holds the device now, or nothing does and it clears itself
    result.map_err(|e| Error::Mount {
        op: "mount",
        name: name.to_string(),
        what: format!("ext4 image {} on {}", image.display(), path.display()),
        path: target.to_path_buf(),
        source: e.into(),
    })
}
