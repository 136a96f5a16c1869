//! A probe for `strace -c`: the registry calls of one `mountkit run --rm -v named:/data IMAGE_WITH_VOLUME`,
//! repeated. Usage: `run_sequence DIR [ROUNDS]`.

use std::path::PathBuf;

use mountkit_volumes::{CreateOptions, Registry};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: run_sequence DIR [ROUNDS]"));
    let rounds: usize = args.next().map_or(1, |r| r.parse().expect("ROUNDS"));
    let source = dir.join("image-content");
    std::fs::create_dir_all(&source).expect("source");
    std::fs::write(source.join("seed.txt"), b"from the image").expect("seed");
    let reg = Registry::open(dir.join("volumes")).expect("open");
    if !reg.exists("named") {
        reg.create(Some("named"), CreateOptions::default())
            .expect("create named");
    }
    let c = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for _ in 0..rounds {
        // create_volumes
        assert!(reg.get("named").is_ok());
        let anon = reg
            .create(
                None,
                CreateOptions {
                    anonymous: true,
                    ..Default::default()
                },
            )
            .expect("create anon")
            .name;
        reg.add_ref("named", c).expect("add_ref");
        reg.add_ref(&anon, c).expect("add_ref");
        // start: acquire, populate in the container process, release
        reg.acquire("named", c).expect("acquire");
        reg.acquire(&anon, c).expect("acquire");
        let child = Registry::open(dir.join("volumes")).expect("open");
        child.populate("named", &source).expect("populate");
        child.populate(&anon, &source).expect("populate");
        reg.release("named", c).expect("release");
        reg.release(&anon, c).expect("release");
        // --rm
        reg.remove_ref("named", c).expect("remove_ref");
        reg.remove_ref(&anon, c).expect("remove_ref");
        assert!(reg.remove(&anon, true).expect("remove"));
    }
}
