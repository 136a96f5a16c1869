//! Canonical tar determinism (no privileges needed).

mod common;

use std::fs;

use mountkit_layer_store::canonical_tar;

fn id_of(dir: &std::path::Path) -> String {
    let mut out = Vec::new();
    canonical_tar(dir, &mut out).unwrap();
    common::sha256_id(&out)
}

fn make_tree(root: &std::path::Path) {
    fs::create_dir_all(root.join("b/c")).unwrap();
    fs::write(root.join("b/c/file"), b"content").unwrap();
    fs::write(root.join("a"), b"aaa").unwrap();
    fs::write(root.join(format!("long-{}", "n".repeat(150))), b"long name").unwrap();
    std::os::unix::fs::symlink("b/c/file", root.join("link")).unwrap();
    // A symlink's own mtime is part of the stream: pin it too (two trees made a second apart differ).
    let st = std::process::Command::new("touch")
        .args(["-h", "-d", "@1600000000"])
        .arg(root.join("link"))
        .status();
    assert!(st.unwrap().success(), "touch -h");
    fs::hard_link(root.join("a"), root.join("z-hard")).unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    for p in ["a", "b/c/file", "b/c", "b", &format!("long-{}", "n".repeat(150))] {
        fs::File::options()
            .read(true)
            .open(root.join(p))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
}

#[test]
fn same_tree_same_stream_and_content_change_changes_it() {
    let t1 = tempfile::tempdir().unwrap();
    let t2 = tempfile::tempdir().unwrap();
    make_tree(t1.path());
    make_tree(t2.path());
    let id1 = id_of(t1.path());
    assert_eq!(id1, id_of(t1.path()), "same tree twice");
    assert_eq!(id1, id_of(t2.path()), "an identical tree made separately");

    let mut out = Vec::new();
    canonical_tar(t1.path(), &mut out).unwrap();
    let names = common::member_names(&out);
    let long = format!("long-{}", "n".repeat(150));
    assert_eq!(
        names,
        ["a", "b/", "b/c/", "b/c/file", "link", long.as_str(), "z-hard"],
        "sorted, parents first"
    );
    let mut ar = tar::Archive::new(&out[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.username_bytes(), Some(&b""[..]), "uname empty");
        if e.path_bytes().as_ref() == b"z-hard" {
            assert_eq!(h.entry_type(), tar::EntryType::Link);
            assert_eq!(e.link_name_bytes().unwrap().as_ref(), b"a");
        }
    }

    // Same size, same mtime, different content: a different ID.
    let f = t2.path().join("b/c/file");
    let m = fs::metadata(&f).unwrap().modified().unwrap();
    fs::write(&f, b"CONTENT").unwrap();
    fs::File::options()
        .read(true)
        .open(&f)
        .unwrap()
        .set_modified(m)
        .unwrap();
    assert_ne!(id1, id_of(t2.path()));
}

#[test]
fn whiteout_files_in_a_directory_become_whiteout_members() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("d")).unwrap();
    fs::write(t.path().join("d/.wh..wh..opq"), b"").unwrap();
    fs::write(t.path().join(".wh.gone"), b"ignored content").unwrap();
    let mut out = Vec::new();
    canonical_tar(t.path(), &mut out).unwrap();
    assert_eq!(common::member_names(&out), [".wh.gone", "d/", "d/.wh..wh..opq"]);
    let mut ar = tar::Archive::new(&out[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        if e.path_bytes().starts_with(b".wh.") || e.path_bytes().ends_with(b".opq") {
            assert_eq!(e.size(), 0, "whiteouts carry no data");
        }
    }
}

#[test]
fn a_tree_deeper_than_the_open_descriptors_allow_is_archived() {
    // The walk keeps the directories of its path open only so deep; below, it reopens them by path.
    // With 160 descriptors allowed, a 300-deep tree shows it (restored after: the test binary's other
    // tests run meanwhile, and need a few).
    use rustix::process::{Resource, getrlimit, setrlimit};
    let t = tempfile::tempdir().unwrap();
    let mut deep = t.path().to_path_buf();
    let mut names = Vec::new();
    let mut rel = String::new();
    for i in 0..300 {
        deep.push("d");
        rel.push_str("d/");
        names.push(rel.clone());
        if i % 50 == 0 {
            fs::create_dir_all(&deep).unwrap();
            fs::write(deep.join("e"), format!("{i}")).unwrap();
            names.push(format!("{rel}e"));
        }
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f"), b"bottom").unwrap();
    names.push(format!("{rel}f"));
    names.sort_by(|a, b| {
        // Member order: depth first, children sorted by name ("d" < "e", "d" < "f").
        a.split('/')
            .collect::<Vec<_>>()
            .cmp(&b.split('/').collect::<Vec<_>>())
    });
    let was = getrlimit(Resource::Nofile);
    let low = rustix::process::Rlimit {
        current: Some(160),
        maximum: was.maximum,
    };
    setrlimit(Resource::Nofile, low).unwrap();
    // The walk recurses once per level: a debug build's frames need more than a test thread's 2 MiB.
    let root = t.path().to_path_buf();
    let r = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let mut out = Vec::new();
            canonical_tar(&root, &mut out).map(|_| out)
        })
        .unwrap()
        .join()
        .unwrap();
    setrlimit(Resource::Nofile, was).unwrap();
    assert_eq!(common::member_names(&r.unwrap()), names);
}

#[test]
fn file_data_across_the_output_buffer_is_whole() {
    // Small and large files around the writer's 1 MiB buffer: every byte where the header says.
    let t = tempfile::tempdir().unwrap();
    let sizes = [
        0usize,
        1,
        511,
        512,
        513,
        4096,
        (1 << 20) - 700,
        (1 << 20) + 1,
        3 * (1 << 20) + 7,
        100,
    ];
    let mut expected = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|k| (k * 31 + i * 7) as u8).collect();
        let name = format!("f{i:02}");
        fs::write(t.path().join(&name), &data).unwrap();
        expected.push((name, data));
    }
    let mut out = Vec::new();
    canonical_tar(t.path(), &mut out).unwrap();
    assert_eq!(out.len() % 512, 0);
    let mut ar = tar::Archive::new(&out[..]);
    let mut got = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        got.push((name, data));
    }
    assert!(got == expected, "file data differs after the round trip");
}
