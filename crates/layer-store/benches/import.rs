//! Import throughput against GNU tar, side by side on the same fresh filesystem.
//!
//! The layer: a generated tar of `MOUNTKIT_BENCH_MB` MB (default 500) in `MOUNTKIT_BENCH_FILES`
//! files (default 20,000; the shape of issue 2's target): two directory levels, file sizes from
//! 0.5 KiB to 24 KiB plus a hundred files of `MB`/200 MB each (half the bytes), text-like content
//! that gzip shrinks about 3x (the bench prints the ratio), mode 0644/0755, a symlink per 50 files, one file in 20 owned by
//! 1000:1000 when run as root (else everything is the running user's).
//!
//! Groups (each member runs on a fresh filesystem per iteration, made before the clock starts and
//! thrown away after it stops):
//! - `import_<fs>`: `Store::import_layer(Tar)` (hash while unpacking, one syncfs, commit) against
//!   `ref_tar_xf` (`tar -xf` of the same file; no sync);
//! - `oci_gz_<fs>`: `oci::import` of an OCI layout holding the layer gzip-compressed (blob digest
//!   and diff_id verified) against `ref_tar_xzf` (`tar -xzf` of the blob itself).
//!
//! `<fs>` is `tmpfs` (a tmpfs mounted per run) and, as root, `ext4` (a new ext4 on a loop device
//! backed by a file in /dev/shm, mounted per run: the disk is memory, the filesystem work is
//! ext4's, and syncfs writes back through the loop device). Issue 2 warns that `/` here is an
//! ext4 where creating files right after deleting many is slow: hence a fresh filesystem per run.
//! Without root, only a fresh directory in /dev/shm is used (`tmpfs` groups; no mounts).
//!
//! `MOUNTKIT_BENCH_DATA=<dir>` generates the layer there and leaves it (for profiling by hand).
//! `MOUNTKIT_BENCH_ONLY=<text>` keeps only the groups whose name contains it. Before criterion
//! runs, `MOUNTKIT_BENCH_ROUNDS` (default 3; 0: none) alternating rounds of each pair
//! print MB/s (10^6 bytes of uncompressed tar per second) for both and their ratio: alternating
//! keeps the two under the same background load, which matters on a shared machine. The ext4
//! rounds also time `tar -xf` followed by `sync -f`, the durability mountkit pays for.
//!
//! As root the process unshares its mount namespace first: nothing it mounts is visible outside
//! or outlives it.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_main};
use mountkit_layer_store::oci::{self, ImportOptions};
use mountkit_layer_store::{LayerSource, Store};
use sha2::{Digest, Sha256};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Text-like bytes: words from a small vocabulary and numbers picked by an LCG (gzip -6 gets
/// about 3x, as on typical image layers).
fn text_pool(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the", "layer", "store", "mount", "overlay", "static", "const", "return", "fn", "let", "struct",
        "impl", "match", "error", "0x7f", "path", "/usr/lib", "include", "int", "void", "char", "data",
        "buffer", "size_t", "if", "else", "while", "for", "{", "}", ";", "\n",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while out.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let w = WORDS[(x >> 33) as usize % WORDS.len()];
        out.extend_from_slice(w.as_bytes());
        if x & 0x3000 == 0 {
            out.extend_from_slice((x >> 44).to_string().as_bytes());
        }
        out.push(if x & 0x700 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Writes the layer tar; returns its size and member count.
fn generate(path: &Path, total_mb: u64, files: u64) -> (u64, u64) {
    let meta = std::fs::metadata(path.parent().unwrap()).unwrap();
    let (uid, gid) = (u64::from(meta.uid()), u64::from(meta.gid()));
    let big_files = 100.min(files / 2).max(1);
    let big = total_mb * 1_000_000 / 2 / big_files;
    let small_files = files - big_files;
    const SPREAD: u64 = 8 << 20; // where files start in the pool: far apart, as gzip sees them
    let pool = text_pool((big.max(64 << 10) + SPREAD) as usize);
    let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).unwrap(),
    ));
    let mut members = 0u64;
    let header = |ty: tar::EntryType, mode: u32, size: u64, n: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(ty);
        h.set_mode(mode);
        let foreign = is_root() && n % 20 == 7;
        h.set_uid(if foreign { 1000 } else { uid });
        h.set_gid(if foreign { 1000 } else { gid });
        h.set_mtime(1_600_000_000 + n);
        h.set_size(size);
        h
    };
    let dirs = (files / 100).max(1);
    let mut n = 0u64;
    for d in 0..dirs {
        let top = format!("d{:02}", d / 10);
        if d % 10 == 0 {
            let mut h = header(tar::EntryType::Directory, 0o755, 0, n);
            b.append_data(&mut h, format!("{top}/"), std::io::empty())
                .unwrap();
            members += 1;
        }
        let dir = format!("{top}/e{}", d % 10);
        let mut h = header(tar::EntryType::Directory, 0o755, 0, n);
        b.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .unwrap();
        members += 1;
        let in_dir = if d + 1 == dirs { files - n } else { 100 };
        for f in 0..in_dir {
            let name = format!("{dir}/f{f:03}");
            let size = if n % (files / big_files).max(1) == 0 && n / (files / big_files).max(1) < big_files {
                big
            } else {
                // 0.5 KiB .. 24 KiB, scaled so the small files hold the other half of the bytes.
                let raw = 512 + (n.wrapping_mul(7919) % (24 << 10));
                (raw * (total_mb * 1_000_000 / 2) / (small_files * (512 + (12 << 10))).max(1))
                    .min(pool.len() as u64 - SPREAD)
            };
            let off = (n.wrapping_mul(104_729) % SPREAD) as usize;
            let mode = if f % 4 == 0 { 0o755 } else { 0o644 };
            let mut h = header(tar::EntryType::Regular, mode, size, n);
            b.append_data(&mut h, &name, &pool[off..off + size as usize])
                .unwrap();
            members += 1;
            if f % 50 == 1 {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0, n);
                b.append_link(&mut h, format!("{name}.link"), format!("f{f:03}"))
                    .unwrap();
                members += 1;
            }
            n += 1;
        }
    }
    b.into_inner().unwrap().flush().unwrap();
    (std::fs::metadata(path).unwrap().len(), members)
}

fn sha256_hex(path: &Path) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut h).unwrap();
    hex::encode(h.finalize())
}

/// An OCI layout holding the tar, gzip-compressed (default level, as image builders write it).
/// Returns the layout and the path of the layer blob.
fn oci_layout(tar: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let gz_tmp = dir.join("layer.tar.gz");
    {
        let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&gz_tmp).unwrap());
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        std::io::copy(&mut std::fs::File::open(tar).unwrap(), &mut enc).unwrap();
        enc.finish().unwrap().flush().unwrap();
    }
    let layer_hex = sha256_hex(&gz_tmp);
    let layer = blobs.join(&layer_hex);
    std::fs::rename(&gz_tmp, &layer).unwrap();
    let put = |data: &[u8]| {
        let hex = hex::encode(Sha256::digest(data));
        std::fs::write(blobs.join(&hex), data).unwrap();
        format!("sha256:{hex}")
    };
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(tar))]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": config.len(), "digest": put(&config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "size": std::fs::metadata(&layer).unwrap().len(),
                    "digest": format!("sha256:{layer_hex}")}]
    }))
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": manifest.len(), "digest": put(&manifest),
        "annotations": {"org.opencontainers.image.ref.name": "bench"}
    }]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (dir.to_path_buf(), layer)
}

/// Which fresh filesystem a run gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FsKind {
    /// A tmpfs mounted for the run (root), or a new directory in /dev/shm (not root).
    Tmpfs,
    /// A new ext4 on a loop device backed by a file in /dev/shm (root only).
    Ext4,
}

impl FsKind {
    fn name(self) -> &'static str {
        match self {
            FsKind::Tmpfs => "tmpfs",
            FsKind::Ext4 => "ext4",
        }
    }
}

/// A fresh filesystem, unmounted and deleted on drop.
struct Fresh {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Fresh {
    fn new(kind: FsKind, bytes: u64) -> Fresh {
        let dir = tempfile::tempdir_in(shm()).unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        if !is_root() {
            return Fresh { dir, mounted: false };
        }
        let size = (bytes * 2).max(256 << 20);
        match kind {
            FsKind::Tmpfs => {
                let data = std::ffi::CString::new(format!("size={size},mode=0755")).unwrap();
                rustix::mount::mount(
                    "tmpfs",
                    &mnt,
                    "tmpfs",
                    rustix::mount::MountFlags::empty(),
                    data.as_c_str(),
                )
                .expect("mount tmpfs");
            }
            FsKind::Ext4 => {
                let img = dir.path().join("img");
                std::fs::File::create(&img).unwrap().set_len(size).unwrap();
                let ok = Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
                    .arg(&img)
                    .status()
                    .expect("run mkfs.ext4")
                    .success();
                assert!(ok, "mkfs.ext4 failed");
                let ok = Command::new("mount")
                    .args(["-t", "ext4", "-o", "loop"])
                    .arg(&img)
                    .arg(&mnt)
                    .status()
                    .expect("run mount")
                    .success();
                assert!(ok, "mount -o loop failed");
            }
        }
        Fresh { dir, mounted: true }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if self.mounted {
            // A loop mount made by mount(8) detaches its loop device when unmounted (autoclear).
            rustix::mount::unmount(self.path(), rustix::mount::UnmountFlags::empty()).expect("unmount");
        }
    }
}

fn shm() -> PathBuf {
    let shm = Path::new("/dev/shm");
    match rustix::fs::statfs(shm) {
        Ok(st) if st.f_type == 0x0102_1994 => shm.to_path_buf(), // TMPFS_MAGIC
        _ => std::env::temp_dir(),
    }
}

fn import_tar(tar: &Path, fs: &Fresh) -> Duration {
    let store = Store::open(fs.path().join("store")).unwrap();
    let t = Instant::now();
    store.import_layer(LayerSource::Tar(tar.to_path_buf())).unwrap();
    t.elapsed()
}

fn import_oci(layout: &Path, fs: &Fresh) -> Duration {
    let store = Store::open(fs.path().join("store")).unwrap();
    let t = Instant::now();
    oci::import(&store, layout, ImportOptions::default()).unwrap();
    t.elapsed()
}

fn gnu_tar(flags: &str, file: &Path, fs: &Fresh, sync: bool) -> Duration {
    let out = fs.path().join("x");
    std::fs::create_dir(&out).unwrap();
    let t = Instant::now();
    let ok = Command::new("tar")
        .arg(flags)
        .arg(file)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar {flags} failed");
    if sync {
        let d = std::fs::File::open(&out).unwrap();
        rustix::fs::syncfs(&d).unwrap();
    }
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs a reference command on a fresh filesystem (`true`: then syncfs).
type RefRun<'a> = Box<dyn Fn(&Fresh, bool) -> Duration + 'a>;

/// A side-by-side pair, measured in alternating rounds.
struct Pair<'a> {
    group: String,
    what: &'a str,
    ours: Box<dyn Fn(&Fresh) -> Duration + 'a>,
    /// The reference command as shown, and its criterion id.
    ref_shown: &'a str,
    ref_id: &'a str,
    /// Runs the reference (`true`: then syncfs).
    reference: RefRun<'a>,
    kind: FsKind,
}

/// Returns the slower member's median: what a criterion sample of the pair costs.
fn rounds(p: &Pair<'_>, bytes: u64, n: u64) -> Duration {
    let mbs = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        a.push((p.ours)(&Fresh::new(p.kind, bytes)));
        b.push((p.reference)(&Fresh::new(p.kind, bytes), false));
        if p.kind == FsKind::Ext4 {
            c.push((p.reference)(&Fresh::new(p.kind, bytes), true));
        }
    }
    let (a, b) = (median(a), median(b));
    let mut line = format!(
        "{}: {} {:.0} MB/s, {} {:.0} MB/s: {:.2}x tar's speed",
        p.group,
        p.what,
        mbs(a),
        p.ref_shown,
        mbs(b),
        b.as_secs_f64() / a.as_secs_f64()
    );
    if !c.is_empty() {
        line += &format!(" (tar + syncfs {:.0} MB/s)", mbs(median(c)));
    }
    println!("{line}  [median of {n} alternating rounds]");
    a.max(b)
}

fn bench_pair(c: &mut Criterion, p: &Pair<'_>, bytes: u64, sample: Duration) {
    let mut g = c.benchmark_group(&p.group);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time((sample * 12).max(Duration::from_secs(10)));
    g.throughput(Throughput::Bytes(bytes));
    let kind = p.kind;
    g.bench_function("mountkit", |b| {
        b.iter_batched(
            || Fresh::new(kind, bytes),
            |fs| {
                (p.ours)(&fs);
                fs
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function(p.ref_id, |b| {
        b.iter_batched(
            || Fresh::new(kind, bytes),
            |fs| {
                (p.reference)(&fs, false);
                fs
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    if is_root() {
        // Nothing the bench mounts is seen outside this process, nor outlives it.
        mountkit_testutil::private_mount_ns();
    } else {
        println!(
            "not root: runs go to fresh directories in {} (no fresh filesystems)",
            shm().display()
        );
    }
    let mb = env_u64("MOUNTKIT_BENCH_MB", 500);
    let files = env_u64("MOUNTKIT_BENCH_FILES", 20_000);
    let n = env_u64("MOUNTKIT_BENCH_ROUNDS", 3);
    let src = tempfile::tempdir_in(shm()).unwrap();
    // MOUNTKIT_BENCH_DATA=DIR: generate into DIR and leave it there (for profiling by hand).
    let data =
        std::env::var_os("MOUNTKIT_BENCH_DATA").map_or_else(|| src.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&data).unwrap();
    let tar = data.join("layer.tar");
    let (bytes, members) = generate(&tar, mb, files);
    let (layout, blob) = oci_layout(&tar, &data.join("oci"));
    let gz = std::fs::metadata(&blob).unwrap().len();
    println!(
        "layer: {:.0} MB tar, {members} members ({files} files); gzip blob {:.0} MB",
        bytes as f64 / 1e6,
        gz as f64 / 1e6
    );
    let mut kinds = vec![FsKind::Tmpfs];
    if is_root() {
        kinds.push(FsKind::Ext4);
    }
    let mut pairs = Vec::new();
    for &kind in &kinds {
        pairs.push(Pair {
            group: format!("import_{}", kind.name()),
            what: "mountkit layer import",
            ours: Box::new(|fs: &Fresh| import_tar(&tar, fs)),
            ref_shown: "tar -xf",
            ref_id: "ref_tar_xf",
            reference: Box::new(|fs: &Fresh, sync| gnu_tar("-xf", &tar, fs, sync)),
            kind,
        });
        pairs.push(Pair {
            group: format!("oci_gz_{}", kind.name()),
            what: "mountkit image import (OCI, gzip)",
            ours: Box::new(|fs: &Fresh| import_oci(&layout, fs)),
            ref_shown: "tar -xzf",
            ref_id: "ref_tar_xzf",
            reference: Box::new(|fs: &Fresh, sync| gnu_tar("-xzf", &blob, fs, sync)),
            kind,
        });
    }
    if let Ok(only) = std::env::var("MOUNTKIT_BENCH_ONLY") {
        pairs.retain(|p| p.group.contains(&only));
    }
    let samples: Vec<Duration> = pairs
        .iter()
        .map(|p| match n {
            0 => Duration::ZERO,
            _ => rounds(p, bytes, n),
        })
        .collect();
    for (p, sample) in pairs.iter().zip(samples) {
        bench_pair(c, p, bytes, sample);
    }
}

/// criterion's macros generate undocumented public functions; keep them in their own module.
mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}

criterion_main!(group::benches);
