//! `minibox run`'s flags become the container model: docker's defaults, then each flag checked
//! and applied. A bad flag costs nothing and leaves nothing behind.

use std::io::stdin;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::cli::RunArgs;
use crate::kernel::caps;
use crate::kernel::cgroup::{self, Limits};
use crate::kernel::net::{Network, PortMapping};
use crate::model::spec::{
    build_env, check_hostname, check_name, check_rootfs, check_workdir, new_id, read_in_rootfs,
    ContainerSpec, SHORT_ID_LEN,
};
use crate::model::user;
use crate::runtime::status::StatusError;
use crate::runtime::terminal;

/// Decides a container from `minibox run`'s arguments, checking each before anything is made.
pub fn spec_from_run_args(args: &RunArgs) -> Result<ContainerSpec> {
    // docker's check and words: typing into a terminal needs one to type on.
    if args.tty && args.interactive && !args.detach && !terminal::is_terminal(stdin().as_fd()) {
        bail!(StatusError {
            code: 1,
            message: "the input device is not a TTY".into()
        });
    }
    let rootfs = check_rootfs(&args.rootfs)?;
    let id = new_id()?;
    if let Some(name) = &args.name {
        check_name(name)?;
    }
    let hostname = match &args.hostname {
        Some(h) => check_hostname(h)?,
        None => id[..SHORT_ID_LEN].to_string(),
    };
    let workdir = check_workdir(&args.workdir)?;

    let passwd = read_in_rootfs(&rootfs, "etc/passwd")?;
    let group = read_in_rootfs(&rootfs, "etc/group")?;
    let identity = user::resolve(args.user.as_deref(), passwd.as_deref(), group.as_deref())?;

    let capabilities = caps::resolve(identity.uid, &args.cap_add, &args.cap_drop)?;
    if identity.uid != 0 && !args.cap_add.is_empty() {
        say!(
            "minibox: warning: --cap-add has no effect for a non-root user (uid {}): \
             a non-root process keeps no capabilities; use --user 0 to keep some",
            identity.uid
        );
    }

    let limits = parse_limits(args)?;
    let network = Network::parse(&args.network)?;
    let ports = args
        .publish
        .iter()
        .map(|p| PortMapping::parse(p))
        .collect::<Result<Vec<_>>>()?;
    if network == Network::Host && !ports.is_empty() {
        bail!("-p cannot be used with --network host: the container already uses the host's ports");
    }
    let mut env = build_env(&args.env, &hostname, &identity.home, |k| {
        std::env::var(k).ok()
    })?;
    // A terminal needs a type for programs to drive it: docker's default, unless -e TERM=.
    if args.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }

    Ok(ContainerSpec {
        id,
        name: args.name.clone(),
        rootfs,
        args: args.command.clone(),
        env,
        hostname,
        workdir,
        identity,
        capabilities,
        read_only: args.read_only,
        limits,
        cgroup_parent: PathBuf::from(&args.cgroup_parent),
        network,
        ports,
        explain: args.explain,
        tty: args.tty,
        init: args.init,
    })
}

fn parse_limits(args: &RunArgs) -> Result<Limits> {
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Limits {
        memory: args
            .memory
            .as_deref()
            .map(cgroup::parse_memory)
            .transpose()?,
        cpu_quota: args
            .cpus
            .as_deref()
            .map(|c| cgroup::parse_cpus(c, host_cpus))
            .transpose()?,
        pids: args
            .pids_limit
            .as_deref()
            .map(cgroup::parse_pids)
            .transpose()?,
    })
}
