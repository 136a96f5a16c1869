//! Pure rules: how tar member names are normalised or refused, and the OCI whiteout name codec.

/// The OCI whiteout prefix: `.wh.NAME` deletes `NAME` of lower layers.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker: `DIR/.wh..wh..opq` hides everything lower layers have in `DIR`.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs xattr that marks a directory opaque (value `y`).
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a member name means with respect to OCI whiteouts.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// An ordinary name.
    None,
    /// `.wh.NAME`: `NAME` is deleted (overlay: a 0/0 character device named `NAME`).
    Delete(&'a [u8]),
    /// `.wh..wh..opq`: the parent directory is opaque (overlay: `trusted.overlay.opaque=y`).
    Opaque,
    /// Another `.wh..wh.` name (AUFS-internal, such as `.wh..wh.plnk`): meaningless here, skipped.
    Internal,
}

/// Decodes the whiteout meaning of one path component (a file name, not a path).
pub fn decode_whiteout(name: &[u8]) -> Result<Whiteout<'_>, &'static str> {
    let Some(rest) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) else {
        return Ok(Whiteout::None);
    };
    if name == OPAQUE_MARKER.as_bytes() {
        return Ok(Whiteout::Opaque);
    }
    if rest.starts_with(WHITEOUT_PREFIX.as_bytes()) {
        return Ok(Whiteout::Internal);
    }
    if rest.is_empty() || rest == b"." || rest == b".." {
        return Err("whiteout names no file");
    }
    Ok(Whiteout::Delete(rest))
}

/// Encodes the OCI whiteout name that deletes `name`.
pub fn encode_whiteout(name: &[u8]) -> Vec<u8> {
    let mut v = WHITEOUT_PREFIX.as_bytes().to_vec();
    v.extend_from_slice(name);
    v
}

/// Splits a tar member name into its components, as GNU tar and Docker do on extraction:
/// leading `/` are removed (an absolute name is taken relative to the layer root), `.` components and
/// empty components (`a//b`, a trailing `/`) are dropped. A `..` component anywhere is refused, and so
/// is a NUL byte. An empty result means the layer root itself (`.`, `./`, `/`).
pub fn normalise(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.is_empty() {
        return Err("empty member name");
    }
    if name.contains(&0) {
        return Err("member name contains a NUL byte");
    }
    let mut out = Vec::new();
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("member name contains a `..` component"),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_codec() {
        assert_eq!(decode_whiteout(b"file"), Ok(Whiteout::None));
        assert_eq!(decode_whiteout(b".wh.file"), Ok(Whiteout::Delete(b"file")));
        assert_eq!(decode_whiteout(b".wh..hidden"), Ok(Whiteout::Delete(b".hidden")));
        assert_eq!(decode_whiteout(b".wh..wh..opq"), Ok(Whiteout::Opaque));
        assert_eq!(decode_whiteout(b".wh..wh.plnk"), Ok(Whiteout::Internal));
        assert!(decode_whiteout(b".wh.").is_err());
        assert!(decode_whiteout(b".wh..").is_err());
        assert!(decode_whiteout(b".wh...").is_err());
        assert_eq!(decode_whiteout(b"x.wh.y"), Ok(Whiteout::None));
        for n in [&b"a"[..], b".b", b"with space"] {
            assert_eq!(decode_whiteout(&encode_whiteout(n)), Ok(Whiteout::Delete(n)));
        }
    }

    #[test]
    fn normalisation_and_rejection() {
        let n = |s: &str| {
            normalise(s.as_bytes()).map(|v| {
                v.iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(n("a/b/c").unwrap(), ["a", "b", "c"]);
        assert_eq!(n("./a/b/").unwrap(), ["a", "b"]);
        assert_eq!(
            n("/abs/x").unwrap(),
            ["abs", "x"],
            "absolute names are made relative, as tar does"
        );
        assert_eq!(n("//a//./b").unwrap(), ["a", "b"]);
        assert_eq!(
            n("a/..b/c..").unwrap(),
            ["a", "..b", "c.."],
            "only a whole `..` component is refused"
        );
        assert!(n(".").unwrap().is_empty());
        assert!(n("./").unwrap().is_empty());
        assert!(n("/").unwrap().is_empty());
        for bad in ["../x", "a/../../etc/passwd", "a/..", "/..", ""] {
            assert!(n(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(normalise(b"a\0b").is_err());
    }
}
