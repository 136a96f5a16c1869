//! Volume export, import and clone (issue 15) beside GNU tar and `cp -a`, each run on a fresh
//! filesystem, in criterion groups with their reference (`ref_*`, which `cargo xtask bench` reads as
//! the baseline):
//!
//! - `volume_export_500mb`: `mountkit_layer_store::tar_tree` (what `volume export -o FILE` runs) of the
//!   volume into a file on the same filesystem, against `tar -C DIR -cf FILE .`.
//! - `volume_import_500mb`: that archive (in /dev/shm) into an empty directory: `unpack_tree` (what
//!   `volume import` runs, guards included) against `tar -C DIR -xf FILE`. Neither syncs.
//! - `volume_clone_ext4_500mb`: `Registry::clone_volume` (the copy path: ext4 has no reflinks) against
//!   `cp -a` of the volume's data on the same filesystem.
//! - `volume_clone_xfs_reflink`: `Registry::clone_volume` on XFS with reflinks (`mkfs.xfs -m reflink=1`)
//!   of the same 20,000 files holding 50 MB (`ref_50mb`, the baseline) and 500 MB (`500mb`): a clone
//!   that takes constant time in the data size shows 1.0x.
//!
//! The volume: 20,000 files in 200 directories, 19,800 small ones and 200 large ones (one a directory):
//! 4 KiB and 2 MiB (500.5 MB), or for the 50 MB XFS volume 2 KiB and 48 KiB (50.4 MB). Bytes from a
//! pseudo-random generator (nothing a filesystem could share or compress).
//!
//! The fresh filesystem: each volume is written once into a filesystem image (a sparse file in
//! /dev/shm, formatted, loop-mounted, filled, unmounted); every run copies that image (holes kept) and
//! loop-mounts the copy, before the clock starts, and unmounts it after the clock stops (a loop mount
//! made by mount(8) detaches its device then). So every run starts on a filesystem no run used before,
//! with nothing of it cached: the disk is memory, the filesystem's work is ext4's or XFS's. The import
//! runs on a copy of a new empty ext4. `MOUNTKIT_BENCH_WARM=1` reads every file of the volume once
//! before the clock starts instead (the tools' own work, without the reads through the loop device). The process unshares its mount namespace first: nothing it mounts
//! is visible outside or outlives it. Needs root (prints SKIP otherwise), mkfs.ext4 and, for the XFS
//! group, mkfs.xfs.
//!
//! Criterion measures one member after the other; this shared machine drifts meanwhile. Before
//! criterion runs, `MOUNTKIT_BENCH_ROUNDS` (default 3; 0: none) alternating rounds of each pair print
//! both medians and their ratio (also to `target/criterion-volume-archive.txt`, which `cargo xtask
//! bench` prints). `MOUNTKIT_BENCH_ONLY=<text>` keeps only the groups whose name contains it.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mountkit::layer_store::{tar_tree, unpack_tree};
use mountkit::volumes::{CreateOptions, Registry};

/// Files per directory, and directories: 20,000 files.
const PER_DIR: usize = 100;
const DIRS: usize = 200;

/// A volume's shape: 19,800 files of `small` bytes and 200 of `large`.
#[derive(Clone, Copy)]
struct Shape {
    small: usize,
    large: usize,
}

impl Shape {
    const MB500: Shape = Shape {
        small: 4 << 10,
        large: 2 << 20,
    };
    const MB50: Shape = Shape {
        small: 2 << 10,
        large: 48 << 10,
    };

    fn bytes(self) -> u64 {
        (DIRS * ((PER_DIR - 1) * self.small + self.large)) as u64
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn run(cmd: &mut Command) {
    let st = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(st.success(), "{cmd:?} failed");
}

fn has(tool: &str) -> bool {
    Command::new(tool)
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fills `dir` with the volume: `d000/f00000` ... `d199/f19999`, the first file of each directory large.
fn fill(dir: &Path, shape: Shape) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut pool = vec![0u8; shape.large + shape.small * PER_DIR];
    for b in pool.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    for d in 0..DIRS {
        let sub = dir.join(format!("d{d:03}"));
        std::fs::create_dir(&sub).expect("mkdir");
        for f in 0..PER_DIR {
            let n = d * PER_DIR + f;
            let (off, len) = match f {
                0 => ((d * 4096) % (shape.small * PER_DIR), shape.large),
                _ => (
                    shape.large + ((n * 7919) % (PER_DIR - 1)) * shape.small,
                    shape.small,
                ),
            };
            std::fs::write(sub.join(format!("f{n:05}")), &pool[off..off + len]).expect("write");
        }
    }
}

/// Reads every file under `dir` (into the page cache).
fn read_all(dir: &Path, buf: &mut [u8]) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            read_all(&e.path(), buf);
        } else if ft.is_file() {
            let mut f = std::fs::File::open(e.path()).expect("open");
            while std::io::Read::read(&mut f, buf).expect("read") > 0 {}
        }
    }
}

/// Which filesystem an image holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fs {
    Ext4,
    XfsReflink,
}

/// A filesystem image in /dev/shm, made once: the source every run copies.
struct Template {
    dir: tempfile::TempDir,
    fs: Fs,
}

/// The size of every image (sparse: only what is written takes memory).
const IMAGE: u64 = 1536 << 20;

impl Template {
    /// A new filesystem; with `shape`, holding a registry (`volumes/`) with the volume `src` so filled.
    fn new(fs: Fs, shape: Option<Shape>) -> Template {
        let dir = tempfile::tempdir_in("/dev/shm").expect("tempdir in /dev/shm");
        let img = dir.path().join("img");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(IMAGE))
            .expect("image");
        match fs {
            Fs::Ext4 => run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
                .arg(&img)),
            Fs::XfsReflink => run(Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", "reflink=1"])
                .arg(&img)),
        }
        let t = Template { dir, fs };
        if let Some(shape) = shape {
            let m = Mounted::new(&img, t.dir.path().join("mnt"), fs);
            let reg = Registry::open(m.path.join("volumes")).expect("registry");
            let vol = reg.create(Some("src"), CreateOptions::default()).expect("create");
            fill(&vol.mountpoint, shape);
        }
        t
    }

    /// A copy of the image (holes kept), loop-mounted; with `MOUNTKIT_BENCH_WARM=1`, its volume read
    /// once.
    fn fresh(&self) -> Fresh {
        let dir = tempfile::tempdir_in("/dev/shm").expect("tempdir in /dev/shm");
        let img = dir.path().join("img");
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(self.dir.path().join("img"))
            .arg(&img));
        let mounted = Mounted::new(&img, dir.path().join("mnt"), self.fs);
        let fresh = Fresh {
            mounted: Some(mounted),
            _dir: dir,
        };
        if std::env::var_os("MOUNTKIT_BENCH_WARM").is_some_and(|v| v == "1") {
            read_all(&fresh.path().join("volumes"), &mut vec![0u8; 1 << 20]);
        }
        fresh
    }
}

/// A loop mount, unmounted on drop (mount(8)'s loop device goes with it: autoclear).
struct Mounted {
    path: PathBuf,
}

impl Mounted {
    fn new(img: &Path, path: PathBuf, fs: Fs) -> Mounted {
        std::fs::create_dir(&path).expect("mount point");
        let ty = match fs {
            Fs::Ext4 => "ext4",
            Fs::XfsReflink => "xfs",
        };
        run(Command::new("mount")
            .args(["-t", ty, "-o", "loop"])
            .arg(img)
            .arg(&path));
        Mounted { path }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::empty()) {
            // Not while unwinding from another panic: that would abort and hide the first one.
            if !std::thread::panicking() {
                panic!("unmount {}: {e}", self.path.display());
            }
        }
    }
}

/// A fresh filesystem for one run: unmounted, then its image deleted, on drop.
struct Fresh {
    mounted: Option<Mounted>,
    _dir: tempfile::TempDir,
}

impl Fresh {
    fn path(&self) -> &Path {
        &self.mounted.as_ref().expect("mounted").path
    }

    fn registry(&self) -> Registry {
        Registry::open(self.path().join("volumes")).expect("registry")
    }

    fn volume(&self) -> PathBuf {
        self.path().join("volumes/src/_data")
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        self.mounted.take();
    }
}

/// One member of a pair: times its work on a fresh filesystem (not the set-up).
type Member<'a> = Box<dyn Fn(&Fresh) -> Duration + 'a>;

struct Pair<'a> {
    group: &'static str,
    /// What the issue compares, for the printed line.
    what: &'static str,
    template: &'a Template,
    /// The member that is not the baseline: its id and its work.
    ours: (&'static str, Member<'a>),
    /// The baseline (`ref_*`), possibly on another template.
    reference: (&'static str, Member<'a>, Option<&'a Template>),
    bytes: u64,
}

impl Pair<'_> {
    fn ours(&self) -> Duration {
        (self.ours.1)(&self.template.fresh())
    }

    fn reference(&self) -> Duration {
        (self.reference.1)(&self.reference.2.unwrap_or(self.template).fresh())
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Alternating rounds; returns the line to print and the slower median (what a criterion sample of the
/// pair costs).
fn rounds(p: &Pair<'_>, n: u64) -> (String, Duration) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..n {
        a.push(p.ours());
        b.push(p.reference());
    }
    let (a, b) = (median(a), median(b));
    let line = format!(
        "{}: {} {:.0} ms, {} {:.0} ms: {:.2}x ({}) [median of {n} alternating rounds, each on a fresh filesystem]",
        p.group,
        p.ours.0,
        a.as_secs_f64() * 1e3,
        p.reference.0,
        b.as_secs_f64() * 1e3,
        a.as_secs_f64() / b.as_secs_f64(),
        p.what,
    );
    (line, a.max(b))
}

fn bench_pair(c: &mut Criterion, p: &Pair<'_>, sample: Duration) {
    let mut g = c.benchmark_group(p.group);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        // One run per sample (criterion's flat mode makes ceil(time / 10 / run time) runs): each run
        // also costs a copy of the image and an unmount that writes the result back, outside the clock.
        .measurement_time((sample * 8).max(Duration::from_secs(1)));
    g.throughput(Throughput::Bytes(p.bytes));
    g.bench_function(p.ours.0, |b| b.iter_custom(|n| (0..n).map(|_| p.ours()).sum()));
    g.bench_function(p.reference.0, |b| {
        b.iter_custom(|n| (0..n).map(|_| p.reference()).sum())
    });
    g.finish();
}

fn export(fs: &Fresh) -> Duration {
    let t = Instant::now();
    let f = std::fs::File::create(fs.path().join("x.tar")).expect("create");
    let mut w = std::io::BufWriter::with_capacity(256 << 10, f);
    tar_tree(&fs.volume(), &mut w).expect("export");
    w.flush().expect("flush");
    drop(w);
    t.elapsed()
}

fn tar_cf(fs: &Fresh) -> Duration {
    let t = Instant::now();
    run(Command::new("tar")
        .arg("-C")
        .arg(fs.volume())
        .arg("-cf")
        .arg(fs.path().join("x.tar"))
        .arg("."));
    t.elapsed()
}

fn import(tarball: &Path, fs: &Fresh) -> Duration {
    let dst = fs.path().join("x");
    std::fs::create_dir(&dst).expect("mkdir");
    let t = Instant::now();
    let f = std::fs::File::open(tarball).expect("open");
    unpack_tree(std::io::BufReader::with_capacity(256 << 10, f), &dst).expect("import");
    t.elapsed()
}

fn tar_xf(tarball: &Path, fs: &Fresh) -> Duration {
    let dst = fs.path().join("x");
    std::fs::create_dir(&dst).expect("mkdir");
    let t = Instant::now();
    run(Command::new("tar").arg("-C").arg(&dst).arg("-xf").arg(tarball));
    t.elapsed()
}

fn clone(fs: &Fresh) -> Duration {
    let reg = fs.registry();
    let t = Instant::now();
    reg.clone_volume("src", "dst").expect("clone");
    t.elapsed()
}

fn cp_a(fs: &Fresh) -> Duration {
    let t = Instant::now();
    run(Command::new("cp")
        .arg("-a")
        .arg(fs.volume())
        .arg(fs.path().join("copy")));
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    if !is_root() {
        eprintln!("SKIP volume_archive bench: needs root (fresh loop-mounted filesystems)");
        return;
    }
    // Nothing the bench mounts is seen outside this process, nor outlives it.
    mountkit_testutil::private_mount_ns();
    let only = std::env::var("MOUNTKIT_BENCH_ONLY").unwrap_or_default();
    let wanted = |group: &str| group.contains(&only);
    let n: u64 = std::env::var("MOUNTKIT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    let t = Instant::now();
    let ext4 = Template::new(Fs::Ext4, Some(Shape::MB500));
    let empty = Template::new(Fs::Ext4, None);
    // The archive `volume import` reads: what `volume export` writes.
    let shm = tempfile::tempdir_in("/dev/shm").expect("tempdir in /dev/shm");
    let tarball = shm.path().join("volume.tar");
    {
        let fs = ext4.fresh();
        let f = std::fs::File::create(&tarball).expect("create");
        let mut w = std::io::BufWriter::with_capacity(256 << 10, f);
        tar_tree(&fs.volume(), &mut w).expect("tar");
        w.flush().expect("flush");
    }
    let xfs = (has("mkfs.xfs") && wanted("volume_clone_xfs_reflink")).then(|| {
        (
            Template::new(Fs::XfsReflink, Some(Shape::MB50)),
            Template::new(Fs::XfsReflink, Some(Shape::MB500)),
        )
    });
    let mut report = format!(
        "volume_archive: 20,000 files, {:.1} MB (19,800 x 4 KiB + 200 x 2 MiB); XFS 50 MB: {:.1} MB (19,800 x 2 KiB + 200 x 48 KiB); images made in {:.1} s\n",
        Shape::MB500.bytes() as f64 / 1e6,
        Shape::MB50.bytes() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    if xfs.is_none() && wanted("volume_clone_xfs_reflink") {
        report += "volume_clone_xfs_reflink: SKIP (no mkfs.xfs)\n";
    }

    let mut pairs = vec![
        Pair {
            group: "volume_export_500mb",
            what: "target: <= 1.0x, at least GNU tar's speed",
            template: &ext4,
            ours: ("mountkit", Box::new(export)),
            reference: ("ref_gnu_tar", Box::new(tar_cf), None),
            bytes: Shape::MB500.bytes(),
        },
        Pair {
            group: "volume_import_500mb",
            what: "target: <= 1.0x, at least GNU tar's speed",
            template: &empty,
            ours: ("mountkit", Box::new(|fs: &Fresh| import(&tarball, fs))),
            reference: ("ref_gnu_tar", Box::new(|fs: &Fresh| tar_xf(&tarball, fs)), None),
            bytes: Shape::MB500.bytes(),
        },
        Pair {
            group: "volume_clone_ext4_500mb",
            what: "no reflinks; target: <= 1.0x, at least cp -a's speed",
            template: &ext4,
            ours: ("mountkit", Box::new(clone)),
            reference: ("ref_cp_a", Box::new(cp_a), None),
            bytes: Shape::MB500.bytes(),
        },
    ];
    if let Some((small, large)) = &xfs {
        pairs.push(Pair {
            group: "volume_clone_xfs_reflink",
            what: "500 MB / 50 MB, same 20,000 files; target: constant time in the data size, ~1.0x",
            template: large,
            ours: ("500mb", Box::new(clone)),
            reference: ("ref_50mb", Box::new(clone), Some(small)),
            bytes: Shape::MB500.bytes(),
        });
    }
    pairs.retain(|p| wanted(p.group));
    let mut samples = Vec::new();
    for p in &pairs {
        let sample = match n {
            0 => Duration::ZERO,
            _ => {
                let (line, sample) = rounds(p, n);
                println!("{line}");
                report += &line;
                report.push('\n');
                sample
            }
        };
        samples.push(sample);
    }
    // Beside the run bench's file in target/ (this file is crates/mountkit/benches/).
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion-volume-archive.txt");
    if let Err(e) = std::fs::write(&out, &report) {
        eprintln!("cannot write {}: {e}", out.display());
    }
    for (p, sample) in pairs.iter().zip(samples) {
        bench_pair(c, p, sample);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
