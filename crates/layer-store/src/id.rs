//! Layer identifiers (`sha256:<hex>`, the OCI `diff_id`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// The identity of a layer: the sha256 of its uncompressed tar stream (OCI `diff_id`).
///
/// Displays as `sha256:<64 lowercase hex>`; parses from that form or from the bare hex.
///
/// ```
/// use mountkit_layer_store::LayerId;
/// let hex = "a".repeat(64);
/// let id: LayerId = format!("sha256:{hex}").parse().unwrap();
/// assert_eq!(id.hex(), hex);
/// assert_eq!(id, hex.parse().unwrap());
/// assert!("sha256:abc".parse::<LayerId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LayerId(String);

impl LayerId {
    /// The 64 hex characters, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// Builds an ID from a finished sha256 digest.
    pub(crate) fn from_digest(digest: &[u8]) -> LayerId {
        LayerId(hex::encode(digest))
    }
}

/// True when `s` is lowercase hexadecimal (and non-empty).
pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl FromStr for LayerId {
    type Err = Error;

    fn from_str(s: &str) -> Result<LayerId, Error> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() != 64 || !is_lower_hex(hex) {
            return Err(Error::InvalidId {
                what: "layer ID",
                input: s.into(),
                reason: "expected sha256:<64 lowercase hex digits>".into(),
            });
        }
        Ok(LayerId(hex.into()))
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl Serialize for LayerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LayerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LayerId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Normalises a user's reference to a hex prefix: strips `sha256:`, checks it is lowercase hex of
/// 4 to 64 characters. `None` when it cannot be an ID or prefix.
pub(crate) fn hex_prefix(input: &str) -> Option<&str> {
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    (hex.len() >= 4 && hex.len() <= 64 && is_lower_hex(hex)).then_some(hex)
}

/// Picks the one candidate whose hex starts with `prefix`.
///
/// `Ok(None)` when none matches, `Err(matches)` when several do; a full-length match always wins.
pub(crate) fn pick_by_prefix<'a, I>(prefix: &str, candidates: I) -> Result<Option<&'a str>, Vec<&'a str>>
where
    I: IntoIterator<Item = &'a str>,
{
    let matches: Vec<&str> = candidates.into_iter().filter(|c| c.starts_with(prefix)).collect();
    if let Some(exact) = matches.iter().find(|c| c.len() == prefix.len()) {
        return Ok(Some(exact));
    }
    match matches.len() {
        0 => Ok(None),
        1 => Ok(Some(matches[0])),
        _ => Err(matches),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_both_forms_and_rejects_bad_ones() {
        let hex = "0123456789abcdef".repeat(4);
        let a: LayerId = hex.parse().unwrap();
        let b: LayerId = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), format!("sha256:{hex}"));
        for bad in [
            "",
            "sha256:",
            "xyz",
            &hex[..63],
            &hex.to_uppercase(),
            &format!("sha512:{hex}"),
        ] {
            let err = bad.parse::<LayerId>().unwrap_err().to_string();
            assert!(err.contains("layer ID"), "{bad}: {err}");
        }
    }

    #[test]
    fn serde_round_trip_uses_display_form() {
        let id: LayerId = "f".repeat(64).parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"sha256:{}\"", "f".repeat(64)));
        assert_eq!(serde_json::from_str::<LayerId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<LayerId>("\"sha256:12\"").is_err());
    }

    #[test]
    fn prefix_lookup() {
        let ids = ["abcd1111", "abcd2222", "ef001234"];
        assert_eq!(hex_prefix("sha256:abcd"), Some("abcd"));
        assert_eq!(hex_prefix("abc"), None, "too short");
        assert_eq!(hex_prefix("ABCD"), None, "uppercase is not an ID");
        assert_eq!(pick_by_prefix("ef00", ids), Ok(Some("ef001234")));
        assert_eq!(pick_by_prefix("abcd1", ids), Ok(Some("abcd1111")));
        assert_eq!(pick_by_prefix("abcd", ids), Err(vec!["abcd1111", "abcd2222"]));
        assert_eq!(pick_by_prefix("9999", ids), Ok(None));
        assert_eq!(
            pick_by_prefix("abcd", ["abcd", "abcd11"]),
            Ok(Some("abcd")),
            "exact wins"
        );
    }
}
