//! `--init`: a tiny init as the container's PID 1, as docker's `--init` (tini). It starts CMD as
//! its child, passes on every signal it gets, reaps every zombie, and exits with CMD's status
//! (128+N if CMD died of signal N). CMD is then not PID 1: the signals it does not handle act
//! on it (SIGTERM ends it, so `stop` takes milliseconds, not 10 s).
//!
//! The init is a program of its own (init/src/main.rs), static so that it runs in any rootfs,
//! embedded in minibox by build.rs. For each `--init` run it is written into a memfd sealed
//! against any change, before the container exists; the container's first process execs that
//! descriptor as the last step of its setup, in place of CMD (so the init has exactly CMD's
//! identity, capabilities, no_new_privs and seccomp filter). No process of the container ever
//! runs a file of the host's, so none can reach one through `/proc/PID/exe` and rewrite it
//! (runc CVE-2019-5736), and the copy it does run cannot be written to.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use nix::fcntl::{FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

/// The init, statically linked (built by build.rs).
const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/minibox-init"));

/// The init's name, its argv[0].
pub const NAME: &str = "minibox-init";

/// The init in a memfd, sealed: no write, no resize, no new seal. Close-on-exec: only the
/// container's first process, which execs it, ever holds it past the exec.
pub fn sealed() -> Result<OwnedFd> {
    let fd = memfd_create(
        c"minibox-init",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .context("memfd_create for the container's init (--init)")?;
    let mut file = File::from(fd);
    file.write_all(INIT)
        .context("writing the container's init into its memfd")?;
    let seals = SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SEAL;
    nix::fcntl::fcntl(&file, FcntlArg::F_ADD_SEALS(seals))
        .context("sealing the container's init")?;
    Ok(file.into())
}

/// The init's argv: its name, the path of CMD (resolved in the container), then CMD's argv.
pub fn argv(path: &CStr, args: &[CString]) -> Vec<CString> {
    let mut argv = vec![CString::new(NAME).expect("no NUL"), path.to_owned()];
    argv.extend(args.iter().cloned());
    argv
}
