//! `linux.netDevices` (runtime-spec config-linux.md "Network Devices"): host network devices
//! moved into the container's network namespace, renamed as asked, with their addresses (the
//! spec: their attributes are preserved; a move drops addresses, so they are put back). When
//! the namespace goes, the kernel returns a physical device to the host's initial namespace and
//! destroys a virtual one.

use std::fs::File;

use anyhow::{anyhow, Context, Result};

use crate::kernel::netlink::Netlink;

/// Moves each `(host name, name inside)` into `netns` (an open network namespace file). Runs
/// in minibox's own network namespace, before the container's process goes on.
pub fn move_into(devices: &[(String, String)], netns: &File) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let mut host = Netlink::open()?;
    for (name, inside) in devices {
        let index = host.link_index(name)?.ok_or_else(|| {
            anyhow!("linux.netDevices: {name} is no network device of this host (ip link)")
        })?;
        let addresses = host.global_addresses_of(index)?;
        host.move_link(index, netns, inside)
            .with_context(|| format!("linux.netDevices: moving {name}"))?;
        let mut there = Netlink::open_in(netns)?;
        let moved = there.link_index(inside)?.ok_or_else(|| {
            anyhow!("linux.netDevices: {name} is not in the container as {inside}")
        })?;
        for a in addresses {
            there.restore_address(moved, a)?;
        }
    }
    Ok(())
}
