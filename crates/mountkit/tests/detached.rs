//! Detached containers (issue 13): `run -d` under a monitor, `logs`, `wait`, `stop`, `kill`, `restart`,
//! `start` without `-a`, `--restart`, `--rm`, the monitor killed, many at once.
//!
//! Each test stops and removes what it started: a container left running would keep its monitor (a
//! process of the test's mount namespace) alive after the test.

mod support;

use mountkit_testutil::require_root;
use support::{Env, kill9, wait_until, with_sample};

/// `run -d ARGS`, returning the ID it prints (and asserting that stdout holds nothing else).
fn run_d(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    let id = env.ok(&all);
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "run -d printed {id:?}"
    );
    id
}

fn state(env: &Env, c: &str) -> serde_json::Value {
    env.json(&["container", "inspect", c])[0]["State"].clone()
}

fn ps_status(env: &Env, name: &str) -> String {
    let out = env.ok(&["ps", "-a"]);
    let line = out
        .lines()
        .find(|l| l.trim_end().ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("{name} not in ps -a: {out}"));
    line.to_string()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn run_d_returns_once_running_and_logs_and_wait_see_the_output() {
    require_root();
    with_sample(|env| {
        // The container waits for the test's go-ahead (a file in a bound directory), so it is
        // certainly running when inspected.
        let ctl = env.path("ctl");
        std::fs::create_dir(&ctl).unwrap();
        let bind = format!("{}:/ctl", ctl.display());
        let id = run_d(
            env,
            &[
                "--name",
                "talk",
                "-v",
                &bind,
                "sample",
                "sh",
                "-c",
                "echo out1; echo err1 >&2; while [ ! -e /ctl/go ]; do sleep 0.1; done; echo out2; echo last; exit 4",
            ],
        );
        let st = state(env, &id);
        assert_eq!(
            (st["Status"].as_str(), st["Running"].as_bool()),
            (Some("running"), Some(true)),
            "{st}"
        );
        assert!(st["Pid"].as_i64().unwrap() > 0, "{st}");
        assert!(
            ps_status(env, "talk").contains(" Up "),
            "{}",
            ps_status(env, "talk")
        );
        std::fs::write(ctl.join("go"), "").unwrap();
        // `wait` prints the code and exits with it; then logs hold everything, split by stream.
        let out = env.run(&["wait", "talk"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "4\n");
        assert_eq!(out.status.code(), Some(4));
        let logs = env.run(&["logs", "talk"]);
        assert_eq!(String::from_utf8_lossy(&logs.stdout), "out1\nout2\nlast\n");
        assert_eq!(String::from_utf8_lossy(&logs.stderr), "err1\n");
        assert_eq!(env.ok(&["logs", "--tail", "1", "talk"]), "last");
        let stamped = env.ok(&["logs", "-t", "--tail", "2", "talk"]);
        for l in stamped.lines() {
            let (t, _) = l.split_once(' ').unwrap();
            assert!(t.ends_with('Z') && t.contains('T'), "{l}");
        }
        assert_eq!(
            env.ok(&["logs", "--since", "2000-01-01T00:00:00Z", "--tail", "all", "talk"])
                .lines()
                .count(),
            3
        );
        assert_eq!(env.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "talk"]), "");
        let log_path = env.json(&["container", "inspect", "talk"])[0]["LogPath"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(std::path::Path::new(&log_path).is_file(), "{log_path}");
        assert!(
            ps_status(env, "talk").contains("Exited (4) "),
            "{}",
            ps_status(env, "talk")
        );
        env.ok(&["container", "rm", "talk"]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn logs_follow_ends_when_the_container_exits_and_status_shows_up() {
    require_root();
    with_sample(|env| {
        run_d(
            env,
            &[
                "--name",
                "f",
                "sample",
                "sh",
                "-c",
                "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done",
            ],
        );
        let ps = ps_status(env, "f");
        assert!(ps.contains(" Up ") || ps.contains("Exited (0)"), "{ps}");
        assert_eq!(env.ok(&["ps", "-q", "--filter", "status=exited"]), "");
        // Follows to the end, whatever was there when it started.
        let out = env.ok(&["logs", "-f", "f"]);
        assert_eq!(out, "line 1\nline 2\nline 3\nline 4\nline 5");
        let exited = env.ok(&["ps", "-q", "--filter", "status=exited"]);
        assert_eq!(exited.lines().count(), 1, "{exited}");
        assert_eq!(env.ok(&["ps", "-q"]), "");
        env.ok(&["container", "rm", "f"]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn stop_kills_after_the_timeout_unless_the_process_handles_the_signal() {
    require_root();
    with_sample(|env| {
        // PID 1 without a handler ignores SIGTERM (the kernel's rule): stop waits, then SIGKILL (137).
        run_d(env, &["--name", "deaf", "sample", "sleep", "1000"]);
        assert_eq!(env.ok(&["stop", "-t", "1", "deaf"]), "deaf");
        assert_eq!(state(env, "deaf")["ExitCode"], 137);
        // A handler: the signal is taken, the program's own status comes back (not 137), with a
        // timeout long enough that a SIGKILL would mean the signal was lost. The shell says when its
        // traps are set: a signal before that would meet no handler, and PID 1 would ignore it.
        let ready = |name: &str| assert!(wait_until(60, || env.ok(&["logs", name]).contains("ready")));
        run_d(
            env,
            &[
                "--name",
                "polite",
                "--stop-timeout",
                "120",
                "sample",
                "sh",
                "-c",
                "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done",
            ],
        );
        ready("polite");
        env.ok(&["container", "stop", "polite"]);
        assert_eq!(state(env, "polite")["ExitCode"], 7);
        // --stop-signal and stop -s.
        let traps = "trap 'exit 10' USR1; trap 'exit 11' HUP; echo ready; while :; do sleep 0.1; done";
        run_d(
            env,
            &[
                "--name",
                "usr1",
                "--stop-signal",
                "SIGUSR1",
                "sample",
                "sh",
                "-c",
                traps,
            ],
        );
        ready("usr1");
        env.ok(&["stop", "-t", "120", "usr1"]);
        assert_eq!(state(env, "usr1")["ExitCode"], 10);
        env.ok(&["start", "usr1"]);
        assert!(wait_until(60, || env
            .ok(&["logs", "usr1"])
            .matches("ready")
            .count()
            == 2));
        env.ok(&["stop", "-t", "120", "-s", "HUP", "usr1"]);
        assert_eq!(state(env, "usr1")["ExitCode"], 11);
        // --init: PID 1 is mountkit's init, which hands SIGTERM to a program without a handler.
        run_d(
            env,
            &[
                "--name",
                "inited",
                "--init",
                "--stop-timeout",
                "120",
                "sample",
                "sleep",
                "1000",
            ],
        );
        env.ok(&["stop", "inited"]);
        assert_eq!(state(env, "inited")["ExitCode"], 143);
        // Stop of a stopped container is fine; kill of one is an error.
        env.ok(&["stop", "deaf"]);
        env.fails(&["kill", "deaf"], 1, "container deaf is not running");
        env.ok(&["container", "rm", "deaf", "polite", "usr1", "inited"]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn run_d_rm_goes_away_with_its_anonymous_volumes_and_wait_still_gets_the_code() {
    require_root();
    with_sample(|env| {
        let id = run_d(
            env,
            &[
                "--rm",
                "-v",
                "/anon",
                "sample",
                "sh",
                "-c",
                "echo x > /anon/f; sleep 0.5; exit 3",
            ],
        );
        // Visible while it runs (a detached --rm container is committed at once, as Docker's).
        let vols = env.ok(&["volume", "ls", "-q"]);
        assert_eq!(vols.lines().count(), 1, "{vols}");
        let out = env.run(&["wait", &id]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n");
        assert_eq!(out.status.code(), Some(3));
        assert!(wait_until(60, || env.ok(&["ps", "-a", "-q"]).is_empty()));
        assert!(wait_until(60, || env.ok(&["volume", "ls", "-q"]).is_empty()));
    });
}

/// Those who wait for a run's end (`wait`, `stop`) never keep an `--rm` container from being removed
/// (they used to hold its `running.lock` exclusive for a moment, which the removal took for a runner,
/// and the container stayed), nor a container from starting again at once.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn waiters_never_keep_an_rm_container_or_a_restart_back() {
    require_root();
    with_sample(|env| {
        for round in 0..5 {
            let id = run_d(env, &["--rm", "sample", "sh", "-c", "sleep 0.3; exit 3"]);
            let waiters: Vec<_> = (0..8)
                .map(|_| {
                    env.cmd()
                        .args(["wait", &id])
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for w in waiters {
                let out = w.wait_with_output().unwrap();
                assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n", "round {round}");
            }
            assert!(
                wait_until(60, || env.ok(&["ps", "-a", "-q"]).is_empty()),
                "round {round}: the --rm container stayed"
            );
        }
        // `stop` of an `--rm` container: it goes.
        let id = run_d(env, &["--rm", "sample", "sleep", "600"]);
        env.ok(&["stop", "-t", "1", &id]);
        assert!(wait_until(60, || env.ok(&["ps", "-a", "-q"]).is_empty()));
        // `wait` and an immediate `start` of the same container: the start is not refused as running.
        env.ok(&["container", "create", "--name", "again", "sample", "true"]);
        for _ in 0..5 {
            env.ok(&["start", "-a", "again"]);
            let waiter = env.cmd().args(["wait", "again"]).spawn().unwrap();
            env.ok(&["start", "-a", "again"]);
            let _ = waiter.wait_with_output();
        }
        env.ok(&["container", "rm", "again"]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn restart_policies_start_again_and_stop_ends_them() {
    require_root();
    with_sample(|env| {
        run_d(
            env,
            &[
                "--name",
                "flaky",
                "--restart",
                "on-failure:2",
                "sample",
                "sh",
                "-c",
                "echo run; exit 1",
            ],
        );
        assert!(wait_until(60, || {
            let st = state(env, "flaky");
            st["RestartCount"] == 2 && st["Status"] == "exited"
        }));
        // `wait` prints the last exit code and exits with it.
        let out = env.run(&["wait", "flaky"]);
        assert_eq!(
            (String::from_utf8_lossy(&out.stdout).trim(), out.status.code()),
            ("1", Some(1))
        );
        assert_eq!(env.ok(&["logs", "flaky"]), "run\nrun\nrun");
        // `always` restarts after a clean exit too; `stop` ends it for good.
        run_d(
            env,
            &[
                "--name",
                "loop",
                "--restart",
                "always",
                "sample",
                "sh",
                "-c",
                "echo up; sleep 0.2",
            ],
        );
        assert!(wait_until(60, || state(env, "loop")["RestartCount"]
            .as_u64()
            .unwrap()
            >= 2));
        env.ok(&["stop", "-t", "5", "loop"]);
        let count = state(env, "loop")["RestartCount"].clone();
        std::thread::sleep(std::time::Duration::from_millis(700));
        let st = state(env, "loop");
        assert_eq!(
            (st["Status"].clone(), st["RestartCount"].clone()),
            ("exited".into(), count)
        );
        // `restart` and `start` (detached) of a stopped container.
        env.ok(&["restart", "-t", "1", "loop"]);
        assert!(wait_until(60, || state(env, "loop")["Running"] == true
            || state(env, "loop")["RestartCount"].as_u64().unwrap() > 0));
        env.ok(&["stop", "-t", "1", "loop"]);
        env.fails(
            &["run", "--rm", "--restart", "always", "sample", "true"],
            125,
            "--rm",
        );
        env.fails(
            &["run", "-d", "--restart", "sometimes", "sample", "true"],
            125,
            "\"sometimes\"",
        );
        env.fails(
            &["run", "-d", "--stop-signal", "SIGNOPE", "sample", "true"],
            125,
            "\"SIGNOPE\"",
        );
        env.fails(
            &["run", "-d", "--log-opt", "max-size=big", "sample", "true"],
            125,
            "max-size",
        );
        env.fails(
            &["run", "-d", "--log-opt", "compress=true", "sample", "true"],
            125,
            "--log-opt",
        );
        env.fails(
            &["run", "-d", "sample", "/no/such/program"],
            127,
            "/no/such/program",
        );
        env.fails(&["logs", "nope"], 1, "nope");
        // `rm -f` of a running container with `--restart always`: killed and gone, not restarted.
        run_d(
            env,
            &[
                "--name",
                "phoenix",
                "--restart",
                "always",
                "sample",
                "sleep",
                "1000",
            ],
        );
        env.ok(&["container", "rm", "-f", "phoenix"]);
        assert!(env.run(&["container", "inspect", "phoenix"]).status.code() == Some(1));
        env.ok(&["container", "rm", "-f", "flaky", "loop"]);
        // The failed -d start left a container behind (as `docker run -d` does), exited 127.
        let left = env.ok(&["ps", "-a", "--format", "json"]);
        assert!(
            left.contains("\"exit_code\": 127") || left.contains("\"exit_code\":127"),
            "{left}"
        );
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn logs_rotate_by_size() {
    require_root();
    with_sample(|env| {
        run_d(
            env,
            &[
                "--name",
                "chatty",
                "--log-opt",
                "max-size=2k",
                "--log-opt",
                "max-file=2",
                "sample",
                "sh",
                "-c",
                "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done",
            ],
        );
        assert_eq!(env.ok(&["wait", "chatty"]), "0");
        let log = std::path::PathBuf::from(
            env.json(&["container", "inspect", "chatty"])[0]["LogPath"]
                .as_str()
                .unwrap(),
        );
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let old = log.with_extension("log.1");
        assert!(
            size(&log) <= 2048 && size(&old) <= 2048 && size(&old) > 0,
            "{} {}",
            size(&log),
            size(&old)
        );
        assert!(!log.with_extension("log.2").exists());
        let out = env.ok(&["logs", "chatty"]);
        assert!(out.ends_with("line 199"), "{out}");
        assert!(
            !out.contains("line 0\n"),
            "the oldest lines were rotated away: {out}"
        );
        env.ok(&["container", "rm", "chatty"]);
    });
}

/// The monitor's PID: the parent of the container's process.
fn monitor_of(pid: i64) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_killed_monitor_takes_its_container_and_leaves_nothing_mounted() {
    require_root();
    with_sample(|env| {
        env.ok(&["volume", "create", "vol"]);
        run_d(
            env,
            &[
                "--name",
                "orphan",
                "-v",
                "vol:/data",
                "--tmpfs",
                "/t",
                "sample",
                "sleep",
                "1000",
            ],
        );
        let pid = state(env, "orphan")["Pid"].as_i64().unwrap();
        let monitor = monitor_of(pid);
        assert_ne!(monitor, std::process::id() as i32);
        kill9(monitor);
        assert!(wait_until(60, || !std::path::Path::new(&format!("/proc/{pid}")).exists()));
        assert!(wait_until(60, || state(env, "orphan")["Status"] == "exited"));
        let st = state(env, "orphan");
        assert_eq!(st["ExitCode"], -1, "{st}");
        assert!(ps_status(env, "orphan").contains("Exited (unknown)"));
        assert!(support::mounts_under(env.dir.path()).is_empty());
        env.ok(&["container", "rm", "orphan"]);
        env.ok(&["volume", "rm", "vol"]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn twenty_detached_containers_start_stop_and_go_at_once() {
    require_root();
    with_sample(|env| {
        let names: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        std::thread::scope(|s| {
            for n in &names {
                s.spawn(move || run_d(env, &["--name", n, "sample", "sleep", "1000"]));
            }
        });
        assert_eq!(env.ok(&["ps", "-q"]).lines().count(), 20);
        std::thread::scope(|s| {
            for n in &names {
                s.spawn(move || assert_eq!(env.ok(&["stop", "-t", "1", n]), *n));
            }
        });
        assert_eq!(env.ok(&["ps", "-q"]), "");
        std::thread::scope(|s| {
            for n in &names {
                s.spawn(move || env.ok(&["container", "rm", n]));
            }
        });
        assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
        assert!(support::mounts_under(env.dir.path()).is_empty());
    });
}

/// The seed's own flow, with its flags: a to-do list in a named volume, written by one detached
/// container through `exec`, read by another that has `--volumes-from`, then by a "new version" of the
/// application (another image) after both are stopped and removed.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn the_seeds_todo_list_with_detached_containers_and_exec() {
    require_root();
    with_sample(|env| {
        env.sample("app-v2");
        env.ok(&["volume", "create", "todo-list"]);
        let forever = ["sh", "-c", "while :; do sleep 1; done"];
        let mut args = vec!["--name", "todo1", "-v", "todo-list:/data", "sample"];
        args.extend(forever);
        run_d(env, &args);
        env.ok(&["exec", "todo1", "sh", "-c", "echo task1 >> /data/list"]);
        let mut args = vec!["--name", "todo3", "--volumes-from", "todo1", "sample"];
        args.extend(forever);
        run_d(env, &args);
        assert_eq!(
            env.ok(&["container", "exec", "todo3", "cat", "/data/list"]),
            "task1"
        );
        // `top`: the container's processes as the host sees them, its command first.
        let top = env.lines(&["top", "todo1"]);
        assert!(
            top[0].starts_with("UID") && top[1].contains("sh -c while :; do sleep 1; done"),
            "{top:?}"
        );
        assert_eq!(
            env.lines(&["stop", "-t", "1", "todo1", "todo3"]),
            ["todo1", "todo3"]
        );
        env.fails(&["exec", "todo1", "true"], 1, "is not running");
        env.fails(&["container", "top", "todo1"], 1, "is not running");
        assert_eq!(
            env.lines(&["container", "rm", "todo1", "todo3"]),
            ["todo1", "todo3"]
        );
        let out = env.ok(&[
            "run",
            "--rm",
            "-v",
            "todo-list:/data",
            "app-v2",
            "cat",
            "/data/list",
        ]);
        assert_eq!(out, "task1");
    });
}

/// `run -d -t`: the container's terminal is read by its monitor into the log (stdout), past what a
/// pty buffers (so the container never blocks on it); `/dev/stdout` is a pty in the container.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_detached_terminal_goes_to_the_log() {
    require_root();
    with_sample(|env| {
        run_d(
            env,
            &[
                "-t",
                "--name",
                "term",
                "sample",
                "sh",
                "-c",
                "ls -l /proc/self/fd/1; i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; echo done",
            ],
        );
        assert_eq!(env.ok(&["wait", "term"]), "0");
        let out = env.ok(&["logs", "term"]);
        assert!(
            out.lines().next().unwrap().contains("/dev/pts/0"),
            "{}",
            &out[..200.min(out.len())]
        );
        assert!(out.contains("line 2999"), "the terminal's output was cut short");
        assert_eq!(out.lines().last().unwrap().trim_end_matches('\r'), "done");
        env.ok(&["container", "rm", "term"]);
    });
}

/// `attach` to a detached `-i` container: what is typed reaches its stdin, its output comes back from
/// then on, and `attach` exits with its status; Ctrl-P Ctrl-Q detaches and leaves it running.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn attach_types_into_a_detached_container_and_detaches_with_ctrl_p_ctrl_q() {
    require_root();
    with_sample(|env| {
        use std::io::Write;
        let attach = |name: &str, input: &[u8]| {
            let mut child = env
                .cmd()
                .args(["attach", name])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            child.wait_with_output().unwrap()
        };
        run_d(
            env,
            &[
                "-i",
                "--name",
                "att",
                "sample",
                "sh",
                "-c",
                "read x; echo got $x; exit 3",
            ],
        );
        let out = attach("att", b"hello\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "got hello\n");
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.fails(&["attach", "att"], 1, "is not running");
        // Detach keys: attach returns 0 and the container runs on.
        run_d(
            env,
            &["-i", "--name", "stay", "sample", "sh", "-c", "read x; echo $x"],
        );
        let out = attach("stay", b"\x10\x11");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(state(env, "stay")["Running"], true);
        let out = attach("stay", b"again\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "again\n");
        assert_eq!(out.status.code(), Some(0));
        env.ok(&["container", "rm", "att", "stay"]);
    });
}
