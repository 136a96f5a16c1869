//! [`Volume`], the public view of a volume, put together from where each of its facts is kept: the
//! record (`record`), the reference entries (`refs`), the `populated` marker (`populate`), with in-use
//! state of another boot voided (`inuse`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::layout::Layout;
use crate::limit::SizeLimit;
use crate::record::{self, Record};
use crate::{Error, Result, driver, populate, refs};

/// A volume as `inspect` shows it. A view: changing it changes nothing on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Its driver (`local`).
    pub driver: String,
    /// The host path of its data (`<root>/<name>/_data`), what a container gets bind-mounted.
    pub mountpoint: PathBuf,
    /// When it was created (RFC 3339, UTC).
    pub created: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its driver options.
    pub options: BTreeMap<String, String>,
    /// Whether it is anonymous.
    pub anonymous: bool,
    /// The containers that reference it ([`add_ref`](crate::Registry::add_ref)), sorted.
    pub users: Vec<String>,
    /// Whether it has received content (from `populate`, or found non-empty by it).
    #[serde(default)]
    pub populated: bool,
    /// The users that currently hold it acquired (`acquire` without `release`), sorted.
    #[serde(default)]
    pub active: Vec<String>,
    /// Whether mountkit has (or is about to have) its driver mount attached at `mountpoint`.
    #[serde(default)]
    pub mounted: bool,
    /// The boot in which `active` and `mounted` were recorded (see [`active_boot`](Volume::active_boot)).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) active_boot: String,
    /// Its size limit (`--opt size=`) and how it is enforced (`project-quota` or `loop-ext4`); none
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<SizeLimit>,
}

impl Volume {
    /// The boot (the kernel's boot ID) in which [`active`](Volume::active) and
    /// [`mounted`](Volume::mounted) were recorded; empty when neither is set. No process and no mount
    /// outlives a reboot, so what another boot recorded reads as empty.
    pub fn active_boot(&self) -> &str {
        &self.active_boot
    }

    /// Whether someone uses the volume or mountkit has its driver mount attached.
    pub(crate) fn is_in_use(&self) -> bool {
        !self.active.is_empty() || self.mounted
    }
}

/// The volume `name`, read from its record and the entries beside it. [`Error::NotFound`] when it has no
/// whole record (or no directory).
pub(crate) fn load(layout: &Layout, name: &str) -> Result<Volume> {
    let Record {
        driver,
        created,
        labels,
        options,
        anonymous,
        mut in_use,
        size_limit,
    } = record::read(layout, name)?;
    let (users, mut populated) = read_entries(layout, name)?;
    if in_use.void_if_from_another_boot(name) && driver::loses_content_when_unmounted(&options) {
        populated = false;
    }
    Ok(Volume {
        name: name.to_string(),
        driver,
        mountpoint: layout.data_dir(name),
        created,
        labels,
        options,
        anonymous,
        users,
        populated,
        active: in_use.active,
        mounted: in_use.mounted,
        active_boot: in_use.active_boot,
        size_limit,
    })
}

/// The volume's references (sorted) and whether it is marked populated, from one listing of its
/// directory; [`Error::NotFound`] when the directory is gone.
fn read_entries(layout: &Layout, name: &str) -> Result<(Vec<String>, bool)> {
    use rustix::fs::{CWD, Mode, OFlags, RawDir, openat};
    let dir = layout.volume_dir(name);
    // getdents64 on a stack buffer: no stat of the directory as std's `read_dir` makes (this runs once per
    // volume when `list` reads every record).
    let fd = match openat(
        CWD,
        &dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => {
            return Err(Error::NotFound {
                name: name.to_string(),
            });
        }
        Err(e) => return Err(Error::io("read directory", &dir, e)),
    };
    let (mut users, mut populated) = (Vec::new(), false);
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    let mut listing = RawDir::new(fd, &mut buf);
    while let Some(entry) = listing.next() {
        let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
        let Ok(file_name) = entry.file_name().to_str() else {
            continue;
        };
        if let Some(container) = refs::container_of(file_name) {
            users.push(container.to_string());
        } else if file_name == populate::MARKER {
            populated = true;
        }
    }
    users.sort();
    Ok((users, populated))
}
