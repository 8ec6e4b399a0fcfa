//! The OCI runtime spec (`config.json`, runtime-spec 1.x) as minibox's one description of a
//! container.
//!
//! Two front ends describe containers, and both go through a `Spec` to reach the runtime:
//!
//! ```text
//! run flags ─(cli::run: docker's defaults, each flag checked)─▶ draft ContainerSpec
//!           ─spec_from_container─▶ Spec   (what `minibox spec` prints)
//! DIR/config.json ─load─▶ Spec            (`minibox run --bundle DIR ID`)
//! Spec ─container_from_spec (every field checked)─▶ ContainerSpec ─▶ launcher, init
//! ```
//!
//! `container_from_spec` is the only way to the launcher: whatever a bundle may not ask for,
//! flags cannot slip past either, and `minibox spec` prints exactly what a run uses. The checked
//! form stays a small type of minibox's own rather than `Spec` itself: it holds only what
//! minibox does, each value already decided (a canonical rootfs, one capability set, limits in
//! the kernel's units), so the launcher and init never re-read optional JSON.
//!
//! What the spec has no field for travels in annotations:
//! - `org.minibox.network`: `private` (own network namespace, `lo` up), `none` (own namespace,
//!   `lo` down), `host` (no network namespace), `container:NAME` (no namespace of its own: that
//!   container's), or the name of a minibox network (`bridge`...: own namespace, plugged into
//!   it). Without it: `private` when `linux.namespaces` has `network`, else `host`. A `network`
//!   namespace with a `path` joins that namespace (e.g. `/proc/PID/ns/net`).
//! - `org.minibox.ip`, `org.minibox.dns`, `org.minibox.add-hosts`,
//!   `org.minibox.network-aliases`: `--ip`, `--dns`, `--add-host`, `--network-alias`
//!   (comma-separated lists).
//! - `org.minibox.ports`: published ports, comma-separated, each in `-p`'s syntax
//!   `HOST_IP:HOST_PORT:CONTAINER_PORT/tcp`.
//! - `org.minibox.init`: `true` for `--init` (a tiny init is PID 1 and runs process.args as
//!   its child, forwarding signals and reaping zombies).
//! - `org.minibox.seccomp`: what to call `linux.seccomp` for people (`docker default`, a
//!   profile file's path); the filter itself is `linux.seccomp`, resolved for the container's
//!   capabilities. Without `linux.seccomp` a bundle's container has no filter, as in runc.
//!
//! How a run is called and told about (its name, `--explain`, `-d`, `--rm`) is not part of the
//! container: the caller sets those. A bundle without `hostname` gets the short id (docker's
//! default); without `linux.cgroupsPath`, the group `minibox/<id>`. A cgroupsPath is placed as
//! `--cgroup-parent` is: below the cgroup2 root, or below minibox's own group on cgroup v1,
//! whether it starts with `/` or not.
//!
//! A field minibox cannot honour yet is refused by name, never ignored: above all one whose
//! absence would weaken isolation (seccomp, AppArmor, SELinux). The mounts, paths, namespaces,
//! devices, rlimits and the rest of what init sets up are read and written by `model::setup`.
//! Properties the runtime spec does not define are ignored, as it requires.
//!
//! - `read`: config.json → model, every field checked;
//! - `write`: model → config.json;
//! - `refuse`: what minibox cannot honour, refused by name;
//! - `annotations`: the names of what travels in annotations.

pub mod annotations;
pub mod read;
pub mod refuse;
pub mod rootless;
pub mod write;

#[cfg(test)]
mod tests;
