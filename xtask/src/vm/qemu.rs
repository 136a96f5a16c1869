//! Starting QEMU, reading its serial console line by line, enforcing the timeout.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// What one QEMU run produced.
#[derive(Debug)]
pub struct QemuRun {
    /// Serial console lines (line terminators removed).
    pub lines: Vec<String>,
    /// QEMU's exit status (`None` when killed by a signal, including our own kill on timeout).
    pub rc: Option<i32>,
    /// `Some(seconds)` when the timeout expired and QEMU was killed.
    pub timed_out: Option<u64>,
    /// QEMU's stderr (its own error messages).
    pub stderr: String,
    /// Wall time from start to exit.
    pub elapsed: Duration,
}

/// Guest parameters.
pub struct Guest<'a> {
    /// bzImage.
    pub kernel: &'a Path,
    /// Uncompressed newc initramfs.
    pub initrd: &'a Path,
    /// Raw ext4 test disk (attached read-only as virtio-blk `/dev/vda`), if any.
    pub disk: Option<&'a Path>,
    /// Writable ext4 scratch disk (`/dev/vdb`, mounted on `/tmp` by the guest), if any.
    pub scratch: Option<&'a Path>,
    /// Extra kernel command-line words (`vmt.selftest=...`).
    pub extra_cmdline: &'a str,
    /// Use KVM (only when [`super::host::kvm_usable`]).
    pub kvm: bool,
    /// Kill QEMU after this long.
    pub timeout: Duration,
}

/// The QEMU command line for `g` (exposed for `--verbose` and tests).
pub fn command(g: &Guest<'_>) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    if g.kvm {
        c.args(["-accel", "kvm", "-cpu", "host"]);
    } else {
        c.args(["-accel", "tcg", "-cpu", "max"]);
    }
    c.args([
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-m",
        "2048",
        "-smp",
        "2",
    ]);
    c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    c.args(["-device", "pvpanic", "-action", "panic=exit-failure"]);
    c.arg("-kernel").arg(g.kernel).arg("-initrd").arg(g.initrd);
    if let Some(d) = g.disk {
        let mut spec = std::ffi::OsString::from("file=");
        spec.push(d);
        spec.push(",format=raw,if=virtio,readonly=on");
        c.arg("-drive").arg(spec);
    }
    if let Some(d) = g.scratch {
        let mut spec = std::ffi::OsString::from("file=");
        spec.push(d);
        spec.push(",format=raw,if=virtio,cache=unsafe");
        c.arg("-drive").arg(spec);
    }
    c.arg("-append")
        .arg(format!("console=ttyS0 quiet panic=-1 {}", g.extra_cmdline).trim_end());
    c
}

/// Runs the guest to its end or to the timeout (then kills QEMU by its PID and reaps it).
/// `on_line` sees each console line as it arrives (live progress, `--verbose`).
pub fn run(g: &Guest<'_>, on_line: &mut dyn FnMut(&str)) -> Result<QemuRun> {
    let start = Instant::now();
    let mut child = command(g)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (package qemu-system-x86)")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let mut stderr_pipe = child.stderr.take().context("qemu stderr")?;
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel::<String>();
    let out_thread = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let deadline = start + g.timeout;
    let mut lines = Vec::new();
    let mut timed_out = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = Some(g.timeout.as_secs());
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(line) => {
                on_line(&line);
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = Some(g.timeout.as_secs());
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if timed_out.is_some() {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = child.kill();
    }
    let status = child.wait().context("waiting for qemu")?;
    let _ = out_thread.join();
    lines.extend(rx.try_iter());
    let stderr = err_thread.join().unwrap_or_default();
    Ok(QemuRun {
        lines,
        rc: status.code(),
        timed_out,
        stderr,
        elapsed: start.elapsed(),
    })
}
