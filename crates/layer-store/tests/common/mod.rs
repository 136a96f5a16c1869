//! Helpers shared by the layer-store integration tests.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// Runs `body` in its own mount namespace ([`mountkit_testutil::in_mount_ns`]) with a temp dir and a
/// store opened at `<dir>/store`.
pub fn with_store(body: impl FnOnce(&Path, &mountkit_layer_store::Store)) {
    mountkit_testutil::in_mount_ns(|| {
        let t = tempfile::tempdir().unwrap();
        let store = mountkit_layer_store::Store::open(t.path().join("store")).unwrap();
        body(t.path(), &store)
    });
}

/// One hand-made tar member (names written raw, so hostile names are possible).
pub struct Raw<'a> {
    pub name: &'a str,
    pub ty: EntryType,
    pub link: Option<&'a str>,
    pub data: &'a [u8],
    pub mode: u32,
}

pub fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        ty: EntryType::Regular,
        link: None,
        data,
        mode: 0o644,
    }
}
pub fn dir(name: &str) -> Raw<'_> {
    Raw {
        name,
        ty: EntryType::Directory,
        link: None,
        data: b"",
        mode: 0o755,
    }
}
pub fn symlink<'a>(name: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        ty: EntryType::Symlink,
        link: Some(target),
        data: b"",
        mode: 0o777,
    }
}
pub fn hardlink<'a>(name: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        ty: EntryType::Link,
        link: Some(target),
        data: b"",
        mode: 0o644,
    }
}

/// A tar stream of `entries`, names and link names written byte for byte.
pub fn tar_bytes(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = Header::new_ustar();
        h.set_entry_type(e.ty);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(e.data.len() as u64);
        let name = e.name.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = e.link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend([0u8; 1024]);
    out
}

pub fn sha256_id(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Sorted names in a directory.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn ino(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().ino()
}

/// Member names of a tar stream.
pub fn member_names(data: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(data);
    ar.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}
