//! Signal names as `docker stop -s`, `docker kill -s` and `--stop-signal` take them: `SIGTERM`, `TERM`,
//! `term`, `15`, `SIGRTMIN+3`.

use rustix::process::Signal;

/// The named signals, by their name without `SIG`.
const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// The kernel's real-time signal range (glibc reserves 32 and 33 for itself; Docker's SIGRTMIN is 34).
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// The signal number of `name` (with or without `SIG`, any case, or a number 1-64; `RTMIN+N`,
/// `RTMAX-N`); `None` for anything else.
pub fn parse_signal(name: &str) -> Option<i32> {
    let s = name.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == bare) {
        return Some(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().ok()?
        };
        let n = base + sign * off;
        (RTMIN..=RTMAX).contains(&n).then_some(n)
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return rt(RTMIN, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return rt(RTMAX, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    None
}

/// `parse_signal` as an error naming the flag and the value.
pub(crate) fn signal_arg(what: &'static str, name: &str) -> crate::Result<i32> {
    parse_signal(name).ok_or_else(|| crate::Error::InvalidArgument {
        what,
        value: name.into(),
        reason: "not a signal (a name like SIGTERM or TERM, or a number)".into(),
    })
}

/// The number as rustix's [`Signal`].
pub(crate) fn to_signal(n: i32) -> Signal {
    Signal::from_named_raw(n).unwrap_or_else(|| {
        // SAFETY: `n` is a real-time signal number (34-64: `parse_signal` admits no other unnamed
        // one), which the kernel delivers like any other; it is only sent to another process here,
        // never given a handler in this one.
        unsafe { Signal::from_raw_unchecked(n) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("Kill"), Some(9));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGRTMIN+3"), Some(37));
        assert_eq!(parse_signal("RTMAX-1"), Some(63));
        assert_eq!(parse_signal("RTMIN"), Some(34));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("65"), None);
        assert_eq!(parse_signal("SIGFOO"), None);
        assert_eq!(parse_signal("RTMIN+40"), None);
        assert_eq!(to_signal(15), Signal::TERM);
    }
}
