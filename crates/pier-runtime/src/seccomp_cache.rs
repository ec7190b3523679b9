//! A cache of compiled seccomp filters, in the state root.
//!
//! Compiling Docker's default profile with libseccomp costs some 30 ms of CPU, more
//! than all the rest of `create`, and nearly every container brings the same profile.
//! So a compiled filter is kept in `<root>/.seccomp-cache@/` (no container ID can
//! contain `@`), and the next create with the same profile, the same runtime binary,
//! libseccomp and kernel loads it instead of compiling.
//!
//! An entry is used only if it holds exactly the key it was made for: the profile's
//! JSON and what else the compiled program depends on (the runtime binary's identity,
//! libseccomp's version and API level, the kernel release, the architecture). The file
//! name is only a hash of that key, so a hash collision costs a compile, never a wrong
//! filter. Entries are written to a temporary file and renamed into place, and read
//! only from a root-owned directory and files no one else can write. Anything odd
//! (unreadable, foreign owner, short, another key) means: compile as if there were no
//! cache. The cache never fails a create.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::seccomp::{self, Filter};
use crate::spec;

/// The cache's directory in a state root.
pub const DIR_NAME: &str = ".seccomp-cache@";
/// First bytes of an entry (the format's version is in it).
const MAGIC: &[u8; 8] = b"PIERBPF1";
/// Entries kept; a write beyond it clears the others first (profiles are few).
const MAX_ENTRIES: usize = 32;

/// Compiles `profile`, or loads the filter compiled for it before from the cache in
/// `root` (a state root), storing a newly compiled one there.
pub fn compile(profile: &spec::Seccomp, root: &Path) -> Result<Filter> {
    let Some(key) = key(profile) else {
        return seccomp::compile(profile);
    };
    let dir = root.join(DIR_NAME);
    let file = dir.join(format!("{:016x}", hash(&key)));
    if let Some(filter) = read(&file, &key) {
        return Ok(filter);
    }
    let filter = seccomp::compile(profile)?;
    if let Err(e) = write(&dir, &file, &key, &filter) {
        crate::log::debug(&format!("seccomp cache: not stored: {e}"));
    }
    Ok(filter)
}

/// What a compiled filter depends on, as bytes; None if something cannot be known
/// (then nothing is cached).
fn key(profile: &spec::Seccomp) -> Option<Vec<u8>> {
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let lib = libseccomp::ScmpVersion::current().ok()?;
    let uname = rustix::system::uname();
    let mut key = format!(
        "pier-runtime {} exe {}:{}:{}.{} libseccomp {}.{}.{} api {} kernel {} {}\n",
        env!("CARGO_PKG_VERSION"),
        exe.ino(),
        exe.size(),
        exe.mtime(),
        exe.mtime_nsec(),
        lib.major,
        lib.minor,
        lib.micro,
        libseccomp::get_api(),
        uname.release().to_string_lossy(),
        std::env::consts::ARCH,
    )
    .into_bytes();
    serde_json::to_writer(&mut key, profile).ok()?;
    Some(key)
}

fn hash(key: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// The entry at `file` if it is sound, ours alone, and made for `key`.
fn read(file: &Path, key: &[u8]) -> Option<Filter> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(file)
        .ok()?;
    let meta = f.metadata().ok()?;
    let dir_meta = std::fs::symlink_metadata(file.parent()?).ok()?;
    let euid = rustix::process::geteuid().as_raw();
    let private = |m: &std::fs::Metadata| m.uid() == euid && m.mode() & 0o022 == 0;
    if !meta.is_file() || !private(&meta) || !dir_meta.is_dir() || !private(&dir_meta) {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut bytes).ok()?;
    let mut r = Reader(&bytes);
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let key_len = r.u32()? as usize;
    if r.take(key_len)? != key {
        return None;
    }
    let flags = r.u32()?;
    let notify = r.take(1)?[0] != 0;
    let count = r.u32()? as usize;
    if count > libc::BPF_MAXINSNS as usize {
        return None;
    }
    let insns = r
        .take(count.checked_mul(8)?)?
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if !r.0.is_empty() {
        return None;
    }
    Some(Filter::from_parts(insns, flags, notify))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn write(dir: &Path, file: &Path, key: &[u8], filter: &Filter) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    if entries.len() >= MAX_ENTRIES {
        for e in entries {
            let _ = std::fs::remove_file(e);
        }
    }
    let (insns, flags, notify) = filter.parts();
    let key_len = u32::try_from(key.len()).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(key.len() + insns.len() * 8 + 32);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&key_len.to_ne_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&flags.to_ne_bytes());
    bytes.push(u8::from(notify));
    bytes.extend_from_slice(&(insns.len() as u32).to_ne_bytes());
    for i in insns {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.push(i.jt);
        bytes.push(i.jf);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&bytes))
        .and_then(|()| std::fs::rename(&tmp, file));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(errno_syscall: &str) -> spec::Seccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [errno_syscall], "action": "SCMP_ACT_ERRNO"}]
        }))
        .expect("profile")
    }

    #[test]
    fn a_cached_filter_is_the_compiled_one_and_only_for_its_profile() {
        let root = tempfile::tempdir().expect("temp dir");
        let keyctl = profile("keyctl");
        let compiled = seccomp::compile(&keyctl).expect("compile");
        let first = compile(&keyctl, root.path()).expect("first");
        let entries: Vec<_> = std::fs::read_dir(root.path().join(DIR_NAME))
            .expect("cache dir")
            .flatten()
            .collect();
        assert_eq!(entries.len(), 1, "one entry");
        let entry = entries[0].path();
        let cached = read(&entry, &key(&keyctl).expect("key")).expect("entry readable");
        for f in [&first, &cached] {
            assert_eq!(f.parts().0.len(), compiled.parts().0.len());
            assert!(f.parts().0.iter().zip(compiled.parts().0).all(|(a, b)| (
                a.code, a.jt, a.jf, a.k
            ) == (
                b.code, b.jt, b.jf, b.k
            )));
            assert_eq!(f.parts().1, compiled.parts().1);
        }
        // Another profile never gets this entry, even under its file name.
        assert!(read(&entry, &key(&profile("unshare")).expect("key")).is_none());
        // A file others could have written is not trusted.
        let mut perms = std::fs::metadata(&entry).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o622);
        std::fs::set_permissions(&entry, perms).expect("chmod");
        assert!(read(&entry, &key(&keyctl).expect("key")).is_none());
        // A truncated entry is not used either.
        let bytes = std::fs::read(&entry).expect("read");
        std::fs::write(&entry, &bytes[..bytes.len() - 3]).expect("truncate");
        let mut perms = std::fs::metadata(&entry).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&entry, perms).expect("chmod");
        assert!(read(&entry, &key(&keyctl).expect("key")).is_none());
        // ... and is replaced by the next compile.
        compile(&keyctl, root.path()).expect("again");
        assert!(read(&entry, &key(&keyctl).expect("key")).is_some());
    }
}
