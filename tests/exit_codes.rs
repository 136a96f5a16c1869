//! `run` exit codes: the command's status, 125 (mountkit failed), 126 (cannot execute), 127 (not found).

use mountkit_e2e::Env;
use mountkit_testutil::{in_mount_ns, privileged};

#[test]
fn run_exit_codes_follow_docker() {
    if !privileged("run_exit_codes_follow_docker") {
        return;
    }
    in_mount_ns(|| {
        let env = Env::new();
        env.sample("sample");
        assert_eq!(env.run(&["run", "--rm", "sample", "true"]).status.code(), Some(0));
        assert_eq!(env.run(&["run", "--rm", "sample", "sh", "-c", "exit 7"]).status.code(), Some(7));
        env.fails(&["run", "--rm", "no-such-image", "true"], 125, "no-such-image");
        env.fails(&["run", "--rm", "sample", "/app/config.txt"], 126, "/app/config.txt");
        env.fails(&["run", "--rm", "sample", "no-such-command"], 127, "no-such-command");
        env.fails(&["run", "--rm", "--bogus-flag", "sample"], 125, "--bogus-flag");
        env.fails(&["run", "--rm", "-u", "nobody-here", "sample", "true"], 125, "nobody-here");
        // The command's own signal death: 128 + 9.
        assert_eq!(env.run(&["run", "--rm", "sample", "sh", "-c", "kill -9 $$"]).status.code(), Some(137));
        // Nothing is left behind by --rm, failed or not.
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "");
    });
}

#[test]
fn run_applies_user_workdir_env_and_default_path() {
    if !privileged("run_applies_user_workdir_env_and_default_path") {
        return;
    }
    in_mount_ns(|| {
        let env = Env::new();
        env.sample("sample");
        assert_eq!(env.ok(&["run", "--rm", "sample", "pwd"]), "/app");
        assert_eq!(env.ok(&["run", "--rm", "-w", "/tmp", "sample", "pwd"]), "/tmp");
        assert_eq!(env.ok(&["run", "--rm", "-u", "app", "sample", "id", "-u"]), "1000");
        assert_eq!(env.ok(&["run", "--rm", "-u", "1234:1234", "sample", "id", "-g"]), "1234");
        let e = env.ok(&["run", "--rm", "-e", "A=1", "sample", "env"]);
        assert!(e.lines().any(|l| l == "A=1"), "{e}");
        assert!(e.lines().any(|l| l == "SAMPLE=1"), "image env kept: {e}");
        assert!(e.lines().any(|l| l.starts_with("PATH=/usr/local/sbin:")), "Docker's default PATH: {e}");
        let writes = env.run(&["run", "--rm", "-u", "app", "sample", "sh", "-c", "echo x > /app/y.txt"]);
        assert_ne!(writes.status.code(), Some(0), "app cannot write a root-owned directory");
    });
}
