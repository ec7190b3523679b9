//! `COPY --chmod` / `ADD --chmod` values: octal (`755`, `0644`) or symbolic
//! (`u+x,g-w,o=r`, `a+X`), as BuildKit accepts them.

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    /// The comma-separated clauses, applied in order to each file's current mode.
    Symbolic(String),
}

/// A value that is neither octal nor symbolic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chmod parameter {value:?}")]
pub struct ChmodError {
    pub value: String,
}

impl Chmod {
    /// Parses an (expanded) `--chmod` value.
    pub fn parse(value: &str) -> Result<Chmod, ChmodError> {
        Err(ChmodError {
            value: value.to_string(),
        })
    }

    /// The permission bits (0o7777) a file or directory gets, from its current mode.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let _ = is_dir;
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(_) => mode & 0o7777,
        }
    }
}
