//! `system df`: where the store's space goes, as `docker system df` shows it: layers, images, containers'
//! writable layers and volumes, with what is shared and what could be reclaimed.
//!
//! - A layer's size is the one recorded at import (bytes of its uncompressed tar stream); an image's is
//!   the sum of its layers', split into *shared* (layers other images use too) and *unique*.
//! - A container's size is its writable layer's, and a volume's its `_data`'s: both summed on demand
//!   (apparent sizes of the files, each hard-linked inode once) by a walk that never crosses a mount:
//!   a volume whose driver has a filesystem mounted on `_data` (tmpfs, nfs while in use) counts 0.
//! - Reclaimable: layers no image uses (`system gc`); the layers of images no container uses, except
//!   those an image in use shares (`image rm`, then `system gc`); the writable layers of containers
//!   that are not running (`container rm`); volumes no container references (`volume prune -a`).
//!   Active: layers used by an image, images used by a container, running containers, volumes with
//!   references.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use crate::{Error, Mountkit, Result, Status};

/// One layer in `system df -v`.
#[derive(Debug, Clone, Serialize)]
pub struct LayerUsage {
    /// The layer's ID.
    pub id: String,
    /// Its size (bytes of its uncompressed tar stream).
    pub size: u64,
    /// How many images use it.
    pub images: usize,
}

/// One image in `system df -v`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageUsage {
    /// The image's ID.
    pub id: String,
    /// Its name, if any.
    pub name: Option<String>,
    /// The sum of its layers' sizes.
    pub size: u64,
    /// The part of `size` in layers other images use too.
    pub shared_size: u64,
    /// The part of `size` in layers only this image uses.
    pub unique_size: u64,
    /// How many containers use it.
    pub containers: usize,
}

/// One container in `system df -v`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerUsage {
    /// The container's ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its image's name (or ID).
    pub image: String,
    /// Created, running or exited.
    pub status: Status,
    /// Its writable layer's size.
    pub size: u64,
}

/// One volume in `system df -v`.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeUsage {
    /// The volume's name.
    pub name: String,
    /// Made for one container (image `VOLUME`, `-v /path`).
    pub anonymous: bool,
    /// How many containers reference it.
    pub links: usize,
    /// The size of its data.
    pub size: u64,
}

/// One line of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct KindUsage {
    /// `layers`, `images`, `containers` or `volumes`.
    pub kind: &'static str,
    /// How many there are.
    pub total: usize,
    /// How many are in use (see the module docs).
    pub active: usize,
    /// Their size (shared layers counted once).
    pub size: u64,
    /// What removing the unused ones would free.
    pub reclaimable: u64,
}

/// What `system df` shows.
#[derive(Debug, Clone, Serialize)]
pub struct DiskUsage {
    /// One line per kind.
    pub summary: Vec<KindUsage>,
    /// Every layer.
    pub layers: Vec<LayerUsage>,
    /// Every image.
    pub images: Vec<ImageUsage>,
    /// Every container.
    pub containers: Vec<ContainerUsage>,
    /// Every volume.
    pub volumes: Vec<VolumeUsage>,
}

/// The apparent size of the files under `path` (each inode once), not crossing into another filesystem
/// than `path`'s parent's; 0 when `path` is missing.
pub(crate) fn tree_size(path: &Path) -> Result<u64> {
    let parent_dev = match path.parent().map(std::fs::symlink_metadata) {
        Some(Ok(m)) => Some(m.dev()),
        _ => None,
    };
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("stat", path, e)),
    };
    if parent_dev.is_some_and(|d| d != md.dev()) {
        return Ok(0); // a mount point: its filesystem is not the store's
    }
    let mut seen = HashSet::new();
    walk(path, &md, md.dev(), &mut seen)
}

fn walk(path: &Path, md: &std::fs::Metadata, dev: u64, seen: &mut HashSet<u64>) -> Result<u64> {
    if !md.is_dir() {
        if md.nlink() > 1 && !seen.insert(md.ino()) {
            return Ok(0);
        }
        return Ok(md.len());
    }
    let mut total = 0;
    let rd = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("read directory", path, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("read directory", path, e))?;
        let p = ent.path();
        let m = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
            Err(e) => return Err(Error::io("stat", &p, e)),
        };
        if m.dev() != dev {
            continue; // a mount: not ours to count
        }
        total += walk(&p, &m, dev, seen)?;
    }
    Ok(total)
}

impl Mountkit {
    /// `system df`: sizes of layers, images, containers' writable layers and volumes, what is shared and
    /// what could be reclaimed (see the module docs). Reads only; takes no lock.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let layers = self.layers().layers()?;
        let images = self.layers().images()?;
        let containers = self.containers()?;
        let volumes = self.volumes().list(&[])?;

        let size_of: BTreeMap<String, u64> = layers.iter().map(|l| (l.id.to_string(), l.size)).collect();
        let mut users: BTreeMap<String, usize> = BTreeMap::new();
        for i in &images {
            for l in i.layers.iter().collect::<BTreeSet<_>>() {
                *users.entry(l.to_string()).or_default() += 1;
            }
        }
        let mut image_containers: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &containers {
            *image_containers.entry(c.image.as_str()).or_default() += 1;
        }

        let layer_rows: Vec<LayerUsage> = layers
            .iter()
            .map(|l| LayerUsage {
                id: l.id.to_string(),
                size: l.size,
                images: users.get(&l.id.to_string()).copied().unwrap_or(0),
            })
            .collect();
        let mut image_rows = Vec::new();
        // Layers of images that containers use, and of images that none uses.
        let mut active_layers: BTreeSet<String> = BTreeSet::new();
        let mut idle_layers: BTreeSet<String> = BTreeSet::new();
        for i in &images {
            let ids: BTreeSet<String> = i.layers.iter().map(ToString::to_string).collect();
            let size: u64 = ids.iter().map(|l| size_of.get(l).copied().unwrap_or(0)).sum();
            let shared: u64 = ids
                .iter()
                .filter(|l| users.get(*l).copied().unwrap_or(0) > 1)
                .map(|l| size_of.get(l).copied().unwrap_or(0))
                .sum();
            let n = image_containers.get(i.id.as_str()).copied().unwrap_or(0);
            if n > 0 {
                active_layers.extend(ids);
            } else {
                idle_layers.extend(ids);
            }
            image_rows.push(ImageUsage {
                id: i.id.clone(),
                name: i.name.clone(),
                size,
                shared_size: shared,
                unique_size: size - shared,
                containers: n,
            });
        }
        let mut container_rows = Vec::new();
        for c in &containers {
            container_rows.push(ContainerUsage {
                id: c.id.clone(),
                name: c.name.clone(),
                image: c.image_name.clone().unwrap_or_else(|| c.image.clone()),
                status: c.state.status,
                size: tree_size(&self.container_dir(&c.id).join("upper"))?,
            });
        }
        let mut volume_rows = Vec::new();
        for v in &volumes {
            volume_rows.push(VolumeUsage {
                name: v.name.clone(),
                anonymous: v.anonymous,
                links: v.users.len(),
                size: tree_size(&self.volumes().data_path(&v.name))?,
            });
        }

        let layer_size = |ids: &mut dyn Iterator<Item = &String>| -> u64 {
            ids.map(|l| size_of.get(l).copied().unwrap_or(0)).sum()
        };
        let used_layers: BTreeSet<&String> = users.keys().collect();
        let summary = vec![
            KindUsage {
                kind: "layers",
                total: layer_rows.len(),
                active: layer_rows.iter().filter(|l| l.images > 0).count(),
                size: layer_rows.iter().map(|l| l.size).sum(),
                reclaimable: layer_rows.iter().filter(|l| l.images == 0).map(|l| l.size).sum(),
            },
            KindUsage {
                kind: "images",
                total: image_rows.len(),
                active: image_rows.iter().filter(|i| i.containers > 0).count(),
                size: layer_size(&mut used_layers.iter().copied()),
                reclaimable: layer_size(&mut idle_layers.difference(&active_layers)),
            },
            KindUsage {
                kind: "containers",
                total: container_rows.len(),
                active: container_rows
                    .iter()
                    .filter(|c| c.status == Status::Running)
                    .count(),
                size: container_rows.iter().map(|c| c.size).sum(),
                reclaimable: container_rows
                    .iter()
                    .filter(|c| c.status != Status::Running)
                    .map(|c| c.size)
                    .sum(),
            },
            KindUsage {
                kind: "volumes",
                total: volume_rows.len(),
                active: volume_rows.iter().filter(|v| v.links > 0).count(),
                size: volume_rows.iter().map(|v| v.size).sum(),
                reclaimable: volume_rows.iter().filter(|v| v.links == 0).map(|v| v.size).sum(),
            },
        ];
        Ok(DiskUsage {
            summary,
            layers: layer_rows,
            images: image_rows,
            containers: container_rows,
            volumes: volume_rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::tree_size;

    #[test]
    fn tree_size_counts_files_once() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a"), "12345").unwrap();
        std::fs::write(d.join("sub/b"), "123").unwrap();
        std::fs::hard_link(d.join("a"), d.join("sub/a2")).unwrap();
        std::os::unix::fs::symlink("a", d.join("l")).unwrap();
        assert_eq!(tree_size(&d).unwrap(), 5 + 3 + 1);
        assert_eq!(tree_size(&t.path().join("missing")).unwrap(), 0);
    }
}
