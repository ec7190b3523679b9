//! The parser and the expansion checked live against Debian's dockerd (classic
//! builder, `DOCKER_BUILDKIT=0 docker build`): metadata-only Dockerfiles on `scratch`
//! are built by dockerd and evaluated here by a small reference evaluator over
//! [`pier_dockerfile::parse`] and [`pier_dockerfile::expand`]; the image configs must
//! agree field by field. Bad Dockerfiles must fail in both, naming the same line and
//! problem. Skips (with the reason) where dockerd cannot start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pier_dockerfile::expand::{process_word, process_words};
use pier_dockerfile::ignore::DockerIgnore;
use pier_dockerfile::{Dockerfile, Instruction, InstructionKind, ShellOrExec};
use pier_testsupport::{DockerdOptions, IsolatedDockerd};
use serde_json::{json, Value};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The parts of an image config a metadata-only build sets.
#[derive(Clone, Default)]
struct Config {
    env: Vec<(String, String)>,
    labels: BTreeMap<String, String>,
    workdir: String,
    user: String,
    exposed: BTreeSet<String>,
    volumes: BTreeSet<String>,
    stop_signal: Option<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    shell: Option<Vec<String>>,
    onbuild: Vec<String>,
    healthcheck: Option<Value>,
}

impl Config {
    fn to_json(&self) -> Value {
        let map_or_null = |keys: &BTreeSet<String>| {
            if keys.is_empty() {
                Value::Null
            } else {
                keys.iter().map(|k| (k.clone(), json!({}))).collect()
            }
        };
        json!({
            "Env": self.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "Labels": if self.labels.is_empty() { Value::Null } else { json!(self.labels) },
            "WorkingDir": self.workdir,
            "User": self.user,
            "ExposedPorts": map_or_null(&self.exposed),
            "Volumes": map_or_null(&self.volumes),
            "StopSignal": self.stop_signal,
            "Cmd": self.cmd,
            "Entrypoint": self.entrypoint,
            "Shell": self.shell,
            "OnBuild": if self.onbuild.is_empty() { Value::Null } else { json!(self.onbuild) },
            "Healthcheck": self.healthcheck,
        })
    }

    fn set_env(&mut self, key: String, value: String) {
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
    }
}

/// Evaluates the metadata instructions of the last stage as the classic builder does.
fn evaluate(df: &Dockerfile, build_args: &[(&str, &str)]) -> Value {
    let escape = df.directives.escape;
    let given = |name: &str| {
        build_args
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let mut globals: BTreeMap<String, String> = BTreeMap::new();
    for decl in df.global_arg_decls() {
        let value = given(&decl.name).or_else(|| {
            decl.default
                .as_ref()
                .map(|d| process_word(d, escape, &|k| globals.get(k).cloned()).unwrap())
        });
        if let Some(v) = value {
            globals.insert(decl.name.clone(), v);
        }
    }
    let mut finished: Vec<Config> = Vec::new();
    for stage in &df.stages {
        let base = process_word(&stage.base, escape, &|k| globals.get(k).cloned()).unwrap();
        let mut config = if base == "scratch" {
            Config {
                env: vec![("PATH".to_string(), DEFAULT_PATH.to_string())],
                ..Config::default()
            }
        } else {
            let i = df.stage_index(&base).expect("a stage or scratch");
            finished[i].clone()
        };
        let mut args: BTreeMap<String, String> = BTreeMap::new();
        // The base stage's triggers run first and are not inherited (Docker's rule).
        for trigger in std::mem::take(&mut config.onbuild) {
            let ins = pier_dockerfile::parse_instruction(&trigger, escape).unwrap();
            apply(&mut config, &mut args, &globals, &given, escape, &ins);
        }
        for ins in &stage.instructions {
            apply(&mut config, &mut args, &globals, &given, escape, ins);
        }
        finished.push(config);
    }
    finished.last().unwrap().to_json()
}

/// Applies one metadata instruction to the config, as the classic builder does.
fn apply(
    config: &mut Config,
    args: &mut BTreeMap<String, String>,
    globals: &BTreeMap<String, String>,
    given: &dyn Fn(&str) -> Option<String>,
    escape: char,
    ins: &Instruction,
) {
    let snapshot_env = config.env.clone();
    let snapshot_args = args.clone();
    let lookup = move |k: &str| {
        snapshot_env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .or_else(|| snapshot_args.get(k).cloned())
    };
    let word = |w: &str| process_word(w, escape, &lookup).unwrap();
    let with_shell = |c: &ShellOrExec, shell: &Option<Vec<String>>| match c {
        ShellOrExec::Exec(v) => v.clone(),
        ShellOrExec::Shell(s) => {
            let mut v = shell
                .clone()
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            v.push(s.clone());
            v
        }
    };
    match &ins.kind {
        InstructionKind::Env(pairs) => {
            let expanded: Vec<_> = pairs.iter().map(|(k, v)| (word(k), word(v))).collect();
            for (k, v) in expanded {
                config.set_env(k, v);
            }
        }
        InstructionKind::Label(pairs) => {
            for (k, v) in pairs {
                config.labels.insert(word(k), word(v));
            }
        }
        InstructionKind::Workdir(w) => {
            let w = word(w);
            config.workdir = if w.starts_with('/') {
                w
            } else {
                let base = if config.workdir.is_empty() {
                    "/"
                } else {
                    &config.workdir
                };
                format!("{}/{w}", base.trim_end_matches('/'))
            };
        }
        InstructionKind::User(u) => config.user = word(u),
        InstructionKind::Stopsignal(s) => config.stop_signal = Some(word(s)),
        InstructionKind::Expose(ports) => {
            for p in ports {
                for p in process_words(p, escape, &lookup).unwrap() {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    config.exposed.insert(p);
                }
            }
        }
        InstructionKind::Volume(vols) => {
            for v in vols {
                config.volumes.insert(word(v));
            }
        }
        InstructionKind::Shell(s) => config.shell = Some(s.clone()),
        InstructionKind::Cmd(c) => config.cmd = Some(with_shell(c, &config.shell)),
        InstructionKind::Entrypoint(c) => config.entrypoint = Some(with_shell(c, &config.shell)),
        InstructionKind::Onbuild(o) => config.onbuild.push(o.expression.clone()),
        InstructionKind::Healthcheck(h) => {
            let mut hc = json!({ "Test": h.test() });
            let nanos = |d: Option<std::time::Duration>| d.map(|d| d.as_nanos() as u64);
            for (key, d) in [
                ("Interval", nanos(h.interval)),
                ("Timeout", nanos(h.timeout)),
                ("StartPeriod", nanos(h.start_period)),
            ] {
                if let Some(n) = d.filter(|n| *n > 0) {
                    hc[key] = json!(n);
                }
            }
            if let Some(r) = h.retries.filter(|r| *r > 0) {
                hc["Retries"] = json!(r);
            }
            config.healthcheck = Some(hc);
        }
        InstructionKind::Arg(decls) => {
            for d in decls {
                let value = given(&d.name)
                    .or_else(|| d.default.as_ref().map(|v| word(v)))
                    .or_else(|| globals.get(&d.name).cloned());
                if let Some(v) = value {
                    args.insert(d.name.clone(), v);
                }
            }
        }
        InstructionKind::Maintainer(_) => {}
        other => panic!("not a metadata instruction: {}", other.name()),
    }
}

/// Dockerfiles whose configs must agree, with their build args.
/// (name, Dockerfile, build args).
type Build = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const BUILDS: &[Build] = &[
    (
        "expansion",
        r#"ARG G=global
ARG UNUSED
FROM scratch
ARG G
ARG A=a-$G
ENV E1=one E2="two words" E3='$E1' E4=\$E1 E5=${A}-${E1:-d}-${nope:-def}-${E1:+alt}
ENV E6 legacy $E1 "value"
ENV PATH=/custom:$PATH E1=changed E7=$E1
LABEL l1=$E1 "l 2"="${E2}" l3=${A}
WORKDIR /base/$E1
WORKDIR rel
USER ${E1}:grp
EXPOSE 80 ${PORT:-8080}/udp
VOLUME /v1 /v2
VOLUME ["/v3"]
STOPSIGNAL SIG${E1:+TERM}
SHELL ["/bin/sh", "-ec"]
CMD echo $E1
ENTRYPOINT ["/e", "$E1"]
HEALTHCHECK --interval=5s --retries=2 CMD check $E1
ONBUILD RUN echo $E1  
MAINTAINER me
"#,
        &[("G", "cli")],
    ),
    (
        "quoting",
        r#"FROM scratch
ENV a="x\"y" b='s p' c=x\ y d="$PATH" e=\\x f="a'b" g='a"b' h=""
ENV i="${a}"${nope:-'q w'} j=${a:+'$lit'} k="tab	in"
LABEL "quoted key"=v 'single'="a b" plain=\"esc\"
LABEL legacy value "with quotes" and\ escapes
"#,
        &[],
    ),
    (
        "escape-backtick",
        "# escape=`\nFROM scratch\nENV P=c:\\dir `\n    Q=\"a`\"b\" `\n    R=x`$y\n# comment\n\nLABEL multi=\"line one `\n# inside\n`\n line two\"\nWORKDIR c:\\w\n",
        &[],
    ),
    (
        "stages",
        r#"ARG BASE=scratch
ARG LATER=${BASE}-x
FROM ${BASE} AS First
ENV X=1
ARG LATER
LABEL later=$LATER
ONBUILD   LABEL  on=$X  
CMD ["first"]
FROM first
ENV Y=$X
EXPOSE 53/udp 53
HEALTHCHECK NONE
"#,
        &[],
    ),
    (
        "continuations",
        "FROM scratch\nENV A=1 \\\n\n  B=2 \\\n  # comment \\\n  C=3\nLABEL a=b \\  \n  c=d\nCMD [\"a\", \\\n \"b\"]\nUSER app \\\n",
        &[],
    ),
];

/// Bad Dockerfiles whose errors must agree: (name, text). dockerd 20.10 writes
/// `dockerfile parse error line N: …` (current Docker `… on line N: …`), or for
/// errors of the first pass `failed to parse Dockerfile: …` without a line.
const BAD: &[(&str, &str)] = &[
    ("unknown", "FROM scratch\nFOO bar\n"),
    ("copy-one-arg", "FROM scratch\nENV a=b\nCOPY a\n"),
    ("stage-name", "FROM scratch AS 1x\n"),
    ("shell-not-json", "FROM scratch\nSHELL sh -c\n"),
    (
        "interval",
        "FROM scratch\nHEALTHCHECK --interval=1ns CMD true\n",
    ),
    ("env-one-word", "FROM scratch\nENV a\n"),
    ("env-no-equals", "FROM scratch\nENV a=1 b\n"),
    ("escape", "# escape=x\nFROM scratch\n"),
    ("user-empty", "FROM scratch\nUSER\n"),
    ("from-two", "FROM scratch x\n"),
    ("onbuild-onbuild", "FROM scratch\nONBUILD ONBUILD RUN x\n"),
    ("onbuild-maintainer", "FROM scratch\nONBUILD MAINTAINER x\n"),
    ("hc-none-args", "FROM scratch\nHEALTHCHECK NONE x\n"),
    ("hc-type", "FROM scratch\nHEALTHCHECK CMDX x\n"),
    ("volume-empty", "FROM scratch\nVOLUME [\"\"]\n"),
    ("label-blank", "FROM scratch\nLABEL =x\n"),
    (
        "nested-quotes",
        "FROM scratch\nENV i=\"${nope:-\"q w\"}\"\n",
    ),
];

fn write_context(dir: &Path, dockerfile: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
}

fn build(d: &IsolatedDockerd, dir: &Path, args: &[(&str, &str)]) -> Result<String, String> {
    let mut cmd = d.command();
    cmd.env("DOCKER_BUILDKIT", "0").args(["build", "-q"]);
    for (k, v) in args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    cmd.arg(dir);
    let out = pier_testsupport::run(&mut cmd, std::time::Duration::from_secs(60))?;
    if out.code == Some(0) {
        Ok(out.stdout.trim().to_string())
    } else {
        Err(out.stderr)
    }
}

/// (line, message) from dockerd's error output, None for the line when it names none.
fn docker_error(stderr: &str) -> (Option<usize>, String) {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Error response from daemon: "))
        .unwrap_or_else(|| panic!("no daemon error in {stderr:?}"));
    if let Some(rest) = line.strip_prefix("failed to parse Dockerfile: ") {
        return (None, rest.to_string());
    }
    let rest = line
        .strip_prefix("dockerfile parse error line ")
        .unwrap_or_else(|| panic!("unexpected error shape {line:?}"));
    let (n, msg) = rest.split_once(": ").unwrap();
    (Some(n.parse().unwrap()), msg.to_string())
}

#[test]
fn configs_and_errors_agree_with_dockerd() {
    if !pier_testsupport::require_tools(
        "configs_and_errors_agree_with_dockerd",
        &["docker", "dockerd"],
    ) || !pier_testsupport::is_root()
    {
        return;
    }
    let Some(d) = IsolatedDockerd::start_or_skip(
        "configs_and_errors_agree_with_dockerd",
        DockerdOptions::default(),
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, text, args) in BUILDS {
        let dir = work.path().join(name);
        write_context(&dir, text);
        let id = build(&d, &dir, args).unwrap_or_else(|e| panic!("{name}: docker build: {e}"));
        let inspect = d
            .docker_ok(&["image", "inspect", "--format", "{{json .Config}}", &id])
            .unwrap();
        let docker: Value = serde_json::from_str(&inspect).unwrap();
        let df = pier_dockerfile::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = evaluate(&df, args);
        for (field, value) in ours.as_object().unwrap() {
            let theirs = docker.get(field).cloned().unwrap_or(Value::Null);
            // dockerd leaves out an empty User or WorkingDir.
            let empty_is_null = |v: Value| match v {
                Value::String(s) if s.is_empty() => Value::Null,
                v => v,
            };
            let (theirs, value) = (empty_is_null(theirs), empty_is_null(value.clone()));
            if theirs != value {
                failures.push(format!("{name}: {field}: dockerd {theirs}, pier {value}"));
            }
        }
    }
    for (name, text) in BAD {
        let dir = work.path().join(format!("bad-{name}"));
        write_context(&dir, text);
        let stderr = build(&d, &dir, &[])
            .err()
            .unwrap_or_else(|| panic!("{name}: dockerd built it"));
        let (line, message) = docker_error(&stderr);
        match pier_dockerfile::parse(text) {
            Ok(_) => failures.push(format!("{name}: pier parsed it; dockerd: {message}")),
            Err(e) => {
                // dockerd 20.10 has no "did you mean" hints.
                let ours = e
                    .message
                    .split(" (did you mean ")
                    .next()
                    .unwrap_or_default();
                if ours != message || line.is_some_and(|l| l != e.line) {
                    failures.push(format!(
                        "{name}: dockerd line {line:?} {message:?}, pier line {} {:?}",
                        e.line, e.message
                    ));
                }
            }
        }
    }
    check_dockerignore(&d, work.path(), &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The files of the context for the .dockerignore check.
const CONTEXT_FILES: &[&str] = &[
    "top.md",
    "a/h.md",
    "a/b/g.txt",
    "a/b/c/f.go",
    "docs/README.md",
    "docs/other.md",
    "keep/z.txt",
    "keep/x/y.md",
    "node_modules/pkg/i.js",
    "src/main.go",
    "src/gen/out.go",
    "src/gen/keep.go",
    "vendor/lib/x.go",
    "vendor/lib/x.c",
    "build/out/bin",
    "sp ace.txt",
    "ünï.txt",
    ".git/config",
    "logs/a.log",
    "logs/deep/b.log",
    "x/y/z/deep.c",
];

const DOCKERIGNORE: &str =
    "# comment\n  *.md  \n!docs/README.md\n/node_modules\nkeep/**\n!keep/x\n\
a/**/*.go\nsrc/gen\n!src/gen/keep.go\nvendor\n!**/*.c\n**/*.log\n.git\nbuild/\n  # not a comment\n\
ünï*\nDockerfile\n.dockerignore\nx/y\n";

/// The files a walk of `dir` keeps, pruning directories as `can_skip_dir` allows.
fn walk(root: &Path, rel: &str, ignore: &DockerIgnore, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(root.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = entry.file_type().unwrap().is_dir();
        if ignore.excludes(&path) {
            if is_dir && !ignore.can_skip_dir(&path) {
                walk(root, &path, ignore, out);
            }
            continue;
        }
        if is_dir {
            walk(root, &path, ignore, out);
        } else {
            out.insert(path);
        }
    }
}

/// The context files `docker build` sends (what `COPY . /ctx` puts in the image)
/// against what [`DockerIgnore`] keeps.
fn check_dockerignore(d: &IsolatedDockerd, work: &Path, failures: &mut Vec<String>) {
    let dir = work.join("ignore-context");
    write_context(&dir, "FROM scratch\nCOPY . /ctx\n");
    std::fs::write(dir.join(".dockerignore"), DOCKERIGNORE).unwrap();
    for f in CONTEXT_FILES {
        let path = dir.join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, f).unwrap();
    }
    let id = build(d, &dir, &[]).unwrap();
    let container = d.docker_ok(&["create", &id, "x"]).unwrap();
    let tar = work.join("ignore-context.tar");
    d.docker_ok(&["export", "-o", tar.to_str().unwrap(), container.trim()])
        .unwrap();
    let listing = pier_testsupport::run_ok(
        std::process::Command::new("tar").arg("tf").arg(&tar),
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    let sent: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("ctx/"))
        .filter(|l| !l.is_empty() && !l.ends_with('/'))
        .map(str::to_string)
        .collect();
    // The CLI sends the Dockerfile and .dockerignore whatever the patterns say
    // (keeping_build_files), and dockerd drops those the patterns exclude once it has
    // read them: the image holds the plain pattern's result.
    let ignore = DockerIgnore::parse(DOCKERIGNORE).unwrap();
    let mut kept = BTreeSet::new();
    walk(&dir, "", &ignore, &mut kept);
    if sent != kept {
        failures.push(format!(
            ".dockerignore: docker sent {sent:?}, pier keeps {kept:?}"
        ));
    }
    // The check means something only if both sides left things out and kept things.
    assert!(
        sent.contains("docs/README.md") && !sent.contains("top.md"),
        "{sent:?}"
    );
}
