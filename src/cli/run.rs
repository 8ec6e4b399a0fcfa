//! `minibox run`'s flags become the container model: docker's defaults, then each flag checked
//! and applied. A bad flag costs nothing and leaves nothing behind.
//!
//! Both forms of `run` reach the launcher through the OCI description (see `model::oci`):
//! `ROOTFS CMD` drafts a container from the flags and turns it into the config.json that
//! `minibox spec` prints; `--bundle DIR ID` reads DIR/config.json. Either way
//! `oci::container_from_spec` makes the one checked `ContainerSpec` the launcher sees.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::RunArgs;
use crate::kernel::caps;
use crate::kernel::cgroup::{self, Limits};
use crate::kernel::net::{Network, PortMapping};
use crate::model::spec::{
    build_env, check_hostname, check_name, check_oci_id, check_rootfs, check_workdir, new_id,
    read_in_rootfs, ContainerSpec, SHORT_ID_LEN,
};
use crate::model::{oci, user};

/// The container `minibox run` makes, from a bundle or from the flags; always through a `Spec`.
pub fn container_from_run_args(args: &RunArgs) -> Result<ContainerSpec> {
    let bundle_dir = bundle_of(args)?;
    let (oci, bundle, id, name) = match &bundle_dir {
        Some(dir) => {
            // The OCI id is the container's own id, and its name (ps, stop, logs find it).
            let id = bundle_id(args)?;
            (oci::load(dir)?, dir.clone(), id.clone(), Some(id))
        }
        None => {
            let draft = spec_from_run_args(args)?;
            let oci = oci::spec_from_container(&draft);
            (oci, PathBuf::from("/"), draft.id, draft.name)
        }
    };
    let checked = oci::container_from_spec(&oci, &bundle, &id)?;
    Ok(ContainerSpec {
        name,
        explain: args.explain,
        // A bundle's root is its maker's; a ROOTFS of the user's is never written.
        private_layer: bundle_dir.is_none(),
        ..checked
    })
}

/// The bundle `run` runs, if it runs one: `--bundle DIR`, or runc's default, the current
/// directory, when the only argument is an ID (`minibox run ID`: CMD is required otherwise, so
/// the two forms never meet) and ./config.json exists.
pub fn bundle_of(args: &RunArgs) -> Result<Option<PathBuf>> {
    if let Some(dir) = &args.bundle {
        return Ok(Some(absolute(dir)?));
    }
    if !args.command.is_empty() {
        return Ok(None);
    }
    let id = args.rootfs.to_string_lossy();
    if check_oci_id(&id).is_ok() && Path::new("config.json").is_file() {
        return Ok(Some(absolute(Path::new("."))?));
    }
    bail!(
        "the following required arguments were not provided: <CMD>...: give the program to run \
         after ROOTFS (or, for an OCI bundle, --bundle DIR ID)"
    )
}

/// The bundle's absolute path (state reports it so; hooks and engines read it).
fn absolute(dir: &Path) -> Result<PathBuf> {
    dir.canonicalize()
        .with_context(|| format!("--bundle {}: cannot open it", dir.display()))
}

/// `run --bundle DIR ID`: the program comes from config.json, never from the command line.
fn bundle_id(args: &RunArgs) -> Result<String> {
    if !args.command.is_empty() {
        bail!(
            "with --bundle, give only the container's ID after the flags (got {:?} too): the \
             program to run is config.json's process.args",
            args.command
        );
    }
    let id = args.rootfs.to_string_lossy().into_owned();
    check_oci_id(&id)?;
    Ok(id)
}

/// Drafts a container from `minibox run`'s flags, checking each before anything is made.
pub fn spec_from_run_args(args: &RunArgs) -> Result<ContainerSpec> {
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
    let env = build_env(&args.env, &hostname, &identity.home, |k| {
        std::env::var(k).ok()
    })?;

    let cgroup_path = check_cgroup_parent(&args.cgroup_parent)?.join(&id);
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
        cgroup_path,
        network,
        ports,
        explain: args.explain,
        private_layer: true,
        hooks: Default::default(),
        terminal: None,
    })
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
