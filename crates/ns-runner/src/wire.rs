//! The status pipe between the container side and the caller: small framed messages, no serde.
//!
//! A frame is a tag byte, a little-endian `u32` length and that many bytes. Fields inside a payload are
//! separated by NUL. Each frame is written with one `write(2)` of at most `PIPE_BUF` bytes, so a frame
//! is never torn. The pipe is `O_CLOEXEC`: end of file
//! without an error frame means the command was executed.

use std::os::fd::BorrowedFd;

use crate::Error;

/// Every step name the child can report; decoding maps a name back to one of these `'static` strings.
pub(crate) const STEPS: &[&str] = &[
    "spec",
    "runner",
    "die-with-parent",
    "session",
    "namespaces",
    "network",
    "mount-private",
    "prepare",
    "root-mount",
    "nodev",
    "proc",
    "dev",
    "init",
    "sys",
    "masked-paths",
    "readonly-root",
    "hostname",
    "pivot-root",
    "terminal",
    "stdin",
    "user",
    "workdir",
    "capabilities",
    "privileges",
    "no-new-privileges",
    "seccomp",
    "environment",
    "fds",
    "signals",
    "exec",
    "panic",
];

const TAG_SETUP: u8 = b'S';
const TAG_NOT_FOUND: u8 = b'N';
const TAG_CANNOT_EXEC: u8 = b'X';
/// Keeps every frame under `PIPE_BUF` (4096) so the write is atomic.
const MAX_TEXT: usize = 1800;

/// One message on the status pipe.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A failure before exec, or the exec itself.
    Failed(Error),
}

fn clip(s: &str) -> &str {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(tag);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn join(a: &str, b: &str) -> Vec<u8> {
    let mut v = clip(a).as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(clip(b).as_bytes());
    v
}

impl Msg {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Failed(Error::Setup { step, cause }) => frame(TAG_SETUP, &join(step, cause)),
            Msg::Failed(Error::NotFound { command }) => frame(TAG_NOT_FOUND, clip(command).as_bytes()),
            Msg::Failed(Error::CannotExecute { command, cause }) => {
                frame(TAG_CANNOT_EXEC, &join(command, cause))
            }
            Msg::Failed(e @ Error::Io { .. }) => frame(TAG_SETUP, &join("runner", &e.to_string())),
            // Never sent: policies are compiled by the caller.
            Msg::Failed(Error::Seccomp(cause)) => frame(TAG_SETUP, &join("seccomp", cause)),
            // Never sent: the container process sends the text as `Setup` and hands the error over.
            Msg::Failed(Error::Prepare { source }) => frame(TAG_SETUP, &join("prepare", &source.to_string())),
        }
    }

    /// Decodes every complete frame in `buf`; a truncated or unknown trailing frame is ignored.
    pub(crate) fn decode_all(mut buf: &[u8]) -> Vec<Msg> {
        let mut out = Vec::new();
        while buf.len() >= 5 {
            let tag = buf[0];
            let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            let Some(payload) = buf.get(5..5 + len) else { break };
            buf = &buf[5 + len..];
            let text = String::from_utf8_lossy(payload);
            let (a, b) = match text.split_once('\0') {
                Some((a, b)) => (a.to_string(), b.to_string()),
                None => (text.to_string(), String::new()),
            };
            let msg = match tag {
                TAG_SETUP => Msg::Failed(Error::Setup {
                    step: STEPS.iter().copied().find(|s| *s == a).unwrap_or("unknown"),
                    cause: b,
                }),
                TAG_NOT_FOUND => Msg::Failed(Error::NotFound { command: a }),
                TAG_CANNOT_EXEC => Msg::Failed(Error::CannotExecute { command: a, cause: b }),
                _ => continue,
            };
            out.push(msg);
        }
        out
    }
}

/// Writes one frame (best effort: the reader treats a missing frame as "no news").
pub(crate) fn send(fd: BorrowedFd<'_>, msg: &Msg) {
    let bytes = msg.encode();
    let mut off = 0;
    while off < bytes.len() {
        match rustix::io::write(fd, &bytes[off..]) {
            Ok(n) => off += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let msgs = vec![
            Msg::Failed(Error::Setup {
                step: "prepare",
                cause: "overlay: no upper dir".into(),
            }),
            Msg::Failed(Error::NotFound {
                command: "nosuch".into(),
            }),
            Msg::Failed(Error::CannotExecute {
                command: "/etc".into(),
                cause: "Permission denied (os error 13)".into(),
            }),
        ];
        let mut buf = Vec::new();
        for m in &msgs {
            buf.extend(m.encode());
        }
        assert_eq!(format!("{:?}", Msg::decode_all(&buf)), format!("{msgs:?}"));
    }

    #[test]
    fn unknown_step_and_truncation() {
        let mut buf = frame(TAG_SETUP, b"weird\0why");
        buf.extend_from_slice(&[TAG_SETUP, 9, 0, 0, 0, b'x']); // truncated
        let got = Msg::decode_all(&buf);
        assert_eq!(got.len(), 1);
        assert!(
            matches!(&got[0], Msg::Failed(Error::Setup { step: "unknown", cause }) if cause == "why"),
            "{got:?}"
        );
    }

    #[test]
    fn long_text_is_clipped_below_pipe_buf() {
        let long = "é".repeat(5000);
        let m = Msg::Failed(Error::CannotExecute {
            command: long.clone(),
            cause: long,
        });
        let enc = m.encode();
        assert!(enc.len() < 4096, "{}", enc.len());
        assert_eq!(Msg::decode_all(&enc).len(), 1);
    }
}
