//! `pier`'s further container and system commands (restart, pause, top, diff, cp,
//! stats, commit, events, system df/prune, the `container` group, ps flags) against a
//! pierd that `pier` starts, compared wherever possible with the real docker CLI
//! pointed at the same daemon and the same containers.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{finish, text, Setup};

const DOCKER: &str = "/usr/local/bin/docker";

/// A daemon root with the busybox image imported, or `None` (skipped) without
/// busybox or docker on the host.
fn setup() -> Option<Setup> {
    if !common::host_has(DOCKER, "docker") {
        return None;
    }
    Setup::with_busybox()
}

/// The real docker CLI against the same pierd, and comparisons with it.
impl Setup {
    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// The real docker CLI against this pierd.
    fn docker(&self, args: &[&str], stdin: &[u8]) -> Output {
        finish(self.docker_cmd(args), stdin)
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args, b"");
        assert!(
            out.status.success(),
            "docker {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `args` with pier and with docker: same exit status, stdout and stderr
    /// (with `docker` → `pier` where docker names itself).
    fn same(&self, args: &[&str]) -> String {
        let p = self.run(args, b"");
        let d = self.docker(args, b"");
        assert_eq!(
            p.status.code(),
            d.status.code(),
            "{args:?}: pier {p:?} docker {d:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&p.stdout),
            String::from_utf8_lossy(&d.stdout),
            "stdout of {args:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&p.stderr),
            String::from_utf8_lossy(&d.stderr),
            "stderr of {args:?}"
        );
        String::from_utf8(p.stdout).unwrap()
    }

    /// As [`same`](Self::same), for outputs with relative times ("5 seconds ago",
    /// "Up 3 seconds") that may tick between the two runs: compared with those
    /// phrases and the column padding taken out.
    fn same_but_times(&self, args: &[&str]) -> String {
        let p = self.run(args, b"");
        let d = self.docker(args, b"");
        assert_eq!(p.status.code(), d.status.code(), "{args:?}: {p:?} {d:?}");
        assert_eq!(
            without_times(&String::from_utf8_lossy(&p.stdout)),
            without_times(&String::from_utf8_lossy(&d.stdout)),
            "stdout of {args:?}"
        );
        assert_eq!(text(&p).1, text(&d).1, "stderr of {args:?}");
        String::from_utf8(p.stdout).unwrap()
    }

    fn inspect(&self, what: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, what]).trim().to_string()
    }
}

/// Lines with words joined by one space and relative times reduced to `T`.
fn without_times(text: &str) -> Vec<String> {
    const TIME_WORDS: [&str; 14] = [
        "Less", "than", "a", "an", "About", "second", "seconds", "minute", "minutes", "hour",
        "hours", "day", "days", "ago",
    ];
    text.lines()
        .map(|line| {
            let mut out: Vec<&str> = Vec::new();
            for w in line.split_whitespace() {
                let timeish = TIME_WORDS.contains(&w) || w.chars().all(|c| c.is_ascii_digit());
                if timeish && out.last() == Some(&"T") {
                    continue;
                }
                out.push(if timeish && w != "a" && w != "an" {
                    "T"
                } else {
                    w
                });
            }
            out.join(" ")
        })
        .collect()
}

/// Waits until `f` holds (or fails the test after 20 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tree as `find` would list it: relative path, kind, mode bits, size, target and
/// contents of small files.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.push(format!(
                    "{rel} l -> {}",
                    fs::read_link(&p).unwrap().display()
                ));
            } else if m.is_dir() {
                out.push(format!("{rel} d {mode:o}"));
                walk(root, &p, out);
            } else {
                let content = fs::read(&p).unwrap();
                out.push(format!(
                    "{rel} f {mode:o} {:?}",
                    String::from_utf8_lossy(&content)
                ));
            }
        }
    }
    let mut out = Vec::new();
    if root.is_dir() {
        walk(root, root, &mut out);
    }
    out
}

#[test]
fn lifecycle_commands_match_docker() {
    let Some(s) = setup() else { return };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo hi > /tmp/f; mkdir /newdir; rm /bin/zcat; exec sleep 1000",
    ]);
    s.ok(&["run", "-d", "--name", "other", "busybox", "sleep", "1000"]);

    // top: the table and ps options, as docker prints them.
    // The C (CPU) column may change between two runs: the rest must not.
    let columns = |out: &str| -> Vec<String> {
        out.lines()
            .map(|l| {
                let mut w: Vec<&str> = l.split("   ").filter(|c| !c.is_empty()).collect();
                w.remove(3);
                w.join("|")
            })
            .collect()
    };
    let top = s.ok(&["top", "web"]);
    assert_eq!(columns(&top), columns(&s.docker_ok(&["top", "web"])));
    assert_eq!(
        top.lines().next(),
        s.docker_ok(&["top", "web"]).lines().next()
    );
    let lines: Vec<&str> = top.lines().collect();
    assert!(lines[0].starts_with("UID "), "{top}");
    assert!(lines[1].ends_with("sleep 1000"), "{top}");
    let top = s.same(&["top", "web", "-o", "pid,comm"]);
    assert!(top.starts_with("PID "), "{top}");
    s.same(&["top", "nosuch"]);

    // diff: C/A/D lines, as docker's.
    eventually("the container's changes", || {
        s.ok(&["diff", "web"]).contains("A /newdir")
    });
    let diff = s.same(&["diff", "web"]);
    for line in ["C /tmp", "A /tmp/f", "A /newdir", "C /bin", "D /bin/zcat"] {
        assert!(diff.lines().any(|l| l == line), "{line} in {diff}");
    }
    assert!(s.ok(&["container", "diff", "other"]).is_empty());

    // port: nothing published.
    assert_eq!(s.same(&["port", "web"]), "");
    let out = s.run(&["port", "web", "80/tcp"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "Error: No public port '80/tcp' published for web\n"
    );
    s.same(&["port", "web", "80"]);

    // ps: formats, and the container group's aliases.
    s.same_but_times(&[
        "ps",
        "--format",
        "{{.Names}} {{.Image}} {{.Status}} {{.State}}",
    ]);
    s.same(&[
        "ps",
        "-a",
        "--no-trunc",
        "--format",
        "table {{.ID}}\t{{.Command}}",
    ]);
    let ps = s.same_but_times(&["ps", "-s"]);
    assert!(
        ps.lines().next().unwrap().ends_with("NAMES     SIZE"),
        "{ps}"
    );
    s.same(&["ps", "-q"]);
    for alias in ["ls", "ps", "list"] {
        s.same(&["container", alias, "-a", "--format", "{{.Names}}"]);
    }
    assert_eq!(
        s.ok(&["container", "ls", "--format", "{{.Names}}"]),
        "other\nweb\n"
    );
    assert_eq!(
        s.ok(&["container", "inspect", "-f", "{{.Name}}", "web"]),
        "/web\n"
    );
    s.ok(&["create", "--name", "fresh", "busybox"]);
    // -n/-l: the last created containers in any state.
    assert_eq!(s.ok(&["ps", "-l", "--format", "{{.Names}}"]), "fresh\n");
    assert_eq!(
        s.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]),
        "fresh\nother\n"
    );
    // SIZE as docker computes it from the same answer (pierd's list has no
    // SizeRw/SizeRootFs yet, so both say 0B).
    s.same(&["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"]);
    assert_eq!(s.ok(&["container", "rm", "fresh"]), "fresh\n");

    // restart: a new start, the name printed.
    let started = s.inspect("web", "{{.State.StartedAt}}");
    assert_eq!(s.ok(&["restart", "-t", "1", "web"]), "web\n");
    assert_ne!(s.inspect("web", "{{.State.StartedAt}}"), started);
    assert_eq!(s.inspect("web", "{{.State.Running}}"), "true");
    assert_eq!(
        s.ok(&["container", "restart", "-s", "KILL", "web"]),
        "web\n"
    );

    // pause/unpause, and their errors as docker's.
    assert_eq!(s.ok(&["pause", "web"]), "web\n");
    assert_eq!(s.inspect("web", "{{.State.Status}}"), "paused");
    assert!(s.ok(&["ps"]).contains("(Paused)"));
    let p = s.run(&["pause", "web"], b"");
    let d = s.docker(&["pause", "web"], b"");
    assert_eq!((p.status.code(), text(&p)), (d.status.code(), text(&d)));
    assert_eq!(p.status.code(), Some(1));
    assert_eq!(s.ok(&["container", "unpause", "web"]), "web\n");
    assert_eq!(s.inspect("web", "{{.State.Status}}"), "running");
    let p = s.run(&["unpause", "web"], b"");
    let d = s.docker(&["unpause", "web"], b"");
    assert_eq!((p.status.code(), text(&p)), (d.status.code(), text(&d)));

    // rename.
    assert_eq!(s.ok(&["rename", "other", "renamed"]), "");
    assert_eq!(s.inspect("renamed", "{{.Name}}"), "/renamed");
    let p = s.run(&["rename", "nosuch", "x"], b"");
    let d = s.docker(&["rename", "nosuch", "x"], b"");
    assert_eq!((p.status.code(), text(&p)), (d.status.code(), text(&d)));
    assert_eq!(p.status.code(), Some(1));

    // update.
    assert_eq!(
        s.ok(&[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "128m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "50",
            "--restart",
            "on-failure:3",
            "renamed"
        ]),
        "renamed\n"
    );
    assert_eq!(
        s.inspect(
            "renamed",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "67108864 134217728 500000000 512 50 on-failure:3"
    );
    assert_eq!(
        s.ok(&[
            "update",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "20000",
            "--cpuset-cpus",
            "0",
            "web"
        ]),
        "web\n"
    );
    assert_eq!(
        s.inspect(
            "web",
            "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpusetCpus}}"
        ),
        "100000 20000 0"
    );
    let out = s.run(&["update", "renamed"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "you must provide one or more flags when using this command\n"
    );
    let p = s.run(&["update", "--memory", "32m", "nosuch"], b"");
    let d = s.docker(&["update", "--memory", "32m", "nosuch"], b"");
    assert_eq!((p.status.code(), text(&p)), (d.status.code(), text(&d)));

    // export: the container's files, as docker's export lists them.
    let out = s.run(&["export", "web"], b"");
    assert!(out.status.success());
    let names = |tar: &[u8]| -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        let mut v: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        v.sort();
        v
    };
    let ours = names(&out.stdout);
    assert!(ours.iter().any(|n| n == "tmp/f"), "{ours:?}");
    assert!(!ours.iter().any(|n| n == "bin/zcat"), "{ours:?}");
    assert_eq!(ours, names(&s.docker(&["export", "web"], b"").stdout));
    let file = s.path("web.tar");
    s.ok(&["container", "export", "-o", file.to_str().unwrap(), "web"]);
    assert_eq!(fs::read(&file).unwrap(), out.stdout);
    let p = s.run(&["export", "nosuch"], b"");
    assert_eq!(p.status.code(), Some(1));
    assert_eq!(
        text(&p).1,
        "Error response from daemon: No such container: nosuch\n"
    );

    // container prune: the stopped ones go, as docker prints it.
    s.ok(&["create", "--name", "stopped", "busybox"]);
    let id = s.inspect("stopped", "{{.Id}}");
    assert_eq!(
        s.ok(&["container", "prune", "-f"]),
        format!("Deleted Containers:\n{id}\n\nTotal reclaimed space: 0B\n")
    );
    assert_eq!(
        s.same(&["container", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    // Not confirmed: nothing removed.
    s.ok(&["create", "--name", "kept", "busybox"]);
    let out = s.run(&["container", "prune"], b"n\n");
    assert!(out.status.success());
    assert_eq!(
        text(&out).0,
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(s.inspect("kept", "{{.Name}}"), "/kept");
}

/// Runs `pier cp` and `docker cp` with the same arguments, `DEST` standing for a
/// fresh local directory of each (prepared by `prep`); both must agree on status,
/// messages and the resulting tree.
fn cp_from_same(s: &Setup, prep: &dyn Fn(&Path), args: &[&str]) -> Vec<String> {
    let mut results = Vec::new();
    for who in ["pier", "docker"] {
        let dest = s.path(&format!("out-{who}"));
        let _ = fs::remove_dir_all(&dest);
        fs::create_dir(&dest).unwrap();
        prep(&dest);
        let d = dest.to_str().unwrap();
        let args: Vec<String> = args.iter().map(|a| a.replace("DEST", d)).collect();
        let mut full = vec!["cp"];
        full.extend(args.iter().map(String::as_str));
        let out = if who == "pier" {
            s.run(&full, b"")
        } else {
            s.docker(&full, b"")
        };
        let err = text(&out).1.replace(d, "DEST");
        results.push((out.status.code(), err, tree(&dest)));
    }
    assert_eq!(results[0], results[1], "cp {args:?}: pier vs docker");
    results.remove(0).2
}

#[test]
fn cp_follows_docker_semantics() {
    let Some(s) = setup() else { return };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo one > /data/a.txt && echo two > /data/sub/b \
         && chmod 741 /data/a.txt && chmod 700 /data/sub && ln -s a.txt /data/link \
         && ln -s /data /dlink && touch /ready && exec sleep 1000",
    ]);
    eventually("the container's files", || {
        s.run(&["cp", "box:/ready", "-"], b"").status.success()
    });
    let none = |_: &Path| {};
    let with_dir_and_file = |d: &Path| {
        fs::create_dir(d.join("data")).unwrap();
        fs::write(d.join("file"), "old").unwrap();
    };

    // From the container.
    let t = cp_from_same(&s, &none, &["box:/data", "DEST/"]);
    assert_eq!(
        t,
        [
            "data d 755",
            "data/a.txt f 741 \"one\\n\"",
            "data/link l -> a.txt",
            "data/sub d 700",
            "data/sub/b f 644 \"two\\n\"",
        ]
    );
    let t = cp_from_same(&s, &none, &["box:/data", "DEST/new"]);
    assert_eq!(t[0], "new d 755");
    assert_eq!(t.len(), 5);
    cp_from_same(&s, &none, &["box:/data/", "DEST/new"]);
    let t = cp_from_same(&s, &none, &["box:/data/.", "DEST"]);
    assert_eq!(t[0], "a.txt f 741 \"one\\n\"");
    let t = cp_from_same(&s, &none, &["box:/data/a.txt", "DEST/x"]);
    assert_eq!(t, ["x f 741 \"one\\n\""]);
    let t = cp_from_same(&s, &none, &["box:/data/a.txt", "DEST/nodir/"]);
    assert!(t.is_empty());
    let t = cp_from_same(&s, &none, &["box:/data/link", "DEST"]);
    assert_eq!(t, ["link l -> a.txt"]);
    let t = cp_from_same(&s, &none, &["-L", "box:/data/link", "DEST"]);
    assert_eq!(t, ["link f 741 \"one\\n\""]);
    let t = cp_from_same(&s, &none, &["box:/dlink", "DEST"]);
    assert_eq!(t, ["dlink l -> /data"]);
    let t = cp_from_same(&s, &none, &["-L", "box:/dlink", "DEST"]);
    assert_eq!(t[0], "dlink d 755");
    assert_eq!(t.len(), 5);
    cp_from_same(&s, &none, &["box:/dlink/", "DEST"]);
    cp_from_same(&s, &none, &["box:/nope", "DEST"]);
    cp_from_same(&s, &none, &["box:/data/a.txt/", "DEST"]);
    let t = cp_from_same(&s, &with_dir_and_file, &["box:/data", "DEST"]);
    assert!(
        t.contains(&"data/sub/b f 644 \"two\\n\"".to_string()),
        "{t:?}"
    );
    cp_from_same(&s, &with_dir_and_file, &["box:/data", "DEST/file"]);
    let t = cp_from_same(&s, &with_dir_and_file, &["box:/data/a.txt", "DEST/file"]);
    assert!(t.contains(&"file f 741 \"one\\n\"".to_string()), "{t:?}");
    // `dir/.` to a new directory: the contents under the new name.
    let dest = s.path("contents");
    s.ok(&["cp", "box:/data/.", dest.to_str().unwrap()]);
    assert_eq!(
        tree(&dest),
        [
            "a.txt f 741 \"one\\n\"",
            "link l -> a.txt",
            "sub d 700",
            "sub/b f 644 \"two\\n\"",
        ]
    );
    // To stdout: docker's tar.
    let p = s.run(&["cp", "box:/data", "-"], b"");
    let d = s.docker(&["cp", "box:/data", "-"], b"");
    assert!(p.status.success());
    assert_eq!(p.stdout, d.stdout);

    // Into the container: a local tree, compared with docker's copy into another
    // container by listing both with `docker exec`.
    s.ok(&["run", "-d", "--name", "pc", "busybox", "sleep", "1000"]);
    s.ok(&["run", "-d", "--name", "dc", "busybox", "sleep", "1000"]);
    let src = s.path("src");
    fs::create_dir_all(src.join("tree/sub")).unwrap();
    fs::write(src.join("tree/f1"), "hello\n").unwrap();
    fs::set_permissions(src.join("tree/f1"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::write(src.join("tree/sub/g"), "x\n").unwrap();
    fs::set_permissions(src.join("tree/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink("f1", src.join("tree/ln")).unwrap();
    fs::write(src.join("file"), "solo\n").unwrap();
    symlink("tree", src.join("treelink")).unwrap();
    std::os::unix::fs::lchown(src.join("tree/sub/g"), Some(1234), Some(99)).unwrap();
    // A container's tree as docker's `cp CONTAINER:PATH -` archives it.
    let list = |c: &str, base: &str| -> Vec<String> {
        let out = s.docker(&["cp", &format!("{c}:{base}"), "-"], b"");
        assert!(out.status.success(), "{out:?}");
        let mut a = tar::Archive::new(&out.stdout[..]);
        let mut v: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut content = String::new();
                std::io::Read::read_to_string(&mut e, &mut content).unwrap();
                format!(
                    "{} {:?} {:o} {}:{} {:?} {content:?}",
                    e.path().unwrap().display(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    e.link_name().unwrap()
                )
            })
            .collect();
        v.sort();
        v
    };
    let cases: &[&[&str]] = &[
        &["tree", "CTR/existing"],
        &["tree", "CTR/new"],
        &["tree/", "CTR/new"],
        &["tree/.", "CTR/new"],
        &["tree/.", "CTR/existing"],
        &["file", "CTR/existing"],
        &["file", "CTR/new"],
        &["file", "CTR/afile"],
        &["file", "CTR/nodir/"],
        &["tree", "CTR/afile"],
        &["treelink", "CTR/existing"],
        &["-L", "treelink", "CTR/existing"],
        &["treelink/", "CTR/existing"],
        &["-a", "tree", "CTR/existing"],
        &["nope", "CTR/existing"],
        &["file/", "CTR/existing"],
    ];
    for (n, case) in cases.iter().enumerate() {
        let base = format!("/t{n}");
        let mut outs = Vec::new();
        for (who, c) in [("pier", "pc"), ("docker", "dc")] {
            s.docker_ok(&[
                "exec",
                c,
                "sh",
                "-c",
                &format!("mkdir -p {base}/existing && touch {base}/afile"),
            ]);
            let args: Vec<String> = case
                .iter()
                .map(|a| {
                    if a.starts_with("CTR") {
                        a.replace("CTR", &format!("{c}:{base}"))
                    } else if a.starts_with('-') {
                        a.to_string()
                    } else {
                        src.join(a).to_str().unwrap().to_string()
                            + if a.ends_with('/') { "/" } else { "" }
                    }
                })
                .collect();
            let mut full = vec!["cp"];
            full.extend(args.iter().map(String::as_str));
            let out = if who == "pier" {
                s.run(&full, b"")
            } else {
                s.docker(&full, b"")
            };
            // docker also logs its tar writer's broken pipe on refusals: the
            // last line is the message.
            let err = text(&out)
                .1
                .lines()
                .last()
                .unwrap_or("")
                .replace(&format!("{c}:"), "CTR:");
            outs.push((out.status.code(), err, list(c, &base)));
        }
        assert_eq!(outs[0], outs[1], "cp {case:?}: pier vs docker");
    }
    // The uid/gid: the container's root without -a, the file's own with it.
    assert!(list("pc", "/t0/existing/tree/sub/g")[0].contains(" 0:0 "));
    assert!(list("pc", "/t13/existing/tree/sub/g")[0].contains(" 1234:99 "));

    // A tar on stdin into a directory.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o640);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "in/stdin.txt", &b"abc"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let out = s.run(&["cp", "-", "pc:/t0"], &tar);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        list("pc", "/t0/in/stdin.txt"),
        ["stdin.txt Regular 640 0:0 None \"abc\""]
    );
    let out = s.run(&["cp", "-", "pc:/t0/afile"], &tar);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "destination \"pc:/t0/afile\" must be a directory\n"
    );

    // A round trip keeps contents and modes.
    s.ok(&["cp", src.join("tree").to_str().unwrap(), "pc:/round"]);
    let back = s.path("back");
    s.ok(&["container", "cp", "pc:/round", back.to_str().unwrap()]);
    assert_eq!(tree(&back), tree(&src.join("tree")));
    assert_eq!(
        fs::metadata(back.join("f1")).unwrap().mtime(),
        fs::metadata(src.join("tree/f1")).unwrap().mtime()
    );

    let out = s.run(&["cp", "a", "b"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out).1, "must specify at least one container source\n");
    let out = s.run(&["cp", "pc:/a", "dc:/b"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "copying between containers is not supported\n"
    );
}

#[test]
fn stats_like_docker() {
    let Some(s) = setup() else { return };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    s.ok(&["run", "-d", "--name", "idle", "busybox", "sleep", "1000"]);
    s.ok(&["create", "--name", "stopped", "busybox"]);

    let out = s.ok(&["stats", "--no-stream"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let docker = s.docker_ok(&["stats", "--no-stream"]);
    assert_eq!(lines[0], docker.lines().next().unwrap());
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"),
        "{out}"
    );
    // NET I/O's column is as wide as the widest figure (stats carry `networks` now).
    assert!(lines[0].contains("   NET I/O "), "{out}");
    // BLOCK I/O's column is as wide as its widest figure too.
    assert!(
        lines[0].ends_with("PIDS")
            && lines[0]
                .split("BLOCK I/O")
                .nth(1)
                .is_some_and(|gap| gap.trim() == "PIDS" && gap.len() >= "   PIDS".len()),
        "{out}"
    );
    // The busy loop uses CPU; the idle sleep none.
    let format = [
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.PIDs}} {{.MemUsage}}",
    ];
    let rows = s.ok(&format);
    let busy = rows.lines().find(|l| l.starts_with("busy ")).unwrap();
    let cpu: f64 = busy
        .split(' ')
        .nth(1)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 10.0, "{rows}");
    let idle = rows.lines().find(|l| l.starts_with("idle ")).unwrap();
    assert!(idle.starts_with("idle 0.00% 1 "), "{rows}");
    assert!(idle.contains("iB / "), "{rows}");
    // Same names, PIDs and columns as docker's. The network counters are not compared
    // between two samples: a bridged container's interface still sees traffic.
    let names = [
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.Container}}",
    ];
    assert_eq!(sorted(&s.ok(&names)), sorted(&s.docker_ok(&names)));
    let net = s.ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", "idle"]);
    assert!(net.trim().split_once(" / ").is_some(), "{net}");
    let all = [
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.PIDs}}",
    ];
    assert_eq!(sorted(&s.ok(&all)), sorted(&s.docker_ok(&all)));
    assert!(s.ok(&all).contains("stopped 0"));
    let named = [
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Container}} {{.Name}}",
        "idle",
    ];
    let ours = s.ok(&named);
    assert_eq!(ours, s.docker_ok(&named));
    assert_eq!(ours.split(' ').next().unwrap().len(), 64);
    s.same(&["stats", "--no-stream", "nosuch"]);

    // Streaming: redrawn in place, docker's escape sequences.
    let mut child = s
        .cmd(&["stats", "--format", "{{.Name}} {{.PIDs}}", "idle"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("\x1b[Hidle 1\n\x1b[Hidle 1 \x1b[K\n \x1b[K\n\x1b[J"),
        "{out:?}"
    );
}

fn sorted(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn commit_events_and_system() {
    let Some(s) = setup() else { return };
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    s.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo v1 > /version; exec sleep 1000",
    ]);
    let id = s.inspect("web", "{{.Id}}");

    // commit: the image's ID, its config changed as asked.
    eventually("the container's change", || {
        s.ok(&["diff", "web"]).contains("A /version")
    });
    let image = s.ok(&[
        "commit",
        "-a",
        "Tester <t@example.com>",
        "-m",
        "first",
        "-c",
        "ENV MODE=test",
        "-c",
        "CMD [\"cat\", \"/version\"]",
        "web",
        "mine:v1",
    ]);
    let image = image.trim();
    assert!(image.starts_with("sha256:") && image.len() == 71, "{image}");
    assert_eq!(
        s.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{.Author}} {{.Comment}} {{json .Config.Cmd}}",
            "mine:v1"
        ]),
        format!("{image} Tester <t@example.com> first [\"cat\",\"/version\"]\n")
    );
    assert!(s
        .docker_ok(&["image", "inspect", "-f", "{{json .Config.Env}}", "mine:v1"])
        .contains("MODE=test"));
    assert_eq!(s.ok(&["run", "--rm", "mine:v1"]), "v1\n");
    // Without a reference: a dangling image; --pause=false.
    let out = s.ok(&["container", "commit", "--pause=false", "web"]);
    assert!(out.starts_with("sha256:"), "{out}");
    let out = s.run(&["commit", "nosuch", "x"], b"");
    assert_eq!(out.status.code(), Some(1));

    // events: the same lines as docker's for the same window, in docker's format.
    s.ok(&["stop", "-t", "0", "web"]);
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let since = since.to_string();
    let events = s.same(&["events", "--since", &since, "--until", &until]);
    let start = events
        .lines()
        .find(|l| l.contains(" container start "))
        .unwrap_or_else(|| panic!("no start event in {events}"));
    let (time, rest) = start.split_once(' ').unwrap();
    assert_eq!(time.len(), 30, "{start}");
    assert!(
        time.ends_with('Z') && time.as_bytes()[19] == b'.',
        "{start}"
    );
    assert_eq!(
        rest,
        format!("container start {id} (image=busybox, name=web)")
    );
    s.same(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{json .}}",
    ]);
    s.same(&[
        "events", "--since", &since, "--until", &until, "--format", "json",
    ]);
    s.same(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "-f",
        "event=stop",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    ]);
    s.same(&[
        "events",
        "--since",
        "10m",
        "--until",
        &until,
        "-f",
        "container=web",
    ]);
    s.same(&[
        "system",
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "-f",
        "type=image",
    ]);

    // system df, summary and verbose, as docker prints them.
    let df = s.same(&["system", "df"]);
    assert!(
        df.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages "),
        "{df}"
    );
    s.same(&[
        "system",
        "df",
        "--format",
        "{{.Type}}: {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}",
    ]);
    s.same_but_times(&["system", "df", "-v"]);

    // system prune: stopped containers and dangling images go.
    let out = s.ok(&["system", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Containers:\n{id}\n\n")),
        "{out}"
    );
    assert!(out.contains("Deleted Images:\n"), "{out}");
    assert!(out.contains("\nTotal reclaimed space: "), "{out}");
    assert!(s.ok(&["ps", "-aq"]).is_empty());
    assert_eq!(
        s.same(&["system", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    let out = s.run(&["system", "prune"], b"n\n");
    let d = s.docker(&["system", "prune"], b"n\n");
    assert_eq!(text(&out), text(&d));
    // -a removes unused tagged images too.
    s.ok(&["system", "prune", "-a", "-f"]);
    assert!(s.docker_ok(&["images", "-q"]).is_empty());
}
