//! Confinement by default (issue 12): Docker's capabilities, `--cap-add`/`--cap-drop`, `--privileged`,
//! `no-new-privileges`, a session of its own, `--network none|host`, the seccomp filter and profiles.
//!
//! The sample image has no `mount`: the host's static busybox (`/bin/busybox`, as in the VM guests) is
//! bound into the container read-only as `/busybox`.

mod support;

use mountkit_testutil::require_root;
use support::{Env, with_sample};

const BB: &str = "/bin/busybox:/busybox:ro";

/// Docker's default capability mask (CHOWN ... AUDIT_WRITE).
const DOCKER_MASK: &str = "00000000a80425fb";

/// `/proc/self/status` lines of the container's process for `fields` (e.g. `CapEff`), with `flags`
/// before the image.
fn status(env: &Env, flags: &[&str], field: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["sample", "cat", "/proc/self/status"]);
    let out = env.ok(&args);
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {out}"))
        .trim()
        .to_string()
}

/// Runs `sh -c script` in a container with `flags`; returns the exit code and the combined output.
fn sh(env: &Env, flags: &[&str], script: &str) -> (i32, String) {
    assert!(
        std::path::Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install busybox-static (cargo xtask ci does)"
    );
    let mut args = vec!["run", "--rm", "-v", BB];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["sample", "sh", "-c", script]);
    let out = env.run(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Every capability the test's own process has (the container cannot have more; this project's host
/// root lacks CAP_SYS_RESOURCE), among those the `caps` crate knows (up to 40, CAP_CHECKPOINT_RESTORE).
fn all_caps_mask() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let prm = status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .unwrap()
        .trim();
    let prm = u64::from_str_radix(prm, 16).unwrap();
    format!("{:016x}", prm & ((1u64 << 41) - 1))
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn default_container_has_dockers_capabilities_and_its_masks_hold() {
    require_root();
    with_sample(|env| {
        for f in ["CapEff", "CapPrm", "CapBnd", "CapInh"] {
            assert_eq!(status(env, &[], f), DOCKER_MASK, "{f}");
        }
        assert_eq!(status(env, &[], "CapAmb"), "0000000000000000");
        assert_eq!(status(env, &[], "NoNewPrivs"), "0");
        let (code, out) = sh(env, &[], "mkdir -p /m && /busybox mount -t proc proc /m");
        assert_ne!(code, 0, "mount -t proc succeeded: {out}");
        assert!(
            out.contains("Operation not permitted") || out.contains("denied"),
            "{out}"
        );
        let (code, out) = sh(env, &[], "/busybox mount -o remount,rw /sys");
        assert_ne!(code, 0, "remount of /sys succeeded: {out}");
        let (code, out) = sh(env, &[], "/busybox umount /proc/timer_list");
        assert_ne!(code, 0, "umount /proc/timer_list succeeded: {out}");
        let (code, out) = sh(env, &[], "echo h > /proc/sysrq-trigger");
        assert_ne!(code, 0, "writing /proc/sysrq-trigger succeeded: {out}");
        // What the container still may do as root: chown, mknod of a harmless node.
        let (code, out) = sh(env, &[], "touch /f && chown 1:1 /f && /busybox mknod /n c 1 3");
        assert_eq!(code, 0, "{out}");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn cap_add_and_cap_drop_change_the_set() {
    require_root();
    with_sample(|env| {
        let (code, out) = sh(
            env,
            &["--cap-add", "sys_admin"],
            "mkdir -p /m && /busybox mount -t tmpfs t /m && echo mounted",
        );
        assert_eq!((code, out.trim()), (0, "mounted"));
        assert_eq!(
            status(env, &["--cap-add", "CAP_SYS_ADMIN"], "CapEff"),
            "00000000a82425fb"
        );
        assert_eq!(status(env, &["--cap-drop", "ALL"], "CapEff"), "0000000000000000");
        assert_eq!(status(env, &["--cap-drop", "all"], "CapBnd"), "0000000000000000");
        assert_eq!(
            status(env, &["--cap-drop", "all", "--cap-add", "Chown"], "CapEff"),
            "0000000000000001"
        );
        assert_eq!(status(env, &["--cap-add", "ALL"], "CapEff"), all_caps_mask());
        let (code, out) = sh(env, &["--cap-drop", "CHOWN"], "touch /f && chown 1:1 /f");
        assert_ne!(code, 0, "chown without CAP_CHOWN succeeded: {out}");
        assert!(out.contains("Operation not permitted"), "{out}");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_non_root_user_has_no_effective_capabilities() {
    require_root();
    with_sample(|env| {
        assert_eq!(status(env, &["-u", "1000"], "CapEff"), "0000000000000000");
        assert_eq!(status(env, &["-u", "1000:1000"], "CapPrm"), "0000000000000000");
        assert_eq!(status(env, &["-u", "1000"], "CapBnd"), DOCKER_MASK);
        assert_eq!(status(env, &["-u", "1000"], "CapAmb"), "0000000000000000");
        // Root by number keeps the default set.
        assert_eq!(status(env, &["-u", "0"], "CapEff"), DOCKER_MASK);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn privileged_has_every_capability_and_a_writable_sys() {
    require_root();
    with_sample(|env| {
        assert_eq!(status(env, &["--privileged"], "CapEff"), all_caps_mask());
        let (code, out) = sh(
            env,
            &["--privileged"],
            "/busybox mount -o remount,rw /sys && /busybox grep ' /sys ' /proc/mounts",
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(" rw,"), "/sys is not read-write: {out}");
        // Nothing masked: no mount over /proc/timer_list (present on every kernel here; kcore is not).
        let (code, out) = sh(
            env,
            &["--privileged"],
            "/busybox grep -c ' /proc/timer_list ' /proc/mounts",
        );
        assert_eq!((code, out.trim()), (1, "0"), "{out}");
        let (code, out) = sh(env, &[], "/busybox grep -c ' /proc/timer_list ' /proc/mounts");
        assert_eq!((code, out.trim()), (0, "1"), "{out}");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn no_new_privileges_is_off_by_default_and_set_on_request() {
    require_root();
    with_sample(|env| {
        assert_eq!(status(env, &[], "NoNewPrivs"), "0");
        assert_eq!(
            status(env, &["--security-opt", "no-new-privileges"], "NoNewPrivs"),
            "1"
        );
        assert_eq!(
            status(env, &["--security-opt", "no-new-privileges=true"], "NoNewPrivs"),
            "1"
        );
        assert_eq!(
            status(env, &["--security-opt", "no-new-privileges=false"], "NoNewPrivs"),
            "0"
        );
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn bad_confinement_flags_are_usage_errors_and_create_nothing() {
    require_root();
    with_sample(|env| {
        env.fails(
            &["run", "--rm", "--cap-add", "FLY", "sample", "true"],
            125,
            "\"FLY\"",
        );
        env.fails(
            &["run", "--cap-drop", "cap_nope", "sample", "true"],
            125,
            "\"cap_nope\"",
        );
        env.fails(
            &["container", "create", "--cap-add", "FLY", "sample"],
            125,
            "unknown capability",
        );
        env.fails(
            &["run", "--security-opt", "seccomp=", "sample", "true"],
            125,
            "seccomp takes unconfined or a profile file",
        );
        env.fails(
            &["run", "--security-opt", "apparmor=x", "sample", "true"],
            125,
            "\"apparmor\"",
        );
        env.fails(&["run", "-p", "80:80", "sample", "true"], 125, "--network host");
        env.fails(
            &["run", "--publish", "80", "sample", "true"],
            125,
            "host's network",
        );
        env.fails(
            &["run", "--network", "bridge", "sample", "true"],
            125,
            "\"bridge\"",
        );
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn network_none_has_only_loopback_and_host_has_the_hosts_interfaces() {
    require_root();
    with_sample(|env| {
        let (code, out) = sh(
            env,
            &["--network", "none"],
            "ls /sys/class/net; cat /sys/class/net/lo/flags",
        );
        assert_eq!(code, 0, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "lo", "{out}");
        let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(flags & 1, 1, "lo is not up: {out}");
        let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        host.sort();
        let (code, out) = sh(env, &["--network", "host"], "ls /sys/class/net");
        assert_eq!(code, 0, "{out}");
        assert_eq!(out.lines().collect::<Vec<_>>(), host);
        let (_, default) = sh(env, &[], "ls /sys/class/net");
        assert_eq!(default.lines().collect::<Vec<_>>(), host);
    });
}

/// `(pid, session, tty_nr)` from a `/proc/PID/stat` line.
fn stat_fields(stat: &str) -> (i64, i64, i64) {
    let pid = stat.split(' ').next().unwrap().parse().unwrap();
    let rest: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    // After the command: state(3) ppid(4) pgrp(5) session(6) tty_nr(7).
    (pid, rest[3].parse().unwrap(), rest[4].parse().unwrap())
}

/// Runs `cmd` with a new pseudo-terminal as its controlling terminal (as a shell in a terminal would
/// start it; a pty rather than `script`, which the VM guests' busybox lacks); returns its stdout.
fn on_a_terminal(mut cmd: std::process::Command) -> String {
    use std::os::unix::process::CommandExt;
    // SAFETY: plain libc calls on a descriptor this test owns.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(master >= 0);
    assert_eq!(unsafe { libc::grantpt(master) }, 0);
    assert_eq!(unsafe { libc::unlockpt(master) }, 0);
    let slave = unsafe { std::ffi::CStr::from_ptr(libc::ptsname(master)) }.to_owned();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
            if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("spawn");
    unsafe { libc::close(master) };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn the_container_leads_its_own_session_without_a_terminal() {
    require_root();
    with_sample(|env| {
        // The check itself: a process started on the pty has it as its terminal.
        let mut outer = std::process::Command::new("cat");
        outer.arg("/proc/self/stat");
        let (_, _, outer_tty) = stat_fields(on_a_terminal(outer).trim());
        assert_ne!(outer_tty, 0, "the pty is not the controlling terminal");
        // The container's process, started from that terminal: PID 1 leads its own session (sid 1 in
        // its PID namespace) and has no controlling terminal (tty_nr 0), so TIOCSTI has no terminal.
        let mut run = env.cmd();
        run.args(["run", "--rm", "sample", "cat", "/proc/self/stat"]);
        let stat = on_a_terminal(run);
        assert_eq!(stat_fields(stat.trim()), (1, 1, 0), "container: {stat}");
        // Attached with -i: stdin still reaches the container (without -i it is /dev/null).
        let out = env
            .cmd()
            .args(["run", "--rm", "-i", "sample", "cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"through\n")?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "through\n");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn inspect_shows_the_confinement() {
    require_root();
    with_sample(|env| {
        env.ok(&["container", "create", "--name", "d", "sample"]);
        let c = &env.json(&["container", "inspect", "d"])[0]["config"];
        assert_eq!(c["capabilities"].as_array().unwrap().len(), 14, "{c}");
        assert!(
            c["capabilities"]
                .as_array()
                .unwrap()
                .contains(&"CAP_CHOWN".into()),
            "{c}"
        );
        assert_eq!(c["privileged"], false);
        assert_eq!(c["no_new_privileges"], false);
        assert_eq!(c["network"], "host");
        env.ok(&[
            "container",
            "create",
            "--name",
            "p",
            "--privileged",
            "--network",
            "none",
            "--security-opt",
            "no-new-privileges",
            "--cap-drop",
            "ALL",
            "sample",
        ]);
        let c = &env.json(&["container", "inspect", "p"])[0]["config"];
        assert!(c["capabilities"].as_array().unwrap().len() >= 41, "{c}");
        assert_eq!(c["privileged"], true);
        assert_eq!(c["no_new_privileges"], true);
        assert_eq!(c["network"], "none");
        env.ok(&[
            "container",
            "create",
            "--name",
            "k",
            "--cap-drop",
            "all",
            "sample",
        ]);
        let c = &env.json(&["container", "inspect", "k"])[0]["config"];
        assert_eq!(c["capabilities"], serde_json::json!([]));
        // `system info` says whether the kernel has seccomp filters (every kernel this runs on has).
        let info = env.json(&["--format", "json", "system", "info"]);
        assert_eq!(info["seccomp_filter"], true, "{info}");
    });
}

/// Each command of `cmds` in one container with `flags`, as `NAME: <its stderr, or "ok">` lines.
fn each(env: &Env, flags: &[&str], cmds: &[(&str, &str)]) -> Vec<(String, String)> {
    let script: String = cmds
        .iter()
        .map(|(name, cmd)| format!("e=$( ({cmd}) 2>&1 >/dev/null) && e=ok; echo \"{name}: $e\"\n"))
        .collect();
    let (code, out) = sh(env, flags, &script);
    assert_eq!(code, 0, "{out}");
    cmds.iter()
        .map(|(name, _)| {
            let line = out
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} line in {out}"));
            (name.to_string(), line.to_string())
        })
        .collect()
}

/// What Docker's default profile refuses, tried in one default container: every one fails with
/// EPERM (some would fail for lack of a capability too; the ones run with every capability below
/// show the filter alone).
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn the_default_filter_refuses_what_dockers_profile_refuses() {
    require_root();
    with_sample(|env| {
        assert_eq!(status(env, &[], "Seccomp"), "2");
        let cmds = [
            ("mount", "mkdir -p /m && /busybox mount -t proc proc /m"),
            ("remount", "/busybox mount -o remount,rw /sys"),
            ("umount", "/busybox umount /proc/timer_list"),
            ("pivot_root", "mkdir -p /old && /busybox pivot_root / /old"),
            ("unshare", "/busybox unshare -m true"),
            ("swapoff", "touch /sw && /busybox swapoff /sw"),
            ("insmod", "echo x > /m.ko && /busybox insmod /m.ko"),
        ];
        // busybox mount says EPERM as "permission denied (are you root?)".
        for (name, err) in each(env, &[], &cmds) {
            assert!(
                err.contains("Operation not permitted") || err.contains("permission denied"),
                "{name}: {err}"
            );
        }
        // With every capability, the filter alone refuses pivot_root and swapoff (Docker's profile
        // allows them to nobody) but lets mount and unshare through (CAP_SYS_ADMIN's calls); unconfined,
        // swapoff reaches the kernel and fails for the file it is given instead.
        let cmds = [
            ("pivot_root", "mkdir -p /old && /busybox pivot_root / /old"),
            ("swapoff", "touch /sw && /busybox swapoff /sw"),
            ("mount", "mkdir -p /m && /busybox mount -t tmpfs t /m"),
            ("unshare", "/busybox unshare -m true"),
        ];
        let all = each(env, &["--cap-add", "ALL"], &cmds);
        assert!(all[0].1.contains("Operation not permitted"), "{all:?}");
        assert!(all[1].1.contains("Operation not permitted"), "{all:?}");
        assert_eq!((all[2].1.as_str(), all[3].1.as_str()), ("ok", "ok"), "{all:?}");
        let unconfined = each(
            env,
            &["--cap-add", "ALL", "--security-opt", "seccomp=unconfined"],
            &cmds[1..2],
        );
        assert!(
            !unconfined[0].1.contains("Operation not permitted"),
            "{unconfined:?}"
        );
        assert_ne!(unconfined[0].1, "ok", "{unconfined:?}");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn seccomp_unconfined_and_profiles() {
    require_root();
    with_sample(|env| {
        // unconfined: no filter; with CAP_SYS_ADMIN, unshare -m works.
        assert_eq!(
            status(env, &["--security-opt", "seccomp=unconfined"], "Seccomp"),
            "0"
        );
        assert_eq!(status(env, &["--privileged"], "Seccomp"), "0");
        let (code, out) = sh(
            env,
            &["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp:unconfined"],
            "/busybox unshare -m true && echo unshared",
        );
        assert_eq!((code, out.trim()), (0, "unshared"));
        // A profile that denies mkdir: mkdir fails with EPERM, the rest works.
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("no-mkdir.json");
        std::fs::write(
            &profile,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
        )
        .unwrap();
        let opt = format!("seccomp={}", profile.display());
        let (code, out) = sh(env, &["--security-opt", &opt], "echo hi > /f && cat /f; mkdir /d");
        assert_ne!(code, 0, "{out}");
        assert!(out.starts_with("hi\n"), "{out}");
        assert!(out.contains("Operation not permitted"), "{out}");
        // A profile is the container's from creation on: its copy is kept, its digest shown; the
        // container starts the same after the file changed.
        env.ok(&[
            "container",
            "create",
            "--name",
            "p",
            "-v",
            BB,
            "--security-opt",
            &opt,
            "sample",
            "mkdir",
            "/d",
        ]);
        let digest = {
            use std::fmt::Write;
            let out = std::process::Command::new("sha256sum")
                .arg(&profile)
                .output()
                .unwrap();
            let hex = String::from_utf8_lossy(&out.stdout);
            let mut s = String::from("sha256:");
            write!(s, "{}", hex.split_whitespace().next().unwrap()).unwrap();
            s
        };
        let c = &env.json(&["container", "inspect", "p"])[0]["config"]["seccomp"];
        assert_eq!(c["mode"], "profile", "{c}");
        assert_eq!(c["path"], profile.display().to_string(), "{c}");
        assert_eq!(c["digest"], digest, "{c}");
        std::fs::write(&profile, "not json").unwrap();
        env.fails(&["container", "start", "-a", "p"], 1, "Operation not permitted");
        env.ok(&["container", "create", "--name", "d", "sample"]);
        env.ok(&[
            "container",
            "create",
            "--name",
            "u",
            "--security-opt",
            "seccomp=unconfined",
            "sample",
        ]);
        env.ok(&["container", "create", "--name", "v", "--privileged", "sample"]);
        for (name, mode) in [("d", "default"), ("u", "unconfined"), ("v", "unconfined")] {
            let c = &env.json(&["container", "inspect", name])[0]["config"]["seccomp"];
            assert_eq!(c["mode"], mode, "{name}: {c}");
        }
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_malformed_profile_is_a_usage_error_and_creates_nothing() {
    require_root();
    with_sample(|env| {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            format!("seccomp={}", p.display())
        };
        let cases = [
            (
                write("syntax.json", "{\"defaultAction\": "),
                "syntax.json: not a seccomp profile",
            ),
            (
                write(
                    "action.json",
                    r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_MAYBE"}]}"#,
                ),
                "action.json: syscalls[0]: unknown action \"SCMP_ACT_MAYBE\"",
            ),
            (
                write("nodefault.json", "{}"),
                "nodefault.json: defaultAction is missing",
            ),
            (
                format!("seccomp={}", dir.path().join("missing.json").display()),
                "missing.json: cannot read it",
            ),
        ];
        for (opt, want) in &cases {
            env.fails(
                &["run", "-v", "/data", "--security-opt", opt, "sample", "true"],
                125,
                want,
            );
            env.fails(
                &[
                    "run",
                    "--rm",
                    "-v",
                    "/data",
                    "--security-opt",
                    opt,
                    "sample",
                    "true",
                ],
                125,
                want,
            );
            env.fails(
                &[
                    "container",
                    "create",
                    "--name",
                    "x",
                    "--security-opt",
                    opt,
                    "sample",
                ],
                125,
                want,
            );
        }
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "");
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
        // The name was not kept either.
        env.ok(&["container", "create", "--name", "x", "sample"]);
    });
}
