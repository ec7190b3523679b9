//! A container's files through pierd, driven by the real `docker` CLI: `docker cp` both
//! ways (running and stopped containers), `docker export`, `docker diff`, and tars
//! that try to write outside the container.

mod common;

use std::path::Path;

use common::{mounts_under, pierd_with_busybox, Engine};

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn cp_both_ways_running_and_stopped() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let w = work.path();
    pierd.docker_ok(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"]);

    // A file to stdout: a tar holding it.
    let hostname = pierd
        .docker_ok(&["inspect", "-f", "{{.Config.Hostname}}", "c1"])
        .trim()
        .to_string();
    let out = pierd.docker_ok(&["cp", "c1:/etc/hostname", "-"]);
    assert!(out.contains("hostname"), "{out:?}");
    assert!(out.contains(&hostname), "{out:?}");

    // A directory to a new local directory.
    let dest = w.join("out");
    pierd.docker_ok(&["cp", "c1:/etc", &s(&dest)]);
    let passwd = std::fs::read_to_string(dest.join("passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0"), "{passwd}");

    // A local file into the container, and back.
    let file = w.join("file.txt");
    std::fs::write(&file, "hello from the host\n").unwrap();
    pierd.docker_ok(&["cp", &s(&file), "c1:/tmp/"]);
    let back = w.join("back");
    std::fs::create_dir(&back).unwrap();
    pierd.docker_ok(&["cp", "c1:/tmp/file.txt", &s(&back)]);
    assert_eq!(
        std::fs::read_to_string(back.join("file.txt")).unwrap(),
        "hello from the host\n"
    );

    // A missing path: Docker's message.
    let out = pierd.docker(&["cp", "c1:/nope", &s(w)]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("Could not find the file /nope in container c1"),
        "{out:?}"
    );
    // Into a missing directory.
    let out = pierd.docker(&["cp", &s(&file), "c1:/nope/dir/"]);
    assert_ne!(out.code, Some(0), "{out:?}");

    // A stopped (never started) container: its snapshot is mounted for the copy.
    pierd.docker_ok(&["create", "--name", "c2", "busybox", "cat", "/tmp/file.txt"]);
    pierd.docker_ok(&["cp", &s(&file), "c2:/tmp/"]);
    let out = pierd.docker_ok(&["start", "-a", "c2"]);
    assert_eq!(out, "hello from the host\n");
    let out = pierd.docker_ok(&["cp", "c2:/tmp/file.txt", "-"]);
    assert!(out.contains("hello from the host"), "{out:?}");
    let stray: Vec<String> = mounts_under(&pierd.data_root())
        .into_iter()
        .filter(|l| l.contains("/mnt-"))
        .collect();
    assert!(stray.is_empty(), "temporary mounts left: {stray:?}");

    pierd.docker_ok(&["rm", "-f", "c1", "c2"]);
}

#[test]
fn export_and_diff() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    pierd.docker_ok(&[
        "run",
        "--name",
        "c3",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/new; rm /etc/passwd",
    ]);
    let diff = pierd.docker_ok(&["diff", "c3"]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in ["A /tmp/new", "D /etc/passwd", "C /tmp", "C /etc"] {
        assert!(lines.contains(&want), "{want} missing in {diff}");
    }
    assert!(!lines.iter().any(|l| l.contains("/bin")), "{diff}");

    let tar = work.path().join("c3.tar");
    pierd.docker_ok(&["export", "-o", &s(&tar), "c3"]);
    let out = std::process::Command::new("tar")
        .arg("tf")
        .arg(&tar)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.lines().any(|l| l == "bin/busybox"), "{list}");
    assert!(list.lines().any(|l| l == "tmp/new"), "{list}");
    assert!(!list.lines().any(|l| l == "etc/passwd"), "{list}");
    pierd.docker_ok(&["rm", "c3"]);
}

/// A tar header with a raw name (the `tar` crate refuses `..` in names it writes).
fn raw_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn uploads_cannot_escape_the_container() {
    let Some((pierd, work)) = pierd_with_busybox() else {
        return;
    };
    let w = work.path();
    let outside = w.join("outside");
    std::fs::create_dir(&outside).unwrap();
    pierd.docker_ok(&["run", "-d", "--name", "c4", "busybox", "sleep", "1000"]);
    pierd.docker_ok(&["create", "--name", "c5", "busybox", "true"]);

    let marker = format!("pier-cp-test-{}", std::process::id());
    for c in ["c4", "c5"] {
        // `..` climbing out of the destination is refused.
        let mut t = raw_entry(
            &format!("../../../../../..{}/dotdot", s(&outside)),
            tar::EntryType::Regular,
            "",
            b"x",
        );
        t.extend(vec![0; 1024]);
        let f = w.join("dotdot.tar");
        std::fs::write(&f, &t).unwrap();
        let out = pierd.docker_with_stdin(&["cp", "-", &format!("{c}:/tmp")], &f);
        assert_ne!(out.code, Some(0), "{out:?}");

        // A symlink to a host path missing in the container, then a file through
        // it: refused (or written inside), never outside.
        let mut t = raw_entry("esc", tar::EntryType::Symlink, &s(&outside), b"");
        t.extend(raw_entry(
            "esc/pwned",
            tar::EntryType::Regular,
            "",
            b"pwned\n",
        ));
        t.extend(vec![0; 1024]);
        let f = w.join("dangling.tar");
        std::fs::write(&f, &t).unwrap();
        let _ = pierd.docker_with_stdin(&["cp", "-", &format!("{c}:/tmp")], &f);

        // Symlinks to `/etc` and far above the root: what goes through them lands
        // inside the container.
        let mut t = raw_entry("etc", tar::EntryType::Symlink, "/etc", b"");
        t.extend(raw_entry(
            &format!("etc/{marker}"),
            tar::EntryType::Regular,
            "",
            b"pwned\n",
        ));
        t.extend(raw_entry(
            "up",
            tar::EntryType::Symlink,
            "../../../../../../..",
            b"",
        ));
        t.extend(raw_entry(
            "up/pwned2",
            tar::EntryType::Regular,
            "",
            b"pwned\n",
        ));
        t.extend(vec![0; 1024]);
        let f = w.join("symlink.tar");
        std::fs::write(&f, &t).unwrap();
        let out = pierd.docker_with_stdin(&["cp", "-", &format!("{c}:/tmp")], &f);
        assert_eq!(out.code, Some(0), "{out:?}");
        let inside = pierd.docker_ok(&["cp", &format!("{c}:/etc/{marker}"), "-"]);
        assert!(inside.contains("pwned"), "{inside:?}");
        let inside = pierd.docker_ok(&["cp", &format!("{c}:/pwned2"), "-"]);
        assert!(inside.contains("pwned"), "{inside:?}");

        // And the request path itself is resolved inside the container.
        let out = pierd.docker(&[
            "cp",
            &format!("{c}:/tmp/esc/../../../../../etc/shadow"),
            "-",
        ]);
        assert_ne!(out.code, Some(0), "{out:?}");
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written outside the container"
    );
    assert!(!Path::new("/pwned2").exists());
    assert!(!Path::new("/etc").join(&marker).exists());
    pierd.docker_ok(&["rm", "-f", "c4", "c5"]);
}
