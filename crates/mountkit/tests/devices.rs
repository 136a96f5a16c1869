//! Issue 12: a device node made in the container cannot reach a host device, and the container's
//! process cannot push input into the terminal it was started from (`TIOCSTI`).
//!
//! There is no device cgroup here: every mount a container can create or find a node in (the root
//! filesystem, volumes, binds, tmpfs, `/dev`) is `nodev`, and `/dev`'s own nodes are the host's,
//! bound (see docs/ns-runner.md). `mknod` itself still succeeds (`CAP_MKNOD` is in Docker's default
//! set), as under Docker; opening the node fails with "Permission denied", with or without a seccomp
//! filter. Under `--privileged` the same read succeeds, which shows the test can fail.
//!
//! The sample image has no `mknod`: the host's static busybox (`/bin/busybox`) is bound into the
//! container read-only as `/busybox`, as in confinement.rs.

mod support;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use mountkit_testutil::require_root;
use support::{Env, with_sample};

const BB: &str = "/bin/busybox:/busybox:ro";

/// `(major, minor)` of a `dev_t` (glibc's encoding).
fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// The block devices of the host, best first: the one holding `dir` when it is a block device (its
/// `st_dev` under `/sys/dev/block`), then the whole disks in `/proc/partitions`; `(major, minor)`.
fn host_block_devices(dir: &Path) -> Vec<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    if let Ok(m) = std::fs::metadata(dir) {
        let (major, minor) = major_minor(m.dev());
        if Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
            found.push((major, minor));
        }
    }
    let partitions = std::fs::read_to_string("/proc/partitions").unwrap_or_default();
    for l in partitions.lines().skip(2) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [major, minor, _, name] = f[..] else { continue };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        if Path::new("/sys/block").join(name).exists() && !found.contains(&(major, minor)) {
            found.push((major, minor));
        }
    }
    found
}

/// Whether the test itself can read the first 512 bytes of block device `major:minor` through the
/// host's `/dev` node (a host may refuse its own root that: this project's VM does, EPERM).
fn host_can_read(major: u64, minor: u64) -> bool {
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"));
    let Some(name) = uevent.ok().and_then(|u| {
        u.lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(String::from)
    }) else {
        return false;
    };
    let mut buf = [0u8; 512];
    std::fs::File::open(Path::new("/dev").join(name))
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok()
}

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

/// A loop device over a 1 MiB file, set up by the test and detached when dropped (it is
/// `LO_FLAGS_AUTOCLEAR`: the kernel detaches it when its last descriptor, this one, closes, even if
/// the test is killed).
struct LoopDevice {
    _fd: std::fs::File,
    major: u64,
    minor: u64,
}

/// A new [`LoopDevice`] over `backing` (made here), or why not.
fn loop_device(backing: &Path) -> Result<LoopDevice, String> {
    use std::os::unix::fs::MetadataExt;
    const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
    const LOOP_SET_FD: libc::c_ulong = 0x4C00;
    const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
    const LO_FLAGS_AUTOCLEAR: u32 = 4;
    std::fs::write(backing, vec![0x5a; 1 << 20]).map_err(|e| e.to_string())?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(backing)
        .map_err(|e| e.to_string())?;
    let ctl = std::fs::File::open("/dev/loop-control").map_err(|e| format!("/dev/loop-control: {e}"))?;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument.
    let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
    if n < 0 {
        return Err(format!("LOOP_CTL_GET_FREE: {}", std::io::Error::last_os_error()));
    }
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/loop{n}"))
        .map_err(|e| format!("/dev/loop{n}: {e}"))?;
    // SAFETY: LOOP_SET_FD takes a descriptor; LOOP_SET_STATUS64 reads a loop_info64.
    unsafe {
        if libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, file.as_raw_fd()) < 0 {
            return Err(format!("LOOP_SET_FD: {}", std::io::Error::last_os_error()));
        }
        let mut info: LoopInfo64 = std::mem::zeroed();
        info.flags = LO_FLAGS_AUTOCLEAR;
        if libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64, &info) < 0 {
            let e = std::io::Error::last_os_error();
            libc::ioctl(dev.as_raw_fd(), 0x4C01); // LOOP_CLR_FD
            return Err(format!("LOOP_SET_STATUS64: {e}"));
        }
    }
    let (major, minor) = major_minor(dev.metadata().map_err(|e| e.to_string())?.rdev());
    Ok(LoopDevice {
        _fd: dev,
        major,
        minor,
    })
}

/// The script run in each container: `NAME: read` or `NAME: refused: ERROR` for a node of the host's
/// disk made in `/dev`, the root filesystem (`/tmp`), a named volume, a bind of a host directory and
/// a `--tmpfs` mount asking for `dev`, and for `/dev/mem` (c 1 1) made in `/dev`; then the usual
/// `/dev` nodes, and the mount table after `===`.
fn script(major: u64, minor: u64) -> String {
    format!(
        r#"try() {{ if err=$(head -c 512 "$2" 2>&1 >/dev/null); then echo "$1: read"; else echo "$1: refused: $err"; fi; }}
for p in /dev/x /tmp/x /vol/x /bind/x /tm/x; do
  rm -f $p; /busybox mknod $p b {major} {minor} && echo "mknod $p: ok" && try $p $p
done
/busybox mknod /dev/mem c 1 1 && try mem /dev/mem
echo x > /dev/null && echo "null: written"
echo "zero: $(head -c 4 /dev/zero | wc -c)"
echo "urandom: $(head -c 16 /dev/urandom | wc -c)"
echo "full: $(head -c 1 /dev/zero 2>&1 > /dev/full)"
echo "tty: $( (: < /dev/tty) 2>&1)"
echo ===
cat /proc/self/mountinfo
"#
    )
}

/// Runs [`script`] in a container with a named volume at `/vol`, a host directory at `/bind`, a
/// `dev` tmpfs at `/tm` and `flags`; returns `NAME -> result` and the container's mountinfo.
fn run_script(env: &Env, flags: &[&str], dev: (u64, u64)) -> (HashMap<String, String>, String) {
    let host_dir = env.path("host-dir");
    std::fs::create_dir_all(&host_dir).unwrap();
    let bind = format!("{}:/bind", host_dir.display());
    let script = script(dev.0, dev.1);
    let mut args = vec![
        "run", "--rm", "-v", BB, "-v", "vol:/vol", "-v", &bind, "--tmpfs", "/tm:dev",
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["sample", "sh", "-c", &script]);
    let out = env.ok(&args);
    let (results, mountinfo) = out.split_once("===\n").unwrap_or_else(|| panic!("{out}"));
    let map = results
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (map, mountinfo.to_string())
}

/// The options of the top mount at `mp` in `mountinfo`.
fn options_at<'a>(mountinfo: &'a str, mp: &str) -> &'a str {
    mountinfo
        .lines()
        .rev()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&mp))
        .and_then(|f| f.get(5).copied())
        .unwrap_or_else(|| panic!("no mount at {mp}: {mountinfo}"))
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_node_of_a_host_disk_made_in_the_container_cannot_be_read() {
    require_root();
    assert!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install busybox-static (cargo xtask ci does)"
    );
    with_sample(|env| {
        // A host block device the test itself can read (so the --privileged control below can read
        // it too); else a loop device of its own; else the disk, unreadable even on the host (the
        // refusal is still checked: nodev's EACCES, not the host's own refusal).
        let disks = host_block_devices(env.dir.path());
        let mut _loop = None;
        let (major, minor, readable) = match disks.iter().find(|d| host_can_read(d.0, d.1)) {
            Some(&(major, minor)) => (major, minor, true),
            None => match loop_device(&env.path("loop.img")) {
                Ok(l) => {
                    let d = (l.major, l.minor, true);
                    _loop = Some(l);
                    d
                }
                Err(why) => match disks.first() {
                    Some(&(major, minor)) => {
                        println!(
                            "the host cannot read its own disks and has no loop device ({why}): \
                             the --privileged control is skipped"
                        );
                        (major, minor, false)
                    }
                    None => {
                        println!("skipped: no block device on this host to make a node of ({why})");
                        return;
                    }
                },
            },
        };
        let what = if _loop.is_some() {
            "the test's loop device"
        } else {
            "a disk"
        };
        println!("the host's block device: {what}, {major}:{minor} (the host's disks: {disks:?})");
        let (r, mountinfo) = run_script(env, &[], (major, minor));
        let show = format!("{r:#?}");
        for p in ["/dev/x", "/tmp/x", "/vol/x", "/bind/x", "/tm/x"] {
            assert_eq!(
                r.get(&format!("mknod {p}")).map(String::as_str),
                Some("ok"),
                "{show}"
            );
            let res = r.get(p).unwrap_or_else(|| panic!("no result for {p}: {show}"));
            assert!(
                res.starts_with("refused") && res.contains("Permission denied"),
                "{p}: {res}"
            );
        }
        let mem = &r["mem"];
        assert!(mem.contains("Permission denied"), "/dev/mem: {mem}");
        // Every mount a node can be made in is nodev; /dev's own nodes (the host's, bound) and
        // /dev/pts are not.
        for mp in ["/", "/dev", "/tmp", "/vol", "/bind", "/tm"] {
            if mp == "/tmp" && !mountinfo.lines().any(|l| l.split(' ').nth(4) == Some("/tmp")) {
                continue; // /tmp is part of the root filesystem
            }
            let o = options_at(&mountinfo, mp);
            assert!(o.split(',').any(|o| o == "nodev"), "{mp}: {o}");
        }
        for mp in ["/dev/null", "/dev/pts"] {
            let o = options_at(&mountinfo, mp);
            assert!(!o.split(',').any(|o| o == "nodev"), "{mp}: {o}");
        }
        // The usual nodes still behave; /dev/tty cannot be opened: the process has no controlling
        // terminal (ENXIO, as in a Docker container without -t).
        assert_eq!(r["null"], "written", "{show}");
        assert_eq!(r["zero"], "4", "{show}");
        assert_eq!(r["urandom"], "16", "{show}");
        assert!(r["full"].contains("No space left on device"), "{show}");
        assert!(r["tty"].contains("No such device or address"), "{show}");

        // Not a seccomp rule: the same without any filter.
        let node = format!("/busybox mknod /dev/x b {major} {minor} && head -c 512 /dev/x");
        let out = env.run(&[
            "run",
            "--rm",
            "-v",
            BB,
            "--security-opt",
            "seccomp=unconfined",
            "sample",
            "sh",
            "-c",
            &node,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Permission denied"),
            "unconfined: {err}"
        );

        // The control: under --privileged the same nodes are read (host devices are usable, as with
        // Docker's --privileged), so the refusals above are the nodev rule's.
        if !readable {
            return;
        }
        let (r, _) = run_script(env, &["--privileged"], (major, minor));
        let show = format!("{r:#?}");
        for p in ["/dev/x", "/tmp/x", "/vol/x", "/bind/x", "/tm/x"] {
            assert_eq!(r.get(p).map(String::as_str), Some("read"), "{p}: {show}");
        }
    });
}

/// Set in the container by [`tiocsti_is_refused_to_the_container`]: [`tiocsti_helper`] then does the
/// work; without it, that test function returns at once.
const HELPER_ENV: &str = "MOUNTKIT_TEST_TIOCSTI_HELPER";

/// `ioctl(fd, TIOCSTI, "x")`: pushes `x` into the input of the terminal `fd` is (legacy; refused
/// unless it is the caller's controlling terminal or the caller has `CAP_SYS_ADMIN`, and on Linux 6.2+
/// with `dev.tty.legacy_tiocsti = 0` refused unless the caller has `CAP_SYS_ADMIN`). Only a system
/// call: it runs in a forked child of a threaded process too.
fn tiocsti(fd: i32) -> Result<(), i32> {
    let c = b'x';
    // SAFETY: TIOCSTI reads one byte at the pointer, which is valid for the call.
    if unsafe { libc::ioctl(fd, libc::TIOCSTI, &c as *const u8) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Not a test of its own: the program run *inside* the container by
/// [`tiocsti_is_refused_to_the_container`]. That test binds this test binary (static, as every
/// binary of the workspace: no loader or library is needed in the image) into the container and
/// runs it as `/helper tiocsti_helper --exact --nocapture` with [`HELPER_ENV`] set, so that the
/// container has a program making the `TIOCSTI` call (busybox has none). It reports on stdout
/// whether descriptor 0 is a terminal, the `TIOCSTI` result and what opening `/dev/tty` gives. In an
/// ordinary test run the variable is unset and it returns at once.
#[test]
fn tiocsti_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    // SAFETY: isatty on descriptor 0.
    println!("isatty: {}", unsafe { libc::isatty(0) });
    match tiocsti(0) {
        Ok(()) => println!("tiocsti: ok"),
        Err(e) => println!("tiocsti: errno {e}"),
    }
    match std::fs::File::open("/dev/tty") {
        Ok(_) => println!("dev-tty: opened"),
        Err(e) => println!("dev-tty: errno {}", e.raw_os_error().unwrap_or(0)),
    }
}

/// Bytes waiting to be read on terminal `fd` (`FIONREAD`).
fn queued(fd: i32) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) }, 0);
    n
}

/// A new pseudo-terminal: `(master, slave)`, the slave in raw mode (no line buffering, no echo), so
/// that a pushed byte is readable at once and `FIONREAD` counts it.
fn raw_pty() -> (OwnedFd, OwnedFd) {
    // SAFETY: plain libc calls on descriptors this test owns.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(master >= 0);
        let master = OwnedFd::from_raw_fd(master);
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0);
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(master.as_raw_fd())).to_owned();
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(slave >= 0);
        let slave = OwnedFd::from_raw_fd(slave);
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
        (master, slave)
    }
}

/// The control: a process with the pty as its controlling terminal and, like the container's, without
/// `CAP_SYS_ADMIN` (a forked child: `setsid`, `TIOCSCTTY`, then uid and gid 65534, which drops every
/// capability) calls [`tiocsti`]; the errno it got, or `None` when the byte went in.
fn tiocsti_from_the_ptys_session(slave: i32) -> Option<i32> {
    // SAFETY: the child makes system calls only (async-signal-safe) and leaves with _exit.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            if libc::setsid() < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
                libc::_exit(200);
            }
            if libc::setresgid(65534, 65534, 65534) < 0 || libc::setresuid(65534, 65534, 65534) < 0 {
                libc::_exit(201);
            }
            libc::_exit(match tiocsti(slave) {
                Ok(()) => 0,
                Err(e) => e.clamp(1, 199),
            });
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "control child: status {status:#x}");
        match libc::WEXITSTATUS(status) {
            0 => None,
            c @ (200 | 201) => panic!("control child could not set up its session ({c})"),
            e => Some(e),
        }
    }
}

/// Runs the helper ([`tiocsti_helper`]) in a container with `flag` (`-i` or `-t`), `mountkit`
/// started as a shell in a terminal would start it: its own session, the pty (`slave`) as its
/// controlling terminal and its standard input. Returns the container's output.
fn helper_on_the_pty(env: &Env, slave: &OwnedFd, helper: &str, flag: &str) -> String {
    let mut cmd = env.cmd();
    let set = format!("{HELPER_ENV}=1");
    cmd.args(["run", "--rm", flag, "-v", helper, "-e", &set, "sample", "/helper"]);
    cmd.args(["tiocsti_helper", "--exact", "--nocapture"]);
    cmd.stdin(std::fs::File::from(slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("spawn mountkit");
    // A terminal's output ends its lines with \r\n.
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    println!("the helper in the container ({flag}):\n{text}");
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The value of the helper's `KEY: value` line (on a terminal that echoes, a pushed `x` may come
/// before it).
fn field_of<'a>(text: &'a str, key: &str) -> &'a str {
    let key = format!("{key}: ");
    text.lines()
        .find_map(|l| l.split_once(&key).map(|(_, v)| v))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// Issue 12: started from a terminal (the pty is `mountkit`'s controlling terminal and, with `-i`,
/// the container's standard input), the container's process leads its own session without a
/// controlling terminal, so its `TIOCSTI` on that terminal is refused and nothing reaches the pty.
/// With `-t` it has a terminal of its own, and what it pushes there stays there.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn tiocsti_is_refused_to_the_container() {
    require_root();
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    let (master, slave) = raw_pty();
    let (sfd, _master) = (slave.as_raw_fd(), master);
    // The control, on the same pty: from its own session, without CAP_SYS_ADMIN.
    match tiocsti_from_the_ptys_session(sfd) {
        None => {
            assert!(legacy, "TIOCSTI worked with dev.tty.legacy_tiocsti = 0");
            assert_eq!(queued(sfd), 1, "the control's byte did not reach the pty");
            // SAFETY: discards the pty's pending input.
            assert_eq!(unsafe { libc::tcflush(sfd, libc::TCIFLUSH) }, 0);
        }
        Some(e) => {
            assert!(
                !legacy,
                "the control's TIOCSTI failed (errno {e}) though legacy TIOCSTI is on"
            );
            println!(
                "this kernel refuses TIOCSTI without CAP_SYS_ADMIN even on the caller's own terminal \
                 (dev.tty.legacy_tiocsti = 0, errno {e}): the control proves nothing here; the \
                 container's refusal is still checked"
            );
        }
    }
    assert_eq!(queued(sfd), 0);
    let exe = std::env::current_exe().unwrap();
    let helper = format!("{}:/helper:ro", exe.display());
    with_sample(|env| {
        // -i: the container's stdin is mountkit's (the pty), not /dev/null.
        let text = helper_on_the_pty(env, &slave, &helper, "-i");
        let field = |k: &str| field_of(&text, k);
        assert_eq!(
            field("isatty"),
            "1",
            "the container's stdin is not the pty: {text}"
        );
        let refused = [libc::EPERM, libc::EIO].map(|e| format!("errno {e}"));
        assert!(
            refused.contains(&field("tiocsti").to_string()),
            "the container's TIOCSTI was not refused: {text}"
        );
        assert_eq!(field("dev-tty"), format!("errno {}", libc::ENXIO), "{text}");
        assert_eq!(queued(sfd), 0, "the container's byte reached the pty");
        // With -t (and no -i, so nothing reads the outer pty), the container's terminal is its own
        // pty: TIOCSTI there is the container's business (it is its controlling terminal, and
        // /dev/tty opens), and still nothing reaches the outer pty.
        let text = helper_on_the_pty(env, &slave, &helper, "-t");
        assert_eq!(field_of(&text, "isatty"), "1", "{text}");
        assert_eq!(field_of(&text, "dev-tty"), "opened", "{text}");
        println!(
            "-t: TIOCSTI on the container's own pty: {}",
            field_of(&text, "tiocsti")
        );
    });
    assert_eq!(queued(sfd), 0, "the container's byte reached the pty");
}
