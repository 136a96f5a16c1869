//! What a layer stream's first bytes tell: its compression (gzip, zstd or none) and, for a file, how
//! large it is uncompressed; and the producer that decompresses it into the import pipeline.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::pipeline::Sink;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const BZIP2_MAGIC: &[u8] = b"BZh";

/// How a layer stream is compressed (sniffed from its first bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Format {
    Plain,
    Gzip,
    Zstd,
}

impl Format {
    /// Recognises gzip and zstd by their magic bytes; refuses xz and bzip2; anything else is plain.
    pub(crate) fn sniff(head: &[u8]) -> Result<Format> {
        if head.starts_with(GZIP_MAGIC) {
            Ok(Format::Gzip)
        } else if head.starts_with(ZSTD_MAGIC) {
            Ok(Format::Zstd)
        } else if head.starts_with(XZ_MAGIC) || head.starts_with(BZIP2_MAGIC) {
            Err(Error::Corrupt {
                what: "layer stream".into(),
                reason: "is xz- or bzip2-compressed; only plain, gzip and zstd tar streams are supported"
                    .into(),
            })
        } else {
            Ok(Format::Plain)
        }
    }

    /// A reader of the uncompressed stream.
    fn decoder<'a>(self, r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Format::Plain => Box::new(r),
            Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 16,
                r,
            ))),
            Format::Zstd => Box::new(
                zstd::stream::read::Decoder::new(r)
                    .map_err(|e| Error::io("start zstd decoder for", "layer stream", e))?,
            ),
        })
    }
}

/// Reads up to `head.len()` bytes from the start of `r` (fewer only at the end of the stream).
fn read_head(r: &mut impl Read, head: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Detects gzip/zstd by magic bytes and returns a reader of the uncompressed stream, and whether
/// it was compressed.
pub(crate) fn decompress<'a>(mut r: impl Read + 'a) -> Result<(Box<dyn Read + 'a>, bool)> {
    let mut head = [0u8; 6];
    let n = read_head(&mut r, &mut head).map_err(|e| Error::io("read", "layer stream", e))?;
    let format = Format::sniff(&head[..n])?;
    tracing::debug!(?format, "layer stream format");
    let whole = io::Cursor::new(head[..n].to_vec()).chain(r);
    Ok((format.decoder(whole)?, format != Format::Plain))
}

/// A reader that hashes what passes through it while `on`.
struct BlobHasher<R> {
    inner: R,
    hasher: Sha256,
    on: bool,
}

impl<R: Read> Read for BlobHasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.on {
            self.hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The producer of the import pipeline for a file or stream: sniffs the compression, decompresses
/// into `sink` (which hashes the uncompressed stream). Returns `Some(digest of the raw blob)` when
/// it was compressed (`Some("")` when `hash_blob` is false), `None` when it was plain.
pub(super) fn produce(raw: impl Read, sink: &mut Sink, hash_blob: bool) -> Result<Option<String>> {
    let mut raw = BlobHasher {
        inner: raw,
        hasher: Sha256::new(),
        on: hash_blob,
    };
    let mut head = [0u8; 6];
    let n = read_head(&mut raw, &mut head).map_err(stream_err)?;
    let format = Format::sniff(&head[..n])?;
    tracing::debug!(?format, "layer stream format");
    // A plain stream's digest is its ID, which the sink computes anyway.
    raw.on &= format != Format::Plain;
    let mut whole = io::Cursor::new(&head[..n]).chain(&mut raw);
    if format == Format::Gzip {
        // Inflating is the slowest step: the unpacker's thread hashes instead.
        sink.hash_downstream();
    }
    let filled = match format {
        Format::Plain => sink.fill_from(&mut whole),
        _ => sink.fill_from(&mut format.decoder(&mut whole)?),
    };
    if let Err(e) = filled {
        return Err(if sink.hung_up() {
            Error::io("pass on", "layer stream", e)
        } else {
            stream_err(e)
        });
    }
    Ok(match format {
        Format::Plain => None,
        _ if hash_blob => Some(format!("sha256:{}", hex::encode(raw.hasher.finalize()))),
        _ => Some(String::new()),
    })
}

/// A read or decode error of a layer stream: bad data is a corrupt stream, anything else I/O.
fn stream_err(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            Error::Corrupt {
                what: "layer stream".into(),
                reason: e.to_string(),
            }
        }
        _ => Error::io("read", "layer stream", e),
    }
}

/// The uncompressed size of a stream, as far as it is known without reading it.
#[derive(Clone, Copy, Debug)]
pub(super) enum SizeHint {
    Exact(u64),
    /// Modulo 2^32 (gzip's ISIZE trailer; right for a single-member gzip).
    Mod32(u64),
    Unknown,
}

/// Reads up to `buf.len()` bytes at `offset` (fewer only at the end of the file).
pub(super) fn read_at_most(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A gzip file's ISIZE trailer: its last member's uncompressed size modulo 2^32.
pub(super) fn gzip_isize(f: &File, len: u64) -> io::Result<SizeHint> {
    if len < 18 {
        return Ok(SizeHint::Unknown);
    }
    let mut t = [0u8; 4];
    if read_at_most(f, &mut t, len - 4)? < 4 {
        return Ok(SizeHint::Unknown);
    }
    Ok(SizeHint::Mod32(u32::from_le_bytes(t).into()))
}

/// A zstd frame's content size, when its header records one (the zstd tool does for a file it
/// compresses in one frame; a stream compressed from a pipe has none).
pub(super) fn zstd_content_size(head: &[u8]) -> SizeHint {
    match zstd::zstd_safe::get_frame_content_size(head) {
        Ok(Some(n)) => SizeHint::Exact(n),
        _ => SizeHint::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn sniffing() {
        let plain = b"hello tar".to_vec();
        let (mut r, c) = decompress(&plain[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(!c);
        assert_eq!(out, plain);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let (mut r, c) = decompress(&gz[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(c);
        assert_eq!(out, plain);

        let zs = zstd::encode_all(&plain[..], 1).unwrap();
        let (mut r, c) = decompress(&zs[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(c);
        assert_eq!(out, plain);

        assert!(decompress(&b"\xfd7zXZ\0rest"[..]).is_err());
        let (mut r, c) = decompress(&b"ab"[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(
            (out.as_slice(), c),
            (&b"ab"[..], false),
            "short streams pass through"
        );
    }
}
