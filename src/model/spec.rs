//! `ContainerSpec`: everything a container is, as plain data.
//!
//! A front end (`cli::run`) builds a spec with the checks kept here, before anything is
//! created: a bad value costs nothing and leaves nothing behind. The launcher and the
//! container's init only read the spec.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::kernel::caps::CapSets;
use crate::kernel::cgroup::Limits;
use crate::kernel::console::ConsoleSize;
use crate::kernel::seccomp::SeccompProfile;
use crate::model::names::check_name;
use crate::model::network::{NetOptions, Network, PortMapping};
use crate::model::setup::Setup;
use crate::model::user::Identity;
use crate::model::volume::{ImageUse, VolumeMount};

/// Docker's default `PATH` for a container.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a short id is (as docker's).
pub const SHORT_ID_LEN: usize = 12;

/// One container, fully decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// 64 lowercase hex digits.
    pub id: String,
    /// `--name`, if given.
    pub name: Option<String>,
    /// Absolute, canonical path of the root filesystem on the host.
    pub rootfs: PathBuf,
    /// CMD and its arguments; CMD is a path inside the rootfs (or a name looked up in `PATH`).
    pub args: Vec<String>,
    /// The complete environment, `KEY=VALUE`.
    pub env: Vec<String>,
    pub hostname: String,
    /// Absolute path inside the container.
    pub workdir: PathBuf,
    pub identity: Identity,
    /// Capabilities the process keeps, per set (docker-style: one set in bounding, permitted
    /// and effective, empty for non-root).
    pub capabilities: CapSets,
    /// The seccomp filter CMD runs under; `None`: unconfined.
    pub seccomp: Option<SeccompProfile>,
    /// Mount the rootfs read-only inside the container.
    pub read_only: bool,
    /// What the kernel enforces on the container's cgroup.
    pub limits: Limits,
    /// The container's own cgroup, below the cgroup root (v2) or minibox's own group (v1): its
    /// last component names the group (`minibox/<id>` by default; OCI's `linux.cgroupsPath`).
    pub cgroup_path: PathBuf,
    pub network: Network,
    /// `-p`: host ports relayed to the container's.
    pub ports: Vec<PortMapping>,
    /// `--ip`, `--add-host`, `--dns`, `--network-alias`.
    pub net: NetOptions,
    /// `--explain`: narrate the setup.
    pub explain: bool,
    /// A copy-on-write layer of the container's own over `rootfs` (docker-style runs), or
    /// `rootfs` itself as the root (an OCI bundle: its maker owns it, writes land in it).
    pub private_layer: bool,
    /// `-t`: the container's stdio is a terminal of its own (OCI's `process.terminal`).
    pub tty: bool,
    /// `--init`: a tiny init (`runtime::pid1`) is PID 1 and runs CMD as its child.
    pub pid1: bool,
    /// Mounts, namespaces, devices, rlimits...: the rest of config.json that init honours.
    pub setup: Setup,
    /// The image the container is made from: its root is an overlay of the image's layers
    /// (`rootfs` is then the top one) and a layer of its own.
    pub image: Option<ImageUse>,
    /// `-v`, `--mount`, `--tmpfs`: mounted after the fixed mounts, in this order.
    pub volumes: Vec<VolumeMount>,
    /// config.json's `hooks`: programs run at the lifecycle points the runtime spec names.
    pub hooks: oci_spec::runtime::Hooks,
    /// `process.consoleSize`: the size of the terminal (`tty`) when config.json gives one.
    pub console_size: Option<ConsoleSize>,
    /// `--stop-signal`, `--stop-timeout`: how `minibox stop` ends it.
    pub stop: StopPolicy,
    /// `--userns auto`: a range of this many host ids is taken for it when it is made (its user
    /// namespace and maps are then in `setup`).
    pub auto_ids: Option<u32>,
    /// `--label`, `--label-file`: the user's own facts about it (`ps --filter label=`).
    pub labels: std::collections::BTreeMap<String, String>,
}

/// How `minibox stop` ends a container, when the run said (`--stop-signal`, `--stop-timeout`);
/// otherwise the image's `StopSignal` (else SIGTERM) and 10 seconds, as docker's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopPolicy {
    /// The signal's name, `SIGUSR1`...
    pub signal: Option<String>,
    /// Seconds between the signal and SIGKILL; -1 waits for as long as it takes.
    pub timeout: Option<i64>,
}

impl StopPolicy {
    /// `--stop-signal` (a name, with or without SIG, or a number) and `--stop-timeout` (seconds,
    /// or -1), checked.
    pub fn parse(signal: Option<&str>, timeout: Option<&str>) -> Result<StopPolicy> {
        let signal = signal
            .map(|s| {
                crate::kernel::process::parse_signal(s)
                    .map(|sig| sig.as_str().to_string())
                    .with_context(|| format!("invalid --stop-signal {s:?}"))
            })
            .transpose()?;
        let timeout = timeout
            .map(|t| match t.parse::<i64>() {
                Ok(n) if n >= -1 => Ok(n),
                _ => Err(anyhow::anyhow!(
                    "invalid --stop-timeout {t:?}: give seconds (0 or more), or -1 to wait as long \
                     as it takes"
                )),
            })
            .transpose()?;
        Ok(StopPolicy { signal, timeout })
    }
}

impl ContainerSpec {
    /// The first 12 hex digits of the id, as docker shows it.
    pub fn short_id(&self) -> &str {
        // An OCI id may be shorter than a short id.
        &self.id[..SHORT_ID_LEN.min(self.id.len())]
    }

    /// How messages name this container: its name if it has one, else its short id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or_else(|| self.short_id())
    }

    /// True when config.json lists no mount namespace: the container shares the caller's, and
    /// its root's mounts are made there (the runtime spec's rule for a type not listed).
    pub fn shares_callers_mounts(&self) -> bool {
        !self
            .setup
            .namespaces
            .has(crate::kernel::namespaces::Kind::Mount)
    }
}

/// What `run`'s first argument names, decided by how it is written and never by what happens
/// to exist: a directory another user plants in the working directory under an image's name
/// must not be run in its place (with the caller's `-e SECRET`).
#[derive(Debug, PartialEq, Eq)]
pub enum RootArg<'a> {
    /// Written as a path: it begins with `/`, `./` or `../` (or is `.`, `..`), or holds a `/`
    /// and cannot be an image reference (`rootfs/`, `My_Root/x`).
    Directory(&'a Path),
    /// Anything else: a bare `NAME[:TAG]`, `sha256:ID`, an id prefix, or a reference with a
    /// registry or a namespace (`localhost:5000/app:1`, `library/redis`).
    Image(&'a str),
}

/// Tells a ROOTFS from an IMAGE by its spelling (see `RootArg`).
pub fn root_arg(raw: &Path) -> RootArg<'_> {
    let bytes = raw.as_os_str().as_encoded_bytes();
    let pathlike = bytes.starts_with(b"/")
        || bytes.starts_with(b"./")
        || bytes.starts_with(b"../")
        || bytes == b"."
        || bytes == b"..";
    match raw.to_str() {
        Some(text) if !pathlike && (!text.contains('/') || is_image_reference(text)) => {
            RootArg::Image(text)
        }
        // Not UTF-8: no image is named so; a directory only when written as a path.
        None if !pathlike && !bytes.contains(&b'/') => RootArg::Image(""),
        _ => RootArg::Directory(raw),
    }
}

/// Docker's reference grammar: `[DOMAIN[:PORT]/]COMPONENT[/COMPONENT...][:TAG][@ALGO:HEX]`,
/// components of lower-case letters and digits joined by `.`, `_`, `__` or dashes.
pub fn is_image_reference(text: &str) -> bool {
    let (name, digest) = match text.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (text, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return false;
        };
        let algo_ok = !algo.is_empty()
            && algo
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        if !algo_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
    }
    let (path, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    if let Some(tag) = tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !tag_ok {
            return false;
        }
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    let first = parts[0];
    if parts.len() > 1 && (first.contains(['.', ':']) || first == "localhost") {
        let (host, port) = match first.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (first, None),
        };
        let host_ok = !host.is_empty()
            && !host.starts_with(['.', '-'])
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b));
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return false;
        }
        parts.remove(0);
    }
    parts.iter().all(|c| is_path_component(c))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// ROOTFS must be an existing directory other than the host's `/`; we keep its canonical path.
pub fn check_rootfs(raw: &Path) -> Result<PathBuf> {
    if raw.as_os_str().is_empty() {
        bail!("ROOTFS is empty: give the path of a directory holding the container's files");
    }
    let path = raw.canonicalize().with_context(|| {
        let looked = std::env::current_dir().map_or_else(|_| raw.to_path_buf(), |d| d.join(raw));
        format!(
            "ROOTFS {}: cannot open it (looked for the directory {}); give the path of a \
             directory holding the container's files (an image is named NAME[:TAG], not as a path)",
            raw.display(),
            looked.display()
        )
    })?;
    if !path.is_dir() {
        bail!(
            "ROOTFS {} is not a directory: give a directory holding the container's files",
            raw.display()
        );
    }
    if path == Path::new("/") {
        bail!(
            "ROOTFS {} is the host's own root: give a separate directory",
            raw.display()
        );
    }
    Ok(path)
}

/// The state root (`--root`, resolved) and ROOTFS must not overlap: a container could
/// otherwise write the records minibox trusts (or minibox write into the container).
pub fn check_rootfs_apart_from_state(rootfs: &Path, state_root: &Path) -> Result<()> {
    if state_root.starts_with(rootfs) || rootfs.starts_with(state_root) {
        bail!(
            "--root {} and ROOTFS {} overlap: the container could rewrite minibox's records; \
             keep the state directory outside the container's files",
            state_root.display(),
            rootfs.display()
        );
    }
    Ok(())
}

/// The longest OCI id: the longest name the state store derives from it must still be one
/// directory name (NAME_MAX, 255 bytes). That is `delete`'s `.removing-ID.PID` (a pid has at
/// most 7 digits): a 250-byte id was created, then could never be deleted.
pub const MAX_ID_LEN: usize = 255 - ".removing-".len() - ".4194304".len();

/// An OCI container id, as engines pass it (runc's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; engines
/// use 64 hex digits); it names the container's state directory, so no `/`, no `..`.
pub fn check_oci_id(id: &str) -> Result<()> {
    if id.len() > MAX_ID_LEN {
        bail!(
            "invalid container ID {:?}...: it is {} bytes long, at most {MAX_ID_LEN} are allowed",
            id.chars().take(16).collect::<String>(),
            id.len()
        );
    }
    check_name(id).map_err(|_| {
        anyhow::anyhow!("invalid container ID {id:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed")
    })?;
    // The state root keeps its networks beside the containers, under this name.
    if id == crate::model::network::NETWORKS_DIR {
        bail!("invalid container ID {id:?}: it is reserved (the state root's networks)");
    }
    Ok(())
}

pub fn check_workdir(w: &str) -> Result<PathBuf> {
    let p = PathBuf::from(w);
    if !p.is_absolute() {
        bail!("invalid --workdir {w:?}: it must be an absolute path inside the container");
    }
    Ok(p)
}

/// A new random container id: 64 hex digits from the kernel's CSPRNG.
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a container id")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads a file of the container's root as the container will see it: of ROOTFS, or of the
/// image's layers (top first; a whiteout or an opaque directory hides what is below).
pub fn read_in_root(rootfs: &Path, image: Option<&ImageUse>, rel: &str) -> Result<Option<Vec<u8>>> {
    let Some(image) = image else {
        return read_in_rootfs(rootfs, rel);
    };
    for layer in &image.lower {
        match crate::kernel::overlay::presence(layer, rel) {
            crate::kernel::overlay::Presence::Absent => continue,
            crate::kernel::overlay::Presence::Hidden => return Ok(None),
            crate::kernel::overlay::Presence::Here => return read_in_rootfs(layer, rel),
            crate::kernel::overlay::Presence::AbsentOpaque => return Ok(None),
        }
    }
    Ok(None)
}

/// Reads a file of the rootfs without ever leaving it (symlinks resolve inside ROOTFS).
/// `None` when the file does not exist.
pub fn read_in_rootfs(rootfs: &Path, rel: &str) -> Result<Option<Vec<u8>>> {
    let root = crate::kernel::rootfs::open_dir(rootfs)?;
    match crate::kernel::rootfs::read_file_in(&root, rel) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}/{rel}", rootfs.display())),
    }
}

/// The lines of an `--env-file`, docker's format: `KEY=VALUE` (the value verbatim: no quotes
/// are removed, nothing expanded), `KEY` alone (the host's value, as `-e KEY`), `#` comments
/// and blank lines skipped, leading spaces ignored. Returned as `-e` flags, in order.
pub fn parse_env_file(text: &[u8], path: &Path) -> Result<Vec<String>> {
    let text = std::str::from_utf8(text).map_err(|e| {
        anyhow::anyhow!(
            "--env-file {}: not UTF-8 text (at byte {}): save it as UTF-8",
            path.display(),
            e.valid_up_to()
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut flags = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        if key.is_empty() || key.chars().any(char::is_whitespace) || line.contains('\0') {
            bail!(
                "--env-file {} line {}: {line:?} is not KEY=VALUE (a variable's name has no \
                 spaces and is not empty)",
                path.display(),
                n + 1
            );
        }
        flags.push(line.to_string());
    }
    Ok(flags)
}

/// The container's environment, docker's way: `PATH`, `HOSTNAME` and `HOME` by default, then
/// each `-e KEY=VALUE` (a later one wins); `-e KEY` takes the host's value, or is left out when
/// the host has none.
pub fn build_env(
    flags: &[String],
    hostname: &str,
    home: &str,
    host_var: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let defaults = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
        format!("HOME={home}"),
    ];
    merge_env(defaults, flags, host_var)
}

/// `env` with each `-e KEY=VALUE` set (a later one wins, in the place of the one it replaces);
/// `-e KEY` takes the host's value, or is left out when the host has none.
pub fn merge_env(
    mut env: Vec<String>,
    flags: &[String],
    host_var: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    for flag in flags {
        let (key, value) = match flag.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (flag.as_str(), host_var(flag)),
        };
        if key.is_empty()
            || key.contains('\0')
            || value.as_deref().is_some_and(|v| v.contains('\0'))
        {
            bail!("invalid --env {flag:?}: use KEY=VALUE (or KEY to pass the host's value)");
        }
        let Some(value) = value else { continue };
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::names::check_hostname;

    fn host(k: &str) -> Option<String> {
        (k == "FROM_HOST").then(|| "hostval".to_string())
    }

    #[test]
    fn env_has_docker_defaults() {
        let env = build_env(&[], "abc", "/home/x", host).unwrap();
        assert_eq!(
            env,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=abc".to_string(),
                "HOME=/home/x".to_string()
            ]
        );
    }

    #[test]
    fn env_flags_override_add_and_pass_through() {
        let flags = [
            "PATH=/bin",
            "A=1",
            "A=2",
            "FROM_HOST",
            "NOT_ON_HOST",
            "EMPTY=",
            "EQ=a=b",
        ]
        .map(String::from);
        let env = build_env(&flags, "h", "/", host).unwrap();
        assert_eq!(
            env,
            [
                "PATH=/bin",
                "HOSTNAME=h",
                "HOME=/",
                "A=2",
                "FROM_HOST=hostval",
                "EMPTY=",
                "EQ=a=b"
            ]
        );
    }

    #[test]
    fn env_files_read_as_dockers() {
        let text = "\u{feff}# a comment\n\nA=1\n  B=two words \nC=\"quoted\"\nFROM_HOST\nNOT_ON_HOST\nD=x=y\n";
        let flags = parse_env_file(text.as_bytes(), Path::new("f")).unwrap();
        assert_eq!(
            flags,
            [
                "A=1",
                "B=two words ",
                "C=\"quoted\"",
                "FROM_HOST",
                "NOT_ON_HOST",
                "D=x=y"
            ]
        );
        for (text, line) in [("A=1\nB C=3\n", 2), ("=x\n", 1), ("A=1\nB =2\n", 2)] {
            let e = parse_env_file(text.as_bytes(), Path::new("f"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("line {line}")), "{e}");
        }
        assert!(parse_env_file(b"A=\xff\n", Path::new("f")).is_err());
        let env = build_env(&flags, "h", "/", host).unwrap();
        assert!(env.contains(&"FROM_HOST=hostval".to_string()));
        assert!(!env.iter().any(|e| e.starts_with("NOT_ON_HOST")));
    }

    #[test]
    fn stop_policies_are_checked() {
        let p = StopPolicy::parse(Some("usr1"), Some("1")).unwrap();
        assert_eq!((p.signal.as_deref(), p.timeout), (Some("SIGUSR1"), Some(1)));
        assert_eq!(
            StopPolicy::parse(Some("9"), Some("-1"))
                .unwrap()
                .signal
                .as_deref(),
            Some("SIGKILL")
        );
        assert!(StopPolicy::parse(Some("SIGNOPE"), None).is_err());
        assert!(StopPolicy::parse(None, Some("-2")).is_err());
        assert!(StopPolicy::parse(None, Some("x")).is_err());
    }

    #[test]
    fn env_rejects_bad_entries() {
        for bad in ["=x", "", "A\0B=1", "A=\0"] {
            let err = build_env(&[bad.to_string()], "h", "/", host).unwrap_err();
            assert!(err.to_string().contains("invalid --env"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn names_follow_docker() {
        for good in ["web", "a", "x_1.y-2", "9lives"] {
            check_name(good).unwrap();
        }
        for bad in ["", "-x", "_x", ".x", "a b", "a/b", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hostnames_and_workdirs_are_checked() {
        assert_eq!(check_hostname("box-1.local").unwrap(), "box-1.local");
        assert!(check_hostname("").is_err());
        assert!(check_hostname("a b").is_err());
        assert!(check_hostname(&"x".repeat(65)).is_err());
        assert!(check_workdir("/srv").is_ok());
        assert!(check_workdir("srv").is_err());
    }

    #[test]
    fn ids_are_64_hex_and_differ() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    fn spec_from(argv: &[&str]) -> Result<ContainerSpec> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(argv).expect("argv parses");
        let crate::cli::Command::Run(args) = cli.command else {
            panic!("not a run command: {argv:?}");
        };
        crate::cli::run::spec_from_run_args(&args, Path::new("/nonexistent-minibox-data"))
    }

    fn rootfs_with_passwd() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "app:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "app:x:1000:\nstaff:x:50:app\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn cli_becomes_a_spec_with_docker_defaults() {
        let dir = rootfs_with_passwd();
        let root = dir.path().to_str().unwrap();
        let spec = spec_from(&["minibox", "run", root, "/main", "--port", "1"]).unwrap();
        assert_eq!(spec.rootfs, dir.path().canonicalize().unwrap());
        assert_eq!(spec.args, ["/main", "--port", "1"]);
        assert_eq!(spec.hostname, spec.short_id());
        assert_eq!(spec.display_name(), spec.short_id());
        assert_eq!(spec.workdir, PathBuf::from("/"));
        assert_eq!((spec.identity.uid, spec.identity.gid), (65534, 65534));
        assert!(spec.capabilities.bounding.is_empty());
        assert!(!spec.read_only);
        assert!(spec.env.contains(&"HOME=/nonexistent".to_string()));
        assert!(spec.env.contains(&format!("HOSTNAME={}", spec.hostname)));
    }

    #[test]
    fn cli_flags_reach_the_spec() {
        let dir = rootfs_with_passwd();
        let root = dir.path().to_str().unwrap();
        let spec = spec_from(&[
            "minibox",
            "run",
            "--name",
            "web",
            "-e",
            "A=1",
            "--hostname",
            "h1",
            "-w",
            "/srv",
            "-u",
            "app",
            "--read-only",
            root,
            "/main",
        ])
        .unwrap();
        assert_eq!(spec.display_name(), "web");
        assert_eq!(spec.hostname, "h1");
        assert_eq!(spec.workdir, PathBuf::from("/srv"));
        assert_eq!(
            (
                spec.identity.uid,
                spec.identity.gid,
                spec.identity.groups.clone()
            ),
            (1000, 1000, vec![50])
        );
        assert!(spec.env.contains(&"HOME=/home/app".to_string()));
        assert!(spec.env.contains(&"A=1".to_string()));
        assert!(spec.read_only);
        // No flag: podman's default process limit, marked as the default.
        assert_eq!(
            spec.limits,
            Limits {
                pids: Some(crate::kernel::cgroup::DEFAULT_PIDS_LIMIT),
                pids_default: true,
                ..Limits::default()
            }
        );
        for none in ["-1", "0"] {
            let unlimited =
                spec_from(&["minibox", "run", "--pids-limit", none, root, "/main"]).unwrap();
            assert!(
                unlimited.limits.is_empty(),
                "{none}: {:?}",
                unlimited.limits
            );
        }
        let limited = spec_from(&[
            "minibox",
            "run",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "20",
            root,
            "/main",
        ])
        .unwrap();
        assert_eq!(
            limited.limits,
            Limits {
                memory: Some(64 << 20),
                cpu_quota: Some(50_000),
                pids: Some(20),
                pids_default: false,
            }
        );
        assert_eq!(limited.cgroup_path, Path::new("minibox").join(&limited.id));
        let root_spec = spec_from(&["minibox", "run", "-u", "0", root, "/main"]).unwrap();
        assert_eq!(root_spec.capabilities.bounding.len(), 13);
        assert_eq!(root_spec.capabilities.permitted.len(), 13);
    }

    #[test]
    fn cli_errors_name_the_bad_value() {
        let dir = rootfs_with_passwd();
        let root = dir.path().to_str().unwrap();
        let err = spec_from(&["minibox", "run", "-u", "ghost", root, "/main"]).unwrap_err();
        assert!(err.to_string().contains("\"ghost\""), "{err}");
        let err = spec_from(&["minibox", "run", "--name", "a b", root, "/main"]).unwrap_err();
        assert!(err.to_string().contains("invalid container name"), "{err}");
    }

    #[test]
    fn a_directory_is_one_written_as_a_path_a_bare_name_is_an_image() {
        for dir in [
            "./rootfs",
            "/srv/rootfs",
            "../r",
            ".",
            "..",
            "rootfs/",
            "My_Root/x",
            "a/b:c/",
            "rootfs//x",
        ] {
            assert_eq!(root_arg(Path::new(dir)), RootArg::Directory(Path::new(dir)));
        }
        let id = format!("sha256:{}", "a".repeat(64));
        let digest = format!("localhost/x/y@{id}");
        for image in [
            "app:1",
            "app",
            "rootfs",
            "My_Root",
            id.as_str(),
            "0123456789ab",
            "library/redis",
            "user/app:1",
            "127.0.0.1:5000/hello:1",
            "localhost:5000/a/b",
            "registry.example.com/team/app:v1.2",
            "rootfs-examples/hello/rootfs",
            digest.as_str(),
        ] {
            assert_eq!(root_arg(Path::new(image)), RootArg::Image(image), "{image}");
        }
        for bad in [
            "a__b_/x",
            "a/B",
            "a/b:-x",
            "x/-a",
            "a/b@sha256:zz",
            "a.b:/x",
        ] {
            assert!(!is_image_reference(bad), "{bad}");
        }
        for good in ["a__b/x", "a-----b/c", "a.b/c_d:latest", "a/b:_x"] {
            assert!(is_image_reference(good), "{good}");
        }
    }

    #[test]
    fn rootfs_must_be_a_real_directory() {
        assert!(check_rootfs(Path::new("")).is_err());
        assert!(check_rootfs(Path::new("/")).is_err());
        assert!(check_rootfs(Path::new("/nonexistent-minibox")).is_err());
        assert!(check_rootfs(Path::new("/etc/hostname")).is_err());
        assert_eq!(
            check_rootfs(Path::new("/etc/../etc")).unwrap(),
            PathBuf::from("/etc")
        );
    }
}
