//! S1-S5, S15: layers, images and containers through the `mountkit` binary.

mod support;

use mountkit_testutil::require_root;
use support::{Env, kill9, mounts_under, wait_until, with_sample};

/// S1: two containers from one image see the same image files; a write in one is invisible in the other.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s1_two_containers_share_image_files_not_writes() {
    require_root();
    with_sample(|env| {
        env.ok(&["container", "create", "--name", "c1", "sample", "true"]);
        env.ok(&["container", "create", "--name", "c2", "sample", "true"]);
        assert_eq!(
            env.ok(&["run", "--rm", "sample", "cat", "/app/message.txt"]),
            "hello from layer 2"
        );
        env.ok(&[
            "run",
            "--name",
            "w1",
            "sample",
            "sh",
            "-c",
            "echo mine > /app/note.txt && cat /app/message.txt",
        ]);
        let other = env.run(&["run", "--rm", "sample", "cat", "/app/note.txt"]);
        assert_eq!(
            other.status.code(),
            Some(1),
            "a second container must not see the first one's write"
        );
        assert_eq!(
            env.ok(&["run", "--rm", "sample", "cat", "/app/message.txt"]),
            "hello from layer 2"
        );
        // The first container still has its write when started again.
        env.ok(&["container", "rm", "c1", "c2"]);
        let id = env.ok(&[
            "container",
            "create",
            "--name",
            "again",
            "sample",
            "cat",
            "/app/note.txt",
        ]);
        let out = env
            .cmd()
            .args(["container", "start", "-a", &id])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(mounts_under(&env.root).is_empty());
    });
}

/// S3/S4: copy-up leaves the store's layer byte-identical; the changed copy is in the writable layer;
/// `container rm` removes the writable layer.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s3_s4_copy_up_then_rm_removes_the_writable_layer() {
    require_root();
    with_sample(|env| {
        let inspect = env.json(&["image", "inspect", "sample"]);
        let layers = inspect[0]["layers"].as_array().unwrap().clone();
        let app_layer = layers[1]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        let layer_file = env
            .root
            .join("layers")
            .join(&app_layer)
            .join("diff/app/message.txt");
        let before = std::fs::read(&layer_file).expect("layer file in the store");

        let id = env.ok(&[
            "container",
            "create",
            "--name",
            "cow",
            "sample",
            "sh",
            "-c",
            "echo changed >> /app/message.txt",
        ]);
        env.ok(&["container", "start", "-a", "cow"]);
        assert_eq!(
            std::fs::read(&layer_file).unwrap(),
            before,
            "the image layer must not change"
        );
        let copied = std::fs::read_to_string(env.upper(&id).join("app/message.txt")).unwrap();
        assert_eq!(copied, "hello from layer 2\nchanged\n");
        // Another container still sees the original.
        assert_eq!(
            env.ok(&["run", "--rm", "sample", "cat", "/app/message.txt"]),
            "hello from layer 2"
        );
        env.ok(&["container", "rm", "cow"]);
        assert!(
            !env.root.join("containers").join(&id).exists(),
            "rm removes the writable layer"
        );
        assert_eq!(std::fs::read(&layer_file).unwrap(), before);
    });
}

/// S5: a later layer wins; a `.wh.` file deletes; `.wh..wh..opq` replaces a directory wholesale.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s5_later_layer_wins_whiteout_deletes_opaque_replaces() {
    require_root();
    with_sample(|env| {
        assert_eq!(env.ok(&["run", "--rm", "sample", "cat", "/app/config.txt"]), "v2");
        let gone = env.run(&["run", "--rm", "sample", "test", "-e", "/app/remove-me.txt"]);
        assert_eq!(gone.status.code(), Some(1), "the whiteout hides the file");
        assert_eq!(env.ok(&["run", "--rm", "sample", "ls", "/app/old"]), "new.txt");
    });
}

/// S2: an image used by a container cannot be removed; a layer used by an image cannot be removed.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s2_images_and_layers_in_use_are_protected() {
    require_root();
    with_sample(|env| {
        env.ok(&["container", "create", "--name", "user1", "sample", "true"]);
        env.fails(&["image", "rm", "sample"], 1, "used by container(s) user1");
        let layer = env.ok(&["layer", "ls", "-q"]).lines().next().unwrap().to_string();
        env.fails(&["layer", "rm", &layer], 1, "sample");
        env.ok(&["container", "rm", "user1"]);
        env.ok(&["image", "rm", "sample"]);
        env.ok(&["layer", "rm", &layer]);
        assert!(!env.ok(&["layer", "ls", "-q"]).contains(&layer));
    });
}

/// Names: validated, unique; unknown references are clear errors; prefixes work.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn container_names_ids_and_prefixes() {
    require_root();
    with_sample(|env| {
        let id = env.ok(&["container", "create", "--name", "web", "sample", "true"]);
        assert_eq!(id.len(), 64);
        env.fails(
            &["container", "create", "--name", "web", "sample", "true"],
            125,
            "already in use",
        );
        env.fails(
            &["container", "create", "--name", "../x", "sample", "true"],
            125,
            "invalid container name",
        );
        env.fails(&["container", "inspect", "nope"], 1, "no such container: nope");
        let by_prefix = env.json(&["container", "inspect", &id[..8]]);
        assert_eq!(by_prefix[0]["name"], "web");
        let ls = env.json(&["--format", "json", "container", "ls", "-a"]);
        assert_eq!(ls.as_array().unwrap().len(), 1);
        assert_eq!(ls[0]["state"]["status"], "created");
        // The generated name is Docker-like.
        let id2 = env.ok(&["container", "create", "sample", "true"]);
        let c = env.json(&["container", "inspect", &id2]);
        assert!(c[0]["name"].as_str().unwrap().contains('_'));
        // A removed container's name is free again.
        env.ok(&["container", "rm", "web"]);
        env.fails(&["container", "inspect", "web"], 1, "no such container: web");
        let id3 = env.ok(&["container", "create", "--name", "web", "sample", "true"]);
        assert_ne!(id3, id);
        // A name left behind by a crash (its container is gone) does not block the name.
        let names = env.root.join("container-names");
        std::os::unix::fs::symlink("f".repeat(64), names.join("ghost")).unwrap();
        env.fails(&["container", "inspect", "ghost"], 1, "no such container: ghost");
        env.ok(&["container", "create", "--name", "ghost", "sample", "true"]);
        let web = env.json(&["container", "inspect", "web"]);
        assert_eq!(web[0]["id"], id3.as_str());
        env.fails(
            &["container", "create", "--name", "ghost", "sample", "true"],
            125,
            "already in use",
        );
    });
}

/// `container mount` mounts the rootfs in the (test's own) namespace and `unmount` undoes it; `rm` refuses
/// a mounted container without `-f`.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn container_mount_and_unmount() {
    require_root();
    with_sample(|env| {
        env.ok(&["container", "create", "--name", "m", "sample", "true"]);
        let path = env.ok(&["container", "mount", "m"]);
        assert_eq!(
            std::fs::read_to_string(format!("{path}/app/config.txt")).unwrap(),
            "v2\n"
        );
        assert_eq!(mounts_under(&env.root).len(), 1);
        env.fails(&["container", "rm", "m"], 1, "is mounted");
        env.ok(&["container", "unmount", "m"]);
        assert!(mounts_under(&env.root).is_empty());
        env.ok(&["container", "mount", "m"]);
        env.ok(&["container", "rm", "-f", "m"]);
        assert!(mounts_under(&env.root).is_empty());
    });
}

/// A `mountkit run` killed with SIGKILL leaves no mount in the host's namespace, and its container dies.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn killed_runner_leaks_no_mount() {
    require_root();
    with_sample(|env| {
        let marker = env.path("started");
        let mark = format!("{}:/mark", env.dir.path().display());
        let mut child = env.spawn(&[
            "run",
            "--name",
            "victim",
            "-v",
            &mark,
            "sample",
            "sh",
            "-c",
            "touch /mark/started; sleep 300",
        ]);
        assert!(wait_until(120, || marker.exists()), "the container never started");
        let c = env.json(&["container", "inspect", "victim"]);
        let pid = c[0]["state"]["pid"]
            .as_i64()
            .expect("running container has a pid") as i32;
        assert!(
            mounts_under(&env.root).is_empty(),
            "container mounts must not be in this namespace"
        );
        kill9(child.id() as i32);
        child.wait().unwrap();
        // The container process dies with its runner.
        let dead = wait_until(120, || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z"))
                    .unwrap_or(true)
        });
        assert!(dead, "container process {pid} outlived its runner");
        assert!(mounts_under(&env.root).is_empty());
        assert!(mounts_under(env.dir.path()).is_empty());
        let ls = env.json(&["container", "inspect", "victim"]);
        assert_eq!(ls[0]["state"]["status"], "exited");
        env.ok(&["container", "rm", "victim"]);
    });
}

/// Concurrent `mountkit` processes are safe: creates racing each other and listings all succeed, and
/// nothing one process stages is swept by another.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn concurrent_creates_and_listings() {
    require_root();
    with_sample(|env| {
        let mut children = Vec::new();
        for i in 0..8 {
            children.push(
                env.cmd()
                    .args([
                        "container",
                        "create",
                        "--name",
                        &format!("c{i}"),
                        "sample",
                        "true",
                    ])
                    .output(),
            );
            children.push(env.cmd().args(["container", "ls", "-a"]).output());
        }
        let spawned: Vec<std::process::Child> = (0..8)
            .flat_map(|i| {
                [
                    env.cmd()
                        .args([
                            "container",
                            "create",
                            "--name",
                            &format!("p{i}"),
                            "sample",
                            "true",
                        ])
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .unwrap(),
                    env.cmd()
                        .args(["layer", "ls"])
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .unwrap(),
                ]
            })
            .collect();
        for mut c in spawned {
            assert!(c.wait().unwrap().success());
        }
        for out in children {
            assert!(out.unwrap().status.success());
        }
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]).lines().count(), 16);
        for i in 0..8 {
            env.ok(&["run", "--rm", "sample", "true"]);
            env.ok(&["container", "start", "-a", &format!("p{i}")]);
        }
    });
}

/// Runs `mountkit <args>` and waits for it, failing the test (instead of hanging it) if it has not
/// returned after `secs` seconds: a guard against deadlocks, not a speed measurement.
fn ok_within(env: &Env, args: &[&str], secs: u64) -> String {
    let mut child = env
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_until(secs, || child.try_wait().unwrap().is_some()) {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "mountkit {args:?} still running after {secs} s (deadlock?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mountkit {args:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim_end().to_string()
}

/// Issue 10.2: `rm -f` of a running, attached container returns (it used to wait for the runner while
/// holding the store lock the runner needed), the runner exits 137, and nothing of the container stays:
/// with `-v` its anonymous volume goes too; with `run --rm` its runner removes it and its volumes.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn rm_force_of_a_running_container_returns_and_removes_it() {
    require_root();
    with_sample(|env| {
        for (name, rm_flag, extra) in [("busy", None, "-fv"), ("busy-rm", Some("--rm"), "-f")] {
            let mut args = vec!["run", "--name", name, "-v", "/data"];
            args.extend(rm_flag);
            args.extend(["sample", "sleep", "300"]);
            let mut runner = env.spawn(&args);
            let id = env.wait_running(name, &mut runner)[0]["id"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(env.ok(&["volume", "ls", "-q"]).lines().count(), 1, "{name}");
            assert_eq!(ok_within(env, &["container", "rm", extra, name], 120), name);
            assert_eq!(
                runner.wait().unwrap().code(),
                Some(137),
                "{name}: the runner's status"
            );
            assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "", "{name}");
            assert_eq!(
                env.ok(&["volume", "ls", "-q"]),
                "",
                "{name}: its anonymous volume"
            );
            assert!(!env.root.join("containers").join(&id).exists(), "{name}");
            assert!(mounts_under(&env.root).is_empty(), "{name}");
        }
        // Without -f a running container is refused, and nothing waits.
        let mut runner = env.spawn(&["run", "--name", "third", "sample", "sleep", "300"]);
        env.wait_running("third", &mut runner);
        env.fails(&["container", "rm", "third"], 1, "is running");
        ok_within(env, &["container", "rm", "-f", "third"], 120);
        assert_eq!(runner.wait().unwrap().code(), Some(137));
    });
}

/// Binds `source` onto `target` (in the test's mount namespace), as someone other than mountkit would.
fn bind_mount(source: &std::path::Path, target: &std::path::Path) {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
}

/// Issue 10.5: something mounted under a container by someone else: `rm` (with or without `-f`) refuses
/// before anything moves, names the mount point, leaves the container as it was and the mount attached.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn rm_refuses_a_foreign_mount_under_the_container_and_changes_nothing() {
    require_root();
    with_sample(|env| {
        let id = env.ok(&["container", "create", "--name", "held", "sample", "true"]);
        let upper = env.upper(&id);
        let host = env.path("host-dir");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("precious"), "keep me").unwrap();
        let target = upper.join("x");
        std::fs::create_dir_all(&target).unwrap();
        bind_mount(&host, &target);
        let before = env.ok(&["container", "inspect", "held"]);
        for args in [
            &["container", "rm", "held"][..],
            &["container", "rm", "-f", "-v", "held"],
        ] {
            let err = env.fails(args, 1, "mountkit did not mount it");
            assert!(err.contains(&target.display().to_string()), "{err}");
        }
        assert_eq!(env.ok(&["container", "inspect", "held"]), before);
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), id[..12]);
        assert_eq!(mounts_under(&env.root), [target.display().to_string()]);
        assert_eq!(std::fs::read_to_string(host.join("precious")).unwrap(), "keep me");
        assert!(
            std::fs::read_dir(env.root.join("staging")).map_or(true, |mut d| d.next().is_none()),
            "nothing moved aside"
        );
        // Under `container mount`, a foreign mount inside the rootfs is refused the same way.
        nix::mount::umount(&target).unwrap();
        let merged = env.ok(&["container", "mount", "held"]);
        let inner = std::path::Path::new(&merged).join("app");
        bind_mount(&host, &inner);
        env.fails(
            &["container", "rm", "-f", "held"],
            1,
            &inner.display().to_string(),
        );
        nix::mount::umount(&inner).unwrap();
        // mountkit's own rootfs mount is undone by -f; then the container goes.
        env.ok(&["container", "rm", "-f", "held"]);
        assert!(mounts_under(&env.root).is_empty());
        assert_eq!(std::fs::read_to_string(host.join("precious")).unwrap(), "keep me");
    });
}
