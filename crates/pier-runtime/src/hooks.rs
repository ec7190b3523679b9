//! OCI hooks: run a program with the container state on stdin, honouring its timeout.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::spec::Hook;

/// Runs each hook in order; the first failure stops the chain.
pub fn run_all(kind: &str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        // runc's wording, which callers match on: "error running hook #N: ...".
        run(hook, state)
            .map_err(|e| Error::Hook(format!("{kind}: error running hook #{i}: {e}")))?;
    }
    Ok(())
}

fn run(hook: &Hook, state: &[u8]) -> std::result::Result<(), String> {
    // Exactly the spec's program and environment, nothing of the runtime's: a bare
    // name is not looked up in the runtime's PATH (as `Command` would) but is a file
    // of the current directory, as runc's exec of it.
    let bare = !hook.path.as_os_str().as_encoded_bytes().contains(&b'/');
    let program = if bare {
        Path::new(".").join(&hook.path)
    } else {
        hook.path.clone()
    };
    let mut cmd = Command::new(program);
    {
        use std::os::unix::process::CommandExt;
        match hook.args.split_first() {
            Some((arg0, rest)) => cmd.arg0(arg0).args(rest),
            None => cmd.arg0(&hook.path),
        };
    }
    cmd.env_clear();
    for kv in &hook.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("fork/exec {}: {e}", hook.path.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("timeout: hook was killed".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().map_err(|e| format!("wait: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}, stdout: {}, stderr: {}",
            go_exit_status(&out.status),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// An exit status as Go prints it ("exit status 1", "signal: bad system call"), which
/// is what users of runc see and what tools match.
fn go_exit_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    let Some(sig) = status.signal() else {
        return status.to_string();
    };
    // SAFETY: strsignal returns a pointer to a static or thread-local string, copied
    // right away; this process is single-threaded.
    let name = unsafe {
        let p = libc::strsignal(sig);
        if p.is_null() {
            return format!("signal: {sig}");
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    let mut chars = name.chars();
    let lower: String = chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    format!("signal: {lower}")
}
