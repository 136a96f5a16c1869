//! `--init`: mountkit's own (static) binary as the container's PID 1, as Docker's `--init` runs tini.
//!
//! The runner binds the binary read-only at `/dev/init` ([`mountkit_ns_runner::Spec::init`]) and the
//! container runs `/dev/init --mountkit-init -- CMD…`. In that mode `main` calls [`run_if_init`] first,
//! which never returns: it blocks the signals it forwards, forks the command (with the signal mask it
//! had), then waits in `sigwaitinfo`: every signal but SIGCHLD goes to the command (so `stop`'s SIGTERM
//! reaches a program that, as PID 1, the kernel would have shielded from it), every SIGCHLD reaps
//! whatever exited (orphans re-parented to PID 1 included: no zombies), and when the command itself
//! exits, init exits with its status (128+N for a signal), which ends the container. Faults
//! (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS) stay unblocked: they are init's own.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;

/// Where the runner binds the init program in the container.
pub const INIT_PATH: &str = "/dev/init";
/// The argument that starts init mode: `/dev/init --mountkit-init -- CMD…`.
pub const INIT_FLAG: &str = "--mountkit-init";

/// The container's arguments with init first.
pub(crate) fn with_init(args: &[String]) -> Vec<String> {
    [INIT_PATH, INIT_FLAG, "--"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned())
        .collect()
}

/// Runs as a container's init when started as one (`--mountkit-init` first) and never returns then;
/// returns at once otherwise.
pub fn run_if_init() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(INIT_FLAG)) {
        return;
    }
    let mut rest: Vec<_> = args.collect();
    if rest.first().is_some_and(|a| a == "--") {
        rest.remove(0);
    }
    let cmd: Vec<CString> = rest
        .iter()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    if cmd.is_empty() {
        eprintln!("mountkit init: no command");
        std::process::exit(125);
    }
    std::process::exit(init(&cmd))
}

/// Signals init leaves to the kernel's default: faults of its own.
const FAULTS: [i32; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

fn init(cmd: &[CString]) -> i32 {
    // SAFETY: plain libc signal-set and process calls on local data; this process has one thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in FAULTS {
            libc::sigdelset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &set, &mut old);
        let child = libc::fork();
        if child < 0 {
            eprintln!("mountkit init: fork: {}", std::io::Error::last_os_error());
            return 125;
        }
        if child == 0 {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            let mut argv: Vec<*const libc::c_char> = cmd.iter().map(|a| a.as_ptr()).collect();
            argv.push(std::ptr::null());
            libc::execvp(argv[0], argv.as_ptr());
            let e = std::io::Error::last_os_error();
            eprintln!("mountkit init: exec {:?}: {e}", cmd[0]);
            libc::_exit(if e.raw_os_error() == Some(libc::ENOENT) {
                127
            } else {
                126
            });
        }
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&set, &mut info);
            if sig < 0 {
                continue; // EINTR
            }
            if sig != libc::SIGCHLD {
                libc::kill(child, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    return if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_goes_first() {
        let args = with_init(&["sh".into(), "-c".into(), "x".into()]);
        assert_eq!(args, ["/dev/init", "--mountkit-init", "--", "sh", "-c", "x"]);
    }
}
