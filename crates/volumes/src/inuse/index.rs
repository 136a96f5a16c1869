//! The in-use index, derived from the records: `<root>/.active.json` names the volumes that may be in use
//! in this boot (a superset of those whose record says so), and `<root>/.idle` is present only while no
//! record says "in use". Under the lock: before a record first says "in use", its volume enters the
//! index and *then* `.idle` goes; after a record says "out of use", the volume leaves the index, and an
//! empty index brings `.idle` back. Neither file is fsynced: in-use state means nothing after a reboot,
//! and an index of another boot is not trusted (every record is read instead).

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{insert_sorted, remove_item};
use crate::Result;
use crate::cache;
use crate::files::{is_there, make_empty, read_json, remove_if_there, write_json_nosync};
use crate::layout::Layout;
use crate::lock::ChangeLock;
use mountkit_safefs::boot_id;

const IDLE: &str = ".idle";
const INDEX: &str = ".active.json";

/// The content of `.active.json`.
#[derive(Serialize, Deserialize)]
struct Index {
    boot_id: String,
    volumes: Vec<String>,
}

/// Whether `.idle` says that no volume is in use (in this boot): one `stat`, on the directory as given.
pub(crate) fn is_idle(layout: &Layout) -> bool {
    is_there(&layout.given().join(IDLE))
}

/// The index, when it was written in this boot (otherwise it says nothing).
pub(super) fn read(layout: &Layout) -> Option<Vec<String>> {
    let index: Index = read_json(&layout.file(INDEX))?;
    (!index.boot_id.is_empty() && index.boot_id == boot_id()).then_some(index.volumes)
}

fn write(layout: &Layout, volumes: Vec<String>) -> Result<()> {
    let index = Index {
        boot_id: boot_id().to_string(),
        volumes,
    };
    write_json_nosync(&layout.file(INDEX), &index)
}

/// The volumes in use in this boot, read from every record (or the list cache), plus those whose record
/// cannot be read (they might be in use): what the index is rebuilt from.
pub(super) fn scan(layout: &Layout) -> Result<Vec<String>> {
    let (vols, mut names) = cache::read_for_decision(layout)?;
    names.extend(vols.into_iter().filter(|v| v.is_in_use()).map(|v| v.name));
    names.sort();
    names.dedup();
    Ok(names)
}

/// Called before a record first says "in use": puts the volume in the index and then removes `.idle`, so
/// every later command reconciles until the volume is out of use again.
pub(super) fn enter(change: &ChangeLock, name: &str) -> Result<()> {
    let layout = change.layout();
    let idle = is_idle(layout);
    let (mut names, current) = match (idle, read(layout)) {
        // `.idle`: nothing is in use, whatever an old index says.
        (true, _) => (Vec::new(), false),
        (false, Some(names)) => (names, true),
        (false, None) => (scan(layout)?, false),
    };
    if insert_sorted(&mut names, name) || !current {
        write(layout, names)?;
    }
    if idle {
        remove_if_there(&layout.file(IDLE))?;
    }
    Ok(())
}

/// Called after a record was saved as out of use: takes the volume out of the index and, when the index
/// is empty, writes `.idle`.
pub(super) fn leave(change: &ChangeLock, name: &str) -> Result<()> {
    let layout = change.layout();
    // Without an index of this boot, the next reconcile rebuilds it.
    let Some(mut names) = read(layout) else {
        return Ok(());
    };
    let removed = remove_item(&mut names, name);
    let empty = names.is_empty();
    if removed {
        write(layout, names)?;
    }
    if empty {
        mark_idle(layout);
    }
    Ok(())
}

/// After a reconcile that looked at `looked_at` (the index's volumes, or every volume when `!from_index`)
/// and found `in_use` still in use: the index says so, and `.idle` is back when nothing is.
pub(super) fn reconciled(
    layout: &Layout,
    looked_at: &[String],
    from_index: bool,
    in_use: Vec<String>,
) -> Result<()> {
    let idle = in_use.is_empty();
    if !from_index || in_use != looked_at {
        write(layout, in_use)?;
    }
    if idle {
        mark_idle(layout);
    }
    Ok(())
}

/// Writes `.idle`. Its absence only costs the next command a reconcile, so failing is not an error.
fn mark_idle(layout: &Layout) {
    let path = layout.file(IDLE);
    if let Err(e) = make_empty(&path) {
        debug!("cannot write {}: {e}", path.display());
    }
}
