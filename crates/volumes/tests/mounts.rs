//! Privileged tests: driver mounts (tmpfs, bind), reconcile, populate, and removal next to mounts. Each runs
//! in its own mount namespace (mountkit_testutil::in_mount_ns) over its own temp dir.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mountkit_testutil::{in_mount_ns, require_root};
use mountkit_volumes::{CreateOptions, Error, Registry};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// (mount point, fstype) of every mount in this namespace at exactly `path`.
fn mounts_at(path: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_str().unwrap();
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(want))
        .map(|l| {
            l.split(" - ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn tmpfs_at(path: &Path) {
    fs::create_dir_all(path).unwrap();
    mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::empty(), None::<&str>).expect("mount tmpfs");
}

fn bind(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).expect("bind");
}

fn opts(kv: &[(&str, &str)]) -> CreateOptions {
    CreateOptions {
        options: kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

/// A registry on a fresh tmpfs inside the test's temp dir (the test runs in its own mount namespace).
fn setup(dir: &Path) -> (PathBuf, Registry) {
    let base = dir.join("fs");
    tmpfs_at(&base);
    let reg = Registry::open(base.join("volumes")).unwrap();
    (base, reg)
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn tmpfs_volume_is_shared_by_two_users_and_unmounted_by_the_last() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (base, reg) = setup(dir.path());
        reg.create(
            Some("shm"),
            opts(&[("type", "tmpfs"), ("o", "size=16m,mode=1777")]),
        )
        .unwrap();
        let data = reg.data_path("shm");
        assert!(mounts_at(&data).is_empty(), "nothing mounted before acquire");

        let p1 = reg.acquire("shm", "c1").unwrap();
        let p2 = reg.acquire("shm", "c2").unwrap();
        assert_eq!(p1, p2);
        assert_eq!(
            mounts_at(&data),
            ["tmpfs"],
            "one tmpfs mount shared by both users"
        );
        assert_eq!(fs::metadata(&data).unwrap().permissions().mode() & 0o7777, 0o1777);
        let v = reg.get("shm").unwrap();
        assert_eq!(v.active, ["c1", "c2"]);
        assert!(v.mounted);

        // Two "containers" bind the path they were given; a write through one is seen through the other.
        let (r1, r2) = (base.join("c1/data"), base.join("c2/data"));
        bind(&p1, &r1);
        bind(&p2, &r2);
        fs::write(r1.join("todo.db"), b"buy milk").unwrap();
        assert_eq!(fs::read(r2.join("todo.db")).unwrap(), b"buy milk");
        umount2(&r1, MntFlags::empty()).unwrap();
        umount2(&r2, MntFlags::empty()).unwrap();

        reg.release("shm", "c1").unwrap();
        assert_eq!(mounts_at(&data), ["tmpfs"], "still mounted for c2");
        assert!(data.join("todo.db").exists());
        reg.release("shm", "c1").unwrap(); // idempotent
        assert_eq!(mounts_at(&data), ["tmpfs"]);
        reg.release("shm", "c2").unwrap();
        assert!(mounts_at(&data).is_empty(), "the last release unmounts");
        assert!(
            !data.join("todo.db").exists(),
            "the tmpfs content went with the mount"
        );
        let v = reg.get("shm").unwrap();
        assert!(v.active.is_empty() && !v.mounted);
        // And it can be used again.
        reg.acquire("shm", "c3").unwrap();
        assert_eq!(mounts_at(&data), ["tmpfs"]);
        reg.release("shm", "c3").unwrap();
        assert!(reg.remove("shm", false).unwrap());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn reconcile_unmounts_when_all_recorded_users_are_dead() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (_base, reg) = setup(dir.path());
        reg.create(Some("scratch"), opts(&[("type", "tmpfs")])).unwrap();
        reg.create(Some("other"), opts(&[("type", "tmpfs")])).unwrap();
        let data = reg.acquire("scratch", "dead-1").unwrap();
        reg.acquire("scratch", "alive-1").unwrap();
        let other = reg.acquire("other", "alive-2").unwrap();

        // "Crash": nobody releases. One user of scratch is still alive: the mount stays.
        reg.reconcile(&|u| u.starts_with("alive")).unwrap();
        assert_eq!(mounts_at(&data), ["tmpfs"]);
        assert_eq!(reg.get("scratch").unwrap().active, ["alive-1"]);

        reg.reconcile(&|u| u == "alive-2").unwrap();
        assert!(mounts_at(&data).is_empty(), "all users dead: unmounted");
        let v = reg.get("scratch").unwrap();
        assert!(v.active.is_empty() && !v.mounted);
        assert_eq!(
            mounts_at(&other),
            ["tmpfs"],
            "a volume with a live user is left alone"
        );

        // A stale record (mounted, but the mount is already gone) is cleared without an unmount error.
        umount2(&other, MntFlags::empty()).unwrap();
        reg.reconcile(&|_| false).unwrap();
        assert!(!reg.get("other").unwrap().mounted);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_crash_with_a_tmpfs_volume_mounted_is_reconciled_by_the_next_command() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (_base, reg) = setup(dir.path());
        reg.reconcile(&|_| true).unwrap();
        let idle = |reg: &Registry| reg.root().join(".idle").exists();
        assert!(idle(&reg));
        reg.create(Some("scratch"), opts(&[("type", "tmpfs")])).unwrap();
        let data = reg.acquire("scratch", "runner-1").unwrap();
        fs::write(data.join("state"), b"x").unwrap();
        assert!(!idle(&reg), "a driver mount is active");
        // The runner dies without releasing (the record was written before the mount).
        drop(reg);

        // The next command, while the runner still lives: nothing is unmounted.
        let next = Registry::open(dir.path().join("fs/volumes")).unwrap();
        next.reconcile(&|u| u == "runner-1").unwrap();
        assert_eq!(mounts_at(&data), ["tmpfs"]);
        assert!(!idle(&next));
        // Once it is gone, the next command unmounts and the registry is idle again.
        let next = Registry::open(dir.path().join("fs/volumes")).unwrap();
        next.reconcile(&|_| false).unwrap();
        assert!(mounts_at(&data).is_empty(), "reconciled: unmounted");
        let v = next.get("scratch").unwrap();
        assert!(v.active.is_empty() && !v.mounted);
        assert!(idle(&next));

        // The same when the in-use index is lost too (every record is then read).
        next.acquire("scratch", "runner-2").unwrap();
        fs::remove_file(next.root().join(".active.json")).unwrap();
        let after = Registry::open(dir.path().join("fs/volumes")).unwrap();
        after.reconcile(&|_| false).unwrap();
        assert!(mounts_at(&data).is_empty());
        assert!(!after.get("scratch").unwrap().mounted);
        assert!(idle(&after));
        assert!(after.remove("scratch", false).unwrap());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn foreign_mount_at_data_is_never_used_or_unmounted() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (_base, reg) = setup(dir.path());
        reg.create(Some("shm"), opts(&[("type", "tmpfs")])).unwrap();
        let data = reg.data_path("shm");
        tmpfs_at(&data); // not mountkit's
        let err = reg.acquire("shm", "c1").unwrap_err();
        assert!(matches!(err, Error::ForeignMount { .. }), "{err}");
        reg.reconcile(&|_| false).unwrap();
        reg.release("shm", "c1").unwrap();
        assert_eq!(mounts_at(&data), ["tmpfs"], "the foreign mount is still there");
        umount2(&data, MntFlags::empty()).unwrap();
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn bind_volume_shows_device_and_removal_keeps_device_files() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (base, reg) = setup(dir.path());
        let device = base.join("host/project");
        fs::create_dir_all(&device).unwrap();
        fs::write(device.join("main.rs"), b"fn main() {}").unwrap();
        let dev = device.to_str().unwrap();
        reg.create(
            Some("src"),
            opts(&[("type", "none"), ("o", "bind"), ("device", dev)]),
        )
        .unwrap();

        let path = reg.acquire("src", "c1").unwrap();
        assert_eq!(fs::read(path.join("main.rs")).unwrap(), b"fn main() {}");
        fs::write(path.join("new.txt"), b"from the container").unwrap();
        assert_eq!(fs::read(device.join("new.txt")).unwrap(), b"from the container");

        // While acquired it cannot be removed (and nothing is deleted).
        assert!(matches!(reg.remove("src", true), Err(Error::Active { .. })));
        reg.release("src", "c1").unwrap();
        assert!(mounts_at(&path).is_empty());
        assert!(
            !path.join("main.rs").exists(),
            "unmounted: _data is mountkit's empty directory again"
        );

        assert!(reg.remove("src", false).unwrap());
        assert!(!reg.root().join("src").exists());
        assert_eq!(fs::read(device.join("main.rs")).unwrap(), b"fn main() {}");
        assert_eq!(fs::read(device.join("new.txt")).unwrap(), b"from the container");

        // A read-only bind volume.
        reg.create(
            Some("src-ro"),
            opts(&[("type", "none"), ("o", "bind,ro"), ("device", dev)]),
        )
        .unwrap();
        let ro = reg.acquire("src-ro", "c2").unwrap();
        assert!(fs::read(ro.join("main.rs")).is_ok());
        let err = fs::write(ro.join("x"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc_erofs()));
        reg.release("src-ro", "c2").unwrap();

        // A missing device is a clear error at acquire, and leaves nothing mounted.
        reg.create(
            Some("gone"),
            opts(&[("type", "none"), ("o", "bind"), ("device", "/nonexistent/dir")]),
        )
        .unwrap();
        let err = reg.acquire("gone", "c3").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir"), "{err}");
        assert!(!reg.get("gone").unwrap().mounted);
        assert!(reg.get("gone").unwrap().active.is_empty());
    });
}

fn libc_erofs() -> i32 {
    nix::errno::Errno::EROFS as i32
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn remove_refuses_while_something_is_mounted_under_the_volume() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (base, reg) = setup(dir.path());
        let v = reg.create(Some("data"), CreateOptions::default()).unwrap();
        fs::write(v.mountpoint.join("keep.txt"), b"keep").unwrap();
        let host = base.join("host-home");
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("precious"), b"do not delete").unwrap();
        bind(&host, &v.mountpoint.join("sub"));

        for force in [false, true] {
            let err = reg.remove("data", force).unwrap_err();
            assert!(matches!(err, Error::MountedUnder { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains("data") && msg.contains("sub") && msg.contains("nothing was deleted"),
                "{msg}"
            );
        }
        assert!(reg.prune(true, &[]).unwrap().is_empty(), "prune skips it too");
        assert!(reg.exists("data"));
        assert_eq!(fs::read(v.mountpoint.join("keep.txt")).unwrap(), b"keep");
        assert_eq!(fs::read(host.join("precious")).unwrap(), b"do not delete");

        umount2(&v.mountpoint.join("sub"), MntFlags::empty()).unwrap();
        assert!(reg.remove("data", false).unwrap());
        assert_eq!(fs::read(host.join("precious")).unwrap(), b"do not delete");
    });
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    match rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("SKIP xattr {name} on {}: {e}", path.display());
            false
        }
    }
}

fn get_xattr(path: &Path, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).expect("xattr");
    buf.truncate(n);
    buf
}

fn set_mtime(path: &Path, secs: i64) {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 123_456_789,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &t, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn populate_copies_owners_modes_links_xattrs_once() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (base, reg) = setup(dir.path());
        // The image's content at the mount path.
        let src = base.join("image/var/lib/app");
        fs::create_dir_all(src.join("conf")).unwrap();
        fs::write(src.join("conf/app.toml"), b"port = 80").unwrap();
        fs::write(src.join("bin"), b"#!/bin/sh").unwrap();
        fs::hard_link(src.join("bin"), src.join("bin-link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("passwd")).unwrap();
        std::os::unix::fs::symlink("conf/app.toml", src.join("config")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("pipe"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o620),
            0,
        )
        .unwrap();
        fs::set_permissions(src.join("pipe"), fs::Permissions::from_mode(0o620)).unwrap();
        tmpfs_at(&src.join("mnt")); // another mount inside the source: not copied into
        fs::write(src.join("mnt/other-fs"), b"x").unwrap();
        let chown = |p: &Path, u: u32, g: u32| std::os::unix::fs::lchown(p, Some(u), Some(g)).unwrap();
        let chmod = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        chown(&src.join("conf/app.toml"), 1000, 1000);
        chmod(&src.join("conf/app.toml"), 0o640);
        chown(&src.join("conf"), 1001, 1002);
        chmod(&src.join("conf"), 0o750);
        chown(&src.join("bin"), 0, 0);
        chmod(&src.join("bin"), 0o4755);
        chown(&src.join("passwd"), 1003, 1003);
        chown(&src, 999, 998);
        chmod(&src, 0o700);
        let user_x = set_xattr(&src.join("conf/app.toml"), "user.origin", b"image");
        let trusted_x = set_xattr(&src.join("conf"), "trusted.overlay.test", b"y");
        set_mtime(&src.join("conf/app.toml"), 1_000_000_000);
        set_mtime(&src.join("passwd"), 1_100_000_000);
        set_mtime(&src.join("conf"), 1_200_000_000);

        let v = reg.create(Some("appdata"), CreateOptions::default()).unwrap();
        let dst = &v.mountpoint;
        assert!(reg.populate("appdata", &src).unwrap(), "first use copies");
        assert!(reg.get("appdata").unwrap().populated);

        let md = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
        let root = fs::metadata(dst).unwrap();
        assert_eq!(
            (root.uid(), root.gid(), root.mode() & 0o7777),
            (999, 998, 0o700),
            "root takes the image dir's"
        );
        assert_eq!(fs::read(dst.join("conf/app.toml")).unwrap(), b"port = 80");
        let f = md("conf/app.toml");
        assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1000, 1000, 0o640));
        assert_eq!((f.mtime(), f.mtime_nsec()), (1_000_000_000, 123_456_789));
        let d = md("conf");
        assert_eq!((d.uid(), d.gid(), d.mode() & 0o7777), (1001, 1002, 0o750));
        assert_eq!(
            d.mtime(),
            1_200_000_000,
            "directory times are set after its content"
        );
        let b = md("bin");
        assert_eq!(b.mode() & 0o7777, 0o4755, "setuid kept (mode set after chown)");
        assert_eq!(b.ino(), md("bin-link").ino(), "hard links stay linked");
        assert_eq!(b.nlink(), 2);
        let l = md("passwd");
        assert!(l.file_type().is_symlink());
        assert_eq!(
            fs::read_link(dst.join("passwd")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!((l.uid(), l.mtime()), (1003, 1_100_000_000));
        assert_eq!(
            fs::read_link(dst.join("config")).unwrap(),
            Path::new("conf/app.toml")
        );
        assert!(md("pipe").file_type().is_fifo_like());
        assert_eq!(md("pipe").mode() & 0o7777, 0o620);
        assert!(dst.join("mnt").is_dir());
        assert!(
            !dst.join("mnt/other-fs").exists(),
            "no descent into another mount"
        );
        if user_x {
            assert_eq!(get_xattr(&dst.join("conf/app.toml"), "user.origin"), b"image");
        }
        if trusted_x {
            assert_eq!(get_xattr(&dst.join("conf"), "trusted.overlay.test"), b"y");
        }

        // Only once: a second call (new image content, or the user emptied the volume) does nothing.
        fs::write(src.join("later"), b"x").unwrap();
        assert!(!reg.populate("appdata", &src).unwrap());
        assert!(!dst.join("later").exists());

        // A volume that already has data is not filled, but is marked populated.
        let w = reg.create(Some("used"), CreateOptions::default()).unwrap();
        fs::write(w.mountpoint.join("mine"), b"m").unwrap();
        assert!(!reg.populate("used", &src).unwrap());
        assert!(reg.get("used").unwrap().populated);
        assert!(!w.mountpoint.join("conf").exists());

        // A missing or empty image directory copies nothing and leaves the volume open to a later image.
        reg.create(Some("fresh"), CreateOptions::default()).unwrap();
        assert!(!reg.populate("fresh", &base.join("image/nonexistent")).unwrap());
        fs::create_dir_all(base.join("image/empty")).unwrap();
        assert!(!reg.populate("fresh", &base.join("image/empty")).unwrap());
        assert!(!reg.get("fresh").unwrap().populated);
        assert!(reg.populate("fresh", &src).unwrap());

        // A source resolved inside the image root and passed as /proc/self/fd/N (what the lead does).
        let image_root = mountkit_safefs::inroot::open_root(&base.join("image")).unwrap();
        let fd = mountkit_safefs::inroot::resolve(
            std::os::fd::AsFd::as_fd(&image_root),
            Path::new("/var/lib/app"),
        )
        .unwrap();
        let fd_src = mountkit_safefs::inroot::fd_path(std::os::fd::AsFd::as_fd(&fd));
        reg.create(Some("via-fd"), CreateOptions::default()).unwrap();
        assert!(reg.populate("via-fd", &fd_src).unwrap());
        let got = reg.data_path("via-fd");
        assert_eq!(fs::read(got.join("conf/app.toml")).unwrap(), b"port = 80");
        assert!(
            fs::symlink_metadata(got.join("passwd"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(got.join("mnt").is_dir() && !got.join("mnt/other-fs").exists());
        assert_eq!(fs::metadata(&got).unwrap().uid(), 999);

        umount2(&src.join("mnt"), MntFlags::empty()).unwrap();
    });
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn populate_of_a_tmpfs_volume_needs_it_acquired() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (base, reg) = setup(dir.path());
        let src = base.join("image/data");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("seed"), b"seed").unwrap();
        reg.create(Some("shm"), opts(&[("type", "tmpfs")])).unwrap();
        let err = reg.populate("shm", &src).unwrap_err();
        assert!(matches!(err, Error::NotAcquired { .. }), "{err}");
        assert!(!reg.data_path("shm").join("seed").exists());
        let p = reg.acquire("shm", "c1").unwrap();
        assert!(reg.populate("shm", &src).unwrap());
        assert_eq!(fs::read(p.join("seed")).unwrap(), b"seed");
        assert!(!reg.populate("shm", &src).unwrap(), "once per mount");
        reg.release("shm", "c1").unwrap();
        assert!(
            !reg.data_path("shm").join("seed").exists(),
            "the copy lived in the tmpfs"
        );
        assert!(
            !reg.get("shm").unwrap().populated,
            "an unmounted tmpfs keeps nothing"
        );
        let p = reg.acquire("shm", "c2").unwrap();
        assert!(
            reg.populate("shm", &src).unwrap(),
            "the next mount is filled again"
        );
        assert_eq!(fs::read(p.join("seed")).unwrap(), b"seed");
        reg.release("shm", "c2").unwrap();
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn acquire_all_records_and_mounts_a_driver_volume_even_for_a_referencing_container() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (base, reg) = setup(dir.path());
        reg.create(Some("shm"), opts(&[("type", "tmpfs")])).unwrap();
        reg.create(Some("plain"), CreateOptions::default()).unwrap();
        reg.add_refs(&["shm", "plain"], "c1").unwrap();
        reg.add_refs(&["shm", "plain"], "c2").unwrap();
        let data = reg.data_path("shm");
        let source = base.join("image-dir");
        fs::create_dir(&source).unwrap();
        fs::write(source.join("seed.txt"), b"from the image").unwrap();

        let a1 = reg.acquire_all(&["shm", "plain"], "c1").unwrap();
        assert_eq!(mounts_at(&data), ["tmpfs"]);
        assert!(a1[0].needs_populate());
        assert!(reg.populate("shm", &source).unwrap());
        // The second container shares the mount, already populated: it need not populate.
        let a2 = reg.acquire_all(&["shm", "plain"], "c2").unwrap();
        assert!(!a2[0].needs_populate());
        let v = reg.get("shm").unwrap();
        assert_eq!(v.active, ["c1", "c2"], "a driver volume's users are recorded");
        assert!(v.mounted);
        assert!(reg.get("plain").unwrap().active.is_empty());

        // A crash of both: reconcile unmounts what only dead users held.
        let next = Registry::open(reg.root()).unwrap();
        next.reconcile(&|u| u == "c2").unwrap();
        assert_eq!(mounts_at(&data), ["tmpfs"], "c2 still lives");
        reg.release_all(&a2).unwrap();
        assert!(mounts_at(&data).is_empty(), "the last release unmounts");
        let v = reg.get("shm").unwrap();
        assert!(v.active.is_empty() && !v.mounted && !v.populated);
        assert!(!reg.root().join("shm/populated").exists());
        reg.release_all(&a1).unwrap(); // already forgotten by reconcile: nothing to do
        assert!(mounts_at(&data).is_empty());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_tmpfs_volume_mounted_in_another_boot_is_empty_and_filled_again() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    in_mount_ns(|| {
        let (base, reg) = setup(dir.path());
        let source = base.join("image-dir");
        fs::create_dir(&source).unwrap();
        fs::write(source.join("seed.txt"), b"from the image").unwrap();
        reg.create(Some("shm"), opts(&[("type", "tmpfs")])).unwrap();
        reg.add_ref("shm", "c1").unwrap();
        let data = reg.acquire_all(&["shm"], "c1").unwrap()[0].path.clone();
        assert!(reg.populate("shm", &source).unwrap());
        assert!(reg.root().join("shm/populated").exists());
        // A power loss while c1 ran: after the reboot the tmpfs is gone, the record and the marker stay.
        umount2(&data, MntFlags::empty()).unwrap();
        let record = reg.root().join("shm/volume.json");
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&record).unwrap()).unwrap();
        v["active_boot"] = "00000000-0000-0000-0000-000000000000".into();
        fs::write(&record, serde_json::to_vec(&v).unwrap()).unwrap();
        let v = reg.get("shm").unwrap();
        assert!(v.active.is_empty() && !v.mounted && !v.populated, "{v:?}");
        // The next run mounts an empty tmpfs, which needs (and gets) the image's content again.
        let acquired = reg.acquire_all(&["shm"], "c2").unwrap();
        assert_eq!(mounts_at(&data), ["tmpfs"]);
        assert!(acquired[0].needs_populate());
        assert!(!reg.root().join("shm/populated").exists());
        assert!(reg.populate("shm", &source).unwrap());
        assert_eq!(fs::read(data.join("seed.txt")).unwrap(), b"from the image");
        assert_eq!(reg.get("shm").unwrap().active, ["c2"]);
        reg.release_all(&acquired).unwrap();
        assert!(mounts_at(&data).is_empty());
    });
}
