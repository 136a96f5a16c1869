//! OCI import/save against the reference tools (umoci, skopeo), as root, in a private mount
//! namespace. Tests print "SKIP <test>: ..." when a tool is missing.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::with_store;
use mountkit_layer_store::oci::{self, ArchiveFormat, ImportOptions, Progress};
use mountkit_layer_store::{Error, ImageInfo, Store};
use serde_json::json;
use sha2::{Digest, Sha256};

fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIP {test}: {tool} not installed");
    }
    ok
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Builds an image with umoci at `<dir>/L:t`: files, a symlink, a hard link, owners and modes;
/// a second layer deleting a file (whiteout) and a third, hand-made layer with an opaque directory.
fn umoci_image(dir: &Path) -> PathBuf {
    let l = dir.join("L");
    let b = dir.join("B");
    let img = format!("{}:t", s(&l));
    run(&["umoci", "init", "--layout", s(&l)]);
    run(&["umoci", "new", "--image", &img]);
    run(&["umoci", "unpack", "--image", &img, s(&b)]);
    let r = b.join("rootfs");
    fs::create_dir_all(r.join("etc/sub")).unwrap();
    fs::create_dir_all(r.join("opq/deep")).unwrap();
    fs::write(r.join("etc/conf"), b"key=value\n").unwrap();
    fs::write(r.join("etc/gone"), b"to be deleted\n").unwrap();
    fs::write(r.join("opq/old"), b"hidden by the opaque layer\n").unwrap();
    fs::write(r.join("opq/deep/x"), b"also hidden\n").unwrap();
    fs::write(r.join("big"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("/etc/conf", r.join("link")).unwrap();
    fs::hard_link(r.join("etc/conf"), r.join("etc/conf-hard")).unwrap();
    std::os::unix::fs::lchown(r.join("etc/conf"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(r.join("link"), Some(42), Some(43)).unwrap();
    fs::set_permissions(
        r.join("etc/sub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    run(&["umoci", "repack", "--image", &img, s(&b)]);
    // A repack is relative to the bundle's base: unpack again for the second layer.
    let b = dir.join("B2");
    let r = b.join("rootfs");
    run(&["umoci", "unpack", "--image", &img, s(&b)]);
    fs::remove_file(r.join("etc/gone")).unwrap();
    fs::write(r.join("etc/new"), b"second layer\n").unwrap();
    run(&["umoci", "repack", "--image", &img, s(&b)]);
    // Third layer: made by hand, with an opaque directory marker.
    let t = dir.join("opq.tar");
    {
        let mut tb = tar::Builder::new(fs::File::create(&t).unwrap());
        let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(data.len() as u64);
            h.set_mtime(1_600_000_000);
            h.set_path(name).unwrap();
            h.set_cksum();
            tb.append(&h, data).unwrap();
        };
        add("opq/", tar::EntryType::Directory, 0o755, b"");
        add("opq/.wh..wh..opq", tar::EntryType::Regular, 0o644, b"");
        add(
            "opq/fresh",
            tar::EntryType::Regular,
            0o600,
            b"after the opaque marker\n",
        );
        tb.finish().unwrap();
    }
    run(&["umoci", "raw", "add-layer", "--image", &img, s(&t)]);
    run(&[
        "umoci",
        "config",
        "--image",
        &img,
        "--config.volume",
        "/data",
        "--config.user",
        "1000:1000",
        "--config.env",
        "A=1",
        "--config.env",
        "PATH=/bin",
        "--config.cmd",
        "/bin/sh",
        "--config.entrypoint",
        "/init",
        "--config.workingdir",
        "/srv",
        "--config.label",
        "k=v",
    ]);
    l
}

/// What a tree holds: path -> (type, mode, uid, gid, size, content/target, hard-link siblings).
type Tree = BTreeMap<String, (char, u32, u32, u32, u64, Vec<u8>, Vec<String>)>;

fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut Tree, inodes: &mut BTreeMap<u64, Vec<String>>) {
        let mut ents: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        ents.sort();
        for p in ents {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let (kind, data) = if ft.is_dir() {
                ('d', Vec::new())
            } else if ft.is_symlink() {
                (
                    'l',
                    fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes(),
                )
            } else if ft.is_file() {
                if m.nlink() > 1 {
                    inodes.entry(m.ino()).or_default().push(rel.clone());
                }
                ('f', fs::read(&p).unwrap())
            } else if ft.is_char_device() {
                ('c', Vec::new())
            } else {
                ('o', Vec::new())
            };
            let size = if kind == 'd' { 0 } else { m.len() };
            out.insert(
                rel,
                (kind, m.mode() & 0o7777, m.uid(), m.gid(), size, data, Vec::new()),
            );
            if ft.is_dir() {
                walk(root, &p, out, inodes);
            }
        }
    }
    walk(root, root, &mut out, &mut inodes);
    for group in inodes.values() {
        for p in group {
            out.get_mut(p).unwrap().6 = group.clone();
        }
    }
    out
}

/// The image's layers stacked with overlayfs (read-only), as a tree.
fn merged(store: &Store, image: &ImageInfo, at: &Path) -> Tree {
    let lower: Vec<String> = image
        .layers
        .iter()
        .rev()
        .map(|l| store.layer_path(l).to_string_lossy().into_owned())
        .collect();
    fs::create_dir_all(at).unwrap();
    let opts = if lower.len() == 1 {
        // One lowerdir needs a second one: add an empty layer.
        let empty = at.with_extension("empty");
        fs::create_dir_all(&empty).unwrap();
        format!("lowerdir={}:{}", lower[0], s(&empty))
    } else {
        format!("lowerdir={}", lower.join(":"))
    };
    run(&["mount", "-t", "overlay", "overlay", "-o", &opts, s(at)]);
    let t = tree(at);
    run(&["umount", s(at)]);
    t
}

fn umoci_tree(layout: &Path, tag: &str, bundle: &Path) -> Tree {
    run(&[
        "umoci",
        "unpack",
        "--image",
        &format!("{}:{tag}", s(layout)),
        s(bundle),
    ]);
    tree(&bundle.join("rootfs"))
}

fn assert_same(ours: &Tree, theirs: &Tree) {
    for (k, v) in theirs {
        assert_eq!(ours.get(k), Some(v), "path {k:?} differs");
    }
    for k in ours.keys() {
        assert!(theirs.contains_key(k), "extra path {k:?}");
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn umoci_layout_imports_like_umoci_unpack() {
    mountkit_testutil::require_root();
    let name = "umoci_layout_imports_like_umoci_unpack";
    if !have("umoci", name) {
        return;
    }
    with_store(|tmp, store| {
        let layout = umoci_image(tmp);
        let mut seen: Vec<Progress> = Vec::new();
        let mut cb = |p: Progress| seen.push(p);
        let img = oci::import(
            store,
            &PathBuf::from(format!("{}:t", s(&layout))),
            ImportOptions {
                progress: Some(&mut cb),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(img.name.as_deref(), Some("t"));
        assert_eq!(img.layers.len(), 3);
        let c = &img.config;
        assert_eq!(c.volumes, vec!["/data"]);
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.workdir.as_deref(), Some("/srv"));
        assert_eq!(c.env, vec!["A=1", "PATH=/bin"]);
        assert_eq!(c.entrypoint, Some(vec!["/init".to_string()]));
        assert_eq!(c.cmd, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        let last = seen.last().expect("progress was reported");
        assert_eq!((last.layer, last.layers, last.bytes), (3, 3, last.total));
        assert!(seen.windows(2).all(|w| w[0].bytes <= w[1].bytes));

        let ours = merged(store, &img, &tmp.join("mnt"));
        let theirs = umoci_tree(&layout, "t", &tmp.join("ref"));
        assert!(theirs.contains_key("opq/fresh") && !theirs.contains_key("opq/old"));
        assert!(!theirs.contains_key("etc/gone") && theirs.contains_key("etc/new"));
        assert_eq!(theirs["etc/conf"].6, vec!["etc/conf", "etc/conf-hard"]);
        assert_same(&ours, &theirs);

        // Same image again, from an oci-archive, under another name: nothing is unpacked again.
        let archive = tmp.join("l.tar");
        run(&["tar", "-C", s(&layout), "-cf", s(&archive), "."]);
        let unpacks = store.unpack_count();
        let again = oci::import(
            store,
            &archive,
            ImportOptions {
                tag: Some("copy:1".into()),
                reference: Some("t".into()),
                progress: None,
            },
        )
        .unwrap();
        assert_eq!(store.unpack_count(), unpacks);
        assert_eq!(
            (again.id.as_str(), again.name.as_deref()),
            (img.id.as_str(), Some("copy:1"))
        );
        // Re-importing under the same name returns the same image.
        let third = oci::import(store, &archive, ImportOptions::default()).unwrap();
        assert_eq!(third.id, img.id);
        assert_eq!(store.images().unwrap().len(), 2);
        // A reference that is not there.
        let e = oci::import(
            store,
            &PathBuf::from(format!("{}:nope", s(&layout))),
            ImportOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn save_is_accepted_by_skopeo_and_umoci() {
    mountkit_testutil::require_root();
    let name = "save_is_accepted_by_skopeo_and_umoci";
    if !have("umoci", name) || !have("skopeo", name) {
        return;
    }
    with_store(|tmp, store| {
        let layout = umoci_image(tmp);
        let img = oci::import(store, &layout, ImportOptions::default()).unwrap();
        let theirs = umoci_tree(&layout, "t", &tmp.join("ref"));

        let out = tmp.join("out");
        oci::save(store, "t", &out, ArchiveFormat::Oci).unwrap();
        let inspect = Command::new("skopeo")
            .args(["inspect", &format!("oci:{}:t", s(&out))])
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 3);
        assert_eq!(v["Os"], "linux");
        assert_same(&umoci_tree(&out, "t", &tmp.join("ref2")), &theirs);
        // skopeo copies it (and reads every blob).
        run(&[
            "skopeo",
            "copy",
            &format!("oci:{}:t", s(&out)),
            &format!("oci:{}:t", s(&tmp.join("copy"))),
        ]);

        // oci-archive and docker-archive round trips into a fresh store.
        for (fmt, file, want_name) in [
            (ArchiveFormat::OciArchive, "o.tar", "t"),
            (ArchiveFormat::DockerArchive, "d.tar", "t:latest"),
        ] {
            let f = tmp.join(file);
            oci::save(store, &img.id, &f, fmt).unwrap();
            let s2 = Store::open(tmp.join(format!("store-{file}"))).unwrap();
            let back = oci::import(&s2, &f, ImportOptions::default()).unwrap();
            assert_eq!(back.name.as_deref(), Some(want_name));
            assert_eq!(back.config, img.config);
            assert_same(&merged(&s2, &back, &tmp.join(format!("mnt-{file}"))), &theirs);
        }
        let d = tmp.join("d.tar");
        let inspect = Command::new("skopeo")
            .args(["inspect", &format!("docker-archive:{}", s(&d))])
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn skopeo_docker_archive_imports() {
    mountkit_testutil::require_root();
    let name = "skopeo_docker_archive_imports";
    if !have("umoci", name) || !have("skopeo", name) {
        return;
    }
    mountkit_testutil::in_mount_ns(|| {
        let tmp = tempfile::tempdir().unwrap();
        let layout = umoci_image(tmp.path());
        let x = tmp.path().join("x.tar");
        run(&[
            "skopeo",
            "copy",
            &format!("oci:{}:t", s(&layout)),
            &format!("docker-archive:{}:app:v1", s(&x)),
        ]);
        let store = Store::open(tmp.path().join("store")).unwrap();
        let img = oci::import(&store, &x, ImportOptions::default()).unwrap();
        assert_eq!(
            img.name.as_deref(),
            Some("app:v1"),
            "docker.io/library/ is dropped, as docker shows it"
        );
        assert_eq!(img.config.volumes, vec!["/data"]);
        let theirs = umoci_tree(&layout, "t", &tmp.path().join("ref"));
        assert_same(&merged(&store, &img, &tmp.path().join("mnt")), &theirs);
    });
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tb = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_mtime(1);
        h.set_path(name).unwrap();
        h.set_cksum();
        tb.append(&h, *data).unwrap();
    }
    tb.into_inner().unwrap()
}

fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["X=1"], "Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2026-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:a in /"},
            {"created_by": "/bin/sh -c #(nop) ENV X=1", "empty_layer": true},
            {"created_by": "/bin/sh -c echo two > /second", "comment": "step 3"}
        ]
    }))
    .unwrap()
}

/// A docker-archive made by hand, in the old `<id>/layer.tar` style.
fn docker_archive(path: &Path, layers: &[Vec<u8>], diff_ids: &[String]) {
    let config = config_json(diff_ids);
    let config_name = format!("{}.json", &sha(&config)[7..]);
    let mut tb = tar::Builder::new(fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_path(name).unwrap();
        h.set_cksum();
        tb.append(&h, data).unwrap();
    };
    let names: Vec<String> = (0..layers.len()).map(|i| format!("l{i}/layer.tar")).collect();
    let manifest = serde_json::to_vec(&json!([
        {"Config": config_name, "RepoTags": ["hand:made"], "Layers": names}
    ]))
    .unwrap();
    add("manifest.json", &manifest);
    add(&config_name, &config);
    for (n, l) in names.iter().zip(layers) {
        add(n, l);
    }
    tb.finish().unwrap();
}

/// An OCI layout made by hand: `layers` are (blob bytes, media type, diff_id).
fn oci_layout(dir: &Path, layers: &[(Vec<u8>, &str, String)]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        fs::write(blobs.join(&d[7..]), data).unwrap();
        d
    };
    let diff_ids: Vec<String> = layers.iter().map(|l| l.2.clone()).collect();
    let config = config_json(&diff_ids);
    let cd = put(&config);
    let descs: Vec<_> = layers
        .iter()
        .map(|(b, mt, _)| json!({"mediaType": mt, "size": b.len(), "digest": put(b)}))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": cd},
        "layers": descs
    }))
    .unwrap();
    let md = put(&manifest);
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": manifest.len(), "digest": md,
        "annotations": {"org.opencontainers.image.ref.name": "hand"}
    }]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn hand_made_archives_import() {
    mountkit_testutil::require_root();
    with_store(|tmp, store| {
        let l0 = layer_tar(&[("hello", b"hi\n")]);
        let l1 = layer_tar(&[("second", b"two\n")]);
        let d = tmp.join("d.tar");
        docker_archive(&d, &[l0.clone(), l1.clone()], &[sha(&l0), sha(&l1)]);
        let img = oci::import(
            store,
            &PathBuf::from(format!("{}:hand:made", s(&d))),
            ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(img.name.as_deref(), Some("hand:made"));
        assert_eq!(img.config.cmd, Some(vec!["/hello".to_string()]));
        assert_eq!(img.config.env, vec!["X=1"]);
        // The build history comes along: the steps that made a layer map onto the layers, in order.
        let made: Vec<Option<&str>> = img
            .config
            .layer_history(2)
            .iter()
            .map(|h| h.and_then(|h| h.created_by.as_deref()))
            .collect();
        assert_eq!(
            made,
            [
                Some("/bin/sh -c #(nop) ADD file:a in /"),
                Some("/bin/sh -c echo two > /second")
            ]
        );
        assert_eq!(img.config.history.len(), 3);
        // ... and survives a save and an import again.
        let saved = tmp.join("saved");
        oci::save(store, &img.id, &saved, ArchiveFormat::Oci).unwrap();
        let again = oci::import(
            store,
            &saved,
            ImportOptions {
                tag: Some("again".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(again.config.history, img.config.history);
        assert_eq!(
            fs::read(store.layer_path(&img.layers[0]).join("hello")).unwrap(),
            b"hi\n"
        );
        assert_eq!(
            fs::read(store.layer_path(&img.layers[1]).join("second")).unwrap(),
            b"two\n"
        );

        // gzip and zstd layers in an OCI layout; a --tag overrides the ref name.
        let l2 = layer_tar(&[("z", b"zstd\n")]);
        let lay = tmp.join("lay");
        oci_layout(
            &lay,
            &[
                (gzip(&l0), "application/vnd.oci.image.layer.v1.tar+gzip", sha(&l0)),
                (
                    zstd::encode_all(&l2[..], 3).unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                    sha(&l2),
                ),
            ],
        );
        let img2 = oci::import(
            store,
            &lay,
            ImportOptions {
                tag: Some("mine".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(img2.name.as_deref(), Some("mine"));
        assert_eq!(img2.layers[0], img.layers[0], "same content, same layer");
        assert_eq!(
            fs::read(store.layer_path(&img2.layers[1]).join("z")).unwrap(),
            b"zstd\n"
        );
    });
}

/// Runs a failing import and checks the error names `blob`, and the store did not change.
fn fails(store: &Store, path: &Path, blob: &str) -> Error {
    let images = store.images().unwrap();
    let layers = store.layers().unwrap();
    let e = oci::import(store, path, ImportOptions::default()).unwrap_err();
    assert!(e.to_string().contains(blob), "error {e} does not name {blob}");
    assert_eq!(store.images().unwrap(), images, "an image was recorded");
    assert_eq!(store.layers().unwrap(), layers, "layers were left behind");
    e
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn bad_images_store_nothing() {
    mountkit_testutil::require_root();
    with_store(|tmp, store| {
        let good = layer_tar(&[("a", b"fine\n")]);
        let other = layer_tar(&[("b", b"other\n")]);

        // Wrong diff_id for the second layer (the first one imports fine and must go again).
        let d = tmp.join("d.tar");
        docker_archive(&d, &[good.clone(), other.clone()], &[sha(&good), sha(b"not it")]);
        let e = fails(store, &d, "l1/layer.tar");
        assert!(e.to_string().contains("diff_ids"), "{e}");

        // A corrupted layer blob (one byte flipped after the layout was written).
        let lay = tmp.join("corrupt");
        oci_layout(
            &lay,
            &[
                (good.clone(), "application/vnd.oci.image.layer.v1.tar", sha(&good)),
                (
                    other.clone(),
                    "application/vnd.oci.image.layer.v1.tar",
                    sha(&other),
                ),
            ],
        );
        let blob = lay.join("blobs/sha256").join(&sha(&other)[7..]);
        let mut bytes = fs::read(&blob).unwrap();
        bytes[600] ^= 1;
        fs::write(&blob, &bytes).unwrap();
        let e = fails(store, &lay, &sha(&other));
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        assert!(!e.to_string().contains("not a valid tar"), "{e}");

        // A manifest pointing at a missing blob.
        fs::remove_file(&blob).unwrap();
        let e = fails(store, &lay, &sha(&other));
        assert!(e.to_string().contains("missing"), "{e}");

        // A truncated gzip layer (its descriptor matches the truncated bytes).
        let gz = gzip(&other);
        let cut = gz[..gz.len() / 2].to_vec();
        let lay2 = tmp.join("trunc");
        oci_layout(
            &lay2,
            &[
                (good.clone(), "application/vnd.oci.image.layer.v1.tar", sha(&good)),
                (
                    cut.clone(),
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    sha(&other),
                ),
            ],
        );
        let e = fails(store, &lay2, &sha(&cut));
        eprintln!("truncated gzip: {e}");

        // A corrupted config is caught before any layer is read.
        let lay3 = tmp.join("cfg");
        oci_layout(
            &lay3,
            &[(good.clone(), "application/vnd.oci.image.layer.v1.tar", sha(&good))],
        );
        let cfg = config_json(&[sha(&good)]);
        fs::write(
            lay3.join("blobs/sha256").join(&sha(&cfg)[7..]),
            config_json(&[sha(&other)]),
        )
        .unwrap();
        let e = fails(store, &lay3, &sha(&cfg));
        assert!(e.to_string().contains("config"), "{e}");

        // Layers that were in the store before a failed import stay.
        let ok = tmp.join("ok.tar");
        docker_archive(&ok, std::slice::from_ref(&good), &[sha(&good)]);
        oci::import(store, &ok, ImportOptions::default()).unwrap();
        store.remove_image("hand:made").unwrap();
        let e = fails(store, &d, "l1/layer.tar");
        assert!(e.to_string().contains("diff_ids"), "{e}");
        assert_eq!(store.layers().unwrap().len(), 1);
    });
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn index_selection_by_platform_and_name() {
    mountkit_testutil::require_root();
    with_store(|tmp, store| {
        let amd = layer_tar(&[("arch", b"amd64\n")]);
        let arm = layer_tar(&[("arch", b"arm64\n")]);
        let other = layer_tar(&[("other", b"x\n")]);
        let lay = tmp.join("lay");
        // Start from a one-image layout, then rebuild index.json: a nested index "multi" with an
        // arm64 and an amd64 manifest, plus a second image "other".
        let manifest_of = |dir: &Path, layer: &[u8]| -> serde_json::Value {
            oci_layout(
                dir,
                &[(
                    layer.to_vec(),
                    "application/vnd.oci.image.layer.v1.tar",
                    sha(layer),
                )],
            );
            let idx: serde_json::Value =
                serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
            idx["manifests"][0].clone()
        };
        let m_amd = manifest_of(&lay, &amd);
        let m_arm = manifest_of(&lay, &arm);
        let m_other = manifest_of(&lay, &other);
        let plat = |mut m: serde_json::Value, arch: &str| {
            m.as_object_mut().unwrap().remove("annotations");
            m["platform"] = json!({"architecture": arch, "os": "linux"});
            m
        };
        let nested = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [plat(m_arm, "arm64"), plat(m_amd, "amd64")]
        }))
        .unwrap();
        let nd = sha(&nested);
        fs::write(lay.join("blobs/sha256").join(&nd[7..]), &nested).unwrap();
        let mut m_other = m_other;
        m_other["annotations"]["org.opencontainers.image.ref.name"] = json!("other");
        let index = json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json", "size": nested.len(), "digest": nd,
             "annotations": {"org.opencontainers.image.ref.name": "multi"}},
            m_other
        ]});
        fs::write(lay.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

        let e = oci::import(store, &lay, ImportOptions::default()).unwrap_err();
        assert!(e.to_string().contains("several images"), "{e}");
        assert!(store.images().unwrap().is_empty());
        let img = oci::import(
            store,
            &PathBuf::from(format!("{}:multi", s(&lay))),
            ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(img.name.as_deref(), Some("multi"));
        let want: &[u8] = if std::env::consts::ARCH == "aarch64" {
            b"arm64\n"
        } else {
            b"amd64\n"
        };
        assert_eq!(
            fs::read(store.layer_path(&img.layers[0]).join("arch")).unwrap(),
            want
        );
        let o = oci::import(
            store,
            &lay,
            ImportOptions {
                reference: Some("other".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(o.name.as_deref(), Some("other"));
    });
}
