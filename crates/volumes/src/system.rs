//! What this crate reads of the system: the kernel's boot ID and the time of day.

use std::sync::OnceLock;
use std::time::SystemTime;

/// The kernel's ID of this boot (empty when /proc is not there), read once per process.
pub(crate) fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// Now, in RFC 3339 (UTC, whole seconds): a volume's creation time.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
