//! The container's terminal ([`crate::Spec::tty`]) and standard input ([`crate::Spec::stdin`]).
//!
//! With `tty`, the container process opens a pseudo-terminal in **its own devpts instance** (the
//! `newinstance` mount at `/dev/pts`, after `pivot_root`), so the command's `tty` is `/dev/pts/N` of
//! the container and nothing is allocated in the host's devpts. The slave becomes descriptors 0-2 and
//! the controlling terminal of the process (which leads a session of its own: `setsid`, step 1); the
//! master goes to the caller, which relays it ([`crate::Running::take_tty`]).
//!
//! How the master reaches the caller: the container process has a descriptor table of its own (it is
//! cloned without `CLONE_FILES`, so that what it opens, and the caller's descriptors it must not keep,
//! stay apart), so the master is **sent over a unix socket pair with `SCM_RIGHTS`**, made by `spawn`
//! before the clone. The alternatives do not work: the caller cannot open the container's `ptmx`
//! itself (through `/proc/PID/root`) while the container process runs, since it is suspended until
//! the exec (`CLONE_VFORK`), and the slave must be the controlling terminal *before* the exec; leaving
//! the master open across the exec for `pidfd_getfd` would hand the command its own terminal's master
//! (and keep the terminal from hanging up when it exits). The message is queued before the exec, so
//! the caller reads it without blocking once the status pipe says the exec succeeded. The container
//! process allocates nothing for it (stack buffers only).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::pty::OpenptFlags;
use rustix::thread::Uid;
use tracing::debug;

use crate::{Error, Spec};

/// The container's standard input when it has no terminal ([`crate::Spec::stdin`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stdin {
    /// The caller's descriptor 0, inherited (Docker's `-i`).
    #[default]
    Inherit,
    /// The container's own `/dev/null`, opened after `pivot_root` (Docker without `-i`): a command
    /// that reads its input sees end of file at once.
    Null,
}

/// A terminal's size in character cells (`struct winsize` without the pixel fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtySize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

fn fail(step: &'static str, cause: impl std::fmt::Display) -> Error {
    Error::Setup {
        step,
        cause: cause.to_string(),
    }
}

/// The socket pair the container's pty master travels on, from the container process to the caller.
pub(crate) struct Channel {
    /// The caller's end: [`Channel::receive`].
    pub(crate) caller: OwnedFd,
    /// The container process's end (its copy is closed at its exec: close-on-exec).
    pub(crate) container: OwnedFd,
}

impl Channel {
    /// A `SOCK_SEQPACKET` unix socket pair (one message, one descriptor), close-on-exec.
    pub(crate) fn new() -> io::Result<Channel> {
        let (caller, container) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok(Channel { caller, container })
    }

    /// The master, in the caller, once the exec succeeded: the container process sent it before its
    /// exec, so it is queued already (never waits).
    pub(crate) fn receive(&self) -> io::Result<OwnedFd> {
        let mut byte = [0u8; 1];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        rustix::net::recvmsg(
            &self.caller,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
        )?;
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = msg
                && let Some(fd) = fds.next()
            {
                return Ok(fd);
            }
        }
        Err(io::Error::other("the container process sent no terminal"))
    }
}

/// In the container process, after `pivot_root` and the user's lookup (`uid`), before the
/// capabilities are dropped: with [`Spec::tty`], the pty made its descriptors 0-2 and its controlling
/// terminal, and its master sent to the caller over `channel`; otherwise, with [`Stdin::Null`], the
/// container's `/dev/null` as descriptor 0. Nothing is allocated.
pub(crate) fn setup_stdio(spec: &Spec, uid: u32, channel: Option<RawFd>) -> Result<(), Error> {
    if let Some(fd) = channel.filter(|_| spec.tty) {
        // SAFETY: the container process's copy of the channel's end, open until its exec.
        let channel = unsafe { BorrowedFd::borrow_raw(fd) };
        return attach_terminal(spec, uid, channel).map_err(|e| fail("terminal", e));
    }
    if spec.stdin == Stdin::Null {
        debug!("stdin: the container's /dev/null");
        let null = rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| fail("stdin", format!("cannot open /dev/null: {e}")))?;
        onto(&null, &[0]).map_err(|e| fail("stdin", format!("dup2 /dev/null: {e}")))?;
    }
    Ok(())
}

/// Opens a pty in the container's devpts instance, makes its slave the controlling terminal and 0-2,
/// sets its size, and sends the master over `channel`.
fn attach_terminal(spec: &Spec, uid: u32, channel: BorrowedFd<'_>) -> Result<(), String> {
    debug!("pty from the container's /dev/pts/ptmx");
    // `/dev/pts` is the devpts instance mounted by step 4 (a `newinstance`), seen after pivot_root.
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let master = rustix::fs::open("/dev/pts/ptmx", flags, Mode::empty())
        .map_err(|e| format!("cannot open /dev/pts/ptmx: {e}"))?;
    rustix::pty::unlockpt(&master).map_err(|e| format!("cannot unlock the pty: {e}"))?;
    let slave = open_slave(&master)?;
    // The command's user owns its terminal (as `login` or `sshd` would make it); the group stays
    // devpts' (`tty` where the image has one: `gid=5`).
    if uid != 0 {
        rustix::fs::fchown(&slave, Some(Uid::from_raw(uid)), None)
            .map_err(|e| format!("cannot give the pty to uid {uid}: {e}"))?;
    }
    if let Some(size) = spec.tty_size {
        let ws = rustix::termios::Winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, ws).map_err(|e| format!("cannot set the pty's size: {e}"))?;
    }
    // This process leads a new session without a terminal (step 1): the pty becomes its terminal.
    rustix::process::ioctl_tiocsctty(&slave)
        .map_err(|e| format!("cannot make the pty the controlling terminal: {e}"))?;
    onto(&slave, &[0, 1, 2]).map_err(|e| format!("dup2 of the pty: {e}"))?;
    let fds = [master.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(channel, &[IoSlice::new(b"t")], &mut control, SendFlags::empty())
        .map_err(|e| format!("cannot hand the pty to the runner: {e}"))?;
    Ok(())
}

/// The slave of `master`: `TIOCGPTPEER` (Linux 4.13; no path lookup), else by its name in `/dev/pts`.
fn open_slave(master: &OwnedFd) -> Result<OwnedFd, String> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    match rustix::pty::ioctl_tiocgptpeer(master, flags) {
        Ok(slave) => Ok(slave),
        Err(Errno::INVAL | Errno::NOTTY) => {
            // Before 4.13 only: the name is allocated (a few bytes, the process's own, freed).
            let name =
                rustix::pty::ptsname(master, Vec::new()).map_err(|e| format!("cannot name the pty: {e}"))?;
            rustix::fs::open(name.as_c_str(), flags.into(), Mode::empty())
                .map_err(|e| format!("cannot open {name:?}: {e}"))
        }
        Err(e) => Err(format!("cannot open the pty's slave: {e}")),
    }
}

/// `fd` duplicated onto each of `targets` (without close-on-exec).
fn onto(fd: &OwnedFd, targets: &[RawFd]) -> Result<(), Errno> {
    for &t in targets {
        if fd.as_raw_fd() == t {
            // Already there (the caller had it closed): keep it across the exec.
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            continue;
        }
        match t {
            0 => rustix::stdio::dup2_stdin(fd)?,
            1 => rustix::stdio::dup2_stdout(fd)?,
            _ => rustix::stdio::dup2_stderr(fd)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_travels_over_the_channel() {
        let ch = Channel::new().unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        let fds = [w.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            &ch.container,
            &[IoSlice::new(b"t")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        drop(w);
        let got = ch.receive().unwrap();
        assert_ne!(got.as_raw_fd(), r.as_raw_fd());
        rustix::io::write(&got, b"x").unwrap();
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&r, &mut b).unwrap(), 1);
        assert!(
            rustix::io::fcntl_getfd(&got)
                .unwrap()
                .contains(rustix::io::FdFlags::CLOEXEC)
        );
        // Nothing more: the receive does not wait.
        assert!(ch.receive().is_err());
    }
}
