//! seccomp: a [`Policy`] (a default action and rules, as Docker's and the OCI runtime spec's profiles
//! have them), compiled once into a [`Filter`] (classic BPF programs) in the caller, loaded by the
//! container process with one `seccomp(SECCOMP_SET_MODE_FILTER)` per program.
//!
//! - [`Policy::docker_default`]: the effect of Docker's default profile for a given capability set (an
//!   allowlist; anything else fails with `EPERM`; the calls that need a capability are allowed when the
//!   container has it, as Docker's profile does). See `default.rs`.
//! - [`Policy::from_profile_json`]: a Docker/OCI profile file (`defaultAction`, `defaultErrnoRet`,
//!   `syscalls[{names, action, errnoRet, args, includes, excludes}]`, `architectures`).
//! - [`Policy::compile`]: names to numbers with the `syscalls` crate's table for this architecture, BPF
//!   with `seccompiler`.
//!
//! # One action per filter, so a policy with several actions is several filters
//! `seccompiler` compiles a set of rules with one action on a match and one on a mismatch. A policy with
//! rules of several actions (Docker's default: `ALLOW` for most, `ERRNO(ENOSYS)` for `clone3`, default
//! `ERRNO(EPERM)`) becomes: a base filter that returns the default action for every call no rule matches
//! and `ALLOW` otherwise, then one filter per other action that returns it for its rules' calls and
//! `ALLOW` for the rest. The kernel runs every filter and keeps the most restrictive result; between
//! two results of the same kind (two `ERRNO`s) the filter loaded last wins, which is why the per-action
//! filters are loaded after the base. Where two rules of different actions match the same call, the
//! more restrictive action applies (libseccomp rejects such policies or picks by its own order).
//!
//! # What differs from libseccomp
//! The filter checks the architecture (`AUDIT_ARCH_X86_64` on x86-64, `AUDIT_ARCH_AARCH64` on arm64)
//! and kills the process on any other: 32-bit system calls (`int 0x80`, i386 programs) in a confined
//! container are killed, where Docker's profile allows them (it lists `x86` and `x32` as sub-architectures).
//! x32 system call numbers (bit 30 set) match no rule and get the default action. Names a profile lists
//! that this architecture does not have (`_llseek`, `clock_settime64` on x86-64) are skipped, as runc
//! does (a `tracing` debug line names each); a misspelt name is skipped the same way.

mod default;
mod profile;

use std::collections::BTreeMap;
use std::str::FromStr;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use tracing::debug;

use crate::Error;

/// What a filter does with a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Let it run (`SCMP_ACT_ALLOW`).
    Allow,
    /// Fail it with this errno, without running it (`SCMP_ACT_ERRNO`).
    Errno(u32),
    /// Kill the calling thread (`SCMP_ACT_KILL`, `SCMP_ACT_KILL_THREAD`).
    KillThread,
    /// Kill the whole process (`SCMP_ACT_KILL_PROCESS`).
    KillProcess,
    /// Send `SIGSYS` (`SCMP_ACT_TRAP`).
    Trap,
    /// Let it run and log it (`SCMP_ACT_LOG`).
    Log,
    /// Notify a tracer with this value (`SCMP_ACT_TRACE`); without a tracer the call fails with `ENOSYS`.
    Trace(u32),
}

impl Action {
    fn to_seccompiler(self) -> SeccompAction {
        match self {
            Action::Allow => SeccompAction::Allow,
            Action::Errno(e) => SeccompAction::Errno(e),
            Action::KillThread => SeccompAction::KillThread,
            Action::KillProcess => SeccompAction::KillProcess,
            Action::Trap => SeccompAction::Trap,
            Action::Log => SeccompAction::Log,
            Action::Trace(v) => SeccompAction::Trace(v),
        }
    }
}

/// How an argument is compared (`SCMP_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `arg == value`.
    Eq,
    /// `arg != value`.
    Ne,
    /// `arg < value`.
    Lt,
    /// `arg <= value`.
    Le,
    /// `arg > value`.
    Gt,
    /// `arg >= value`.
    Ge,
    /// `arg & value == value_two`.
    MaskedEq,
}

/// One argument check of a rule; a rule's checks must all hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCheck {
    /// The argument, 0 to 5.
    pub index: u8,
    /// The value compared with (the mask for [`Op::MaskedEq`]).
    pub value: u64,
    /// The expected masked value for [`Op::MaskedEq`]; unused otherwise.
    pub value_two: u64,
    /// The comparison.
    pub op: Op,
}

impl ArgCheck {
    /// A check `arg[index] <op> value`.
    pub fn new(index: u8, op: Op, value: u64) -> ArgCheck {
        ArgCheck {
            index,
            value,
            value_two: 0,
            op,
        }
    }

    fn to_seccompiler(self) -> Result<SeccompCondition, Error> {
        let (op, value) = match self.op {
            Op::Eq => (SeccompCmpOp::Eq, self.value),
            Op::Ne => (SeccompCmpOp::Ne, self.value),
            Op::Lt => (SeccompCmpOp::Lt, self.value),
            Op::Le => (SeccompCmpOp::Le, self.value),
            Op::Gt => (SeccompCmpOp::Gt, self.value),
            Op::Ge => (SeccompCmpOp::Ge, self.value),
            Op::MaskedEq => (SeccompCmpOp::MaskedEq(self.value), self.value_two),
        };
        SeccompCondition::new(self.index, SeccompCmpArgLen::Qword, op, value)
            .map_err(|e| Error::Seccomp(format!("argument {}: {e}", self.index)))
    }
}

/// System calls by name, an action, and argument checks that must all hold for the rule to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// System call names (`mkdir`, `clone`...).
    pub names: Vec<String>,
    /// What happens when the rule applies.
    pub action: Action,
    /// Argument checks; none means every call of these names.
    pub args: Vec<ArgCheck>,
}

impl Rule {
    fn new(names: &[&str], action: Action, args: Vec<ArgCheck>) -> Rule {
        Rule {
            names: names.iter().map(|n| n.to_string()).collect(),
            action,
            args,
        }
    }
}

/// A seccomp policy already resolved for one container (its capabilities, this kernel and
/// architecture): what happens to calls no rule names, and the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The action for a call that no rule matches.
    pub default_action: Action,
    /// The rules, in the profile's order.
    pub rules: Vec<Rule>,
}

/// A compiled policy: the BPF programs the container process loads, in order. Compile once, load in
/// every container that shares the policy ([`crate::Spec::seccomp`] holds it behind an `Arc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    programs: Vec<BpfProgram>,
}

/// The architecture the filters check for: this build's.
fn native_arch() -> TargetArch {
    if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else if cfg!(target_arch = "riscv64") {
        TargetArch::riscv64
    } else {
        TargetArch::x86_64
    }
}

/// The system call number of `name` on this architecture, from the `syscalls` crate's table.
pub fn syscall_number(name: &str) -> Option<i64> {
    syscalls::Sysno::from_str(name).ok().map(|s| s.id() as i64)
}

/// Per system call: `None` when some rule matches every call, else the rules' argument checks (any).
type Chains = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add_rule(chains: &mut Chains, rule: &Rule) -> Result<(), Error> {
    let checks = if rule.args.is_empty() {
        None
    } else {
        let conds = rule
            .args
            .iter()
            .map(|a| a.to_seccompiler())
            .collect::<Result<Vec<_>, _>>()?;
        Some(SeccompRule::new(conds).map_err(|e| Error::Seccomp(e.to_string()))?)
    };
    for name in &rule.names {
        let Some(nr) = syscall_number(name) else {
            debug!(name, "no such system call on this architecture; rule skipped");
            continue;
        };
        let entry = chains.entry(nr).or_insert_with(|| Some(Vec::new()));
        match (&checks, entry.as_mut()) {
            (None, _) => *entry = None,
            (Some(r), Some(list)) => list.push(r.clone()),
            (Some(_), None) => {}
        }
    }
    Ok(())
}

fn compile_one(chains: Chains, mismatch: Action, matched: Action) -> Result<BpfProgram, Error> {
    let rules = chains
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        mismatch.to_seccompiler(),
        matched.to_seccompiler(),
        native_arch(),
    )
    .map_err(|e| Error::Seccomp(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| Error::Seccomp(e.to_string()))
}

impl Policy {
    /// Compiles the policy (see the module docs for how several actions become several filters).
    pub fn compile(&self) -> Result<Filter, Error> {
        let others: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.action != self.default_action)
            .collect();
        let mut programs = Vec::new();
        if self.default_action != Action::Allow {
            let mut all = Chains::new();
            for r in &others {
                add_rule(&mut all, r)?;
            }
            programs.push(compile_one(all, self.default_action, Action::Allow)?);
        }
        let mut actions: Vec<Action> = others
            .iter()
            .map(|r| r.action)
            .filter(|a| *a != Action::Allow)
            .collect();
        actions.sort();
        actions.dedup();
        for action in actions {
            let mut chains = Chains::new();
            for r in others.iter().filter(|r| r.action == action) {
                add_rule(&mut chains, r)?;
            }
            if !chains.is_empty() {
                programs.push(compile_one(chains, Action::Allow, action)?);
            }
        }
        let filter = Filter { programs };
        debug!(
            programs = filter.programs.len(),
            instructions = filter.instructions(),
            "seccomp policy compiled"
        );
        Ok(filter)
    }
}

impl Filter {
    /// No program: loading it does nothing.
    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }

    /// How many programs (one `seccomp` call each at load).
    pub fn programs(&self) -> usize {
        self.programs.len()
    }

    /// The BPF instructions of all programs together.
    pub fn instructions(&self) -> usize {
        self.programs.iter().map(Vec::len).sum()
    }

    /// The programs as bytes, for tools outside Rust (the C floor of `cargo xtask bench` loads them):
    /// per program, its instruction count as a native-endian `u16`, two zero bytes, then its
    /// `struct sock_filter`s (8 bytes each: `u16 code, u8 jt, u8 jf, u32 k`, native endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.instructions() * 8 + self.programs.len() * 4);
        for p in &self.programs {
            out.extend_from_slice(&(p.len() as u16).to_ne_bytes());
            out.extend_from_slice(&[0, 0]);
            for i in p {
                out.extend_from_slice(&i.code.to_ne_bytes());
                out.push(i.jt);
                out.push(i.jf);
                out.extend_from_slice(&i.k.to_ne_bytes());
            }
        }
        out
    }

    /// Loads every program into the calling thread, in order (`seccomp(SECCOMP_SET_MODE_FILTER, 0,
    /// prog)`; libc's `syscall`: rustix has no seccomp call). The kernel requires `no_new_privs` or
    /// `CAP_SYS_ADMIN`; the caller sees to it. Allocates nothing (the container process shares the
    /// caller's memory).
    pub(crate) fn load(&self) -> Result<(), String> {
        for (i, p) in self.programs.iter().enumerate() {
            let prog = libc::sock_fprog {
                len: p.len() as u16,
                filter: p.as_ptr().cast::<libc::sock_filter>().cast_mut(),
            };
            // SAFETY: `prog` points at `p`, a live array of `len` instructions laid out as the kernel's
            // `struct sock_filter` (seccompiler's type is `repr(C)` with the same fields); the kernel
            // copies it and keeps no pointer.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0 as libc::c_ulong,
                    &prog as *const libc::sock_fprog,
                )
            };
            if r != 0 {
                return Err(format!(
                    "seccomp(SECCOMP_SET_MODE_FILTER) of program {} of {}: {}",
                    i + 1,
                    self.programs.len(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_on_this_architecture() {
        assert_eq!(syscall_number("mkdirat"), Some(libc::SYS_mkdirat));
        assert_eq!(syscall_number("clone3"), Some(libc::SYS_clone3));
        assert_eq!(syscall_number("no_such_call"), None);
    }

    #[test]
    fn one_program_per_action_after_the_base() {
        let p = Policy {
            default_action: Action::Errno(1),
            rules: vec![
                Rule::new(&["read", "write"], Action::Allow, vec![]),
                Rule::new(&["clone3"], Action::Errno(38), vec![]),
                Rule::new(&["socket"], Action::Allow, vec![ArgCheck::new(0, Op::Ne, 40)]),
            ],
        };
        let f = p.compile().unwrap();
        assert_eq!(f.programs(), 2);
        let allow_all = Policy {
            default_action: Action::Allow,
            rules: vec![Rule::new(&["mkdir"], Action::Errno(1), vec![])],
        };
        assert_eq!(allow_all.compile().unwrap().programs(), 1);
        let nothing = Policy {
            default_action: Action::Allow,
            rules: vec![],
        };
        assert!(nothing.compile().unwrap().is_empty());
    }

    #[test]
    fn bytes_layout() {
        let f = Policy {
            default_action: Action::Allow,
            rules: vec![Rule::new(&["mkdir"], Action::Errno(1), vec![])],
        }
        .compile()
        .unwrap();
        let b = f.to_bytes();
        let n = u16::from_ne_bytes([b[0], b[1]]) as usize;
        assert_eq!(n, f.instructions());
        assert_eq!(b.len(), 4 + 8 * n);
    }
}
