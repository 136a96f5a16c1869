//! `changes()` for the same 10 changes over a 100,000-file lower layer and over a 10-file one.
//!
//! The two should cost the same: only the upper layer is walked, and each of its entries is looked
//! up in the lowers by path. No privileges needed (no mount: the upper layer is written directly).
//! The lowers are created once per run in a temp dir.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::fs;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use mountkit_overlay::changes;

/// A lower layer of `files` files spread over directories of 1,000 (`d000/f0000`, ...).
fn lower(base: &Path, files: usize) -> PathBuf {
    let root = base.join(format!("lower-{files}"));
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        fs::write(dir.join(format!("f{:04}", i % 1000)), "x").unwrap();
    }
    root
}

/// An upper layer with 10 changes: 5 modified lower files (d000/f0000..4), 5 new files in a new dir.
fn upper(base: &Path) -> PathBuf {
    let root = base.join("upper");
    fs::create_dir_all(root.join("d000")).unwrap();
    fs::create_dir_all(root.join("new")).unwrap();
    for i in 0..5 {
        fs::write(root.join(format!("d000/f{i:04}")), "changed").unwrap();
        fs::write(root.join(format!("new/n{i}")), "n").unwrap();
    }
    root
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let upper = upper(tmp.path());
    let mut group = c.benchmark_group("overlay_changes_10");
    for files in [10usize, 100_000] {
        let lowers = [lower(tmp.path(), files)];
        // Same answer whatever the lower size: C /d000, 5 x C, A /new, 5 x A.
        assert_eq!(changes(&upper, &lowers).unwrap().len(), 12);
        // The 10-file image is the baseline (`ref_`): `cargo xtask bench` prints the ratio to it.
        let name = if files == 10 {
            "ref_10_file_image".to_string()
        } else {
            format!("image_{files}_files")
        };
        group.bench_function(name, |b| b.iter(|| changes(&upper, &lowers).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
