//! `cargo xtask bench`: runs every criterion benchmark of the workspace, then prints each figure beside
//! its reference (the targets) and, where a baseline ran in the same group (a member named
//! `c_floor` or `ref_*`: the C floor, GNU tar, the plain run), the ratio to it.
//!
//! `cargo xtask bench [--no-run]` (`--no-run` only prints the last results from target/criterion).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// References from the issues, keyed by a substring of the criterion id.
const REFERENCES: &[(&str, &str)] = &[
    (
        "run_rm_true_3_layers/mountkit",
        "<= 1.3x the C floor (podman ~200 ms, runc 23 ms, crun 7 ms, bwrap 3.6 ms)",
    ),
    (
        "run_rm_true_500_layers/mountkit",
        "<= 1.3x the C floor at 500 layers",
    ),
    (
        "run_rm_volumes/anon_named_bind",
        "<= 1.3x the plain run --rm (podman pays 40-50 ms for the anonymous volume alone)",
    ),
    (
        "oci_gz",
        ">= GNU tar -xzf of the same blob (~200 MB/s here; umoci 70 MB/s)",
    ),
    ("create_remove", "volume create + rm < 2 ms (podman 64 ms)"),
    (
        "overlay_changes_10/image_100000",
        "container diff of 10 changes: <= 2x the same on a 10-file image",
    ),
    ("list_1000", "volume ls of 1,000 volumes < 10 ms (podman 85 ms)"),
    (
        "volume_export",
        "volume export >= GNU tar -cf (500 MB, 20,000 files, fresh ext4 per run)",
    ),
    (
        "volume_import",
        "volume import >= GNU tar -xf (500 MB, 20,000 files, fresh ext4 per run)",
    ),
    (
        "volume_clone_ext4",
        "volume clone >= cp -a where there are no reflinks",
    ),
    (
        "volume_clone_xfs_reflink",
        "volume clone with reflinks: constant in the data size (500 MB / 50 MB ~ 1.0x)",
    ),
    (
        "import",
        ">= GNU tar -xf speed while hashing (~630 MB/s on fresh ext4 here)",
    ),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn collect(dir: &Path, base: &Path, out: &mut BTreeMap<String, f64>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") {
                let estimate = std::fs::read_to_string(p.join("estimates.json"))
                    .ok()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                    .and_then(|v| v["mean"]["point_estimate"].as_f64());
                if let Some(ns) = estimate {
                    let id = dir
                        .strip_prefix(base)
                        .unwrap_or(dir)
                        .to_string_lossy()
                        .into_owned();
                    out.insert(id, ns);
                }
            } else if p
                .file_name()
                .is_some_and(|n| n != "report" && n != "base" && n != "change")
            {
                collect(&p, base, out);
            }
        }
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    if !args.iter().any(|a| a == "--no-run") {
        if !crate::ci::is_root() {
            eprintln!("note: not root: the mount benchmarks print SKIP");
        }
        crate::ci::run("cargo", &["bench", "--workspace", "--benches"])?;
    }
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let crit = base.join("criterion");
    let mut results = BTreeMap::new();
    collect(&crit, &crit, &mut results);
    if results.is_empty() {
        anyhow::bail!("no criterion results under {}", crit.display());
    }
    println!("\n{:<58} {:>12}  {:>7}  reference", "benchmark", "mean", "ratio");
    for (id, ns) in &results {
        let group = id.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        // A group's baseline is its `c_floor` or `ref_*` member (a reference run side by side).
        let is_baseline = |name: &str| name == "c_floor" || name.starts_with("ref_");
        let own = id.rsplit('/').next().unwrap_or("");
        let ratio = results
            .iter()
            .find(|(k, _)| {
                k.rsplit_once('/')
                    .is_some_and(|(g, n)| g == group && is_baseline(n))
            })
            .filter(|_| !is_baseline(own))
            .map(|(_, floor)| format!("{:.2}x", ns / floor))
            .unwrap_or_default();
        let reference = REFERENCES
            .iter()
            .find(|(k, _)| id.contains(k))
            .map(|(_, r)| *r)
            .unwrap_or("");
        println!("{id:<58} {:>12}  {ratio:>7}  {reference}", fmt_ns(*ns));
    }
    // Side-by-side figures measured alternately outside criterion (the run and volume_archive benches).
    for file in ["criterion-interleaved.txt", "criterion-volume-archive.txt"] {
        if let Ok(text) = std::fs::read_to_string(base.join(file)) {
            print!("{text}");
        }
    }
    if let Ok(rss) = std::fs::read_to_string(base.join("criterion-peak-rss.txt")) {
        println!(
            "peak RSS of `mountkit run --rm sample true`: {} KiB (target <= 5 MB; crun 3.5 MB, runc 10 MB)",
            rss.trim()
        );
    }
    Ok(())
}
