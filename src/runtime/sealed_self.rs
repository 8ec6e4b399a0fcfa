//! `minibox exec` runs from a sealed copy of itself (runc CVE-2019-5736).
//!
//! The process that joins a container's namespaces is minibox until it execs CMD: while it
//! is, `/proc/PID/exe` of it names minibox's own executable, and a container process that
//! reaches that link (or has the joining process exec it, through a `#!/proc/self/exe` script
//! planted as CMD) could open the host's binary and rewrite it. So, before it joins anything,
//! `minibox exec` re-executes itself from a memfd holding a copy of its binary, sealed against
//! any write, growth or shrink: from then on its `exe` is that copy, which nobody can change,
//! and the host's file is out of every container process's reach. The re-exec happens while
//! minibox is still wholly on the host, where its dynamic loader and libraries are.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use nix::fcntl::{AtFlags, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

/// Set in the environment of the sealed copy, so that it does not copy itself again.
const MARKER: &str = "_MINIBOX_SEALED_EXEC";

/// Returns in the sealed copy (having wiped the marker); in the original, becomes the copy
/// and never returns, unless making it failed.
pub fn become_sealed_copy() -> Result<()> {
    if std::env::var_os(MARKER).is_some() && running_from_memfd() {
        // Nothing of the marker reaches CMD or a child of ours.
        std::env::remove_var(MARKER);
        return Ok(());
    }
    let copy = sealed_copy_of_self()?;
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).context("an argument holds a NUL byte"))
        .collect::<Result<_>>()?;
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != MARKER)
        .filter_map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            CString::new(entry).ok()
        })
        .collect();
    envp.push(CString::new(format!("{MARKER}=1")).expect("no NUL"));
    let Err(errno) = nix::unistd::execveat(&copy, c"", &argv, &envp, AtFlags::AT_EMPTY_PATH);
    Err(errno).context("re-executing minibox from its sealed copy (execveat of the memfd)")
}

/// Whether this process runs from a memfd (the marker alone could come from the caller).
fn running_from_memfd() -> bool {
    std::fs::read_link("/proc/self/exe")
        .is_ok_and(|p| p.as_os_str().as_bytes().starts_with(b"/memfd:"))
}

/// A close-on-exec memfd holding minibox's binary, sealed: no write, no resize, no new seal.
fn sealed_copy_of_self() -> Result<File> {
    let fd = memfd_create(
        // What /proc/PID/exe then shows: `/memfd:minibox-exec (deleted)`.
        c"minibox-sealed",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .context("memfd_create for minibox's sealed copy")?;
    let mut copy = File::from(fd);
    let mut me = File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    // std's copy uses copy_file_range/sendfile: the bytes never pass through our memory.
    std::io::copy(&mut me, &mut copy).context("copying minibox into its memfd")?;
    let seals = SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SEAL;
    nix::fcntl::fcntl(&copy, FcntlArg::F_ADD_SEALS(seals)).context("sealing minibox's copy")?;
    Ok(copy)
}
