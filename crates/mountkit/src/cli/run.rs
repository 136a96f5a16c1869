//! `mountkit run`, and the flags it shares with `container create` turned into [`CreateOptions`].

use mountkit::binds::{parse_mount_flag, parse_tmpfs_flag, parse_volume_flag};
use mountkit::cli_args::{CreateArgs, RunArgs};
use mountkit::{CreateOptions, SeccompOption};

use super::Ctx;

/// `run`: create, start attached, wait; the exit status is the command's. With `-d`: start it under a
/// monitor and print its ID once it runs.
pub fn run(ctx: &Ctx, r: &RunArgs) -> anyhow::Result<i32> {
    let mut opts = create_options(&r.create)?;
    opts.auto_remove = r.rm;
    if opts.auto_remove && opts.restart != mountkit::RestartPolicy::No {
        return Err(mountkit::Error::InvalidArgument {
            what: "--restart",
            value: r.create.restart.clone().unwrap_or_default(),
            reason: "conflicts with --rm (a removed container cannot be restarted)".into(),
        }
        .into());
    }
    if r.detach {
        println!("{}", ctx.mk.run_detached(&opts)?.id);
        return Ok(0);
    }
    // Docker's check: `-it` needs a terminal to type into the container's (`-t` alone does not).
    if let Some(refusal) = mountkit::tty::input_refusal(opts.tty, opts.open_stdin) {
        eprintln!("mountkit: {refusal}");
        return Ok(1);
    }
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
    let restart = match &a.restart {
        Some(p) => p.parse()?,
        None => mountkit::RestartPolicy::No,
    };
    if let Some(s) = &a.stop_signal {
        mountkit::signal::parse_signal(s).ok_or_else(|| mountkit::Error::InvalidArgument {
            what: "--stop-signal",
            value: s.clone(),
            reason: "not a signal (a name like SIGTERM or TERM, or a number)".into(),
        })?;
    }
    let mut log = mountkit::LogOptions::default();
    for o in &a.log_opt {
        log.apply(o)?;
    }
    let mut security = SecurityOpts::default();
    for opt in &a.security_opt {
        security_opt(&mut security, opt)?;
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
        no_new_privileges: security.no_new_privileges,
        seccomp: security.seccomp,
        network,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        restart,
        init: a.init,
        log,
        auto_remove: false,
        tty: a.tty,
        open_stdin: a.interactive,
    })
}

/// The `--security-opt` settings mountkit knows.
#[derive(Debug, Default, PartialEq, Eq)]
struct SecurityOpts {
    no_new_privileges: bool,
    seccomp: SeccompOption,
}

/// One `--security-opt` (the key and value also separated by `:`, as Docker accepts), applied to
/// `opts` (the last one of a key wins): `no-new-privileges[=true|false]`, `seccomp=unconfined`,
/// `seccomp=FILE` (a Docker/OCI profile, read at creation). Any other key is refused, named.
fn security_opt(opts: &mut SecurityOpts, opt: &str) -> mountkit::Result<()> {
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
        ("no-new-privileges", None | Some("true")) => opts.no_new_privileges = true,
        ("no-new-privileges", Some("false")) => opts.no_new_privileges = false,
        ("no-new-privileges", Some(_)) => return Err(bad("no-new-privileges takes true or false")),
        ("seccomp", Some("unconfined")) => opts.seccomp = SeccompOption::Unconfined,
        ("seccomp", Some(file)) if !file.is_empty() => {
            opts.seccomp = SeccompOption::Profile(file.into());
        }
        ("seccomp", _) => return Err(bad("seccomp takes unconfined or a profile file (JSON)")),
        _ => {
            return Err(bad(&format!(
                "unknown security option {key:?} (mountkit supports no-new-privileges and seccomp)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{SeccompOption, SecurityOpts, security_opt};

    fn read(list: &[&str]) -> mountkit::Result<SecurityOpts> {
        let mut o = SecurityOpts::default();
        for opt in list {
            security_opt(&mut o, opt)?;
        }
        Ok(o)
    }

    #[test]
    fn security_opts() {
        assert!(read(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(read(&["no-new-privileges=true"]).unwrap().no_new_privileges);
        assert!(read(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        assert!(
            !read(&["no-new-privileges", "no-new-privileges=false"])
                .unwrap()
                .no_new_privileges
        );
        assert_eq!(read(&[]).unwrap().seccomp, SeccompOption::Default);
        assert_eq!(
            read(&["seccomp=unconfined"]).unwrap().seccomp,
            SeccompOption::Unconfined
        );
        assert_eq!(
            read(&["seccomp:/p.json"]).unwrap().seccomp,
            SeccompOption::Profile("/p.json".into())
        );
        let e = read(&["seccomp="]).unwrap_err().to_string();
        assert!(e.contains("seccomp takes unconfined or a profile file"), "{e}");
        let e = read(&["apparmor=x"]).unwrap_err().to_string();
        assert!(e.contains("\"apparmor\""), "{e}");
        assert!(read(&["no-new-privileges=maybe"]).is_err());
    }
}
