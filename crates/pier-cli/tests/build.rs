//! `pier build`: the context walked with `.dockerignore`, a Dockerfile from outside the
//! context or stdin, build args, `-q`/`--iidfile`, and a failing step's exit code.

use std::fs;

mod common;

use common::{text, Setup};

fn write(dir: &std::path::Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, content).expect("write");
}

#[test]
fn pier_build_sends_the_context_and_prints_the_daemons_progress() {
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    let ctx = tempfile::tempdir().expect("ctx");
    let dir = ctx.path();
    write(dir, "Dockerfile", "FROM busybox\nARG WHO=nobody\nCOPY . /ctx/\nRUN echo \"hello $WHO\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n");
    write(dir, ".dockerignore", "*.log\nsecret/\n!secret/keep\n");
    write(dir, "app.txt", "app\n");
    write(dir, "debug.log", "log\n");
    write(dir, "secret/key", "key\n");
    write(dir, "secret/keep", "keep\n");
    let out = s.run(
        &[
            "build",
            "-t",
            "built:1",
            "--build-arg",
            "WHO=pier",
            dir.to_str().expect("utf8"),
        ],
        b"",
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Step 1/5 : FROM busybox"), "{stdout}");
    assert!(stdout.contains("Successfully tagged built:1"), "{stdout}");
    assert!(stderr.contains("pier: built "), "{stderr}");
    assert_eq!(s.ok(&["run", "--rm", "built:1"]), "hello pier\n");
    // What .dockerignore excludes never reached the daemon; its exception did.
    let listing = s.ok(&["run", "--rm", "built:1", "find", "/ctx", "-type", "f"]);
    let mut files: Vec<&str> = listing.lines().collect();
    files.sort();
    assert_eq!(
        files,
        [
            "/ctx/.dockerignore",
            "/ctx/Dockerfile",
            "/ctx/app.txt",
            "/ctx/secret/keep"
        ],
        "{listing}"
    );

    // Again: every step from the cache, -q prints only the ID, --iidfile has it too.
    let iid = dir.join("../iid");
    let out = s.run(
        &[
            "build",
            "-q",
            "--iidfile",
            iid.to_str().expect("utf8"),
            "-t",
            "built:1",
            "--build-arg",
            "WHO=pier",
            dir.to_str().expect("utf8"),
        ],
        b"",
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let id = stdout.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{stdout}");
    assert_eq!(fs::read_to_string(&iid).expect("iidfile"), id);
    let _ = fs::remove_file(&iid);

    // A Dockerfile from stdin, the context still the directory.
    let out = s.run(
        &[
            "build",
            "-t",
            "from-stdin",
            "-f",
            "-",
            dir.to_str().expect("utf8"),
        ],
        b"FROM busybox\nCOPY app.txt /\nCMD [\"cat\", \"/app.txt\"]\n",
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(s.ok(&["run", "--rm", "from-stdin"]), "app\n");
    // Neither the added Dockerfile nor the ignore file reach a `COPY .`.
    let out = s.run(
        &[
            "build",
            "-t",
            "copied",
            "-f",
            "-",
            dir.to_str().expect("utf8"),
        ],
        b"FROM busybox\nCOPY . /ctx/\n",
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let listing = s.ok(&["run", "--rm", "copied", "ls", "-a", "/ctx"]);
    assert!(
        !listing.contains(".dockerfile") && !listing.contains(".dockerignore"),
        "{listing}"
    );

    // An ignore file that excludes everything but one directory still sends the
    // Dockerfile (and the daemon leaves it out of the context).
    let ctx2 = tempfile::tempdir().expect("ctx");
    write(ctx2.path(), "Dockerfile", "FROM busybox\nCOPY . /ctx/\n");
    write(ctx2.path(), ".dockerignore", "*\n!src\n");
    write(ctx2.path(), "src/main.c", "int main;\n");
    write(ctx2.path(), "other", "x\n");
    let out = s.run(
        &[
            "build",
            "-t",
            "only-src",
            ctx2.path().to_str().expect("utf8"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let listing = s.ok(&["run", "--rm", "only-src", "find", "/ctx"]);
    assert_eq!(listing, "/ctx\n/ctx/src\n/ctx/src/main.c\n", "{listing}");

    // A failing step: its message on stderr, its exit code.
    let out = s.run(
        &["build", "-f", "-", dir.to_str().expect("utf8")],
        b"FROM busybox\nRUN exit 7\n",
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("The command '/bin/sh -c exit 7' returned a non-zero code: 7"),
        "{stderr}"
    );
}

#[test]
fn pier_build_of_a_url_has_the_daemon_fetch_it() {
    let Some(s) = Setup::with_busybox() else {
        return;
    };
    let www = tempfile::tempdir().expect("www");
    write(
        www.path(),
        "app.Dockerfile",
        "FROM busybox\nRUN echo from-url > /m\nCMD [\"cat\", \"/m\"]\n",
    );
    let server = pier_testsupport::http_server::HttpServer::start(www.path());
    let url = server.url("app.Dockerfile");
    let out = s.run(&["build", "-t", "from-url", &url], b"");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(s.ok(&["run", "--rm", "from-url"]), "from-url\n");
    let out = s.run(&["build", "git@example.invalid:repo.git"], b"");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out)
            .1
            .contains("git build contexts are not supported"),
        "{:?}",
        text(&out)
    );
}
