//! Subcommands that report process and system state: credentials,
//! capabilities, environment, pids, file descriptors, network interfaces.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;

use crate::{out_bytes_line, outln, Error, Result};

/// Highest file descriptor probed by `fds`.
const MAX_PROBED_FD: i32 = 4095;

/// `id`: `uid=R euid=E suid=S gid=R egid=E sgid=S groups=G1,G2`.
pub fn id(_: &[&OsStr]) -> Result {
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    // SAFETY: the three pointers refer to live, writable `uid_t` locals.
    if unsafe { libc::getresuid(&mut ruid, &mut euid, &mut suid) } != 0 {
        return Err(Error::last_os("getresuid"));
    }
    let (mut rgid, mut egid, mut sgid) = (0, 0, 0);
    // SAFETY: as above, for `gid_t`.
    if unsafe { libc::getresgid(&mut rgid, &mut egid, &mut sgid) } != 0 {
        return Err(Error::last_os("getresgid"));
    }
    let groups = supplementary_groups()?
        .iter()
        .map(|gid| gid.to_string())
        .collect::<Vec<_>>()
        .join(",");
    outln!("uid={ruid} euid={euid} suid={suid} gid={rgid} egid={egid} sgid={sgid} groups={groups}")
}

/// The supplementary group IDs, from getgroups(2).
fn supplementary_groups() -> Result<Vec<libc::gid_t>> {
    // SAFETY: with a size of 0 the list is not touched, only counted.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(count) else {
        return Err(Error::last_os("getgroups"));
    };
    let mut groups: Vec<libc::gid_t> = vec![0; len];
    // SAFETY: `groups` has room for `count` entries.
    let count = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    let Ok(len) = usize::try_from(count) else {
        return Err(Error::last_os("getgroups"));
    };
    groups.truncate(len);
    Ok(groups)
}

/// `status`: the `Cap*`, `NoNewPrivs` and `Seccomp*` lines of
/// /proc/self/status, verbatim.
pub fn status(_: &[&OsStr]) -> Result {
    const PATH: &str = "/proc/self/status";
    let text = fs::read_to_string(PATH).map_err(|err| Error::io(PATH, &err))?;
    for line in text.lines() {
        if ["Cap", "NoNewPrivs", "Seccomp"]
            .iter()
            .any(|prefix| line.starts_with(prefix))
        {
            outln!("{line}")?;
        }
    }
    Ok(())
}

/// `env`: every environment variable as `KEY=VALUE`, in `environ` order.
pub fn env(_: &[&OsStr]) -> Result {
    for (key, value) in std::env::vars_os() {
        let mut line = key.as_bytes().to_vec();
        line.push(b'=');
        line.extend_from_slice(value.as_bytes());
        out_bytes_line(&line)?;
    }
    Ok(())
}

/// `cwd`: the current working directory (getcwd).
pub fn cwd(_: &[&OsStr]) -> Result {
    let dir = std::env::current_dir().map_err(|err| Error::io("getcwd", &err))?;
    out_bytes_line(dir.as_os_str().as_bytes())
}

/// `hostname`: the nodename field of uname(2).
pub fn hostname(_: &[&OsStr]) -> Result {
    // SAFETY: `utsname` is plain C data (arrays of chars): all zeros is valid.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a live, writable `utsname`.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(Error::last_os("uname"));
    }
    // The name ends at the first NUL; `c_char` is signed, so cast each byte.
    let name: Vec<u8> = uts
        .nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    out_bytes_line(&name)
}

/// `pid`: `pid=P ppid=Q`.
pub fn pid(_: &[&OsStr]) -> Result {
    let pid = std::process::id();
    let ppid = std::os::unix::process::parent_id();
    outln!("pid={pid} ppid={ppid}")
}

/// `pids`: the numeric entries of /proc (visible processes), sorted.
pub fn pids(_: &[&OsStr]) -> Result {
    let entries = fs::read_dir("/proc").map_err(|err| Error::io("/proc", &err))?;
    let mut pids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| Error::io("/proc", &err))?;
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    for pid in pids {
        outln!("{pid}")?;
    }
    Ok(())
}

/// `fds`: `fds=0,1,2`, every open file descriptor up to 4095.
///
/// Nothing opens a descriptor before this probe (see `main`), so the list
/// is exactly what the process inherited.
pub fn fds(_: &[&OsStr]) -> Result {
    let open: Vec<String> = (0..=MAX_PROBED_FD)
        // SAFETY: F_GETFD only reads the descriptor flags; it fails with
        // EBADF for descriptors that are not open.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .map(|fd| fd.to_string())
        .collect();
    outln!("fds={}", open.join(","))
}

/// `ifaces`: `NAME up` or `NAME down` for each entry of /sys/class/net,
/// sorted by name, from the IFF_UP bit of its hexadecimal `flags` file.
pub fn ifaces(_: &[&OsStr]) -> Result {
    const NET: &str = "/sys/class/net";
    const IFF_UP: u32 = 0x1;
    let mut names = fs::read_dir(NET)
        .and_then(|entries| {
            entries
                .map(|entry| entry.map(|e| e.file_name()))
                .collect::<io::Result<Vec<_>>>()
        })
        .map_err(|err| Error::io(NET, &err))?;
    names.sort();
    for name in names {
        let path = format!("{NET}/{}/flags", name.to_string_lossy());
        let text = fs::read_to_string(&path).map_err(|err| Error::io(&path, &err))?;
        let hex = text.trim().trim_start_matches("0x");
        let flags = u32::from_str_radix(hex, 16)
            .map_err(|_| Error::Failed(format!("{path}: bad flags {:?}", text.trim())))?;
        let state = if flags & IFF_UP != 0 { "up" } else { "down" };
        outln!("{} {state}", name.to_string_lossy())?;
    }
    Ok(())
}
