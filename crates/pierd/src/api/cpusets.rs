//! `CpusetCpus` and `CpusetMems` of a create or update, checked against the host's
//! before the runtime sees them, with dockerd's messages (a CPU the host lacks is the
//! client's error, 400, not a runtime failure).

use std::collections::BTreeSet;

use pier_api::container::Resources;

use super::ApiError;

/// Checks the `CpusetCpus` and `CpusetMems` of a `HostConfig` or update body.
pub fn check(resources: &Resources) -> Result<(), ApiError> {
    for (requested, what, missing, available) in [
        (
            &resources.cpuset_cpus,
            "cpus",
            "CPUs",
            available(
                &[
                    "/sys/fs/cgroup/cpuset.cpus.effective",
                    "/sys/fs/cgroup/cpuset/cpuset.effective_cpus",
                    "/sys/fs/cgroup/cpuset/cpuset.cpus",
                    "/sys/devices/system/cpu/online",
                ],
                "0",
            ),
        ),
        (
            &resources.cpuset_mems,
            "mems",
            "memory nodes",
            available(
                &[
                    "/sys/fs/cgroup/cpuset.mems.effective",
                    "/sys/fs/cgroup/cpuset/cpuset.effective_mems",
                    "/sys/fs/cgroup/cpuset/cpuset.mems",
                    "/sys/devices/system/node/online",
                ],
                "0",
            ),
        ),
    ] {
        let Some(requested) = requested.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let Some(wanted) = parse(requested) else {
            return Err(ApiError::bad_request(format!(
                "Invalid value {requested} for cpuset {what}"
            )));
        };
        let have = parse(&available).unwrap_or_default();
        if !wanted.is_subset(&have) {
            return Err(ApiError::bad_request(format!(
                "Requested {missing} are not available - requested {requested}, available: {available}"
            )));
        }
    }
    Ok(())
}

/// The first of `files` that reads, trimmed; else `fallback`.
fn available(files: &[&str], fallback: &str) -> String {
    files
        .iter()
        .find_map(|f| {
            std::fs::read_to_string(f)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| fallback.to_string())
}

/// A cpuset list (`0-3,5`); None when it is not one. Ranges are bounded so that a
/// huge one cannot make a huge set.
fn parse(list: &str) -> Option<BTreeSet<u32>> {
    const MAX: u32 = 1 << 16;
    let mut set = BTreeSet::new();
    for part in list.split(',') {
        let (low, high) = match part.split_once('-') {
            Some((l, h)) => (l.parse::<u32>().ok()?, h.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if low > high || high >= MAX {
            return None;
        }
        set.extend(low..=high);
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resources(v: serde_json::Value) -> Resources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn lists() {
        assert_eq!(parse("0-2,5"), Some(BTreeSet::from([0, 1, 2, 5])));
        assert_eq!(parse("3"), Some(BTreeSet::from([3])));
        for bad in ["", "a", "2-1", "1,", "-1", "0-99999999"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_beyond_the_host_are_refused() {
        assert!(check(&resources(json!({"CpusetCpus": "0"}))).is_ok());
        assert!(check(&resources(json!({"CpusetCpus": ""}))).is_ok());
        let e = check(&resources(json!({"CpusetCpus": "0-65535"}))).unwrap_err();
        assert!(
            e.message
                .starts_with("Requested CPUs are not available - requested 0-65535"),
            "{e}"
        );
        let e = check(&resources(json!({"CpusetMems": "x"}))).unwrap_err();
        assert_eq!(e.message, "Invalid value x for cpuset mems");
    }
}
