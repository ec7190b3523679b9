//! The builder behind `POST /build`: a Dockerfile, parsed by `pier-dockerfile`, run
//! step by step on the engine, speaking the classic builder's progress stream.
//!
//! - A stage starts from an image in the store, an earlier stage, or `scratch`. Only
//!   the stages the target needs are built.
//! - Instructions that change only the config (`ENV`, `LABEL`, `CMD` …) make a new
//!   config on top of the previous step's image. `RUN` runs in a container made by the
//!   engine (so it gets the stage's env, user, working directory and network, the
//!   default bridge unless `--network`), whose changes become the step's layer.
//!   `COPY`/`ADD` and `WORKDIR` write into a snapshot of the previous step mounted for
//!   the step ([`copy`]).
//! - Steps are not recorded as images (`docker images` stays clean): each lives in the
//!   content store under its build-cache lease ([`cache`]), and is recorded only while
//!   a container runs on it. The result is recorded and tagged.
//! - Every step is cached by what it depends on; `--no-cache` skips lookups.
//! - Stages run as soon as the stages they read (`FROM`, `COPY --from`,
//!   `RUN --mount=from=`) are built, so independent stages run in parallel. A stage
//!   whose reference holds a variable waits for every stage before it.
//! - Output order: the stream reads as a serial build. Each stage writes to a buffer
//!   of its own; the stream shows the global `ARG`s, then each stage's lines whole, in
//!   Dockerfile order (the earliest unfinished stage live, later ones once it ends),
//!   then the final lines. Step numbers are fixed per stage beforehand, so they
//!   count up as in the classic builder. The first failing stage cancels the others
//!   (their `RUN` containers killed and removed); its error ends the stream.
//! - A failed or cancelled build (the client went away) ends its container, unmounts
//!   and removes its snapshot, and leaves no record behind; what a crash leaves (a
//!   `build-` snapshot, a context directory) goes at the next start.

pub mod cache;
mod context;
pub mod copy;
mod explain;
pub mod fetch;
mod run_mounts;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pier_dockerfile::chmod::Chmod;
use pier_dockerfile::expand::{process_word, process_words};
use pier_dockerfile::ignore::DockerIgnore;
use pier_dockerfile::platform::{automatic_args, is_proxy_arg, Platform};
use pier_dockerfile::{
    CopySpec, Dockerfile, Instruction, InstructionKind, MountType, RunNetwork, RunSpec, ShellOrExec,
};
use pier_image::image::{ContainerConfig, HealthConfig};
use pier_image::reference::Reference;
use pier_image::service::build_step::{StepCommit, StepImage};
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use context::BuildContext;

use super::{Engine, EngineError};
use cache::SourceHashes;
use copy::CopyPlan;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A bad request: the Dockerfile, a parameter, the context (400).
    #[error("{0}")]
    Invalid(String),
    /// Something named does not exist (a base image, a stage).
    #[error("{0}")]
    NotFound(String),
    /// A step failed (a `RUN` exiting non-zero, a missing `COPY` source).
    #[error("{message}")]
    Failed { message: String, code: i64 },
    /// The daemon's fault.
    #[error("{0}")]
    Internal(String),
    /// The client went away.
    #[error("the build was cancelled")]
    Cancelled,
}

impl BuildError {
    pub fn internal(context: &str, e: impl std::fmt::Display) -> BuildError {
        BuildError::Internal(format!("{context}: {e}"))
    }
}

impl From<EngineError> for BuildError {
    fn from(e: EngineError) -> BuildError {
        match e {
            EngineError::InvalidParameter(m) => BuildError::Invalid(m),
            EngineError::NotFound(m) => BuildError::NotFound(m),
            EngineError::Image(pier_image::Error::NotFound(m)) => BuildError::NotFound(m),
            other => BuildError::Internal(other.to_string()),
        }
    }
}

impl From<pier_image::Error> for BuildError {
    fn from(e: pier_image::Error) -> BuildError {
        BuildError::from(EngineError::Image(e))
    }
}

/// What `POST /build` asks for, beyond the context.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's path in the context (`Dockerfile` by default).
    pub dockerfile: String,
    pub tags: Vec<Reference>,
    /// `--build-arg`: a value, or None for `--build-arg NAME` without one and no such
    /// variable in the client's environment.
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--label`, set on the result.
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `rm` (default): remove the intermediate containers after a successful step.
    pub remove: bool,
    /// `forcerm`: remove them after a failed one too.
    pub force_remove: bool,
    /// `networkmode` for `RUN` (`default`, `bridge`, `host`, `none`, a network name).
    pub network_mode: String,
    /// What `RUN` containers get of the request's resource options (`ShmSize`,
    /// `ExtraHosts`, `Ulimits`, `Memory` …), as HostConfig fields.
    pub host_config: serde_json::Map<String, Value>,
    pub quiet: bool,
    /// `--platform`; only the native one can be built.
    pub platform: Option<String>,
    /// `--pull`: pull every base image, even one the store has.
    pub pull: bool,
    /// Pier's `explain=1`: say why each step that runs missed the cache.
    pub explain: bool,
}

/// One message of the progress stream.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// `{"stream": …}`.
    Stream(String),
    /// `{"aux": …}`.
    Aux(Value),
    /// A message as it is (a base image's pull progress: `{"status": …, "id": …}`).
    Message(Value),
}

/// Pulls a base image into the store, its progress sent as [`BuildEvent::Message`]s;
/// the error is the message to show. The API layer makes it: it owns the registry
/// client and the request's credentials (`X-Registry-Config`).
pub type Puller = Arc<
    dyn Fn(
            Reference,
            mpsc::Sender<BuildEvent>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// A build whose Dockerfile parsed and whose options check out, ready to run.
#[derive(Debug)]
pub struct Build {
    engine: Arc<Engine>,
    context: BuildContext,
    dockerfile: Dockerfile,
    opts: BuildOptions,
    /// The stages to build, in order, and the target.
    needed: Vec<usize>,
    target: usize,
    platform: Platform,
    puller: Option<PullerBox>,
    /// Set from outside (`POST /build/cancel`) to stop the build.
    cancel: Arc<AtomicBool>,
}

/// A [`Puller`] in a struct that can say it is there.
struct PullerBox(Puller);

impl std::fmt::Debug for PullerBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Puller")
    }
}

/// The state of the stage being built.
#[derive(Debug, Clone)]
struct StageState {
    /// The previous step's image; None while a `scratch` stage has no step yet.
    image: Option<StepImage>,
    config: ContainerConfig,
    /// The stage's `ARG`s: declared names and their values (None: declared, unset).
    args: BTreeMap<String, Option<String>>,
    shell: Vec<String>,
    maintainer: Option<String>,
    /// Whether this Dockerfile set `CMD` in this stage (an `ENTRYPOINT` then keeps it).
    cmd_set: bool,
}

impl StageState {
    fn env(&self) -> Vec<String> {
        self.config.env.clone().unwrap_or_default()
    }

    fn env_value(&self, key: &str) -> Option<String> {
        self.env().iter().rev().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k == key).then(|| v.to_string())
        })
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(format!("{key}={value}"));
        self.config.env = Some(env);
    }

    fn parent_id(&self) -> String {
        self.image
            .as_ref()
            .map_or_else(|| "scratch".to_string(), |i| i.id.to_string())
    }

    /// The args in scope with a value that no `ENV` hides, `k=v`, sorted: what `RUN`
    /// gets in its environment and its history line.
    fn run_args(&self) -> Vec<String> {
        let env_keys: HashSet<String> = self
            .env()
            .iter()
            .map(|e| e.split_once('=').map_or(e.clone(), |(k, _)| k.to_string()))
            .collect();
        self.args
            .iter()
            .filter(|(k, _)| !env_keys.contains(*k))
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }
}

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Engine {
    /// The build context's scratch directory.
    pub fn build_tmp(&self) -> PathBuf {
        self.data_root.join("builder").join("tmp")
    }

    /// The daemon's data root.
    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// The build cache.
    pub fn build_cache(&self) -> cache::BuildCache {
        cache::BuildCache::open(&self.data_root)
    }

    /// Reads and parses the Dockerfile and checks the options: what fails here fails
    /// before any output, so the API answers it with an error status (blocking).
    pub fn prepare_build(
        self: &Arc<Self>,
        mut context: BuildContext,
        mut opts: BuildOptions,
    ) -> Result<Build, BuildError> {
        if opts.dockerfile.is_empty() {
            opts.dockerfile = "Dockerfile".to_string();
        }
        let text = match context.read_file(&opts.dockerfile)? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => {
                return Err(BuildError::Invalid(format!(
                    "Cannot locate specified Dockerfile: {}",
                    opts.dockerfile
                )))
            }
        };
        context.apply_ignore(&opts.dockerfile)?;
        let dockerfile =
            pier_dockerfile::parse(&text).map_err(|e| BuildError::Invalid(e.to_string()))?;
        // `# check=error=true`: a check the text fails is the build's error, as BuildKit.
        if let Some(violation) = dockerfile.check.violation(&dockerfile.warnings) {
            return Err(BuildError::Invalid(violation));
        }
        let native = Platform::native();
        if let Some(p) = opts.platform.as_deref().filter(|p| !p.is_empty()) {
            let wanted = Platform::parse(p).map_err(|e| BuildError::Invalid(e.to_string()))?;
            if wanted.os != native.os || wanted.architecture != native.architecture {
                return Err(BuildError::Invalid(format!(
                    "Pier builds only for this host's platform ({}), not {p}",
                    native
                )));
            }
        }
        let target = match opts.target.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => dockerfile
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
                .ok_or_else(|| {
                    BuildError::Invalid(format!("failed to reach build target {t} in Dockerfile"))
                })?,
            None => dockerfile.stages.len() - 1,
        };
        let needed = needed_stages(&dockerfile, target);
        Ok(Build {
            engine: self.clone(),
            context,
            dockerfile,
            opts,
            needed,
            target,
            platform: native,
            puller: None,
            cancel: Arc::default(),
        })
    }

    /// A remote context (`remote=URL`): a tar (plain, gzip, zstd) or a lone Dockerfile
    /// fetched over http(s), as dockerd takes one; git repositories are refused by
    /// name (Pier fetches none).
    pub async fn remote_context(
        &self,
        url: &str,
        dockerfile: &str,
    ) -> Result<BuildContext, BuildError> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("git://")
            || lower.starts_with("git@")
            || lower.starts_with("github.com/")
            || lower
                .split(['#', '?'])
                .next()
                .is_some_and(|u| u.ends_with(".git"))
        {
            return Err(BuildError::Invalid(format!(
                "git build contexts are not supported by Pier: {url}; send the context as a tar or a tarball URL"
            )));
        }
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(BuildError::Invalid(format!(
                "unsupported remote context {url}: an http(s) URL of a tar or a Dockerfile is expected"
            )));
        }
        let tmp = self.build_tmp();
        std::fs::create_dir_all(&tmp)
            .map_err(|e| BuildError::internal("fetching the context", e))?;
        let dir = tempfile::Builder::new()
            .prefix("remote-")
            .tempdir_in(&tmp)
            .map_err(|e| BuildError::internal("fetching the context", e))?;
        let fetched = fetch::fetch_as(url, dir.path(), "download", None)
            .await
            .map_err(|e| match e {
                BuildError::Failed { message, .. } => BuildError::Invalid(message),
                other => other,
            })?;
        let dockerfile = if dockerfile.is_empty() {
            "Dockerfile"
        } else {
            dockerfile
        }
        .to_string();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&fetched)
                .map_err(|e| BuildError::internal("reading the context", e))?;
            if copy::is_tar_stream(&fetched) {
                return BuildContext::receive(std::io::BufReader::new(file), &tmp);
            }
            // Not an archive: the file is the Dockerfile of an empty context.
            let mut tar = tar::Builder::new(Vec::new());
            let bytes = std::fs::read(&fetched)
                .map_err(|e| BuildError::internal("reading the context", e))?;
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            tar.append_data(&mut h, &dockerfile, bytes.as_slice())
                .map_err(|e| BuildError::internal("reading the context", e))?;
            let data = tar
                .into_inner()
                .map_err(|e| BuildError::internal("reading the context", e))?;
            drop(dir);
            BuildContext::receive(data.as_slice(), &tmp)
        })
        .await
        .map_err(|e| BuildError::internal("reading the context", e))?
    }

    /// Removes what a build interrupted by a crash left: context directories.
    pub(crate) fn remove_build_leftovers(&self) {
        let _ = std::fs::remove_dir_all(self.build_tmp());
    }
}

/// The stages stage `i` reads (its base, `COPY --from`, `RUN --mount=from=`), all
/// earlier than `i`, and whether a reference holds a variable (then which stage it
/// names is known only while building).
fn stage_refs(df: &Dockerfile, i: usize) -> (Vec<usize>, bool) {
    let stage = &df.stages[i];
    let mut refs = vec![stage.base.clone()];
    for instr in &stage.instructions {
        match &instr.kind {
            InstructionKind::Copy(c) | InstructionKind::Add(c) => refs.extend(c.from.clone()),
            InstructionKind::Run(r) => refs.extend(r.mounts.iter().filter_map(|m| m.from.clone())),
            _ => {}
        }
    }
    let dynamic = refs.iter().any(|r| r.contains('$'));
    let stages = refs
        .iter()
        .filter_map(|r| df.stage_index(r).filter(|&j| j < i))
        .collect();
    (stages, dynamic)
}

/// The stages `target` needs (its base and `--from` sources, transitively), in order.
fn needed_stages(df: &Dockerfile, target: usize) -> Vec<usize> {
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(stage_refs(df, i).0);
        }
    }
    needed.into_iter().collect()
}

/// For each needed stage, the needed stages it waits for: those it reads, or every
/// earlier one when a reference holds a variable.
fn stage_dependencies(df: &Dockerfile, needed: &[usize]) -> BTreeMap<usize, Vec<usize>> {
    needed
        .iter()
        .map(|&i| {
            let (refs, dynamic) = stage_refs(df, i);
            let deps = if dynamic {
                needed.iter().copied().filter(|&j| j < i).collect()
            } else {
                refs
            };
            (i, deps)
        })
        .collect()
}

/// What the stages of one build share.
#[derive(Default)]
struct Shared {
    /// Build args some `ARG` consumed.
    consumed: Mutex<HashSet<String>>,
    /// Step images recorded for a container; their records go at the end.
    recorded: Mutex<Vec<StepImage>>,
    /// Set when a stage failed or the client went away: the others stop.
    cancel: AtomicBool,
}

impl Shared {
    fn consume(&self, name: &str) {
        if let Ok(mut c) = self.consumed.lock() {
            c.insert(name.to_string());
        }
    }

    fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

/// Copies the parts' events to `out` in order, each part whole before the next (see
/// the module doc); a client that went away cancels the build.
async fn forward_in_order(
    mut parts: Vec<mpsc::UnboundedReceiver<BuildEvent>>,
    out: &mpsc::Sender<BuildEvent>,
    shared: &Shared,
) {
    for part in parts.iter_mut() {
        loop {
            let event = tokio::select! {
                e = part.recv() => e,
                _ = out.closed() => None,
            };
            let Some(event) = event else {
                if out.is_closed() {
                    shared.cancel();
                    return;
                }
                break;
            };
            if out.send(event).await.is_err() {
                shared.cancel();
                return;
            }
        }
    }
}

/// The build's running state.
/// One runs the global `ARG`s; one per stage, and one for the final steps.
struct Runner<'a> {
    build: &'a Build,
    shared: &'a Shared,
    /// This part's output (see [`forward_in_order`]).
    out: mpsc::UnboundedSender<BuildEvent>,
    /// The number of the last step said.
    step: usize,
    total: usize,
    /// Global args (before the first `FROM`) and their values.
    global_args: BTreeMap<String, Option<String>>,
    /// The results of the stages built before this one started.
    results: BTreeMap<usize, StepImage>,
    /// `SOURCE_DATE_EPOCH` from the build args: the time of everything made.
    epoch: Option<i64>,
    /// Where in the Dockerfile the current step is (stage, instruction), for
    /// `--explain`'s records.
    position: (usize, usize),
    /// The files the current `COPY`/`ADD` copies, when explaining.
    step_files: Option<BTreeMap<String, String>>,
}

impl Build {
    /// Lets the build pull base images the store lacks (and all of them with `pull`).
    pub fn with_puller(mut self, puller: Puller) -> Build {
        self.puller = Some(PullerBox(puller));
        self
    }

    /// A flag that cancels the build when set, as the client going away does.
    pub fn canceller(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Runs the build, sending progress to `out`; the result's image ID.
    pub async fn run(self, out: mpsc::Sender<BuildEvent>) -> Result<String, BuildError> {
        let epoch = match self.opts.build_args.get("SOURCE_DATE_EPOCH") {
            Some(Some(v)) => Some(
                v.parse::<i64>()
                    .map_err(|_| BuildError::Invalid(format!("invalid SOURCE_DATE_EPOCH: {v}")))?,
            ),
            _ => None,
        };
        let total = self.dockerfile.global_args.len()
            + self
                .needed
                .iter()
                .map(|&i| 1 + self.dockerfile.stages[i].instructions.len())
                .sum::<usize>();
        let shared = Shared::default();
        // The stream's parts, in order: global args, each stage, the final steps.
        let mut parts = Vec::new();
        let mut part = || {
            let (tx, rx) = mpsc::unbounded_channel();
            parts.push(rx);
            tx
        };
        let prelude_out = part();
        let stage_outs: BTreeMap<usize, _> = self.needed.iter().map(|&i| (i, part())).collect();
        let final_out = part();
        let runner = Runner {
            build: &self,
            shared: &shared,
            out: prelude_out,
            step: 0,
            total,
            global_args: BTreeMap::new(),
            results: BTreeMap::new(),
            epoch,
            position: (0, 0),
            step_files: None,
        };
        let (result, ()) = tokio::join!(
            runner.run_all(stage_outs, final_out),
            forward_in_order(parts, &out, &shared)
        );
        // Intermediate records go, success or not (their blobs stay in the cache).
        let keep = result.as_ref().ok().map(|i| i.id.clone());
        let images = self.engine.images.clone();
        let recorded = shared
            .recorded
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let _ = tokio::task::spawn_blocking(move || {
            for r in recorded {
                if Some(&r.id) != keep.as_ref() {
                    let _ = images.forget_step(&r);
                }
            }
        })
        .await;
        let image = result?;
        Ok(image.id.to_string())
    }
}

impl<'a> Runner<'a> {
    /// A step's cache key: its parts, and `SOURCE_DATE_EPOCH` when set, since the
    /// epoch decides the times written into the step's layer and history.
    fn step_key(&self, parts: &[&str]) -> String {
        match self.epoch {
            Some(epoch) => {
                let epoch = format!("epoch={epoch}");
                let mut all = parts.to_vec();
                all.push(&epoch);
                cache::key(&all)
            }
            None => cache::key(parts),
        }
    }

    async fn say(&self, text: impl Into<String>) -> Result<(), BuildError> {
        if self.build.opts.quiet {
            return Ok(());
        }
        self.out
            .send(BuildEvent::Stream(text.into()))
            .map_err(|_| BuildError::Cancelled)
    }

    async fn step_line(&mut self, original: &str) -> Result<(), BuildError> {
        self.step += 1;
        let line = format!("Step {}/{} : {}\n", self.step, self.total, original);
        self.say(line).await
    }

    fn cancelled(&self) -> bool {
        self.shared.cancel.load(Ordering::SeqCst)
            || self.build.cancel.load(Ordering::SeqCst)
            || self.out.is_closed()
    }

    /// A runner for another part of the stream, its steps numbered after `step`.
    fn fork(&self, out: mpsc::UnboundedSender<BuildEvent>, step: usize) -> Runner<'a> {
        Runner {
            build: self.build,
            shared: self.shared,
            out,
            step,
            total: self.total,
            global_args: self.global_args.clone(),
            results: self.results.clone(),
            epoch: self.epoch,
            position: (0, 0),
            step_files: None,
        }
    }

    /// Runs the global args, then each stage once those it reads are built (in
    /// parallel), then the final steps; each part's output to its sender.
    async fn run_all(
        mut self,
        stage_outs: BTreeMap<usize, mpsc::UnboundedSender<BuildEvent>>,
        final_out: mpsc::UnboundedSender<BuildEvent>,
    ) -> Result<StepImage, BuildError> {
        let df = &self.build.dockerfile;
        let escape = df.directives.escape;
        // Global args: usable in `FROM`.
        let automatic: BTreeMap<String, String> =
            automatic_args(&self.build.platform, &self.build.platform)
                .into_iter()
                .collect();
        for instr in &df.global_args {
            self.step_line(&instr.original).await?;
            if let InstructionKind::Arg(decls) = &instr.kind {
                for decl in decls {
                    let value = match self.build.opts.build_args.get(&decl.name) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => match &decl.default {
                            Some(d) => Some(
                                process_word(d, escape, &|k| self.global_lookup(k, &automatic))
                                    .map_err(|e| self.line_error(instr, &e.to_string()))?,
                            ),
                            None => None,
                        },
                    };
                    self.shared.consume(&decl.name);
                    self.global_args.insert(decl.name.clone(), value);
                }
            }
        }
        // The global args' part of the stream ends here (a sender whose receiver is
        // kept, so that this runner does not read as cancelled).
        let (idle, _idle_receiver) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.out, idle));
        let dependencies = stage_dependencies(df, &self.build.needed);
        // Each stage's steps are numbered after the stages before it.
        let mut first_steps = BTreeMap::new();
        let mut steps = self.step;
        for &i in &self.build.needed {
            first_steps.insert(i, steps);
            steps += 1 + df.stages[i].instructions.len();
        }
        let mut waiting: Vec<_> = stage_outs.into_iter().collect();
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut failure: Option<BuildError> = None;
        loop {
            if failure.is_none() && !self.cancelled() {
                let mut k = 0;
                while k < waiting.len() {
                    let i = waiting[k].0;
                    let ready = dependencies
                        .get(&i)
                        .is_none_or(|deps| deps.iter().all(|d| self.results.contains_key(d)));
                    if !ready {
                        k += 1;
                        continue;
                    }
                    let (i, out) = waiting.remove(k);
                    let mut stage = self.fork(out, first_steps[&i]);
                    let automatic = &automatic;
                    running.push(async move { (i, stage.run_stage(i, automatic).await) });
                }
            }
            let Some((i, built)) = futures_util::StreamExt::next(&mut running).await else {
                break;
            };
            match built {
                Ok(image) => {
                    self.results.insert(i, image);
                }
                Err(e) => {
                    self.shared.cancel();
                    // The first real error is the build's, not a stage it cancelled.
                    if failure
                        .as_ref()
                        .is_none_or(|f| matches!(f, BuildError::Cancelled))
                    {
                        failure = Some(e);
                    }
                }
            }
        }
        drop(waiting);
        if let Some(e) = failure {
            return Err(e);
        }
        if self.cancelled() {
            return Err(BuildError::Cancelled);
        }
        let mut this = self.fork(final_out, steps);
        this.results = std::mem::take(&mut self.results);
        drop(self);
        this.finish_all().await
    }

    /// The final steps: `--label`, then recording and tagging the result.
    async fn finish_all(mut self) -> Result<StepImage, BuildError> {
        let mut result = self
            .results
            .get(&self.build.target)
            .cloned()
            .ok_or_else(|| BuildError::Internal("the target stage made no image".into()))?;
        // `--label`: set on the result, as the classic builder's last step.
        if !self.build.opts.labels.is_empty() {
            let mut config = result.run_config();
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            let mut shown = Vec::new();
            for (k, v) in &self.build.opts.labels {
                labels.insert(k.clone(), v.clone());
                shown.push(format!("{k}={v}"));
            }
            let mut state = StageState {
                image: Some(result.clone()),
                config,
                args: BTreeMap::new(),
                shell: Vec::new(),
                maintainer: result.config.author.clone(),
                cmd_set: false,
            };
            let created_by = format!("/bin/sh -c #(nop)  LABEL {}", shown.join(" "));
            self.config_step(&mut state, created_by).await?;
            result = state
                .image
                .clone()
                .ok_or_else(|| BuildError::Internal("no image".into()))?;
        }
        self.finish(&result).await?;
        Ok(result)
    }

    fn global_lookup(&self, key: &str, automatic: &BTreeMap<String, String>) -> Option<String> {
        if let Some(v) = self.global_args.get(key) {
            return v.clone();
        }
        automatic.get(key).cloned()
    }

    fn line_error(&self, instr: &Instruction, message: &str) -> BuildError {
        BuildError::Failed {
            message: format!("Dockerfile:{}: {} {message}", instr.line, instr.kind.name()),
            code: 1,
        }
    }

    /// Records and tags the result and says so.
    async fn finish(&mut self, result: &StepImage) -> Result<(), BuildError> {
        let images = self.build.engine.images.clone();
        let tags = self.build.opts.tags.clone();
        let image = result.clone();
        tokio::task::spawn_blocking(move || -> Result<(), BuildError> {
            images.record_step(&image, None)?;
            for t in &tags {
                images.record_step(&image, Some(t))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| BuildError::internal("recording the image", e))??;
        // The result stays recorded: it is no intermediate.
        if let Ok(mut recorded) = self.shared.recorded.lock() {
            recorded.retain(|r| r.id != result.id);
        }
        let consumed = self
            .shared
            .consumed
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let unused: Vec<&String> = self
            .build
            .opts
            .build_args
            .keys()
            .filter(|k| {
                !consumed.contains(*k) && !is_proxy_arg(k) && k.as_str() != "SOURCE_DATE_EPOCH"
            })
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            ))
            .await?;
        }
        let id = result.id.to_string();
        let _ = self.out.send(BuildEvent::Aux(json!({ "ID": id })));
        if self.build.opts.quiet {
            let _ = self.out.send(BuildEvent::Stream(format!("{id}\n")));
        }
        self.say(format!("Successfully built {}\n", short(&id)))
            .await?;
        for t in &self.build.opts.tags {
            self.build.engine.bus.publish(super::events::Event::image(
                &id,
                "tag",
                Some(&t.familiar()),
            ));
            self.say(format!("Successfully tagged {}\n", t.familiar()))
                .await?;
        }
        Ok(())
    }

    async fn run_stage(
        &mut self,
        index: usize,
        automatic: &BTreeMap<String, String>,
    ) -> Result<StepImage, BuildError> {
        let df = &self.build.dockerfile;
        let stage = &df.stages[index];
        let escape = df.directives.escape;
        self.step_line(&stage.original).await?;
        let base = process_word(&stage.base, escape, &|k| self.global_lookup(k, automatic))
            .map_err(|e| BuildError::Failed {
                message: format!("Dockerfile:{}: FROM {e}", stage.line),
                code: 1,
            })?;
        if let Some(p) = &stage.platform {
            let p =
                process_word(p, escape, &|k| self.global_lookup(k, automatic)).map_err(|e| {
                    BuildError::Failed {
                        message: format!("Dockerfile:{}: FROM {e}", stage.line),
                        code: 1,
                    }
                })?;
            let wanted = Platform::parse(&p).map_err(|e| BuildError::Invalid(e.to_string()))?;
            if wanted.os != self.build.platform.os
                || wanted.architecture != self.build.platform.architecture
            {
                return Err(BuildError::Invalid(format!(
                    "Pier builds only for this host's platform ({}), not {p}",
                    self.build.platform
                )));
            }
        }
        let image = if base.eq_ignore_ascii_case("scratch") {
            None
        } else if let Some(j) = df.stage_index(&base).filter(|&j| j < index) {
            Some(
                self.results
                    .get(&j)
                    .cloned()
                    .ok_or_else(|| BuildError::Internal(format!("stage {base} was not built")))?,
            )
        } else {
            Some(self.base_image(&base).await?)
        };
        if let Some(i) = &image {
            self.say(format!(" ---> {}\n", short(&i.id.to_string())))
                .await?;
        }
        let mut config = image
            .as_ref()
            .map(StepImage::run_config)
            .unwrap_or_default();
        // As dockerd's `dispatchFrom`: a stage whose base sets no PATH gets the default.
        let env = config.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(super::DEFAULT_PATH.to_string());
        }
        let shell = config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect());
        let mut state = StageState {
            image,
            config,
            args: BTreeMap::new(),
            shell,
            maintainer: None,
            cmd_set: false,
        };
        // The base image's ONBUILD triggers run first.
        let triggers = state.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            self.say(format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ))
            .await?;
            for t in &triggers {
                let instr = pier_dockerfile::parse_instruction(t, escape).map_err(|e| {
                    BuildError::Invalid(format!("invalid ONBUILD trigger {t:?}: {e}"))
                })?;
                self.instruction(&mut state, &instr, automatic).await?;
            }
        }
        for (n, instr) in stage.instructions.iter().enumerate() {
            if self.cancelled() {
                return Err(BuildError::Cancelled);
            }
            self.position = (index, n + 1);
            self.step_line(&instr.original).await?;
            self.instruction(&mut state, instr, automatic).await?;
        }
        match state.image {
            Some(i) => Ok(i),
            None => {
                // `FROM scratch` alone: an image with no layer, as the classic builder
                // makes it.
                let created_by = "/bin/sh -c #(nop) ".to_string();
                self.config_step(&mut state, created_by).await?;
                state
                    .image
                    .ok_or_else(|| BuildError::Internal("no image was generated".into()))
            }
        }
    }

    /// A base image from the store, pulled first when the store lacks it (or always,
    /// with `pull`) and a registry client was given.
    async fn base_image(&mut self, name: &str) -> Result<StepImage, BuildError> {
        let reference = Reference::parse_with_default_tag(name)
            .map_err(|e| BuildError::Invalid(format!("invalid reference format: {e}")))?;
        if self.build.opts.pull {
            self.pull(&reference).await?;
        }
        match self.stored_image(&reference).await {
            Err(BuildError::NotFound(_)) if self.build.puller.is_some() && !self.build.opts.pull => {
                self.pull(&reference).await?;
                self.stored_image(&reference).await
            }
            Err(BuildError::NotFound(_)) => Err(BuildError::NotFound(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': the image is not in Pier's store and this build cannot pull",
                reference.familiar()
            ))),
            other => other,
        }
    }

    async fn stored_image(&self, reference: &Reference) -> Result<StepImage, BuildError> {
        let images = self.build.engine.images.clone();
        let lookup = reference.to_string();
        tokio::task::spawn_blocking(move || images.step_image(&lookup))
            .await
            .map_err(|e| BuildError::internal("resolving the base image", e))?
            .map_err(BuildError::from)
    }

    async fn pull(&self, reference: &Reference) -> Result<(), BuildError> {
        let Some(PullerBox(puller)) = &self.build.puller else {
            return Err(BuildError::Invalid(
                "--pull cannot be honoured: this build has no registry client".into(),
            ));
        };
        // The progress goes to this part's output (none when quiet).
        let (events, mut rx) = mpsc::channel(16);
        let out = (!self.build.opts.quiet).then(|| self.out.clone());
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Some(out) = &out {
                    let _ = out.send(e);
                }
            }
        });
        puller(reference.clone(), events)
            .await
            .map_err(|message| BuildError::Failed { message, code: 1 })
    }

    /// The value lookup for expansion in a stage: `ENV` first, then the stage's args.
    fn lookup<'s>(state: &'s StageState) -> impl Fn(&str) -> Option<String> + 's {
        move |k: &str| {
            state
                .env_value(k)
                .or_else(|| state.args.get(k).cloned().flatten())
        }
    }

    fn expand(
        &self,
        state: &StageState,
        instr: &Instruction,
        word: &str,
    ) -> Result<String, BuildError> {
        process_word(
            word,
            self.build.dockerfile.directives.escape,
            &Self::lookup(state),
        )
        .map_err(|e| self.line_error(instr, &e.to_string()))
    }

    fn expand_words(
        &self,
        state: &StageState,
        instr: &Instruction,
        word: &str,
    ) -> Result<Vec<String>, BuildError> {
        process_words(
            word,
            self.build.dockerfile.directives.escape,
            &Self::lookup(state),
        )
        .map_err(|e| self.line_error(instr, &e.to_string()))
    }

    async fn instruction(
        &mut self,
        state: &mut StageState,
        instr: &Instruction,
        automatic: &BTreeMap<String, String>,
    ) -> Result<(), BuildError> {
        let nop = |text: String| format!("/bin/sh -c #(nop)  {text}");
        match &instr.kind {
            InstructionKind::Env(pairs) => {
                let before = state.clone();
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let key = self.expand(&before, instr, k)?;
                    let value = self.expand(&before, instr, v)?;
                    state.set_env(&key, &value);
                    shown.push(format!("{key}={value}"));
                }
                self.config_step(state, nop(format!("ENV {}", shown.join(" "))))
                    .await
            }
            InstructionKind::Label(pairs) => {
                let mut shown = Vec::new();
                let mut labels = state.config.labels.clone().unwrap_or_default();
                for (k, v) in pairs {
                    let key = self.expand(state, instr, k)?;
                    let value = self.expand(state, instr, v)?;
                    if key.is_empty() {
                        return Err(self.line_error(instr, "requires a non-empty key"));
                    }
                    shown.push(format!("{key}={value}"));
                    labels.insert(key, value);
                }
                state.config.labels = Some(labels);
                self.config_step(state, nop(format!("LABEL {}", shown.join(" "))))
                    .await
            }
            InstructionKind::Maintainer(text) => {
                state.maintainer = Some(text.clone());
                self.config_step(state, nop(format!("MAINTAINER {text}")))
                    .await
            }
            InstructionKind::Cmd(cmd) => {
                let argv = self.argv(state, cmd);
                state.config.cmd = Some(argv.clone());
                state.cmd_set = true;
                self.config_step(state, nop(format!("CMD {}", go_quoted_list(&argv))))
                    .await
            }
            InstructionKind::Entrypoint(cmd) => {
                let argv = self.argv(state, cmd);
                state.config.entrypoint = Some(argv.clone());
                // A new ENTRYPOINT drops the base image's CMD, not this stage's.
                if !state.cmd_set {
                    state.config.cmd = None;
                }
                self.config_step(state, nop(format!("ENTRYPOINT {}", go_quoted_list(&argv))))
                    .await
            }
            InstructionKind::Shell(shell) => {
                state.shell = shell.clone();
                state.config.shell = Some(shell.clone());
                self.config_step(state, nop(format!("SHELL {}", go_quoted_list(shell))))
                    .await
            }
            InstructionKind::Expose(words) => {
                let mut ports = state.config.exposed_ports.clone().unwrap_or_default();
                let mut shown = Vec::new();
                for w in words {
                    for p in self.expand_words(state, instr, w)? {
                        for port in expose_ports(&p).map_err(|m| self.line_error(instr, &m))? {
                            ports.insert(port, json!({}));
                        }
                        shown.push(p);
                    }
                }
                state.config.exposed_ports = Some(ports);
                self.config_step(state, nop(format!("EXPOSE {}", shown.join(" "))))
                    .await
            }
            InstructionKind::Volume(words) => {
                let mut volumes = state.config.volumes.clone().unwrap_or_default();
                let mut shown = Vec::new();
                for w in words {
                    let v = self.expand(state, instr, w)?;
                    if v.trim().is_empty() {
                        return Err(BuildError::Failed {
                            message: "VOLUME specified can not be an empty string".into(),
                            code: 1,
                        });
                    }
                    shown.push(v.clone());
                    volumes.insert(v, json!({}));
                }
                state.config.volumes = Some(volumes);
                self.config_step(state, nop(format!("VOLUME [{}]", shown.join(" "))))
                    .await
            }
            InstructionKind::User(user) => {
                let user = self.expand(state, instr, user)?;
                state.config.user = Some(user.clone());
                self.config_step(state, nop(format!("USER {user}"))).await
            }
            InstructionKind::Stopsignal(sig) => {
                let sig = self.expand(state, instr, sig)?;
                super::parse_signal(&sig).map_err(|e| BuildError::Failed {
                    message: e.to_string(),
                    code: 1,
                })?;
                state.config.stop_signal = Some(sig.clone());
                self.config_step(state, nop(format!("STOPSIGNAL {sig}")))
                    .await
            }
            InstructionKind::Healthcheck(hc) => {
                let ns = |d: Option<Duration>| d.map(|d| d.as_nanos() as i64);
                // As dockerd's commit merges the config: what this HEALTHCHECK leaves
                // unset (NONE included) keeps the previous healthcheck's value.
                let before = state.config.healthcheck.clone().unwrap_or_default();
                state.config.healthcheck = Some(HealthConfig {
                    test: Some(hc.test()),
                    interval: ns(hc.interval).or(before.interval),
                    timeout: ns(hc.timeout).or(before.timeout),
                    start_period: ns(hc.start_period).or(before.start_period),
                    start_interval: ns(hc.start_interval).or(before.start_interval),
                    retries: hc.retries.map(i64::from).or(before.retries),
                });
                let text = healthcheck_history(hc);
                self.config_step(state, nop(format!("HEALTHCHECK {text}")))
                    .await
            }
            InstructionKind::Onbuild(o) => {
                state
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(o.expression.clone());
                self.config_step(state, nop(format!("ONBUILD {}", o.expression)))
                    .await
            }
            InstructionKind::Arg(decls) => {
                let mut shown = Vec::new();
                for decl in decls {
                    let value = match self.build.opts.build_args.get(&decl.name) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => match &decl.default {
                            Some(d) => Some(self.expand(state, instr, d)?),
                            None => self
                                .global_args
                                .get(&decl.name)
                                .cloned()
                                .flatten()
                                .or_else(|| automatic.get(&decl.name).cloned()),
                        },
                    };
                    self.shared.consume(&decl.name);
                    shown.push(match &decl.default {
                        Some(d) => format!("{}={d}", decl.name),
                        None => decl.name.clone(),
                    });
                    state.args.insert(decl.name.clone(), value);
                }
                self.config_step(state, nop(format!("ARG {}", shown.join(" "))))
                    .await
            }
            InstructionKind::Workdir(dir) => {
                let dir = self.expand(state, instr, dir)?;
                let base = state.config.working_dir.clone().unwrap_or_default();
                let joined = if dir.starts_with('/') {
                    dir
                } else {
                    format!("{}/{dir}", if base.is_empty() { "/" } else { &base })
                };
                let cleaned = format!("/{}", crate::rootfs_tar::clean(&joined).0.join("/"));
                state.config.working_dir = Some(cleaned.clone());
                self.workdir_step(state, &cleaned).await
            }
            InstructionKind::Run(run) => self.run_step(state, instr, run).await,
            InstructionKind::Copy(spec) => self.copy_step(state, instr, spec, false).await,
            InstructionKind::Add(spec) => self.copy_step(state, instr, spec, true).await,
        }
    }

    /// A command as the config holds it: the shell form wrapped in the stage's shell.
    fn argv(&self, state: &StageState, cmd: &ShellOrExec) -> Vec<String> {
        match cmd {
            ShellOrExec::Exec(v) => v.clone(),
            ShellOrExec::Shell(s) => state.shell.iter().cloned().chain([s.clone()]).collect(),
        }
    }

    fn created(&self) -> String {
        let secs = self.epoch.unwrap_or_else(now_secs);
        pier_image::time::format_rfc3339(secs, 0)
    }

    fn config_json(state: &StageState) -> String {
        serde_json::to_string(&state.config).unwrap_or_default()
    }

    /// Looks `key` up; on a hit, the step's image becomes the state's.
    async fn cached(&mut self, state: &mut StageState, key: &str) -> Result<bool, BuildError> {
        let hit = if self.build.opts.no_cache {
            None
        } else {
            let images = self.build.engine.images.clone();
            let cache = self.build.engine.build_cache();
            let k = key.to_string();
            tokio::task::spawn_blocking(move || cache.lookup(&images, &k))
                .await
                .map_err(|e| BuildError::internal("reading the build cache", e))?
        };
        if self.build.opts.explain {
            self.explain(state, key, hit.is_none()).await?;
        }
        match hit {
            Some(image) => {
                state.config = image.run_config();
                self.say(" ---> Using cache\n").await?;
                self.say(format!(" ---> {}\n", short(&image.id.to_string())))
                    .await?;
                state.image = Some(image);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// `--explain`: on a miss, says why, comparing with what the last build of this
    /// step (same tags, Dockerfile and position) saw; then records what this one sees.
    async fn explain(
        &mut self,
        state: &StageState,
        key: &str,
        missed: bool,
    ) -> Result<(), BuildError> {
        let identity = cache::key(&[
            "explain",
            &self
                .build
                .opts
                .tags
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(","),
            &self.build.opts.dockerfile,
            &self.position.0.to_string(),
            &self.position.1.to_string(),
        ]);
        let now = explain::Facts {
            parent: state.parent_id(),
            step: key.to_string(),
            config: Self::config_json(state),
            files: self.step_files.take().unwrap_or_default(),
        };
        let store = explain::Store::open(self.build.engine.data_root());
        if missed {
            let reason = if self.build.opts.no_cache {
                "--no-cache".to_string()
            } else {
                explain::reason(store.get(&identity).as_ref(), &now)
            };
            self.say(format!(" ---> Cache miss: {reason}\n")).await?;
        }
        store.put(&identity, &now);
        Ok(())
    }

    /// Makes the next step's image from the state's config (and `upper`'s changes),
    /// and caches it under `key`.
    async fn make_step(
        &self,
        state: &StageState,
        key: &str,
        created_by: String,
        upper: Option<(PathBuf, Vec<PathBuf>)>,
    ) -> Result<StepImage, BuildError> {
        let images = self.build.engine.images.clone();
        let cache = self.build.engine.build_cache();
        let base = state.image.clone();
        let config = state.config.clone();
        let author = state.maintainer.clone();
        let created = self.created();
        // `SOURCE_DATE_EPOCH` also clamps the times of the files the step writes.
        let clamp_mtime = self.epoch.map(|e| e.max(0) as u64);
        let key = key.to_string();
        tokio::task::spawn_blocking(move || -> Result<StepImage, BuildError> {
            let lease = cache::lease_name(&key);
            let content = images.content();
            let _ = content.delete_lease(&lease);
            content.create_lease(&lease)?;
            let made = images.commit_step(&StepCommit {
                base: base.as_ref(),
                upper: upper.as_ref().map(|(u, x)| (u.as_path(), x.as_slice())),
                config,
                created_by: created_by.clone(),
                author,
                created,
                lease: &lease,
                clamp_mtime,
            });
            let image = match made {
                Ok(i) => i,
                Err(e) => {
                    let _ = content.delete_lease(&lease);
                    return Err(e.into());
                }
            };
            cache
                .store(&key, &image, &created_by)
                .map_err(|e| BuildError::internal("writing the build cache", e))?;
            Ok(image)
        })
        .await
        .map_err(|e| BuildError::internal("committing a step", e))?
    }

    /// [`make_step`](Self::make_step), said, and made the state's image.
    async fn commit(
        &mut self,
        state: &mut StageState,
        key: &str,
        created_by: String,
        upper: Option<(PathBuf, Vec<PathBuf>)>,
    ) -> Result<(), BuildError> {
        let image = self.make_step(state, key, created_by, upper).await?;
        self.say(format!(" ---> {}\n", short(&image.id.to_string())))
            .await?;
        state.image = Some(image);
        Ok(())
    }

    /// A step that changes only the config.
    async fn config_step(
        &mut self,
        state: &mut StageState,
        created_by: String,
    ) -> Result<(), BuildError> {
        let key = self.step_key(&[
            "config",
            &state.parent_id(),
            &created_by,
            &Self::config_json(state),
            state.maintainer.as_deref().unwrap_or(""),
        ]);
        let wanted = state.config.clone();
        if self.cached(state, &key).await? {
            state.config = wanted;
            return Ok(());
        }
        self.commit(state, &key, created_by, None).await
    }

    /// `WORKDIR`: the directory is made (root's, 0755) if the image lacks it.
    async fn workdir_step(&mut self, state: &mut StageState, dir: &str) -> Result<(), BuildError> {
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {dir}");
        let key = self.step_key(&[
            "workdir",
            &state.parent_id(),
            &created_by,
            &Self::config_json(state),
        ]);
        if self.cached(state, &key).await? {
            return Ok(());
        }
        let mount = self.mount_step(state).await?;
        let comps = crate::rootfs_tar::clean(dir).0;
        let plan = CopyPlan {
            add: false,
            sources: Vec::new(),
            dest: dir.to_string(),
            owner: None,
            chmod: None,
            excludes: None,
            parents: false,
            instruction: "WORKDIR",
        };
        let upper = {
            let root = mount.root()?;
            copy::write_dirs(root.as_fd(), &comps, &plan)?;
            mount.upper()?
        };
        let result = self
            .commit(state, &key, created_by, Some((upper, Vec::new())))
            .await;
        mount.release().await;
        result
    }

    /// A snapshot of the state's image mounted for a filesystem step.
    async fn mount_step(&mut self, state: &StageState) -> Result<StepMount, BuildError> {
        let images = self.build.engine.images.clone();
        let image = state.image.clone();
        let tmp = self.build.engine.build_tmp();
        tokio::task::spawn_blocking(move || StepMount::new(images, image.as_ref(), &tmp))
            .await
            .map_err(|e| BuildError::internal("mounting a step", e))?
    }

    async fn copy_step(
        &mut self,
        state: &mut StageState,
        instr: &Instruction,
        spec: &CopySpec,
        add: bool,
    ) -> Result<(), BuildError> {
        let name = if add { "ADD" } else { "COPY" };
        let mut heredoc_root = if spec.heredocs.is_empty() {
            None
        } else {
            Some(self.heredoc_files(state, instr, spec)?)
        };
        if spec.keep_git_dir {
            return Err(self.line_error(instr, "--keep-git-dir is not supported by Pier (it applies to git sources, which Pier does not fetch)"));
        }
        let mut sources = Vec::new();
        let paths: Vec<&String> = if heredoc_root.is_some() {
            sources.extend(spec.heredocs.iter().map(|h| h.name.clone()));
            Vec::new()
        } else {
            spec.sources.iter().collect()
        };
        for s in paths {
            sources.push(self.expand(state, instr, s)?);
        }
        // Remote sources: `ADD` fetches http(s) URLs; git sources are refused.
        let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
        let urls = sources.iter().filter(|s| is_url(s)).count();
        if let Some(git) = sources
            .iter()
            .find(|s| s.starts_with("git@") || (is_url(s) && s.ends_with(".git")))
        {
            if add {
                return Err(self.line_error(
                    instr,
                    &format!("source {git}: git sources are not supported by Pier"),
                ));
            }
        }
        if urls > 0 && !add {
            return Err(self.line_error(instr, "source can't be a URL for COPY"));
        }
        if spec.checksum.is_some() && (urls != 1 || sources.len() != 1) {
            return Err(self.line_error(
                instr,
                "checksum can't be specified for non-HTTP(S) sources or several sources",
            ));
        }
        if urls > 0 {
            if urls != sources.len() {
                return Err(self.line_error(
                    instr,
                    "mixing URLs and local paths in one ADD is not supported by Pier yet",
                ));
            }
            let checksum = match &spec.checksum {
                Some(c) => Some(self.expand(state, instr, c)?),
                None => None,
            };
            let tmp = self.build.engine.build_tmp();
            std::fs::create_dir_all(&tmp).map_err(|e| BuildError::internal("fetching", e))?;
            let dir = tempfile::Builder::new()
                .prefix("fetch-")
                .tempdir_in(&tmp)
                .map_err(|e| BuildError::internal("fetching", e))?;
            let mut names = Vec::new();
            for url in &sources {
                let path = fetch::fetch(url, dir.path(), checksum.as_deref()).await?;
                names.push(
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
            }
            sources = names;
            heredoc_root = Some(dir);
        }
        let dest_raw = self.expand(state, instr, &spec.dest)?;
        let workdir = state.config.working_dir.clone().unwrap_or_default();
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            let base = if workdir.is_empty() {
                "/".to_string()
            } else {
                workdir.clone()
            };
            let mut d = format!("{}/{}", base.trim_end_matches('/'), dest_raw);
            if dest_raw == "." || dest_raw.ends_with("/.") {
                d.push('/');
            }
            d
        };
        let chown = match &spec.chown {
            Some(c) => Some(self.expand(state, instr, c)?),
            None => None,
        };
        let chmod = match &spec.chmod {
            Some(c) => {
                let c = self.expand(state, instr, c)?;
                Some(Chmod::parse(&c).map_err(|e| self.line_error(instr, &e.to_string()))?)
            }
            None => None,
        };
        let excludes = if spec.excludes.is_empty() {
            None
        } else {
            let mut pats = Vec::new();
            for x in &spec.excludes {
                pats.push(self.expand(state, instr, x)?);
            }
            Some(
                DockerIgnore::parse(&pats.join("\n"))
                    .map_err(|e| self.line_error(instr, &e.message))?,
            )
        };
        // Where the files come from.
        let from = match &spec.from {
            Some(f) => Some(self.expand(state, instr, f)?),
            None => None,
        };
        // A stage's or image's files are mounted only when read: their hash is kept
        // by the image's ID (its content never changes), so a cached step mounts none.
        let (mut source_root, from_image) = match (heredoc_root, from.as_deref()) {
            (Some(dir), _) => (Some(SourceRoot::Temp(dir)), None),
            (None, None) => (Some(self.source_root(None).await?), None),
            (None, Some(f)) => (None, Some(self.source_image(f).await?)),
        };
        // `--chown` names resolve in the destination's /etc/passwd and /etc/group.
        let owner = match &chown {
            Some(c) => Some(self.resolve_owner(state, c).await?),
            None => None,
        };
        // `--link` gives the same files as a plain copy: Pier does not rebase a step's
        // layer onto another parent, so the step is cached on its own parent only.
        // `ADD --unpack=false` copies a local archive as it is; a remote one is
        // unpacked only with `--unpack=true`.
        let unpack = if urls > 0 {
            spec.unpack == Some(true)
        } else {
            spec.unpack != Some(false)
        };
        let plan = CopyPlan {
            add: add && unpack,
            sources,
            dest: dest.clone(),
            owner,
            chmod,
            excludes,
            parents: spec.parents,
            instruction: name,
        };
        let from_context = from.is_none() && spec.heredocs.is_empty() && urls == 0;
        let hashes = SourceHashes::open(self.build.engine.data_root());
        let memo_key = from_image
            .as_ref()
            .map(|i| cache::key(&["copy-source", &i.id.to_string(), &format!("{plan:?}")]));
        let remembered = memo_key.as_deref().and_then(|k| hashes.get(k));
        let (kind, hash) = match remembered {
            Some(known) => known,
            None => {
                let root = self
                    .ensure_source(&mut source_root, from_image.as_ref())
                    .await?;
                let hash = {
                    let plan = plan.clone();
                    let fd = root.fd()?;
                    tokio::task::spawn_blocking(move || {
                        copy::content_hash(fd.as_fd(), &plan, from_context)
                    })
                    .await
                    .map_err(|e| BuildError::internal("hashing sources", e))??
                };
                // dockerd's text: what was copied (`file`, `dir`, `multi`), a hash, and
                // the destination as written.
                let kind = if plan.sources.len() > 1
                    || plan.sources.iter().any(|s| s.contains(['*', '?', '[']))
                {
                    "multi"
                } else if source_is_dir(root, &plan.sources[0])? {
                    "dir"
                } else {
                    "file"
                };
                if let Some(k) = &memo_key {
                    hashes.put(k, kind, &hash);
                }
                (kind.to_string(), hash)
            }
        };
        let created_by = format!(
            "/bin/sh -c #(nop) {name} {}{kind}:{hash} in {dest_raw} ",
            chown
                .as_deref()
                .map(|c| format!("--chown={c} "))
                .unwrap_or_default(),
        );
        if self.build.opts.explain {
            let plan = plan.clone();
            let root = self
                .ensure_source(&mut source_root, from_image.as_ref())
                .await?
                .fd()?;
            self.step_files = Some(
                tokio::task::spawn_blocking(move || {
                    copy::file_hashes(root.as_fd(), &plan, from_context)
                })
                .await
                .map_err(|e| BuildError::internal("hashing sources", e))??,
            );
        }
        let key = self.step_key(&[
            name,
            &state.parent_id(),
            &created_by,
            &Self::config_json(state),
            &format!("{:?}", spec.chmod),
            &format!("{:?}", spec.excludes),
            &spec.parents.to_string(),
        ]);
        if self.cached(state, &key).await? {
            if let Some(root) = source_root {
                root.release().await;
            }
            return Ok(());
        }
        let mount = match self.mount_step(state).await {
            Ok(m) => m,
            Err(e) => {
                if let Some(root) = source_root {
                    root.release().await;
                }
                return Err(e);
            }
        };
        let src = match self
            .ensure_source(&mut source_root, from_image.as_ref())
            .await
            .and_then(SourceRoot::fd)
        {
            Ok(fd) => fd,
            Err(e) => {
                mount.release().await;
                return Err(e);
            }
        };
        let copied = {
            let dest_root = mount.root()?;
            let plan = plan.clone();
            tokio::task::spawn_blocking(move || {
                copy::copy(src.as_fd(), dest_root.as_fd(), &plan, from_context)
            })
            .await
            .map_err(|e| BuildError::internal("copying", e))?
        };
        if let Some(root) = source_root {
            root.release().await;
        }
        let result = match copied {
            Ok(()) => match mount.upper() {
                Ok(upper) => {
                    self.commit(state, &key, created_by, Some((upper, Vec::new())))
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        mount.release().await;
        result
    }

    /// `COPY <<EOF …`: each here-document as a file (mode 0644) in a directory of its
    /// own, named by its delimiter; variables expanded unless the delimiter was quoted
    /// (quotes and backslashes in the body stay as written, as BuildKit does).
    fn heredoc_files(
        &self,
        state: &StageState,
        instr: &Instruction,
        spec: &CopySpec,
    ) -> Result<tempfile::TempDir, BuildError> {
        if spec.paths().next().is_some() {
            return Err(self.line_error(
                instr,
                "mixing here-documents and paths in one instruction is not supported by Pier yet",
            ));
        }
        let tmp = self.build.engine.build_tmp();
        std::fs::create_dir_all(&tmp)
            .map_err(|e| BuildError::internal("writing heredoc files", e))?;
        let dir = tempfile::Builder::new()
            .prefix("heredoc-")
            .tempdir_in(&tmp)
            .map_err(|e| BuildError::internal("writing heredoc files", e))?;
        for h in &spec.heredocs {
            let content = if h.expand {
                let escape = self.build.dockerfile.directives.escape;
                let mut literal = String::new();
                for c in h.content.chars() {
                    if c == escape || c == '"' || c == '\'' {
                        literal.push(escape);
                    }
                    literal.push(c);
                }
                self.expand(state, instr, &literal)?
            } else {
                h.content.clone()
            };
            let path = dir.path().join(&h.name);
            std::fs::write(&path, content)
                .map_err(|e| BuildError::internal("writing heredoc files", e))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .map_err(|e| BuildError::internal("writing heredoc files", e))?;
            if let Some(epoch) = self.epoch {
                let t = std::time::UNIX_EPOCH + Duration::from_secs(epoch.max(0) as u64);
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(t));
            }
        }
        Ok(dir)
    }

    /// The root a `COPY` reads from: the context, or a stage's or image's files.
    async fn source_root(&mut self, from: Option<&str>) -> Result<SourceRoot, BuildError> {
        let Some(from) = from else {
            return Ok(SourceRoot::Context(
                rustix::io::dup(self.build.context.root())
                    .map_err(|e| BuildError::internal("opening the context", e))?,
            ));
        };
        let image = self.source_image(from).await?;
        self.mounted_source(image).await
    }

    /// The image `--from` names: a stage built before, or an image.
    async fn source_image(&mut self, from: &str) -> Result<StepImage, BuildError> {
        let df = &self.build.dockerfile;
        match df.stage_index(from) {
            Some(j) => match self.results.get(&j) {
                Some(i) => Ok(i.clone()),
                None => Err(BuildError::Invalid(format!(
                    "invalid from flag value {from}: stage {from} is not built before this step"
                ))),
            },
            None => self.base_image(from).await,
        }
    }

    /// `root`, or `image`'s files mounted into it first.
    async fn ensure_source<'r>(
        &mut self,
        root: &'r mut Option<SourceRoot>,
        image: Option<&StepImage>,
    ) -> Result<&'r SourceRoot, BuildError> {
        if root.is_none() {
            let image = image
                .cloned()
                .ok_or_else(|| BuildError::Internal("a COPY without a source".into()))?;
            *root = Some(self.mounted_source(image).await?);
        }
        root.as_ref()
            .ok_or_else(|| BuildError::Internal("a COPY without a source".into()))
    }

    /// A stage's or image's files, mounted.
    async fn mounted_source(&mut self, image: StepImage) -> Result<SourceRoot, BuildError> {
        let state = StageState {
            image: Some(image),
            config: ContainerConfig::default(),
            args: BTreeMap::new(),
            shell: Vec::new(),
            maintainer: None,
            cmd_set: false,
        };
        Ok(SourceRoot::Mounted(self.mount_step(&state).await?))
    }

    /// `--chown=user[:group]` as IDs, names looked up in the step's image. Without a
    /// group, the group is named (or numbered) as the user is, as in Docker.
    async fn resolve_owner(
        &mut self,
        state: &StageState,
        chown: &str,
    ) -> Result<(u32, u32), BuildError> {
        let (u, g) = chown.split_once(':').unwrap_or((chown, chown));
        if let (Ok(uid), Ok(gid)) = (u.parse::<u32>(), g.parse::<u32>()) {
            return Ok((uid, gid));
        }
        let mount = self.mount_step(state).await?;
        let spec = format!("{u}:{g}");
        let resolved = mount
            .path()
            .and_then(|p| super::resolve_user(&p, &spec).map_err(BuildError::from));
        mount.release().await;
        let (uid, gid, _) = resolved.map_err(|e| BuildError::Failed {
            message: format!("unable to convert uid/gid chown string to host mapping: {e}"),
            code: 1,
        })?;
        Ok((uid, gid))
    }

    async fn run_step(
        &mut self,
        state: &mut StageState,
        instr: &Instruction,
        run: &RunSpec,
    ) -> Result<(), BuildError> {
        // What runs: heredoc scripts resolved BuildKit's way.
        let resolved = run.resolve(&state.shell);
        let argv = resolved.argv.clone();
        let workdir = state.config.working_dir.clone().unwrap_or_default();
        let tmp = self.build.engine.build_tmp();
        let mut mounts = run_mounts::RunMounts::default();
        let mut held_roots = Vec::new();
        let prepared = self
            .run_mounts(
                state,
                instr,
                run,
                &workdir,
                &tmp,
                &mut mounts,
                &mut held_roots,
            )
            .await;
        let result = match prepared {
            Ok(()) => {
                if let Some(script) = &resolved.script_file {
                    run_mounts::script(&mut mounts, &script.path, &script.content, &tmp)
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        };
        let result = match result {
            Ok(()) => {
                self.run_with_mounts(state, instr, run, argv, &mut mounts)
                    .await
            }
            Err(e) => Err(e),
        };
        for root in held_roots {
            root.release().await;
        }
        drop(mounts);
        result
    }

    /// The step's `--mount`s, expanded, as engine mounts.
    #[allow(clippy::too_many_arguments)]
    async fn run_mounts(
        &mut self,
        state: &StageState,
        instr: &Instruction,
        run: &RunSpec,
        workdir: &str,
        tmp: &Path,
        out: &mut run_mounts::RunMounts,
        held: &mut Vec<SourceRoot>,
    ) -> Result<(), BuildError> {
        for raw in &run.mounts {
            let m = raw
                .expanded(|w| self.expand(state, instr, w).map_err(|e| e.to_string()))
                .map_err(|e| self.line_error(instr, &e))?;
            let target = match (&m.target, m.mount_type) {
                (Some(t), _) => run_mounts::absolute_target(t, workdir),
                (None, MountType::Secret) => {
                    format!("/run/secrets/{}", m.secret_id().unwrap_or_default())
                }
                (None, MountType::Ssh) => "/run/buildkit/ssh_agent.0".to_string(),
                (None, _) => return Err(self.line_error(instr, "--mount: the target is required")),
            };
            match m.mount_type {
                MountType::Bind => {
                    let root = self.source_root(m.from.as_deref()).await?;
                    let fd = root.fd()?;
                    held.push(root);
                    let (m2, t2, tmp2) = (m.clone(), target.clone(), tmp.to_path_buf());
                    let mut part = run_mounts::RunMounts::default();
                    part = tokio::task::spawn_blocking(move || {
                        run_mounts::bind(&mut part, &m2, &t2, fd.as_fd(), &tmp2).map(|()| part)
                    })
                    .await
                    .map_err(|e| BuildError::internal("preparing a bind mount", e))??;
                    out.mounts.append(&mut part.mounts);
                    out.key.append(&mut part.key);
                    out.targets.append(&mut part.targets);
                    out.temp.append(&mut part.temp);
                }
                MountType::Cache => {
                    run_mounts::cache(out, &m, &target, &self.build.engine.data_root).await?
                }
                MountType::Tmpfs => run_mounts::tmpfs(out, &m, &target),
                MountType::Secret | MountType::Ssh => run_mounts::unavailable(&m)?,
            }
        }
        Ok(())
    }

    /// The step's container, with its mounts ready.
    async fn run_with_mounts(
        &mut self,
        state: &mut StageState,
        instr: &Instruction,
        run: &RunSpec,
        argv: Vec<String>,
        mounts: &mut run_mounts::RunMounts,
    ) -> Result<(), BuildError> {
        let _ = instr;
        let args = state.run_args();
        let shown = argv.join(" ");
        let created_by = if args.is_empty() {
            shown.clone()
        } else {
            format!("|{} {} {shown}", args.len(), args.join(" "))
        };
        let network = match run.network {
            Some(RunNetwork::None) => "none".to_string(),
            Some(RunNetwork::Host) => "host".to_string(),
            Some(RunNetwork::Default) | None => self.build.opts.network_mode.clone(),
        };
        let proxies: Vec<String> = self
            .build
            .opts
            .build_args
            .iter()
            .filter(|(k, _)| is_proxy_arg(k) && !state.args.contains_key(*k))
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        let mount_key = format!(
            "{}\n{}",
            mounts.key.join("\n"),
            serde_json::to_string(
                &mounts
                    .mounts
                    .iter()
                    .map(|m| (
                        m["Type"].clone(),
                        m["Target"].clone(),
                        m["ReadOnly"].clone()
                    ))
                    .collect::<Vec<_>>()
            )
            .unwrap_or_default()
        );
        let key = self.step_key(&[
            "run",
            &state.parent_id(),
            &created_by,
            &Self::config_json(state),
            &network,
            &proxies.join("\n"),
            &mount_key,
        ]);
        if self.cached(state, &key).await? {
            return Ok(());
        }
        let Some(image) = state.image.clone() else {
            return Err(BuildError::Failed {
                message: format!("The command '{shown}' cannot run: the stage starts from scratch and has no files yet"),
                code: 1,
            });
        };
        // The container runs on the step's image, recorded for as long as the build.
        {
            let images = self.build.engine.images.clone();
            let img = image.clone();
            tokio::task::spawn_blocking(move || images.record_step(&img, None))
                .await
                .map_err(|e| BuildError::internal("recording a step", e))??;
            if let Ok(mut recorded) = self.shared.recorded.lock() {
                recorded.push(image.clone());
            }
        }
        let mut env = args.clone();
        env.extend(proxies);
        let config = json!({
            "Image": image.id.to_string(),
            "Cmd": argv,
            "Entrypoint": [""],
            "Env": env,
            "User": state.config.user.clone().unwrap_or_default(),
            "WorkingDir": state.config.working_dir.clone().unwrap_or_default(),
            "Healthcheck": { "Test": ["NONE"] },
            "Labels": {},
            "AttachStdout": true,
            "AttachStderr": true,
        });
        let mut host_config = self.build.opts.host_config.clone();
        host_config.insert("NetworkMode".into(), json!(network));
        if !mounts.mounts.is_empty() {
            host_config.insert("Mounts".into(), json!(mounts.mounts));
        }
        host_config.insert(
            "LogConfig".into(),
            json!({ "Type": "json-file", "Config": {} }),
        );
        let engine = self.build.engine.clone();
        let (id, _) = engine
            .create(None, config, Value::Object(host_config), json!({}))
            .await?;
        self.say(format!(" ---> Running in {}\n", short(&id)))
            .await
            .ok();
        let outcome = self.run_container(&id).await;
        let remove = match &outcome {
            Ok(0) => self.build.opts.remove,
            _ => {
                self.build.opts.force_remove
                    || matches!(outcome, Err(BuildError::Cancelled))
                    || self.build.opts.remove
            }
        };
        let result = match outcome {
            Ok(0) => {
                self.commit_container(state, &id, &key, created_by, &mounts.targets)
                    .await
            }
            Ok(code) => Err(BuildError::Failed {
                message: format!("The command '{shown}' returned a non-zero code: {code}"),
                code: i64::from(code),
            }),
            Err(e) => Err(e),
        };
        if remove {
            let _ = engine.remove_with_volumes(&id, true, true).await;
            if result.is_ok() {
                self.say(format!("Removing intermediate container {}\n", short(&id)))
                    .await
                    .ok();
            }
        }
        match result {
            Ok(image) => {
                self.say(format!(" ---> {}\n", short(&image.id.to_string())))
                    .await?;
                state.image = Some(image);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Starts the step's container, streams its output, and waits for its exit code.
    /// A client that goes away kills it.
    async fn run_container(&mut self, id: &str) -> Result<i32, BuildError> {
        let engine = self.build.engine.clone();
        let exit = engine.wait(id, "next-exit")?;
        engine.start(id).await?;
        let log = engine.log_path(id);
        let mut follower = LogFollower::new(log);
        tokio::pin!(exit);
        loop {
            tokio::select! {
                code = &mut exit => {
                    for line in follower.read_new().await {
                        self.say(line).await?;
                    }
                    return Ok(code);
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    for line in follower.read_new().await {
                        if self.say(line).await.is_err() {
                            let _ = engine.kill(id, Some("KILL")).await;
                            return Err(BuildError::Cancelled);
                        }
                    }
                    if self.cancelled() {
                        let _ = engine.kill(id, Some("KILL")).await;
                        return Err(BuildError::Cancelled);
                    }
                }
            }
        }
    }

    /// The step's container's changes as the next step's image.
    async fn commit_container(
        &self,
        state: &StageState,
        id: &str,
        key: &str,
        created_by: String,
        mount_targets: &[String],
    ) -> Result<StepImage, BuildError> {
        let mount_targets = mount_targets.to_vec();
        let c = self.build.engine.get(id)?;
        let images = self.build.engine.images.clone();
        let snapshot_key = c.snapshot_key.clone();
        let (upper, exclude) = tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
            let snaps = images.snapshots();
            let upper = snaps.fs_path(&snapshot_key)?;
            let lowers = match snaps.mounts(&snapshot_key)? {
                pier_image::snapshot::MountSpec::Overlay { lowerdirs, .. } => lowerdirs,
                pier_image::snapshot::MountSpec::Bind { .. } => Vec::new(),
            };
            let mut exclude = super::commit::engine_made(&upper, &lowers);
            exclude.extend(run_mounts::stubs(&upper, &lowers, &mount_targets));
            // The image's volumes: what RUN wrote there is not kept (Docker's rule).
            exclude.extend(volume_dirs(&c.config));
            Ok((upper, exclude))
        })
        .await
        .map_err(|e| BuildError::internal("committing a step", e))??;
        self.make_step(state, key, created_by, Some((upper, exclude)))
            .await
    }
}

/// The image's `VOLUME` paths as upper-dir-relative paths to leave out of a commit.
fn volume_dirs(config: &Value) -> Vec<PathBuf> {
    config["Volumes"]
        .as_object()
        .map(|v| {
            v.keys()
                .map(|k| PathBuf::from(k.trim_start_matches('/')))
                .collect()
        })
        .unwrap_or_default()
}

/// `EXPOSE` words as `port/proto` keys (ranges expanded).
fn expose_ports(word: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {ports}"))
    };
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if hi < lo {
        return Err(format!(
            "invalid range specified for container port: {ports}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// dockerd's history text of a `HEALTHCHECK`: Go's `%q` of its config struct,
/// `&{["CMD-SHELL" "true"] "5s" "0s" "0s" '\x02'}` (durations quoted as Go prints
/// them, the retries as a quoted rune); the start interval appears when given, as in
/// newer dockerd.
fn healthcheck_history(hc: &pier_dockerfile::Healthcheck) -> String {
    let d =
        |v: Option<Duration>| format!("\"{}\"", super::health::go_duration(v.unwrap_or_default()));
    let mut fields = vec![
        go_quoted_list(&hc.test()),
        d(hc.interval),
        d(hc.timeout),
        d(hc.start_period),
    ];
    if hc.start_interval.is_some() {
        fields.push(d(hc.start_interval));
    }
    fields.push(go_quoted_rune(hc.retries.unwrap_or(0)));
    format!("&{{{}}}", fields.join(" "))
}

/// Go's `%q` of an integer: a quoted character literal.
fn go_quoted_rune(n: u32) -> String {
    match char::from_u32(n) {
        Some('\'') => "'\\''".to_string(),
        Some('\\') => "'\\\\'".to_string(),
        Some(c) if (' '..='~').contains(&c) => format!("'{c}'"),
        _ if n < 0x80 => format!("'\\x{n:02x}'"),
        _ if n <= 0xffff => format!("'\\u{n:04x}'"),
        _ => format!("'\\U{n:08x}'"),
    }
}

/// Go's `%q` of a string slice, as the classic builder writes `CMD ["a" "b"]` in
/// history.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// A snapshot of a step's image, mounted on a directory under the builder's tmp dir,
/// unmounted and removed by [`release`](StepMount::release) (or on drop).
struct StepMount {
    images: Arc<pier_image::service::ImageService>,
    key: String,
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for StepMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepMount").field("key", &self.key).finish()
    }
}

impl StepMount {
    fn new(
        images: Arc<pier_image::service::ImageService>,
        image: Option<&StepImage>,
        tmp: &Path,
    ) -> Result<StepMount, BuildError> {
        let parent = match image {
            Some(i) => {
                images.unpack_step(i)?;
                i.chain().last().map(ToString::to_string)
            }
            None => None,
        };
        std::fs::create_dir_all(tmp)
            .map_err(|e| BuildError::internal("making a mount point", e))?;
        let key = format!("build-{}", super::random_id());
        images.snapshots().prepare(&key, parent.as_deref())?;
        let mut mount = StepMount {
            images,
            key,
            dir: None,
        };
        let dir = tempfile::Builder::new()
            .prefix("mnt-")
            .tempdir_in(tmp)
            .map_err(|e| BuildError::internal("making a mount point", e))?;
        mount.images.snapshots().mount(&mount.key, dir.path())?;
        mount.dir = Some(dir);
        Ok(mount)
    }

    fn path(&self) -> Result<PathBuf, BuildError> {
        self.dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .ok_or_else(|| BuildError::Internal("step snapshot not mounted".into()))
    }

    fn root(&self) -> Result<OwnedFd, BuildError> {
        rustix::fs::open(
            self.path()?,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| BuildError::internal("opening a step's root", e))
    }

    fn upper(&self) -> Result<PathBuf, BuildError> {
        Ok(self.images.snapshots().fs_path(&self.key)?)
    }

    async fn release(mut self) {
        let dir = self.dir.take();
        let images = self.images.clone();
        let key = self.key.clone();
        let _ = tokio::task::spawn_blocking(move || unmount_and_remove(&images, &key, dir)).await;
    }
}

fn unmount_and_remove(
    images: &pier_image::service::ImageService,
    key: &str,
    dir: Option<tempfile::TempDir>,
) {
    if let Some(d) = dir {
        let _ = pier_image::snapshot::unmount(d.path());
    }
    let _ = images.snapshots().remove(key);
}

impl Drop for StepMount {
    fn drop(&mut self) {
        if self.dir.is_some() || self.images.snapshots().exists(&self.key) {
            unmount_and_remove(&self.images, &self.key, self.dir.take());
        }
    }
}

/// Whether `source` names a directory in `root` (for the history text).
fn source_is_dir(root: &SourceRoot, source: &str) -> Result<bool, BuildError> {
    let fd = root.fd()?;
    let rel = crate::rootfs_tar::clean(source).0.join("/");
    Ok(crate::rootfs_tar::in_root(
        fd.as_fd(),
        &rel,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
    )
    .is_ok())
}

/// Where a `COPY` reads from.
enum SourceRoot {
    Context(OwnedFd),
    Mounted(StepMount),
    /// Files written for the step (`COPY <<EOF`).
    Temp(tempfile::TempDir),
}

impl SourceRoot {
    fn fd(&self) -> Result<OwnedFd, BuildError> {
        match self {
            SourceRoot::Context(fd) => {
                rustix::io::dup(fd).map_err(|e| BuildError::internal("opening the context", e))
            }
            SourceRoot::Mounted(m) => m.root(),
            SourceRoot::Temp(d) => rustix::fs::open(
                d.path(),
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| BuildError::internal("opening heredoc files", e)),
        }
    }

    async fn release(self) {
        if let SourceRoot::Mounted(m) = self {
            m.release().await;
        }
    }
}

/// Follows a container's json-file log: the lines written since the last read.
struct LogFollower {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LogFollower {
    fn new(path: PathBuf) -> LogFollower {
        LogFollower {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    async fn read_new(&mut self) -> Vec<String> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let Ok(mut f) = tokio::fs::File::open(&self.path).await else {
            return Vec::new();
        };
        if f.seek(std::io::SeekFrom::Start(self.offset)).await.is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).await.is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            #[derive(serde::Deserialize)]
            struct Record {
                log: String,
                #[serde(default)]
                stream: String,
            }
            if let Ok(r) = serde_json::from_slice::<Record>(&line) {
                // dockerd's classic builder shows a step's stderr in red.
                if r.stream == "stderr" {
                    out.push(format!("\u{1b}[91m{}\u{1b}[0m", r.log));
                } else {
                    out.push(r.log);
                }
            }
        }
        out
    }
}
