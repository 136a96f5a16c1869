//! Starting a container: mount plan, namespaces, process, exit.
//!
//! The data flow of `run` (also in ARCHITECTURE.md):
//! 1. `create`: resolve image, command, env, mounts; stage `containers/<id>/{upper,work,merged}` and the
//!    record; create the anonymous volumes and take references on every volume. (`run --rm` stages the
//!    container without its record and commits it once its process runs: see [`Mountkit::run`].)
//! 2. `start`: take the container's `running.lock`; acquire its volumes (driver mounts happen here); build
//!    the plan (the overlay stack, then binds and volumes by depth, then tmpfs).
//! 3. `mountkit-ns-runner` forks into new mount/pid/uts/ipc namespaces; inside, the closure below mounts
//!    the overlay on `merged/`, fills empty volumes from the image, mounts the plan; the runner adds /proc,
//!    /dev, /sys, pivots into the root, drops to the user and execs.
//! 4. The parent records the pid (for `--rm`: writes the record and moves the container into
//!    `containers/`), waits (forwarding signals), releases the volumes, records the exit, and with
//!    `--rm` removes the container and its anonymous volumes.

use std::os::fd::AsFd;
use std::path::PathBuf;

use mountkit_binds::{MountSpec, Planned};
use mountkit_layer_store::ImageInfo;
use mountkit_ns_runner::{Exit, Spec};
use mountkit_safefs::{Lock, inroot};

use crate::container::{Container, CreateOptions, Status, now_rfc3339};
use crate::{Error, Mountkit, Result};

impl Mountkit {
    /// Starts a created (or exited) container attached and waits for its process; returns its exit.
    pub fn start(&self, reference: &str) -> Result<Exit> {
        let lock = self.lock()?;
        let c = self.container(reference)?;
        let image = self.layers().image(&c.image)?;
        self.start_locked(c, &image, lock, None).map(|(exit, _lock)| exit)
    }

    /// `run`: create, start, wait, and with `auto_remove` remove the container and its anonymous volumes.
    /// Created and started under one hold of the store lock, so nothing is read twice.
    ///
    /// An `auto_remove` container is created *pending* (in `staging/`, without a record) and committed
    /// into `containers/`, its record written once with the running state, right after its process
    /// started, still under the store lock: it becomes visible when it runs (as `docker ps` shows it),
    /// and its record is written once instead of twice, one file fewer to create and free per run. If
    /// it never starts, it is never visible; a crash in between leaves staging that the next mountkit
    /// command sweeps.
    pub fn run(&self, opts: &CreateOptions) -> Result<(Container, Exit)> {
        let lock = self.lock()?;
        if !opts.auto_remove {
            let (c, image) = self.create_locked(opts)?;
            return self
                .start_locked(c.clone(), &image, lock, None)
                .map(|(exit, _lock)| (c, exit));
        }
        let (c, image, stage) = self.create_staged(opts, false)?;
        let result = self.start_locked(c.clone(), &image, lock, Some(&stage));
        let removed = match &result {
            // After a run, under the store lock `start_locked` took back.
            Ok(_) => self.remove_locked(&c, true, true),
            // After a failed start: still pending, or committed and then failed.
            Err(_) => self.lock().and_then(|_l| {
                if stage.exists() {
                    self.discard_pending(&stage, &c)
                } else {
                    self.remove_locked(&c, true, true)
                }
            }),
        };
        if let Err(e) = removed {
            tracing::warn!(container = %c.name, error = %e, "--rm: could not remove the container");
        }
        result.map(|(exit, _lock)| (c, exit))
    }

    /// Runs the container to its end; returns its exit and the store lock, taken back after the wait.
    /// `pending`: the staging directory of a container that [`Mountkit::run`] commits once it runs.
    fn start_locked(
        &self,
        mut c: Container,
        image: &ImageInfo,
        lock: Lock,
        pending: Option<&std::path::Path>,
    ) -> Result<(Exit, Lock)> {
        let dir = pending.map_or_else(|| self.container_dir(&c.id), std::path::Path::to_path_buf);
        let run_lock = Lock::try_exclusive(&dir.join("running.lock"))?
            .ok_or_else(|| Error::AlreadyRunning(c.name.clone()))?;
        let stack = self.stack_at(&dir, image);

        let acquired = {
            let names = Self::volume_names(&c);
            if names.is_empty() {
                Vec::new()
            } else {
                self.volumes().acquire_all(&names, &c.id)?
            }
        };
        let (plan, populate) = match self.plan(&c, &acquired) {
            Ok(p) => p,
            Err(e) => {
                self.release(&acquired);
                return Err(e);
            }
        };

        let merged = dir.join("merged");
        let method = Self::overlay_method();
        // Only volumes without content yet need the registry inside the container's namespace.
        let registry = (!populate.is_empty()).then(|| self.volumes().clone());
        let prepare: mountkit_ns_runner::Prepare = Box::new(move || {
            mountkit_overlay::mount(&stack, &merged, method)?;
            if let Some(registry) = registry {
                let root = inroot::open_root(&merged)?;
                for (name, target) in populate {
                    // The image's content at the mount path, resolved inside the rootfs.
                    if let Ok(src) = inroot::resolve(root.as_fd(), &target) {
                        registry.populate(&name, &inroot::fd_path(src.as_fd()))?;
                    }
                }
            }
            mountkit_binds::mount_all(&merged, &plan)?;
            Ok(merged)
        });
        let spec = Spec {
            args: c.config.args.clone(),
            env: c.config.env.clone(),
            workdir: Some(c.config.workdir.clone()),
            user: c.config.user.clone(),
            groups: Vec::new(),
            hostname: Some(c.config.hostname.clone()),
            readonly_root: c.config.readonly_root,
        };
        c.state.started = Some(now_rfc3339());
        c.state.error = None;
        let running = match mountkit_ns_runner::spawn(&spec, prepare) {
            Ok(r) => r,
            Err(e) => {
                self.release(&acquired);
                c.state.status = Status::Exited;
                c.state.exit_code = Some(e.exit_code());
                c.state.finished = Some(now_rfc3339());
                c.state.error = Some(e.to_string());
                if pending.is_none() {
                    self.save(&c)?;
                }
                return Err(e.into());
            }
        };
        c.state.status = Status::Running;
        c.state.pid = Some(running.pid());
        let recorded = match pending {
            Some(stage) => self.commit_pending(stage, &c),
            None => self.save(&c),
        };
        if let Err(e) = recorded {
            // Not visible as running: stop it rather than leave it unaccounted for.
            let _ = running.signal(nix::sys::signal::Signal::SIGKILL as i32);
            let _ = running.wait();
            self.release(&acquired);
            return Err(e);
        }
        drop(lock); // others may use the store while the container runs
        tracing::info!(id = %c.id, pid = running.pid(), "container running");
        let exit = running.wait();
        let lock = self.lock()?;
        self.release(&acquired);
        c.state.status = Status::Exited;
        c.state.pid = None;
        c.state.finished = Some(now_rfc3339());
        match &exit {
            Ok(e) => c.state.exit_code = Some(e.code()),
            Err(e) => c.state.error = Some(e.to_string()),
        }
        // An auto-removed container is deleted right after this: its final state is never read.
        if !c.auto_remove {
            self.save(&c)?;
        }
        drop(run_lock);
        Ok((exit?, lock))
    }

    /// The mounts to make inside the rootfs (volumes as binds of the host paths `acquired` gives, in the
    /// container's mount order), and the volumes to fill from the image: those without content yet and
    /// not mounted with `nocopy`.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        c: &Container,
        acquired: &[mountkit_volumes::Acquired],
    ) -> Result<(Vec<Planned>, Vec<(String, PathBuf)>)> {
        let mut plan = Vec::new();
        let mut populate = Vec::new();
        let mut volumes = acquired.iter();
        for m in &c.mounts {
            match &m.spec {
                MountSpec::Volume {
                    name: Some(name),
                    target,
                    readonly,
                    nocopy,
                    ..
                } => {
                    let a = volumes
                        .next()
                        .filter(|a| &a.name == name)
                        .expect("acquire_all returns one entry per volume, in order");
                    if a.needs_populate() && !nocopy {
                        populate.push((name.clone(), target.clone()));
                    }
                    plan.push(Planned::Bind {
                        source: a.path.clone(),
                        target: target.clone(),
                        readonly: *readonly,
                        propagation: Default::default(),
                        recursive: Default::default(),
                    });
                }
                MountSpec::Volume {
                    name: None, target, ..
                } => {
                    return Err(Error::InvalidArgument {
                        what: "mount",
                        value: target.display().to_string(),
                        reason: "volume has no name (container record is damaged)".into(),
                    });
                }
                MountSpec::Bind {
                    source,
                    target,
                    readonly,
                    propagation,
                    recursive,
                    ..
                } => {
                    plan.push(Planned::Bind {
                        source: source.clone(),
                        target: target.clone(),
                        readonly: *readonly,
                        propagation: *propagation,
                        recursive: *recursive,
                    });
                }
                MountSpec::Tmpfs { target, options } => {
                    plan.push(Planned::Tmpfs {
                        target: target.clone(),
                        options: options.clone(),
                    });
                }
            }
        }
        Ok((plan, populate))
    }

    /// Ends the container's use of its volumes (the last user of a driver volume unmounts it).
    fn release(&self, acquired: &[mountkit_volumes::Acquired]) {
        if let Err(e) = self.volumes().release_all(acquired) {
            tracing::warn!(error = %e, "release of the container's volumes");
        }
    }
}
