//! `run -t` and `-i` (issue 13): a pty of the container's own, the caller's terminal in raw mode and
//! restored, the window size followed, stdin `/dev/null` without `-i`.
//!
//! `mountkit` runs on a pty that the test opens itself ([`support::Terminal`]), as a shell in a
//! terminal would start it. The sample image has no `tty` or `stty`: the host's static busybox is
//! bound in as `/busybox` (as in `confinement.rs`).

mod support;

use mountkit_testutil::require_root;
use support::{Terminal, kill9, wait_until, with_sample};

const BB: &str = "/bin/busybox:/busybox:ro";

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn run_it_gives_a_pty_that_follows_the_terminal_and_restores_it() {
    require_root();
    with_sample(|env| {
        let term = Terminal::new(40, 120);
        let before = term.settings();
        let mut cmd = env.cmd();
        cmd.args(["run", "--rm", "-it", "-v", BB, "sample", "/busybox", "sh"]);
        let mut child = term.spawn(cmd);
        assert!(term.wait_for("# ", 120), "no prompt: {}", term.output());
        assert!(term.is_raw(), "the caller's terminal is not in raw mode");
        term.type_in("echo tty=$(/busybox tty) size=$(/busybox stty size)\n");
        assert!(term.wait_for("size=40 120", 60), "{}", term.output());
        let out = term.output();
        let tty = out
            .lines()
            .find_map(|l| l.strip_prefix("tty="))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("no tty= line: {out}"));
        let n = tty.strip_prefix("/dev/pts/").expect("a /dev/pts path");
        assert!(n.parse::<u32>().is_ok(), "{tty}");
        // SIGWINCH: the new size reaches the container's terminal (asked again until it has).
        term.resize(50, 132);
        let followed = wait_until(60, || {
            term.type_in("echo now=$(/busybox stty size)\n");
            term.wait_for("now=50 132", 1)
        });
        assert!(followed, "the size did not follow: {}", term.output());
        term.type_in("exit 3\n");
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(3), "{}", term.output());
        assert_eq!(
            term.settings(),
            before,
            "the terminal's settings were not restored"
        );
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_killed_container_leaves_the_terminal_restored() {
    require_root();
    with_sample(|env| {
        let term = Terminal::new(24, 80);
        let before = term.settings();
        let mut cmd = env.cmd();
        cmd.args(["run", "--name", "k", "-it", "-v", BB, "sample", "/busybox", "sh"]);
        let mut child = term.spawn(cmd);
        assert!(term.wait_for("# ", 120), "no prompt: {}", term.output());
        assert!(term.is_raw(), "the caller's terminal is not in raw mode");
        let inspect = env.json(&["container", "inspect", "k"]);
        let pid = inspect[0]["state"]["pid"].as_i64().expect("a pid") as i32;
        kill9(pid);
        assert_eq!(child.wait().unwrap().code(), Some(137), "{}", term.output());
        assert_eq!(
            term.settings(),
            before,
            "the terminal's settings were not restored"
        );
        env.ok(&["container", "rm", "k"]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn without_i_stdin_is_dev_null_and_t_alone_needs_no_terminal() {
    require_root();
    with_sample(|env| {
        // Docker's refusal: -it with a stdin that is no terminal (nothing is created).
        env.fails(
            &["run", "--rm", "-it", "sample", "true"],
            1,
            "the input device is not a TTY",
        );
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "");
        // -t alone: a pty all the same (its output comes through the relay, with the pty's CRLF).
        let out = env.ok(&["run", "--rm", "-t", "-v", BB, "sample", "/busybox", "tty"]);
        let tty = out.trim_end_matches('\r');
        assert!(tty.starts_with("/dev/pts/"), "{out:?}");
        // Without -i, a command that reads stdin sees end of file at once, though the caller's stays
        // open.
        let mut child = env
            .cmd()
            .args(["run", "--rm", "sample", "cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _open = child.stdin.take();
        let mut status = None;
        assert!(
            wait_until(60, || {
                status = child.try_wait().unwrap();
                status.is_some()
            }),
            "cat waited for input"
        );
        assert_eq!(status.unwrap().code(), Some(0));
    });
}
