//! `minibox save`: images as `docker save` writes them (a docker-archive, which `docker load`
//! and `podman load` read): `manifest.json`, each config as `<hex>.json`, each layer as an
//! uncompressed `<hex>/layer.tar` named by its diff id, and `repositories`.
//!
//! The store keeps layers unpacked, not their original tar streams, so each layer's stream is
//! written anew from its directory (`merged::write_layer`) and hashed: where it differs from
//! the diff id the image was stored with (another tar writer's header bytes), the config is
//! written with the new diff ids, since a loader checks them. The archive's image id is then
//! that config's digest.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::store::images::{digest_hex, Images, Index};
use crate::store::made::Spool;
use crate::store::merged;
use crate::store::unpack::{hex, sha256_digest};

struct HashingWriter<'a, W> {
    inner: W,
    hasher: &'a mut Sha256,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One image to save: its id, and the tags to write for it.
pub struct ToSave {
    pub id: String,
    pub tags: Vec<String>,
}

/// Writes the archive of `wanted` to `out`; `step` is told of each layer as it is written.
pub fn save(
    images: &Images,
    index: &Index,
    wanted: &[ToSave],
    out: impl Write,
    step: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    let mut written: HashMap<String, String> = HashMap::new();
    let mut manifest = vec![];
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in wanted {
        let record = &index.images[&image.id];
        let mut config: Value = serde_json::from_slice(&images.blob(&image.id)?)
            .with_context(|| format!("the config of image {}", image.id))?;
        let mut diff_ids = vec![];
        let mut layer_names = vec![];
        for diff_id in &record.layers {
            let new_id = match written.get(diff_id) {
                Some(done) => done.clone(),
                None => {
                    step(&format!("layer {}", &digest_hex(diff_id)?[..12]));
                    let dir = images.layer_dir(diff_id)?;
                    let mut spool = Spool::new(images, "save")?;
                    let mut hasher = Sha256::new();
                    {
                        let mut w = HashingWriter {
                            inner: std::io::BufWriter::new(&mut spool.file),
                            hasher: &mut hasher,
                        };
                        merged::write_layer(&dir, &|_, _| false, None, &mut w)?;
                        w.flush()?;
                    }
                    let new_id = format!("sha256:{}", hex(&hasher.finalize()));
                    let len = spool.file.seek(SeekFrom::End(0))?;
                    spool.file.seek(SeekFrom::Start(0))?;
                    let name = format!("{}/layer.tar", digest_hex(&new_id)?);
                    append(&mut builder, &name, len, &mut spool.file)?;
                    append_bytes(
                        &mut builder,
                        &format!("{}/VERSION", digest_hex(&new_id)?),
                        b"1.0",
                    )?;
                    written.insert(diff_id.clone(), new_id.clone());
                    new_id
                }
            };
            layer_names.push(format!("{}/layer.tar", digest_hex(&new_id)?));
            diff_ids.push(new_id);
        }
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        let bytes = if diff_ids == record.layers {
            images.blob(&image.id)?
        } else {
            serde_json::to_vec(&config)?
        };
        let config_hex = digest_hex(&sha256_digest(&bytes))?.to_string();
        let config_name = format!("{config_hex}.json");
        append_bytes(&mut builder, &config_name, &bytes)?;
        for t in &image.tags {
            let (repo, tag) = crate::store::images::split_tag(t);
            if let Some(top) = diff_ids.last() {
                repositories
                    .entry(repo.to_string())
                    .or_default()
                    .insert(tag.to_string(), digest_hex(top)?.to_string());
            }
        }
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": if image.tags.is_empty() { Value::Null } else { json!(image.tags) },
            "Layers": layer_names,
        }));
    }
    append_bytes(
        &mut builder,
        "manifest.json",
        &serde_json::to_vec(&manifest)?,
    )?;
    append_bytes(
        &mut builder,
        "repositories",
        &serde_json::to_vec(&repositories)?,
    )?;
    builder.finish()?;
    Ok(())
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    len: u64,
    data: impl Read,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(len);
    header.set_mtime(0);
    builder
        .append_data(&mut header, name, data)
        .with_context(|| format!("writing {name} to the archive"))
}

fn append_bytes<W: Write>(builder: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    append(builder, name, bytes.len() as u64, bytes)
}
