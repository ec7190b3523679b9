//! Operations on containers beyond their life cycle: restart policies, pause and
//! unpause, top, stats, rename and update (Docker's semantics and messages).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use super::{parse_signal, resolve_in, valid_name, Container, Engine, EngineError};

/// Docker's first back-off of a policy restart; it doubles up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: u64 = 100;
const MAX_BACKOFF_MS: u64 = 60_000;
/// A run at least this long resets the back-off.
const RESET_AFTER: Duration = Duration::from_secs(10);
/// Docker's zero time (stats of a container that does not run).
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The restart policy of a host config: name and maximum retry count.
fn policy(host_config: &Value) -> (String, i64) {
    let p = &host_config["RestartPolicy"];
    (
        p["Name"].as_str().unwrap_or_default().to_string(),
        p["MaximumRetryCount"].as_i64().unwrap_or(0),
    )
}

/// Docker's `ValidateRestartPolicy` (and the `AutoRemove` rule of container create).
pub(super) fn validate_restart_policy(host_config: &Value) -> Result<(), EngineError> {
    let (name, max) = policy(host_config);
    check_policy(&name, max)?;
    if host_config["AutoRemove"].as_bool() == Some(true) && !matches!(name.as_str(), "" | "no") {
        return Err(EngineError::InvalidParameter(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    Ok(())
}

fn check_policy(name: &str, max: i64) -> Result<(), EngineError> {
    match name {
        "always" | "unless-stopped" | "no" => {
            if max != 0 {
                let mut msg = String::from(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                );
                if max < 0 {
                    msg.push_str(" and cannot be negative");
                }
                return Err(EngineError::InvalidParameter(msg));
            }
            Ok(())
        }
        "on-failure" if max < 0 => Err(EngineError::InvalidParameter(
            "invalid restart policy: maximum retry count cannot be negative".into(),
        )),
        // Before Docker 25 an empty name was the default.
        "on-failure" | "" => Ok(()),
        other => Err(EngineError::InvalidParameter(format!(
            "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        ))),
    }
}

fn seconds_since(rfc3339: &str) -> Option<f64> {
    let (s, n) = pier_image::time::parse_rfc3339(rfc3339)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    Some(now.as_secs_f64() - (s as f64 + f64::from(n) / 1e9))
}

/// Docker's `RestartManager.ShouldRestart`, applied to the record of a container that
/// just exited (called under the engine's lock). On a restart the record becomes
/// `restarting` and the generation and back-off of the pending restart are returned.
pub(super) fn plan_restart(c: &mut Container, exit_code: i32) -> Option<(u64, Duration)> {
    // A run the user started (not the policy) begins a new count, as Docker's start
    // resets the restart manager.
    if !std::mem::take(&mut c.policy_start) {
        c.restart_count = 0;
        c.restart_backoff_ms = 0;
    }
    let (name, max) = policy(&c.host_config);
    if matches!(name.as_str(), "" | "no") {
        return None;
    }
    let run = c.state.started_at.clone();
    if !run.is_empty() && c.exit_on_next_run == run {
        return None;
    }
    let manually_stopped = !run.is_empty() && c.manual_stop_run == run;
    if seconds_since(&run).is_some_and(|s| s >= RESET_AFTER.as_secs_f64()) {
        c.restart_backoff_ms = 0;
    }
    c.restart_backoff_ms = match c.restart_backoff_ms {
        0 => FIRST_BACKOFF_MS,
        t if t < MAX_BACKOFF_MS => t * 2,
        t => t,
    }
    .min(MAX_BACKOFF_MS);
    let restart = match name.as_str() {
        "always" => true,
        "unless-stopped" => !manually_stopped,
        "on-failure" => (max == 0 || i64::from(c.restart_count) < max) && exit_code != 0,
        _ => false,
    };
    if !restart {
        return None;
    }
    c.restart_count += 1;
    c.restart_gen += 1;
    // Docker counts a restarting container as running (stop, rm and ps see it so).
    c.state.status = "restarting".into();
    c.state.restarting = true;
    c.state.running = true;
    Some((c.restart_gen, Duration::from_millis(c.restart_backoff_ms)))
}

/// Whether the daemon, starting, starts this stopped container again: `always`,
/// `unless-stopped` unless the user stopped it, `on-failure` after a failure with
/// retries left (and not stopped by the user). Never-started containers stay.
fn restart_at_boot(c: &Container) -> bool {
    if c.state.running && !c.state.restarting {
        return false;
    }
    if c.state.restarting {
        return true;
    }
    if c.state.status != "exited" || c.state.started_at == ZERO_TIME {
        return false;
    }
    let manually_stopped = c.manual_stop_run == c.state.started_at;
    let (name, max) = policy(&c.host_config);
    match name.as_str() {
        "always" => true,
        "unless-stopped" => !manually_stopped,
        "on-failure" => {
            !manually_stopped
                && c.state.exit_code != 0
                && (max == 0 || i64::from(c.restart_count) < max)
        }
        _ => false,
    }
}

fn runtime_error(context: &str, e: EngineError) -> EngineError {
    match e {
        EngineError::Internal(m) => EngineError::Internal(format!("{context}: {m}")),
        other => other,
    }
}

impl Engine {
    /// After the back-off, starts the container again unless the restart was
    /// cancelled (a stop, kill or remove in between).
    pub(super) fn schedule_restart(self: &Arc<Self>, id: String, generation: u64, delay: Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            {
                let mut inner = engine.lock();
                let Some(entry) = inner.get_mut(&id) else {
                    return;
                };
                // Cancelled, or being removed.
                if entry.c.restart_gen != generation || entry.c.state.status != "restarting" {
                    return;
                }
                entry.c.state.running = false;
                entry.c.policy_start = true;
                let _ = engine.store.put(&entry.c);
            }
            // A stop meanwhile (it waits for no lock to cancel) makes this start none.
            let result = engine.start_run(&id, Some(generation)).await;
            let mut inner = engine.lock();
            let Some(entry) = inner.get_mut(&id) else {
                return;
            };
            // A later exit may already have planned the next restart; a remove may be
            // under way (its record must not be written again).
            if entry.c.restart_gen != generation || entry.c.state.status == "removing" {
                return;
            }
            entry.c.state.restarting = false;
            if result.is_err() {
                entry.c.policy_start = false;
                if !entry.c.state.running {
                    entry.c.state.status = "exited".into();
                }
            }
            let _ = engine.store.put(&entry.c);
        });
    }

    /// At daemon start: what the restart policies say should run, decided on the
    /// state as pierd found it (before any exit watcher changes it).
    pub(super) fn restarts_on_boot(&self) -> Vec<String> {
        self.lock()
            .values_mut()
            .filter(|e| restart_at_boot(&e.c))
            .map(|e| {
                // Interrupted during a back-off: stopped, then started as below.
                if e.c.state.restarting {
                    e.c.state.restarting = false;
                    e.c.state.running = false;
                    e.c.state.status = "exited".into();
                }
                e.c.id.clone()
            })
            .collect()
    }

    /// Starts the containers [`restarts_on_boot`](Self::restarts_on_boot) chose.
    pub(super) fn start_on_boot(self: &Arc<Self>, ids: Vec<String>) {
        for id in ids {
            let engine = self.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.start(&id).await {
                    eprintln!("pierd: restart policy: start {id}: {e}");
                }
            });
        }
    }

    /// A stop or kill by the user (Docker's `HasBeenManuallyStopped`, and with SIGKILL
    /// or the stop signal `ExitOnNext`). True when the container was only restarting:
    /// there is nothing to signal (and with `ExitOnNext` the restart is cancelled).
    pub(super) fn mark_user_stop(&self, c: &Container, signal: i32) -> bool {
        let stop_signal = c.config["StopSignal"]
            .as_str()
            .filter(|s| !s.is_empty())
            .and_then(|s| parse_signal(s).ok())
            .unwrap_or(15);
        let exit_on_next = signal == 9 || signal == stop_signal;
        let mut inner = self.lock();
        let Some(entry) = inner.get_mut(&c.id) else {
            return false;
        };
        let run = entry.c.state.started_at.clone();
        entry.c.manual_stop_run = run.clone();
        if exit_on_next {
            entry.c.exit_on_next_run = run;
        }
        // Between two runs of its restart policy (the back-off, or the next run being
        // launched), not once the next run is up.
        let restarting = entry.c.state.restarting && entry.c.state.status == "restarting";
        if restarting && exit_on_next {
            entry.c.restart_gen += 1;
            entry.c.state.restarting = false;
            entry.c.state.running = false;
            entry.c.state.status = "exited".into();
            entry.events.send_modify(|e| e.running = false);
        }
        let _ = self.store.put(&entry.c);
        restarting
    }

    /// Thaws a paused container after a stop or kill signal, so it gets it.
    pub(super) async fn thaw_after_signal(&self, c: &Container) {
        if !c.state.paused {
            return;
        }
        let _ = self.runtime_command(c, &["resume", &c.id]).await;
        let _ = self.update(&c.id, |c| {
            if c.state.running && c.state.paused {
                c.state.paused = false;
                c.state.status = "running".into();
            }
        });
    }

    /// A running container (not restarting), or Docker's 409.
    fn running(&self, input: &str) -> Result<Container, EngineError> {
        let c = self.get(input)?;
        if !c.state.running {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if c.state.restarting {
            return Err(EngineError::Conflict(format!(
                "Container {} is restarting, wait until the container is running",
                c.id
            )));
        }
        Ok(c)
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, input: &str) -> Result<(), EngineError> {
        let c = self.running(input)?;
        if c.state.paused {
            return Err(EngineError::Conflict(format!(
                "container {} is already paused",
                c.id
            )));
        }
        self.runtime_command(&c, &["pause", &c.id])
            .await
            .map_err(|e| runtime_error(&format!("cannot pause container {}", c.id), e))?;
        self.update(&c.id, |c| {
            if c.state.running {
                c.state.paused = true;
                c.state.status = "paused".into();
            }
        })?;
        self.container_event(&c.id, "pause", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, input: &str) -> Result<(), EngineError> {
        let c = self.get(input)?;
        if !c.state.paused {
            return Err(EngineError::Conflict(format!(
                "container {} is not paused",
                c.id
            )));
        }
        self.runtime_command(&c, &["resume", &c.id])
            .await
            .map_err(|e| runtime_error(&format!("cannot unpause container {}", c.id), e))?;
        self.update(&c.id, |c| {
            c.state.paused = false;
            if c.state.running {
                c.state.status = "running".into();
            }
        })?;
        self.container_event(&c.id, "unpause", &[]);
        Ok(())
    }

    /// `GET /containers/{id}/top`: the host's `ps` lines of the container's processes.
    pub async fn top(&self, input: &str, ps_args: &str) -> Result<Value, EngineError> {
        let c = self.running(input)?;
        let out = self
            .runtime_command(&c, &["ps", "--format", "json", &c.id])
            .await
            .map_err(|e| runtime_error("error getting the container's processes", e))?;
        let pids: Vec<i64> = serde_json::from_str(out.trim()).map_err(|e| {
            EngineError::Internal(format!("error getting the container's processes: {e}"))
        })?;
        let args: Vec<&str> = if ps_args.trim().is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| EngineError::Internal(format!("error running ps: {e}")))?;
        if !out.status.success() {
            // As Docker: the first line of ps's complaint.
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(EngineError::Internal(format!(
                "ps: {}",
                stderr.lines().next().unwrap_or_default().trim()
            )));
        }
        let table = parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)?;
        self.container_event(&c.id, "top", &[]);
        Ok(table)
    }

    /// One sample of the container's statistics in Docker's shape (without the
    /// `pre*` fields); zeros when it does not run.
    pub async fn stats_sample(&self, input: &str) -> Result<Value, EngineError> {
        let c = self.get(input)?;
        if !c.state.running || c.state.restarting {
            return Ok(empty_stats(&c));
        }
        let read = pier_image::time::now_rfc3339();
        let Ok(out) = self
            .runtime_command(&c, &["events", "--stats", &c.id])
            .await
        else {
            return Ok(empty_stats(&c));
        };
        let event: Value = serde_json::from_str(out.trim())
            .map_err(|e| EngineError::Internal(format!("container stats: {e}")))?;
        let mut stats = docker_stats(&c, &event["data"], read);
        // As Docker: the interfaces of the container's own network namespace.
        let own_netns = !matches!(
            c.host_config["NetworkMode"].as_str().unwrap_or(""),
            "host" | "none"
        );
        if own_netns && c.state.pid > 0 {
            let dev = std::fs::read_to_string(format!("/proc/{}/net/dev", c.state.pid));
            let networks = interface_counters(&dev.unwrap_or_default());
            if !networks.is_empty() {
                stats["networks"] = Value::Object(networks);
            }
        }
        Ok(stats)
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename(&self, input: &str, new_name: &str) -> Result<(), EngineError> {
        let new_name = format!("/{}", new_name.trim_start_matches('/'));
        let bare = &new_name[1..];
        let mut inner = self.lock();
        let id = resolve_in(&inner, input)?;
        let old = inner[&id].c.name.clone();
        if old == bare {
            return Err(EngineError::InvalidParameter(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        if !valid_name(bare) {
            return Err(EngineError::InvalidParameter(format!(
                "Error when allocating new name: Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        // Taken by a container, or by a create under way.
        let owner = inner
            .values()
            .find(|e| e.c.name == bare)
            .map(|e| e.c.id.clone())
            .or_else(|| self.reserved().get(bare).cloned());
        if let Some(other) = owner {
            return Err(EngineError::Conflict(format!(
                "Error when allocating new name: {}",
                super::lifecycle::name_in_use(bare, &other)
            )));
        }
        let entry = inner
            .get_mut(&id)
            .ok_or_else(|| EngineError::NotFound(format!("No such container: {input}")))?;
        entry.c.name = bare.to_string();
        if let Err(e) = self.store.put(&entry.c) {
            entry.c.name = old;
            return Err(e);
        }
        drop(inner);
        self.container_event(&id, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `DELETE /containers/{parent}/{alias}?link=1` (`docker rm --link`): removes the
    /// legacy link `alias` from container `parent`, as dockerd's `rmLink`.
    pub fn remove_link(&self, link_name: &str) -> Result<(), EngineError> {
        let trimmed = link_name.trim_matches('/');
        let Some((parent, alias)) = trimmed.rsplit_once('/') else {
            return Err(EngineError::Conflict(
                "Conflict, cannot remove the default link name of the container".into(),
            ));
        };
        let no_such = || EngineError::NotFound(format!("No such container: {trimmed}"));
        let mut inner = self.lock();
        let id = resolve_in(&inner, parent).map_err(|_| no_such())?;
        let entry = inner.get_mut(&id).ok_or_else(no_such)?;
        let links = super::spec::str_list(&entry.c.host_config["Links"]);
        let kept: Vec<String> = links
            .iter()
            .filter(|l| super::network::parse_link(l).1 != alias)
            .cloned()
            .collect();
        if kept.len() == links.len() {
            return Err(no_such());
        }
        let before = entry.c.host_config["Links"].clone();
        entry.c.host_config["Links"] = if kept.is_empty() {
            Value::Null
        } else {
            json!(kept)
        };
        if let Err(e) = self.store.put(&entry.c) {
            entry.c.host_config["Links"] = before;
            return Err(e);
        }
        Ok(())
    }

    /// `POST /containers/{id}/update`: resources and restart policy, in the record and
    /// (for a running container) in its cgroup. Returns warnings.
    pub async fn update_container(
        &self,
        input: &str,
        body: &Value,
    ) -> Result<Vec<String>, EngineError> {
        let c = self.get(input)?;
        let cannot = |m: String| format!("Cannot update container {}: {m}", c.id);
        let hc = &c.host_config;
        let num = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
        // Docker's checks (container.UpdateContainer), against what is set now.
        let conflicts = [
            (
                "NanoCpus",
                "CpuPeriod",
                "Nano CPUs cannot be updated as CPU Period has already been set",
            ),
            (
                "NanoCpus",
                "CpuQuota",
                "Nano CPUs cannot be updated as CPU Quota has already been set",
            ),
            (
                "CpuPeriod",
                "NanoCpus",
                "CPU Period cannot be updated as NanoCPUs has already been set",
            ),
            (
                "CpuQuota",
                "NanoCpus",
                "CPU Quota cannot be updated as NanoCPUs has already been set",
            ),
        ];
        for (new, old, msg) in conflicts {
            if num(body, new) > 0 && num(hc, old) > 0 {
                return Err(EngineError::Conflict(cannot(format!(
                    "Conflicting options: {msg}"
                ))));
            }
        }
        let memory = num(body, "Memory");
        let swap_now = match num(hc, "MemorySwap") {
            0 if num(hc, "Memory") > 0 => num(hc, "Memory") * 2,
            s => s,
        };
        if memory != 0 && num(body, "MemorySwap") == 0 && memory > swap_now {
            return Err(EngineError::Conflict(cannot(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
            )));
        }
        if memory != 0 && memory < 6 * 1024 * 1024 {
            return Err(EngineError::InvalidParameter(cannot(
                "Minimum memory limit allowed is 6MB".into(),
            )));
        }
        let policy_name = body["RestartPolicy"]["Name"].as_str().unwrap_or_default();
        if !policy_name.is_empty() {
            check_policy(
                policy_name,
                num(&body["RestartPolicy"], "MaximumRetryCount"),
            )?;
            if hc["AutoRemove"].as_bool() == Some(true) && policy_name != "no" {
                return Err(EngineError::Conflict(cannot(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                )));
            }
        }

        // The new host config, and the changed part as OCI resources.
        let mut new_hc = hc.clone();
        let mut mem = Map::new();
        let mut cpu = Map::new();
        let mut pids = None;
        for key in [
            "CpuShares",
            "NanoCpus",
            "CpuPeriod",
            "CpuQuota",
            "Memory",
            "MemorySwap",
            "MemoryReservation",
        ] {
            let v = num(body, key);
            if v != 0 {
                new_hc[key] = json!(v);
            }
        }
        for key in ["CpusetCpus", "CpusetMems"] {
            if let Some(v) = body[key].as_str().filter(|v| !v.is_empty()) {
                new_hc[key] = json!(v);
            }
        }
        if let Some(p) = body["PidsLimit"].as_i64() {
            new_hc["PidsLimit"] = json!(p);
            pids = Some(if p > 0 { p } else { -1 });
        }
        if !policy_name.is_empty() {
            new_hc["RestartPolicy"] = body["RestartPolicy"].clone();
        }
        if memory != 0 {
            mem.insert("limit".into(), json!(memory));
        }
        if num(body, "MemorySwap") != 0 {
            mem.insert("swap".into(), json!(num(body, "MemorySwap")));
        }
        if num(body, "MemoryReservation") != 0 {
            mem.insert("reservation".into(), json!(num(body, "MemoryReservation")));
        }
        if num(body, "CpuShares") != 0 {
            cpu.insert("shares".into(), json!(num(body, "CpuShares")));
        }
        if num(body, "NanoCpus") != 0 {
            let period: i64 = 100_000;
            cpu.insert("period".into(), json!(period));
            cpu.insert(
                "quota".into(),
                json!(num(body, "NanoCpus") * period / 1_000_000_000),
            );
        }
        if num(body, "CpuPeriod") != 0 {
            cpu.insert("period".into(), json!(num(body, "CpuPeriod")));
        }
        if num(body, "CpuQuota") != 0 {
            cpu.insert("quota".into(), json!(num(body, "CpuQuota")));
        }
        for (key, oci) in [("CpusetCpus", "cpus"), ("CpusetMems", "mems")] {
            if let Some(v) = body[key].as_str().filter(|v| !v.is_empty()) {
                cpu.insert(oci.into(), json!(v));
            }
        }
        let mut resources = Map::new();
        if !mem.is_empty() {
            resources.insert("memory".into(), Value::Object(mem));
        }
        if !cpu.is_empty() {
            resources.insert("cpu".into(), Value::Object(cpu));
        }
        if let Some(p) = pids {
            resources.insert("pids".into(), json!({ "limit": p }));
        }

        if c.state.running && !c.state.restarting && !resources.is_empty() {
            self.runtime_update(&c, &Value::Object(resources))
                .await
                .map_err(|e| EngineError::Internal(cannot(e)))?;
        }
        self.update(&c.id, |c| c.host_config = new_hc)?;
        self.container_event(&c.id, "update", &[]);
        Ok(Vec::new())
    }

    /// `<runtime> update --resources -` with the resources JSON on stdin.
    async fn runtime_update(&self, c: &Container, resources: &Value) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.runtimes[&c.runtime])
            .arg("--root")
            .arg(self.runtime_root(&c.runtime))
            .args(["update", "--resources", "-", &c.id])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("run the runtime: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(resources.to_string().as_bytes()).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("run the runtime: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// Docker's filter of `ps` output: the lines of the given pids, the last column
/// keeping its spaces.
fn parse_ps(text: &str, pids: &[i64]) -> Result<Value, EngineError> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_index = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| EngineError::Internal("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_index).and_then(|p| p.parse::<i64>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len().max(1);
        let mut row: Vec<String> = fields.iter().take(n - 1).map(|s| s.to_string()).collect();
        row.push(fields.get(n - 1..).map(|f| f.join(" ")).unwrap_or_default());
        processes.push(row);
    }
    Ok(json!({ "Titles": titles, "Processes": processes }))
}

fn empty_cpu() -> Value {
    json!({
        "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 },
        "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
    })
}

fn empty_blkio() -> Value {
    json!({
        "io_service_bytes_recursive": null,
        "io_serviced_recursive": null,
        "io_queue_recursive": null,
        "io_service_time_recursive": null,
        "io_wait_time_recursive": null,
        "io_merged_recursive": null,
        "io_time_recursive": null,
        "sectors_recursive": null,
    })
}

/// What Docker answers for a container that does not run.
fn empty_stats(c: &Container) -> Value {
    json!({
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": empty_blkio(),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": empty_cpu(),
        "precpu_stats": empty_cpu(),
        "memory_stats": {},
        "name": format!("/{}", c.name),
        "id": c.id,
    })
}

/// `/proc/stat`'s total CPU time in nanoseconds (Docker's `system_cpu_usage`) and the
/// number of online CPUs.
fn system_cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut total = 0u64;
    let mut cpus = 0u64;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let ticks: u64 = fields.take(7).filter_map(|f| f.parse::<u64>().ok()).sum();
                // USER_HZ is 100 on Linux.
                total = ticks * (1_000_000_000 / 100);
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    let online = std::thread::available_parallelism().map_or(cpus, |n| n.get() as u64);
    (total, online.max(1))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// runc's stats (`events --stats` data) in Docker's `StatsJSON` shape.
/// Docker's per-interface `networks` stats from a `/proc/<pid>/net/dev` text, the
/// loopback left out.
fn interface_counters(dev: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for line in dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let n: Vec<u64> = counters
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if name == "lo" || n.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11],
            }),
        );
    }
    out
}

fn docker_stats(c: &Container, data: &Value, read: String) -> Value {
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    let cpu = &data["cpu"];
    let (system, online) = system_cpu();
    let mut cpu_usage = json!({
        "total_usage": u(&cpu["usage"]["total"]),
        "usage_in_kernelmode": u(&cpu["usage"]["kernel"]),
        "usage_in_usermode": u(&cpu["usage"]["user"]),
    });
    if let Some(per) = cpu["usage"]["percpu"].as_array().filter(|a| !a.is_empty()) {
        cpu_usage["percpu_usage"] = json!(per);
    }
    let cpu_stats = json!({
        "cpu_usage": cpu_usage,
        "system_cpu_usage": system,
        "online_cpus": online,
        "throttling_data": {
            "periods": u(&cpu["throttling"]["periods"]),
            "throttled_periods": u(&cpu["throttling"]["throttledPeriods"]),
            "throttled_time": u(&cpu["throttling"]["throttledTime"]),
        },
    });
    let mem = &data["memory"];
    let mut memory_stats = json!({});
    if mem["usage"].is_object() {
        let mut limit = u(&mem["usage"]["limit"]);
        let machine = mem_total();
        if machine > 0 && (limit == 0 || limit > machine) {
            limit = machine;
        }
        memory_stats = json!({
            "usage": u(&mem["usage"]["usage"]),
            "max_usage": u(&mem["usage"]["max"]),
            "stats": mem["raw"].as_object().cloned().unwrap_or_default(),
            "failcnt": u(&mem["usage"]["failcnt"]),
            "limit": limit,
        });
    }
    let mut pids_stats = json!({});
    if u(&data["pids"]["current"]) > 0 {
        pids_stats["current"] = json!(u(&data["pids"]["current"]));
    }
    if u(&data["pids"]["limit"]) > 0 {
        pids_stats["limit"] = json!(u(&data["pids"]["limit"]));
    }
    let mut blkio = empty_blkio();
    for (runc, docker) in [
        ("ioServiceBytesRecursive", "io_service_bytes_recursive"),
        ("ioServicedRecursive", "io_serviced_recursive"),
        ("ioQueueRecursive", "io_queue_recursive"),
        ("ioServiceTimeRecursive", "io_service_time_recursive"),
        ("ioWaitTimeRecursive", "io_wait_time_recursive"),
        ("ioMergedRecursive", "io_merged_recursive"),
        ("ioTimeRecursive", "io_time_recursive"),
        ("sectorsRecursive", "sectors_recursive"),
    ] {
        if let Some(list) = data["blkio"][runc].as_array().filter(|l| !l.is_empty()) {
            let entries: Vec<Value> = list
                .iter()
                .map(|e| {
                    json!({
                        "major": u(&e["major"]),
                        "minor": u(&e["minor"]),
                        "op": e["op"].as_str().unwrap_or_default(),
                        "value": u(&e["value"]),
                    })
                })
                .collect();
            blkio[docker] = Value::Array(entries);
        }
    }
    json!({
        "read": read,
        "preread": ZERO_TIME,
        "pids_stats": pids_stats,
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats,
        "precpu_stats": empty_cpu(),
        "memory_stats": memory_stats,
        "name": format!("/{}", c.name),
        "id": c.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_counters_from_net_dev() {
        let dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0:    1500      12    1    2    0     0          0         0      700       7    3    4    0     0       0          0\n";
        let v = interface_counters(dev);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v["eth0"],
            json!({"rx_bytes": 1500, "rx_packets": 12, "rx_errors": 1, "rx_dropped": 2,
                   "tx_bytes": 700, "tx_packets": 7, "tx_errors": 3, "tx_dropped": 4})
        );
    }

    #[test]
    fn policies() {
        assert!(check_policy("always", 0).is_ok());
        assert!(check_policy("", 3).is_ok());
        assert!(check_policy("on-failure", 3).is_ok());
        assert_eq!(
            check_policy("on-failure", -1).unwrap_err().to_string(),
            "invalid restart policy: maximum retry count cannot be negative"
        );
        assert_eq!(
            check_policy("always", 2).unwrap_err().to_string(),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        );
        assert_eq!(
            check_policy("x", 0).unwrap_err().to_string(),
            "invalid restart policy: unknown policy 'x'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        );
        assert!(validate_restart_policy(
            &json!({"AutoRemove": true, "RestartPolicy": {"Name": "always"}})
        )
        .is_err());
    }

    #[test]
    fn ps_filter() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init splash\nroot 42 1 0 10:00 ? 00:00:00 sleep 1000\n";
        let v = parse_ps(text, &[42]).unwrap();
        assert_eq!(v["Titles"].as_array().unwrap().len(), 8);
        assert_eq!(
            v["Processes"],
            json!([[
                "root",
                "42",
                "1",
                "0",
                "10:00",
                "?",
                "00:00:00",
                "sleep 1000"
            ]])
        );
        assert!(parse_ps("USER CMD\n", &[1]).is_err());
    }
}
