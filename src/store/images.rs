//! The image store: content-addressed, under the data root.
//!
//! ```text
//! <data-root>/blobs/sha256/<hex>   manifests and configs, by digest (checked when written)
//! <data-root>/layers/<hex>/        each layer unpacked once, named by its diff id, shared
//! <data-root>/tmp/                 loads and pulls in progress (<pid>-...; swept once dead)
//! <data-root>/images.json          image records and tags, rewritten whole under images.lock
//! ```
//!
//! A layer is unpacked into `tmp/` and renamed into `layers/` only once complete and its diff
//! id checked, so an interrupted load or pull leaves nothing that a later run would use. An
//! image's id is its config's digest, as docker's.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::store::layers::Layers;
use crate::store::unpack::{self, sha256_digest, Hashing};

/// One image: its config and its layers (bottom first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:<hex>` of the config: the image's id.
    pub id: String,
    /// The manifest's digest, when the image came with one (an OCI layout, a registry).
    #[serde(default)]
    pub manifest: Option<String>,
    /// Diff ids, bottom layer first.
    pub layers: Vec<String>,
    /// The config's `created`, as written there.
    #[serde(default)]
    pub created: Option<String>,
    /// Bytes of the files in its layers.
    pub size: u64,
    /// For an image `build` made at one step: the step's cache key (the parent's config and
    /// layers, the instruction, the files it copies). Untagged, such an image is an
    /// intermediate one: `images` leaves it out (`images -a` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

/// `images.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Index {
    /// By id.
    pub images: BTreeMap<String, ImageRecord>,
    /// `repository:tag` → id.
    pub tags: BTreeMap<String, String>,
}

impl Index {
    /// The tags naming image `id`.
    pub fn tags_of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Finds an image by `sha256:<hex>`, its id's hex (12 digits or more), `name[:tag]`, or a
    /// unique prefix of its id — ids first, so a tag can never shadow the image an id names
    /// (tags that look like ids are refused, but an older store may hold one).
    pub fn find(&self, key: &str) -> Result<Option<&ImageRecord>> {
        if let Some(hex) = key.strip_prefix("sha256:") {
            return self.by_id_prefix(key, hex);
        }
        if looks_like_id(key) {
            if let Some(found) = self.by_id_prefix(key, key)? {
                return Ok(Some(found));
            }
        }
        if let Some(id) = self.tags.get(&normalize(key)) {
            return Ok(self.images.get(id));
        }
        if let Some(found) = self.by_id_prefix(key, key)? {
            return Ok(Some(found));
        }
        Ok(self
            .short_name(key)?
            .and_then(|t| self.tags.get(&t))
            .and_then(|id| self.images.get(id)))
    }

    /// docker's short names: `hello` is `localhost/hello:latest` (what podman and `import`
    /// name it), `docker.io/library/hello:latest`, or else the one tag whose last path
    /// component and tag match (`hello:1` → `quay.io/x/hello:1`). Several such: refused,
    /// naming them.
    pub fn short_name(&self, key: &str) -> Result<Option<String>> {
        let full = normalize(key);
        if key.contains('@') || key.starts_with("sha256:") {
            return Ok(None);
        }
        for prefix in ["localhost/", "docker.io/library/", "docker.io/"] {
            let candidate = format!("{prefix}{full}");
            if self.tags.contains_key(&candidate) {
                return Ok(Some(candidate));
            }
        }
        let matches: Vec<&String> = self
            .tags
            .keys()
            .filter(|t| t.ends_with(&format!("/{full}")))
            .collect();
        match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            many => bail!(
                "image name {key:?} is ambiguous: it could be {}; give the full name",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The tags closest to `key` (for "no such image"): those sharing its repository's last
    /// component or containing it, then the fewest edits away; at most three.
    pub fn closest(&self, key: &str) -> Vec<String> {
        let want = split_tag(&normalize(key))
            .0
            .rsplit('/')
            .next()
            .unwrap_or(key)
            .to_string();
        let mut scored: Vec<(usize, &String)> = self
            .tags
            .keys()
            .map(|t| {
                let repo = split_tag(t).0.rsplit('/').next().unwrap_or(t);
                let d = if repo.contains(want.as_str()) || want.contains(repo) {
                    0
                } else {
                    edit_distance(repo, &want)
                };
                (d, t)
            })
            .filter(|(d, _)| *d <= 2.max(want.len() / 3))
            .collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, t)| t.clone()).collect()
    }

    fn by_id_prefix(&self, key: &str, hex: &str) -> Result<Option<&ImageRecord>> {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let found: Vec<&ImageRecord> = self
            .images
            .values()
            .filter(|r| r.id["sha256:".len()..].starts_with(hex))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => bail!("image id prefix {key:?} is ambiguous: give more digits"),
        }
    }

    /// Points `reference` at image `id`: the one way a tag is made (`load`, `pull`, `tag`,
    /// `import`), so none that reads as an id gets in.
    pub fn set_tag(&mut self, reference: &str, id: &str) -> Result<()> {
        let reference = check_reference(reference)?;
        self.tags.insert(reference, id.to_string());
        Ok(())
    }
}

/// Levenshtein's distance (bytes), for suggesting names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Hex digits as many as docker's shortest id (12) or more: read as an image id, never a name.
pub fn looks_like_id(name: &str) -> bool {
    name.len() >= 12 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `name` → `name:latest`; `name:tag` and `name@digest` unchanged. A `:` followed by a `/` is
/// a registry's port, not a tag.
pub fn normalize(reference: &str) -> String {
    if reference.contains('@') {
        return reference.to_string();
    }
    match reference.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => reference.to_string(),
        _ => format!("{reference}:latest"),
    }
}

/// Splits `repository:tag` for display.
pub fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "<none>"),
    }
}

/// Checks a tag the user gives (`tag`, `import`): docker's reference grammar, loosely.
pub fn check_reference(reference: &str) -> Result<String> {
    let ok = !reference.is_empty()
        && reference.len() <= 255
        && !reference.starts_with(['-', '.', ':', '/'])
        && reference.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b"._-/:".contains(&b)
                || b.is_ascii_uppercase()
        })
        && !reference.contains("..")
        && !reference.contains("//");
    let full = normalize(reference);
    let (repo, _) = split_tag(&full);
    if !ok || repo.bytes().any(|b| b.is_ascii_uppercase()) {
        bail!(
            "invalid image reference {reference:?}: use [REGISTRY/]NAME[:TAG], NAME in lower \
             case letters, digits, '.', '_', '-' and '/'"
        );
    }
    if repo == "sha256" || looks_like_id(repo) {
        bail!(
            "invalid image reference {reference:?}: a name that reads as an image id \
             (sha256:..., or 12 or more hex digits) cannot be a tag; pick another name"
        );
    }
    Ok(normalize(reference))
}

/// The image store of one data root.
pub struct Images {
    root: PathBuf,
}

/// An exclusive hold on the index (released when dropped).
pub struct IndexLock(#[allow(dead_code)] File);

impl Images {
    /// Opens (and makes, root-only) the store.
    pub fn open(data_root: &Path) -> Result<Images> {
        let layers = Layers::open(data_root)?;
        let root = layers.data_root().to_path_buf();
        for dir in ["blobs/sha256", "layers", "tmp", "volumes"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root.join(dir))
                .with_context(|| format!("creating {}", root.join(dir).display()))?;
        }
        let images = Images { root };
        images.sweep_tmp();
        Ok(images)
    }

    /// The store if the data root exists; `None` if nothing was ever stored.
    pub fn open_existing(data_root: &Path) -> Result<Option<Images>> {
        if !data_root.join("images.json").exists() {
            return Ok(None);
        }
        Images::open(data_root).map(Some)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What an interrupted load or pull left: removed once its process is gone.
    fn sweep_tmp(&self) {
        let Ok(dir) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: Option<i32> = name.split('-').next().and_then(|p| p.parse().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
    }

    /// A new scratch path in `tmp/` (nothing is made).
    pub fn scratch(&self, what: &str) -> Result<PathBuf> {
        let id = crate::model::spec::new_id()?;
        Ok(self
            .root
            .join("tmp")
            .join(format!("{}-{what}-{}", std::process::id(), &id[..16])))
    }

    pub fn lock(&self) -> Result<IndexLock> {
        let path = self.root.join("images.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
        nix::errno::Errno::result(rc).with_context(|| format!("locking {}", path.display()))?;
        Ok(IndexLock(file))
    }

    pub fn index(&self) -> Result<Index> {
        let path = self.root.join("images.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is damaged: remove it", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the index whole: to a temporary file, synced, renamed over the old one.
    pub fn write_index(&self, _lock: &IndexLock, index: &Index) -> Result<()> {
        let path = self.root.join("images.json");
        let tmp = self
            .root
            .join(format!("images.json.{}", std::process::id()));
        let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(index)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest_hex(digest)?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Stores a small blob (a manifest, a config) after checking its digest.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        verify(digest, bytes)?;
        let path = self.blob_path(digest)?;
        let tmp = self.scratch("blob")?;
        fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        fs::read(&path).with_context(|| format!("reading the blob {}", path.display()))
    }

    /// Where the layer of diff id `diff_id` is (or would be) unpacked.
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(digest_hex(diff_id)?))
    }

    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_dir(diff_id).is_ok_and(|d| d.is_dir())
    }

    /// Unpacks a layer as stored (gzip, zstd or plain), checking the stored stream's digest and
    /// the tar stream's diff id when known; only a complete, checked layer is put in place.
    /// Returns its diff id and size.
    pub fn add_layer(
        &self,
        raw: impl Read,
        digest: Option<&str>,
        diff_id: Option<&str>,
    ) -> Result<(String, u64)> {
        let tmp = self.scratch("layer")?;
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        let result = (|| -> Result<(String, u64)> {
            let mut stored = Hashing::new(raw);
            let unpacked =
                unpack::decompress(&mut stored).and_then(|tar| unpack::unpack(tar, &tmp));
            // A blob that is not what its digest says is named as such, even when it also
            // broke the unpacking.
            let stored_digest = stored.finish();
            if let (Some(want), Ok(got)) = (digest, &stored_digest) {
                if got != want {
                    bail!(
                        "layer {want}: its content has digest {got}: the blob is corrupt or \
                         was tampered with; nothing was stored"
                    );
                }
            }
            let got = unpacked?;
            stored_digest?;
            if let Some(want) = diff_id {
                if got.diff_id != want {
                    bail!(
                        "layer with diff id {want}: its tar stream has diff id {}: the image \
                         is corrupt or was tampered with; nothing was stored",
                        got.diff_id
                    );
                }
            }
            let dest = self.layer_dir(&got.diff_id)?;
            match fs::rename(&tmp, &dest) {
                Ok(()) => {}
                // Another load put the same layer in place meanwhile.
                Err(_) if dest.is_dir() => {
                    let _ = fs::remove_dir_all(&tmp);
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("moving the layer to {}", dest.display()))
                }
            }
            Ok((got.diff_id, got.size))
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Records an image and points `tags` at it. The caller holds the lock from before its
    /// first layer was put in place: `rmi`'s garbage collection, under the same lock, never
    /// sees a layer that is placed but not yet recorded.
    pub fn add_image(&self, lock: &IndexLock, record: ImageRecord, tags: &[String]) -> Result<()> {
        let mut index = self.index()?;
        for layer in &record.layers {
            if !self.has_layer(layer) {
                bail!("layer {layer} is missing from the store");
            }
        }
        for tag in tags {
            index.set_tag(tag, &record.id)?;
        }
        index.images.insert(record.id.clone(), record);
        self.write_index(lock, &index)
    }

    /// The layer directories of an image, top first (overlayfs's lowerdir order).
    pub fn lower_dirs(&self, record: &ImageRecord) -> Result<Vec<PathBuf>> {
        record
            .layers
            .iter()
            .rev()
            .map(|d| {
                let dir = self.layer_dir(d)?;
                if !dir.is_dir() {
                    bail!(
                        "layer {d} of image {} is missing: load or pull it again",
                        record.id
                    );
                }
                Ok(dir)
            })
            .collect()
    }

    /// Removes the layers and blobs no image refers to any more.
    pub fn collect_garbage(&self, index: &Index) -> Result<()> {
        let used: std::collections::HashSet<String> = index
            .images
            .values()
            .flat_map(|r| {
                r.layers
                    .iter()
                    .map(|l| digest_hex(l).unwrap_or_default().to_string())
            })
            .collect();
        for e in fs::read_dir(self.root.join("layers"))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !used.contains(&name) {
                // Renamed away first: a half-removed layer is never found under its name.
                let doomed = self.scratch("rm")?;
                if fs::rename(e.path(), &doomed).is_ok() {
                    let _ = fs::remove_dir_all(&doomed);
                }
            }
        }
        let blobs: std::collections::HashSet<String> = index
            .images
            .values()
            .flat_map(|r| [Some(r.id.clone()), r.manifest.clone()])
            .flatten()
            .filter_map(|d| digest_hex(&d).ok().map(str::to_string))
            .collect();
        for e in fs::read_dir(self.root.join("blobs/sha256"))?.flatten() {
            if !blobs.contains(&*e.file_name().to_string_lossy()) {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}

/// The hex of a `sha256:<64 hex>` digest; anything else is refused (it names a path).
pub fn digest_hex(digest: &str) -> Result<&str> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        anyhow!("digest {digest:?} is not sha256: only sha256 digests are supported")
    })?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        bail!("digest {digest:?} is malformed: expected sha256: and 64 lowercase hex digits");
    }
    Ok(hex)
}

/// Checks that `bytes` have digest `digest`.
pub fn verify(digest: &str, bytes: &[u8]) -> Result<()> {
    digest_hex(digest)?;
    let got = sha256_digest(bytes);
    if got != digest {
        bail!(
            "content announced as {digest} has digest {got}: it is corrupt or was tampered \
             with; nothing was stored"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalized() {
        assert_eq!(normalize("hello"), "hello:latest");
        assert_eq!(normalize("hello:1"), "hello:1");
        assert_eq!(
            normalize("127.0.0.1:5000/hello"),
            "127.0.0.1:5000/hello:latest"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/hello:2"),
            "127.0.0.1:5000/hello:2"
        );
        assert_eq!(split_tag("a/b:c"), ("a/b", "c"));
        assert_eq!(edit_distance("hello", "hallo"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert!(check_reference("Bad").is_err());
        assert!(check_reference("-x").is_err());
        assert_eq!(check_reference("mine/x").unwrap(), "mine/x:latest");
    }

    #[test]
    fn short_names_resolve_as_docker_does() {
        let mut index = Index::default();
        let id = format!("sha256:{}", "a".repeat(64));
        index.images.insert(
            id.clone(),
            ImageRecord {
                id: id.clone(),
                manifest: None,
                layers: vec![],
                created: None,
                size: 0,
                build: None,
            },
        );
        index
            .tags
            .insert("localhost/hello:latest".into(), id.clone());
        index.tags.insert("quay.io/x/web:2".into(), id.clone());
        index.tags.insert("a/dup:1".into(), id.clone());
        index.tags.insert("b/dup:1".into(), id.clone());
        assert_eq!(index.find("hello").unwrap().unwrap().id, id);
        assert_eq!(index.find("hello:latest").unwrap().unwrap().id, id);
        assert_eq!(index.find("web:2").unwrap().unwrap().id, id);
        assert!(index.find("web").unwrap().is_none());
        assert!(index.find("dup:1").is_err());
        assert_eq!(index.closest("helo"), vec!["localhost/hello:latest"]);
        assert!(index.closest("zzzzzzzz").is_empty());
    }

    #[test]
    fn names_that_read_as_ids_are_no_tags() {
        let hex = "0123456789abcdef".repeat(4);
        for bad in [
            format!("sha256:{hex}"),
            hex.clone(),
            format!("{hex}:latest"),
            hex[..12].to_string(),
            format!("{}:1", &hex[..12]),
        ] {
            assert!(check_reference(&bad).is_err(), "{bad}");
        }
        for good in [
            "cafe",
            "abc123:1",
            "localhost:5000/0123456789abcdef",
            "app:0123456789ab",
        ] {
            assert!(check_reference(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn digests_are_checked() {
        assert!(digest_hex("sha256:../../etc").is_err());
        assert!(digest_hex("md5:00").is_err());
        let d = sha256_digest(b"x");
        verify(&d, b"x").unwrap();
        assert!(verify(&d, b"y").is_err());
    }
}
