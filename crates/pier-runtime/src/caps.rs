//! Linux capabilities: names, and applying the five sets of an OCI process.

use crate::error::{Error, Result};
use crate::spec::Capabilities;

/// Capability names in kernel order (the index is the capability number).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (moby `oci/caps/defaults.go`), which Pier's
/// containers get too unless told otherwise.
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The capability number for a name such as `CAP_NET_ADMIN` (case-insensitive, the
/// `CAP_` prefix optional).
pub fn from_name(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// The highest capability the running kernel knows.
pub fn last_cap() -> u32 {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(NAMES.len() as u32 - 1)
    })
}

/// A capability set as a bit mask. Names the kernel does not know are ignored, as runc
/// does (the runtime warns about them once: [`warn_unknown`]).
pub fn mask(names: Option<&Vec<String>>) -> u64 {
    let last = last_cap();
    names
        .into_iter()
        .flatten()
        .filter_map(|n| from_name(n))
        .filter(|c| *c <= last)
        .fold(0u64, |m, c| m | (1u64 << c))
}

/// The names in `caps` that this kernel cannot apply (unknown, or beyond
/// `cap_last_cap`), sorted and once each: runc 1.1 skips them with a warning.
pub fn unknown(caps: &Capabilities) -> Vec<String> {
    let last = last_cap();
    let mut names: Vec<String> = [
        &caps.bounding,
        &caps.effective,
        &caps.inheritable,
        &caps.permitted,
        &caps.ambient,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .filter(|n| from_name(n).is_none_or(|c| c > last))
    .cloned()
    .collect();
    names.sort();
    names.dedup();
    names
}

/// Logs, in runc's words, the capabilities of `caps` that are skipped.
pub fn warn_unknown(caps: Option<&Capabilities>) {
    let names = caps.map(unknown).unwrap_or_default();
    if !names.is_empty() {
        crate::log::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            names.join(" ")
        ));
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data are valid, properly sized v3 capset structures (two data
    // elements for 64 capability bits) that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(Error::io("capset", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: the prctl options used here take integer arguments only.
    let rc = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Drops every capability outside `bounding` from the bounding set. Needs CAP_SETPCAP,
/// so it runs before the user switch.
pub fn drop_bounding(caps: &Capabilities) -> Result<()> {
    let keep = mask(caps.bounding.as_ref());
    for cap in 0..=last_cap() {
        if keep & (1 << cap) == 0 {
            prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0).map_err(|e| {
                Error::io(format!("drop {} from bounding set", NAMES[cap as usize]), e)
            })?;
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable sets, then the ambient set.
pub fn apply(caps: &Capabilities) -> Result<()> {
    let permitted = mask(caps.permitted.as_ref());
    let effective = mask(caps.effective.as_ref());
    let inheritable = mask(caps.inheritable.as_ref());
    capset(effective, permitted, inheritable)?;
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .map_err(|e| Error::io("clear ambient capabilities", e))?;
    let ambient = mask(caps.ambient.as_ref());
    for cap in 0..=last_cap() {
        if ambient & (1 << cap) != 0 {
            // Raising an ambient capability needs it in permitted and inheritable;
            // runc ignores the failure, and so do we.
            let _ = prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
            );
        }
    }
    Ok(())
}

/// Keeps permitted capabilities across the setuid to a non-root user.
pub fn keep_across_setuid(keep: bool) -> Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, keep as libc::c_ulong, 0)
        .map_err(|e| Error::io("prctl(PR_SET_KEEPCAPS)", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(from_name("CAP_CHOWN"), Some(0));
        assert_eq!(from_name("net_admin"), Some(12));
        assert_eq!(from_name("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(from_name("CAP_NOPE"), None);
    }

    #[test]
    fn unknown_names_are_listed_once_sorted() {
        let caps = Capabilities {
            bounding: Some(vec!["CAP_ZZZ".into(), "CAP_CHOWN".into(), "CAP_AAA".into()]),
            effective: Some(vec!["CAP_ZZZ".into(), "kill".into()]),
            ..Default::default()
        };
        assert_eq!(unknown(&caps), ["CAP_AAA", "CAP_ZZZ"]);
        assert!(unknown(&Capabilities::default()).is_empty());
    }

    #[test]
    fn mask_sets_bits() {
        let names = vec!["CAP_KILL".to_string(), "CAP_CHOWN".to_string()];
        assert_eq!(mask(Some(&names)), (1 << 5) | 1);
        assert_eq!(mask(None), 0);
    }
}
