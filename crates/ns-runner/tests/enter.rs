//! Privileged tests of `Target` (entering a running container): a root of the host's static busybox,
//! the container spawned in this test process (nextest runs each test in a process of its own).

use std::path::{Path, PathBuf};

mod common;

use common::busybox_root;
use mountkit_ns_runner::{Error, Exit, Network, Spec, Target, spawn};

fn sh(script: &str) -> Spec {
    Spec::new(["/bin/busybox", "sh", "-c", script]).env("PATH=/bin")
}

fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn link(pid: i32, name: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/{name}")).unwrap()
}

fn status_field(pid: i32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn exec_joins_the_containers_namespaces_and_root() {
    mountkit_testutil::require_root();
    let (_dir, root) = busybox_root();
    let r = root.clone();
    let spec = sh("echo mark > /tmp/mark; exec busybox sleep 1000")
        .hostname("box")
        .network(Network::None);
    let container = spawn(&spec, Box::new(move || Ok(r))).unwrap();
    let pid = container.pid();
    wait_for(&root.join("tmp/mark"));
    let target = Target::open(pid).unwrap();
    assert_eq!(target.pid(), pid);
    // Read through the pin: the container's mounts, its root the bind of `root`.
    let mountinfo = target.read("mountinfo").unwrap();
    let top = mountinfo.lines().rfind(|l| l.split(' ').nth(4) == Some("/"));
    assert!(
        top.and_then(|l| l.split(' ').nth(3))
            .is_some_and(|r| r.ends_with("/root")),
        "{mountinfo}"
    );

    // The new process: in every namespace of the container, at its root, as the spec's user.
    let script = "{ busybox hostname; cat /tmp/mark; busybox pwd; echo $$; } > /tmp/o; busybox mv /tmp/o /tmp/out; exec busybox sleep 1000";
    let exec = target.exec(&sh(script).user("1000:1000")).unwrap();
    wait_for(&root.join("tmp/out"));
    let out = std::fs::read_to_string(root.join("tmp/out")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["box", "mark", "/"], "{out}");
    let inner: i32 = lines[3].parse().unwrap();
    assert!(inner > 1, "not PID 1 of the container: {out}");
    for ns in ["mnt", "uts", "ipc", "net", "pid"] {
        assert_eq!(
            link(exec.pid(), &format!("ns/{ns}")),
            link(pid, &format!("ns/{ns}")),
            "{ns}"
        );
    }
    let me = std::process::id() as i32;
    assert_ne!(link(exec.pid(), "ns/net"), link(me, "ns/net"));
    assert_eq!(link(exec.pid(), "ns/user"), link(me, "ns/user"));
    // This process's own later children stay in its PID namespace.
    assert_eq!(link(me, "ns/pid_for_children"), link(me, "ns/pid"));
    assert_eq!(
        status_field(exec.pid(), "NSpid"),
        format!("{}\t{inner}", exec.pid())
    );
    assert_eq!(status_field(exec.pid(), "Uid").split('\t').next(), Some("1000"));
    // The caller's child, not the container's PID 1's.
    assert_eq!(status_field(exec.pid(), "PPid"), me.to_string());
    exec.signal(libc::SIGKILL).unwrap();
    assert_eq!(exec.wait().unwrap(), Exit::Signal(libc::SIGKILL));

    // Statuses and exec errors as `spawn`'s; a working directory is not created.
    assert_eq!(target.exec(&sh("exit 5")).unwrap().wait().unwrap(), Exit::Code(5));
    let e = target.exec(&Spec::new(["nosuch"]).env("PATH=/bin")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let e = target.exec(&sh("true").workdir("/nowhere")).unwrap_err();
    assert!(
        e.to_string().contains("/nowhere") && !root.join("nowhere").exists(),
        "{e}"
    );

    // Detached: descriptors 0-2 are the container's /dev/null.
    let detached = target
        .exec_detached(&sh("exec busybox sleep 1000").stdin(mountkit_ns_runner::Stdin::Null))
        .unwrap();
    for fd in 0..3 {
        assert_eq!(
            link(detached, &format!("fd/{fd}")),
            Path::new("/dev/null"),
            "fd {fd}"
        );
    }

    // The container ends, and the detached process with it. The kernel frees the PID namespace (and
    // lets its PID 1 be reaped) only once every process of it was reaped, the detached one too,
    // which is this process's child: reap it first.
    container.signal(libc::SIGKILL).unwrap();
    // SAFETY: waits for this process's own child, killed with its PID namespace.
    assert_eq!(
        unsafe { libc::waitpid(detached, std::ptr::null_mut(), 0) },
        detached
    );
    container.wait().unwrap();
    assert!(target.has_exited());
    let e = target.exec(&sh("true")).unwrap_err();
    assert!(e.is_target_gone(), "{e}");
    assert!(target.read("status").unwrap_err().is_target_gone());
}
