//! The CLI's usage contract, without privileges.

mod support;

use std::process::Command;

fn mountkit(args: &[&str]) -> std::process::Output {
    Command::new(support::bin())
        .args(args)
        .output()
        .expect("spawn mountkit")
}

#[test]
fn help_and_version_succeed() {
    let help = mountkit(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for noun in ["layer", "image", "container", "volume", "run", "system"] {
        assert!(text.contains(noun), "--help lists {noun}: {text}");
    }
    assert_eq!(mountkit(&["--version"]).status.code(), Some(0));
}

#[test]
fn usage_errors_exit_125_and_name_the_bad_part() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let out = mountkit(&["--root", root.to_str().unwrap(), "run", "--no-such-flag", "img"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = mountkit(&["container", "frobnicate"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}
