//! `pierd`: the daemon. Flags follow dockerd's names; the work is in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything else: a descriptor inherited from whoever started pierd (a host
    // directory above all) would reach every container through the runtime
    // (CVE-2024-21626). pierd needs none but stdio.
    // SAFETY: nothing in this process owns a descriptor yet.
    unsafe { pier_runtime::process::close_fds_except(3, &[]) };
    // The per-container monitor: decided before anything else, so that it stays a
    // single-threaded process (no async runtime) that forks and execs the runtime.
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new("monitor")) {
        let Some(config) = args.next() else {
            eprintln!("usage: pierd monitor CONFIG");
            return ExitCode::FAILURE;
        };
        let code = pierd::monitor::main(std::path::Path::new(&config));
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let config = pierd::config::DaemonConfig::parse();
    match pierd::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pierd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
