//! The container's user: `/etc/passwd` and `/etc/group` parsing and Docker's `--user` resolution.
//!
//! Pure functions over text, so they are unit-tested without privileges. The runner calls them after
//! `pivot_root`, with the files of the *container's* root, never the host's.

use crate::{Error, Result};

/// One line of an `/etc/passwd` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// Numeric user ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Home directory (may be empty).
    pub home: String,
    /// Login shell (may be empty).
    pub shell: String,
}

/// One line of an `/etc/group` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Numeric group ID.
    pub gid: u32,
    /// User names listed as members (the fourth field).
    pub members: Vec<String>,
}

/// The identity a container process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User ID for `setuid`.
    pub uid: u32,
    /// Primary group ID for `setgid`.
    pub gid: u32,
    /// Supplementary groups from the container's `/etc/group` (groups listing the user as a member),
    /// empty when the group was given explicitly (`user:group`), as Docker does.
    pub supplementary: Vec<u32>,
    /// Home directory: the passwd entry's, else `/root` for uid 0, else `/`.
    pub home: String,
}

fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim_end).filter(|l| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with('+') && !t.starts_with('-')
    })
}

/// Parses an `/etc/passwd` file (`name:password:uid:gid:gecos:home:shell`).
///
/// Comments, blank lines, NIS `+`/`-` lines and lines whose uid or gid is not a number are skipped, the
/// way libc's lookups skip them; missing trailing fields are empty.
///
/// ```
/// let users = mountkit_ns_runner::parse_passwd("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:\n");
/// assert_eq!(users[1].name, "app");
/// assert_eq!(users[1].uid, 1000);
/// ```
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    data_lines(text)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or("");
            Some(PasswdEntry {
                name: field(0).to_string(),
                uid: field(2).parse().ok()?,
                gid: field(3).parse().ok()?,
                home: field(5).to_string(),
                shell: field(6).to_string(),
            })
        })
        .collect()
}

/// Parses an `/etc/group` file (`name:password:gid:member,member`), skipping what libc would skip.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    data_lines(text)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or("");
            Some(GroupEntry {
                name: field(0).to_string(),
                gid: field(2).parse().ok()?,
                members: field(3)
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

fn user_err(cause: String) -> Error {
    Error::Setup { step: "user", cause }
}

/// Resolves Docker's `--user` value (`user`, `uid`, `user:group`, `uid:gid`, or none for root) against
/// the container's passwd and group entries, with Docker's rules:
///
/// - a user name must exist in passwd ("unable to find user app: no matching entries in passwd file");
///   a numeric uid need not (its gid is then 0 unless a group is given);
/// - the primary group is the passwd entry's, unless `:group` names one (a group name must exist in
///   the group file, a numeric gid need not);
/// - supplementary groups are the groups that list the user as a member, only when no group was given;
/// - the home directory comes from the passwd entry, else `/root` for uid 0, else `/`.
///
/// ```
/// use mountkit_ns_runner::{parse_group, parse_passwd, resolve_user};
/// let pw = parse_passwd("app:x:1000:1000::/home/app:/bin/sh\n");
/// let gr = parse_group("app:x:1000:\naudio:x:29:app\n");
/// let u = resolve_user(Some("app"), &pw, &gr).unwrap();
/// assert_eq!((u.uid, u.gid, u.supplementary.clone(), u.home.as_str()), (1000, 1000, vec![29], "/home/app"));
/// assert!(resolve_user(Some("nobody2"), &pw, &gr).is_err());
/// ```
pub fn resolve_user(
    spec_user: Option<&str>,
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
) -> Result<ResolvedUser> {
    let spec = spec_user.unwrap_or("");
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let uid_arg: Option<u32> = user_arg.parse().ok();
    let entry = if user_arg.is_empty() {
        passwd.iter().find(|e| e.uid == 0)
    } else if let Some(uid) = uid_arg {
        passwd.iter().find(|e| e.uid == uid)
    } else {
        passwd.iter().find(|e| e.name == user_arg)
    };
    let (uid, mut gid, home) = match (entry, uid_arg) {
        (Some(e), _) => (e.uid, e.gid, Some(e.home.clone()).filter(|h| !h.is_empty())),
        (None, _) if user_arg.is_empty() => (0, 0, None),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => {
            return Err(user_err(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            )));
        }
    };
    let mut supplementary = Vec::new();
    if !group_arg.is_empty() {
        let gid_arg: Option<u32> = group_arg.parse().ok();
        let found = match gid_arg {
            Some(g) => group.iter().find(|e| e.gid == g),
            None => group.iter().find(|e| e.name == group_arg),
        };
        gid = match (found, gid_arg) {
            (Some(e), _) => e.gid,
            (None, Some(g)) => g,
            (None, None) => {
                return Err(user_err(format!(
                    "unable to find group {group_arg}: no matching entries in group file"
                )));
            }
        };
    } else if let Some(e) = entry {
        for g in group.iter().filter(|g| g.members.contains(&e.name)) {
            if !supplementary.contains(&g.gid) {
                supplementary.push(g.gid);
            }
        }
    }
    let home = home.unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() });
    Ok(ResolvedUser {
        uid,
        gid,
        supplementary,
        home,
    })
}

/// Resolves extra groups (Docker's `--group-add`): each a group name from the container's group file or
/// a numeric gid (which need not exist). An unknown name is an error.
pub fn resolve_additional_groups(names: &[String], group: &[GroupEntry]) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for name in names {
        let gid = match group.iter().find(|g| g.name == *name) {
            Some(g) => g.gid,
            None => name.parse::<u32>().map_err(|_| {
                user_err(format!(
                    "unable to find group {name}: no matching entries in group file"
                ))
            })?,
        };
        if !out.contains(&gid) {
            out.push(gid);
        }
    }
    Ok(out)
}

/// Docker's default `PATH`, used when the command's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment the command receives: exactly `env` (`K=V` strings, in order), plus Docker's default
/// `PATH` when `env` has no `PATH`, `HOSTNAME` when a hostname is set and `env` has none, and `HOME`
/// (from the resolved user) when `env` has none.
///
/// ```
/// let env = mountkit_ns_runner::build_env(&["A=1".to_string()], Some("box"), "/root");
/// assert_eq!(env, ["A=1", &format!("PATH={}", mountkit_ns_runner::DEFAULT_PATH), "HOSTNAME=box", "HOME=/root"]);
/// ```
pub fn build_env(env: &[String], hostname: Option<&str>, home: &str) -> Vec<String> {
    let has = |key: &str| {
        env.iter()
            .any(|kv| kv.split_once('=').is_some_and(|(k, _)| k == key))
    };
    let mut out = env.to_vec();
    if !has("PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if let Some(h) = hostname
        && !has("HOSTNAME")
    {
        out.push(format!("HOSTNAME={h}"));
    }
    if !has("HOME") {
        out.push(format!("HOME={home}"));
    }
    out
}

/// The value of `key` in a `K=V` environment, if present (the first occurrence wins, as `getenv`).
pub(crate) fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# comment
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1001:App,,,:/home/app:/bin/sh
broken:x:notanumber:1::/:
nohome:x:1002:1002
+nisuser
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,app
appgrp:x:1001:
audio:x:29:app, other
staff:x:50:
badgid:x:zz:app
";

    fn pw() -> Vec<PasswdEntry> {
        parse_passwd(PASSWD)
    }
    fn gr() -> Vec<GroupEntry> {
        parse_group(GROUP)
    }

    #[test]
    fn passwd_parsing_skips_comments_malformed_and_nis_lines() {
        let p = pw();
        let names: Vec<&str> = p.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "daemon", "app", "nohome"]);
        assert_eq!(
            p[2],
            PasswdEntry {
                name: "app".into(),
                uid: 1000,
                gid: 1001,
                home: "/home/app".into(),
                shell: "/bin/sh".into()
            }
        );
        assert_eq!(p[3].home, "");
        assert_eq!(p[3].shell, "");
    }

    #[test]
    fn group_parsing_reads_members() {
        let g = gr();
        let names: Vec<&str> = g.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "wheel", "appgrp", "audio", "staff"]);
        assert_eq!(g[1].members, ["root", "app"]);
        assert_eq!(g[3].members, ["app", "other"]);
        assert!(g[0].members.is_empty());
    }

    #[test]
    fn no_user_is_root_with_roots_groups_and_home() {
        let u = resolve_user(None, &pw(), &gr()).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.supplementary, [10]);
    }

    #[test]
    fn root_without_entries_gets_root_home() {
        let u = resolve_user(None, &[], &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert!(u.supplementary.is_empty());
    }

    #[test]
    fn numeric_uid_without_entry() {
        let u = resolve_user(Some("4242"), &pw(), &gr()).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        assert!(u.supplementary.is_empty());
    }

    #[test]
    fn numeric_uid_with_entry_uses_the_entry() {
        let u = resolve_user(Some("1000"), &pw(), &gr()).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1001, "/home/app"));
        assert_eq!(u.supplementary, [10, 29]);
    }

    #[test]
    fn name_resolves_uid_gid_home_and_supplementary_groups() {
        let u = resolve_user(Some("app"), &pw(), &gr()).unwrap();
        assert_eq!(
            u,
            ResolvedUser {
                uid: 1000,
                gid: 1001,
                supplementary: vec![10, 29],
                home: "/home/app".into()
            }
        );
    }

    #[test]
    fn name_colon_group_sets_primary_group_and_no_supplementary() {
        let u = resolve_user(Some("app:staff"), &pw(), &gr()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert!(u.supplementary.is_empty());
    }

    #[test]
    fn uid_colon_gid_numeric_needs_no_entries() {
        let u = resolve_user(Some("1000:1000"), &[], &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/"));
        let u = resolve_user(Some("7:29"), &pw(), &gr()).unwrap();
        assert_eq!((u.uid, u.gid), (7, 29));
    }

    #[test]
    fn trailing_colon_means_no_group() {
        let u = resolve_user(Some("app:"), &pw(), &gr()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
        assert_eq!(u.supplementary, [10, 29]);
    }

    #[test]
    fn unknown_user_name_is_a_clear_error() {
        let e = resolve_user(Some("ghost"), &pw(), &gr()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "container setup failed (user): unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn unknown_group_name_is_a_clear_error() {
        let e = resolve_user(Some("app:ghosts"), &pw(), &gr()).unwrap_err();
        assert!(
            e.to_string()
                .contains("unable to find group ghosts: no matching entries in group file"),
            "{e}"
        );
    }

    #[test]
    fn additional_groups_by_name_and_number() {
        let g = resolve_additional_groups(&["audio".into(), "777".into(), "audio".into()], &gr()).unwrap();
        assert_eq!(g, [29, 777]);
        let e = resolve_additional_groups(&["nope".into()], &gr()).unwrap_err();
        assert!(e.to_string().contains("unable to find group nope"), "{e}");
    }

    #[test]
    fn default_path_added_only_when_missing() {
        let env = build_env(&[], None, "/");
        assert_eq!(env, [format!("PATH={DEFAULT_PATH}"), "HOME=/".to_string()]);
        let given = vec![
            "PATH=/bin".to_string(),
            "HOME=/x".to_string(),
            "A=b=c".to_string(),
        ];
        assert_eq!(build_env(&given, None, "/root"), given);
        // A key that merely starts with PATH is not PATH.
        let env = build_env(&["PATHX=1".to_string()], None, "/");
        assert!(env.contains(&format!("PATH={DEFAULT_PATH}")));
    }

    #[test]
    fn hostname_added_unless_given() {
        let env = build_env(&["HOSTNAME=mine".to_string()], Some("box"), "/");
        assert!(env.contains(&"HOSTNAME=mine".to_string()));
        assert!(!env.contains(&"HOSTNAME=box".to_string()));
        assert!(build_env(&[], Some("box"), "/").contains(&"HOSTNAME=box".to_string()));
    }

    #[test]
    fn env_get_finds_first() {
        let env = vec!["A=1".to_string(), "PATH=/x".to_string(), "PATH=/y".to_string()];
        assert_eq!(env_get(&env, "PATH"), Some("/x"));
        assert_eq!(env_get(&env, "B"), None);
    }
}
