//! Privileged tests of `Spec::tty` and `Spec::stdin`: a root of the host's static busybox, the
//! container process spawned in this test process (nextest runs each test in a process of its own).

use std::os::fd::OwnedFd;

mod common;

use common::busybox_root;
use mountkit_ns_runner::{Exit, Spec, Stdin, TtySize, spawn};

fn sh(script: &str) -> Spec {
    Spec::new(["/bin/busybox", "sh", "-c", script]).env("PATH=/bin")
}

/// Everything the master gives until the slave's last holder is gone (EIO).
fn read_all(master: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(master, &mut buf) {
            Ok(0) | Err(rustix::io::Errno::IO) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("read the master: {e}"),
        }
    }
    String::from_utf8_lossy(&out).replace('\r', "")
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn tty_is_a_pty_of_the_containers_own_devpts() {
    mountkit_testutil::require_root();
    let (_dir, root) = busybox_root();
    let script = "busybox tty; busybox stty size; \
                  echo uid=$(busybox stat -c %u $(busybox tty)); \
                  echo through-dev-tty > /dev/tty; \
                  [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-three; exit 3";
    let spec = sh(script)
        .user("1000:1000")
        .tty(true, Some(TtySize { rows: 33, cols: 101 }));
    let r = root.clone();
    let mut running = spawn(&spec, Box::new(move || Ok(r))).unwrap();
    let master = running.take_tty().expect("a master with Spec::tty");
    assert!(running.take_tty().is_none(), "taken once");
    let out = read_all(&master);
    assert_eq!(running.wait().unwrap(), Exit::Code(3), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    // A new devpts instance: its first pty, whatever the host's devpts holds.
    assert_eq!(lines.first(), Some(&"/dev/pts/0"), "{out}");
    assert!(lines.contains(&"33 101"), "the size set before exec: {out}");
    assert!(lines.contains(&"uid=1000"), "the user owns its terminal: {out}");
    assert!(
        lines.contains(&"through-dev-tty"),
        "the controlling terminal: {out}"
    );
    assert!(lines.contains(&"all-three"), "stdin, stdout and stderr: {out}");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn stdin_null_gives_end_of_file_and_inherit_keeps_the_callers() {
    mountkit_testutil::require_root();
    let (_dir, root) = busybox_root();
    // This process's stdin becomes a pipe that stays open: `cat` on it would wait forever.
    let (r, w) = rustix::pipe::pipe().unwrap();
    rustix::stdio::dup2_stdin(&r).unwrap();
    let script = "busybox cat; echo cat=$? dev=$(busybox stat -L -c %t:%T /proc/self/fd/0) > /tmp/out";
    let rr = root.clone();
    let spec = sh(script).stdin(Stdin::Null);
    assert_eq!(
        spawn(&spec, Box::new(move || Ok(rr))).unwrap().wait().unwrap(),
        Exit::Code(0)
    );
    let out = std::fs::read_to_string(root.join("tmp/out")).unwrap();
    assert_eq!(out.trim(), "cat=0 dev=1:3", "/dev/null (1:3) as stdin");
    // Inherited: what is written to the pipe reaches the command.
    rustix::io::write(&w, b"typed\n").unwrap();
    drop(w);
    let rr = root.clone();
    let spec = sh("busybox cat > /tmp/in").stdin(Stdin::Inherit);
    assert_eq!(
        spawn(&spec, Box::new(move || Ok(rr))).unwrap().wait().unwrap(),
        Exit::Code(0)
    );
    assert_eq!(std::fs::read_to_string(root.join("tmp/in")).unwrap(), "typed\n");
}
