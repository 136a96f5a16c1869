//! Docker's and the OCI runtime spec's seccomp profile JSON, read into a [`Policy`] for one container.
//!
//! Read: `defaultAction`, `defaultErrnoRet`, `syscalls[]` with `names` (or the older `name`), `action`,
//! `errnoRet`, `args[{index, value, valueTwo, op}]`, and Docker's `includes`/`excludes` (`caps`: all
//! must be in the container's set / any excludes; `arches`: this machine's architecture by Go's or
//! libseccomp's name; `minKernel`). `architectures` and `archMap` are accepted and not needed (the
//! filter is for this architecture only; see the parent module). Other keys (`comment`...) are
//! ignored, as Docker does. Refused, with the place named: invalid JSON, a missing `defaultAction`, an
//! unknown action or operator, an argument index past 5, `SCMP_ACT_NOTIFY`/`listenerPath` (no
//! user-space notifier here), an entry without names.

use serde::Deserialize;

use super::{Action, ArgCheck, Op, Policy, Rule};
use crate::{CapsHashSet, Error, parse_capability};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileJson {
    default_action: Option<String>,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    syscalls: Vec<SyscallJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyscallJson {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<ArgJson>,
    #[serde(default)]
    includes: Conditions,
    #[serde(default)]
    excludes: Conditions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArgJson {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Conditions {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// This machine's architecture by the names profiles use (Go's, libseccomp's, the kernel's).
fn arch_names() -> &'static [&'static str] {
    if cfg!(target_arch = "aarch64") {
        &["arm64", "aarch64", "SCMP_ARCH_AARCH64"]
    } else if cfg!(target_arch = "riscv64") {
        &["riscv64", "SCMP_ARCH_RISCV64"]
    } else {
        &["amd64", "x86_64", "SCMP_ARCH_X86_64"]
    }
}

/// `major.minor` of a kernel release string (`6.1.0-28-cloud-amd64` -> (6, 1)).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}

fn running_kernel() -> Option<(u32, u32)> {
    kernel_version(rustix::system::uname().release().to_str().ok()?)
}

fn action(name: &str, errno: Option<u32>, default_errno: u32) -> Result<Action, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(default_errno)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(default_errno)),
        "SCMP_ACT_NOTIFY" => {
            return Err("SCMP_ACT_NOTIFY needs a user-space notifier, which mountkit does not run".into());
        }
        other => return Err(format!("unknown action {other:?}")),
    })
}

fn op(name: &str) -> Result<Op, String> {
    Ok(match name {
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        other => return Err(format!("unknown operator {other:?}")),
    })
}

/// Whether an entry applies to this container: every `includes` condition holds and no `excludes`
/// one does (Docker's reading). An unknown capability name is an error.
fn applies(s: &SyscallJson, caps: &CapsHashSet, kernel: Option<(u32, u32)>) -> Result<bool, String> {
    let has = |name: &String| -> Result<bool, String> {
        parse_capability(name)
            .map(|c| caps.contains(&c))
            .ok_or_else(|| format!("unknown capability {name:?}"))
    };
    let here = |arches: &[String]| arches.iter().any(|a| arch_names().contains(&a.as_str()));
    let kernel_at_least = |min: &String| -> Result<bool, String> {
        let want = kernel_version(min).ok_or_else(|| format!("minKernel {min:?} is not a kernel version"))?;
        Ok(kernel.is_none_or(|k| k >= want))
    };
    for c in &s.includes.caps {
        if !has(c)? {
            return Ok(false);
        }
    }
    if !s.includes.arches.is_empty() && !here(&s.includes.arches) {
        return Ok(false);
    }
    if let Some(min) = &s.includes.min_kernel
        && !kernel_at_least(min)?
    {
        return Ok(false);
    }
    for c in &s.excludes.caps {
        if has(c)? {
            return Ok(false);
        }
    }
    if !s.excludes.arches.is_empty() && here(&s.excludes.arches) {
        return Ok(false);
    }
    if let Some(min) = &s.excludes.min_kernel
        && kernel_at_least(min)?
    {
        return Ok(false);
    }
    Ok(true)
}

impl Policy {
    /// Reads a Docker/OCI seccomp profile (JSON) for a container with the capability set `caps`
    /// (Docker's `includes.caps`/`excludes.caps` are read against it). The error names the place in
    /// the profile and the problem; the caller names the file.
    pub fn from_profile_json(text: &[u8], caps: &CapsHashSet) -> Result<Policy, Error> {
        let bad = |cause: String| Error::Seccomp(cause);
        let json: ProfileJson =
            serde_json::from_slice(text).map_err(|e| bad(format!("not a seccomp profile: {e}")))?;
        if json.listener_path.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(bad(
                "listenerPath needs a user-space notifier, which mountkit does not run".into(),
            ));
        }
        let default_errno = json.default_errno_ret.unwrap_or(1);
        let default_action = match &json.default_action {
            Some(a) => {
                action(a, json.default_errno_ret, 1).map_err(|e| bad(format!("defaultAction: {e}")))?
            }
            None => return Err(bad("defaultAction is missing".into())),
        };
        let kernel = running_kernel();
        let mut rules = Vec::new();
        for (i, s) in json.syscalls.iter().enumerate() {
            let at = |e: String| bad(format!("syscalls[{i}]: {e}"));
            let act = action(&s.action, s.errno_ret, default_errno).map_err(at)?;
            let mut names = s.names.clone();
            names.extend(s.name.clone());
            if names.is_empty() || names.iter().any(String::is_empty) {
                return Err(at("no system call names".into()));
            }
            let mut args = Vec::with_capacity(s.args.len());
            for (j, a) in s.args.iter().enumerate() {
                let at = |e: String| bad(format!("syscalls[{i}].args[{j}]: {e}"));
                if a.index > 5 {
                    return Err(at(format!("index {} is past the sixth argument", a.index)));
                }
                args.push(ArgCheck {
                    index: a.index as u8,
                    value: a.value,
                    value_two: a.value_two,
                    op: op(&a.op).map_err(at)?,
                });
            }
            if !applies(s, caps, kernel).map_err(at)? {
                continue;
            }
            rules.push(Rule {
                names,
                action: act,
                args,
            });
        }
        Ok(Policy {
            default_action,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Capability, docker_default_capabilities};

    fn read(json: &str) -> Result<Policy, String> {
        Policy::from_profile_json(json.as_bytes(), &docker_default_capabilities()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_profile_becomes_a_policy() {
        let p = read(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "comment": "x",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                             {"name": "socket", "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
                              "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.default_action, Action::Allow);
        assert_eq!(p.rules[0].names, ["mkdir", "mkdirat"]);
        assert_eq!(p.rules[0].action, Action::Errno(1));
        assert_eq!(p.rules[1].action, Action::Errno(97));
        assert_eq!(p.rules[1].args, [ArgCheck::new(0, Op::Eq, 10)]);
        assert_eq!(p.compile().unwrap().programs(), 2);
    }

    #[test]
    fn includes_and_excludes_read_the_container_capabilities() {
        let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["s390_runtime_instr"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}}]}"#;
        let p = read(json).unwrap();
        let names: Vec<_> = p.rules.iter().flat_map(|r| r.names.clone()).collect();
        assert_eq!(names, ["clone", "ptrace"]);
        let mut caps = docker_default_capabilities();
        caps.insert(Capability::CAP_SYS_ADMIN);
        let p = Policy::from_profile_json(json.as_bytes(), &caps).unwrap();
        let names: Vec<_> = p.rules.iter().flat_map(|r| r.names.clone()).collect();
        assert_eq!(names, ["mount", "ptrace"]);
    }

    #[test]
    fn malformed_profiles_name_the_problem() {
        for (json, want) in [
            ("{", "not a seccomp profile"),
            (r#"{"syscalls": []}"#, "defaultAction is missing"),
            (
                r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
                "defaultAction: unknown action \"SCMP_ACT_NOPE\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "X"}]}"#,
                "syscalls[0]: unknown action \"X\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}"#,
                "syscalls[0]: no system call names",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action":
                    "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
                "syscalls[0].args[0]: index 6",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action":
                    "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_ISH"}]}]}"#,
                "syscalls[0].args[0]: unknown operator",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                    "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_FLY"]}}]}"#,
                "syscalls[0]: unknown capability \"CAP_FLY\"",
            ),
            (r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#, "user-space notifier"),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}"#,
                "not a seccomp profile",
            ),
        ] {
            let e = read(json).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.1.0-28-cloud-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("6.18.2+"), Some((6, 18)));
        assert_eq!(kernel_version("x"), None);
    }
}
