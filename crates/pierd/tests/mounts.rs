//! Every mount form of `docker run` (`-v`, `--mount`, `--tmpfs`), seen from inside real
//! containers run by pierd with the docker CLI, and the errors of bad ones compared
//! with an isolated dockerd's (exit code and message).
//!
//! Each test makes its host directories and mounts under a temp dir of its own, undoes
//! them (also when it fails), and checks that no mount under it is left.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{mounts_under, wait_until, Engine, Pierd};
use pier_testsupport::{DockerdOptions, IsolatedDockerd};

/// Host mounts a test made; unmounted (deepest first) when dropped.
struct HostMounts {
    made: Vec<PathBuf>,
}

impl HostMounts {
    fn new() -> HostMounts {
        HostMounts { made: Vec::new() }
    }

    /// `mount <args> <target>`, remembered for the unmount.
    fn mount(&mut self, args: &[&str], target: &Path) {
        let out = Command::new("mount")
            .args(args)
            .arg(target)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount {args:?} {}: {}",
            target.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.made.push(target.to_path_buf());
    }

    /// A tmpfs at `target` holding a file `marker`.
    fn tmpfs_with_marker(&mut self, target: &Path) {
        std::fs::create_dir_all(target).expect("mkdir");
        self.mount(&["-t", "tmpfs", "tmpfs"], target);
        std::fs::write(target.join("marker"), "in the submount\n").expect("write marker");
    }

    /// Makes `dir` a mount of its own with `propagation` (`--make-shared`, ...).
    fn own_mount(&mut self, dir: &Path, propagation: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let d = dir.to_str().expect("utf-8 path");
        self.mount(&["--bind", d], dir);
        let out = Command::new("mount")
            .arg(propagation)
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount {propagation} {}",
            dir.display()
        );
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for target in self.made.iter().rev() {
            let _ = rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// A pierd with busybox, or None (skipped) without the docker CLI or busybox.
fn pierd() -> Option<(Pierd, tempfile::TempDir)> {
    common::pierd_with_busybox()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs a busybox shell command in a new container; (exit code, stdout, stderr).
fn sh(e: &dyn Engine, opts: &[&str], script: &str) -> (Option<i32>, String, String) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let out = e.docker(&args);
    (out.code, out.stdout, out.stderr)
}

/// The `/proc/mounts` line of `target` inside a container run with `opts`.
fn proc_mounts_line(e: &dyn Engine, opts: &[&str], target: &str) -> String {
    let (code, out, err) = sh(e, opts, &format!("grep ' {target} ' /proc/mounts"));
    assert_eq!(code, Some(0), "no {target} in /proc/mounts: {out} {err}");
    out
}

/// No mount of this test is left under its work dir nor under pierd's directories
/// (the test's own host mounts undone first; pierd unmounts a container's rootfs as
/// its exit is processed, so that is waited for a little).
fn assert_no_mounts_left(host: HostMounts, work: &Path, pierd: &Pierd) {
    drop(host);
    let left = || {
        let mut left = mounts_under(work);
        left.extend(mounts_under(pierd.dir()));
        left
    };
    wait_until(Duration::from_secs(10), || left().is_empty());
    let left = left();
    assert!(left.is_empty(), "mounts left: {left:#?}");
}

#[test]
fn bind_modes_inside_containers() {
    let Some((pierd, work)) = pierd() else {
        return;
    };
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("file"), "from the host\n").expect("write");
    let host = HostMounts::new();

    // rw (the default) writes through to the host; ro refuses writes.
    let rw = format!("{}:/d", path(&src));
    let (code, _, err) = sh(&pierd, &["-v", &rw], "echo hi > /d/new && cat /d/file");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(src.join("new")).unwrap(), "hi\n");
    let ro = format!("{}:/d:ro,z", path(&src));
    let (code, out, err) = sh(&pierd, &["-v", &ro], "cat /d/file && touch /d/x");
    assert_eq!(out, "from the host\n");
    assert_ne!(code, Some(0));
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!src.join("x").exists());
    // `--mount readonly` and consistency (accepted, ignored on Linux).
    let m = format!(
        "type=bind,source={},target=/d,readonly,consistency=cached",
        path(&src)
    );
    let (code, _, err) = sh(&pierd, &["--mount", &m], "touch /d/x");
    assert_ne!(code, Some(0));
    assert!(err.contains("Read-only file system"), "{err}");

    // `-v` makes a missing host path (a directory); `--mount` refused it (see the
    // dockerd comparison).
    let missing = work.path().join("made/by/v");
    let v = format!("{}:/d", path(&missing));
    let (code, _, err) = sh(&pierd, &["-v", &v], "touch /d/y");
    assert_eq!(code, Some(0), "{err}");
    assert!(missing.join("y").is_file());
    // A file can be bound too.
    let f = format!("{}:/etc/motd:ro", path(&src.join("file")));
    let (code, out, err) = sh(&pierd, &["-v", &f], "cat /etc/motd");
    assert_eq!((code, out.as_str()), (Some(0), "from the host\n"), "{err}");

    assert_no_mounts_left(host, work.path(), &pierd);
}

#[test]
fn tmpfs_size_and_mode() {
    let Some((pierd, work)) = pierd() else {
        return;
    };
    let line = proc_mounts_line(&pierd, &["--tmpfs", "/t:size=1m,mode=700"], "/t");
    assert!(line.starts_with("tmpfs /t tmpfs "), "{line}");
    assert!(line.contains("size=1024k"), "{line}");
    assert!(line.contains("mode=700"), "{line}");
    assert!(
        line.contains("nosuid") && line.contains("nodev") && line.contains("noexec"),
        "{line}"
    );

    let line = proc_mounts_line(
        &pierd,
        &[
            "--mount",
            "type=tmpfs,target=/m,tmpfs-size=2097152,tmpfs-mode=0750",
        ],
        "/m",
    );
    assert!(line.contains("size=2048k"), "{line}");
    assert!(line.contains("mode=750"), "{line}");
    // A read-only tmpfs refuses writes.
    let (code, _, err) = sh(
        &pierd,
        &["--mount", "type=tmpfs,target=/r,readonly"],
        "touch /r/x",
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("Read-only file system"), "{err}");
    // `exec` lifts the default noexec.
    let (code, _, err) = sh(
        &pierd,
        &["--tmpfs", "/x:exec"],
        "cp /bin/busybox /x/true && /x/true",
    );
    assert_eq!(code, Some(0), "{err}");

    assert_no_mounts_left(HostMounts::new(), work.path(), &pierd);
}

#[test]
fn recursion_of_binds_and_of_read_only() {
    let Some((pierd, work)) = pierd() else {
        return;
    };
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let mut host = HostMounts::new();
    host.tmpfs_with_marker(&src.join("sub"));
    let s = path(&src);

    // Recursive by default: the submount comes along.
    let (code, out, err) = sh(&pierd, &["-v", &format!("{s}:/d")], "cat /d/sub/marker");
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "in the submount\n"),
        "{err}"
    );
    // bind-nonrecursive: only the directory of the source's own mount.
    let m = format!("type=bind,source={s},target=/d,bind-nonrecursive");
    let (code, out, _) = sh(&pierd, &["--mount", &m], "ls -A /d/sub");
    assert_eq!(
        (code, out.as_str()),
        (Some(0), ""),
        "the submount must be hidden"
    );

    let has_rro = pierd::engine::mounts::kernel_has_recursive_readonly();
    // bind-recursive=readonly: submounts read-only too (or the start fails).
    let m = format!(
        "type=bind,source={s},target=/d,readonly,bind-recursive=readonly,bind-propagation=rprivate"
    );
    let (code, _, err) = sh(&pierd, &["--mount", &m], "touch /d/sub/x");
    assert_ne!(code, Some(0));
    if has_rro {
        assert!(err.contains("Read-only file system"), "{err}");
    } else {
        eprintln!("recursive read-only: the kernel lacks mount_setattr; the start failed: {err}");
    }
    assert!(!src.join("sub/x").exists());
    if has_rro {
        // Read-only is recursive by default where the kernel can (Docker 25+).
        let ro = format!("{s}:/d:ro");
        let (code, _, err) = sh(&pierd, &["-v", &ro], "touch /d/sub/x");
        assert_ne!(code, Some(0));
        assert!(err.contains("Read-only file system"), "{err}");
    }
    // bind-recursive=writable: read-only itself, its submounts as they are.
    let m = format!("type=bind,source={s},target=/d,readonly,bind-recursive=writable");
    let (code, _, err) = sh(&pierd, &["--mount", &m], "touch /d/sub/w && ! touch /d/top");
    assert_eq!(code, Some(0), "{err}");
    assert!(src.join("sub/w").exists());

    assert_no_mounts_left(host, work.path(), &pierd);
}

/// `volume-subpath`: a directory inside the volume, resolved inside it (a symlink in
/// the volume cannot point the mount at the host).
#[test]
fn volume_subpaths() {
    let Some((pierd, work)) = pierd() else {
        return;
    };
    pierd.docker_ok(&["volume", "create", "data"]);
    pierd.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/logs && echo hi > /d/logs/old && ln -s / /d/escape",
    ]);
    let (code, out, err) = sh(
        &pierd,
        &[
            "--mount",
            "type=volume,src=data,dst=/logs,volume-subpath=logs",
        ],
        "cat /logs/old && touch /logs/new",
    );
    assert_eq!((code, out.as_str()), (Some(0), "hi\n"), "{err}");
    let (code, out, err) = sh(&pierd, &["-v", "data:/d"], "ls /d/logs");
    assert_eq!((code, out.as_str()), (Some(0), "new\nold\n"), "{err}");
    // The symlink to / is resolved inside the volume: its root, not the host's.
    let (code, out, err) = sh(
        &pierd,
        &[
            "--mount",
            "type=volume,src=data,dst=/v,volume-subpath=escape",
        ],
        "ls /v",
    );
    assert_eq!((code, out.as_str()), (Some(0), "escape\nlogs\n"), "{err}");
    let (code, _, err) = sh(
        &pierd,
        &[
            "--mount",
            "type=volume,src=data,dst=/v,volume-subpath=missing",
        ],
        "true",
    );
    assert_ne!(code, Some(0), "a missing subpath is refused: {err}");
    pierd.docker_ok(&["volume", "rm", "data"]);
    assert_no_mounts_left(HostMounts::new(), work.path(), &pierd);
}

/// A mount made on the host under a bind's source after the container started reaches
/// the container with rslave and rshared propagation, not with rprivate.
#[test]
fn propagation_of_later_host_mounts() {
    let Some((pierd, work)) = pierd() else {
        return;
    };
    let shared = work.path().join("shared");
    let mut host = HostMounts::new();
    host.own_mount(&shared, "--make-shared");
    let s = path(&shared);
    let names = [
        "prop-rslave",
        "prop-rshared",
        "prop-rprivate",
        "prop-default",
    ];
    let modes = [":rslave", ":rshared", ":rprivate", ""];
    for (name, mode) in names.iter().zip(modes) {
        let v = format!("{s}:/d{mode}");
        pierd.docker_ok(&[
            "run", "-d", "--name", name, "-v", &v, "busybox", "sleep", "300",
        ]);
    }
    host.tmpfs_with_marker(&shared.join("late"));
    let seen = |name: &str| {
        pierd
            .docker(&["exec", name, "cat", "/d/late/marker"])
            .stdout
            == "in the submount\n"
    };
    let results: Vec<(&str, bool)> = names.iter().map(|n| (*n, seen(n))).collect();
    pierd.docker_ok(&["rm", "-f", names[0], names[1], names[2], names[3]]);
    assert_eq!(
        results,
        [
            ("prop-rslave", true),
            ("prop-rshared", true),
            ("prop-rprivate", false),
            ("prop-default", false),
        ]
    );
    assert_no_mounts_left(host, work.path(), &pierd);
}

/// `type=image`: an image's filesystem, read-only (Docker 28; dockerd 20.10 lacks it).
#[test]
fn image_mounts() {
    let Some((pierd, work)) = pierd() else {
        return;
    };
    let (code, out, err) = sh(
        &pierd,
        &["--mount", "type=image,source=busybox,target=/img"],
        "ls /img/bin/busybox && ! touch /img/x",
    );
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "/img/bin/busybox\n"),
        "{err}"
    );
    let (code, out, err) = sh(
        &pierd,
        &[
            "--mount",
            "type=image,source=busybox,target=/img,image-subpath=bin",
        ],
        "ls /img/busybox",
    );
    assert_eq!((code, out.as_str()), (Some(0), "/img/busybox\n"), "{err}");
    let out = pierd.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=image,source=nosuch,target=/img",
        "busybox",
        "true",
    ]);
    assert_eq!(out.code, Some(125), "{out:?}");
    assert!(
        out.stderr.contains("No such image: nosuch"),
        "{}",
        out.stderr
    );
    // An image of several layers: mounted as one read-only overlay, with what the
    // upper layer removed gone.
    pierd.docker_ok(&[
        "run",
        "--name",
        "layered",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /app && echo upper > /app/added && rm /bin/vi",
    ]);
    pierd.docker_ok(&["commit", "layered", "layered:1"]);
    pierd.docker_ok(&["rm", "layered"]);
    let (code, out, err) = sh(
        &pierd,
        &["--mount", "type=image,source=layered:1,target=/img"],
        "cat /img/app/added && ls /img/bin/busybox && ! ls /img/bin/vi && ! touch /img/x",
    );
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "upper\n/img/bin/busybox\n"),
        "{err}"
    );
    let (code, out, err) = sh(
        &pierd,
        &[
            "--mount",
            "type=image,source=layered:1,target=/img,image-subpath=app",
        ],
        "ls /img",
    );
    assert_eq!((code, out.as_str()), (Some(0), "added\n"), "{err}");
    pierd.docker_ok(&["rmi", "layered:1"]);

    // A container's image mount holds a view of the image until it is removed.
    let views = || image_mount_views(&pierd.data_root());
    assert_eq!(views(), 0);
    pierd.docker_ok(&[
        "create",
        "--name",
        "holder",
        "--mount",
        "type=image,source=busybox,target=/img",
        "busybox",
        "true",
    ]);
    assert_eq!(views(), 1);
    pierd.docker_ok(&["rm", "holder"]);
    assert_eq!(views(), 0);
    assert_no_mounts_left(HostMounts::new(), work.path(), &pierd);
}

/// How many image-mount views pierd's snapshotter records (its `metadata.json`).
fn image_mount_views(data_root: &Path) -> usize {
    let mut found = 0;
    let mut dirs = vec![data_root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n == "metadata.json") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                found += text.matches("\"imagemount-").count();
            }
        }
    }
    found
}

/// An image with `/srv/app` owned by uid 999 (mode 0750): a file with a `user.*`
/// xattr and a hardlink, and a symlink; built from the busybox rootfs in `work`.
fn app_image_tar(work: &Path) -> PathBuf {
    let rootfs = work.join("rootfs");
    let app = rootfs.join("srv/app");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(app.join("data"), "image data\n").expect("write");
    std::fs::hard_link(app.join("data"), app.join("data.link")).expect("link");
    std::os::unix::fs::symlink("data", app.join("current")).expect("symlink");
    for p in [app.join("data"), app.clone()] {
        std::os::unix::fs::lchown(&p, Some(999), Some(999)).expect("chown");
    }
    std::os::unix::fs::lchown(app.join("current"), Some(999), Some(998)).expect("chown");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    std::fs::set_permissions(app.join("data"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    rustix::fs::setxattr(
        app.join("data"),
        "user.pier",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("user xattrs on the temp dir's filesystem");
    let tar = work.join("app.tar");
    let out = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=user.*",
            "--numeric-owner",
            "-C",
        ])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tar
}

/// The `user.pier` xattr of a file on the host.
fn user_xattr(path: &Path) -> Option<String> {
    let mut buf = [0u8; 64];
    let n = rustix::fs::lgetxattr(path, "user.pier", &mut buf[..]).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Copy-up: a new volume over `/srv/app` gets the image's content with owners, modes,
/// xattrs, hardlinks and symlinks, so the image's non-root user can write to it; the
/// same as dockerd does. `nocopy` leaves it empty.
#[test]
fn copy_up_keeps_what_a_non_root_image_needs() {
    let Some((pierd, work)) = pierd() else {
        return;
    };
    let Some(dockerd) = IsolatedDockerd::start_or_skip("mounts", DockerdOptions::default()) else {
        return;
    };
    let tar = app_image_tar(work.path());
    let engines: [(&str, &dyn Engine); 2] = [("pierd", &pierd), ("dockerd", &dockerd)];
    let script = "echo more >> /srv/app/data && \
                  stat -c '%n %u:%g %a %h' /srv/app /srv/app/data && \
                  readlink /srv/app/current && stat -c '%u:%g' /srv/app/current";
    let mut seen = Vec::new();
    for (label, e) in engines {
        e.docker_with_stdin(&["import", "-", "app"], &tar)
            .ok()
            .unwrap_or_else(|err| panic!("{label}: {err}"));
        let out = e.docker(&[
            "run",
            "--rm",
            "-u",
            "999",
            "-v",
            "appdata:/srv/app",
            "app",
            "sh",
            "-c",
            script,
        ]);
        assert_eq!(out.code, Some(0), "{label}: {out:?}");
        let mountpoint = e.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "appdata"]);
        let data = Path::new(mountpoint.trim()).join("data");
        let xattr = user_xattr(&data);
        let nocopy = e.docker(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=bare,target=/srv/app,volume-nocopy",
            "app",
            "ls",
            "-A",
            "/srv/app",
        ]);
        e.docker_ok(&["volume", "rm", "appdata", "bare"]);
        e.docker_ok(&["rmi", "app"]);
        seen.push((label, out.stdout, xattr, nocopy.code, nocopy.stdout));
    }
    drop(dockerd);
    let (_, stat, xattr, code, listing) = &seen[0];
    assert_eq!(
        stat, "/srv/app 999:999 750 2\n/srv/app/data 999:999 640 2\ndata\n999:998\n",
        "pierd"
    );
    assert_eq!(
        xattr.as_deref(),
        Some("kept"),
        "pierd: user.* xattrs are copied"
    );
    assert_eq!((*code, listing.as_str()), (Some(0), ""), "pierd: nocopy");
    let answer = |i: usize| (&seen[i].1, &seen[i].2, seen[i].3, &seen[i].4);
    assert_eq!(
        answer(0),
        answer(1),
        "pierd (left) and dockerd (right) differ"
    );
}

/// Bad mounts: the same exit code and message from pierd as from dockerd 20.10.
#[test]
fn errors_as_dockerd() {
    let Some((pierd, work)) = pierd() else {
        return;
    };
    let Some(dockerd) = IsolatedDockerd::start_or_skip("mounts", DockerdOptions::default()) else {
        return;
    };
    let tar = work.path().join("busybox-rootfs.tar");
    dockerd
        .docker_with_stdin(&["import", "-c", r#"CMD ["sh"]"#, "-", "busybox"], &tar)
        .ok()
        .unwrap_or_else(|e| panic!("{e}"));
    let private = work.path().join("private");
    let mut host = HostMounts::new();
    host.own_mount(&private, "--make-private");
    let missing = work.path().join("missing");
    let p = path(&private);
    let cases: Vec<Vec<String>> = [
        format!("--mount type=bind,source={},target=/x", path(&missing)),
        format!("-v {p}:/d -v {p}:/d/"),
        format!("-v {p}:/d --tmpfs /d"),
        format!("--mount type=bind,source={p},target=/d -v {p}:/d"),
        format!("-v {p}:/d:bogus"),
        format!("-v {p}:/d:ro,rw"),
        format!("-v {p}:/d:nocopy"),
        format!("-v {p}:/"),
        "-v vol:/d:rshared".into(),
        "--mount type=volume,target=/x,readonly".into(),
        "--mount type=tmpfs,target=/t,tmpfs-size=1m,source=x".into(),
        format!("--mount type=bind,source={p},target=/d,bind-propagation=rshared"),
        format!("-v {p}:/d:rslave"),
        format!("-v {p}:rel"),
        "--tmpfs rel".into(),
        "--mount type=npipe,source=x,target=/x".into(),
        format!("--mount type=bind,source={p},target=rel"),
    ]
    .iter()
    .map(|c| c.split(' ').map(str::to_string).collect())
    .collect();
    let mut differences = Vec::new();
    for case in &cases {
        let mut args: Vec<&str> = vec!["run", "--rm"];
        args.extend(case.iter().map(String::as_str));
        args.extend(["busybox", "true"]);
        let ours = pierd.docker(&args);
        let theirs = dockerd.docker(&args).unwrap_or_else(|e| panic!("{e}"));
        let answer = |o: &pier_testsupport::Out| (o.code, o.stderr.trim().to_string());
        eprintln!("docker {}: {:?}", args.join(" "), answer(&ours));
        if answer(&ours) != answer(&theirs) || ours.code == Some(0) {
            differences.push(format!(
                "docker {}\n  pierd:   {:?}\n  dockerd: {:?}",
                args.join(" "),
                answer(&ours),
                answer(&theirs)
            ));
        }
    }
    drop(dockerd);
    assert!(
        differences.is_empty(),
        "{} of {} cases differ:\n{}",
        differences.len(),
        cases.len(),
        differences.join("\n")
    );
    assert!(
        !missing.exists(),
        "a refused --mount must not make its source"
    );
    assert_no_mounts_left(host, work.path(), &pierd);
}
