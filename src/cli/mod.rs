//! The front ends: the command line, docker-style (`run`, and the lifecycle commands in
//! `lifecycle`), and what reads a container back (`inspect`, `top`).

pub mod attach;
pub mod build;
pub mod control;
pub mod cp;
pub mod docker_view;
pub mod dockerfile;
pub mod exec;
pub mod images;
pub mod inspect;
pub mod labels;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod oci;
pub mod oci_log;
pub mod progress;
pub mod ps_select;
pub mod run;
pub mod show;
pub mod spec;
pub mod stats;
pub mod system;
pub mod template;
pub mod top;

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
    /// Where container state lives.
    #[arg(long, global = true, value_name = "DIR", env = "MINIBOX_ROOT", default_value = crate::store::state::DEFAULT_ROOT)]
    pub root: PathBuf,

    /// Where each container's writable layer lives (root-only; `rm` removes it).
    #[arg(long = "data-root", global = true, value_name = "DIR", env = "MINIBOX_DATA_ROOT", default_value = crate::store::layers::DEFAULT_DATA_ROOT)]
    pub data_root: PathBuf,

    /// Also append errors to FILE (engines read the last one from it).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// How errors are written to --log: `text`, or `json` (one object a line, as runc's).
    #[arg(long = "log-format", global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Also log each runtime command to --log (and stderr without it).
    #[arg(long, global = true)]
    pub debug: bool,

    /// Read an OCI linux.cgroupsPath as systemd's `slice:prefix:name`; minibox does not drive
    /// systemd: the group is made by hand at the path systemd would use
    /// (`system.slice:libpod:abc` → `system.slice/libpod-abc.scope`).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,

    /// Accepted for runc's callers; minibox does not checkpoint, so it never runs CRIU.
    #[arg(long, global = true, value_name = "PATH", hide = true)]
    pub criu: Option<String>,

    /// runc's: `--rootless=false` or `=auto` (minibox runs as root); `true` is refused. Alone,
    /// after `spec`, runc's `spec --rootless`.
    #[arg(long, global = true, value_name = "BOOL", hide = true, value_parser = ["true", "false", "auto"],
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rootless: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the `Run` variant costs nothing worth boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run CMD from ROOTFS in a new container (or, with --bundle DIR ID, the OCI bundle in DIR).
    Run(RunArgs),
    /// Print the OCI config.json that `minibox run` with these flags would use (with no
    /// arguments: a default config for a bundle whose rootfs is in `rootfs/`).
    Spec(SpecArgs),
    /// OCI: make the container of the bundle, set up and waiting for `start` (runc create).
    Create(CreateArgs),
    /// Start containers: an exited one runs again (its files kept), in the background, or
    /// attached with -a/-i; runc's `start ID` lets a created OCI container run its program.
    Start {
        /// Attach its output (and signals); minibox exits with the container's status.
        #[arg(short, long)]
        attach: bool,
        /// Attach its stdin too (implies -a).
        #[arg(short, long)]
        interactive: bool,
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Stop containers, then start them again (`stop -t` then `start`).
    Restart {
        /// Seconds to wait before SIGKILL [default: the container's --stop-timeout, else 10].
        #[arg(
            short = 't',
            long = "time",
            value_name = "SECONDS",
            allow_hyphen_values = true,
            value_parser = clap::value_parser!(i64).range(-1..)
        )]
        time: Option<i64>,
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Block until containers stop, then print their exit codes, one a line.
    Wait {
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Give a container another name.
    Rename {
        #[arg(value_name = "CONTAINER")]
        container: String,
        #[arg(value_name = "NEW_NAME")]
        name: String,
    },
    /// OCI: the runtime-spec state of a container, as JSON.
    State {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// OCI: remove a stopped (or created) container: its cgroup and record; runs poststop hooks.
    Delete {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Freeze every process of containers (the cgroup freezer), by name or id.
    Pause {
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers (docker's word; `resume` is runc's).
    #[command(visible_alias = "resume")]
    Unpause {
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// OCI: change a running container's limits (LinuxResources JSON: memory, cpu, pids).
    Update {
        /// A file of LinuxResources JSON, or `-` for stdin.
        #[arg(short = 'r', long, value_name = "FILE")]
        resources: PathBuf,
        #[arg(value_name = "ID")]
        id: String,
    },
    /// OCI: what this runtime supports (runtime-spec features.md JSON).
    Features,
    /// List containers, with their limits and usage; with ID, the host pids of its processes.
    #[command(visible_alias = "list")]
    Ps {
        /// Show all containers, exited ones too.
        #[arg(short, long)]
        all: bool,
        /// Only print container ids.
        #[arg(short, long)]
        quiet: bool,
        /// `table` (default), `json` (one object per line; with ID: a JSON array of pids), or a
        /// Go template (`{{.Names}}`; `table {{.ID}}\t{{.Names}}` adds a header).
        #[arg(long, value_name = "FORMAT", default_value = "table")]
        format: String,
        /// Select containers: label=KEY[=VALUE], name=, status=, id=, ancestor=, network=,
        /// exited=. Repeatable: one key's values are alternatives, different keys must all
        /// match, every label must.
        #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
        filter: Vec<String>,
        /// A container whose processes to list (runc ps ID).
        #[arg(value_name = "ID")]
        container: Option<String>,
    },
    /// Stop containers: SIGTERM, then SIGKILL after a grace period.
    Stop {
        /// Seconds to wait before SIGKILL (-1: as long as it takes) [default: the container's
        /// --stop-timeout, else 10].
        #[arg(
            short = 't',
            long = "time",
            value_name = "SECONDS",
            allow_hyphen_values = true,
            value_parser = clap::value_parser!(i64).range(-1..)
        )]
        time: Option<i64>,
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers: `kill [-s SIGNAL] CONTAINER...` (default KILL), or runc's
    /// `kill [--all] ID [SIGNAL]` (default TERM for a container made by create).
    Kill {
        /// Signal name (KILL, SIGTERM, ...) or number.
        #[arg(short, long, value_name = "SIGNAL")]
        signal: Option<String>,
        /// Signal every process of the container, not only its first.
        #[arg(short, long)]
        all: bool,
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Remove exited containers and everything they left.
    Rm {
        /// Kill running containers first.
        #[arg(short, long)]
        force: bool,
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// What a container is made of, read from the kernel now (JSON, or a table).
    Inspect {
        /// `json` (default), `table`, or a Go template (`{{.State.Pid}}`, `{{json .Config.Labels}}`).
        #[arg(short = 'f', long, value_name = "FORMAT", default_value = "json")]
        format: String,
        #[arg(value_name = "CONTAINER", required = true)]
        containers: Vec<String>,
    },
    /// Copy files between a container and the host: `cp CONTAINER:SRC DEST` or `cp SRC
    /// CONTAINER:DEST` (a container's paths are resolved inside its root; symlinks are copied,
    /// never followed).
    Cp {
        /// Keep the files' owners (uid:gid) and setuid/setgid bits.
        #[arg(short = 'a', long)]
        archive: bool,
        #[arg(value_name = "SRC")]
        src: String,
        #[arg(value_name = "DEST")]
        dest: String,
    },
    /// List a container's published ports.
    Port {
        #[arg(value_name = "CONTAINER")]
        container: String,
    },
    /// Run a command in a running container (docker's flags, or runc's: --process FILE...).
    Exec(exec::ExecArgs),
    /// Draw a running container, read from the kernel now: an SVG picture (or a page of it).
    Show {
        /// Write to FILE.svg (the picture) or FILE.html (a page showing it) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[arg(value_name = "CONTAINER")]
        container: String,
    },
    /// Serve a read-only web page of the containers, with live usage and their pictures.
    Ui {
        /// Where to listen: a loopback address by default; any other needs the token printed
        /// at start (?token=... or an Authorization: Bearer header).
        #[arg(long, value_name = "ADDR:PORT", default_value = show::ui::DEFAULT_LISTEN)]
        listen: String,
    },
    /// Live CPU, memory, network and block I/O, and task counts of containers (docker's).
    Stats(stats::StatsArgs),
    /// Disk use (`system df`) and removing what nothing uses (`system prune`).
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Show a container's processes, with their host and container pids.
    Top {
        #[arg(value_name = "CONTAINER")]
        container: String,
    },
    /// Manage networks: create, ls, inspect, rm.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Attach the terminal to a detached container's (`run -d -t`); Ctrl-P Ctrl-Q detaches.
    Attach {
        /// The keys that detach, leaving the container running (docker's form).
        #[arg(long, value_name = "KEYS", default_value = attach::DEFAULT_DETACH_KEYS)]
        detach_keys: String,
        #[arg(value_name = "CONTAINER")]
        container: String,
    },
    /// Show what a detached container wrote to stdout and stderr.
    Logs(logs::LogsArgs),
    /// Load images from a `docker save` archive or an OCI image layout (tar or directory).
    Load {
        /// Read from FILE (a tar, possibly gzip/zstd, or a directory) instead of stdin.
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// No progress on stderr.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from a registry (OCI distribution API v2).
    Pull {
        /// Use plain HTTP (a local registry without TLS).
        #[arg(long)]
        insecure: bool,
        /// Follow the registry's Bearer realm or redirects to a loopback, link-local or private
        /// address other than the registry's own (refused by default).
        #[arg(long, env = "MINIBOX_PULL_ALLOW_PRIVATE",
              value_parser = clap::builder::BoolishValueParser::new())]
        allow_private_redirects: bool,
        /// No progress on stderr.
        #[arg(short, long)]
        quiet: bool,
        #[arg(value_name = "NAME[:TAG|@DIGEST]")]
        reference: String,
    },
    /// Make a one-layer image from a plain rootfs tarball, FILE or `-` for stdin (as docker
    /// import); prints its id.
    Import {
        /// Apply a Dockerfile instruction to the image's config: CMD, ENTRYPOINT, ENV, EXPOSE,
        /// LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR. Repeatable.
        #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
        change: Vec<String>,
        /// No progress on stderr.
        #[arg(short, long)]
        quiet: bool,
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        #[arg(value_name = "NAME[:TAG]")]
        reference: Option<String>,
    },
    /// Build an image from a Dockerfile (FROM an image of the store or scratch; RUN runs in a
    /// container minibox starts).
    Build(build::BuildArgs),
    /// Make an image of a container: its image (or ROOTFS) with the container's own writes as
    /// one more layer; prints its id.
    Commit {
        /// Apply a Dockerfile instruction to the image's config (as import's). Repeatable.
        #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
        change: Vec<String>,
        #[arg(value_name = "CONTAINER")]
        container: String,
        #[arg(value_name = "NAME[:TAG]")]
        reference: Option<String>,
    },
    /// Write images as a docker-archive (docker load and podman load read it).
    Save {
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// No progress on stderr.
        #[arg(short, long)]
        quiet: bool,
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
    },
    /// List images.
    Images {
        /// Only print image ids.
        #[arg(short, long)]
        quiet: bool,
        /// Also show build's intermediate images.
        #[arg(short, long)]
        all: bool,
    },
    /// Remove images (untag; the image goes with its last tag). Refused while a container uses it.
    Rmi {
        /// Remove the image with all its tags.
        #[arg(short, long)]
        force: bool,
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
    },
    /// Give an image another name.
    Tag {
        #[arg(value_name = "SOURCE")]
        source: String,
        #[arg(value_name = "TARGET")]
        target: String,
    },
    /// Image commands: inspect.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Write a container's filesystem (its image or ROOTFS, with its own writes) as a tar.
    Export {
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// No progress on stderr.
        #[arg(short, long)]
        quiet: bool,
        #[arg(value_name = "CONTAINER")]
        container: String,
    },
    /// Named volumes: ls, create, rm, inspect.
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// An image's record and config, as JSON.
    Inspect {
        #[arg(value_name = "IMAGE")]
        image: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List named volumes.
    Ls,
    /// Create named volumes.
    Create {
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Remove named volumes (refused while a container uses one).
    Rm {
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Show named volumes, as JSON.
    Inspect {
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
}

/// `minibox network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Make a network: a Linux bridge, a subnet its containers get addresses from.
    Create {
        /// Its IPv4 subnet (default: the first free /24 from 10.89.0.0 up).
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// The bridge's address (default: the subnet's first address).
        #[arg(long, value_name = "IP")]
        gateway: Option<String>,
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only print network names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// A network and its containers, as JSON.
    Inspect {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Remove networks (none may have containers on it).
    #[command(alias = "remove")]
    Rm {
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
}

/// `minibox create`'s flags, as runc's.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The bundle directory (config.json and its rootfs) [default: the current directory].
    #[arg(short = 'b', long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub oci: OciRunFlags,
    /// The container's id: [a-zA-Z0-9][a-zA-Z0-9_.-]*.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// What `create` and an OCI `run` share.
#[derive(Debug, Args, Default)]
pub struct OciRunFlags {
    /// Write the container process's host pid to FILE.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Send the pty's master (process.terminal) over this unix socket.
    #[arg(long = "console-socket", value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Switch root with MS_MOVE and chroot instead of pivot_root (a rootfs on an initramfs).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass the caller's descriptors 3 .. 3+N on to the container.
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
}

/// `minibox spec`'s arguments: none, or `minibox run`'s (parsed by `SpecCli`, so that none at
/// all is allowed while ROOTFS and CMD stay required once any is given).
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct SpecArgs {
    /// [RUN FLAGS] ROOTFS CMD... (see minibox spec --help)
    #[arg(
        value_name = "RUN ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<std::ffi::OsString>,
}

/// `minibox spec [RUN FLAGS] ROOTFS CMD...`
#[derive(Debug, Parser)]
#[command(
    name = "minibox spec",
    about = "Print the OCI config.json that `minibox run` with these flags would use; with no \
             arguments (or only --bundle DIR, --rootless), write a default config.json for a \
             bundle whose rootfs is in `rootfs/` into the current directory (or DIR), as runc \
             spec does."
)]
pub struct SpecCli {
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the OCI bundle in DIR (config.json and its rootfs), as `runc run` does; then give only
    /// the container's ID (its name) after the flags.
    #[arg(short = 'b', long, value_name = "DIR", conflicts_with_all = [
        "name", "env", "env_file", "hostname", "workdir", "user", "cap_add", "cap_drop", "read_only",
        "network", "ip", "add_host", "dns", "network_alias", "publish", "publish_all", "expose", "memory", "cpus", "pids_limit", "ulimit", "stop_signal", "stop_timeout", "cgroup_parent", "entrypoint",
        "volume", "mount", "tmpfs", "device", "userns", "uidmap", "gidmap",
    ])]
    pub bundle: Option<PathBuf>,

    /// Run in the background: print the container's id and return (a bundle: create and start
    /// it, and leave it to its caller, as runc run -d).
    #[arg(short, long)]
    pub detach: bool,

    #[command(flatten)]
    pub oci: OciRunFlags,

    /// With --bundle in the foreground: keep the container's record after it exits (as runc's
    /// `run --keep`; without it the record goes, as in runc).
    #[arg(long)]
    pub keep: bool,

    /// Narrate each step of making the container, with what the kernel says of it (stderr);
    /// with =FILE.html, also draw the container as its program starts, the steps beside it.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub explain: Option<String>,

    /// Remove the container's record when it exits.
    #[arg(long)]
    pub rm: bool,

    /// Start it again when it ends: no, on-failure[:MAX_RETRIES], always, unless-stopped
    /// (kept by its supervisor, with a backoff from 100 ms doubling to a minute; `stop` ends it).
    #[arg(long, value_name = "POLICY", default_value = "no")]
    pub restart: String,

    /// Keep stdin attached: the container reads minibox's stdin (without it, its stdin is empty).
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Give the container a terminal of its own (its stdin, stdout, stderr and controlling tty).
    #[arg(short = 't', long)]
    pub tty: bool,

    /// Run a tiny init as PID 1: it runs CMD, passes signals on, reaps zombies.
    #[arg(long)]
    pub init: bool,

    /// Name the container (unique; default: a generated name).
    #[arg(long)]
    pub name: Option<String>,

    /// Set an environment variable (KEY=VALUE), or pass the host's (KEY). Repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// Read environment variables from FILE (docker's format: KEY=VALUE or KEY per line, `#`
    /// comments); -e flags win over them. Repeatable.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Set a label on the container (KEY=VALUE, or KEY for an empty value). Repeatable.
    #[arg(short = 'l', long = "label", value_name = "KEY[=VALUE]")]
    pub label: Vec<String>,

    /// Read labels from FILE (KEY=VALUE per line, `#` comments); --label wins. Repeatable.
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_file: Vec<PathBuf>,

    /// Container hostname [default: the container's short id].
    #[arg(long)]
    pub hostname: Option<String>,

    /// Working directory inside the container [default: the image's WorkingDir, else /].
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// Run this program instead of the image's Entrypoint ("" for none); CMD args follow it.
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,

    /// Mount HOST_PATH or the named volume NAME at CONTAINER_PATH (nosuid, nodev). Repeatable.
    #[arg(
        short = 'v',
        long = "volume",
        value_name = "HOST_PATH|NAME:CONTAINER_PATH[:ro]"
    )]
    pub volume: Vec<String>,

    /// type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…].
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,

    /// Mount a fresh tmpfs at PATH (nosuid, nodev; mode 1777 unless given). Repeatable.
    #[arg(long = "tmpfs", value_name = "PATH[:size=…,mode=…]")]
    pub tmpfs: Vec<String>,

    /// Run as NAME|UID[:GROUP|GID], looked up in the root's /etc/passwd [default: the
    /// image's User, else 65534:65534].
    #[arg(short = 'u', long)]
    pub user: Option<String>,

    /// Whose ids the container's are: host (the host's: its root is the host's root), auto (a
    /// user namespace mapped onto 65536 host ids of its own, auto:size=N for fewer)
    /// [default: $MINIBOX_USERNS, else host].
    #[arg(long, value_name = "MODE")]
    pub userns: Option<String>,

    /// A user namespace whose uids CONTAINER.. are the host's HOST.. (SIZE of them), podman's
    /// spelling. Repeatable.
    #[arg(long = "uidmap", value_name = "CONTAINER:HOST:SIZE")]
    pub uidmap: Vec<String>,

    /// As --uidmap, for gids [default: as --uidmap].
    #[arg(long = "gidmap", value_name = "CONTAINER:HOST:SIZE")]
    pub gidmap: Vec<String>,

    /// Add a capability (root only; e.g. NET_ADMIN, or ALL). Repeatable.
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,

    /// Add a host device: its node is made in the container's /dev and the device cgroup
    /// allows it (PERMISSIONS: letters of rwm, default rwm). Repeatable.
    #[arg(
        long = "device",
        value_name = "HOST_PATH[:CONTAINER_PATH][:PERMISSIONS]"
    )]
    pub device: Vec<String>,

    /// Drop a capability (e.g. CHOWN, or ALL). Repeatable.
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,

    /// Security options, docker's: seccomp=unconfined, seccomp=PROFILE.json,
    /// no-new-privileges. Repeatable.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,

    /// Mount the container's root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,

    /// Network: private (own namespace, lo only; the default), none (no network), host (the
    /// host's), bridge (minibox's default network), NAME (a network made by `minibox network
    /// create`), container:NAME (that container's network).
    #[arg(long, value_name = "MODE", default_value = "private")]
    pub network: String,

    /// The container's IPv4 address on its bridge network.
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,

    /// Add NAME:IP (or NAME:host-gateway) to the container's /etc/hosts. Repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,

    /// A nameserver for the container's /etc/resolv.conf (instead of the host's). Repeatable.
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,

    /// Another name the containers of its network know this one by. Repeatable.
    #[arg(long = "network-alias", value_name = "NAME")]
    pub network_alias: Vec<String>,

    /// Publish a container port on the host: [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/tcp|/udp]
    /// (without HOST_PORT, the kernel picks one). Repeatable.
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,

    /// Publish every exposed port (the image's ExposedPorts and --expose) on a port the kernel
    /// picks, on all the host's addresses.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,

    /// Expose a container port (PORT[/tcp|/udp]) for -P to publish. Repeatable.
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,

    /// Memory limit, docker's syntax (e.g. 64m, 1g); swap is not allowed on top.
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,

    /// Number of CPUs the container may use (e.g. 0.5).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,

    /// Maximum number of processes and threads in the container; -1 (or 0) for no limit
    /// [default: 2048, podman's].
    #[arg(long = "pids-limit", value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<String>,

    /// A resource limit, docker's syntax: NAME=SOFT[:HARD] (nofile, nproc, core, stack...; -1
    /// for unlimited). Repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,

    /// The signal `minibox stop` sends it (a name, with or without SIG, or a number)
    /// [default: the image's StopSignal, else SIGTERM].
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,

    /// Seconds `minibox stop` waits after the stop signal before SIGKILL; -1 waits as long as it
    /// takes [default: 10].
    #[arg(
        long = "stop-timeout",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub stop_timeout: Option<String>,

    /// Parent cgroup for the container's group, below the cgroup v2 root.
    #[arg(long = "cgroup-parent", value_name = "PATH", default_value = "minibox")]
    pub cgroup_parent: String,

    /// Directory holding the container's files (becomes its /), or an image in the store
    /// (NAME[:TAG], sha256:ID or an id prefix). With --bundle: the container's ID.
    #[arg(value_name = "ROOTFS")]
    pub rootfs: PathBuf,

    /// Program to run (a path inside the root) and its arguments [default for an image: its
    /// Entrypoint and Cmd]. Without it (and without --bundle or an image), the one argument is
    /// an OCI ID and the bundle the current directory.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// A clap error as one line; `None` for help and version, which it has printed.
pub fn usage_message(e: clap::Error) -> Option<String> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            None
        }
        _ => {
            let text = e.render().to_string();
            let what: Vec<&str> = text
                .split("\n\n")
                .next()
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim().trim_start_matches("error: "))
                .collect();
            Some(what.join(" "))
        }
    }
}
