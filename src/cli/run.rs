//! `minibox run`'s flags become the container model: docker's defaults, then each flag checked
//! and applied. A bad flag costs nothing and leaves nothing behind.
//!
//! Both forms of `run` reach the launcher through the OCI description (see `model::oci`):
//! `ROOTFS CMD` drafts a container from the flags and turns it into the config.json that
//! `minibox spec` prints; `--bundle DIR ID` reads DIR/config.json. Either way
//! `oci::container_from_spec` makes the one checked `ContainerSpec` the launcher sees.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

use crate::cli::images;
use crate::cli::RunArgs;
use crate::kernel::caps;
use crate::kernel::cgroup::{self, Limits};
use crate::kernel::net::{Network, PortMapping};
use crate::model::spec::{
    build_env, check_hostname, check_name, check_rootfs, check_workdir, new_id, read_in_root,
    ContainerSpec, SHORT_ID_LEN,
};
use crate::model::volume::{self, ImageUse, VolumeMount};
use crate::model::{oci, user};

/// The container `minibox run` makes, from a bundle or from the flags; always through a `Spec`.
pub fn container_from_run_args(args: &RunArgs, data_root: &Path) -> Result<ContainerSpec> {
    let (oci, bundle, id, name) = match &args.bundle {
        Some(dir) => {
            let name = bundle_id(args)?;
            (oci::load(dir)?, dir.clone(), new_id()?, Some(name))
        }
        None => {
            let draft = spec_from_run_args(args, data_root)?;
            let oci = oci::spec_from_container(&draft);
            (oci, PathBuf::from("/"), draft.id, draft.name)
        }
    };
    let checked = oci::container_from_spec(&oci, &bundle, &id)?;
    Ok(ContainerSpec {
        name,
        explain: args.explain,
        // A bundle's root is its maker's; a ROOTFS of the user's, or an image, is never written.
        private_layer: args.bundle.is_none() || checked.private_layer,
        ..checked
    })
}

/// `run --bundle DIR ID`: the OCI id becomes the container's name (ps, stop, logs find it by
/// that); the program comes from config.json, never from the command line.
fn bundle_id(args: &RunArgs) -> Result<String> {
    if !args.command.is_empty() {
        bail!(
            "with --bundle, give only the container's ID after the flags (got {:?} too): the \
             program to run is config.json's process.args",
            args.command
        );
    }
    let id = args.rootfs.to_string_lossy().into_owned();
    check_name(&id).map_err(|_| {
        anyhow::anyhow!("invalid container ID {id:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed")
    })?;
    Ok(id)
}

/// Drafts a container from `minibox run`'s flags, checking each before anything is made.
/// The positional ROOTFS is a directory, or else an image of the store under `data_root`,
/// whose config gives the defaults the flags override (as docker's).
pub fn spec_from_run_args(args: &RunArgs, data_root: &Path) -> Result<ContainerSpec> {
    let (rootfs, image) = match check_rootfs(&args.rootfs) {
        Ok(dir) => (dir, None),
        Err(not_dir) => match images::find_for_run(data_root, &args.rootfs)? {
            Some((image, config)) => (image.lower[0].clone(), Some((image, config))),
            None => bail!(
                "{not_dir:#}; nor is it an image in the store {} (minibox images lists them; \
                 minibox load or pull adds one)",
                data_root.display()
            ),
        },
    };
    let config = image.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
    let image = image.map(|(i, _)| i);
    let id = new_id()?;
    if let Some(name) = &args.name {
        check_name(name)?;
    }
    let hostname = match &args.hostname {
        Some(h) => check_hostname(h)?,
        None => id[..SHORT_ID_LEN].to_string(),
    };
    let workdir = match (&args.workdir, &config.working_dir) {
        (Some(w), _) => check_workdir(w)?,
        (None, Some(w)) if !w.is_empty() => PathBuf::from("/").join(w),
        _ => PathBuf::from("/"),
    };
    let command = command_of(args, &config, image.as_ref())?;

    let passwd = read_in_root(&rootfs, image.as_ref(), "etc/passwd")?;
    let group = read_in_root(&rootfs, image.as_ref(), "etc/group")?;
    let user = args
        .user
        .as_deref()
        .or(config.user.as_deref().filter(|u| !u.is_empty()));
    let identity = user::resolve(user, passwd.as_deref(), group.as_deref())?;

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
    // The image's Env first (only KEY=VALUE entries: an image never reads the host's), then -e.
    let env_flags: Vec<String> = config
        .env
        .iter()
        .filter(|e| e.contains('='))
        .chain(&args.env)
        .cloned()
        .collect();
    let env = build_env(&env_flags, &hostname, &identity.home, |k| {
        std::env::var(k).ok()
    })?;
    let volumes = volumes_of(args, data_root)?;

    let cgroup_path = check_cgroup_parent(&args.cgroup_parent)?.join(&id);
    Ok(ContainerSpec {
        id,
        name: args.name.clone(),
        rootfs,
        args: command,
        env,
        hostname,
        workdir,
        identity,
        capabilities,
        read_only: args.read_only,
        limits,
        cgroup_path,
        network,
        ports,
        explain: args.explain,
        private_layer: true,
        image,
        volumes,
    })
}

/// docker's rule: `--entrypoint` replaces the image's Entrypoint (and drops its Cmd); CMD
/// arguments replace the Cmd.
fn command_of(
    args: &RunArgs,
    config: &images::RunConfig,
    image: Option<&ImageUse>,
) -> Result<Vec<String>> {
    let Some(image) = image else {
        if args.command.is_empty() {
            bail!(
                "the following required arguments were not provided: <CMD>: give the program to \
                 run after ROOTFS"
            );
        }
        return Ok(args.command.clone());
    };
    let entrypoint = match &args.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => config.entrypoint.clone(),
    };
    let cmd = if !args.command.is_empty() {
        args.command.clone()
    } else if args.entrypoint.is_some() {
        vec![]
    } else {
        config.cmd.clone()
    };
    let all: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if all.is_empty() {
        bail!(
            "the image {} has no Entrypoint or Cmd: give the program to run after the image",
            image.reference
        );
    }
    Ok(all)
}

fn volumes_of(args: &RunArgs, data_root: &Path) -> Result<Vec<VolumeMount>> {
    let mut all = vec![];
    for v in &args.volume {
        all.push(volume::parse_volume(v, data_root)?);
    }
    for m in &args.mount {
        all.push(volume::parse_mount(m, data_root)?);
    }
    for t in &args.tmpfs {
        all.push(volume::parse_tmpfs(t)?);
    }
    let mut seen = std::collections::HashSet::new();
    for v in &all {
        if !seen.insert(v.target.clone()) {
            bail!(
                "{} is mounted twice: give each container path once",
                v.target.display()
            );
        }
    }
    Ok(all)
}

/// `--cgroup-parent`: a path of groups (a leading `/` changes nothing), never climbing out.
fn check_cgroup_parent(parent: &str) -> Result<PathBuf> {
    let mut clean = PathBuf::new();
    for part in Path::new(parent).components() {
        match part {
            Component::Normal(name) => clean.push(name),
            Component::RootDir | Component::CurDir => {}
            _ => bail!("invalid --cgroup-parent {parent:?}: use a path of cgroups, without '..'"),
        }
    }
    Ok(clean)
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
