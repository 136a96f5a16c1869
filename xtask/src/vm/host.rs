//! Host set-up: the Debian packages vm-test needs, the bookworm-backports apt source, KVM detection;
//! running host programs ([`output`]).

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Debian packages the host needs, with the apt target release each comes from (`None` = default).
///
/// `qemu-system-x86` comes from backports because these machines ship `qemu-utils` 10 from backports,
/// which `Breaks:` bookworm's `qemu-system-common` 7.2. `busybox-static` provides the guest's shell and
/// applets; `e2fsprogs` (`mkfs.ext4 -d`) builds the test disk; `xz-utils` unpacks 6.12's `.ko.xz` modules;
/// `nfs-kernel-server` only provides the NFS server's programs that are staged into the guests.
pub const HOST_PACKAGES: &[(&str, Option<&str>)] = &[
    ("qemu-system-x86", Some("backports")),
    ("busybox-static", Some("backports")),
    ("e2fsprogs", None),
    ("xz-utils", None),
    // rpc.nfsd, rpc.mountd, exportfs for the guests' NFS server (vm/host-tools, tests/nfs.rs).
    ("nfs-kernel-server", None),
];

/// Name of the apt source file that [`ensure_host_packages`] writes when backports are missing.
pub const BACKPORTS_SOURCE_FILE: &str = "/etc/apt/sources.list.d/mountkit-vm-backports.sources";

/// Makes sure the host has what vm-test needs (QEMU, busybox-static, mkfs.ext4, xz, a backports source).
///
/// As root, installs what is missing with apt-get (adding a `<codename>-backports` source that reuses
/// the URI of the machine's existing Debian source; no host name is written into the repository).
/// As another user, fails with the exact commands to run.
pub fn ensure_host_packages() -> Result<()> {
    let codename = debian_codename()?;
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !package_installed(p))
        .collect();
    let backports = format!("{codename}-backports");
    let need_backports_source = !backports_source_present(&backports);
    if missing.is_empty() && !need_backports_source {
        return Ok(());
    }
    let is_root = effective_uid() == 0;
    if !is_root {
        let mut msg = String::from("vm-test needs host set-up that only root can do; run as root:\n");
        if need_backports_source {
            msg.push_str(&format!(
                "  add a '{backports}' apt source (same URI as your Debian source), e.g. {BACKPORTS_SOURCE_FILE}\n"
            ));
        }
        msg.push_str(&format!(
            "  apt-get update && apt-get install -y -t {backports} {}",
            missing.join(" ")
        ));
        bail!(msg);
    }
    if need_backports_source {
        let (uri, signed_by) = existing_debian_source(&codename)?;
        let text = backports_stanza(&uri, &backports, signed_by.as_deref());
        std::fs::write(BACKPORTS_SOURCE_FILE, text)
            .with_context(|| format!("writing apt source {BACKPORTS_SOURCE_FILE:?}"))?;
        eprintln!("vm-test: added apt source {BACKPORTS_SOURCE_FILE} ({uri} {backports})");
    }
    run(Command::new("apt-get").args(["update", "-q"]), "apt-get update")?;
    if !missing.is_empty() {
        let bp: Vec<&str> = missing
            .iter()
            .copied()
            .filter(|p| HOST_PACKAGES.iter().any(|(q, t)| q == p && t.is_some()))
            .collect();
        let plain: Vec<&str> = missing.iter().copied().filter(|p| !bp.contains(p)).collect();
        if !bp.is_empty() {
            eprintln!("vm-test: installing {} from {backports}", bp.join(" "));
            run(
                Command::new("apt-get")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(["install", "-y", "-q", "--no-install-recommends", "-t", &backports])
                    .args(&bp),
                "apt-get install (backports)",
            )?;
        }
        if !plain.is_empty() {
            eprintln!("vm-test: installing {}", plain.join(" "));
            run(
                Command::new("apt-get")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(["install", "-y", "-q", "--no-install-recommends"])
                    .args(&plain),
                "apt-get install",
            )?;
        }
    }
    Ok(())
}

fn effective_uid() -> u32 {
    // /proc/self/status "Uid:\treal\teffective\t..." avoids a libc dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout. `starting` is the error when it cannot start; when it fails, the
/// error is `<failed> failed: <its stderr>`.
pub fn output(cmd: &mut Command, starting: &str, failed: &str) -> Result<Vec<u8>> {
    let o = cmd.output().with_context(|| starting.to_string())?;
    if !o.status.success() {
        bail!("{failed} failed: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(o.stdout)
}

/// True when dpkg says `pkg` is installed.
pub fn package_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", pkg])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).ends_with("installed"))
        .unwrap_or(false)
}

fn debian_codename() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .context("/etc/os-release has no VERSION_CODENAME (vm-test's set-up expects Debian)")
}

fn apt_source_texts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        out.push(("/etc/apt/sources.list".to_string(), t));
    }
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let name = p.to_string_lossy().to_string();
            if (name.ends_with(".list") || name.ends_with(".sources"))
                && let Ok(t) = std::fs::read_to_string(&p)
            {
                out.push((name, t));
            }
        }
    }
    out
}

fn backports_source_present(suite: &str) -> bool {
    apt_source_texts().iter().any(|(name, text)| {
        let sources = if name.ends_with(".sources") {
            parse_deb822(text)
        } else {
            parse_one_line(text)
        };
        sources.iter().any(|s| s.suites.iter().any(|x| x == suite))
    })
}

fn existing_debian_source(codename: &str) -> Result<(String, Option<String>)> {
    for (name, text) in apt_source_texts() {
        let sources = if name.ends_with(".sources") {
            parse_deb822(&text)
        } else {
            parse_one_line(&text)
        };
        if let Some(s) = sources
            .into_iter()
            .find(|s| s.suites.iter().any(|x| x == codename))
        {
            return Ok((s.uri, s.signed_by));
        }
    }
    bail!(
        "no apt source names suite {codename:?} in /etc/apt/sources.list or /etc/apt/sources.list.d/; \
         cannot derive a {codename}-backports source"
    )
}

/// One apt source: its first URI, its suites and its `Signed-By` keyring, if any.
#[derive(Debug, PartialEq)]
pub struct AptSource {
    /// The archive URI (the first one of a deb822 stanza).
    pub uri: String,
    /// Suites (`bookworm`, `bookworm-updates`, ...).
    pub suites: Vec<String>,
    /// The `Signed-By` value, if the source has one.
    pub signed_by: Option<String>,
}

/// Parses deb822 `.sources` text into the `Types: deb` stanzas it contains.
pub fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut types = String::new();
        let mut uri = None;
        let mut suites = Vec::new();
        let mut signed_by = None;
        let mut enabled = true;
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "types" => types = v.to_string(),
                "uris" => uri = v.split_whitespace().next().map(str::to_string),
                "suites" => suites = v.split_whitespace().map(str::to_string).collect(),
                "signed-by" => signed_by = Some(v.to_string()),
                "enabled" => enabled = v != "no",
                _ => {}
            }
        }
        if enabled
            && types.split_whitespace().any(|t| t == "deb")
            && let Some(uri) = uri
        {
            out.push(AptSource {
                uri,
                suites,
                signed_by,
            });
        }
    }
    out
}

/// Parses one-line-style `sources.list` text (`deb [opts] URI SUITE COMPONENT...`).
pub fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        let mut signed_by = None;
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                let opt = w.trim_start_matches('[').trim_end_matches(']');
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptSource {
            uri: uri.to_string(),
            suites: vec![suite.to_string()],
            signed_by,
        });
    }
    out
}

/// The deb822 stanza vm-test writes for `<codename>-backports`.
pub fn backports_stanza(uri: &str, suite: &str, signed_by: Option<&str>) -> String {
    let mut s = format!(
        "# Added by `cargo xtask vm-test` (mountkit): QEMU and busybox-static for the test guests.\n\
         Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: main\n"
    );
    if let Some(k) = signed_by {
        s.push_str(&format!("Signed-By: {k}\n"));
    }
    s
}

/// True when QEMU can use KVM: `/dev/kvm` opens read-write and the CPU shows `vmx` or `svm`.
///
/// On PVM hosts `/dev/kvm` exists but stock kernels do not boot under it (see vm-notes.md), and
/// those hosts show neither flag.
pub fn kvm_usable() -> bool {
    let dev_ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let cpu_ok = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| cpuinfo_has_virt(&c))
        .unwrap_or(false);
    dev_ok && cpu_ok
}

/// True when a `/proc/cpuinfo` text lists `vmx` or `svm` in a `flags` line.
pub fn cpuinfo_has_virt(cpuinfo: &str) -> bool {
    cpuinfo.lines().filter(|l| l.starts_with("flags")).any(|l| {
        l.split_once(':')
            .is_some_and(|(_, f)| f.split_whitespace().any(|w| w == "vmx" || w == "svm"))
    })
}

#[cfg(test)]
/// Finds an executable by name on `PATH` (plus the sbin directories, which non-root PATHs may lack).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_stanzas() {
        let text = "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                    Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\nTypes: deb-src\nURIs: http://x\nSuites: bookworm\n";
        let s = parse_deb822(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].uri, "http://mirror.example/debian");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(s[0].signed_by.as_deref(), Some("/usr/share/keyrings/k.gpg"));
    }

    #[test]
    fn one_line_sources() {
        let text = "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main\ndeb-src http://m bookworm main\n\
                    deb http://m/debian bookworm-backports main contrib\n";
        let s = parse_one_line(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uri, "http://m/debian");
        assert_eq!(s[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(s[1].suites, ["bookworm-backports"]);
    }

    #[test]
    fn stanza_reuses_uri_and_key() {
        let s = backports_stanza("http://m/debian", "bookworm-backports", Some("/k.gpg"));
        let parsed = parse_deb822(&s);
        assert_eq!(
            parsed,
            [AptSource {
                uri: "http://m/debian".into(),
                suites: vec!["bookworm-backports".into()],
                signed_by: Some("/k.gpg".into())
            }]
        );
    }

    #[test]
    fn virt_flags() {
        assert!(cpuinfo_has_virt("processor: 0\nflags\t\t: fpu vme vmx sse\n"));
        assert!(!cpuinfo_has_virt(
            "flags\t\t: fpu vme sse svmx\nmodel name: svm\n"
        ));
    }
}
