//! `minibox system df`: what images, containers' own layers, named volumes and the build cache
//! hold on disk, and how much of it nothing uses; `system prune`: removes stopped containers,
//! networks no container is on, dangling images (with `-a`, every image no container uses),
//! with `--volumes` named volumes no container mounts. Containers an engine made with runc's
//! `create` are its own to delete: prune leaves them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::stats::{align, decimal_size};
use crate::cli::template::{self, Template};
use crate::kernel::du::disk_usage;
use crate::store::images::{Images, Index};
use crate::store::state::{ContainerState, Status, Store};
use crate::store::volumes;

#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Show how much disk images, containers, volumes and the build cache use.
    Df {
        /// Show each image, container and volume.
        #[arg(short, long)]
        verbose: bool,
        /// `table` (default), `json` (one object per kind a line) or a Go template.
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
    },
    /// Remove stopped containers, unused networks and dangling images (with -a, every image no
    /// container uses; with --volumes, unused named volumes).
    Prune {
        /// Remove every image no container uses, not only dangling (untagged) ones.
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Also remove named volumes no container mounts.
        #[arg(long)]
        volumes: bool,
    },
}

pub fn dispatch(store: &Store, data_root: &Path, command: SystemCommand) -> Result<i32> {
    match command {
        SystemCommand::Df { verbose, format } => df(store, data_root, verbose, format.as_deref()),
        SystemCommand::Prune {
            all,
            force,
            volumes,
        } => prune(store, data_root, all, force, volumes),
    }
}

/// What of the image store each image holds and which containers use it.
struct ImageUse {
    index: Index,
    /// Bytes of each layer (by diff id).
    layer_bytes: HashMap<String, u64>,
    /// Image ids some container record uses.
    used: HashSet<String>,
    images: Option<Images>,
}

fn image_use(store: &Store, data_root: &Path) -> Result<ImageUse> {
    let images = Images::open_existing(data_root)?;
    let index = match &images {
        Some(i) => i.index()?,
        None => Index::default(),
    };
    let mut layer_bytes = HashMap::new();
    if let Some(images) = &images {
        for layer in index.images.values().flat_map(|r| &r.layers) {
            if !layer_bytes.contains_key(layer) {
                let size = images.layer_dir(layer).map_or(0, |d| disk_usage(&d));
                layer_bytes.insert(layer.clone(), size);
            }
        }
    }
    let used = store
        .list()?
        .into_iter()
        .filter_map(|c| c.image.map(|i| i.id))
        .collect();
    Ok(ImageUse {
        index,
        layer_bytes,
        used,
        images,
    })
}

impl ImageUse {
    /// Bytes of the layers of `ids`, each layer once, less those some other image keeps.
    fn unique_bytes(&self, ids: &HashSet<String>) -> u64 {
        let kept: HashSet<&String> = self
            .index
            .images
            .values()
            .filter(|r| !ids.contains(&r.id))
            .flat_map(|r| &r.layers)
            .collect();
        let mut counted = HashSet::new();
        ids.iter()
            .filter_map(|id| self.index.images.get(id))
            .flat_map(|r| &r.layers)
            .filter(|l| !kept.contains(l) && counted.insert(*l))
            .map(|l| self.layer_bytes.get(l).copied().unwrap_or(0))
            .sum()
    }

    fn total_bytes(&self) -> u64 {
        self.layer_bytes.values().sum()
    }

    /// The images `prune` takes: untagged ones (all with `all`) no container uses.
    fn prunable(&self, all: bool) -> HashSet<String> {
        self.index
            .images
            .keys()
            .filter(|id| !self.used.contains(*id))
            .filter(|id| all || self.index.tags_of(id).is_empty())
            .cloned()
            .collect()
    }
}

fn container_bytes(c: &ContainerState) -> u64 {
    c.layer.as_ref().map_or(0, |l| disk_usage(&l.join("upper")))
}

/// Containers `prune` removes: exited ones minibox supervised (not an engine's), and not
/// those their restart policy is about to start again (docker skips them too).
fn prunable_containers(store: &Store) -> Result<Vec<ContainerState>> {
    Ok(store
        .list()?
        .into_iter()
        .map(ContainerState::observed)
        .filter(|c| c.status == Status::Exited && c.oci.is_none())
        .filter(|c| !(c.restarting && c.supervisor_alive()))
        .collect())
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0B (0%)".into()
    } else {
        format!(
            "{} ({}%)",
            decimal_size(part),
            (part as f64 * 100.0 / whole as f64).round() as u64
        )
    }
}

/// `minibox system df [-v] [--format F]`
fn df(store: &Store, data_root: &Path, verbose: bool, format: Option<&str>) -> Result<i32> {
    let img = image_use(store, data_root)?;
    let containers: Vec<ContainerState> = store
        .list()?
        .into_iter()
        .map(ContainerState::observed)
        .collect();
    let sizes: Vec<u64> = containers.iter().map(container_bytes).collect();
    let vols = volumes::list(data_root)?;
    let mut vol_sizes = BTreeMap::new();
    for v in &vols {
        let users = volumes::users(store, v)?;
        let dir = crate::model::volume::volume_path(data_root, v);
        vol_sizes.insert(v.clone(), (disk_usage(&dir), users.len()));
    }
    let image_total = img.total_bytes();
    let unused_images: HashSet<String> = img
        .index
        .images
        .keys()
        .filter(|id| !img.used.contains(*id))
        .cloned()
        .collect();
    let container_total: u64 = sizes.iter().sum();
    let container_idle: u64 = containers
        .iter()
        .zip(&sizes)
        .filter(|(c, _)| !c.is_running())
        .map(|(_, s)| s)
        .sum();
    let volume_total: u64 = vol_sizes.values().map(|(s, _)| s).sum();
    let volume_idle: u64 = vol_sizes
        .values()
        .filter(|(_, users)| *users == 0)
        .map(|(s, _)| s)
        .sum();
    let rows = [
        (
            "Images",
            img.index.images.len(),
            img.index.images.len() - unused_images.len(),
            image_total,
            img.unique_bytes(&unused_images),
        ),
        (
            "Containers",
            containers.len(),
            containers.iter().filter(|c| c.is_running()).count(),
            container_total,
            container_idle,
        ),
        (
            "Local Volumes",
            vols.len(),
            vol_sizes.values().filter(|(_, u)| *u > 0).count(),
            volume_total,
            volume_idle,
        ),
        // minibox keeps no build cache of its own yet.
        ("Build Cache", 0, 0, 0, 0),
    ];
    let objects: Vec<Value> = rows
        .iter()
        .map(|(kind, total, active, size, reclaimable)| {
            json!({
                "Type": kind,
                "TotalCount": total.to_string(),
                "Active": active.to_string(),
                "Size": decimal_size(*size),
                "Reclaimable": percent(*reclaimable, *size),
                "SizeBytes": size,
                "ReclaimableBytes": reclaimable,
            })
        })
        .collect();
    match format {
        Some("json") => {
            for o in &objects {
                out!("{o}");
            }
            return Ok(0);
        }
        Some(f) if f != "table" => {
            let t = Template::parse(&template::unescape(f))?;
            for o in &objects {
                out!("{}", t.render(o)?);
            }
            return Ok(0);
        }
        _ => {}
    }
    let mut table = vec![["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        .map(String::from)
        .to_vec()];
    for o in &objects {
        table.push(
            ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
                .iter()
                .map(|k| o[*k].as_str().unwrap_or_default().to_string())
                .collect(),
        );
    }
    out!("{}", align(&table).trim_end());
    if verbose {
        out!("\nImages space usage:\n");
        let mut t = vec![[
            "REPOSITORY:TAG",
            "IMAGE ID",
            "SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
        .map(String::from)
        .to_vec()];
        for (id, r) in &img.index.images {
            let tags = img.index.tags_of(id);
            let users = containers
                .iter()
                .filter(|c| c.image.as_ref().is_some_and(|i| &i.id == id))
                .count();
            let size: u64 = r
                .layers
                .iter()
                .map(|l| img.layer_bytes.get(l).copied().unwrap_or(0))
                .sum();
            t.push(vec![
                if tags.is_empty() {
                    "<none>".into()
                } else {
                    tags.join(", ")
                },
                short(id),
                decimal_size(size),
                decimal_size(img.unique_bytes(&HashSet::from([id.clone()]))),
                users.to_string(),
            ]);
        }
        out!("{}", align(&t).trim_end());
        out!("\nContainers space usage:\n");
        let mut t = vec![["CONTAINER ID", "NAME", "IMAGE", "SIZE", "STATUS"]
            .map(String::from)
            .to_vec()];
        for (c, s) in containers.iter().zip(&sizes) {
            t.push(vec![
                c.short_id().to_string(),
                crate::text::printable_cell(c.name.as_bytes()),
                c.image
                    .as_ref()
                    .map_or_else(|| "-".into(), |i| i.reference.clone()),
                decimal_size(*s),
                crate::cli::docker_view::status_word(c).to_string(),
            ]);
        }
        out!("{}", align(&t).trim_end());
        out!("\nLocal Volumes space usage:\n");
        let mut t = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
        for (name, (size, users)) in &vol_sizes {
            t.push(vec![name.clone(), users.to_string(), decimal_size(*size)]);
        }
        out!("{}", align(&t).trim_end());
    }
    Ok(0)
}

fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex[..12.min(hex.len())].to_string()
}

/// `minibox system prune [-a] [-f] [--volumes]`
fn prune(
    store: &Store,
    data_root: &Path,
    all: bool,
    force: bool,
    with_volumes: bool,
) -> Result<i32> {
    if !force {
        let mut what = vec![
            "all stopped containers",
            "all networks not used by at least one container",
        ];
        if with_volumes {
            what.push("all volumes not used by at least one container");
        }
        what.push(if all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        });
        say!("WARNING! This will remove:");
        for w in what {
            say!("  - {w}");
        }
        say!("\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let mut reclaimed = 0u64;
    let mut failed = false;

    // Containers first: what they held (networks, images, volumes) may then go too.
    let doomed = prunable_containers(store)?;
    if !doomed.is_empty() {
        out!("Deleted Containers:");
        for c in &doomed {
            let size = container_bytes(c);
            // `rm` prints the id it removed, and says why it could not.
            if crate::cli::lifecycle::rm(store, false, std::slice::from_ref(&c.id))? == 0 {
                reclaimed += size;
            } else {
                failed = true;
            }
        }
        out!("");
    }

    // Networks no container is on (nor names as its network).
    let remaining = store.list()?;
    let mut removed_nets = vec![];
    for (net, leases) in crate::runtime::network::list(store.root())? {
        let named = remaining
            .iter()
            .any(|c| c.network.as_deref() == Some(net.name.as_str()));
        if !leases.is_empty() || named || net.name == "bridge" {
            continue;
        }
        match crate::runtime::network::remove(store.root(), &net.name) {
            Ok(()) => removed_nets.push(net.name),
            Err(e) => {
                say!("minibox: {e:#}");
                failed = true;
            }
        }
    }
    if !removed_nets.is_empty() {
        out!("Deleted Networks:");
        for n in &removed_nets {
            out!("{n}");
        }
        out!("");
    }

    if with_volumes {
        let mut removed = vec![];
        for v in volumes::list(data_root)? {
            if !volumes::users(store, &v)?.is_empty() {
                continue;
            }
            let size = disk_usage(&crate::model::volume::volume_path(data_root, &v));
            match volumes::remove(store, data_root, &v) {
                Ok(()) => {
                    reclaimed += size;
                    removed.push(v);
                }
                Err(e) => {
                    say!("minibox: {e:#}");
                    failed = true;
                }
            }
        }
        if !removed.is_empty() {
            out!("Deleted Volumes:");
            for v in &removed {
                out!("{v}");
            }
            out!("");
        }
    }

    reclaimed += prune_images(store, data_root, all)?;
    out!("Total reclaimed space: {}", decimal_size(reclaimed));
    Ok(i32::from(failed))
}

/// Removes dangling images (every unused one with `all`) under the index's lock; returns the
/// bytes their layers held that no other image keeps.
fn prune_images(store: &Store, data_root: &Path, all: bool) -> Result<u64> {
    let img = image_use(store, data_root)?;
    let Some(images) = &img.images else {
        return Ok(0);
    };
    let lock = images.lock()?;
    // Read again under the lock: what it says now is what is removed.
    let mut index = images.index()?;
    let doomed: HashSet<String> = img
        .prunable(all)
        .into_iter()
        .filter(|id| index.images.contains_key(id))
        .collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let bytes = img.unique_bytes(&doomed);
    out!("Deleted Images:");
    let mut ids: Vec<&String> = doomed.iter().collect();
    ids.sort();
    for id in ids {
        for t in index.tags_of(id) {
            index.tags.remove(&t);
            out!("untagged: {t}");
        }
        index.images.remove(id);
        out!("deleted: {id}");
    }
    out!("");
    images.write_index(&lock, &index)?;
    images.collect_garbage(&index)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaimable_shows_its_share() {
        assert_eq!(percent(0, 0), "0B (0%)");
        assert_eq!(percent(500, 1000), "500B (50%)");
    }
}
