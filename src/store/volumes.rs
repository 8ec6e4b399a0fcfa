//! Named volumes: `<data-root>/volumes/NAME/_data`, made on first use and kept until
//! `volume rm`. A new volume mounted where the image has files gets a copy of them first
//! (docker's seeding), made through the merged view of the image's layers and the layer
//! unpacker, so that nothing of the image's can point the copy outside the volume.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::spec::ContainerSpec;
use crate::model::volume::{check_volume_name, volume_path, VolumeSource};
use crate::store::images::Images;
use crate::store::state::Store;

/// Makes the named volumes a container mounts, seeding the new ones from its image.
pub fn prepare(images: &Images, spec: &ContainerSpec) -> Result<()> {
    for v in &spec.volumes {
        let VolumeSource::Named { name, path } = &v.source else {
            continue;
        };
        if create(images.root(), name)? {
            if let Some(image) = &spec.image {
                seed(images, &image.lower, &v.target, path).with_context(|| {
                    format!(
                        "copying the image's {} into volume {name}",
                        v.target.display()
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// Makes volume `name` if it does not exist; returns whether it was made now.
pub fn create(data_root: &Path, name: &str) -> Result<bool> {
    check_volume_name(name)?;
    let data = volume_path(data_root, name);
    if data.is_dir() {
        return Ok(false);
    }
    let dir = data.parent().context("a volume path")?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.parent().context("a volume path")?)
        .with_context(|| format!("creating {}", dir.display()))?;
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    // Containers reach _data through their mounts, whoever they run as: 0755 as docker's.
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&data)
        .with_context(|| format!("creating {}", data.display()))?;
    Ok(true)
}

fn seed(images: &Images, lower: &[PathBuf], target: &Path, data: &Path) -> Result<()> {
    let rel = target.to_string_lossy().trim_start_matches('/').to_string();
    let spool = images.scratch("seed")?;
    let file = fs::File::create(&spool)?;
    let found = crate::store::merged::write_tar(lower, Some(&rel), &file);
    let result = match found {
        Ok(true) => {
            let reader = fs::File::open(&spool)?;
            crate::store::unpack::unpack(reader, data).map(drop)
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&spool);
    result
}

/// The named volumes, by name.
pub fn list(data_root: &Path) -> Result<Vec<String>> {
    let dir = data_root.join("volumes");
    let mut names: Vec<String> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| check_volume_name(n).is_ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    names.sort();
    Ok(names)
}

/// The containers (names) whose records mount volume `name`.
pub fn users(store: &Store, name: &str) -> Result<Vec<String>> {
    Ok(store
        .list()?
        .into_iter()
        .filter(|c| c.volumes.iter().any(|v| v.split(':').next() == Some(name)))
        .map(|c| c.name)
        .collect())
}

/// `volume rm`: refused while a container record mounts it.
pub fn remove(store: &Store, data_root: &Path, name: &str) -> Result<()> {
    check_volume_name(name)?;
    let dir = data_root.join("volumes").join(name);
    if !dir.is_dir() {
        bail!("no such volume: {name}");
    }
    let users = users(store, name)?;
    if !users.is_empty() {
        bail!(
            "volume {name} is in use by container(s) {}: remove them first (minibox rm)",
            users.join(", ")
        );
    }
    fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
}
