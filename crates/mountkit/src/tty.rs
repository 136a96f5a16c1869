//! The attached side of `-t` and `-i`: the caller's terminal in raw mode, and the relay between it and
//! the container's pty.
//!
//! With `-t`, `mountkit-ns-runner` gives the container a pty of its own devpts instance and hands its
//! master back ([`mountkit_ns_runner::Running::take_tty`]); this module relays it, as Docker's client
//! does over its attach stream:
//!
//! - [`RawMode`]: the caller's terminal in raw mode (only with `-i`: without it nothing is typed into
//!   the container, and Ctrl-C stays a signal to `mountkit`, which forwards it, as Docker's client),
//!   restored on drop, and also by a signal handler on every terminating signal whose disposition is
//!   still the default (SIGQUIT, SIGUSR1, SIGALRM, ...; SIGINT, SIGTERM and SIGHUP are forwarded to the
//!   container while it runs, so the runner outlives them and restores on drop). Only SIGKILL and
//!   SIGSTOP escape it.
//! - [`Relay`]: a thread that copies input to the master and the master to the output until the
//!   master hangs up (the container's processes are gone) or [`Relay::finish`] stops it, and copies
//!   the window size of a terminal to the master at start and on every SIGWINCH (the kernel then
//!   signals the container's foreground process group). The thread starts with every signal blocked,
//!   so the runner's own signal handling (ns-runner's `wait`, a monitor's loop) is untouched; SIGWINCH
//!   reaches it through a handler that writes to a pipe, whichever thread the kernel delivers it to.
//! - [`wait_attached`]: `run`'s use of both: relay while [`mountkit_ns_runner::Running::wait`] waits
//!   and forwards signals on the calling thread, then stop the relay and restore the terminal.
//!
//! The relay's ends are plain descriptors ([`RelayIo`]), so a detached container's monitor can relay
//! the same master to an attach socket instead of its own stdin and stdout (no [`RawMode`] there: the
//! attaching client owns the terminal).
//!
//! `libc` is used for what rustix has only in its `runtime` module: `sigaction` (the two handlers)
//! and the signal mask of the thread that starts the relay.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::thread::JoinHandle;

use mountkit_ns_runner::{Exit, Running, TtySize};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::termios::{OptionalActions, Termios, Winsize};

use crate::container::ContainerConfig;

/// The size of the caller's terminal: its stdout's, else its stdin's (`None` when neither is one).
pub fn caller_size() -> Option<TtySize> {
    [rustix::stdio::stdout(), rustix::stdio::stdin()]
        .into_iter()
        .find_map(size_of)
}

/// The size of terminal `fd`, if it is one and has a size.
pub fn size_of(fd: BorrowedFd<'_>) -> Option<TtySize> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    (ws.ws_row > 0 || ws.ws_col > 0).then_some(TtySize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Docker's refusal of `-it` when the caller's stdin is not a terminal ("the input device is not a
/// TTY"): `Some(message)` then. `-t` alone still gets a pty; `-i` alone relays stdin as it is.
pub fn input_refusal(tty: bool, interactive: bool) -> Option<&'static str> {
    (tty && interactive && !rustix::termios::isatty(rustix::stdio::stdin()))
        .then_some("the input device is not a TTY")
}

/// The terminal settings to restore from a signal handler: set while a [`RawMode`] lives. Leaked
/// when replaced (a few dozen bytes per raw mode), so a handler never reads freed memory.
static SAVED: AtomicPtr<(RawFd, Termios)> = AtomicPtr::new(std::ptr::null_mut());

/// The terminating signals after which [`RawMode`]'s handler restores the terminal (when their
/// disposition is the default: a program's own handler or `SIG_IGN` is left alone).
const RESTORE_ON: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGPIPE,
];

/// A terminal in raw mode; dropping it restores the settings it had.
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
    /// The dispositions replaced by the restoring handler, put back on drop.
    handlers: Vec<(libc::c_int, libc::sigaction)>,
}

impl std::fmt::Debug for RawMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMode").field("fd", &self.fd).finish()
    }
}

impl RawMode {
    /// Puts terminal `fd` in raw mode (`cfmakeraw`: no echo, no line editing, no signals from
    /// Ctrl-C, no output processing); `None` when `fd` is not a terminal.
    pub fn enter(fd: BorrowedFd<'_>) -> io::Result<Option<RawMode>> {
        let saved = match rustix::termios::tcgetattr(fd) {
            Ok(t) => t,
            Err(Errno::NOTTY | Errno::INVAL) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let fd = rustix::io::fcntl_dupfd_cloexec(fd, 3)?;
        let old = SAVED.swap(
            Box::into_raw(Box::new((fd.as_raw_fd(), saved.clone()))),
            Ordering::SeqCst,
        );
        let _ = old; // leaked: a handler may still be reading it
        let handlers = RESTORE_ON
            .iter()
            .filter_map(|&sig| install_default_only(sig, restore_then_die).map(|old| (sig, old)))
            .collect();
        let mut raw = saved.clone();
        raw.make_raw();
        let mode = RawMode { fd, saved, handlers };
        rustix::termios::tcsetattr(&mode.fd, OptionalActions::Now, &raw)?;
        Ok(Some(mode))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = rustix::termios::tcsetattr(&self.fd, OptionalActions::Now, &self.saved) {
            tracing::warn!(error = %e, "cannot restore the terminal's settings");
        }
        SAVED.store(std::ptr::null_mut(), Ordering::SeqCst);
        for (sig, old) in self.handlers.drain(..) {
            // SAFETY: puts back the disposition this guard replaced.
            unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
        }
    }
}

/// Installs `handler` for `sig` if its disposition is the default; returns the old one to restore.
fn install_default_only(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> Option<libc::sigaction> {
    // SAFETY: sigaction reads and writes plain structs; the handler only makes async-signal-safe calls.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
            return None;
        }
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = handler as libc::sighandler_t;
        new.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut new.sa_mask);
        (libc::sigaction(sig, &new, std::ptr::null_mut()) == 0).then_some(old)
    }
}

/// A terminating signal while the terminal is raw: restore it, then die of the signal as before.
extern "C" fn restore_then_die(sig: libc::c_int) {
    let saved = SAVED.load(Ordering::SeqCst);
    if !saved.is_null() {
        // SAFETY: never freed (see SAVED); the descriptor is the RawMode's (at worst closed: EBADF).
        // rustix's tcsetattr is one ioctl: async-signal-safe.
        let (fd, termios) = unsafe { &*saved };
        let _ = rustix::termios::tcsetattr(
            unsafe { BorrowedFd::borrow_raw(*fd) },
            OptionalActions::Now,
            termios,
        );
    }
    // SAFETY: back to the default action, then the signal again (delivered when this handler returns).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// The write end of the SIGWINCH pipe of the running [`Relay`] (-1: none).
static WINCH_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    let fd = WINCH_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; a full non-blocking pipe just drops the byte (one
        // pending wake-up is enough). errno is saved around it.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, b"w".as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// What a [`Relay`] connects.
#[derive(Debug)]
pub struct RelayIo {
    /// The container's pty master.
    pub master: OwnedFd,
    /// Copied to the master (`-i`); `None`: nothing is typed into the container.
    pub input: Option<OwnedFd>,
    /// Where the master's output goes.
    pub output: OwnedFd,
    /// A terminal whose window size the master follows (at start and on SIGWINCH).
    pub size_from: Option<OwnedFd>,
}

/// A relay thread between a container's pty master and the caller's descriptors.
#[derive(Debug)]
pub struct Relay {
    stop: OwnedFd,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// The SIGWINCH handler's pipe and the disposition it replaced, while following a size.
    winch: Option<(OwnedFd, libc::sigaction)>,
}

impl Relay {
    /// Starts relaying `io` in a new thread (started with every signal blocked). Only one relay per
    /// process follows a window size at a time (SIGWINCH is process-wide); a second one does not.
    pub fn start(io: RelayIo) -> io::Result<Relay> {
        let (stop_r, stop) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let mut winch = None;
        let mut winch_r = None;
        if let Some(from) = &io.size_from {
            copy_size(from.as_fd(), io.master.as_fd());
            let flags = rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK;
            let (r, w) = rustix::pipe::pipe_with(flags)?;
            if WINCH_PIPE
                .compare_exchange(-1, w.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                match install_default_only(libc::SIGWINCH, on_winch) {
                    Some(old) => {
                        winch = Some((w, old));
                        winch_r = Some(r);
                    }
                    None => WINCH_PIPE.store(-1, Ordering::SeqCst),
                }
            }
        }
        let thread = spawn_with_signals_blocked(move || pump(&io, stop_r.as_fd(), winch_r.as_ref()))?;
        Ok(Relay {
            stop,
            thread: Some(thread),
            winch,
        })
    }

    /// Stops the relay: what the master still holds is copied out, then the thread ends. Returns the
    /// relay's error, if it stopped on one.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let _ = rustix::io::write(&self.stop, b"s");
        let res = thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the terminal relay panicked")));
        if let Some((_w, old)) = self.winch.take() {
            WINCH_PIPE.store(-1, Ordering::SeqCst);
            // SAFETY: puts back the SIGWINCH disposition this relay replaced.
            unsafe { libc::sigaction(libc::SIGWINCH, &old, std::ptr::null_mut()) };
        }
        res
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// `std::thread::spawn` with every signal blocked in the new thread from its first instruction (the
/// calling thread's mask is blocked around the spawn and restored).
fn spawn_with_signals_blocked<F>(f: F) -> io::Result<JoinHandle<io::Result<()>>>
where
    F: FnOnce() -> io::Result<()> + Send + 'static,
{
    // SAFETY: pthread_sigmask on initialised sigset_t values of this thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let spawned = std::thread::Builder::new().name("tty-relay".into()).spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    }
}

/// Copies the window size of terminal `from` to the pty master `to` (nothing if `from` has none).
fn copy_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Some(size) = size_of(from) {
        let ws = Winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        if let Err(e) = rustix::termios::tcsetwinsize(to, ws) {
            tracing::debug!(error = %e, "cannot set the container's terminal size");
        }
    }
}

/// The relay loop: until the master hangs up or `stop` is readable (then the master is drained).
/// Input is copied to the master without blocking the other direction (the master is non-blocking,
/// and one buffer of input waits while the container does not read).
fn pump(io: &RelayIo, stop: BorrowedFd<'_>, winch: Option<&OwnedFd>) -> io::Result<()> {
    let master = io.master.as_fd();
    rustix::fs::fcntl_setfl(master, rustix::fs::fcntl_getfl(master)? | OFlags::NONBLOCK)?;
    let mut out = Output {
        fd: io.output.as_fd(),
        ok: true,
    };
    let mut pending = Vec::with_capacity(BUF);
    let mut input = io.input.as_ref().map(|i| i.as_fd());
    let mut buf = vec![0u8; BUF];
    loop {
        let mut master_events = PollFlags::IN;
        if !pending.is_empty() {
            master_events |= PollFlags::OUT;
        }
        let mut fds = vec![
            PollFd::from_borrowed_fd(stop, PollFlags::IN),
            PollFd::from_borrowed_fd(master, master_events),
        ];
        let input_at = match input.filter(|_| pending.is_empty()) {
            Some(i) => {
                fds.push(PollFd::from_borrowed_fd(i, PollFlags::IN));
                Some(fds.len() - 1)
            }
            None => None,
        };
        let winch_at = winch.map(|w| {
            fds.push(PollFd::new(w, PollFlags::IN));
            fds.len() - 1
        });
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = |i: usize| fds[i].revents();
        let (stop_ev, master_ev) = (ready(0), ready(1));
        let input_ev = input_at.map(ready).unwrap_or(PollFlags::empty());
        let winch_ev = winch_at.map(ready).unwrap_or(PollFlags::empty());
        drop(fds);
        if !stop_ev.is_empty() {
            drain(master, &mut buf, &mut out);
            return Ok(());
        }
        if master_ev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            match rustix::io::read(master, &mut buf) {
                // The slave's last holder is gone (EIO), or end of file.
                Ok(0) | Err(Errno::IO) => return Ok(()),
                Ok(n) => out.write_all(&buf[..n]),
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if master_ev.contains(PollFlags::OUT) && !pending.is_empty() {
            match rustix::io::write(master, &pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(Errno::IO) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(i) = input.filter(|_| !input_ev.is_empty()) {
            match rustix::io::read(i, &mut buf) {
                // End of input: nothing more to type (the terminal stays the container's).
                Ok(0) => input = None,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => input = None,
            }
        }
        if let (Some(w), false) = (winch, winch_ev.is_empty()) {
            while rustix::io::read(w, &mut buf[..16]).is_ok_and(|n| n > 0) {}
            if let Some(from) = &io.size_from {
                copy_size(from.as_fd(), master);
            }
        }
    }
}

/// The relay's buffer size.
const BUF: usize = 8192;

/// The relay's output: written in full while it works; after a failure (a closed pipe), the
/// container's output is still read and discarded, so it never blocks on a full terminal.
struct Output<'a> {
    fd: BorrowedFd<'a>,
    ok: bool,
}

impl Output<'_> {
    fn write_all(&mut self, mut data: &[u8]) {
        while self.ok && !data.is_empty() {
            match rustix::io::write(self.fd, data) {
                Ok(n) => data = &data[n..],
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    let mut pfd = [PollFd::new(&self.fd, PollFlags::OUT)];
                    let _ = rustix::event::poll(&mut pfd, None);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "terminal relay: output closed");
                    self.ok = false;
                }
            }
        }
    }
}

/// What the master still holds, copied out (it is non-blocking: until it is empty or hung up).
fn drain(master: BorrowedFd<'_>, buf: &mut [u8], out: &mut Output<'_>) {
    while let Ok(n) = rustix::io::read(master, &mut *buf) {
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]);
    }
}

/// The relay of an attached container (`run -t`, `start` of a `-t` container): the caller's stdin
/// (with `-i`) and stdout, its terminal in raw mode while the container runs (with `-i` and a terminal
/// on stdin), its window size followed.
#[derive(Debug)]
pub struct Attached {
    relay: Relay,
    /// Dropped after the relay has stopped.
    _raw: Option<RawMode>,
}

impl Attached {
    /// Starts relaying `master` to this process's stdout, and its stdin to `master` when `open_stdin`.
    pub fn start(master: OwnedFd, open_stdin: bool) -> io::Result<Attached> {
        let stdin = rustix::stdio::stdin();
        let stdout = rustix::stdio::stdout();
        let dup = |fd| rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(io::Error::from);
        let raw = match open_stdin {
            true => RawMode::enter(stdin)?,
            false => None,
        };
        let size_from = [stdout, stdin]
            .into_iter()
            .find(|fd| rustix::termios::isatty(fd))
            .map(dup)
            .transpose()?;
        let relay = Relay::start(RelayIo {
            master,
            input: open_stdin.then(|| dup(stdin)).transpose()?,
            output: dup(stdout)?,
            size_from,
        })?;
        Ok(Attached { relay, _raw: raw })
    }

    /// Stops the relay (after the container's exit: its last output is copied), then restores the
    /// terminal.
    pub fn finish(self) -> io::Result<()> {
        self.relay.finish()
    }
}

/// [`Running::wait`] for an attached container: with a terminal (`-t`), its master is relayed
/// ([`Attached`]) while this thread waits and forwards signals; then the relay is stopped and the
/// caller's terminal restored, on every path. A relay that cannot start is a warning: the container
/// runs on, its terminal unattended.
pub fn wait_attached(mut process: Running, config: &ContainerConfig) -> mountkit_ns_runner::Result<Exit> {
    let Some(master) = process.take_tty() else {
        return process.wait();
    };
    let attached = Attached::start(master, config.open_stdin)
        .inspect_err(|e| tracing::warn!(error = %e, "cannot relay the container's terminal"))
        .ok();
    let exit = process.wait();
    if let Some(Err(e)) = attached.map(Attached::finish) {
        tracing::warn!(error = %e, "terminal relay");
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pty pair from the host's devpts: (master, slave).
    fn pty() -> (OwnedFd, OwnedFd) {
        use rustix::pty::OpenptFlags;
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let slave = rustix::pty::ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        (master, slave)
    }

    fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(fd, ws).unwrap();
    }

    #[test]
    fn raw_mode_is_restored_on_drop() {
        let (_master, slave) = pty();
        let before = rustix::termios::tcgetattr(&slave).unwrap();
        let raw = RawMode::enter(slave.as_fd()).unwrap().expect("a terminal");
        let during = rustix::termios::tcgetattr(&slave).unwrap();
        assert!(!during.local_modes.contains(rustix::termios::LocalModes::ECHO));
        assert!(!during.local_modes.contains(rustix::termios::LocalModes::ICANON));
        drop(raw);
        let after = rustix::termios::tcgetattr(&slave).unwrap();
        assert_eq!(format!("{before:?}"), format!("{after:?}"));
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(
            RawMode::enter(r.as_fd()).unwrap().is_none(),
            "a pipe is no terminal"
        );
    }

    /// Set in the helper process of [`a_terminating_signal_restores_the_terminal`].
    const HELPER: &str = "MOUNTKIT_TTY_RAW_HELPER";

    /// Not a test on its own: with [`HELPER`] set, puts its stdin (a pty) in raw mode and waits to be
    /// killed.
    #[test]
    fn raw_mode_helper() {
        if std::env::var_os(HELPER).is_none() {
            return;
        }
        let _raw = RawMode::enter(rustix::stdio::stdin())
            .unwrap()
            .expect("a terminal");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }

    #[test]
    fn a_terminating_signal_restores_the_terminal() {
        let (_master, slave) = pty();
        let before = format!("{:?}", rustix::termios::tcgetattr(&slave).unwrap());
        let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "tty::tests::raw_mode_helper",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER, "1")
            .stdin(std::process::Stdio::from(slave.try_clone().unwrap()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while rustix::termios::tcgetattr(&slave)
            .unwrap()
            .local_modes
            .contains(rustix::termios::LocalModes::ICANON)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the helper never made it raw"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(helper.id() as i32, libc::SIGUSR1) }, 0);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            helper.wait().unwrap().signal(),
            Some(libc::SIGUSR1),
            "died of the signal"
        );
        let after = format!("{:?}", rustix::termios::tcgetattr(&slave).unwrap());
        assert_eq!(before, after, "restored by the handler");
    }

    #[test]
    fn size_of_a_terminal() {
        let (master, slave) = pty();
        set_size(master.as_fd(), 0, 0);
        assert_eq!(size_of(slave.as_fd()), None);
        set_size(master.as_fd(), 24, 80);
        assert_eq!(size_of(slave.as_fd()), Some(TtySize { rows: 24, cols: 80 }));
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(size_of(r.as_fd()), None);
    }

    /// Reads from `fd` until `want` was seen (or panics after a few seconds).
    fn read_until(fd: BorrowedFd<'_>, want: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !got.windows(want.len()).any(|w| w == want) {
            assert!(std::time::Instant::now() < deadline, "no {want:?} in {got:?}");
            let mut pfd = [PollFd::new(&fd, PollFlags::IN)];
            let t = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            if rustix::event::poll(&mut pfd, Some(&t)).unwrap() > 0 {
                let n = rustix::io::read(fd, &mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
        }
        got
    }

    #[test]
    fn relay_copies_both_ways_and_ends_when_the_slave_hangs_up() {
        // The "container's" pty, and pipes standing for the caller's stdin and stdout.
        let (master, slave) = pty();
        let mut raw = rustix::termios::tcgetattr(&slave).unwrap();
        raw.make_raw();
        rustix::termios::tcsetattr(&slave, OptionalActions::Now, &raw).unwrap();
        let (in_r, in_w) = rustix::pipe::pipe().unwrap();
        let (out_r, out_w) = rustix::pipe::pipe().unwrap();
        let relay = Relay::start(RelayIo {
            master,
            input: Some(in_r),
            output: out_w,
            size_from: None,
        })
        .unwrap();
        rustix::io::write(&in_w, b"typed").unwrap();
        read_until(slave.as_fd(), b"typed");
        rustix::io::write(&slave, b"printed").unwrap();
        read_until(out_r.as_fd(), b"printed");
        rustix::io::write(&slave, b"last words").unwrap();
        drop(slave);
        // Hung up: the thread ends by itself, after copying what was left.
        read_until(out_r.as_fd(), b"last words");
        relay.finish().unwrap();
    }

    #[test]
    fn finish_stops_a_relay_whose_master_stays_open() {
        let (master, slave) = pty();
        let (out_r, out_w) = rustix::pipe::pipe().unwrap();
        let (size_master, size_slave) = pty();
        set_size(size_master.as_fd(), 33, 99);
        let probe = rustix::io::fcntl_dupfd_cloexec(&master, 3).unwrap();
        let relay = Relay::start(RelayIo {
            master,
            input: None,
            output: out_w,
            size_from: Some(size_slave),
        })
        .unwrap();
        // The size was copied at start.
        assert_eq!(size_of(slave.as_fd()), Some(TtySize { rows: 33, cols: 99 }));
        relay.finish().unwrap();
        drop(out_r);
        drop(probe);
    }

    #[test]
    fn input_refusal_needs_both_flags() {
        assert_eq!(input_refusal(false, true), None);
        assert_eq!(input_refusal(false, false), None);
        let stdin_is_a_terminal = rustix::termios::isatty(rustix::stdio::stdin());
        assert_eq!(input_refusal(true, true).is_some(), !stdin_is_a_terminal);
        assert_eq!(input_refusal(true, false), None);
    }
}
