//! `mountkit container` (create, start, ls, inspect, rm, mount, unmount, diff, commit, export, explain) and
//! `mountkit ps`.

use mountkit::ExportTarget;
use mountkit::cli_args::{
    ContainerCmd, ExecArgs, KillArgs, ListArgs, LogsArgs, RestartArgs, StartArgs, StopArgs, TopArgs, WaitArgs,
};

use super::{Ctx, explain, output, run};

/// Runs a `container` subcommand.
pub fn run(ctx: &Ctx, c: ContainerCmd) -> anyhow::Result<i32> {
    let mk = &ctx.mk;
    match c {
        ContainerCmd::Create(a) => {
            mountkit::set_shadow_warnings(!a.quiet);
            println!("{}", mk.create(&run::create_options(&a)?)?.id)
        }
        ContainerCmd::Start(a) => return start(ctx, &a),
        ContainerCmd::Stop(a) => return Ok(stop(ctx, &a)),
        ContainerCmd::Kill(a) => return Ok(kill(ctx, &a)),
        ContainerCmd::Restart(a) => return Ok(restart(ctx, &a)),
        ContainerCmd::Wait(a) => return Ok(wait(ctx, &a)),
        ContainerCmd::Logs(a) => return logs(ctx, &a),
        ContainerCmd::Top(a) => return top(ctx, &a),
        ContainerCmd::Attach(a) => return attach(ctx, &a),
        ContainerCmd::Exec(a) => return exec(ctx, &a),
        ContainerCmd::Ls(a) => return list(ctx, &a),
        ContainerCmd::Inspect { container, f: _ } => {
            let views = container
                .iter()
                .map(|n| mk.inspect_container(n))
                .collect::<Result<Vec<_>, _>>()?;
            output::inspect_json(&views)?;
        }
        ContainerCmd::Rm(a) => return Ok(remove(ctx, &a.container, a.force, a.volumes)),
        ContainerCmd::Mount { container } => {
            eprintln!(
                "mountkit: mounting in the host's mount namespace (undo with `mountkit container unmount`)"
            );
            println!("{}", mk.mount(&container)?.display());
        }
        ContainerCmd::Unmount { container } => mk.unmount(&container)?,
        ContainerCmd::Diff { container, f } => output::changes(ctx.format(f.format), &mk.diff(&container)?)?,
        ContainerCmd::Commit { container, name } => println!("{}", mk.commit(&container, &name)?.id),
        ContainerCmd::Export { container, output } => {
            mk.export_to(&container, &ExportTarget::from_arg(&output))?
        }
        ContainerCmd::Explain { container, paths, x } => {
            let all = mk.explain_container(&container, &paths, explain::options(&x))?;
            return explain::print(ctx.format(x.format), &all);
        }
    }
    Ok(0)
}

/// `container ls`, `ps`.
pub fn list(ctx: &Ctx, a: &ListArgs) -> anyhow::Result<i32> {
    let cs = ctx.mk.list_containers(a.all, &a.filters)?;
    output::containers(ctx.format(a.format), &cs, a.quiet)?;
    Ok(0)
}

/// `container rm`: each container in turn; one that cannot be removed is reported and the others are
/// still removed (exit status 1 then), as Docker does.
fn remove(ctx: &Ctx, references: &[String], force: bool, volumes: bool) -> i32 {
    let mut failed = false;
    for n in references {
        match ctx.mk.remove(n, force, volumes) {
            // As Docker: echo the reference that was removed.
            Ok(_) => println!("{n}"),
            Err(e) => {
                output::report(&e);
                failed = true;
            }
        }
    }
    i32::from(failed)
}

/// Runs `op` on each container, echoing the reference on success (as Docker); one that fails is
/// reported and the others still get theirs (exit status 1 then).
fn each(references: &[String], mut op: impl FnMut(&str) -> mountkit::Result<()>) -> i32 {
    let mut failed = false;
    for n in references {
        match op(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                output::report(&e);
                failed = true;
            }
        }
    }
    i32::from(failed)
}

/// `container start`: detached, each container in turn; with `-a`, one container, attached.
pub fn start(ctx: &Ctx, a: &StartArgs) -> anyhow::Result<i32> {
    if a.attach || a.interactive {
        let [one] = a.containers.as_slice() else {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        };
        return Ok(ctx.mk.start(one)?.code());
    }
    if let [one] = a.containers.as_slice() {
        // One container: its start's error with `docker start`'s status.
        ctx.mk.start_detached(one)?;
        println!("{one}");
        return Ok(0);
    }
    Ok(each(&a.containers, |n| ctx.mk.start_detached(n).map(|_| ())))
}

/// `container stop`.
pub fn stop(ctx: &Ctx, a: &StopArgs) -> i32 {
    each(&a.containers, |n| ctx.mk.stop(n, a.time, a.signal.as_deref()))
}

/// `container kill`.
pub fn kill(ctx: &Ctx, a: &KillArgs) -> i32 {
    each(&a.containers, |n| ctx.mk.kill(n, a.signal.as_deref()))
}

/// `container restart`.
pub fn restart(ctx: &Ctx, a: &RestartArgs) -> i32 {
    each(&a.containers, |n| ctx.mk.restart(n, a.time))
}

/// `container wait`: prints each exit code (-1 when unknown); exits with the last one.
pub fn wait(ctx: &Ctx, a: &WaitArgs) -> i32 {
    let mut last = 0;
    for n in &a.containers {
        match ctx.mk.wait(n) {
            Ok(code) => {
                println!("{}", code.unwrap_or(-1));
                last = code.unwrap_or(255);
            }
            Err(e) => {
                output::report(&e);
                last = 1;
            }
        }
    }
    last
}

/// `container logs`.
pub fn logs(ctx: &Ctx, a: &LogsArgs) -> anyhow::Result<i32> {
    let tail = match a.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| mountkit::Error::InvalidArgument {
            what: "--tail",
            value: n.into(),
            reason: "takes a number of lines or \"all\"".into(),
        })?),
    };
    let o = mountkit::LogsOptions {
        follow: a.follow,
        tail,
        timestamps: a.timestamps,
        since: a.since.clone(),
    };
    ctx.mk
        .logs(&a.container, &o, &mut std::io::stdout(), &mut std::io::stderr())?;
    Ok(0)
}

/// `container exec`, `exec`: the command's status; 125, 126 or 127 when it could not be started (as
/// `run`); 1 when mountkit fails otherwise (an unknown or stopped container), as `docker exec`.
pub fn exec(ctx: &Ctx, a: &ExecArgs) -> anyhow::Result<i32> {
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(mountkit::read_env_file(f)?);
    }
    env.extend(a.env.iter().cloned());
    let opts = mountkit::ExecOptions {
        args: a.cmd.clone(),
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        env,
        privileged: a.privileged,
        interactive: a.interactive,
        tty: a.tty && !a.detach,
        tty_size: (a.tty && !a.detach).then(mountkit::tty::caller_size).flatten(),
    };
    // Docker's check: `-it` needs a terminal to type into the command's (`-t` alone does not).
    if let Some(refusal) = mountkit::tty::input_refusal(opts.tty, opts.interactive) {
        eprintln!("mountkit: {refusal}");
        return Ok(1);
    }
    let result = match a.detach {
        true => ctx.mk.exec_detached(&a.container, &opts).map(|_| 0),
        false => ctx.mk.exec(&a.container, &opts).map(|exit| exit.code()),
    };
    match result {
        Ok(code) => Ok(code),
        Err(e @ mountkit::Error::Runner(_)) => {
            output::report(&e);
            Ok(e.run_exit_code())
        }
        Err(e) => Err(e.into()),
    }
}

/// `container top`: the container's processes (its PID namespace), as the host sees them.
pub fn top(ctx: &Ctx, a: &TopArgs) -> anyhow::Result<i32> {
    let procs = ctx.mk.top(&a.container)?;
    println!("{:<8} {:<8} {:<8} CMD", "UID", "PID", "PPID");
    for p in procs {
        println!("{:<8} {:<8} {:<8} {}", p.uid, p.pid, p.ppid, p.cmd);
    }
    Ok(0)
}

/// `container attach`: exits with the container's status once it ends; 0 when detached (Ctrl-P Ctrl-Q).
pub fn attach(ctx: &Ctx, a: &TopArgs) -> anyhow::Result<i32> {
    Ok(ctx.mk.attach(&a.container)?.unwrap_or(0))
}
