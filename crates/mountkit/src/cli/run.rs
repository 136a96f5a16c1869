//! `mountkit run`, and the flags it shares with `container create` turned into [`CreateOptions`].

use mountkit::CreateOptions;
use mountkit::binds::{parse_mount_flag, parse_tmpfs_flag, parse_volume_flag};
use mountkit::cli_args::{CreateArgs, RunArgs};

use super::Ctx;

/// `run`: create, start attached, wait; the exit status is the command's.
pub fn run(ctx: &Ctx, r: &RunArgs) -> anyhow::Result<i32> {
    let mut opts = create_options(&r.create)?;
    opts.auto_remove = r.rm;
    let (_c, exit) = ctx.mk.run(&opts)?;
    Ok(exit.code())
}

/// The options of `container create` and `run`; `-v`, `--mount` and `--tmpfs` are parsed here, in that
/// order (a bad one fails the command before anything is created).
pub fn create_options(a: &CreateArgs) -> mountkit::Result<CreateOptions> {
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(parse_volume_flag(v)?);
    }
    for m in &a.mount {
        mounts.push(parse_mount_flag(m)?);
    }
    for t in &a.tmpfs {
        mounts.push(parse_tmpfs_flag(t)?);
    }
    if let Some(p) = a.publish.first() {
        return Err(mountkit::Error::InvalidArgument {
            what: "--publish",
            value: p.clone(),
            reason: "mountkit has no port publishing: a container shares the host's network \
                     (--network host, the default), so its ports are the host's already"
                .into(),
        });
    }
    let network = match &a.network {
        Some(n) => n.parse()?,
        None => mountkit::NetworkMode::Host,
    };
    let mut no_new_privileges = false;
    for opt in &a.security_opt {
        no_new_privileges = security_opt(opt)?;
    }
    Ok(CreateOptions {
        name: a.name.clone(),
        image: a.image.clone(),
        cmd: a.cmd.clone(),
        entrypoint: a.entrypoint.clone(),
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        mounts,
        volumes_from: a.volumes_from.clone(),
        read_only: a.read_only,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        no_new_privileges,
        network,
        auto_remove: false,
    })
}

/// One `--security-opt`: `no-new-privileges[=true|false]` (also with `:` as Docker accepts) returns the
/// setting it asks for (the last one given wins); `seccomp=...` is not supported yet; any other key is refused, named.
fn security_opt(opt: &str) -> mountkit::Result<bool> {
    let bad = |reason: &str| mountkit::Error::InvalidArgument {
        what: "--security-opt",
        value: opt.to_string(),
        reason: reason.to_string(),
    };
    let (key, value) = match opt.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    match (key, value) {
        ("no-new-privileges", None | Some("true")) => Ok(true),
        ("no-new-privileges", Some("false")) => Ok(false),
        ("no-new-privileges", Some(_)) => Err(bad("no-new-privileges takes true or false")),
        ("seccomp", _) => Err(bad("seccomp profiles are not supported yet")),
        _ => Err(bad(&format!(
            "unknown security option {key:?} (mountkit supports no-new-privileges)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::security_opt;

    #[test]
    fn security_opts() {
        assert!(security_opt("no-new-privileges").unwrap());
        assert!(security_opt("no-new-privileges=true").unwrap());
        assert!(security_opt("no-new-privileges:true").unwrap());
        assert!(!security_opt("no-new-privileges=false").unwrap());
        let e = security_opt("seccomp=unconfined").unwrap_err().to_string();
        assert!(e.contains("seccomp profiles are not supported yet"), "{e}");
        let e = security_opt("apparmor=x").unwrap_err().to_string();
        assert!(e.contains("\"apparmor\""), "{e}");
        assert!(security_opt("no-new-privileges=maybe").is_err());
    }
}
