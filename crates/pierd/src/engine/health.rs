//! Docker healthchecks: `Config.Healthcheck` run periodically inside a running
//! container, and the resulting `State.Health`.
//!
//! Each run of a container with a healthcheck has one monitor task (started after the
//! container is marked running, aborted when it exits). A probe is an exec (the
//! machinery of [`super::exec`]: the runtime's `exec` with the container's process
//! settings), its output kept up to [`MAX_OUTPUT`] bytes, killed at the timeout.
//! Results follow Docker's rules (`daemon/health.go`): a success makes the container
//! healthy and clears the failing streak; a failure counts unless it started within
//! the start period while the container was still `starting`; `Retries` counted
//! failures make it unhealthy. The last [`MAX_LOG`] results are kept. During the start
//! period, while `starting`, probes come every `StartInterval` instead of `Interval`.
//! When the monitor stops (the container exited), the status becomes `unhealthy`, as
//! in Docker.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::exec::{docker_exec_error, ExecConfig, ExecFiles};
use super::{random_id, Container, Engine};
use std::sync::Arc;

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;
/// Output kept of one probe.
pub const MAX_OUTPUT: usize = 4096;
/// Results kept in `State.Health.Log`.
pub const MAX_LOG: usize = 5;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// `State.Health`, as Docker shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// starting, healthy, unhealthy.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub failing_streak: u32,
    /// The last results, oldest first.
    #[serde(default)]
    pub log: Vec<HealthResult>,
}

/// One probe's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    #[serde(default)]
    pub start: String,
    #[serde(default)]
    pub end: String,
    #[serde(default)]
    pub exit_code: i64,
    #[serde(default)]
    pub output: String,
}

/// The monitor tasks, by container ID (memory only).
#[derive(Debug, Default)]
pub struct Monitors {
    inner: Mutex<HashMap<String, AbortHandle>>,
}

impl Monitors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A container's healthcheck, with Docker's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The command to exec.
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

/// A duration in nanoseconds; 0, negative or absent is the default.
fn nanos_or(nanos: Option<i64>, default: Duration) -> Duration {
    match nanos {
        Some(n) if n > 0 => Duration::from_nanos(n.unsigned_abs()),
        _ => default,
    }
}

/// The probe of a container's `Config` (`Healthcheck` and `Shell`, read as
/// `pier_api`'s typed `ContainerConfig`); None without a healthcheck, with `NONE` or an
/// unknown test type.
pub fn probe(config: &Value) -> Option<Probe> {
    let config = super::typed::config(config).ok()?;
    let health = config.healthcheck?;
    let test = health.test?;
    let (kind, rest) = test.split_first()?;
    let argv = match kind.as_str() {
        "CMD" => rest.to_vec(),
        "CMD-SHELL" => {
            let mut shell = config
                .shell
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.extend(rest.iter().cloned());
            shell
        }
        _ => return None,
    };
    if argv.is_empty() {
        return None;
    }
    let retries = health
        .retries
        .filter(|r| *r > 0)
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(DEFAULT_RETRIES);
    Some(Probe {
        argv,
        interval: nanos_or(health.interval, DEFAULT_INTERVAL),
        timeout: nanos_or(health.timeout, DEFAULT_TIMEOUT),
        start_period: nanos_or(health.start_period, Duration::ZERO),
        start_interval: nanos_or(health.start_interval, DEFAULT_START_INTERVAL),
        retries,
    })
}

/// Docker's merge of the image's healthcheck into the container's `Config`: the
/// image's when the container has none; else the container's, with its unset (empty
/// or zero) fields from the image's.
pub fn merge_image_healthcheck(
    config: &mut Value,
    image: Option<&pier_image::image::HealthConfig>,
) {
    let Some(image) = image else {
        return;
    };
    let Ok(image) = serde_json::to_value(image) else {
        return;
    };
    let hc = &mut config["Healthcheck"];
    if !hc.is_object() {
        *hc = image;
        return;
    }
    let test_empty = hc["Test"].as_array().is_none_or(|t| t.is_empty());
    if test_empty && !image["Test"].is_null() {
        hc["Test"] = image["Test"].clone();
    }
    for key in [
        "Interval",
        "Timeout",
        "StartPeriod",
        "StartInterval",
        "Retries",
    ] {
        let unset = hc[key].as_i64().unwrap_or(0) == 0;
        if unset && !image[key].is_null() {
            hc[key] = image[key].clone();
        }
    }
}

/// Go's `time.Duration.String()` (`30s`, `1.5s`, `200ms`, `1m30s`).
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |value: u128, unit: u128, digits: usize| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let f = format!("{rest:0digits$}");
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000, 6));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let s = frac(ns % 60_000_000_000, 1_000_000_000, 9);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// Output up to [`MAX_OUTPUT`] bytes, `...` appended when more came (Docker's
/// `limitedBuffer`).
#[derive(Debug, Default)]
struct Limited {
    buf: Vec<u8>,
    truncated: bool,
}

impl Limited {
    fn write(&mut self, data: &[u8]) {
        let keep = MAX_OUTPUT.saturating_sub(self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.truncated = true;
        }
    }

    fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            out.push_str("...");
        }
        out
    }
}

fn rfc3339(t: SystemTime) -> String {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    pier_image::time::format_rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let (secs, nanos) = pier_image::time::parse_rfc3339(text)?;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Applies one result to the health (Docker's `handleProbeResult`).
pub fn apply_result(h: &mut Health, result: HealthResult, probe: &Probe, since_start: Duration) {
    let ok = result.exit_code == 0;
    h.log.push(result);
    if h.log.len() > MAX_LOG {
        let extra = h.log.len() - MAX_LOG;
        h.log.drain(..extra);
    }
    if ok {
        h.failing_streak = 0;
        h.status = HEALTHY.into();
        return;
    }
    let in_start_period = h.status == STARTING && since_start < probe.start_period;
    if !in_start_period {
        h.failing_streak += 1;
        if h.failing_streak >= probe.retries {
            h.status = UNHEALTHY.into();
        }
    }
}

impl Engine {
    /// The start hook: for a container with a healthcheck, `State.Health` becomes
    /// `starting` (its log kept) and a monitor runs for this run. `restored`: pierd
    /// reconnected to a running container; its health is kept as it was.
    pub(super) fn health_start(self: &Arc<Self>, id: &str, restored: bool) {
        let Ok(c) = self.get(id) else {
            return;
        };
        let Some(probe) = probe(&c.config) else {
            return;
        };
        if !c.state.running {
            return;
        }
        let needs_reset = !restored || c.state.health.is_none();
        if needs_reset {
            let _ = self.update(id, |c| {
                let h = c.state.health.get_or_insert_with(Health::default);
                h.status = STARTING.into();
                h.failing_streak = 0;
            });
        }
        let started = parse_time(&c.state.started_at).unwrap_or_else(SystemTime::now);
        let engine = self.clone();
        let run = c.state.started_at.clone();
        let cid = id.to_string();
        let task =
            tokio::spawn(async move { engine.health_monitor(cid, run, probe, started).await });
        if let Some(old) = self
            .health
            .lock()
            .insert(id.to_string(), task.abort_handle())
        {
            old.abort();
        }
    }

    /// The stop hook: the monitor of the container ends; its status becomes
    /// `unhealthy` (Docker's "unhealthy when the monitor has stopped").
    pub(super) fn health_stop(&self, id: &str) {
        let Some(handle) = self.health.lock().remove(id) else {
            return;
        };
        handle.abort();
        let _ = self.update(id, |c| {
            if let Some(h) = &mut c.state.health {
                h.status = UNHEALTHY.into();
            }
        });
    }

    /// The monitor of one run (`run` is its `StartedAt`): probes until the container
    /// is no longer running that run.
    async fn health_monitor(
        self: Arc<Self>,
        id: String,
        run: String,
        probe: Probe,
        started: SystemTime,
    ) {
        loop {
            let Ok(c) = self.get(&id) else {
                return;
            };
            if !c.state.running || c.state.started_at != run {
                return;
            }
            let starting = c
                .state
                .health
                .as_ref()
                .is_some_and(|h| h.status == STARTING);
            let in_start_period = started.elapsed().unwrap_or(Duration::ZERO) < probe.start_period;
            let interval = if in_start_period && starting {
                probe.start_interval
            } else {
                probe.interval
            };
            tokio::time::sleep(interval).await;
            let Ok(c) = self.get(&id) else {
                return;
            };
            if !c.state.running || c.state.started_at != run {
                return;
            }
            if c.state.paused || c.state.restarting {
                continue;
            }
            let start = SystemTime::now();
            let (exit_code, output) = self.health_probe(&c, &probe).await;
            let result = HealthResult {
                start: rfc3339(start),
                end: rfc3339(SystemTime::now()),
                exit_code,
                output,
            };
            let since_start = start.duration_since(started).unwrap_or(Duration::ZERO);
            let mut changed_to = None;
            let _ = self.update(&id, |c| {
                // The run may have ended while the probe ran: its result is dropped.
                if !c.state.running || c.state.started_at != run {
                    return;
                }
                let h = c.state.health.get_or_insert_with(|| Health {
                    status: STARTING.into(),
                    ..Health::default()
                });
                let before = h.status.clone();
                apply_result(h, result, &probe, since_start);
                if h.status != before {
                    changed_to = Some(h.status.clone());
                }
            });
            if let Some(status) = changed_to {
                self.container_event(&id, &format!("health_status: {status}"), &[]);
            }
        }
    }

    /// Runs the probe once in the container: (exit code, output). -1 when it could
    /// not run or exceeded the timeout (then it is killed).
    async fn health_probe(&self, c: &Container, probe: &Probe) -> (i64, String) {
        let Some((entrypoint, arguments)) = probe.argv.split_first() else {
            return (-1, String::new());
        };
        let cfg = ExecConfig {
            container_id: c.id.clone(),
            entrypoint: entrypoint.clone(),
            arguments: arguments.to_vec(),
            user: c.config["User"].as_str().unwrap_or_default().to_string(),
            working_dir: c.config["WorkingDir"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            attach_stdout: true,
            attach_stderr: true,
            ..ExecConfig::default()
        };
        let probe_id = random_id();
        let files = ExecFiles::new(
            &self.exec_dir(&c.id),
            &format!("health-{}", &probe_id[..12]),
        );
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(32);
        let collector = tokio::spawn(async move {
            let mut out = Limited::default();
            // Non-terminal exec output: one multiplexed frame per message.
            while let Some(frame) = rx.recv().await {
                out.write(frame.get(8..).unwrap_or_default());
            }
            out
        });
        let mut timed_out = false;
        let outcome = {
            let run = self.exec_spawn(&probe_id, &cfg, &files, Some(tokio::io::empty()), &tx);
            tokio::pin!(run);
            tokio::select! {
                r = &mut run => Some(r),
                () = tokio::time::sleep(probe.timeout) => {
                    timed_out = true;
                    kill_probe(&files);
                    // Wait for it to end, so that dying probes do not pile up.
                    tokio::time::timeout(Duration::from_secs(10), &mut run).await.ok()
                }
            }
        };
        drop(tx);
        let output = match tokio::time::timeout(Duration::from_secs(5), collector).await {
            Ok(Ok(out)) => out.text(),
            _ => String::new(),
        };
        files.remove();
        if timed_out {
            let d = go_duration(probe.timeout);
            let message = if output.is_empty() {
                format!("Health check exceeded timeout ({d})")
            } else {
                format!("Health check exceeded timeout ({d}): {output}")
            };
            return (-1, message);
        }
        match outcome {
            Some(Ok(code)) => (i64::from(code), output),
            Some(Err(message)) => (-1, docker_exec_error(&message)),
            None => (-1, "health check did not end".into()),
        }
    }
}

/// SIGKILL to the probe's process (its pid file, written by the runtime).
fn kill_probe(files: &ExecFiles) {
    let pid = std::fs::read_to_string(&files.pid)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_and_defaults() {
        assert_eq!(probe(&json!({})), None);
        assert_eq!(probe(&json!({"Healthcheck": {"Test": ["NONE"]}})), None);
        let p = probe(&json!({"Healthcheck": {"Test": ["CMD-SHELL", "true"]}})).unwrap();
        assert_eq!(p.argv, vec!["/bin/sh", "-c", "true"]);
        assert_eq!(p.interval, Duration::from_secs(30));
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.start_interval, Duration::from_secs(5));
        assert_eq!(p.retries, 3);
        let p = probe(&json!({
            "Healthcheck": {"Test": ["CMD", "ls", "/"], "Interval": 200_000_000, "Retries": 2}
        }))
        .unwrap();
        assert_eq!(p.argv, vec!["ls", "/"]);
        assert_eq!(p.interval, Duration::from_millis(200));
        assert_eq!(p.retries, 2);
    }

    #[test]
    fn merge() {
        let image = pier_image::image::HealthConfig {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: Some(5_000_000_000),
            retries: Some(7),
            ..Default::default()
        };
        let mut c = json!({});
        merge_image_healthcheck(&mut c, Some(&image));
        assert_eq!(c["Healthcheck"]["Test"], json!(["CMD", "true"]));
        let mut c = json!({"Healthcheck": {"Retries": 2}});
        merge_image_healthcheck(&mut c, Some(&image));
        assert_eq!(c["Healthcheck"]["Test"], json!(["CMD", "true"]));
        assert_eq!(c["Healthcheck"]["Retries"], 2);
        assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
        let mut c = json!({"Healthcheck": {"Test": ["NONE"]}});
        merge_image_healthcheck(&mut c, Some(&image));
        assert_eq!(c["Healthcheck"]["Test"], json!(["NONE"]));
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn results() {
        let p = Probe {
            argv: vec!["x".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(10),
            start_interval: Duration::from_secs(1),
            retries: 2,
        };
        let fail = HealthResult {
            exit_code: 1,
            ..Default::default()
        };
        let mut h = Health {
            status: STARTING.into(),
            ..Default::default()
        };
        // In the start period, failures do not count while starting.
        apply_result(&mut h, fail.clone(), &p, Duration::from_secs(1));
        apply_result(&mut h, fail.clone(), &p, Duration::from_secs(2));
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        apply_result(&mut h, HealthResult::default(), &p, Duration::from_secs(3));
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 0));
        // Once healthy, they do.
        apply_result(&mut h, fail.clone(), &p, Duration::from_secs(4));
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 1));
        apply_result(&mut h, fail.clone(), &p, Duration::from_secs(5));
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 2));
        for _ in 0..5 {
            apply_result(&mut h, fail.clone(), &p, Duration::from_secs(20));
        }
        assert_eq!(h.log.len(), MAX_LOG);
        assert_eq!(h.failing_streak, 7);
    }

    #[test]
    fn limited_output() {
        let mut l = Limited::default();
        l.write(&[b'a'; 4000]);
        l.write(&[b'b'; 200]);
        let t = l.text();
        assert_eq!(t.len(), MAX_OUTPUT + 3);
        assert!(t.ends_with("b..."));
    }
}
