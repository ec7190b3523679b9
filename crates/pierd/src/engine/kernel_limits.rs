//! Resource options the kernel may lack, answered as dockerd answers them: the OOM
//! killer switch, memory swappiness and real-time CPU time are honoured where the
//! cgroup has their file (cgroup v1) and discarded with dockerd's warning where it
//! does not (cgroup v2 has none of them); a kernel memory limit is ignored, as
//! Docker 28 ignores it (its API, 1.42 on, drops the field).

use std::path::Path;

use serde_json::{json, Value};

use super::EngineError;

/// Whether the cgroup v1 `controller` hierarchy has `file` (dockerd's sysinfo probe).
fn v1_has(controller: &str, file: &str) -> bool {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(file)
        .exists()
}

/// Checks and discards at create, as dockerd's `verifyPlatformContainerResources`;
/// the warnings, for the create's answer. What is discarded is written back to the
/// stored record (`null` where dockerd stores nil).
pub(super) fn check_create(hc: &mut Value) -> Result<Vec<String>, EngineError> {
    let sent = super::typed::resources(hc)?;
    let mut warnings = Vec::new();
    hc["KernelMemory"] = json!(0);
    if sent.memory_swappiness.is_some_and(|s| s != -1) && !v1_has("memory", "memory.swappiness") {
        warnings.push(
            "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded."
                .to_string(),
        );
        hc["MemorySwappiness"] = Value::Null;
    }
    if sent.oom_kill_disable.is_some() && !v1_has("memory", "memory.oom_control") {
        if sent.oom_kill_disable == Some(true) {
            warnings.push(
                "Your kernel does not support OomKillDisable. OomKillDisable discarded."
                    .to_string(),
            );
        }
        hc["OomKillDisable"] = Value::Null;
    }
    let realtime = v1_has("cpu", "cpu.rt_period_us");
    let (mut period, mut runtime) = (
        sent.cpu_realtime_period.unwrap_or(0),
        sent.cpu_realtime_runtime.unwrap_or(0),
    );
    for (value, field, what) in [
        (&mut period, "CpuRealtimePeriod", "period. Period"),
        (&mut runtime, "CpuRealtimeRuntime", "runtime. Runtime"),
    ] {
        if *value > 0 && !realtime {
            warnings.push(format!(
                "Your kernel does not support cgroup cpu real-time {what} discarded."
            ));
            hc[field] = json!(0);
            *value = 0;
        }
    }
    if period != 0 && runtime != 0 && runtime > period {
        return Err(EngineError::InvalidParameter(
            "cpu real-time runtime cannot be higher than cpu real-time period".into(),
        ));
    }
    Ok(warnings)
}

/// Adds swappiness and real-time CPU time to `spec` (the OOM switch is the spec's).
pub(super) fn apply(hc: &Value, spec: &mut Value) -> Result<(), EngineError> {
    let sent = super::typed::resources(hc)?;
    let resources = &mut spec["linux"]["resources"];
    if let Some(s) = sent.memory_swappiness.filter(|s| (0..=100).contains(s)) {
        resources["memory"]["swappiness"] = json!(s);
    }
    if let Some(p) = sent.cpu_realtime_period.filter(|p| *p > 0) {
        resources["cpu"]["realtimePeriod"] = json!(p);
    }
    if let Some(r) = sent.cpu_realtime_runtime.filter(|r| *r != 0) {
        resources["cpu"]["realtimeRuntime"] = json!(r);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_memory_is_dropped_and_runtime_above_period_refused() {
        let mut hc = json!({"KernelMemory": 4 << 20});
        check_create(&mut hc).unwrap();
        assert_eq!(hc["KernelMemory"], 0);
        if v1_has("cpu", "cpu.rt_period_us") {
            let mut hc = json!({"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 2000});
            let e = check_create(&mut hc).unwrap_err();
            assert_eq!(
                e.to_string(),
                "cpu real-time runtime cannot be higher than cpu real-time period"
            );
        }
    }

    #[test]
    fn swappiness_and_realtime_reach_the_spec() {
        let mut spec = json!({"linux": {"resources": {}}});
        apply(
            &json!({"MemorySwappiness": 10, "CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 500}),
            &mut spec,
        )
        .unwrap();
        let r = &spec["linux"]["resources"];
        assert_eq!(r["memory"]["swappiness"], 10);
        assert_eq!(r["cpu"]["realtimePeriod"], 1000);
        assert_eq!(r["cpu"]["realtimeRuntime"], 500);
        let mut spec = json!({"linux": {"resources": {}}});
        apply(&json!({"MemorySwappiness": -1}), &mut spec).unwrap();
        assert!(spec["linux"]["resources"]["memory"].is_null());
    }
}
