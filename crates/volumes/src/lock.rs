//! The registry lock (`<root>/.lock`, an exclusive `flock(2)`), held for one change.

use std::cell::Cell;

use mountkit_safefs::Lock;

use crate::Result;
use crate::cache;
use crate::layout::Layout;

/// The lock file.
pub(crate) const LOCK: &str = ".lock";

/// The registry lock, held for one change (create, references, acquire/release, populate, remove).
///
/// Whatever the change writes, it calls [`invalidate_list_cache`](ChangeLock::invalidate_list_cache)
/// first.
pub(crate) struct ChangeLock<'a> {
    layout: &'a Layout,
    _lock: Lock,
    /// The list cache was invalidated already in this change (once is enough).
    cache_invalidated: Cell<bool>,
}

impl<'a> ChangeLock<'a> {
    /// Waits for the registry lock and takes it.
    pub(crate) fn take(layout: &'a Layout) -> Result<ChangeLock<'a>> {
        Ok(ChangeLock {
            _lock: Lock::exclusive(&layout.file(LOCK))?,
            layout,
            cache_invalidated: Cell::new(false),
        })
    }

    /// Takes the registry lock if nobody holds it; `None` when another process does.
    pub(crate) fn try_take(layout: &'a Layout) -> Result<Option<ChangeLock<'a>>> {
        Ok(Lock::try_exclusive(&layout.file(LOCK))?.map(|lock| ChangeLock {
            _lock: lock,
            layout,
            cache_invalidated: Cell::new(false),
        }))
    }

    /// The registry this lock is of.
    pub(crate) fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// Called before each write of the change: the first call invalidates the list cache (see
    /// [`cache::invalidate`]), before anything is written, so even a change that dies halfway leaves no
    /// cache that looks current.
    pub(crate) fn invalidate_list_cache(&self) -> Result<()> {
        if !self.cache_invalidated.get() {
            cache::invalidate(self.layout)?;
            self.cache_invalidated.set(true);
        }
        Ok(())
    }
}
