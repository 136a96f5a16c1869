//! Starting a container and living through its run, read top-down:
//!
//! 1. [`Mountkit::run`] creates the container (pending, for `--rm`: see [`Pending`]) under the store
//!    lock and hands it to [`Mountkit::start_locked`]; [`Mountkit::start`] loads an existing one.
//! 2. `start_locked`: [`Mountkit::prepare_start`] takes the container's `running.lock`, acquires its
//!    volumes ([`VolumesInUse`]: driver mounts happen here, with the store lock let go around them)
//!    and plans its mounts; the process is spawned
//!    by `mountkit-ns-runner`, whose child runs [`prepare_root`] in the new mount namespace (overlay on
//!    `merged/`, empty volumes filled from the image, volumes, binds and tmpfs by depth) before the
//!    runner adds /proc, /dev, /sys, pivots, drops to the user and execs.
//! 3. Once the process runs, its record says so (a pending container is committed now), the store lock
//!    is let go, and the runner waits, forwarding signals.
//! 4. [`Mountkit::record_exit`], under the store lock again: volumes released, the exit recorded, or
//!    with `--rm` the container and its anonymous volumes removed.
//!
//! Every path out of a failed start goes through [`Mountkit::abandon_start`].

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use mountkit_binds::{MountSpec, Planned};
use mountkit_layer_store::ImageInfo;
use mountkit_ns_runner::seccomp::{Filter, Policy};
use mountkit_ns_runner::{Exit, Prepare, Spec};
use mountkit_safefs::{Lock, inroot};
use mountkit_volumes::{Acquired, Registry};

use crate::container::{Container, ContainerConfig, CreateOptions, Seccomp};
use crate::create::Pending;
use crate::{Error, Mountkit, Result};

/// The volumes a starting or running container has acquired. Dropping it releases them (the last user
/// of a driver volume unmounts it), on every path out of a start and after the container's exit.
struct VolumesInUse<'a> {
    registry: &'a Registry,
    acquired: Vec<Acquired>,
}

/// A `volume-subpath` mount of the plan: the plan's entry at `index` binds `sub` of the volume
/// `volume`, whose data is `dir`. Checked before the spawn (a clear error, nothing started), resolved
/// again in the container's mount namespace, where the bind is made: a descriptor opened in another
/// namespace cannot be bound.
#[derive(Debug, Clone)]
struct Subpath {
    index: usize,
    volume: String,
    dir: PathBuf,
    sub: PathBuf,
}

/// The plan's mounts, the volumes to populate, and the subpath mounts among them.
type Plan = (Vec<Planned>, Populate, Vec<Subpath>);

impl Drop for VolumesInUse<'_> {
    fn drop(&mut self) {
        if self.acquired.is_empty() {
            return;
        }
        if let Err(e) = self.registry.release_all(&self.acquired) {
            tracing::warn!(error = %e, "release of the container's volumes");
        }
    }
}

/// A container whose process runs: the record as it was saved, the process, and what its exit releases.
pub(crate) struct Launched<'a> {
    /// The record, `running`.
    pub(crate) c: Container,
    /// The process (this process's child).
    pub(crate) process: mountkit_ns_runner::Running,
    /// What its exit lets go.
    pub(crate) held: Held<'a>,
}

/// What a running container holds until its exit is recorded: its volumes and its `running.lock`.
pub(crate) struct Held<'a> {
    volumes: VolumesInUse<'a>,
    run_lock: Lock,
}

/// A volume to fill from the image's content at its mount path: its name and that path.
type Populate = Vec<(String, PathBuf)>;

impl VolumesInUse<'_> {
    /// The mounts to make inside the rootfs, in the container's mount order (volumes as binds of their
    /// host directories, by `mountkit_binds`' own planning), and the volumes to fill from the image:
    /// those without content yet and not mounted `nocopy`.
    ///
    /// A `volume-subpath` is checked inside its volume now (see [`resolve_subpath`]); such a volume
    /// is never filled from the image (the image's content at the target is for the volume's root).
    fn plan(&self, c: &Container) -> Result<Plan> {
        let mut acquired = self.acquired.iter();
        let mut plan = Vec::with_capacity(c.mounts.len());
        let mut populate = Vec::new();
        let mut subpaths = Vec::new();
        for m in &c.mounts {
            let volume_dir = match &m.spec {
                MountSpec::Volume {
                    name: Some(name),
                    target,
                    nocopy,
                    subpath,
                    ..
                } => {
                    let a = acquired
                        .next()
                        .filter(|a| &a.name == name)
                        .expect("acquire_all returns one entry per volume, in mount order");
                    match subpath {
                        None => {
                            if a.needs_populate() && !nocopy {
                                populate.push((name.clone(), target.clone()));
                            }
                            Some(a.path.clone())
                        }
                        Some(sub) => {
                            resolve_subpath(name, &a.path, sub)?;
                            subpaths.push(Subpath {
                                index: plan.len(),
                                volume: name.clone(),
                                dir: a.path.clone(),
                                sub: sub.clone(),
                            });
                            Some(a.path.join(sub))
                        }
                    }
                }
                _ => None,
            };
            plan.push(m.spec.to_planned(volume_dir.as_deref())?);
        }
        Ok((plan, populate, subpaths))
    }
}

/// Resolves a `volume-subpath` inside the volume's data `dir` (`openat2` with `RESOLVE_BENEATH`):
/// symlinks are followed while they stay inside the volume; one to an absolute path or with `..` above
/// the volume's root is refused (as Docker's `safepath` does), and so is a missing path. Returns an
/// `O_PATH` descriptor of the directory or file.
fn resolve_subpath(volume: &str, dir: &Path, sub: &Path) -> Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let err = |reason: String| Error::VolumeSubpath {
        volume: volume.to_string(),
        subpath: sub.to_path_buf(),
        reason,
    };
    let root = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open volume directory", dir, std::io::Error::from(e)))?;
    rustix::fs::openat2(
        &root,
        sub,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        Errno::NOENT => err("no such file or directory in the volume".into()),
        Errno::XDEV => err(
            "it leaves the volume (a symlink on the way points to an absolute path or above the volume's root)"
                .into(),
        ),
        Errno::NOTDIR => err("a component on the way is not a directory".into()),
        Errno::LOOP => err("too many levels of symlinks".into()),
        Errno::NOSYS => err("this kernel has no openat2(2) (Linux 5.6), which resolves it safely".into()),
        e => err(std::io::Error::from(e).to_string()),
    })
}

/// What a container needs before its process can be spawned.
struct Prepared<'a> {
    run_lock: Lock,
    volumes: VolumesInUse<'a>,
    prepare: Prepare,
}

impl Mountkit {
    /// Starts a created (or exited) container attached and waits for its process; returns its exit.
    pub fn start(&self, reference: &str) -> Result<Exit> {
        let lock = self.lock()?;
        let c = self.container(reference)?;
        let image = self.layers().image(&c.image)?;
        self.start_locked(c, &image, lock, None)
    }

    /// `run`: create, start and wait; with `auto_remove` (`--rm`) the container and its anonymous volumes
    /// are removed when it ends. Created and started under one hold of the store lock (let go only
    /// around a driver mount: see [`Mountkit::prepare_start`]), so nothing is read twice. An `auto_remove` container is created *pending*: it becomes visible when its
    /// process runs (as `docker ps` shows it), and is never visible if it does not start.
    pub fn run(&self, opts: &CreateOptions) -> Result<(Container, Exit)> {
        let lock = self.lock()?;
        let (c, image, pending) = if opts.auto_remove {
            let (c, image, pending) = self.create_pending(opts)?;
            (c, image, Some(pending))
        } else {
            let (c, image) = self.create_locked(opts)?;
            (c, image, None)
        };
        let exit = self.start_locked(c.clone(), &image, lock, pending)?;
        Ok((c, exit))
    }

    /// Runs container `c` to its end. `lock` is the store lock, let go while the process runs and taken
    /// again to record its end; `pending` is set when `c` is a [`Pending`] container.
    fn start_locked(
        &self,
        c: Container,
        image: &ImageInfo,
        mut lock: Lock,
        pending: Option<Pending>,
    ) -> Result<Exit> {
        let Launched { c, process, held } = self.launch(c, image, pending, &mut lock)?;
        drop(lock); // others may use the store while the container runs
        // With `-t`, the container's terminal is relayed while this thread waits and forwards signals.
        let exit = crate::tty::wait_attached(process, &c.config);
        self.finish(c, held, exit)
    }

    /// Starts container `c`'s process, under the store lock the caller holds (`store`, let go while a
    /// volume's driver mount may block: see [`Mountkit::prepare_start`]), and records it running (a
    /// [`Pending`] one is committed now). Every failure goes through [`Mountkit::abandon_start`].
    pub(crate) fn launch(
        &self,
        mut c: Container,
        image: &ImageInfo,
        pending: Option<Pending>,
        store: &mut Lock,
    ) -> Result<Launched<'_>> {
        let dir = pending
            .as_ref()
            .map_or_else(|| self.container_dir(&c.id), |p| p.dir().to_path_buf());
        let spec = match process_spec(&c.config, &dir) {
            Ok(s) => s,
            Err(e) => {
                self.abandon_start(&c, pending, false);
                return Err(e);
            }
        };
        let prepared = match self.prepare_start(&c, image, &dir, store) {
            Ok(p) => p,
            Err(e) => {
                self.abandon_start(&c, pending, false);
                return Err(e);
            }
        };
        let Prepared {
            run_lock,
            volumes,
            prepare,
        } = prepared;
        // An earlier run's exit code (left for `wait`) does not speak for this one.
        let _ = std::fs::write(dir.join("running.lock"), b"");
        c.state.starting();
        let process = match mountkit_ns_runner::spawn(&spec, prepare) {
            Ok(p) => p,
            Err(e) => {
                c.state.failed_to_start(&e);
                drop(volumes);
                drop(run_lock); // so that an `auto_remove` container is seen stopped, and removed
                self.abandon_start(&c, pending, true);
                return Err(e.into());
            }
        };
        c.state.running(process.pid());
        let recorded = match &pending {
            Some(p) => p.commit(self, &c),
            None => self.save(&c),
        };
        if let Err(e) = recorded {
            // Not visible as running: stop it rather than leave it unaccounted for.
            let _ = process.signal(rustix::process::Signal::KILL.as_raw());
            let _ = process.wait();
            drop(volumes);
            drop(run_lock);
            if let Some(p) = pending {
                self.abandon_start(&c, Some(p), false);
            }
            return Err(e);
        }
        tracing::info!(id = %c.id, pid = process.pid(), "container running");
        Ok(Launched {
            c,
            process,
            held: Held { volumes, run_lock },
        })
    }

    /// After a launched container's process ended with `exit`: takes the store lock and records the
    /// exit (or removes an `auto_remove` container).
    pub(crate) fn finish(
        &self,
        c: Container,
        held: Held<'_>,
        exit: mountkit_ns_runner::Result<Exit>,
    ) -> Result<Exit> {
        let _lock = self.lock()?;
        self.record_exit(c, exit, held.volumes, held.run_lock)
    }

    /// Takes the container's `running.lock`, acquires its volumes and plans its mounts: everything a
    /// spawn needs. Errors leave nothing acquired.
    ///
    /// A volume whose acquisition may mount (a driver volume: NFS, a loop-backed size limit) is
    /// acquired with the store lock (`store`) let go: mount(2) of an NFS export whose server does not
    /// answer blocks until the mount's own timeouts, and other commands must not wait for that. The
    /// container's `running.lock`, held throughout, keeps a second start and a removal away (`rm -f`
    /// asks for a stop, seen here); its volumes are referenced, so no `volume rm` takes them. What the
    /// store lock no longer guarded is checked again once it is taken back: the image (a pending
    /// `--rm` container has no record, so nothing else kept `image rm` from it).
    fn prepare_start<'a>(
        &'a self,
        c: &Container,
        image: &ImageInfo,
        dir: &Path,
        store: &mut Lock,
    ) -> Result<Prepared<'a>> {
        let run_lock = take_run_lock(&dir.join("running.lock"), &c.name)?;
        let names = Self::volume_names(c);
        let in_use = |acquired| VolumesInUse {
            registry: self.volumes(),
            acquired,
        };
        let volumes = if names.is_empty() {
            in_use(Vec::new())
        } else {
            let plan = self.volumes().plan_acquire(&names)?;
            if plan.may_mount() {
                let stop_file = dir.join(crate::detach::STOP_REQUESTED);
                let stop_before = stop_file.exists();
                let volumes = store.while_released("store lock", || {
                    self.volumes().acquire_planned(&plan, &c.id).map(in_use)
                })??;
                if !stop_before && stop_file.exists() {
                    return Err(Error::StartAbandoned {
                        container: c.name.clone(),
                        reason: "it was stopped or removed (rm -f) while its volumes were being mounted"
                            .into(),
                    });
                }
                if let Err(e) = self.layers().image(&image.id) {
                    return Err(Error::StartAbandoned {
                        container: c.name.clone(),
                        reason: format!(
                            "its image {} went away while its volumes were being mounted: {e}",
                            image.display_name()
                        ),
                    });
                }
                volumes
            } else {
                in_use(self.volumes().acquire_planned(&plan, &c.id)?)
            }
        };
        let (plan, populate, subpaths) = volumes.plan(c)?;
        // Only volumes without content yet need the registry inside the container's namespace.
        let registry = (!populate.is_empty()).then(|| self.volumes().clone());
        let prepare = prepare_root(
            self.stack_at(dir, image),
            dir.join("merged"),
            plan,
            populate,
            registry,
            subpaths,
        );
        Ok(Prepared {
            run_lock,
            volumes,
            prepare,
        })
    }

    /// After a start that failed before the process ran: a pending container is discarded (it was never
    /// visible); an `auto_remove` one is removed; otherwise, when the spawn itself failed (`spawned`),
    /// the failure is recorded in the container's state. Errors are logged: the start's error is the
    /// one the caller reports.
    fn abandon_start(&self, c: &Container, pending: Option<Pending>, spawned: bool) {
        let cleanup = match pending {
            Some(p) => p.discard(self, c),
            // Not when another runner has it (a start of a running container is refused, not undone).
            None if c.auto_remove && !self.is_running(&c.id) => self.remove_locked(c, true, true),
            None if spawned => self.save(c),
            None => Ok(()),
        };
        if let Err(e) = cleanup {
            tracing::warn!(container = %c.name, error = %e, "after a failed start");
        }
    }

    /// After the process ended, under the store lock: releases the volumes, records the exit (or with
    /// `auto_remove` removes the container and its anonymous volumes), then lets the running lock go.
    fn record_exit(
        &self,
        mut c: Container,
        exit: mountkit_ns_runner::Result<Exit>,
        volumes: VolumesInUse<'_>,
        run_lock: Lock,
    ) -> Result<Exit> {
        drop(volumes);
        c.state.exited(&exit);
        // For `container wait`, which holds the lock file open: the code survives an `--rm` removal.
        let code = c
            .state
            .exit_code
            .map_or_else(|| "unknown".to_string(), |n| n.to_string());
        let _ = std::fs::write(self.container_dir(&c.id).join("running.lock"), code);
        if c.auto_remove {
            drop(run_lock);
            if let Err(e) = self.remove_locked(&c, true, true) {
                tracing::warn!(container = %c.name, error = %e, "--rm: could not remove the container");
            }
        } else {
            self.save(&c)?;
            drop(run_lock);
        }
        Ok(exit?)
    }
}

/// Takes a container's `running.lock` (at `path`) for its runner, exclusive. Held exclusive by another
/// runner: [`Error::AlreadyRunning`]. Held shared only, by those who waited for the last run's end
/// (`wait`, `stop`, `rm -f` hold it a moment after the runner let go; see `Mountkit::is_running`):
/// tried again until they let go (up to 2 s, as they only read a note).
fn take_run_lock(path: &Path, name: &str) -> Result<Lock> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        if let Some(lock) = Lock::try_exclusive(path)? {
            return Ok(lock);
        }
        if Lock::try_shared(path)?.is_none() || std::time::Instant::now() >= deadline {
            return Err(Error::AlreadyRunning(name.to_string()));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The process the runner starts, from the container's configuration (`dir` holds its profile copy).
/// The seccomp policy is compiled here, once, in the caller; the container process only loads it.
pub(crate) fn process_spec(config: &ContainerConfig, dir: &Path) -> Result<Spec> {
    let seccomp = match &config.seccomp {
        Seccomp::Unconfined => None,
        Seccomp::Default => {
            let caps = capability_set(&config.capabilities);
            let filter = Policy::docker_default(&caps).compile()?;
            Some(std::sync::Arc::new(filter))
        }
        Seccomp::Profile { path, .. } => {
            let copy = dir.join(crate::create::SECCOMP_PROFILE_FILE);
            let text =
                std::fs::read(&copy).map_err(|e| Error::io("read the seccomp profile copy", &copy, e))?;
            let filter = compile_seccomp(&text, &config.capabilities).map_err(|e| Error::SeccompProfile {
                path: path.into(),
                reason: e.to_string(),
            })?;
            Some(std::sync::Arc::new(filter))
        }
    };
    // `--init`: this very (static) binary, bound at /dev/init by the runner, is PID 1 (see init.rs).
    // Its path, not /proc/self/exe: that magic link leads into this namespace's mounts, which a bind in
    // the container's new mount namespace refuses (EINVAL).
    let (args, init) = if config.init {
        let exe = std::env::current_exe()
            .map_err(|e| Error::io("find mountkit's own binary for --init", "/proc/self/exe", e))?;
        (crate::init::with_init(&config.args), Some(exe))
    } else {
        (config.args.clone(), None)
    };
    Ok(Spec {
        args,
        init,
        env: config.env.clone(),
        workdir: Some(config.workdir.clone()),
        user: config.user.clone(),
        groups: Vec::new(),
        hostname: Some(config.hostname.clone()),
        readonly_root: config.readonly_root,
        // The record holds names this build wrote (or Docker's default, for older records); a name
        // this build does not know cannot be in it, and is skipped if it were.
        capabilities: Some(capability_set(&config.capabilities)),
        no_new_privs: config.no_new_privileges,
        network: match config.network {
            crate::NetworkMode::Host => mountkit_ns_runner::Network::Host,
            crate::NetworkMode::None => mountkit_ns_runner::Network::None,
        },
        seccomp,
        privileged: config.privileged,
        tty: config.tty,
        // The caller's terminal size, set before the command runs; the relay follows it afterwards.
        tty_size: config.tty.then(crate::tty::caller_size).flatten(),
        stdin: match config.open_stdin {
            true => mountkit_ns_runner::Stdin::Inherit,
            false => mountkit_ns_runner::Stdin::Null,
        },
    })
}

/// The record's capability names as a set. The record holds names this build wrote (or Docker's
/// default, for older records); a name this build does not know cannot be in it, and is skipped if it were.
fn capability_set(names: &[String]) -> mountkit_ns_runner::CapsHashSet {
    names
        .iter()
        .filter_map(|n| mountkit_ns_runner::parse_capability(n))
        .collect()
}

/// A profile's text compiled for a container with these capabilities.
pub(crate) fn compile_seccomp(text: &[u8], capabilities: &[String]) -> mountkit_ns_runner::Result<Filter> {
    Policy::from_profile_json(text, &capability_set(capabilities))?.compile()
}

/// The root preparation that runs in the container's new mount namespace: the overlay on `merged`,
/// then the volumes that have no content yet filled from the image's content at their paths (resolved
/// inside the rootfs), then the plan (parents first; tmpfs after what it sits on).
fn prepare_root(
    stack: mountkit_overlay::Stack,
    merged: PathBuf,
    plan: Vec<Planned>,
    populate: Populate,
    registry: Option<Registry>,
    subpaths: Vec<Subpath>,
) -> Prepare {
    let method = Mountkit::overlay_method();
    Box::new(move || {
        mountkit_overlay::mount(&stack, &merged, method)?;
        if let Some(registry) = registry {
            let root = inroot::open_root(&merged)?;
            for (name, target) in populate {
                if let Ok(src) = inroot::resolve(root.as_fd(), &target) {
                    registry.populate(&name, &inroot::fd_path(src.as_fd()))?;
                }
            }
        }
        // Subpaths resolved again here, in the namespace the binds are made in: each is bound from its
        // descriptor (`/proc/self/fd/N`), never by a host path that could be swapped meanwhile.
        let mut plan = plan;
        let mut held = Vec::with_capacity(subpaths.len());
        for s in subpaths {
            let fd = resolve_subpath(&s.volume, &s.dir, &s.sub)?;
            if let Some(Planned::Bind { source, .. }) = plan.get_mut(s.index) {
                *source = inroot::fd_path(fd.as_fd());
            }
            held.push(fd);
        }
        mountkit_binds::mount_all(&merged, &plan)?;
        drop(held);
        Ok(merged)
    })
}
