//! What a container gets mounted besides its root: `-v`, `--mount`, `--tmpfs`, and the image
//! it is made from.
//!
//! Every mount is `nosuid,nodev`; `ro` is enforced by a read-only remount. Container paths
//! are absolute, without `..`, and resolved inside the container's root when mounted (never
//! through a symlink out of it).

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// An image a container is made from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageUse {
    /// As the user named it (`hello:1`, `sha256:…`).
    pub reference: String,
    /// `sha256:<hex>` of its config.
    pub id: String,
    /// Its layer directories, top first; the container's root is an overlay of them.
    pub lower: Vec<PathBuf>,
    /// The config's `StopSignal` (for `minibox stop`).
    pub stop_signal: Option<String>,
    /// The config's `ExposedPorts` (`8080/tcp`), for `inspect`.
    pub exposed_ports: Vec<String>,
}

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A host path (`-v /srv/data:/data`).
    Bind(PathBuf),
    /// A named volume: `<data-root>/volumes/NAME/_data`.
    Named { name: String, path: PathBuf },
    /// A fresh tmpfs; `size` in bytes, `mode` octal.
    Tmpfs {
        size: Option<u64>,
        mode: Option<u32>,
    },
}

/// One mount of `-v`, `--mount` or `--tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: VolumeSource,
    /// Absolute path inside the container.
    pub target: PathBuf,
    pub read_only: bool,
    /// `-v …:idmap`: a bind seen through the container's user namespace's maps (its files'
    /// owners are the container's ids inside, and what it writes keeps the owners it sees).
    pub idmap: bool,
}

impl VolumeMount {
    /// A named volume (`-v NAME:PATH`): made, and seeded, on first use.
    pub fn is_named(&self) -> bool {
        matches!(self.source, VolumeSource::Named { .. })
    }

    /// `SOURCE:TARGET[:ro]`, as `-v` writes it (`tmpfs` for a tmpfs).
    pub fn display(&self) -> String {
        let src = match &self.source {
            VolumeSource::Bind(p) => p.display().to_string(),
            VolumeSource::Named { name, .. } => name.clone(),
            VolumeSource::Tmpfs { .. } => "tmpfs".into(),
        };
        let opts: Vec<&str> = [(self.read_only, "ro"), (self.idmap, "idmap")]
            .into_iter()
            .filter_map(|(on, o)| on.then_some(o))
            .collect();
        match opts.is_empty() {
            true => format!("{src}:{}", self.target.display()),
            false => format!("{src}:{}:{}", self.target.display(), opts.join(",")),
        }
    }
}

/// A container path: absolute, no `..`; normalized.
pub fn check_target(text: &str, flag: &str) -> Result<PathBuf> {
    let p = Path::new(text);
    if !p.is_absolute() {
        bail!("invalid {flag} target {text:?}: give an absolute path inside the container");
    }
    let mut clean = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => bail!("invalid {flag} target {text:?}: '..' is not allowed"),
        }
    }
    if clean == Path::new("/") {
        bail!("invalid {flag} target {text:?}: the container's / cannot be a mount");
    }
    // What the kernel shows the container (its own processes, its read-only sysfs with the
    // masked and read-only paths) and its /dev are minibox's to mount, never a volume's: over
    // them a volume would hide procfs or the device nodes, or plant its own (runc refuses too).
    if clean.starts_with("/proc") || clean.starts_with("/sys") || clean == Path::new("/dev") {
        bail!(
            "invalid {flag} target {text:?}: /proc, /sys and /dev are the container's own \
             (procfs, sysfs, its device nodes); mount the volume elsewhere"
        );
    }
    Ok(clean)
}

/// Docker's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_volume_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 128;
    if !ok {
        bail!("invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed");
    }
    Ok(())
}

/// Where named volume `name`'s files are.
pub fn volume_path(data_root: &Path, name: &str) -> PathBuf {
    data_root.join("volumes").join(name).join("_data")
}

fn source_of(src: &str, data_root: &Path, flag: &str) -> Result<VolumeSource> {
    if src.starts_with('/') {
        let path = Path::new(src).canonicalize().with_context(|| {
            format!("invalid {flag} source {src:?}: it does not exist on the host")
        })?;
        if path == Path::new("/") {
            bail!(
                "invalid {flag} source {src:?}: binding the host's / into a container is refused"
            );
        }
        return Ok(VolumeSource::Bind(path));
    }
    check_volume_name(src).with_context(|| {
        format!("invalid {flag} source {src:?}: give an absolute host path or a volume name")
    })?;
    Ok(VolumeSource::Named {
        name: src.to_string(),
        path: volume_path(data_root, src),
    })
}

/// `-v SOURCE:TARGET[:ro|rw]`.
pub fn parse_volume(text: &str, data_root: &Path) -> Result<VolumeMount> {
    let parts: Vec<&str> = text.split(':').collect();
    let (src, target, opts) = match parts.as_slice() {
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => bail!(
            "invalid -v {text:?}: use HOST_PATH:CONTAINER_PATH[:ro] or NAME:CONTAINER_PATH[:ro]"
        ),
    };
    let mut read_only = false;
    let mut idmap = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "idmap" => idmap = true,
            other => {
                bail!("invalid -v {text:?}: option {other:?} is not supported (ro, rw, idmap)")
            }
        }
    }
    Ok(VolumeMount {
        source: source_of(src, data_root, "-v")?,
        target: check_target(target, "-v")?,
        read_only,
        idmap,
    })
}

/// `--tmpfs PATH[:size=…,mode=…]`.
pub fn parse_tmpfs(text: &str) -> Result<VolumeMount> {
    let (path, opts) = text.split_once(':').unwrap_or((text, ""));
    let (size, mode, read_only) =
        tmpfs_options(opts.split(',').filter(|o| !o.is_empty()), "--tmpfs")?;
    Ok(VolumeMount {
        source: VolumeSource::Tmpfs { size, mode },
        target: check_target(path, "--tmpfs")?,
        read_only,
        idmap: false,
    })
}

fn tmpfs_options<'a>(
    opts: impl Iterator<Item = &'a str>,
    flag: &str,
) -> Result<(Option<u64>, Option<u32>, bool)> {
    let (mut size, mut mode, mut ro) = (None, None, false);
    for o in opts {
        match o.split_once('=') {
            Some(("size" | "tmpfs-size", v)) => {
                size = Some(parse_size(v).with_context(|| {
                    format!("invalid {flag} size {v:?}: use bytes, or a number with k, m or g")
                })?)
            }
            Some(("mode" | "tmpfs-mode", v)) => {
                mode = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .with_context(|| {
                            format!("invalid {flag} mode {v:?}: give octal, e.g. 1777")
                        })?,
                )
            }
            None if o == "ro" => ro = true,
            None if o == "rw" => ro = false,
            _ => bail!("invalid {flag} option {o:?}: use size=, mode=, ro"),
        }
    }
    Ok((size, mode, ro))
}

/// `64m`, `1g`, `512k`, `4096`: bytes.
fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift).filter(|n| *n > 0)
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…]`.
pub fn parse_mount(text: &str, data_root: &Path) -> Result<VolumeMount> {
    let (mut typ, mut src, mut target, mut ro) = ("volume", None, None, false);
    let mut tmpfs_opts = vec![];
    for field in text.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => typ = v,
            "source" | "src" => src = Some(v),
            "target" | "destination" | "dst" => target = Some(v),
            "readonly" | "ro" => ro = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" | "tmpfs-mode" => tmpfs_opts.push(field),
            _ => bail!("invalid --mount {text:?}: field {k:?} is not supported"),
        }
    }
    let target = check_target(
        target.with_context(|| format!("invalid --mount {text:?}: target= is missing"))?,
        "--mount",
    )?;
    let source = match typ {
        "tmpfs" => {
            if src.is_some() {
                bail!("invalid --mount {text:?}: a tmpfs has no source");
            }
            let (size, mode, _) = tmpfs_options(tmpfs_opts.into_iter(), "--mount")?;
            VolumeSource::Tmpfs { size, mode }
        }
        "bind" | "volume" => {
            if !tmpfs_opts.is_empty() {
                bail!("invalid --mount {text:?}: tmpfs options need type=tmpfs");
            }
            let src =
                src.with_context(|| format!("invalid --mount {text:?}: source= is missing"))?;
            let s = source_of(src, data_root, "--mount")?;
            match (typ, &s) {
                ("bind", VolumeSource::Bind(_)) | ("volume", VolumeSource::Named { .. }) => s,
                _ => bail!(
                    "invalid --mount {text:?}: type=bind takes an absolute host path, type=volume \
                     a volume name"
                ),
            }
        }
        other => {
            bail!("invalid --mount {text:?}: type {other:?} is not supported (bind, volume, tmpfs)")
        }
    };
    Ok(VolumeMount {
        source,
        target,
        read_only: ro,
        idmap: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags_parse_as_docker() {
        let d = Path::new("/var/lib/minibox");
        let v = parse_volume("data:/data:ro", d).unwrap();
        assert_eq!(v.target, Path::new("/data"));
        assert!(v.read_only);
        assert!(matches!(v.source, VolumeSource::Named { ref name, .. } if name == "data"));
        let v = parse_volume("/tmp:/x", d).unwrap();
        assert!(matches!(v.source, VolumeSource::Bind(_)));
        assert!(parse_volume("data:rel", d).is_err());
        assert!(parse_volume("data:/a/../b", d).is_err());
        assert!(parse_volume("/nonexistent-minibox:/x", d).is_err());
        assert!(parse_volume("bad name:/x", d).is_err());
        assert!(parse_volume("/:/x", d).is_err());
        // procfs, sysfs and /dev are the container's own.
        for target in ["/proc", "/proc/sys", "/sys", "/sys/fs/cgroup", "/dev"] {
            let err = parse_volume(&format!("/tmp:{target}"), d).unwrap_err();
            assert!(err.to_string().contains("are the container's own"), "{err}");
            assert!(parse_tmpfs(target).is_err(), "{target}");
        }
        assert!(parse_volume("/tmp:/dev/shm2", d).is_ok());
        assert!(parse_volume("/tmp:/procfs", d).is_ok());
        let t = parse_tmpfs("/tmp:size=1m,mode=1777").unwrap();
        assert_eq!(
            t.source,
            VolumeSource::Tmpfs {
                size: Some(1 << 20),
                mode: Some(0o1777)
            }
        );
        assert!(parse_tmpfs("/tmp:mode=99").is_err());
        let m = parse_mount("type=tmpfs,target=/run,tmpfs-size=2m", d).unwrap();
        assert_eq!(
            m.source,
            VolumeSource::Tmpfs {
                size: Some(2 << 20),
                mode: None
            }
        );
        let m = parse_mount("type=volume,source=v1,target=/v,readonly", d).unwrap();
        assert!(m.read_only);
        assert!(parse_mount("type=bind,source=v1,target=/v", d).is_err());
        assert!(parse_mount("type=nfs,source=x,target=/v", d).is_err());
        assert!(parse_mount("type=volume,source=v", d).is_err());
    }
}
