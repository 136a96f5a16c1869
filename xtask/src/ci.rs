//! `cargo xtask ci`: set-up, then fmt, clippy and the whole test suite with cargo-nextest.
//!
//! Set-up is idempotent: as root it installs what is missing (apt packages, cargo-nextest); as another
//! user it says exactly what to install. `--no-vm` skips the QEMU stage; `--no-lint` skips fmt and clippy.

use std::process::Command;

use anyhow::{Context, bail};

/// Debian packages the host test suite needs (beyond a Rust toolchain).
const HOST_PACKAGES: &[&str] = &[
    "coreutils",
    "libc-bin",
    "util-linux",
    "e2fsprogs",
    "tar",
    "gzip",
    "zstd",
    // A static busybox at /bin/busybox: the confinement tests bind it into containers for `mount`,
    // `umount`, `mknod` (the sample image has none of them). vm-test wants the same package.
    "busybox-static",
    // tests/sshfs.rs: a FUSE network filesystem on the host (sshfs to an sshd the test starts on
    // 127.0.0.1 with its own keys and config; nothing of the host's ssh set-up is used).
    "sshfs",
    "openssh-server",
    // tests/nfs.rs in the vm-test guests: rpc.nfsd, rpc.mountd, exportfs are staged from the host
    // (vm/host-tools); the host's own kernel has no NFS, and no NFS service is started here.
    "nfs-kernel-server",
    // mkfs.xfs: the size-limit tests (project quota on XFS) and the reflink test of `volume clone`
    // make an XFS on a loop device in their temp dir.
    "xfsprogs",
];

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs a command, echoing it, and fails with its status.
pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {cmd} {}", args.join(" "));
    let status = Command::new(cmd)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {cmd}"))?;
    if !status.success() {
        bail!("`{cmd} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn missing_packages(pkgs: &[&str]) -> Vec<String> {
    pkgs.iter()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .map(|p| p.to_string())
        .collect()
}

/// Installs missing Debian packages as root (running `apt-get update` once first), or explains.
pub fn ensure_packages(pkgs: &[&str], extra_apt_args: &[&str]) -> anyhow::Result<()> {
    let missing = missing_packages(pkgs);
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; install them with: sudo apt-get install {} {}",
            missing.join(" "),
            extra_apt_args.join(" "),
            missing.join(" ")
        );
    }
    run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend_from_slice(extra_apt_args);
    args.extend(missing.iter().map(String::as_str));
    let status = Command::new("apt-get")
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}

fn ensure_nextest() -> anyhow::Result<()> {
    let have = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if have {
        return Ok(());
    }
    eprintln!("cargo-nextest is missing: installing it from crates.io");
    run("cargo", &["install", "--locked", "cargo-nextest"])
}

/// Host set-up shared by `ci` and `demo`.
pub fn setup_host() -> anyhow::Result<()> {
    ensure_packages(HOST_PACKAGES, &[])?;
    ensure_nextest()
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let has = |f: &str| args.iter().any(|a| a == f);
    setup_host()?;
    let root = is_root();
    if !root {
        eprintln!(
            "note: not root: the privileged tests are #[ignore]d and nextest reports them as skipped; run as root for the whole suite"
        );
    }
    if !has("--no-lint") {
        run("cargo", &["fmt", "--all", "--", "--check"])?;
        run(
            "cargo",
            &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        )?;
    }
    // Privileged tests are #[ignore]d (they need root): root runs them too; another user sees them skipped.
    let mut nextest = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
    if root {
        nextest.extend(["--run-ignored", "all"]);
    }
    run("cargo", &nextest)?;
    // nextest does not run doctests: the crates' examples are run here.
    run("cargo", &["test", "--workspace", "--doc"])?;
    if !has("--no-vm") {
        // The harness first: a failing, a panicking and a hanging guest must each be reported as such.
        crate::vm::main(&["--self-test".to_string()])?;
        crate::vm::main(&[])?;
    }
    Ok(())
}
