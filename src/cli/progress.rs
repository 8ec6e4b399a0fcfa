//! Progress of long image work (pull, load, import, export, save, build) on stderr, so that
//! what scripts read on stdout never changes: on a terminal, one bar per layer redrawn in
//! place (`indicatif`); otherwise one line per step; with `-q`, nothing.
//!
//! Only the image commands reach this module: a container's start never draws anything.

use std::io::{Read, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar at a time (the work is one layer after another): a finished bar stays as its
/// line, the next drawn below it.
pub struct Progress {
    quiet: bool,
    tty: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: nix::unistd::isatty(std::io::stderr()).unwrap_or(false),
        }
    }

    /// One step, one line.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            say!("{text}");
        }
    }

    /// A bar for `what` (of `total` bytes, when known): drawn on a terminal, a line when done
    /// otherwise.
    pub fn bar(&self, what: &str, total: Option<u64>) -> Bar {
        let pb = (self.tty && !self.quiet).then(|| {
            let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(10));
            let template = if total.is_some() {
                "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec}"
            } else {
                "{msg} {spinner} {bytes} {bytes_per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.set_message(what.to_string());
            pb
        });
        Bar {
            pb,
            what: what.to_string(),
            quiet: self.quiet,
            count: 0,
        }
    }
}

pub struct Bar {
    pb: Option<ProgressBar>,
    what: String,
    quiet: bool,
    count: u64,
}

impl Bar {
    pub fn add(&mut self, n: u64) {
        self.count += n;
        if let Some(pb) = &self.pb {
            pb.inc(n);
        }
    }

    /// Ends the bar without a word (another takes its place).
    pub fn clear(self) {
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
    }

    /// Ends the bar with a word (`done`, `loaded`...).
    pub fn finish(self, word: &str) {
        match &self.pb {
            Some(pb) => {
                pb.finish_with_message(format!("{}: {word}", self.what));
                // The finished bar stays as its line; the next one starts below it.
                say!("");
            }
            None if !self.quiet => say!(
                "{}: {word} ({})",
                self.what,
                crate::kernel::cgroup::human_bytes(self.count)
            ),
            None => {}
        }
    }
}

/// Counts what is read through it on a bar.
pub struct Reading<'a, R> {
    pub inner: R,
    pub bar: &'a mut Bar,
}

impl<R: Read> Read for Reading<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.add(n as u64);
        Ok(n)
    }
}

/// Counts what is written through it on a bar.
pub struct Writing<'a, W> {
    pub inner: W,
    pub bar: &'a mut Bar,
}

impl<W: Write> Write for Writing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.add(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
