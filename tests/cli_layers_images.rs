//! The layer and image commands: import from every source, export, recipes, JSON output, errors.

use std::io::Write;
use std::process::Stdio;

use mountkit_e2e::Env;
use mountkit_testutil::{in_mount_ns, privileged};

fn tree(env: &Env) -> std::path::PathBuf {
    let d = env.path("tree");
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::write(d.join("etc/greeting"), "hi\n").unwrap();
    std::fs::write(d.join("big"), vec![7u8; 100_000]).unwrap();
    d
}

#[test]
fn layer_import_from_dir_tar_gz_zst_and_stdin_gives_one_id() {
    if !privileged("layer_import_from_dir_tar_gz_zst_and_stdin_gives_one_id") {
        return;
    }
    in_mount_ns(|| {
        let env = Env::new();
        let d = tree(&env);
        let id = env.ok(&["layer", "import", d.to_str().unwrap()]);
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
        // Export is the canonical stream: its sha256 is the ID, and every compressed form imports to it.
        let tar = env.path("l.tar");
        env.ok(&["layer", "export", &id, "-o", tar.to_str().unwrap()]);
        let sum = std::process::Command::new("sha256sum")
            .arg(&tar)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&sum.stdout)
                .split_whitespace()
                .next()
                .unwrap(),
            &id[7..]
        );
        for (tool, ext) in [("gzip", "gz"), ("zstd", "zst")] {
            let out = env.path(&format!("l.tar.{ext}"));
            let st = std::process::Command::new(tool)
                .arg("-k")
                .arg("-q")
                .arg(&tar)
                .status();
            if !st.map(|s| s.success()).unwrap_or(false) {
                eprintln!("SKIP {tool} part: {tool} not installed");
                continue;
            }
            assert_eq!(env.ok(&["layer", "import", out.to_str().unwrap()]), id, "{tool}");
        }
        let mut child = env
            .cmd()
            .args(["layer", "import", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&std::fs::read(&tar).unwrap())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
        let ls: serde_json::Value =
            serde_json::from_str(&env.ok(&["layer", "ls", "--format", "json"])).unwrap();
        assert_eq!(ls.as_array().unwrap().len(), 1, "one layer, imported once");
        let inspect: serde_json::Value =
            serde_json::from_str(&env.ok(&["layer", "inspect", &id[7..19]])).unwrap();
        assert_eq!(inspect[0]["id"], id.as_str());
        env.fails(
            &["layer", "import", env.path("missing.tar").to_str().unwrap()],
            1,
            "missing.tar",
        );
        let junk = env.path("junk.tar");
        std::fs::write(
            &junk,
            b"this is not a tar archive at all, just text that goes on and on",
        )
        .unwrap();
        env.ok(&["layer", "ls", "-q"]);
        let before = env.ok(&["layer", "ls", "-q"]);
        let out = env.run(&["layer", "import", junk.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            env.ok(&["layer", "ls", "-q"]),
            before,
            "a bad layer leaves nothing"
        );
    });
}

#[test]
fn image_from_recipe_runs_with_its_config() {
    if !privileged("image_from_recipe_runs_with_its_config") {
        return;
    }
    in_mount_ns(|| {
        let env = Env::new();
        env.sample("sample");
        let sample: serde_json::Value =
            serde_json::from_str(&env.ok(&["image", "inspect", "sample"])).unwrap();
        let base = sample[0]["layers"][0].as_str().unwrap();
        let d = tree(&env);
        let recipe = env.path("recipe.toml");
        std::fs::write(
            &recipe,
            format!(
                "layers = [\"{base}\", \"tree\"]\nworkdir = \"/etc\"\nuser = \"app\"\nenv = [\"MODE=recipe\"]\n\
                 entrypoint = [\"/bin/sh\", \"-c\"]\ncmd = [\"echo $MODE; id -u; cat greeting\"]\n[labels]\nk = \"v\"\n"
            ),
        )
        .unwrap();
        assert!(d.exists());
        env.ok(&[
            "image",
            "create",
            "fromrecipe",
            "--file",
            recipe.to_str().unwrap(),
        ]);
        assert_eq!(env.ok(&["run", "--rm", "fromrecipe"]), "recipe\n1000\nhi");
        let img: serde_json::Value =
            serde_json::from_str(&env.ok(&["image", "inspect", "fromrecipe"])).unwrap();
        assert_eq!(img[0]["config"]["labels"]["k"], "v");
        let bad = env.path("bad.toml");
        std::fs::write(&bad, "layers = [\"nope\"]\n").unwrap();
        env.fails(
            &["image", "create", "bad", "--file", bad.to_str().unwrap()],
            1,
            "nope",
        );
        std::fs::write(&bad, "layerz = []\n").unwrap();
        env.fails(
            &["image", "create", "bad", "--file", bad.to_str().unwrap()],
            1,
            "layerz",
        );
        env.fails(
            &[
                "image",
                "create",
                "fromrecipe",
                "--file",
                recipe.to_str().unwrap(),
            ],
            1,
            "fromrecipe",
        );
        let names = env.ok(&["image", "ls", "-q"]);
        assert_eq!(names.lines().count(), 2, "no half-made image: {names}");
    });
}
