//! Builds the tiny init that `run --init` makes a container's PID 1 (init/src/main.rs): the
//! file alone, with rustc, statically linked (it must run in a rootfs with no C library), and
//! stripped. minibox embeds the result (`runtime::pid1`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    refuse_a_static_build_with_a_shared_libseccomp();
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

/// A `+crt-static` minibox linked against libseccomp.so builds, then dies at its first
/// instruction that needs the library (a static executable has no dynamic loader to resolve
/// it: SIGSEGV before `--version` prints). libseccomp-sys links the shared library unless told
/// otherwise, so a static build must say `LIBSECCOMP_LINK_TYPE=static` (and where libseccomp.a
/// is): refused here, with what to do, rather than crashing later.
fn refuse_a_static_build_with_a_shared_libseccomp() {
    println!("cargo:rerun-if-env-changed=LIBSECCOMP_LINK_TYPE");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let static_crt = features.split(',').any(|f| f == "crt-static");
    let link = std::env::var("LIBSECCOMP_LINK_TYPE").unwrap_or_default();
    assert!(
        !static_crt || link == "static",
        "a static minibox (target-feature=+crt-static) needs libseccomp linked statically too: \
         set LIBSECCOMP_LINK_TYPE=static and LIBSECCOMP_LIB_PATH=$(pkg-config --variable=libdir \
         libseccomp) (Debian: apt-get install libseccomp-dev), as tests/static-build.sh does"
    );
}
