//! `pier push/pull/login/logout` and `run` pulling a missing image, against Debian's
//! `docker-registry` on a loopback port: the same output as the docker CLI against
//! the same pierd, credentials in docker's `config.json`.

use std::process::{Command, Output};

mod common;

use common::{finish, text, Setup};
use pier_testsupport::registry::DockerRegistry;

const DOCKER: &str = "/usr/local/bin/docker";

fn docker(s: &Setup, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(DOCKER);
    c.args(args)
        .env("DOCKER_HOST", format!("unix://{}", s.socket().display()))
        .env("DOCKER_CONFIG", s.path("docker-config"))
        .env_remove("DOCKER_CONTEXT");
    finish(c, stdin)
}

fn pier(s: &Setup, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = s.cmd(args);
    c.env("DOCKER_CONFIG", s.path("pier-config"));
    finish(c, stdin)
}

#[test]
fn push_pull_login_and_run_pull_as_docker_does() {
    let test = "push_pull_login_and_run_pull_as_docker_does";
    if !common::host_has(DOCKER, "docker-ce-cli") {
        return;
    }
    let Some(registry) = DockerRegistry::start_or_skip(test, None) else {
        return;
    };
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    let app = format!("{}/cli/app:1", registry.host());
    s.ok(&["tag", "busybox", &app]);

    let out = pier(&s, &["push", &app], b"");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("Pushed"), "{stdout}");
    assert!(stdout.contains("1: digest: sha256:"), "{stdout}");

    // Pushed again and pulled while present: the same lines as docker's.
    for args in [vec!["push", app.as_str()], vec!["pull", app.as_str()]] {
        let mine = pier(&s, &args, b"");
        let theirs = docker(&s, &args, b"");
        assert_eq!(text(&mine), text(&theirs), "{args:?}");
        assert_eq!(mine.status.code(), theirs.status.code(), "{args:?}");
    }
    let quiet = pier(&s, &["pull", "-q", &app], b"");
    assert_eq!(String::from_utf8_lossy(&quiet.stdout).trim(), app);

    // Gone locally: `run` pulls it (messages on stderr), `--pull never` refuses.
    s.ok(&["rmi", &app]);
    let out = pier(
        &s,
        &["run", "--rm", "--pull", "never", &app, "echo", "hi"],
        b"",
    );
    assert!(!out.status.success(), "{out:?}");
    let out = pier(&s, &["run", "--rm", &app, "echo", "hi"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Unable to find image '{app}' locally")),
        "{stderr}"
    );
    assert!(
        stderr.contains("Status: Downloaded newer image"),
        "{stderr}"
    );

    // login stores what docker's login stores; logout removes it.
    let host = registry.host();
    let out = pier(
        &s,
        &["login", "-u", "tester", "--password-stdin", &host],
        b"pw\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Login Succeeded"
    );
    let theirs = docker(
        &s,
        &["login", "-u", "tester", "--password-stdin", &host],
        b"pw\n",
    );
    assert!(theirs.status.success(), "{theirs:?}");
    let read = |dir: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(s.path(dir).join("config.json")).expect("config");
        serde_json::from_str(&text).expect("json")
    };
    assert_eq!(read("pier-config")["auths"], read("docker-config")["auths"]);
    let out = pier(&s, &["logout", &host], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Removing login credentials for {host}")
    );
    assert!(read("pier-config")["auths"].get(&host).is_none());
    drop(registry);
}

/// With `credsStore` in config.json, `pier login` hands the credentials to the
/// `docker-credential-*` helper (nothing in `auths`), `push` gets them back from it
/// for an htpasswd registry, and `logout` erases them.
#[test]
fn credential_helper_holds_the_login() {
    let test = "credential_helper_holds_the_login";
    let Some(hash) = pier_testsupport::registry::bcrypt_hash("s3cret") else {
        pier_testsupport::skip(test, "no bcrypt hasher (python3 crypt with libxcrypt)");
        return;
    };
    let Some(registry) = DockerRegistry::start_or_skip(test, Some(&format!("tester:{hash}")))
    else {
        return;
    };
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    // A helper keeping one credential in a file, as the protocol asks: `store` reads
    // {ServerURL,Username,Secret}, `get` reads the server and answers that JSON,
    // `erase` reads the server and forgets it.
    let bin = s.path("helper-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let store = s.path("helper-store.json");
    let helper = bin.join("docker-credential-piertest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nstore={}\ncase \"$1\" in\n  store) cat > \"$store\" ;;\n  get) cat >/dev/null; [ -f \"$store\" ] && cat \"$store\" && exit 0; echo 'credentials not found in native keychain'; exit 1 ;;\n  erase) cat >/dev/null; rm -f \"$store\" ;;\nesac\n",
            store.display()
        ),
    )
    .expect("helper");
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let config_dir = s.path("pier-config");
    std::fs::create_dir_all(&config_dir).expect("mkdir");
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"credsStore":"piertest"}"#,
    )
    .expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let with_helper = |args: &[&str], stdin: &[u8]| {
        let mut c = s.cmd(args);
        c.env("DOCKER_CONFIG", &config_dir).env("PATH", &path);
        finish(c, stdin)
    };

    let host = registry.host();
    let app = format!("{host}/private/app:1");
    s.ok(&["tag", "busybox", &app]);
    let out = with_helper(&["push", &app], b"");
    assert!(!out.status.success(), "pushed without credentials: {out:?}");

    let out = with_helper(
        &["login", "-u", "tester", "--password-stdin", &host],
        b"s3cret\n",
    );
    assert!(out.status.success(), "{out:?}");
    let stored = std::fs::read_to_string(&store).expect("the helper stored nothing");
    assert!(stored.contains("\"Secret\":\"s3cret\""), "{stored}");
    let config = std::fs::read_to_string(config_dir.join("config.json")).expect("config");
    assert!(!config.contains("auths"), "{config}");

    let out = with_helper(&["push", &app], b"");
    assert!(out.status.success(), "{out:?}");

    let out = with_helper(&["logout", &host], b"");
    assert!(out.status.success(), "{out:?}");
    assert!(!store.exists(), "logout left the credentials in the helper");
}
