//! The parsers' unit tests: every syntax with Docker's own error messages.

use std::path::Path;

use super::mount_flag::ram_in_bytes;
use super::*;
use crate::spec::{BindRecursive, Propagation, TmpfsOptions, TmpfsSize};

const CWD: &str = "/home/me/proj";

fn v(s: &str) -> Result<MountSpec> {
    parse_volume_in(s, Some(Path::new(CWD)))
}
fn m(s: &str) -> Result<MountSpec> {
    parse_mount_in(s, Some(Path::new(CWD)))
}
fn t(s: &str) -> Result<MountSpec> {
    parse_tmpfs_flag(s)
}
fn err(r: Result<MountSpec>) -> String {
    match r {
        Ok(spec) => panic!("expected an error, got {spec:?}"),
        Err(e) => e.to_string(),
    }
}
fn bind(
    source: &str,
    target: &str,
    readonly: bool,
    propagation: Propagation,
    recursive: BindRecursive,
    create_source: bool,
) -> MountSpec {
    MountSpec::Bind {
        source: source.into(),
        target: target.into(),
        readonly,
        propagation,
        recursive,
        create_source,
    }
}
fn volume(name: Option<&str>, target: &str, readonly: bool, nocopy: bool) -> MountSpec {
    MountSpec::Volume {
        name: name.map(String::from),
        target: target.into(),
        readonly,
        nocopy,
        driver_opts: vec![],
        subpath: None,
    }
}
use BindRecursive as R;
use Propagation as P;

// ---- -v ----

#[test]
fn v_anonymous_volume() {
    assert_eq!(v("/data").unwrap(), volume(None, "/data", false, false));
}

#[test]
fn v_named_volume_and_modes() {
    assert_eq!(
        v("todo-list:/data").unwrap(),
        volume(Some("todo-list"), "/data", false, false)
    );
    assert_eq!(
        v("todo-list:/data:ro").unwrap(),
        volume(Some("todo-list"), "/data", true, false)
    );
    assert_eq!(
        v("todo-list:/data:nocopy,rw,z").unwrap(),
        volume(Some("todo-list"), "/data", false, true)
    );
    assert_eq!(
        v("a1:/data:Z,cached").unwrap(),
        volume(Some("a1"), "/data", false, false)
    );
}

#[test]
fn v_bind_and_modes() {
    assert_eq!(
        v("/srv/www:/www").unwrap(),
        bind("/srv/www", "/www", false, P::RPrivate, R::Enabled, true)
    );
    assert_eq!(
        v("/srv/www:/www:ro").unwrap(),
        bind("/srv/www", "/www", true, P::RPrivate, R::Enabled, true)
    );
    assert_eq!(
        v("/srv//www/:/www:rshared,ro,z").unwrap(),
        bind("/srv/www", "/www", true, P::RShared, R::Enabled, true)
    );
    for p in Propagation::ALL {
        let MountSpec::Bind { propagation, .. } = v(&format!("/s:/t:{p}")).unwrap() else {
            panic!()
        };
        assert_eq!(propagation, p);
    }
}

#[test]
fn v_dot_sources_are_made_absolute() {
    assert_eq!(
        v(".:/src").unwrap(),
        bind(CWD, "/src", false, P::RPrivate, R::Enabled, true)
    );
    assert_eq!(
        v("./sub/../x:/src").unwrap(),
        bind("/home/me/proj/x", "/src", false, P::RPrivate, R::Enabled, true)
    );
}

#[test]
fn v_target_is_cleaned() {
    assert_eq!(
        v("/h:/a/./b/../c/").unwrap(),
        bind("/h", "/a/c", false, P::RPrivate, R::Enabled, true)
    );
    assert_eq!(v("/a/../../data").unwrap(), volume(None, "/data", false, false));
}

#[test]
fn v_errors_quote_the_input() {
    assert_eq!(err(v("/a:/b:ro:x")), "invalid volume specification: '/a:/b:ro:x'");
    assert_eq!(err(v(":/b")), "invalid volume specification: ':/b'");
    assert_eq!(err(v("")), "invalid volume specification: ''");
    assert_eq!(err(v("/data:ro")), "invalid volume specification: '/data:ro'");
    assert_eq!(err(v("name:")), "invalid volume specification: 'name:'");
    assert_eq!(err(v("/a:/b:rx")), "invalid mode: rx");
    assert_eq!(err(v("/a:/b:ro,rw")), "invalid mode: ro,rw");
    assert_eq!(err(v("/a:/b:shared,slave")), "invalid mode: shared,slave");
    assert_eq!(err(v("/a:/b:z,Z")), "invalid mode: z,Z");
    assert_eq!(err(v("/a:/b:RO")), "invalid mode: RO");
    assert_eq!(
        err(v("/a:data")),
        "invalid mount config for type \"bind\": invalid mount path: 'data' mount path must be absolute"
    );
    assert_eq!(
        err(v("data")),
        "invalid mount config for type \"volume\": invalid mount path: 'data' mount path must be absolute"
    );
    assert_eq!(
        err(v("/a:/")),
        "invalid mount config for type \"bind\": invalid specification: destination can't be '/' (got '/')"
    );
    assert_eq!(
        err(v("/a:/x/..")),
        "invalid mount config for type \"bind\": invalid specification: destination can't be '/' (got '/x/..')"
    );
    assert_eq!(
        err(v("n1::ro")),
        "invalid mount config for type \"volume\": field Target must not be empty"
    );
    assert_eq!(
        err(v("/a:/b:nocopy")),
        "invalid mount config for type \"bind\": field VolumeOptions must not be specified"
    );
    assert_eq!(
        err(v("vol:/b:rshared")),
        "invalid mount config for type \"volume\": field BindOptions must not be specified"
    );
    for name in ["foo/bar", "a", "_x", "../x", "~/x"] {
        let e = err(v(&format!("{name}:/b")));
        assert!(
            e.starts_with(&format!("\"{name}\" includes invalid characters")),
            "{e}"
        );
        assert!(e.contains("use absolute path"), "{e}");
    }
}

// ---- --mount ----

#[test]
fn mount_bind_forms() {
    assert_eq!(
        m("type=bind,source=/h,target=/c").unwrap(),
        bind("/h", "/c", false, P::RPrivate, R::Enabled, false)
    );
    assert_eq!(
        m("type=bind,src=/h/,dst=/c/,readonly").unwrap(),
        bind("/h", "/c", true, P::RPrivate, R::Enabled, false)
    );
    assert_eq!(
        m("Type=BIND,Source=/h,Destination=/c,ro=true,bind-propagation=RSLAVE").unwrap(),
        bind("/h", "/c", true, P::RSlave, R::Enabled, false)
    );
    assert_eq!(
        m("type=bind,source=/h,target=/c,ro=false").unwrap(),
        bind("/h", "/c", false, P::RPrivate, R::Enabled, false)
    );
    assert_eq!(
        m("type=bind,source=/h,target=/c,bind-recursive=disabled").unwrap(),
        bind("/h", "/c", false, P::RPrivate, R::Disabled, false)
    );
    assert_eq!(
        m("type=bind,source=/h,target=/c,bind-nonrecursive").unwrap(),
        bind("/h", "/c", false, P::RPrivate, R::Disabled, false)
    );
    assert_eq!(
        m("type=bind,source=/h,target=/c,readonly,bind-recursive=writable").unwrap(),
        bind("/h", "/c", true, P::RPrivate, R::Writable, false)
    );
    assert_eq!(
        m("type=bind,source=/h,target=/c,readonly,bind-recursive=readonly,bind-propagation=rprivate")
            .unwrap(),
        bind("/h", "/c", true, P::RPrivate, R::Readonly, false)
    );
    assert_eq!(
        m("type=bind,source=/h,target=/c,bind-recursive=enabled,consistency=cached").unwrap(),
        bind("/h", "/c", false, P::RPrivate, R::Enabled, false)
    );
    assert_eq!(
        m("type=bind,src=.,target=/c").unwrap(),
        bind(CWD, "/c", false, P::RPrivate, R::Enabled, false)
    );
}

#[test]
fn mount_csv_quoting() {
    assert_eq!(
        m("type=bind,\"source=/h,with,commas\",target=/c").unwrap(),
        bind("/h,with,commas", "/c", false, P::RPrivate, R::Enabled, false)
    );
    assert_eq!(
        m("\"type=bind\",\"source=/say \"\"hi\"\"\",target=/c").unwrap(),
        bind("/say \"hi\"", "/c", false, P::RPrivate, R::Enabled, false)
    );
}

#[test]
fn mount_volume_forms() {
    assert_eq!(m("target=/data").unwrap(), volume(None, "/data", false, false));
    assert_eq!(
        m("type=volume,source=todo-list,target=/data").unwrap(),
        volume(Some("todo-list"), "/data", false, false)
    );
    assert_eq!(
        m("src=todo-list,dst=/data,readonly,volume-nocopy").unwrap(),
        volume(Some("todo-list"), "/data", true, true)
    );
    assert_eq!(
        m("src=todo-list,dst=/data,volume-nocopy=false").unwrap(),
        volume(Some("todo-list"), "/data", false, false)
    );
    let spec = m("type=volume,src=nfs1,dst=/d,volume-driver=local,volume-opt=type=nfs,\"volume-opt=o=addr=10.0.0.1,rw\",volume-opt=device=:/x,volume-opt=type=nfs4")
        .unwrap();
    let MountSpec::Volume { driver_opts, .. } = spec else {
        panic!()
    };
    let kv = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        driver_opts,
        kv(&[("type", "nfs4"), ("o", "addr=10.0.0.1,rw"), ("device", ":/x")])
    );
}

#[test]
fn mount_tmpfs_forms() {
    let MountSpec::Tmpfs { target, options } =
        m("type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770,readonly").unwrap()
    else {
        panic!()
    };
    assert_eq!(target, Path::new("/run"));
    assert_eq!(options.size, Some(TmpfsSize::Bytes(64 << 20)));
    assert_eq!(options.mode, Some(0o1770));
    assert!(options.readonly && options.noexec && options.nosuid && options.nodev);
    let MountSpec::Tmpfs { options, .. } = m("type=tmpfs,dst=/run,tmpfs-size=0,tmpfs-mode=0").unwrap() else {
        panic!()
    };
    assert_eq!((options.size, options.mode), (None, None));
}

#[test]
fn mount_ram_sizes() {
    for (s, n) in [
        ("100", 100u64),
        ("10b", 10),
        ("1k", 1024),
        ("1K", 1024),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("64m", 64 << 20),
        ("64 MB", 64 << 20),
        ("1.5g", 3 << 29),
        ("2t", 2 << 40),
    ] {
        assert_eq!(ram_in_bytes(s), Some(n), "{s}");
    }
    for s in ["", "m", "-1", "1x", "1kk", "1kibb", "1.2.3", "1bb", " "] {
        assert_eq!(ram_in_bytes(s), None, "{s}");
    }
}

#[test]
fn mount_errors_quote_the_input() {
    let cases: &[(&str, &str)] = &[
        ("", "invalid --mount value '': empty value"),
        (
            "type=bind,source=/a\"b,target=/c",
            "invalid --mount value 'type=bind,source=/a\"b,target=/c': bare \" in non-quoted field",
        ),
        (
            "\"type=bind,target=/c",
            "invalid --mount value '\"type=bind,target=/c': a quoted field is not closed",
        ),
        (
            "\"type=bind\"x,target=/c",
            "invalid --mount value '\"type=bind\"x,target=/c': extraneous \" in quoted field",
        ),
        (
            "type=bind,bogus,target=/c",
            "invalid field 'bogus' must be a key=value pair",
        ),
        (
            "type=bind,source=/a,target=/c,ro=maybe",
            "invalid value for ro: maybe",
        ),
        (
            "type=volume,target=/c,volume-nocopy=yes",
            "invalid value for volume-nocopy: yes",
        ),
        (
            "type=tmpfs,target=/c,tmpfs-size=lots",
            "invalid value for tmpfs-size: lots",
        ),
        (
            "type=tmpfs,target=/c,tmpfs-mode=999",
            "invalid value for tmpfs-mode: 999",
        ),
        (
            "type=tmpfs,target=/c,tmpfs-mode=17777",
            "invalid value for tmpfs-mode: 17777",
        ),
        (
            "type=bind,source=/a,target=/c,bind-recursive=maybe",
            "invalid value for bind-recursive: maybe (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")",
        ),
        (
            "type=bind,source=/a,target=/c,colour=red",
            "unexpected key 'colour' in 'colour=red'",
        ),
        (
            "type=bind,source=/a",
            "target is required (in --mount 'type=bind,source=/a')",
        ),
        (
            "type=,target=/c",
            "type is required (in --mount 'type=,target=/c')",
        ),
        (
            "type=bind,source=/a,target=/c,volume-nocopy",
            "cannot mix 'volume-*' options with mount type 'bind'",
        ),
        (
            "type=volume,target=/c,bind-propagation=shared",
            "cannot mix 'bind-*' options with mount type 'volume'",
        ),
        (
            "type=bind,source=/a,target=/c,tmpfs-size=1m",
            "cannot mix 'tmpfs-*' options with mount type 'bind'",
        ),
        (
            "type=bind,source=/a,target=/c,bind-recursive=writable",
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction",
        ),
        (
            "type=bind,source=/a,target=/c,bind-recursive=readonly",
            "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction",
        ),
        (
            "type=bind,source=/a,target=/c,ro,bind-recursive=readonly",
            "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction (got '')",
        ),
        (
            "type=bind,source=/a,target=c",
            "invalid mount config for type \"bind\": invalid mount path: 'c' mount path must be absolute",
        ),
        (
            "type=bind,source=/a,target=/",
            "invalid mount config for type \"bind\": invalid specification: destination can't be '/' (got '/')",
        ),
        (
            "type=bind,target=/c",
            "invalid mount config for type \"bind\": field Source must not be empty",
        ),
        (
            "type=bind,source=a,target=/c",
            "invalid mount config for type \"bind\": invalid mount path: 'a' mount path must be absolute",
        ),
        (
            "type=bind,source=/a,target=/c,bind-propagation=sideways",
            "invalid mount config for type \"bind\": invalid propagation mode: sideways",
        ),
        (
            "type=volume,target=/c,readonly",
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes",
        ),
        (
            "type=tmpfs,source=/x,target=/c",
            "invalid mount config for type \"tmpfs\": field Source must not be specified",
        ),
        (
            "type=image,source=x,target=/c",
            "invalid mount config for type \"image\": mount type unknown",
        ),
        (
            "type=volume,source=no/slash,target=/c",
            "\"no/slash\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
        ),
        (
            "type=volume,source=v1,target=/c,volume-driver=nfs",
            "unsupported --mount option 'volume-driver=nfs': mountkit has only the \"local\" volume driver",
        ),
        (
            "type=volume,source=v1,target=/c,volume-subpath=/etc",
            "invalid volume-subpath \"/etc\": subpath must be a relative path within the volume",
        ),
        (
            "type=volume,source=v1,target=/c,volume-subpath=../../../../etc/passwd",
            "invalid volume-subpath \"../../../../etc/passwd\": subpath must be a relative path within the volume",
        ),
        (
            "type=volume,source=v1,target=/c,volume-subpath=",
            "invalid volume-subpath \"\": subpath must be a relative path within the volume",
        ),
        (
            "type=volume,target=/c,volume-subpath=x",
            "invalid volume-subpath \"x\": an anonymous volume is new and empty: it has no subpath",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(err(m(input)), *want, "--mount {input:?}");
    }
}

// ---- --tmpfs ----

#[test]
fn tmpfs_forms() {
    assert_eq!(
        t("/run").unwrap(),
        MountSpec::Tmpfs {
            target: "/run".into(),
            options: TmpfsOptions::default()
        }
    );
    let MountSpec::Tmpfs { target, options } =
        t("/run/:rw,size=64m,mode=1777,uid=1000,gid=100,exec,suid,dev,noatime,nr_inodes=1k,huge=within_size,inode64,ro").unwrap()
    else {
        panic!()
    };
    assert_eq!(target, Path::new("/run"));
    assert_eq!(
        options,
        TmpfsOptions {
            size: Some(TmpfsSize::Bytes(64 << 20)),
            mode: Some(0o1777),
            uid: Some(1000),
            gid: Some(100),
            readonly: true,
            noexec: false,
            nosuid: false,
            nodev: false,
            noatime: true,
            data: vec!["nr_inodes=1k".into(), "huge=within_size".into(), "inode64".into()],
        }
    );
    assert_eq!(
        options.data_string(),
        "size=67108864,mode=1777,uid=1000,gid=100,nr_inodes=1k,huge=within_size,inode64"
    );
    let MountSpec::Tmpfs { options, .. } = t("/x:size=50%,,defaults,noexec").unwrap() else {
        panic!()
    };
    assert_eq!(options.size, Some(TmpfsSize::Percent(50)));
    assert!(options.noexec && !options.nosuid && !options.nodev);
    let MountSpec::Tmpfs { options, .. } = t("/x:size=65536k,size=1G").unwrap() else {
        panic!()
    };
    assert_eq!(options.size, Some(TmpfsSize::Bytes(1 << 30)));
}

#[test]
fn tmpfs_errors_quote_the_input() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "invalid mount config for type \"tmpfs\": field Target must not be empty",
        ),
        (
            ":size=1m",
            "invalid mount config for type \"tmpfs\": field Target must not be empty",
        ),
        (
            "run",
            "invalid mount config for type \"tmpfs\": invalid mount path: 'run' mount path must be absolute",
        ),
        (
            "/",
            "invalid mount config for type \"tmpfs\": invalid specification: destination can't be '/' (got '/')",
        ),
        (
            "/run:size=big",
            "invalid tmpfs option 'size=big' in '/run:size=big'",
        ),
        ("/run:size=1x", "invalid tmpfs option 'size=1x' in '/run:size=1x'"),
        ("/run:size=%", "invalid tmpfs option 'size=%' in '/run:size=%'"),
        (
            "/run:mode=1779",
            "invalid tmpfs option 'mode=1779' in '/run:mode=1779'",
        ),
        (
            "/run:mode=77777",
            "invalid tmpfs option 'mode=77777' in '/run:mode=77777'",
        ),
        (
            "/run:uid=root",
            "invalid tmpfs option 'uid=root' in '/run:uid=root'",
        ),
        ("/run:gid=-1", "invalid tmpfs option 'gid=-1' in '/run:gid=-1'"),
        ("/run:rw,bogus", "invalid tmpfs option 'bogus' in '/run:rw,bogus'"),
        (
            "/run:nr_inodes=",
            "invalid tmpfs option 'nr_inodes=' in '/run:nr_inodes='",
        ),
        (
            "/run:colour=red",
            "invalid tmpfs option 'colour=red' in '/run:colour=red'",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(err(t(input)), *want, "--tmpfs {input:?}");
    }
}

#[test]
fn duplicates_are_refused() {
    let specs = [v("/a:/x").unwrap(), v("n1:/y").unwrap(), t("/z").unwrap()];
    check_duplicate_targets(&specs).unwrap();
    let specs = [v("/a:/x").unwrap(), m("type=volume,src=n1,dst=/x/").unwrap()];
    assert_eq!(
        check_duplicate_targets(&specs).unwrap_err().to_string(),
        "Duplicate mount point: /x"
    );
}

#[test]
fn volume_subpath_is_kept_relative_and_clean() {
    let spec = m("type=volume,src=v1,dst=/c,volume-subpath=./sub//dir/,readonly").unwrap();
    let MountSpec::Volume {
        subpath, readonly, ..
    } = spec
    else {
        panic!("not a volume: {spec:?}")
    };
    assert_eq!(subpath.as_deref(), Some(Path::new("sub/dir")));
    assert!(readonly);
    let MountSpec::Volume { subpath, .. } = m("type=volume,src=v1,dst=/c,volume-subpath=file.txt").unwrap()
    else {
        panic!()
    };
    assert_eq!(subpath.as_deref(), Some(Path::new("file.txt")));
}
