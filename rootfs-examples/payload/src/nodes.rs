//! Subcommands that look at or change inodes directly: device nodes, modes, owners, and the
//! files behind the standard descriptors. They let tests check that nothing a container can
//! reach this way is an inode of the host's.

use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::{outln, parse_arg, Error, Result};

/// A file type's short name, from `st_mode`.
fn type_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFIFO => "fifo",
        libc::S_IFCHR => "chr",
        libc::S_IFBLK => "blk",
        libc::S_IFDIR => "dir",
        libc::S_IFREG => "reg",
        libc::S_IFLNK => "lnk",
        libc::S_IFSOCK => "sock",
        _ => "unknown",
    }
}

/// Parses an octal mode such as `600`.
fn parse_mode(arg: &OsStr) -> Result<u32> {
    arg.to_str()
        .and_then(|s| u32::from_str_radix(s, 8).ok())
        .ok_or_else(|| Error::Usage(format!("invalid octal MODE {arg:?}")))
}

/// `stat PATH...`: one line per PATH, `type=chr mode=666 uid=0 gid=0 dev=D ino=I rdev=1:3`
/// (lstat; mode in octal, dev as the raw number).
pub fn stat(args: &[&OsStr]) -> Result {
    for arg in args {
        let path = Path::new(arg);
        let md = fs::symlink_metadata(path)
            .map_err(|err| Error::io(format!("stat {}", path.display()), &err))?;
        let rdev = md.rdev();
        outln!(
            "type={} mode={:o} uid={} gid={} dev={} ino={} rdev={}:{}",
            type_name(md.mode()),
            md.mode() & 0o7777,
            md.uid(),
            md.gid(),
            md.dev(),
            md.ino(),
            libc::major(rdev),
            libc::minor(rdev)
        )?;
    }
    Ok(())
}

/// `chmod PATH MODE`: MODE in octal.
pub fn chmod(args: &[&OsStr]) -> Result {
    let path = Path::new(args[0]);
    let mode = parse_mode(args[1])?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|err| Error::io(format!("chmod {}", path.display()), &err))
}

/// `chown PATH UID GID`.
pub fn chown(args: &[&OsStr]) -> Result {
    let path = Path::new(args[0]);
    let uid: u32 = parse_arg("UID", args[1])?;
    let gid: u32 = parse_arg("GID", args[2])?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|err| Error::io(format!("chown {}", path.display()), &err))
}

/// Makes the node `args` name (`PATH MAJOR MINOR`) of type `kind` and `mode`, prints
/// `made PATH`, and returns PATH.
fn make_node<'a>(args: &[&'a OsStr], kind: libc::mode_t, mode: libc::mode_t) -> Result<&'a Path> {
    let path = Path::new(args[0]);
    let major: u32 = parse_arg("MAJOR", args[1])?;
    let minor: u32 = parse_arg("MINOR", args[2])?;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Usage("PATH contains a NUL byte".into()))?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mknod(c_path.as_ptr(), kind | mode, libc::makedev(major, minor)) };
    if rc != 0 {
        return Err(Error::last_os(format!("mknod {}", path.display())));
    }
    outln!("made {}", path.display())?;
    Ok(path)
}

/// `mknod PATH MAJOR MINOR`: makes a character device node (mode 0666), prints `made PATH`,
/// then opens it for reading and writing, which fails where device nodes are not honoured.
pub fn mknod(args: &[&OsStr]) -> Result {
    let path = make_node(args, libc::S_IFCHR, 0o666)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|err| Error::io(format!("open {}", path.display()), &err))
}

/// `mkblk PATH MAJOR MINOR`: makes a block device node (mode 0600), prints `made PATH`, then
/// opens it and reads its first 512 bytes (`read N bytes`): a host disk, if nothing stops it.
pub fn mkblk(args: &[&OsStr]) -> Result {
    use std::io::Read;
    let path = make_node(args, libc::S_IFBLK, 0o600)?;
    let mut buf = [0u8; 512];
    let n = fs::File::open(path)
        .and_then(|mut f| f.read(&mut buf))
        .map_err(|err| Error::io(format!("open {}", path.display()), &err))?;
    outln!("read {n} bytes")
}

/// `open PATH r|w|rw`: opens an existing PATH as asked, without creating or truncating it, and
/// prints `opened PATH` (a device node the device cgroup denies fails with EPERM).
pub fn open(args: &[&OsStr]) -> Result {
    let path = Path::new(args[0]);
    let (read, write) = match args[1].to_str() {
        Some("r") => (true, false),
        Some("w") => (false, true),
        Some("rw") => (true, true),
        _ => {
            return Err(Error::Usage(format!(
                "invalid mode {:?}: r, w or rw",
                args[1]
            )))
        }
    };
    OpenOptions::new()
        .read(read)
        .write(write)
        .open(path)
        .map_err(|err| Error::io(format!("open {}", path.display()), &err))?;
    outln!("opened {}", path.display())
}

/// `stdio`: the file type behind descriptors 0, 1 and 2: `0=fifo 1=fifo 2=fifo` (`closed` for
/// one that is not open). Printed on stdout.
pub fn stdio(_: &[&OsStr]) -> Result {
    let kinds: Vec<String> = (0..3)
        .map(|fd| {
            // SAFETY: `st` is a writable, properly sized `stat` buffer; fstat only fills it.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: as above; a closed `fd` makes fstat fail with EBADF.
            let kind = if unsafe { libc::fstat(fd, &mut st) } == 0 {
                type_name(st.st_mode)
            } else {
                "closed"
            };
            format!("{fd}={kind}")
        })
        .collect();
    outln!("{}", kinds.join(" "))
}

/// `fchmod FD MODE`: changes the mode of whatever FD holds (MODE in octal).
pub fn fchmod(args: &[&OsStr]) -> Result {
    let fd: i32 = parse_arg("FD", args[0])?;
    let mode = parse_mode(args[1])?;
    // SAFETY: fchmod only acts on the descriptor number; no memory is passed.
    if unsafe { libc::fchmod(fd, mode) } != 0 {
        return Err(Error::last_os(format!("fchmod {fd}")));
    }
    Ok(())
}

/// `fchown FD UID GID`: changes the owner of whatever FD holds.
pub fn fchown(args: &[&OsStr]) -> Result {
    let fd: i32 = parse_arg("FD", args[0])?;
    let uid: u32 = parse_arg("UID", args[1])?;
    let gid: u32 = parse_arg("GID", args[2])?;
    // SAFETY: fchown only acts on the descriptor number; no memory is passed.
    if unsafe { libc::fchown(fd, uid, gid) } != 0 {
        return Err(Error::last_os(format!("fchown {fd}")));
    }
    Ok(())
}

/// `spew OUT_LINES ERR_LINES`: numbered lines, `out 0000000`... on stdout and `err 0000000`...
/// on stderr, interleaved in batches, then `done` on stderr: to check that both streams
/// arrive whole, in order and apart.
pub fn spew(args: &[&OsStr]) -> Result {
    let out_lines: usize = parse_arg("OUT_LINES", args[0])?;
    let err_lines: usize = parse_arg("ERR_LINES", args[1])?;
    const BATCH: usize = 500;
    let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
    let (mut o, mut e) = (0, 0);
    while o < out_lines || e < err_lines {
        let mut text = String::new();
        for i in o..out_lines.min(o + BATCH) {
            text.push_str(&format!("out {i:07}\n"));
        }
        o = out_lines.min(o + BATCH);
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|err| Error::io("stdout", &err))?;
        let mut text = String::new();
        for i in e..err_lines.min(e + BATCH) {
            text.push_str(&format!("err {i:07}\n"));
        }
        e = err_lines.min(e + BATCH);
        err.write_all(text.as_bytes())
            .map_err(|err| Error::io("stderr", &err))?;
    }
    err.write_all(b"done\n")
        .map_err(|err| Error::io("stderr", &err))
}

/// `count-stdin`: reads stdin to its end and prints `bytes=N lines=L first=FIRST LINE`.
pub fn count_stdin(_: &[&OsStr]) -> Result {
    let mut data = Vec::new();
    io::Read::read_to_end(&mut io::stdin().lock(), &mut data)
        .map_err(|err| Error::io("stdin", &err))?;
    let lines = data.iter().filter(|b| **b == b'\n').count();
    let first = data.split(|b| *b == b'\n').next().unwrap_or_default();
    outln!(
        "bytes={} lines={lines} first={}",
        data.len(),
        String::from_utf8_lossy(first)
    )
}
