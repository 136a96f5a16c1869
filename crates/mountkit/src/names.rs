//! Container names: validation and Docker-style generation.

use crate::{Error, Result};

/// Longest container name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (Docker's rule), at most 128 characters, and
/// not 64 hex digits (which would be mistaken for an ID).
pub fn validate_container_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 128 characters");
    }
    let first = name.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return bad("it must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed (no '/', no spaces)");
    }
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad("64 hex digits would be mistaken for a container ID");
    }
    Ok(())
}

const LEFT: &[&str] = &[
    "admiring", "bold", "brave", "calm", "clever", "eager", "elegant", "focused", "gentle", "happy", "jolly",
    "keen", "kind", "lucid", "modest", "nifty", "patient", "quirky", "serene", "sharp", "stoic", "tender",
    "trusting", "vibrant", "wizardly", "zealous",
];
const RIGHT: &[&str] = &[
    "babbage", "bohr", "curie", "darwin", "euler", "fermi", "galois", "hopper", "hypatia", "kepler",
    "lamport", "lovelace", "meitner", "noether", "pascal", "ritchie", "shannon", "thompson", "torvalds",
    "turing", "wing", "wozniak",
];

/// A random `adjective_scientist` name, as Docker makes; `taken` says which names to avoid (a numeric
/// suffix is added after a few collisions).
pub fn generate_name(taken: &dyn Fn(&str) -> bool) -> String {
    for attempt in 0.. {
        let r = mountkit_safefs::random_hex(4);
        let n = u32::from_str_radix(&r, 16).unwrap_or(0) as usize;
        let mut name = format!(
            "{}_{}",
            LEFT[n % LEFT.len()],
            RIGHT[(n / LEFT.len()) % RIGHT.len()]
        );
        if attempt >= 5 {
            name.push_str(&format!("{}", n % 100));
        }
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["web", "a", "todo-1", "my_app.v2", "A9"] {
            validate_container_name(ok).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            ("-x", "start"),
            ("a/b", "'/'"),
            ("..", "start"),
            ("a b", "spaces"),
            (&"x".repeat(129), "128"),
            (&"a".repeat(64), "ID"),
        ] {
            let e = validate_container_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn generated_names_are_valid_and_avoid_taken_ones() {
        let first = generate_name(&|_| false);
        validate_container_name(&first).unwrap();
        let other = generate_name(&|n| n == first);
        assert_ne!(first, other);
    }
}
