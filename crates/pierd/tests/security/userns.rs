//! User namespaces, checked from the host's side: with `pierd --userns-remap`, a
//! container's root is an unprivileged host user, image layers stay shared and
//! unshifted, `--userns auto` gives each container a range of its own, and
//! `--userns host` opts out.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{pierd_with_busybox_args, Engine, Pierd};

const REMAP_USER: &str = "pierremap";

/// Removes the remap user (and with it its subordinate ranges) at the end, if this
/// test made it.
struct RemapUserCleanup {
    made_here: bool,
}

impl Drop for RemapUserCleanup {
    fn drop(&mut self) {
        if self.made_here {
            let _ = Command::new("userdel").arg(REMAP_USER).status();
            for file in ["/etc/subuid", "/etc/subgid"] {
                if let Ok(text) = std::fs::read_to_string(file) {
                    let kept: String = text
                        .lines()
                        .filter(|l| !l.starts_with(&format!("{REMAP_USER}:")))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    let _ = std::fs::write(file, kept);
                }
            }
        }
    }
}

fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(&format!("{name}:")))
}

/// The first subordinate ID of `user` in `file`.
fn first_subordinate(file: &str, user: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == user).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("{user} has no range in {file}"))
}

/// `Uid:` of a host process: real, effective, saved, filesystem.
fn host_uid_of(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn pid_of(e: &Pierd, id: &str) -> String {
    e.docker_ok(&["inspect", "-f", "{{.State.Pid}}", id])
        .trim()
        .to_string()
}

/// `POST` of a JSON body to pierd's socket with curl; (status, body).
fn api_post(e: &Pierd, path: &str, body: &str) -> (String, String) {
    let out = pier_testsupport::run(
        Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(e.socket())
            .args([
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
            ])
            .arg(format!("http://pierd{path}")),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (body, status) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
    (status.to_string(), body.to_string())
}

fn create_via_api(e: &Pierd, host_config: &str) -> (String, String) {
    api_post(
        e,
        "/containers/create",
        &format!(r#"{{"Image":"busybox","Cmd":["sleep","100"],"HostConfig":{host_config}}}"#),
    )
}

#[test]
fn remapped_root_is_an_unprivileged_host_user() {
    if !pier_testsupport::require_tools("userns remap", &["useradd", "usermod", "userdel", "curl"])
    {
        return;
    }
    let _cleanup = RemapUserCleanup {
        made_here: !user_exists(REMAP_USER),
    };
    let Some((pierd, work)) = pierd_with_busybox_args(&["--userns-remap", "default"]) else {
        return;
    };
    let base = first_subordinate("/etc/subuid", REMAP_USER);
    assert!(base >= 100_000, "{base}");
    assert_eq!(first_subordinate("/etc/subgid", REMAP_USER), base);

    // Container root is the range's first ID on the host, in a user namespace of its
    // own; inside it is root, and sees its mapping.
    let id = pierd.docker_ok(&["run", "-d", "busybox", "sleep", "100"]);
    let id = id.trim();
    let pid = pid_of(&pierd, id);
    assert_eq!(host_uid_of(&pid), base.to_string());
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(),
        std::fs::read_link("/proc/self/ns/user").unwrap()
    );
    let inside = pierd.docker_ok(&["exec", id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let words: Vec<&str> = inside.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &base.to_string(), "65536"], "{inside}");

    // A host file only root may read stays closed to the container's root; a host
    // directory open to all gets the container's files as the mapped user's.
    let shared = work.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(shared.join("root-only"), "host secret").unwrap();
    std::fs::set_permissions(
        shared.join("root-only"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let vol = format!("{}:/shared", shared.display());
    let out = pierd.docker(&[
        "run",
        "--rm",
        "-v",
        &vol,
        "busybox",
        "sh",
        "-c",
        "cat /shared/root-only; touch /shared/made-inside",
    ]);
    assert!(!out.stdout.contains("host secret"), "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    let made = std::fs::metadata(shared.join("made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (base, base));
    // Opting out: `--userns host` is the host's root, as without remap.
    let out = pierd.docker_ok(&[
        "run",
        "--rm",
        "--userns",
        "host",
        "-v",
        &vol,
        "busybox",
        "cat",
        "/shared/root-only",
    ]);
    assert_eq!(out, "host secret");

    // The layers are shared and stay as the image has them: what the container writes
    // is stored as root in its upper dir, and seen as root inside.
    pierd.docker_ok(&[
        "exec",
        id,
        "sh",
        "-c",
        "echo x > /etc/written && mkdir -p /made/d",
    ]);
    let written = find_below(&pierd.data_root().join("image"), "written");
    assert_eq!(written.len(), 1, "{written:?}");
    let meta = std::fs::metadata(&written[0]).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    let busybox = find_below(&pierd.data_root().join("image"), "busybox");
    assert!(busybox
        .iter()
        .all(|p| std::fs::symlink_metadata(p).unwrap().uid() == 0));
    let ls = pierd.docker_ok(&["exec", id, "ls", "-ln", "/etc/written", "/bin/busybox"]);
    for line in ls.lines() {
        assert_eq!(line.split_whitespace().nth(2), Some("0"), "{ls}");
    }

    // docker cp in and out: owners as the container sees them.
    std::fs::write(work.path().join("in.txt"), "in").unwrap();
    let dest = format!("{id}:/in.txt");
    pierd.docker_ok(&[
        "cp",
        &work.path().join("in.txt").display().to_string(),
        &dest,
    ]);
    let ls = pierd.docker_ok(&["exec", id, "ls", "-ln", "/in.txt"]);
    assert_eq!(ls.split_whitespace().nth(2), Some("0"), "{ls}");
    pierd.docker_ok(&["exec", id, "chown", "1000:1000", "/in.txt"]);
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} cp {id}:/in.txt - | tar -tvf -",
            crate::common::DOCKER
        ))
        .env("DOCKER_HOST", pierd.host())
        .env("DOCKER_CONFIG", pierd.dir().join("cli"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("1000/1000"), "{listing}");

    // `--userns auto` (Pier's; the docker CLI knows only `host`, so through the API):
    // a range per container, neither slot 0's nor each other's.
    let mut auto_uids = Vec::new();
    for _ in 0..2 {
        let (status, body) = create_via_api(&pierd, r#"{"UsernsMode":"auto"}"#);
        assert_eq!(status, "201", "{body}");
        let auto_id: serde_json::Value = serde_json::from_str(&body).unwrap();
        let auto_id = auto_id["Id"].as_str().unwrap().to_string();
        pierd.docker_ok(&["start", &auto_id]);
        auto_uids.push(host_uid_of(&pid_of(&pierd, &auto_id)));
    }
    let slot = |uid: &str| (uid.parse::<u32>().unwrap() - base) / 65536;
    assert_ne!(auto_uids[0], auto_uids[1]);
    assert!(auto_uids.iter().all(|u| slot(u) >= 1), "{auto_uids:?}");

    // Refusals, with dockerd's words; nothing is created.
    let before = pierd.docker_ok(&["ps", "-aq"]);
    let out = pierd.docker(&["run", "--rm", "--privileged", "busybox", "true"]);
    assert_eq!(out.code, Some(125), "{out:?}");
    assert!(
        out.stderr
            .contains("privileged mode is incompatible with user namespaces"),
        "{out:?}"
    );
    let (status, body) = create_via_api(&pierd, r#"{"UsernsMode":"bogus"}"#);
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("invalid --userns: bogus"), "{body}");
    assert_eq!(pierd.docker_ok(&["ps", "-aq"]), before);

    // The host's /dev/null, every container's stdin here, still belongs to root: a
    // container's root must never be given it (runc skips it when it fixes stdio).
    let null = std::fs::metadata("/dev/null").unwrap();
    assert_eq!(
        (null.uid(), null.gid()),
        (0, 0),
        "host /dev/null was chowned"
    );
}

/// Regular files named `name` below `dir`.
fn find_below(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    crate::support::files_below(dir, |path, _| path.file_name() == Some(name.as_ref()))
}

#[test]
fn auto_without_a_remap_user_is_refused() {
    if !pier_testsupport::require_tools("userns auto", &["curl"]) {
        return;
    }
    let Some((pierd, _work)) = crate::common::pierd_with_busybox() else {
        return;
    };
    let (status, body) = create_via_api(&pierd, r#"{"UsernsMode":"auto"}"#);
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("start pierd with --userns-remap"), "{body}");
    // `host` without remap is the default: accepted.
    let (status, body) = create_via_api(&pierd, r#"{"UsernsMode":"host"}"#);
    assert_eq!(status, "201", "{body}");
}
