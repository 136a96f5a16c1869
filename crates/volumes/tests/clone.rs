//! Privileged tests of `clone_volume` and the staged import (the archive format is mountkit's; its
//! round trips are in crates/mountkit/tests/volume_archive.rs): a clone keeps owners, modes, xattrs,
//! hard links, symlinks, empty directories and holes, on the host's filesystem (the copy path) and, when
//! mkfs.xfs or mkfs.btrfs is there, on a loop-mounted XFS or btrfs (the reflink path).

mod common;

use common::Unmount;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use mountkit_testutil::{in_mount_ns, require_root};
use mountkit_volumes::{CreateOptions, Error, Registry};
use rustix::fs::XattrFlags;

/// (kind, mode, uid, gid, mtime, mtime_nsec, user xattrs, content or link target, first path of its
/// inode when it has several links) of every entry under `root`.
type Tree = BTreeMap<
    String,
    (
        String,
        u32,
        u32,
        u32,
        i64,
        i64,
        Vec<(String, Vec<u8>)>,
        Vec<u8>,
        String,
    ),
>;

fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        let (kind, data) = if ft.is_dir() {
            let mut kids: Vec<PathBuf> = fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()).collect();
            kids.sort();
            todo.extend(kids);
            ("dir", Vec::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec(),
            )
        } else if ft.is_file() {
            ("file", fs::read(&p).unwrap())
        } else if ft.is_fifo() {
            ("fifo", Vec::new())
        } else {
            ("other", Vec::new())
        };
        let group = if ft.is_file() && m.nlink() > 1 {
            inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone()
        } else {
            String::new()
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.permissions().mode() & 0o7777
        };
        out.insert(
            rel,
            (
                kind.into(),
                mode,
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec(),
                user_xattrs(&p),
                data,
                group,
            ),
        );
    }
    out
}

fn user_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap_or(0);
    names.truncate(n);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| n.starts_with(b"user.")) {
        let name = std::str::from_utf8(name).unwrap();
        let mut v = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap();
        v.truncate(len);
        out.push((name.to_string(), v));
    }
    out.sort();
    out
}

/// One of everything in `d`, which becomes owned by 999 and mode 0700.
fn fill(d: &Path) {
    fs::create_dir_all(d.join("a/empty")).unwrap();
    fs::write(d.join("a/f"), "data\n").unwrap();
    std::os::unix::fs::chown(d.join("a/f"), Some(1000), Some(1001)).unwrap();
    fs::set_permissions(d.join("a/f"), fs::Permissions::from_mode(0o4750)).unwrap();
    rustix::fs::lsetxattr(d.join("a/f"), "user.k", b"v\0w", XattrFlags::empty()).unwrap();
    fs::hard_link(d.join("a/f"), d.join("f-again")).unwrap();
    std::os::unix::fs::symlink("a/f", d.join("rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.join("abs")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let f = fs::File::create(d.join("sparse")).unwrap();
    f.set_len(16 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"middle", 8 << 20).unwrap();
    std::os::unix::fs::chown(d, Some(999), Some(999)).unwrap();
    fs::set_permissions(d, fs::Permissions::from_mode(0o700)).unwrap();
}

fn staging_is_empty(reg: &Registry) {
    if let Ok(rd) = fs::read_dir(reg.root().join(".tmp")) {
        let left: Vec<_> = rd.map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "staging left: {left:?}");
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn clone_copies_everything_keeps_holes_and_refuses_an_existing_destination() {
    require_root();
    in_mount_ns(|| {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path().join("volumes")).unwrap();
        let src = reg.create(Some("src"), CreateOptions::default()).unwrap();
        fill(&src.mountpoint);
        let before = tree(&src.mountpoint);
        let twin = reg.clone_volume("src", "twin").unwrap();
        assert_eq!(twin.driver, "local");
        assert!(twin.populated);
        assert_eq!(tree(&twin.mountpoint), before);
        assert!(fs::metadata(twin.mountpoint.join("sparse")).unwrap().blocks() * 512 < 1 << 20);
        assert!(matches!(
            reg.clone_volume("src", "twin"),
            Err(Error::Exists { .. })
        ));
        assert!(reg.clone_volume("nope", "other").unwrap_err().is_not_found());
        assert!(!reg.exists("other"));
        staging_is_empty(&reg);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_staged_import_changes_nothing_until_committed_and_refuses_a_non_empty_volume() {
    require_root();
    in_mount_ns(|| {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path().join("volumes")).unwrap();
        let v = reg.create(Some("full"), CreateOptions::default()).unwrap();
        fs::write(v.mountpoint.join("old"), "old").unwrap();
        assert!(matches!(
            reg.stage_import("full", false),
            Err(Error::NotEmpty { .. })
        ));

        // Dropped: nothing changes; a new name is never made.
        let s = reg.stage_import("full", true).unwrap();
        fs::write(s.data().join("new"), "new").unwrap();
        drop(s);
        let s = reg.stage_import("fresh", false).unwrap();
        fs::write(s.data().join("new"), "new").unwrap();
        assert!(!reg.exists("fresh"), "visible before its commit");
        drop(s);
        assert!(!reg.exists("fresh"));
        assert!(v.mountpoint.join("old").exists() && !v.mountpoint.join("new").exists());
        staging_is_empty(&reg);

        // Committed: replaced whole.
        let s = reg.stage_import("full", true).unwrap();
        fs::write(s.data().join("new"), "new").unwrap();
        let got = s.commit().unwrap();
        assert!(got.populated);
        assert!(!v.mountpoint.join("old").exists() && v.mountpoint.join("new").exists());
        staging_is_empty(&reg);

        // A volume filled between the stage and the commit is not overwritten without force.
        reg.create(Some("racy"), CreateOptions::default()).unwrap();
        let s = reg.stage_import("racy", false).unwrap();
        fs::write(reg.data_path("racy").join("meanwhile"), "x").unwrap();
        assert!(matches!(s.commit(), Err(Error::NotEmpty { .. })));
        assert!(reg.data_path("racy").join("meanwhile").exists());
        staging_is_empty(&reg);

        // A driver volume's content is a mount: refused.
        let mut opts = CreateOptions::default();
        opts.options.insert("type".into(), "tmpfs".into());
        reg.create(Some("ram"), opts).unwrap();
        assert!(matches!(
            reg.stage_import("ram", true),
            Err(Error::Unsupported { .. })
        ));
        assert!(matches!(reg.export_dir("ram"), Err(Error::NotAttached { .. })));
    });
}

/// `mkfs.xfs -m reflink=1` or `mkfs.btrfs`, whichever is there, with the name of the filesystem.
fn reflink_mkfs() -> Option<(&'static str, Vec<&'static str>)> {
    let has = |p: &str| {
        Command::new(p)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has("mkfs.xfs") {
        Some(("mkfs.xfs", vec!["-q", "-m", "reflink=1"]))
    } else if has("mkfs.btrfs") {
        Some(("mkfs.btrfs", vec!["-q"]))
    } else {
        None
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn clone_on_xfs_or_btrfs_shares_the_data() {
    require_root();
    let Some((mkfs, args)) = reflink_mkfs() else {
        eprintln!("skipped: neither mkfs.xfs (xfsprogs) nor mkfs.btrfs (btrfs-progs) is installed");
        return;
    };
    in_mount_ns(|| {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        fs::File::create(&img).unwrap().set_len(512 << 20).unwrap();
        let ok = Command::new(mkfs).args(&args).arg(&img).status().unwrap();
        assert!(ok.success(), "{mkfs} failed");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let ok = Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(&img)
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(ok.success(), "mount -o loop failed");
        let _unmount = Unmount(mnt.clone());
        let reg = Registry::open(mnt.join("volumes")).unwrap();
        let src = reg.create(Some("big"), CreateOptions::default()).unwrap();
        let data: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
        fs::write(src.mountpoint.join("blob"), &data).unwrap();
        fill(&src.mountpoint);
        rustix::fs::sync();
        let free = |p: &Path| {
            let s = rustix::fs::statvfs(p).unwrap();
            s.f_bfree * s.f_frsize
        };
        let before = free(&mnt);
        let twin = reg.clone_volume("big", "twin").unwrap();
        rustix::fs::sync();
        let used = before.saturating_sub(free(&mnt));
        assert!(used < 16 << 20, "a 64 MiB clone took {used} bytes: not reflinked");
        assert_eq!(fs::read(twin.mountpoint.join("blob")).unwrap(), data);
        assert_eq!(tree(&twin.mountpoint), tree(&src.mountpoint));
        // The loop device goes with the mount (autoclear), and the mount with this namespace.
        let _ = Command::new("umount").arg(&mnt).status();
    });
}
