//! `container exec` / `exec` (issue 13): a command in a running container's namespaces, as its user,
//! with its environment and the same confinement.
//!
//! One long-running container (attached `run` in the background, `--cap-add SYS_ADMIN` so that the
//! confinement checked is the container's, not a default) serves every exec; the host's static
//! busybox is bound in as `/busybox` for `ps`.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use mountkit_testutil::require_root;
use support::{Env, with_sample};

/// Docker's default capability mask plus CAP_SYS_ADMIN (bit 21).
const SYS_ADMIN_MASK: &str = "00000000a82425fb";

/// The fields of `/proc/PID/status` that describe the confinement.
const CONFINEMENT: &[&str] = &[
    "CapEff",
    "CapPrm",
    "CapBnd",
    "Seccomp",
    "Seccomp_filters",
    "NoNewPrivs",
];

/// `field` of a `/proc/PID/status` text ("" when the kernel has no such field).
fn field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .trim()
}

/// Runs `mountkit exec <args>` with `stdin` fed in; returns (status, stdout, stderr).
fn exec_with_input(env: &Env, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = env
        .cmd()
        .arg("exec")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mountkit exec");
    // The command may not read it (stdin is /dev/null without -i): a closed pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The mount points of this process's namespace that mountkit could have leaked (the brief's
/// `awk '{print $5}' /proc/self/mountinfo | grep -E '^/(tmp|var/tmp)|mountkit'`).
fn suspicious_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with("/tmp") || mp.starts_with("/var/tmp") || mp.contains("mountkit"))
        .map(String::from)
        .collect()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn exec_enters_the_running_container_with_its_confinement() {
    require_root();
    assert!(
        std::path::Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install busybox-static (cargo xtask ci does)"
    );
    let before = suspicious_mounts();
    with_sample(|env| {
        let host = env.path("host");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("h"), "from the host\n").unwrap();
        let bind = format!("{}:/host:ro", host.display());
        let mut runner = Command::new(support::bin())
            .arg("--root")
            .arg(&env.root)
            .env_remove("MOUNTKIT_ROOT")
            .args([
                "run",
                "--name",
                "c",
                "-u",
                "1000",
                "-w",
                "/tmp",
                "--hostname",
                "box",
            ])
            .args(["-e", "FROM_RUN=run", "-e", "SHARED=run", "--cap-add", "SYS_ADMIN"])
            .args([
                "-v",
                "vol:/data",
                "-v",
                &bind,
                "-v",
                "/bin/busybox:/busybox:ro",
                "--tmpfs",
                "/scratch",
            ])
            .args([
                "sample",
                "sh",
                "-c",
                "echo t > /scratch/t; echo layer > /tmp/layer; exec sleep 1000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let seen = env.wait_running("c", &mut runner);
        let id = seen[0]["id"].as_str().unwrap().to_string();
        let pid = seen[0]["state"]["pid"].as_i64().unwrap();
        // The tmpfs file is written first: once the layer's is on the host, both are there.
        assert!(support::wait_until(60, || env
            .upper(&id)
            .join("tmp/layer")
            .exists()));
        let container_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert_eq!(field(&container_status, "CapBnd"), SYS_ADMIN_MASK);

        // As the container's user, in its working directory, with its environment and -e; its mounts
        // (tmpfs, writable layer, bind), hostname and PID namespace.
        let script = "id -u; pwd; hostname; echo \"$FROM_RUN $SHARED $EXTRA\"; \
                      cat /scratch/t /tmp/layer /host/h; echo \"self $$\"; /busybox ps -o pid,args; \
                      cat /proc/self/status";
        let out = env.ok(&[
            "exec",
            "-e",
            "EXTRA=exec",
            "-e",
            "SHARED=exec",
            "c",
            "sh",
            "-c",
            script,
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..7],
            [
                "1000",
                "/tmp",
                "box",
                "run exec exec",
                "t",
                "layer",
                "from the host"
            ],
            "{out}"
        );
        let own: i32 = lines[7]
            .strip_prefix("self ")
            .unwrap_or_else(|| panic!("{out}"))
            .parse()
            .unwrap();
        assert!(own > 1, "exec's process is not PID 1 of the container: {out}");
        let pid1 = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some("1"))
            .unwrap_or_else(|| panic!("no PID 1 in ps: {out}"));
        assert!(
            pid1.contains("sleep 1000"),
            "PID 1 is the container's command: {pid1}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().next() == Some(&own.to_string())),
            "ps lists exec's own process: {out}"
        );
        // The confinement: the container's capabilities (none effective for user 1000), the same
        // seccomp programs, the same no_new_privs.
        for f in CONFINEMENT {
            assert_eq!(field(&out, f), field(&container_status, f), "{f}: {out}");
        }
        assert_eq!(field(&out, "Seccomp"), "2");

        // -u 0 -w /: root with the container's capability set; writes land in its volume and
        // writable layer.
        let out = env.ok(&[
            "exec",
            "-u",
            "0",
            "-w",
            "/app",
            "c",
            "sh",
            "-c",
            "id -u; pwd; echo v > /data/v; echo e > /etc/from-exec; cat /proc/self/status",
        ]);
        assert_eq!(out.lines().take(2).collect::<Vec<_>>(), ["0", "/app"], "{out}");
        assert_eq!(field(&out, "CapEff"), SYS_ADMIN_MASK);
        assert_eq!(field(&out, "CapBnd"), SYS_ADMIN_MASK);
        assert_eq!(field(&out, "Seccomp"), "2");
        let vol = env.root.join("volumes/vol/_data/v");
        assert_eq!(std::fs::read_to_string(&vol).unwrap(), "v\n");
        assert_eq!(
            std::fs::read_to_string(env.upper(&id).join("etc/from-exec")).unwrap(),
            "e\n"
        );

        // --privileged: every capability the host gives, the container's seccomp filter still on.
        let out = env.ok(&["exec", "--privileged", "-u", "0", "c", "cat", "/proc/self/status"]);
        let host_prm = u64::from_str_radix(
            field(&std::fs::read_to_string("/proc/self/status").unwrap(), "CapPrm"),
            16,
        )
        .unwrap();
        let eff = u64::from_str_radix(field(&out, "CapEff"), 16).unwrap();
        assert_eq!(eff, host_prm & ((1u64 << 41) - 1), "{out}");
        assert_eq!(field(&out, "Seccomp"), "2");

        // Exit codes, as `run`: the command's, 126, 127, 125 for a working directory that is missing
        // (exec creates nothing).
        assert_eq!(
            env.run(&["exec", "c", "sh", "-c", "exit 7"]).status.code(),
            Some(7)
        );
        assert_eq!(env.run(&["exec", "c", "false"]).status.code(), Some(1));
        env.fails(&["exec", "c", "nosuch"], 127, "executable file not found");
        env.fails(&["exec", "c", "/etc"], 126, "cannot execute");
        env.fails(&["exec", "-w", "/nowhere", "c", "true"], 125, "/nowhere");
        env.fails(&["exec", "-u", "nobody-here", "c", "true"], 125, "nobody-here");

        // stdin: /dev/null without -i, the caller's with it.
        assert_eq!(
            exec_with_input(env, &["c", "cat"], "typed\n"),
            (0, String::new(), String::new())
        );
        assert_eq!(exec_with_input(env, &["-i", "c", "cat"], "typed\n").1, "typed\n");

        // --env-file, then -e over it; `K` alone copies from here.
        let file = env.path("env");
        std::fs::write(&file, "# comment\nFILE=f\nSHARED=file\nHOME_COPY\n").unwrap();
        let out = env
            .cmd()
            .env("HOME_COPY", "copied")
            .args([
                "exec",
                "--env-file",
                file.to_str().unwrap(),
                "-e",
                "SHARED=flag",
                "c",
            ])
            .args(["sh", "-c", "echo \"$FILE $SHARED $HOME_COPY $FROM_RUN\""])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "f flag copied run\n");

        // -t: a pty of the container's devpts (stdout here is a pipe: -t alone needs no terminal).
        let out = env.ok(&["exec", "-t", "c", "/busybox", "tty"]);
        assert!(out.trim().starts_with("/dev/pts/"), "{out:?}");

        // -d: returns at once, prints nothing; the command runs on in the container.
        let started = std::time::Instant::now();
        let out = env.ok(&[
            "exec",
            "-d",
            "c",
            "sh",
            "-c",
            "sleep 0.3; echo d > /tmp/detached; echo lost",
        ]);
        assert_eq!(out, "");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        assert!(support::wait_until(60, || env
            .upper(&id)
            .join("tmp/detached")
            .exists()));
        env.fails(&["exec", "-d", "c", "nosuch"], 127, "nosuch");

        // The PID-reuse guard: a record whose PID is another process's (a host `sleep` here, while the
        // runner still holds the container's lock) is "not running", and nothing runs in that process's
        // namespaces.
        let mut decoy = Command::new("sleep").arg("1000").spawn().unwrap();
        let record = env.root.join("containers").join(&id).join("container.json");
        let original = std::fs::read(&record).unwrap();
        let mut v = support::json(&String::from_utf8_lossy(&original));
        v["state"]["pid"] = decoy.id().into();
        std::fs::write(&record, v.to_string()).unwrap();
        let marker = env.path("entered");
        let touch = format!("touch {}", marker.display());
        env.fails(
            &["exec", "-u", "0", "c", "sh", "-c", &touch],
            1,
            "container c is not running",
        );
        assert!(!marker.exists(), "exec ran in the decoy's namespaces");
        // `kill`, `stop` and `top` act on the container's process only, never on the decoy.
        env.fails(&["kill", "-s", "TERM", "c"], 1, "container c is not running");
        env.fails(&["top", "c"], 1, "container c is not running");
        env.ok(&["stop", "-t", "1", "c"]);
        assert!(decoy.try_wait().unwrap().is_none(), "the decoy was signalled");
        std::fs::write(&record, &original).unwrap();
        decoy.kill().unwrap();
        decoy.wait().unwrap();

        // The container ends: exec says so; nothing stays mounted.
        support::kill9(pid as i32);
        let _ = runner.wait();
        env.fails(&["exec", "c", "true"], 1, "container c is not running");
    });
    assert_eq!(suspicious_mounts(), before, "a mount leaked");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn exec_needs_a_running_container() {
    require_root();
    with_sample(|env| {
        env.ok(&["container", "create", "--name", "made", "sample", "true"]);
        let err = env.fails(&["exec", "made", "true"], 1, "container made is not running");
        assert_eq!(err.lines().count(), 1, "{err}");
        env.fails(
            &["container", "exec", "made", "true"],
            1,
            "container made is not running",
        );
        env.fails(
            &["exec", "nothing-here", "true"],
            1,
            "no such container: nothing-here",
        );
        // Usage: a command is required.
        env.fails(&["exec", "made"], 125, "CMD");
    });
}
