//! What the host says about now: the time, for records, and the ID of this boot.

use std::sync::OnceLock;
use std::time::SystemTime;

/// How finely [`now_rfc3339`] writes the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePrecision {
    /// Whole seconds: `2024-05-01T12:00:00Z` (layer, image and volume records).
    Seconds,
    /// Nanoseconds, always nine digits: `2024-05-01T12:00:00.123456789Z` (container records, which are
    /// listed in creation order by comparing these strings).
    Nanoseconds,
}

/// The current time in RFC 3339, UTC (`Z`), at `precision`. The strings of one precision sort as the
/// times do.
pub fn now_rfc3339(precision: TimePrecision) -> String {
    let now = SystemTime::now();
    match precision {
        TimePrecision::Seconds => humantime::format_rfc3339_seconds(now).to_string(),
        TimePrecision::Nanoseconds => humantime::format_rfc3339_nanos(now).to_string(),
    }
}

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The kernel's ID of this boot (`/proc/sys/kernel/random/boot_id`, without its newline), read once per
/// process; empty when it cannot be read (no `/proc`). State that a reboot makes stale is stamped with it.
pub fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string(BOOT_ID)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_have_their_shapes() {
        let s = now_rfc3339(TimePrecision::Seconds);
        assert_eq!(s.len(), "2024-05-01T12:00:00Z".len(), "{s}");
        assert!(s.ends_with('Z') && !s.contains('.'), "{s}");
        let n = now_rfc3339(TimePrecision::Nanoseconds);
        assert_eq!(n.len(), "2024-05-01T12:00:00.123456789Z".len(), "{n}");
        assert!(humantime::parse_rfc3339(&s).is_ok() && humantime::parse_rfc3339(&n).is_ok());
        assert!(n[..19] >= s[..19]);
    }

    #[test]
    fn boot_id_is_the_kernels_trimmed_and_stable() {
        let id = boot_id();
        assert_eq!(id.len(), 36, "{id:?}");
        assert!(!id.ends_with('\n'));
        assert!(std::ptr::eq(id, boot_id()), "read once");
    }
}
