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

use crate::runtime::explain_page;
use crate::store::state::{ProcessRef, Store};

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

/// What `--explain=FILE` writes, by FILE's extension.
pub fn explain_format(path: &Path) -> Result<Format> {
    Format::of(path).map_err(|_| {
        anyhow::anyhow!(
            "--explain={}: name a .html file (the picture and the steps) or a .svg file (the picture)",
            path.display()
        )
    })
}

/// `run --explain=FILE`: once the container's program runs, FILE gets its picture (FILE.html: a
/// page with the steps of `--explain` beside it). Checked now, before anything is made; a
/// picture that cannot be written later is a warning, never the run's failure.
pub fn draw_when_started(path: &Path, state_root: &Path, id: &str) -> Result<()> {
    let format = explain_format(path)?;
    let path =
        std::path::absolute(path).with_context(|| format!("--explain={}", path.display()))?;
    let (state_root, id) = (state_root.to_path_buf(), id.to_string());
    explain_page::when_started(Box::new(move |pid, steps| {
        let drawn = Store::open(&state_root)
            .and_then(|store| {
                let c = store.load(&id)?;
                facts::collect(&store, &c, facts::CpuWindow::None)
            })
            .map_err(|e| {
                // A read that failed while the program was ending (its mount table goes
                // before it is a zombie) is not an error of ours.
                let ending = (0..10).any(|_| {
                    std::thread::sleep(Duration::from_millis(10));
                    !ProcessRef::of(pid).is_ok_and(|p| p.is_alive())
                });
                match ending {
                    true => "its program had already ended when minibox looked".to_string(),
                    false => format!("{e:#}"),
                }
            });
        let text = match (format, &drawn) {
            (Format::Html, _) => Ok(page::explain_page(
                drawn.as_ref().ok(),
                steps,
                &format!(
                    "No picture: {}",
                    drawn.as_ref().err().map_or("", String::as_str)
                ),
            )),
            (Format::Svg, Ok(f)) => Ok(svg::render(f)),
            (Format::Svg, Err(e)) => Err(anyhow::anyhow!("{e}")),
        };
        if let Err(e) = text.and_then(|t| {
            std::fs::write(&path, t).with_context(|| format!("writing {}", path.display()))
        }) {
            say!("minibox: --explain={}: {e:#}", path.display());
        }
    }));
    Ok(())
}
