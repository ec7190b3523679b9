//! Device access rules: runc's default allow-list, v1 `devices.allow`/`devices.deny`
//! writes, and the v2 eBPF filter (`BPF_PROG_TYPE_CGROUP_DEVICE`).
//!
//! Semantics, identical for v1 and v2 (runc 1.1's device emulator starts every rule list
//! from deny-all, and so do we):
//! * a rule of type "a" resets everything: deny-all or allow-all, whatever its
//!   major/minor/access say (this is what the v1 kernel does with "a");
//! * otherwise the last matching rule wins; an allow rule matches a request whose
//!   access it fully covers, a deny rule one that has any access it names (this is how
//!   the v1 kernel checks its exceptions);
//! * without a matching rule, the default of the last "a" rule applies (deny if none).
//!
//! v1 writes the rules in order after the reset; on v2 they become one BPF program.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::fsutil::{err, os_text};
use crate::error::{Error, Result};
use crate::spec;

/// Access bits, as `BPF_DEVCG_ACC_*`.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// `BPF_DEVCG_DEV_*`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// A device every container may use (runc 1.1's `specconv.AllowedDevices`, same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultDevice {
    /// Device node to create, if any (the mknod-anything and pts rules have none).
    pub path: Option<&'static str>,
    /// 'c' or 'b'.
    pub kind: char,
    /// -1 = any.
    pub major: i64,
    /// -1 = any.
    pub minor: i64,
    pub access: &'static str,
    /// Permission bits of the node.
    pub file_mode: u32,
}

impl DefaultDevice {
    /// The cgroup rule (always an allow rule).
    pub fn rule(&self) -> spec::DeviceRule {
        spec::DeviceRule {
            allow: true,
            kind: Some(self.kind.to_string()),
            major: (self.major >= 0).then_some(self.major),
            minor: (self.minor >= 0).then_some(self.minor),
            access: Some(self.access.to_string()),
        }
    }

    /// The device node (root-owned, as runc creates it), if this rule has one.
    pub fn device(&self) -> Option<spec::Device> {
        Some(spec::Device {
            kind: self.kind.to_string(),
            path: PathBuf::from(self.path?),
            major: self.major,
            minor: self.minor,
            file_mode: Some(self.file_mode),
            uid: Some(0),
            gid: Some(0),
        })
    }
}

const fn node(path: &'static str, major: i64, minor: i64) -> DefaultDevice {
    DefaultDevice {
        path: Some(path),
        kind: 'c',
        major,
        minor,
        access: "rwm",
        file_mode: 0o666,
    }
}

const fn rule_only(kind: char, major: i64, minor: i64, access: &'static str) -> DefaultDevice {
    DefaultDevice {
        path: None,
        kind,
        major,
        minor,
        access,
        file_mode: 0,
    }
}

/// runc 1.1's list, in its order (v1.1.x still has the tun/tap rule; runc 1.2.0 dropped
/// it and 1.2.1 brought it back).
pub const DEFAULT_ALLOWED_DEVICES: [DefaultDevice; 11] = [
    // mknod of any device; using it still needs an rw rule.
    rule_only('c', -1, -1, "m"),
    rule_only('b', -1, -1, "m"),
    node("/dev/null", 1, 3),
    node("/dev/random", 1, 8),
    node("/dev/full", 1, 7),
    node("/dev/tty", 5, 0),
    node("/dev/zero", 1, 5),
    node("/dev/urandom", 1, 9),
    // /dev/pts/*
    rule_only('c', 136, -1, "rwm"),
    // /dev/ptmx
    rule_only('c', 5, 2, "rwm"),
    // /dev/net/tun
    rule_only('c', 10, 200, "rwm"),
];

/// The devices every container may use, see [`DEFAULT_ALLOWED_DEVICES`].
pub fn default_allowed_devices() -> &'static [DefaultDevice] {
    &DEFAULT_ALLOWED_DEVICES
}

/// Device nodes to create in every container (the defaults that have a path), minus
/// those the spec's `linux.devices` defines itself (runc's `createDevices`).
pub fn default_device_nodes(linux_devices: &[spec::Device]) -> Vec<spec::Device> {
    deduped(linux_devices).filter_map(|d| d.device()).collect()
}

/// The rules appended after `linux.resources.devices`: the defaults, minus those with a
/// path that `linux.devices` redefines (the spec's device takes priority, as in runc).
pub fn default_device_rules(linux_devices: &[spec::Device]) -> Vec<spec::DeviceRule> {
    deduped(linux_devices).map(|d| d.rule()).collect()
}

fn deduped(linux_devices: &[spec::Device]) -> impl Iterator<Item = &'static DefaultDevice> + '_ {
    DEFAULT_ALLOWED_DEVICES
        .iter()
        .filter(move |d| match d.path {
            Some(p) => !linux_devices.iter().any(|s| s.path == Path::new(p)),
            None => true,
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum DevType {
    All,
    Char,
    Block,
}

/// A validated device rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub allow: bool,
    pub kind: DevType,
    /// None = any.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    /// `what` names the rule in errors ("linux.resources.devices[2]").
    pub(crate) fn from_spec(r: &spec::DeviceRule, what: &str) -> Result<Rule> {
        let invalid = |msg: String| Err(Error::InvalidConfig(format!("{what}: {msg}")));
        let kind = match r.kind.as_deref() {
            None | Some("a") | Some("") => DevType::All,
            Some("c") => DevType::Char,
            Some("b") => DevType::Block,
            Some(t) => return invalid(format!("invalid device type {t:?}")),
        };
        let number = |v: Option<i64>, field: &str| -> Result<Option<u32>> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                    Error::InvalidConfig(format!("{what}.{field}: invalid value {n}"))
                }),
            }
        };
        let major = number(r.major, "major")?;
        let minor = number(r.minor, "minor")?;
        let access_str = r.access.as_deref().unwrap_or("");
        if access_str.is_empty() {
            // runc: "device access at %d field cannot be empty".
            return invalid("access must not be empty".into());
        }
        let mut access = 0;
        for c in access_str.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                // runc passes other letters through without complaint ("rwa" appears
                // in real configs); they grant nothing.
                _ => 0,
            };
        }
        Ok(Rule {
            allow: r.allow,
            kind,
            major,
            minor,
            access,
        })
    }

    /// The v1 text: "c 1:3 rwm", "b 8:* r", and plain "a" for a reset.
    pub(crate) fn v1_string(&self) -> String {
        let t = match self.kind {
            DevType::All => return "a".to_string(),
            DevType::Char => 'c',
            DevType::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        format!(
            "{t} {}:{} {}",
            num(self.major),
            num(self.minor),
            access_string(self.access)
        )
    }
}

fn access_string(access: u8) -> String {
    let mut s = String::new();
    if access & ACC_READ != 0 {
        s.push('r');
    }
    if access & ACC_WRITE != 0 {
        s.push('w');
    }
    if access & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// The spec's rules followed by the defaults, validated.
pub(crate) fn effective_rules(
    resource_rules: &[spec::DeviceRule],
    linux_devices: &[spec::Device],
) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for (i, r) in resource_rules.iter().enumerate() {
        rules.push(Rule::from_spec(
            r,
            &format!("linux.resources.devices[{i}]"),
        )?);
    }
    for r in default_device_rules(linux_devices) {
        rules.push(Rule::from_spec(&r, "default device rule")?);
    }
    Ok(rules)
}

/// The rules that matter after the last reset, and the default that reset set.
pub(crate) fn after_reset(rules: &[Rule]) -> (bool, &[Rule]) {
    match rules.iter().rposition(|r| r.kind == DevType::All) {
        Some(i) => (rules[i].allow, &rules[i + 1..]),
        None => (false, rules),
    }
}

/// What to write for v1, in order: (true = devices.allow / false = devices.deny, text).
/// Always starts with a reset, so the result does not depend on the current state.
pub(crate) fn v1_writes(rules: &[Rule]) -> Vec<(bool, String)> {
    let (default_allow, rest) = after_reset(rules);
    let mut out = vec![(default_allow, "a".to_string())];
    out.extend(rest.iter().map(|r| (r.allow, r.v1_string())));
    out
}

/// The state of a v1 devices cgroup: default, and its exceptions (kernel semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1State {
    pub default_allow: bool,
    /// (type, major, minor) → access, sorted.
    pub exceptions: Vec<(DevType, Option<u32>, Option<u32>, u8)>,
}

impl V1State {
    /// What the kernel ends up with after `writes` (devcgroup_update_access).
    pub(crate) fn after(writes: &[Rule]) -> V1State {
        let mut state = V1State {
            default_allow: false,
            exceptions: Vec::new(),
        };
        for r in writes {
            if r.kind == DevType::All {
                state.default_allow = r.allow;
                state.exceptions.clear();
                continue;
            }
            let key = (r.kind, r.major, r.minor);
            let pos = state.exceptions.iter().position(|e| (e.0, e.1, e.2) == key);
            // An exception is added by rules against the default, removed by the others.
            if r.allow != state.default_allow {
                match pos {
                    Some(p) => state.exceptions[p].3 |= r.access,
                    None => state.exceptions.push((r.kind, r.major, r.minor, r.access)),
                }
            } else if let Some(p) = pos {
                state.exceptions[p].3 &= !r.access;
                if state.exceptions[p].3 == 0 {
                    state.exceptions.remove(p);
                }
            }
        }
        state.exceptions.sort();
        state
    }

    /// Parses `devices.list`. In allow-all mode the kernel shows only "a *:* rwm" and
    /// hides its exceptions, so such a state is never known to match.
    pub(crate) fn parse(list: &str) -> Option<V1State> {
        let mut exceptions = Vec::new();
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let mut it = line.split_whitespace();
            let t = it.next()?;
            let (major, minor) = it.next()?.split_once(':')?;
            let access = it.next()?;
            let num = |s: &str| {
                if s == "*" {
                    Some(None)
                } else {
                    s.parse().ok().map(Some)
                }
            };
            let kind = match t {
                "a" => return None,
                "c" => DevType::Char,
                "b" => DevType::Block,
                _ => return None,
            };
            let rule = Rule::from_spec(
                &spec::DeviceRule {
                    allow: true,
                    kind: Some(t.to_string()),
                    major: None,
                    minor: None,
                    access: Some(access.to_string()),
                },
                "devices.list",
            )
            .ok()?;
            exceptions.push((kind, num(major)?, num(minor)?, rule.access));
        }
        exceptions.sort();
        Some(V1State {
            default_allow: false,
            exceptions,
        })
    }
}

/// Applies `rules` to a v1 devices cgroup directory. Skips the writes when
/// `devices.list` already shows exactly the target deny-all state, so `update` does not
/// briefly cut running processes off their devices.
pub(crate) fn apply_v1(dir: &Path, rules: &[Rule]) -> Result<()> {
    let writes = v1_writes(rules);
    let (default_allow, rest) = after_reset(rules);
    let mut emulated = vec![Rule {
        allow: default_allow,
        kind: DevType::All,
        major: None,
        minor: None,
        access: ACC_ALL,
    }];
    emulated.extend_from_slice(rest);
    let target = V1State::after(&emulated);
    if !target.default_allow {
        if let Some(current) =
            super::fsutil::read_opt(dir, "devices.list")?.and_then(|l| V1State::parse(&l))
        {
            if current == target {
                return Ok(());
            }
        }
    }
    for (allow, text) in writes {
        let file = if allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        super::fsutil::write(dir, file, &text)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// eBPF device filter (cgroup v2)
// ---------------------------------------------------------------------------------

/// `struct bpf_insn`. `regs` holds dst_reg in the low and src_reg in the high nibble.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
        BpfInsn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    pub fn dst(&self) -> u8 {
        self.regs & 0x0f
    }
    pub fn src(&self) -> u8 {
        self.regs >> 4
    }
}

// Opcodes (class | op | source).
pub(crate) const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub(crate) const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub(crate) const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
pub(crate) const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
pub(crate) const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
pub(crate) const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub(crate) const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
pub(crate) const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
pub(crate) const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// Builds the filter for `rules` (runc's devicefilter layout, crun's ebpf.c before it):
/// R2 = device type, R3 = requested access, R4 = major, R5 = minor; one block per rule,
/// last rule first, each ending in `return allow`; a non-matching check jumps to the
/// next block; after the last block, `return default`.
pub(crate) fn device_filter(rules: &[Rule]) -> Result<Vec<BpfInsn>> {
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    // access_type = (access << 16) | type.
    let mut prog = vec![
        BpfInsn::new(LDX_MEM_W, R2, R1, 0, 0),
        BpfInsn::new(ALU32_AND_K, R2, 0, 0, 0xffff),
        BpfInsn::new(LDX_MEM_W, R3, R1, 0, 0),
        BpfInsn::new(ALU32_RSH_K, R3, 0, 0, 16),
        BpfInsn::new(LDX_MEM_W, R4, R1, 4, 0),
        BpfInsn::new(LDX_MEM_W, R5, R1, 8, 0),
    ];
    let (default_allow, rest) = after_reset(rules);
    // A rule with the default's action changes nothing unless an earlier rule of the
    // other action could match the same request.
    let mut seen_other = false;
    let mut live = Vec::new();
    for r in rest {
        if r.allow != default_allow {
            seen_other = true;
            live.push(r);
        } else if seen_other {
            live.push(r);
        }
    }
    for rule in live.iter().rev() {
        prog.extend(rule_block(rule)?);
    }
    prog.push(BpfInsn::new(
        ALU32_MOV_K,
        R0,
        0,
        0,
        i32::from(default_allow),
    ));
    prog.push(BpfInsn::new(JMP_EXIT, 0, 0, 0, 0));
    Ok(prog)
}

fn rule_block(rule: &Rule) -> Result<Vec<BpfInsn>> {
    const NEXT: i16 = i16::MAX; // placeholder: jump past this block
    let imm = |n: u32, what: &str| {
        i32::try_from(n)
            .map_err(|_| Error::InvalidConfig(format!("device {what} {n} is out of range")))
    };
    let mut b = Vec::new();
    match rule.kind {
        DevType::All => {}
        DevType::Char => b.push(BpfInsn::new(JMP_JNE_K, R2, 0, NEXT, DEV_CHAR)),
        DevType::Block => b.push(BpfInsn::new(JMP_JNE_K, R2, 0, NEXT, DEV_BLOCK)),
    }
    if rule.access & ACC_ALL != ACC_ALL {
        b.push(BpfInsn::new(ALU32_MOV_X, R1, R3, 0, 0));
        b.push(BpfInsn::new(ALU32_AND_K, R1, 0, 0, i32::from(rule.access)));
        if rule.allow {
            // Allow only if every requested bit is covered: (R3 & access) == R3.
            b.push(BpfInsn::new(JMP_JNE_X, R1, R3, NEXT, 0));
        } else {
            // Deny if any requested bit is named: (R3 & access) != 0.
            b.push(BpfInsn::new(JMP_JEQ_K, R1, 0, NEXT, 0));
        }
    }
    if let Some(major) = rule.major {
        b.push(BpfInsn::new(JMP_JNE_K, R4, 0, NEXT, imm(major, "major")?));
    }
    if let Some(minor) = rule.minor {
        b.push(BpfInsn::new(JMP_JNE_K, R5, 0, NEXT, imm(minor, "minor")?));
    }
    b.push(BpfInsn::new(ALU32_MOV_K, R0, 0, 0, i32::from(rule.allow)));
    b.push(BpfInsn::new(JMP_EXIT, 0, 0, 0, 0));
    let len = b.len();
    for (i, insn) in b.iter_mut().enumerate() {
        if insn.off == NEXT {
            // Offsets count from the instruction after the jump.
            insn.off = i16::try_from(len - i - 1).unwrap_or(0);
        }
    }
    Ok(b)
}

/// Evaluates a filter the way the kernel would for one request. Supports exactly the
/// instructions [`device_filter`] emits.
#[cfg(test)]
pub(crate) fn run_filter(
    prog: &[BpfInsn],
    dev_type: i32,
    access: u8,
    major: u32,
    minor: u32,
) -> Option<bool> {
    let ctx = [((u32::from(access)) << 16) | dev_type as u32, major, minor];
    let mut reg = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..10_000 {
        let insn = prog.get(pc)?;
        let (dst, src) = (usize::from(insn.dst()), usize::from(insn.src()));
        let mut next = pc + 1;
        let jump = |cond: bool| {
            if cond {
                (pc as i64 + 1 + i64::from(insn.off)) as usize
            } else {
                pc + 1
            }
        };
        match insn.code {
            LDX_MEM_W => reg[dst] = u64::from(*ctx.get(usize::try_from(insn.off).ok()? / 4)?),
            ALU32_AND_K => reg[dst] = u64::from(reg[dst] as u32 & insn.imm as u32),
            ALU32_RSH_K => reg[dst] = u64::from((reg[dst] as u32) >> insn.imm),
            ALU32_MOV_K => reg[dst] = u64::from(insn.imm as u32),
            ALU32_MOV_X => reg[dst] = u64::from(reg[src] as u32),
            JMP_JEQ_K => next = jump(reg[dst] == insn.imm as i64 as u64),
            JMP_JNE_K => next = jump(reg[dst] != insn.imm as i64 as u64),
            JMP_JNE_X => next = jump(reg[dst] != reg[src]),
            JMP_EXIT => return Some(reg[0] != 0),
            _ => return None,
        }
        pc = next;
    }
    None
}

// bpf(2) commands and constants (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Calls bpf(2) with a `union bpf_attr` prefix.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    loop {
        // SAFETY: `attr` is a live, fully initialized (Default, explicit padding) repr(C)
        // prefix of union bpf_attr for `cmd`, and we pass its exact size; the kernel
        // reads and writes at most that many bytes. Pointers inside it (instructions,
        // license, log buffer, id array) are kept alive by the caller across this call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T,
                std::mem::size_of::<T>() as libc::c_long,
            )
        };
        if ret >= 0 {
            return Ok(ret);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn owned_fd(fd: libc::c_long) -> io::Result<OwnedFd> {
    let raw = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: bpf(2) just returned this new file descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn prog_load(insns: &[BpfInsn], log: Option<&mut Vec<u8>>) -> io::Result<OwnedFd> {
    let license = c"Apache";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..12].copy_from_slice(b"pier_devices");
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        attr.log_buf = buf.as_mut_ptr() as u64;
        return owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?);
    }
    owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?)
}

/// IDs of the device programs attached to a cgroup.
fn query_programs(cgroup: RawFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    for _ in 0..10 {
        let mut attr = QueryAttr {
            target_fd: cgroup as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // The kernel wrote the real count: retry with room for it.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0u32; (attr.prog_cnt as usize).max(ids.len() * 2)];
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ENOSPC))
}

fn attach(cgroup: RawFd, prog: RawFd, cmd: libc::c_long, flags: u32) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup as u32,
        attach_bpf_fd: prog as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    bpf(cmd, &mut attr).map(|_| ())
}

/// Loads `insns` and attaches it to the cgroup directory `dir` (BPF_F_ALLOW_MULTI), then
/// detaches the device programs that were attached before (as runc does on `update`).
/// The new program is attached first, so access is never wider than either program
/// allows in between.
pub(crate) fn attach_device_filter(dir: &Path, insns: &[BpfInsn]) -> Result<()> {
    let cgroup = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| err(format!("open {}: {}", dir.display(), os_text(&e.into()))))?;
    let cg = cgroup.as_raw_fd();
    let old_ids = query_programs(cg).map_err(|e| {
        err(format!(
            "bpf(BPF_PROG_QUERY) on {}: {}",
            dir.display(),
            os_text(&e)
        ))
    })?;
    let mut old = Vec::new();
    for id in old_ids {
        let mut attr = GetFdByIdAttr {
            prog_id: id,
            ..Default::default()
        };
        match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).and_then(owned_fd) {
            Ok(fd) => old.push(fd),
            // Programs an LSM hides from us, or that just went away, only ever add
            // restrictions: leave them (runc does the same).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::EACCES | libc::ENOENT)
                ) => {}
            Err(e) => {
                return Err(err(format!(
                    "bpf(BPF_PROG_GET_FD_BY_ID, {id}): {}",
                    os_text(&e)
                )))
            }
        }
    }
    let loaded = match prog_load(insns, None) {
        // Before Linux 5.11 BPF memory counted against RLIMIT_MEMLOCK; runc raises it
        // unconditionally, we only when the kernel asks for it.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && raise_memlock() => {
            prog_load(insns, None)
        }
        other => other,
    };
    let prog = match loaded {
        Ok(fd) => fd,
        Err(e) => {
            // Load again with the verifier log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            let _ = prog_load(insns, Some(&mut log));
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            let detail = if text.is_empty() {
                String::new()
            } else {
                format!(" (verifier: {text})")
            };
            return Err(err(format!(
                "bpf(BPF_PROG_LOAD) of the device filter for {}: {}{detail}",
                dir.display(),
                os_text(&e)
            )));
        }
    };
    attach(cg, prog.as_raw_fd(), BPF_PROG_ATTACH, BPF_F_ALLOW_MULTI).map_err(|e| {
        err(format!(
            "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) on {}: {}",
            dir.display(),
            os_text(&e)
        ))
    })?;
    for fd in old {
        attach(cg, fd.as_raw_fd(), BPF_PROG_DETACH, 0).map_err(|e| {
            err(format!(
                "bpf(BPF_PROG_DETACH, BPF_CGROUP_DEVICE) of an old filter on {}: {}",
                dir.display(),
                os_text(&e)
            ))
        })?;
    }
    Ok(())
}

/// Lifts RLIMIT_MEMLOCK to unlimited; true if that changed anything.
fn raise_memlock() -> bool {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Memlock);
    if current.current.is_none() && current.maximum.is_none() {
        return false;
    }
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    setrlimit(Resource::Memlock, unlimited).is_ok()
}

/// Number of device programs attached to a cgroup directory (tests, diagnostics).
pub fn attached_device_programs(dir: &Path) -> Result<usize> {
    let cgroup = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| err(format!("open {}: {}", dir.display(), os_text(&e.into()))))?;
    query_programs(cgroup.as_raw_fd())
        .map(|ids| ids.len())
        .map_err(|e| {
            err(format!(
                "bpf(BPF_PROG_QUERY) on {}: {}",
                dir.display(),
                os_text(&e)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, kind: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        Rule::from_spec(
            &spec::DeviceRule {
                allow,
                kind: Some(kind.to_string()),
                major,
                minor,
                access: Some(access.to_string()),
            },
            "test",
        )
        .unwrap()
    }

    #[test]
    fn defaults_match_runc_1_1() {
        let rules: Vec<String> = DEFAULT_ALLOWED_DEVICES
            .iter()
            .map(|d| Rule::from_spec(&d.rule(), "d").unwrap().v1_string())
            .collect();
        assert_eq!(
            rules,
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:8 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:5 rwm",
                "c 1:9 rwm",
                "c 136:* rwm",
                "c 5:2 rwm",
                "c 10:200 rwm"
            ]
        );
        assert_eq!(default_device_nodes(&[]).len(), 6);
        let custom_null = spec::Device {
            kind: "c".into(),
            path: "/dev/null".into(),
            major: 1,
            minor: 3,
            file_mode: None,
            uid: None,
            gid: None,
        };
        assert_eq!(
            default_device_rules(std::slice::from_ref(&custom_null)).len(),
            10
        );
        assert!(default_device_nodes(&[custom_null])
            .iter()
            .all(|d| d.path != Path::new("/dev/null")));
    }

    #[test]
    fn rule_validation() {
        let bad = |kind: &str, access: &str| {
            Rule::from_spec(
                &spec::DeviceRule {
                    allow: true,
                    kind: Some(kind.into()),
                    major: None,
                    minor: None,
                    access: Some(access.into()),
                },
                "linux.resources.devices[0]",
            )
            .is_err()
        };
        assert!(bad("x", "rwm"));
        assert!(bad("c", ""));
        // Unknown access letters grant nothing, as with runc.
        assert!(!bad("c", "rwx"));
        let r = rule(false, "a", None, None, "rwm");
        assert_eq!(r.v1_string(), "a");
        assert_eq!(rule(true, "b", Some(8), None, "mr").v1_string(), "b 8:* rm");
    }

    #[test]
    fn v1_writes_start_with_reset() {
        let rules = [rule(true, "c", Some(1), Some(3), "rwm")];
        assert_eq!(
            v1_writes(&rules),
            vec![(false, "a".to_string()), (true, "c 1:3 rwm".to_string())]
        );
        // Everything before the last "a" rule is void.
        let rules = [
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "a", None, None, "rwm"),
            rule(false, "c", Some(1), Some(5), "w"),
        ];
        assert_eq!(
            v1_writes(&rules),
            vec![(true, "a".to_string()), (false, "c 1:5 w".to_string())]
        );
    }

    #[test]
    fn v1_state_emulation() {
        let rules = [
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "r"),
            rule(true, "c", Some(1), Some(3), "w"),
            rule(true, "c", Some(1), Some(5), "rwm"),
            rule(false, "c", Some(1), Some(5), "rwm"),
            rule(true, "c", Some(136), None, "rwm"),
        ];
        let state = V1State::after(&rules);
        let listed = V1State::parse("c 1:3 rw\nc 136:* rwm\n").unwrap();
        assert_eq!(state, listed);
        assert!(V1State::parse("a *:* rwm\n").is_none());
    }

    #[test]
    fn filter_shape() {
        // Defaults only: 6 prologue + blocks + 2 epilogue.
        let rules = effective_rules(&[], &[]).unwrap();
        let prog = device_filter(&rules).unwrap();
        // c *:* m and b *:* m: type + 3 access + 2 = 6 each; 136:*: type + major + 2 = 4;
        // the 8 full rwm rules with major and minor: 5 each.
        assert_eq!(prog.len(), 6 + 6 + 6 + 4 + 8 * 5 + 2);
        assert_eq!(prog[0], BpfInsn::new(LDX_MEM_W, 2, 1, 0, 0));
        assert_eq!(prog[1].imm, 0xffff);
        assert_eq!(prog[3].imm, 16);
        assert_eq!(prog[4].off, 4);
        assert_eq!(prog[5].off, 8);
        // The first block is the last rule, c 10:200 rwm.
        assert_eq!(prog[6], BpfInsn::new(JMP_JNE_K, 2, 0, 4, DEV_CHAR));
        assert_eq!(prog[7], BpfInsn::new(JMP_JNE_K, 4, 0, 3, 10));
        assert_eq!(prog[8], BpfInsn::new(JMP_JNE_K, 5, 0, 2, 200));
        assert_eq!(prog[9], BpfInsn::new(ALU32_MOV_K, 0, 0, 0, 1));
        assert_eq!(prog[10].code, JMP_EXIT);
        // Default deny at the end.
        assert_eq!(prog[prog.len() - 2], BpfInsn::new(ALU32_MOV_K, 0, 0, 0, 0));
        assert_eq!(prog[prog.len() - 1].code, JMP_EXIT);
        // Every jump lands inside the program.
        for (i, insn) in prog.iter().enumerate() {
            if matches!(insn.code, JMP_JNE_K | JMP_JNE_X | JMP_JEQ_K) {
                let target = i as i64 + 1 + i64::from(insn.off);
                assert!(target > i as i64 && (target as usize) < prog.len());
            }
        }
    }

    #[test]
    fn filter_allow_all_and_noops() {
        // "allow a" then a deny: blacklist with one block.
        let rules = [
            rule(true, "a", None, None, "rwm"),
            rule(false, "c", Some(1), Some(3), "w"),
        ];
        let prog = device_filter(&rules).unwrap();
        assert_eq!(prog.len(), 6 + (1 + 3 + 2 + 2) + 2);
        assert_eq!(prog[prog.len() - 2].imm, 1);
        // Deny rules before any allow rule change nothing under default deny.
        let rules = [rule(false, "c", Some(1), Some(3), "rwm")];
        assert_eq!(device_filter(&rules).unwrap().len(), 8);
    }

    #[test]
    fn filter_semantics() {
        let mut spec_rules = vec![
            spec::DeviceRule {
                allow: false,
                kind: None,
                major: None,
                minor: None,
                access: Some("rwm".into()),
            },
            spec::DeviceRule {
                allow: true,
                kind: Some("b".into()),
                major: Some(8),
                minor: None,
                access: Some("r".into()),
            },
        ];
        // Deny writes to /dev/full after the defaults.
        let mut rules = effective_rules(&spec_rules, &[]).unwrap();
        rules.push(rule(false, "c", Some(1), Some(7), "w"));
        let prog = device_filter(&rules).unwrap();
        let run = |t, acc, maj, min| run_filter(&prog, t, acc, maj, min).unwrap();
        assert!(run(DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3)); // /dev/null
        assert!(!run(DEV_CHAR, ACC_READ, 1, 11)); // /dev/kmsg
        assert!(run(DEV_CHAR, ACC_MKNOD, 1, 11)); // mknod anything
        assert!(run(DEV_BLOCK, ACC_READ, 8, 1));
        assert!(!run(DEV_BLOCK, ACC_WRITE, 8, 1));
        assert!(!run(DEV_BLOCK, ACC_READ | ACC_WRITE, 8, 1)); // needs full coverage
        assert!(run(DEV_CHAR, ACC_READ, 1, 7));
        assert!(!run(DEV_CHAR, ACC_WRITE, 1, 7));
        assert!(!run(DEV_CHAR, ACC_READ | ACC_WRITE, 1, 7)); // deny on any overlap
        assert!(run(DEV_CHAR, ACC_READ | ACC_WRITE, 136, 4)); // pts
                                                              // Allow everything: "a" rule last wins over all before it.
        spec_rules.push(spec::DeviceRule {
            allow: true,
            kind: Some("a".into()),
            major: None,
            minor: None,
            access: Some("rwm".into()),
        });
        let prog = device_filter(&effective_rules(&spec_rules, &[]).unwrap()).unwrap();
        assert!(run_filter(&prog, DEV_CHAR, ACC_READ, 1, 11).unwrap());
    }
}
