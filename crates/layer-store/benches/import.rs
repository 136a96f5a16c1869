//! Import throughput: a generated layer tar (default 100 MB in 10,000 files; set
//! `MOUNTKIT_BENCH_MB` to change) imported into a fresh store, against `tar -xf` of the same file.
//!
//! Both write to a fresh directory on a tmpfs (`/dev/shm` when it is one, else the system temp dir;
//! set `MOUNTKIT_BENCH_DIR` to choose), so the numbers measure the extraction work, not the disk: the
//! import also hashes the stream twice (once to look the layer up, once while unpacking) and calls
//! `syncfs` once before its commit, which costs nothing on tmpfs and a full writeback on a disk.
//! Files are owned by the running user, so the bench needs no privileges.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_main};
use mountkit_layer_store::{LayerSource, Store};

fn generate(path: &Path, total_mb: u64) -> u64 {
    let files = total_mb * 100; // 10 KiB-ish each
    // The owner of a file we just made is the running user: no privileges needed to chown to it.
    let meta = std::fs::metadata(path.parent().unwrap()).unwrap();
    let (uid, gid) = (meta.uid(), meta.gid());
    let mut b = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()));
    let mut data = vec![0u8; 10_000];
    for d in 0..(files / 100).max(1) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_size(0);
        b.append_data(&mut h, format!("d{d:04}/"), std::io::empty())
            .unwrap();
        for f in 0..100 {
            for (i, byte) in data.iter_mut().enumerate().take(64) {
                *byte = (d as usize * 31 + f * 7 + i) as u8;
            }
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_uid(uid.into());
            h.set_gid(gid.into());
            h.set_mtime(1_600_000_000);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, format!("d{d:04}/f{f:03}"), &data[..])
                .unwrap();
        }
    }
    b.into_inner().unwrap().flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn import_once(tar: &Path, dir: &Path) -> Duration {
    let store = Store::open(dir.join("store")).unwrap();
    let t = Instant::now();
    store.import_layer(LayerSource::Tar(tar.to_path_buf())).unwrap();
    t.elapsed()
}

fn tar_once(tar: &Path, dir: &Path) -> Duration {
    let out = dir.join("x");
    std::fs::create_dir(&out).unwrap();
    let t = Instant::now();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(tar)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "tar -xf failed");
    t.elapsed()
}

fn base_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("MOUNTKIT_BENCH_DIR") {
        return d.into();
    }
    let shm = Path::new("/dev/shm");
    match rustix::fs::statfs(shm) {
        Ok(st) if st.f_type == 0x0102_1994 => shm.to_path_buf(), // TMPFS_MAGIC
        _ => std::env::temp_dir(),
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(base_dir()).unwrap()
}

fn bench(c: &mut Criterion) {
    println!("bench directory: {}", base_dir().display());
    let mb: u64 = std::env::var("MOUNTKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let src = tempdir();
    let tar = src.path().join("layer.tar");
    let bytes = generate(&tar, mb);
    let mbs = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    {
        let a = tempdir();
        let b = tempdir();
        let (ti, tt) = (import_once(&tar, a.path()), tar_once(&tar, b.path()));
        println!(
            "one run, {:.0} MB / {} files: mountkit import {:.0} MB/s, tar -xf {:.0} MB/s",
            bytes as f64 / 1e6,
            mb * 100,
            mbs(ti),
            mbs(tt)
        );
    }
    let mut g = c.benchmark_group("import");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("layer-store import_layer(Tar)", |b| {
        b.iter_batched(
            tempdir,
            |dir| {
                import_once(&tar, dir.path());
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("tar -xf", |b| {
        b.iter_batched(
            tempdir,
            |dir| {
                tar_once(&tar, dir.path());
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// criterion's macros generate undocumented public functions; keep them in their own module.
mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}

criterion_main!(group::benches);
