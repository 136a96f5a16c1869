//! The layer and image commands: import from every source, export, recipes, JSON output, errors.

use std::io::Write;
use std::process::Stdio;

mod support;

use mountkit_testutil::require_root;
use support::{Env, in_store, with_sample};

fn tree(env: &Env) -> std::path::PathBuf {
    let d = env.path("tree");
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::write(d.join("etc/greeting"), "hi\n").unwrap();
    std::fs::write(d.join("big"), vec![7u8; 100_000]).unwrap();
    d
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn layer_import_from_dir_tar_gz_zst_and_stdin_gives_one_id() {
    require_root();
    in_store(|env| {
        let d = tree(env);
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
        let ls = env.json(&["layer", "ls", "--format", "json"]);
        assert_eq!(ls.as_array().unwrap().len(), 1, "one layer, imported once");
        let inspect = env.json(&["layer", "inspect", &id[7..19]]);
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
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn image_from_recipe_runs_with_its_config() {
    require_root();
    with_sample(|env| {
        let sample = env.json(&["image", "inspect", "sample"]);
        let base = sample[0]["layers"][0].as_str().unwrap();
        let d = tree(env);
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
        let img = env.json(&["image", "inspect", "fromrecipe"]);
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

/// Issue 10.1: an image with several names (one ID) is one image. Its containers start and mount,
/// every reference to it resolves, and a name can go while another remains; the last name of an image a
/// container uses cannot.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn an_image_with_two_names_is_one_image() {
    require_root();
    in_store(|env| {
        let id = env.sample("app:v1");
        let archive = env.path("app.tar");
        let a = archive.to_str().unwrap();
        env.ok(&["image", "save", "app:v1", "-o", a, "--format", "oci-archive"]);
        // The same layout imported under another name: the same image, a second name.
        assert_eq!(env.ok(&["image", "import", a, "--tag", "app:latest"]), id);
        env.ok(&["container", "create", "--name", "c1", "app:v1", "echo", "hi"]);
        assert_eq!(env.ok(&["container", "start", "-a", "c1"]), "hi");
        let merged = env.ok(&["container", "mount", "c1"]);
        assert!(std::path::Path::new(&merged).join("bin/sh").exists());
        env.ok(&["container", "unmount", "c1"]);
        // Every spelling of the reference: full ID, bare hex, a prefix, `app` for `app:latest`.
        for r in [&id[..], &id[7..], &id[7..19], "app", "app:latest", "app:v1"] {
            let v = env.json(&["image", "inspect", r]);
            assert_eq!(v[0]["id"], id.as_str(), "{r}");
            assert_eq!(v[0]["names"], serde_json::json!(["app:latest", "app:v1"]), "{r}");
        }
        // By ID, an image with two names is removed only with --force (docker rmi).
        env.fails(
            &["image", "rm", &id[7..19]],
            1,
            "has several names (app:latest, app:v1)",
        );
        assert_eq!(env.ok(&["image", "rm", "app:v1"]), "app:v1");
        assert_eq!(env.ok(&["container", "start", "-a", "c1"]), "hi");
        assert_eq!(env.ok(&["image", "ls", "-q"]), id);
        // Its last name (`app` is `app:latest`) while c1 uses it: refused, with --force too.
        env.fails(&["image", "rm", "app"], 1, "used by container(s) c1");
        env.fails(&["image", "rm", "-f", &id], 1, "used by container(s) c1");
        env.ok(&["container", "rm", "c1"]);
        // With --force, an ID removes every name.
        env.ok(&["image", "import", a, "--tag", "app:v2"]);
        let removed = env.ok(&["image", "rm", "--force", &id]);
        assert_eq!(removed.lines().collect::<Vec<_>>(), ["app:latest", "app:v2"]);
        assert_eq!(env.ok(&["image", "ls", "-q"]), "");
    });
}

/// The top-level spellings a Docker user types: `create`, `rm`, `images`, `rmi` do what `container
/// create`, `container rm`, `image ls` and `image rm` do, with the same flags, output and statuses.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn docker_style_top_level_commands() {
    require_root();
    in_store(|env| {
        let id = env.sample("app:v1");
        env.ok(&["image", "import", &save(env, "app:v1"), "--tag", "app:v2"]);
        let images = env.ok(&["images"]);
        assert_eq!(images, env.ok(&["image", "ls"]));
        assert!(images.contains("app:v1") && images.contains("app:v2"), "{images}");
        // One row per name, as `docker images -q`.
        assert_eq!(env.ok(&["images", "-q"]), format!("{id}\n{id}"));
        assert_eq!(
            env.json(&["images", "--format", "json"]),
            env.json(&["image", "ls", "--format", "json"])
        );
        // `create` prints the ID and exits like `docker create` on a bad image (125).
        let cid = env.ok(&["create", "--name", "c1", "app:v1", "echo", "hi"]);
        assert_eq!(cid.len(), 64, "{cid}");
        env.fails(&["create", "nosuchimage"], 125, "nosuchimage");
        assert_eq!(env.ok(&["start", "-a", "c1"]), "hi");
        // `rmi` of the last name of an image a container uses is refused, as `image rm`.
        assert_eq!(env.ok(&["rmi", "app:v2"]), "app:v2");
        env.fails(&["rmi", "app:v1"], 1, "used by container(s) c1");
        // `rm`: -f and -v as `container rm`; no argument is a usage error.
        env.fails(&["rm"], 125, "required");
        assert_eq!(env.ok(&["rm", "-f", "-v", "c1"]), "c1");
        env.fails(&["rm", "c1"], 1, "c1");
        assert_eq!(env.ok(&["rmi", "app:v1"]), "app:v1");
        assert_eq!(env.ok(&["images", "-q"]), "");
    });
}

/// `image save NAME` into the test's dir as an oci-archive; returns its path.
fn save(env: &Env, name: &str) -> String {
    let archive = env.path(&format!("{}.tar", name.replace(':', "_")));
    let a = archive.to_str().unwrap().to_string();
    env.ok(&["image", "save", name, "-o", &a, "--format", "oci-archive"]);
    a
}
