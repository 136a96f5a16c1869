//! S6-S13: volumes, bind mounts and tmpfs through the `mountkit` binary.

mod support;

use mountkit_testutil::require_root;
use support::{Env, in_store, mounts_under, wait_until, with_sample};

/// `container create --name NAME FLAG VALUE sample true`: a container of the sample image with one mount
/// flag (`-v`, `--mount`, ...); returns its ID.
fn create_with(env: &Env, name: &str, flag: &str, value: &str) -> String {
    env.ok(&[
        "container",
        "create",
        "--name",
        name,
        flag,
        value,
        "sample",
        "true",
    ])
}

/// S6/S7: the to-do list scenario. A named volume outlives the container that wrote to it, and a new
/// container from a second image (the "new version") sees the data intact.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s7_todo_list_data_survives_container_replacement() {
    require_root();
    in_store(|env| {
        env.sample("todo-v1");
        env.sample("todo-v2");
        assert_eq!(env.ok(&["volume", "create", "todo-list"]), "todo-list");
        env.ok(&[
            "run",
            "--name",
            "todo1",
            "-v",
            "todo-list:/data",
            "todo-v1",
            "sh",
            "-c",
            "echo 'buy milk' > /data/todo.db",
        ]);
        env.ok(&["container", "rm", "todo1"]);
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "todo-list");
        assert_eq!(
            env.ok(&[
                "run",
                "--rm",
                "-v",
                "todo-list:/data",
                "todo-v2",
                "cat",
                "/data/todo.db"
            ]),
            "buy milk"
        );
        let v = env.json(&["volume", "inspect", "todo-list"]);
        assert_eq!(v[0]["name"], "todo-list");
        assert_eq!(v[0]["driver"], "local");
        assert!(mounts_under(&env.root).is_empty());
    });
}

/// S8: an image `VOLUME` gives each container its own anonymous volume, populated from the image;
/// `rm -v` removes one and not the other; `run --rm` leaves no volume behind.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s8_image_volume_gives_each_container_an_anonymous_volume() {
    require_root();
    in_store(|env| {
        env.ok(&["system", "sample-image", "vol-image", "--volume", "/app/old"]);
        let a = env.ok(&[
            "run",
            "--name",
            "a",
            "vol-image",
            "sh",
            "-c",
            "ls /app/old; echo a > /app/old/who",
        ]);
        assert_eq!(a, "new.txt", "the anonymous volume is populated from the image");
        env.ok(&[
            "run",
            "--name",
            "b",
            "vol-image",
            "sh",
            "-c",
            "echo b > /app/old/who",
        ]);
        let vols: Vec<String> = env.lines(&["volume", "ls", "-q"]);
        assert_eq!(vols.len(), 2, "{vols:?}");
        assert!(
            vols.iter()
                .all(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let ia = env.json(&["container", "inspect", "a"]);
        let va = ia[0]["Mounts"][0]["Name"].as_str().unwrap().to_string();
        assert_eq!(ia[0]["Mounts"][0]["Destination"], "/app/old");
        env.ok(&["container", "rm", "-v", "a"]);
        let left: Vec<String> = env.lines(&["volume", "ls", "-q"]);
        assert_eq!(left.len(), 1);
        assert!(!left.contains(&va), "rm -v removed a's anonymous volume");
        env.ok(&["container", "rm", "b"]);
        assert_eq!(
            env.ok(&["volume", "ls", "-q"]).lines().count(),
            1,
            "rm without -v keeps it"
        );
        env.ok(&["run", "--rm", "vol-image", "true"]);
        assert_eq!(
            env.ok(&["volume", "ls", "-q"]).lines().count(),
            1,
            "run --rm leaves no volume behind"
        );
        let pruned = env.ok(&["volume", "prune", "-f"]);
        assert_eq!(pruned.lines().count(), 1);
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    });
}

/// S9: `--volumes-from` shares the volumes; the anonymous volume outlives the first container.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s9_volumes_from_shares_data() {
    require_root();
    in_store(|env| {
        env.ok(&["system", "sample-image", "todo", "--volume", "/data"]);
        env.ok(&[
            "run",
            "--name",
            "todo1",
            "todo",
            "sh",
            "-c",
            "echo from-todo1 > /data/list",
        ]);
        env.ok(&[
            "run",
            "--name",
            "todo3",
            "--volumes-from",
            "todo1",
            "todo",
            "sh",
            "-c",
            "cat /data/list; echo from-todo3 >> /data/list",
        ]);
        env.ok(&["container", "rm", "todo1"]);
        let out = env.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "todo3",
            "todo",
            "cat",
            "/data/list",
        ]);
        assert_eq!(out, "from-todo1\nfrom-todo3");
        // Read-only sharing.
        let ro = env.run(&[
            "run",
            "--rm",
            "--volumes-from",
            "todo3:ro",
            "todo",
            "sh",
            "-c",
            "echo x > /data/list",
        ]);
        assert_ne!(ro.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&ro.stderr).contains("Read-only"),
            "{}",
            String::from_utf8_lossy(&ro.stderr)
        );
    });
}

/// S10: `-v name:/data` wins over the image's `VOLUME /data`: no anonymous volume is made.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s10_named_volume_wins_over_image_volume() {
    require_root();
    in_store(|env| {
        env.ok(&["system", "sample-image", "todo", "--volume", "/data"]);
        env.ok(&["volume", "create", "mine"]);
        env.ok(&[
            "run",
            "--rm",
            "-v",
            "mine:/data",
            "todo",
            "sh",
            "-c",
            "echo kept > /data/f",
        ]);
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "mine");
        assert_eq!(
            env.ok(&[
                "run",
                "--rm",
                "--mount",
                "type=volume,source=mine,target=/data",
                "todo",
                "cat",
                "/data/f"
            ]),
            "kept"
        );
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "mine");
    });
}

/// S11: binds are two-way; read-only is EROFS, recursively (a submount of the source is read-only too).
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s11_bind_mounts_are_two_way_and_readonly_is_recursive() {
    require_root();
    with_sample(|env| {
        let src = env.path("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("from-host"), "host\n").unwrap();
        let spec = format!("type=bind,source={},target=/src", src.display());
        let out = env.ok(&[
            "run",
            "--rm",
            "--mount",
            &spec,
            "sample",
            "sh",
            "-c",
            "cat /src/from-host; echo container > /src/from-container",
        ]);
        assert_eq!(out, "host");
        assert_eq!(
            std::fs::read_to_string(src.join("from-container")).unwrap(),
            "container\n"
        );
        // A submount inside the source (a tmpfs), then a read-only bind: the submount is read-only too.
        // (Unmounted when the test ends, pass or fail, so the temp dir can be removed.)
        let _sub = TmpfsAt::mount(&src.join("sub"));
        let ro = format!("{}:/src:ro", src.display());
        let top = env.run(&["run", "--rm", "-v", &ro, "sample", "sh", "-c", "echo x > /src/y"]);
        assert!(
            String::from_utf8_lossy(&top.stderr).contains("Read-only"),
            "{}",
            String::from_utf8_lossy(&top.stderr)
        );
        let sub = env.run(&[
            "run",
            "--rm",
            "-v",
            &ro,
            "sample",
            "sh",
            "-c",
            "echo x > /src/sub/y",
        ]);
        assert!(
            String::from_utf8_lossy(&sub.stderr).contains("Read-only"),
            "{}",
            String::from_utf8_lossy(&sub.stderr)
        );
        assert!(!src.join("y").exists() && !src.join("sub/y").exists());
    });
}

/// A tmpfs the test mounted (in its own mount namespace), unmounted on drop.
struct TmpfsAt(std::path::PathBuf);

impl TmpfsAt {
    fn mount(at: &std::path::Path) -> TmpfsAt {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success());
        TmpfsAt(at.to_path_buf())
    }
}

impl Drop for TmpfsAt {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// S12: a bind over an image directory hides its files; S13: a single-file bind keeps the others visible.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s12_s13_directory_bind_hides_file_bind_merges() {
    require_root();
    with_sample(|env| {
        let dir = env.path("cfg");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("only.txt"), "mine\n").unwrap();
        let out = env.ok(&[
            "run",
            "--rm",
            "-v",
            &format!("{}:/app", dir.display()),
            "sample",
            "ls",
            "/app",
        ]);
        assert_eq!(out, "only.txt", "S12: the image's /app is hidden");
        let file = env.path("config.txt");
        std::fs::write(&file, "from host\n").unwrap();
        let spec = format!("type=bind,source={},target=/app/config.txt", file.display());
        let out = env.ok(&[
            "run",
            "--rm",
            "--mount",
            &spec,
            "sample",
            "sh",
            "-c",
            "cat /app/config.txt; ls /app",
        ]);
        assert!(out.starts_with("from host\n"), "{out}");
        assert!(
            out.contains("message.txt"),
            "S13: the image's other files stay visible: {out}"
        );
    });
}

/// An image whose `/data` is a symlink dangling inside it (`/data -> /srv/appdata`, `/cache ->
/// ../../srv/cache`): like Docker, `-v HOSTDIR:/data` and a named volume at `/cache` create the missing
/// directories inside the container's root and mount there; nothing appears beside HOSTDIR.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn mounts_behind_dangling_image_symlinks_land_inside_the_root() {
    require_root();
    with_sample(|env| {
        let info = env.json(&["image", "inspect", "sample"]);
        let layer = env.path("links");
        std::fs::create_dir_all(&layer).unwrap();
        std::os::unix::fs::symlink("/srv/appdata", layer.join("data")).unwrap();
        std::os::unix::fs::symlink("../../srv/cache", layer.join("cache")).unwrap();
        let mut args = vec!["image".to_string(), "create".into(), "links".into()];
        for l in info[0]["layers"].as_array().unwrap() {
            args.extend(["--layer".into(), l.as_str().unwrap().to_string()]);
        }
        args.extend(["--layer".into(), layer.to_string_lossy().into_owned()]);
        env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let host = env.path("host");
        let hostdir = host.join("dir");
        std::fs::create_dir_all(&hostdir).unwrap();
        let bind = format!("{}:/data", hostdir.display());
        let out = env.ok(&[
            "run",
            "--rm",
            "-v",
            &bind,
            "links",
            "sh",
            "-c",
            "echo x > /data/f; readlink /data; ls /srv/appdata",
        ]);
        assert_eq!(out, "/srv/appdata\nf");
        assert_eq!(std::fs::read_to_string(hostdir.join("f")).unwrap(), "x\n");
        let names = |d: &std::path::Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&host), ["dir"]);
        assert_eq!(names(&hostdir), ["f"]);
        // A named volume at a target behind the relative dangling link.
        env.ok(&["volume", "create", "cache"]);
        env.ok(&[
            "run",
            "--rm",
            "-v",
            "cache:/cache",
            "links",
            "sh",
            "-c",
            "echo kept > /cache/f",
        ]);
        assert_eq!(
            env.ok(&[
                "run",
                "--rm",
                "-v",
                "cache:/cache",
                "links",
                "cat",
                "/srv/cache/f"
            ]),
            "kept"
        );
        assert_eq!(
            std::fs::read_to_string(env.root.join("volumes/cache/_data/f")).unwrap(),
            "kept\n"
        );
        assert!(!env.dir.path().join("srv").exists());
        assert!(mounts_under(&env.root).is_empty());
        assert!(mounts_under(env.dir.path()).is_empty());
    });
}

/// tmpfs: size and mode honoured; contents gone after the container exits.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn tmpfs_size_mode_and_lifetime() {
    require_root();
    with_sample(|env| {
        env.ok(&[
            "container",
            "create",
            "--name",
            "t",
            "--tmpfs",
            "/scratch:size=1m,mode=1770",
            "sample",
            "sh",
            "-c",
            "stat -c %a /scratch; df -k /scratch | tail -1; ls /scratch; touch /scratch/f",
        ]);
        let first = env.ok(&["container", "start", "-a", "t"]);
        let lines: Vec<&str> = first.lines().collect();
        assert_eq!(lines[0], "1770");
        let size_kb: u64 = lines[1].split_whitespace().nth(1).unwrap().parse().unwrap();
        assert_eq!(size_kb, 1024);
        assert_eq!(lines.len(), 2, "empty at first start: {first}");
        let second = env.ok(&["container", "start", "-a", "t"]);
        assert_eq!(
            second.lines().count(),
            2,
            "tmpfs contents are gone after the container exits: {second}"
        );
    });
}

/// A volume in use cannot be removed (not even with -f); prune keeps used and named volumes.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn volume_in_use_is_protected_and_prune_is_careful() {
    require_root();
    with_sample(|env| {
        env.ok(&["volume", "create", "--label", "app=todo", "todo-list"]);
        env.ok(&["volume", "create", "unused"]);
        create_with(env, "c1", "-v", "todo-list:/data");
        env.fails(&["volume", "rm", "todo-list"], 1, "c1");
        env.fails(&["volume", "rm", "-f", "todo-list"], 1, "c1");
        assert_eq!(
            env.ok(&["volume", "prune", "-f"]),
            "",
            "named volumes are kept without -a"
        );
        assert_eq!(
            env.ok(&["volume", "prune", "-a", "-f"]),
            "unused",
            "used volumes are kept"
        );
        assert_eq!(
            env.ok(&["volume", "ls", "-q", "--filter", "label=app=todo"]),
            "todo-list"
        );
        assert_eq!(env.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]), "");
        env.ok(&["container", "rm", "c1"]);
        assert_eq!(
            env.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
            "todo-list"
        );
        env.ok(&["volume", "rm", "todo-list"]);
        assert_eq!(env.ok(&["volume", "rm", "-f", "never-existed"]), "");
        env.fails(&["volume", "rm", "never-existed"], 1, "never-existed");
    });
}

/// References are written without fsync; a power loss (a new boot) can lose one or bring back a dropped
/// one. The first `volume rm`/`prune`/`ls --filter dangling` of a boot re-derives them from the container
/// records: a lost reference still protects the volume, a stale one does not keep it forever.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn volume_references_are_rederived_from_container_records_after_a_reboot() {
    require_root();
    with_sample(|env| {
        env.ok(&["volume", "create", "todo-list"]);
        env.ok(&["volume", "create", "unused"]);
        let id = create_with(env, "c1", "-v", "todo-list:/data");
        let vols = env.root.join("volumes");
        // What a power loss can leave: c1's reference gone, a removed container's reference back.
        std::fs::remove_file(vols.join("todo-list").join(format!("ref.{id}"))).unwrap();
        std::fs::write(vols.join("unused").join("ref.0123456789abcdef"), "").unwrap();
        std::fs::write(env.root.join("volume-refs.boot"), "a previous boot\n").unwrap();

        env.fails(&["volume", "rm", "todo-list"], 1, "c1");
        assert!(vols.join("todo-list").join(format!("ref.{id}")).exists());
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(
            std::fs::read_to_string(env.root.join("volume-refs.boot")).unwrap(),
            boot,
            "the check is recorded for this boot"
        );
        assert_eq!(
            env.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
            "unused"
        );
        assert_eq!(env.ok(&["volume", "prune", "-a", "-f"]), "unused");
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "todo-list");
    });
}

/// Removing a container whose bind mount is still attached (runner killed) never deletes host files.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn container_rm_never_deletes_through_a_bind() {
    require_root();
    with_sample(|env| {
        let canary = env.path("canary");
        std::fs::create_dir_all(&canary).unwrap();
        std::fs::write(canary.join("precious"), "keep me\n").unwrap();
        let spec = format!("{}:/canary", canary.display());
        let mut child = env.spawn(&[
            "run",
            "--name",
            "k",
            "-v",
            &spec,
            "sample",
            "sh",
            "-c",
            "touch /canary/started; sleep 300",
        ]);
        assert!(
            wait_until(120, || canary.join("started").exists()),
            "the container never started"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        env.ok(&["container", "rm", "-f", "k"]);
        assert_eq!(
            std::fs::read_to_string(canary.join("precious")).unwrap(),
            "keep me\n"
        );
    });
}

/// Every parse error: a clear message quoting the bad part, exit 125, nothing created.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn mount_parse_errors_exit_125_and_create_nothing() {
    require_root();
    with_sample(|env| {
        let missing = env.path("does-not-exist");
        for (args, needle) in [
            (
                vec!["--mount".to_string(), "type=bogus,target=/x".to_string()],
                "bogus".to_string(),
            ),
            (
                vec![
                    "--mount".into(),
                    format!("type=bind,source={},target=/x", missing.display()),
                ],
                "bind source path does not exist".into(),
            ),
            (vec!["-v".into(), "vol:relative".into()], "relative".into()),
            (vec!["--tmpfs".into(), "/t:size=lots".into()], "lots".into()),
            (vec!["-v".into(), "bad name!:/x".into()], "bad name!".into()),
        ] {
            let mut a = vec!["run", "--rm", "--name", "never"];
            a.extend(args.iter().map(String::as_str));
            a.extend(["sample", "true"]);
            env.fails(&a, 125, &needle);
        }
        assert_eq!(env.ok(&["container", "ls", "-a", "-q"]), "");
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    });
}

/// `volume inspect` names the containers that reference a volume, whatever their state (JSON by default,
/// a readable block with `--format text`); `container ls --filter volume=` finds them by the volume's name
/// or by the mount's destination. A stale reference or a volume whose record is gone breaks neither.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn volume_inspect_names_its_containers_and_ls_filters_by_volume() {
    require_root();
    with_sample(|env| {
        env.ok(&["volume", "create", "shared"]);
        env.ok(&["volume", "create", "idle"]);
        // web: created, mounts `shared` by name; worker: exited, gets it through --volumes-from.
        let web = create_with(env, "web", "-v", "shared:/data");
        env.ok(&[
            "run",
            "--name",
            "worker",
            "--volumes-from",
            "web",
            "sample",
            "true",
        ]);
        let worker = env.json(&["container", "inspect", "worker"])[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let other = create_with(env, "other", "-v", "/scratch");

        let v = env.json(&["volume", "inspect", "shared", "idle"]);
        assert_eq!(
            v[0]["containers"],
            serde_json::json!([
                {"id": web, "name": "web", "status": "created"},
                {"id": worker, "name": "worker", "status": "exited"},
            ]),
            "{v}"
        );
        assert_eq!(v[1]["name"], "idle");
        assert_eq!(v[1]["containers"], serde_json::json!([]), "{v}");

        let text = env.ok(&["volume", "inspect", "--format", "text", "shared"]);
        assert!(
            text.lines()
                .any(|l| l.starts_with("Name:") && l.ends_with(" shared")),
            "{text}"
        );
        assert!(text.contains("Driver:") && text.contains("Mountpoint:"), "{text}");
        for (id, name, status) in [(&web, "web", "created"), (&worker, "worker", "exited")] {
            assert!(
                text.lines().any(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    w == [&id[..12], name, status]
                }),
                "{name} in {text}"
            );
        }
        let idle = env.ok(&["--format", "text", "volume", "inspect", "idle"]);
        assert!(idle.lines().any(|l| l == "Containers: none"), "{idle}");

        let short = |ids: &[&String]| ids.iter().map(|i| i[..12].to_string()).collect::<Vec<_>>();
        assert_eq!(
            env.lines(&["container", "ls", "-a", "-q", "--filter", "volume=shared"]),
            short(&[&web, &worker])
        );
        assert_eq!(
            env.lines(&["ps", "-a", "-q", "--filter", "volume=/data"]),
            short(&[&web, &worker]),
            "by destination"
        );
        assert_eq!(env.ok(&["container", "ls", "-a", "-q", "-f", "volume=idle"]), "");
        assert_eq!(
            env.ok(&["container", "ls", "-q", "--filter", "volume=shared"]),
            "",
            "without -a: running ones only"
        );
        assert_eq!(
            env.lines(&[
                "container",
                "ls",
                "-a",
                "-q",
                "--filter",
                "volume=idle",
                "--filter",
                "volume=/scratch",
            ]),
            short(&[&other]),
            "filters on the same key: any of them"
        );
        let listed = env.json(&[
            "container",
            "ls",
            "-a",
            "--format",
            "json",
            "--filter",
            "volume=shared",
        ]);
        assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
        env.fails(
            &["container", "ls", "-a", "--filter", "colour=red"],
            125,
            "colour",
        );
        env.fails(&["ps", "--filter", "volume"], 125, "volume");

        // A reference whose container is gone is not listed; a container whose volume record is gone
        // is still found by the filter, and inspecting that volume is a plain "no such volume".
        std::fs::write(
            env.root
                .join("volumes/shared")
                .join(format!("ref.{}", "f".repeat(64))),
            "",
        )
        .unwrap();
        let orphan = create_with(env, "orphan", "-v", "gone:/g");
        std::fs::remove_dir_all(env.root.join("volumes/gone")).unwrap();
        assert_eq!(
            env.lines(&["container", "ls", "-a", "-q", "--filter", "volume=gone"]),
            short(&[&orphan])
        );
        env.fails(&["volume", "inspect", "gone"], 1, "gone");
        let v = env.json(&["volume", "inspect", "shared"]);
        assert_eq!(v[0]["containers"].as_array().map(Vec::len), Some(2), "{v}");

        env.ok(&["container", "rm", "worker"]);
        let v = env.json(&["volume", "inspect", "shared"]);
        assert_eq!(
            v[0]["containers"],
            serde_json::json!([{"id": web, "name": "web", "status": "created"}]),
            "{v}"
        );
        assert_eq!(
            env.lines(&["container", "ls", "-a", "-q", "--filter", "volume=shared"]),
            short(&[&web])
        );
        for c in ["web", "other", "orphan"] {
            env.ok(&["container", "rm", c]);
        }
        assert!(mounts_under(&env.root).is_empty());
    });
}
