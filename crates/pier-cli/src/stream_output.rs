//! Where an export's byte stream goes: the `-o FILE` the user named (written whole or
//! not at all) or stdout, which must not be a terminal. Shared by `pier export` and
//! `pier volume export`.

use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

/// Docker's refusal to write an archive to a terminal when no `-o` is given.
pub fn refuse_terminal_stdout(output: Option<&str>) -> Result<()> {
    if output.is_none() && io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    Ok(())
}

/// Copies `body` to `output` (or stdout); `failure` words the error ("failed to
/// export volume").
pub fn write_stream(body: &mut impl Read, output: Option<&str>, failure: &str) -> Result<()> {
    match output {
        Some(path) => {
            // Into a temporary file beside the target, renamed when complete: a failed
            // export never leaves a truncated file under the name asked for.
            let dir = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("{failure}: {path}"))?;
            io::copy(body, &mut tmp).context(failure.to_string())?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .map_err(|e| anyhow!("{failure}: {}", e.error))?;
        }
        None => {
            let mut out = io::stdout().lock();
            io::copy(body, &mut out).context(failure.to_string())?;
            out.flush()?;
        }
    }
    Ok(())
}
