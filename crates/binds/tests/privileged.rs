//! Privileged tests (root; `#[ignore]`d otherwise): real mounts in a fake container root (a temp
//! directory), each in its own mount namespace (`mountkit_testutil::in_mount_ns`, through
//! [`with_fixture`]), so nothing outlives the test.

use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use mountkit_binds::{
    BindRecursive, MountSpec, Planned, Propagation, TmpfsOptions, TmpfsSize, mount_all, parse_mount_flag,
    parse_tmpfs_flag, parse_volume_flag, prepare_sources,
};
use mountkit_testutil::{in_mount_ns, require_root};

/// A fake container root with a few image directories and files, and a host area beside it.
struct Fixture {
    _dir: tempfile::TempDir,
    base: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        let root = base.join("root");
        for d in ["etc", "usr/share/app", "var/lib"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("etc/hostname"), "image").unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=test").unwrap();
        std::fs::write(root.join("usr/share/app/index.html"), "from the image").unwrap();
        std::fs::create_dir_all(base.join("host")).unwrap();
        Fixture { _dir: dir, base }
    }
    fn root(&self) -> PathBuf {
        self.base.join("root")
    }
    fn host(&self, p: &str) -> PathBuf {
        self.base.join("host").join(p)
    }
    /// The host directory `p`, made with its parents.
    fn host_dir(&self, p: &str) -> PathBuf {
        let d = self.host(p);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
    /// The host file `p` (its directory must exist), written with `content`.
    fn host_file(&self, p: &str, content: &str) -> PathBuf {
        let f = self.host(p);
        std::fs::write(&f, content).unwrap();
        f
    }
    /// `path` inside the container root.
    fn at(&self, path: &str) -> PathBuf {
        self.root().join(path)
    }
    /// The text of `path` inside the container root.
    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.at(path)).unwrap()
    }
    /// Mounts `plan` into the root (in the caller's mount namespace); must succeed.
    fn mount(&self, plan: &[Planned]) {
        mount_all(&self.root(), plan).unwrap();
    }
    /// The host directory `p`, with a tmpfs mounted on it (in the caller's mount namespace: inside
    /// [`with_fixture`], so that it is gone before the temp dir is removed).
    fn submount(&self, p: &str) {
        mount_tmpfs(&self.host_dir(p));
    }
}

/// Runs `body` with a fresh fixture, in its own mount namespace (the fixture is made and removed outside
/// it, after whatever `body` mounted has gone with the namespace).
fn with_fixture(body: impl FnOnce(&Fixture)) {
    let fx = Fixture::new();
    in_mount_ns(|| body(&fx));
}

fn bind(source: &Path, target: &str) -> Planned {
    Planned::Bind {
        source: source.to_path_buf(),
        target: target.into(),
        readonly: false,
        propagation: Propagation::RPrivate,
        recursive: BindRecursive::Enabled,
    }
}

fn planned(spec: &MountSpec) -> Planned {
    spec.to_planned(None).unwrap()
}

/// The plan of one `--mount` flag.
fn mount_flag(flag: &str) -> Planned {
    planned(&parse_mount_flag(flag).unwrap())
}

/// The plan of one `-v` flag.
fn volume_flag(flag: &str) -> Planned {
    planned(&parse_volume_flag(flag).unwrap())
}

fn errno_of_write(path: &Path) -> Option<i32> {
    std::fs::write(path, b"x").err().and_then(|e| e.raw_os_error())
}

/// The mountinfo line (fields split) whose mount point is exactly `path`, the last one if stacked.
fn mountinfo_at(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    text.lines()
        .rev()
        .map(|l| l.split(' ').map(String::from).collect::<Vec<_>>())
        .find(|f| f.len() > 4 && f[4] == p)
}

fn mount_tmpfs(path: &Path) {
    nix::mount::mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s11_bind_is_shared_both_ways() {
    require_root();
    with_fixture(|fx| {
        let src = fx.host_dir("src");
        let spec = parse_mount_flag(&format!("type=bind,source={},target=/src", src.display())).unwrap();
        prepare_sources(std::slice::from_ref(&spec)).unwrap();
        fx.mount(&[planned(&spec)]);
        std::fs::write(fx.at("src/from-container"), "c").unwrap();
        assert_eq!(
            std::fs::read_to_string(fx.host("src/from-container")).unwrap(),
            "c"
        );
        fx.host_file("src/from-host", "h");
        assert_eq!(fx.read("src/from-host"), "h");
        std::fs::write(fx.at("src/from-host"), "edited in the container").unwrap();
        assert_eq!(
            std::fs::read_to_string(fx.host("src/from-host")).unwrap(),
            "edited in the container"
        );
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn readonly_bind_is_recursively_readonly() {
    require_root();
    with_fixture(|fx| {
        fx.submount("src/sub");
        fx.host_file("src/sub/inner", "submount");
        fx.mount(&[volume_flag(&format!("{}:/data:ro", fx.host("src").display()))]);
        assert_eq!(errno_of_write(&fx.at("data/f")), Some(libc::EROFS));
        // The submount is carried and read-only through the bind...
        assert_eq!(fx.read("data/sub/inner"), "submount");
        assert_eq!(errno_of_write(&fx.at("data/sub/f")), Some(libc::EROFS));
        // ...while the host side stays writable.
        fx.host_file("src/sub/f", "host");
        fx.host_file("src/f", "host");
        let opts = mountinfo_at(&fx.at("data/sub")).expect("submount carried into the bind");
        assert!(opts[5].split(',').any(|o| o == "ro"), "mount options {}", opts[5]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn readonly_writable_leaves_submounts_writable() {
    require_root();
    with_fixture(|fx| {
        fx.submount("src/sub");
        fx.mount(&[mount_flag(&format!(
            "type=bind,src={},dst=/data,readonly,bind-recursive=writable",
            fx.host("src").display()
        ))]);
        assert_eq!(errno_of_write(&fx.at("data/f")), Some(libc::EROFS));
        std::fs::write(fx.at("data/sub/f"), "ok").unwrap();
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn bind_recursive_disabled_does_not_carry_submounts() {
    require_root();
    with_fixture(|fx| {
        fx.submount("src/sub");
        fx.host_file("src/sub/inner", "submount");
        fx.mount(&[mount_flag(&format!(
            "type=bind,src={},dst=/data,bind-recursive=disabled",
            fx.host("src").display()
        ))]);
        assert!(fx.at("data/sub").is_dir());
        assert!(!fx.at("data/sub/inner").exists(), "submount was carried");
        assert!(mountinfo_at(&fx.at("data/sub")).is_none());
        assert!(mountinfo_at(&fx.at("data")).is_some());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s12_directory_bind_hides_the_image_directory() {
    require_root();
    with_fixture(|fx| {
        let site = fx.host_dir("site");
        fx.host_file("site/about.html", "from the host");
        fx.mount(&[volume_flag(&format!("{}:/usr/share/app", site.display()))]);
        let names: Vec<_> = std::fs::read_dir(fx.at("usr/share/app"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["about.html"]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn s13_single_file_bind_keeps_the_other_files() {
    require_root();
    with_fixture(|fx| {
        let conf = fx.host_file("app.conf", "conf from host");
        let hostname = fx.host_file("hostname", "host-name");
        fx.mount(&[
            bind(&conf, "/etc/app.conf"),         // a new file in an image directory
            bind(&hostname, "/etc/hostname"),     // over an existing image file
            bind(&conf, "/opt/new/dir/app.conf"), // missing parents are created
        ]);
        assert_eq!(fx.read("etc/app.conf"), "conf from host");
        assert_eq!(fx.read("etc/hostname"), "host-name");
        assert_eq!(fx.read("etc/os-release"), "ID=test");
        assert_eq!(fx.read("opt/new/dir/app.conf"), "conf from host");
        std::fs::write(fx.at("etc/app.conf"), "edited").unwrap();
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), "edited");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn tmpfs_size_mode_owner_and_flags_are_honoured() {
    require_root();
    with_fixture(|fx| {
        fx.mount(&[
            planned(&parse_tmpfs_flag("/run:size=8m,mode=1770,uid=1234,gid=5678").unwrap()),
            mount_flag("type=tmpfs,dst=/scratch,tmpfs-size=4MiB,tmpfs-mode=700,readonly"),
        ]);
        let run = fx.at("run");
        let st = nix::sys::statvfs::statvfs(&run).unwrap();
        assert_eq!(st.blocks() as u64 * st.fragment_size() as u64, 8 << 20);
        let meta = std::fs::metadata(&run).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o1770);
        assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
        use nix::sys::statvfs::FsFlags;
        let flags = st.flags();
        assert!(
            flags.contains(FsFlags::ST_NOEXEC | FsFlags::ST_NOSUID | FsFlags::ST_NODEV),
            "{flags:?}"
        );
        std::fs::write(run.join("f"), "ok").unwrap();

        let scratch = fx.at("scratch");
        let st = nix::sys::statvfs::statvfs(&scratch).unwrap();
        assert_eq!(st.blocks() as u64 * st.fragment_size() as u64, 4 << 20);
        assert_eq!(
            std::fs::metadata(&scratch).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        assert_eq!(errno_of_write(&scratch.join("f")), Some(libc::EROFS));
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn tmpfs_exec_overrides_the_default_noexec() {
    require_root();
    with_fixture(|fx| {
        let options = TmpfsOptions {
            size: Some(TmpfsSize::Bytes(1 << 20)),
            noexec: false,
            ..TmpfsOptions::default()
        };
        fx.mount(&[Planned::Tmpfs {
            target: "/x".into(),
            options,
        }]);
        let flags = nix::sys::statvfs::statvfs(&fx.at("x")).unwrap().flags();
        assert!(
            !flags.contains(nix::sys::statvfs::FsFlags::ST_NOEXEC),
            "{flags:?}"
        );
        assert!(flags.contains(nix::sys::statvfs::FsFlags::ST_NOSUID), "{flags:?}");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn hostile_symlinks_in_the_root_cannot_reach_the_host() {
    require_root();
    // Taken in the host's namespace.
    let host_etc_mounts_before = mountkit_safefs::mounts_under(Path::new("/etc")).unwrap();
    let host_hostname_before = std::fs::read("/etc/hostname").ok();
    with_fixture(|fx| {
        let root = fx.root();
        symlink("/../../../etc", root.join("data")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../../../usr/share/app/index.html", root.join("hn")).unwrap();
        let vol = fx.host_dir("vol");
        fx.host_file("vol/marker-9f1c", "volume");
        let file = fx.host_file("file", "host file");
        fx.mount(&[
            bind(&vol, "/data"),
            Planned::Tmpfs {
                target: "/abs/tmp".into(),
                options: TmpfsOptions::default(),
            },
            bind(&file, "/hn"),
        ]);
        // Everything landed inside the root.
        assert_eq!(
            std::fs::read_to_string(root.join("etc/marker-9f1c")).unwrap(),
            "volume"
        );
        assert!(mountinfo_at(&root.join("etc")).is_some());
        assert!(mountinfo_at(&root.join("etc/tmp")).is_some());
        assert_eq!(
            std::fs::read_to_string(root.join("usr/share/app/index.html")).unwrap(),
            "host file"
        );
        // The host's /etc is untouched, in this namespace too.
        assert!(!Path::new("/etc/marker-9f1c").exists());
        assert!(!Path::new("/etc/tmp").exists() || mountinfo_at(Path::new("/etc/tmp")).is_none());
        assert_eq!(
            mountkit_safefs::mounts_under(Path::new("/etc")).unwrap(),
            host_etc_mounts_before
        );
        assert_eq!(std::fs::read("/etc/hostname").ok(), host_hostname_before);
    });
    assert!(!Path::new("/etc/marker-9f1c").exists());
}

/// Every name under `dir`, recursively, with file contents: a snapshot to compare.
fn tree_of(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p.clone());
            }
            let content = meta.is_file().then(|| std::fs::read(&p).unwrap());
            out.push((p.strip_prefix(dir).unwrap().to_path_buf(), content));
        }
    }
    out.sort();
    out
}

/// Targets behind symlinks that dangle inside the root (Docker/runc behaviour): the missing directories,
/// or the empty file for a file bind, are created inside the root and the mount lands there. A naive
/// resolution of each link would reach the host directory beside the root, which stays untouched.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn targets_behind_dangling_links_are_created_inside_the_root() {
    require_root();
    let fx = Fixture::new();
    let root = fx.root();
    for d in ["vol", "cache", "abs"] {
        fx.host_dir(&format!("src/{d}"));
        fx.host_file(&format!("src/{d}/marker"), d);
    }
    fx.host_file("src/conf", "conf from host");
    fx.host_file("src/app.conf", "app.conf from host");
    // Absolute and relative dangling links; the relative ones climb above the root, where a naive
    // resolution would find the host directory (`<base>/host`).
    symlink("/srv/appdata", root.join("data")).unwrap();
    symlink("../../host/cache", root.join("cache")).unwrap();
    symlink(fx.host("abs"), root.join("abs")).unwrap();
    symlink("/opt/conf", root.join("etc/conf")).unwrap();
    symlink("../../host/app.conf", root.join("etc/app.conf")).unwrap();
    let host_before = tree_of(&fx.base.join("host"));
    in_mount_ns(|| {
        fx.mount(&[
            bind(&fx.host("src/vol"), "/data"),
            bind(&fx.host("src/cache"), "/cache/sub"),
            bind(&fx.host("src/abs"), "/abs"),
            bind(&fx.host("src/conf"), "/etc/conf"),
            bind(&fx.host("src/app.conf"), "/etc/app.conf"),
        ]);
        let inside_host = root.join(fx.host("abs").strip_prefix("/").unwrap());
        for (at, marker) in [
            (root.join("srv/appdata"), "vol"),
            (root.join("host/cache/sub"), "cache"),
            (inside_host, "abs"),
        ] {
            assert!(mountinfo_at(&at).is_some(), "no mount at {}", at.display());
            assert_eq!(std::fs::read_to_string(at.join("marker")).unwrap(), marker);
        }
        // Through the links, as the container sees them (resolved in the root, not on the host).
        let root_fd = mountkit_safefs::inroot::open_root(&root).unwrap();
        for (p, text) in [
            ("/data/marker", "vol"),
            ("/cache/sub/marker", "cache"),
            ("/etc/conf", "conf from host"),
        ] {
            let fd = mountkit_safefs::inroot::resolve(root_fd.as_fd(), Path::new(p)).unwrap();
            let via = mountkit_safefs::inroot::fd_path(fd.as_fd());
            assert_eq!(std::fs::read_to_string(via).unwrap(), text, "{p}");
        }
        for (at, text) in [
            (root.join("opt/conf"), "conf from host"),
            (root.join("host/app.conf"), "app.conf from host"),
        ] {
            assert!(mountinfo_at(&at).is_some(), "no mount at {}", at.display());
            assert_eq!(std::fs::read_to_string(&at).unwrap(), text);
        }
        assert_eq!(
            std::fs::metadata(root.join("opt")).unwrap().permissions().mode() & 0o777,
            0o755 & !current_umask()
        );
        // The links themselves are still links.
        assert!(std::fs::symlink_metadata(root.join("data")).unwrap().is_symlink());
        assert!(
            std::fs::symlink_metadata(root.join("etc/conf"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            tree_of(&fx.base.join("host")),
            host_before,
            "the host side changed"
        );
        assert!(
            mountkit_safefs::mounts_under(&fx.base.join("host"))
                .unwrap()
                .is_empty()
        );
    });
    assert_eq!(
        tree_of(&fx.base.join("host")),
        host_before,
        "the host side changed"
    );
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn nested_targets_in_either_order() {
    require_root();
    for reversed in [false, true] {
        with_fixture(|fx| {
            for d in ["a", "b"] {
                fx.host_dir(d);
                fx.host_file(&format!("{d}/which"), d);
            }
            let mut plan = vec![bind(&fx.host("a"), "/a"), bind(&fx.host("b"), "/a/b")];
            if reversed {
                plan.reverse();
            }
            fx.mount(&plan);
            assert_eq!(fx.read("a/which"), "a");
            assert_eq!(fx.read("a/b/which"), "b", "reversed={reversed}");
        });
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn bind_inside_a_tmpfs_is_visible() {
    require_root();
    with_fixture(|fx| {
        let app = fx.host_dir("app");
        fx.host_file("app/sock", "s");
        fx.mount(&[
            volume_flag(&format!("{}:/run/app", app.display())),
            planned(&parse_tmpfs_flag("/run").unwrap()),
        ]);
        assert_eq!(fx.read("run/app/sock"), "s");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn propagation_is_applied() {
    require_root();
    with_fixture(|fx| {
        let (s, p) = (fx.host_dir("s"), fx.host_dir("p"));
        fx.mount(&[
            volume_flag(&format!("{}:/shared:rshared", s.display())),
            volume_flag(&format!("{}:/private", p.display())),
        ]);
        let s = mountinfo_at(&fx.at("shared")).unwrap();
        assert!(s[6..].iter().any(|f| f.starts_with("shared:")), "{s:?}");
        let p = mountinfo_at(&fx.at("private")).unwrap();
        assert!(
            !p[6..]
                .iter()
                .any(|f| f.starts_with("shared:") || f.starts_with("master:")),
            "{p:?}"
        );
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn mount_refuses_a_missing_source_with_dockers_error() {
    require_root();
    let fx = Fixture::new();
    let missing = fx.host("does/not/exist");
    let spec = parse_mount_flag(&format!("type=bind,source={},target=/x", missing.display())).unwrap();
    let err = prepare_sources(&[spec]).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            missing.display()
        )
    );
    assert!(!missing.exists());
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn volume_flag_creates_a_missing_source_directory() {
    require_root();
    with_fixture(|fx| {
        let missing = fx.host("made/by/v");
        let spec = parse_volume_flag(&format!("{}:/x", missing.display())).unwrap();
        prepare_sources(std::slice::from_ref(&spec)).unwrap();
        let meta = std::fs::metadata(&missing).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o755 & !current_umask());
        fx.mount(&[planned(&spec)]);
        assert!(mountinfo_at(&fx.at("x")).is_some());
    });
}

fn current_umask() -> u32 {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(old);
    old.bits()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn errors_name_the_target_and_the_cause() {
    require_root();
    with_fixture(|fx| {
        let dir = fx.host_dir("dir");
        // A directory source onto an image file.
        let err = mount_all(&fx.root(), &[bind(&dir, "/etc/hostname")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("etc/hostname") && err.contains("not a directory"),
            "{err}"
        );
        // A missing source at mount time.
        let err = mount_all(&fx.root(), &[bind(&fx.host("gone"), "/g")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("host/gone") && err.contains("cannot open"), "{err}");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn readonly_single_file_bind() {
    require_root();
    with_fixture(|fx| {
        let conf = fx.host_file("conf", "c");
        fx.mount(&[mount_flag(&format!(
            "type=bind,src={},dst=/etc/conf,readonly,bind-recursive=readonly,bind-propagation=rprivate",
            conf.display()
        ))]);
        assert_eq!(fx.read("etc/conf"), "c");
        assert_eq!(errno_of_write(&fx.at("etc/conf")), Some(libc::EROFS));
        // The image directory around it stays writable.
        std::fs::write(fx.at("etc/other"), "w").unwrap();
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn host_symlink_source_is_followed_on_the_host() {
    require_root();
    with_fixture(|fx| {
        let real = fx.host_dir("real");
        fx.host_file("real/f", "real");
        symlink(&real, fx.host("link")).unwrap();
        fx.mount(&[bind(&fx.host("link"), "/data")]);
        // The symlink's target directory is bound (a directory, not a file mount point).
        assert!(fx.at("data").is_dir());
        assert_eq!(fx.read("data/f"), "real");
    });
}
