//! `pier-runtime`: runc's command line over the pier-runtime library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use pier_runtime::container::{CreateOptions, ExecOptions, Runtime};
use pier_runtime::spec::{Process, Resources};
use pier_runtime::{log, selfexe, spec, state};

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Parser, Debug)]
#[command(
    name = "pier-runtime",
    about = "An OCI runtime with runc's command line",
    disable_version_flag = true
)]
struct Cli {
    /// Root directory for container state (tmpfs recommended).
    #[arg(long, global = true, default_value = "/run/pier-runtime")]
    root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for compatibility: no systemd here means cgroupfs with systemd-style names.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for compatibility (checkpointing is not supported).
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    /// Accepted for compatibility: "true", "false" or "auto".
    #[arg(long = "rootless", id = "global_rootless", hide = true)]
    rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a container (its process waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits (delete it later yourself).
        #[arg(long = "keep")]
        keep: bool,
    },
    /// Output the state of a container.
    State { id: String },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Send a signal to the container's init (default SIGTERM).
    Kill {
        id: String,
        signal: Option<String>,
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Delete a container and its resources.
    Delete {
        id: String,
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Run a new process inside a container.
    Exec(ExecArgs),
    /// List the processes of a container.
    Ps {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Suspend every process in the container.
    Pause { id: String },
    /// Resume a paused container.
    Resume { id: String },
    /// Update the container's resource limits.
    Update(UpdateArgs),
    /// Container events and statistics.
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Print what this runtime supports (OCI features JSON).
    Features,
    /// Write a default config.json.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Checkpointing is not supported.
    #[command(hide = true)]
    Checkpoint {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Checkpointing is not supported.
    #[command(hide = true)]
    Restore {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct CreateArgs {
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    #[arg(long = "no-subreaper", hide = true)]
    no_subreaper: bool,
    id: String,
}

#[derive(Args, Debug)]
struct ExecArgs {
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<String>,
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    #[arg(short = 't', long)]
    tty: bool,
    #[arg(short = 'u', long)]
    user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    #[arg(short = 'd', long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "process-label")]
    process_label: Option<String>,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    #[arg(long = "ignore-paused", hide = true)]
    ignore_paused: bool,
    /// Run in a sub-cgroup of the container's cgroup: [CONTROLLERS:]PATH.
    #[arg(long)]
    cgroup: Vec<String>,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
struct UpdateArgs {
    /// Path to a linux.resources JSON file, or - for stdin.
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    #[arg(long = "kernel-memory")]
    kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp")]
    kernel_memory_tcp: Option<String>,
    #[arg(long)]
    memory: Option<String>,
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    id: String,
}

/// The name we were invoked as: installed as `runc`, pier-runtime calls itself runc in
/// its help and version output, as tools that parse them expect.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty() && !n.starts_with("memfd:"))
        .unwrap_or_else(|| "pier-runtime".into())
}

/// Help in urfave/cli's layout (runc's CLI library), "NAME:\n   runc exec - ...", for
/// the program name given ("runc exec").
fn help_template(full_name: &str) -> String {
    format!(
        "NAME:\n   {full_name} - {{about}}\n\nUSAGE:\n   {{usage}}\n\n{{all-args}}{{after-help}}"
    )
}

fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let prog = program_name();
    let mut cmd = Cli::command()
        .bin_name(prog.clone())
        .about("Open Container Initiative runtime")
        .help_template(help_template(&prog));
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in subcommands {
        let template = help_template(&format!("{prog} {name}"));
        cmd = cmd.mut_subcommand(&name, |c| c.help_template(template));
    }
    let matches = cmd.try_get_matches().unwrap_or_else(|e| {
        if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
            // urfave/cli's answer, which scripts written for runc expect.
            let sub = e
                .get(clap::error::ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            eprintln!("No help topic for '{sub}'");
            std::process::exit(3);
        }
        e.exit()
    });
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    // A panic aborts, whatever the build profile: a child forked by `clone_fork` must
    // never unwind into (and run the destructors of) its parent's frames.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    let cli = parse_cli();
    if cli.version {
        println!(
            "{} version {VERSION}\ncommit: pier-runtime-{VERSION}\nspec: {}",
            program_name(),
            state::OCI_VERSION
        );
        return ExitCode::SUCCESS;
    }
    let format = match cli.log_format.as_str() {
        "json" => log::Format::Json,
        _ => log::Format::Text,
    };
    log::init(cli.log.clone(), format, cli.debug);
    let enters_container = matches!(
        cli.command,
        Some(Command::Create(_)) | Some(Command::Run { .. }) | Some(Command::Exec(_))
    );
    if enters_container && !selfexe::is_cloned() {
        // As runc: without the sealed copy a container could overwrite this binary
        // through /proc/<pid>/exe (CVE-2019-5736), so refuse rather than run exposed.
        let err = selfexe::reexec_from_sealed_copy();
        let msg = format!("refusing to run without a sealed copy of the runtime: {err}");
        log::error(&msg);
        if log::to_file() {
            eprintln!("{msg}");
        }
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = format!("{e:#}");
            log::error(&msg);
            if log::to_file() {
                eprintln!("{msg}");
            }
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    let Some(command) = cli.command else {
        bail!("no command given; see --help");
    };
    let rt = Runtime {
        // Absolute: create works from the bundle directory.
        root: absolute(cli.root.clone()),
        systemd_cgroup: cli.systemd_cgroup,
    };
    let creates = matches!(command, Command::Create(_) | Command::Run { .. });
    if cli.systemd_cgroup && creates {
        log::warn("--systemd-cgroup: pier-runtime does not talk to systemd; the cgroup is made through cgroupfs at the path systemd would use (slice:prefix:name -> /slice/prefix-name.scope)");
    }
    match command {
        Command::Create(args) => {
            let id = args.id.clone();
            rt.create(&id, &create_options(args))?;
        }
        Command::Start { id } => rt.start(&id)?,
        Command::Run {
            create,
            detach,
            keep,
        } => {
            let id = create.id.clone();
            let code = rt.run(&id, &create_options(create), detach, keep)?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Command::State { id } => {
            let c = rt.load(&id)?;
            let status = c.status(&rt.root);
            println!("{}", serde_json::to_string_pretty(&c.output(status))?);
        }
        Command::List { format, quiet } => list(&rt, &format, quiet)?,
        Command::Kill { id, signal, all } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all)?;
        }
        Command::Delete { id, force } => rt.delete(&id, force)?,
        // runc exits 255 when exec itself fails, so callers can tell that from the
        // process's own exit code.
        Command::Exec(args) => return exec(&rt, args).or_else(|e| exit_with(255, e)),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, &id, &format, &ps_args)?,
        Command::Pause { id } => rt.pause(&id)?,
        Command::Resume { id } => rt.resume(&id)?,
        Command::Update(args) => {
            let id = args.id.clone();
            let resources = update_resources(args)?;
            rt.update(&id, &resources)?;
        }
        Command::Events {
            id,
            stats,
            interval,
        } => events(&rt, &id, stats, &interval)?,
        Command::Features => println!("{}", serde_json::to_string_pretty(&features())?),
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let spec = default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("write {}", path.display()))?;
        }
        Command::Checkpoint { .. } | Command::Restore { .. } => {
            bail!("checkpoint/restore is not supported by pier-runtime (no CRIU)")
        }
    }
    Ok(0)
}

/// Reports an error like `main` does, with a specific exit code.
fn exit_with(code: u8, e: anyhow::Error) -> Result<u8> {
    let msg = format!("{e:#}");
    log::error(&msg);
    if log::to_file() {
        eprintln!("{msg}");
    }
    Ok(code)
}

fn create_options(a: CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle,
        pid_file: a.pid_file.map(absolute),
        console_socket: a.console_socket.map(absolute),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    }
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let mut rows = Vec::new();
    for id in state::list_ids(&rt.root)? {
        let Ok(c) = rt.load(&id) else { continue };
        let status = c.status(&rt.root);
        rows.push((c, status));
    }
    if quiet {
        for (c, _) in &rows {
            println!("{}", c.id);
        }
        return Ok(());
    }
    match format {
        "json" => {
            let out: Vec<_> = rows.iter().map(|(c, s)| c.output(*s)).collect();
            println!("{}", serde_json::to_string(&out)?);
        }
        "table" => {
            let mut table = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                .map(String::from)
                .to_vec()];
            for (c, s) in &rows {
                let o = c.output(*s);
                table.push(vec![
                    o.id.to_string(),
                    o.pid.to_string(),
                    s.to_string(),
                    o.bundle.display().to_string(),
                    o.created.to_string(),
                    o.owner.to_string(),
                ]);
            }
            print_table(&table);
        }
        other => bail!("invalid format option: {other}"),
    }
    Ok(())
}

/// Go's tabwriter as runc configures it: min width 12, padding 3.
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, |r| r.len());
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        println!("{line}");
    }
}

fn parse_signal(s: &str) -> Result<i32> {
    match pier_runtime::process::signal_number(s) {
        Some(n) => Ok(n),
        None => bail!("unknown signal {s:?}"),
    }
}

fn exec(rt: &Runtime, a: ExecArgs) -> Result<u8> {
    let container = rt.load(&a.id)?;
    let mut process: Process = match &a.process {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("read process file {}", path.display()))?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parse process file {}", path.display()))?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec: arguments must be given (or --process)");
            }
            let mut p = container.config.process.clone().unwrap_or_default();
            p.args = a.command.clone();
            p.terminal = a.tty;
            p.console_size = None;
            if let Some(cwd) = &a.cwd {
                p.cwd = cwd.clone();
            }
            p.env.extend(a.env.iter().cloned());
            if let Some(user) = &a.user {
                let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
                p.user.uid = uid
                    .parse()
                    .with_context(|| format!("--user {user:?}: uid must be a number"))?;
                p.user.gid = gid
                    .parse()
                    .with_context(|| format!("--user {user:?}: gid must be a number"))?;
            }
            if !a.additional_gids.is_empty() {
                p.user.additional_gids = a.additional_gids.clone();
            }
            if a.no_new_privs {
                p.no_new_privileges = true;
            }
            if let Some(profile) = &a.apparmor {
                p.apparmor_profile = Some(profile.clone());
            }
            if let Some(label) = &a.process_label {
                p.selinux_label = Some(label.clone());
            }
            if !a.cap.is_empty() {
                let caps = p.capabilities.get_or_insert_with(Default::default);
                for set in [
                    &mut caps.bounding,
                    &mut caps.effective,
                    &mut caps.permitted,
                    &mut caps.inheritable,
                    &mut caps.ambient,
                ] {
                    let names = set.get_or_insert_with(Vec::new);
                    for c in &a.cap {
                        if !names.contains(c) {
                            names.push(c.clone());
                        }
                    }
                }
            }
            p
        }
    };
    if process.cwd.is_empty() {
        process.cwd = "/".into();
    }
    let opts = ExecOptions {
        pid_file: a.pid_file.map(absolute),
        console_socket: a.console_socket,
        detach: a.detach,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        sub_cgroups: a.cgroup.clone(),
    };
    let (_pid, code) = rt.exec(&a.id, &process, &opts)?;
    Ok(code.unwrap_or(0).clamp(0, 255) as u8)
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    match format {
        "json" => {
            println!("{}", serde_json::to_string(&pids)?);
            return Ok(());
        }
        "table" => {}
        other => bail!("invalid format option: {other}"),
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!("ps: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow!("couldn't find PID field in ps output"))?;
    println!("{header}");
    for line in lines {
        let pid: Option<i32> = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

/// Parses docker-style sizes: "512", "10k", "64M", "1g" (binary units).
fn parse_bytes(s: &str) -> Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        Some('t') => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid size {s:?}"))?;
    Ok((n * mult as f64) as i64)
}

fn update_resources(a: UpdateArgs) -> Result<Resources> {
    let mut r: Resources = match &a.resources {
        Some(path) => {
            let mut bytes = Vec::new();
            if path.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut bytes)?;
            } else {
                bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            }
            serde_json::from_slice(&bytes).context("parse resources JSON")?
        }
        None => Resources::default(),
    };
    let mem = |r: &mut Resources| r.memory.get_or_insert_with(Default::default).clone();
    if let Some(v) = &a.memory {
        let mut m = mem(&mut r);
        m.limit = Some(parse_bytes(v)?);
        r.memory = Some(m);
    }
    if let Some(v) = &a.memory_reservation {
        let mut m = mem(&mut r);
        m.reservation = Some(parse_bytes(v)?);
        r.memory = Some(m);
    }
    if let Some(v) = &a.memory_swap {
        let mut m = mem(&mut r);
        m.swap = Some(parse_bytes(v)?);
        r.memory = Some(m);
    }
    if let Some(v) = &a.kernel_memory {
        let mut m = mem(&mut r);
        m.kernel = Some(parse_bytes(v)?);
        r.memory = Some(m);
    }
    if let Some(v) = &a.kernel_memory_tcp {
        let mut m = mem(&mut r);
        m.kernel_tcp = Some(parse_bytes(v)?);
        r.memory = Some(m);
    }
    let cpu_set = a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_set {
        let cpu = r.cpu.get_or_insert_with(Default::default);
        cpu.period = a.cpu_period.or(cpu.period);
        cpu.quota = a.cpu_quota.or(cpu.quota);
        cpu.shares = a.cpu_share.or(cpu.shares);
        cpu.realtime_period = a.cpu_rt_period.or(cpu.realtime_period);
        cpu.realtime_runtime = a.cpu_rt_runtime.or(cpu.realtime_runtime);
        cpu.cpus = a.cpuset_cpus.clone().or(cpu.cpus.take());
        cpu.mems = a.cpuset_mems.clone().or(cpu.mems.take());
    }
    if let Some(limit) = a.pids_limit {
        r.pids = Some(spec::Pids { limit });
    }
    if let Some(w) = a.blkio_weight {
        r.block_io.get_or_insert_with(Default::default).weight = Some(w);
    }
    Ok(r)
}

/// One line of `events` output; key order matters to consumers that match the line's
/// prefix (runc's tests do): type, id, data.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
}

fn print_event(kind: &str, id: &str, data: Option<serde_json::Value>) -> Result<()> {
    use std::io::Write;
    let line = serde_json::to_string(&Event { kind, id, data })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Stats every `interval`, and an `oom` event whenever the OOM kill count of the
/// container's memory cgroup grows; ends when the container is gone.
fn events(rt: &Runtime, id: &str, stats_only: bool, interval: &str) -> Result<()> {
    let interval = parse_duration(interval)?;
    if stats_only {
        return print_event("stats", id, Some(rt.stats(id)?));
    }
    let poll = std::time::Duration::from_millis(100).min(interval);
    let mut ooms = rt.oom_kills(id)?;
    let mut next_stats = std::time::Instant::now();
    loop {
        if std::time::Instant::now() >= next_stats {
            print_event("stats", id, Some(rt.stats(id)?))?;
            next_stats += interval;
        }
        let now = rt.oom_kills(id)?;
        if now > ooms {
            print_event("oom", id, None)?;
        }
        ooms = now;
        std::thread::sleep(poll);
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {s:?}"),
    };
    if secs <= 0.0 {
        bail!("duration must be greater than 0");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn features() -> serde_json::Value {
    let caps: Vec<&str> = pier_runtime::caps::NAMES.to_vec();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rro", "rshared", "rslave", "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
            },
            "apparmor": { "enabled": std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists() },
            "selinux": { "enabled": std::path::Path::new("/sys/fs/selinux/enforce").exists() },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } }
        },
        "annotations": { "org.opencontainers.runc.version": format!("pier-runtime {VERSION}") }
    })
}

/// runc's `spec` template.
fn default_spec(rootless: bool) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut spec = serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let linux = &mut spec["linux"];
        linux["resources"] = serde_json::json!({});
        linux["namespaces"] = serde_json::json!([{ "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }, { "type": "user" }]);
        linux["uidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
        linux["gidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
        let mounts = spec["mounts"].as_array_mut().expect("mounts is an array");
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        for m in mounts.iter_mut() {
            if m["destination"] == "/dev/pts" {
                m["options"] = serde_json::json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
            if m["destination"] == "/sys" {
                *m = serde_json::json!({ "destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("10M").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
    }

    #[test]
    fn default_spec_is_valid() {
        let bytes = serde_json::to_vec(&default_spec(false)).unwrap();
        spec::Spec::from_slice(&bytes).unwrap();
    }
}
