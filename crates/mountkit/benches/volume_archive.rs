//! Volume export, import and clone (issue 15) beside GNU tar and `cp -a` on the same filesystem (the
//! temp dir's), each in one group with its reference (`ref_*`, which `cargo xtask bench` reads as the
//! baseline):
//!
//! - `volume_export_20000`: a tar of a 20,000-file tree (80 MB: 4 KiB files, a few larger ones) into a
//!   file: `mountkit_layer_store::tar_tree` (what `volume export -o FILE` runs) against
//!   `tar -C DIR -cf FILE .`.
//! - `volume_import_20000`: that tar into a fresh empty directory: `unpack_tree` (what `volume import`
//!   runs, guards included) against `tar -C DIR -xf FILE`.
//! - `volume_clone_20000`: `Registry::clone_volume` (reflinks where the filesystem can, else a copy that
//!   keeps holes) against `cp -a`.
//!
//! The issue asks for a 500 MB, 20,000-file volume; 80 MB keeps a run of the whole suite short, and
//! the per-file cost (what differs between the tools) is the same.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mountkit::layer_store::{tar_tree, unpack_tree};
use mountkit::volumes::{CreateOptions, Registry};

const FILES: usize = 20_000;

/// 20,000 files in 200 directories: 4 KiB each, every 1,000th 1 MiB.
fn fill(d: &Path) {
    let small = vec![b's'; 4096];
    let big = vec![b'b'; 1 << 20];
    for i in 0..FILES {
        let dir = d.join(format!("d{:03}", i % 200));
        if i < 200 {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        let data = if i % 1000 == 0 { &big } else { &small };
        std::fs::write(dir.join(format!("f{i:05}")), data).expect("write");
    }
}

fn run(cmd: &mut Command) {
    let st = cmd.status().expect("spawn");
    assert!(st.success(), "{cmd:?} failed");
}

/// Times `body` only, `iters` times, each on fresh scratch space from `setup`.
fn timed<S>(iters: u64, mut setup: impl FnMut() -> S, mut body: impl FnMut(&S)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let s = setup();
        let t = Instant::now();
        body(&s);
        total += t.elapsed();
    }
    total
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reg = Registry::open(tmp.path().join("volumes")).expect("registry");
    let vol = reg.create(Some("src"), CreateOptions::default()).expect("create");
    fill(&vol.mountpoint);
    let tarball = tmp.path().join("src.tar");
    let out = std::fs::File::create(&tarball).expect("create tar");
    tar_tree(&vol.mountpoint, std::io::BufWriter::new(out)).expect("tar");
    let scratch = || tempfile::tempdir_in(tmp.path()).expect("scratch");

    let mut g = c.benchmark_group("volume_export_20000");
    g.sample_size(10);
    g.bench_function("mountkit", |b| {
        b.iter_custom(|n| {
            timed(n, scratch, |s| {
                let f = std::fs::File::create(s.path().join("x.tar")).expect("create");
                let mut w = std::io::BufWriter::with_capacity(256 << 10, f);
                tar_tree(&vol.mountpoint, &mut w).expect("export");
                std::io::Write::flush(&mut w).expect("flush");
            })
        })
    });
    g.bench_function("ref_gnu_tar", |b| {
        b.iter_custom(|n| {
            timed(n, scratch, |s| {
                run(Command::new("tar")
                    .arg("-C")
                    .arg(&vol.mountpoint)
                    .arg("-cf")
                    .arg(s.path().join("x.tar"))
                    .arg("."))
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("volume_import_20000");
    g.sample_size(10);
    g.bench_function("mountkit", |b| {
        b.iter_custom(|n| {
            timed(n, scratch, |s| {
                let f = std::fs::File::open(&tarball).expect("open");
                unpack_tree(std::io::BufReader::with_capacity(256 << 10, f), s.path()).expect("import");
            })
        })
    });
    g.bench_function("ref_gnu_tar", |b| {
        b.iter_custom(|n| {
            timed(n, scratch, |s| {
                run(Command::new("tar")
                    .arg("-C")
                    .arg(s.path())
                    .arg("-xf")
                    .arg(&tarball))
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("volume_clone_20000");
    g.sample_size(10);
    let mut k = 0u64;
    g.bench_function("mountkit", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                k += 1;
                let name = format!("dst{k}");
                let t = Instant::now();
                reg.clone_volume("src", &name).expect("clone");
                total += t.elapsed();
                reg.remove(&name, false).expect("remove");
            }
            total
        })
    });
    g.bench_function("ref_cp_a", |b| {
        b.iter_custom(|n| {
            timed(n, scratch, |s| {
                run(Command::new("cp")
                    .arg("-a")
                    .arg(&vol.mountpoint)
                    .arg(s.path().join("copy")))
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
