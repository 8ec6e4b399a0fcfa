//! What minibox cannot honour is refused by name, never ignored: above all a field whose
//! absence would weaken isolation (AppArmor, SELinux), and what another platform's runtime
//! would run (Windows, Solaris, VMs).

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{Linux, Process, Spec};

pub(crate) fn check_version(version: &str) -> Result<()> {
    if version.is_empty() {
        bail!("ociVersion is missing: give the runtime-spec version, e.g. \"1.1.0\"");
    }
    match version.split('.').next().map(str::parse::<u64>) {
        Some(Ok(1)) => Ok(()),
        _ => bail!(
            "ociVersion {version:?} is not supported: minibox reads runtime-spec 1.x \
             (e.g. \"1.1.0\")"
        ),
    }
}

pub(crate) fn refuse_outside_linux(oci: &Spec) -> Result<()> {
    for (field, set) in [
        ("solaris", oci.solaris().is_some()),
        ("windows", oci.windows().is_some()),
        ("vm", oci.vm().is_some()),
        ("zos", oci.zos().is_some()),
    ] {
        if set {
            bail!("{field} is not supported: minibox runs Linux containers in namespaces");
        }
    }
    Ok(())
}

/// What no process of minibox's can have, a container's first or an exec'd one: refused by
/// name, since running without it would weaken the isolation asked for (or it is Windows').
pub(crate) fn refuse_unenforceable(p: &Process) -> Result<()> {
    if p.command_line().is_some() {
        bail!("process.commandLine is not supported (Windows only): give process.args");
    }
    for (field, value) in [
        ("apparmorProfile", p.apparmor_profile()),
        ("selinuxLabel", p.selinux_label()),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_empty()) {
            bail!(
                "process.{field} is not supported: minibox cannot apply it, and running without \
                 it would weaken the container's isolation"
            );
        }
    }
    Ok(())
}

pub(crate) fn refuse_process_extras(p: &Process) -> Result<()> {
    // (ioPriority, scheduler, execCPUAffinity: model/process_attrs.rs.)
    refuse_unenforceable(p)
}

/// A field minibox does not apply, refused by name with why and the runtime spec's section
/// (`config-linux.md#...`).
pub(crate) fn unsupported<T>(field: &str, why: &str, section: &str) -> Result<T> {
    Err(anyhow!(
        "{field} is not supported: {why} (runtime-spec {section})"
    ))
}

pub(crate) fn refuse_linux_extras(l: &Linux) -> Result<()> {
    if l.mount_label().as_ref().is_some_and(|m| !m.is_empty()) {
        return unsupported(
            "linux.mountLabel",
            "minibox has no SELinux support, and mounting without the label would weaken the \
             container's isolation",
            "config-linux.md#mount-label",
        );
    }
    if l.intel_rdt().is_some() {
        let why = match std::path::Path::new("/sys/fs/resctrl/schemata").exists() {
            false => "this host has no Intel RDT (no resctrl filesystem at /sys/fs/resctrl)",
            true => "minibox does not drive resctrl; leave it out",
        };
        return unsupported("linux.intelRdt", why, "config-linux.md#intelrdt");
    }
    if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        return unsupported(
            "linux.timeOffsets",
            "minibox makes the time namespace but writes no offsets into it; leave it out",
            "config-linux.md#offset-for-time-namespace",
        );
    }
    Ok(())
}
