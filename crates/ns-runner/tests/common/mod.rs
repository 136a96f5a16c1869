//! Helpers shared by the ns-runner test binaries that run busybox in a bare root.

use std::path::PathBuf;

/// A root holding only `/bin/busybox` (static), `/etc` and `/tmp` (mode 1777).
pub fn busybox_root() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in ["bin", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("the host's /bin/busybox");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    (dir, root)
}
