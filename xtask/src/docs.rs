//! `cargo xtask completions` and `cargo xtask man`: shell completions and man pages, generated from the
//! `mountkit` command's own clap definition ([`mountkit::cli_command`]), so they always match `--help`.
//!
//! ```text
//! cargo xtask completions [--shell bash|zsh|fish|elvish|powershell|all] [-o DIR]   (default: all, target/completions)
//! cargo xtask man [-o DIR]                                                         (default: target/man)
//! ```
//! `completions` writes `mountkit.bash`, `_mountkit` (zsh), `mountkit.fish`, `mountkit.elv`,
//! `_mountkit.ps1`; `man` writes `mountkit.1` and one page per subcommand (`mountkit-container-create.1`,
//! ...). Each prints the files it wrote, one per line. README's "Shell completions and man pages" says
//! where to install them.
//!
//! Dependencies, and why: `clap_complete` and `clap_mangen` are clap's own generators (same project and
//! release train as the clap the binary parses with, reading the very `Command` it parses); they are
//! xtask's dependencies only, so the `mountkit` binary carries no generator code. The definition comes
//! from the `mountkit` library (its `cli_args` module, which the binary parses with too): one definition,
//! no copy to drift. The price is that building xtask builds the library, which `ci`, `demo`, `vm-test`
//! and `bench` build anyway.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap_complete::Shell;

const COMPLETIONS_USAGE: &str =
    "usage: cargo xtask completions [--shell bash|zsh|fish|elvish|powershell|all] [-o DIR]";
const MAN_USAGE: &str = "usage: cargo xtask man [-o DIR]";

/// Every shell `clap_complete` knows, in the order `all` writes them.
const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// Entry point of `cargo xtask completions`.
pub fn completions(args: &[String]) -> anyhow::Result<()> {
    let mut shells = SHELLS.to_vec();
    let mut dir = default_dir("completions")?;
    let mut args = args.iter();
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{a} needs a value; {COMPLETIONS_USAGE}"))
        };
        match a.as_str() {
            "--shell" | "-s" => shells = parse_shells(value()?)?,
            "--output" | "-o" => dir = value()?.into(),
            "-h" | "--help" => {
                eprintln!("{COMPLETIONS_USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; {COMPLETIONS_USAGE}"),
        }
    }
    for path in write_completions(&shells, &dir)? {
        println!("{}", path.display());
    }
    Ok(())
}

/// Entry point of `cargo xtask man`.
pub fn man(args: &[String]) -> anyhow::Result<()> {
    let mut dir = default_dir("man")?;
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--output" | "-o" => {
                dir = args
                    .next()
                    .with_context(|| format!("{a} needs a value; {MAN_USAGE}"))?
                    .into()
            }
            "-h" | "--help" => {
                eprintln!("{MAN_USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; {MAN_USAGE}"),
        }
    }
    for path in write_man_pages(&dir)? {
        println!("{}", path.display());
    }
    Ok(())
}

/// `--shell NAME`: one shell by its name (`bash`, `zsh`, `fish`, `elvish`, `powershell`), or `all`.
fn parse_shells(name: &str) -> anyhow::Result<Vec<Shell>> {
    if name == "all" {
        return Ok(SHELLS.to_vec());
    }
    match name.parse::<Shell>() {
        Ok(shell) => Ok(vec![shell]),
        Err(e) => bail!("--shell {name:?}: {e}; {COMPLETIONS_USAGE}"),
    }
}

/// `target/<what>` of this workspace.
fn default_dir(what: &str) -> anyhow::Result<PathBuf> {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = xtask.parent().context("xtask has no parent dir")?;
    Ok(root.join("target").join(what))
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes the completion script of each shell into `dir` (made if missing); returns their paths.
pub fn write_completions(shells: &[Shell], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let mut cmd = mountkit::cli_command();
    shells
        .iter()
        .map(|&shell| {
            clap_complete::generate_to(shell, &mut cmd, "mountkit", dir)
                .with_context(|| format!("cannot write the {shell} completions into {}", dir.display()))
        })
        .collect()
}

/// Writes `mountkit.1` and one page per subcommand (`mountkit-volume-ls.1`, ...) into `dir` (made if
/// missing); returns their paths, sorted.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    create_dir(dir)?;
    clap_mangen::generate_to(mountkit::cli_command(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("mountkit") && name.ends_with(".1")
        })
        .collect();
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn completions_know_every_noun_and_their_flags() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("completions");
        completions(&["-o".into(), out.display().to_string()]).unwrap();
        for name in [
            "mountkit.bash",
            "_mountkit",
            "mountkit.fish",
            "mountkit.elv",
            "_mountkit.ps1",
        ] {
            let script = read(&out, name);
            for word in ["container", "volume", "sample-image", "volumes-from"] {
                assert!(script.contains(word), "{name} lacks {word:?}");
            }
        }
        let bash = read(&out, "mountkit.bash");
        assert!(bash.contains("complete -F _mountkit"), "{bash}");
        let only = dir.path().join("only-zsh");
        let written = write_completions(&parse_shells("zsh").unwrap(), &only).unwrap();
        assert_eq!(written, [only.join("_mountkit")]);
        assert!(parse_shells("tcsh").is_err());
        assert!(completions(&["--bogus".into()]).is_err());
    }

    #[test]
    fn man_pages_cover_every_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        man(&["-o".into(), dir.path().display().to_string()]).unwrap();
        let main = read(dir.path(), "mountkit.1");
        assert!(main.contains(".TH mountkit 1"), "{main}");
        for noun in ["layer", "image", "container", "volume", "run", "ps", "system"] {
            assert!(
                main.contains(&format!("mountkit\\-{noun}(1)")),
                "mountkit.1 lacks {noun}"
            );
            read(dir.path(), &format!("mountkit-{noun}.1"));
        }
        let create = read(dir.path(), "mountkit-container-create.1");
        assert!(create.contains("\\-\\-volumes\\-from"), "{create}");
        let pages = write_man_pages(dir.path()).unwrap();
        assert!(
            pages.contains(&dir.path().join("mountkit-volume-prune.1")),
            "{pages:?}"
        );
    }
}
