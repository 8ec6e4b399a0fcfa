//! `minibox run`'s flags become the container model: docker's defaults, then each flag checked
//! and applied. A bad flag costs nothing and leaves nothing behind.
//!
//! Both forms of `run` reach the launcher through the OCI description (see `model::oci`):
//! `ROOTFS CMD` drafts a container from the flags and turns it into the config.json that
//! `minibox spec` prints; `--bundle DIR ID` reads DIR/config.json. Either way
//! `oci::read::container_from_spec` makes the one checked `ContainerSpec` the launcher sees.

use std::io::stdin;
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::images;
use crate::cli::RunArgs;
use crate::kernel::caps::{self, CapsHashSet};
use crate::kernel::cgroup::{self, Limits};
use crate::kernel::namespaces::Kind;
use crate::kernel::seccomp::SeccompProfile;
use crate::model::names::{check_hostname, check_name};
use crate::model::network::{NetOptions, Network, PortMapping};
use crate::model::setup::{self, Setup};
use crate::model::spec::{
    build_env, check_oci_id, check_rootfs, check_workdir, new_id, parse_env_file, read_in_root,
    root_arg, ContainerSpec, RootArg, StopPolicy, SHORT_ID_LEN,
};
use crate::model::userns::Userns;
use crate::model::volume::{self, ImageUse, VolumeMount};
use crate::model::{oci, user};
use crate::runtime::status::StatusError;
use crate::runtime::terminal;
use crate::store::images::Images;
use crate::store::volumes;

/// The container `minibox run` makes, from a bundle or from the flags; always through a `Spec`.
pub fn container_from_run_args(args: &RunArgs, data_root: &Path) -> Result<ContainerSpec> {
    let bundle_dir = bundle_of(args)?;
    let (oci, bundle, id, name, volumes, stop, pids_default, auto_ids) = match &bundle_dir {
        Some(dir) => {
            // The OCI id is the container's own id, and its name (ps, stop, logs find it).
            let id = bundle_id(args)?;
            (
                oci::read::load(dir)?,
                dir.clone(),
                id.clone(),
                Some(id),
                vec![],
                Default::default(),
                false,
                None,
            )
        }
        None => {
            let mut draft = spec_from_run_args(args, data_root)?;
            // Named volumes are made on first use (seeded from the image), before their
            // directories are checked as bind sources.
            if draft.volumes.iter().any(VolumeMount::is_named) {
                volumes::prepare(&Images::open(data_root)?, &draft)?;
            }
            // -v, --mount and --tmpfs join the mount list after docker's own mounts.
            let extra: Vec<_> = draft
                .volumes
                .iter()
                .map(oci::write::volume_mount_of)
                .collect();
            draft
                .setup
                .mounts
                .extend(setup::checked_mounts(&extra, Path::new("/"))?);
            let oci = oci::write::spec_from_container(&draft);
            (
                oci,
                PathBuf::from("/"),
                draft.id,
                draft.name,
                draft.volumes,
                draft.stop,
                // config.json cannot say a limit is a default: kept beside it.
                draft.limits.pids_default,
                draft.auto_ids,
            )
        }
    };
    let checked = oci::read::container_from_spec(&oci, &bundle, &id)?;
    Ok(ContainerSpec {
        name,
        explain: args.explain.is_some(),
        // What -v and --mount asked for, as `ps` and `inspect` show it (mounted as above).
        volumes,
        // How `stop` ends it: the flags' (config.json has no word for it).
        stop,
        // --userns auto: its ids are taken when it is made (config.json has maps, not this).
        auto_ids,
        // Likewise its labels.
        labels: crate::cli::labels::parse(&args.label, &args.label_file)?,
        // A bundle's root is its maker's; a ROOTFS of the user's, or an image, is never written.
        private_layer: bundle_dir.is_none() || checked.private_layer,
        limits: cgroup::Limits {
            pids_default,
            ..checked.limits
        },
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
    // An image brings its own command; a ROOTFS without CMD is said so when it is decided.
    Ok(None)
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

/// The error for an image the store does not have: what was looked for, and how a directory of
/// that name would be run.
fn directory_hint(raw: &Path) -> String {
    let name = raw.to_string_lossy();
    let as_path = format!("./{name}");
    let here = match Path::new(&as_path).is_dir() {
        true => format!(" (there is a directory {name} here: {as_path} runs it)"),
        false => String::new(),
    };
    format!("a directory is run only when written as a path: {as_path} or /abs/path{here}")
}

/// Drafts a container from `minibox run`'s flags, checking each before anything is made.
/// The positional ROOTFS is a directory when written as a path (`model::spec::root_arg`), else
/// an image of the store under `data_root`, whose config gives the defaults the flags override
/// (as docker's).
pub fn spec_from_run_args(args: &RunArgs, data_root: &Path) -> Result<ContainerSpec> {
    // docker's check and words: typing into a terminal needs one to type on.
    if args.tty && args.interactive && !args.detach && !terminal::is_terminal(stdin().as_fd()) {
        bail!(StatusError {
            code: 1,
            message: "the input device is not a TTY".into()
        });
    }
    let (rootfs, image) = match root_arg(&args.rootfs) {
        RootArg::Directory(dir) => (check_rootfs(dir)?, None),
        RootArg::Image(name) => match images::find_for_run(data_root, Path::new(name))? {
            Some((image, config)) => (image.lower[0].clone(), Some((image, config))),
            // docker's "no such image", with the names closest to it, and how a directory of
            // that name would be run.
            None => {
                let err = images::not_found_for_run(data_root, Path::new(name))?;
                bail!("{err}; {}", directory_hint(&args.rootfs))
            }
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

    let capabilities =
        caps::CapSets::same(caps::resolve(identity.uid, &args.cap_add, &args.cap_drop)?);
    if identity.uid != 0 && !args.cap_add.is_empty() {
        say!(
            "minibox: warning: --cap-add has no effect for a non-root user (uid {}): \
             a non-root process keeps no capabilities; use --user 0 to keep some",
            identity.uid
        );
    }

    let seccomp = seccomp_profile(&args.security_opt, &capabilities.bounding)?;

    let limits = parse_limits(args)?;
    let network = Network::parse(&args.network)?;
    let ports = ports_of(args, image.as_ref())?;
    if network == Network::Host && !ports.is_empty() {
        bail!("-p cannot be used with --network host: the container already uses the host's ports");
    }
    // docker's words: a container with no network (or another's) has no ports of its own.
    if matches!(network, Network::None | Network::Container(_)) && !ports.is_empty() {
        bail!(
            "conflicting options: port publishing and the container type network mode \
             (--network {})",
            network.name()
        );
    }
    let net = NetOptions::parse(
        &network,
        args.ip.as_deref(),
        &args.add_host,
        &args.dns,
        &args.network_alias,
    )?;
    // The image's Env first (only KEY=VALUE entries: an image never reads the host's), then
    // each --env-file, then -e (docker's order: a later one wins).
    let env_flags: Vec<String> = config
        .env
        .iter()
        .filter(|e| e.contains('='))
        .cloned()
        .chain(env_files(&args.env_file)?)
        .chain(args.env.iter().cloned())
        .collect();
    let mut env = build_env(&env_flags, &hostname, &identity.home, |k| {
        std::env::var(k).ok()
    })?;
    // A terminal needs a type for programs to drive it: docker's default, unless -e TERM=.
    if args.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut volumes = volumes_of(args, data_root)?;

    let cgroup_path = check_cgroup_parent(&args.cgroup_parent)?.join(&id);
    let mut setup = Setup::docker(network.has_own_namespace());
    // Whose ids the container's are: its user must be among them.
    let mut userns = Userns::parse(userns_mode(args).as_deref(), &args.uidmap, &args.gidmap)?;
    // A default (not asked for) gives way where it cannot hold: another container's network
    // belongs to that container's user namespace.
    let defaulted = args.userns.is_none() && args.uidmap.is_empty() && args.gidmap.is_empty();
    if defaulted && matches!(network, Network::Container(_)) {
        userns = Userns::Host;
    }
    userns.check_mapped("uid", &[identity.uid], true)?;
    let gids: Vec<u32> = std::iter::once(identity.gid)
        .chain(identity.groups.iter().copied())
        .collect();
    userns.check_mapped("gid", &gids, false)?;
    if userns != Userns::Host {
        // Another container's network namespace belongs to its user namespace, where ours
        // would have no rights.
        if let Network::Container(name) = &network {
            bail!(
                "--network container:{name} shares a network namespace that belongs to that \
                 container's user namespace: run this one with --userns host"
            );
        }
        // Named volumes are stored with the ids containers see (id-mapped), so that one
        // container's files are the next one's, whatever ranges they get.
        for v in volumes.iter_mut().filter(|v| v.is_named()) {
            v.idmap = true;
        }
    }
    let auto_ids = match userns {
        Userns::Host => None,
        Userns::Auto { size } => Some(size),
        Userns::Maps { uids, gids } => {
            setup.namespaces.new.push(Kind::User);
            setup.uid_mappings = uids;
            setup.gid_mappings = gids;
            None
        }
    };
    setup.rlimits = setup::parse_ulimits(&args.ulimit)?;
    for device in &args.device {
        setup.add_host_device(device)?;
    }
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
        seccomp,
        read_only: args.read_only,
        limits,
        cgroup_path,
        network,
        ports,
        net,
        explain: args.explain.is_some(),
        private_layer: true,
        tty: args.tty,
        pid1: args.init,
        setup,
        image,
        volumes,
        hooks: Default::default(),
        console_size: None,
        stop: StopPolicy::parse(args.stop_signal.as_deref(), args.stop_timeout.as_deref())?,
        auto_ids,
        labels: crate::cli::labels::parse(&args.label, &args.label_file)?,
    })
}

/// `--userns`, else (without --uidmap/--gidmap) `MINIBOX_USERNS` from the environment (as
/// podman's containers.conf `userns`): a host may make `auto` its default.
fn userns_mode(args: &RunArgs) -> Option<String> {
    if args.userns.is_some() || !args.uidmap.is_empty() || !args.gidmap.is_empty() {
        return args.userns.clone();
    }
    std::env::var("MINIBOX_USERNS")
        .ok()
        .filter(|m| !m.is_empty())
}

/// `-p`, then with `-P` each exposed port (the image's, then `--expose`'s) that `-p` did not
/// publish already, on a port the kernel picks.
fn ports_of(args: &RunArgs, image: Option<&ImageUse>) -> Result<Vec<PortMapping>> {
    let mut ports = args
        .publish
        .iter()
        .map(|p| PortMapping::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let expose = args
        .expose
        .iter()
        .map(|key| PortMapping::exposed(key))
        .collect::<Result<Vec<_>>>()?;
    if args.publish_all {
        let image_ports = image
            .map_or(&[][..], |i| &i.exposed_ports[..])
            .iter()
            .map(|key| PortMapping::exposed(key).context("-P: the image's ExposedPorts"))
            .collect::<Result<Vec<_>>>()?;
        for p in image_ports.into_iter().chain(expose) {
            let published =
                |q: &PortMapping| q.container_port == p.container_port && q.proto == p.proto;
            if !ports.iter().any(published) {
                ports.push(p);
            }
        }
    }
    Ok(ports)
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

/// The lines of each `--env-file`, in order, as `-e` flags.
fn env_files(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut flags = vec![];
    for path in files {
        let text = std::fs::read(path).with_context(|| {
            format!(
                "--env-file {}: cannot read it (give a file of KEY=VALUE lines)",
                path.display()
            )
        })?;
        flags.extend(parse_env_file(&text, path)?);
    }
    Ok(flags)
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
        pids: match args.pids_limit.as_deref() {
            Some(text) => cgroup::parse_pids(text)?,
            None => Some(cgroup::DEFAULT_PIDS_LIMIT),
        },
        pids_default: args.pids_limit.is_none(),
    })
}

/// `--security-opt`, docker's syntax: `KEY=VALUE` (or the older `KEY:VALUE`). Docker's default
/// seccomp profile unless `seccomp=unconfined` or `seccomp=PROFILE.json` says otherwise; the
/// profile is resolved for the container's capabilities.
fn seccomp_profile(opts: &[String], caps: &CapsHashSet) -> Result<Option<SeccompProfile>> {
    let mut file: Option<Option<&Path>> = None;
    for opt in opts {
        let (key, value) = match opt.split_once('=').or_else(|| opt.split_once(':')) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => file = Some(None),
            ("seccomp", Some(path)) if !path.is_empty() => file = Some(Some(Path::new(path))),
            ("no-new-privileges", None | Some("true")) => {}
            ("no-new-privileges", Some("false")) => bail!(
                "--security-opt {opt}: minibox always sets no_new_privs (setuid files in the \
                 rootfs never raise privileges); leave the option out"
            ),
            _ => bail!(
                "unsupported --security-opt {opt:?}: use seccomp=unconfined, \
                 seccomp=PROFILE.json or no-new-privileges"
            ),
        }
    }
    match file {
        None => SeccompProfile::docker_default(caps).map(Some),
        Some(None) => Ok(None),
        Some(Some(path)) => SeccompProfile::from_file(path, caps)
            .map(Some)
            .with_context(|| format!("--security-opt seccomp={}", path.display())),
    }
}
