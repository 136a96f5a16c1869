//! Volumes you can move and copy (issue 15): `volume export`, `volume import`, `volume clone`, end to
//! end through the binary. The trees are compared entry by entry: type, owner, mode, mtime (whole
//! seconds: a tar keeps no more), `user.*` xattrs, content, link targets, hard-link groups.

mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use support::{Env, in_store, with_sample};

/// One entry of a tree, as the comparison sees it.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: BTreeMap<String, Vec<u8>>,
    /// File content, or a symlink's target.
    data: Vec<u8>,
    /// For a file with several links: the first path (in sorted order) of its inode.
    link_group: Option<String>,
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let r = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// The `user.*` xattrs of `path` (not following a symlink).
fn user_xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let mut out = BTreeMap::new();
    if n <= 0 {
        return out;
    }
    names.truncate(n as usize);
    for name in names.split(|&b| b == 0).filter(|n| n.starts_with(b"user.")) {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 4096];
        let len = unsafe { libc::lgetxattr(p.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(len >= 0);
        v.truncate(len as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), v);
    }
    out
}

/// Every entry under `root` (the root itself as ""), keyed by relative path.
fn tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>, inodes: &mut BTreeMap<u64, String>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            add(root, &p, out, inodes);
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(root, &p, out, inodes);
            }
        }
    }
    fn add(root: &Path, p: &Path, out: &mut BTreeMap<String, Entry>, inodes: &mut BTreeMap<u64, String>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        let (kind, data) = if ft.is_dir() {
            ("dir", Vec::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                std::fs::read_link(p).unwrap().as_os_str().as_bytes().to_vec(),
            )
        } else if ft.is_file() {
            ("file", std::fs::read(p).unwrap())
        } else if ft.is_fifo() {
            ("fifo", Vec::new())
        } else {
            ("other", Vec::new())
        };
        let link_group = (ft.is_file() && m.nlink() > 1)
            .then(|| inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone());
        out.insert(
            rel,
            Entry {
                kind,
                mode: if ft.is_symlink() {
                    0
                } else {
                    m.permissions().mode() & 0o7777
                },
                uid: m.uid(),
                gid: m.gid(),
                mtime: if ft.is_symlink() { 0 } else { m.mtime() },
                xattrs: user_xattrs(p),
                data,
                link_group,
            },
        );
    }
    let mut out = BTreeMap::new();
    let mut inodes = BTreeMap::new();
    add(root, root, &mut out, &mut inodes);
    walk(root, root, &mut out, &mut inodes);
    out
}

fn data_dir(env: &Env, volume: &str) -> PathBuf {
    env.root.join("volumes").join(volume).join("_data")
}

/// Fills a volume's `_data` with one of everything: owners, modes, xattrs, hard links, symlinks (one
/// dangling, one absolute), an empty directory, a fifo, a sparse file, a `.wh.` name (no whiteout in a
/// volume), a name longer than 100 bytes.
fn fill(d: &Path) {
    std::fs::create_dir_all(d.join("etc/empty")).unwrap();
    std::fs::create_dir_all(d.join("deep").join("x".repeat(60)).join("y".repeat(60))).unwrap();
    std::fs::write(
        d.join("deep")
            .join("x".repeat(60))
            .join("y".repeat(60))
            .join("long"),
        "long name\n",
    )
    .unwrap();
    std::fs::write(d.join("etc/conf"), "key=value\n").unwrap();
    std::os::unix::fs::chown(d.join("etc/conf"), Some(1000), Some(1001)).unwrap();
    std::fs::set_permissions(d.join("etc/conf"), std::fs::Permissions::from_mode(0o640)).unwrap();
    set_xattr(&d.join("etc/conf"), "user.origin", b"test\0bytes");
    std::fs::hard_link(d.join("etc/conf"), d.join("conf-again")).unwrap();
    std::os::unix::fs::symlink("etc/conf", d.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", d.join("abs-link")).unwrap();
    std::fs::write(d.join(".wh.not-a-whiteout"), "kept\n").unwrap();
    let fifo = CString::new(d.join("pipe").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o620) }, 0);
    let f = std::fs::File::create(d.join("sparse")).unwrap();
    f.set_len(8 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"middle", 4 << 20).unwrap();
    std::fs::set_permissions(d.join("etc/empty"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(d.join("etc"), Some(7), Some(8)).unwrap();
    std::os::unix::fs::chown(d, Some(999), Some(999)).unwrap();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Allocated bytes of a file.
fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// The registry's staging holds nothing (no half-made import or clone left behind).
fn staging_is_empty(env: &Env) {
    let tmp = env.root.join("volumes/.tmp");
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        let left: Vec<_> = rd.map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn export_import_and_clone_keep_owners_modes_xattrs_links_and_holes() {
    mountkit_testutil::require_root();
    in_store(|env| {
        env.ok(&["volume", "create", "src"]);
        fill(&data_dir(env, "src"));
        let original = tree(&data_dir(env, "src"));
        let tar = env.path("src.tar");
        let tar_s = tar.to_str().unwrap();
        env.ok(&["volume", "export", "src", "-o", tar_s]);
        assert!(!env.path("src.tar.partial").exists());

        // Into a new volume: made by the import, with the same tree.
        assert_eq!(env.ok(&["volume", "import", "copy", tar_s]), "copy");
        assert_eq!(tree(&data_dir(env, "copy")), original);
        let v = env.json(&["volume", "inspect", "copy"]);
        assert_eq!(v[0]["driver"], "local", "{v}");
        assert_eq!(v[0]["populated"], true, "{v}");

        // Into a non-empty volume: refused, unchanged; with --force: replaced.
        std::fs::write(data_dir(env, "copy").join("extra"), "x").unwrap();
        env.fails(
            &["volume", "import", "copy", tar_s],
            1,
            "volume copy is not empty",
        );
        assert!(data_dir(env, "copy").join("extra").exists());
        env.ok(&["volume", "import", "--force", "copy", tar_s]);
        assert_eq!(tree(&data_dir(env, "copy")), original);

        // From standard input, into an existing empty volume.
        env.ok(&["volume", "create", "empty"]);
        let out = env
            .cmd()
            .args(["volume", "import", "empty", "-"])
            .stdin(std::fs::File::open(&tar).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(tree(&data_dir(env, "empty")), original);

        // Clone: the same tree, holes kept; an existing destination is refused.
        assert_eq!(env.ok(&["volume", "clone", "src", "twin"]), "twin");
        assert_eq!(tree(&data_dir(env, "twin")), original);
        let sparse = data_dir(env, "twin").join("sparse");
        assert!(
            allocated(&sparse) < 1 << 20,
            "clone filled the holes: {} bytes",
            allocated(&sparse)
        );
        env.fails(
            &["volume", "clone", "src", "twin"],
            1,
            "volume twin already exists",
        );
        env.fails(&["volume", "clone", "nope", "other"], 1, "nope");
        assert!(env.run(&["volume", "inspect", "other"]).status.code() != Some(0));
        staging_is_empty(env);
    });
}

/// A 512-byte ustar header (checksum set) for `name` of `typeflag`, with `size` bytes of data to follow.
fn header(name: &str, typeflag: u8, size: usize, link: &str) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A tar of `members` (name, typeflag, data, link name), ended properly.
fn tar_of(members: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, ty, data, link) in members {
        out.extend(header(name, *ty, data.len(), link));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend([0u8; 1024]);
    out
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn corrupt_truncated_and_hostile_tars_are_refused_and_change_nothing() {
    mountkit_testutil::require_root();
    in_store(|env| {
        env.ok(&["volume", "create", "keep"]);
        std::fs::write(data_dir(env, "keep").join("precious"), "mine\n").unwrap();
        let before = tree(&data_dir(env, "keep"));
        let good = tar_of(&[("a/", b'5', b"", ""), ("a/file", b'0', b"hello\n", "")]);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("dotdot", tar_of(&[("../escape", b'0', b"x", "")]), "`..`"),
            (
                "absolute",
                tar_of(&[("/etc/evil", b'0', b"x", "")]),
                "absolute member name",
            ),
            (
                "through-symlink",
                tar_of(&[("l", b'2', b"", "/"), ("l/etc/evil", b'0', b"x", "")]),
                "symlink",
            ),
            (
                "through-dotdot-symlink",
                tar_of(&[("up", b'2', b"", ".."), ("up/evil", b'0', b"x", "")]),
                "symlink",
            ),
            (
                "hard-link-out",
                tar_of(&[("h", b'1', b"", "../../../../etc/passwd")]),
                "hard link target",
            ),
            (
                "hard-link-absent",
                tar_of(&[("h", b'1', b"", "etc/passwd")]),
                "not extracted",
            ),
            (
                "truncated-in-data",
                good[..512 * 2 + 3].to_vec(),
                "not a valid tar archive",
            ),
            ("truncated-at-member", good[..512 * 3].to_vec(), "truncated"),
            ("garbage", vec![0x5a; 4096], "not a valid tar archive"),
        ];
        for (what, bytes, needle) in &cases {
            let f = env.path(&format!("{what}.tar"));
            std::fs::write(&f, bytes).unwrap();
            let f = f.to_str().unwrap();
            let err = env.fails(&["volume", "import", "--force", "keep", f], 1, needle);
            assert!(err.contains("keep") && err.contains("unchanged"), "{what}: {err}");
            assert_eq!(tree(&data_dir(env, "keep")), before, "{what} changed the volume");
            // Into a new name: no volume is made.
            env.fails(&["volume", "import", "fresh", f], 1, needle);
            assert!(!env.root.join("volumes/fresh").exists(), "{what} left a volume");
        }
        assert!(!Path::new("/escape").exists() && !Path::new("/etc/evil").exists());
        assert_eq!(env.lines(&["volume", "ls", "-q"]), ["keep"]);
        staging_is_empty(env);
        // The good one works, for contrast.
        std::fs::write(env.path("good.tar"), &good).unwrap();
        env.ok(&[
            "volume",
            "import",
            "fresh",
            env.path("good.tar").to_str().unwrap(),
        ]);
        assert_eq!(
            std::fs::read(data_dir(env, "fresh").join("a/file")).unwrap(),
            b"hello\n"
        );
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_volume_a_running_container_writes_is_exported_only_with_force_and_imports_into_a_new_one() {
    mountkit_testutil::require_root();
    with_sample(|env| {
        env.ok(&["volume", "create", "live"]);
        let d = data_dir(env, "live");
        std::fs::write(d.join("note"), "written before\n").unwrap();
        std::os::unix::fs::chown(d.join("note"), Some(1234), Some(5678)).unwrap();
        let mut runner = env.spawn(&["run", "--name", "w", "-v", "live:/data", "sample", "sleep", "60"]);
        env.wait_running("w", &mut runner);
        let tar = env.path("live.tar");
        let tar_s = tar.to_str().unwrap();
        env.fails(
            &["volume", "export", "live", "-o", tar_s],
            1,
            "running container(s) w",
        );
        assert!(!tar.exists());
        let out = env.run(&["volume", "export", "--force", "live", "-o", tar_s]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("not a snapshot"), "{stderr}");
        // An import would swap the content under the running container: refused even with --force.
        env.fails(
            &["volume", "import", "--force", "live", tar_s],
            1,
            "running container(s) w",
        );
        env.ok(&["kill", "w"]);
        let _ = runner.wait();

        env.ok(&["volume", "import", "moved", tar_s]);
        let got = env.ok(&[
            "run",
            "--rm",
            "-v",
            "moved:/m",
            "sample",
            "sh",
            "-c",
            "cat /m/note; stat -c %u:%g /m/note",
        ]);
        assert_eq!(got, "written before\n1234:5678");
        // Not running any more: a plain export needs no force.
        env.ok(&["volume", "export", "live", "-o", tar_s]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_tmpfs_volume_not_in_use_is_not_exported_as_an_empty_tar() {
    mountkit_testutil::require_root();
    in_store(|env| {
        env.ok(&["volume", "create", "--opt", "type=tmpfs", "scratch"]);
        let out = env.path("scratch.tar");
        env.fails(
            &["volume", "export", "scratch", "-o", out.to_str().unwrap()],
            1,
            "which has none while no container uses it",
        );
        assert!(!out.exists());
        env.fails(&["volume", "import", "scratch", "/dev/null"], 1, "driver mount");
        env.fails(&["volume", "clone", "scratch", "copy"], 1, "has none while");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_volume_subpath_shows_only_that_directory_or_file_and_never_leaves_the_volume() {
    mountkit_testutil::require_root();
    with_sample(|env| {
        env.ok(&["volume", "create", "shared"]);
        let d = data_dir(env, "shared");
        std::fs::create_dir_all(d.join("sub/dir")).unwrap();
        std::fs::create_dir_all(d.join("hack")).unwrap();
        std::fs::write(d.join("sub/dir/hello"), "inside\n").unwrap();
        std::fs::write(d.join("file.txt"), "file data\n").unwrap();
        std::fs::write(d.join("top-secret"), "not for the container\n").unwrap();
        std::os::unix::fs::symlink("/", d.join("hack/root")).unwrap();
        std::os::unix::fs::symlink("..", d.join("up")).unwrap();
        std::os::unix::fs::symlink("../sub/dir", d.join("hack/good")).unwrap();

        // A directory, a file (read-only), and a symlink that stays inside the volume.
        let got = env.ok(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=shared,dst=/d,volume-subpath=sub/dir",
            "--mount",
            "type=volume,src=shared,dst=/f,volume-subpath=file.txt,readonly",
            "--mount",
            "type=volume,src=shared,dst=/g,volume-subpath=hack/good",
            "sample",
            "sh",
            "-c",
            "ls /d; cat /f; ls /g; ls /d/.. | grep -c top-secret; echo x > /f || echo refused",
        ]);
        assert_eq!(got, "hello\nfile data\nhello\n0\nrefused", "{got}");

        // Leaving the volume, through a symlink to `/` or to `..` at its root: refused at start.
        for (sub, needle) in [
            ("hack/root", "leaves the volume"),
            ("up", "leaves the volume"),
            ("up/etc", "leaves the volume"),
            ("missing/dir", "no such file or directory in the volume"),
        ] {
            let mount = format!("type=volume,src=shared,dst=/d,volume-subpath={sub}");
            let err = env.fails(
                &["run", "--rm", "--mount", &mount, "sample", "ls", "/d"],
                125,
                needle,
            );
            assert!(err.contains("shared") && err.contains(sub), "{err}");
        }
        // Refused when parsed: absolute, `..`.
        env.fails(
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,src=shared,dst=/d,volume-subpath=../x",
                "sample",
                "true",
            ],
            125,
            "subpath must be a relative path within the volume",
        );
        assert!(
            env.lines(&["ps", "-a", "-q"]).is_empty(),
            "a failed start left a container"
        );
        assert!(
            support::mounts_under(&env.root).is_empty(),
            "mounts left: {:?}",
            support::mounts_under(&env.root)
        );
    });
}
