//! A newc (`070701`) cpio writer for the guest's initramfs, and a reader used by the tests.
//!
//! Entries are kept in a sorted map so a directory always precedes its contents; missing parent
//! directories are created (mode 0755). Owner is root, mtime 0 (reproducible archives).

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory with its permission bits.
    Dir(u32),
    /// A regular file: permission bits and contents.
    File(u32, Vec<u8>),
    /// A symbolic link and its target.
    Symlink(String),
}

/// An in-memory tree of archive members keyed by path (relative, no leading `/`).
#[derive(Debug, Default)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

fn norm(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `path`, creating missing parent directories.
    ///
    /// Fails if a parent of `path` is already a file or a symlink (the archive would be ambiguous).
    pub fn add(&mut self, path: &str, entry: Entry) -> Result<()> {
        let path = norm(path);
        if path.is_empty() {
            bail!("cpio: empty member path");
        }
        let comps: Vec<&str> = path.split('/').collect();
        for i in 1..comps.len() {
            let parent = comps[..i].join("/");
            match self.entries.get(&parent) {
                None => {
                    self.entries.insert(parent, Entry::Dir(0o755));
                }
                Some(Entry::Dir(_)) => {}
                Some(other) => {
                    bail!("cpio: cannot add {path:?}: parent {parent:?} is {other:?}, not a directory")
                }
            }
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// True when `path` is in the tree.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&norm(path))
    }

    /// Serializes the tree as an uncompressed newc archive (with the `TRAILER!!!` member).
    pub fn to_newc(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (mode, data, nlink): (u32, &[u8], u32) = match entry {
                Entry::Dir(m) => (0o040000 | (m & 0o7777), &[], 2),
                Entry::File(m, d) => (0o100000 | (m & 0o7777), d, 1),
                Entry::Symlink(t) => (0o120777, t.as_bytes(), 1),
            };
            write_member(&mut out, ino as u32 + 1, mode, nlink, path, data);
        }
        write_member(&mut out, 0, 0, 1, "TRAILER!!!", &[]);
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_member(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

#[cfg(test)]
/// Reads a newc archive back into `(path, entry)` pairs in archive order (stops at `TRAILER!!!`).
pub fn parse_newc(mut buf: &[u8]) -> Result<Vec<(String, Entry)>> {
    let total = buf.len();
    let mut out = Vec::new();
    loop {
        let at = total - buf.len();
        if buf.len() < 110 || &buf[..6] != b"070701" {
            bail!("cpio: bad newc header at offset {at}");
        }
        let field = |i: usize| -> Result<u32> {
            let s = std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i])?;
            Ok(u32::from_str_radix(s, 16)?)
        };
        let mode = field(1)?;
        let size = field(6)? as usize;
        let namesize = field(11)? as usize;
        let name_end = 110 + namesize;
        if namesize == 0 || buf.len() < name_end {
            bail!("cpio: truncated name at offset {at}");
        }
        let name = std::str::from_utf8(&buf[110..name_end - 1])?.to_string();
        let data_start = name_end.div_ceil(4) * 4;
        let data_end = data_start + size;
        if buf.len() < data_end {
            bail!("cpio: truncated data for {name:?}");
        }
        let data = buf[data_start..data_end].to_vec();
        buf = &buf[(data_end.div_ceil(4) * 4).min(buf.len())..];
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        let entry = match mode & 0o170000 {
            0o040000 => Entry::Dir(mode & 0o7777),
            0o100000 => Entry::File(mode & 0o7777, data),
            0o120000 => Entry::Symlink(String::from_utf8(data)?),
            other => bail!("cpio: unsupported file type {other:o} for {name:?}"),
        };
        out.push((name, entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut t = Tree::new();
        t.add("/init", Entry::File(0o755, b"#!/bin/sh\necho hi\n".to_vec()))
            .unwrap();
        t.add("usr/bin/busybox", Entry::File(0o755, vec![7; 1001]))
            .unwrap();
        t.add("bin", Entry::Symlink("usr/bin".into())).unwrap();
        t.add("etc/vmt-modules", Entry::File(0o644, b"loop\n".to_vec()))
            .unwrap();
        t.add("tmp", Entry::Dir(0o1777)).unwrap();
        t
    }

    /// The archive's entries in its order: parents made implicitly, sorted, without the leading `/`.
    const SAMPLE_NAMES: [&str; 8] = [
        "bin",
        "etc",
        "etc/vmt-modules",
        "init",
        "tmp",
        "usr",
        "usr/bin",
        "usr/bin/busybox",
    ];

    #[test]
    fn round_trip_through_parser() {
        let t = sample();
        let parsed = parse_newc(&t.to_newc()).unwrap();
        let names: Vec<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, SAMPLE_NAMES);
        assert_eq!(parsed[0].1, Entry::Symlink("usr/bin".into()));
        assert_eq!(parsed[4].1, Entry::Dir(0o1777));
        assert_eq!(parsed[7].1, Entry::File(0o755, vec![7; 1001]));
        assert_eq!(t.to_newc().len() % 4, 0);
    }

    #[test]
    fn parent_must_be_a_directory() {
        let mut t = sample();
        let err = t.add("bin/sh", Entry::Symlink("busybox".into())).unwrap_err();
        assert!(err.to_string().contains("\"bin\""), "{err}");
    }

    #[test]
    fn round_trip_through_busybox_cpio() {
        let Some(bb) = super::super::host::which("busybox") else {
            println!("SKIP round_trip_through_busybox_cpio: no busybox on this host");
            return;
        };
        let dir = std::env::temp_dir().join(format!("vmt-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let archive = dir.join("a.cpio");
        std::fs::write(&archive, sample().to_newc()).unwrap();
        let out = std::process::Command::new(bb)
            .args(["cpio", "-t", "-F"])
            .arg(&archive)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "busybox cpio -t: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = String::from_utf8(out.stdout).unwrap();
        assert_eq!(listed.lines().collect::<Vec<_>>(), SAMPLE_NAMES);
    }
}
