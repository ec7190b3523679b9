//! Range checks of a create's `HostConfig` and an update's body, with dockerd's
//! messages (its `verifyPlatformContainerResources` and `verifyContainerSettings`):
//! a value no kernel would take is the client's error (400) at create or update, not
//! a failure at start, and nothing invalid is stored. Runs after the type checks of
//! [`super::body_types`], so every field read here has its JSON type.

use serde::Deserialize;
use serde_json::Value;

use super::ApiError;

/// Docker's smallest memory limit (moby `linuxMinMemory`).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The kernel's range of CPU shares (moby `linuxMinCPUShares`/`linuxMaxCPUShares`).
const MIN_CPU_SHARES: i64 = 2;
const MAX_CPU_SHARES: i64 = 262_144;

/// The fields checked, as the API names them (absent or null: not set).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Limits {
    memory: Option<i64>,
    memory_swap: Option<i64>,
    memory_swappiness: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_period: Option<i64>,
    cpu_quota: Option<i64>,
    cpu_shares: Option<i64>,
    shm_size: Option<i64>,
    oom_score_adj: Option<i64>,
}

/// Checks an update's body (the resource fields at its top level).
pub fn check(resources: &Value) -> Result<(), ApiError> {
    if !resources.is_object() {
        return Ok(());
    }
    let limits = Limits::deserialize(resources)
        .map_err(|e| ApiError::bad_request(format!("invalid resources: {e}")))?;
    verify(&limits, host_cpus()).map_err(ApiError::bad_request)
}

/// Checks a create's `HostConfig`. A negative `PidsLimit` means "unlimited" to
/// dockerd, which stores it as unset: so is it here.
pub fn check_create(host_config: &mut Value) -> Result<(), ApiError> {
    check(host_config)?;
    if host_config["PidsLimit"].as_i64().is_some_and(|p| p < 0) {
        host_config["PidsLimit"] = Value::Null;
    }
    Ok(())
}

/// CPUs this process may run on (Go's `runtime.NumCPU`, which dockerd's message uses).
fn host_cpus() -> i64 {
    rustix::thread::sched_getaffinity(None)
        .map(|set| i64::from(set.count()))
        .unwrap_or(1)
        .max(1)
}

fn verify(l: &Limits, cpus: i64) -> Result<(), String> {
    let memory = l.memory.unwrap_or(0);
    if memory != 0 && memory < MIN_MEMORY {
        return Err("Minimum memory limit allowed is 6MB".into());
    }
    let swap = l.memory_swap.unwrap_or(0);
    if memory > 0 && swap > 0 && swap < memory {
        return Err(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if let Some(s) = l.memory_swappiness.filter(|s| *s != -1) {
        if !(0..=100).contains(&s) {
            return Err(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            ));
        }
    }
    let nano_cpus = l.nano_cpus.unwrap_or(0);
    if nano_cpus > 0 && l.cpu_period.unwrap_or(0) > 0 {
        return Err("Conflicting options: Nano CPUs and CPU Period cannot both be set".into());
    }
    if nano_cpus > 0 && l.cpu_quota.unwrap_or(0) > 0 {
        return Err("Conflicting options: Nano CPUs and CPU Quota cannot both be set".into());
    }
    if nano_cpus < 0 || nano_cpus > cpus.saturating_mul(1_000_000_000) {
        return Err(format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        ));
    }
    if let Some(p) = l.cpu_period.filter(|p| *p != 0) {
        if !(1000..=1_000_000).contains(&p) {
            return Err("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)".into());
        }
    }
    if l.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
        return Err("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
    }
    // dockerd stores these and the runtime refuses them at start; refused here at once,
    // in the runtime's words.
    match l.cpu_shares.unwrap_or(0) {
        0 => {}
        s if s < MIN_CPU_SHARES => {
            return Err(format!(
                "the minimum allowed cpu-shares is {MIN_CPU_SHARES}"
            ))
        }
        s if s > MAX_CPU_SHARES => {
            return Err(format!(
                "the maximum allowed cpu-shares is {MAX_CPU_SHARES}"
            ))
        }
        _ => {}
    }
    if l.shm_size.is_some_and(|s| s < 0) {
        return Err("SHM size can not be less than 0".into());
    }
    if let Some(adj) = l.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
        return Err(format!(
            "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(body: Value) -> Option<String> {
        let limits = Limits::deserialize(&body).expect("typed");
        verify(&limits, 2).err()
    }

    #[test]
    fn dockerds_ranges_and_messages() {
        let cases = [
            (json!({"Memory": -1}), "Minimum memory limit allowed is 6MB"),
            (
                json!({"Memory": 1000}),
                "Minimum memory limit allowed is 6MB",
            ),
            (
                json!({"NanoCpus": -1}),
                "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
            ),
            (
                json!({"NanoCpus": 3_000_000_000_i64}),
                "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
            ),
            (json!({"ShmSize": -1}), "SHM size can not be less than 0"),
            (
                json!({"MemorySwappiness": 200}),
                "Invalid value: 200, valid memory swappiness range is 0-100",
            ),
            (
                json!({"OomScoreAdj": 5000}),
                "Invalid value 5000, range for oom score adj is [-1000, 1000]",
            ),
            (
                json!({"CpuShares": 1_i64 << 62}),
                "the maximum allowed cpu-shares is 262144",
            ),
            (
                json!({"CpuShares": -5}),
                "the minimum allowed cpu-shares is 2",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(refusal(body.clone()).as_deref(), Some(message), "{body}");
        }
        for fine in [
            json!({"Memory": 6 * 1024 * 1024, "MemorySwappiness": -1}),
            json!({"NanoCpus": 2_000_000_000_i64, "OomScoreAdj": -1000, "CpuShares": 512}),
            json!({"Memory": null, "PidsLimit": -5}),
        ] {
            assert_eq!(refusal(fine.clone()), None, "{fine}");
        }
        let mut negative_pids = json!({"PidsLimit": -5});
        check_create(&mut negative_pids).unwrap();
        assert_eq!(negative_pids, json!({"PidsLimit": null}));
    }
}
