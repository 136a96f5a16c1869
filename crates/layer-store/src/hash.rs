//! Readers and writers that hash (sha256) and count what passes through them: how a layer stream
//! is identified.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::id::LayerId;

/// A reader that hashes (sha256) and counts everything read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> HashReader<R> {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (hashing it) and returns the digest and the byte count.
    pub(crate) fn finish(mut self) -> io::Result<(LayerId, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((LayerId::from_digest(&self.hasher.finalize()), self.count))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that only hashes and counts: how a canonical stream is identified without storing it.
pub(crate) struct HashWriter {
    hasher: Sha256,
    count: u64,
}

impl HashWriter {
    pub(crate) fn new() -> HashWriter {
        HashWriter {
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub(crate) fn finish(self) -> (LayerId, u64) {
        (LayerId::from_digest(&self.hasher.finalize()), self.count)
    }
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.count += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
