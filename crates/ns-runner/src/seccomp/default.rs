//! The default policy: the effect of Docker's default seccomp profile (moby's `profiles/seccomp`), for
//! a container's capability set. Written as this crate's own table: the system calls every container
//! may make, the ones allowed only with a capability (as Docker's profile gates them), and the few with
//! argument checks.
//!
//! One deliberate difference: `name_to_handle_at` is allowed only with `CAP_DAC_READ_SEARCH`, like its
//! partner `open_by_handle_at` (the pair is how the "shocker" escape read host files; Docker allows
//! the first to everyone since 2020).

use super::{Action, ArgCheck, Op, Policy, Rule};
use crate::{Capability, CapsHashSet};

/// `EPERM`: what a call outside the policy gets (Docker's `defaultErrnoRet`).
const EPERM: u32 = 1;
/// `ENOSYS` for `clone3` without `CAP_SYS_ADMIN`: its flags sit in a struct a filter cannot read, so
/// it is refused as if the kernel lacked it, and the C library falls back to `clone`, whose flags the
/// filter checks (Docker's rule).
const ENOSYS: u32 = 38;
/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`: the namespace flags `clone` may carry only with `CAP_SYS_ADMIN`.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `personality` values Docker allows: `PER_LINUX`, `PER_LINUX32`, `UNAME26`, `UNAME26|PER_LINUX32`,
/// and `0xffffffff` (query).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
/// `socket` families refused: `AF_ALG` (38) and `AF_VSOCK` (40).
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// System calls every confined container may make (Docker's list; names this architecture lacks are
/// skipped at compile time).
const ALWAYS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "riscv_hwprobe",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Allowed by Docker on kernels since 4.8 (ptrace can no longer bypass seccomp there); this crate's
    // kernels are all newer.
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// Architecture-specific calls Docker allows (only the names this architecture has take effect).
const ARCH_SPECIFIC: &[&str] = &[
    "arch_prctl",
    "modify_ldt",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
    "riscv_flush_icache",
];

/// Calls allowed only when the container has the capability.
const WITH_CAPABILITY: &[(Capability, &[&str])] = &[
    (
        Capability::CAP_SYS_ADMIN,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (
        Capability::CAP_DAC_READ_SEARCH,
        &["open_by_handle_at", "name_to_handle_at"],
    ),
    (Capability::CAP_SYS_BOOT, &["reboot"]),
    (Capability::CAP_SYS_CHROOT, &["chroot"]),
    (
        Capability::CAP_SYS_MODULE,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::CAP_SYS_PACCT, &["acct"]),
    (
        Capability::CAP_SYS_PTRACE,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::CAP_SYS_RAWIO, &["iopl", "ioperm"]),
    (
        Capability::CAP_SYS_TIME,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::CAP_SYS_TTY_CONFIG, &["vhangup"]),
    (
        Capability::CAP_SYS_NICE,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::CAP_SYSLOG, &["syslog"]),
    (Capability::CAP_BPF, &["bpf"]),
    (Capability::CAP_PERFMON, &["perf_event_open"]),
];

impl Policy {
    /// The effect of Docker's default profile for a container with `caps` (its bounding set): an
    /// allowlist, `EPERM` for the rest. Without `CAP_SYS_ADMIN` this refuses, among others, mount,
    /// umount2, pivot_root, the new mount API, unshare, setns, clone with namespace flags (clone3:
    /// `ENOSYS`), bpf and perf_event_open; always: swapon/swapoff, kexec_load/kexec_file_load, keyctl,
    /// add_key, request_key, userfaultfd, io_uring_*, personality with other than Docker's values,
    /// `AF_ALG`/`AF_VSOCK` sockets; the module, clock, reboot, acct, ptrace-family and raw-I/O calls
    /// unless the matching capability was added.
    pub fn docker_default(caps: &CapsHashSet) -> Policy {
        let allow = |names: &[&str], args| Rule::new(names, Action::Allow, args);
        let mut rules = vec![allow(ALWAYS, vec![]), allow(ARCH_SPECIFIC, vec![])];
        for family in [
            ArgCheck::new(0, Op::Lt, AF_ALG),
            ArgCheck::new(0, Op::Eq, AF_ALG + 1),
            ArgCheck::new(0, Op::Gt, AF_VSOCK),
        ] {
            rules.push(allow(&["socket"], vec![family]));
        }
        for &p in PERSONALITIES {
            rules.push(allow(&["personality"], vec![ArgCheck::new(0, Op::Eq, p)]));
        }
        for (cap, names) in WITH_CAPABILITY {
            if caps.contains(cap) {
                rules.push(allow(names, vec![]));
            }
        }
        if !caps.contains(&Capability::CAP_SYS_ADMIN) {
            let no_namespaces = ArgCheck {
                index: 0,
                value: CLONE_NAMESPACE_FLAGS,
                value_two: 0,
                op: Op::MaskedEq,
            };
            rules.push(allow(&["clone"], vec![no_namespaces]));
            rules.push(Rule::new(&["clone3"], Action::Errno(ENOSYS), vec![]));
        }
        Policy {
            default_action: Action::Errno(EPERM),
            rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker_default_capabilities;

    #[test]
    fn the_default_gates_calls_on_capabilities() {
        let names = |p: &Policy, action: Action| -> Vec<String> {
            p.rules
                .iter()
                .filter(|r| r.action == action)
                .flat_map(|r| r.names.clone())
                .collect()
        };
        let default = Policy::docker_default(&docker_default_capabilities());
        let allowed = names(&default, Action::Allow);
        for denied in [
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "bpf",
            "swapoff",
            "reboot",
        ] {
            assert!(
                !allowed.iter().any(|n| n == denied),
                "{denied} allowed by default"
            );
        }
        for ok in ["read", "execve", "capset", "setresuid", "chroot", "mknodat"] {
            assert!(allowed.iter().any(|n| n == ok), "{ok} not allowed by default");
        }
        assert_eq!(names(&default, Action::Errno(ENOSYS)), ["clone3"]);
        let mut with_admin = docker_default_capabilities();
        with_admin.insert(Capability::CAP_SYS_ADMIN);
        let admin = Policy::docker_default(&with_admin);
        let allowed = names(&admin, Action::Allow);
        assert!(allowed.iter().any(|n| n == "mount") && allowed.iter().any(|n| n == "clone3"));
        assert!(names(&admin, Action::Errno(ENOSYS)).is_empty());
        // pivot_root is not in any list: refused even with CAP_SYS_ADMIN, as in Docker.
        assert!(!allowed.iter().any(|n| n == "pivot_root"));
        assert!(default.compile().unwrap().programs() == 2 && admin.compile().unwrap().programs() == 1);
    }
}
