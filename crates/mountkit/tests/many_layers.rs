//! 500-layer images run through each overlay mount path; 501 layers give a clear error.

mod support;

use mountkit_testutil::require_root;
use support::{Env, with_sample};

/// An image of the sample's 3 layers plus `extra` one-file layers (`/layers/<i>`).
fn image_with_layers(env: &Env, name: &str, extra: usize) -> String {
    let info = env.json(&["image", "inspect", "sample"]);
    let mut args: Vec<String> = vec!["image".into(), "create".into(), name.into()];
    for l in info[0]["layers"].as_array().unwrap() {
        args.push("--layer".into());
        args.push(l.as_str().unwrap().into());
    }
    for i in 0..extra {
        let d = env.path(&format!("l/{i}/layers"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("{i}")), format!("{i}\n")).unwrap();
        args.push("--layer".into());
        args.push(d.parent().unwrap().to_string_lossy().into_owned());
    }
    args.extend(["--workdir".into(), "/layers".into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&a)
}

#[test]
#[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
fn five_hundred_layers_run_by_each_method_and_501_fail_clearly() {
    require_root();
    with_sample(|env| {
        image_with_layers(env, "big", 497); // 3 sample layers + 497 = 500
        let info = env.json(&["--format", "json", "system", "info"]);
        let mut methods = vec!["classic"];
        if info["overlay"]["lowerdir_plus"].as_bool() == Some(true) {
            methods.push("new-api");
        } else {
            eprintln!("SKIP five_hundred_layers (new-api part): this kernel has no overlay lowerdir+");
        }
        for m in methods {
            let out = env
                .cmd()
                .env("MOUNTKIT_OVERLAY_METHOD", m)
                .args([
                    "run",
                    "--rm",
                    "big",
                    "sh",
                    "-c",
                    "cat /layers/0 /layers/496 /app/config.txt",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{m}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n496\nv2\n", "{m}");
        }
        image_with_layers(env, "too-big", 498);
        env.fails(&["run", "--rm", "too-big", "true"], 125, "501");
    });
}
