//! `container explain`, `image explain` and the shadow warnings of `container create`/`run` (issue 14).
//!
//! The sample image has three layers: layer 2 replaces `/app/config.txt`, layer 3 deletes
//! `/app/remove-me.txt` (a whiteout) and makes `/app/old` opaque (hiding `a.txt` and `b.txt`).

mod support;

use std::process::Command;

use mountkit_testutil::require_root;
use serde_json::Value;
use support::{Env, with_sample};

/// `explain` in JSON: one object per path.
fn explain(env: &Env, noun: &str, object: &str, paths: &[&str]) -> Vec<Value> {
    let mut args = vec!["--format", "json", noun, "explain", object];
    args.extend_from_slice(paths);
    let out = env.run(&args);
    let v: Value = support::json(&String::from_utf8_lossy(&out.stdout));
    v.as_array().expect("an array").clone()
}

/// The md5 of a host file, by the host's `md5sum`.
fn host_md5(path: &str) -> String {
    let out = Command::new("md5sum").arg(path).output().expect("md5sum");
    assert!(out.status.success(), "md5sum {path}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The image alone: a later layer wins and hides the lower version, a whiteout deletes, an opaque
/// directory hides the layers below; text and JSON; the exit status says whether every path exists.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn image_explain_names_the_layer_whiteouts_and_opaque_dirs() {
    require_root();
    with_sample(|env| {
        let e = explain(
            env,
            "image",
            "sample",
            &[
                "/app/config.txt",
                "/app/remove-me.txt",
                "/app/old",
                "/app/old/a.txt",
                "/app",
            ],
        );
        assert_eq!(e[0]["provider"]["layer"]["index"], 2);
        assert_eq!(e[0]["hides"][0]["type"], "version");
        assert_eq!(e[0]["hides"][0]["layer"]["index"], 1);
        assert_eq!(e[1]["exists"], false);
        assert_eq!(e[1]["hides"][0]["type"], "whiteout");
        assert_eq!(e[1]["hides"][0]["layer"]["index"], 3);
        assert_eq!(e[2]["hides"][0]["type"], "opaque");
        assert_eq!(e[2]["entries"], 1);
        assert_eq!(e[3]["exists"], false);
        assert_eq!(e[4]["merged_with"], serde_json::json!([2, 1]), "top first");
        assert_eq!(e[4]["entries"], 3, "config.txt, message.txt, old: {}", e[4]);

        // Text: a person reads it at a glance; a missing path makes the status 1 (as ls).
        let out = env.run(&["image", "explain", "sample", "/app/remove-me.txt"]);
        assert_eq!(out.status.code(), Some(1));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("was deleted in layer 3/3 sha256:"), "{text}");
        let text = env.ok(&["image", "explain", "-v", "sample", "/app"]);
        assert!(text.contains("provided by: layer 3/3"), "{text}");
        assert!(text.contains("merged with: layers 1-2"), "{text}");
        assert!(text.contains("message.txt  layer 2/3"), "{text}");
        let text = env.ok(&["image", "explain", "sample", "/app/config.txt"]);
        assert!(text.contains("hides:       file of layer 1/3"), "{text}");

        // History: newest first; layer 3 adds new.txt and deletes remove-me.txt (whiteout) and a.txt,
        // b.txt (opaque /app/old); layer 2 adds message.txt and changes config.txt.
        let h = env.json(&["image", "history", "--format", "json", "sample"]);
        let counts = |i: usize| {
            let r = &h[i];
            (
                r["layer"]["index"].as_u64().unwrap(),
                r["added"].as_u64().unwrap(),
                r["changed"].as_u64().unwrap(),
                r["deleted"].as_u64().unwrap(),
            )
        };
        assert_eq!(counts(0), (3, 1, 0, 3), "{h}");
        assert_eq!(counts(1), (2, 1, 1, 0), "{h}");
        assert_eq!(counts(2).0, 1);
        assert_eq!(counts(2).2 + counts(2).3, 0, "the base layer only adds");
        // Computed once: each layer keeps its counts as a note keyed by its parent chain.
        for l in env.json(&["image", "inspect", "sample"])[0]["layers"]
            .as_array()
            .unwrap()
        {
            let hex = l.as_str().unwrap().trim_start_matches("sha256:");
            let notes = std::fs::read_dir(env.root.join("layers").join(hex).join("notes"))
                .unwrap()
                .count();
            assert_eq!(notes, 1, "layer {hex}");
        }
        assert_eq!(
            env.json(&["image", "history", "--format", "json", "sample"]),
            h,
            "read from the notes"
        );
        let text = env.lines(&["image", "history", "sample"]);
        assert!(text[0].starts_with("LAYER"), "{text:?}");
        assert!(text[1].starts_with("3/3 "), "{text:?}");

        // Unknown objects fail as inspect does (1); a missing argument is a usage error (125).
        env.fails(&["image", "explain", "nope", "/"], 1, "nope");
        env.fails(
            &["container", "explain", "nope", "/"],
            1,
            "no such container: nope",
        );
        env.fails(&["container", "explain", "nope"], 125, "PATHS");
    });
}

/// Against the kernel: a container of the three-layer image with copy-ups, a deletion, a new
/// directory, a named volume, a bind over an opaque image directory, a tmpfs and a symlink into the
/// volume. Its second start prints the md5 of every path; for each one, the provider `explain` names
/// holds the same bytes on the host (or the path is missing in both). Two container starts in all.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn explain_matches_what_the_running_container_reads() {
    require_root();
    with_sample(|env| {
        let host = env.path("bind");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("h"), "from the host\n").unwrap();
        let bind = format!("{}:/app/old", host.display());
        let paths = [
            "/app/config.txt",
            "/app/message.txt",
            "/app/remove-me.txt",
            "/app/old/h",
            "/app/old/new.txt",
            "/app/old/a.txt",
            "/etc/motd",
            "/etc/passwd",
            "/bin/sh",
            "/usr/bin/true",
            "/usr/bin/md5sum",
            "/newdir/f",
            "/data/d",
            "/lnk",
            "/newdir/../etc/group",
            "/home/app",
            "/home/z",
        ];
        let list = paths.join(" ");
        let script = format!(
            "if [ -e /done ]; then \
               for p in {list}; do \
                 if [ -e \"$p\" ]; then set -- $(md5sum < \"$p\"); echo \"$p $1\"; else echo \"$p MISSING\"; fi; \
               done; \
               find / \\( -path /proc -o -path /sys -o -path /dev -o -path /scratch \\) -prune -o -type f -print | \
                 while read -r p; do set -- $(md5sum < \"$p\"); echo \"$p $1\"; done; \
             else \
               echo changed >> /app/config.txt && chmod 600 /app/message.txt && touch /etc/motd && \
               rm /usr/bin/true && mkdir /newdir && echo new > /newdir/f && echo vol > /data/d && \
               ln -s /data/d /lnk && echo tmp > /scratch/x && \
               rm -r /home && mkdir /home && echo z > /home/z && : > /done; \
             fi"
        );
        let out = env.run(&[
            "container",
            "create",
            "--name",
            "k",
            "-v",
            &bind,
            "-v",
            "kvol:/data",
            "--tmpfs",
            "/scratch",
            "sample",
            "sh",
            "-c",
            &script,
        ]);
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "-v {bind} hides 1 file of the image under /app/old (layer 3)"
            )),
            "the shadow warning: {stderr}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim().len(),
            64,
            "stdout: the ID alone"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "no warning for the volume at the empty /data: {stderr}"
        );

        env.ok(&["container", "start", "-a", "k"]);
        let seen = env.ok(&["container", "start", "-a", "k"]);
        // The listed paths, then every regular file of the container (its tmpfs and the runtime's
        // mounts left out: their contents are not in the store).
        let all: Vec<&str> = seen.lines().map(|l| l.split_once(' ').unwrap().0).collect();
        assert!(all.len() > paths.len() + 40, "find saw the image's files: {seen}");
        let e = explain(env, "container", "k", &all);
        let mut checked = 0;
        for (line, x) in seen.lines().zip(&e) {
            let (p, hash) = line.split_once(' ').unwrap();
            assert_eq!(x["path"], p);
            if hash == "MISSING" {
                assert_eq!(x["exists"], false, "{p}: missing in the container: {x}");
            } else {
                let hp = x["host_path"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{p}: no host path: {x}"));
                assert_eq!(host_md5(hp), hash, "{p}: {x}");
            }
            checked += 1;
        }
        assert_eq!(checked, all.len(), "{seen}");

        let by_path = |p: &str| e.iter().find(|x| x["path"] == p).unwrap().clone();
        let w = by_path("/app/config.txt");
        assert_eq!(w["provider"]["type"], "writable");
        assert_eq!(w["provider"]["origin"], "changed");
        assert_eq!(w["provider"]["from_layer"], 2);
        assert_eq!(
            by_path("/app/message.txt")["provider"]["origin"],
            "copied_up",
            "chmod only"
        );
        assert_eq!(
            by_path("/etc/motd")["provider"]["origin"],
            "changed",
            "touch changes the mtime"
        );
        assert_eq!(by_path("/newdir/f")["provider"]["origin"], "new");
        let t = by_path("/usr/bin/true");
        assert_eq!(t["hides"][0]["type"], "whiteout");
        assert!(
            t["hides"][0]["layer"].is_null(),
            "deleted in the writable layer: {t}"
        );
        assert_eq!(by_path("/app/old/h")["provider"]["type"], "bind");
        let l = by_path("/lnk");
        assert_eq!(l["resolved"], "/data/d");
        assert_eq!(l["provider"]["type"], "volume");
        assert_eq!(l["provider"]["name"], "kvol");
        assert_eq!(by_path("/newdir/../etc/group")["provider"]["layer"]["index"], 1);

        // /home was removed and made again: an opaque directory of the writable layer.
        let h = &explain(env, "container", "k", &["/home"])[0];
        assert_eq!(h["provider"]["origin"], "new", "{h}");
        assert!(
            h["hides"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["type"] == "opaque" && x["layer"].is_null()),
            "{h}"
        );
        assert_eq!(h["entries"], 1, "{h}");
        let e = explain(
            env,
            "container",
            "k",
            &["/scratch/x", "/proc/self/status", "/app/old", "/"],
        );
        assert_eq!(e[0]["provider"]["type"], "tmpfs");
        assert!(
            e[0]["exists"].is_null(),
            "a tmpfs's contents are unknown: {}",
            e[0]
        );
        assert_eq!(e[1]["provider"]["type"], "runtime");
        assert_eq!(e[2]["hides"][0]["type"], "files");
        assert_eq!(e[2]["hides"][0]["count"], 1);
        let text = env.ok(&["container", "explain", "k", "/app/old"]);
        assert!(
            text.contains("hides:       1 image file under /app/old (layer 3)"),
            "{text}"
        );
        let text = env.ok(&["container", "explain", "-v", "k", "/"]);
        assert!(text.contains("scratch  tmpfs /scratch"), "{text}");
        assert!(text.contains("newdir   writable layer (new)"), "{text}");
        let text = env.ok(&["container", "explain", "--no-follow", "k", "/lnk"]);
        assert!(text.contains("symlink"), "{text}");
    });
}

/// S12: one warning line per bind or volume over a non-empty image directory, on stderr; none for a
/// missing or empty target, a single-file bind, or a volume the first start fills from the image;
/// `-q` and `MOUNTKIT_NO_WARN=1` silence it. One container run.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn shadow_warnings_at_create() {
    require_root();
    with_sample(|env| {
        let dir = env.path("src");
        std::fs::create_dir_all(&dir).unwrap();
        let file = env.path("file");
        std::fs::write(&file, "x").unwrap();
        let over_app = format!("{}:/app", dir.display());
        let create = |extra: &[&str], envs: &[(&str, &str)]| {
            let mut c = env.cmd();
            c.args(["container", "create"])
                .args(extra)
                .args(["sample", "true"]);
            for (k, v) in envs {
                c.env(k, v);
            }
            let out = c.output().unwrap();
            assert!(out.status.success(), "{out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 64);
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        let err = create(&["-v", &over_app], &[]);
        assert_eq!(
            err.trim(),
            format!("mountkit: warning: -v {over_app} hides 3 files of the image under /app (layers 2-3)")
        );
        assert_eq!(create(&["-q", "-v", &over_app], &[]), "");
        // `run` warns the same way, before the container's own output, which stays alone on stdout.
        let out = env.run(&["run", "--rm", "-v", &over_app, "sample", "echo", "hi"]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("hides 3 files of the image under /app"),
            "{out:?}"
        );
        assert_eq!(create(&["-v", &over_app], &[("MOUNTKIT_NO_WARN", "1")]), "");
        // A single-file bind, an empty image directory, a missing target, a new volume (filled from /app).
        let single = format!("{}:/app/config.txt", file.display());
        let empty = format!("{}:/data", dir.display());
        let missing = format!("{}:/nowhere", dir.display());
        assert_eq!(
            create(
                &["-v", &single, "-v", &empty, "-v", &missing, "-v", "fresh:/app"],
                &[]
            ),
            ""
        );
        // A named volume that has content already does hide the image's files.
        std::fs::write(env.root.join("volumes/fresh/_data/x"), "x").unwrap();
        let populated = env.root.join("volumes/fresh/populated");
        if !populated.exists() {
            std::fs::write(&populated, "").unwrap();
        }
        let err = create(&["-v", "fresh:/app"], &[]);
        assert!(
            err.contains("-v fresh:/app hides 3 files of the image under /app"),
            "{err}"
        );
    });
}

/// `system df`: sizes, shared layers, active objects and what could be reclaimed; `-v` lists each
/// object. No container runs.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn system_df_sizes_shared_and_reclaimable() {
    require_root();
    with_sample(|env| {
        // A second image sharing the sample's two lower layers.
        let layers = env.lines(&["layer", "ls", "-q"]);
        let sample = env.json(&["image", "inspect", "sample"]);
        let lower: Vec<String> = sample[0]["layers"].as_array().unwrap()[..2]
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        assert_eq!(layers.len(), 3);
        env.ok(&[
            "image", "create", "two", "--layer", &lower[0], "--layer", &lower[1], "--cmd", "true",
        ]);
        env.ok(&[
            "container",
            "create",
            "--name",
            "c",
            "-v",
            "used:/data",
            "sample",
            "true",
        ]);
        env.ok(&["volume", "create", "idle"]);
        std::fs::write(env.root.join("volumes/idle/_data/f"), "12345").unwrap();
        let id = env.json(&["container", "inspect", "c"])[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        std::fs::write(env.upper(&id).join("w"), "123").unwrap();

        let du = env.json(&["system", "df", "--format", "json"]);
        let kind = |k: &str| {
            du["summary"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["kind"] == k)
                .unwrap()
                .clone()
        };
        let top = sample[0]["layers"][2].as_str().unwrap();
        let top_size = du["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == top)
            .unwrap()["size"]
            .as_u64()
            .unwrap();
        assert_eq!(kind("layers")["total"], 3);
        assert_eq!(kind("layers")["reclaimable"], 0);
        assert_eq!(kind("images")["active"], 1);
        // "two" has no container, but all its layers are the sample's: nothing to reclaim.
        assert_eq!(kind("images")["reclaimable"], 0, "{du}");
        let images = du["images"].as_array().unwrap();
        let s = images.iter().find(|i| i["name"] == "sample").unwrap();
        assert_eq!(s["unique_size"].as_u64().unwrap(), top_size, "{s}");
        assert_eq!(s["containers"], 1);
        assert_eq!(kind("containers")["size"], 3);
        assert_eq!(
            kind("containers")["reclaimable"],
            3,
            "a created container is not running"
        );
        assert_eq!(kind("volumes")["total"], 2);
        assert_eq!(kind("volumes")["active"], 1);
        assert_eq!(kind("volumes")["reclaimable"], 5);

        let text = env.ok(&["system", "df"]);
        assert!(text.starts_with("TYPE"), "{text}");
        assert!(text.contains("Volumes"), "{text}");
        assert!(!text.contains("VOLUME NAME"), "{text}");
        let text = env.ok(&["system", "df", "-v"]);
        assert!(text.contains("VOLUME NAME") && text.contains("idle"), "{text}");
    });
}

/// `system doctor`: a replaced single-file bind of a running container, a foreign mount under the store,
/// an image whose layer is gone and an unused layer are each reported with a fix (exit 1); a clean store
/// exits 0. One container run.
#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn system_doctor_finds_problems_with_their_fixes() {
    require_root();
    with_sample(|env| {
        let out = env.run(&["system", "doctor"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("No problems found."));

        let file = env.path("conf");
        std::fs::write(&file, "one\n").unwrap();
        let bind = format!("{}:/etc/conf", file.display());
        let mut runner = env.spawn(&["run", "--name", "d", "-v", &bind, "sample", "sleep", "60"]);
        let seen = env.wait_running("d", &mut runner);
        let pid = seen[0]["state"]["pid"].as_i64().unwrap() as i32;
        // An editor's save: a new file renamed over the old one.
        let new = env.path("conf.new");
        std::fs::write(&new, "two\n").unwrap();
        std::fs::rename(&new, &file).unwrap();
        // A mount under the store that mountkit did not make.
        let foreign = env.root.join("foreign");
        std::fs::create_dir_all(&foreign).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "t"])
            .arg(&foreign)
            .status()
            .unwrap();
        assert!(mounted.success());
        // An unused layer.
        let dir = env.path("extra");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x"), "x").unwrap();
        let layer = env.ok(&["layer", "import", dir.to_str().unwrap()]);

        let out = env.run(&["--format", "json", "system", "doctor"]);
        assert_eq!(out.status.code(), Some(1));
        let report = support::json(&String::from_utf8_lossy(&out.stdout));
        let problems = report["problems"].as_array().unwrap();
        let find = |needle: &str| {
            problems
                .iter()
                .find(|p| p["object"].as_str().unwrap().contains(needle))
                .unwrap_or_else(|| panic!("no problem about {needle}: {report}"))
                .clone()
        };
        let p = find("container d: bind");
        assert!(p["problem"].as_str().unwrap().contains("replaced"), "{p}");
        assert!(
            p["fix"].as_str().unwrap().contains("restart the container"),
            "{p}"
        );
        let p = find(&format!("mount {}", foreign.display()));
        assert!(p["fix"].as_str().unwrap().contains("umount"), "{p}");
        let p = find(&format!("layer {layer}"));
        assert_eq!(p["fix"], "mountkit system gc");
        assert!(report["kernel"].as_array().unwrap().len() >= 5);

        support::kill9(pid);
        let _ = runner.wait();
        assert!(Command::new("umount").arg(&foreign).status().unwrap().success());
        // An image whose layer is gone (the container keeps the image from being removed otherwise).
        env.ok(&["container", "rm", "-f", "d"]);
        let sample = env.json(&["image", "inspect", "sample"]);
        let top = sample[0]["layers"][2]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        std::fs::remove_dir_all(env.root.join("layers").join(&top)).unwrap();
        let text = env.run(&["system", "doctor"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("image sample") && text.contains("is missing from the store"),
            "{text}"
        );
    });
}
