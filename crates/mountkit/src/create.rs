//! Creating a container: its image, command, environment and mounts resolved from the image and the
//! flags (Docker's rules), its writable layer staged and committed with one rename, its volumes.
//!
//! A container is created either *committed* (`container create`, `run`: visible in `containers/` with
//! its record) or *pending* (`run --rm`: in `staging/` without a record until its process runs; see
//! [`Pending`]).

use std::path::{Path, PathBuf};

use mountkit_binds::MountSpec;
use mountkit_layer_store::ImageInfo;
use mountkit_safefs::remove_tree;

use sha2::Digest;

use crate::container::{
    Container, ContainerConfig, CreateOptions, MountRecord, Seccomp, SeccompOption, State, now_rfc3339,
};
use crate::names::{generate_name, validate_container_name};
use crate::records::write_record;
use crate::store::{DEFAULT_PATH, create_staged_dir};
use crate::{Error, Mountkit, Result};

/// A container made for `run --rm`: its directory is in `staging/` and it has no record, so nothing
/// lists it, until [`Pending::commit`] moves it into `containers/` once its process runs. Its name, its
/// volumes and their references are taken all the same. A pending container that never runs is
/// [`Pending::discard`]ed; one left by a crash is swept with the rest of `staging/`.
#[derive(Debug)]
pub(crate) struct Pending {
    stage: PathBuf,
}

impl Pending {
    /// The container's directory while pending.
    pub(crate) fn dir(&self) -> &Path {
        &self.stage
    }

    /// Writes the record (once, with the state `c` has now) and moves the container into
    /// `containers/`. On error the container is still pending.
    pub(crate) fn commit(&self, mk: &Mountkit, c: &Container) -> Result<()> {
        write_record(&self.stage, c)?;
        let dir = mk.container_dir(&c.id);
        std::fs::rename(&self.stage, &dir).map_err(|e| Error::io("commit container", &dir, e))
    }

    /// Undoes a pending container that never ran: its directory, name, references and volumes.
    pub(crate) fn discard(self, mk: &Mountkit, c: &Container) -> Result<()> {
        remove_tree(&self.stage)?;
        mk.release_name(&c.name, &c.id);
        mk.forget_volumes(c, true);
        Ok(())
    }
}

impl Mountkit {
    /// Resolves the image, the command, the environment and the mounts, and creates the container: its
    /// record, its (empty) writable layer and its anonymous volumes. Nothing is left behind on error.
    pub fn create(&self, opts: &CreateOptions) -> Result<Container> {
        let _lock = self.lock()?;
        Ok(self.create_locked(opts)?.0)
    }

    /// [`Mountkit::create`] under the store lock the caller holds; also returns the image.
    pub(crate) fn create_locked(&self, opts: &CreateOptions) -> Result<(Container, ImageInfo)> {
        let (c, image, _dir) = self.make_container(opts, true)?;
        Ok((c, image))
    }

    /// A [`Pending`] container for `run --rm`, under the store lock the caller holds.
    pub(crate) fn create_pending(&self, opts: &CreateOptions) -> Result<(Container, ImageInfo, Pending)> {
        let (c, image, stage) = self.make_container(opts, false)?;
        Ok((c, image, Pending { stage }))
    }

    /// Creates a container; with `commit`, writes its record and moves it into `containers/`; without,
    /// leaves it pending in `staging/`. Returns the container, its image and its directory. Nothing is
    /// left behind on error.
    fn make_container(&self, opts: &CreateOptions, commit: bool) -> Result<(Container, ImageInfo, PathBuf)> {
        let image = self.layers().image(&opts.image)?;
        if let Some(n) = &opts.name {
            validate_container_name(n)?;
        }
        let id = mountkit_safefs::random_hex(32);
        let config = resolve_config(&image, opts, &id)?;
        let (seccomp, profile) = resolve_seccomp(opts, &config)?;
        let config = ContainerConfig { seccomp, ..config };
        let name = self.claim_new_name(opts.name.as_deref(), &id)?;
        let mounts = match self.resolve_mounts(&image, opts) {
            Ok(m) => m,
            Err(e) => {
                self.release_name(&name, &id);
                return Err(e);
            }
        };
        let c = Container {
            id: id.clone(),
            name,
            image: image.id.clone(),
            image_name: image.name.clone(),
            created: now_rfc3339(),
            config,
            mounts,
            state: State::created(),
            auto_remove: opts.auto_remove,
        };
        let dir = self.container_dir(&id);
        // Named `container-<pid>-<id>`: the sweep reads the pid, and `reconcile` finds a pending
        // container's running.lock by its ID (see `Mountkit::pending_runs`).
        let stage = self
            .root()
            .join("staging")
            .join(format!("container-{}-{id}", std::process::id()));
        let made = (|| {
            // Staged and renamed into containers/ so that a half-made container is never visible.
            create_staged_dir(&stage)?;
            for d in ["upper", "work", "merged"] {
                std::fs::create_dir(stage.join(d)).map_err(|e| Error::io("create", stage.join(d), e))?;
            }
            if let Some(text) = &profile {
                let file = stage.join(SECCOMP_PROFILE_FILE);
                std::fs::write(&file, text).map_err(|e| Error::io("write", file, e))?;
            }
            if commit {
                write_record(&stage, &c)?;
                std::fs::rename(&stage, &dir).map_err(|e| Error::io("commit container", &dir, e))?;
            }
            self.create_volumes(&c)
        })();
        if let Err(e) = made {
            tracing::debug!(error = %e, "create failed; cleaning up");
            self.release_name(&c.name, &c.id);
            self.forget_volumes(&c, true);
            let _ = remove_tree(&stage);
            let _ = remove_tree(&dir);
            return Err(e);
        }
        tracing::info!(id = %c.id, name = %c.name, pending = !commit, "container created");
        crate::explain::shadow::report(self, &c, &image);
        crate::fs_type::report_fuse_binds(&c);
        Ok((c, image, if commit { dir } else { stage }))
    }

    /// Claims `name` for container `id`, or a generated name when there is none.
    fn claim_new_name(&self, name: Option<&str>, id: &str) -> Result<String> {
        match name {
            Some(n) => {
                if !self.claim_name(n, id)? {
                    return Err(Error::NameInUse {
                        name: n.to_string(),
                        id: self.name_owner(n)?.unwrap_or_default(),
                    });
                }
                Ok(n.to_string())
            }
            None => loop {
                let n = generate_name(&|n| self.name_owner(n).is_ok_and(|o| o.is_some()));
                if self.claim_name(&n, id)? {
                    break Ok(n);
                }
            },
        }
    }

    /// Works out the container's mounts: the image's `VOLUME`s become anonymous volumes unless something
    /// else is mounted there, `--volumes-from` copies another container's volume mounts, `-v /path` (no
    /// source) is an anonymous volume too.
    fn resolve_mounts(&self, image: &ImageInfo, opts: &CreateOptions) -> Result<Vec<MountRecord>> {
        let mut out: Vec<MountRecord> = Vec::new();
        for spec in &opts.mounts {
            let mut spec = spec.clone();
            let mut anonymous = false;
            if let MountSpec::Volume { name, .. } = &mut spec {
                if name.is_none() {
                    *name = Some(mountkit_safefs::random_hex(32));
                    anonymous = true;
                }
            }
            if taken(&out, spec.target()) {
                return Err(Error::InvalidArgument {
                    what: "mount",
                    value: spec.target().display().to_string(),
                    reason: "duplicate mount point".into(),
                });
            }
            out.push(MountRecord { spec, anonymous });
        }
        mountkit_binds::prepare_sources(&opts.mounts)?;
        for from in &opts.volumes_from {
            let (reference, mode) = match from.rsplit_once(':') {
                Some((r, m @ ("ro" | "rw"))) => (r, Some(m)),
                _ => (from.as_str(), None),
            };
            let other = self.container(reference)?;
            for m in other.mounts.iter() {
                let MountSpec::Volume { .. } = &m.spec else {
                    continue;
                };
                if taken(&out, m.spec.target()) {
                    continue;
                }
                let mut spec = m.spec.clone();
                if let (MountSpec::Volume { readonly, nocopy, .. }, Some(mode)) = (&mut spec, mode) {
                    *readonly = mode == "ro";
                    *nocopy = true;
                } else if let MountSpec::Volume { nocopy, .. } = &mut spec {
                    *nocopy = true;
                }
                // Shared, not owned: `rm -v` of this container must not remove the other's volume.
                out.push(MountRecord {
                    spec,
                    anonymous: false,
                });
            }
        }
        for path in &image.config.volumes {
            let target = PathBuf::from(path);
            if taken(&out, &target) {
                continue; // S10: what the user mounts there wins over the image's VOLUME.
            }
            out.push(MountRecord {
                spec: MountSpec::Volume {
                    name: Some(mountkit_safefs::random_hex(32)),
                    target,
                    readonly: false,
                    nocopy: false,
                    driver_opts: Vec::new(),
                    subpath: None,
                },
                anonymous: true,
            });
        }
        Ok(out)
    }
}

fn taken(out: &[MountRecord], target: &Path) -> bool {
    out.iter().any(|m| m.spec.target() == target)
}

/// The process configuration from the image's config and the flags (Docker's rules; see the crate docs).
fn resolve_config(image: &ImageInfo, opts: &CreateOptions, id: &str) -> Result<ContainerConfig> {
    let cfg = &image.config;
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => cfg.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !opts.cmd.is_empty() {
        opts.cmd.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new() // Docker: --entrypoint resets the image's cmd.
    } else {
        cfg.cmd.clone().unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::NoCommand(opts.image.clone()));
    }
    let env = merge_env(&cfg.env, &opts.env)?;
    let workdir = opts
        .workdir
        .clone()
        .or(cfg.workdir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or("/".into());
    if !workdir.starts_with('/') {
        return Err(Error::InvalidArgument {
            what: "working directory",
            value: workdir,
            reason: "must be an absolute path".into(),
        });
    }
    Ok(ContainerConfig {
        args,
        env,
        workdir,
        user: opts.user.clone().or(cfg.user.clone()).filter(|u| !u.is_empty()),
        hostname: opts.hostname.clone().unwrap_or_else(|| id[..12].to_string()),
        readonly_root: opts.read_only,
        capabilities: crate::container::cap_names(&resolve_capabilities(opts)?),
        privileged: opts.privileged,
        no_new_privileges: opts.no_new_privileges,
        network: opts.network,
        // Set by `resolve_seccomp`, which needs the capabilities above.
        seccomp: Seccomp::Default,
        tty: opts.tty,
        open_stdin: opts.open_stdin,
        stop_signal: opts.stop_signal.clone(),
        stop_timeout: opts.stop_timeout,
        restart: opts.restart,
        init: opts.init,
        log: opts.log,
    })
}

/// The copy of a container's seccomp profile in its directory.
pub(crate) const SECCOMP_PROFILE_FILE: &str = "seccomp.json";

/// `--security-opt seccomp=`: the record's setting and, for a profile, its content. The profile is
/// read and compiled for the container's capabilities now, so a bad one fails `create` and nothing is
/// made. `--privileged` without a profile is unconfined (Docker's rule); with one, the profile applies.
fn resolve_seccomp(opts: &CreateOptions, config: &ContainerConfig) -> Result<(Seccomp, Option<Vec<u8>>)> {
    match &opts.seccomp {
        SeccompOption::Default if opts.privileged => Ok((Seccomp::Unconfined, None)),
        SeccompOption::Default => Ok((Seccomp::Default, None)),
        SeccompOption::Unconfined => Ok((Seccomp::Unconfined, None)),
        SeccompOption::Profile(path) => {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let bad = |reason: String| Error::SeccompProfile {
                path: path.clone(),
                reason,
            };
            let text = std::fs::read(&path).map_err(|e| bad(format!("cannot read it: {e}")))?;
            crate::run::compile_seccomp(&text, &config.capabilities).map_err(|e| bad(e.to_string()))?;
            let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&text)));
            let mode = Seccomp::Profile {
                path: path.display().to_string(),
                digest,
            };
            Ok((mode, Some(text)))
        }
    }
}

/// Docker's rule: every capability with `--privileged`; otherwise the default set, then `--cap-drop`
/// (`ALL` empties it), then `--cap-add` (`ALL` fills it). An unknown name is an error naming it.
pub(crate) fn resolve_capabilities(opts: &CreateOptions) -> Result<mountkit_ns_runner::CapsHashSet> {
    use mountkit_ns_runner::{all_capabilities, docker_default_capabilities, parse_capability};
    let parse = |flag: &'static str, name: &str| {
        parse_capability(name).ok_or_else(|| Error::InvalidArgument {
            what: flag,
            value: name.to_string(),
            reason: "unknown capability".into(),
        })
    };
    let is_all = |name: &str| name.trim().eq_ignore_ascii_case("all");
    // Every name is checked, --privileged or not.
    for n in opts.cap_drop.iter().filter(|n| !is_all(n)) {
        parse("--cap-drop capability", n)?;
    }
    for n in opts.cap_add.iter().filter(|n| !is_all(n)) {
        parse("--cap-add capability", n)?;
    }
    if opts.privileged {
        return Ok(all_capabilities());
    }
    let mut set = docker_default_capabilities();
    for n in &opts.cap_drop {
        if is_all(n) {
            set.clear();
        } else {
            set.remove(&parse("--cap-drop capability", n)?);
        }
    }
    for n in &opts.cap_add {
        if is_all(n) {
            set = all_capabilities();
        } else {
            set.insert(parse("--cap-add capability", n)?);
        }
    }
    Ok(set)
}

/// The image's environment overridden key by key by `-e` values; `-e KEY` copies KEY from the caller's
/// environment (and is dropped when the caller has none, as Docker does); PATH defaults to Docker's.
pub(crate) fn merge_env(image: &[String], flags: &[String]) -> Result<Vec<String>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| {
        if let Some(e) = env.iter_mut().find(|(ek, _)| ek == k) {
            e.1 = v;
        } else {
            env.push((k.to_string(), v));
        }
    };
    for kv in image {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v.to_string());
    }
    for kv in flags {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv.as_str(), std::env::var(kv).ok()),
        };
        if k.is_empty() {
            return Err(Error::InvalidArgument {
                what: "environment variable",
                value: kv.clone(),
                reason: "the name is empty".into(),
            });
        }
        if let Some(v) = v {
            set(k, v);
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merges_by_key_and_defaults_path() {
        let e = merge_env(&["A=1".into(), "B=2".into()], &["B=3".into(), "C=".into()]).unwrap();
        assert_eq!(
            e,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "A=1".into(),
                "B=3".into(),
                "C=".into()
            ]
        );
        let e = merge_env(&["PATH=/x".into()], &[]).unwrap();
        assert_eq!(e, vec!["PATH=/x".to_string()]);
        assert!(merge_env(&[], &["=v".into()]).is_err());
    }

    #[test]
    fn env_key_alone_copies_from_the_caller_or_is_dropped() {
        // SAFETY: this test owns the variable name; tests run one per process under nextest.
        unsafe { std::env::set_var("MOUNTKIT_TEST_COPY_ME", "yes") };
        let e = merge_env(
            &[],
            &["MOUNTKIT_TEST_COPY_ME".into(), "MOUNTKIT_TEST_UNSET_XYZ".into()],
        )
        .unwrap();
        assert!(e.contains(&"MOUNTKIT_TEST_COPY_ME=yes".to_string()));
        assert!(!e.iter().any(|kv| kv.starts_with("MOUNTKIT_TEST_UNSET_XYZ")));
    }
}
