//! `mountkit run --rm IMAGE true` beside a C floor doing the same kernel work, at 3 and 500 layers; the
//! same run with an anonymous volume, a named volume and a bind beside the plain run (issue 3); and the
//! peak RSS of `mountkit run`. Needs root (prints why it skips otherwise). `cargo xtask bench` runs it.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, criterion_group};

struct Fixture {
    _dir: Option<tempfile::TempDir>,
    root: PathBuf,
    floor: PathBuf,
    /// mountkit's default seccomp filter as bytes, for the floor's `-S`.
    filter: PathBuf,
    peakrss: PathBuf,
    scratch: PathBuf,
}

fn mk(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mountkit"));
    c.arg("--root").arg(root);
    c
}

/// `mountkit --root ROOT ARGS...`, asserting success (one timed run).
fn mk_run(root: &Path, args: &[&str]) {
    assert!(mk(root).args(args).status().unwrap().success());
}

fn ok(c: &mut Command) -> String {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("mountkit-bench-")
        .tempdir()
        .unwrap();
    let root = dir.path().join("store");
    ok(mk(&root).args(["system", "sample-image", "sample"]));
    // A 500-layer image: the sample's 3 layers plus 497 one-file layers.
    let info: serde_json::Value =
        serde_json::from_str(&ok(mk(&root).args(["image", "inspect", "sample"]))).unwrap();
    let mut args: Vec<String> = vec!["image".into(), "create".into(), "big".into()];
    for l in info[0]["layers"].as_array().unwrap() {
        args.extend(["--layer".into(), l.as_str().unwrap().into()]);
    }
    for i in 0..497 {
        let d = dir.path().join(format!("l/{i}"));
        std::fs::create_dir_all(d.join("layers")).unwrap();
        std::fs::write(d.join(format!("layers/{i}")), "x").unwrap();
        args.extend(["--layer".into(), d.to_string_lossy().into_owned()]);
    }
    ok(mk(&root).args(&args));
    // For issue 3's figure: an image with a VOLUME (anonymous volume per container), a named volume and
    // a host directory to bind.
    ok(mk(&root).args(["system", "sample-image", "samplevol", "--volume", "/anon"]));
    ok(mk(&root).args(["volume", "create", "benchvol"]));
    std::fs::create_dir_all(dir.path().join("host")).unwrap();
    let floor = dir.path().join("floor");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/floor.c");
    ok(Command::new("cc").args(["-O2", "-o"]).arg(&floor).arg(&src));
    // The floor loads the very programs mountkit loads by default (Docker's default capabilities).
    let filter = dir.path().join("filter.bpf");
    let caps = mountkit::ns_runner::docker_default_capabilities();
    let compiled = mountkit::ns_runner::seccomp::Policy::docker_default(&caps)
        .compile()
        .unwrap();
    std::fs::write(&filter, compiled.to_bytes()).unwrap();
    let peakrss = dir.path().join("peakrss");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peakrss.c");
    ok(Command::new("cc").args(["-O2", "-o"]).arg(&peakrss).arg(&src));
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    Fixture {
        root: root.clone(),
        floor,
        filter,
        peakrss,
        scratch,
        _dir: Some(dir),
    }
}

/// The images, volume and directories of the interleaved comparisons, in `base` (another filesystem),
/// sharing `f`'s compiled helpers.
fn small_fixture(base: &Path, f: &Fixture) -> Fixture {
    let root = base.join("store");
    ok(mk(&root).args(["system", "sample-image", "sample"]));
    ok(mk(&root).args(["system", "sample-image", "samplevol", "--volume", "/anon"]));
    ok(mk(&root).args(["volume", "create", "benchvol"]));
    std::fs::create_dir_all(base.join("host")).unwrap();
    let scratch = base.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    Fixture {
        root,
        floor: f.floor.clone(),
        filter: f.filter.clone(),
        peakrss: f.peakrss.clone(),
        scratch,
        _dir: None,
    }
}

/// A new ext4 on a loop device backed by a file in /dev/shm: ext4's own costs without this VM's disk
/// (mounted with `discard`, where every freed block costs 0.1-1.8 ms). Unmounted on drop (mount(8)'s
/// loop device is detached with it).
struct RamExt4 {
    dir: tempfile::TempDir,
}

impl RamExt4 {
    fn new() -> Option<RamExt4> {
        let dir = tempfile::tempdir_in("/dev/shm").ok()?;
        let img = dir.path().join("img");
        std::fs::File::create(&img).ok()?.set_len(512 << 20).ok()?;
        std::fs::create_dir(dir.path().join("mnt")).ok()?;
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
            .arg(&img)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("mount")
                .args(["-t", "ext4", "-o", "loop"])
                .arg(&img)
                .arg(dir.path().join("mnt"))
                .status()
                .is_ok_and(|s| s.success());
        made.then_some(RamExt4 { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for RamExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

/// The lowerdir option for the floor: the image's layer directories, top first.
fn lowerdir(f: &Fixture, image: &str) -> String {
    let info: serde_json::Value =
        serde_json::from_str(&ok(mk(&f.root).args(["image", "inspect", image]))).unwrap();
    let dirs: Vec<String> = info[0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|l| {
            format!(
                "{}/layers/{}/diff",
                f.root.display(),
                l.as_str().unwrap().trim_start_matches("sha256:")
            )
        })
        .collect();
    dirs.join(":")
}

/// How the C floor is started for an image: its lowerdir option string and the directory it resolves
/// it from.
struct FloorArgs {
    lowers: String,
    cwd: PathBuf,
}

impl FloorArgs {
    /// The floor passes its lowers in one mount(2) option string. 500 full store paths exceed a page,
    /// which is exactly why mountkit shortens them; the floor then gets short paths too: symlinks named
    /// by number in the scratch dir, resolved from there as its working directory (`floor -C`).
    fn new(f: &Fixture, image: &str) -> FloorArgs {
        let full = lowerdir(f, image);
        if full.len() < 4000 {
            return FloorArgs {
                lowers: full,
                cwd: f.scratch.clone(),
            };
        }
        let links = f.scratch.join(format!("links-{image}"));
        let _ = std::fs::remove_dir_all(&links);
        std::fs::create_dir_all(&links).unwrap();
        let mut short = Vec::new();
        for (i, d) in full.split(':').enumerate() {
            std::os::unix::fs::symlink(d, links.join(format!("{i:x}"))).unwrap();
            short.push(format!("{i:x}"));
        }
        FloorArgs {
            lowers: short.join(":"),
            cwd: links,
        }
    }

    /// One run of the floor with `true`. Both the floor and mountkit are started by `Command` without a
    /// working directory (the floor changes directory itself), so both go through posix_spawn: with a
    /// working directory, a static build of this benchmark would fork itself for the floor alone.
    fn run(&self, f: &Fixture) {
        let st = Command::new(&f.floor)
            .arg("-C")
            .arg(&self.cwd)
            .arg("-S")
            .arg(&f.filter)
            .arg(&self.lowers)
            .arg(&f.scratch)
            .arg("true")
            .status();
        assert!(st.unwrap().success())
    }
}

/// Peak RSS of a command in KiB, measured by the small C `peakrss` helper (see peakrss.c for why not
/// from this process).
fn peak_rss_kib(f: &Fixture, args: &[&str]) -> i64 {
    let out = Command::new(&f.peakrss)
        .arg(env!("CARGO_BIN_EXE_mountkit"))
        .arg("--root")
        .arg(&f.root)
        .args(args)
        .output()
        .expect("spawn peakrss");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("peakrss prints KiB")
}

/// Runs `a` and `b` alternately `pairs` times and returns (mean of a, mean of b) in ms. Criterion measures
/// one function after the other, so on a shared machine drift between them shows up in their ratio;
/// alternating run by run cancels it. Printed beside the criterion figures (not a timed assertion).
fn interleaved_ms(pairs: u32, a: &mut dyn FnMut(), b: &mut dyn FnMut()) -> (f64, f64) {
    let (mut ta, mut tb) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for _ in 0..pairs {
        let t = std::time::Instant::now();
        a();
        ta += t.elapsed();
        let t = std::time::Instant::now();
        b();
        tb += t.elapsed();
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / f64::from(pairs);
    (ms(ta), ms(tb))
}

/// Issue 3's run: an anonymous volume (the image's VOLUME), a named volume and a bind (`bind` is
/// `HOSTDIR:/host`).
fn volume_run_args(bind: &str) -> [&str; 8] {
    [
        "run",
        "--rm",
        "-v",
        "benchvol:/data",
        "-v",
        bind,
        "samplevol",
        "true",
    ]
}

/// The interleaved ratios of issues 2 and 3 for the store of `f`, as lines naming `label`.
fn interleaved_report(f: &Fixture, label: &str) -> String {
    let pairs = 60;
    let floor_args = FloorArgs::new(f, "sample");
    let bind = format!("{}:/host", f.root.parent().unwrap().join("host").display());
    let run = |args: &[&str]| mk_run(&f.root, args);
    let (floor, core) = interleaved_ms(pairs, &mut || floor_args.run(f), &mut || {
        run(&["run", "--rm", "sample", "true"])
    });
    let (plain, volumes) = interleaved_ms(
        pairs,
        &mut || run(&["run", "--rm", "sample", "true"]),
        &mut || run(&volume_run_args(&bind)),
    );
    format!(
        "interleaved ({label}), {pairs} pairs: run --rm 3 layers {core:.2} ms / C floor {floor:.2} ms = {:.2}x (target <= 1.3x)\n\
         interleaved ({label}), {pairs} pairs: run --rm anon+named+bind {volumes:.2} ms / plain {plain:.2} ms = {:.2}x (target <= 1.3x)\n",
        core / floor,
        volumes / plain
    )
}

fn bench(c: &mut Criterion) {
    if !is_root() {
        eprintln!("SKIP run bench: needs root");
        return;
    }
    let f = fixture();
    for (image, label) in [("sample", "3_layers"), ("big", "500_layers")] {
        let floor = FloorArgs::new(&f, image);
        let mut g = c.benchmark_group(format!("run_rm_true_{label}"));
        g.sample_size(if image == "big" { 20 } else { 30 });
        g.bench_function("c_floor", |b| b.iter(|| floor.run(&f)));
        g.bench_function("mountkit", |b| {
            b.iter(|| mk_run(&f.root, &["run", "--rm", image, "true"]))
        });
        g.finish();
    }
    // Issue 3: `run --rm` with an anonymous volume, a named volume and a bind, beside the core run.
    let mut g = c.benchmark_group("run_rm_volumes");
    g.sample_size(30);
    g.bench_function("ref_core_run", |b| {
        b.iter(|| mk_run(&f.root, &["run", "--rm", "sample", "true"]))
    });
    let bind = format!("{}:/host", f.root.parent().unwrap().join("host").display());
    g.bench_function("anon_named_bind", |b| {
        b.iter(|| mk_run(&f.root, &volume_run_args(&bind)))
    });
    g.finish();
    // The two ratios of the issues, measured alternately run by run as well: on the store's filesystem
    // (this machine's disk) and on a fresh ext4 in RAM.
    let mut interleaved = interleaved_report(&f, "disk");
    let big = FloorArgs::new(&f, "big");
    let (floor, core) = interleaved_ms(20, &mut || big.run(&f), &mut || {
        mk_run(&f.root, &["run", "--rm", "big", "true"])
    });
    interleaved.push_str(&format!(
        "interleaved (disk), 20 pairs: run --rm 500 layers {core:.2} ms / C floor {floor:.2} ms = {:.2}x (target <= 1.3x)\n",
        core / floor
    ));
    match RamExt4::new() {
        Some(fs) => {
            let small = small_fixture(&fs.path(), &f);
            interleaved.push_str(&interleaved_report(&small, "ext4 in RAM"));
        }
        None => eprintln!("no ext4 in RAM (mkfs.ext4 or loop devices missing): disk figures only"),
    }
    print!("{interleaved}");
    let _ = std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion-interleaved.txt"),
        interleaved,
    );
    // Issue 13: `run -d` and `exec` beside `run --rm`, alternately run by run; an idle monitor's memory
    // and CPU.
    detached_report(&f);
    let rss = peak_rss_kib(&f, &["run", "--rm", "sample", "true"]);
    println!(
        "peak RSS of `mountkit run --rm sample true`: {rss} KiB (reference: crun 3.5 MB, runc 10 MB, target <= 5 MB)"
    );
    let _ = std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion-peak-rss.txt"),
        format!("{rss}\n"),
    );
}

/// `mk` with `args`, returning its stdout (trimmed).
fn mk_out(root: &Path, args: &[&str]) -> String {
    let out = mk(root).args(args).output().expect("spawn mountkit");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Issue 13's figures: `run -d --rm sample true` (returns once the process runs) and `exec C true`
/// against `run --rm sample true`, 40 pairs each, alternately; then an idle monitor's resident memory
/// and the CPU it uses over 10 s.
fn detached_report(f: &Fixture) {
    let pairs = 40;
    let run = |args: &[&str]| mk_run(&f.root, args);
    let (plain, detached) = interleaved_ms(
        pairs,
        &mut || run(&["run", "--rm", "sample", "true"]),
        &mut || run(&["run", "-d", "--rm", "sample", "true"]),
    );
    let id = mk_out(&f.root, &["run", "-d", "sample", "sleep", "100000"]);
    let (plain2, exec) = interleaved_ms(
        pairs,
        &mut || run(&["run", "--rm", "sample", "true"]),
        &mut || run(&["exec", &id, "true"]),
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&mk_out(&f.root, &["container", "inspect", &id])).unwrap();
    let pid = inspect[0]["State"]["Pid"].as_i64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let monitor: i64 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let ticks = |pid: i64| -> u64 {
        let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = st[st.rfind(')').unwrap() + 2..].split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let rss = |field: &str| -> String {
        std::fs::read_to_string(format!("/proc/{monitor}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let before = ticks(monitor);
    std::thread::sleep(std::time::Duration::from_secs(10));
    let cpu = ticks(monitor) - before;
    let report = format!(
        "interleaved (disk), {pairs} pairs: run -d --rm {detached:.2} ms / run --rm {plain:.2} ms = {:.2}x (target <= 1.5x; podman run -d ~200 ms)\n\
         interleaved (disk), {pairs} pairs: exec C true {exec:.2} ms / run --rm {plain2:.2} ms = {:.2}x (target <= 1.5x)\n\
         idle monitor: VmRSS {} (peak {}), {cpu} CPU ticks in 10 s (targets <= 2 MB, none; conmon ~1.5 MB)\n",
        detached / plain,
        exec / plain2,
        rss("VmRSS:"),
        rss("VmHWM:"),
    );
    print!("{report}");
    let _ = std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion-detached.txt"),
        report,
    );
    mk_out(&f.root, &["container", "rm", "-f", &id]);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
