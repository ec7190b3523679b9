//! Times as Docker writes and shows them (re-exported from `pier-time`, which the
//! runtime and the daemon share).

pub use pier_time::*;
