//! The parent side of a container: start it, wait for it, clean up after it.

use anyhow::Result;

use crate::channel;
use crate::init;
use crate::namespaces;
use crate::signals::{self, Forwarder};
use crate::spec::ContainerSpec;
use crate::status;

/// Runs the container in the foreground; returns the status minibox should exit with.
pub fn run(spec: &ContainerSpec) -> Result<i32> {
    // Held from now on, so that no signal meant for the container is lost before it exists.
    let forwarder = Forwarder::block()?;
    let (parent, child) = channel::pair()?;
    let pid = namespaces::clone_into_new_namespaces(namespaces::container_namespaces(), || {
        parent.close_in_child();
        init::container_main(spec, &child)
    })?;
    drop(child);
    parent.send_go()?;
    if let Err(setup_failed) = parent.wait_for_exec() {
        signals::reap(pid);
        return Err(setup_failed);
    }
    let ended = forwarder.forward_until_exit(pid)?;
    Ok(status::from_wait(ended).unwrap_or(status::RUNTIME_FAILED))
}
