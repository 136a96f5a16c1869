//! Confinement: capabilities, `no_new_privs`, a new session, the network namespace's loopback.
//!
//! The sets are typed with the `caps` crate ([`Capability`], [`CapsHashSet`]: names, parsing, the list
//! of every capability). The container process changes its own credentials through rustix's per-thread
//! system calls only (`prctl(PR_CAPBSET_DROP)`, `prctl(PR_SET_KEEPCAPS)`, one `capset` for the
//! effective, permitted and inheritable sets together, `prctl(PR_CAP_AMBIENT_CLEAR_ALL)`), not through
//! `caps::set`: that reads and rewrites one set per call (a `capget` and a `capset` each), so lowering
//! the three sets takes six calls in an order of its own, while the order matters here (runc's, below).
//! The set is turned into a bit mask without allocating (the process shares the caller's memory).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rustix::io::Errno;
use rustix::thread::{CapabilitySet, CapabilitySets};
use tracing::{debug, trace};

pub use caps::{Capability, CapsHashSet};

/// Docker's default capabilities (`docker run` without `--cap-add`/`--cap-drop`).
pub const DOCKER_DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Docker's default set, as a set.
pub fn docker_default_capabilities() -> CapsHashSet {
    DOCKER_DEFAULT_CAPABILITIES.iter().copied().collect()
}

/// Every capability `caps` knows (through `CAP_CHECKPOINT_RESTORE`, Linux 5.9): `--privileged`, `ALL`.
pub fn all_capabilities() -> CapsHashSet {
    caps::all()
}

/// A capability by Docker's rules: with or without `CAP_`, any case (`chown`, `CAP_CHOWN`, `Sys_Admin`).
/// `None` for a name no kernel has.
pub fn parse_capability(name: &str) -> Option<Capability> {
    caps::to_canonical(name.trim()).parse().ok()
}

/// The set as a bit mask (bit N is capability N), without allocating.
pub(crate) fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

/// The container's network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network namespace (Docker's `--network host`).
    #[default]
    Host,
    /// A new network namespace with only the loopback interface, up (Docker's `--network none`).
    None,
}

/// A new session (`setsid`): no controlling terminal, so `TIOCSTI` cannot push input into the caller's
/// terminal (bubblewrap's `--new-session`, CVE-2017-5226). Descriptors 0-2 stay the caller's.
pub(crate) fn new_session() -> Result<(), Errno> {
    trace!("setsid");
    rustix::process::setsid().map(|_| ())
}

/// The capability steps, in runc's order: the bounding set first (it needs `CAP_SETPCAP`, which the
/// container process still has), then the caller sets `PR_SET_KEEPCAPS` around `setuid` (see
/// [`keep_caps`]), then [`apply_sets`].
pub(crate) fn drop_bounding(keep: u64) -> Result<(), String> {
    for bit in 0..64u32 {
        if keep & (1u64 << bit) != 0 {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(
            1u64 << bit,
        )) {
            Ok(()) => {}
            // Past the kernel's last capability.
            Err(Errno::INVAL) => break,
            Err(e) => return Err(format!("prctl(PR_CAPBSET_DROP, {bit}): {e}")),
        }
    }
    Ok(())
}

/// The process's permitted set (`capget`), as a mask.
pub(crate) fn permitted() -> Result<u64, String> {
    rustix::thread::capabilities(None)
        .map(|c| c.permitted.bits())
        .map_err(|e| format!("capget: {e}"))
}

/// `PR_SET_KEEPCAPS`: with it, `setuid` to a non-zero uid keeps the permitted set (the effective one is
/// cleared), so [`apply_sets`] can still set what the spec says.
pub(crate) fn keep_caps(on: bool) -> Result<(), String> {
    rustix::thread::set_keep_capabilities(on).map_err(|e| format!("prctl(PR_SET_KEEPCAPS, {on}): {e}"))
}

/// One `capset` after the user switch: effective and permitted are `set` for uid 0 and empty for any
/// other user (Docker's and runc's rule), inheritable is `set`; then the ambient set is emptied.
pub(crate) fn apply_sets(set: u64, uid: u32) -> Result<(), String> {
    let ep = if uid == 0 { set } else { 0 };
    let sets = CapabilitySets {
        effective: CapabilitySet::from_bits_retain(ep),
        permitted: CapabilitySet::from_bits_retain(ep),
        inheritable: CapabilitySet::from_bits_retain(set),
    };
    debug!(
        effective = format_args!("{ep:#x}"),
        inheritable = format_args!("{set:#x}"),
        "capset"
    );
    rustix::thread::set_capabilities(None, sets).map_err(|e| format!("capset: {e}"))?;
    rustix::thread::clear_ambient_capability_set().map_err(|e| format!("clearing the ambient set: {e}"))
}

/// Whether the process's effective set has `CAP_SYS_ADMIN` (`capget`).
pub(crate) fn has_sys_admin() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|c| c.effective.contains(CapabilitySet::SYS_ADMIN))
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: exec can no longer grant privileges (setuid bits, file capabilities).
pub(crate) fn no_new_privs() -> Result<(), String> {
    trace!("prctl(PR_SET_NO_NEW_PRIVS, 1)");
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("prctl(PR_SET_NO_NEW_PRIVS): {e}"))
}

/// `struct ifreq` with the flags member of its union (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfreqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Brings `lo` up in the new network namespace: `SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with `IFF_UP`.
/// libc's `socket` and `ioctl`: rustix has no interface ioctls (its `net` feature has no `SIOCSIFFLAGS`).
pub(crate) fn loopback_up() -> Result<(), String> {
    debug!("ip link set lo up");
    // SAFETY: socket takes integers; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor, ours alone.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfreqFlags {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: `req` is a live, correctly sized ifreq for both ioctls.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(format!("SIOCGIFFLAGS lo: {}", std::io::Error::last_os_error()));
    }
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(format!("SIOCSIFFLAGS lo up: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether the kernel has seccomp filters (`CONFIG_SECCOMP_FILTER`): `prctl(PR_SET_SECCOMP,
/// SECCOMP_MODE_FILTER, NULL)` fails with `EFAULT` (the missing program) where it does, `EINVAL` where
/// it does not; no filter is ever installed. (The probe systemd and libseccomp use; libc's prctl:
/// rustix has no seccomp calls.)
pub fn seccomp_filter_supported() -> bool {
    // SAFETY: a NULL program pointer: the kernel reads nothing and installs nothing.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            std::ptr::null::<libc::c_void>(),
        )
    };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_mask() {
        assert_eq!(mask(&docker_default_capabilities()), 0xa80425fb);
    }

    #[test]
    fn names_with_or_without_cap_any_case() {
        assert_eq!(parse_capability("chown"), Some(Capability::CAP_CHOWN));
        assert_eq!(parse_capability("CAP_SYS_ADMIN"), Some(Capability::CAP_SYS_ADMIN));
        assert_eq!(parse_capability("Sys_Admin"), Some(Capability::CAP_SYS_ADMIN));
        assert_eq!(parse_capability("cap_net_raw"), Some(Capability::CAP_NET_RAW));
        assert_eq!(parse_capability("FLY"), None);
        assert_eq!(std::mem::size_of::<IfreqFlags>(), 40);
    }

    #[test]
    fn seccomp_probe_matches_proc_status() {
        // Kernels with seccomp show a `Seccomp:` line; the ones this project runs on have filters too.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        if status.lines().any(|l| l.starts_with("Seccomp:")) {
            assert!(seccomp_filter_supported());
        }
    }
}
