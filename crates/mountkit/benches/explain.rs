//! `image explain` of one path in a 500-layer image (issue 14: under 5 ms; the lookup stops at the first
//! layer holding the path, so its cost grows with depth x layers, not with the image's file count), and
//! `system df` of a small store. Every layer has `/layers` (the worst case: the directory merges across
//! all 500) and one file in it. Needs no root. `cargo xtask bench` runs it.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{Criterion, criterion_group, criterion_main};

use mountkit::layer_store::{ImageConfig, LayerSource};
use mountkit::{ExplainOptions, Mountkit};

fn explain(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("mountkit-bench-explain-")
        .tempdir()
        .unwrap();
    let mk = Mountkit::open(dir.path().join("store")).unwrap();
    let mut ids = Vec::new();
    for i in 0..500 {
        let d = dir.path().join(format!("l/{i}"));
        std::fs::create_dir_all(d.join("layers")).unwrap();
        std::fs::write(d.join(format!("layers/{i}")), "x").unwrap();
        ids.push(mk.layers().import_layer(LayerSource::Dir(d)).unwrap().id);
    }
    mk.layers()
        .create_image(Some("big"), &ids, ImageConfig::default())
        .unwrap();
    let mut g = c.benchmark_group("explain_500_layers");
    for (name, path) in [
        ("bottom_file", "/layers/0"),
        ("top_file", "/layers/499"),
        ("missing", "/nope/x"),
    ] {
        let paths = [path.to_string()];
        g.bench_function(name, |b| {
            b.iter(|| {
                mk.explain_image("big", &paths, ExplainOptions::default())
                    .unwrap()
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("system_df");
    g.bench_function("500_layers_1_image", |b| b.iter(|| mk.disk_usage().unwrap()));
    g.finish();
}

criterion_group!(benches, explain);
criterion_main!(benches);
