//! The stack description (builder), validation, escaping and the classic option string.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The most lower layers overlayfs stacks (`OVL_MAX_STACK` in `fs/overlayfs/params.h`).
pub const MAX_LOWER_LAYERS: usize = 500;

/// Options this crate sets itself; callers may not pass them through [`Stack::option`].
const RESERVED_KEYS: &[&str] = &[
    "lowerdir",
    "lowerdir+",
    "datadir+",
    "upperdir",
    "workdir",
    "source",
];

/// An overlay stack: read-only lower layers (bottom first), an optional upper and work directory,
/// and extra overlay options.
///
/// Lowers are listed **bottom first**, the order in which image layers are listed (OCI manifests,
/// `docker history` reversed): the last lower added is the top-most read-only layer and wins over
/// the ones before it. The kernel's `lowerdir=` wants the opposite (top first); [`crate::mount`]
/// converts.
///
/// ```
/// use mountkit_overlay::Stack;
/// let stack = Stack::new()
///     .lower("/layers/base")
///     .lower("/layers/app")            // wins over base
///     .upper("/c1/upper", "/c1/work")  // the container's writable layer
///     .option("index", Some("on"));    // keep hard links across copy-up
/// assert_eq!(stack.lower_dirs().len(), 2);
/// assert_eq!(stack.top_first().next().unwrap(), std::path::Path::new("/layers/app"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    lowers: Vec<PathBuf>,
    upper: Option<(PathBuf, PathBuf)>,
    options: Vec<(String, Option<String>)>,
}

impl Stack {
    /// An empty stack (add at least one lower before mounting).
    pub fn new() -> Stack {
        Stack::default()
    }

    /// Adds a lower layer above the ones added so far (bottom first).
    pub fn lower(mut self, p: impl Into<PathBuf>) -> Self {
        self.lowers.push(p.into());
        self
    }

    /// Adds lower layers, bottom first, above the ones added so far.
    pub fn lowers(mut self, ps: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.lowers.extend(ps.into_iter().map(Into::into));
        self
    }

    /// Sets the writable layer (`upperdir`) and overlayfs' scratch directory (`workdir`); both must
    /// exist, be empty directories the first time, and sit on the same filesystem. Without an
    /// upper the overlay is read-only.
    pub fn upper(mut self, upper: impl Into<PathBuf>, work: impl Into<PathBuf>) -> Self {
        self.upper = Some((upper.into(), work.into()));
        self
    }

    /// Adds an extra overlay option: `key=value`, or a flag when `value` is `None`.
    ///
    /// By default none is added and the kernel's (module) defaults apply. Useful ones:
    /// - `index=on|off`: the inode index. With it, copy-up of one name of a hard-linked lower file
    ///   keeps the link (all names see the change); **without it copy-up breaks the link**.
    ///   It also pins the upper to these lowers (a later mount with other lowers fails, ESTALE).
    /// - `redirect_dir=on|follow|nofollow|off`: lets `rename(2)` of a merged directory work
    ///   (otherwise EXDEV, and tools fall back to copy); `follow` only honours existing redirects.
    /// - `metacopy=on|off`: copy only metadata on chown/chmod; never with untrusted layers.
    /// - `userxattr`: store overlay xattrs as `user.overlay.*` (rootless, in a user namespace).
    /// - `volatile`: skip all syncs of the upper; for throwaway containers only (after a crash the
    ///   upper must be discarded).
    /// - `xino=on|off|auto`, `uuid=...`, `nfs_export=...`, `verity=...`, `default_permissions`.
    ///
    /// Keys the crate sets itself (`lowerdir`, `lowerdir+`, `datadir+`, `upperdir`, `workdir`,
    /// `source`) are refused at mount time, as are keys or values containing `,`, `=` (key) or NUL.
    pub fn option(mut self, key: &str, value: Option<&str>) -> Self {
        self.options.push((key.to_owned(), value.map(str::to_owned)));
        self
    }

    /// The lower layers, bottom first, as added.
    pub fn lower_dirs(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// The lower layers top first (the kernel's `lowerdir=` order).
    pub fn top_first(&self) -> impl Iterator<Item = &Path> {
        self.lowers.iter().rev().map(PathBuf::as_path)
    }

    /// The upper and work directories, if any.
    pub fn upper_dirs(&self) -> Option<(&Path, &Path)> {
        self.upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path()))
    }

    /// The extra options, in the order given.
    pub fn extra_options(&self) -> &[(String, Option<String>)] {
        &self.options
    }

    /// Checks everything that can be checked without touching the filesystem: layer count
    /// (1..=[`MAX_LOWER_LAYERS`], and at least 2 without an upper, as overlayfs requires), paths
    /// (non-empty, no NUL) and extra options.
    pub fn validate(&self) -> Result<()> {
        if self.lowers.is_empty() {
            return Err(Error::NoLowerLayers);
        }
        if self.lowers.len() > MAX_LOWER_LAYERS {
            return Err(Error::TooManyLayers {
                count: self.lowers.len(),
                max: MAX_LOWER_LAYERS,
            });
        }
        if self.lowers.len() == 1 && self.upper.is_none() {
            return Err(Error::SingleLowerWithoutUpper);
        }
        for (i, p) in self.lowers.iter().enumerate() {
            check_path(p, || self.lower_role(i))?;
        }
        if let Some((u, w)) = &self.upper {
            check_path(u, || "upperdir".into())?;
            check_path(w, || "workdir".into())?;
        }
        for (key, value) in &self.options {
            validate_option(key, value.as_deref())?;
        }
        Ok(())
    }

    /// How lower `index` (bottom first) is named in errors: `lower layer 3 (of 5, 0 = bottom)`.
    pub(crate) fn lower_role(&self, index: usize) -> String {
        format!("lower layer {index} (of {}, 0 = bottom)", self.lowers.len())
    }
}

fn check_path(p: &Path, role: impl FnOnce() -> String) -> Result<()> {
    let bytes = p.as_os_str().as_bytes();
    let reason = if bytes.is_empty() {
        "the path is empty"
    } else if bytes.contains(&0) {
        "the path contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidPath {
        role: role(),
        path: p.to_path_buf(),
        reason,
    })
}

fn validate_option(key: &str, value: Option<&str>) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidOption {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("the key is empty");
    }
    if RESERVED_KEYS.contains(&key) {
        return bad("this option is set by mountkit-overlay from the stack's layers");
    }
    if key.contains([',', '=', '\0']) || key.chars().any(char::is_whitespace) {
        return bad("the key contains ',', '=', NUL or whitespace");
    }
    if let Some(v) = value
        && v.contains([',', '\0'])
    {
        return bad("the value contains ',' or NUL");
    }
    Ok(())
}

/// Escapes a path for the classic `mount(2)` option string of overlayfs: a backslash is put
/// before every `\`, `,` and `:`.
///
/// Why these: the kernel splits the option string at unescaped `,` (`ovl_next_opt`), splits
/// `lowerdir=` at unescaped `:` (a double `::` marks data-only layers), and then removes one
/// backslash before any character of each path (`ovl_unescape`), also for `upperdir`/`workdir`.
/// `=` needs no escape (only the first `=` of an option separates key and value).
///
/// Fails for an empty path, one containing NUL, or one that is not UTF-8 (the mount itself accepts
/// non-UTF-8 paths; this function returns a `String` for display and tests).
///
/// ```
/// use std::path::Path;
/// use mountkit_overlay::escape_classic;
/// assert_eq!(escape_classic(Path::new("/l/a,b:c\\d")).unwrap(), r"/l/a\,b\:c\\d");
/// ```
pub fn escape_classic(path: &Path) -> Result<String> {
    check_path(path, || "path".into())?;
    let escaped = escape_bytes(path.as_os_str().as_bytes());
    String::from_utf8(escaped).map_err(|_| Error::InvalidPath {
        role: "path".into(),
        path: path.to_path_buf(),
        reason: "the path is not valid UTF-8",
    })
}

/// Byte version of [`escape_classic`] (no checks).
pub(crate) fn escape_bytes(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 8);
    for &b in raw {
        if matches!(b, b'\\' | b',' | b':') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Builds the classic option string from already-escaped names: `lowerdir=TOP:...:BOTTOM`,
/// then `upperdir=`, `workdir=`, then the extra options, comma-separated, without the final NUL.
///
/// `lowers_top_first` must be top first.
pub fn classic_option_string(
    lowers_top_first: &[Vec<u8>],
    upper_work: Option<(&[u8], &[u8])>,
    extra: &[(String, Option<String>)],
) -> Vec<u8> {
    let mut s = Vec::with_capacity(classic_option_len(lowers_top_first, upper_work, extra));
    s.extend_from_slice(b"lowerdir=");
    for (i, l) in lowers_top_first.iter().enumerate() {
        if i > 0 {
            s.push(b':');
        }
        s.extend_from_slice(l);
    }
    if let Some((u, w)) = upper_work {
        s.extend_from_slice(b",upperdir=");
        s.extend_from_slice(u);
        s.extend_from_slice(b",workdir=");
        s.extend_from_slice(w);
    }
    for (k, v) in extra {
        s.push(b',');
        s.extend_from_slice(k.as_bytes());
        if let Some(v) = v {
            s.push(b'=');
            s.extend_from_slice(v.as_bytes());
        }
    }
    s
}

/// The length [`classic_option_string`] will have (bytes, without the NUL), computed without
/// building it.
pub fn classic_option_len(
    lowers_top_first: &[Vec<u8>],
    upper_work: Option<(&[u8], &[u8])>,
    extra: &[(String, Option<String>)],
) -> usize {
    let lowers: usize =
        lowers_top_first.iter().map(Vec::len).sum::<usize>() + lowers_top_first.len().saturating_sub(1);
    let upper = upper_work.map_or(0, |(u, w)| {
        ",upperdir=".len() + u.len() + ",workdir=".len() + w.len()
    });
    let extra: usize = extra
        .iter()
        .map(|(k, v)| 1 + k.len() + v.as_ref().map_or(0, |v| 1 + v.len()))
        .sum();
    "lowerdir=".len() + lowers + upper + extra
}

/// The longest classic option string the kernel takes: one page, including the final NUL.
pub fn classic_options_limit() -> usize {
    rustix::param::page_size() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_comma() {
        assert_eq!(escape_classic(Path::new("/a,b")).unwrap(), r"/a\,b");
    }

    #[test]
    fn escape_colon() {
        assert_eq!(escape_classic(Path::new("/a:b::c")).unwrap(), r"/a\:b\:\:c");
    }

    #[test]
    fn escape_backslash() {
        assert_eq!(escape_classic(Path::new(r"/a\b")).unwrap(), r"/a\\b");
    }

    #[test]
    fn escape_all_three_and_leaves_others() {
        assert_eq!(
            escape_classic(Path::new(r"/x y/a,b:c\d=e")).unwrap(),
            r"/x y/a\,b\:c\\d=e"
        );
    }

    #[test]
    fn escape_refuses_empty_and_nul() {
        assert!(matches!(
            escape_classic(Path::new("")),
            Err(Error::InvalidPath { .. })
        ));
        let nul = std::ffi::OsStr::from_bytes(b"/a\0b");
        assert!(matches!(
            escape_classic(Path::new(nul)),
            Err(Error::InvalidPath { .. })
        ));
    }

    /// Mirrors the kernel's parse of an escaped lowerdir value (split at unescaped ':', then remove
    /// one backslash before any char) to prove the escape round-trips.
    fn kernel_split_unescape(s: &[u8]) -> Vec<Vec<u8>> {
        let mut out = vec![Vec::new()];
        let mut it = s.iter();
        while let Some(&b) = it.next() {
            match b {
                b'\\' => {
                    if let Some(&n) = it.next() {
                        out.last_mut().unwrap().push(n);
                    }
                }
                b':' => out.push(Vec::new()),
                _ => out.last_mut().unwrap().push(b),
            }
        }
        out
    }

    #[test]
    fn escaped_lowers_round_trip_through_kernel_parse() {
        let paths: [&[u8]; 3] = [b"/a,b", br"/c:\d", b"/plain"];
        let escaped: Vec<Vec<u8>> = paths.iter().map(|p| escape_bytes(p)).collect();
        let s = classic_option_string(&escaped, None, &[]);
        let value = s.strip_prefix(b"lowerdir=").unwrap();
        // No unescaped comma may remain, or the option would be cut.
        let mut prev_bs = false;
        for &b in value {
            assert!(b != b',' || prev_bs, "unescaped comma in {value:?}");
            prev_bs = b == b'\\' && !prev_bs;
        }
        let back = kernel_split_unescape(value);
        assert_eq!(back, paths.iter().map(|p| p.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn option_string_layout_and_len() {
        let lowers = vec![b"top".to_vec(), b"mid".to_vec(), b"bot".to_vec()];
        let extra = vec![
            ("index".to_string(), Some("on".to_string())),
            ("volatile".to_string(), None),
        ];
        let s = classic_option_string(&lowers, Some((b"up", b"wk")), &extra);
        assert_eq!(
            s,
            b"lowerdir=top:mid:bot,upperdir=up,workdir=wk,index=on,volatile".to_vec()
        );
        assert_eq!(classic_option_len(&lowers, Some((b"up", b"wk")), &extra), s.len());
        let single = vec![b"/only".to_vec()];
        assert_eq!(
            classic_option_len(&single, None, &[]),
            classic_option_string(&single, None, &[]).len()
        );
    }

    #[test]
    fn five_hundred_fd_names_fit_in_a_page() {
        // The classic fallback names layers by fd number; fds are allocated lowest first, so 502
        // fds in a process with up to ~500 others open have at most 4 digits. Worst case here:
        // every name 4 digits, upper/work too.
        let lowers: Vec<Vec<u8>> = (0..MAX_LOWER_LAYERS)
            .map(|i| format!("{}", 1000 + i).into_bytes())
            .collect();
        let len = classic_option_len(
            &lowers,
            Some((b"1500", b"1501")),
            &[("index".into(), Some("off".into()))],
        );
        assert_eq!(len, 9 + 500 * 4 + 499 + 10 + 4 + 9 + 4 + 10);
        assert!(len <= 4095, "{len}");
        // Absolute paths of a typical store do not fit: that is why the fallback exists.
        let long: Vec<Vec<u8>> = (0..MAX_LOWER_LAYERS)
            .map(|i| format!("/var/lib/mountkit/layers/{i:064}/diff").into_bytes())
            .collect();
        assert!(classic_option_len(&long, None, &[]) > 4095);
    }

    #[test]
    fn too_many_layers_is_refused_before_any_syscall() {
        let s = Stack::new().lowers((0..=MAX_LOWER_LAYERS).map(|i| format!("/nonexistent/{i}")));
        match s.validate() {
            Err(Error::TooManyLayers { count, max }) => {
                assert_eq!((count, max), (501, 500));
            }
            other => panic!("expected TooManyLayers, got {other:?}"),
        }
        // And through mount(): same error, although none of the paths exists.
        let err = crate::mount(&s, Path::new("/nonexistent-target"), crate::Method::Classic).unwrap_err();
        assert!(
            matches!(err, Error::TooManyLayers { count: 501, max: 500 }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "overlay stack has 501 lower layers; the kernel stacks at most 500"
        );
    }

    #[test]
    fn empty_stack_and_bad_options_are_refused() {
        assert!(matches!(Stack::new().validate(), Err(Error::NoLowerLayers)));
        assert!(matches!(
            Stack::new().lower("/l").validate(),
            Err(Error::SingleLowerWithoutUpper)
        ));
        assert!(Stack::new().lower("/l").upper("/u", "/w").validate().is_ok());
        assert!(Stack::new().lowers(["/a", "/b"]).validate().is_ok());
        for (k, v) in [
            ("lowerdir", Some("/x")),
            ("upperdir", Some("/u")),
            ("a,b", None),
            ("", None),
        ] {
            let s = Stack::new().lowers(["/l", "/m"]).option(k, v);
            assert!(matches!(s.validate(), Err(Error::InvalidOption { .. })), "{k:?}");
        }
        let s = Stack::new()
            .lowers(["/l", "/m"])
            .option("index", Some("on,upperdir=/etc"));
        assert!(matches!(s.validate(), Err(Error::InvalidOption { .. })));
        let ok = Stack::new()
            .lowers(["/l", "/m"])
            .option("index", Some("on"))
            .option("volatile", None);
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn lowers_are_bottom_first_and_converted_top_first() {
        let s = Stack::new().lower("/b").lowers(["/m", "/t"]);
        assert_eq!(s.lower_dirs(), &[PathBuf::from("/b"), "/m".into(), "/t".into()]);
        assert_eq!(
            s.top_first().collect::<Vec<_>>(),
            vec![Path::new("/t"), Path::new("/m"), Path::new("/b")]
        );
        assert_eq!(s.lower_role(0), "lower layer 0 (of 3, 0 = bottom)");
    }
}
