//! Registry lifecycle, names, labels, filters, references and prune (no mounts, no privileges needed).

use std::collections::BTreeMap;

use mountkit_volumes::{CreateOptions, Error, Filter, Registry};

fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::open(dir.path().join("volumes")).expect("open registry");
    (dir, reg)
}

fn labels(kv: &[(&str, &str)]) -> CreateOptions {
    CreateOptions {
        labels: kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

fn names(vols: Vec<mountkit_volumes::Volume>) -> Vec<String> {
    vols.into_iter().map(|v| v.name).collect()
}

fn f(s: &str) -> Filter {
    s.parse().expect("filter")
}

#[test]
fn create_get_list_remove() {
    let (_d, reg) = registry();
    let v = reg.create(Some("todo-list"), labels(&[("app", "todo")])).unwrap();
    assert_eq!(v.name, "todo-list");
    assert_eq!(v.driver, "local");
    assert_eq!(v.mountpoint, reg.root().join("todo-list/_data"));
    assert!(v.mountpoint.is_dir());
    assert!(reg.root().join("todo-list/volume.json").is_file());
    assert!(
        humantime::parse_rfc3339(&v.created).is_ok(),
        "created {:?} is RFC 3339",
        v.created
    );
    assert!(!v.anonymous && v.users.is_empty() && !v.populated);

    let got = reg.get("todo-list").unwrap();
    assert_eq!(got, v);
    reg.create(Some("other"), CreateOptions::default()).unwrap();
    assert_eq!(names(reg.list(&[]).unwrap()), ["other", "todo-list"]);

    // Data survives a reopen (another mountkit command).
    std::fs::write(v.mountpoint.join("db"), b"items").unwrap();
    let reg2 = Registry::open(reg.root()).unwrap();
    assert_eq!(
        std::fs::read(reg2.get("todo-list").unwrap().mountpoint.join("db")).unwrap(),
        b"items"
    );

    assert!(reg.remove("todo-list", false).unwrap());
    assert!(!reg.root().join("todo-list").exists());
    assert!(reg.get("todo-list").unwrap_err().is_not_found());
    assert_eq!(names(reg.list(&[]).unwrap()), ["other"]);
    // Unknown name: error, or Ok(false) with force.
    assert!(matches!(
        reg.remove("todo-list", false),
        Err(Error::NotFound { .. })
    ));
    assert!(!reg.remove("todo-list", true).unwrap());
    // Nothing left behind in staging.
    assert_eq!(std::fs::read_dir(reg.root().join(".tmp")).unwrap().count(), 0);
}

#[test]
fn duplicate_name_same_options_returns_existing_differing_is_error() {
    let (_d, reg) = registry();
    let first = reg.create(Some("data"), labels(&[("a", "1")])).unwrap();
    std::fs::write(first.mountpoint.join("keep"), b"x").unwrap();
    // Same driver and options: the existing volume (labels of the second request ignored, as in Docker).
    let again = reg.create(Some("data"), labels(&[("b", "2")])).unwrap();
    assert_eq!(again, first);
    assert!(first.mountpoint.join("keep").exists());
    // Differing options or driver: error naming both.
    let mut tmpfs = CreateOptions::default();
    tmpfs.options.insert("type".into(), "tmpfs".into());
    let err = reg.create(Some("data"), tmpfs).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("\"data\"") && err.to_string().contains("type=tmpfs"),
        "{err}"
    );
    let other_driver = CreateOptions {
        driver: Some("nfs-plugin".into()),
        ..Default::default()
    };
    assert!(matches!(
        reg.create(Some("data"), other_driver),
        Err(Error::UnsupportedDriver { .. })
    ));
    assert_eq!(reg.list(&[]).unwrap().len(), 1);
}

#[test]
fn invalid_name_error_quotes_the_name() {
    let (_d, reg) = registry();
    for bad in ["x", "../escape", "a/b", ".hidden", "-dash"] {
        let err = reg.create(Some(bad), CreateOptions::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }));
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        assert!(reg.get(bad).is_err());
    }
    assert!(reg.list(&[]).unwrap().is_empty());
    assert!(!reg.root().parent().unwrap().join("escape").exists());
}

#[test]
fn invalid_options_create_nothing() {
    let (_d, reg) = registry();
    let mut o = CreateOptions::default();
    o.options.insert("colour".into(), "red".into());
    let err = reg.create(Some("bad-opts"), o).unwrap_err();
    assert!(err.to_string().contains("\"colour\""), "{err}");
    assert!(!reg.exists("bad-opts"));
}

#[test]
fn generated_names_are_64_hex() {
    let (_d, reg) = registry();
    let a = reg.create(None, CreateOptions::default()).unwrap();
    let b = reg
        .create(
            None,
            CreateOptions {
                anonymous: true,
                ..Default::default()
            },
        )
        .unwrap();
    for v in [&a, &b] {
        assert_eq!(v.name.len(), 64, "{}", v.name);
        assert!(v.name.bytes().all(|c| c.is_ascii_hexdigit()));
    }
    assert_ne!(a.name, b.name);
    assert!(!a.anonymous && b.anonymous);
    assert!(reg.get(&b.name).unwrap().anonymous);
}

#[test]
fn labels_and_every_filter_on_list() {
    let (_d, reg) = registry();
    reg.create(Some("web-data"), labels(&[("env", "prod"), ("team", "web")]))
        .unwrap();
    reg.create(Some("web-cache"), labels(&[("env", "dev"), ("team", "web")]))
        .unwrap();
    reg.create(Some("db"), labels(&[("env", "prod")])).unwrap();
    reg.add_ref("db", "c1").unwrap();

    let list = |fs: &[&str]| names(reg.list(&fs.iter().map(|s| f(s)).collect::<Vec<_>>()).unwrap());
    assert_eq!(
        reg.get("web-data").unwrap().labels,
        BTreeMap::from([
            ("env".to_string(), "prod".to_string()),
            ("team".to_string(), "web".to_string())
        ])
    );
    assert_eq!(list(&["label=team"]), ["web-cache", "web-data"]);
    assert_eq!(list(&["label=env=prod"]), ["db", "web-data"]);
    assert_eq!(list(&["label!=team"]), ["db"]);
    assert_eq!(list(&["label!=env=prod"]), ["web-cache"]);
    assert_eq!(list(&["label=env=prod", "label=team"]), ["web-data"]);
    assert_eq!(list(&["dangling=true"]), ["web-cache", "web-data"]);
    assert_eq!(list(&["dangling=false"]), ["db"]);
    assert_eq!(list(&["name=web"]), ["web-cache", "web-data"]);
    assert_eq!(list(&["name=cache", "name=db"]), ["db", "web-cache"]);
    assert_eq!(list(&["name=web", "dangling=false"]), Vec::<String>::new());
    assert_eq!(list(&["driver=local"]).len(), 3);
}

#[test]
fn prune_anonymous_only_unless_all_and_keeps_referenced() {
    let (_d, reg) = registry();
    let anon = CreateOptions {
        anonymous: true,
        ..Default::default()
    };
    let a1 = reg.create(None, anon.clone()).unwrap().name;
    let a2 = reg.create(None, anon.clone()).unwrap().name;
    reg.create(Some("named-free"), CreateOptions::default()).unwrap();
    reg.create(Some("named-used"), CreateOptions::default()).unwrap();
    reg.add_ref(&a2, "c1").unwrap();
    reg.add_ref("named-used", "c2").unwrap();

    assert_eq!(reg.prune(false, &[]).unwrap(), [a1]);
    let mut left = names(reg.list(&[]).unwrap());
    left.sort();
    let mut want = vec![a2.clone(), "named-free".to_string(), "named-used".to_string()];
    want.sort();
    assert_eq!(left, want);

    assert_eq!(reg.prune(true, &[]).unwrap(), ["named-free"]);
    let mut left = names(reg.list(&[]).unwrap());
    left.sort();
    let mut want = vec![a2.clone(), "named-used".to_string()];
    want.sort();
    assert_eq!(left, want);

    // Once the references go, prune takes them.
    reg.remove_ref(&a2, "c1").unwrap();
    reg.remove_ref("named-used", "c2").unwrap();
    assert_eq!(reg.prune(false, &[]).unwrap(), [a2]);
    assert_eq!(reg.prune(true, &[]).unwrap(), ["named-used"]);
    assert!(reg.list(&[]).unwrap().is_empty());
}

#[test]
fn prune_with_filters() {
    let (_d, reg) = registry();
    for (n, env) in [
        ("keep-1", "prod"),
        ("drop-1", "dev"),
        ("drop-2", "dev"),
        ("bare", ""),
    ] {
        let o = if env.is_empty() {
            CreateOptions::default()
        } else {
            labels(&[("env", env)])
        };
        reg.create(Some(n), o).unwrap();
    }
    assert_eq!(
        reg.prune(true, &[f("label=env=dev")]).unwrap(),
        ["drop-1", "drop-2"]
    );
    assert_eq!(reg.prune(true, &[f("label!=env")]).unwrap(), ["bare"]);
    assert!(reg.prune(true, &[f("name=nothing")]).unwrap().is_empty());
    assert!(reg.prune(true, &[f("dangling=false")]).unwrap().is_empty());
    assert_eq!(names(reg.list(&[]).unwrap()), ["keep-1"]);
    assert_eq!(
        reg.prune(true, &[f("label=env"), f("name=keep")]).unwrap(),
        ["keep-1"]
    );
}

#[test]
fn referenced_volume_cannot_be_removed_even_with_force() {
    let (_d, reg) = registry();
    let v = reg.create(Some("todo-list"), CreateOptions::default()).unwrap();
    std::fs::write(v.mountpoint.join("db"), b"x").unwrap();
    reg.add_ref("todo-list", "c2").unwrap();
    reg.add_ref("todo-list", "c1").unwrap();
    reg.add_ref("todo-list", "c1").unwrap(); // idempotent
    assert_eq!(reg.get("todo-list").unwrap().users, ["c1", "c2"]);
    for force in [false, true] {
        let err = reg.remove("todo-list", force).unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume todo-list is in use by container(s) c1, c2; remove them first"
        );
    }
    assert!(v.mountpoint.join("db").exists());
    reg.remove_ref("todo-list", "c1").unwrap();
    reg.remove_ref("todo-list", "c1").unwrap(); // idempotent
    assert!(
        reg.remove("todo-list", false)
            .unwrap_err()
            .to_string()
            .contains("container(s) c2;")
    );
    reg.remove_ref("todo-list", "c2").unwrap();
    assert!(reg.remove("todo-list", false).unwrap());
    assert!(reg.add_ref("todo-list", "c3").unwrap_err().is_not_found());
}

#[test]
fn active_users_block_removal_and_reconcile_forgets_dead_ones() {
    let (_d, reg) = registry();
    reg.create(Some("plain"), CreateOptions::default()).unwrap();
    let path = reg.acquire("plain", "c1").unwrap();
    assert_eq!(path, reg.data_path("plain"));
    assert_eq!(reg.get("plain").unwrap().active, ["c1"]);
    assert!(matches!(reg.remove("plain", true), Err(Error::Active { .. })));
    assert!(reg.prune(true, &[]).unwrap().is_empty());
    reg.reconcile(&|u| u != "c1").unwrap();
    assert!(reg.get("plain").unwrap().active.is_empty());
    assert!(reg.remove("plain", false).unwrap());
}

#[test]
fn stale_staging_is_swept_by_the_next_create_or_remove() {
    let (_d, reg) = registry();
    reg.create(Some("keep"), CreateOptions::default()).unwrap();
    // What a create and a removal killed half-way leave in staging.
    let stale = |n: &str| {
        let p = reg.root().join(".tmp").join(n);
        std::fs::create_dir_all(p.join("_data")).unwrap();
        std::fs::write(p.join("_data/f"), b"x").unwrap();
        p
    };
    let (dead_create, dead_rm) = (stale("create-dead"), stale("rm-dead"));
    // Opening and reconciling (every command) does not look at staging...
    let reg2 = Registry::open(reg.root()).unwrap();
    reg2.reconcile(&|_| true).unwrap();
    assert!(dead_create.exists() && dead_rm.exists());
    // ...the next command that uses staging does.
    reg2.create(Some("another"), CreateOptions::default()).unwrap();
    assert!(!dead_create.exists() && !dead_rm.exists());
    assert_eq!(std::fs::read_dir(reg.root().join(".tmp")).unwrap().count(), 0);
    let again = stale("create-again");
    assert!(reg2.remove("keep", false).unwrap());
    assert!(!again.exists());
    assert_eq!(std::fs::read_dir(reg.root().join(".tmp")).unwrap().count(), 0);
    assert_eq!(names(reg.list(&[]).unwrap()), ["another"]);
}

fn idle(reg: &Registry) -> bool {
    reg.root().join(".idle").exists()
}

fn in_use_index(reg: &Registry) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.root().join(".active.json")).unwrap()).unwrap();
    serde_json::from_value(v["volumes"].clone()).unwrap()
}

/// Edits a record by hand (what a crash can leave: a record that says "in use" with nobody left).
fn edit_record(reg: &Registry, name: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let path = reg.root().join(name).join("volume.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn this_boot() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn reconcile_skips_only_while_nothing_is_in_use() {
    let (_d, reg) = registry();
    reg.reconcile(&|_| true).unwrap();
    assert!(idle(&reg), "an empty registry is idle after its first reconcile");
    reg.create(Some("a-vol"), CreateOptions::default()).unwrap();
    reg.create(Some("b-vol"), CreateOptions::default()).unwrap();
    assert!(idle(&reg), "creating does not put anything in use");

    reg.acquire("a-vol", "c1").unwrap();
    reg.acquire("b-vol", "c2").unwrap();
    assert!(!idle(&reg));
    assert_eq!(in_use_index(&reg), ["a-vol", "b-vol"]);

    // "Crash": nobody releases. The next command (a new open) reconciles: c2 is dead, c1 lives.
    let next = Registry::open(reg.root()).unwrap();
    next.reconcile(&|u| u == "c1").unwrap();
    assert!(reg.get("b-vol").unwrap().active.is_empty());
    assert_eq!(reg.get("a-vol").unwrap().active, ["c1"]);
    assert_eq!(in_use_index(&reg), ["a-vol"]);
    assert!(!idle(&reg));
    // The last release makes the registry idle again.
    reg.release("a-vol", "c1").unwrap();
    assert!(idle(&reg));
    assert!(in_use_index(&reg).is_empty());

    // The fast path is real: while `.idle` is there, a record that says "in use" is not even read...
    edit_record(&reg, "a-vol", |v| {
        v["active"] = serde_json::json!(["ghost"]);
        v["active_boot"] = this_boot().into();
    });
    let next = Registry::open(reg.root()).unwrap();
    next.reconcile(&|_| false).unwrap();
    assert_eq!(reg.get("a-vol").unwrap().active, ["ghost"]);
    // ...and without `.idle` (and without an index of this boot) every record is looked at.
    std::fs::remove_file(reg.root().join(".idle")).unwrap();
    std::fs::remove_file(reg.root().join(".active.json")).unwrap();
    let next = Registry::open(reg.root()).unwrap();
    next.reconcile(&|_| false).unwrap();
    assert!(reg.get("a-vol").unwrap().active.is_empty());
    assert!(idle(&reg));
}

#[test]
fn an_index_of_another_boot_is_not_trusted() {
    let (_d, reg) = registry();
    reg.create(Some("a-vol"), CreateOptions::default()).unwrap();
    reg.create(Some("b-vol"), CreateOptions::default()).unwrap();
    reg.acquire("a-vol", "dead-1").unwrap();
    reg.acquire("b-vol", "dead-2").unwrap();
    // An index that names only a-vol and claims another boot: reconcile must read every record.
    std::fs::write(
        reg.root().join(".active.json"),
        br#"{"boot_id":"00000000-0000-0000-0000-000000000000","volumes":["a-vol"]}"#,
    )
    .unwrap();
    Registry::open(reg.root()).unwrap().reconcile(&|_| false).unwrap();
    assert!(reg.get("a-vol").unwrap().active.is_empty());
    assert!(reg.get("b-vol").unwrap().active.is_empty());
    assert!(idle(&reg));
    // The same when the index is gone and acquire has to rebuild it: the other volume is not forgotten.
    reg.acquire("a-vol", "dead-3").unwrap();
    std::fs::remove_file(reg.root().join(".active.json")).unwrap();
    reg.acquire("b-vol", "dead-4").unwrap();
    assert_eq!(in_use_index(&reg), ["a-vol", "b-vol"]);
}

#[test]
fn users_recorded_in_another_boot_are_void() {
    let (_d, reg) = registry();
    reg.create(Some("plain"), CreateOptions::default()).unwrap();
    reg.acquire("plain", "c1").unwrap();
    assert_eq!(reg.get("plain").unwrap().active_boot(), this_boot());
    assert!(matches!(reg.remove("plain", false), Err(Error::Active { .. })));
    // A power loss took the machine down while c1 ran; the `.idle` marker may even say "idle".
    edit_record(&reg, "plain", |v| {
        v["active_boot"] = "00000000-0000-0000-0000-000000000000".into();
    });
    std::fs::write(reg.root().join(".idle"), b"").unwrap();
    let v = reg.get("plain").unwrap();
    assert!(v.active.is_empty() && !v.mounted && v.active_boot().is_empty());
    assert!(reg.remove("plain", false).unwrap());
}

#[test]
fn a_create_cut_short_by_a_power_loss_is_no_volume_and_is_adopted() {
    let (_d, reg) = registry();
    reg.create(Some("other"), CreateOptions::default()).unwrap();
    // What a power loss can leave of a create whose record was not written back: the directories, an
    // empty (or no) record, and data a container wrote and synced.
    for (name, record) in [("lost-empty", Some(&b""[..])), ("lost-none", None)] {
        let dir = reg.root().join(name);
        std::fs::create_dir_all(dir.join("_data")).unwrap();
        std::fs::write(dir.join("_data/todo.db"), b"buy milk").unwrap();
        if let Some(r) = record {
            std::fs::write(dir.join("volume.json"), r).unwrap();
        }
        assert!(reg.get(name).unwrap_err().is_not_found());
        assert!(!reg.exists(name));
        assert!(matches!(reg.remove(name, false), Err(Error::NotFound { .. })));
        assert!(!reg.remove(name, true).unwrap());
        assert!(dir.join("_data/todo.db").exists(), "nothing deleted");
    }
    reg.add_ref("other", "c1").unwrap(); // a change: the next list reads every record
    assert_eq!(names(reg.list(&[]).unwrap()), ["other"]);
    assert!(reg.prune(true, &[]).unwrap().is_empty());

    // Creating the name again adopts the directory: a whole record, the data kept.
    for name in ["lost-empty", "lost-none"] {
        let v = reg.create(Some(name), labels(&[("app", "todo")])).unwrap();
        assert_eq!(std::fs::read(v.mountpoint.join("todo.db")).unwrap(), b"buy milk");
        assert_eq!(reg.get(name).unwrap(), v);
    }
    assert_eq!(
        names(reg.list(&[]).unwrap()),
        ["lost-empty", "lost-none", "other"]
    );
    assert_eq!(std::fs::read_dir(reg.root().join(".tmp")).unwrap().count(), 0);
}

#[test]
fn concurrent_use_and_reconcile_end_idle() {
    let (_d, reg) = registry();
    for t in 0..4 {
        reg.create(Some(&format!("v{t}")), CreateOptions::default())
            .unwrap();
    }
    let root = reg.root().to_path_buf();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    // Each iteration is a command: open, reconcile (users of other threads are alive;
                    // "dead-" users are not), use a volume, stop using it.
                    let reg = Registry::open(&root).unwrap();
                    reg.reconcile(&|u| !u.starts_with("dead-")).unwrap();
                    let user = format!("c{t}-{i}");
                    reg.acquire(&format!("v{t}"), &user).unwrap();
                    reg.acquire(&format!("v{}", (t + 1) % 4), &user).unwrap();
                    if i == 5 {
                        // This one "crashes": it never releases.
                        reg.acquire(&format!("v{t}"), &format!("dead-{t}")).unwrap();
                    }
                    reg.release(&format!("v{}", (t + 1) % 4), &user).unwrap();
                    reg.release(&format!("v{t}"), &user).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let reg = Registry::open(&root).unwrap();
    reg.reconcile(&|u| !u.starts_with("dead-")).unwrap();
    for v in reg.list(&[]).unwrap() {
        assert!(v.active.is_empty() && !v.mounted, "{v:?}");
    }
    assert!(idle(&reg));
}

#[test]
fn corrupt_metadata_is_reported_with_its_path() {
    let (_d, reg) = registry();
    reg.create(Some("broken"), CreateOptions::default()).unwrap();
    std::fs::write(reg.root().join("broken/volume.json"), b"{not json").unwrap();
    let err = reg.get("broken").unwrap_err();
    assert!(err.to_string().contains("broken/volume.json"), "{err}");
    // Reconcile must not be blocked by one bad record.
    reg.reconcile(&|_| true).unwrap();
}

#[test]
fn list_cache_follows_every_change() {
    let (_d, reg) = registry();
    let dangling = |reg: &Registry| names(reg.list(&[f("dangling=true")]).unwrap());
    assert!(reg.list(&[]).unwrap().is_empty());
    reg.create(Some("a1"), CreateOptions::default()).unwrap();
    assert_eq!(dangling(&reg), ["a1"]);
    reg.add_ref("a1", "c1").unwrap();
    assert!(dangling(&reg).is_empty());
    reg.acquire("a1", "c1").unwrap();
    assert_eq!(reg.list(&[]).unwrap()[0].active, ["c1"]);
    reg.release("a1", "c1").unwrap();
    assert!(reg.list(&[]).unwrap()[0].active.is_empty());
    reg.remove_ref("a1", "c1").unwrap();
    assert_eq!(dangling(&reg), ["a1"]);
    // Another Registry handle (another process) sees the same.
    let other = Registry::open(reg.root()).unwrap();
    other.remove("a1", false).unwrap();
    assert!(reg.list(&[]).unwrap().is_empty());
    reg.create(Some("b2"), CreateOptions::default()).unwrap();
    assert_eq!(names(other.list(&[]).unwrap()), ["b2"]);
}

#[test]
fn list_cache_is_used_only_for_its_generation_and_boot() {
    let (_d, reg) = registry();
    reg.create(Some("real"), CreateOptions::default()).unwrap();
    assert_eq!(names(reg.list(&[]).unwrap()), ["real"]); // builds the cache
    let cache_path = reg.root().join(".list-cache.json");
    let mut cache: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache_path).unwrap()).unwrap();
    // A doctored cache of the current generation and boot is what list serves: the cache is really used.
    cache["volumes"][0]["name"] = "from-cache".into();
    std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap()).unwrap();
    assert_eq!(names(reg.list(&[]).unwrap()), ["from-cache"]);
    // From another boot (a power loss may have dropped unsynced writes), it is ignored.
    cache["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
    std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap()).unwrap();
    assert_eq!(names(reg.list(&[]).unwrap()), ["real"]);
    // From an older generation, too.
    cache["boot_id"] = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .into();
    cache["generation"] = "an-older-token".into();
    std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap()).unwrap();
    assert_eq!(names(reg.list(&[]).unwrap()), ["real"]);
}

#[test]
fn concurrent_changes_are_not_lost() {
    let (_d, reg) = registry();
    reg.create(Some("shared"), CreateOptions::default()).unwrap();
    let root = reg.root().to_path_buf();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                // Each thread is its own "process": its own Registry and its own lock descriptor.
                let reg = Registry::open(&root).unwrap();
                for i in 0..5 {
                    reg.add_ref("shared", &format!("c{t}-{i}")).unwrap();
                    reg.create(Some(&format!("v{t}-{i}")), CreateOptions::default())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(reg.get("shared").unwrap().users.len(), 40);
    assert_eq!(reg.list(&[]).unwrap().len(), 41);
    assert_eq!(reg.list(&[f("dangling=true")]).unwrap().len(), 40);
}

#[test]
fn a_generation_that_is_no_symlink_trusts_no_cache() {
    let (_d, reg) = registry();
    reg.create(Some("real"), CreateOptions::default()).unwrap();
    let generation = reg.root().join(".generation");
    assert!(std::fs::symlink_metadata(&generation).unwrap().is_symlink());
    assert_eq!(names(reg.list(&[]).unwrap()), ["real"]); // builds the cache
    let cache_path = reg.root().join(".list-cache.json");
    let mut cache: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache_path).unwrap()).unwrap();
    cache["volumes"][0]["name"] = "from-cache".into();
    std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap()).unwrap();
    assert_eq!(names(reg.list(&[]).unwrap()), ["from-cache"]);
    // A regular file (whatever it says, even the cache's token) is no generation: the records are read.
    let token = std::fs::read_link(&generation).unwrap();
    std::fs::remove_file(&generation).unwrap();
    std::fs::write(&generation, token.to_str().unwrap()).unwrap();
    assert_eq!(names(reg.list(&[]).unwrap()), ["real"]);
    // The next change replaces it with a symlink to a new token, and the cache is used again.
    reg.add_ref("real", "c1").unwrap();
    assert!(std::fs::symlink_metadata(&generation).unwrap().is_symlink());
    assert_eq!(names(reg.list(&[]).unwrap()), ["real"]);
    let cache: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache_path).unwrap()).unwrap();
    assert_eq!(
        cache["generation"].as_str(),
        std::fs::read_link(&generation).unwrap().to_str()
    );
}

/// The identity of a volume's record file: references, acquire by a referencing container and populate
/// must not replace it.
fn record_inode(reg: &Registry, name: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(reg.root().join(name).join("volume.json"))
        .unwrap()
        .ino()
}

fn refs(pairs: &[(&str, &[&str])]) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    pairs
        .iter()
        .map(|(v, cs)| (v.to_string(), cs.iter().map(|c| c.to_string()).collect()))
        .collect()
}

#[test]
fn references_are_entries_beside_the_record() {
    let (_d, reg) = registry();
    reg.create(Some("data"), CreateOptions::default()).unwrap();
    reg.create(Some("logs"), CreateOptions::default()).unwrap();
    let ino = record_inode(&reg, "data");
    reg.add_refs(&["data", "logs"], "c1").unwrap();
    reg.add_ref("data", "c2").unwrap();
    assert!(reg.root().join("data/ref.c1").is_file());
    assert!(reg.root().join("logs/ref.c1").is_file());
    assert_eq!(reg.get("data").unwrap().users, ["c1", "c2"]);
    assert_eq!(record_inode(&reg, "data"), ino, "the record is not rewritten");
    // All or none: one unknown volume adds no reference at all.
    assert!(
        reg.add_refs(&["data", "nope-vol"], "c3")
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(reg.get("data").unwrap().users, ["c1", "c2"]);
    // remove_refs deals with every volume and reports the missing one after.
    assert!(
        reg.remove_refs(&["data", "nope-vol", "logs"], "c1")
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(reg.get("data").unwrap().users, ["c2"]);
    assert!(reg.get("logs").unwrap().users.is_empty());
    assert_eq!(record_inode(&reg, "data"), ino);
    // A name that cannot be a directory entry is refused.
    for bad in ["", "a/b", "nul\0"] {
        assert!(matches!(
            reg.add_ref("data", bad),
            Err(Error::InvalidReference { .. })
        ));
    }
    assert_eq!(names(reg.list(&[f("dangling=true")]).unwrap()), ["logs"]);
}

#[test]
fn references_lost_or_brought_back_by_a_power_loss_are_set_right_by_set_refs() {
    let (_d, reg) = registry();
    let v = reg.create(Some("todo-list"), CreateOptions::default()).unwrap();
    std::fs::write(v.mountpoint.join("db"), b"items").unwrap();
    reg.create(Some("cache"), CreateOptions::default()).unwrap();
    reg.add_ref("todo-list", "c1").unwrap();
    reg.add_ref("cache", "c-gone").unwrap();
    // A power loss lost c1's reference (its entry was not written back), and brought back the reference of
    // c-gone, removed before it: todo-list looks free, cache looks used.
    std::fs::remove_file(reg.root().join("todo-list/ref.c1")).unwrap();
    assert!(reg.get("todo-list").unwrap().users.is_empty());
    assert!(matches!(reg.remove("cache", false), Err(Error::InUse { .. })));
    // The caller's durable records (containers) say the truth: c1 uses todo-list, nobody uses cache.
    // Names that are not volumes (a container whose volume is gone) are ignored.
    let truth = refs(&[("todo-list", &["c1"]), ("not-a-volume", &["c9"])]);
    assert_eq!(reg.set_refs(&truth).unwrap(), 2);
    assert_eq!(reg.get("todo-list").unwrap().users, ["c1"]);
    assert!(reg.get("cache").unwrap().users.is_empty());
    assert!(!reg.exists("not-a-volume"));
    assert!(matches!(reg.remove("todo-list", false), Err(Error::InUse { .. })));
    assert!(reg.remove("cache", false).unwrap());
    assert_eq!(
        std::fs::read(v.mountpoint.join("db")).unwrap(),
        b"items",
        "nothing deleted"
    );
    // Nothing to change: nothing changed.
    assert_eq!(reg.set_refs(&truth).unwrap(), 0);
}

#[test]
fn an_empty_or_missing_record_keeps_data_and_references_and_is_adopted() {
    let (_d, reg) = registry();
    for (name, emptied) in [("emptied", true), ("unlinked", false)] {
        let v = reg.create(Some(name), labels(&[("app", "todo")])).unwrap();
        std::fs::write(v.mountpoint.join("todo.db"), b"buy milk").unwrap();
        reg.add_ref(name, "c1").unwrap();
        reg.populate(name, &v.mountpoint).unwrap(); // non-empty: marked populated
        assert!(reg.get(name).unwrap().populated);
        // What a power loss can leave of a record (an unsynced replace on xfs: an empty file).
        let record = reg.root().join(name).join("volume.json");
        if emptied {
            std::fs::write(&record, b"").unwrap();
        } else {
            std::fs::remove_file(&record).unwrap();
        }
        // Not a volume any more: nothing may delete it, nothing lists it as free.
        assert!(reg.get(name).unwrap_err().is_not_found());
        assert!(!reg.remove(name, true).unwrap());
        assert!(reg.add_ref(name, "c2").unwrap_err().is_not_found());
        assert!(reg.acquire_all(&[name], "c1").unwrap_err().is_not_found());
    }
    reg.create(Some("other"), CreateOptions::default()).unwrap();
    assert_eq!(reg.prune(true, &[]).unwrap(), ["other"]);
    assert!(reg.list(&[]).unwrap().is_empty());
    // Creating the name again (what `run -v emptied:/data` does) adopts it: data, references and
    // `populated` kept; the labels were in the lost record.
    for name in ["emptied", "unlinked"] {
        let v = reg.create(Some(name), CreateOptions::default()).unwrap();
        assert_eq!(std::fs::read(v.mountpoint.join("todo.db")).unwrap(), b"buy milk");
        assert_eq!(v.users, ["c1"]);
        assert!(v.populated);
        assert_eq!(reg.get(name).unwrap(), v);
        assert!(matches!(reg.remove(name, false), Err(Error::InUse { .. })));
    }
}

#[test]
fn acquire_all_records_only_what_needs_recording() {
    let (_d, reg) = registry();
    reg.reconcile(&|_| true).unwrap();
    reg.create(Some("named"), CreateOptions::default()).unwrap();
    reg.create(Some("unref"), CreateOptions::default()).unwrap();
    reg.add_ref("named", "c1").unwrap();
    let ino = record_inode(&reg, "named");
    let acquired = reg.acquire_all(&["named", "unref"], "c1").unwrap();
    assert_eq!(acquired.len(), 2);
    assert_eq!(acquired[0].name, "named");
    assert_eq!(acquired[0].path, reg.data_path("named"));
    assert!(acquired[0].needs_populate() && acquired[1].needs_populate());
    // A plain volume the container references: nothing written, nothing in use.
    assert!(reg.get("named").unwrap().active.is_empty());
    assert_eq!(record_inode(&reg, "named"), ino);
    // One it does not reference: recorded, so it cannot be removed under it.
    assert_eq!(reg.get("unref").unwrap().active, ["c1"]);
    assert!(matches!(reg.remove("unref", false), Err(Error::Active { .. })));
    assert!(!idle(&reg));
    reg.release_all(&acquired).unwrap();
    assert!(reg.get("unref").unwrap().active.is_empty());
    assert!(idle(&reg));
    // The named volume is still protected by its reference while the container lives.
    assert!(matches!(reg.remove("named", false), Err(Error::InUse { .. })));

    // All or none: when one volume is missing, the ones recorded before it are released again.
    let err = reg
        .acquire_all(&["unref", "named", "missing-vol"], "c1")
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(reg.get("unref").unwrap().active.is_empty());
    assert!(idle(&reg));
}

#[test]
fn populated_is_an_entry_and_acquire_all_reports_it() {
    let (d, reg) = registry();
    let source = d.path().join("image-dir");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("seed.txt"), b"from the image").unwrap();
    let v = reg.create(Some("fresh"), CreateOptions::default()).unwrap();
    reg.add_ref("fresh", "c1").unwrap();
    let ino = record_inode(&reg, "fresh");
    assert!(reg.acquire_all(&["fresh"], "c1").unwrap()[0].needs_populate());
    assert!(reg.populate("fresh", &source).unwrap());
    assert!(reg.root().join("fresh/populated").is_file());
    assert_eq!(
        record_inode(&reg, "fresh"),
        ino,
        "populate does not rewrite the record"
    );
    let again = reg.acquire_all(&["fresh"], "c1").unwrap();
    assert!(!again[0].needs_populate());
    assert!(!reg.populate("fresh", &source).unwrap());
    assert_eq!(
        std::fs::read(v.mountpoint.join("seed.txt")).unwrap(),
        b"from the image"
    );
    // A power loss lost the marker: the volume has content, so populate marks it again and copies
    // nothing.
    std::fs::remove_file(reg.root().join("fresh/populated")).unwrap();
    std::fs::write(v.mountpoint.join("seed.txt"), b"changed by the app").unwrap();
    assert!(!reg.populate("fresh", &source).unwrap());
    assert!(reg.get("fresh").unwrap().populated);
    assert_eq!(
        std::fs::read(v.mountpoint.join("seed.txt")).unwrap(),
        b"changed by the app"
    );
}

#[test]
fn a_record_in_the_earlier_format_reads_the_same() {
    let (d, reg) = registry();
    let v = reg.create(Some("old-vol"), labels(&[("app", "todo")])).unwrap();
    reg.add_ref("old-vol", "c1").unwrap();
    let source = d.path().join("image-dir");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("seed.txt"), b"from the image").unwrap();
    assert!(reg.populate("old-vol", &source).unwrap());
    let view = reg.get("old-vol").unwrap();
    assert_eq!(view.users, ["c1"]);
    assert!(view.populated);
    // The record as the registry wrote it before the record had its own type: the whole view, with
    // `users` empty and `populated` false (the entries beside it are what counts).
    edit_record(&reg, "old-vol", |r| {
        *r = serde_json::json!({
            "name": "old-vol", "driver": "local", "mountpoint": v.mountpoint, "created": v.created,
            "labels": {"app": "todo"}, "options": {}, "anonymous": false, "users": [],
            "populated": false, "active": [], "mounted": false
        })
    });
    let reg = Registry::open(reg.root()).unwrap();
    assert_eq!(reg.get("old-vol").unwrap(), view);
    // An in-use change rewrites it in today's form: no name, mountpoint, users or populated keys.
    reg.acquire("old-vol", "user-1").unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.root().join("old-vol/volume.json")).unwrap()).unwrap();
    for gone in ["name", "mountpoint", "users", "populated"] {
        assert!(record.get(gone).is_none(), "{gone} in {record}");
    }
    assert_eq!(record["active"], serde_json::json!(["user-1"]));
    reg.release("old-vol", "user-1").unwrap();
    assert_eq!(reg.get("old-vol").unwrap(), view);
    reg.remove_ref("old-vol", "c1").unwrap();
    assert!(reg.remove("old-vol", false).unwrap());
}

#[test]
fn a_list_after_a_change_rereads_only_the_volumes_that_changed() {
    let (_d, reg) = registry();
    reg.create(Some("a-vol"), CreateOptions::default()).unwrap();
    reg.create(Some("b-vol"), CreateOptions::default()).unwrap();
    // A cached volume is reused only if its directory had been still for a second when the cache was built.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(names(reg.list(&[]).unwrap()), ["a-vol", "b-vol"]); // builds the cache
    // Doctor b-vol's cached labels: whatever shows them was taken from the cache.
    let cache_path = reg.root().join(".list-cache.json");
    let mut cache: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache_path).unwrap()).unwrap();
    cache["volumes"][1]["labels"] = serde_json::json!({"from": "cache"});
    std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap()).unwrap();
    let from_cache = |reg: &Registry| !reg.list(&[f("label=from=cache")]).unwrap().is_empty();
    assert!(from_cache(&reg));

    // A change to a-vol: the next list reads a-vol again and takes b-vol, unchanged, from the cache.
    reg.add_ref("a-vol", "c1").unwrap();
    let all = reg.list(&[]).unwrap();
    assert_eq!(all[0].users, ["c1"]);
    assert!(from_cache(&reg));
    // A change to b-vol (a reference is an entry in its directory): read again.
    reg.add_ref("b-vol", "c2").unwrap();
    assert_eq!(reg.list(&[]).unwrap()[1].users, ["c2"]);
    assert!(!from_cache(&reg));

    // Prune decides on every record, never on a reused entry: a cache built a second after a-vol's last
    // change, doctored to say a-vol has no reference and made stale, must not get it pruned.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    reg.create(Some("c-vol"), CreateOptions::default()).unwrap();
    assert_eq!(reg.list(&[]).unwrap().len(), 3);
    let mut cache: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache_path).unwrap()).unwrap();
    assert_eq!(cache["volumes"][0]["name"], "a-vol");
    cache["volumes"][0]["users"] = serde_json::json!([]);
    std::fs::write(&cache_path, serde_json::to_vec(&cache).unwrap()).unwrap();
    reg.add_ref("c-vol", "c3").unwrap(); // the cache is stale now
    assert!(
        reg.list(&[f("dangling=true")]).unwrap()[0].name == "a-vol",
        "list reuses"
    );
    reg.remove_ref("c-vol", "c3").unwrap();
    assert_eq!(reg.prune(true, &[]).unwrap(), ["c-vol"]);
    assert_eq!(reg.get("a-vol").unwrap().users, ["c1"]);
    // A volume removed and created again under the same name is a new directory: read again.
    reg.remove_ref("b-vol", "c2").unwrap();
    reg.remove("b-vol", false).unwrap();
    reg.create(Some("b-vol"), labels(&[("new", "1")])).unwrap();
    assert_eq!(reg.list(&[f("label=new")]).unwrap().len(), 1);
}

#[test]
fn populate_with_an_empty_or_missing_source_does_not_wait_for_the_registry() {
    let (d, reg) = registry();
    reg.create(Some("vol"), CreateOptions::default()).unwrap();
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = d.path().join("missing");
    // Another process holds the registry's lock (a flock on its own open file).
    let held = mountkit_safefs::Lock::exclusive(&reg.root().join(".lock")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reg2 = reg.clone();
    std::thread::spawn(move || {
        let results = (reg2.populate("vol", &empty), reg2.populate("vol", &missing));
        let _ = tx.send((results.0.unwrap(), results.1.unwrap()));
    });
    // Nothing to copy, so no lock to wait for (the generous limit only keeps a regression from hanging).
    let got = rx.recv_timeout(std::time::Duration::from_secs(60));
    assert_eq!(got, Ok((false, false)), "populate waited for the registry's lock");
    drop(held);
    assert!(
        !reg.get("vol").unwrap().populated,
        "nothing was copied, so not populated"
    );
}
