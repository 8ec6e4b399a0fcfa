//! Images made here rather than loaded: `build`'s steps, `commit`, `import`. Each is a config
//! (JSON, as the OCI image spec writes it) over layers already in the store; the config's
//! `rootfs.diff_ids` are set from the layers, so the id (the config's digest) names exactly
//! those layers.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::stat::FileStat;
use serde_json::{json, Value};

use crate::kernel::namespaces::IdMap;
use crate::store::images::{ImageRecord, Images, IndexLock};
use crate::store::merged;
use crate::store::unpack::sha256_digest;

/// A config for an image with no parent: linux/amd64, nothing to run yet.
pub fn empty_config() -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    })
}

/// Writes `config` (its `rootfs.diff_ids` set to `layers`) and records the image; returns its
/// id. `build` marks a build step's image (see `ImageRecord::build`).
pub fn record(
    images: &Images,
    lock: &IndexLock,
    mut config: Value,
    layers: &[String],
    build: Option<String>,
    tags: &[String],
) -> Result<String> {
    config["rootfs"] = json!({"type": "layers", "diff_ids": layers});
    let bytes = serde_json::to_vec(&config)?;
    let id = sha256_digest(&bytes);
    images.put_blob(&id, &bytes)?;
    let mut size = 0;
    for l in layers {
        size += dir_size(&images.layer_dir(l)?);
    }
    let index = images.index()?;
    // The same config again (a build step from the cache, a second commit of the same
    // files): the record stays as it is, its build mark kept.
    let build = match index.images.get(&id) {
        Some(old) if old.build.is_some() || build.is_none() => old.build.clone(),
        _ => build,
    };
    images.add_image(
        lock,
        ImageRecord {
            id: id.clone(),
            manifest: None,
            layers: layers.to_vec(),
            created: config["created"].as_str().map(str::to_string),
            size,
            build,
        },
        tags,
    )?;
    Ok(id)
}

/// A layer from a tar stream spooled in a scratch file: put in the store (the lock held, so
/// no garbage collection removes it before its image is recorded). Returns its diff id.
pub fn add_spooled(images: &Images, spool: &mut File) -> Result<(String, u64)> {
    spool.flush()?;
    spool.seek(SeekFrom::Start(0))?;
    images.add_layer(&mut *spool, None, None)
}

/// A scratch file in the store's `tmp/`, removed when dropped.
pub struct Spool {
    pub file: File,
    path: std::path::PathBuf,
}

impl Spool {
    pub fn new(images: &Images, what: &str) -> Result<Spool> {
        let path = images.scratch(what)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Spool { file, path })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A container's own writes (its upper directory) as a new layer in the store, leaving out
/// what the runtime made there for its mounts (empty mount points absent from `below`, the
/// layers under it). Returns the diff id.
pub fn layer_of_upper(
    images: &Images,
    upper: &Path,
    below: &[std::path::PathBuf],
    owners: Option<&(Vec<IdMap>, Vec<IdMap>)>,
) -> Result<(String, u64)> {
    let mut spool = Spool::new(images, "diff")?;
    let skip = |path: &[u8], st: &FileStat| runtime_made(path, st, below);
    merged::write_layer(
        upper,
        &skip,
        owners,
        std::io::BufWriter::new(&mut spool.file),
    )
    .with_context(|| format!("reading the container's layer {}", upper.display()))?;
    add_spooled(images, &mut spool.file)
}

/// The paths the runtime makes in a container's layer to mount on: left out of a commit when
/// they are empty and no layer below has them.
const MOUNT_POINTS: &[&[u8]] = &[
    b"proc",
    b"sys",
    b"dev",
    b"etc/hosts",
    b"etc/hostname",
    b"etc/resolv.conf",
    b"run/.containerenv",
];

fn runtime_made(path: &[u8], st: &FileStat, below: &[std::path::PathBuf]) -> bool {
    let kind = st.st_mode & libc::S_IFMT;
    // What is mounted over /dev, /proc, /sys in a running container is never its own.
    if [&b"dev/"[..], b"proc/", b"sys/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return true;
    }
    if !MOUNT_POINTS.contains(&path) {
        return false;
    }
    let empty = (kind == libc::S_IFREG && st.st_size == 0) || kind == libc::S_IFDIR;
    let rel = String::from_utf8_lossy(path);
    empty
        && below.iter().all(|l| {
            crate::kernel::overlay::presence(l, &rel) != crate::kernel::overlay::Presence::Here
        })
}

/// Bytes of the regular files under `dir` (never following a link).
pub fn dir_size(dir: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(rd) = fs::read_dir(p) else { return 0 };
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path()),
                Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                _ => 0,
            })
            .sum()
    }
    walk(dir)
}
