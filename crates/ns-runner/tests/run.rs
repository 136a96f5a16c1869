//! Privileged tests: real namespaces, real mounts, real pivot_root.
//!
//! Each test builds its own root in a temp dir (copies of the host's `sh` and a few coreutils with the
//! libraries `ldd` lists), runs the runner in a forked process (so the test can capture its stdout,
//! signal it or kill it), and checks afterwards that no mount mentioning the temp dir appeared in the
//! test's mount namespace.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use mountkit_ns_runner::{DEFAULT_PATH, Prepare, Spec, spawn};

const TOOLS: &[&str] = &["sh", "true", "cat", "ls", "id", "sleep", "env", "mkdir", "touch"];

/// A temp dir `t` holding `t/root`, a minimal root filesystem.
struct Rootfs {
    dir: tempfile::TempDir,
    root: PathBuf,
}

fn find_tool(name: &str) -> PathBuf {
    for d in ["/bin", "/usr/bin", "/sbin", "/usr/sbin"] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("host has no {name}");
}

fn copy_with_libs(src: &Path, root: &Path, dest: &Path) {
    let target = root.join(dest.strip_prefix("/").unwrap());
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    if !target.exists() {
        std::fs::copy(src, &target).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    }
    let out = Command::new("ldd").arg(src).output().expect("ldd");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            let t = root.join(&lib[1..]);
            if !t.exists() {
                std::fs::create_dir_all(t.parent().unwrap()).unwrap();
                std::fs::copy(lib, &t).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
            }
        }
    }
}

fn rootfs() -> Rootfs {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    for t in TOOLS {
        copy_with_libs(&find_tool(t), &root, &Path::new("/bin").join(t));
    }
    Rootfs { dir, root }
}

impl Rootfs {
    fn prepare(&self) -> Prepare {
        let root = self.root.clone();
        Box::new(move || Ok(root))
    }
    fn host_mounts(&self) -> Vec<String> {
        let p = self.dir.path().to_string_lossy().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&p))
            .map(str::to_string)
            .collect()
    }
}

/// How a forked runner ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Code(i32),
    Signal(i32),
    Failed(i32, String),
}

/// A runner in a forked process, its stdout going to a file.
struct Forked {
    pid: libc::pid_t,
    lines: BufReader<std::fs::File>,
    stdout: PathBuf,
    container_pid: Option<i32>,
}

fn fork_runner(t: &Rootfs, spec: &Spec, prepare: Prepare, pre: impl FnOnce()) -> Forked {
    let stdout = t.dir.path().join(format!("stdout-{}", std::process::id()));
    let out = std::fs::File::create(&stdout).unwrap();
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        drop(rd);
        unsafe { libc::dup2(out.as_raw_fd(), 1) };
        pre();
        let say = |s: String| unsafe {
            libc::write(wr.as_raw_fd(), s.as_ptr().cast(), s.len());
        };
        let line = match spawn(spec, prepare) {
            Ok(r) => {
                say(format!("pid {}\n", r.pid()));
                match r.wait() {
                    Ok(mountkit_ns_runner::Exit::Code(c)) => format!("code {c}\n"),
                    Ok(mountkit_ns_runner::Exit::Signal(s)) => format!("signal {s}\n"),
                    Err(e) => format!("error {} {}\n", e.exit_code(), e.to_string().replace('\n', " ")),
                }
            }
            Err(e) => format!("error {} {}\n", e.exit_code(), e.to_string().replace('\n', " ")),
        };
        say(line);
        unsafe { libc::_exit(0) };
    }
    drop(wr);
    let mut f = Forked {
        pid,
        lines: BufReader::new(std::fs::File::from(rd)),
        stdout,
        container_pid: None,
    };
    f.container_pid = None;
    f
}

impl Forked {
    fn next_line(&mut self) -> String {
        let mut l = String::new();
        self.lines.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }

    /// Reads the "pid N" line (None when spawn failed; the failure line is kept for `finish`).
    fn wait_spawned(&mut self) -> Option<i32> {
        let l = self.next_line();
        match l.strip_prefix("pid ") {
            Some(p) => {
                self.container_pid = Some(p.parse().unwrap());
                self.container_pid
            }
            None => panic!("spawn failed: {l}"),
        }
    }

    fn finish(mut self) -> (Outcome, String) {
        let mut l = self.next_line();
        if l.starts_with("pid ") {
            l = self.next_line();
        }
        let mut status = 0;
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        let outcome = if let Some(c) = l.strip_prefix("code ") {
            Outcome::Code(c.parse().unwrap())
        } else if let Some(s) = l.strip_prefix("signal ") {
            Outcome::Signal(s.parse().unwrap())
        } else if let Some(rest) = l.strip_prefix("error ") {
            let (code, msg) = rest.split_once(' ').unwrap();
            Outcome::Failed(code.parse().unwrap(), msg.to_string())
        } else {
            panic!("runner process gave no result (status {status:#x}): {l:?}");
        };
        let mut out = String::new();
        std::fs::File::open(&self.stdout)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (outcome, out)
    }
}

/// Runs `spec` over `t`'s root and returns the outcome and the command's stdout; checks no mount leaked.
fn run_with(t: &Rootfs, spec: &Spec, prepare: Prepare, pre: impl FnOnce()) -> (Outcome, String) {
    let before = t.host_mounts();
    let res = fork_runner(t, spec, prepare, pre).finish();
    assert_eq!(t.host_mounts(), before, "mounts leaked into the test's namespace");
    assert!(before.is_empty(), "{before:?}");
    res
}

fn run(t: &Rootfs, spec: &Spec) -> (Outcome, String) {
    run_with(t, spec, t.prepare(), || {})
}

/// [`run`], asserting that the command exited 0; returns its output.
#[track_caller]
fn run_ok(t: &Rootfs, spec: &Spec) -> String {
    let (o, out) = run(t, spec);
    assert_eq!(o, Outcome::Code(0), "{out}");
    out
}

/// Asserts that `o` is a setup failure with exit status `code` whose message contains each of `needles`.
#[track_caller]
fn assert_failed(o: Outcome, code: i32, needles: &[&str]) {
    match o {
        Outcome::Failed(c, msg) if c == code => {
            for n in needles {
                assert!(msg.contains(n), "{n:?} not in {msg:?}");
            }
        }
        other => panic!("expected a failure with status {code}, got {other:?}"),
    }
}

fn sh(script: &str) -> Spec {
    Spec::new(["sh", "-c", script])
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn true_exits_zero() {
    mountkit_testutil::require_root();
    let t = rootfs();
    assert_eq!(run(&t, &Spec::new(["true"])).0, Outcome::Code(0));
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn exit_status_is_passed_through() {
    mountkit_testutil::require_root();
    let t = rootfs();
    assert_eq!(run(&t, &sh("exit 7")).0, Outcome::Code(7));
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn killed_by_signal_is_reported_as_signal() {
    mountkit_testutil::require_root();
    let t = rootfs();
    // Inside its namespace PID 1 cannot even be SIGKILLed; from the host it can.
    let mut f = fork_runner(&t, &sh("touch /ready; sleep 1000"), t.prepare(), || {});
    let pid = f.wait_spawned().unwrap();
    wait_for(&t.root.join("ready"), "the container's ready file");
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert_eq!(f.finish().0, Outcome::Signal(libc::SIGKILL));
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn missing_command_is_not_found_127() {
    mountkit_testutil::require_root();
    let t = rootfs();
    assert_failed(
        run(&t, &Spec::new(["no-such-command"])).0,
        127,
        &["no-such-command"],
    );
    assert_failed(
        run(&t, &Spec::new(["/bin/no-such-command"])).0,
        127,
        &["no such file or directory"],
    );
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn non_executable_file_cannot_execute_126() {
    mountkit_testutil::require_root();
    let t = rootfs();
    std::fs::write(t.root.join("bin/plain"), "not a program").unwrap();
    std::fs::set_permissions(t.root.join("bin/plain"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_failed(
        run(&t, &Spec::new(["/bin/plain"])).0,
        126,
        &["/bin/plain", "ermission"],
    );
    // Found through PATH but not executable: still 126, not 127.
    assert_failed(run(&t, &Spec::new(["plain"])).0, 126, &[]);
    // An executable file with no valid format.
    std::fs::set_permissions(t.root.join("bin/plain"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(t.root.join("bin/plain"), [0u8, 1, 2, 3]).unwrap();
    assert_failed(run(&t, &Spec::new(["/bin/plain"])).0, 126, &[]);
    // A directory.
    assert_failed(run(&t, &Spec::new(["/etc"])).0, 126, &[]);
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn failing_prepare_is_setup_error_125() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let prepare: Prepare = Box::new(|| Err("volume todo-list: cannot mount: device busy".into()));
    assert_failed(
        run_with(&t, &Spec::new(["true"]), prepare, || {}).0,
        125,
        &["prepare", "volume todo-list: cannot mount: device busy"],
    );
}

/// The preparation's own error comes back from `spawn` typed (`Error::Prepare`), so a caller can tell
/// its errors apart (downcast) instead of reading text.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn failing_prepare_comes_back_typed() {
    mountkit_testutil::require_root();
    #[derive(Debug, PartialEq)]
    struct Busy(&'static str);
    impl std::fmt::Display for Busy {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "volume {}: cannot mount: device busy", self.0)
        }
    }
    impl std::error::Error for Busy {}
    mountkit_testutil::in_mount_ns(|| {
        let t = rootfs();
        let prepare: Prepare = Box::new(|| Err(Box::new(Busy("todo-list"))));
        let err = match spawn(&Spec::new(["true"]), prepare) {
            Err(e) => e,
            Ok(_) => panic!("a failing preparation must fail the spawn"),
        };
        assert_eq!(err.exit_code(), 125);
        assert!(
            err.to_string().contains("volume todo-list: cannot mount"),
            "{err}"
        );
        match err {
            mountkit_ns_runner::Error::Prepare { source } => {
                assert_eq!(source.downcast_ref::<Busy>(), Some(&Busy("todo-list")));
            }
            other => panic!("expected Error::Prepare, got {other:?}"),
        }
        drop(t);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn prepare_runs_in_the_new_mount_namespace() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let data = t.root.join("data");
    std::fs::create_dir(&data).unwrap();
    let prepare: Prepare = Box::new(move || {
        let c = std::ffi::CString::new(data.to_str().unwrap()).unwrap();
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(format!("mount tmpfs: {}", std::io::Error::last_os_error()).into());
        }
        std::fs::write(data.join("in-tmpfs"), "x")?;
        Ok(data.parent().unwrap().to_path_buf())
    });
    let (o, out) = run_with(&t, &sh("ls /data"), prepare, || {});
    assert_eq!(o, Outcome::Code(0));
    assert_eq!(out.trim(), "in-tmpfs");
    assert!(
        !t.root.join("data/in-tmpfs").exists(),
        "the tmpfs leaked to the host"
    );
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn pid_1_and_own_proc() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let (o, out) = run(&t, &sh("echo $$; ls /proc"));
    assert_eq!(o, Outcome::Code(0));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    let pids: Vec<u32> = lines.filter_map(|l| l.parse().ok()).collect();
    assert!(pids.contains(&1), "{pids:?}");
    assert!(pids.iter().all(|p| *p <= 3), "host processes visible: {pids:?}");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn hostname_is_set() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let (o, out) = run(
        &t,
        &sh("cat /proc/sys/kernel/hostname; echo $HOSTNAME").hostname("box-1"),
    );
    assert_eq!(o, Outcome::Code(0));
    assert_eq!(out, "box-1\nbox-1\n");
}

fn mount_points(mountinfo: &str) -> Vec<(String, String, String)> {
    // (mount point, options, fstype)
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((f[4].to_string(), f[5].to_string(), f[sep + 1].to_string()))
        })
        .collect()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn dev_and_sys_are_set_up() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let script = "ls -a /dev; echo data > /dev/null && echo null-ok; \
                  mkdir /sys/x 2>/dev/null && echo sys-writable || echo sys-ro; \
                  echo ===; ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; \
                  echo ===; cat /proc/self/mountinfo";
    let out = run_ok(&t, &sh(script));
    let (ls, rest) = out.split_once("===\n").unwrap();
    let (long, mi) = rest.split_once("===\n").unwrap();
    // Character devices, mode 0666, with the kernel's numbers for each name.
    for (name, numbers) in [
        ("null", "1, 3"),
        ("zero", "1, 5"),
        ("full", "1, 7"),
        ("random", "1, 8"),
        ("urandom", "1, 9"),
        ("tty", "5, 0"),
    ] {
        let line = long
            .lines()
            .find(|l| l.ends_with(&format!("/dev/{name}")))
            .unwrap_or_else(|| panic!("no /dev/{name} in {long}"));
        assert!(line.starts_with("crw-rw-rw-"), "{line}");
        assert!(line.contains(numbers), "{line}");
    }
    for n in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin", "stdout",
        "stderr", "null-ok", "sys-ro",
    ] {
        assert!(ls.lines().any(|l| l == n), "missing {n} in {ls}");
    }
    let mps = mount_points(mi);
    let find = |mp: &str| {
        mps.iter()
            .find(|m| m.0 == mp)
            .unwrap_or_else(|| panic!("no mount at {mp}: {mi}"))
    };
    assert_eq!(find("/proc").2, "proc");
    assert_eq!(find("/dev").2, "tmpfs");
    assert_eq!(find("/dev/pts").2, "devpts");
    assert_eq!(find("/dev/shm").2, "tmpfs");
    assert!(find("/sys").1.split(',').any(|o| o == "ro"), "{:?}", find("/sys"));
    assert!(find("/proc").1.contains("nosuid"));
    // Docker's read-only and masked paths.
    assert!(
        find("/proc/sys").1.split(',').any(|o| o == "ro"),
        "{:?}",
        find("/proc/sys")
    );
    for p in [
        "/proc/sysrq-trigger",
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
    ] {
        if Path::new(p).exists() {
            assert!(find(p).1.split(',').any(|o| o == "ro"), "{:?}", find(p));
        }
    }
    if Path::new("/sys/firmware").is_dir() {
        assert_eq!(find("/sys/firmware").2, "tmpfs");
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn proc_sys_is_read_only_and_timer_list_masked() {
    mountkit_testutil::require_root();
    let t = rootfs();
    std::fs::copy(find_tool("wc"), t.root.join("bin/wc")).unwrap();
    assert!(
        std::fs::read("/proc/timer_list").is_ok_and(|b| !b.is_empty()),
        "host has a /proc/timer_list"
    );
    // The hostname is the container's own (UTS namespace): without the read-only bind, this write
    // would succeed, harmlessly.
    let script = "(echo other > /proc/sys/kernel/hostname) 2>/dev/null && echo sys-writable || echo sys-ro; \
                  cat /proc/timer_list 2>/dev/null | wc -c; ls /proc/self/ns >/dev/null && echo proc-ok";
    let out = run_ok(&t, &sh(script));
    assert_eq!(out, "sys-ro\n0\nproc-ok\n");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn pivot_root_hides_the_host() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let marker = t.dir.path().join("host-marker");
    std::fs::write(&marker, "secret").unwrap();
    let script = format!(
        "cat {} 2>/dev/null && echo LEAK || echo hidden; ls /; echo ===; cat /proc/self/mountinfo",
        marker.display()
    );
    let out = run_ok(&t, &sh(&script));
    let (head, mi) = out.split_once("===\n").unwrap();
    assert!(head.starts_with("hidden\n"), "{head}");
    assert!(
        !head.contains("host-marker") && !head.contains("root\n"),
        "{head}"
    );
    for (mp, _, fstype) in mount_points(mi) {
        let ok = mp == "/"
            || ["/proc", "/dev", "/sys"]
                .iter()
                .any(|p| mp == *p || mp.starts_with(&format!("{p}/")));
        assert!(ok, "host mount visible in the container: {mp} ({fstype})\n{mi}");
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn numeric_user_and_group() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let (o, out) = run(&t, &sh("id -u; id -g; id -G; echo $HOME").user("1000:1000"));
    assert_eq!(o, Outcome::Code(0));
    assert_eq!(out, "1000\n1000\n1000\n/\n");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn named_user_from_the_images_passwd() {
    mountkit_testutil::require_root();
    let t = rootfs();
    std::fs::write(
        t.root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        t.root.join("etc/group"),
        "root:x:0:\napp:x:2345:\nextra:x:3000:app\n",
    )
    .unwrap();
    let (o, out) = run(
        &t,
        &sh("id -u; id -g; id -G; echo $HOME").user("app").group("777"),
    );
    assert_eq!(o, Outcome::Code(0));
    assert_eq!(out, "1234\n2345\n2345 777 3000\n/home/app\n");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn unknown_user_is_a_clear_error() {
    mountkit_testutil::require_root();
    let t = rootfs();
    std::fs::write(t.root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    assert_failed(
        run(&t, &Spec::new(["true"]).user("app")).0,
        125,
        &["unable to find user app: no matching entries in passwd file"],
    );
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn default_path_and_home() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let (o, out) = run(&t, &sh("echo $PATH; echo $HOME"));
    assert_eq!(o, Outcome::Code(0));
    assert_eq!(out, format!("{DEFAULT_PATH}\n/root\n"));
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn given_environment_is_passed_exactly() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let spec = Spec::new(["env"])
        .env("A=1")
        .env("PATH=/bin")
        .env("HOME=/x")
        .env("EMPTY=");
    let out = run_ok(&t, &spec);
    assert_eq!(out, "A=1\nPATH=/bin\nHOME=/x\nEMPTY=\n");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn workdir_is_created_and_entered() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let out = run_ok(&t, &sh("pwd").workdir("/work/here").user("1000"));
    assert_eq!(out, "/work/here\n");
    let md = std::fs::metadata(t.root.join("work/here")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&md),
        0,
        "workdir must be owned by root"
    );
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn readonly_root_keeps_dev_writable() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let script = "touch /x 2>/dev/null && echo rw || echo ro; touch /dev/shm/y && echo shm-ok";
    let out = run_ok(&t, &sh(script).readonly_root(true));
    assert_eq!(out, "ro\nshm-ok\n");
    assert!(!t.root.join("x").exists());
    let (_, out) = run(&t, &sh("touch /x && echo rw"));
    assert_eq!(out, "rw\n", "without readonly_root the root is writable");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn parent_fds_are_not_inherited() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let leak = t.dir.path().join("leak");
    std::fs::write(&leak, "x").unwrap();
    let pre = move || {
        let c = std::ffi::CString::new(leak.to_str().unwrap()).unwrap();
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) }; // no O_CLOEXEC
        assert!(fd >= 0 && unsafe { libc::dup2(fd, 77) } == 77);
        assert_eq!(unsafe { libc::fcntl(77, libc::F_GETFD) } & libc::FD_CLOEXEC, 0);
    };
    let (o, out) = run_with(&t, &Spec::new(["ls", "/proc/self/fd"]), t.prepare(), pre);
    assert_eq!(o, Outcome::Code(0));
    let fds: Vec<&str> = out.lines().collect();
    assert!(fds.contains(&"0") && fds.contains(&"1"), "{fds:?}");
    assert!(!fds.contains(&"77"), "fd 77 leaked into the container: {fds:?}");
    assert!(fds.iter().all(|f| f.parse::<u32>().unwrap() <= 3), "{fds:?}");
}

fn wait_for(path: &Path, what: &str) {
    for _ in 0..6000 {
        if path.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{what} never appeared at {}", path.display());
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn sigterm_to_the_runner_reaches_the_command() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let spec = sh("trap 'exit 42' TERM; touch /ready; sleep 1000 & wait");
    let before = t.host_mounts();
    let mut f = fork_runner(&t, &spec, t.prepare(), || {});
    f.wait_spawned();
    wait_for(&t.root.join("ready"), "the container's ready file");
    assert_eq!(unsafe { libc::kill(f.pid, libc::SIGTERM) }, 0);
    let (o, _) = f.finish();
    assert_eq!(o, Outcome::Code(42));
    assert_eq!(t.host_mounts(), before);
}

fn ns_of(pid: i32, ns: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok()
}

fn processes_in(ns: &str, link: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns_of(*p, ns).as_deref() == Some(link))
        .collect()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn sigkill_of_the_runner_kills_the_container_and_leaks_no_mount() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let spec = sh("sleep 1000 & touch /ready; wait");
    let before = t.host_mounts();
    let mut f = fork_runner(&t, &spec, t.prepare(), || {});
    let pid = f.wait_spawned().unwrap();
    wait_for(&t.root.join("ready"), "the container's ready file");
    let pidns = ns_of(pid, "pid").expect("container pid ns");
    let mntns = ns_of(pid, "mnt").expect("container mount ns");
    assert_ne!(Some(&mntns), ns_of(std::process::id() as i32, "mnt").as_ref());
    assert!(processes_in("pid", &pidns).len() >= 2, "sh and sleep should run");
    assert_eq!(unsafe { libc::kill(f.pid, libc::SIGKILL) }, 0);
    let mut status = 0;
    unsafe { libc::waitpid(f.pid, &mut status, 0) };
    assert!(libc::WIFSIGNALED(status));
    let mut left = Vec::new();
    for _ in 0..3000 {
        left = processes_in("pid", &pidns);
        left.extend(processes_in("mnt", &mntns));
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        left.is_empty(),
        "container processes survived the runner: {left:?}"
    );
    assert_eq!(t.host_mounts(), before);
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn hostile_symlinks_keep_mounts_inside_the_root() {
    mountkit_testutil::require_root();
    let t = rootfs();
    // Targets outside the root that a naive resolution would reach.
    let outside = t.dir.path().join("outside");
    let outside_abs = t.dir.path().join("outside-abs");
    for d in [&outside, &outside_abs] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("marker"), "host").unwrap();
    }
    std::os::unix::fs::symlink("/../../etc", t.root.join("proc")).unwrap();
    std::os::unix::fs::symlink("../outside", t.root.join("dev")).unwrap();
    std::os::unix::fs::symlink(&outside_abs, t.root.join("sys")).unwrap();
    // Their in-root meanings exist, so the run proceeds and the mounts land there.
    std::fs::create_dir(t.root.join("outside")).unwrap();
    let abs_in_root = t.root.join(outside_abs.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&abs_in_root).unwrap();
    let out = run_ok(&t, &sh("cat /proc/self/mountinfo"));
    let mps = mount_points(&out);
    let fstype_at = |mp: &str| mps.iter().find(|m| m.0 == mp).map(|m| m.2.clone());
    assert_eq!(fstype_at("/etc").as_deref(), Some("proc"), "{out}");
    assert_eq!(fstype_at("/outside").as_deref(), Some("tmpfs"), "{out}");
    assert_eq!(
        fstype_at(&outside_abs.to_string_lossy()).as_deref(),
        Some("sysfs"),
        "{out}"
    );
    for d in [&outside, &outside_abs] {
        let names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["marker"],
            "something was created outside the root in {}",
            d.display()
        );
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn dangling_hostile_symlink_is_created_inside_the_root() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let outside = t.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    // `/proc -> ../outside` with no `outside` in the image: resolved inside the root (`..` stops at the
    // root), made there, and proc mounted on it, as runc's in-root MkdirAll does; nothing on the host.
    std::os::unix::fs::symlink("../outside", t.root.join("proc")).unwrap();
    let out = run_ok(&t, &sh("cat /outside/self/mountinfo"));
    let mps = mount_points(&out);
    assert!(
        mps.iter().any(|m| m.0 == "/outside" && m.2 == "proc"),
        "proc is on the in-root target: {out}"
    );
    assert!(t.root.join("outside").is_dir(), "made inside the root");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing made on the host"
    );
}

fn ppid_of(pid: i32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn container_does_not_hold_the_callers_fds() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let leak = t.dir.path().join("leak");
    std::fs::write(&leak, "x").unwrap();
    let pre = move || {
        let c = std::ffi::CString::new(leak.to_str().unwrap()).unwrap();
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
        assert!(fd >= 0 && unsafe { libc::dup2(fd, 77) } == 77);
    };
    let mut f = fork_runner(&t, &sh("touch /ready; sleep 1000"), t.prepare(), pre);
    let pid = f.wait_spawned().unwrap();
    wait_for(&t.root.join("ready"), "the container's ready file");
    assert_eq!(ppid_of(pid), f.pid, "the container process is the runner's child");
    assert!(
        std::fs::read_link(format!("/proc/{}/fd/77", f.pid)).is_ok(),
        "the runner has fd 77"
    );
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !fds.contains(&"77".to_string()),
        "the container holds the caller's fd 77: {fds:?}"
    );
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(f.finish().0, Outcome::Signal(libc::SIGKILL));
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn later_children_of_the_caller_stay_in_its_pid_namespace() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let r = spawn(&sh("touch /ready; sleep 1000"), t.prepare()).unwrap();
    wait_for(&t.root.join("ready"), "the container's ready file");
    let own = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let container = std::fs::read_link(format!("/proc/{}/ns/pid", r.pid())).unwrap();
    assert_ne!(own, container, "the container has its own PID namespace");
    // What this thread forks now is in our namespace, not the container's.
    let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
    let theirs = std::fs::read_link(format!("/proc/{}/ns/pid", child.id()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(theirs.unwrap(), own);
    let for_children = std::fs::read_link("/proc/thread-self/ns/pid_for_children").unwrap();
    assert_eq!(for_children, own);
    r.signal(libc::SIGKILL).unwrap();
    assert_eq!(r.wait().unwrap(), mountkit_ns_runner::Exit::Signal(libc::SIGKILL));
    assert!(t.host_mounts().is_empty());
}

fn current_mask() -> libc::sigset_t {
    unsafe {
        let mut m: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut m);
        m
    }
}

fn blocked(m: &libc::sigset_t, sig: i32) -> bool {
    unsafe { libc::sigismember(m, sig) == 1 }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn signal_mask_is_restored_after_wait_and_drop() {
    mountkit_testutil::require_root();
    let t = rootfs();
    assert!(!blocked(&current_mask(), libc::SIGTERM));
    let r = spawn(&Spec::new(["true"]), t.prepare()).unwrap();
    assert!(
        blocked(&current_mask(), libc::SIGTERM),
        "blocked between spawn and wait"
    );
    assert_eq!(r.wait().unwrap(), mountkit_ns_runner::Exit::Code(0));
    let m = current_mask();
    assert!(!blocked(&m, libc::SIGTERM) && !blocked(&m, libc::SIGINT) && !blocked(&m, libc::SIGHUP));
    let r = spawn(&Spec::new(["true"]), t.prepare()).unwrap();
    let pid = r.pid();
    drop(r);
    assert!(!blocked(&current_mask(), libc::SIGTERM), "restored on drop");
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    // A failed spawn restores it too.
    assert!(spawn(&Spec::new(["no-such"]), t.prepare()).is_err());
    assert!(!blocked(&current_mask(), libc::SIGTERM));
    assert!(t.host_mounts().is_empty());
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn panicking_prepare_is_a_setup_error() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let prepare: Prepare = Box::new(|| panic!("overlay exploded"));
    assert_failed(
        run_with(&t, &Spec::new(["true"]), prepare, || {}).0,
        125,
        &["panicked: overlay exploded"],
    );
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn umask_is_022() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let pre = || {
        unsafe { libc::umask(0o077) };
    };
    let (o, out) = run_with(&t, &sh("umask"), t.prepare(), pre);
    assert_eq!(o, Outcome::Code(0));
    assert_eq!(out.trim(), "0022");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn root_that_is_already_a_mount_point_is_used_as_is() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let mnt = t.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let (src, dst) = (t.root.clone(), mnt.clone());
    let prepare: Prepare = Box::new(move || {
        let s = std::ffi::CString::new(src.to_str().unwrap()).unwrap();
        let d = std::ffi::CString::new(dst.to_str().unwrap()).unwrap();
        let r = unsafe {
            libc::mount(
                s.as_ptr(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(format!("bind: {}", std::io::Error::last_os_error()).into());
        }
        Ok(dst)
    });
    let script = "touch /x 2>/dev/null && echo rw || echo ro; cat /proc/self/mountinfo";
    let (o, out) = run_with(&t, &sh(script).readonly_root(true), prepare, || {});
    assert_eq!(o, Outcome::Code(0));
    let (first, mi) = out.split_once('\n').unwrap();
    assert_eq!(first, "ro");
    let roots: Vec<_> = mount_points(mi).into_iter().filter(|m| m.0 == "/").collect();
    assert_eq!(roots.len(), 1, "{mi}");
    assert!(roots[0].1.split(',').any(|o| o == "ro"), "{roots:?}");
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "the bind stayed in the container's namespace"
    );
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn terminal_ctrl_c_reaches_the_command_once() {
    mountkit_testutil::require_root();
    let t = rootfs();
    // A pseudo-terminal that the runner process takes as its controlling terminal.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(master >= 0);
    assert_eq!(unsafe { libc::grantpt(master) }, 0);
    assert_eq!(unsafe { libc::unlockpt(master) }, 0);
    let slave = unsafe { std::ffi::CStr::from_ptr(libc::ptsname(master)) }.to_owned();
    let pre = move || unsafe {
        assert!(libc::setsid() > 0);
        let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
        assert!(fd >= 0);
        assert_eq!(libc::ioctl(fd, libc::TIOCSCTTY, 0), 0);
    };
    let script = "trap 'echo int >> /ints' INT; touch /ready; \
                  while :; do sleep 0.05 & wait; [ -f /stop ] && exit 5; done";
    let mut f = fork_runner(&t, &sh(script), t.prepare(), pre);
    f.wait_spawned();
    wait_for(&t.root.join("ready"), "the container's ready file");
    // Ctrl-C typed on the terminal: the kernel signals the foreground process group.
    assert_eq!(unsafe { libc::write(master, b"\x03".as_ptr().cast(), 1) }, 1);
    wait_for(&t.root.join("ints"), "the trap's output");
    std::fs::write(t.root.join("stop"), "").unwrap();
    let (o, _) = f.finish();
    assert_eq!(o, Outcome::Code(5));
    assert_eq!(
        std::fs::read_to_string(t.root.join("ints")).unwrap(),
        "int\n",
        "SIGINT delivered twice"
    );
    unsafe { libc::close(master) };
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn running_signal_reaches_the_command() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let spec = sh("trap 'exit 3' HUP; touch /ready; sleep 1000 & wait");
    let r = spawn(&spec, t.prepare()).unwrap();
    assert_eq!(ppid_of(r.pid()), std::process::id() as i32);
    wait_for(&t.root.join("ready"), "the container's ready file");
    r.signal(libc::SIGHUP).unwrap();
    assert_eq!(r.wait().unwrap(), mountkit_ns_runner::Exit::Code(3));
    assert!(t.host_mounts().is_empty());
}

/// The `Uid:` line of every thread of this process (`real effective saved fs`).
fn thread_uids() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("status")).ok())
        .filter_map(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_string))
        .collect()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn switching_user_in_the_container_leaves_the_callers_threads_alone() {
    mountkit_testutil::require_root();
    // The container process shares this process's memory until its exec, where glibc's set*id
    // wrappers would find this process's threads; a second thread is alive across the spawn.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || stop_rx.recv().ok());
    let t = rootfs();
    let before = thread_uids();
    assert!(before.len() >= 2, "{before:?}");
    let r = spawn(&sh("id -u > /tmp/uid").user("1000:1000"), t.prepare()).unwrap();
    assert_eq!(r.wait().unwrap(), mountkit_ns_runner::Exit::Code(0));
    assert_eq!(std::fs::read_to_string(t.root.join("tmp/uid")).unwrap(), "1000\n");
    assert_eq!(thread_uids(), before, "the caller's threads changed credentials");
    assert!(
        before
            .iter()
            .all(|l| l.split_whitespace().skip(1).all(|u| u == "0")),
        "{before:?}"
    );
    stop_tx.send(()).unwrap();
    helper.join().unwrap();
    assert!(t.host_mounts().is_empty());
}

/// A `/proc/self/status` field of the command's process (`exec cat`, so it is PID 1 itself).
fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {out}"))
        .trim()
        .to_string()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn capabilities_follow_the_spec_and_a_non_root_user_has_none_effective() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let default = mountkit_ns_runner::docker_default_capabilities();
    let out = run_ok(
        &t,
        &sh("exec cat /proc/self/status").capabilities(default.clone()),
    );
    for f in ["CapEff", "CapPrm", "CapBnd", "CapInh"] {
        assert_eq!(status_field(&out, f), "00000000a80425fb", "{f}");
    }
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    // runc's order: set*id before the capset, so a set without SETUID/SETGID still switches users.
    let mut no_set_id = default.clone();
    no_set_id.remove(&mountkit_ns_runner::Capability::CAP_SETUID);
    no_set_id.remove(&mountkit_ns_runner::Capability::CAP_SETGID);
    let spec = sh("id -u; exec cat /proc/self/status")
        .user("1000:1000")
        .capabilities(no_set_id)
        .no_new_privs(true);
    let out = run_ok(&t, &spec);
    assert!(out.starts_with("1000\n"), "{out}");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&out, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(&out, "CapBnd"), "00000000a804253b");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    // Without a set, the credentials stay the caller's.
    let mine = std::fs::read_to_string("/proc/self/status").unwrap();
    let out = run_ok(&t, &sh("exec cat /proc/self/status"));
    assert_eq!(status_field(&out, "CapEff"), status_field(&mine, "CapEff"));
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn network_none_has_only_lo_up_and_the_process_leads_its_session() {
    mountkit_testutil::require_root();
    let t = rootfs();
    let spec = sh("ls /sys/class/net; cat /sys/class/net/lo/flags; exec cat /proc/self/stat")
        .network(mountkit_ns_runner::Network::None);
    let out = run_ok(&t, &spec);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo", "{out}");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is down: {out}");
    // pid 1, session 1 (its own), no controlling terminal.
    let rest: Vec<&str> = lines[2].rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(
        (lines[2].split(' ').next().unwrap(), rest[3], rest[4]),
        ("1", "1", "0"),
        "{out}"
    );
}

/// `mount(2)` for the preparations below: `fstype` None is a bind.
fn mount_for_prepare(src: &Path, dst: &Path, fstype: Option<&std::ffi::CStr>) -> std::io::Result<()> {
    let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let (s, d) = (c(src), c(dst));
    let (ty, flags) = match fstype {
        Some(t) => (t.as_ptr(), 0),
        None => (std::ptr::null(), libc::MS_BIND),
    };
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe { libc::mount(s.as_ptr(), d.as_ptr(), ty, flags, std::ptr::null()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A root with `head`, `wc` and `mknod` too, prepared with a tmpfs at `/data` and a bind of a host
/// directory at `/bind`; runs `script` with `privileged` and returns its output.
fn run_with_submounts(privileged: bool, script: &str) -> String {
    let t = rootfs();
    for tool in ["head", "wc", "mknod"] {
        copy_with_libs(&find_tool(tool), &t.root, &Path::new("/bin").join(tool));
    }
    let host_dir = t.dir.path().join("host-dir");
    for d in [&host_dir, &t.root.join("data"), &t.root.join("bind")] {
        std::fs::create_dir(d).unwrap();
    }
    let root = t.root.clone();
    let prepare: Prepare = Box::new(move || {
        mount_for_prepare(Path::new("tmpfs"), &root.join("data"), Some(c"tmpfs"))?;
        mount_for_prepare(&host_dir, &root.join("bind"), None)?;
        Ok(root)
    });
    let (o, out) = run_with(&t, &sh(script).privileged(privileged), prepare, || {});
    assert_eq!(o, Outcome::Code(0), "{out}");
    out
}

/// Makes `/dev/m`, `/data/m` and `/bind/m` (char 1 3, the null device) and writes to each, then
/// writes `/dev/null`, reads 16 bytes of `/dev/urandom`, and prints the mount table after `===`.
const NODE_SCRIPT: &str = "for d in /dev /data /bind; do mknod $d/m c 1 3 || exit 9; \
                           (echo x > $d/m) 2>/dev/null && echo $d/m usable || echo $d/m refused; done; \
                           echo x > /dev/null && echo null-ok; head -c 16 /dev/urandom | wc -c; \
                           echo ===; cat /proc/self/mountinfo";

/// Issue 12: unless privileged, every mount the preparation made under the root, the root itself
/// and the new `/dev` are `nodev`, so a node made with `mknod` in any of them cannot be opened, while
/// `/dev`'s own nodes (the host's, bound) work and `/dev/pts` (ptys) is not `nodev`.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn prepared_mounts_and_dev_are_nodev_and_devs_own_nodes_work() {
    mountkit_testutil::require_root();
    let out = run_with_submounts(false, NODE_SCRIPT);
    let (results, mi) = out.split_once("===\n").unwrap();
    assert_eq!(
        results, "/dev/m refused\n/data/m refused\n/bind/m refused\nnull-ok\n16\n",
        "{out}"
    );
    let mps = mount_points(mi);
    let opts = |mp: &str| {
        let m = mps.iter().rev().find(|m| m.0 == mp);
        m.unwrap_or_else(|| panic!("no mount at {mp}: {mi}")).1.clone()
    };
    let nodev = |mp: &str| opts(mp).split(',').any(|o| o == "nodev");
    for mp in ["/", "/data", "/bind", "/dev", "/dev/shm", "/proc", "/sys"] {
        assert!(nodev(mp), "{mp} is not nodev: {}", opts(mp));
    }
    for mp in ["/dev/pts", "/dev/null", "/dev/urandom", "/dev/tty"] {
        assert!(!nodev(mp), "{mp} is nodev: {}", opts(mp));
    }
}

/// With `privileged`, as with Docker's `--privileged`, a node made in the container works: nothing
/// is made `nodev` that the preparation or the host did not make so.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn privileged_leaves_the_mounts_dev_enabled() {
    mountkit_testutil::require_root();
    let out = run_with_submounts(true, NODE_SCRIPT);
    let (results, mi) = out.split_once("===\n").unwrap();
    assert_eq!(
        results, "/dev/m usable\n/data/m usable\n/bind/m usable\nnull-ok\n16\n",
        "{out}"
    );
    let mps = mount_points(mi);
    for mp in ["/", "/data", "/bind", "/dev"] {
        let m = mps.iter().rev().find(|m| m.0 == mp).unwrap();
        assert!(!m.1.split(',').any(|o| o == "nodev"), "{mp}: {}", m.1);
    }
}
