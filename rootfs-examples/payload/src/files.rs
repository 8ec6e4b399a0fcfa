//! Subcommands that read or write the container's file system.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
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

/// Parses an octal mode such as `4755`; failure is a usage error.
fn octal_mode(arg: &OsStr) -> Result<u32> {
    arg.to_str()
        .and_then(|s| u32::from_str_radix(s, 8).ok())
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| Error::Usage(format!("invalid MODE {arg:?}")))
}

/// `copy-mode SRC DST MODE`: copies SRC to DST and sets DST's mode exactly (setuid bits
/// included, which a plain create would lose to the umask or to the copy).
pub fn copy_mode(args: &[&OsStr]) -> Result {
    let (src, dst) = (Path::new(args[0]), Path::new(args[1]));
    let mode = octal_mode(args[2])?;
    fs::copy(src, dst)
        .map_err(|err| Error::io(format!("copy {} {}", src.display(), dst.display()), &err))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))
        .map_err(|err| Error::io(format!("chmod {}", dst.display()), &err))
}

/// `mknod PATH MODE MAJOR MINOR`: makes a character device node and sets its mode exactly.
pub fn mknod(args: &[&OsStr]) -> Result {
    let path = Path::new(args[0]);
    let mode = octal_mode(args[1])?;
    let major: u32 = crate::parse_arg("MAJOR", args[2])?;
    let minor: u32 = crate::parse_arg("MINOR", args[3])?;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("invalid PATH {path:?}")))?;
    // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mknod(
            c_path.as_ptr(),
            libc::S_IFCHR | mode,
            libc::makedev(major, minor),
        )
    };
    if rc != 0 {
        return Err(Error::last_os(format!("mknod {}", path.display())));
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|err| Error::io(format!("chmod {}", path.display()), &err))
}
