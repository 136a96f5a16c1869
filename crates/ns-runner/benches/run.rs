//! Benchmark: `spawn` + `wait` of `true` over a prepared root (a bind of a temp dir holding `true` and
//! its libraries). Measures the runner's own cost: two forks, four namespaces, the /proc /dev /sys
//! mounts, pivot_root and exec. Needs root; prints a SKIP line otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::Criterion;
use mountkit_ns_runner::{Exit, Spec, run};

fn copy_with_libs(src: &Path, root: &Path, dest: &str) {
    let target = root.join(dest);
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::fs::copy(src, &target).expect("copy binary");
    let out = Command::new("ldd").arg(src).output().expect("ldd");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            let t = root.join(&lib[1..]);
            std::fs::create_dir_all(t.parent().expect("parent")).expect("mkdir");
            std::fs::copy(lib, &t).expect("copy library");
        }
    }
}

fn main() {
    // What `mountkit run` pays once per start to compile the default seccomp policy (the container
    // process only loads the result). Needs no root.
    let mut c = Criterion::default().sample_size(30).configure_from_args();
    let caps = mountkit_ns_runner::docker_default_capabilities();
    c.bench_function("seccomp: compile Docker's default policy", |b| {
        b.iter(|| {
            mountkit_ns_runner::seccomp::Policy::docker_default(&caps)
                .compile()
                .expect("compile")
        })
    });
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP bench ns-runner/run: needs root (namespaces and mounts)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root: PathBuf = dir.path().join("root");
    let tru = ["/usr/bin/true", "/bin/true"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("host has no true");
    copy_with_libs(tru, &root, "bin/true");
    let spec = Spec::new(["/bin/true"]);
    assert_eq!(
        run(&spec, {
            let r = root.clone();
            Box::new(move || Ok(r))
        })
        .expect("first run"),
        Exit::Code(0)
    );

    c.bench_function("spawn+wait true (bind root)", |b| {
        b.iter(|| {
            let r = root.clone();
            let exit = run(&spec, Box::new(move || Ok(r))).expect("run");
            assert_eq!(exit, Exit::Code(0));
        })
    });
    c.final_summary();
}
