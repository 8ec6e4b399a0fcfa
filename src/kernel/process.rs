//! What the kernel keeps per process besides credentials: resource limits (`process.rlimits`),
//! the names of the signals it delivers,
//! the OOM killer's preference (`process.oomScoreAdj`), the namespaced kernel knobs of
//! `linux.sysctl`, and which descriptors survive the exec.

use anyhow::{Context, Result};

/// One `process.rlimits` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// config.json's name, `RLIMIT_NOFILE`...
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// The kernel's number of an `RLIMIT_*` name.
pub fn resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// Sets each limit for us and all we exec. Raising a hard limit needs CAP_SYS_RESOURCE (in the
/// host's user namespace), so this runs before the identity change.
pub fn set_rlimits(limits: &[Rlimit]) -> Result<()> {
    for l in limits {
        let Some(res) = resource(&l.name) else {
            anyhow::bail!("process.rlimits: {} is not known", l.name);
        };
        let value = libc::rlimit {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        // SAFETY: setrlimit reads the struct we pass, which lives across the call.
        let rc = unsafe { libc::setrlimit(res, &value) };
        nix::errno::Errno::result(rc).with_context(|| {
            format!(
                "setrlimit({}, soft {}, hard {}): a hard limit above the host's needs \
                 CAP_SYS_RESOURCE on the host (not in a user namespace)",
                l.name, l.soft, l.hard
            )
        })?;
    }
    Ok(())
}

/// `process.oomScoreAdj`: how eagerly the OOM killer picks us (lowering it needs
/// CAP_SYS_RESOURCE, so before the identity change).
pub fn set_oom_score_adj(adj: Option<i32>) -> Result<()> {
    let Some(adj) = adj else { return Ok(()) };
    std::fs::write("/proc/self/oom_score_adj", adj.to_string())
        .with_context(|| format!("writing {adj} to /proc/self/oom_score_adj"))
}

/// `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    let bad =
        || anyhow::anyhow!("invalid signal {text:?}: use a name such as TERM or KILL, or a number");
    if let Ok(n) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| bad())
}

/// Whether a sysctl belongs to a namespace the container has, as runc decides: `Some(ns)`
/// names the namespace it needs (`ipc`, `network`, `uts`), `None` if it is the host's alone.
pub fn sysctl_namespace(key: &str) -> Option<&'static str> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
    ];
    let ipc_prefixes = ["kernel.shm", "kernel.msg", "fs.mqueue."];
    if ipc.contains(&key) || ipc_prefixes.iter().any(|p| key.starts_with(p)) {
        return Some("ipc");
    }
    if key.starts_with("net.") {
        return Some("network");
    }
    if key == "kernel.domainname" || key == "kernel.hostname" {
        return Some("uts");
    }
    None
}

/// Writes each sysctl through `/proc/sys`: a namespaced knob's file speaks for the namespace
/// of whoever opens it, ours.
pub fn write_sysctls(sysctls: &[(String, String)]) -> Result<()> {
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value)
            .with_context(|| format!("linux.sysctl {key}={value:?}: writing {path}"))?;
    }
    Ok(())
}

/// No descriptor of ours reaches the program we exec but 0, 1, 2 and the `preserved` ones after
/// them (3 .. 3+preserved, which lose their close-on-exec flag): all others close on exec.
pub fn close_fds_on_exec(preserved: u32) -> Result<()> {
    let first = 3u32.saturating_add(preserved);
    crate::kernel::fds::mark_cloexec_from(first)?;
    // The ones kept lose their close-on-exec flag (the caller's may have it set).
    for fd in 3..first as i32 {
        // SAFETY: only flags change; an fd that is not open answers EBADF, ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_sysctls_are_told_from_the_hosts() {
        assert_eq!(sysctl_namespace("net.ipv4.ip_forward"), Some("network"));
        assert_eq!(sysctl_namespace("kernel.shmmax"), Some("ipc"));
        assert_eq!(sysctl_namespace("kernel.sem"), Some("ipc"));
        assert_eq!(sysctl_namespace("fs.mqueue.msg_max"), Some("ipc"));
        assert_eq!(sysctl_namespace("kernel.domainname"), Some("uts"));
        assert_eq!(sysctl_namespace("kernel.pid_max"), None);
        assert_eq!(sysctl_namespace("vm.overcommit_memory"), None);
        assert_eq!(sysctl_namespace("kernel.semx"), None);
    }

    #[test]
    fn rlimit_names_are_the_kernels() {
        assert_eq!(resource("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(resource("RLIMIT_FOO"), None);
        assert_eq!(resource("NOFILE"), None);
    }
}
