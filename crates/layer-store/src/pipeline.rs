//! The import pipeline: two threads joined by a bounded queue of recycled buffers.
//!
//! A producer thread makes the uncompressed tar stream (reads a file or a stream, verifies and
//! decompresses it, or archives a directory) and hashes it; the calling thread parses and unpacks
//! it. On two cores decompression and hashing overlap with file creation instead of adding to it.
//! A producer that is the busier of the two (gzip's inflate is) leaves the hashing of the
//! uncompressed stream to the unpacker's thread.
//! At most [`QUEUE`] + 3 buffers of [`CHUNK`] bytes exist at any time: memory stays flat whatever
//! the layer size.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::id::LayerId;

/// Bytes per buffer: small enough to stay in a core's cache between the two threads.
pub(crate) const CHUNK: usize = 256 << 10;
/// Full buffers the producer may run ahead of the unpacker.
const QUEUE: usize = 8;

enum Msg {
    /// A buffer, how many of its bytes are data, and whether the unpacker hashes them.
    Data(Vec<u8>, usize, bool),
    /// The producer failed; the unpacker stops (the producer's own error is what gets reported).
    Fail(String),
}

/// The producer's end: write or read into it; it hashes and counts everything that passes.
pub(crate) struct Sink {
    tx: SyncSender<Msg>,
    free: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    filled: usize,
    hasher: Sha256,
    count: u64,
    /// The unpacker hashes the stream (see [`Sink::hash_downstream`]).
    downstream: bool,
    /// The unpacker stopped taking data (it failed): the producer's error is only a consequence.
    hung_up: bool,
}

impl Sink {
    fn send(&mut self) -> io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let data = &self.buf[..self.filled];
        if !self.downstream {
            self.hasher.update(data);
        }
        self.count += data.len() as u64;
        let next = self.free.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        let full = std::mem::replace(&mut self.buf, next);
        let n = std::mem::take(&mut self.filled);
        self.tx.send(Msg::Data(full, n, self.downstream)).map_err(|_| {
            self.hung_up = true;
            io::Error::new(io::ErrorKind::BrokenPipe, "the unpacker stopped")
        })
    }

    /// Reads `r` to its end straight into the buffers (no intermediate copy).
    pub(crate) fn fill_from(&mut self, r: &mut dyn Read) -> io::Result<()> {
        loop {
            if self.filled == CHUNK {
                self.send()?;
            }
            match r.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(()),
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Leaves the hashing of the stream to the unpacker's thread: for a producer busier than the
    /// unpacker (one that inflates gzip). Only before anything was written.
    pub(crate) fn hash_downstream(&mut self) {
        debug_assert_eq!((self.count, self.filled), (0, 0));
        self.downstream = true;
    }

    /// True once the unpacker hung up.
    pub(crate) fn hung_up(&self) -> bool {
        self.hung_up
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.filled == CHUNK {
            self.send()?;
        }
        let n = data.len().min(CHUNK - self.filled);
        self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The unpacker's end: a reader of the stream the producer makes.
pub(crate) struct Source {
    rx: Receiver<Msg>,
    free: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    len: usize,
    failed: Option<String>,
    eof: bool,
    /// Hashes the chunks the producer left to this thread.
    hasher: Sha256,
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if let Some(m) = &self.failed {
                return Err(io::Error::other(m.clone()));
            }
            if self.eof || out.is_empty() {
                return Ok(0);
            }
            if !self.cur.is_empty() {
                let _ = self.free.send(std::mem::take(&mut self.cur));
            }
            match self.rx.recv() {
                Ok(Msg::Data(b, n, hash)) => {
                    if hash {
                        self.hasher.update(&b[..n]);
                    }
                    (self.cur, self.pos, self.len) = (b, 0, n)
                }
                Ok(Msg::Fail(m)) => self.failed = Some(m),
                Err(_) => self.eof = true,
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What the producer made: the stream's ID (sha256) and size, and its own result.
pub(crate) struct Produced<T> {
    pub id: LayerId,
    pub size: u64,
    pub value: T,
}

/// The same, before the ID is known when the unpacker's thread hashed.
struct Made<T> {
    id: Option<LayerId>,
    size: u64,
    value: T,
}

/// Runs `produce` on a new thread and `consume` on this one, joined by the queue. `consume` need
/// not read the stream to its end: the rest is drained (and hashed) after it returns. A producer
/// error wins over the unpacker's (which is then only its consequence), except when the producer
/// failed because the unpacker had stopped.
pub(crate) fn run<T, U>(
    produce: impl FnOnce(&mut Sink) -> Result<T> + Send,
    consume: impl FnOnce(&mut Source) -> Result<U>,
) -> Result<(Produced<T>, U)>
where
    T: Send,
{
    let (tx, rx) = sync_channel(QUEUE);
    let (free_tx, free_rx) = channel();
    std::thread::scope(|s| {
        let producer = std::thread::Builder::new()
            .name("layer-reader".into())
            .spawn_scoped(s, move || Sink::new(tx, free_rx).run(produce))
            .map_err(|e| Error::io("start a thread for", "layer stream", e))?;
        let mut src = Source::new(rx, free_tx);
        let consumed = consume(&mut src).and_then(|u| {
            src.drain()?;
            Ok(u)
        });
        let downstream_id = LayerId::from_digest(&std::mem::take(&mut src.hasher).finalize());
        drop(src); // a producer blocked on a full queue sees the hang-up
        let (produced, hung_up) = producer.join().unwrap_or_else(|_| {
            (
                Err(Error::Corrupt {
                    what: "layer stream".into(),
                    reason: "the reading thread panicked".into(),
                }),
                false,
            )
        });
        outcome(produced, consumed, hung_up, downstream_id)
    })
}

impl Sink {
    /// A sink that sends full buffers on `tx` and takes empty ones back from `free`.
    fn new(tx: SyncSender<Msg>, free: Receiver<Vec<u8>>) -> Sink {
        Sink {
            tx,
            free,
            buf: vec![0u8; CHUNK],
            filled: 0,
            hasher: Sha256::new(),
            count: 0,
            downstream: false,
            hung_up: false,
        }
    }

    /// The producer thread: runs `produce` into this sink and sends the rest; on an error, tells the
    /// unpacker. Returns what was made, and whether the unpacker had hung up.
    fn run<T>(mut self, produce: impl FnOnce(&mut Sink) -> Result<T>) -> (Result<Made<T>>, bool) {
        let r = produce(&mut self).and_then(|v| {
            self.send().map_err(|e| Error::io("pass on", "layer stream", e))?;
            Ok(v)
        });
        match r {
            Ok(value) => (
                Ok(Made {
                    id: match self.downstream {
                        true => None,
                        false => Some(LayerId::from_digest(&self.hasher.finalize())),
                    },
                    size: self.count,
                    value,
                }),
                false,
            ),
            Err(e) => {
                let _ = self.tx.send(Msg::Fail(e.to_string()));
                (Err(e), self.hung_up)
            }
        }
    }
}

impl Source {
    /// The unpacker's end of the queue `rx`, giving buffers back on `free`.
    fn new(rx: Receiver<Msg>, free: Sender<Vec<u8>>) -> Source {
        Source {
            rx,
            free,
            cur: Vec::new(),
            pos: 0,
            len: 0,
            failed: None,
            eof: false,
            hasher: Sha256::new(),
        }
    }

    /// Reads (and so hashes) the rest of the stream, which the unpacker left.
    fn drain(&mut self) -> Result<()> {
        io::copy(self, &mut io::sink()).map_err(|e| Error::Corrupt {
            what: "layer stream".into(),
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

/// The result of [`run`] from both sides': the producer's error wins unless it only followed the
/// unpacker's hang-up; the ID is the unpacker's (`downstream_id`) when the producer left the hashing
/// to it.
fn outcome<T, U>(
    produced: Result<Made<T>>,
    consumed: Result<U>,
    hung_up: bool,
    downstream_id: LayerId,
) -> Result<(Produced<T>, U)> {
    match (produced, consumed) {
        (Ok(p), Ok(u)) => Ok((
            Produced {
                id: p.id.unwrap_or(downstream_id),
                size: p.size,
                value: p.value,
            },
            u,
        )),
        (Err(pe), Err(ce)) => Err(if hung_up { ce } else { pe }),
        (Err(pe), Ok(_)) => Err(pe),
        (Ok(_), Err(ce)) => Err(ce),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> LayerId {
        LayerId::from_digest(&Sha256::digest(data))
    }

    #[test]
    fn passes_hashes_and_drains() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7 % 251) as u8).collect();
        // The consumer reads only a part: the rest is still hashed.
        let (p, head) = run(
            |sink| {
                sink.fill_from(&mut &data[..CHUNK / 2])
                    .map_err(|e| Error::io("read", "test", e))?;
                sink.write_all(&data[CHUNK / 2..])
                    .map_err(|e| Error::io("write", "test", e))?;
                Ok(7)
            },
            |src| {
                let mut head = vec![0u8; CHUNK + 3];
                src.read_exact(&mut head).unwrap();
                Ok(head)
            },
        )
        .unwrap();
        assert_eq!((p.value, p.size, p.id), (7, data.len() as u64, sha(&data)));
        assert_eq!(head, data[..CHUNK + 3]);
    }

    #[test]
    fn the_unpacker_can_hash() {
        let data: Vec<u8> = (0..2 * CHUNK + 5).map(|i| (i % 13) as u8).collect();
        let (p, ()) = run(
            |sink| {
                sink.hash_downstream();
                sink.write_all(&data).map_err(|e| Error::io("write", "test", e))
            },
            |_src| Ok(()),
        )
        .unwrap();
        assert_eq!((p.size, p.id), (data.len() as u64, sha(&data)));
    }

    #[test]
    fn producer_errors_win_unless_the_consumer_stopped_first() {
        let e = run(
            |sink| {
                sink.write_all(b"some").unwrap();
                Err::<(), _>(Error::Corrupt {
                    what: "blob".into(),
                    reason: "digest mismatch".into(),
                })
            },
            |src| {
                let mut v = Vec::new();
                src.read_to_end(&mut v).map_err(|e| Error::io("read", "test", e))
            },
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("digest mismatch"), "{e}");

        let big = vec![1u8; 20 * CHUNK];
        let e = run(
            |sink| {
                sink.fill_from(&mut &big[..])
                    .map_err(|e| Error::io("read", "test", e))?;
                Ok(())
            },
            |_src| {
                Err::<(), _>(Error::Rejected {
                    entry: "x".into(),
                    reason: "hostile".into(),
                })
            },
        )
        .err()
        .unwrap();
        assert!(matches!(e, Error::Rejected { .. }), "{e}");
    }
}
