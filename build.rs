//! Builds the tiny init that `run --init` makes a container's PID 1 (init/src/main.rs): the
//! file alone, with rustc, statically linked (it must run in a rootfs with no C library), and
//! stripped. minibox embeds the result (`runtime::pid1`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "init/src/main.rs";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "minibox_init",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(out.join("minibox-init"))
        .arg(source)
        .status()
        .expect("running rustc for init/src/main.rs");
    assert!(
        status.success(),
        "building the static init (init/src/main.rs) failed: a static build needs the C \
         library's static archive (Debian: apt-get install libc6-dev)"
    );
}
