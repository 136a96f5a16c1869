//! Issue 15 / seed S14, a distributed bind mount: an `sshfs` (FUSE) mount of an `sshd` on 127.0.0.1,
//! started by the test on a free port with a throwaway host key and client key in its temp dir (the
//! host's ssh configuration is not read or changed), bound into containers with `-v`.
//!
//! What sshfs 3.7 lacks, measured on the mount (as root, to an sshd logged in as root): xattrs
//! (EOPNOTSUPP), special files (mkfifo/mknod: EPERM, SFTP cannot make them), hard-link identity (a
//! link is made on the server, but the mount shows every name with its own inode and a link count
//! of 1); chown, chmod, symlinks, timestamps work. mountkit surfaces what it needs of these: filling a
//! volume from an image onto it fails naming the volume, the mount and the cause (a FIFO), xattrs are
//! skipped with a warning, and a FUSE mount without `allow_other` that the container's user cannot
//! enter is explained at create. Skipped, with the reason, without /dev/fuse, sshfs, sshd or ssh-keygen
//! (the vm-test guests have none of them).

mod support;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mountkit_testutil::require_root;
use support::{Env, in_store, wait_until};

fn program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An sshd on 127.0.0.1 and an sshfs mount of its `remote/` at `mnt/`, in the test's temp dir.
struct Sshfs {
    sshd: Child,
    /// The server's side of the files.
    remote: PathBuf,
    /// The FUSE mount.
    mnt: PathBuf,
    made_privsep_dir: bool,
}

impl Sshfs {
    fn start(env: &Env) -> Result<Sshfs, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse".into());
        }
        let sshd = program("sshd").ok_or("sshd is not installed (package openssh-server)")?;
        let sshfs = program("sshfs").ok_or("sshfs is not installed (package sshfs)")?;
        let keygen = program("ssh-keygen").ok_or("ssh-keygen is not installed (package openssh-client)")?;
        let dir = env.path("ssh");
        std::fs::create_dir(&dir).unwrap();
        for key in ["host_key", "client_key"] {
            run_ok(
                Command::new(&keygen)
                    .args(["-q", "-t", "ed25519", "-N", ""])
                    .arg("-f")
                    .arg(dir.join(key)),
            )?;
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd's privilege separation directory (its systemd unit makes it; nothing is in it).
        let made_privsep_dir = !Path::new("/run/sshd").exists() && std::fs::create_dir("/run/sshd").is_ok();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile none\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 Subsystem sftp internal-sftp\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sshd: {e}"))?;
        let me = Sshfs {
            sshd: child,
            remote: env.path("remote"),
            mnt: env.path("mnt"),
            made_privsep_dir,
        };
        std::fs::create_dir(&me.remote).unwrap();
        std::fs::create_dir(&me.mnt).unwrap();
        if !wait_until(20, || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()) {
            return Err(format!("sshd never listened on port {port}"));
        }
        let options = format!(
            "IdentityFile={}/client_key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes",
            dir.display()
        );
        let source = format!("root@127.0.0.1:{}", me.remote.display());
        // From here on this machine has what the test needs: a failure is the test's, not a skip.
        run_ok(
            Command::new(sshfs)
                .args(["-p", &port.to_string(), "-o", &options, &source])
                .arg(&me.mnt),
        )
        .unwrap();
        Ok(me)
    }
}

impl Drop for Sshfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        if self.made_privsep_dir {
            let _ = std::fs::remove_dir("/run/sshd");
        }
    }
}

fn with_sshfs(test: &str, body: impl FnOnce(&Env, &Sshfs)) {
    require_root();
    in_store(|env| {
        let fs = match Sshfs::start(env) {
            Ok(fs) => fs,
            Err(why) => {
                println!("SKIP {test}: {why}");
                return;
            }
        };
        env.sample("sample");
        body(env, &fs);
    });
}

/// The errno of an operation on the mount, or 0.
fn errno(r: std::io::Result<()>) -> i32 {
    r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn sshfs_bind_both_ways_what_it_lacks_and_errors_that_say_so() {
    require_root();
    with_sshfs(
        "sshfs_bind_both_ways_what_it_lacks_and_errors_that_say_so",
        |env, fs| {
            let (remote, mnt) = (&fs.remote, &fs.mnt);
            // Both ways: the server's file is read in the container, the container's write lands on the server.
            std::fs::create_dir(remote.join("dir")).unwrap();
            std::fs::write(remote.join("dir/from-server"), "server\n").unwrap();
            let bind = format!("{}:/data", mnt.join("dir").display());
            let script = "cat /data/from-server; echo container > /data/from-container";
            assert_eq!(
                env.ok(&["run", "--rm", "-v", &bind, "sample", "sh", "-c", script]),
                "server"
            );
            assert_eq!(
                std::fs::read_to_string(remote.join("dir/from-container")).unwrap(),
                "container\n"
            );

            // What it lacks, on the mount itself.
            let f = mnt.join("dir/from-server");
            let xattr = errno(
                rustix::fs::setxattr(&f, "user.k", b"v", rustix::fs::XattrFlags::empty()).map_err(Into::into),
            );
            let fifo = errno(
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    mnt.join("dir/fifo"),
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o644),
                    0,
                )
                .map_err(Into::into),
            );
            std::fs::hard_link(&f, mnt.join("dir/link")).unwrap();
            let (a, b) = (
                std::fs::metadata(&f).unwrap(),
                std::fs::metadata(mnt.join("dir/link")).unwrap(),
            );
            let on_server = std::fs::metadata(remote.join("dir/link")).unwrap().nlink();
            std::os::unix::fs::chown(&f, Some(1000), Some(1000)).unwrap();
            let chown_seen = std::fs::metadata(remote.join("dir/from-server")).unwrap().uid();
            println!(
                "sshfs: setxattr errno {xattr}, mkfifo errno {fifo}, hard link: nlink {} / inodes {} {} on the mount, \
             nlink {on_server} on the server; chown to 1000 seen on the server as {chown_seen}",
                a.nlink(),
                a.ino(),
                b.ino()
            );
            assert_eq!(xattr, libc::EOPNOTSUPP, "xattrs");
            assert_eq!(fifo, libc::EPERM, "special files");
            assert_eq!(on_server, 2, "the link is made on the server");
            assert_eq!(chown_seen, 1000, "chown as root works");

            // Filling a volume whose data is on it: a FIFO in the image cannot be made there.
            let layer_dir = env.path("fifo-layer");
            std::fs::create_dir_all(layer_dir.join("d")).unwrap();
            std::fs::write(layer_dir.join("d/file"), "x\n").unwrap();
            run_ok(Command::new("mkfifo").arg(layer_dir.join("d/pipe"))).unwrap();
            let layer = env.ok(&["layer", "import", layer_dir.to_str().unwrap()]);
            env.ok(&[
                "image", "create", "fifo-img", "--layer", &layer, "--cmd", "/nothing",
            ]);
            std::fs::create_dir(remote.join("vol")).unwrap();
            let device = format!("device={}", mnt.join("vol").display());
            env.ok(&[
                "volume",
                "create",
                "--opt",
                "type=none",
                "--opt",
                "o=bind",
                "--opt",
                &device,
                "sv",
            ]);
            let err = env.fails(
                &["run", "--rm", "-v", "sv:/d", "fifo-img"],
                125,
                "cannot fill volume sv",
            );
            println!("populate onto sshfs: {err}");
            for needle in ["Operation not permitted", "pipe", &device["device=".len()..]] {
                assert!(err.contains(needle), "{needle:?} missing from: {err}");
            }

            // A FUSE type as a volume driver is refused, with the way to do it instead.
            env.fails(
                &[
                    "volume",
                    "create",
                    "--opt",
                    "type=fuse.sshfs",
                    "--opt",
                    "device=root@127.0.0.1:/srv",
                    "fv",
                ],
                1,
                "is a FUSE filesystem",
            );

            // Without allow_other, only the user who mounted it (root) may enter: uid 1000 is told why.
            let out = env.run(&["run", "--rm", "-u", "1000", "-v", &bind, "sample", "ls", "/data"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            println!("uid 1000 on the mount: {:?}: {stderr}", out.status.code());
            assert_ne!(out.status.code(), Some(0), "{stderr}");
            for needle in [
                "FUSE mount (fuse.sshfs",
                "without allow_other",
                "uid 1000",
                "Permission denied",
            ] {
                assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
            }
            // As root (the mount's user), no warning.
            let out = env.run(&["run", "--rm", "-v", &bind, "sample", "true"]);
            assert!(out.status.success());
            assert!(!String::from_utf8_lossy(&out.stderr).contains("allow_other"));
        },
    );
}
