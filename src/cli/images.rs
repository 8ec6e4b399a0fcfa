//! The image and volume commands: `load`, `pull`, `import`, `images`, `rmi`, `tag`,
//! `image inspect`, `export`, `volume ls|create|rm|inspect`; and how `run IMAGE` finds an
//! image and the defaults its config gives.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::image::ImageConfiguration;
use serde_json::json;

use crate::cli::dockerfile;
use crate::cli::progress::{Progress, Reading, Writing};
use crate::kernel::outfile::OutFile;
use crate::model::volume::ImageUse;
use crate::store::images::{check_reference, normalize, split_tag, Images};
use crate::store::state::Store;
use crate::store::{load, made, merged, pull, save, volumes, Watch};

/// What of an image's config `run` uses (docker's `config` object).
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
}

/// `run IMAGE`: the image in the store named `name`, if any.
pub fn find_for_run(data_root: &Path, name: &Path) -> Result<Option<(ImageUse, RunConfig)>> {
    let Some(key) = name.to_str() else {
        return Ok(None);
    };
    let Some(images) = Images::open_existing(data_root)? else {
        return Ok(None);
    };
    let index = images.index()?;
    let Some(record) = index.find(key)? else {
        return Ok(None);
    };
    let config: ImageConfiguration = serde_json::from_slice(&images.blob(&record.id)?)
        .with_context(|| format!("the config of image {}", record.id))?;
    let c = config.config().clone().unwrap_or_default();
    let run = RunConfig {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        user: c.user().clone(),
        working_dir: c.working_dir().clone(),
    };
    let reference = tag_named(&index, key, &record.id)?.unwrap_or_else(|| record.id.clone());
    let image = ImageUse {
        reference,
        id: record.id.clone(),
        lower: images.lower_dirs(record)?,
        stop_signal: c.stop_signal().clone(),
        exposed_ports: c.exposed_ports().clone().unwrap_or_default(),
    };
    Ok(Some((image, run)))
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..12.min(hex.len())]
}

/// "no such image", with the closest names the store has.
pub fn no_such_image(index: &crate::store::images::Index, key: &str) -> anyhow::Error {
    let near = index.closest(key);
    if near.is_empty() {
        anyhow::anyhow!(
            "no such image: {key} (minibox images lists them; minibox load, pull, import or \
             build adds one)"
        )
    } else {
        anyhow::anyhow!("no such image: {key}; did you mean {}?", near.join(", "))
    }
}

/// `run IMAGE` of a name that is no image: "no such image" with the closest names.
pub fn not_found_for_run(data_root: &Path, name: &Path) -> Result<anyhow::Error> {
    let key = name.to_string_lossy();
    let index = match Images::open_existing(data_root)? {
        Some(images) => images.index()?,
        None => Default::default(),
    };
    Ok(no_such_image(&index, &key))
}

/// `minibox load [-i FILE]`.
pub fn load(data_root: &Path, input: Option<&Path>, quiet: bool) -> Result<i32> {
    let images = Images::open(data_root)?;
    let progress = Progress::new(quiet);
    let loaded = load::load(&images, input, &mut Watcher::new(&progress))?;
    for l in loaded {
        if l.tags.is_empty() {
            out!("Loaded image ID: {}", l.id);
        }
        for t in l.tags {
            out!("Loaded image: {t}");
        }
    }
    Ok(0)
}

/// `minibox pull NAME[:TAG|@DIGEST] [--insecure] [--allow-private-redirects] [-q]`.
pub fn pull(
    data_root: &Path,
    reference: &str,
    insecure: bool,
    allow_private: bool,
    quiet: bool,
) -> Result<i32> {
    let images = Images::open(data_root)?;
    let options = pull::PullOptions {
        insecure,
        allow_private,
    };
    let progress = Progress::new(quiet);
    let id = pull::pull(&images, reference, options, &mut Watcher::new(&progress))?;
    out!("{reference}: {id}");
    Ok(0)
}

/// `minibox import FILE|- [NAME[:TAG]] [--change ...]`.
pub fn import(
    data_root: &Path,
    file: &Path,
    reference: Option<&str>,
    changes: &[String],
    quiet: bool,
) -> Result<i32> {
    let tags: Vec<String> = reference
        .map(check_reference)
        .transpose()?
        .into_iter()
        .collect();
    let mut config = made::empty_config();
    dockerfile::apply_changes(&mut config, changes)?;
    config["history"] = json!([{"created_by": format!("minibox import {}", file.display())}]);
    let images = Images::open(data_root)?;
    let progress = Progress::new(quiet);
    let (input, total): (Box<dyn Read>, Option<u64>) = if file == Path::new("-") {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let mut bar = progress.bar("importing", total);
    let id = load::import(
        &images,
        Reading {
            inner: input,
            bar: &mut bar,
        },
        config,
        &tags,
    )?;
    bar.finish("imported");
    out!("{id}");
    Ok(0)
}

/// `minibox commit CONTAINER [NAME[:TAG]] [--change ...]`: the container's image (or its
/// ROOTFS, as one layer) and its own writes as one more layer.
pub fn commit(
    data_root: &Path,
    store: &Store,
    key: &str,
    reference: Option<&str>,
    changes: &[String],
) -> Result<i32> {
    let tags: Vec<String> = reference
        .map(check_reference)
        .transpose()?
        .into_iter()
        .collect();
    let c = store.resolve(key)?;
    let images = Images::open(data_root)?;
    let lock = images.lock()?;
    let (mut config, mut layers, below) = match &c.image {
        Some(i) => {
            let index = images.index()?;
            let record = index.images.get(&i.id).with_context(|| {
                format!(
                    "the image {} of container {key} is no longer in the store",
                    i.reference
                )
            })?;
            let config: serde_json::Value = serde_json::from_slice(&images.blob(&i.id)?)?;
            (config, record.layers.clone(), i.lower.clone())
        }
        None => {
            // A ROOTFS of the user's: its files become the image's first layer.
            let mut spool = made::Spool::new(&images, "rootfs")?;
            merged::write_tar(
                std::slice::from_ref(&c.rootfs),
                None,
                std::io::BufWriter::new(&mut spool.file),
            )?;
            let (diff_id, _) = made::add_spooled(&images, &mut spool.file)?;
            (made::empty_config(), vec![diff_id], vec![c.rootfs.clone()])
        }
    };
    let upper = c
        .layer
        .as_ref()
        .map(|l| l.join("upper"))
        .filter(|u| u.is_dir())
        .with_context(|| format!("container {key} has no layer of its own to commit"))?;
    // Its files as the container saw them, not its range's host ids.
    let owners = store.id_maps(&c.id);
    let (diff_id, _) = made::layer_of_upper(&images, &upper, &below, owners.as_ref())?;
    layers.push(diff_id);
    dockerfile::apply_changes(&mut config, changes)?;
    config["created"] = json!(crate::text::now_rfc3339_seconds());
    if !config["history"].is_array() {
        config["history"] = json!([]);
    }
    if let Some(h) = config["history"].as_array_mut() {
        h.push(json!({"created_by": format!("minibox commit {}", c.name)}));
    }
    let id = made::record(&images, &lock, config, &layers, None, &tags)?;
    out!("{id}");
    Ok(0)
}

/// `minibox save [-o FILE] IMAGE...`: a docker-archive.
pub fn save(data_root: &Path, keys: &[String], output: Option<&Path>, quiet: bool) -> Result<i32> {
    let images = open_for(data_root, &keys[0])?;
    let index = images.index()?;
    let mut wanted: Vec<save::ToSave> = vec![];
    for key in keys {
        let id = found(&index, key)?;
        // Saved under the name given (docker's), or every tag when named by id.
        let tags = match tag_named(&index, key, &id)? {
            Some(t) => vec![t],
            None => index.tags_of(&id),
        };
        match wanted.iter_mut().find(|w| w.id == id) {
            Some(w) => w.tags.extend(tags),
            None => wanted.push(save::ToSave { id, tags }),
        }
    }
    let progress = Progress::new(quiet);
    let mut step = |what: &str| progress.line(&format!("Writing {what}"));
    match output {
        Some(path) => {
            let mut out = OutFile::create(path, "partial", 0o666)?;
            let mut w = std::io::BufWriter::new(out.file());
            save::save(&images, &index, &wanted, &mut w, &mut step)?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            drop(w);
            out.commit()?;
        }
        None => {
            if nix::unistd::isatty(std::io::stdout()).unwrap_or(false) {
                bail!(
                    "refusing to write an archive to a terminal: give -o FILE or redirect stdout"
                );
            }
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            save::save(&images, &index, &wanted, &mut w, &mut step)?;
            w.flush()?;
        }
    }
    Ok(0)
}

/// `minibox images [-a]`.
pub fn list(data_root: &Path, quiet: bool, all: bool) -> Result<i32> {
    let index = match Images::open_existing(data_root)? {
        Some(images) => images.index()?,
        None => Default::default(),
    };
    let mut rows: Vec<[String; 5]> = vec![];
    for (id, record) in &index.images {
        let tags = index.tags_of(id);
        if tags.is_empty() && record.build.is_some() && !all {
            continue;
        }
        let names: Vec<(String, String)> = if tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            tags.iter()
                .map(|t| {
                    let (r, g) = split_tag(t);
                    (r.to_string(), g.to_string())
                })
                .collect()
        };
        for (repo, tag) in names {
            rows.push([
                repo,
                tag,
                short(id).to_string(),
                created_ago(record.created.as_deref()),
                crate::kernel::cgroup::human_bytes(record.size),
            ]);
        }
    }
    if quiet {
        for r in &rows {
            out!("{}", r[2]);
        }
        return Ok(0);
    }
    let header = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("   ")
            .trim_end()
            .to_string()
    };
    out!("{}", line(&header));
    for r in &rows {
        out!(
            "{}",
            line(&r.iter().map(String::as_str).collect::<Vec<_>>())
        );
    }
    Ok(0)
}

/// docker's CREATED column: `2 hours ago` (the config's time as written when it is not RFC 3339).
fn created_ago(created: Option<&str>) -> String {
    let Some(text) = created else {
        return "-".into();
    };
    match crate::text::parse_rfc3339(text) {
        Some(ns) => {
            let ago = crate::store::state::now_ms().saturating_sub(ns / 1_000_000);
            format!("{} ago", crate::cli::lifecycle::human_duration(ago))
        }
        None => text.to_string(),
    }
}

/// `minibox tag SRC DST`.
pub fn tag(data_root: &Path, src: &str, dst: &str) -> Result<i32> {
    let dst = check_reference(dst)?;
    let images = open_for(data_root, src)?;
    let lock = images.lock()?;
    let mut index = images.index()?;
    let id = found(&index, src)?;
    index.set_tag(&dst, &id)?;
    images.write_index(&lock, &index)?;
    Ok(0)
}

fn open_for(data_root: &Path, key: &str) -> Result<Images> {
    Images::open_existing(data_root)?.with_context(|| {
        format!(
            "no such image: {key} (the store {} is empty)",
            data_root.display()
        )
    })
}

/// The tag of image `id` that `key` names, written whole or as a short name (`hello` →
/// `localhost/hello:latest`); `None` when `key` found the image by its id.
fn tag_named(index: &crate::store::images::Index, key: &str, id: &str) -> Result<Option<String>> {
    if index.tags.get(&normalize(key)).map(String::as_str) == Some(id) {
        return Ok(Some(normalize(key)));
    }
    Ok(index
        .short_name(key)?
        .filter(|t| index.tags.get(t).map(String::as_str) == Some(id)))
}

fn found(index: &crate::store::images::Index, key: &str) -> Result<String> {
    Ok(index
        .find(key)?
        .ok_or_else(|| no_such_image(index, key))?
        .id
        .clone())
}

/// `minibox rmi [-f] IMAGE...`: untags; removes the image (and the layers no other uses) once
/// no tag is left. Refused while any container record uses it.
pub fn rmi(data_root: &Path, store: &Store, force: bool, keys: &[String]) -> Result<i32> {
    let images = open_for(data_root, &keys[0])?;
    for key in keys {
        let lock = images.lock()?;
        let mut index = images.index()?;
        let id = found(&index, key)?;
        let tags = index.tags_of(&id);
        // The tag the key names, a short name's too (`hello` → `localhost/hello:latest`).
        let named = tag_named(&index, key, &id)?;
        let by_tag = named.is_some();
        if let (Some(t), true, false) = (&named, tags.len() > 1, force) {
            // One name of several: the image stays, so containers may keep using it.
            index.tags.remove(t);
            out!("Untagged: {t}");
        } else {
            let users: Vec<String> = store
                .list()?
                .into_iter()
                .filter(|c| c.image.as_ref().is_some_and(|i| i.id == id))
                .map(|c| c.name)
                .collect();
            if !users.is_empty() {
                bail!(
                    "cannot remove image {key}: container(s) {} use it; remove them first \
                     (minibox rm)",
                    users.join(", ")
                );
            }
            if !by_tag && tags.len() > 1 && !force {
                bail!(
                    "image {key} has several tags ({}): remove them one by one, or use rmi -f",
                    tags.join(", ")
                );
            }
            for t in tags {
                index.tags.remove(&t);
                out!("Untagged: {t}");
            }
            index.images.remove(&id);
            out!("Deleted: {id}");
        }
        images.write_index(&lock, &index)?;
        images.collect_garbage(&index)?;
    }
    Ok(0)
}

/// `minibox image inspect IMAGE`: the record and the config, as JSON.
pub fn inspect(data_root: &Path, key: &str) -> Result<i32> {
    let images = open_for(data_root, key)?;
    let index = images.index()?;
    let id = found(&index, key)?;
    let record = &index.images[&id];
    let config: serde_json::Value = serde_json::from_slice(&images.blob(&id)?)?;
    let layers: Vec<PathBuf> = images.lower_dirs(record)?.into_iter().rev().collect();
    let v = json!({
        "Id": id,
        "RepoTags": index.tags_of(&id),
        "ManifestDigest": record.manifest,
        "Created": record.created,
        "Size": record.size,
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
        "Config": config.get("config"),
        "RootFS": {"Type": "layers", "Layers": record.layers},
        "LayerDirs": layers,
    });
    out!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

/// `minibox export CONTAINER [-o FILE]`: its merged filesystem (image or ROOTFS, then its own
/// layer) as a tar stream.
pub fn export(store: &Store, key: &str, output: Option<&Path>, quiet: bool) -> Result<i32> {
    let progress = Progress::new(quiet);
    let mut bar = progress.bar("exporting", None);
    let c = store.resolve(key)?;
    let mut lower: Vec<PathBuf> = match &c.image {
        Some(i) => i.lower.clone(),
        None => vec![c.rootfs.clone()],
    };
    let mut top_owners = None;
    if let Some(layer) = &c.layer {
        let upper = layer.join("upper");
        if upper.is_dir() {
            lower.insert(0, upper);
            // In a user namespace, its layer's owners are its range's: exported as its own.
            top_owners = store.id_maps(&c.id);
        }
    }
    match output {
        Some(path) => {
            // Made beside FILE without following links, renamed once whole.
            let mut out = OutFile::create(path, "partial", 0o666)?;
            let mut w = std::io::BufWriter::new(Writing {
                inner: out.file(),
                bar: &mut bar,
            });
            merged::write_tar_mapped(&lower, None, &mut w, top_owners.as_ref())?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            drop(w);
            out.commit()?;
        }
        None => {
            if nix::unistd::isatty(std::io::stdout()).unwrap_or(false) {
                bail!(
                    "refusing to write a tar stream to a terminal: give -o FILE or redirect stdout"
                );
            }
            let mut w = std::io::BufWriter::new(Writing {
                inner: std::io::stdout().lock(),
                bar: &mut bar,
            });
            merged::write_tar_mapped(&lower, None, &mut w, top_owners.as_ref())?;
            w.flush()?;
        }
    }
    bar.finish("exported");
    Ok(0)
}

/// `minibox volume ls|create|rm|inspect`.
pub fn volume(data_root: &Path, store: &Store, action: &str, names: &[String]) -> Result<i32> {
    match action {
        "ls" => {
            out!("DRIVER    VOLUME NAME");
            for n in volumes::list(data_root)? {
                out!("local     {n}");
            }
        }
        "create" => {
            let images = Images::open(data_root)?;
            for n in names {
                volumes::create(images.root(), n)?;
                out!("{n}");
            }
        }
        "rm" => {
            for n in names {
                volumes::remove(store, data_root, n)?;
                out!("{n}");
            }
        }
        "inspect" => {
            let mut all = vec![];
            for n in names {
                let path = crate::model::volume::volume_path(data_root, n);
                if !path.is_dir() {
                    bail!("no such volume: {n}");
                }
                all.push(json!({
                    "Name": n,
                    "Driver": "local",
                    "Mountpoint": path,
                    "UsedBy": volumes::users(store, n)?,
                }));
            }
            out!("{}", serde_json::to_string_pretty(&all)?);
        }
        other => bail!("unknown volume command {other:?}: use ls, create, rm or inspect"),
    }
    Ok(0)
}

/// The store's long work, drawn: a bar per layer.
pub struct Watcher<'a> {
    progress: &'a Progress,
    bar: Option<crate::cli::progress::Bar>,
}

impl<'a> Watcher<'a> {
    pub fn new(progress: &'a Progress) -> Watcher<'a> {
        Watcher {
            progress,
            bar: None,
        }
    }
}

impl Watch for Watcher<'_> {
    fn layer(&mut self, what: &str, total: Option<u64>) {
        if let Some(b) = self.bar.take() {
            b.clear();
        }
        self.bar = Some(self.progress.bar(what, total));
    }
    fn bytes(&mut self, n: u64) {
        if let Some(b) = &mut self.bar {
            b.add(n);
        }
    }
    fn done(&mut self, word: &str) {
        if let Some(b) = self.bar.take() {
            b.finish(word);
        }
    }
}
