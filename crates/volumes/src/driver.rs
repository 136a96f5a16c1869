//! The `local` driver: validating its options and making (and undoing) the mount they describe.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use tracing::{debug, warn};

use crate::{Error, Result};

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
    pub flags: MsFlags,
    /// The rest of `o`, passed as the data string.
    pub data: String,
}

impl MountPlan {
    fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// A description for messages: `type=tmpfs device=tmpfs o=size=64m`.
    pub fn describe(&self) -> String {
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
        if self.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC) {
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
const FLAGS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("mand", MsFlags::MS_MANDLOCK, true),
    ("nomand", MsFlags::MS_MANDLOCK, false),
    ("silent", MsFlags::MS_SILENT, true),
    ("loud", MsFlags::MS_SILENT, false),
    ("bind", MsFlags::MS_BIND, true),
    ("rbind", MsFlags::MS_BIND.union(MsFlags::MS_REC), true),
];

const KNOWN: [&str; 3] = ["type", "o", "device"];

/// Checks the options of a volume for `driver` (`None` = `local`) without touching anything.
///
/// The `local` driver takes Docker's `type`, `o` and `device`; see the crate docs for the rules. Errors
/// quote the offending option.
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
                "unknown option {key:?} (known: type, o, device)"
            )));
        }
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

/// Splits `o` into mount flags and the data string.
fn parse_o(o: &str) -> Result<(MsFlags, String)> {
    let mut flags = MsFlags::empty();
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
    if plan.is_bind() {
        let dev = Path::new(&plan.device);
        if !dev.is_dir() {
            return Err(fail(std::io::Error::other(format!(
                "bind device {} is not an existing directory",
                dev.display()
            ))));
        }
        let base = plan.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        debug!(volume = name, device = %dev.display(), target = %target.display(), "bind-mounting volume device");
        nix::mount::mount(Some(dev), target, None::<&str>, base, None::<&str>).map_err(|e| fail(e.into()))?;
        let extra = plan.flags - base;
        if !extra.is_empty() {
            debug!(volume = name, ?extra, "remounting volume bind with its flags");
            let r = nix::mount::mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra,
                None::<&str>,
            );
            if let Err(e) = r {
                let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
                return Err(fail(e.into()));
            }
        }
        return Ok(());
    }
    let data = if plan.fstype.starts_with("nfs") {
        resolve_nfs_addr(&plan.data).map_err(fail)?
    } else {
        plan.data.clone()
    };
    debug!(volume = name, what = %plan.describe(), target = %target.display(), "mounting volume");
    nix::mount::mount(
        Some(plan.device.as_str()),
        target,
        Some(plan.fstype.as_str()),
        plan.flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| fail(e.into()))
}

/// Unmounts the mount at `target` (plainly; lazily when busy).
pub(crate) fn unmount(name: &str, what: String, target: &Path) -> Result<()> {
    debug!(volume = name, target = %target.display(), "unmounting volume");
    match nix::mount::umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            warn!(volume = name, target = %target.display(), "volume mount busy; detaching it lazily");
            nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|e| Error::Mount {
                op: "unmount",
                name: name.to_string(),
                what,
                path: target.to_path_buf(),
                source: e.into(),
            })
        }
        Err(e) => Err(Error::Mount {
            op: "unmount",
            name: name.to_string(),
            what,
            path: target.to_path_buf(),
            source: e.into(),
        }),
    }
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
        assert_eq!(p.flags, MsFlags::MS_NOSUID | MsFlags::MS_NODEV);
        assert_eq!(
            p.describe(),
            "type=tmpfs device=tmpfs o=nosuid,nodev,size=64m,mode=1777"
        );
    }

    #[test]
    fn bind_and_nfs() {
        let p = plan(&[("type", "none"), ("o", "bind,ro"), ("device", "/srv/data")]);
        assert_eq!(p.flags, MsFlags::MS_BIND | MsFlags::MS_RDONLY);
        let p = plan(&[("type", "none"), ("o", "rbind"), ("device", "/srv/data")]);
        assert_eq!(p.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
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
        ];
        for (kv, quoted) in cases {
            let err = parse(&opts(kv)).expect_err(&format!("{kv:?}"));
            assert!(err.to_string().contains(quoted), "{err} should contain {quoted}");
        }
    }

    #[test]
    fn only_local_driver() {
        assert!(validate_options(Some("local"), &BTreeMap::new()).is_ok());
        let err = validate_options(Some("rexray"), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("\"rexray\""));
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
