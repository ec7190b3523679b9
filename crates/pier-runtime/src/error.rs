//! Typed errors of the runtime library. The binary adds context with `anyhow` and maps
//! them to runc-compatible messages and exit codes.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json is malformed or asks for something unsupported.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A system call or file operation failed.
    // The cause is part of the message (not a `source`), so it is printed once.
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
    /// No container of that id is known under the runtime root.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container of that id is already known under the runtime root.
    #[error("container with id exists: {0}")]
    AlreadyExists(String),
    /// The container id has characters or a length runc refuses too.
    #[error("invalid container id {0:?}: use only [a-zA-Z0-9_+.-], at most 1024 characters")]
    InvalidId(String),
    /// The container is not in a state that allows the operation.
    #[error("{0}")]
    InvalidState(String),
    /// A cgroup could not be created, configured or removed.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// The seccomp profile could not be compiled or loaded.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// The container's init process reported a failure while setting up.
    #[error("container init: {0}")]
    Init(String),
    /// A hook failed or timed out.
    #[error("{0}")]
    Hook(String),
}

impl Error {
    pub fn io(context: impl Into<String>, cause: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause,
        }
    }

    /// The OS error number behind this error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { cause, .. } => cause.raw_os_error(),
            _ => None,
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(errno: rustix::io::Errno) -> Self {
        Error::io("system call", errno.into())
    }
}

/// Adds a context string to `io::Result`s and rustix results.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(context(), source))
    }
}

impl<T> Context<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::io(context(), errno.into()))
    }
}
