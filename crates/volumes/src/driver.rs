//! The `local` driver: validating its options and making (and undoing) the mount they describe.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};
use tracing::{debug, warn};

use crate::limit::{self, SizeLimit, SizeMethod};
use crate::{Error, Result, loopdev};

/// What a volume's options ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backing {
    /// No options: a directory in the store.
    Directory,
    /// A mount made at `_data` while the volume is acquired.
    Mount(MountPlan),
}

/// A `mount(2)` call, parsed from `type`, `o` and `device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPlan {
    /// Filesystem type (`tmpfs`, `nfs`, ...); `none` for a bind.
    pub fstype: String,
    /// The source (`tmpfs`, `:/export`, `/host/dir`, ...).
    pub device: String,
    /// Flags taken out of `o`.
    pub flags: MountFlags,
    /// The rest of `o`, passed as the data string.
    pub data: String,
    /// `device` is an image file, mounted through a loop device (a size-limited volume's ext4 image).
    pub loop_file: bool,
}

impl MountPlan {
    fn is_bind(&self) -> bool {
        self.flags.contains(MountFlags::BIND)
    }

    /// A description for messages: `type=tmpfs device=tmpfs o=size=64m`.
    pub fn describe(&self) -> String {
        if self.loop_file {
            return format!("type={} image={} (loop)", self.fstype, self.device);
        }
        let mut s = format!("type={} device={}", self.fstype, self.device);
        let o = self.o_string();
        if !o.is_empty() {
            s.push_str(" o=");
            s.push_str(&o);
        }
        s
    }

    fn o_string(&self) -> String {
        let mut words: Vec<&str> = FLAGS
            .iter()
            .filter(|(_, f, set)| *set && self.flags.contains(*f))
            .map(|(w, _, _)| *w)
            .collect();
        if self.flags.contains(MountFlags::BIND | MountFlags::REC) {
            words.retain(|w| *w != "bind");
        }
        let mut o = words.join(",");
        if !self.data.is_empty() {
            if !o.is_empty() {
                o.push(',');
            }
            o.push_str(&self.data);
        }
        o
    }
}

/// The words of `o` that are mount flags: (word, flag, set or clear).
const FLAGS: &[(&str, MountFlags, bool)] = &[
    ("ro", MountFlags::RDONLY, true),
    ("rw", MountFlags::RDONLY, false),
    ("nosuid", MountFlags::NOSUID, true),
    ("suid", MountFlags::NOSUID, false),
    ("nodev", MountFlags::NODEV, true),
    ("dev", MountFlags::NODEV, false),
    ("noexec", MountFlags::NOEXEC, true),
    ("exec", MountFlags::NOEXEC, false),
    ("sync", MountFlags::SYNCHRONOUS, true),
    ("async", MountFlags::SYNCHRONOUS, false),
    ("dirsync", MountFlags::DIRSYNC, true),
    ("noatime", MountFlags::NOATIME, true),
    ("atime", MountFlags::NOATIME, false),
    ("nodiratime", MountFlags::NODIRATIME, true),
    ("diratime", MountFlags::NODIRATIME, false),
    ("relatime", MountFlags::RELATIME, true),
    ("norelatime", MountFlags::RELATIME, false),
    ("strictatime", MountFlags::STRICTATIME, true),
    ("mand", MountFlags::PERMIT_MANDATORY_FILE_LOCKING, true),
    ("nomand", MountFlags::PERMIT_MANDATORY_FILE_LOCKING, false),
    ("silent", MountFlags::SILENT, true),
    ("loud", MountFlags::SILENT, false),
    ("bind", MountFlags::BIND, true),
    ("rbind", MountFlags::BIND.union(MountFlags::REC), true),
];

const KNOWN: [&str; 4] = ["type", "o", "device", limit::SIZE];

/// Checks the options of a volume for `driver` (`None` = `local`) without touching anything.
///
/// The `local` driver takes Docker's `type`, `o` and `device`, and `size` (a size limit, alone); see the
/// crate docs for the rules. Errors quote the offending option.
///
/// ```
/// use std::collections::BTreeMap;
/// use mountkit_volumes::validate_options;
/// let opts: BTreeMap<String, String> =
///     [("type".to_string(), "tmpfs".to_string()), ("o".to_string(), "size=64m,mode=1777".to_string())].into();
/// validate_options(None, &opts).unwrap();
/// let bad: BTreeMap<String, String> = [("colour".to_string(), "red".to_string())].into();
/// assert!(validate_options(None, &bad).unwrap_err().to_string().contains("\"colour\""));
/// ```
pub fn validate_options(driver: Option<&str>, options: &BTreeMap<String, String>) -> Result<()> {
    check_driver(driver)?;
    parse(options).map(|_| ())
}

pub(crate) fn check_driver(driver: Option<&str>) -> Result<&'static str> {
    match driver {
        None | Some("local") => Ok("local"),
        Some(other) => Err(Error::UnsupportedDriver {
            driver: other.to_string(),
        }),
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidOption { reason }
}

/// Parses the `local` driver's options.
pub(crate) fn parse(options: &BTreeMap<String, String>) -> Result<Backing> {
    for key in options.keys() {
        if !KNOWN.contains(&key.as_str()) {
            return Err(invalid(format!(
                "unknown option {key:?} (known: type, o, device, size)"
            )));
        }
    }
    if limit::size_option(options.get(limit::SIZE))?.is_some() {
        if options.len() > 1 {
            return Err(invalid(
                "\"size\" limits a directory volume and takes no \"type\", \"o\" or \"device\" (a tmpfs takes \"o\" size=...)"
                    .to_string(),
            ));
        }
        return Ok(Backing::Directory);
    }
    if options.is_empty() {
        return Ok(Backing::Directory);
    }
    let Some(fstype) = options.get("type") else {
        let given = options
            .keys()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(invalid(format!("option {given} needs \"type\" too")));
    };
    if fstype.is_empty() || fstype.contains(|c: char| c == ',' || c.is_whitespace()) {
        return Err(invalid(format!("\"type\" {fstype:?} is not a filesystem type")));
    }
    if fstype == "fuse" || fstype == "fuseblk" || fstype.starts_with("fuse.") {
        return Err(invalid(format!(
            "\"type\" {fstype:?} is a FUSE filesystem: its mount needs its own program (sshfs, ...) running \
             for as long as it is mounted, which the local driver does not start or supervise; mount it on \
             the host and bind it (-v /mnt/remote/dir:/data, or type=none o=bind device=/mnt/remote/dir)"
        )));
    }
    let (flags, data) = parse_o(options.get("o").map(String::as_str).unwrap_or(""))?;
    let device = match (options.get("device"), fstype.as_str()) {
        (Some(d), _) if !d.is_empty() => d.clone(),
        (_, "tmpfs") => "tmpfs".to_string(),
        _ => {
            return Err(invalid(format!(
                "\"type\" {fstype:?} needs \"device\" (what to mount)"
            )));
        }
    };
    let plan = MountPlan {
        fstype: fstype.clone(),
        device,
        flags,
        data,
        loop_file: false,
    };
    if fstype == "none" && !plan.is_bind() {
        return Err(invalid(
            "\"type\" \"none\" needs \"o\" with \"bind\" or \"rbind\"".to_string(),
        ));
    }
    if plan.is_bind() {
        if fstype != "none" {
            return Err(invalid(format!(
                "\"o\" with \"bind\" needs \"type\" \"none\", not {fstype:?}"
            )));
        }
        if !Path::new(&plan.device).is_absolute() {
            return Err(invalid(format!(
                "bind \"device\" {:?} must be an absolute path",
                plan.device
            )));
        }
        if !plan.data.is_empty() {
            return Err(invalid(format!(
                "a bind mount takes only mount flags in \"o\", not {:?}",
                plan.data
            )));
        }
    }
    Ok(Backing::Mount(plan))
}

/// What a volume is backed by: its options, or the image of a loop-backed size limit (in `volume_dir`).
pub(crate) fn backing(
    options: &BTreeMap<String, String>,
    size_limit: Option<&SizeLimit>,
    volume_dir: &Path,
) -> Result<Backing> {
    match size_limit {
        Some(l) if l.method == SizeMethod::LoopExt4 => Ok(Backing::Mount(MountPlan {
            fstype: "ext4".to_string(),
            device: volume_dir.join(limit::IMAGE).to_string_lossy().into_owned(),
            flags: MountFlags::NODEV,
            data: String::new(),
            loop_file: true,
        })),
        _ => parse(options),
    }
}

/// Splits `o` into mount flags and the data string.
fn parse_o(o: &str) -> Result<(MountFlags, String)> {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for word in o.split(',') {
        if word.is_empty() {
            continue;
        }
        match FLAGS.iter().find(|(w, _, _)| *w == word) {
            Some((_, f, true)) => flags.insert(*f),
            Some((_, f, false)) => flags.remove(*f),
            None if matches!(
                word,
                "remount"
                    | "move"
                    | "shared"
                    | "rshared"
                    | "private"
                    | "rprivate"
                    | "slave"
                    | "rslave"
                    | "unbindable"
                    | "runbindable"
            ) =>
            {
                return Err(invalid(format!(
                    "\"o\" word {word:?} is not allowed for a volume"
                )));
            }
            None => data.push(word),
        }
    }
    Ok((flags, data.join(",")))
}

/// Resolves `addr=HOST` in an NFS data string to an IP address.
fn resolve_nfs_addr(data: &str) -> std::io::Result<String> {
    let mut out = Vec::new();
    for word in data.split(',') {
        match word.strip_prefix("addr=") {
            Some(host) if host.parse::<IpAddr>().is_err() => {
                let ip = (host, 0)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| std::io::Error::other(format!("{host:?} has no address")))?
                    .ip();
                debug!(host, %ip, "resolved NFS server address");
                out.push(format!("addr={ip}"));
            }
            _ => out.push(word.to_string()),
        }
    }
    Ok(out.join(","))
}

/// Makes the mount described by `plan` at `target`.
pub(crate) fn mount(name: &str, plan: &MountPlan, target: &Path) -> Result<()> {
    let fail = |source: std::io::Error| Error::Mount {
        op: "mount",
        name: name.to_string(),
        what: plan.describe(),
        path: target.to_path_buf(),
        source,
    };
    if plan.loop_file {
        return loopdev::mount(name, Path::new(&plan.device), target, plan.flags);
    }
    if plan.is_bind() {
        return bind(name, plan, target).map_err(fail);
    }
    let data = if plan.fstype.starts_with("nfs") {
        resolve_nfs_addr(&plan.data).map_err(fail)?
    } else {
        plan.data.clone()
    };
    let data = (!data.is_empty())
        .then(|| CString::new(data))
        .transpose()
        .map_err(|e| fail(e.into()))?;
    debug!(volume = name, what = %plan.describe(), target = %target.display(), "mounting volume");
    rustix::mount::mount(
        plan.device.as_str(),
        target,
        plan.fstype.as_str(),
        plan.flags,
        data.as_deref(),
    )
    .map_err(|e| fail(e.into()))
}

/// Bind-mounts the plan's device at `target`, then remounts the bind with the plan's other flags.
fn bind(name: &str, plan: &MountPlan, target: &Path) -> std::io::Result<()> {
    let dev = Path::new(&plan.device);
    if !dev.is_dir() {
        return Err(std::io::Error::other(format!(
            "bind device {} is not an existing directory",
            dev.display()
        )));
    }
    debug!(volume = name, device = %dev.display(), target = %target.display(), "bind-mounting volume device");
    if plan.flags.contains(MountFlags::REC) {
        rustix::mount::mount_bind_recursive(dev, target)?;
    } else {
        rustix::mount::mount_bind(dev, target)?;
    }
    let extra = plan.flags - (MountFlags::BIND | MountFlags::REC);
    if !extra.is_empty() {
        debug!(volume = name, ?extra, "remounting volume bind with its flags");
        if let Err(e) = rustix::mount::mount_remount(target, MountFlags::BIND | extra, "") {
            let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
            return Err(e.into());
        }
    }
    Ok(())
}

/// Unmounts the mount at `target` (plainly; lazily when busy).
pub(crate) fn unmount(name: &str, what: String, target: &Path) -> Result<()> {
    debug!(volume = name, target = %target.display(), "unmounting volume");
    let result = match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Err(rustix::io::Errno::BUSY) => {
            warn!(volume = name, target = %target.display(), "volume mount busy; detaching it lazily");
            rustix::mount::unmount(target, UnmountFlags::DETACH)
        }
        other => other,
    };
    result.map_err(|e| Error::Mount {
        op: "unmount",
        name: name.to_string(),
        what,
        path: target.to_path_buf(),
        source: e.into(),
    })
}

/// Whether a volume with these options loses its content when its mount goes (a tmpfs).
pub(crate) fn loses_content_when_unmounted(options: &BTreeMap<String, String>) -> bool {
    options.get("type").map(String::as_str) == Some("tmpfs")
}

/// The mount points at or below `path` (canonical: every path here is built on the canonical root) in
/// this process's mount namespace, without resolving the path again.
pub(crate) fn mounts_below(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(mountkit_safefs::mounts_under_canonical(path)?)
}

/// Whether `path` (canonical) is a mount point in this process's mount namespace.
pub(crate) fn is_mount_point(path: &Path) -> Result<bool> {
    Ok(mounts_below(path)?.iter().any(|m| m == path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn plan(kv: &[(&str, &str)]) -> MountPlan {
        match parse(&opts(kv)).unwrap() {
            Backing::Mount(p) => p,
            Backing::Directory => panic!("expected a mount for {kv:?}"),
        }
    }

    #[test]
    fn no_options_is_a_directory() {
        assert_eq!(parse(&BTreeMap::new()).unwrap(), Backing::Directory);
    }

    #[test]
    fn tmpfs_defaults_device_and_splits_o() {
        let p = plan(&[("type", "tmpfs"), ("o", "size=64m,mode=1777,nosuid,nodev")]);
        assert_eq!(p.device, "tmpfs");
        assert_eq!(p.data, "size=64m,mode=1777");
        assert_eq!(p.flags, MountFlags::NOSUID | MountFlags::NODEV);
        assert_eq!(
            p.describe(),
            "type=tmpfs device=tmpfs o=nosuid,nodev,size=64m,mode=1777"
        );
    }

    #[test]
    fn bind_and_nfs() {
        let p = plan(&[("type", "none"), ("o", "bind,ro"), ("device", "/srv/data")]);
        assert_eq!(p.flags, MountFlags::BIND | MountFlags::RDONLY);
        let p = plan(&[("type", "none"), ("o", "rbind"), ("device", "/srv/data")]);
        assert_eq!(p.flags, MountFlags::BIND | MountFlags::REC);
        let p = plan(&[
            ("type", "nfs"),
            ("o", "addr=10.0.0.1,rw,nfsvers=4"),
            ("device", ":/export"),
        ]);
        assert_eq!(p.data, "addr=10.0.0.1,nfsvers=4");
        assert_eq!(p.device, ":/export");
        assert!(p.flags.is_empty());
    }

    #[test]
    fn rejected_options_are_quoted() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("colour", "red")], "\"colour\""),
            (&[("o", "size=1m")], "\"type\""),
            (&[("device", "/dev/sda1")], "\"type\""),
            (&[("type", "ext4")], "\"device\""),
            (&[("type", "none"), ("device", "/srv")], "\"bind\""),
            (&[("type", "none"), ("o", "bind"), ("device", "srv")], "\"srv\""),
            (
                &[("type", "none"), ("o", "bind"), ("device", "/srv"), ("x", "1")],
                "\"x\"",
            ),
            (&[("type", "tmpfs"), ("o", "bind")], "\"tmpfs\""),
            (&[("type", "tmpfs"), ("o", "shared")], "\"shared\""),
            (&[("type", "")], "\"\""),
            (
                &[("type", "fuse.sshfs"), ("device", "u@h:/d")],
                "\"fuse.sshfs\" is a FUSE",
            ),
            (
                &[("type", "fuse"), ("device", "sshfs#u@h:/d")],
                "\"fuse\" is a FUSE",
            ),
            (&[("size", "lots")], "\"lots\""),
            (&[("size", "0")], "\"0\""),
            (&[("size", "8m"), ("type", "tmpfs")], "\"size\""),
        ];
        for (kv, quoted) in cases {
            let err = parse(&opts(kv)).expect_err(&format!("{kv:?}"));
            assert!(err.to_string().contains(quoted), "{err} should contain {quoted}");
        }
    }

    #[test]
    fn size_alone_is_a_directory() {
        assert_eq!(parse(&opts(&[("size", "8m")])).unwrap(), Backing::Directory);
    }

    #[test]
    fn only_local_driver() {
        assert!(validate_options(Some("local"), &BTreeMap::new()).is_ok());
        let err = validate_options(Some("rexray"), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("\"rexray\""));
    }

    #[test]
    fn mounts_below_finds_the_root_mount() {
        let all = mounts_below(Path::new("/")).unwrap();
        assert!(all.iter().any(|m| m == Path::new("/")), "{all:?}");
        assert!(
            mounts_below(Path::new("/nonexistent-mountkit-dir"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn nfs_addr_ip_is_kept() {
        assert_eq!(
            resolve_nfs_addr("addr=10.1.2.3,nfsvers=4").unwrap(),
            "addr=10.1.2.3,nfsvers=4"
        );
        let resolved = resolve_nfs_addr("addr=localhost").unwrap();
        let ip = resolved.strip_prefix("addr=").unwrap();
        assert!(ip.parse::<IpAddr>().unwrap().is_loopback(), "{resolved}");
    }
}
