//! Privileged tests: real imports into a temporary store, as root, in a private mount namespace.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use mountkit_layer_store::{Error, ImageConfig, LayerSource, Store};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

fn set_mtime(p: &Path, sec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// `<dir>/src`, made and filled by [`rich_tree`].
fn rich_src(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir(&src).unwrap();
    rich_tree(&src);
    src
}

/// A source tree with every kind of file and metadata a layer must keep.
fn rich_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/sub")).unwrap();
    fs::write(root.join("etc/conf"), b"key=value\n").unwrap();
    fs::write(root.join("bin-suid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("bin-suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::lchown(root.join("etc/conf"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::symlink("/etc/conf", root.join("abs-link")).unwrap();
    std::os::unix::fs::lchown(root.join("abs-link"), Some(42), Some(43)).unwrap();
    fs::hard_link(root.join("etc/conf"), root.join("etc/conf-hard")).unwrap();
    rustix::fs::mknodat(
        CWD,
        root.join("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        root.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    // mknod applies the umask: set the modes explicitly.
    fs::set_permissions(root.join("null"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(root.join("fifo"), fs::Permissions::from_mode(0o640)).unwrap();
    rustix::fs::lsetxattr(root.join("etc/conf"), "user.note", b"hello", XattrFlags::empty()).unwrap();
    rustix::fs::lsetxattr(root.join("etc"), "trusted.tag", b"t", XattrFlags::empty()).unwrap();
    fs::set_permissions(root.join("etc/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    // Names and link targets longer than a ustar header holds travel in PAX records.
    let long = format!("etc/sub/{}", "l".repeat(120));
    fs::write(root.join(&long), b"long").unwrap();
    std::os::unix::fs::symlink(format!("/{}", "t".repeat(150)), root.join("etc/long-target")).unwrap();
    for (p, t) in [
        ("etc/conf", 1_500_000_000),
        ("abs-link", 1_400_000_000),
        ("null", 1_300_000_000),
        ("etc/sub", 1_200_000_000),
        ("etc", 1_100_000_000),
    ] {
        set_mtime(&root.join(p), t);
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn every_source_of_the_same_content_gives_the_same_id_and_no_second_unpack() {
    mountkit_testutil::require_root();
    with_store(|t, store| {
        let src = rich_src(t);
        let info = store.import_layer(LayerSource::Dir(src.clone())).unwrap();
        assert_eq!(store.unpack_count(), 1);

        // The export is canonical: its sha256 is the ID.
        let mut tar = Vec::new();
        store.export_layer(&info.id, &mut tar).unwrap();
        assert_eq!(sha256_id(&tar), info.id.to_string());
        assert_eq!(info.size, tar.len() as u64);

        let layer_dir = store.layer_path(&info.id);
        let ino_before = ino(&layer_dir);
        let tar_path = t.join("l.tar");
        fs::write(&tar_path, &tar).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let gz_path = t.join("l.tar.gz");
        fs::write(&gz_path, &gz).unwrap();
        let zst_path = t.join("l.tar.zst");
        fs::write(&zst_path, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();

        for src in [
            LayerSource::Dir(src.clone()),
            LayerSource::Tar(tar_path.clone()),
            LayerSource::Tar(gz_path.clone()),
            LayerSource::Tar(zst_path),
        ] {
            assert_eq!(store.import_layer(src).unwrap().id, info.id);
        }
        assert_eq!(
            store.unpack_count(),
            1,
            "re-readable sources are hashed, not unpacked again"
        );
        assert_eq!(ino(&layer_dir), ino_before, "the stored layer was not replaced");

        // A one-shot stream is unpacked while hashed, then the copy is discarded.
        let again = store
            .import_layer(LayerSource::Reader(Box::new(std::io::Cursor::new(gz.clone()))))
            .unwrap();
        assert_eq!(again.id, info.id);
        assert_eq!(ino(&layer_dir), ino_before);
        assert_eq!(store.layers().unwrap().len(), 1);
        assert!(
            listing(&store.root().join("tmp")).is_empty(),
            "no staging left: {:?}",
            listing(&store.root().join("tmp"))
        );

        // A fresh store importing the gzip first records the compressed digest.
        let store2 = Store::open(t.join("store2")).unwrap();
        let i2 = store2.import_layer(LayerSource::Tar(gz_path)).unwrap();
        assert_eq!(i2.id, info.id);
        assert_eq!(i2.compressed_digest, Some(sha256_id(&gz)));
        assert!(matches!(store2.layer("sha256:"), Err(Error::InvalidId { .. })));
        assert_eq!(store2.layer(&info.id.hex()[..8]).unwrap(), i2);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn metadata_devices_links_and_xattrs_are_preserved() {
    mountkit_testutil::require_root();
    with_store(|t, store| {
        let src = rich_src(t);
        // Through a tar stream, so the tar parser and the extractor are what is tested.
        let mut tar = Vec::new();
        mountkit_layer_store::canonical_tar(&src, &mut tar).unwrap();
        let info = store
            .import_layer(LayerSource::Reader(Box::new(std::io::Cursor::new(tar))))
            .unwrap();
        let l = store.layer_path(&info.id);
        let m = |p: &str| fs::symlink_metadata(l.join(p)).unwrap();

        assert_eq!(fs::read(l.join("etc/conf")).unwrap(), b"key=value\n");
        assert_eq!((m("etc/conf").uid(), m("etc/conf").gid()), (1234, 5678));
        assert_eq!(m("etc/conf").mtime(), 1_500_000_000);
        assert_eq!(
            m("bin-suid").mode() & 0o7777,
            0o4755,
            "setuid kept (chmod after chown)"
        );
        assert_eq!(fs::read_link(l.join("abs-link")).unwrap(), Path::new("/etc/conf"));
        assert_eq!(
            (m("abs-link").uid(), m("abs-link").gid(), m("abs-link").mtime()),
            (42, 43, 1_400_000_000)
        );
        assert_eq!(
            m("etc/conf-hard").ino(),
            m("etc/conf").ino(),
            "hard link is the same inode"
        );
        assert_eq!(m("etc/conf").nlink(), 2);
        assert!(m("null").file_type().is_char_device());
        assert_eq!(m("null").rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(m("null").mode() & 0o7777, 0o666);
        assert_eq!(m("null").mtime(), 1_300_000_000);
        assert!(m("fifo").file_type().is_fifo());
        assert_eq!(m("fifo").mode() & 0o7777, 0o640);
        assert_eq!(
            xattr(&l.join("etc/conf"), "user.note").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(xattr(&l.join("etc"), "trusted.tag").as_deref(), Some(&b"t"[..]));
        assert_eq!(m("etc/sub").mode() & 0o7777, 0o700);
        assert_eq!(
            m("etc/sub").mtime(),
            1_200_000_000,
            "dir times fixed after its contents were written"
        );
        assert_eq!(m("etc").mtime(), 1_100_000_000);
        assert_eq!(
            fs::read(l.join(format!("etc/sub/{}", "l".repeat(120)))).unwrap(),
            b"long"
        );
        assert_eq!(
            fs::read_link(l.join("etc/long-target")).unwrap(),
            Path::new(&format!("/{}", "t".repeat(150)))
        );
        // abs-link bin-suid etc/ etc/conf etc/conf-hard etc/long-target etc/sub/ etc/sub/lll.. fifo null
        assert_eq!(info.entries, 10);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn whiteouts_become_overlay_whiteouts_and_export_back() {
    mountkit_testutil::require_root();
    with_store(|_, store| {
        let tar = tar_bytes(&[
            dir("a/"),
            file("a/.wh.x", b""),
            dir("b/"),
            file("b/.wh..wh..opq", b""),
            file("b/keep", b"k"),
        ]);
        let info = store
            .import_layer(LayerSource::Reader(Box::new(std::io::Cursor::new(tar.clone()))))
            .unwrap();
        assert_eq!(
            info.id.to_string(),
            sha256_id(&tar),
            "the ID is the sha256 of the stream as given"
        );
        let l = store.layer_path(&info.id);
        let wh = fs::symlink_metadata(l.join("a/x")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!l.join("a/.wh.x").exists());
        assert_eq!(
            xattr(&l.join("b"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(listing(&l.join("b")), ["keep"]);

        let mut out = Vec::new();
        store.export_layer(&info.id, &mut out).unwrap();
        assert_eq!(
            member_names(&out),
            ["a/", "a/.wh.x", "b/", "b/.wh..wh..opq", "b/keep"]
        );

        // Re-importing the export as a directory tree of the unpacked layer gives the export's ID.
        let again = store.import_layer(LayerSource::Dir(l.clone())).unwrap();
        assert_eq!(again.id.to_string(), sha256_id(&out));
    });
}

/// Imports `tar` (as a stream and as a file) and checks that it is refused naming `entry`, and that
/// the store's `layers/` and `tmp/` are exactly as before.
fn assert_refused(store: &Store, dir: &Path, tar: &[u8], entry: &str, why: &str) {
    let before = (
        listing(&store.root().join("layers")),
        listing(&store.root().join("tmp")),
    );
    let path = dir.join("hostile.tar");
    fs::write(&path, tar).unwrap();
    for src in [
        LayerSource::Reader(Box::new(std::io::Cursor::new(tar.to_vec()))),
        LayerSource::Tar(path),
    ] {
        match store.import_layer(src) {
            Err(Error::Rejected { entry: e, reason }) => {
                assert_eq!(e, entry, "{why}: wrong entry named ({reason})");
                let msg = Error::Rejected {
                    entry: e,
                    reason: reason.clone(),
                }
                .to_string();
                assert!(msg.contains(entry), "{msg}");
            }
            other => panic!("{why}: expected a rejection naming {entry:?}, got {other:?}"),
        }
        let after = (
            listing(&store.root().join("layers")),
            listing(&store.root().join("tmp")),
        );
        assert_eq!(before, after, "{why}: the store changed");
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn hostile_tars_are_refused_and_leave_nothing() {
    mountkit_testutil::require_root();
    mountkit_testutil::in_mount_ns(|| {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let store = Store::open(t.path().join("store")).unwrap();
        let out = outside.to_str().unwrap();

        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[file("../x", b"evil")]),
            "../x",
            "dot-dot",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[dir("a/"), file("a/../../x", b"evil")]),
            "a/../../x",
            "nested dot-dot",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[symlink("link", out), file("link/f", b"evil")]),
            "link/f",
            "through a symlink",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[symlink("link", out), dir("link/")]),
            "link/",
            "dir over symlink",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[file("ok", b"1"), hardlink("h", "../../etc/passwd")]),
            "h",
            "hard link out",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[hardlink("h", "later"), file("later", b"1")]),
            "h",
            "hard link forward",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[symlink("etc-link", "/etc"), hardlink("h", "etc-link/passwd")]),
            "h",
            "hard link through a symlink",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[symlink(".", out)]),
            ".",
            "symlink named .",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[symlink("/", out)]),
            "/",
            "symlink named /",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[file("./", b"x")]),
            "./",
            "file named ./",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[dir("d/"), file("d/in", b"1"), file("d", b"x")]),
            "d",
            "file over dir",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[file("f", b"x"), dir("f/")]),
            "f/",
            "dir over file",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[file("f", b"x"), symlink("f", "y")]),
            "f",
            "symlink over file",
        );
        assert_refused(
            &store,
            t.path(),
            &tar_bytes(&[file("x", b"x"), file(".wh.x", b"")]),
            ".wh.x",
            "whiteout over file",
        );
        assert!(
            listing(&outside).is_empty(),
            "nothing was written outside the layer"
        );
        assert!(!Path::new("/etc/passwd-").exists() || fs::read("/etc/passwd").is_ok());

        // Not refused, by decision: absolute names land inside the layer; same-type duplicates replace;
        // dir over dir merges; the root directory entry is fine.
        let tar = tar_bytes(&[
            dir("./"),
            file("/abs", b"1"),
            file("//etc/mountkit-abs-test", b"2"),
            file("dup", b"old"),
            file("dup", b"new"),
            dir("m/"),
            dir("m/"),
        ]);
        let info = store
            .import_layer(LayerSource::Reader(Box::new(std::io::Cursor::new(tar))))
            .unwrap();
        let l = store.layer_path(&info.id);
        assert_eq!(fs::read(l.join("abs")).unwrap(), b"1");
        assert_eq!(fs::read(l.join("etc/mountkit-abs-test")).unwrap(), b"2");
        assert!(
            !Path::new("/etc/mountkit-abs-test").exists(),
            "an absolute name reached the host"
        );
        assert_eq!(fs::read(l.join("dup")).unwrap(), b"new");
        assert!(l.join("m").is_dir());
        assert_eq!(listing(&store.root().join("tmp")), Vec::<String>::new());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn images_protect_their_layers_and_gc_removes_the_rest() {
    mountkit_testutil::require_root();
    with_store(|_, store| {
        let imp = |name: &str| {
            let tar = tar_bytes(&[file(name, name.as_bytes())]);
            store
                .import_layer(LayerSource::Reader(Box::new(std::io::Cursor::new(tar))))
                .unwrap()
                .id
        };
        let (l1, l2, l3) = (imp("one"), imp("two"), imp("three"));
        let config = ImageConfig {
            env: vec!["A=1".into()],
            volumes: vec!["/data".into()],
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let img = store
            .create_image(Some("app:1"), &[l1.clone(), l2.clone()], config.clone())
            .unwrap();
        assert!(img.id.starts_with("sha256:"));
        assert_eq!(store.image("app:1").unwrap(), img);
        assert_eq!(store.image(&img.id).unwrap(), img);
        assert_eq!(store.image(&img.id["sha256:".len()..][..6]).unwrap(), img);
        assert!(matches!(
            store.create_image(Some("app:1"), std::slice::from_ref(&l3), ImageConfig::default()),
            Err(Error::NameTaken { .. })
        ));
        assert!(matches!(
            store.create_image(Some("../x"), std::slice::from_ref(&l3), ImageConfig::default()),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(store.image("nope"), Err(Error::NotFound { .. })));
        // A name is found by its record's key, without reading the other records: a damaged one does
        // not get in the way (a lookup that has to scan names it).
        let damaged = store.root().join("images").join("damaged.json");
        std::fs::write(&damaged, b"{not json").unwrap();
        assert_eq!(store.image("app:1").unwrap(), img);
        let err = store.image("nope").unwrap_err();
        assert!(err.to_string().contains("damaged.json"), "{err}");
        std::fs::remove_file(&damaged).unwrap();

        // Same content under a second name: one image with two names. Its full ID, a prefix of it and
        // either name all resolve (names of one image are never ambiguous); `app` is `app:latest`.
        let twin = store
            .create_image(Some("app:latest"), &[l1.clone(), l2.clone()], config.clone())
            .unwrap();
        assert_eq!(twin.id, img.id);
        for r in [
            &img.id[..],
            &img.id["sha256:".len()..],
            &img.id[7..15],
            "app",
            "app:latest",
        ] {
            assert_eq!(store.image(r).unwrap().id, img.id, "{r}");
        }
        assert_eq!(store.image_names(&img.id).unwrap(), ["app:1", "app:latest"]);
        assert_eq!(store.image_records(&img.id).unwrap().len(), 2);
        assert_eq!(store.image_records("app").unwrap().len(), 1);
        assert!(matches!(
            store.create_image(Some("app"), std::slice::from_ref(&l3), ImageConfig::default()),
            Err(Error::NameTaken { name, .. }) if name == "app:latest"
        ));
        // The same content without a name is the image it already is (no `<none>` record).
        assert_eq!(
            store
                .create_image(None, &[l1.clone(), l2.clone()], config.clone())
                .unwrap()
                .id,
            img.id
        );
        assert_eq!(store.images().unwrap().len(), 2);

        match store.remove_layer(&l1.hex()[..12]) {
            Err(Error::InUse { layer, images }) => {
                assert_eq!(layer, l1.to_string());
                assert_eq!(images, ["app:1", "app:latest"]);
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        assert_eq!(store.remove_layer(&l3.to_string()).unwrap(), l3);
        assert!(matches!(
            store.layer(&l3.to_string()),
            Err(Error::NotFound { .. })
        ));
        assert!(!store.root().join("layers").join(l3.hex()).exists());

        let removed = store.remove_image("app:1").unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].name.as_deref(), Some("app:1"));
        assert_eq!(store.image(&img.id).unwrap().name.as_deref(), Some("app:latest"));
        assert!(
            store.gc().unwrap().is_empty(),
            "app:latest still uses both layers"
        );
        store.remove_image("app:latest").unwrap();
        let mut removed = store.gc().unwrap();
        removed.sort();
        let mut want = vec![l1.clone(), l2.clone()];
        want.sort();
        assert_eq!(removed, want);
        assert!(store.layers().unwrap().is_empty());
        assert!(listing(&store.root().join("tmp")).is_empty());
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn concurrent_imports_of_one_layer_both_succeed_and_stale_staging_is_swept() {
    mountkit_testutil::require_root();
    mountkit_testutil::in_mount_ns(|| {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("store");
        let mut entries = Vec::new();
        let names: Vec<String> = (0..200).map(|i| format!("f{i:03}")).collect();
        for n in &names {
            entries.push(file(n, b"some data"));
        }
        let tar = tar_bytes(&entries);
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (root, tar) = (root.clone(), tar.clone());
                    s.spawn(move || {
                        let store = Store::open(&root).unwrap();
                        store.import_layer(LayerSource::Reader(Box::new(std::io::Cursor::new(tar))))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ids: Vec<_> = results.into_iter().map(|r| r.unwrap().id).collect();
        assert_eq!(ids[0], ids[1]);
        let store = Store::open(&root).unwrap();
        assert_eq!(store.layers().unwrap().len(), 1);
        assert_eq!(listing(&store.layer_path(&ids[0])).len(), 200);

        // Stale staging (nobody holds its lock) is swept; staging someone holds stays.
        let tmp = root.join("tmp");
        fs::create_dir_all(tmp.join("dead/diff/x")).unwrap();
        fs::write(tmp.join("dead.lock"), b"").unwrap();
        fs::create_dir_all(tmp.join("orphan")).unwrap();
        fs::create_dir_all(tmp.join("live")).unwrap();
        let held = mountkit_safefs::Lock::exclusive(&tmp.join("live.lock")).unwrap();
        let _store = Store::open(&root).unwrap();
        assert_eq!(listing(&tmp), ["live", "live.lock"]);
        drop(held);
    });
}

/// A tar of (name, type, mode, uid, gid) members; files hold their own name.
fn owned_tar(members: &[(&str, tar::EntryType, u32, u64, u64)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for &(name, ty, mode, uid, gid) in members {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_600_000_000);
        let data: &[u8] = if ty == tar::EntryType::Regular {
            name.as_bytes()
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        if ty == tar::EntryType::Symlink {
            b.append_link(&mut h, name, "target").unwrap();
        } else {
            b.append_data(&mut h, name, data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn owners_and_modes_are_exact_whatever_the_umask_and_the_staging_group() {
    mountkit_testutil::require_root();
    use tar::EntryType::{Directory as D, Fifo as P, Regular as F, Symlink as L};
    // The extractor skips a chown or chmod that would change nothing: it must still be exact.
    let members: &[(&str, tar::EntryType, u32, u64, u64)] = &[
        ("own/", D, 0o755, 0, 0),
        ("own/plain", F, 0o644, 0, 0),
        ("own/exec", F, 0o755, 0, 0),
        ("own/open", F, 0o777, 0, 0),
        ("own/none", F, 0o000, 0, 0),
        ("own/suid", F, 0o4755, 0, 0),
        ("own/sgid", F, 0o2755, 0, 0),
        ("own/theirs", F, 0o640, 1000, 1000),
        ("own/group", F, 0o644, 0, 4321),
        ("own/fifo", P, 0o666, 0, 0),
        ("own/link", L, 0o777, 0, 0),
        ("own/tmp/", D, 0o1777, 0, 0),
        ("own/tmp/f", F, 0o644, 0, 0),
        ("other/", D, 0o2775, 0, 4321),
        ("other/f", F, 0o644, 0, 0),
        ("other/sub/", D, 0o750, 0, 0),
        ("other/sub/f", F, 0o600, 0, 0),
        ("locked/", D, 0o500, 0, 0),
        ("locked/f", F, 0o444, 0, 0),
    ];
    let tar = owned_tar(members);
    let check = |store: &Store, case: &str| {
        let info = store
            .import_layer(LayerSource::Reader(Box::new(std::io::Cursor::new(tar.clone()))))
            .unwrap();
        let l = store.layer_path(&info.id);
        for &(name, ty, mode, uid, gid) in members {
            let m = fs::symlink_metadata(l.join(name.trim_end_matches('/'))).unwrap();
            let got_mode = if ty == L { 0o777 } else { m.mode() & 0o7777 };
            assert_eq!(
                (got_mode, u64::from(m.uid()), u64::from(m.gid())),
                (mode, uid, gid),
                "{case}: {name}"
            );
        }
        assert_eq!(fs::read(l.join("other/sub/f")).unwrap(), b"other/sub/f");
    };
    for (case, umask) in [("umask 022", 0o022), ("umask 077", 0o077), ("umask 0", 0)] {
        mountkit_testutil::in_mount_ns(|| {
            rustix::process::umask(Mode::from_raw_mode(umask));
            let t = tempfile::tempdir().unwrap();
            check(&Store::open(t.path().join("store")).unwrap(), case);
        });
    }
    // A store below a set-group-ID directory of another group: what is created there inherits
    // that group, so every chown must be done.
    mountkit_testutil::in_mount_ns(|| {
        let t = tempfile::tempdir().unwrap();
        let parent = t.path().join("sgid");
        fs::create_dir(&parent).unwrap();
        rustix::fs::chown(&parent, None, Some(rustix::fs::Gid::from_raw(4321))).unwrap();
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o2775)).unwrap();
        let store = Store::open(parent.join("store")).unwrap();
        assert_eq!(
            fs::metadata(store.root().join("tmp")).unwrap().gid(),
            4321,
            "the staging inherits the group"
        );
        check(&store, "set-group-ID store");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn size_probe_misses_and_collisions_still_give_the_right_layer() {
    mountkit_testutil::require_root();
    with_store(|t, store| {
        let a = tar_bytes(&[file("a", b"same size")]);
        let b = tar_bytes(&[file("b", b"SAME SIZE")]);
        assert_eq!(a.len(), b.len());
        let (pa, pb) = (t.join("a.tar"), t.join("b.tar"));
        fs::write(&pa, &a).unwrap();
        fs::write(&pb, &b).unwrap();
        let ia = store.import_layer(LayerSource::Tar(pa)).unwrap();
        assert_eq!(store.unpack_count(), 1);
        // Same stream size as a stored layer: hashed first, then unpacked all the same.
        let ib = store.import_layer(LayerSource::Tar(pb)).unwrap();
        assert_eq!(ib.id.to_string(), sha256_id(&b));
        assert_ne!(ia.id, ib.id);
        assert_eq!(store.unpack_count(), 2);
        assert_eq!(
            fs::read(store.layer_path(&ib.id).join("b")).unwrap(),
            b"SAME SIZE"
        );

        // A two-member gzip of a stored layer: its ISIZE trailer (last member only) does not
        // match, so it is unpacked in one pass, found to be stored, and the copy discarded.
        let (first, second) = a.split_at(512);
        let mut gz = Vec::new();
        for part in [first, second] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            gz.extend(e.finish().unwrap());
        }
        let pg = t.join("a.tar.gz");
        fs::write(&pg, &gz).unwrap();
        let ino_before = ino(&store.layer_path(&ia.id));
        let again = store.import_layer(LayerSource::Tar(pg)).unwrap();
        assert_eq!(again, ia);
        assert_eq!(store.unpack_count(), 3, "a probe miss costs an unpack");
        assert_eq!(ino(&store.layer_path(&ia.id)), ino_before);
        assert_eq!(store.layers().unwrap().len(), 2);
        assert!(listing(&store.root().join("tmp")).is_empty());
    });
}

/// An xattr the filesystem refuses (an unknown namespace) fails the import with an error that names
/// the attribute and the entry, and stores nothing.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn an_xattr_that_cannot_be_set_is_named_in_the_error() {
    mountkit_testutil::require_root();
    with_store(|_, store| {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.nosuchns.attr", &b"v"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("conf").unwrap();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let err = store
            .import_layer(LayerSource::Reader(Box::new(std::io::Cursor::new(tar))))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Xattr { .. }), "{text}");
        assert!(text.contains("nosuchns.attr") && text.contains("conf"), "{text}");
        assert!(store.layers().unwrap().is_empty());
        assert_eq!(listing(&store.root().join("tmp")), Vec::<String>::new());
    });
}
