//! References: which containers use a volume. Each is an empty file `<root>/<name>/ref.<container>`,
//! made by one `mknod` and dropped by one `unlink` under the lock, without fsync; the entries are the
//! only record of references (see "References" and "Durability" in docs/volumes.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use tracing::{debug, info, warn};

use crate::files::{is_there, make_empty, remove_if_there};
use crate::layout::Layout;
use crate::lock::ChangeLock;
use crate::name::validate_name;
use crate::{Error, Result, record, volume};

/// The prefix of a reference entry's name.
const PREFIX: &str = "ref.";
/// The longest container name a reference can carry (the entry name is `ref.` + the name, at most 255).
const MAX_LEN: usize = 250;

/// A container name must fit in a directory entry: not empty, no `/` or NUL, at most 250 bytes.
pub(crate) fn validate(container: &str) -> Result<()> {
    let reason = if container.is_empty() {
        "it is empty"
    } else if container.len() > MAX_LEN {
        "it is longer than 250 bytes"
    } else if container.contains(['/', '\0']) {
        "it contains '/' or NUL"
    } else {
        return Ok(());
    };
    Err(Error::InvalidReference {
        container: container.to_string(),
        reason,
    })
}

/// The container a directory entry of a volume references, if the entry is a reference.
pub(crate) fn container_of(entry_name: &str) -> Option<&str> {
    entry_name.strip_prefix(PREFIX)
}

fn entry(layout: &Layout, name: &str, container: &str) -> PathBuf {
    layout.volume_dir(name).join(format!("{PREFIX}{container}"))
}

/// Whether `container` references the volume `name`: one `stat`.
pub(crate) fn is_referenced_by(layout: &Layout, name: &str, container: &str) -> bool {
    is_there(&entry(layout, name, container))
}

/// Checks the arguments of a batch of reference changes.
fn validate_batch(names: &[&str], container: &str) -> Result<()> {
    validate(container)?;
    names.iter().try_for_each(|name| validate_name(name))
}

/// Adds `container`'s reference to each of `names`, all or none: when one of the volumes does not exist,
/// no reference is added.
pub(crate) fn add(layout: &Layout, names: &[&str], container: &str) -> Result<()> {
    validate_batch(names, container)?;
    let change = ChangeLock::take(layout)?;
    if let Some(missing) = names.iter().find(|n| !record::exists(layout, n)) {
        return Err(Error::NotFound {
            name: missing.to_string(),
        });
    }
    for name in names {
        change.invalidate_list_cache()?;
        if make_empty(&entry(layout, name, container))? {
            debug!(volume = name, container, "volume referenced");
        }
    }
    Ok(())
}

/// Drops `container`'s reference to each of `names`. Every volume is dealt with; the first error (such as
/// [`Error::NotFound`] for a volume that is gone) is returned after.
pub(crate) fn remove(layout: &Layout, names: &[&str], container: &str) -> Result<()> {
    validate_batch(names, container)?;
    let change = ChangeLock::take(layout)?;
    let mut first_error = None;
    for name in names {
        change.invalidate_list_cache()?;
        let result = match remove_if_there(&entry(layout, name, container)) {
            Ok(true) => {
                debug!(volume = name, container, "volume reference dropped");
                Ok(())
            }
            // No entry: no reference; an error only if there is no volume (or its record is unreadable).
            Ok(false) => record::read(layout, name).map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Makes the references exactly `refs` (volume name -> the containers that reference it), for every
/// volume; names that are not volumes are ignored. Returns how many references were added or dropped.
pub(crate) fn set(layout: &Layout, refs: &BTreeMap<String, BTreeSet<String>>) -> Result<usize> {
    for containers in refs.values() {
        containers.iter().try_for_each(|c| validate(c))?;
    }
    let change = ChangeLock::take(layout)?;
    let none = BTreeSet::new();
    let mut changes = 0;
    for name in layout.names()? {
        let have = match volume::load(layout, &name) {
            Ok(v) => v.users,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => {
                warn!("cannot check the references of a volume: {e}");
                continue;
            }
        };
        let want = refs.get(&name).unwrap_or(&none);
        for c in want.iter().filter(|c| have.binary_search(c).is_err()) {
            change.invalidate_list_cache()?;
            make_empty(&entry(layout, &name, c))?;
            info!(volume = %name, container = %c, "missing volume reference restored");
            changes += 1;
        }
        for c in have.iter().filter(|c| !want.contains(*c)) {
            change.invalidate_list_cache()?;
            remove_if_there(&entry(layout, &name, c))?;
            info!(volume = %name, container = %c, "stale volume reference dropped");
            changes += 1;
        }
    }
    Ok(changes)
}
