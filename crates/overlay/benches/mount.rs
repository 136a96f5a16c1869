//! Mount + unmount of 3 and 500 lower layers by each method.
//!
//! Needs root. The bench process first unshares a mount namespace and makes `/` recursively private,
//! so nothing it mounts is visible outside it or outlives it. Without root it prints a SKIP line.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::fs;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use mountkit_overlay::{Method, Stack, features, mount, unmount};

fn private_namespace() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP overlay mount bench: needs root");
        return false;
    }
    // Nothing the bench mounts is seen outside this process, nor outlives it.
    mountkit_testutil::private_mount_ns();
    true
}

fn layers(base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = base.join(format!(
                "layers/{n}/layer-{i:04}-0123456789abcdef0123456789abcdef"
            ));
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join(format!("f{i}")), "x").unwrap();
            p
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    if !private_namespace() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut methods = vec![("classic", Method::Classic)];
    if features().lowerdir_plus {
        methods.push(("new_api", Method::NewApi));
    } else {
        eprintln!("SKIP new_api benches: kernel lacks overlayfs lowerdir+");
    }
    let mut group = c.benchmark_group("overlay_mount_unmount");
    group.sample_size(20);
    for n in [3usize, 500] {
        let lowers = layers(tmp.path(), n);
        for (name, method) in &methods {
            let upper = tmp.path().join(format!("{name}-{n}/upper"));
            let work = tmp.path().join(format!("{name}-{n}/work"));
            let merged = tmp.path().join(format!("{name}-{n}/merged"));
            for d in [&upper, &work, &merged] {
                fs::create_dir_all(d).unwrap();
            }
            let stack = Stack::new().lowers(&lowers).upper(&upper, &work);
            group.bench_function(format!("{name}/{n}_lowers"), |b| {
                b.iter(|| {
                    mount(&stack, &merged, *method).unwrap();
                    unmount(&merged).unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
