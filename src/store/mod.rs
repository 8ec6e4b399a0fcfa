//! What minibox keeps on disk between commands: container records (`state`), and each
//! container's writable layer under the data root (`layers`).

pub mod idranges;
pub mod images;
pub mod layers;
pub mod load;
pub mod made;
pub mod merged;
pub mod networks;
pub mod pull;
pub mod pull_guard;
pub mod save;
pub mod state;
pub mod unpack;
pub mod volumes;

/// Told of long work as it goes (a front end draws it; the store never prints).
pub trait Watch {
    /// A layer begins: `what` names it, `total` is its size in bytes when known.
    fn layer(&mut self, what: &str, total: Option<u64>);
    /// So many more bytes of it were read.
    fn bytes(&mut self, n: u64);
    /// It is done: `word` says how (`extracted`, `already exists`).
    fn done(&mut self, word: &str);
}

/// A reader that tells a `Watch` what passes.
pub struct Watched<'a, R> {
    pub inner: R,
    pub watch: &'a mut dyn Watch,
}

impl<R: std::io::Read> std::io::Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.watch.bytes(n as u64);
        Ok(n)
    }
}
