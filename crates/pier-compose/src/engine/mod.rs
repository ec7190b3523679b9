//! pier compose's engine side: what a project becomes on a Docker engine, and the
//! executor that makes the engine match.
//!
//! - [`labels`]: docker compose v2's contract: names, labels, the config hash;
//! - [`create`]: a service's container create request;
//! - [`api`]: the engine operations compose uses, over `pier_api::client`;
//! - [`converge`]: `up` (networks, volumes, images, containers in dependency order,
//!   recreation by config hash, `depends_on` conditions, `--wait`) and `down`.

pub mod api;
pub mod converge;
pub mod create;
pub mod labels;

/// Progress lines on stderr, in docker compose's plain (non-TTY) form:
/// ` Container p-web-1  Started`.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub quiet: bool,
}

impl Progress {
    pub fn event(&self, kind: &str, name: &str, what: &str) {
        if !self.quiet {
            eprintln!(" {kind} {name}  {what}");
        }
    }

    pub fn warn(&self, message: &str) {
        eprintln!("WARN[0000] {message}");
    }
}
