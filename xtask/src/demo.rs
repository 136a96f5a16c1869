//! `cargo xtask demo`: the storage model on the built-in sample image, narrated, in a throwaway store.
//!
//! Dependencies: `mountkit-safefs`, the one mountinfo parser (escapes undone), to find mounts left under the store.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

struct Demo {
    bin: PathBuf,
    root: PathBuf,
}

impl Demo {
    /// Runs `mountkit --root R <args>`, shows the command and its output, returns stdout.
    fn mk(&self, args: &[&str]) -> anyhow::Result<(i32, String)> {
        println!(
            "\n$ mountkit {}",
            args.iter()
                .map(|a| if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.to_string()
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), stdout.trim_end().to_string()))
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let (code, out) = self.mk(args)?;
        if code != 0 {
            bail!("demo step failed (exit {code}): mountkit {}", args.join(" "));
        }
        Ok(out)
    }
}

fn say(text: &str) {
    println!("\n## {text}");
}

fn check(cond: bool, what: &str) -> anyhow::Result<()> {
    if cond {
        println!("   ok: {what}");
        Ok(())
    } else {
        bail!("demo check failed: {what}")
    }
}

pub fn main(_args: &[String]) -> anyhow::Result<()> {
    if !crate::ci::is_root() {
        bail!("the demo mounts for real and needs root: run `sudo -E cargo xtask demo`");
    }
    crate::ci::run("cargo", &["build", "--quiet", "-p", "mountkit"])?;
    // Built by the line above into the directory that holds this xtask binary (same target, same
    // profile: `target/<host triple>/debug/`, see .cargo/config.toml).
    let bin = std::env::current_exe()?
        .parent()
        .context("the xtask binary has no directory")?
        .join("mountkit");
    let tmp = tempdir()?;
    let demo = Demo {
        bin,
        root: tmp.join("store"),
    };
    let result = steps(&demo);
    // Every mount lived in a container's own namespace, so the store should hold only files; check
    // mountinfo anyway and never remove through a mount.
    let leaked = mountkit_safefs::mounts_under(&tmp).unwrap_or_default();
    if leaked.is_empty() {
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&tmp)
            .status();
    } else {
        eprintln!(
            "warning: mounts remain under {}: {leaked:?}; not removing it",
            tmp.display()
        );
    }
    result?;
    println!(
        "\nThe demo passed every check; its store was in {} and is gone.",
        tmp.display()
    );
    Ok(())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let out = Command::new("mktemp")
        .args(["-d", "-t", "mountkit-demo.XXXXXX"])
        .output()
        .context("mktemp")?;
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// The demo, one seed behaviour after the other: each step narrates, runs `mountkit` and checks.
fn steps(d: &Demo) -> anyhow::Result<()> {
    sample_image(d)?;
    layers(d)?;
    let c1 = two_containers(d)?;
    copy_on_write(d, &c1)?;
    image_in_use_and_container_removal(d, &c1)?;
    named_volume(d)?;
    image_volume_and_volumes_from(d)?;
    detached(d)?;
    bind_mounts(d)?;
    mounts_over_image_directories(d)?;
    exit_codes(d)
}

fn sample_image(d: &Demo) -> anyhow::Result<()> {
    say("The sample image: three layers built from this machine's /bin/sh and coreutils (no network)");
    d.ok(&["system", "sample-image", "sample"])?;
    d.ok(&["image", "ls"])?;
    d.ok(&["layer", "ls"])?;
    Ok(())
}

/// S5/S15: a later layer's file wins, a whiteout deletes, an opaque directory replaces.
fn layers(d: &Demo) -> anyhow::Result<()> {
    say("S5/S15 one filesystem from many layers: layer 2's config.txt (v2) wins over layer 1's (v1);");
    println!(
        "   layer 3 deletes remove-me.txt with a whiteout and replaces /app/old with an opaque directory"
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "sample",
        "sh",
        "-c",
        "cat /app/config.txt; ls /app; ls /app/old",
    ])?;
    check(out.lines().next() == Some("v2"), "the later layer wins")?;
    check(
        !out.contains("remove-me.txt"),
        "the whiteout deleted remove-me.txt",
    )?;
    check(
        out.lines().last() == Some("new.txt"),
        "the opaque directory hides the lower layer's a.txt and b.txt",
    )
}

/// S1: containers c1 and c2 of one image, each with its own writable layer; returns c1's ID.
fn two_containers(d: &Demo) -> anyhow::Result<String> {
    say("S1 two containers from one image: each has its own writable layer");
    let c1 = d.ok(&[
        "container",
        "create",
        "--name",
        "c1",
        "sample",
        "sh",
        "-c",
        "echo 'written by c1' > /app/note.txt; echo changed >> /app/message.txt",
    ])?;
    d.ok(&[
        "container",
        "create",
        "--name",
        "c2",
        "sample",
        "sh",
        "-c",
        "ls /app; cat /app/message.txt",
    ])?;
    d.ok(&["container", "start", "-a", "c1"])?;
    let out = d.ok(&["container", "start", "-a", "c2"])?;
    check(
        !out.contains("note.txt") && !out.contains("changed"),
        "c2 does not see what c1 wrote",
    )?;
    Ok(c1)
}

/// S4: c1's changed file is a copy in its writable layer; the image layer's file is untouched.
fn copy_on_write(d: &Demo, c1: &str) -> anyhow::Result<()> {
    say("S4 copy-on-write: c1 changed /app/message.txt; the image layer's copy is untouched");
    let upper = d.root.join("containers").join(c1).join("upper/app");
    println!(
        "   c1's writable layer ({}): {:?}",
        upper.display(),
        std::fs::read_dir(&upper)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()?
    );
    let copied = std::fs::read_to_string(upper.join("message.txt"))?;
    check(
        copied.ends_with("changed\n"),
        "the changed copy is in c1's writable layer",
    )?;
    let image: serde_json::Value = serde_json::from_str(&d.ok(&["image", "inspect", "sample"])?)?;
    let layer2 = image[0]["layers"][1]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("sha256:")
        .to_string();
    let original = std::fs::read_to_string(d.root.join("layers").join(layer2).join("diff/app/message.txt"))?;
    check(
        original == "hello from layer 2\n",
        "the image layer's file is byte-identical",
    )
}

/// S2: `image rm` refuses an image in use; S3: removing c1 and c2 removes their writable layers.
fn image_in_use_and_container_removal(d: &Demo, c1: &str) -> anyhow::Result<()> {
    say("S2 layers live as long as the image; an image in use cannot be removed");
    let (code, _) = d.mk(&["image", "rm", "sample"])?;
    check(code != 0, "image rm refused while containers use it")?;

    say("S3 the writable layer dies with its container");
    d.ok(&["container", "ls", "-a"])?;
    d.ok(&["container", "rm", "c1", "c2"])?;
    check(
        !d.root.join("containers").join(c1).exists(),
        "c1's writable layer is gone",
    )
}

/// S6/S7: a named volume written by one container is read by another of a new image version.
fn named_volume(d: &Demo) -> anyhow::Result<()> {
    say(
        "S6/S7 a volume outlives its container: the to-do list survives replacing the app (a new image version)",
    );
    d.ok(&["system", "sample-image", "todo-v2"])?;
    d.ok(&["volume", "create", "todo-list"])?;
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "todo-list:/data",
        "sample",
        "sh",
        "-c",
        "echo 'buy milk' > /data/todo.db",
    ])?;
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "todo-list:/data",
        "todo-v2",
        "cat",
        "/data/todo.db",
    ])?;
    check(
        out == "buy milk",
        "the new container sees the data the removed one wrote",
    )
}

/// The seed's own commands: containers that live on their own (`run -d`), entered with `exec`, sharing
/// a volume with `--volumes-from`, read with `logs`, stopped and removed.
fn detached(d: &Demo) -> anyhow::Result<()> {
    say("The seed's to-do flow with detached containers: run -d, exec, --volumes-from, logs, stop");
    let forever = "echo started; while :; do sleep 1; done";
    d.ok(&[
        "run",
        "-d",
        "--name",
        "todo1",
        "-v",
        "todo-list:/data",
        "sample",
        "sh",
        "-c",
        forever,
    ])?;
    d.ok(&["exec", "todo1", "sh", "-c", "echo task1 >> /data/todo.db"])?;
    d.ok(&[
        "run",
        "-d",
        "--name",
        "todo3",
        "--volumes-from",
        "todo1",
        "sample",
        "sh",
        "-c",
        forever,
    ])?;
    let list = d.ok(&["exec", "todo3", "cat", "/data/todo.db"])?;
    check(
        list.ends_with("task1"),
        "todo3 reads what was written through todo1",
    )?;
    let ps = d.ok(&["ps"])?;
    check(
        ps.contains("todo1") && ps.contains("todo3") && ps.contains(" Up "),
        "ps lists both as Up",
    )?;
    check(
        d.ok(&["logs", "todo1"])? == "started",
        "logs shows todo1's output",
    )?;
    d.ok(&["stop", "-t", "1", "todo1", "todo3"])?;
    d.ok(&["container", "rm", "todo1", "todo3"])?;
    Ok(())
}

/// S8/S9: an image `VOLUME` becomes an anonymous volume filled from the image; `--volumes-from` shares it.
fn image_volume_and_volumes_from(d: &Demo) -> anyhow::Result<()> {
    say("S8/S9 an image VOLUME gives each container an anonymous volume; --volumes-from shares it");
    d.ok(&["system", "sample-image", "with-volume", "--volume", "/app/old"])?;
    let out = d.ok(&[
        "run",
        "--name",
        "todo1",
        "with-volume",
        "sh",
        "-c",
        "ls /app/old; echo shared > /app/old/s",
    ])?;
    check(
        out == "new.txt",
        "the anonymous volume was filled from the image on first use",
    )?;
    let out = d.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "todo1",
        "with-volume",
        "cat",
        "/app/old/s",
    ])?;
    check(out == "shared", "--volumes-from sees todo1's write")?;
    d.ok(&["volume", "ls"])?;
    d.ok(&["container", "rm", "-v", "todo1"])?;
    Ok(())
}

/// The host directory the bind mount steps share (beside the store, in the demo's temp dir).
fn host_dir(d: &Demo) -> PathBuf {
    d.root.parent().expect("temp dir").join("host-src")
}

/// S11: a host directory bound both ways; read-only on request.
fn bind_mounts(d: &Demo) -> anyhow::Result<()> {
    say(
        "S11-S13 bind mounts: a host directory both ways, read-only on request; a single file merges into a directory",
    );
    let host = host_dir(d);
    std::fs::create_dir_all(&host)?;
    std::fs::write(host.join("from-host.txt"), "edited on the host\n")?;
    let spec = format!("type=bind,source={},target=/src", host.display());
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        &spec,
        "sample",
        "sh",
        "-c",
        "cat /src/from-host.txt; echo made in the container > /src/from-container.txt",
    ])?;
    check(out == "edited on the host", "the container reads the host's file")?;
    check(
        std::fs::read_to_string(host.join("from-container.txt"))? == "made in the container\n",
        "the host sees the container's file",
    )?;
    let (code, _) = d.mk(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/src:ro", host.display()),
        "sample",
        "touch",
        "/src/x",
    ])?;
    check(code != 0, "a read-only bind refuses writes")
}

/// S13: a single-file bind joins an image directory; S12: a mount over a directory hides it.
fn mounts_over_image_directories(d: &Demo) -> anyhow::Result<()> {
    let file = format!("{}/from-host.txt:/app/extra.txt", host_dir(d).display());
    let out = d.ok(&["run", "--rm", "-v", &file, "sample", "ls", "/app"])?;
    check(
        out.contains("extra.txt") && out.contains("message.txt"),
        "S13: the single file joins the image's files",
    )?;
    let out = d.ok(&["run", "--rm", "--tmpfs", "/app:size=1m", "sample", "ls", "/app"])?;
    check(
        out.is_empty(),
        "S12: a mount over /app hides the image's directory",
    )
}

/// `run` exits as `docker run` does: the command's status, 127, 126, 125.
fn exit_codes(d: &Demo) -> anyhow::Result<()> {
    say(
        "Exit codes, as docker run: the command's own, 127 not found, 126 not executable, 125 mountkit's failure",
    );
    for (args, want) in [
        (vec!["run", "--rm", "sample", "sh", "-c", "exit 3"], 3),
        (vec!["run", "--rm", "sample", "no-such-command"], 127),
        (vec!["run", "--rm", "sample", "/app/config.txt"], 126),
        (vec!["run", "--rm", "no-such-image"], 125),
    ] {
        let (code, _) = d.mk(&args)?;
        check(code == want, &format!("exit {want}"))?;
    }
    Ok(())
}
