//! Issue 15, size limits: `volume create --opt size=8m` (and `--mount ...,volume-opt=size=...`) on a
//! filesystem with project quotas (ext4, XFS: a project quota on `_data`) and on one without (an ext4
//! image, loop-mounted while in use). Each test makes its own filesystem on a loop device in its temp dir
//! and puts the store there; a case the machine cannot do (no mkfs, no loop devices, a kernel without
//! quota support) is skipped with the reason printed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use mountkit_testutil::require_root;
use support::{Env, kill9, mounts_under, wait_until};

/// A filesystem the test made in an image file and mounted (in the test's own mount namespace).
/// It owns the test's temp dir once a store is put on it ([`store_on`]), so that the filesystem is
/// unmounted before the dir that holds its image is removed (never a removal into a mounted filesystem).
struct TestFs {
    mountpoint: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Drop for TestFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.mountpoint).status();
        drop(self.dir.take());
    }
}

fn program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Makes a `size_mb` filesystem with `mkfs` and its `args` in `dir/fs.img`, mounts it at `dir/fs` with
/// `options`; `Err(reason)` when this machine cannot.
fn make_fs(dir: &Path, mkfs: &str, args: &[&str], size_mb: u64, options: &str) -> Result<TestFs, String> {
    let Some(mkfs_path) = program(mkfs) else {
        return Err(format!("{mkfs} is not installed"));
    };
    if !Path::new("/dev/loop-control").exists() {
        return Err("no loop devices (/dev/loop-control)".into());
    }
    let image = dir.join("fs.img");
    let f = std::fs::File::create(&image).unwrap();
    f.set_len(size_mb << 20).unwrap();
    drop(f);
    let out = Command::new(&mkfs_path).args(args).arg(&image).output().unwrap();
    if !out.status.success() {
        return Err(format!("{mkfs} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let mountpoint = dir.join("fs");
    std::fs::create_dir(&mountpoint).unwrap();
    let out = Command::new("mount")
        .args(["-o", &format!("loop,{options}")])
        .arg(&image)
        .arg(&mountpoint)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "mount -o loop,{options} failed (kernel without this filesystem's quota support?): {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(TestFs {
        mountpoint,
        dir: None,
    })
}

/// A store on `fs`; `env`'s temp dir (which holds `fs`'s image) goes to `fs`, and the new `Env` gets a
/// scratch dir of its own.
fn store_on(env: Env, fs: &mut TestFs) -> Env {
    fs.dir = Some(env.dir);
    Env {
        dir: tempfile::Builder::new()
            .prefix("mountkit-e2e-")
            .tempdir()
            .expect("tempdir"),
        root: fs.mountpoint.join("store"),
    }
}

/// The loop devices whose backing file is under `dir` (from `losetup -a`, as the issue asks).
fn loops_under(dir: &Path) -> Vec<String> {
    let out = Command::new("losetup").arg("-a").output();
    let text = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(_) => std::fs::read_dir("/sys/block")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
            .collect(),
    };
    let d = dir.to_string_lossy().into_owned();
    text.lines()
        .filter(|l| l.contains(&d))
        .map(String::from)
        .collect()
}

/// Free bytes of the filesystem at `path`.
fn free_bytes(path: &Path) -> u64 {
    let s = rustix::fs::statvfs(path).unwrap();
    s.f_bavail * s.f_frsize
}

/// The in-container check shared by every method: `df -k` of each volume, then `dd` of 16 MiB into it.
/// Returns, per mount path, (df's size in KiB, the bytes dd wrote, dd's error).
fn fill(env: &Env, run_args: &[&str], paths: &[&str]) -> Vec<(u64, u64, String)> {
    let script: String = paths
        .iter()
        .map(|p| {
            format!(
                "df -k {p} | tail -1; dd if=/dev/zero of={p}/big bs=1M count=16 2>&1 | grep -i -E 'error|space|quota' ; stat -c %s {p}/big; "
            )
        })
        .collect();
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(run_args);
    args.extend_from_slice(&["sample", "sh", "-c", &script]);
    let out = env.ok(&args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3 * paths.len(), "{out}");
    lines
        .chunks(3)
        .map(|c| {
            let kb: u64 = c[0].split_whitespace().nth(1).unwrap().parse().unwrap();
            (kb, c[2].trim().parse().unwrap(), c[1].to_string())
        })
        .collect()
}

/// dd stopped at the limit: not before three quarters of it (files take some metadata too), not after.
fn assert_wrote(bytes: u64, mib: u64) {
    assert!(
        ((mib << 20) * 3 / 4..=mib << 20).contains(&bytes),
        "wrote {bytes} bytes into a {mib} MiB volume"
    );
}

fn assert_about(kb: u64, mib: u64, what: &str) {
    let want = mib * 1024;
    assert!(
        (want * 9 / 10..=want * 11 / 10).contains(&kb),
        "{what}: {kb} KiB, expected about {mib} MiB"
    );
}

/// The loop-backed method on a filesystem without project quotas: `df` shows the size, writing past it
/// is ENOSPC, the loop device and the mount go with the container, `volume rm` gives the space back. One
/// volume made by `volume create`, one by `run --mount ...,volume-opt=size=`.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn loop_backed_volume_on_a_plain_filesystem() {
    require_root();
    mountkit_testutil::in_mount_ns(|| {
        let env = Env::new();
        let mut fs = match make_fs(env.dir.path(), "mkfs.ext4", &["-F", "-q"], 96, "rw") {
            Ok(fs) => fs,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        };
        let env = store_on(env, &mut fs);
        env.sample("sample");
        let before = free_bytes(&fs.mountpoint);
        env.ok(&["volume", "create", "--opt", "size=8m", "v8"]);
        let v = env.json(&["volume", "inspect", "v8"]);
        assert_eq!(v[0]["size_limit"]["method"], "loop-ext4", "{v}");
        assert_eq!(v[0]["size_limit"]["bytes"], 8 << 20, "{v}");
        let image = env.root.join("volumes/v8/disk.img");
        let allocated = std::fs::metadata(&image).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.blocks() * 512
        });
        assert!(allocated.unwrap() < 4 << 20, "the image is sparse");

        let got = fill(
            &env,
            &[
                "-v",
                "v8:/data",
                "--mount",
                "type=volume,src=m4,dst=/m,volume-opt=size=4m",
            ],
            &["/data", "/m"],
        );
        let (kb, wrote, err) = &got[0];
        assert_about(*kb, 8, "df of the 8m volume");
        assert!(err.contains("No space left on device"), "{err}");
        assert_wrote(*wrote, 8);
        let (kb, wrote, err) = &got[1];
        assert_about(*kb, 4, "df of the 4m volume");
        assert!(err.contains("No space left on device"), "{err}");
        assert_wrote(*wrote, 4);
        assert_eq!(
            env.json(&["volume", "inspect", "m4"])[0]["size_limit"]["method"],
            "loop-ext4"
        );
        // Attached while in use only: nothing mounted, no loop device left.
        assert!(
            mounts_under(&env.root).is_empty(),
            "{:?}",
            mounts_under(&env.root)
        );
        assert!(loops_under(&env.root).is_empty(), "{:?}", loops_under(&env.root));

        env.ok(&["volume", "rm", "v8", "m4"]);
        assert!(!image.exists());
        let after = free_bytes(&fs.mountpoint);
        assert!(
            after + (1 << 20) >= before,
            "space back: {before} before, {after} after"
        );
    });
}

/// Runs `body` with a store and the sample image where loop devices and `mkfs.ext4` are at hand
/// (else says why it is skipped).
fn with_loop_devices(body: impl FnOnce(&Env)) {
    support::in_store(|env| {
        if !Path::new("/dev/loop-control").exists() || program("mkfs.ext4").is_none() {
            eprintln!("skipped: needs loop devices and mkfs.ext4");
            return;
        }
        env.sample("sample");
        body(env);
    });
}

/// After a SIGKILL: the next commands (each reconciles) leave no mount and no loop device in the store.
fn assert_reconciled(env: &Env) {
    assert!(
        wait_until(120, || {
            env.ok(&["volume", "ls", "-q"]);
            mounts_under(&env.root).is_empty() && loops_under(&env.root).is_empty()
        }),
        "left: {:?} {:?}",
        mounts_under(&env.root),
        loops_under(&env.root)
    );
}

/// SIGKILL of the runner of a container using a loop-backed volume: the container dies with it, and the
/// next mountkit command (which reconciles) leaves no mount and no loop device.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn sigkill_of_the_runner_leaves_no_loop_device() {
    require_root();
    with_loop_devices(|env| {
        env.ok(&["volume", "create", "--opt", "size=8m", "vv"]);
        let mut runner = env.spawn(&[
            "run", "--name", "victim", "-v", "vv:/data", "sample", "sleep", "600",
        ]);
        env.wait_running("victim", &mut runner);
        assert_eq!(loops_under(&env.root).len(), 1, "attached while in use");
        kill9(runner.id() as i32);
        runner.wait().unwrap();
        // The next command reconciles: the runner is gone, so the mount and its loop device go.
        assert_reconciled(env);
        let v = env.json(&["volume", "inspect", "vv"]);
        assert_eq!(v[0]["mounted"], false, "{v}");
        env.ok(&["container", "rm", "victim"]);
        env.ok(&["volume", "rm", "vv"]);
    });
}

/// A loop-backed volume that no container uses is exported and cloned as it is (the command attaches
/// its image for its own time, as a container's start would); SIGKILL of an export that holds it
/// attached leaves a mount that the next command undoes, loop device included.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn export_and_clone_of_a_loop_backed_volume_not_in_use() {
    require_root();
    with_loop_devices(|env| {
        env.ok(&["volume", "create", "--opt", "size=8m", "lv"]);
        env.ok(&[
            "run",
            "--rm",
            "-v",
            "lv:/data",
            "sample",
            "sh",
            "-c",
            "echo kept > /data/note; dd if=/dev/urandom of=/data/blob bs=64k count=32 2>/dev/null",
        ]);
        assert!(mounts_under(&env.root).is_empty() && loops_under(&env.root).is_empty());
        // Export: the content, not an empty archive; nothing attached after.
        let tar = env.path("lv.tar");
        env.ok(&["volume", "export", "lv", "-o", tar.to_str().unwrap()]);
        let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
        let names = String::from_utf8_lossy(&listing.stdout).into_owned();
        assert!(names.contains("note") && names.contains("blob"), "{names}");
        assert!(mounts_under(&env.root).is_empty() && loops_under(&env.root).is_empty());
        // Clone: a new (plain) volume with the same content.
        env.ok(&["volume", "clone", "lv", "copy"]);
        let out = env.ok(&[
            "run",
            "--rm",
            "-v",
            "copy:/c",
            "-v",
            "lv:/l",
            "sample",
            "sh",
            "-c",
            "cat /c/note; md5sum < /c/blob; md5sum < /l/blob; wc -c < /c/blob",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!((lines[0], lines[3].trim()), ("kept", "2097152"), "{out}");
        assert_eq!(lines[1], lines[2], "the clone's blob differs: {out}");
        assert!(mounts_under(&env.root).is_empty() && loops_under(&env.root).is_empty());
        // SIGKILL while the export holds it attached: its output is a pipe nobody reads, so it stops
        // with the volume mounted; the next command reconciles.
        let mut export = env
            .cmd()
            .args(["volume", "export", "lv"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_until(60, || loops_under(&env.root).len() == 1
                && mounts_under(&env.root).len() == 1),
            "the export attached the volume"
        );
        kill9(export.id() as i32);
        export.wait().unwrap();
        assert_reconciled(env);
        assert_eq!(env.json(&["volume", "inspect", "lv"])[0]["mounted"], false);
        env.ok(&["volume", "rm", "lv", "copy"]);
    });
}

/// The project-quota method: a store on a filesystem made and mounted with project quotas. `df` shows
/// the limit (statfs of a PROJINHERIT directory reports its project's limit), writing past it fails,
/// `volume rm` frees the project ID (the next volume gets it again).
fn quota_volume(mkfs: &str, mkfs_args: &[&str], size_mb: u64) {
    mountkit_testutil::in_mount_ns(|| {
        let env = Env::new();
        let mut fs = match make_fs(env.dir.path(), mkfs, mkfs_args, size_mb, "prjquota") {
            Ok(fs) => fs,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        };
        let env = store_on(env, &mut fs);
        env.sample("sample");
        env.ok(&["volume", "create", "--opt", "size=8m", "q8"]);
        let v = env.json(&["volume", "inspect", "q8"]);
        assert_eq!(v[0]["size_limit"]["method"], "project-quota", "{v}");
        let id = v[0]["size_limit"]["project_id"].as_u64().expect("a project ID");
        let got = fill(&env, &["-v", "q8:/data"], &["/data"]);
        let (kb, wrote, err) = &got[0];
        eprintln!("{mkfs}: df {kb} KiB, wrote {wrote} bytes, then: {err}");
        assert_about(*kb, 8, "df of the 8m volume");
        assert!(
            err.contains("quota exceeded") || err.contains("No space left on device"),
            "{err}"
        );
        assert_wrote(*wrote, 8);
        env.ok(&["volume", "rm", "q8"]);
        assert!(!env.root.join("volumes/q8").exists());
        env.ok(&["volume", "create", "--opt", "size=8m", "again"]);
        let v = env.json(&["volume", "inspect", "again"]);
        assert_eq!(
            v[0]["size_limit"]["project_id"].as_u64(),
            Some(id),
            "the freed ID is used again"
        );
        env.ok(&["volume", "rm", "again"]);
    });
}

/// Project quota on ext4 (`-O quota,project`, mounted with `prjquota`).
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn project_quota_volume_on_ext4() {
    require_root();
    quota_volume("mkfs.ext4", &["-F", "-q", "-I", "256", "-O", "quota,project"], 96);
}

/// Project quota on XFS (mounted with `prjquota`; XFS wants at least 300 MB, sparse here).
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn project_quota_volume_on_xfs() {
    require_root();
    quota_volume("mkfs.xfs", &["-f", "-q"], 320);
}

/// A bad size is an error naming it, from `volume create` and from `run --mount`, and nothing is made.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn bad_sizes_are_refused_and_make_nothing() {
    require_root();
    support::with_sample(|env| {
        for bad in ["lots", "0"] {
            env.fails(
                &["volume", "create", "--opt", &format!("size={bad}"), "vv"],
                1,
                &format!("\"size\" \"{bad}\""),
            );
            env.fails(
                &[
                    "run",
                    "--rm",
                    "--mount",
                    &format!("type=volume,src=ww,dst=/w,volume-opt=size={bad}"),
                    "sample",
                    "true",
                ],
                125,
                &format!("\"size\" \"{bad}\""),
            );
        }
        env.fails(
            &[
                "volume",
                "create",
                "--opt",
                "size=8m",
                "--opt",
                "type=tmpfs",
                "vv",
            ],
            1,
            "\"size\"",
        );
        assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
        assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    });
}
