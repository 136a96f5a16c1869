//! `image explain` of one path in a 500-layer image (issue 14: under 5 ms; the lookup stops at the first
//! layer holding the path, so its cost grows with depth x layers, not with the image's file count), and
//! `system df` of a small store. Every layer has `/layers` (the worst case: the directory merges across
//! all 500) and one file in it. `system df` of 100 images, 1,000 volumes and 50 containers. The shadow
//! warnings of create/run, with no mount and with a bind over a non-empty image directory. Needs no
//! root. `cargo xtask bench` runs it.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{Criterion, criterion_group, criterion_main};

use mountkit::layer_store::{ImageConfig, LayerSource};
use mountkit::{CreateOptions, ExplainOptions, Mountkit};

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

/// `system df` of 100 images, 1,000 volumes and 50 containers (issue 14: under 50 ms after the first run).
fn df(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("mountkit-bench-df-")
        .tempdir()
        .unwrap();
    let mk = Mountkit::open(dir.path().join("store")).unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let d = dir.path().join(format!("l/{i}"));
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::write(d.join(format!("etc/{i}")), "x").unwrap();
        ids.push(mk.layers().import_layer(LayerSource::Dir(d)).unwrap().id);
    }
    for i in 0..100 {
        let config = ImageConfig {
            cmd: Some(vec!["true".into()]),
            env: vec![format!("N={i}")],
            ..Default::default()
        };
        mk.layers()
            .create_image(Some(&format!("img{i}")), &ids[..1 + i % 10], config)
            .unwrap();
    }
    for i in 0..1000 {
        let v = mk
            .volumes()
            .create(Some(&format!("v{i}")), Default::default())
            .unwrap();
        std::fs::write(v.mountpoint.join("f"), "data").unwrap();
    }
    for i in 0..50 {
        let opts = CreateOptions {
            name: Some(format!("c{i}")),
            image: format!("img{i}"),
            ..Default::default()
        };
        mk.create(&opts).unwrap();
    }
    let mut g = c.benchmark_group("system_df");
    g.bench_function("100_images_1000_volumes_50_containers", |b| {
        b.iter(|| mk.disk_usage().unwrap())
    });
    g.finish();
}

/// The shadow warnings' cost at create/run: a container with no mounts (nothing read), and one with a
/// bind over a non-empty image directory (its lookup and one `readdir` per layer holding it).
fn shadow(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("mountkit-bench-shadow-")
        .tempdir()
        .unwrap();
    let mk = Mountkit::open(dir.path().join("store")).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let d = dir.path().join(format!("l/{i}"));
        std::fs::create_dir_all(d.join("app")).unwrap();
        std::fs::write(d.join(format!("app/{i}")), "x").unwrap();
        ids.push(mk.layers().import_layer(LayerSource::Dir(d)).unwrap().id);
    }
    let config = ImageConfig {
        cmd: Some(vec!["true".into()]),
        ..Default::default()
    };
    let image = mk.layers().create_image(Some("three"), &ids, config).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let bind = mountkit::binds::parse_volume_flag(&format!("{}:/app", src.display())).unwrap();
    let mut g = c.benchmark_group("shadow_warnings");
    for (name, mounts) in [("no_mounts", vec![]), ("bind_over_app", vec![bind])] {
        let opts = CreateOptions {
            image: "three".into(),
            mounts,
            ..Default::default()
        };
        let container = mk.create(&opts).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| mountkit::shadow_warnings(&mk, &container, &image).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, explain, df, shadow);
criterion_main!(benches);
