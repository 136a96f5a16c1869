//! A probe for `strace -c`: the registry calls of one `mountkit run --rm -v named:/data IMAGE_WITH_VOLUME`,
//! repeated. Usage: `run_sequence DIR [ROUNDS] [single|batch]`.
//!
//! `single` makes the calls mountkit made before the batch APIs (one call per volume per step, the
//! container process opening the registry to populate each volume); `batch` makes the calls it should make
//! now (see "What a container run calls" in docs/volumes.md).

use std::path::{Path, PathBuf};

use mountkit_volumes::{CreateOptions, Registry};

const CONTAINER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn anonymous() -> CreateOptions {
    CreateOptions {
        anonymous: true,
        ..Default::default()
    }
}

fn single(reg: &Registry, dir: &Path, source: &Path) {
    let c = CONTAINER;
    // create_volumes
    assert!(reg.get("named").is_ok());
    let anon = reg.create(None, anonymous()).expect("create anon").name;
    reg.add_ref("named", c).expect("add_ref");
    reg.add_ref(&anon, c).expect("add_ref");
    // start: acquire, populate in the container process, release
    reg.acquire("named", c).expect("acquire");
    reg.acquire(&anon, c).expect("acquire");
    let child = Registry::open(dir.join("volumes")).expect("open");
    child.populate("named", source).expect("populate");
    child.populate(&anon, source).expect("populate");
    reg.release("named", c).expect("release");
    reg.release(&anon, c).expect("release");
    // --rm
    reg.remove_ref("named", c).expect("remove_ref");
    reg.remove_ref(&anon, c).expect("remove_ref");
    assert!(reg.remove(&anon, true).expect("remove"));
}

fn batch(reg: &Registry, dir: &Path, source: &Path) {
    let c = CONTAINER;
    // create_volumes: create what is missing, then one add_refs
    assert!(reg.exists("named"));
    let anon = reg.create(None, anonymous()).expect("create anon").name;
    let names = ["named", anon.as_str()];
    reg.add_refs(&names, c).expect("add_refs");
    // start: one acquire_all; the container process opens the registry only if something needs populating
    let acquired = reg.acquire_all(&names, c).expect("acquire_all");
    if acquired.iter().any(|a| a.needs_populate()) {
        let child = Registry::open(dir.join("volumes")).expect("open");
        for a in acquired.iter().filter(|a| a.needs_populate()) {
            child.populate(&a.name, source).expect("populate");
        }
    }
    reg.release_all(&acquired).expect("release_all");
    // --rm
    reg.remove_refs(&names, c).expect("remove_refs");
    assert!(reg.remove(&anon, true).expect("remove"));
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: run_sequence DIR [ROUNDS] [single|batch]"),
    );
    let rounds: usize = args.next().map_or(1, |r| r.parse().expect("ROUNDS"));
    let mode = args.next().unwrap_or_else(|| "single".into());
    let source = dir.join("image-content");
    std::fs::create_dir_all(&source).expect("source");
    std::fs::write(source.join("seed.txt"), b"from the image").expect("seed");
    let reg = Registry::open(dir.join("volumes")).expect("open");
    if !reg.exists("named") {
        reg.create(Some("named"), CreateOptions::default())
            .expect("create named");
    }
    for _ in 0..rounds {
        match mode.as_str() {
            "single" => single(&reg, &dir, &source),
            "batch" => batch(&reg, &dir, &source),
            other => panic!("unknown mode {other:?}: single or batch"),
        }
    }
}
