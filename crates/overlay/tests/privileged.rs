//! Privileged tests: real overlay mounts, each in its own mount namespace and temp dir.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mountkit_overlay::{Error, MAX_LOWER_LAYERS, Method, Stack, features, mount, unmount};
use mountkit_testutil::{in_mount_ns, require_root};

/// Mount points (as text) of every mount at or below `dir` in this namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| *mp == dir || mp.starts_with(&format!("{dir}/")))
        .map(str::to_owned)
        .collect()
}

fn assert_nothing_mounted(dir: &Path) {
    assert_eq!(
        mounts_under(dir),
        Vec::<String>::new(),
        "mounts left under {dir:?}"
    );
}

fn mkdirs(base: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = base.join(n);
            fs::create_dir_all(&p).unwrap();
            p
        })
        .collect()
}

fn methods() -> Vec<Method> {
    let mut m = vec![Method::Classic];
    if features().lowerdir_plus {
        m.push(Method::NewApi);
    } else {
        eprintln!(
            "SKIP NewApi part: kernel lacks overlayfs lowerdir+ ({:?})",
            features()
        );
    }
    m
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn features_detected_and_nothing_left_mounted() {
    require_root();
    in_mount_ns(|| {
        let fds = || fs::read_dir("/proc/self/fd").unwrap().count();
        let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let fds_before = fds();
        let f = features();
        let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(before, after, "detection changed the mount table");
        assert_eq!(fds_before, fds(), "detection leaked file descriptors");
        // This project's hosts run Linux 6.8+; on older kernels this documents what was found.
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut it = release
            .trim()
            .split(['.', '-'])
            .map(|x| x.parse::<u32>().unwrap_or(0));
        let (maj, min) = (it.next().unwrap(), it.next().unwrap());
        if (maj, min) >= (6, 8) {
            assert!(f.new_mount_api && f.lowerdir_plus, "{release}: {f:?}");
        }
        assert!(!f.lowerdir_plus || f.new_mount_api);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn later_layer_wins_copy_up_whiteout_opaque() {
    require_root();
    for method in methods() {
        in_mount_ns(|| {
            let tmp = tempfile::tempdir().unwrap();
            let d = mkdirs(tmp.path(), &["l0", "l1", "l2", "upper", "work", "merged"]);
            let (l0, l1, l2, upper, work, merged) = (&d[0], &d[1], &d[2], &d[3], &d[4], &d[5]);
            fs::write(l0.join("shared"), "from l0").unwrap();
            fs::write(l0.join("only0"), "zero").unwrap();
            fs::write(l0.join("gone"), "should be hidden").unwrap();
            fs::create_dir(l0.join("dir")).unwrap();
            fs::write(l0.join("dir/old"), "old").unwrap();
            fs::write(l1.join("shared"), "from l1").unwrap();
            fs::write(l2.join("shared"), "from l2").unwrap();
            fs::write(l2.join("edit"), "original").unwrap();
            // Whiteout (0/0 char device) in the top lower hides l0's "gone".
            rustix::fs::mknodat(
                rustix::fs::CWD,
                l2.join("gone").as_path(),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o000),
                rustix::fs::makedev(0, 0),
            )
            .unwrap();
            // Opaque dir in l1 hides l0's dir content.
            fs::create_dir(l1.join("dir")).unwrap();
            fs::write(l1.join("dir/new"), "new").unwrap();
            rustix::fs::setxattr(
                l1.join("dir").as_path(),
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();

            let stack = Stack::new().lowers([l0, l1, l2]).upper(upper, work);
            let used = mount(&stack, merged, method).unwrap();
            assert_eq!(used, method);

            assert_eq!(
                fs::read_to_string(merged.join("shared")).unwrap(),
                "from l2",
                "{method:?}"
            );
            assert_eq!(fs::read_to_string(merged.join("only0")).unwrap(), "zero");
            assert!(
                !merged.join("gone").exists(),
                "whiteout did not hide the lower file ({method:?})"
            );
            assert!(l0.join("gone").exists());
            assert!(merged.join("dir/new").exists());
            assert!(
                !merged.join("dir/old").exists(),
                "opaque dir did not hide lower content ({method:?})"
            );

            let lower_before = fs::read(l2.join("edit")).unwrap();
            fs::write(merged.join("edit"), "changed").unwrap();
            assert_eq!(fs::read_to_string(merged.join("edit")).unwrap(), "changed");
            assert_eq!(
                fs::read_to_string(upper.join("edit")).unwrap(),
                "changed",
                "copy-up target"
            );
            assert_eq!(
                fs::read(l2.join("edit")).unwrap(),
                lower_before,
                "lower changed ({method:?})"
            );
            assert!(!upper.join("shared").exists(), "untouched file copied up");

            // Deleting a lower file through the overlay leaves a whiteout in the upper.
            fs::remove_file(merged.join("only0")).unwrap();
            let wh = fs::symlink_metadata(upper.join("only0")).unwrap();
            assert_eq!(
                (wh.mode() & libc_s_ifmt(), wh.rdev()),
                (0o020000, 0),
                "whiteout in upper"
            );
            assert!(l0.join("only0").exists());

            unmount(merged).unwrap();
            assert_nothing_mounted(tmp.path());
        });
    }
}

fn libc_s_ifmt() -> u32 {
    0o170000
}

/// Mounts `MAX_LOWER_LAYERS` lowers by `method` (prints SKIP for the new API on a kernel without lowerdir+).
fn many_layers(method: Method, name: &str) {
    if method == Method::NewApi && !features().lowerdir_plus {
        eprintln!(
            "SKIP {name}: kernel lacks overlayfs lowerdir+ (Linux 6.8+): {:?}",
            features()
        );
        return;
    }
    in_mount_ns(|| {
        let tmp = tempfile::tempdir().unwrap();
        // Deliberately long paths, so the classic option string with full paths would be ~30 KiB.
        let base = tmp
            .path()
            .join("a-rather-long-directory-name-for-the-layer-store/layers");
        let lowers: Vec<PathBuf> = (0..MAX_LOWER_LAYERS)
            .map(|i| {
                let p = base.join(format!("layer-{i:04}-0123456789abcdef0123456789abcdef"));
                fs::create_dir_all(&p).unwrap();
                fs::write(p.join(format!("file{i}")), format!("layer {i}")).unwrap();
                fs::write(p.join("top"), format!("{i}")).unwrap();
                p
            })
            .collect();
        let d = mkdirs(tmp.path(), &["upper", "work", "merged"]);
        let stack = Stack::new().lowers(&lowers).upper(&d[0], &d[1]);
        assert_eq!(mount(&stack, &d[2], method).unwrap(), method);
        assert_eq!(fs::read_to_string(d[2].join("file0")).unwrap(), "layer 0");
        assert_eq!(fs::read_to_string(d[2].join("file499")).unwrap(), "layer 499");
        assert_eq!(
            fs::read_to_string(d[2].join("top")).unwrap(),
            "499",
            "top layer must win"
        );
        fs::write(d[2].join("new"), "x").unwrap();
        assert!(d[0].join("new").exists());
        unmount(&d[2]).unwrap();
        assert_nothing_mounted(tmp.path());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn five_hundred_layers_new_api() {
    require_root();
    many_layers(Method::NewApi, "five_hundred_layers_new_api");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn five_hundred_layers_classic() {
    require_root();
    many_layers(Method::Classic, "five_hundred_layers_classic");
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn paths_with_comma_colon_backslash() {
    require_root();
    for method in methods() {
        in_mount_ns(|| {
            let tmp = tempfile::tempdir().unwrap();
            let d = mkdirs(
                tmp.path(),
                &["low,er:0", r"low\er,1:", "up,p:er", r"wo:r\k,", "mer,ged:"],
            );
            fs::write(d[0].join("a"), "bottom").unwrap();
            fs::write(d[1].join("b"), "top").unwrap();
            let stack = Stack::new().lowers(&d[..2]).upper(&d[2], &d[3]);
            mount(&stack, &d[4], method).unwrap_or_else(|e| panic!("{method:?}: {e}"));
            assert_eq!(fs::read_to_string(d[4].join("a")).unwrap(), "bottom");
            assert_eq!(fs::read_to_string(d[4].join("b")).unwrap(), "top");
            fs::write(d[4].join("c"), "written").unwrap();
            assert_eq!(
                fs::read_to_string(d[2].join("c")).unwrap(),
                "written",
                "{method:?}"
            );
            unmount(&d[4]).unwrap();
            assert_nothing_mounted(tmp.path());
        });
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn five_hundred_one_layers_is_a_clear_error() {
    require_root();
    for method in [Method::Auto, Method::Classic, Method::NewApi] {
        in_mount_ns(|| {
            let tmp = tempfile::tempdir().unwrap();
            let lowers = mkdirs(
                tmp.path(),
                &(0..501)
                    .map(|i| format!("l{i}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            );
            let merged = &mkdirs(tmp.path(), &["merged"])[0];
            let err = mount(&Stack::new().lowers(&lowers), merged, method).unwrap_err();
            assert!(
                matches!(err, Error::TooManyLayers { count: 501, max: 500 }),
                "{method:?}: {err}"
            );
            assert_nothing_mounted(tmp.path());
        });
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn missing_lower_is_named() {
    require_root();
    for method in methods() {
        in_mount_ns(|| {
            let tmp = tempfile::tempdir().unwrap();
            let d = mkdirs(tmp.path(), &["l0", "l2", "merged"]);
            let missing = tmp.path().join("l1-missing");
            let stack = Stack::new().lower(&d[0]).lower(&missing).lower(&d[1]);
            let err = mount(&stack, &d[2], method).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::Layer { .. }), "{msg}");
            assert!(msg.contains("lower layer 1 (of 3, 0 = bottom)"), "{msg}");
            assert!(msg.contains("l1-missing"), "{msg}");
            assert_nothing_mounted(tmp.path());
        });
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn kernel_refusal_carries_kernel_reason_new_api() {
    require_root();
    if !features().lowerdir_plus {
        eprintln!("SKIP kernel_refusal_carries_kernel_reason_new_api: no lowerdir+");
        return;
    }
    in_mount_ns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let d = mkdirs(tmp.path(), &["l0", "l1", "merged"]);
        let err = mount(
            &Stack::new().lowers(&d[..2]).option("index", Some("maybe")),
            &d[2],
            Method::NewApi,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{msg}");
        assert!(msg.contains("\"index\""), "{msg}");
        assert!(msg.contains("kernel says"), "kernel reason missing: {msg}");
        eprintln!("error as shown: {msg}");
        assert_nothing_mounted(tmp.path());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn unmount_refuses_non_overlay_and_non_mounts() {
    require_root();
    in_mount_ns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let d = mkdirs(tmp.path(), &["plain", "tmpfs", "foreign", "l0", "l1", "l0/sub"]);
        let err = unmount(&d[0]).unwrap_err();
        assert!(matches!(err, Error::NotMounted { .. }), "{err}");

        rustix::mount::mount(
            "tmpfs",
            d[1].as_path(),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        let err = unmount(&d[1]).unwrap_err();
        assert!(
            matches!(err, Error::NotOverlay { ref fs_type, .. } if fs_type == "tmpfs"),
            "{err}"
        );
        assert_eq!(mounts_under(&d[1]).len(), 1, "the tmpfs must still be mounted");

        // An overlay mounted by someone else (source "overlay", as `mount -t overlay` does).
        let opts = std::ffi::CString::new(format!("lowerdir={}:{}", d[3].display(), d[4].display())).unwrap();
        rustix::mount::mount(
            "overlay",
            d[2].as_path(),
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(opts.as_c_str()),
        )
        .unwrap();
        let err = unmount(&d[2]).unwrap_err();
        assert!(matches!(err, Error::NotOurs { .. }), "{err}");
        assert_eq!(
            mounts_under(&d[2]).len(),
            1,
            "the foreign overlay must still be mounted"
        );

        // A directory inside one of our overlays is not its mount point.
        let merged = tmp.path().join("merged");
        fs::create_dir(&merged).unwrap();
        mount(&Stack::new().lowers(&d[3..5]), &merged, Method::Auto).unwrap();
        let err = unmount(&merged.join("sub")).unwrap_err();
        assert!(matches!(err, Error::NotMounted { .. }), "{err}");
        unmount(&merged).unwrap();
        assert!(mounts_under(&merged).is_empty());

        rustix::mount::unmount(d[1].as_path(), rustix::mount::UnmountFlags::empty()).unwrap();
        rustix::mount::unmount(d[2].as_path(), rustix::mount::UnmountFlags::empty()).unwrap();
        assert_nothing_mounted(tmp.path());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn mount_detached_then_move_mount() {
    require_root();
    if !features().lowerdir_plus {
        eprintln!("SKIP mount_detached_then_move_mount: no lowerdir+");
        return;
    }
    in_mount_ns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let d = mkdirs(tmp.path(), &["l0", "l1", "merged"]);
        fs::write(d[0].join("f"), "hi").unwrap();
        let fd = mountkit_overlay::mount_detached(&Stack::new().lowers(&d[..2])).unwrap();
        assert_nothing_mounted(tmp.path());
        rustix::mount::move_mount(
            &fd,
            "",
            rustix::fs::CWD,
            d[2].as_path(),
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(d[2].join("f")).unwrap(), "hi");
        // The mount fd keeps the mount busy until it is closed.
        assert!(matches!(unmount(&d[2]), Err(Error::Unmount { .. })));
        drop(fd);
        unmount(&d[2]).unwrap();
        assert_nothing_mounted(tmp.path());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn long_layer_paths_beyond_fsconfig_string_limit() {
    require_root();
    for method in methods() {
        in_mount_ns(|| {
            let tmp = tempfile::tempdir().unwrap();
            // Each path is > 255 bytes: fsconfig(FSCONFIG_SET_STRING) copies at most 256 with the NUL.
            let deep = tmp
                .path()
                .join(["x".repeat(100), "y".repeat(100), "z".repeat(60)].join("/"));
            let d = mkdirs(&deep, &["low,0", "low:1", "upper", "work"]);
            for p in &d {
                assert!(p.as_os_str().len() > 255, "{p:?}");
            }
            let merged = &mkdirs(tmp.path(), &["merged"])[0];
            fs::write(d[0].join("f"), "0").unwrap();
            fs::write(d[1].join("f"), "1").unwrap();
            let stack = Stack::new().lowers(&d[..2]).upper(&d[2], &d[3]);
            mount(&stack, merged, method).unwrap_or_else(|e| panic!("{method:?}: {e}"));
            assert_eq!(fs::read_to_string(merged.join("f")).unwrap(), "1", "{method:?}");
            fs::write(merged.join("g"), "new").unwrap();
            assert!(
                d[2].join("g").exists(),
                "{method:?}: write did not land in the long upper"
            );
            unmount(merged).unwrap();
            assert_nothing_mounted(tmp.path());
        });
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn relative_layer_paths_resolve_against_cwd() {
    require_root();
    for method in methods() {
        in_mount_ns(|| {
            let tmp = tempfile::tempdir().unwrap();
            let d = mkdirs(tmp.path(), &["l0", "l1", "merged"]);
            fs::write(d[1].join("rel"), "yes").unwrap();
            std::env::set_current_dir(tmp.path()).unwrap();
            let stack = Stack::new().lowers(["l0", "l1"]);
            mount(&stack, Path::new("merged"), method).unwrap_or_else(|e| panic!("{method:?}: {e}"));
            assert_eq!(fs::read_to_string(d[2].join("rel")).unwrap(), "yes");
            unmount(Path::new("merged")).unwrap();
            // Relative names too long for one page with full paths (40 x ~120 bytes): the classic
            // method switches to fd-number names, which must still resolve against our cwd.
            let rel: Vec<String> = (0..40).map(|i| format!("r{i:02}-{}", "n".repeat(116))).collect();
            for (i, r) in rel.iter().enumerate() {
                fs::create_dir(r).unwrap();
                fs::write(Path::new(r).join("which"), i.to_string()).unwrap();
            }
            assert!(rel.iter().map(|r| r.len() + 1).sum::<usize>() > 4096);
            mount(&Stack::new().lowers(&rel), Path::new("merged"), method)
                .unwrap_or_else(|e| panic!("{method:?}: {e}"));
            assert_eq!(fs::read_to_string(d[2].join("which")).unwrap(), "39");
            unmount(Path::new("merged")).unwrap();
            assert_nothing_mounted(tmp.path());
        });
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn auto_learns_the_method_from_the_first_mount() {
    require_root();
    in_mount_ns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let d = mkdirs(tmp.path(), &["l0", "l1", "upper", "work", "merged", "merged2"]);
        std::fs::write(d[1].join("f"), "top").unwrap();
        let stack = Stack::new().lowers(&d[0..2]).upper(&d[2], &d[3]);
        // The first mount of this test process: no probe has run, Auto tries and learns.
        let first = mount(&stack, &d[4], Method::Auto).unwrap();
        assert_eq!(std::fs::read_to_string(d[4].join("f")).unwrap(), "top");
        // What it learnt agrees with the probe (on 6.1 the fallback to classic is what is tested).
        let expected = if features().lowerdir_plus {
            Method::NewApi
        } else {
            Method::Classic
        };
        assert_eq!(first, expected);
        unmount(&d[4]).unwrap();
        let ro = Stack::new().lowers(&d[0..2]);
        assert_eq!(mount(&ro, &d[5], Method::Auto).unwrap(), expected);
        unmount(&d[5]).unwrap();
        assert_nothing_mounted(tmp.path());
    });
}
