//! runc 1.1's `types.Stats` (the `data` of `runc events --stats`), with the same JSON
//! keys and the same `omitempty` behaviour: zero numbers and empty lists/maps marked
//! omitempty in Go are left out, struct-valued fields are always present.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::fsutil::{self, parse_key_values};
use crate::error::Result;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    /// Filled by the caller (network lives outside cgroups); nil → null as in runc.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct IntelRdt {}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct CpuUsage {
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 = no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Serialize, Clone, PartialEq, Eq)]
pub(crate) struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

impl Stats {
    pub(crate) fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| fsutil::err(format!("encode stats: {e}")))
    }
}

/// A v1 blkio file: "8:0 Read 4096" lines (op-less for sectors/time), "Total N" skipped.
pub(crate) fn parse_blkio_entries(content: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for line in content.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (dev, op, value) = match fields[..] {
            [dev, op, value] => (dev, op, value),
            [dev, value] => (dev, "", value),
            _ => continue,
        };
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor), Ok(value)) = (major.parse(), minor.parse(), value.parse())
        else {
            continue;
        };
        out.push(BlkioEntry {
            major,
            minor,
            op: op.to_string(),
            value,
        });
    }
    out
}

/// v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...") in v1's layout.
pub(crate) fn parse_io_stat(content: &str) -> Blkio {
    let mut blkio = Blkio::default();
    for line in content.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for item in fields {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse() else {
                continue;
            };
            let (op, table) = match key {
                "rbytes" => ("Read", &mut blkio.io_service_bytes_recursive),
                "wbytes" => ("Write", &mut blkio.io_service_bytes_recursive),
                "rios" => ("Read", &mut blkio.io_serviced_recursive),
                "wios" => ("Write", &mut blkio.io_serviced_recursive),
                // runc skips what has no v1 equivalent.
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    blkio
}

/// v2 memory.stat/cpu.stat-like flat keyed file, empty when absent.
pub(crate) fn read_flat(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>> {
    Ok(fsutil::read_opt(dir, file)?
        .map(|s| parse_key_values(&s))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_and_omitempty() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.cpu.throttling.throttled_periods = 2;
        s.memory.usage.limit = 10;
        s.hugetlb.insert("2MB".into(), Hugetlb::default());
        let v = s.to_json().unwrap();
        assert_eq!(
            v["cpu"]["usage"],
            serde_json::json!({"total": 5, "kernel": 0, "user": 0})
        );
        assert_eq!(
            v["cpu"]["throttling"],
            serde_json::json!({"throttledPeriods": 2})
        );
        assert_eq!(
            v["memory"]["usage"],
            serde_json::json!({"limit": 10, "failcnt": 0})
        );
        assert_eq!(
            v["memory"]["kernelTCP"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert!(v["memory"].get("raw").is_none());
        assert_eq!(v["pids"], serde_json::json!({}));
        assert_eq!(v["blkio"], serde_json::json!({}));
        assert_eq!(v["hugetlb"]["2MB"], serde_json::json!({"failcnt": 0}));
        assert_eq!(v["intel_rdt"], serde_json::json!({}));
        assert!(v["network_interfaces"].is_null());
        assert_eq!(v["cpuset"]["sched_relax_domain_level"], 0);
    }

    #[test]
    fn blkio_files() {
        let e = parse_blkio_entries("8:0 Read 4096\n8:0 Write 0\n8:16 12\nTotal 4096\n");
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
        assert_eq!(e[2].op, "");
        let b = parse_io_stat("254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(b.io_service_bytes_recursive.len(), 2);
        assert_eq!(b.io_serviced_recursive[1].op, "Write");
        assert_eq!(b.io_serviced_recursive[1].value, 2);
    }
}
