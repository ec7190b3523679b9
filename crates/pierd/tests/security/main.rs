//! The security suite: one module per hole found in review (each a regression test that
//! failed before its fix), plus the classes that already held, so they stay held.
//! Every test runs against a pierd of its own; `docs/SECURITY.md` is the threat model
//! these tests check.

mod archive_paths;
#[path = "../common/mod.rs"]
mod common;
mod confinement;
mod cp_symlinks;
mod devices;
mod fuzz;
mod host_users;
mod masked_paths;
mod oom;
mod pids_limit;
mod races;
mod runtime_escapes;
mod runtime_overwrite;
mod support;
mod userns;
