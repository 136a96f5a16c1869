//! Privileged tests of size limits at the registry's level (no container): a registry on a filesystem the
//! test makes on a loop device (ext4 or XFS with project quotas) or on a tmpfs (no project quotas: the
//! loop-backed method). The test writes into the volume itself and checks `statfs`, the error past the
//! limit, and what `remove` gives back. A case this machine cannot do is skipped with the reason printed.

mod common;

use common::Unmount;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use mountkit_testutil::{in_mount_ns, require_root};
use mountkit_volumes::{CreateOptions, Registry, SizeMethod};
use nix::mount::{MsFlags, mount};

fn sized(size: &str) -> CreateOptions {
    CreateOptions {
        options: [("size".to_string(), size.to_string())]
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

fn program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Makes a filesystem with `mkfs args` in `dir/fs.img` of `size_mb` and mounts it at `dir/fs` with
/// `options` (through `mount -o loop`, which lets the loop device go with the mount).
fn make_fs(dir: &Path, mkfs: &str, args: &[&str], size_mb: u64, options: &str) -> Result<PathBuf, String> {
    let mkfs_path = program(mkfs).ok_or(format!("{mkfs} is not installed"))?;
    if !Path::new("/dev/loop-control").exists() {
        return Err("no loop devices".into());
    }
    let image = dir.join("fs.img");
    fs::File::create(&image).unwrap().set_len(size_mb << 20).unwrap();
    let out = Command::new(&mkfs_path).args(args).arg(&image).output().unwrap();
    if !out.status.success() {
        return Err(format!("{mkfs}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let mnt = dir.join("fs");
    fs::create_dir(&mnt).unwrap();
    let out = Command::new("mount")
        .args(["-o", &format!("loop,{options}")])
        .arg(&image)
        .arg(&mnt)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "mount -o loop,{options} failed (no quota support in this kernel?): {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(mnt)
}

/// Writes up to 16 MiB into `path` in 64 KiB steps; returns the bytes written and the error that stopped
/// it (none if all went in).
fn fill(path: &Path) -> (u64, Option<std::io::Error>) {
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    let mut written = 0u64;
    while written < 16 << 20 {
        match f.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(e) => return (written, Some(e)),
        }
    }
    match f.sync_all() {
        Ok(()) => (written, None),
        Err(e) => (written, Some(e)),
    }
}

/// Runs `f` on a thread without `CAP_SYS_RESOURCE` in its effective set (capabilities are per thread):
/// ext4's quota code lets a holder of it past hard limits, as a container without it is not.
fn without_sys_resource<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const CAP_SYS_RESOURCE: u32 = 24;
    std::thread::scope(|s| {
        s.spawn(|| {
            let header = Header {
                version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
                pid: 0,
            };
            let mut data = [Data::default(); 2];
            // SAFETY: capget/capset with a version 3 header and two data structs.
            unsafe {
                assert_eq!(
                    libc::syscall(libc::SYS_capget, &raw const header, data.as_mut_ptr()),
                    0
                );
                data[0].effective &= !(1 << CAP_SYS_RESOURCE);
                assert_eq!(
                    libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()),
                    0
                );
            }
            f()
        })
        .join()
        .unwrap()
    })
}

/// statfs of `path`: (size, free) in bytes.
fn statfs(path: &Path) -> (u64, u64) {
    let s = rustix::fs::statvfs(path).unwrap();
    (s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize)
}

fn about(bytes: u64, mib: u64) -> bool {
    let want = mib << 20;
    (want * 9 / 10..=want * 11 / 10).contains(&bytes)
}

/// The project-quota method end to end on the filesystem at `mnt`.
fn check_quota(mnt: &Path, what: &str) {
    let reg = Registry::open(mnt.join("volumes")).unwrap();
    let vol = reg.create(Some("q8"), sized("8m")).unwrap();
    let limit = vol.size_limit.clone().unwrap();
    assert_eq!(limit.method, SizeMethod::ProjectQuota, "{what}: {vol:?}");
    let id = limit.project_id.unwrap();
    assert_eq!(reg.get("q8").unwrap().size_limit, Some(limit));
    // A plain directory: acquire records nothing and mounts nothing, so a container run with it takes
    // the same steps as with an unlimited volume (the store lock is kept, no mount is made).
    assert!(!reg.plan_acquire(&["q8"]).unwrap().may_mount(), "{what}");
    let acquired = reg.acquire_all(&["q8"], "c1").unwrap();
    let (size, _) = statfs(&acquired[0].path);
    eprintln!("{what}: statfs of _data says {size} bytes");
    assert!(about(size, 8), "{what}: statfs size {size}");
    fs::create_dir(acquired[0].path.join("sub")).unwrap();
    let big = acquired[0].path.join("sub/big");
    let (written, err) = without_sys_resource(|| fill(&big));
    let err = err.expect("writing 16 MiB into an 8 MiB volume fails");
    eprintln!(
        "{what}: wrote {written} bytes, then {err} ({:?})",
        err.raw_os_error()
    );
    assert!(
        matches!(err.raw_os_error(), Some(libc::EDQUOT | libc::ENOSPC)),
        "{what}: {err}"
    );
    assert!(
        ((6 << 20)..=(8 << 20)).contains(&written),
        "{what}: wrote {written}"
    );
    reg.release_all(&acquired).unwrap();
    assert!(reg.remove("q8", false).unwrap());
    assert!(!mnt.join("volumes/q8").exists());
    assert!(!mnt.join(format!("volumes/.project-ids/{id}")).exists());
    // The freed ID comes back once the filesystem shows no usage for it: XFS releases a deleted file's
    // blocks in the background (inode inactivation), so it may take a moment there (a watchdog of
    // 60 s: under emulation with a loaded host, that background work can take seconds).
    let reused = (0..600).any(|i| {
        let name = format!("again{i}");
        let again = reg.create(Some(&name), sized("4m")).unwrap();
        if again.size_limit.unwrap().project_id == Some(id) {
            return true;
        }
        reg.remove(&name, false).unwrap();
        let _ = statfs(mnt);
        std::thread::sleep(std::time::Duration::from_millis(100));
        false
    });
    assert!(reused, "{what}: the freed ID {id} never came back");
    // Another volume gets another ID.
    let other = reg.create(Some("other"), sized("4m")).unwrap();
    assert_ne!(other.size_limit.unwrap().project_id, Some(id));
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn project_quota_on_ext4() {
    require_root();
    in_mount_ns(|| {
        let dir = tempfile::tempdir().unwrap();
        let args = ["-F", "-q", "-I", "256", "-O", "quota,project"];
        match make_fs(dir.path(), "mkfs.ext4", &args, 64, "prjquota") {
            Ok(mnt) => {
                let _unmount = Unmount(mnt.clone());
                check_quota(&mnt, "ext4")
            }
            Err(why) => eprintln!("skipped: {why}"),
        }
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn project_quota_on_xfs() {
    require_root();
    in_mount_ns(|| {
        let dir = tempfile::tempdir().unwrap();
        match make_fs(dir.path(), "mkfs.xfs", &["-f", "-q"], 320, "prjquota") {
            Ok(mnt) => {
                let _unmount = Unmount(mnt.clone());
                check_quota(&mnt, "xfs")
            }
            Err(why) => eprintln!("skipped: {why}"),
        }
    });
}

/// On a tmpfs (no project quotas) a sized volume is an ext4 image, mounted only while acquired.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn loop_ext4_without_project_quotas() {
    require_root();
    in_mount_ns(|| {
        if program("mkfs.ext4").is_none() || !Path::new("/dev/loop-control").exists() {
            eprintln!("skipped: needs mkfs.ext4 and loop devices");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("fs");
        fs::create_dir(&base).unwrap();
        mount(
            Some("tmpfs"),
            &base,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let _unmount = Unmount(base.clone());
        let reg = Registry::open(base.join("volumes")).unwrap();
        let vol = reg.create(Some("l8"), sized("8m")).unwrap();
        assert_eq!(vol.size_limit.as_ref().unwrap().method, SizeMethod::LoopExt4);
        let image = base.join("volumes/l8/disk.img");
        assert!(image.is_file());
        // Acquiring mounts the image: a caller lets its own locks go around it.
        assert!(reg.plan_acquire(&["l8"]).unwrap().may_mount());
        let acquired = reg.acquire_all(&["l8"], "c1").unwrap();
        assert!(reg.get("l8").unwrap().mounted);
        let (size, _) = statfs(&acquired[0].path);
        assert!(about(size, 8), "statfs size {size}");
        let (written, err) = fill(&acquired[0].path.join("big"));
        let err = err.expect("writing 16 MiB into an 8 MiB volume fails");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert!(((6 << 20)..=(8 << 20)).contains(&written), "wrote {written}");
        let backing = |img: &Path| {
            fs::read_dir("/sys/block")
                .unwrap()
                .flatten()
                .filter(|e| {
                    fs::read_to_string(e.path().join("loop/backing_file"))
                        .is_ok_and(|b| Path::new(b.trim_end()) == img)
                })
                .count()
        };
        assert_eq!(backing(&image), 1, "one loop device while in use");
        // A remove while in use is refused; nothing is deleted.
        assert!(reg.remove("l8", false).is_err());
        reg.release_all(&acquired).unwrap();
        assert!(!reg.get("l8").unwrap().mounted);
        // The kernel detaches an autoclear loop device from a work queue after the last close: a
        // watchdog of 60 s, as that can take seconds under emulation on a loaded host.
        let gone = (0..3000).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            backing(&image) == 0
        });
        assert!(gone, "the loop device goes with the mount");
        // The content stays in the image for the next user.
        let acquired = reg.acquire_all(&["l8"], "c2").unwrap();
        assert!(acquired[0].path.join("big").is_file());
        reg.release_all(&acquired).unwrap();
        assert!(reg.remove("l8", false).unwrap());
        assert!(!image.exists());
    });
}
