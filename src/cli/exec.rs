//! `minibox exec`'s two forms become one `ExecProcess`:
//! - docker's, `exec [-i] [-t] [-d] [-e K=V] [-u USER] [-w DIR] CONTAINER CMD...`: the
//!   container's user, environment and working directory unless told otherwise, stdio relayed
//!   by minibox (pipes, or a terminal with `-t`);
//! - the OCI runtime's (runc's flags, as podman's conmon and containerd call it): `--process
//!   FILE` (a runtime-spec `process` object) or any of `--pid-file`, `--console-socket`,
//!   `--cap`, `--no-new-privs`, `--preserve-fds`; stdio is then the caller's own descriptors,
//!   a terminal's master goes over `--console-socket`, and `--detach` leaves no minibox behind.
//!
//! Either way the container is the one its config.json (kept in its state directory since it
//! was made) describes, rebuilt through `read::container_from_spec`: the same capabilities,
//! seccomp profile and environment as its first process.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use oci_spec::runtime::Process;

use crate::kernel::caps::{CapSets, Capability, CapsHashSet};
use crate::model::oci::read;
use crate::model::setup::DOCKER_UMASK;
use crate::model::spec::{check_workdir, merge_env, ContainerSpec};
use crate::model::user::{self, Identity};
use crate::runtime::exec::{ExecOptions, ExecProcess, ExecStdio, Target};
use crate::runtime::status::StatusError;
use crate::runtime::terminal;
use crate::store::state::{ContainerState, Store, CONFIG_FILE};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin attached (docker).
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Give the process a terminal of the container's own.
    #[arg(short = 't', long)]
    pub tty: bool,

    /// Start the process and return (no minibox process stays).
    #[arg(short = 'd', long)]
    pub detach: bool,

    /// Set an environment variable (KEY=VALUE, or KEY for the host's value). Repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// Run as NAME|UID[:GROUP|GID], from the container's /etc/passwd [default: the container's].
    #[arg(short = 'u', long)]
    pub user: Option<String>,

    /// Working directory inside the container [default: the container's].
    #[arg(
        short = 'w',
        long = "workdir",
        visible_alias = "cwd",
        value_name = "DIR"
    )]
    pub workdir: Option<String>,

    /// OCI: the runtime-spec `process` JSON to run (args, env, cwd, user, terminal...).
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,

    /// OCI: write the process's host pid to FILE.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// OCI: send the terminal's master to the unix socket at PATH (SCM_RIGHTS).
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,

    /// OCI: add a capability to the process (within reason: root only). Repeatable.
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,

    /// OCI: set no_new_privs (minibox always does).
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,

    /// OCI: pass N descriptors after 0, 1, 2 (3 .. 3+N-1) on to the process.
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,

    /// The container: its name, id or a unique id prefix.
    #[arg(value_name = "CONTAINER")]
    pub container: String,

    /// Program to run in the container and its arguments.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

impl ExecArgs {
    /// The OCI form: `--process` or a flag only runc has.
    fn is_oci(&self) -> bool {
        self.process.is_some()
            || self.pid_file.is_some()
            || self.console_socket.is_some()
            || !self.cap.is_empty()
            || self.no_new_privs
            || self.preserve_fds > 0
    }
}

/// `minibox exec`
pub fn exec(store: &Store, args: &ExecArgs) -> Result<i32> {
    let oci_form = args.is_oci();
    check_form(args, oci_form)?;
    let state = store.resolve(&args.container)?;
    let target = running(store, &state)?;
    let container = container_of(store, &state)?;
    if oci_form {
        let (process, stdio) = oci_process(args, &container, &target)?;
        return crate::runtime::exec::run(store, &target, &process, &exec_options(args, stdio));
    }
    // docker's form: a process that could not be set up (no such user, no such directory...)
    // is docker's 126, as CMD's own 126/127 are kept.
    let (process, stdio) = docker_process(args, &container, &target).map_err(exec_failed)?;
    crate::runtime::exec::run(store, &target, &process, &exec_options(args, stdio))
        .map_err(exec_failed)
}

fn exec_options(args: &ExecArgs, stdio: ExecStdio) -> ExecOptions {
    ExecOptions {
        detach: args.detach,
        pid_file: args.pid_file.clone(),
        stdio,
    }
}

/// docker's status for an exec whose process could not be started: 126, unless the failure
/// already carries its own (CMD missing: 127, not executable: 126).
fn exec_failed(err: anyhow::Error) -> anyhow::Error {
    match err.downcast_ref::<StatusError>() {
        Some(e) if e.code != crate::runtime::status::RUNTIME_FAILED => err,
        _ => anyhow::Error::new(StatusError {
            code: crate::runtime::status::CANNOT_EXECUTE,
            message: format!("{err:#}"),
        }),
    }
}

/// What each form can and cannot be asked.
fn check_form(args: &ExecArgs, oci_form: bool) -> Result<()> {
    if oci_form {
        if args.interactive {
            bail!(
                "-i is docker's form of exec: with --process or runc's flags the process uses \
                 minibox's own stdin, stdout and stderr"
            );
        }
        if args.process.is_some() && !args.command.is_empty() {
            bail!("give the program either in --process FILE (process.args) or as CMD, not both");
        }
    } else if args.command.is_empty() {
        bail!("no command given: minibox exec CONTAINER CMD [ARGS...]");
    }
    if !oci_form && args.tty && args.detach {
        bail!(
            "-d with -t is not supported by exec: nobody would hold the terminal; leave out -t \
             (or -d)"
        );
    }
    // docker's check and words: typing into a terminal needs one to type on.
    let stdin_tty = terminal::is_terminal(std::io::stdin().as_fd());
    if !oci_form && args.tty && args.interactive && !stdin_tty {
        bail!(StatusError {
            code: 1,
            message: "the input device is not a TTY".into()
        });
    }
    Ok(())
}

/// The container's first process as a target, if it runs (trusted by its start time).
fn running(store: &Store, state: &ContainerState) -> Result<Target> {
    let c = store.settled(state.clone());
    match c
        .pid
        .filter(|p| c.status == crate::store::state::Status::Running && p.is_alive())
    {
        Some(pid) => Ok(Target {
            name: c.name.clone(),
            pid,
            cgroup: c.cgroup.clone(),
        }),
        None => bail!(
            "container {} is not running (it has exited): exec needs a running container",
            c.name
        ),
    }
}

/// The container as it was made: its config.json, checked again.
fn container_of(store: &Store, state: &ContainerState) -> Result<ContainerSpec> {
    let dir = store.dir(&state.id);
    let path = dir.join(CONFIG_FILE);
    if !path.is_file() {
        bail!(
            "container {} has no {} in {} (made by an older minibox?): exec needs it; run the \
             container anew",
            state.name,
            CONFIG_FILE,
            dir.display()
        );
    }
    let spec = read::load(&dir)?;
    read::container_from_spec(&spec, &dir, &state.id)
        .with_context(|| format!("reading {}", path.display()))
        .map(|c| ContainerSpec {
            name: Some(state.name.clone()),
            ..c
        })
}

/// The container's root, as its processes see it, for reading its passwd and group files.
fn container_root(target: &Target) -> Result<std::os::fd::OwnedFd> {
    let root =
        crate::kernel::rootfs::open_dir(Path::new(&format!("/proc/{}/root", target.pid.pid)))?;
    if !target.pid.is_alive() {
        bail!("container {} is not running", target.name);
    }
    Ok(root)
}

/// A file of the container's live root (its own layer included), `None` if absent.
fn read_in_container(root: &std::os::fd::OwnedFd, rel: &str) -> Result<Option<Vec<u8>>> {
    match crate::kernel::rootfs::read_file_in(root, rel) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading /{rel} in the container")),
    }
}

/// `-u USER` resolved in the container's own /etc/passwd and /etc/group.
fn identity_in_container(target: &Target, user_flag: &str) -> Result<Identity> {
    let root = container_root(target)?;
    let passwd = read_in_container(&root, "etc/passwd")?;
    let group = read_in_container(&root, "etc/group")?;
    user::resolve(Some(user_flag), passwd.as_deref(), group.as_deref())
}

/// The container's capabilities for a process of `uid`: root keeps the container's set; any
/// other uid none (the bounding set stays the container's either way).
fn caps_for(container: &ContainerSpec, uid: u32) -> CapSets {
    if uid == 0 {
        container.capabilities.clone()
    } else {
        CapSets {
            bounding: container.capabilities.bounding.clone(),
            ..CapSets::default()
        }
    }
}

fn set_default(env: &mut Vec<String>, key: &str, value: &str) {
    let prefix = format!("{key}=");
    if !env.iter().any(|e| e.starts_with(&prefix)) {
        env.push(format!("{prefix}{value}"));
    }
}

fn plain_process(spec: ContainerSpec, bounding: CapsHashSet) -> ExecProcess {
    ExecProcess {
        spec,
        bounding,
        rlimits: vec![],
        preserve_fds: 0,
        umask: DOCKER_UMASK,
        console_size: None,
    }
}

/// docker's form: the container's process description, with CMD and the flags applied.
fn docker_process(
    args: &ExecArgs,
    container: &ContainerSpec,
    target: &Target,
) -> Result<(ExecProcess, ExecStdio)> {
    let identity = match &args.user {
        Some(u) => identity_in_container(target, u)?,
        None => container.identity.clone(),
    };
    let mut env = container.env.clone();
    if args.user.is_some() {
        // HOME follows the user, as for a login; -e HOME= still wins.
        env.retain(|e| !e.starts_with("HOME="));
        env.push(format!("HOME={}", identity.home));
    }
    let mut env = merge_env(env, &args.env, |k| std::env::var(k).ok())?;
    if args.tty {
        set_default(&mut env, "TERM", "xterm");
    }
    let workdir = match &args.workdir {
        Some(w) => check_workdir(w)?,
        None => container.workdir.clone(),
    };
    let spec = ContainerSpec {
        args: args.command.clone(),
        env,
        workdir,
        capabilities: caps_for(container, identity.uid),
        identity,
        tty: args.tty,
        ..container.clone()
    };
    let stdio = if args.detach {
        ExecStdio::Null
    } else {
        ExecStdio::Relay {
            interactive: args.interactive,
            tty: args.tty,
        }
    };
    Ok((
        plain_process(spec, container.capabilities.bounding.clone()),
        stdio,
    ))
}

/// The OCI form: `--process FILE`, or runc's flags over the container's own description.
fn oci_process(
    args: &ExecArgs,
    container: &ContainerSpec,
    target: &Target,
) -> Result<(ExecProcess, ExecStdio)> {
    let mut process = match &args.process {
        Some(file) => process_from_file(file, container)?,
        None => {
            let identity = match &args.user {
                Some(u) => numeric_user(u, target)?,
                None => container.identity.clone(),
            };
            let spec = ContainerSpec {
                args: args.command.clone(),
                capabilities: caps_for(container, identity.uid),
                identity,
                tty: args.tty,
                ..container.clone()
            };
            if spec.args.is_empty() {
                bail!("no command given: minibox exec [--process FILE] ID [CMD...]");
            }
            plain_process(spec, container.capabilities.bounding.clone())
        }
    };
    let spec = &mut process.spec;
    if args.tty {
        spec.tty = true;
    }
    if let Some(w) = &args.workdir {
        spec.workdir = check_workdir(w)?;
    }
    if args.user.is_some() && args.process.is_some() {
        let identity = numeric_user(args.user.as_deref().unwrap_or_default(), target)?;
        spec.capabilities = caps_for(container, identity.uid);
        spec.identity = identity;
    }
    spec.env = merge_env(std::mem::take(&mut spec.env), &args.env, |k| {
        std::env::var(k).ok()
    })?;
    if !args.cap.is_empty() {
        let added = parse_caps(&args.cap)?;
        if spec.identity.uid != 0 {
            bail!(
                "--cap for uid {}: minibox gives a non-root process no capabilities; run it \
                 as uid 0",
                spec.identity.uid
            );
        }
        for set in [
            &mut spec.capabilities.bounding,
            &mut spec.capabilities.effective,
            &mut spec.capabilities.permitted,
        ] {
            set.extend(added.iter().copied());
        }
        process.bounding.extend(added);
    }
    process.preserve_fds = args.preserve_fds;
    let stdio = match (&args.console_socket, process.spec.tty) {
        (Some(socket), true) => ExecStdio::Inherit {
            console_socket: Some(socket.clone()),
        },
        (Some(_), false) => {
            bail!("--console-socket needs a terminal: add --tty (or process.terminal)")
        }
        (None, true) if args.detach => bail!(
            "--tty with --detach needs --console-socket: the terminal's master must go somewhere"
        ),
        (None, true) => ExecStdio::Relay {
            interactive: true,
            tty: true,
        },
        (None, false) => ExecStdio::Inherit {
            console_socket: None,
        },
    };
    Ok((process, stdio))
}

/// runc's `--user UID[:GID]`: numbers only.
fn numeric_user(text: &str, target: &Target) -> Result<Identity> {
    let (u, g) = text
        .split_once(':')
        .map_or((text, None), |(u, g)| (u, Some(g)));
    let bad = || anyhow!("invalid --user {text:?}: the OCI form takes UID[:GID], numbers");
    let uid: u32 = u.parse().map_err(|_| bad())?;
    let gid: Option<u32> = g.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    if uid == user::RESERVED_ID || gid == Some(user::RESERVED_ID) {
        return Err(bad());
    }
    let mut identity = identity_in_container(target, &uid.to_string())?;
    if let Some(gid) = gid {
        identity.gid = gid;
    }
    Ok(identity)
}

fn parse_caps(names: &[String]) -> Result<CapsHashSet> {
    names
        .iter()
        .map(|n| {
            let upper = n.to_ascii_uppercase();
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            full.parse::<Capability>()
                .map_err(|_| anyhow!("unknown capability {n:?} for --cap: use e.g. CAP_NET_ADMIN"))
        })
        .collect()
}

/// A runtime-spec `process` object (a file of at most 1 MiB), checked by the model's rules
/// for a process joining a container.
fn process_from_file(file: &Path, container: &ContainerSpec) -> Result<ExecProcess> {
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(1 << 20).read_to_string(&mut text))
        .with_context(|| format!("cannot read --process {}", file.display()))?;
    let p: Process = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "--process {}: {e}: give a runtime-spec process object",
            file.display()
        )
    })?;
    let p = read::joining_process(&p).with_context(|| format!("--process {}", file.display()))?;
    let identity = Identity {
        uid: p.uid,
        gid: p.gid,
        groups: p.groups,
        home: container.identity.home.clone(),
        name: (p.uid == container.identity.uid)
            .then(|| container.identity.name.clone())
            .flatten(),
    };
    let bounding = p.capabilities.bounding.clone();
    // ioPriority, scheduler, execCPUAffinity: this process's own, else the container's.
    let mut setup = container.setup.clone();
    setup.attrs = setup.attrs.with_process_of(&p.attrs);
    // oomScoreAdj: Docker's exec gives the container's.
    if p.oom_score_adj.is_some() {
        setup.oom_score_adj = p.oom_score_adj;
    }
    let spec = ContainerSpec {
        args: p.args,
        env: p.env,
        workdir: p.cwd,
        identity,
        capabilities: p.capabilities,
        tty: p.terminal,
        setup,
        ..container.clone()
    };
    Ok(ExecProcess {
        spec,
        bounding,
        rlimits: p.rlimits,
        preserve_fds: 0,
        umask: p.umask.unwrap_or(DOCKER_UMASK),
        console_size: p.console_size.map(|s| libc::winsize {
            ws_row: s.rows,
            ws_col: s.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_flags_override_and_add() {
        let env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let none = |_: &str| None;
        let merged = merge_env(env, &["A=2".into(), "B=x=y".into()], none).unwrap();
        assert_eq!(merged, ["PATH=/bin", "A=2", "B=x=y"]);
        assert!(merge_env(vec![], &["=v".into()], none).is_err());
    }
}
