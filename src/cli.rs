//! The command line, docker-style.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "minibox",
    version,
    about = "A small container runtime: a process in new namespaces, pivot_root'ed into its own \
             rootfs, running as nobody."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run CMD from ROOTFS in a new container, in the foreground.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Name the container (shown in messages).
    #[arg(long)]
    pub name: Option<String>,

    /// Set an environment variable (KEY=VALUE), or pass the host's (KEY). Repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// Container hostname [default: the container's short id].
    #[arg(long)]
    pub hostname: Option<String>,

    /// Working directory inside the container.
    #[arg(short = 'w', long, value_name = "DIR", default_value = "/")]
    pub workdir: String,

    /// Run as NAME|UID[:GROUP|GID], looked up in ROOTFS's /etc/passwd [default: 65534:65534].
    #[arg(short = 'u', long)]
    pub user: Option<String>,

    /// Add a capability (root only; e.g. NET_ADMIN, or ALL). Repeatable.
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,

    /// Drop a capability (e.g. CHOWN, or ALL). Repeatable.
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,

    /// Mount the container's root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,

    /// Memory limit, docker's syntax (e.g. 64m, 1g); swap is not allowed on top.
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,

    /// Number of CPUs the container may use (e.g. 0.5).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,

    /// Maximum number of processes and threads in the container.
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<String>,

    /// Parent cgroup for the container's group, below the cgroup v2 root.
    #[arg(long = "cgroup-parent", value_name = "PATH", default_value = "minibox")]
    pub cgroup_parent: String,

    /// Directory holding the container's files; becomes its /.
    #[arg(value_name = "ROOTFS")]
    pub rootfs: PathBuf,

    /// Program to run (a path inside ROOTFS) and its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}
