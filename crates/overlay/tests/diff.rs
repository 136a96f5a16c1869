//! `changes()` against upper layers written by the kernel: changes are made through a real overlay
//! mount (in a private mount namespace, in a temp dir), then the overlay is unmounted and the upper
//! layer is read.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mountkit_overlay::{Change, ChangeKind, Error, Method, Stack, changes, mount, unmount};
use mountkit_testutil::{in_mount_ns, require_root};

fn write(base: &Path, rel: &str, data: &str) {
    let p = base.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn whiteout(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
}

fn expect(list: &[(ChangeKind, &str)]) -> Vec<Change> {
    let mut v: Vec<Change> = list
        .iter()
        .map(|(kind, p)| Change {
            kind: *kind,
            path: PathBuf::from(p),
        })
        .collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn changes_made_through_a_mounted_overlay() {
    require_root();
    in_mount_ns(|| {
        use ChangeKind::{Added as A, Changed as C, Deleted as D};
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let (l0, l1) = (t.join("l0"), t.join("l1"));
        let (upper, work, merged) = (t.join("upper"), t.join("work"), t.join("merged"));
        for d in [&l0, &l1, &upper, &work, &merged] {
            fs::create_dir_all(d).unwrap();
        }
        // Bottom layer.
        for f in [
            "app/a",
            "app/b",
            "etc/conf",
            "old/x",
            "old/y",
            "keep/f",
            "rmdir/z",
            "gone/file",
            "hid/old",
        ] {
            write(&l0, f, "v1");
        }
        // Top layer: adds app/c, deletes /gone (whiteout), makes /hid opaque (hides hid/old).
        write(&l1, "app/c", "c");
        whiteout(&l1.join("gone"));
        write(&l1, "hid/new", "n");
        rustix::fs::lsetxattr(
            l1.join("hid"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();

        let stack = Stack::new().lowers([&l0, &l1]).upper(&upper, &work);
        mount(&stack, &merged, Method::Auto).unwrap();
        let m = |p: &str| merged.join(p);
        assert!(!m("gone").exists() && !m("hid/old").exists() && m("hid/new").exists());
        fs::write(m("app/new"), "new").unwrap(); // add a file in an existing dir
        let mut conf = fs::read_to_string(m("etc/conf")).unwrap();
        conf.push_str(" v2");
        fs::write(m("etc/conf"), conf).unwrap(); // modify a lower file
        fs::remove_file(m("app/b")).unwrap(); // delete a lower file
        fs::remove_dir_all(m("old")).unwrap(); // rm -rf a lower dir and recreate it (opaque)
        fs::create_dir(m("old")).unwrap();
        fs::write(m("old/x"), "again").unwrap();
        fs::write(m("old/x2"), "x2").unwrap();
        fs::create_dir(m("newdir")).unwrap(); // a new dir with files
        fs::write(m("newdir/f1"), "1").unwrap();
        fs::write(m("newdir/f2"), "2").unwrap();
        fs::set_permissions(m("keep/f"), fs::Permissions::from_mode(0o600)).unwrap(); // chmod
        std::os::unix::fs::symlink("a", m("app/link")).unwrap(); // symlink
        fs::remove_dir_all(m("rmdir")).unwrap(); // rm -rf a whole lower dir
        fs::create_dir(m("gone")).unwrap(); // deleted by the top lower: new again
        fs::write(m("hid/old"), "mine").unwrap(); // hidden by the opaque top lower: new
        unmount(&merged).unwrap();

        let got = changes(&upper, &[l0.clone(), l1.clone()]).unwrap();
        let want = expect(&[
            (C, "/app"),
            (D, "/app/b"),
            (A, "/app/link"),
            (A, "/app/new"),
            (C, "/etc"),
            (C, "/etc/conf"),
            (A, "/gone"),
            (C, "/hid"),
            (A, "/hid/old"),
            (C, "/keep"),
            (C, "/keep/f"),
            (A, "/newdir"),
            (A, "/newdir/f1"),
            (A, "/newdir/f2"),
            (D, "/old"),
            (C, "/old/x"),
            (A, "/old/x2"),
            (D, "/rmdir"),
        ]);
        let show = |v: &[Change]| v.iter().map(|c| format!("{c}\n")).collect::<String>();
        assert_eq!(show(&got), show(&want));
        assert_eq!(got, want);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn unchanged_container_has_no_changes() {
    require_root();
    in_mount_ns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let (l0, upper, work, merged) = (t.join("l0"), t.join("upper"), t.join("work"), t.join("merged"));
        for d in [&l0, &upper, &work, &merged] {
            fs::create_dir_all(d).unwrap();
        }
        write(&l0, "etc/conf", "v1");
        let stack = Stack::new().lowers([&l0]).upper(&upper, &work);
        mount(&stack, &merged, Method::Auto).unwrap();
        assert_eq!(fs::read_to_string(merged.join("etc/conf")).unwrap(), "v1"); // reads copy nothing up
        // A file created and removed again leaves its (copied-up, touched) parent behind: C.
        fs::write(merged.join("etc/tmp"), "t").unwrap();
        fs::remove_file(merged.join("etc/tmp")).unwrap();
        unmount(&merged).unwrap();
        let got = changes(&upper, std::slice::from_ref(&l0)).unwrap();
        assert_eq!(
            got,
            vec![Change {
                kind: ChangeKind::Changed,
                path: "/etc".into()
            }]
        );
        fs::remove_dir_all(upper.join("etc")).unwrap();
        assert_eq!(changes(&upper, &[l0]).unwrap(), vec![]);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn redirected_directory_is_refused() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (l0, upper) = (tmp.path().join("l0"), tmp.path().join("upper"));
    write(&l0, "a/f", "");
    fs::create_dir_all(upper.join("b")).unwrap();
    rustix::fs::lsetxattr(
        upper.join("b"),
        "trusted.overlay.redirect",
        b"/a",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    whiteout(&upper.join("a"));
    let err = changes(&upper, &[l0]).unwrap_err();
    assert!(
        matches!(&err, Error::RedirectedDir { path, xattr: "trusted.overlay.redirect" } if path.ends_with("b")),
        "{err:?}"
    );
    assert!(err.to_string().contains("redirect_dir=on"), "{err}");
}
