//! Volume names: Docker's rule and generated names.

use crate::{Error, Result};

/// Checks `name` against Docker's rule for volume names, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
///
/// The rule keeps names out of path syntax (no `/`, no leading `.`), so a name is always one directory
/// entry of the registry. The error quotes the name.
///
/// ```
/// use mountkit_volumes::validate_name;
/// assert!(validate_name("todo-list").is_ok());
/// let err = validate_name("../etc").unwrap_err();
/// assert!(err.to_string().contains("\"../etc\""));
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return invalid("it is empty");
    };
    if !first.is_ascii_alphanumeric() {
        return invalid("it must start with a letter or a digit ([a-zA-Z0-9][a-zA-Z0-9_.-]+)");
    }
    if bytes.len() < 2 {
        return invalid("it must be at least two characters long ([a-zA-Z0-9][a-zA-Z0-9_.-]+)");
    }
    if !bytes[1..]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return invalid("only letters, digits, '_', '.' and '-' are allowed ([a-zA-Z0-9][a-zA-Z0-9_.-]+)");
    }
    Ok(())
}

/// A new random volume name: 64 hex digits (32 bytes from the kernel's CSPRNG), like Docker's.
pub(crate) fn generate() -> String {
    mountkit_safefs::random_hex(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_names() {
        for ok in ["ab", "todo-list", "a.b_c-d", "0x", "Data.2", &"f".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok:?} should be valid");
        }
    }

    #[test]
    fn rejects_bad_names_and_quotes_them() {
        for bad in [
            "", "a", "-ab", ".ab", "_ab", "a/b", "..", "../x", "a b", "ä1", "ab\n", "a:b",
        ] {
            let err = validate_name(bad).expect_err(bad);
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "{err} should quote {bad:?}"
            );
        }
    }

    #[test]
    fn generated_names_are_valid_64_hex() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        validate_name(&a).unwrap();
    }
}
