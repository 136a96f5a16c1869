//! Registry speed, each beside a floor measured in the same group (`c_floor`: the bare kernel work, issued
//! through std's thin syscall wrappers as a C program would issue it):
//!
//! - `create_remove`: create + remove of one volume on the root filesystem (target: under 2 ms; podman
//!   64 ms). Floor: mkdir, mkdir, write the record, rename in, rename out, unlink, rmdir, rmdir.
//! - `create_remove_tmpfs`: the same on /dev/shm, where fsync costs nothing: the registry's own overhead.
//! - `open_reconcile`: `Registry::open` + `reconcile` when there is nothing to do, what every mountkit
//!   command pays (1,000 volumes, none in use). Floor: one `stat`.
//! - `list_1000`: list 1,000 volumes (target: under 10 ms; podman 85 ms), from the cache and right after a
//!   change (every record read).
//! - `run_sequence` (ext4 under the temp dir) and `run_sequence_tmpfs` (/dev/shm): the registry's share of
//!   one `mountkit run --rm -v named:/data IMAGE_WITH_VOLUME` (issue 3): create the anonymous volume,
//!   reference both, acquire both, release both, drop both references, remove the anonymous volume.
//!   `single calls` makes one call per volume per step (what mountkit called before the batch APIs);
//!   `batch calls` makes the calls mountkit should make (`add_refs`, `acquire_all`, `release_all`,
//!   `remove_refs`). The floor is the anonymous volume's create + remove (as `create_remove`'s) and a
//!   reference made and dropped as one directory entry for each volume.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::fs;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use mountkit_volumes::{CreateOptions, Registry};

/// The kernel work of a staged create and a rename-out removal, without any bookkeeping.
fn floor_create_remove(root: &Path) {
    let stage = root.join("stage");
    let dest = root.join("bench-vol");
    let grave = root.join("grave");
    fs::create_dir(&stage).expect("mkdir");
    fs::create_dir(stage.join("_data")).expect("mkdir");
    fs::write(
        stage.join("volume.json"),
        br#"{"name":"bench-vol","driver":"local"}"#,
    )
    .expect("write");
    fs::rename(&stage, &dest).expect("rename in");
    fs::rename(&dest, &grave).expect("rename out");
    fs::remove_file(grave.join("volume.json")).expect("unlink");
    fs::remove_dir(grave.join("_data")).expect("rmdir");
    fs::remove_dir(&grave).expect("rmdir");
}

fn create_remove_in(c: &mut Criterion, group: &str, dir: &Path) {
    let reg = Registry::open(dir.join("volumes")).expect("open registry");
    let floor = dir.join("floor");
    fs::create_dir(&floor).expect("mkdir floor");
    let mut g = c.benchmark_group(group);
    g.bench_function("c_floor", |b| b.iter(|| floor_create_remove(&floor)));
    g.bench_function("registry", |b| {
        b.iter(|| {
            let v = reg
                .create(Some("bench-vol"), CreateOptions::default())
                .expect("create");
            assert!(reg.remove(&v.name, false).expect("remove"));
        })
    });
    g.finish();
}

/// Runs `bench` as the group `group` in a new temp dir under the system's temp dir.
fn in_temp_dir(c: &mut Criterion, group: &str, bench: fn(&mut Criterion, &str, &Path)) {
    let dir = tempfile::tempdir().expect("tempdir");
    bench(c, group, dir.path());
}

/// Runs `bench` as the group `group` in a new temp dir on tmpfs (/dev/shm), where fsync costs nothing:
/// the registry's own overhead.
fn in_tmpfs(c: &mut Criterion, group: &str, bench: fn(&mut Criterion, &str, &Path)) {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("SKIP {group}: no /dev/shm");
        return;
    };
    bench(c, group, dir.path());
}

fn create_remove(c: &mut Criterion) {
    in_temp_dir(c, "create_remove", create_remove_in);
}

fn create_remove_tmpfs(c: &mut Criterion) {
    in_tmpfs(c, "create_remove_tmpfs", create_remove_in);
}

fn fill(reg: &Registry, n: usize) {
    for i in 0..n {
        let mut opts = CreateOptions::default();
        opts.labels.insert("n".into(), i.to_string());
        reg.create(Some(&format!("vol-{i:04}")), opts).expect("create");
    }
}

/// What every mountkit command pays before doing its work: open the registry and reconcile, with 1,000
/// volumes of which none is in use.
fn open_reconcile(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("volumes");
    let reg = Registry::open(&root).expect("open registry");
    fill(&reg, 1000);
    reg.list(&[]).expect("list"); // the cache, as a previous `volume ls` leaves it
    reg.reconcile(&|_| true).expect("reconcile");
    let probe = dir.path().join("probe");
    fs::write(&probe, b"").expect("probe file");
    let mut g = c.benchmark_group("open_reconcile");
    g.bench_function("c_floor", |b| {
        b.iter(|| fs::metadata(&probe).expect("stat"));
    });
    g.bench_function("open + reconcile (nothing to do)", |b| {
        b.iter(|| {
            let reg = Registry::open(&root).expect("open");
            reg.reconcile(&|_| true).expect("reconcile");
        })
    });
    g.finish();
}

fn list_1000(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::open(dir.path().join("volumes")).expect("open registry");
    fill(&reg, 1000);
    let mut g = c.benchmark_group("list_1000");
    g.bench_function("cached", |b| {
        b.iter(|| {
            let all = reg.list(&[]).expect("list");
            assert_eq!(all.len(), 1000);
        })
    });
    // Two real changes (each bumps the generation), then a list that must read every record.
    g.bench_function("after a change", |b| {
        b.iter(|| {
            reg.add_ref("vol-0000", "c1").expect("add_ref");
            reg.remove_ref("vol-0000", "c1").expect("remove_ref");
            let all = reg.list(&[]).expect("list");
            assert_eq!(all.len(), 1000);
        })
    });
    g.finish();
}

/// The kernel work of the run sequence: the anonymous volume's create + remove, and one directory entry
/// made and removed per reference.
fn floor_run_sequence(root: &Path, named: &Path) {
    let anon = root.join("anon-ref");
    fs::write(&anon, b"").expect("ref");
    let named_ref = named.join("ref");
    fs::write(&named_ref, b"").expect("ref");
    fs::remove_file(&named_ref).expect("unref");
    fs::remove_file(&anon).expect("unref");
    floor_create_remove(root);
}

const CONTAINER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn single_calls(reg: &Registry) {
    let anon = reg
        .create(
            None,
            CreateOptions {
                anonymous: true,
                ..Default::default()
            },
        )
        .expect("create")
        .name;
    for v in ["named", anon.as_str()] {
        reg.add_ref(v, CONTAINER).expect("add_ref");
    }
    for v in ["named", anon.as_str()] {
        reg.acquire(v, CONTAINER).expect("acquire");
    }
    for v in ["named", anon.as_str()] {
        reg.release(v, CONTAINER).expect("release");
    }
    for v in ["named", anon.as_str()] {
        reg.remove_ref(v, CONTAINER).expect("remove_ref");
    }
    assert!(reg.remove(&anon, false).expect("remove"));
}

fn batch_calls(reg: &Registry) {
    let anon = reg
        .create(
            None,
            CreateOptions {
                anonymous: true,
                ..Default::default()
            },
        )
        .expect("create")
        .name;
    let names = ["named", anon.as_str()];
    reg.add_refs(&names, CONTAINER).expect("add_refs");
    let acquired = reg.acquire_all(&names, CONTAINER).expect("acquire_all");
    reg.release_all(&acquired).expect("release_all");
    reg.remove_refs(&names, CONTAINER).expect("remove_refs");
    assert!(reg.remove(&anon, false).expect("remove"));
}

fn run_sequence_in(c: &mut Criterion, group: &str, dir: &Path) {
    let reg = Registry::open(dir.join("volumes")).expect("open registry");
    reg.create(Some("named"), CreateOptions::default())
        .expect("create named");
    let floor = dir.join("floor");
    let floor_named = floor.join("named");
    fs::create_dir_all(&floor_named).expect("mkdir floor");
    let mut g = c.benchmark_group(group);
    g.bench_function("c_floor", |b| b.iter(|| floor_run_sequence(&floor, &floor_named)));
    g.bench_function("single calls", |b| b.iter(|| single_calls(&reg)));
    g.bench_function("batch calls", |b| b.iter(|| batch_calls(&reg)));
    g.finish();
}

fn run_sequence(c: &mut Criterion) {
    in_temp_dir(c, "run_sequence", run_sequence_in);
}

fn run_sequence_tmpfs(c: &mut Criterion) {
    in_tmpfs(c, "run_sequence_tmpfs", run_sequence_in);
}

criterion_group!(
    benches,
    run_sequence,
    run_sequence_tmpfs,
    create_remove,
    create_remove_tmpfs,
    open_reconcile,
    list_1000
);
criterion_main!(benches);
