//! Links the `mountkit` binary as a position-dependent executable (`-no-pie`).
//!
//! Why: `mountkit run` is measured against a C program doing the same kernel work (issue 2), and
//! start-up is part of it. As a PIE, the binary carries ~10,000 relative relocations that the dynamic
//! loader applies at every exec, writing (and so copying) ~50 pages of `.data.rel.ro`: about a quarter
//! of the page faults of a `mountkit` process, on a path where every fault counts. Linked without PIE,
//! the linker resolves them once. The cost is that the binary's own image is not address-randomized
//! (its libraries, heap and stack still are). Only the `mountkit` binary is linked this way; the
//! libraries, tests and benches are unchanged.
//!
//! Inside this workspace `.cargo/config.toml` builds every binary static and position-dependent
//! (`+crt-static`, `relocation-model=static`), which makes this moot; the flag matters for builds
//! without that configuration (another target, flags of one's own). Not with `+crt-static`: rustc
//! links that as a static executable already (a static PIE when the relocation model is left at PIC,
//! as `cargo xtask vm-test` does), and adding `-no-pie` to a static PIE yields an executable that
//! crashes before `main`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if !features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-arg-bin=mountkit=-no-pie");
    }
}
