//! Registry speed: create+remove of one volume (target: under 2 ms) and list with 1,000 volumes
//! (target: under 10 ms).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use mountkit_volumes::{CreateOptions, Registry};

fn create_remove(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::open(dir.path().join("volumes")).expect("open registry");
    c.bench_function("create+remove one volume", |b| {
        b.iter(|| {
            let v = reg
                .create(Some("bench-vol"), CreateOptions::default())
                .expect("create");
            assert!(reg.remove(&v.name, false).expect("remove"));
        })
    });
}

fn list_1000(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::open(dir.path().join("volumes")).expect("open registry");
    for i in 0..1000 {
        let mut opts = CreateOptions::default();
        opts.labels.insert("n".into(), i.to_string());
        reg.create(Some(&format!("vol-{i:04}")), opts).expect("create");
    }
    c.bench_function("list 1000 volumes", |b| {
        b.iter(|| {
            let all = reg.list(&[]).expect("list");
            assert_eq!(all.len(), 1000);
        })
    });
}

/// The same on tmpfs (/dev/shm), where fsync costs nothing: the registry's own overhead.
fn create_remove_tmpfs(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("SKIP create+remove on tmpfs: no /dev/shm");
        return;
    };
    let reg = Registry::open(dir.path().join("volumes")).expect("open registry");
    c.bench_function("create+remove one volume (tmpfs)", |b| {
        b.iter(|| {
            let v = reg
                .create(Some("bench-vol"), CreateOptions::default())
                .expect("create");
            assert!(reg.remove(&v.name, false).expect("remove"));
        })
    });
}

/// Listing when the cache is stale (right after a change): every record is read.
fn list_1000_uncached(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::open(dir.path().join("volumes")).expect("open registry");
    for i in 0..1000 {
        reg.create(Some(&format!("vol-{i:04}")), CreateOptions::default())
            .expect("create");
    }
    c.bench_function("list 1000 volumes after a change", |b| {
        b.iter(|| {
            // Two real changes (each bumps the generation), then a list that must read every record.
            reg.add_ref("vol-0000", "c1").expect("add_ref");
            reg.remove_ref("vol-0000", "c1").expect("remove_ref");
            let all = reg.list(&[]).expect("list");
            assert_eq!(all.len(), 1000);
        })
    });
}

criterion_group!(
    benches,
    create_remove,
    create_remove_tmpfs,
    list_1000,
    list_1000_uncached
);
criterion_main!(benches);
