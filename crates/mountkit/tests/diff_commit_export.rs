//! `container diff`, `commit` and `export`.

mod support;

use mountkit_testutil::require_root;
use support::{mounts_under, with_sample};

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn diff_commit_export_round_trip() {
    require_root();
    with_sample(|env| {
        env.ok(&["volume", "create", "vol"]);
        env.ok(&[
            "run", "--name", "c", "-v", "vol:/data", "sample", "sh", "-c",
            "echo new > /app/new.txt; echo v3 > /app/config.txt; rm /app/message.txt; echo in-volume > /data/file",
        ]);
        let diff = env.ok(&["container", "diff", "c"]);
        assert_eq!(
            diff, "C /app\nC /app/config.txt\nD /app/message.txt\nA /app/new.txt",
            "{diff}"
        );
        let json = env.json(&["--format", "json", "container", "diff", "c"]);
        assert_eq!(json.as_array().unwrap().len(), 4);

        env.ok(&["container", "commit", "c", "committed"]);
        let out = env.ok(&[
            "run",
            "--rm",
            "committed",
            "sh",
            "-c",
            "cat /app/new.txt /app/config.txt; ls /app; ls /data",
        ]);
        assert_eq!(
            out, "new\nv3\nconfig.txt\nnew.txt\nold",
            "the committed image has the changes and no volume data: {out}"
        );
        let img = env.json(&["image", "inspect", "committed"]);
        assert_eq!(img[0]["layers"].as_array().unwrap().len(), 4);

        let tar = env.path("export.tar");
        env.ok(&["container", "export", "c", "-o", tar.to_str().unwrap()]);
        let list = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&tar)
            .output()
            .unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            list.lines().any(|l| l.trim_end_matches('/') == "app/new.txt"),
            "{list}"
        );
        assert!(
            list.lines().any(|l| l.trim_end_matches('/') == "bin/sh"),
            "{list}"
        );
        assert!(!list.contains("message.txt"), "deleted files are not exported");
        assert!(
            !list.contains("remove-me.txt"),
            "whited-out files are not exported"
        );
        assert!(!list.contains(".wh."), "a flattened export has no whiteouts");
        assert!(!list.contains("data/file"), "volume contents are not exported");
        assert!(mounts_under(&env.root).is_empty());
        env.fails(&["container", "commit", "c", "committed"], 1, "committed");
    });
}
