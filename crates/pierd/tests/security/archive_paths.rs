//! `../` and absolute paths, symlinks and hardlinks in layers and archives: `docker
//! load` (a `docker save` archive whose layers are hostile), `docker import` and
//! `docker cp -` into a container (`PUT /containers/{id}/archive`) write nothing outside
//! the snapshot or container, and link no host file into an image — on pierd as on a
//! real dockerd.
//!
//! Each attack is its own archive (so that an engine refusing one entry does not spare
//! the others): names climbing with `../` to a host [`Sentinel`] directory and just
//! above the layer, an absolute name, a symlink and then a file through it (in one
//! layer, and across two), hardlinks to the sentinel's secret. An engine may refuse an
//! archive or keep its entries inside; after each, the sentinel must be as it was, no
//! image or container may hold the secret, and no `pier-escape-*` file may exist in
//! the engine's directories outside a layer or container root. A benign archive built
//! the same way must load, import and copy, so the archives are well-formed.

use std::path::Path;

use crate::common::{pierd_with_busybox, Engine};
use crate::support::{dockerd_with_busybox, rootfs_tar, tar_entry, tar_of, Sentinel};

use tar::EntryType::{Link, Regular, Symlink};

const TEST: &str = "hostile_paths_in_layers_and_archives_stay_inside";
const BENIGN: &str = "benign-content";

/// One attack: its layers, each a list of tar entries.
struct Attack {
    name: &'static str,
    layers: Vec<Vec<Vec<u8>>>,
}

fn attacks(s: &Sentinel) -> Vec<Attack> {
    let t = s.text();
    let rel = t.trim_start_matches('/');
    let up = "../".repeat(12);
    let file = |name: &str| tar_entry(name, Regular, "", b"pwned\n");
    vec![
        Attack {
            name: "benign",
            layers: vec![vec![tar_entry(
                "benign-file",
                Regular,
                "",
                BENIGN.as_bytes(),
            )]],
        },
        Attack {
            name: "dotdot-to-host",
            layers: vec![vec![file(&format!("{up}{rel}/dotdot"))]],
        },
        Attack {
            name: "dotdot-above-layer",
            layers: vec![vec![
                file("../pier-escape-1"),
                file("../../pier-escape-2"),
                file("../../../pier-escape-3"),
            ]],
        },
        Attack {
            name: "absolute",
            layers: vec![vec![file(&format!("{t}/absolute"))]],
        },
        Attack {
            name: "symlink-then-file",
            layers: vec![vec![
                tar_entry("esc", Symlink, &t, b""),
                file("esc/through-absolute-link"),
                tar_entry("up", Symlink, up.trim_end_matches('/'), b""),
                file(&format!("up/{rel}/through-dotdot-link")),
            ]],
        },
        Attack {
            name: "symlink-layer-then-file-layer",
            layers: vec![
                vec![tar_entry("esc", Symlink, &t, b"")],
                vec![file("esc/through-lower-layer-link")],
            ],
        },
        Attack {
            name: "hardlink-to-host",
            layers: vec![vec![tar_entry(
                "hl-dotdot",
                Link,
                &format!("{up}{rel}/secret"),
                b"",
            )]],
        },
        Attack {
            name: "hardlink-absolute",
            layers: vec![vec![tar_entry("hl-abs", Link, &format!("{t}/secret"), b"")]],
        },
    ]
}

/// A `docker save` archive (manifest.json, `<hex>.json`, `<hex>/layer.tar`) of one
/// image tagged `tag` with these layers.
fn save_archive(layers: &[Vec<u8>], tag: &str) -> Vec<u8> {
    let sha = |b: &[u8]| pier_image::digest::Digest::sha256(b).hex().to_string();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_name = format!("{}.json", sha(config.as_bytes()));
    let layer_names: Vec<String> = layers
        .iter()
        .map(|l| format!("{}/layer.tar", sha(l)))
        .collect();
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": layer_names,
    }])
    .to_string();
    let mut entries = vec![tar_entry("manifest.json", Regular, "", manifest.as_bytes())];
    entries.push(tar_entry(&config_name, Regular, "", config.as_bytes()));
    for (name, layer) in layer_names.iter().zip(layers) {
        entries.push(tar_entry(name, Regular, "", layer));
    }
    tar_of(&entries)
}

/// What the engine holds from an attack: the export of a container of the image (or
/// the container itself); empty if the engine refused it.
fn export(e: &dyn Engine, container: &str) -> String {
    e.docker(&["export", container]).stdout
}

/// Every `pier-escape-*` file below `dir` that is not inside a layer or container root
/// (a path component `fs`, `diff`, `merged` or `rootfs`).
fn escapes_below(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with("pier-escape-")
            {
                let inside = path.strip_prefix(dir).is_ok_and(|r| {
                    r.components().any(|c| {
                        matches!(
                            c.as_os_str().to_str(),
                            Some("fs" | "diff" | "merged" | "rootfs")
                        )
                    })
                });
                if !inside {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

/// Every attack through load, import and cp on one engine (whose files are in `dir`).
fn run_attacks(e: &dyn Engine, label: &str, dir: &Path, s: &Sentinel, work: &Path) {
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cptarget",
        "--network",
        "none",
        "busybox",
        "sleep",
        "600",
    ]);
    for a in attacks(s) {
        let layers: Vec<Vec<u8>> = a.layers.iter().map(|l| tar_of(l)).collect();
        let flat = tar_of(&a.layers.concat());
        let what = |op: &str| format!("{label}: {op} of {}", a.name);

        let saved = work.join(format!("{label}-{}-save.tar", a.name));
        std::fs::write(&saved, save_archive(&layers, &format!("evil-{}:1", a.name)))
            .expect("write archive");
        let load = e.docker_with_stdin(&["load"], &saved);
        s.assert_untouched(&what("load"), &load.stdout);
        let imported = work.join(format!("{label}-{}-flat.tar", a.name));
        std::fs::write(&imported, &flat).expect("write archive");
        let import = e.docker_with_stdin(
            &["import", "-", &format!("evil-import-{}", a.name)],
            &imported,
        );
        s.assert_untouched(&what("import"), &import.stdout);
        let cp = e.docker_with_stdin(&["cp", "-", "cptarget:/tmp"], &imported);
        s.assert_untouched(&what("cp"), &cp.stdout);

        eprintln!(
            "{}: load {:?}, import {:?}, cp {:?}",
            what("outcome"),
            load.code,
            import.code,
            cp.code
        );
        for (op, out, image) in [
            ("load", &load, format!("evil-{}:1", a.name)),
            ("import", &import, format!("evil-import-{}", a.name)),
        ] {
            if out.code != Some(0) {
                assert_ne!(a.name, "benign", "{}", out.explain(&what(op)));
                continue;
            }
            let c = format!("held-{op}-{}", a.name);
            e.docker_ok(&["create", "--name", &c, "--network", "none", &image, "true"]);
            let held = export(e, &c);
            s.assert_untouched(&what(&format!("{op}, then export")), &held);
            if a.name == "benign" {
                assert!(held.contains(BENIGN), "{}: benign file missing", what(op));
            }
            e.docker_ok(&["rm", "-f", &c]);
        }
        if a.name == "benign" {
            assert_eq!(cp.code, Some(0), "{}", cp.explain(&what("cp")));
        }
    }
    let held = export(e, "cptarget");
    assert!(held.contains(BENIGN), "{label}: cp of the benign archive");
    s.assert_untouched(&format!("{label}: cp, then export"), &held);
    e.docker_ok(&["rm", "-f", "cptarget"]);
    let escapes = escapes_below(dir);
    assert!(
        escapes.is_empty(),
        "{label}: files written outside any layer or container root: {escapes:?}"
    );
}

#[test]
fn hostile_paths_in_layers_and_archives_stay_inside() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let sentinel = Sentinel::new("archive");
    run_attacks(&pierd, "pierd", pierd.dir(), &sentinel, work.path());

    let Some(dockerd) = dockerd_with_busybox(TEST, &rootfs_tar(work.path())) else {
        return;
    };
    run_attacks(&dockerd, "dockerd", dockerd.dir(), &sentinel, work.path());
}
