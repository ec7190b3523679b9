//! OCI seccomp support (`linux.seccomp`).
//!
//! The OCI profile is first translated into a small intermediate form (`Program`:
//! actions, architectures, flags, rules with argument conditions) that knows nothing of
//! libseccomp, so a pure-Rust backend can replace it later. [`compile`] turns the
//! intermediate form into a classic BPF program with libseccomp (in the runtime, before
//! fork) and prepends runc's `-ENOSYS` stub; [`Filter::load`] installs that program with
//! a bare `seccomp(2)` call, which allocates nothing and so is fine in a forked child.
//!
//! Behaviour follows runc (`libcontainer/seccomp`, `specconv.SetupSeccomp`):
//! `SCMP_ACT_KILL` is `KILL_THREAD`, `errnoRet` defaults to `EPERM`, syscall names
//! libseccomp does not know are skipped, rules whose action equals the default are
//! skipped, conditions sharing an argument index are split into separate rules (OR),
//! `SECCOMP_FILTER_FLAG_TSYNC` is accepted and ignored, and an unset `flags` list
//! means `SECCOMP_FILTER_FLAG_SPEC_ALLOW` when the kernel has it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::spec;

// ---------------------------------------------------------------------------------------
// Intermediate form
// ---------------------------------------------------------------------------------------

/// What the filter does with a matching syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Allow,
    Log,
    Notify,
}

impl Action {
    /// Parses an OCI action; `ret` is the `errnoRet` that goes with it. `field` names
    /// the action field in errors; `ret_field` the errno field.
    fn from_oci(name: &str, ret: Option<u32>, field: &str, ret_field: &str) -> Result<Action> {
        let ret16 = || -> Result<u16> {
            match ret {
                None => Ok(libc::EPERM as u16),
                Some(v) => u16::try_from(v).map_err(|_| {
                    invalid(format!(
                        "{ret_field}: {v} does not fit the 16-bit seccomp return data"
                    ))
                }),
            }
        };
        let action = match name {
            // runc and libseccomp both treat the legacy SCMP_ACT_KILL as KILL_THREAD.
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_ERRNO" => return Ok(Action::Errno(ret16()?)),
            "SCMP_ACT_TRACE" => return Ok(Action::Trace(ret16()?)),
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => Action::Notify,
            "" => return Err(invalid(format!("{field}: must be set"))),
            other => return Err(invalid(format!("{field}: unknown action {other:?}"))),
        };
        // The runtime spec: "When the action doesn't support an errno, the runtime MUST
        // print an error and fail."
        if let Some(v) = ret {
            return Err(invalid(format!(
                "{ret_field}: {v} is set but {name} takes no errno \
                 (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
            )));
        }
        Ok(action)
    }

    fn to_scmp(self) -> ScmpAction {
        match self {
            Action::KillThread => ScmpAction::KillThread,
            Action::KillProcess => ScmpAction::KillProcess,
            Action::Trap => ScmpAction::Trap,
            Action::Errno(e) => ScmpAction::Errno(i32::from(e)),
            Action::Trace(t) => ScmpAction::Trace(t),
            Action::Allow => ScmpAction::Allow,
            Action::Log => ScmpAction::Log,
            Action::Notify => ScmpAction::Notify,
        }
    }
}

/// A seccomp architecture (`SCMP_ARCH_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Arch {
    X86,
    X86_64,
    X32,
    Arm,
    Aarch64,
    Loongarch64,
    M68k,
    Mips,
    Mips64,
    Mips64N32,
    Mipsel,
    Mipsel64,
    Mipsel64N32,
    Ppc,
    Ppc64,
    Ppc64Le,
    S390,
    S390X,
    Sh,
    Sheb,
    Parisc,
    Parisc64,
    Riscv64,
}

// <linux/audit.h>: AUDIT_ARCH_* = EM_* | flags.
const AUDIT_64BIT: u32 = 0x8000_0000;
const AUDIT_LE: u32 = 0x4000_0000;
const AUDIT_MIPS64_N32: u32 = 0x2000_0000;

impl Arch {
    /// Every architecture of the OCI schema's `SeccompArch`, with its name.
    const ALL: [(&'static str, Arch); 23] = [
        ("SCMP_ARCH_X86", Arch::X86),
        ("SCMP_ARCH_X86_64", Arch::X86_64),
        ("SCMP_ARCH_X32", Arch::X32),
        ("SCMP_ARCH_ARM", Arch::Arm),
        ("SCMP_ARCH_AARCH64", Arch::Aarch64),
        ("SCMP_ARCH_LOONGARCH64", Arch::Loongarch64),
        ("SCMP_ARCH_M68K", Arch::M68k),
        ("SCMP_ARCH_MIPS", Arch::Mips),
        ("SCMP_ARCH_MIPS64", Arch::Mips64),
        ("SCMP_ARCH_MIPS64N32", Arch::Mips64N32),
        ("SCMP_ARCH_MIPSEL", Arch::Mipsel),
        ("SCMP_ARCH_MIPSEL64", Arch::Mipsel64),
        ("SCMP_ARCH_MIPSEL64N32", Arch::Mipsel64N32),
        ("SCMP_ARCH_PPC", Arch::Ppc),
        ("SCMP_ARCH_PPC64", Arch::Ppc64),
        ("SCMP_ARCH_PPC64LE", Arch::Ppc64Le),
        ("SCMP_ARCH_S390", Arch::S390),
        ("SCMP_ARCH_S390X", Arch::S390X),
        ("SCMP_ARCH_SH", Arch::Sh),
        ("SCMP_ARCH_SHEB", Arch::Sheb),
        ("SCMP_ARCH_PARISC", Arch::Parisc),
        ("SCMP_ARCH_PARISC64", Arch::Parisc64),
        ("SCMP_ARCH_RISCV64", Arch::Riscv64),
    ];

    fn from_oci(name: &str) -> Option<Arch> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    fn oci_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("SCMP_ARCH_?", |(n, _)| n)
    }

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch`. x32 shares
    /// x86_64's and is told apart by bit 30 of the syscall number.
    fn audit_arch(self) -> u32 {
        match self {
            Arch::X86 => 3 | AUDIT_LE,
            Arch::X86_64 | Arch::X32 => 62 | AUDIT_64BIT | AUDIT_LE,
            Arch::Arm => 40 | AUDIT_LE,
            Arch::Aarch64 => 183 | AUDIT_64BIT | AUDIT_LE,
            Arch::Loongarch64 => 258 | AUDIT_64BIT | AUDIT_LE,
            Arch::M68k => 4,
            Arch::Mips => 8,
            Arch::Mips64 => 8 | AUDIT_64BIT,
            Arch::Mips64N32 => 8 | AUDIT_64BIT | AUDIT_MIPS64_N32,
            Arch::Mipsel => 8 | AUDIT_LE,
            Arch::Mipsel64 => 8 | AUDIT_64BIT | AUDIT_LE,
            Arch::Mipsel64N32 => 8 | AUDIT_64BIT | AUDIT_LE | AUDIT_MIPS64_N32,
            Arch::Ppc => 20,
            Arch::Ppc64 => 21 | AUDIT_64BIT,
            Arch::Ppc64Le => 21 | AUDIT_64BIT | AUDIT_LE,
            Arch::S390 => 22,
            Arch::S390X => 22 | AUDIT_64BIT,
            // libseccomp's SCMP_ARCH_SH is little-endian SuperH, SHEB big-endian.
            Arch::Sh => 42 | AUDIT_LE,
            Arch::Sheb => 42,
            Arch::Parisc => 15,
            Arch::Parisc64 => 15 | AUDIT_64BIT,
            Arch::Riscv64 => 243 | AUDIT_64BIT | AUDIT_LE,
        }
    }

    fn to_scmp(self) -> ScmpArch {
        match self {
            Arch::X86 => ScmpArch::X86,
            Arch::X86_64 => ScmpArch::X8664,
            Arch::X32 => ScmpArch::X32,
            Arch::Arm => ScmpArch::Arm,
            Arch::Aarch64 => ScmpArch::Aarch64,
            Arch::Loongarch64 => ScmpArch::Loongarch64,
            Arch::M68k => ScmpArch::M68k,
            Arch::Mips => ScmpArch::Mips,
            Arch::Mips64 => ScmpArch::Mips64,
            Arch::Mips64N32 => ScmpArch::Mips64N32,
            Arch::Mipsel => ScmpArch::Mipsel,
            Arch::Mipsel64 => ScmpArch::Mipsel64,
            Arch::Mipsel64N32 => ScmpArch::Mipsel64N32,
            Arch::Ppc => ScmpArch::Ppc,
            Arch::Ppc64 => ScmpArch::Ppc64,
            Arch::Ppc64Le => ScmpArch::Ppc64Le,
            Arch::S390 => ScmpArch::S390,
            Arch::S390X => ScmpArch::S390X,
            Arch::Sh => ScmpArch::Sh,
            Arch::Sheb => ScmpArch::Sheb,
            Arch::Parisc => ScmpArch::Parisc,
            Arch::Parisc64 => ScmpArch::Parisc64,
            Arch::Riscv64 => ScmpArch::Riscv64,
        }
    }

    /// The architecture this binary runs as (libseccomp's "native" one).
    fn native() -> Option<Arch> {
        let le = cfg!(target_endian = "little");
        let arch = if cfg!(target_arch = "x86_64") {
            if cfg!(target_pointer_width = "32") {
                Arch::X32
            } else {
                Arch::X86_64
            }
        } else if cfg!(target_arch = "x86") {
            Arch::X86
        } else if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else if cfg!(target_arch = "arm") {
            Arch::Arm
        } else if cfg!(target_arch = "loongarch64") {
            Arch::Loongarch64
        } else if cfg!(target_arch = "m68k") {
            Arch::M68k
        } else if cfg!(target_arch = "mips") {
            if le {
                Arch::Mipsel
            } else {
                Arch::Mips
            }
        } else if cfg!(target_arch = "mips64") {
            if le {
                Arch::Mipsel64
            } else {
                Arch::Mips64
            }
        } else if cfg!(target_arch = "powerpc") {
            Arch::Ppc
        } else if cfg!(target_arch = "powerpc64") {
            if le {
                Arch::Ppc64Le
            } else {
                Arch::Ppc64
            }
        } else if cfg!(target_arch = "s390x") {
            Arch::S390X
        } else if cfg!(target_arch = "riscv64") {
            Arch::Riscv64
        } else {
            return None;
        };
        Some(arch)
    }

    /// The architecture name Docker profiles use in `includes`/`excludes.arches`
    /// (moby's `goToNative` table: Go's GOARCH mapped to libseccomp's names).
    fn docker_name(self) -> Option<&'static str> {
        Some(match self {
            Arch::X86 => "x86",
            Arch::X86_64 => "amd64",
            Arch::X32 => "x32",
            Arch::Arm => "arm",
            Arch::Aarch64 => "arm64",
            Arch::Loongarch64 => "loongarch64",
            Arch::Mips64 => "mips64",
            Arch::Mips64N32 => "mips64n32",
            Arch::Mipsel64 => "mipsel64",
            Arch::Mipsel64N32 => "mips3l64n32", // sic, as in moby
            Arch::Mipsel => "mipsel",
            Arch::Ppc => "ppc",
            Arch::Ppc64 => "ppc64",
            Arch::Ppc64Le => "ppc64le",
            Arch::S390 => "s390",
            Arch::S390X => "s390x",
            Arch::Riscv64 => "riscv64",
            Arch::M68k | Arch::Mips | Arch::Sh | Arch::Sheb | Arch::Parisc | Arch::Parisc64 => {
                return None
            }
        })
    }
}

/// A comparison of one syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`; OCI puts the mask in `value` and the operand in `valueTwo`.
    MaskedEq {
        mask: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArgCmp {
    /// Argument index, 0..=5.
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
}

impl ArgCmp {
    fn to_scmp(self) -> ScmpArgCompare {
        let op = match self.op {
            CmpOp::Ne => ScmpCompareOp::NotEqual,
            CmpOp::Lt => ScmpCompareOp::Less,
            CmpOp::Le => ScmpCompareOp::LessOrEqual,
            CmpOp::Eq => ScmpCompareOp::Equal,
            CmpOp::Ge => ScmpCompareOp::GreaterEqual,
            CmpOp::Gt => ScmpCompareOp::Greater,
            CmpOp::MaskedEq { mask } => ScmpCompareOp::MaskedEqual(mask),
        };
        ScmpArgCompare::new(u32::from(self.index), op, self.value)
    }
}

/// One filter rule: `syscall` with all `conditions` true (AND) gets `action`. Several
/// rules for the same syscall are alternatives (OR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub syscall: String,
    pub action: Action,
    pub conditions: Vec<ArgCmp>,
    /// The profile field the rule came from, for error messages.
    pub field: String,
}

/// Filter flags of the OCI schema's `SeccompFlag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flag {
    Tsync,
    Log,
    SpecAllow,
    WaitKillableRecv,
}

impl Flag {
    fn from_oci(name: &str) -> Option<Flag> {
        Some(match name {
            "SECCOMP_FILTER_FLAG_TSYNC" => Flag::Tsync,
            "SECCOMP_FILTER_FLAG_LOG" => Flag::Log,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => Flag::SpecAllow,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => Flag::WaitKillableRecv,
            _ => return None,
        })
    }

    fn bits(self) -> u32 {
        (match self {
            Flag::Tsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::Log => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::WaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        }) as u32
    }
}

/// The whole profile in the intermediate form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Program {
    pub default_action: Action,
    /// Extra architectures; the native one is always in the filter.
    pub architectures: Vec<Arch>,
    /// Flags with their index in `linux.seccomp.flags`. Empty means unset.
    pub flags: Vec<(usize, Flag)>,
    pub rules: Vec<Rule>,
    /// Every syscall name of the profile, skipped rules included (for the ENOSYS stub).
    pub names: Vec<String>,
}

impl Program {
    fn uses_notify(&self) -> bool {
        self.rules.iter().any(|r| r.action == Action::Notify)
    }
}

fn invalid(msg: String) -> Error {
    Error::InvalidConfig(msg)
}

/// Translates an OCI profile; `None` when seccomp is disabled (no default action and no
/// syscalls, as runc treats it). All checks that need no kernel happen here.
pub(crate) fn translate(profile: &spec::Seccomp) -> Result<Option<Program>> {
    const F: &str = "linux.seccomp";
    if profile.default_action.is_empty() && profile.syscalls.is_empty() {
        return Ok(None);
    }
    let default_action = Action::from_oci(
        &profile.default_action,
        profile.default_errno_ret,
        &format!("{F}.defaultAction"),
        &format!("{F}.defaultErrnoRet"),
    )?;
    if default_action == Action::Notify {
        // runc refuses it: the init could not even report the listener fd.
        return Err(invalid(format!(
            "{F}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
        )));
    }

    let mut architectures = Vec::new();
    for (i, name) in profile.architectures.iter().enumerate() {
        let arch = Arch::from_oci(name).ok_or_else(|| {
            invalid(format!(
                "{F}.architectures[{i}]: unknown architecture {name:?}"
            ))
        })?;
        if !architectures.contains(&arch) {
            architectures.push(arch);
        }
    }

    let mut flags = Vec::new();
    for (i, name) in profile.flags.iter().enumerate() {
        let flag = Flag::from_oci(name)
            .ok_or_else(|| invalid(format!("{F}.flags[{i}]: unknown flag {name:?}")))?;
        flags.push((i, flag));
    }

    let mut rules = Vec::new();
    let mut names = Vec::new();
    for (i, call) in profile.syscalls.iter().enumerate() {
        let field = format!("{F}.syscalls[{i}]");
        let action = Action::from_oci(
            &call.action,
            call.errno_ret,
            &format!("{field}.action"),
            &format!("{field}.errnoRet"),
        )?;
        let mut conditions = Vec::with_capacity(call.args.len());
        let mut per_index = [0usize; 6];
        for (j, arg) in call.args.iter().enumerate() {
            let index = u8::try_from(arg.index).ok().filter(|i| *i < 6);
            let Some(index) = index else {
                return Err(invalid(format!(
                    "{field}.args[{j}].index: {} is out of range 0-5 (syscall arguments)",
                    arg.index
                )));
            };
            per_index[usize::from(index)] += 1;
            let (op, value) = match arg.op.as_str() {
                "SCMP_CMP_NE" => (CmpOp::Ne, arg.value),
                "SCMP_CMP_LT" => (CmpOp::Lt, arg.value),
                "SCMP_CMP_LE" => (CmpOp::Le, arg.value),
                "SCMP_CMP_EQ" => (CmpOp::Eq, arg.value),
                "SCMP_CMP_GE" => (CmpOp::Ge, arg.value),
                "SCMP_CMP_GT" => (CmpOp::Gt, arg.value),
                "SCMP_CMP_MASKED_EQ" => (CmpOp::MaskedEq { mask: arg.value }, arg.value_two),
                other => {
                    return Err(invalid(format!(
                        "{field}.args[{j}].op: unknown operator {other:?}"
                    )))
                }
            };
            conditions.push(ArgCmp { index, op, value });
        }
        // runc: when two conditions test the same argument, libseccomp cannot AND them,
        // so each condition becomes a rule of its own (OR); otherwise one rule ANDs all.
        let split = per_index.iter().any(|n| *n > 1);
        for (k, name) in call.names.iter().enumerate() {
            let name_field = format!("{field}.names[{k}]");
            if name.is_empty() {
                return Err(invalid(format!("{name_field}: empty syscall name")));
            }
            if action == Action::Notify && name == "write" {
                // runc refuses it: its init reports the listener fd with write(2).
                return Err(invalid(format!(
                    "{name_field}: SCMP_ACT_NOTIFY cannot be used for the write syscall"
                )));
            }
            names.push(name.clone());
            if split {
                for cond in &conditions {
                    rules.push(Rule {
                        syscall: name.clone(),
                        action,
                        conditions: vec![*cond],
                        field: name_field.clone(),
                    });
                }
            } else {
                rules.push(Rule {
                    syscall: name.clone(),
                    action,
                    conditions: conditions.clone(),
                    field: name_field,
                });
            }
        }
    }

    let program = Program {
        default_action,
        architectures,
        flags,
        rules,
        names,
    };
    if program.uses_notify()
        && profile
            .listener_path
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
    {
        return Err(invalid(format!(
            "{F}.listenerPath: must be set when a syscall rule uses SCMP_ACT_NOTIFY"
        )));
    }
    Ok(Some(program))
}

// ---------------------------------------------------------------------------------------
// Public interface
// ---------------------------------------------------------------------------------------

/// Checks a profile without loading it; errors name the field.
pub fn validate(profile: &spec::Seccomp) -> Result<()> {
    translate(profile).map(|_| ())
}

/// Compiled filter, built in the runtime before fork; loaded in the container's init (a
/// forked, single-threaded child) right before execve.
#[derive(Clone)]
pub struct Filter {
    /// The BPF program; empty when seccomp is disabled.
    insns: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` bits passed to seccomp(2).
    flags: u32,
    notify: bool,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.insns.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("notify", &self.notify)
            .finish()
    }
}

/// Compiles a profile into a loadable filter.
pub fn compile(profile: &spec::Seccomp) -> Result<Filter> {
    let Some(program) = translate(profile)? else {
        return Ok(Filter {
            insns: Vec::new(),
            flags: 0,
            notify: false,
        });
    };
    let notify = program.uses_notify();
    let flags = kernel_flags(&program, notify)?;
    let mut insns = enosys_stub(&program)?;
    insns.extend(libseccomp_bpf(&program)?);
    if insns.len() > libc::BPF_MAXINSNS as usize {
        return Err(Error::Seccomp(format!(
            "linux.seccomp.syscalls: the filter has {} BPF instructions, \
             the kernel accepts at most {}",
            insns.len(),
            libc::BPF_MAXINSNS
        )));
    }
    Ok(Filter {
        insns,
        flags,
        notify,
    })
}

impl Filter {
    /// A filter from its parts, as [`Filter::parts`] gave them (the compile cache).
    pub(crate) fn from_parts(insns: Vec<libc::sock_filter>, flags: u32, notify: bool) -> Filter {
        Filter {
            insns,
            flags,
            notify,
        }
    }

    /// The program, the seccomp(2) flags and whether it has a notify listener.
    pub(crate) fn parts(&self) -> (&[libc::sock_filter], u32, bool) {
        (&self.insns, self.flags, self.notify)
    }

    /// Loads the filter into the calling process. Returns the notify listener fd when
    /// the profile uses SCMP_ACT_NOTIFY.
    ///
    /// Allocates nothing on success. It does not set no_new_privs: without it the
    /// caller needs CAP_SYS_ADMIN in its user namespace.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        if self.insns.is_empty() {
            return Ok(None);
        }
        let prog = libc::sock_fprog {
            // compile() keeps the length within BPF_MAXINSNS.
            len: self.insns.len() as u16,
            filter: self.insns.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points to `self.insns`, which outlives the call; the kernel
        // copies the program and does not keep the pointer.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                libc::c_ulong::from(self.flags),
                &prog as *const libc::sock_fprog,
            )
        };
        if ret < 0 {
            let err = std::io::Error::last_os_error();
            let hint = if err.raw_os_error() == Some(libc::EACCES) {
                " (without no_new_privs, loading a filter needs CAP_SYS_ADMIN)"
            } else {
                ""
            };
            return Err(Error::Seccomp(format!("load filter: {err}{hint}")));
        }
        if !self.notify {
            return Ok(None);
        }
        // With SECCOMP_FILTER_FLAG_NEW_LISTENER the return value is the listener fd.
        let fd = ret as libc::c_int;
        // SAFETY: the kernel just created `fd` for us and nothing else owns it.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Whether the profile uses SCMP_ACT_NOTIFY (then linux.seccomp.listenerPath must be
    /// set).
    pub fn uses_notify(&self) -> bool {
        self.notify
    }
}

/// Sends the notify fd to the seccomp agent at `listener_path` as the OCI spec says: a
/// unix stream socket, one message whose payload is the containerProcessState JSON
/// (`state_json`) and whose SCM_RIGHTS carry `[notify_fd]`.
pub fn send_to_listener(
    listener_path: &Path,
    state_json: &[u8],
    notify_fd: BorrowedFd,
) -> Result<()> {
    use rustix::net::{
        connect, send, sendmsg, socket_with, AddressFamily, SendAncillaryBuffer,
        SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
    };
    let what = || format!("seccomp listener {}", listener_path.display());
    let addr = SocketAddrUnix::new(listener_path)
        .map_err(|e| Error::io(format!("{}: socket address", what()), e.into()))?;
    let sock = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io(format!("{}: socket", what()), e.into()))?;
    // runc's wording ("failed to connect with seccomp agent"), which callers match on.
    connect(&sock, &addr).map_err(|e| {
        Error::io(
            format!("failed to connect with seccomp agent: {}", what()),
            e.into(),
        )
    })?;

    let fds = [notify_fd];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Error::Seccomp(format!(
            "{}: control buffer too small",
            what()
        )));
    }
    // The fd travels with the first byte; a stream socket may take the rest in pieces.
    let iov = [std::io::IoSlice::new(state_json)];
    let mut sent = sendmsg(&sock, &iov, &mut control, SendFlags::NOSIGNAL)
        .map_err(|e| Error::io(format!("{}: sendmsg", what()), e.into()))?;
    while sent < state_json.len() {
        match send(&sock, &state_json[sent..], SendFlags::NOSIGNAL) {
            Ok(0) => {
                return Err(Error::Seccomp(format!(
                    "{}: connection closed mid-message",
                    what()
                )))
            }
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io(format!("{}: send", what()), e.into())),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Backend: libseccomp + the ENOSYS stub
// ---------------------------------------------------------------------------------------

/// Whether the running kernel accepts these `SECCOMP_FILTER_FLAG_*` bits. An invalid
/// program pointer makes seccomp(2) fail with EFAULT after the flags passed its checks
/// and EINVAL when they did not; nothing gets loaded either way (libseccomp probes the
/// same way).
fn kernel_supports(flags: u32) -> bool {
    // SAFETY: a null program pointer is never dereferenced: the kernel's copy_from_user
    // fails with EFAULT.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            libc::c_ulong::from(flags),
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    ret < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// The `SECCOMP_FILTER_FLAG_*` bits for seccomp(2), checked against the kernel.
fn kernel_flags(program: &Program, notify: bool) -> Result<u32> {
    let listener = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
    let mut bits = if notify { listener } else { 0 };
    if program.flags.is_empty() {
        // runc's default when `flags` is unset: allow speculative store bypass (no
        // forced mitigation), if the kernel knows the flag.
        let spec_allow = Flag::SpecAllow.bits();
        if kernel_supports(spec_allow) {
            bits |= spec_allow;
        }
        return Ok(bits);
    }
    for &(i, flag) in &program.flags {
        let flag_bits = match flag {
            // runc ignores TSYNC: the filter goes into a single-threaded init that
            // execs right after, and TSYNC would conflict with NEW_LISTENER.
            Flag::Tsync => continue,
            // Only meaningful for a listener (the kernel rejects it without one).
            Flag::WaitKillableRecv if !notify => continue,
            Flag::WaitKillableRecv => Flag::WaitKillableRecv.bits() | listener,
            Flag::Log | Flag::SpecAllow => flag.bits(),
        };
        if !kernel_supports(flag_bits) {
            return Err(Error::Seccomp(format!(
                "linux.seccomp.flags[{i}]: {} is not supported by the running kernel",
                profile_flag_name(flag)
            )));
        }
        bits |= flag_bits;
    }
    Ok(bits)
}

fn profile_flag_name(flag: Flag) -> &'static str {
    match flag {
        Flag::Tsync => "SECCOMP_FILTER_FLAG_TSYNC",
        Flag::Log => "SECCOMP_FILTER_FLAG_LOG",
        Flag::SpecAllow => "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        Flag::WaitKillableRecv => "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    }
}

fn seccomp_err(context: String, err: libseccomp::error::SeccompError) -> Error {
    Error::Seccomp(format!("{context}: {err}"))
}

/// Builds the filter with libseccomp and exports it as BPF.
fn libseccomp_bpf(program: &Program) -> Result<Vec<libc::sock_filter>> {
    let mut ctx = ScmpFilterContext::new(program.default_action.to_scmp())
        .map_err(|e| seccomp_err("linux.seccomp.defaultAction: create filter".into(), e))?;
    // No no_new_privs from here: the runtime sets it per process.noNewPrivileges.
    ctx.set_ctl_nnp(false)
        .map_err(|e| seccomp_err("filter attribute CTL_NNP".into(), e))?;
    for &arch in &program.architectures {
        ctx.add_arch(arch.to_scmp()).map_err(|e| {
            seccomp_err(
                format!(
                    "linux.seccomp.architectures: {} is not supported by libseccomp {}",
                    arch.oci_name(),
                    libseccomp_version()
                ),
                e,
            )
        })?;
    }
    if program.names.len() > 32 {
        // runc's choice: a binary tree beats a linear list for long profiles (and
        // libseccomp <= 2.5.4 misbehaves with it on empty ones). Old libseccomp lacks
        // the attribute; the filter is correct either way.
        let _ = ctx.set_ctl_optimize(2);
    }
    for rule in &program.rules {
        if rule.action == program.default_action {
            // libseccomp refuses rules that repeat the default action; they are no-ops.
            continue;
        }
        let Ok(syscall) = ScmpSyscall::from_name(&rule.syscall) else {
            // Unknown to this libseccomp: runc skips it (profiles name newer syscalls).
            continue;
        };
        let conditions: Vec<ScmpArgCompare> = rule.conditions.iter().map(|c| c.to_scmp()).collect();
        ctx.add_rule_conditional(rule.action.to_scmp(), syscall, &conditions)
            .map_err(|e| {
                seccomp_err(
                    format!("{}: add rule for {:?}", rule.field, rule.syscall),
                    e,
                )
            })?;
    }

    // libseccomp 2.5 can only export into a file descriptor.
    let memfd = rustix::fs::memfd_create("pier-seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::io("seccomp: memfd_create", e.into()))?;
    let mut file = std::fs::File::from(memfd);
    ctx.export_bpf(&file)
        .map_err(|e| seccomp_err("export BPF".into(), e))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::io("seccomp: read exported BPF", e))?;
    let size = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % size != 0 {
        return Err(Error::Seccomp(format!(
            "exported BPF has {} bytes, not a multiple of {size}",
            bytes.len()
        )));
    }
    // Host-endian struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }.
    Ok(bytes
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "(unknown version)".into())
}

const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const fn bpf_stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn bpf_jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Where a stub instruction jumps: a per-architecture section, or the libseccomp filter
/// that follows the stub.
#[derive(Clone, Copy)]
enum Target {
    Section(usize),
    Filter,
}

enum StubInsn {
    Insn(libc::sock_filter),
    Goto(Target),
}

/// runc's `-ENOSYS` stub (`patchbpf`): syscalls newer than every syscall the profile
/// names fail with ENOSYS instead of the default errno, so libcs fall back to older
/// syscalls (an EPERM for, say, clone3 or faccessat2 breaks them). Skipped when the
/// default action lets syscalls through. runc considers only `architectures`; the native
/// architecture is added here too since libseccomp always filters it.
fn enosys_stub(program: &Program) -> Result<Vec<libc::sock_filter>> {
    match program.default_action {
        Action::Allow | Action::Log | Action::Trace(_) => return Ok(Vec::new()),
        Action::Errno(e) if i32::from(e) == libc::ENOSYS => return Ok(Vec::new()),
        _ => {}
    }
    let mut arches: Vec<Arch> = Arch::native().into_iter().collect();
    arches.extend(program.architectures.iter().copied());
    // Per AUDIT_ARCH value, the largest syscall number named on each architecture.
    let mut last: BTreeMap<u32, BTreeMap<Arch, u32>> = BTreeMap::new();
    for arch in arches {
        let max = program
            .names
            .iter()
            .filter_map(|name| ScmpSyscall::from_name_by_arch(name, arch.to_scmp()).ok())
            .filter_map(|s| u32::try_from(s.as_raw_syscall()).ok())
            .max();
        if let Some(max) = max.filter(|m| *m > 0) {
            last.entry(arch.audit_arch()).or_default().insert(arch, max);
        }
    }
    if last.is_empty() {
        return Ok(Vec::new());
    }

    use libc::{
        BPF_ABS, BPF_JA, BPF_JEQ, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W,
    };
    let ret_enosys = bpf_stmt(
        BPF_RET | BPF_K,
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    );
    let load_nr = bpf_stmt(BPF_LD | BPF_W | BPF_ABS, 0); // seccomp_data.nr
    let load_arch = bpf_stmt(BPF_LD | BPF_W | BPF_ABS, 4); // seccomp_data.arch
    let jgt = |k: u32| bpf_jump(BPF_JMP | BPF_JGT | BPF_K, k, 0, 1);

    // Conditional jumps only ever skip a few instructions; anything further is a `ja`
    // with a 32-bit offset, so no jump can overflow.
    let mut stub = vec![StubInsn::Insn(load_arch)];
    for (i, audit) in last.keys().enumerate() {
        stub.push(StubInsn::Insn(bpf_jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            *audit,
            0,
            1,
        )));
        stub.push(StubInsn::Goto(Target::Section(i)));
    }
    stub.push(StubInsn::Goto(Target::Filter));
    let mut sections = Vec::new();
    for maxes in last.values() {
        sections.push(stub.len());
        stub.push(StubInsn::Insn(load_nr));
        let entries: Vec<(Arch, u32)> = maxes.iter().map(|(a, m)| (*a, *m)).collect();
        match entries.as_slice() {
            [(Arch::X86_64, max64), (Arch::X32, max32)] => {
                // Bit 30 of the number marks an x32 syscall.
                stub.push(StubInsn::Insn(bpf_jump(
                    BPF_JMP | BPF_JSET | BPF_K,
                    X32_SYSCALL_BIT,
                    3,
                    0,
                )));
                stub.push(StubInsn::Insn(jgt(*max64)));
                stub.push(StubInsn::Insn(ret_enosys));
                stub.push(StubInsn::Goto(Target::Filter));
                stub.push(StubInsn::Insn(jgt(*max32)));
                stub.push(StubInsn::Insn(ret_enosys));
            }
            [(arch, max)] => {
                match arch {
                    // Only x86_64 calls when x32 is not filtered, and vice versa.
                    Arch::X86_64 => stub.push(StubInsn::Insn(bpf_jump(
                        BPF_JMP | BPF_JSET | BPF_K,
                        X32_SYSCALL_BIT,
                        2,
                        0,
                    ))),
                    Arch::X32 => stub.push(StubInsn::Insn(bpf_jump(
                        BPF_JMP | BPF_JSET | BPF_K,
                        X32_SYSCALL_BIT,
                        0,
                        2,
                    ))),
                    // s390 multiplexes unknown syscall numbers into 0 (setup(2), long
                    // gone): ENOSYS for it too.
                    Arch::S390 | Arch::S390X => {
                        stub.push(StubInsn::Insn(bpf_jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1)));
                        stub.push(StubInsn::Insn(ret_enosys));
                    }
                    _ => {}
                }
                stub.push(StubInsn::Insn(jgt(*max)));
                stub.push(StubInsn::Insn(ret_enosys));
            }
            other => {
                return Err(Error::Seccomp(format!(
                    "ENOSYS stub: unexpected architectures sharing one AUDIT_ARCH: {other:?}"
                )))
            }
        }
        stub.push(StubInsn::Goto(Target::Filter));
    }

    let filter_start = stub.len();
    Ok(stub
        .iter()
        .enumerate()
        .map(|(pc, insn)| match insn {
            StubInsn::Insn(i) => *i,
            StubInsn::Goto(target) => {
                let to = match target {
                    Target::Section(s) => sections[*s],
                    Target::Filter => filter_start,
                };
                // Jumps are relative to the next instruction and always forward here.
                bpf_stmt(BPF_JMP | BPF_JA, (to - pc - 1) as u32)
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Docker profiles
// ---------------------------------------------------------------------------------------

/// `null` in Docker's JSON means the zero value, as with Go's encoding/json.
fn nullable<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Docker's profile format (moby/profiles `seccomp.Seccomp`): the OCI object plus
/// `archMap` and conditional syscall rules.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    #[serde(default, deserialize_with = "nullable")]
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    architectures: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    flags: Vec<String>,
    #[serde(default)]
    listener_path: Option<std::path::PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    arch_map: Vec<DockerArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    syscalls: Vec<DockerSyscall>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArchMap {
    #[serde(default, deserialize_with = "nullable")]
    architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    #[serde(default, deserialize_with = "nullable")]
    names: Vec<String>,
    /// Deprecated single-name form.
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    args: Vec<DockerArg>,
    #[serde(default)]
    includes: Option<DockerFilter>,
    #[serde(default)]
    excludes: Option<DockerFilter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArg {
    #[serde(default, deserialize_with = "nullable")]
    index: u32,
    #[serde(default, deserialize_with = "nullable")]
    value: u64,
    #[serde(default, deserialize_with = "nullable")]
    value_two: u64,
    #[serde(default, deserialize_with = "nullable")]
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerFilter {
    #[serde(default, deserialize_with = "nullable")]
    caps: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// A "<kernel>.<major>" version as moby's `KernelVersion`.
type KernelVersion = (u64, u64);

/// moby's `KernelVersion.UnmarshalJSON`: exactly two dot-separated numbers below 256,
/// not 0.0; the empty string is 0.0 (always satisfied).
fn parse_min_kernel(v: &str, field: &str) -> Result<KernelVersion> {
    if v.is_empty() {
        return Ok((0, 0));
    }
    let bad = |why: &str| {
        invalid(format!(
            "{field}: invalid kernel version {v:?}, expected \"<kernel>.<major>\"{why}"
        ))
    };
    let mut parts = v.splitn(3, '.');
    let (Some(k), Some(m), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(""));
    };
    let (Ok(k), Ok(m)) = (k.parse::<u8>(), m.parse::<u8>()) else {
        return Err(bad(""));
    };
    if k == 0 && m == 0 {
        return Err(bad(": version cannot be 0.0"));
    }
    Ok((u64::from(k), u64::from(m)))
}

/// The running kernel's "<kernel>.<major>", parsed like moby (`%d.%d` of the release).
fn running_kernel() -> Result<KernelVersion> {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(Error::io("uname", std::io::Error::last_os_error()));
    }
    let release: String = uts
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8 as char)
        .collect();
    parse_release(&release)
        .ok_or_else(|| Error::Seccomp(format!("failed to parse kernel version {release:?}")))
}

fn parse_release(release: &str) -> Option<KernelVersion> {
    let number = |s: &str| -> Option<(u64, usize)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        s[..digits].parse().ok().map(|n| (n, digits))
    };
    let (kernel, used) = number(release)?;
    let rest = release[used..].strip_prefix('.')?;
    let (major, _) = number(rest)?;
    Some((kernel, major))
}

/// Docker's conversion of its own profile format (seccomp-default.json: archMap,
/// syscalls with includes/excludes on caps/arches/minKernel) to an OCI `spec::Seccomp`
/// for the given capability set (names like "CAP_SYS_ADMIN") and the host architecture —
/// this is what dockerd does before handing the profile to runc; pierd calls it.
///
/// A profile without defaultAction and syscalls converts to an empty object, which
/// [`compile`] treats as "seccomp disabled" (moby returns no profile for it).
pub fn docker_profile_to_oci(
    profile_json: &[u8],
    capabilities: &[String],
) -> Result<spec::Seccomp> {
    let profile: DockerProfile = serde_json::from_slice(profile_json)
        .map_err(|e| invalid(format!("seccomp profile: {e}")))?;
    docker_convert(profile, capabilities, Arch::native(), running_kernel)
}

fn docker_convert(
    profile: DockerProfile,
    capabilities: &[String],
    host: Option<Arch>,
    kernel: impl Fn() -> Result<KernelVersion>,
) -> Result<spec::Seccomp> {
    const F: &str = "seccomp profile";
    if profile.default_action.is_empty() && profile.syscalls.is_empty() {
        return Ok(spec::Seccomp::default());
    }
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(invalid(format!(
            "{F}: both 'architectures' and 'archMap' are specified, \
             use either 'architectures' or 'archMap'"
        )));
    }
    // moby parses every minKernel while decoding, so a bad one fails the whole profile.
    let mut min_kernels = Vec::with_capacity(profile.syscalls.len());
    for (i, call) in profile.syscalls.iter().enumerate() {
        let parse = |filter: &Option<DockerFilter>, which: &str| {
            filter
                .as_ref()
                .and_then(|f| f.min_kernel.as_deref())
                .map(|v| parse_min_kernel(v, &format!("{F}: syscalls[{i}].{which}.minKernel")))
                .transpose()
        };
        min_kernels.push((
            parse(&call.includes, "includes")?,
            parse(&call.excludes, "excludes")?,
        ));
    }

    let mut architectures = profile.architectures;
    if let Some(host) = host {
        if let Some(entry) = profile
            .arch_map
            .iter()
            .find(|a| a.architecture == host.oci_name())
        {
            architectures.push(entry.architecture.clone());
            architectures.extend(entry.sub_architectures.iter().cloned());
        }
    }
    let host_name = host.and_then(Arch::docker_name).unwrap_or("");
    let has_cap = |c: &String| capabilities.contains(c);
    let mut kernel_cache: Option<KernelVersion> = None;
    let mut kernel_at_least = |min: KernelVersion| -> Result<bool> {
        let running = match kernel_cache {
            Some(k) => k,
            None => *kernel_cache.insert(kernel()?),
        };
        Ok(running >= min)
    };

    let mut syscalls = Vec::new();
    for (i, (call, (include_kernel, exclude_kernel))) in
        profile.syscalls.into_iter().zip(min_kernels).enumerate()
    {
        let mut names = call.names;
        if !call.name.is_empty() {
            if !names.is_empty() {
                return Err(invalid(format!(
                    "{F}: syscalls[{i}]: both 'name' and 'names' are specified, \
                     use either 'name' or 'names'"
                )));
            }
            names = vec![call.name];
        }
        if let Some(ex) = &call.excludes {
            if ex.arches.iter().any(|a| a == host_name) || ex.caps.iter().any(has_cap) {
                continue;
            }
            if let Some(min) = exclude_kernel {
                if kernel_at_least(min)? {
                    continue;
                }
            }
        }
        if let Some(inc) = &call.includes {
            if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host_name) {
                continue;
            }
            if !inc.caps.iter().all(has_cap) {
                continue;
            }
            if let Some(min) = include_kernel {
                if !kernel_at_least(min)? {
                    continue;
                }
            }
        }
        syscalls.push(spec::SeccompSyscall {
            names,
            action: call.action,
            errno_ret: call.errno_ret,
            args: call
                .args
                .into_iter()
                .map(|a| spec::SeccompArg {
                    index: a.index,
                    value: a.value,
                    value_two: a.value_two,
                    op: a.op,
                })
                .collect(),
        });
    }

    Ok(spec::Seccomp {
        default_action: profile.default_action,
        default_errno_ret: profile.default_errno_ret,
        architectures,
        flags: profile.flags,
        listener_path: profile.listener_path,
        listener_metadata: profile.listener_metadata,
        syscalls,
    })
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};

    const DOCKER_DEFAULT: &[u8] = include_bytes!("../tests/fixtures/seccomp/docker-default.json");

    fn docker_caps() -> Vec<String> {
        crate::caps::DOCKER_DEFAULT.map(String::from).to_vec()
    }

    fn profile(json: serde_json::Value) -> spec::Seccomp {
        serde_json::from_value(json).expect("test profile must deserialize")
    }

    fn invalid_msg(p: &spec::Seccomp) -> String {
        match validate(p) {
            Err(Error::InvalidConfig(msg)) => msg,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// Runs `f` in a forked child and returns its exit status (`Ok(code)`) or the signal
    /// that killed it (`Err(signal)`). The child only runs `f` and `_exit`s; a panic
    /// becomes exit code 255.
    fn in_child(f: impl FnOnce() -> i32) -> std::result::Result<i32, i32> {
        // SAFETY: the child never returns into the (multithreaded) test harness: it
        // runs `f`, which sticks to raw syscalls and the filter code, then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(255);
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
        if libc::WIFEXITED(status) {
            Ok(libc::WEXITSTATUS(status))
        } else {
            Err(libc::WTERMSIG(status))
        }
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// A raw syscall's result: the return value or the negated errno.
    fn raw(ret: libc::c_long) -> libc::c_long {
        if ret < 0 {
            -libc::c_long::from(errno())
        } else {
            ret
        }
    }

    #[test]
    fn validate_names_the_field() {
        let base = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"});
        let with = |patch: serde_json::Value| {
            let mut v = base.clone();
            for (k, val) in patch.as_object().expect("object").iter() {
                v[k] = val.clone();
            }
            profile(v)
        };
        assert!(validate(&with(serde_json::json!({}))).is_ok());

        let msg = invalid_msg(&with(serde_json::json!({"syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getcwd"], "action": "SCMP_ACT_FOO"}
        ]})));
        assert_eq!(
            msg,
            r#"linux.seccomp.syscalls[1].action: unknown action "SCMP_ACT_FOO""#
        );

        let msg = invalid_msg(&with(serde_json::json!({"defaultAction": "SCMP_ACT_NOPE"})));
        assert!(msg.starts_with("linux.seccomp.defaultAction:"), "{msg}");

        let msg = invalid_msg(&with(
            serde_json::json!({"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}),
        ));
        assert!(msg.starts_with("linux.seccomp.architectures[1]:"), "{msg}");

        let msg = invalid_msg(&with(
            serde_json::json!({"flags": ["SECCOMP_FILTER_FLAG_NOPE"]}),
        ));
        assert!(
            msg.starts_with("linux.seccomp.flags[0]: unknown flag"),
            "{msg}"
        );

        let msg = invalid_msg(&with(serde_json::json!({"syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 1, "op": "SCMP_CMP_XX"}]}
        ]})));
        assert!(
            msg.starts_with("linux.seccomp.syscalls[0].args[1].op:"),
            "{msg}"
        );

        let msg = invalid_msg(&with(serde_json::json!({"syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]})));
        assert!(
            msg.starts_with("linux.seccomp.syscalls[0].args[0].index:"),
            "{msg}"
        );

        let msg = invalid_msg(&with(serde_json::json!({"syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_KILL", "errnoRet": 5}
        ]})));
        assert!(
            msg.starts_with("linux.seccomp.syscalls[0].errnoRet:"),
            "{msg}"
        );

        let msg = invalid_msg(&with(serde_json::json!({"defaultErrnoRet": 1})));
        assert!(msg.starts_with("linux.seccomp.defaultErrnoRet:"), "{msg}");

        let msg = invalid_msg(&with(serde_json::json!({"syscalls": [
            {"names": ["getpid", ""], "action": "SCMP_ACT_ERRNO"}
        ]})));
        assert!(
            msg.starts_with("linux.seccomp.syscalls[0].names[1]:"),
            "{msg}"
        );

        let notify =
            serde_json::json!({"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
        let msg = invalid_msg(&with(notify.clone()));
        assert!(msg.starts_with("linux.seccomp.listenerPath:"), "{msg}");
        let mut ok = with(notify);
        ok.listener_path = Some("/run/agent.sock".into());
        assert!(validate(&ok).is_ok());

        let msg = invalid_msg(&with(
            serde_json::json!({"listenerPath": "/a", "syscalls": [
                {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}
            ]}),
        ));
        assert!(
            msg.starts_with("linux.seccomp.syscalls[0].names[0]:"),
            "{msg}"
        );

        let msg = invalid_msg(&with(
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a"}),
        ));
        assert!(msg.starts_with("linux.seccomp.defaultAction:"), "{msg}");

        let msg = invalid_msg(&with(serde_json::json!({"defaultAction": "", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
        ]})));
        assert_eq!(msg, "linux.seccomp.defaultAction: must be set");

        // A whole spec reports seccomp errors through Spec::validate too.
        let spec = spec::Spec::from_slice(
            serde_json::json!({
                "ociVersion": "1.2.0", "root": {"path": "rootfs"},
                "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["a"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["b"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["c"], "action": "SCMP_ACT_FOO"}
                ]}}
            })
            .to_string()
            .as_bytes(),
        );
        match spec {
            Err(Error::InvalidConfig(msg)) => assert_eq!(
                msg,
                r#"linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO""#
            ),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn translation() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone", "fork"], "action": "SCMP_ACT_TRACE",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                           "op": "SCMP_CMP_MASKED_EQ"},
                          {"index": 2, "value": 7, "op": "SCMP_CMP_LE"}]},
                {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }));
        let prog = translate(&p).expect("valid").expect("enabled");
        assert_eq!(
            prog.default_action,
            Action::Errno(1),
            "errno defaults to EPERM"
        );
        assert_eq!(prog.architectures, vec![Arch::X86, Arch::Aarch64]);
        assert_eq!(prog.flags, vec![(0, Flag::Log)]);
        // Two conditions on argument 1: runc splits them into two rules (OR).
        let kill: Vec<&Rule> = prog.rules.iter().filter(|r| r.syscall == "kill").collect();
        assert_eq!(kill.len(), 2);
        assert_eq!(
            kill[0].conditions,
            vec![ArgCmp {
                index: 1,
                op: CmpOp::Eq,
                value: 0
            }]
        );
        assert_eq!(
            kill[1].conditions,
            vec![ArgCmp {
                index: 1,
                op: CmpOp::Eq,
                value: 9
            }]
        );
        // Conditions on different arguments stay one rule (AND); one rule per name.
        let clone: Vec<&Rule> = prog.rules.iter().filter(|r| r.syscall == "clone").collect();
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0].conditions,
            vec![
                ArgCmp {
                    index: 0,
                    op: CmpOp::MaskedEq { mask: 2114060288 },
                    value: 0
                },
                ArgCmp {
                    index: 2,
                    op: CmpOp::Le,
                    value: 7
                },
            ]
        );
        assert_eq!(clone[0].action, Action::Trace(1));
        assert_eq!(clone[0].field, "linux.seccomp.syscalls[1].names[0]");
        assert!(prog.rules.iter().any(|r| r.syscall == "fork"));
        let reboot = prog
            .rules
            .iter()
            .find(|r| r.syscall == "reboot")
            .expect("reboot");
        assert_eq!(reboot.action, Action::KillThread);
        let getcwd = prog
            .rules
            .iter()
            .find(|r| r.syscall == "getcwd")
            .expect("getcwd");
        assert_eq!(getcwd.action, Action::Errno(38));
        assert_eq!(prog.names, ["kill", "clone", "fork", "reboot", "getcwd"]);

        // No default action and no syscalls: seccomp disabled, as in runc.
        assert!(translate(&spec::Seccomp::default())
            .expect("valid")
            .is_none());
        let off = compile(&spec::Seccomp::default()).expect("compiles");
        assert!(off.load().expect("no-op").is_none());
    }

    #[test]
    fn docker_default_profile() {
        let oci = docker_profile_to_oci(DOCKER_DEFAULT, &docker_caps()).expect("converts");
        assert_eq!(oci.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(oci.default_errno_ret, Some(1));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                oci.architectures,
                ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
            );
        }
        let rules_for = |oci: &spec::Seccomp, name: &str| -> Vec<spec::SeccompSyscall> {
            oci.syscalls
                .iter()
                .filter(|s| s.names.iter().any(|n| n == name))
                .cloned()
                .collect()
        };
        let allowed = |oci: &spec::Seccomp, name: &str| {
            rules_for(oci, name)
                .iter()
                .any(|s| s.action == "SCMP_ACT_ALLOW" && s.args.is_empty())
        };
        // ptrace comes from a rule with `includes.minKernel: 4.8`.
        for name in [
            "getpid",
            "read",
            "write",
            "execve",
            "openat",
            "arch_prctl",
            "ptrace",
        ] {
            assert!(allowed(&oci, name), "{name} must be allowed");
        }
        // CAP_SYS_ADMIN-only syscalls stay out; clone gets the namespace-flag mask and
        // clone3 ENOSYS instead.
        for name in ["mount", "unshare", "setns", "keyctl", "reboot", "acct"] {
            assert!(!allowed(&oci, name), "{name} must not be allowed");
        }
        let clone = rules_for(&oci, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args[0].op, "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0].args[0].value, 0x7E02_0000);
        let clone3 = rules_for(&oci, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(
            (clone3[0].action.as_str(), clone3[0].errno_ret),
            ("SCMP_ACT_ERRNO", Some(38))
        );
        validate(&oci).expect("the converted profile is valid");
        let filter = compile(&oci).expect("compiles");
        assert!(!filter.uses_notify());

        // With CAP_SYS_ADMIN.
        let mut caps = docker_caps();
        caps.push("CAP_SYS_ADMIN".into());
        let admin = docker_profile_to_oci(DOCKER_DEFAULT, &caps).expect("converts");
        for name in ["mount", "unshare", "setns", "clone", "clone3"] {
            assert!(
                allowed(&admin, name),
                "{name} must be allowed with CAP_SYS_ADMIN"
            );
        }
        assert!(rules_for(&admin, "clone3")
            .iter()
            .all(|s| s.action == "SCMP_ACT_ALLOW"));
        compile(&admin).expect("compiles");
    }

    #[test]
    fn docker_conversion_rules() {
        let json = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "flags": null,
            "archMap": [
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
                {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}
            ],
            "syscalls": [
                {"name": "old", "action": "SCMP_ACT_ALLOW", "args": null, "comment": "x"},
                {"names": ["arm"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["arm", "arm64"]}},
                {"names": ["notarm"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"arches": ["arm64"]}},
                {"names": ["twocaps"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_A", "CAP_B"]}},
                {"names": ["exa"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"caps": ["CAP_Z", "CAP_A"]}},
                {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.10"}},
                {"names": ["old2"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}},
                {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.0"}}
            ]
        });
        let parse = || serde_json::from_value::<DockerProfile>(json.clone()).expect("parses");
        let kernel = || Ok((6, 1));
        let caps = ["CAP_A".to_string()];
        let out = docker_convert(parse(), &caps, Some(Arch::Aarch64), kernel).expect("converts");
        let names: Vec<&str> = out
            .syscalls
            .iter()
            .flat_map(|s| s.names.iter().map(String::as_str))
            .collect();
        assert_eq!(names, ["old", "arm", "new"]);
        assert_eq!(out.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);

        let caps = ["CAP_A".to_string(), "CAP_B".to_string()];
        let out =
            docker_convert(parse(), &caps, Some(Arch::Riscv64), || Ok((5, 4))).expect("converts");
        let names: Vec<&str> = out
            .syscalls
            .iter()
            .flat_map(|s| s.names.iter().map(String::as_str))
            .collect();
        assert_eq!(names, ["old", "notarm", "twocaps", "old2"]);
        assert_eq!(out.architectures, ["SCMP_ARCH_RISCV64"]);

        // Errors, with where they are.
        let bad = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["b"], "name": "c", "action": "SCMP_ACT_ALLOW"}
        ]});
        let err = docker_profile_to_oci(bad.to_string().as_bytes(), &[]).expect_err("name+names");
        assert!(
            err.to_string()
                .contains("syscalls[1]: both 'name' and 'names'"),
            "{err}"
        );
        let bad = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5"}}
        ]});
        let err = docker_profile_to_oci(bad.to_string().as_bytes(), &[]).expect_err("bad version");
        assert!(
            err.to_string().contains("syscalls[0].excludes.minKernel"),
            "{err}"
        );
        let bad = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86"],
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}]});
        assert!(docker_profile_to_oci(bad.to_string().as_bytes(), &[]).is_err());
        assert!(docker_profile_to_oci(b"{", &[]).is_err());
        // Nothing to filter: an empty (disabled) profile, as moby returns none.
        let empty = docker_profile_to_oci(b"{}", &[]).expect("converts");
        assert!(empty.default_action.is_empty() && empty.syscalls.is_empty());

        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parse_release("garbage"), None);
        assert_eq!(parse_min_kernel("4.8", "f").expect("ok"), (4, 8));
        assert!(parse_min_kernel("0.0", "f").is_err());
        assert!(parse_min_kernel("4.8.1", "f").is_err());
        assert!(parse_min_kernel("256.1", "f").is_err());
    }

    #[test]
    fn enosys_stub_shape() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getpid", "read"], "action": "SCMP_ACT_ALLOW"}]
        }));
        let prog = translate(&p).expect("valid").expect("enabled");
        let stub = enosys_stub(&prog).expect("stub");
        assert!(!stub.is_empty());
        // Every `ja` lands inside the stub or right at its end (the libseccomp filter).
        for (pc, insn) in stub.iter().enumerate() {
            let code = u32::from(insn.code);
            if code == libc::BPF_JMP | libc::BPF_JA {
                assert!(pc + 1 + insn.k as usize <= stub.len());
            } else if code & 0x07 == libc::BPF_JMP {
                assert!(pc + 1 + usize::from(insn.jt.max(insn.jf)) < stub.len());
            }
        }
        // Permissive defaults get no stub.
        let allow = profile(serde_json::json!({"defaultAction": "SCMP_ACT_LOG",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}));
        let prog = translate(&allow).expect("valid").expect("enabled");
        assert!(enosys_stub(&prog).expect("stub").is_empty());
    }

    #[test]
    fn flags_compile() {
        for flags in [
            serde_json::json!([]),
            serde_json::json!(["SECCOMP_FILTER_FLAG_TSYNC"]),
            serde_json::json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
        ] {
            let p = profile(
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": flags,
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}),
            );
            let f = compile(&p).expect("compiles");
            assert_eq!(
                f.flags & libc::SECCOMP_FILTER_FLAG_TSYNC as u32,
                0,
                "TSYNC is ignored"
            );
        }
    }

    #[test]
    fn kernel_errno_and_args() {
        if !is_root() {
            eprintln!("skipped: needs root (CAP_SYS_ADMIN to load without no_new_privs)");
            return;
        }
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["getcwd", "not_a_syscall_libseccomp_knows"],
                 "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
                {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
                 "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOTTY,
                 "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 63, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}
            ]
        }));
        let filter = compile(&p).expect("compiles");
        let code = in_child(|| {
            if !matches!(filter.load(), Ok(None)) {
                return 100;
            }
            let mut buf = [0u8; 256];
            // SAFETY: `buf` is writable for its length.
            let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
            if raw(r) != -42 {
                return 101;
            }
            let dir = c"/nonexistent-pier-seccomp-test/x";
            // SAFETY: `dir` is a valid C string.
            let r =
                unsafe { libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, dir.as_ptr(), 0o700) };
            if raw(r) != -libc::c_long::from(libc::EXDEV) {
                return 102;
            }
            // Another mode does not match: the kernel's own ENOENT comes back.
            // SAFETY: as above.
            let r =
                unsafe { libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, dir.as_ptr(), 0o755) };
            if raw(r) != -libc::c_long::from(libc::ENOENT) {
                return 103;
            }
            // Two conditions on one argument are OR-ed: signal 0 matches the first.
            // SAFETY: signal 0 to ourselves only checks permissions.
            let r = unsafe { libc::syscall(libc::SYS_kill, libc::getpid(), 0) };
            if raw(r) != -libc::c_long::from(libc::ENOTTY) {
                return 104;
            }
            0
        });
        assert_eq!(code, Ok(0));
    }

    #[test]
    fn kernel_kill_process() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let p = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]}));
        let filter = compile(&p).expect("compiles");
        let status = in_child(|| {
            if filter.load().is_err() {
                return 100;
            }
            // SAFETY: getppid has no preconditions.
            unsafe { libc::getppid() };
            101
        });
        assert_eq!(status, Err(libc::SIGSYS));
    }

    #[test]
    fn kernel_docker_default() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let oci = docker_profile_to_oci(DOCKER_DEFAULT, &docker_caps()).expect("converts");
        let filter = compile(&oci).expect("compiles");
        let code = in_child(|| {
            if !matches!(filter.load(), Ok(None)) {
                return 100;
            }
            let mut failed = 0;
            // SAFETY: getpid has no preconditions.
            if raw(unsafe { libc::syscall(libc::SYS_getpid) }) <= 0 {
                failed |= 1;
            }
            // SAFETY: unshare only takes flags; it is expected to be refused.
            if raw(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) })
                != -libc::c_long::from(libc::EPERM)
            {
                failed |= 2;
            }
            // SAFETY: KEYCTL_GET_KEYRING_ID (0) with integer arguments; expected refused.
            if raw(unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) })
                != -libc::c_long::from(libc::EPERM)
            {
                failed |= 4;
            }
            // clone3 without CAP_SYS_ADMIN: ENOSYS so libcs fall back to clone.
            // SAFETY: a null clone_args is never used: the filter answers first.
            if raw(unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) })
                != -libc::c_long::from(libc::ENOSYS)
            {
                failed |= 8;
            }
            // A number beyond every syscall the profile names: the ENOSYS stub.
            // SAFETY: no such syscall; nothing is passed.
            if raw(unsafe { libc::syscall(1000) }) != -libc::c_long::from(libc::ENOSYS) {
                failed |= 16;
            }
            failed
        });
        assert_eq!(code, Ok(0), "bit mask of failed checks");
    }

    #[test]
    fn kernel_notify_listener() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("pier-seccomp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock_path = dir.join("agent.sock");
        let _ = std::fs::remove_file(&sock_path);
        let listener = std::os::unix::net::UnixListener::bind(&sock_path).expect("bind");
        let p = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock_path,
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}));
        let filter = compile(&p).expect("compiles");
        assert!(filter.uses_notify());
        let listener_flags = (libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) as u32;
        assert_eq!(filter.flags, listener_flags);
        let state = br#"{"ociVersion":"1.2.0","fds":["seccompFd"],"pid":1}"#;

        // SAFETY: the child only loads the filter, sends the fd, makes one syscall and
        // `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                let Ok(Some(fd)) = filter.load() else {
                    return 100;
                };
                if send_to_listener(&sock_path, state, fd.as_fd()).is_err() {
                    return 101;
                }
                drop(fd);
                // SAFETY: getppid has no preconditions; the agent answers for it.
                let r = unsafe { libc::syscall(libc::SYS_getppid) };
                if r == 4242 {
                    0
                } else {
                    102
                }
            })();
            // SAFETY: ends the child without returning into the harness.
            unsafe { libc::_exit(code) };
        }

        // The agent side: accept, take the payload and the fd, answer one notification.
        // Wait for the connection with a timeout so a failing child cannot hang the test.
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 10_000) } != 1 {
            let mut status = 0;
            // SAFETY: reaps our own child (killing it first if it is stuck).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child did not connect (wait status {status:#x})");
        }
        let (conn, _) = listener.accept().expect("accept");
        let mut payload = vec![0u8; 4096];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(&mut payload)];
        let msg = rustix::net::recvmsg(
            &conn,
            &mut iov,
            &mut control,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        )
        .expect("recvmsg");
        let mut got: Vec<OwnedFd> = Vec::new();
        for m in control.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(fds) = m {
                got.extend(fds);
            }
        }
        assert_eq!(&payload[..msg.bytes], state);
        assert_eq!(got.len(), 1);
        let notify_fd = got.remove(0);
        let mut pfd = libc::pollfd {
            fd: notify_fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 10_000) };
        assert_eq!(ready, 1, "no notification within 10 s");
        let req = libseccomp::ScmpNotifReq::receive(notify_fd.as_raw_fd()).expect("receive");
        assert_eq!(
            req.data.syscall,
            ScmpSyscall::from_name("getppid").expect("getppid")
        );
        libseccomp::ScmpNotifResp::new_val(req.id, 4242, libseccomp::ScmpNotifRespFlags::empty())
            .respond(notify_fd.as_raw_fd())
            .expect("respond");

        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(libc::WIFEXITED(status), "child killed: {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
