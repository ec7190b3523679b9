//! Volumes through the real docker CLI against pierd: named and anonymous volumes,
//! their life with containers (`rm -v`, `--rm`, in-use protection, prune), the local
//! driver's `type`/`o`/`device` options on the real kernel, copy-up, `--volumes-from`,
//! events, `system df`, and survival of a pierd crash (`kill -9`).
//!
//! After every test: no mount left under the daemon's volumes, and the volume
//! directories are exactly the volumes pierd lists ([`assert_consistent`]).

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{mounts_under, pierd_with_busybox, Engine, Pierd};

/// The volume names pierd lists.
fn listed(pierd: &Pierd) -> BTreeSet<String> {
    pierd
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The volume directories under the data root.
fn directories(pierd: &Pierd) -> BTreeSet<String> {
    std::fs::read_dir(pierd.data_root().join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// No mount left below the volumes, and one directory per volume, no more.
fn assert_consistent(pierd: &Pierd) {
    let volumes = pierd.data_root().join("volumes");
    let left = mounts_under(&volumes);
    assert!(
        left.is_empty(),
        "mounts left under {}: {left:#?}",
        volumes.display()
    );
    assert_eq!(
        directories(pierd),
        listed(pierd),
        "volume directories vs records"
    );
}

fn inspect(pierd: &Pierd, what: &str, format: &str) -> String {
    pierd
        .docker_ok(&["inspect", "-f", format, what])
        .trim()
        .to_string()
}

#[test]
fn named_volume_data_outlives_containers_and_a_pierd_crash() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    assert_eq!(
        pierd.docker_ok(&["volume", "create", "data"]).trim(),
        "data"
    );
    let root = pierd.data_root().join("volumes");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&root), 0o701, "volumes dir mode, as dockerd's");
    assert_eq!(mode(&root.join("data")), 0o701);
    assert_eq!(mode(&root.join("data/_data")), 0o755);
    assert_eq!(
        pierd
            .docker_ok(&[
                "volume",
                "inspect",
                "-f",
                "{{.Mountpoint}} {{.Driver}} {{.Scope}}",
                "data"
            ])
            .trim(),
        format!("{} local local", root.join("data/_data").display())
    );

    pierd.docker_ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/file",
    ]);
    let read = pierd.docker_ok(&["run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/file"]);
    assert_eq!(read.trim(), "kept");
    // Inspect shows the volume as Docker does.
    assert_eq!(
        inspect(
            &pierd,
            "writer",
            "{{range .Mounts}}{{.Type}} {{.Name}} {{.Source}} {{.Destination}} {{.Driver}} {{.Mode}} {{.RW}}{{end}}"
        ),
        format!("volume data {} /data local z true", root.join("data/_data").display())
    );

    // A crash between making a volume's directory and recording it: the directory no
    // record names is gone after the restart.
    let stray = root.join("stray");
    pierd.crash_and_restart_with(Duration::from_millis(100), || {
        std::fs::create_dir_all(stray.join("_data")).unwrap();
    });
    assert!(
        !stray.exists(),
        "an unrecorded volume directory is removed at start"
    );
    let read = pierd.docker_ok(&["run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/file"]);
    assert_eq!(read.trim(), "kept", "{}", pierd.log_tail(20));
    // The stopped writer still uses it after the restart (users come from the records).
    let out = pierd.docker(&["volume", "rm", "data"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("volume is in use"), "{out:?}");
    // `rm -v` removes anonymous volumes only: the named one stays.
    pierd.docker_ok(&["rm", "-v", "writer"]);
    assert!(listed(&pierd).contains("data"));
    pierd.docker_ok(&["volume", "rm", "data"]);
    assert_consistent(&pierd);
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_auto_remove_named_ones_stay() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let id = pierd.docker_ok(&["create", "-v", "/anon", "busybox", "true"]);
    let id = id.trim();
    let name = inspect(&pierd, id, "{{range .Mounts}}{{.Name}}{{end}}");
    assert_eq!(
        name.len(),
        64,
        "an anonymous volume gets a 64-hex name: {name}"
    );
    assert_eq!(
        pierd
            .docker_ok(&["volume", "inspect", "-f", "{{json .Labels}}", &name])
            .trim(),
        r#"{"com.docker.volume.anonymous":""}"#
    );
    // In use by a container that never ran.
    let out = pierd.docker(&["volume", "rm", &name]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr.trim(),
        format!("Error response from daemon: remove {name}: volume is in use - [{id}]")
    );
    pierd.docker_ok(&["rm", "-v", id]);
    assert!(!listed(&pierd).contains(&name), "rm -v removed it");

    // --rm: the anonymous volume goes, the named one stays.
    let before = listed(&pierd);
    pierd.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "/scratch",
        "-v",
        "keep:/keep",
        "busybox",
        "sh",
        "-c",
        "echo x > /scratch/x && echo y > /keep/y",
    ]);
    let after = listed(&pierd);
    let added: Vec<&String> = after.difference(&before).collect();
    assert_eq!(added, vec!["keep"], "only the named volume is left");

    // Without -v the anonymous volume stays; prune takes anonymous ones only, -a all.
    let id = pierd.docker_ok(&["create", "-v", "/anon", "busybox", "true"]);
    let anon = inspect(&pierd, id.trim(), "{{range .Mounts}}{{.Name}}{{end}}");
    pierd.docker_ok(&["rm", id.trim()]);
    let pruned = pierd.docker_ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains(&anon), "{pruned}");
    assert!(!pruned.contains("keep"), "{pruned}");
    assert!(listed(&pierd).contains("keep"));
    let pruned = pierd.docker_ok(&["volume", "prune", "-af"]);
    assert!(pruned.contains("keep"), "{pruned}");
    assert!(listed(&pierd).is_empty());
    // `system prune --volumes` counts volumes too (anonymous ones, as Docker 23+).
    let id = pierd.docker_ok(&["create", "-v", "/anon", "busybox", "true"]);
    let anon = inspect(&pierd, id.trim(), "{{range .Mounts}}{{.Name}}{{end}}");
    pierd.docker_ok(&["volume", "create", "named"]);
    let pruned = pierd.docker_ok(&["system", "prune", "-f", "--volumes"]);
    assert!(
        pruned.contains(&format!("Deleted Volumes:\n{anon}\n")),
        "{pruned}"
    );
    assert_eq!(listed(&pierd), BTreeSet::from(["named".to_string()]));
    pierd.docker_ok(&["volume", "rm", "named"]);
    assert_consistent(&pierd);
}

#[test]
fn volumes_in_use_are_refused_also_with_force() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let id = pierd.docker_ok(&["run", "-d", "-v", "busy:/d", "busybox", "sleep", "300"]);
    let id = id.trim();
    // `ps --filter volume=` finds it by the volume's name or the mount's destination.
    for filter in ["volume=busy", "volume=/d"] {
        let ps = pierd.docker_ok(&["ps", "-q", "--no-trunc", "--filter", filter]);
        assert_eq!(ps.trim(), id, "{filter}");
    }
    let ps = pierd.docker_ok(&["ps", "-q", "--filter", "volume=other"]);
    assert_eq!(ps.trim(), "");
    let want = format!("Error response from daemon: remove busy: volume is in use - [{id}]");
    for args in [
        &["volume", "rm", "busy"][..],
        &["volume", "rm", "-f", "busy"][..],
    ] {
        let out = pierd.docker(args);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stderr.trim(), want);
    }
    // The prune keeps it too, and a stopped container still holds it.
    pierd.docker_ok(&["volume", "prune", "-af"]);
    pierd.docker_ok(&["stop", "-t", "0", id]);
    assert_eq!(pierd.docker(&["volume", "rm", "busy"]).code, Some(1));
    assert_eq!(
        pierd
            .docker_ok(&["volume", "ls", "-q", "-f", "dangling=false"])
            .trim(),
        "busy"
    );
    pierd.docker_ok(&["rm", id]);
    assert_eq!(
        pierd
            .docker_ok(&["volume", "ls", "-q", "-f", "dangling=true"])
            .trim(),
        "busy"
    );
    pierd.docker_ok(&["volume", "rm", "busy"]);
    // Missing: 404, but nothing with -f.
    let out = pierd.docker(&["volume", "rm", "busy"]);
    assert_eq!(
        out.stderr.trim(),
        "Error response from daemon: get busy: no such volume"
    );
    assert_eq!(pierd.docker(&["volume", "rm", "-f", "busy"]).code, Some(0));
    assert_consistent(&pierd);
}

#[test]
fn a_tmpfs_volume_has_the_size_asked_for_and_is_unmounted_after() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "mem",
    ]);
    assert_eq!(
        pierd
            .docker_ok(&["volume", "inspect", "-f", "{{json .Options}}", "mem"])
            .trim(),
        r#"{"device":"tmpfs","o":"size=1m","type":"tmpfs"}"#
    );
    let df = pierd.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "mem:/m",
        "busybox",
        "sh",
        "-c",
        "grep ' /m ' /proc/mounts | cut -d' ' -f3; df -k /m | tail -1 | awk '{print $2}'",
    ]);
    assert_eq!(
        df.split_whitespace().collect::<Vec<_>>(),
        ["tmpfs", "1024"],
        "{df}"
    );
    assert!(mounts_under(&pierd.data_root().join("volumes")).is_empty());
    // Mounted while a container runs; after a pierd crash the running container keeps
    // it, and its exit (seen by the new pierd) unmounts it.
    let id = pierd.docker_ok(&["run", "-d", "-v", "mem:/m", "busybox", "sleep", "300"]);
    let id = id.trim().to_string();
    assert_eq!(mounts_under(&pierd.data_root().join("volumes")).len(), 1);
    pierd.crash_and_restart(Duration::from_millis(100));
    assert_eq!(mounts_under(&pierd.data_root().join("volumes")).len(), 1);
    pierd.docker_ok(&["exec", &id, "sh", "-c", "echo alive > /m/f"]);
    pierd.docker_ok(&["stop", "-t", "0", &id]);
    assert!(
        common::wait_until(Duration::from_secs(10), || mounts_under(
            &pierd.data_root().join("volumes")
        )
        .is_empty()),
        "unmounted at exit"
    );
    pierd.docker_ok(&["rm", &id]);
    // Bad options are refused as dockerd refuses them, leaving nothing.
    let out = pierd.docker(&["volume", "create", "-o", "x=1", "bad"]);
    assert_eq!(
        out.stderr.trim(),
        r#"Error response from daemon: create bad: invalid option: "x""#
    );
    let out = pierd.docker(&["volume", "create", "-o", "type=tmpfs", "bad"]);
    assert_eq!(
        out.stderr.trim(),
        r#"Error response from daemon: create bad: missing required option: "device""#
    );
    pierd.docker_ok(&["volume", "rm", "mem"]);
    assert_consistent(&pierd);
}

#[test]
fn a_bind_volume_shows_the_host_directory() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let host = work.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello\n").unwrap();
    let device = format!("device={}", host.display());
    pierd.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "hb",
    ]);
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "hb:/h",
        "busybox",
        "sh",
        "-c",
        "cat /h/from-host && echo back > /h/from-container",
    ]);
    assert_eq!(out.trim(), "hello");
    assert_eq!(
        std::fs::read_to_string(host.join("from-container")).unwrap(),
        "back\n"
    );
    assert!(mounts_under(&pierd.data_root().join("volumes")).is_empty());
    // Removing the volume leaves the host directory's content alone.
    pierd.docker_ok(&["volume", "rm", "hb"]);
    assert!(host.join("from-host").exists());
    assert_consistent(&pierd);
}

#[test]
fn a_new_volume_is_filled_from_the_image_unless_nocopy() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let ls = pierd.docker_ok(&["run", "--rm", "-v", "etc:/etc", "busybox", "ls", "/etc"]);
    assert!(ls.lines().any(|l| l == "passwd"), "copied up: {ls}");
    // Not empty any more: not filled again (the file written stays).
    pierd.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "etc:/etc",
        "busybox",
        "sh",
        "-c",
        "echo mine > /etc/mine",
    ]);
    let ls = pierd.docker_ok(&["run", "--rm", "-v", "etc:/etc", "busybox", "ls", "/etc"]);
    assert!(ls.lines().any(|l| l == "mine"));
    let ls = pierd.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "bare:/etc:nocopy",
        "busybox",
        "ls",
        "/etc",
    ]);
    assert_eq!(ls.trim(), "", "nocopy leaves it empty");
    pierd.docker_ok(&["volume", "rm", "etc", "bare"]);
    assert_consistent(&pierd);
}

#[test]
fn volumes_from_takes_another_containers_volumes() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "create",
        "--name",
        "src",
        "-v",
        "shared:/shared",
        "-v",
        "/anon",
        "busybox",
        "true",
    ]);
    pierd.docker_ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo a > /shared/a && echo b > /anon/b",
    ]);
    let out = pierd.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "busybox",
        "sh",
        "-c",
        "cat /shared/a /anon/b; touch /shared/x",
    ]);
    assert_eq!(out.stdout.trim(), "a\nb");
    assert_ne!(out.code, Some(0), "read-only with :ro");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    // The taken anonymous volume is still the source's (in use): it stays.
    let anon = inspect(
        &pierd,
        "src",
        "{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}",
    );
    assert!(listed(&pierd).contains(&anon));
    pierd.docker_ok(&["rm", "-v", "src"]);
    assert!(!listed(&pierd).contains(&anon));
    pierd.docker_ok(&["volume", "rm", "shared"]);
    assert_consistent(&pierd);
}

#[test]
fn volume_events_filters_and_system_df() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    pierd.docker_ok(&["volume", "create", "--label", "team=a", "ev"]);
    pierd.docker_ok(&["volume", "create", "other"]);
    let id = pierd.docker_ok(&["run", "-d", "-v", "ev:/d:ro", "busybox", "sleep", "300"]);
    let id = id.trim().to_string();
    // Filters.
    assert_eq!(
        pierd
            .docker_ok(&["volume", "ls", "-q", "-f", "label=team=a"])
            .trim(),
        "ev"
    );
    assert_eq!(
        pierd
            .docker_ok(&["volume", "ls", "-q", "-f", "name=^oth"])
            .trim(),
        "other"
    );
    assert_eq!(
        pierd
            .docker_ok(&["volume", "ls", "-q", "-f", "driver=loc"])
            .trim(),
        ""
    );
    assert_eq!(
        pierd
            .docker_ok(&["volume", "ls", "-q", "-f", "dangling=1"])
            .trim(),
        "other"
    );
    let out = pierd.docker(&["volume", "ls", "-f", "bogus=1"]);
    assert_eq!(
        out.stderr.trim(),
        "Error response from daemon: invalid filter 'bogus'"
    );
    // system df -v: the volume with its link count.
    let df = pierd.docker_ok(&["system", "df", "-v", "--format", "{{json .Volumes}}"]);
    let volumes: serde_json::Value = serde_json::from_str(df.trim()).unwrap();
    let ev = volumes
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["Name"] == "ev")
        .unwrap_or_else(|| panic!("{df}"));
    assert_eq!(ev["Links"], "1", "{df}");
    pierd.docker_ok(&["rm", "-f", &id]);
    pierd.docker_ok(&["volume", "rm", "ev", "other"]);
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = pierd.docker_ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &end.to_string(),
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"read/write\"}}",
    ]);
    let lines: Vec<&str> = events
        .lines()
        .map(str::trim)
        .filter(|l| l.split(' ').nth(1) == Some("ev"))
        .collect();
    assert_eq!(
        lines,
        ["create ev", "mount ev false", "unmount ev", "destroy ev"],
        "{events}"
    );
    assert_consistent(&pierd);
}

#[test]
fn names_and_create_conflicts_are_answered_as_docker() {
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    let out = pierd.docker(&["volume", "create", "a"]);
    assert_eq!(
        out.stderr.trim(),
        "Error response from daemon: create a: volume name is too short, names should be at least two alphanumeric characters"
    );
    let out = pierd.docker(&["volume", "create", "a@b"]);
    assert!(
        out.stderr
            .contains("\"a@b\" includes invalid characters for a local volume name"),
        "{out:?}"
    );
    pierd.docker_ok(&["volume", "create", "twice"]);
    assert_eq!(
        pierd.docker_ok(&["volume", "create", "twice"]).trim(),
        "twice"
    );
    // An unknown driver is looked up (and missing) before the names conflict.
    let out = pierd.docker(&["volume", "create", "-d", "nosuchdriver", "twice"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("create twice: error looking up volume plugin nosuchdriver"),
        "{out:?}"
    );
    let out = pierd.docker(&["volume", "create", "-d", "nosuchdriver", "fresh"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("nosuchdriver"), "{out:?}");
    assert!(!listed(&pierd).contains("fresh"));
    pierd.docker_ok(&["volume", "rm", "twice"]);
    assert_consistent(&pierd);
}

#[test]
fn docker_cp_reaches_into_volumes() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let file = work.path().join("in.txt");
    std::fs::write(&file, "copied in\n").unwrap();
    // Into a stopped container's volume: the next container using it sees the file.
    pierd.docker_ok(&[
        "create",
        "--name",
        "box",
        "-v",
        "cpvol:/data",
        "busybox",
        "true",
    ]);
    pierd.docker_ok(&["cp", &file.display().to_string(), "box:/data/in.txt"]);
    let read = pierd.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "cpvol:/v",
        "busybox",
        "cat",
        "/v/in.txt",
    ]);
    assert_eq!(read, "copied in\n");
    // Out of a running container's volume, what it wrote there.
    let id = pierd.docker_ok(&[
        "run",
        "-d",
        "-v",
        "cpvol:/data",
        "busybox",
        "sh",
        "-c",
        "echo written > /data/out.txt; exec sleep 300",
    ]);
    let id = id.trim();
    let out = work.path().join("out.txt");
    assert!(common::wait_until(Duration::from_secs(10), || {
        pierd
            .docker(&[
                "cp",
                &format!("{id}:/data/out.txt"),
                &out.display().to_string(),
            ])
            .code
            == Some(0)
    }));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "written\n");
    // The volume's root by its mount point (`/data/.`: its contents).
    let dir = work.path().join("all");
    pierd.docker_ok(&["cp", &format!("{id}:/data/."), &dir.display().to_string()]);
    assert!(dir.join("in.txt").exists() && dir.join("out.txt").exists());
    pierd.docker_ok(&["rm", "-f", id, "box"]);
    pierd.docker_ok(&["volume", "rm", "cpvol"]);
    assert_consistent(&pierd);
}

/// An export in progress uses the volume: `volume rm` (also `-f`) and `prune -a` leave
/// it, with the in-use 409; once the export is over the volume goes.
#[test]
fn a_volume_being_exported_is_in_use() {
    use std::io::{BufRead, BufReader, Write};
    let Some((pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&["volume", "create", "big"]);
    // More than the socket and the stream's buffers hold, so the export waits for a
    // reader that does not read.
    let dir = pierd.data_root().join("volumes/big/_data");
    std::fs::write(dir.join("blob"), vec![7u8; 64 << 20]).unwrap();

    let stream = std::os::unix::net::UnixStream::connect(pierd.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    (&stream)
        .write_all(b"GET /v1.41/volumes/big/export HTTP/1.1\r\nHost: docker\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(&stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status:?}");

    for args in [
        &["volume", "rm", "big"][..],
        &["volume", "rm", "-f", "big"][..],
    ] {
        let out = pierd.docker(args);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr.contains(
                "Error response from daemon: remove big: volume is in use - [pier-archive-"
            ),
            "{out:?}"
        );
    }
    pierd.docker_ok(&["volume", "prune", "-af"]);
    assert!(listed(&pierd).contains("big"));
    assert_eq!(
        pierd
            .docker_ok(&["volume", "ls", "-q", "-f", "dangling=false"])
            .trim(),
        "big"
    );

    // The client goes away: the export ends and its hold with it.
    drop(reader);
    drop(stream);
    assert!(
        common::wait_until(Duration::from_secs(20), || pierd
            .docker(&["volume", "rm", "big"])
            .code
            == Some(0)),
        "{}",
        pierd.log_tail(20)
    );
    assert_consistent(&pierd);
}
