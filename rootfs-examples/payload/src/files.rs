//! Subcommands that read or write the container's file system.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::{out_bytes_line, Error, Result};

/// `cat PATH`: copies the file's bytes to stdout.
pub fn cat(args: &[&OsStr]) -> Result {
    let path = Path::new(args[0]);
    let context = || format!("cat {}", path.display());
    let mut file = File::open(path).map_err(|err| Error::io(context(), &err))?;
    let mut out = io::stdout().lock();
    io::copy(&mut file, &mut out).map_err(|err| Error::io(context(), &err))?;
    out.flush().map_err(|err| Error::io("stdout", &err))
}

/// `ls PATH`: the directory's entry names (no `.`/`..`), sorted bytewise.
pub fn ls(args: &[&OsStr]) -> Result {
    let path = Path::new(args[0]);
    let mut names = fs::read_dir(path)
        .and_then(|entries| {
            entries
                .map(|entry| entry.map(|e| e.file_name()))
                .collect::<io::Result<Vec<_>>>()
        })
        .map_err(|err| Error::io(format!("ls {}", path.display()), &err))?;
    names.sort();
    for name in names {
        out_bytes_line(name.as_bytes())?;
    }
    Ok(())
}

/// `readlink PATH`: the target of the symbolic link.
pub fn readlink(args: &[&OsStr]) -> Result {
    let path = Path::new(args[0]);
    let target = fs::read_link(path)
        .map_err(|err| Error::io(format!("readlink {}", path.display()), &err))?;
    out_bytes_line(target.as_os_str().as_bytes())
}

/// `write PATH TEXT`: creates or truncates PATH and writes TEXT (no newline
/// added). Fails with e.g. `error: write PATH: EROFS (Read-only file system)`.
pub fn write(args: &[&OsStr]) -> Result {
    let path = Path::new(args[0]);
    File::create(path)
        .and_then(|mut file| file.write_all(args[1].as_bytes()))
        .map_err(|err| Error::io(format!("write {}", path.display()), &err))
}
