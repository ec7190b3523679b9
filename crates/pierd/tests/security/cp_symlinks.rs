//! `docker cp` and symlinks: a container's symlinks pointing outside it (absolute,
//! `../` far above its root, or `/` itself) are resolved inside the container's root,
//! both ways (out of and into the container, running and stopped) — on pierd as on a
//! real dockerd. And a container process flipping a directory into a symlink (to `/`,
//! or to a host directory) while `docker cp` runs in a loop never makes pierd read or
//! write a host file.
//!
//! The host directory the symlinks name ([`Sentinel`]) holds a secret; the container
//! has a decoy directory at the same path, so a correct resolution visibly lands in the
//! decoy (the test would notice a symlink that is simply not followed).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{pierd_with_busybox, Engine};
use crate::support::{dockerd_with_busybox, rootfs_tar, Sentinel};

const TEST: &str = "docker_cp_resolves_symlinks_inside_the_container";
const DECOY: &str = "decoy-inside-the-container";

/// Symlinks in `/tmp` of container `c` that point at the sentinel's path in four ways,
/// and the decoy directory at that same path inside the container. Returns, for each
/// link, the container path that reaches the sentinel's path through it.
fn plant_links(e: &dyn Engine, c: &str, s: &Sentinel) -> Vec<String> {
    let t = s.text();
    let up = "../".repeat(12);
    let script = format!(
        "mkdir -p {t} && echo {DECOY} > {t}/secret && \
         ln -s {t} /tmp/abs && ln -s {up}{rel} /tmp/rel && \
         ln -s / /tmp/root && ln -s {up} /tmp/up",
        rel = t.trim_start_matches('/'),
    );
    e.docker_ok(&["exec", c, "sh", "-c", &script]);
    vec![
        "/tmp/abs".into(),
        "/tmp/rel".into(),
        format!("/tmp/root{t}"),
        format!("/tmp/up{t}"),
    ]
}

/// Reads and writes through each link; every one must land in the decoy.
fn copy_through_links(e: &dyn Engine, c: &str, s: &Sentinel, links: &[String], work: &Path) {
    for (i, link) in links.iter().enumerate() {
        let read = e.docker(&["cp", &format!("{c}:{link}/secret"), "-"]);
        s.assert_untouched(&format!("docker cp {c}:{link}/secret"), &read.stdout);
        assert!(
            read.stdout.contains(DECOY),
            "docker cp {c}:{link}/secret did not read the container's file: {read:?}"
        );

        let name = format!("payload-{i}");
        let payload = work.join(&name);
        std::fs::write(&payload, "from the host\n").expect("write payload");
        let write = e.docker(&[
            "cp",
            &payload.display().to_string(),
            &format!("{c}:{link}/"),
        ]);
        s.assert_untouched(&format!("docker cp {name} {c}:{link}/"), "");
        assert_eq!(write.code, Some(0), "{write:?}");
        let back = e.docker_ok(&["cp", &format!("{c}:{}/{name}", s.text()), "-"]);
        assert!(
            back.contains("from the host"),
            "{name} did not land in the container's directory"
        );
    }
}

/// Static symlinks, running and stopped, on one engine.
fn static_links(e: &dyn Engine, s: &Sentinel, work: &Path) {
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cpsym",
        "--network",
        "none",
        "busybox",
        "sleep",
        "600",
    ]);
    let links = plant_links(e, "cpsym", s);
    copy_through_links(e, "cpsym", s, &links, work);
    e.docker_ok(&["stop", "-t", "0", "cpsym"]);
    copy_through_links(e, "cpsym", s, &links, work);
    e.docker_ok(&["rm", "-f", "cpsym"]);
}

/// The race, on pierd: `/w/d` flips between a directory and symlinks to `/` and to the
/// sentinel while the host copies in and out of it, for a bounded number of rounds.
fn flip_race(e: &dyn Engine, s: &Sentinel, work: &Path) {
    let t = s.text();
    // A directory for a while (so some copies get through, inside), then quick flips
    // between the two symlinks (so some resolve while the path changes under them).
    let flipper = format!(
        "mkdir -p /w; while :; do \
           rm -rf /w/d; mkdir /w/d; echo inside > /w/d/secret; usleep 30000; \
           for i in 1 2 3 4 5 6 7 8 9 10; do \
             rm -rf /w/d; ln -s {t} /w/d; rm -f /w/d; ln -s / /w/d; \
           done; \
         done"
    );
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flipper",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        &flipper,
    ]);
    let name = pier_testsupport::unique_name("pier-race-");
    let payload = work.join(&name);
    std::fs::write(&payload, "raced in\n").expect("write payload");
    let payload = payload.display().to_string();
    let via_root = format!("flipper:/w/d{t}/secret");
    let (mut reads, mut writes, mut refused) = (0, 0, 0);
    let start = Instant::now();
    for _ in 0..25 {
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
        let w = e.docker(&["cp", &payload, "flipper:/w/d/"]);
        writes += usize::from(w.code == Some(0));
        refused += usize::from(w.code != Some(0));
        for from in ["flipper:/w/d/secret", via_root.as_str()] {
            let r = e.docker(&["cp", from, "-"]);
            reads += usize::from(r.code == Some(0));
            refused += usize::from(r.code != Some(0));
            s.assert_untouched(&format!("racing docker cp {from}"), &r.stdout);
        }
        s.assert_untouched("racing docker cp into /w/d/", "");
        assert!(
            !Path::new("/").join(&name).exists(),
            "docker cp wrote /{name} on the host"
        );
    }
    e.docker_ok(&["rm", "-f", "flipper"]);
    eprintln!(
        "{TEST}: race: {writes} writes and {reads} reads got through (inside), {refused} \
         refused"
    );
    assert!(
        writes + reads > 0 && refused > 0,
        "the copies did not meet both states of /w/d ({writes} writes and {reads} reads \
         through, {refused} refused): the race did not run"
    );
}

#[test]
fn docker_cp_resolves_symlinks_inside_the_container() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let sentinel = Sentinel::new("cp");
    static_links(&pierd, &sentinel, work.path());
    flip_race(&pierd, &sentinel, work.path());

    let Some(dockerd) = dockerd_with_busybox(TEST, &rootfs_tar(work.path())) else {
        return;
    };
    static_links(&dockerd, &sentinel, work.path());
}
