//! Detached containers (`run -d`, `container start` without `-a`) and the monitor that is each one's
//! parent, with no daemon.
//!
//! `mountkit` forks twice (the middle process starts a session and exits at once, so the monitor leads
//! no session and can never get a controlling terminal); the grandchild is the **monitor**: a copy of
//! the `mountkit` process, not a new program, so it starts the container with the very code an attached
//! `run` uses ([`Mountkit::launch`]) and holds what an attached runner holds: the store lock during the
//! start, the container's `running.lock` and volumes while it runs. Its stdin, stdout and stderr are
//! `/dev/null` (the caller's terminal and pipes are let go: `ID=$(mountkit run -d …)` returns); the
//! container's stdout and stderr are two pipes the monitor reads into the container's log
//! ([`crate::logs`]). Once the container runs, the monitor tells the waiting `mountkit` through a pipe
//! (or sends back the start's error and exit code), which prints the ID and exits.
//!
//! The container dies with its monitor (`PR_SET_PDEATHSIG`, as with an attached runner): a monitor
//! killed with SIGKILL leaves a container shown as exited with an unknown status, nothing mounted (the
//! mount namespace goes with the process) and `rm` working. At the container's exit the monitor drains
//! the pipes, records the exit (or removes an `--rm` container) and applies `--restart`: a restart is a
//! new launch by the same monitor, after a back-off (100 ms doubling to 10 s, reset after 10 s of
//! running), counted in `state.restart_count`; `container stop` leaves a `stop-requested` file that
//! prevents it.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mountkit_layer_store::ImageInfo;
use mountkit_safefs::Lock;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::container::{Container, CreateOptions, RestartPolicy};
use crate::logs::{LogWriter, Stream};
use crate::run::Launched;
use crate::{Error, Mountkit, Result};

/// The file `container stop` leaves in a container's directory so that its monitor does not restart it.
pub(crate) const STOP_REQUESTED: &str = "stop-requested";
/// The monitor's socket in the container's directory: `container attach` connects to it.
pub(crate) const ATTACH_SOCKET: &str = "attach.sock";

impl Mountkit {
    /// `run -d`: creates the container (committed and visible at once, `--rm` or not, as `docker run -d`)
    /// and starts it detached; returns once its process runs.
    pub fn run_detached(&self, opts: &CreateOptions) -> Result<Container> {
        let lock = self.lock()?;
        let (c, image) = self.create_locked(opts)?;
        self.start_detached_locked(c, &image, lock)
    }

    /// `container start` without `-a`: starts the container detached under a monitor; a running one is
    /// left as it is (Docker's `start` of a running container succeeds).
    pub fn start_detached(&self, reference: &str) -> Result<Container> {
        let lock = self.lock()?;
        let c = self.container(reference)?;
        if self.is_running(&c.id) {
            return Ok(c);
        }
        let image = self.layers().image(&c.image)?;
        let _ = std::fs::remove_file(self.container_dir(&c.id).join(STOP_REQUESTED));
        self.start_detached_locked(c, &image, lock)
    }

    fn start_detached_locked(&self, c: Container, image: &ImageInfo, lock: Lock) -> Result<Container> {
        let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| Error::io("create a pipe", "", e.into()))?;
        // SAFETY: this process has one thread (mountkit starts none), so the child is a full copy that
        // may allocate and run any code.
        let middle = unsafe { libc_fork() }.map_err(|e| Error::io("fork the monitor", "", e))?;
        if middle == 0 {
            // The middle process: a session of its own, then the monitor, then gone.
            drop(ready_r);
            let _ = rustix::process::setsid();
            // SAFETY: as above; this process is single-threaded too.
            match unsafe { libc_fork() } {
                Ok(0) => {
                    let code = self.monitor_main(c, image, lock, ready_w);
                    std::process::exit(code)
                }
                _ => exit_now(0),
            }
        }
        drop(ready_w);
        drop(lock); // the monitor holds it (the same open file) until the container runs
        // Reap the middle process (it exits at once).
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(middle),
            rustix::process::WaitOptions::empty(),
        );
        let mut report = Vec::new();
        std::fs::File::from(ready_r)
            .read_to_end(&mut report)
            .map_err(|e| Error::io("read the monitor's report", "", e))?;
        match report.split_first() {
            Some((b'O', _)) => Ok(self.container(&c.id).unwrap_or(c)),
            Some((b'E', rest)) => {
                let text = String::from_utf8_lossy(rest);
                let (code, message) = text.split_once('\0').unwrap_or(("125", &text));
                Err(Error::StartFailed {
                    code: code.parse().unwrap_or(125),
                    message: message.to_string(),
                })
            }
            _ => Err(Error::StartFailed {
                code: 125,
                message: format!(
                    "the monitor of container {} ended before the container started",
                    c.name
                ),
            }),
        }
    }

    /// The monitor: starts the container, reports to the waiting `mountkit`, pumps its output into the
    /// log until it exits, records the exit, restarts it when `--restart` says so. Returns the exit
    /// code of the monitor process.
    fn monitor_main(&self, c: Container, image: &ImageInfo, lock: Lock, ready: OwnedFd) -> i32 {
        let null = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            Ok(f) => OwnedFd::from(f),
            Err(e) => {
                report(&ready, Err((125, format!("cannot open /dev/null: {e}"))));
                return 125;
            }
        };
        for fd in 0..3 {
            let _ = dup2(null.as_fd(), fd);
        }
        let dir = self.container_dir(&c.id);
        let mut log = match LogWriter::open(&dir, c.config.log) {
            Ok(l) => l,
            Err(e) => {
                report(&ready, Err((125, e.to_string())));
                return 125;
            }
        };
        // `container attach`: clients get the output from then on, and with `-i` their input goes to
        // the container's stdin (its terminal with `-t`). Without the socket the container still runs.
        let mut attach = Attach {
            listener: attach_listener(&dir)
                .inspect_err(|e| tracing::warn!(error = %e, "no attach socket"))
                .ok(),
            clients: Vec::new(),
            input: None,
        };
        let policy = c.config.restart;
        let mut ready = Some(ready);
        let mut lock = Some(lock);
        let mut c = c;
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut lock_now = match lock.take() {
                Some(l) => l,
                None => match self.lock() {
                    Ok(l) => l,
                    Err(_) => return 125,
                },
            };
            let started = Instant::now();
            let launched = self.launch_piped(c, image, null.as_fd(), &mut lock_now);
            drop(lock_now);
            let (launched, out, err, stdin) = match launched {
                Ok(l) => l,
                Err(e) => {
                    if let Some(r) = ready.take() {
                        report(&r, Err((e.run_exit_code(), e.to_string())));
                    }
                    tracing::warn!(error = %e, "monitor: the start failed");
                    return e.run_exit_code();
                }
            };
            if let Some(r) = ready.take() {
                report(&r, Ok(()));
            }
            trim_resident_code();
            let Launched {
                c: running,
                mut process,
                held,
            } = launched;
            let id = running.id.clone();
            // `-t`: the container's terminal is its stdout and stderr in one (Docker logs it as stdout);
            // the pipes then stay empty.
            let tty = process.take_tty();
            attach.input = match &tty {
                Some(master) if running.config.open_stdin => rustix::io::fcntl_dupfd_cloexec(master, 3).ok(),
                _ => stdin,
            };
            if let Some(i) = &attach.input {
                let _ = rustix::fs::fcntl_setfl(i, rustix::fs::OFlags::NONBLOCK);
            }
            let out = tty.unwrap_or(out);
            pump(process.pid(), out, err, &mut log, &mut attach);
            // Clients see the end of the output: the container has exited.
            attach.clients.clear();
            attach.input = None;
            let exit = process.wait();
            let stop_requested = std::fs::remove_file(dir.join(STOP_REQUESTED)).is_ok();
            let restarts = running.state.restart_count;
            let code = match &exit {
                Ok(e) => e.code(),
                Err(_) => 125,
            };
            let recorded = self.finish(running, held, exit);
            if stop_requested || !restart_wanted(policy, code, restarts) || recorded.is_err() {
                let _ = std::fs::remove_file(dir.join(ATTACH_SOCKET));
                return code;
            }
            // Docker's back-off: doubling from 100 ms, back to the start after 10 s of running.
            if started.elapsed() >= Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(10));
            if std::fs::remove_file(dir.join(STOP_REQUESTED)).is_ok() {
                return code;
            }
            let Ok(l) = self.lock() else { return code };
            let Ok(mut again) = self.container(&id) else {
                return code; // removed meanwhile
            };
            if self.is_running(&again.id) {
                return code; // started by someone else
            }
            again.state.restart_count = restarts + 1;
            c = again;
            lock = Some(l);
        }
    }

    /// [`Mountkit::launch`] with the container's stdout and stderr on two new pipes (returned, read
    /// ends) and its stdin on `null`, or with `-i` (and no terminal) on a third pipe whose write end is
    /// returned for `attach`: this process's own descriptors 0-2 are the pipes' ends while the
    /// container process is created (it inherits them), `null` again afterwards.
    fn launch_piped<'a>(
        &'a self,
        c: Container,
        image: &ImageInfo,
        null: std::os::fd::BorrowedFd<'_>,
        store: &mut Lock,
    ) -> Result<(Launched<'a>, OwnedFd, OwnedFd, Option<OwnedFd>)> {
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| Error::io("create a pipe", "", e.into()))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        dup2(out_w.as_fd(), 1).map_err(|e| Error::io("set up the container's stdout", "", e))?;
        dup2(err_w.as_fd(), 2).map_err(|e| Error::io("set up the container's stderr", "", e))?;
        drop((out_w, err_w));
        let stdin = match c.config.open_stdin && !c.config.tty {
            true => {
                let (in_r, in_w) = pipe()?;
                dup2(in_r.as_fd(), 0).map_err(|e| Error::io("set up the container's stdin", "", e))?;
                Some(in_w)
            }
            false => None,
        };
        let launched = self.launch(c, image, None, store);
        for fd in 0..3 {
            let _ = dup2(null, fd);
        }
        Ok((launched?, out_r, err_r, stdin))
    }
}

/// Lets go of the resident pages of this process's unmodified read-only file mappings (the static
/// binary's code and constants: what starting the container touched), so that an idle monitor holds
/// little memory: `madvise(MADV_DONTNEED)` on such a mapping only drops it from this process's page
/// tables; the page cache keeps the pages and the few the monitor's loop needs fault back in. A
/// mapping with any page of its own (`Anonymous` in smaps: written before it was made read-only, as
/// relocated constants are) is left alone, as are writable ones: dropping those would lose content.
fn trim_resident_code() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut candidate: Option<(usize, usize)> = None;
    let drop_it = |(a, b): (usize, usize)| {
        // SAFETY: [a, b) is a mapping of this process, read-only, file-backed and without a page of
        // its own (smaps said so just now; this process has one thread, which maps nothing
        // meanwhile): dropping its pages loses nothing, the next access reads them back.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            // A mapping's header line: `start-end perms offset dev inode [path]`.
            let perms = f.next().unwrap_or("");
            let inode = f.nth(2).unwrap_or("0");
            candidate = (inode != "0" && perms.as_bytes().get(1) == Some(&b'-')).then_some((a, b));
        } else if first == "Anonymous:" {
            let own = f.next().is_some_and(|kb| kb != "0");
            if let Some(m) = candidate.take()
                && !own
            {
                drop_it(m);
            }
        }
    }
}

/// Docker's detach keys: Ctrl-P then Ctrl-Q.
const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

impl Mountkit {
    /// `container attach`: this process's stdout gets the container's output from now on, and with
    /// `-i` its stdin goes to the container (a terminal's raw mode for `-it`); Ctrl-P Ctrl-Q detaches.
    /// Returns the container's exit code once it ends, `None` when detached first. Only a detached
    /// container has a monitor to attach to. Window size changes are not passed on.
    pub fn attach(&self, reference: &str) -> Result<Option<i32>> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let c = self.container(reference)?;
        if !self.is_running(&c.id) {
            return Err(Error::NotRunning(c.name.clone()));
        }
        let dir = self.container_dir(&c.id);
        let not_detached = |e: std::io::Error| Error::Io {
            op: "attach to (only a detached container has a monitor to attach to)",
            path: dir.join(ATTACH_SOCKET),
            source: e,
        };
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| not_detached(e.into()))?;
        let d = rustix::fs::open(
            &dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| not_detached(e.into()))?;
        let addr = SocketAddrUnix::new(format!("/proc/self/fd/{}/{ATTACH_SOCKET}", d.as_raw_fd()))
            .map_err(|e| not_detached(e.into()))?;
        rustix::net::connect(&sock, &addr).map_err(|e| not_detached(e.into()))?;
        let stdin = rustix::stdio::stdin();
        let interactive = c.config.open_stdin;
        let _raw = match interactive && c.config.tty {
            true => crate::tty::RawMode::enter(stdin)
                .map_err(|e| Error::io("make the terminal raw", "stdin", e))?,
            false => None,
        };
        let mut read_stdin = interactive;
        let mut buf = vec![0u8; 64 * 1024];
        let mut after_ctrl_p = false;
        loop {
            let mut fds = vec![PollFd::new(&sock, PollFlags::IN)];
            if read_stdin {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::io("wait for the container's output", "", e.into())),
            }
            let (from_container, typed) = (
                !fds[0].revents().is_empty(),
                fds.get(1).is_some_and(|f| !f.revents().is_empty()),
            );
            drop(fds);
            if from_container {
                match rustix::io::read(&sock, &mut buf) {
                    Ok(0) | Err(_) => break, // the container ended: its monitor let go
                    Ok(n) => {
                        use std::io::Write;
                        let mut out = std::io::stdout();
                        let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                    }
                }
            }
            if typed {
                match rustix::io::read(stdin, &mut buf) {
                    Ok(0) | Err(_) => read_stdin = false,
                    Ok(n) => {
                        for &b in &buf[..n] {
                            if after_ctrl_p && b == DETACH_KEYS[1] {
                                return Ok(None);
                            }
                            after_ctrl_p = b == DETACH_KEYS[0];
                        }
                        let _ = rustix::io::write(&sock, &buf[..n]);
                    }
                }
            }
        }
        drop(_raw);
        // 255 when the exit status is unknown (its monitor was killed).
        Ok(Some(self.wait(&c.id)?.unwrap_or(255)))
    }
}

/// Whether `policy` restarts a container that exited with `code` after `restarts` restarts.
fn restart_wanted(policy: RestartPolicy, code: i32, restarts: u32) -> bool {
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => code != 0 && max_retries.is_none_or(|m| restarts < m),
    }
}

/// Tells the waiting `mountkit`: `O` when the container runs, `E<code>\0<message>` when it did not
/// start.
fn report(ready: &OwnedFd, outcome: std::result::Result<(), (i32, String)>) {
    let msg = match outcome {
        Ok(()) => b"O".to_vec(),
        Err((code, message)) => format!("E{code}\0{message}").into_bytes(),
    };
    let _ = rustix::io::write(ready, &msg);
}

/// Copies the container's output into the log until the container process (`pid`, this process's
/// child) exits, then what is left in the pipes. A `pidfd` says when it exits (Linux 5.3+); without
/// one, a 100 ms tick checks.
fn pump(pid: i32, out: OwnedFd, err: OwnedFd, log: &mut LogWriter, attach: &mut Attach) {
    let pidfd = rustix::process::Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    for fd in [&out, &err] {
        let _ = rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK);
    }
    let streams = [(out, Stream::Stdout), (err, Stream::Stderr)];
    let mut open = [true, true];
    let mut buf = vec![0u8; 64 * 1024];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    loop {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(3);
        for (i, (fd, _)) in streams.iter().enumerate() {
            if open[i] {
                fds.push(PollFd::new(fd, PollFlags::IN));
                which.push(i);
            }
        }
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        let pid_at = fds.len().checked_sub(1).filter(|_| pidfd.is_some());
        let listen_at = fds.len();
        if let Some(l) = &attach.listener {
            fds.push(PollFd::new(l, PollFlags::IN));
        }
        let clients_at = fds.len();
        for c in &attach.clients {
            fds.push(PollFd::new(c, PollFlags::IN));
        }
        let timeout = pidfd.is_none().then_some(&tick);
        match rustix::event::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => break,
        }
        let exited = match pid_at {
            Some(i) => !fds[i].revents().is_empty(),
            None => child_exited(pid),
        };
        let new_client = attach.listener.is_some() && !fds[listen_at].revents().is_empty();
        let talking: Vec<usize> = (clients_at..fds.len())
            .filter(|&i| !fds[i].revents().is_empty())
            .map(|i| i - clients_at)
            .collect();
        let ready: Vec<usize> = which
            .iter()
            .zip(&fds)
            .filter(|(_, f)| !f.revents().is_empty())
            .map(|(i, _)| *i)
            .collect();
        drop(fds);
        for i in ready {
            open[i] = drain(&streams[i].0, streams[i].1, &mut buf, log, &mut attach.clients);
        }
        attach.serve(new_client, &talking, &mut buf);
        if exited || (!open[0] && !open[1] && pidfd.is_none() && child_exited(pid)) {
            break;
        }
    }
    // What the container wrote before it exited (a process it left behind may keep writing: not waited for).
    for (i, (fd, stream)) in streams.iter().enumerate() {
        if open[i] {
            drain(fd, *stream, &mut buf, log, &mut attach.clients);
        }
    }
    log.flush();
}

/// Reads `fd` until it would block (true: more may come) or ends (false: end of file, or `EIO` from a
/// terminal whose other side is closed).
fn drain(
    fd: &OwnedFd,
    stream: Stream,
    buf: &mut [u8],
    log: &mut LogWriter,
    clients: &mut Vec<OwnedFd>,
) -> bool {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) => return false,
            Ok(n) => {
                log.write(stream, &buf[..n]);
                // Attached clients get the bytes as they are; one that cannot take them now is let go.
                clients.retain(|c| {
                    rustix::net::send(
                        c,
                        &buf[..n],
                        rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT,
                    )
                    .is_ok_and(|sent| sent == n)
                });
            }
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return true,
            Err(_) => return false,
        }
    }
}

/// The monitor's side of `container attach`: the listening socket, the connected clients, and where
/// their input goes (the container's stdin pipe, or its terminal, when it was started with `-i`).
struct Attach {
    listener: Option<OwnedFd>,
    clients: Vec<OwnedFd>,
    input: Option<OwnedFd>,
}

impl Attach {
    /// Accepts new clients; copies what clients typed to the container's input (without `-i` it is
    /// dropped; input the container does not read in time is dropped too, so that the monitor never
    /// blocks); lets go of clients that hung up.
    fn serve(&mut self, new_client: bool, talking: &[usize], buf: &mut [u8]) {
        let mut gone = Vec::new();
        for &i in talking {
            match rustix::io::read(&self.clients[i], &mut *buf) {
                Ok(0) | Err(_) => gone.push(i),
                Ok(n) => {
                    if let Some(input) = &self.input {
                        let _ = rustix::io::write(input, &buf[..n]);
                    }
                }
            }
        }
        for i in gone.into_iter().rev() {
            self.clients.remove(i);
        }
        if new_client && let Some(l) = &self.listener {
            let flags = rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK;
            while let Ok(c) = rustix::net::accept_with(l, flags) {
                self.clients.push(c);
            }
        }
    }
}

/// The attach socket in `dir`, listening. Bound through `/proc/self/fd/N/` (a socket path is limited
/// to 108 bytes, a store's path is not).
fn attach_listener(dir: &std::path::Path) -> std::io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let _ = std::fs::remove_file(dir.join(ATTACH_SOCKET));
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let sock = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
    let d = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let addr = SocketAddrUnix::new(format!("/proc/self/fd/{}/{ATTACH_SOCKET}", d.as_raw_fd()))?;
    rustix::net::bind(&sock, &addr)?;
    rustix::net::listen(&sock, 16)?;
    Ok(sock)
}

/// Whether the child `pid` has exited (not reaped: `WNOWAIT`).
fn child_exited(pid: i32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    matches!(
        rustix::process::waitid(
            rustix::process::WaitId::Pid(p),
            rustix::process::WaitIdOptions::EXITED
                | rustix::process::WaitIdOptions::NOHANG
                | rustix::process::WaitIdOptions::NOWAIT,
        ),
        Ok(Some(_)) | Err(_)
    )
}

/// `dup2(from, to)` onto a standard descriptor.
fn dup2(from: std::os::fd::BorrowedFd<'_>, to: i32) -> std::io::Result<()> {
    // SAFETY: `to` is 0, 1 or 2, this process's own standard descriptors, which stay open (dup2
    // replaces them); the temporary OwnedFd is forgotten so it is never closed here.
    let mut target = std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(to) });
    rustix::io::dup2(from, &mut target).map_err(std::io::Error::from)
}

/// `fork()` (libc's: rustix has none outside its experimental runtime module): 0 in the child, the
/// child's PID in the parent.
///
/// # Safety
/// The caller must be single-threaded, so that the child may run any code.
unsafe fn libc_fork() -> std::io::Result<i32> {
    // SAFETY: the caller guarantees a single thread.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid)
}

/// Exits at once (`_exit`), without destructors or buffered output: the middle process after the fork.
fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process; nothing of it is used afterwards.
    unsafe { libc::_exit(code) }
}
