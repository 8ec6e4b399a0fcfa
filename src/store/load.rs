//! `minibox load` and `minibox import`: images from archives, into the store.
//!
//! Two layouts are read, as a tar stream (plain, gzip or zstd) or a directory:
//! - `docker save`'s: `manifest.json` listing each image's config, tags and layer files (older
//!   docker: `<id>/layer.tar`; docker 25+: `blobs/sha256/<hex>`);
//! - an OCI image layout: `oci-layout`, `index.json` and `blobs/sha256/<hex>`.
//!
//! Every digest is checked: a blob named by its digest must hash to it, a manifest's config and
//! layers to theirs, and each layer's tar stream to the config's diff id.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::store::images::{check_reference, digest_hex, verify, ImageRecord, Images};
use crate::store::unpack::{self, sha256_digest};
use crate::store::{Watch, Watched};

/// The files of an archive, by their path inside it.
enum Source {
    /// A tar stream, spooled: each regular file into a scratch file.
    Spooled {
        dir: PathBuf,
        files: HashMap<String, PathBuf>,
    },
    /// A directory of the user's, read without leaving it.
    Dir(OwnedFd),
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Source::Spooled { dir, .. } = self {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A path inside an archive, with `./` and empty parts removed; `..` is refused.
fn clean_name(name: &str) -> Result<String> {
    let parts = unpack::clean(name.as_bytes(), &format!("the archive's path {name:?}"))?;
    Ok(parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join("/"))
}

impl Source {
    fn spool(images: &Images, input: impl Read) -> Result<Source> {
        let dir = images.scratch("load")?;
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut source = Source::Spooled {
            dir: dir.clone(),
            files: HashMap::new(),
        };
        let Source::Spooled { files, .. } = &mut source else {
            unreachable!()
        };
        let mut links: Vec<(String, String)> = vec![];
        let mut archive = tar::Archive::new(unpack::decompress(input)?);
        for (n, entry) in archive
            .entries()
            .context("reading the archive (a tar stream)")?
            .enumerate()
        {
            let mut entry = entry.context("reading the archive (a tar stream)")?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = clean_name(&raw)?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let path = dir.join(n.to_string());
                    let mut f = File::create(&path)?;
                    std::io::copy(&mut entry, &mut f)
                        .with_context(|| format!("reading {raw:?} from the archive"))?;
                    files.insert(name, path);
                }
                // Older `docker save` links a layer shared by two images to its first copy.
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name()?
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                        let base = Path::new(&name).parent().unwrap_or(Path::new(""));
                        base.join(&target).to_string_lossy().into_owned()
                    } else {
                        target
                    };
                    links.push((name, resolve_dots(&target)?));
                }
                _ => {}
            }
        }
        for (name, target) in links {
            if let Some(path) = files.get(&target).cloned() {
                files.insert(name, path);
            }
        }
        Ok(source)
    }

    fn open(&self, name: &str) -> Result<File> {
        let name = clean_name(name)?;
        match self {
            Source::Spooled { files, .. } => {
                let path = files
                    .get(&name)
                    .ok_or_else(|| anyhow!("the archive has no file {name:?}"))?;
                Ok(File::open(path)?)
            }
            Source::Dir(root) => {
                let how = OpenHow::new()
                    .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
                    .mode(Mode::empty())
                    .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
                let fd = openat2(root, name.as_str(), how)
                    .with_context(|| format!("the directory has no file {name:?}"))?;
                let file = File::from(fd);
                if !file.metadata()?.is_file() {
                    bail!("{name:?} in the directory is not a regular file");
                }
                Ok(file)
            }
        }
    }

    fn has(&self, name: &str) -> bool {
        self.open(name).is_ok()
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        const MAX: u64 = 64 << 20;
        let mut bytes = vec![];
        self.open(name)?.take(MAX).read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// `a/b/../c` → `a/c`, refusing to climb out.
fn resolve_dots(path: &str) -> Result<String> {
    let mut out: Vec<&str> = vec![];
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()
                    .ok_or_else(|| anyhow!("link target {path:?} leaves the archive"))?;
            }
            p => out.push(p),
        }
    }
    Ok(out.join("/"))
}

/// One image `load` put in the store.
#[derive(Debug)]
pub struct Loaded {
    pub id: String,
    pub tags: Vec<String>,
}

/// `docker save`'s manifest.json entries.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads an archive (a tar stream, or a directory) into the store.
pub fn load(images: &Images, input: Option<&Path>, watch: &mut dyn Watch) -> Result<Vec<Loaded>> {
    let source = match input {
        Some(p) if p.is_dir() => Source::Dir(
            crate::kernel::rootfs::open_dir(p)
                .with_context(|| format!("opening the image directory {}", p.display()))?,
        ),
        Some(p) => {
            let file = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            Source::spool(images, file)?
        }
        None => Source::spool(images, std::io::stdin().lock())?,
    };
    if source.has("manifest.json") {
        load_docker(images, &source, watch)
    } else if source.has("index.json") {
        load_oci(images, &source, watch)
    } else {
        bail!(
            "the archive has neither manifest.json (docker save) nor index.json (an OCI image \
             layout): give an image archive"
        )
    }
}

fn load_docker(images: &Images, source: &Source, watch: &mut dyn Watch) -> Result<Vec<Loaded>> {
    let entries: Vec<SaveEntry> = serde_json::from_slice(&source.read("manifest.json")?)
        .context("manifest.json is not docker save's manifest")?;
    let mut loaded = vec![];
    for entry in entries {
        let config_bytes = source.read(&entry.config)?;
        check_named_blob(&entry.config, &config_bytes)?;
        let layers: Vec<(String, Option<String>)> = entry
            .layers
            .iter()
            .map(|l| (l.clone(), blob_digest_of_name(l)))
            .collect();
        // The archive's tags are the image's words: checked as `tag` checks the user's,
        // before anything is stored.
        let tags: Vec<String> = entry
            .repo_tags
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|t| check_reference(t).context("manifest.json RepoTags"))
            .collect::<Result<_>>()?;
        let id = store_image(images, &config_bytes, None, &layers, watch, |name, _| {
            source.open(name)
        })?;
        tag(images, &id, &tags)?;
        loaded.push(Loaded { id, tags });
    }
    Ok(loaded)
}

/// `blobs/sha256/<hex>` names its digest.
fn blob_digest_of_name(name: &str) -> Option<String> {
    let hex = clean_name(name)
        .ok()?
        .strip_prefix("blobs/sha256/")?
        .to_string();
    digest_hex(&format!("sha256:{hex}")).ok()?;
    Some(format!("sha256:{hex}"))
}

fn check_named_blob(name: &str, bytes: &[u8]) -> Result<()> {
    match blob_digest_of_name(name) {
        Some(d) => verify(&d, bytes).with_context(|| format!("the archive's {name}")),
        None => Ok(()),
    }
}

fn load_oci(images: &Images, source: &Source, watch: &mut dyn Watch) -> Result<Vec<Loaded>> {
    let index: ImageIndex = serde_json::from_slice(&source.read("index.json")?)
        .context("index.json is not an OCI image index")?;
    let mut loaded = vec![];
    for desc in index.manifests() {
        let annotations = desc.annotations().clone().unwrap_or_default();
        // Checked as `tag` checks the user's, before anything is stored: an annotation
        // `sha256:<id>` or `<hex id>:latest` would otherwise shadow another image.
        let name = annotations
            .get("io.containerd.image.name")
            .or_else(|| annotations.get("org.opencontainers.image.ref.name"))
            .filter(|n| n.contains(':') || n.contains('/'))
            .map(|n| check_reference(n).context("index.json's image name annotation"))
            .transpose()?;
        let bytes = read_blob(source, desc.digest().as_ref())?;
        let manifest_digest = desc.digest().to_string();
        let manifest = match desc.media_type().to_string().as_str() {
            m if m.contains("index") || m.contains("manifest.list") => {
                let inner: ImageIndex = serde_json::from_slice(&bytes)
                    .context("a nested index is not an OCI image index")?;
                let pick = pick_platform(&inner)?;
                let bytes = read_blob(source, &pick)?;
                (
                    serde_json::from_slice::<ImageManifest>(&bytes)?,
                    pick,
                    bytes,
                )
            }
            _ => (
                serde_json::from_slice::<ImageManifest>(&bytes)
                    .context("a manifest is not an OCI image manifest")?,
                manifest_digest,
                bytes,
            ),
        };
        let (manifest, digest, bytes) = manifest;
        let config_bytes = read_blob(source, manifest.config().digest().as_ref())?;
        let layers: Vec<(String, Option<String>)> = manifest
            .layers()
            .iter()
            .map(|l| {
                let d = l.digest().to_string();
                (
                    format!("blobs/sha256/{}", digest_hex(&d).unwrap_or("bad")),
                    Some(d),
                )
            })
            .collect();
        let id = store_image(
            images,
            &config_bytes,
            Some((&digest, &bytes)),
            &layers,
            watch,
            |n, _| source.open(n),
        )?;
        let tags: Vec<String> = name.into_iter().collect();
        tag(images, &id, &tags)?;
        loaded.push(Loaded { id, tags });
    }
    Ok(loaded)
}

fn read_blob(source: &Source, digest: &str) -> Result<Vec<u8>> {
    let hex = digest_hex(digest)?;
    let bytes = source.read(&format!("blobs/sha256/{hex}"))?;
    verify(digest, &bytes)?;
    Ok(bytes)
}

/// From an index, the manifest for linux/amd64 (or the only one).
pub fn pick_platform(index: &ImageIndex) -> Result<String> {
    let manifests = index.manifests();
    if manifests.len() == 1 {
        return Ok(manifests[0].digest().to_string());
    }
    manifests
        .iter()
        .find(|m| {
            m.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
            })
        })
        .map(|m| m.digest().to_string())
        .ok_or_else(|| anyhow!("the image index has no manifest for linux/amd64"))
}

/// Stores an image from its config and layers (each opened by `open`, with its stored digest
/// when known); returns its id. Layers already in the store are not unpacked again.
pub fn store_image<F: FnMut(&str, &mut dyn Watch) -> Result<File>>(
    images: &Images,
    config_bytes: &[u8],
    manifest: Option<(&str, &[u8])>,
    layers: &[(String, Option<String>)],
    watch: &mut dyn Watch,
    mut open: F,
) -> Result<String> {
    let config: ImageConfiguration = serde_json::from_slice(config_bytes)
        .context("the image's config is not an image config")?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != layers.len() {
        bail!(
            "the image lists {} layers but its config {} diff ids: it is corrupt",
            layers.len(),
            diff_ids.len()
        );
    }
    let id = sha256_digest(config_bytes);
    let lock = images.lock()?;
    let mut size = 0;
    for ((name, digest), diff_id) in layers.iter().zip(diff_ids) {
        digest_hex(diff_id).context("the config's rootfs.diff_ids")?;
        let shown = format!("layer {}", &digest_hex(diff_id)?[..12]);
        if images.has_layer(diff_id) {
            watch.layer(&shown, None);
            watch.done("already exists");
            size += crate::store::made::dir_size(&images.layer_dir(diff_id)?);
            continue;
        }
        watch.layer(&shown, None);
        let file = open(name, watch)?;
        let total = file.metadata().ok().map(|m| m.len());
        watch.layer(&shown, total);
        let (_, bytes) = images
            .add_layer(
                Watched {
                    inner: file,
                    watch: &mut *watch,
                },
                digest.as_deref(),
                Some(diff_id),
            )
            .with_context(|| format!("layer {name}"))?;
        watch.done("extracted");
        size += bytes;
    }
    images.put_blob(&id, config_bytes)?;
    if let Some((digest, bytes)) = manifest {
        images.put_blob(digest, bytes)?;
    }
    images.add_image(
        &lock,
        ImageRecord {
            id: id.clone(),
            manifest: manifest.map(|(d, _)| d.to_string()),
            layers: diff_ids.clone(),
            created: config.created().clone(),
            size,
            build: None,
        },
        &[],
    )?;
    Ok(id)
}

fn tag(images: &Images, id: &str, tags: &[String]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let lock = images.lock()?;
    let mut index = images.index()?;
    for t in tags {
        index.set_tag(t, id)?;
    }
    images.write_index(&lock, &index)
}

/// `minibox import FILE|- [NAME]`: a plain rootfs tarball (plain, gzip or zstd) as a
/// one-layer image; `config` is the image's config made by the caller (`--change`).
pub fn import(
    images: &Images,
    input: impl Read,
    mut config: serde_json::Value,
    tags: &[String],
) -> Result<String> {
    let lock = images.lock()?;
    let (diff_id, _) = images.add_layer(input, None, None)?;
    config["created"] = crate::text::now_rfc3339_seconds().into();
    crate::store::made::record(images, &lock, config, &[diff_id], None, tags)
}
