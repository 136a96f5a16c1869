//! A detached container's log: what its monitor writes and `container logs` reads.
//!
//! The format is Docker's `json-file`: one JSON object per line, `{"log":"text\n","stream":"stdout",
//! "time":"2026-12-07T02:31:47.123456789Z"}`, in `containers/<id>/container.log`. A line longer than
//! 16 KiB is split into entries of 16 KiB (the last one carries the newline), as Docker does; output
//! still without a newline when the container exits is written as it is. With `--log-opt max-size`,
//! the file is rotated before an entry would take it past the size: `container.log` becomes
//! `container.log.1` (and `.1` `.2`, up to `max-file` files in all; with `max-file=1`, the default, the
//! old content is dropped). An attached container (`run` without `-d`) writes to the caller's terminal
//! and keeps no log.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::container::LogOptions;
use crate::{Error, Mountkit, Result};

/// The log's file name in the container's directory.
pub(crate) const LOG_FILE: &str = "container.log";

/// Docker splits longer lines into entries of this size.
const MAX_ENTRY: usize = 16 * 1024;

/// Which output of the container a log entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Its standard output.
    Stdout,
    /// Its standard error.
    Stderr,
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    /// The text, with its newline when it had one.
    pub log: String,
    /// stdout or stderr.
    pub stream: Stream,
    /// When the monitor read it, RFC 3339 with nanoseconds, UTC.
    pub time: String,
}

/// The monitor's writer: entries per line and stream, rotation by size.
pub(crate) struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    options: LogOptions,
    /// Output of each stream not ended by a newline yet.
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (appends to) the log of the container whose directory is `dir`.
    pub(crate) fn open(dir: &Path, options: LogOptions) -> Result<LogWriter> {
        let path = dir.join(LOG_FILE);
        let file = open_append(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path,
            file,
            size,
            options,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Takes `data` read from `stream`: every complete line (or 16 KiB piece) becomes an entry.
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) {
        let i = stream as usize;
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while start < buf.len() {
            let rest = &buf[start..];
            let end = match rest.iter().position(|&b| b == b'\n') {
                Some(nl) if nl < MAX_ENTRY => nl + 1,
                _ if rest.len() >= MAX_ENTRY => MAX_ENTRY,
                _ => break,
            };
            self.entry(stream, &rest[..end]);
            start += end;
        }
        buf.drain(..start);
        self.partial[i] = buf;
    }

    /// Writes what is left of each stream (output the container ended without a newline).
    pub(crate) fn flush(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.partial[stream as usize]);
            if !rest.is_empty() {
                self.entry(stream, &rest);
            }
        }
    }

    fn entry(&mut self, stream: Stream, text: &[u8]) {
        let entry = LogEntry {
            log: String::from_utf8_lossy(text).into_owned(),
            stream,
            time: mountkit_safefs::now_rfc3339(mountkit_safefs::TimePrecision::Nanoseconds),
        };
        let mut line = serde_json::to_vec(&entry).expect("a log entry serializes");
        line.push(b'\n');
        if let Some(max) = self.options.max_size
            && self.size > 0
            && self.size + line.len() as u64 > max
        {
            self.rotate();
        }
        // A full disk loses log lines, never the container: the monitor goes on.
        if self.file.write_all(&line).is_ok() {
            self.size += line.len() as u64;
        }
    }

    /// `container.log` -> `.1` -> `.2` ... keeping `max-file` files in all, then a new empty log.
    fn rotate(&mut self) {
        let keep = self.options.max_file.unwrap_or(1);
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        for n in (1..keep.saturating_sub(1)).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        if keep > 1 {
            let _ = std::fs::rename(&self.path, numbered(1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Ok(f) = open_append(&self.path) {
            self.file = f;
            self.size = 0;
        }
    }
}

fn open_append(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("open the log", path, e))
}

/// What `container logs` shows.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// `-f`: keep printing new entries until the container stops.
    pub follow: bool,
    /// `--tail N`: only the last N entries (all when `None`).
    pub tail: Option<usize>,
    /// `-t`: each line prefixed with its time.
    pub timestamps: bool,
    /// `--since`: only entries at or after this time (RFC 3339, or a duration like `10m` before now).
    pub since: Option<String>,
}

/// `--since`'s value as an RFC 3339 string comparable with entries' times.
fn since_time(since: &str) -> Result<String> {
    let bad = |reason: &str| Error::InvalidArgument {
        what: "--since",
        value: since.into(),
        reason: reason.into(),
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(since) {
        return Ok(humantime::format_rfc3339_nanos(t).to_string());
    }
    let d = humantime::parse_duration(since)
        .or_else(|_| since.parse::<u64>().map(Duration::from_secs))
        .map_err(|_| bad("takes a time (RFC 3339) or a duration before now (10m, 1h30m)"))?;
    let t = std::time::SystemTime::now()
        .checked_sub(d)
        .ok_or_else(|| bad("is too far back"))?;
    Ok(humantime::format_rfc3339_nanos(t).to_string())
}

impl Mountkit {
    /// Prints the log of container `reference` to `out` (stdout entries) and `err` (stderr entries).
    /// With `follow`, waits for new entries until the container is no longer running.
    pub fn logs(
        &self,
        reference: &str,
        o: &LogsOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let c = self.container(reference)?;
        let dir = self.container_dir(&c.id);
        let since = o.since.as_deref().map(since_time).transpose()?;
        let path = dir.join(LOG_FILE);
        let mut files: Vec<PathBuf> = (1..=c.config.log.max_file.unwrap_or(1))
            .rev()
            .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
            .filter(|p| p.exists())
            .collect();
        files.push(path.clone());
        let mut entries = Vec::new();
        for f in &files {
            let Ok(file) = File::open(f) else { continue };
            entries.extend(
                BufReader::new(file)
                    .lines()
                    .map_while(|l| l.ok())
                    .filter_map(|l| parse(&l)),
            );
        }
        let keep = |e: &LogEntry| since.as_ref().is_none_or(|s| e.time.as_str() >= s.as_str());
        let mut shown: Vec<&LogEntry> = entries.iter().filter(|e| keep(e)).collect();
        if let Some(n) = o.tail {
            let skip = shown.len().saturating_sub(n);
            shown.drain(..skip);
        }
        for e in shown {
            print_entry(e, o.timestamps, out, err)?;
        }
        if !o.follow {
            return Ok(());
        }
        // Follow the current file from where it ends now; a rotation starts a new file (reopened).
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(_) => return Ok(()),
        };
        let mut pos = file.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
        let mut pending = String::new();
        loop {
            let running = self.is_running(&c.id);
            let mut reader = BufReader::new(&file);
            let mut line = String::new();
            while let Ok(n) = reader.read_line(&mut line) {
                if n == 0 {
                    break;
                }
                pos += n as u64;
                if line.ends_with('\n') {
                    pending.push_str(&line);
                    if let Some(e) = parse(pending.trim_end())
                        && keep(&e)
                    {
                        print_entry(&e, o.timestamps, out, err)?;
                    }
                    pending.clear();
                } else {
                    pending.push_str(&line);
                }
                line.clear();
            }
            if !running {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
            // Rotated: the path now names a new file, shorter than where this one was read to.
            if std::fs::metadata(&path).is_ok_and(|m| m.len() < pos)
                && let Ok(f) = File::open(&path)
            {
                file = f;
                pos = 0;
            }
            let _ = file.seek(std::io::SeekFrom::Start(pos));
        }
    }
}

fn parse(line: &str) -> Option<LogEntry> {
    serde_json::from_str(line).ok()
}

fn print_entry(e: &LogEntry, timestamps: bool, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let w: &mut dyn Write = match e.stream {
        Stream::Stdout => out,
        Stream::Stderr => err,
    };
    let r = if timestamps {
        write!(w, "{} {}", e.time, e.log)
    } else {
        w.write_all(e.log.as_bytes())
    };
    r.and_then(|()| w.flush())
        .map_err(|source| Error::io("print the log", "", source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path) -> Vec<LogEntry> {
        let text = std::fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
        text.lines().map(|l| parse(l).unwrap()).collect()
    }

    #[test]
    fn lines_streams_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), LogOptions::default()).unwrap();
        w.write(Stream::Stdout, b"one\ntw");
        w.write(Stream::Stderr, b"err\n");
        w.write(Stream::Stdout, b"o\n");
        w.write(Stream::Stdout, &vec![b'x'; MAX_ENTRY + 10]);
        w.write(Stream::Stdout, b"\nend");
        w.flush();
        let e = read(dir.path());
        let logs: Vec<(&str, Stream)> = e.iter().map(|e| (e.log.as_str(), e.stream)).collect();
        assert_eq!(logs[0], ("one\n", Stream::Stdout));
        assert_eq!(logs[1], ("err\n", Stream::Stderr));
        assert_eq!(logs[2], ("two\n", Stream::Stdout));
        assert_eq!(logs[3].0.len(), MAX_ENTRY);
        assert_eq!(logs[4].0, format!("{}\n", "x".repeat(10)));
        assert_eq!(logs[5].0, "end");
        assert!(e[0].time.ends_with('Z') && e[0].time <= e[5].time);
    }

    #[test]
    fn rotation_keeps_max_file_files_under_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let o = LogOptions {
            max_size: Some(300),
            max_file: Some(2),
        };
        let mut w = LogWriter::open(dir.path(), o).unwrap();
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        let cur = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        let old = std::fs::metadata(dir.path().join("container.log.1"))
            .unwrap()
            .len();
        assert!(cur <= 300 && old <= 300, "{cur} {old}");
        assert!(!dir.path().join("container.log.2").exists());
        assert_eq!(read(dir.path()).last().unwrap().log, "line 19\n");
        let o = LogOptions {
            max_size: Some(200),
            max_file: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), o).unwrap();
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        assert!(!dir.path().join("container.log.1").exists());
        assert!(std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len() <= 200);
    }

    #[test]
    fn since_takes_times_and_durations() {
        assert!(
            since_time("2026-01-02T03:04:05Z")
                .unwrap()
                .starts_with("2026-01-02T03:04:05")
        );
        assert!(
            since_time("10m").unwrap()
                < mountkit_safefs::now_rfc3339(mountkit_safefs::TimePrecision::Nanoseconds)
        );
        assert!(since_time("yesterday").is_err());
    }
}
