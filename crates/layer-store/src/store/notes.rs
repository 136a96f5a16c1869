//! Notes: small facts derived from a layer that a caller computes once and keeps with it, in
//! `layers/<hex>/notes/<key>`, such as what the layer adds, changes and deletes on top of a given parent
//! chain (mountkit's `image history`). They go when the layer goes (its whole directory is moved out at
//! once) and are never part of the layer's content or ID. A note is written atomically (temp file, rename;
//! not fsynced: it can always be computed again) and never brings back a layer removed meanwhile.

use std::io;

use mountkit_safefs::write_atomic_nosync;

use super::Store;
use crate::error::{Error, Result};
use crate::id::LayerId;

/// Checks a note key: 1 to 128 bytes of `[a-z0-9._-]`, not starting with `.`.
fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: key.into(),
            reason: "a layer note key is 1 to 128 of [a-z0-9._-], not starting with `.`".into(),
        })
    }
}

impl Store {
    /// The note kept with layer `id` under `key`, if there is one.
    pub fn layer_note(&self, id: &LayerId, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let p = self.layer_dir(id).join("notes").join(key);
        match std::fs::read(&p) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read layer note", &p, e)),
        }
    }

    /// Keeps `data` with layer `id` under `key` (replacing an older note). Returns `false`, writing
    /// nothing, when the layer is not in the store.
    pub fn set_layer_note(&self, id: &LayerId, key: &str, data: &[u8]) -> Result<bool> {
        check_key(key)?;
        let dir = self.layer_dir(id).join("notes");
        // Not create_dir_all: a layer removed meanwhile must not get its directory back.
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("create", &dir, e)),
        }
        match write_atomic_nosync(&dir.join(key), data) {
            Ok(()) => Ok(true),
            Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{LayerSource, Store};

    #[test]
    fn notes_are_kept_with_the_layer_and_go_with_it() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("f"), "x").unwrap();
        let store = Store::open(t.path().join("store")).unwrap();
        let id = store.import_layer(LayerSource::Dir(src)).unwrap().id;
        assert_eq!(store.layer_note(&id, "k-1").unwrap(), None);
        assert!(store.set_layer_note(&id, "k-1", b"one").unwrap());
        assert!(store.set_layer_note(&id, "k-1", b"two").unwrap());
        assert_eq!(
            store.layer_note(&id, "k-1").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert!(store.layer_note(&id, "../x").is_err());
        assert!(store.set_layer_note(&id, ".hidden", b"").is_err());
        // The note is not part of the layer: the same content imports to the same ID, unchanged.
        let mut out = Vec::new();
        store.export_layer(&id, &mut out).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("notes"));
        store.remove_layer(id.hex()).unwrap();
        assert!(
            !store.set_layer_note(&id, "k-1", b"three").unwrap(),
            "no layer, no note"
        );
        assert!(!t.path().join("store/layers").join(id.hex()).exists());
    }
}
