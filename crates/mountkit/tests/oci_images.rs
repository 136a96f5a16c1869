//! `image import` / `image save` through the binary, with skopeo as the reference reader.

mod support;

use mountkit_testutil::require_root;
use support::{Env, with_sample};

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// commit -> save -> import into another store -> run: the new container sees what the first one had.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn commit_save_import_round_trip_in_every_format() {
    require_root();
    with_sample(|env| {
        env.ok(&[
            "run",
            "--name",
            "c",
            "sample",
            "sh",
            "-c",
            "echo committed > /app/state; rm /app/config.txt",
        ]);
        env.ok(&["container", "commit", "c", "snap"]);
        for (format, out) in [
            ("oci", "layout"),
            ("oci-archive", "snap-oci.tar"),
            ("docker-archive", "snap-docker.tar"),
        ] {
            let dest = env.path(out);
            env.ok(&[
                "image",
                "save",
                "snap",
                "-o",
                dest.to_str().unwrap(),
                "--format",
                format,
            ]);
            if have("skopeo") {
                let transport = match format {
                    "oci" => format!("oci:{}:snap", dest.display()),
                    "oci-archive" => format!("oci-archive:{}", dest.display()),
                    _ => format!("docker-archive:{}", dest.display()),
                };
                let st = std::process::Command::new("skopeo")
                    .args(["inspect", &transport])
                    .output()
                    .unwrap();
                assert!(
                    st.status.success(),
                    "skopeo inspect {transport}: {}",
                    String::from_utf8_lossy(&st.stderr)
                );
            } else {
                eprintln!("SKIP skopeo part of {format}: skopeo not installed");
            }
            let other = Env::new();
            let id = other.ok(&["image", "import", dest.to_str().unwrap(), "--tag", "imported"]);
            assert!(id.starts_with("sha256:"), "{id}");
            let out = other.ok(&[
                "run",
                "--rm",
                "imported",
                "sh",
                "-c",
                "cat /app/state; ls /app; cat /app/message.txt",
            ]);
            assert_eq!(
                out, "committed\nmessage.txt\nold\nstate\nhello from layer 2",
                "{format}: {out}"
            );
        }
        let bad = env.path("not-an-image");
        std::fs::create_dir_all(&bad).unwrap();
        let before = env.ok(&["image", "ls", "-q"]);
        env.fails(&["image", "import", bad.to_str().unwrap()], 1, "not-an-image");
        assert_eq!(env.ok(&["image", "ls", "-q"]), before, "nothing stored");
    });
}
