//! Issue 15, network storage: NFS volumes (`volume create --opt type=nfs ...`) against a real server,
//! the kernel's nfsd on loopback with nfs-kernel-server's user space (rpc.nfsd, rpc.mountd, exportfs;
//! NFSv4 only, so no rpcbind). The vm-test guests have it (vm/modules-*, vm/host-tools); elsewhere (this
//! host's kernel has no NFS) each test prints why it is skipped and passes.
//!
//! Each test starts its own server in its own mount namespace: the test's temp dir `srv/export` and
//! `srv/squashed` are bound at `/export` (no_root_squash) and `/squashed` (root_squash) and exported
//! to 127.0.0.1, so the data a container writes can be read on the server's side directly.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mountkit_testutil::require_root;
use support::{Env, in_store, mounts_under, wait_until};

fn program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn filesystems() -> String {
    std::fs::read_to_string("/proc/filesystems").unwrap_or_default()
}

fn has_fs(name: &str) -> bool {
    filesystems()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(name))
}

fn sh(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The kernel's NFS server on 127.0.0.1, serving `/export` and `/squashed` (binds of the test's dirs).
struct NfsServer {
    mountd: Option<Child>,
    /// `/export`'s content, seen directly (the server's side).
    export: PathBuf,
    /// `/squashed`'s content.
    squashed: PathBuf,
    running: bool,
}

impl NfsServer {
    /// Starts it; `Err(reason)` when this machine cannot (no nfsd in the kernel, a tool missing).
    fn start(env: &Env) -> Result<NfsServer, String> {
        if !has_fs("nfsd") || !has_fs("nfs4") {
            let _ = Command::new("modprobe")
                .args(["-q", "-a", "nfsd", "nfsv4"])
                .status();
        }
        if !has_fs("nfsd") {
            return Err("the kernel has no NFS server (nfsd not in /proc/filesystems)".into());
        }
        if !has_fs("nfs4") {
            return Err("the kernel has no NFSv4 client (nfs4 not in /proc/filesystems)".into());
        }
        for tool in ["rpc.nfsd", "rpc.mountd", "exportfs"] {
            if program(tool).is_none() {
                return Err(format!("{tool} is not installed (package nfs-kernel-server)"));
            }
        }
        // From here on, this machine has what a server needs: a failure is the test's, not a skip.
        std::fs::create_dir_all("/var/lib/nfs/v4recovery").unwrap();
        for f in ["/var/lib/nfs/etab", "/var/lib/nfs/rmtab", "/etc/exports"] {
            if !Path::new(f).exists() {
                std::fs::write(f, "").unwrap();
            }
        }
        if !Path::new("/proc/fs/nfsd/threads").exists() {
            sh(Command::new("mount").args(["-t", "nfsd", "nfsd", "/proc/fs/nfsd"])).unwrap();
        }
        // Owners as numbers both ways (no idmapd in the guest), as the client does by default.
        let _ = std::fs::write("/sys/module/nfsd/parameters/nfs4_disable_idmapping", "Y");
        let srv = env.path("srv");
        let export = srv.join("export");
        let squashed = srv.join("squashed");
        for (dir, at) in [(&export, "/export"), (&squashed, "/squashed")] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::create_dir_all(at).unwrap();
            sh(Command::new("mount").arg("--bind").arg(dir).arg(at)).unwrap();
        }
        let exportfs = program("exportfs").unwrap();
        for (at, opts) in [
            (
                "/export",
                "rw,sync,no_subtree_check,insecure,no_root_squash,fsid=101",
            ),
            (
                "/squashed",
                "rw,sync,no_subtree_check,insecure,root_squash,fsid=102",
            ),
        ] {
            sh(Command::new(&exportfs).args(["-o", opts, &format!("127.0.0.1:{at}")])).unwrap();
        }
        let mountd = Command::new(program("rpc.mountd").unwrap())
            .args(["-F", "-N", "2", "-N", "3", "-u"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("rpc.mountd");
        let server = NfsServer {
            mountd: Some(mountd),
            export,
            squashed,
            running: true,
        };
        // NFSv4 only (no rpcbind), on loopback, the shortest lease and grace the kernel takes.
        sh(Command::new(program("rpc.nfsd").unwrap()).args([
            "-N",
            "3",
            "-U",
            "-H",
            "127.0.0.1",
            "-L",
            "10",
            "-G",
            "10",
            "4",
        ]))
        .unwrap();
        // A fresh server has no clients to wait for: end its grace period now (else opens wait 10 s).
        let _ = std::fs::write("/proc/fs/nfsd/v4_end_grace", "Y");
        Ok(server)
    }

    /// Stops the kernel's server (its threads: the port closes); exports and mountd stay.
    fn stop_nfsd(&mut self) {
        if self.running {
            let _ = Command::new(program("rpc.nfsd").unwrap()).arg("0").status();
            self.running = false;
        }
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        self.stop_nfsd();
        if let Some(e) = program("exportfs") {
            let _ = Command::new(e).arg("-ua").status();
        }
        if let Some(mut m) = self.mountd.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

/// Runs `body` with a store, the sample image and a server; prints the reason and returns when there
/// can be no server here.
fn with_server(test: &str, body: impl FnOnce(&Env, &mut NfsServer)) {
    require_root();
    in_store(|env| {
        let mut server = match NfsServer::start(env) {
            Ok(s) => s,
            Err(why) => {
                println!("SKIP {test}: {why}");
                return;
            }
        };
        env.sample("sample");
        body(env, &mut server);
    });
}

fn create_nfs(env: &Env, name: &str, o: &str, device: &str) {
    env.ok(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=nfs",
        "--opt",
        &format!("o={o}"),
        "--opt",
        &format!("device={device}"),
        name,
    ]);
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn nfs_volume_shared_kept_on_the_server_and_rm_keeps_the_data() {
    require_root();
    with_server(
        "nfs_volume_shared_kept_on_the_server_and_rm_keeps_the_data",
        |env, server| {
            std::fs::create_dir(server.export.join("v1")).unwrap();
            create_nfs(env, "nfsv", "addr=127.0.0.1,vers=4.2", ":/export/v1");
            // One container writes and stays; a second one reads and writes through the same mount.
            let script = "echo one > /data/a; exec sleep 600";
            env.ok(&[
                "run",
                "-d",
                "--name",
                "c1",
                "-v",
                "nfsv:/data",
                "sample",
                "sh",
                "-c",
                script,
            ]);
            let on_server = server.export.join("v1/a");
            assert!(wait_until(60, || std::fs::read_to_string(&on_server)
                .is_ok_and(|t| t == "one\n")));
            // While in use, inspect shows the NFS mount under the volume.
            let inspect = env.json(&["volume", "inspect", "nfsv"]);
            println!("volume inspect nfsv (in use): {inspect}");
            let fs = &inspect[0]["filesystem"];
            assert!(
                fs["type"].as_str().is_some_and(|t| t.starts_with("nfs")),
                "{inspect}"
            );
            assert!(
                fs["source"].as_str().is_some_and(|s| s.contains("/export/v1")),
                "{inspect}"
            );
            let script = "cat /data/a; echo two >> /data/a";
            let out = env.ok(&["run", "--rm", "-v", "nfsv:/data", "sample", "sh", "-c", script]);
            assert_eq!(out, "one");
            // The first container is replaced by a new one: the data is on the server's side.
            env.ok(&["container", "rm", "-f", "c1"]);
            assert_eq!(std::fs::read_to_string(&on_server).unwrap(), "one\ntwo\n");
            let out = env.ok(&[
                "run",
                "--rm",
                "--name",
                "c1",
                "-v",
                "nfsv:/data",
                "sample",
                "cat",
                "/data/a",
            ]);
            assert_eq!(out, "one\ntwo");
            // No container uses it: `volume export` and `clone` mount it for their own time.
            let tar = env.path("nfsv.tar");
            env.ok(&["volume", "export", "nfsv", "-o", tar.to_str().unwrap()]);
            let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
            assert!(String::from_utf8_lossy(&listing.stdout).lines().any(|l| l == "a"));
            env.ok(&["volume", "clone", "nfsv", "local-copy"]);
            let copy = env.ok(&["run", "--rm", "-v", "local-copy:/c", "sample", "cat", "/c/a"]);
            assert_eq!(copy, "one\ntwo");
            assert_eq!(mounts_under(&env.root), Vec::<String>::new());
            env.ok(&["volume", "rm", "local-copy"]);
            // rm: nothing mounted is left in the store, and the server keeps the data (Docker's semantics).
            env.ok(&["volume", "rm", "nfsv"]);
            assert_eq!(mounts_under(&env.root), Vec::<String>::new());
            assert_eq!(std::fs::read_to_string(&on_server).unwrap(), "one\ntwo\n");
            // A host name in addr= is resolved (the kernel wants an address): moby#26639.
            assert!(
                Path::new("/etc/hosts").is_file(),
                "/etc/hosts is needed to resolve localhost"
            );
            create_nfs(env, "nfsh", "addr=localhost,vers=4.2", ":/export/v1");
            let out = env.ok(&["run", "--rm", "-v", "nfsh:/data", "sample", "cat", "/data/a"]);
            assert_eq!(out, "one\ntwo");
            env.ok(&["volume", "rm", "nfsh"]);
            assert!(on_server.is_file());
        },
    );
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn nfs_root_squash_fails_populate_clearly_and_nocopy_works() {
    require_root();
    with_server(
        "nfs_root_squash_fails_populate_clearly_and_nocopy_works",
        |env, server| {
            let v = server.squashed.join("v");
            std::fs::create_dir(&v).unwrap();
            std::fs::write(v.join("hello"), "from the server\n").unwrap();
            let empty = server.squashed.join("empty");
            std::fs::create_dir(&empty).unwrap();
            create_nfs(env, "sq", "addr=127.0.0.1,vers=4.2", ":/squashed/empty");
            // /app has content in the image: filling the empty volume needs root on the server.
            let err = env.fails(&["run", "--rm", "-v", "sq:/app", "sample", "true"], 125, "sq");
            println!("populate onto root_squash: {err}");
            for needle in ["volume sq", "addr=127.0.0.1", ":/squashed/empty", "root_squash"] {
                assert!(err.contains(needle), "{needle:?} missing from: {err}");
            }
            assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "nothing copied");
            // nocopy: no filling, the server's content as it is.
            create_nfs(env, "sq2", "addr=127.0.0.1,vers=4.2", ":/squashed/v");
            let out = env.ok(&[
                "run",
                "--rm",
                "-v",
                "sq2:/app:nocopy",
                "sample",
                "cat",
                "/app/hello",
            ]);
            assert_eq!(out, "from the server");
            assert_eq!(mounts_under(&env.root), Vec::<String>::new());
        },
    );
}

/// What `run --rm -v VOLUME:/data sample true` did against a server that is away: its exit status,
/// stderr, how long it took, and how long the other commands took while it was still waiting.
///
/// With `in_mount` (a listener that stands for a server that never answers), the other commands start
/// once the kernel's NFS client has connected to it, i.e. once `run` is inside mount(2): `ps -a` and
/// `volume ls` (which only look), then `create` and `rm` of another container, which take the store lock.
fn run_while_away(
    env: &Env,
    volume: &str,
    in_mount: Option<&std::net::TcpListener>,
) -> (Option<i32>, String, Duration, Option<Duration>) {
    let start = Instant::now();
    let mut run = env
        .cmd()
        .args(["run", "--rm", "-v", &format!("{volume}:/data"), "sample", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held until `run` has returned: the connection stays open and unanswered.
    let mut _connection = None;
    if let Some(listener) = in_mount {
        listener.set_nonblocking(true).unwrap();
        let connected = wait_until(60, || match listener.accept() {
            Ok((c, _)) => {
                _connection = Some(c);
                true
            }
            Err(_) => run.try_wait().unwrap().is_some(),
        });
        assert!(
            connected && _connection.is_some(),
            "run never connected to the server"
        );
    }
    // While `run` waits in mount(2), other commands go on: `reconcile`, which each runs first, never
    // waits for the registry lock that `run` holds across the mount, and `run` lets the store lock go.
    let mut others_while_blocked = None;
    while run.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        let t = Instant::now();
        env.ok(&["ps", "-a"]);
        env.ok(&["volume", "ls"]);
        if in_mount.is_some() {
            env.ok(&["container", "create", "--name", "meanwhile", "sample", "true"]);
            env.ok(&["container", "rm", "meanwhile"]);
        }
        if run.try_wait().unwrap().is_none() {
            others_while_blocked.get_or_insert(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if !wait_until(5, || run.try_wait().unwrap().is_some()) {
        let _ = run.kill();
        panic!("run still blocked after 120 s");
    }
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!(
        "run with {volume}: {:?} after {:.1} s; the other commands while it waited: {others_while_blocked:?}; stderr: {stderr}",
        out.status.code(),
        start.elapsed().as_secs_f64()
    );
    (out.status.code(), stderr, start.elapsed(), others_while_blocked)
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn nfs_server_away_run_fails_in_time_and_others_go_on() {
    require_root();
    with_server(
        "nfs_server_away_run_fails_in_time_and_others_go_on",
        |env, server| {
            std::fs::create_dir(server.export.join("v1")).unwrap();
            let o = "addr=127.0.0.1,vers=4.2,soft,timeo=10,retrans=1";
            create_nfs(env, "gone", o, ":/export/v1");
            create_nfs(env, "hole", o, ":/export/v1");
            // Stopped: the port is closed, the kernel says so at once.
            server.stop_nfsd();
            let (code, stderr, _, _) = run_while_away(env, "gone", None);
            assert_eq!(code, Some(125), "{stderr}");
            for needle in [
                "volume gone",
                "addr=127.0.0.1",
                ":/export/v1",
                "Connection refused",
            ] {
                assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
            }
            // Not answering: a listener that accepts and never replies. mount(2) blocks until the mount's
            // own timeout (soft, timeo=10 deciseconds, retrans=1), and meanwhile other commands go on,
            // those that take the store lock included.
            let hole = std::net::TcpListener::bind(("127.0.0.1", 2049)).unwrap();
            let (code, stderr, took, others) = run_while_away(env, "hole", Some(&hole));
            assert_eq!(code, Some(125), "{stderr}");
            for needle in ["volume hole", "addr=127.0.0.1", ":/export/v1"] {
                assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
            }
            assert!(took < Duration::from_secs(60), "{took:?}");
            let others = others.expect("run returned before any other command ran: mount(2) did not block");
            assert!(
                others < Duration::from_secs(10),
                "ps -a, volume ls, create and rm took {others:?} while run waited"
            );
            assert_eq!(mounts_under(&env.root), Vec::<String>::new());
            assert!(env.lines(&["ps", "-a", "-q"]).is_empty());
        },
    );
}

/// A relay on a port of its own to the NFS server (127.0.0.1:2049) that holds every connection it
/// accepts until [`Gate::open`]: a server slow to answer, under the test's control. A mount with
/// `port=` this relay's port blocks in mount(2) until then, and succeeds after.
struct Gate {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connected: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    fn start() -> Gate {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(false));
        let connected = Arc::new(AtomicUsize::new(0));
        let (o, n) = (open.clone(), connected.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                n.fetch_add(1, Ordering::SeqCst);
                let o = o.clone();
                std::thread::spawn(move || {
                    while !o.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", 2049)) else {
                        return;
                    };
                    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || std::io::copy(&mut c_in, &mut s_out));
                    let (mut s_in, mut c_out) = (server, client);
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                });
            }
        });
        Gate {
            port,
            open,
            connected,
        }
    }

    /// Waits (up to 60 s) until the kernel's NFS client has connected: the mount is under way.
    fn wait_connected(&self) -> bool {
        wait_until(60, || {
            self.connected.load(std::sync::atomic::Ordering::SeqCst) > 0
        })
    }

    fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn a_start_blocked_in_a_mount_lets_the_store_go_and_checks_again_after() {
    require_root();
    with_server(
        "a_start_blocked_in_a_mount_lets_the_store_go_and_checks_again_after",
        |env, server| {
            let v1 = server.export.join("v1");
            std::fs::create_dir(&v1).unwrap();
            std::fs::write(v1.join("hello"), "on the server\n").unwrap();
            // Another port, another connection: each part's mount blocks on its own gate.
            let (first, second) = (Gate::start(), Gate::start());
            for (name, gate) in [("slow1", &first), ("slow2", &second)] {
                let o = format!("addr=127.0.0.1,vers=4.2,port={}", gate.port);
                create_nfs(env, name, &o, ":/export/v1");
            }
            // 1. `rm -f` of a container whose start waits in mount(2): the start gives up once the
            //    mount returns, `rm -f` then removes it. Meanwhile commands that take the store lock
            //    go on.
            env.ok(&[
                "container",
                "create",
                "--name",
                "c1",
                "-v",
                "slow1:/data",
                "sample",
                "cat",
                "/data/hello",
            ]);
            let start = spawn_piped(env, &["start", "-a", "c1"]);
            assert!(first.wait_connected(), "the start never reached the server");
            env.ok(&["container", "create", "--name", "meanwhile", "sample", "true"]);
            assert!(env.ok(&["ps", "-a"]).contains("meanwhile"));
            env.ok(&["container", "rm", "meanwhile"]);
            let rm = spawn_piped(env, &["container", "rm", "-f", "c1"]);
            // `rm -f` has asked for the stop (it leaves `stop-requested`), then waits for the start.
            let dir = env.root.join("containers");
            assert!(wait_until(60, || std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .any(|e| e.path().join("stop-requested").exists())));
            first.open();
            let out = start.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{stderr}");
            assert!(
                stderr.contains("container c1 did not start") && stderr.contains("removed"),
                "{stderr}"
            );
            let rm = rm.wait_with_output().unwrap();
            assert!(
                rm.status.success(),
                "rm -f: {}",
                String::from_utf8_lossy(&rm.stderr)
            );
            assert!(env.lines(&["ps", "-a", "-q"]).is_empty());
            assert_eq!(mounts_under(&env.root), Vec::<String>::new());
            // 2. `run --rm` (pending: no record) whose image is removed while its volume mounts: the
            //    start checks the image again and gives up; nothing of it is left.
            let run = spawn_piped(
                env,
                &["run", "--rm", "-v", "slow2:/data", "sample", "cat", "/data/hello"],
            );
            assert!(second.wait_connected(), "the run never reached the server");
            env.ok(&["image", "rm", "sample"]);
            second.open();
            let out = run.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{stderr}");
            assert!(
                stderr.contains("did not start") && stderr.contains("image"),
                "{stderr}"
            );
            assert!(env.lines(&["ps", "-a", "-q"]).is_empty());
            assert_eq!(mounts_under(&env.root), Vec::<String>::new());
            // 3. A pending `run --rm` whose mount is made but which then waits for the store lock
            //    (held here): the other commands' reconcile leaves its mount alone (its user is a
            //    pending container whose runner holds its lock), and the run goes on with the
            //    server's content once the lock is free.
            env.sample("sample");
            let third = Gate::start();
            let o = format!("addr=127.0.0.1,vers=4.2,port={}", third.port);
            create_nfs(env, "slow3", &o, ":/export/v1");
            let run = spawn_piped(
                env,
                &["run", "--rm", "-v", "slow3:/data", "sample", "cat", "/data/hello"],
            );
            assert!(third.wait_connected(), "the run never reached the server");
            let store_lock = std::fs::File::open(env.root.join("lock")).unwrap();
            rustix::fs::flock(&store_lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
            third.open();
            let data = env.root.join("volumes/slow3/_data");
            let mounted = || mounts_under(&env.root).iter().any(|m| Path::new(m) == data);
            assert!(wait_until(60, mounted), "the mount was never made");
            env.ok(&["volume", "ls"]);
            env.ok(&["ps", "-a"]);
            assert!(
                mounted(),
                "another command's reconcile unmounted a pending run's volume"
            );
            drop(store_lock);
            let out = run.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "on the server\n");
            assert_eq!(mounts_under(&env.root), Vec::<String>::new());
            // The volumes are free again and the server's data is untouched.
            env.ok(&["volume", "rm", "slow1", "slow2", "slow3"]);
            assert_eq!(
                std::fs::read_to_string(v1.join("hello")).unwrap(),
                "on the server\n"
            );
        },
    );
}

/// Starts mountkit with `args`, its stdout and stderr piped (for `wait_with_output`).
fn spawn_piped(env: &Env, args: &[&str]) -> Child {
    env.cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}
