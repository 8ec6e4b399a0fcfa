//! `minibox system df` and `system prune`.

use std::path::Path;

use anyhow::Result;

use crate::store::state::Store;

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
        /// Remove every image no container uses, not only dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Also remove named volumes no container uses.
        #[arg(long)]
        volumes: bool,
    },
}

pub fn dispatch(store: &Store, data_root: &Path, command: SystemCommand) -> Result<i32> {
    let _ = (store, data_root, command);
    Ok(0)
}
