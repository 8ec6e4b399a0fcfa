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

pub(crate) fn refuse_linux_extras(l: &Linux) -> Result<()> {
    let not_yet = |field: &str| Err(anyhow!("linux.{field} is not supported yet"));
    if l.mount_label().as_ref().is_some_and(|m| !m.is_empty()) {
        bail!(
            "linux.mountLabel is not supported: minibox has no SELinux support, and mounting \
             without the label would weaken the container's isolation"
        );
    }
    if l.intel_rdt().is_some() {
        bail!("linux.intelRdt is not supported");
    }
    if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        return not_yet("timeOffsets (time namespaces)");
    }
    Ok(())
}
