//! `minibox show`: one picture of what a running container is, every value read back from the
//! kernel now — its namespaces beside the host's, its processes with both of their pids, its
//! user, rights and seccomp filter, its cgroup's limits against live usage, its root filesystem
//! layer by layer with its mounts, and its network from inside and from the host.
//!
//! `facts` reads (reusing what `inspect` and `top` read), `svg` draws, `page` wraps the drawing
//! in HTML (`-o FILE.html`, `run --explain=FILE.html`, the ui's pages), `ui` serves a live list
//! of containers. None of it is reached by a plain `run`: only `show`, `ui` and
//! `--explain=FILE` call it.

pub mod facts;
pub mod page;
pub mod svg;
pub mod ui;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::store::state::Store;

/// What `-o FILE` asks for, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Html,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("html" | "htm") => Ok(Format::Html),
            _ => bail!(
                "-o {}: name a .svg file (the picture) or a .html file (a page showing it)",
                path.display()
            ),
        }
    }
}

/// CPU use in `show`'s picture is measured over this long.
const CPU_SAMPLE: Duration = Duration::from_millis(100);

/// `minibox show [-o FILE.svg|FILE.html] CONTAINER`: SVG on stdout unless `-o`; a terminal gets
/// a hint instead of a screenful of XML.
pub fn show(store: &Store, key: &str, output: Option<&Path>) -> Result<i32> {
    let format = output.map(Format::of).transpose()?;
    if output.is_none() && std::io::stdout().is_terminal() {
        bail!(
            "show draws an SVG picture: write it to a file (minibox show -o {key}.svg {key}, or \
             -o {key}.html for a page) or redirect stdout (minibox show {key} > {key}.svg)"
        );
    }
    let c = store.settled(store.resolve(key)?);
    let facts = facts::collect(store, &c, facts::CpuWindow::Sample(CPU_SAMPLE))?;
    let text = match format {
        Some(Format::Html) => page::show_page(&facts),
        Some(Format::Svg) | None => svg::render(&facts),
    };
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("writing the picture to stdout")?;
        }
    }
    Ok(0)
}
