//! Container names: validation, Docker-style generation, and the name index (`<root>/container-names/`).

use std::path::PathBuf;

use crate::{Error, Mountkit, Result};

/// Longest container name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (Docker's rule), at most 128 characters, and
/// not 64 hex digits (which would be mistaken for an ID).
pub fn validate_container_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 128 characters");
    }
    let first = name.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return bad("it must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed (no '/', no spaces)");
    }
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad("64 hex digits would be mistaken for a container ID");
    }
    Ok(())
}

const LEFT: &[&str] = &[
    "admiring", "bold", "brave", "calm", "clever", "eager", "elegant", "focused", "gentle", "happy", "jolly",
    "keen", "kind", "lucid", "modest", "nifty", "patient", "quirky", "serene", "sharp", "stoic", "tender",
    "trusting", "vibrant", "wizardly", "zealous",
];
const RIGHT: &[&str] = &[
    "babbage", "bohr", "curie", "darwin", "euler", "fermi", "galois", "hopper", "hypatia", "kepler",
    "lamport", "lovelace", "meitner", "noether", "pascal", "ritchie", "shannon", "thompson", "torvalds",
    "turing", "wing", "wozniak",
];

/// A random `adjective_scientist` name, as Docker makes; `taken` says which names to avoid (a numeric
/// suffix is added after a few collisions).
pub fn generate_name(taken: &dyn Fn(&str) -> bool) -> String {
    for attempt in 0.. {
        let r = mountkit_safefs::random_hex(4);
        let n = u32::from_str_radix(&r, 16).unwrap_or(0) as usize;
        let mut name = format!(
            "{}_{}",
            LEFT[n % LEFT.len()],
            RIGHT[(n / LEFT.len()) % RIGHT.len()]
        );
        if attempt >= 5 {
            name.push_str(&format!("{}", n % 100));
        }
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop returns")
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A container ID (64 hex digits) as the target of its name's link in `container-names/`: the 32 bytes
/// in unpadded base64url, 43 characters. Why not the hex: ext4 keeps a symlink target of up to 59 bytes
/// in the inode ("fast symlink"); 64 bytes take a data block, which every `run --rm` would allocate and
/// free (on a disk mounted with `discard`, a synchronous discard: ~0.1 ms). `None` for a string that is
/// not an ID.
pub(crate) fn id_to_link(id: &str) -> Option<String> {
    if id.len() != 64 {
        return None;
    }
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let mut out = String::with_capacity(43);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, b)| n | (u32::from(*b) << (16 - 8 * k)));
        for k in 0..=chunk.len() {
            out.push(char::from(B64URL[((n >> (18 - 6 * k)) & 63) as usize]));
        }
    }
    Some(out)
}

/// The container ID a name's link points to: the 43-character form [`id_to_link`] writes, or the 64
/// hex digits that stores made before it hold. `None` for anything else.
pub(crate) fn id_from_link(target: &str) -> Option<String> {
    if target.len() == 64 && target.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(target.to_ascii_lowercase());
    }
    if target.len() != 43 {
        return None;
    }
    let digits: Vec<u32> = target
        .bytes()
        .map(|c| B64URL.iter().position(|&a| a == c).map(|p| p as u32))
        .collect::<Option<_>>()?;
    let mut id = String::with_capacity(64);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, d)| n | (d << (18 - 6 * k)));
        for k in 0..chunk.len() - 1 {
            id.push_str(&format!("{:02x}", (n >> (16 - 8 * k)) & 0xff));
        }
    }
    // The last character carries 4 bits of the last byte and 2 bits that must be zero.
    (id_to_link(&id)?.as_str() == target).then_some(id)
}

/// The name index: which container holds which name.
impl Mountkit {
    /// `<root>/container-names/`: one symlink per container name, `NAME -> ID` (the ID in the short form
    /// of [`id_to_link`]). Creating the link is what claims a name (atomically: `symlink` fails if the
    /// name exists), so creating a container reads no other container's record.
    fn names_dir(&self) -> Result<PathBuf> {
        let dir = self.root().join("container-names");
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        }
        Ok(dir)
    }

    /// The ID of the container that holds `name`, if any. A link whose container is gone (a crash
    /// between removing a container and its name) counts as free.
    pub(crate) fn name_owner(&self, name: &str) -> Result<Option<String>> {
        if validate_container_name(name).is_err() {
            return Ok(None);
        }
        let link = self.names_dir()?.join(name);
        match std::fs::read_link(&link) {
            Ok(target) => Ok(id_from_link(&target.to_string_lossy())
                .filter(|id| self.container_dir(id).join("container.json").exists())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &link, e)),
        }
    }

    /// Claims `name` for container `id`: Ok(false) when a live container holds it already.
    pub(crate) fn claim_name(&self, name: &str, id: &str) -> Result<bool> {
        let dir = self.names_dir()?;
        let link = dir.join(name);
        let target = id_to_link(id).expect("container IDs are 64 hex digits");
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if self.name_owner(name)?.is_some() {
                    return Ok(false);
                }
                // A stale link: replace it atomically.
                let tmp = dir.join(format!(".{name}.{}", mountkit_safefs::random_hex(6)));
                std::os::unix::fs::symlink(&target, &tmp).map_err(|e| Error::io("create", &tmp, e))?;
                std::fs::rename(&tmp, &link).map_err(|e| Error::io("replace", &link, e))?;
                Ok(true)
            }
            Err(e) => Err(Error::io("create", &link, e)),
        }
    }

    /// Gives `name` up if container `id` holds it.
    pub(crate) fn release_name(&self, name: &str, id: &str) {
        let link = self.root().join("container-names").join(name);
        if std::fs::read_link(&link).is_ok_and(|t| id_from_link(&t.to_string_lossy()).as_deref() == Some(id))
        {
            let _ = std::fs::remove_file(&link);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_links_are_short_and_round_trip() {
        for id in [
            "0".repeat(64),
            "f".repeat(64),
            "5a1598a2163fb0e9a429b46c923fd0d9355c23f8ebfbf1ed439ec7021200961b".into(),
        ] {
            let link = id_to_link(&id).unwrap();
            assert_eq!(link.len(), 43, "{link}");
            assert!(link.len() <= 59, "fits ext4's fast symlinks");
            assert_eq!(id_from_link(&link).as_deref(), Some(id.as_str()), "{link}");
        }
        assert_eq!(
            id_to_link(&"f".repeat(64)).unwrap(),
            format!("{}8", "_".repeat(42))
        );
        // Links written by stores from before: the hex itself.
        let old = "5A1598a2163fb0e9a429b46c923fd0d9355c23f8ebfbf1ed439ec7021200961b";
        assert_eq!(id_from_link(old).unwrap(), old.to_ascii_lowercase());
    }

    #[test]
    fn non_id_links_are_refused() {
        assert_eq!(id_to_link("abc"), None);
        assert_eq!(id_to_link(&"g".repeat(64)), None);
        for bad in [
            "",
            "web",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}=", "A".repeat(42)),
            &"z".repeat(64),
        ] {
            assert_eq!(id_from_link(bad), None, "{bad:?}");
        }
        // 43 characters whose last one has bits set beyond the 256 of an ID.
        assert_eq!(id_from_link(&format!("{}B", "A".repeat(42))), None);
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["web", "a", "todo-1", "my_app.v2", "A9"] {
            validate_container_name(ok).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            ("-x", "start"),
            ("a/b", "'/'"),
            ("..", "start"),
            ("a b", "spaces"),
            (&"x".repeat(129), "128"),
            (&"a".repeat(64), "ID"),
        ] {
            let e = validate_container_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn generated_names_are_valid_and_avoid_taken_ones() {
        let first = generate_name(&|_| false);
        validate_container_name(&first).unwrap();
        let other = generate_name(&|n| n == first);
        assert_ne!(first, other);
    }
}
