//! Every privileged test of the workspace is marked the same way: `#[ignore = "<PRIVILEGED>"]` word for
//! word, and `require_root()` as its first line. Reads the sources as text (no root needed).

use std::path::{Path, PathBuf};

use mountkit_testutil::PRIVILEGED;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The attributes and doc comments right above line `i` (a `fn` line), nearest first.
fn attributes_above(lines: &[&str], i: usize) -> Vec<String> {
    lines[..i]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
        .map(str::to_string)
        .collect()
}

#[test]
fn privileged_tests_are_ignored_with_one_wording_and_require_root() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    let wanted = format!("#[ignore = \"{PRIVILEGED}\"]");
    let mut problems = Vec::new();
    let mut marked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim();
            let at = format!("{}:{}", f.display(), i + 1);
            if t.starts_with("#[ignore") && t.contains("privileged") && t != wanted {
                problems.push(format!("{at}: {t} (want {wanted})"));
            }
            if !(t.starts_with("fn ") || t.starts_with("pub fn ")) {
                continue;
            }
            let attrs = attributes_above(&lines, i);
            let is_test = attrs.iter().any(|a| a == "#[test]");
            let ignored = attrs.contains(&wanted);
            let first = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("//"));
            let requires = first.is_some_and(|l| l.ends_with("require_root();"));
            match (is_test, ignored, requires) {
                (true, true, true) => marked += 1,
                (true, false, true) => problems.push(format!("{at}: requires root but is not {wanted}")),
                (_, true, false) => {
                    problems.push(format!("{at}: {wanted} but its first line is not require_root()"))
                }
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // There are well over a hundred: finding fewer means this test reads the wrong tree.
    assert!(
        marked > 100,
        "only {marked} privileged tests found under {}",
        crates.display()
    );
}
