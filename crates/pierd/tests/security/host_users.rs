//! Hole 1 (the CVE-2021-41091 class): an unprivileged host user must reach nothing of
//! pierd's: not a running container's files (a setuid-root binary made inside one
//! would give them root), not the state (containers' environment, secrets included),
//! not the logs.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{pierd_with_busybox, wait_until, Engine};

/// The host's `nobody`.
const NOBODY: u32 = 65534;

/// `sh -c script` as `nobody` (no supplementary groups: std drops them with the uid).
fn as_nobody(script: &str) -> pier_testsupport::Out {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]).uid(NOBODY).gid(NOBODY);
    pier_testsupport::run(&mut cmd, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"))
}

/// Every regular file below `dir` whose mode has the setuid bit (walked as root).
fn setuid_files(dir: &Path) -> Vec<PathBuf> {
    crate::support::files_below(dir, |_, meta| meta.permissions().mode() & 0o4000 != 0)
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn host_users_reach_no_container_file_state_or_log() {
    let Some((mut pierd, _work)) = pierd_with_busybox() else {
        return;
    };
    // The test's own directory is open to all, so that only pierd's modes stand between
    // `nobody` and the daemon's files (a real data root sits in /var/lib, open to all).
    std::fs::set_permissions(pierd.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = pierd.docker_ok(&[
        "run",
        "-d",
        "-e",
        "SECRET=hunter2-in-env",
        "busybox",
        "sh",
        "-c",
        "cp /bin/busybox /suid && chmod 4755 /suid && echo hunter2-in-log && sleep 100",
    ]);
    let id = id.trim();
    assert!(
        wait_until(Duration::from_secs(30), || pierd
            .docker(&["logs", id])
            .stdout
            .contains("hunter2-in-log")),
        "{}",
        pierd.log_tail(30)
    );
    let data = pierd.data_root();
    let exec = pierd.exec_root();
    let suid: Vec<PathBuf> = setuid_files(&data)
        .into_iter()
        .chain(setuid_files(&exec))
        .filter(|p| p.ends_with("suid"))
        .collect();
    assert!(!suid.is_empty(), "the container's setuid copy is nowhere");
    let log = PathBuf::from(
        pierd
            .docker_ok(&["inspect", "-f", "{{.LogPath}}", id])
            .trim(),
    );
    assert!(log.is_file(), "{}", log.display());
    let state = data.join("state.redb");
    assert!(std::fs::read(&state)
        .unwrap()
        .windows(14)
        .any(|w| w == b"hunter2-in-env"));

    // The attack: run the container's setuid-root binary from the host, read the
    // state and the log.
    for path in &suid {
        let out = as_nobody(&format!("exec {} id -u", path.display()));
        assert_ne!(
            out.stdout.trim(),
            "0",
            "host user became root via {path:?}: {out:?}"
        );
        assert_ne!(out.code, Some(0), "{out:?}");
    }
    for file in [&state, &log] {
        let out = as_nobody(&format!("cat {}", file.display()));
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(!out.stdout.contains("hunter2"), "{out:?}");
    }
    // Nothing at all below either root is readable or listable to `nobody`.
    let out = as_nobody(&format!(
        "find {} {} -readable 2>/dev/null",
        data.display(),
        exec.display()
    ));
    assert_eq!(out.stdout.trim(), "", "readable to a host user: {out:?}");

    // The modes, as dockerd's; the state and the log, root's only.
    assert_eq!(mode_of(&data), 0o710);
    assert_eq!(mode_of(&exec), 0o700);
    assert_eq!(mode_of(&data.join("containers")), 0o710);
    assert_eq!(mode_of(&data.join("image")), 0o700);
    assert_eq!(mode_of(&state), 0o600);
    assert_eq!(mode_of(&log), 0o640);

    // A data root left open by an older pierd is closed again at the next start.
    for dir in [
        &data,
        &data.join("containers"),
        &data.join("image"),
        &data.join("image/snapshots"),
    ] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    pierd.crash_and_restart(Duration::from_millis(100));
    assert_eq!(mode_of(&data), 0o710);
    assert_eq!(mode_of(&data.join("containers")), 0o710);
    assert_eq!(mode_of(&data.join("image")), 0o700);
    assert_eq!(mode_of(&state), 0o600);
    assert_eq!(mode_of(&data.join("image/snapshots")), 0o700);
    assert_eq!(mode_of(&data.join("image/content")), 0o700);
    for path in &suid {
        let out = as_nobody(&format!("exec {} id -u", path.display()));
        assert_ne!(out.code, Some(0), "{out:?}");
    }
    pierd.docker_ok(&["rm", "-f", id]);
}
