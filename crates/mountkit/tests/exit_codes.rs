//! `run` exit codes: the command's status, 125 (mountkit failed), 126 (cannot execute), 127 (not found).

mod support;

use mountkit_testutil::require_root;
use support::{kill9, with_sample};

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn run_exit_codes_follow_docker() {
    require_root();
    with_sample(|env| {
        assert_eq!(env.run(&["run", "--rm", "sample", "true"]).status.code(), Some(0));
        assert_eq!(
            env.run(&["run", "--rm", "sample", "sh", "-c", "exit 7"])
                .status
                .code(),
            Some(7)
        );
        env.fails(&["run", "--rm", "no-such-image", "true"], 125, "no-such-image");
        env.fails(
            &["run", "--rm", "sample", "/app/config.txt"],
            126,
            "/app/config.txt",
        );
        env.fails(
            &["run", "--rm", "sample", "no-such-command"],
            127,
            "no-such-command",
        );
        env.fails(&["run", "--rm", "--bogus-flag", "sample"], 125, "--bogus-flag");
        env.fails(
            &["run", "--rm", "-u", "nobody-here", "sample", "true"],
            125,
            "nobody-here",
        );
        // A command killed by a signal: 128 + 9. (PID 1 of a pid namespace ignores its own SIGKILL, so the
        // signal comes from outside, as `docker kill` sends it.)
        let mut child = env.spawn(&["run", "--name", "killed", "sample", "sleep", "300"]);
        let pid = env.wait_running("killed", &mut child)[0]["state"]["pid"]
            .as_i64()
            .unwrap() as i32;
        kill9(pid);
        assert_eq!(child.wait().unwrap().code(), Some(137));
        env.ok(&["container", "rm", "killed"]);
        // Nothing is left behind by --rm, failed or not.
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn run_applies_user_workdir_env_and_default_path() {
    require_root();
    with_sample(|env| {
        assert_eq!(env.ok(&["run", "--rm", "sample", "pwd"]), "/app");
        assert_eq!(env.ok(&["run", "--rm", "-w", "/tmp", "sample", "pwd"]), "/tmp");
        assert_eq!(
            env.ok(&["run", "--rm", "-u", "app", "sample", "id", "-u"]),
            "1000"
        );
        assert_eq!(
            env.ok(&["run", "--rm", "-u", "1234:1234", "sample", "id", "-g"]),
            "1234"
        );
        let e = env.ok(&["run", "--rm", "-e", "A=1", "sample", "env"]);
        assert!(e.lines().any(|l| l == "A=1"), "{e}");
        assert!(e.lines().any(|l| l == "SAMPLE=1"), "image env kept: {e}");
        assert!(
            e.lines().any(|l| l.starts_with("PATH=/usr/local/sbin:")),
            "Docker's default PATH: {e}"
        );
        let writes = env.run(&[
            "run",
            "--rm",
            "-u",
            "app",
            "sample",
            "sh",
            "-c",
            "echo x > /app/y.txt",
        ]);
        assert_ne!(
            writes.status.code(),
            Some(0),
            "app cannot write a root-owned directory"
        );
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn run_rm_container_is_listed_while_it_runs_and_a_failed_one_leaves_nothing() {
    require_root();
    with_sample(|env| {
        let staging_is_empty = || {
            std::fs::read_dir(env.root.join("staging"))
                .map(|d| d.count() == 0)
                .unwrap_or(true)
        };
        // A --rm container that fails to start was never visible and leaves nothing: no container, no
        // staging, its name free, its anonymous volume gone.
        env.fails(
            &[
                "run",
                "--rm",
                "--name",
                "gone",
                "-v",
                "/data",
                "sample",
                "no-such-command",
            ],
            127,
            "no-such-command",
        );
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "");
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
        assert!(staging_is_empty());
        env.ok(&["container", "create", "--name", "gone", "sample", "true"]);
        env.ok(&["container", "rm", "gone"]);

        // A running --rm container is listed as running, with its pid, its name and its volume.
        let mut child = env.spawn(&[
            "run", "--rm", "--name", "rmwatch", "-v", "/data", "sample", "sleep", "300",
        ]);
        let seen = env.wait_running("rmwatch", &mut child);
        let pid = seen[0]["state"]["pid"].as_i64().unwrap();
        assert_eq!(seen[0]["state"]["status"], "running", "{seen}");
        let id = seen[0]["id"].as_str().unwrap().to_string();
        assert!(env.root.join("containers").join(&id).join("upper").is_dir());
        assert_eq!(env.ok(&["container", "ls", "-q"]), id[..12]);
        assert_eq!(env.ok(&["volume", "ls", "-q"]).lines().count(), 1);
        env.fails(
            &["container", "create", "--name", "rmwatch", "sample", "true"],
            125,
            "rmwatch",
        );
        kill9(pid as i32);
        assert_eq!(child.wait().unwrap().code(), Some(137));
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "");
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
        assert!(staging_is_empty());
    });
}
