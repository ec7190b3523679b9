//! Compiles `src/init.rs` into a static executable (`$OUT_DIR/pier-init`): the C
//! library linked in (`+crt-static`), so it runs in images without one. A crate of its
//! own cannot ask cargo for static linking of one binary; rustc can.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/init.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("pier-init");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "pier_init",
        ])
        .args(["--target", &target])
        .args(["-C", "target-feature=+crt-static"])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=2",
            "-C",
            "strip=symbols",
        ])
        .arg("-o")
        .arg(&out)
        .arg("src/init.rs")
        .status()
        .expect("run rustc for pier-init");
    assert!(status.success(), "compiling src/init.rs failed");
}
