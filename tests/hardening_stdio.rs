//! The container's stdio: pipes minibox relays, never the caller's own files (issue 14,
//! row 4). Root only.

mod common;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `minibox run ROOTFS /payload ARGS...` with the given stdio, to its end (30 s at most).
fn run_with(rootfs: &Rootfs, flags: &[&str], args: &[&str], io: [Stdio; 3]) -> Option<i32> {
    let [stdin, out, err] = io;
    let mut child = minibox()
        .arg("run")
        .args(flags)
        .args([&rootfs.arg(), "/payload"])
        .args(args)
        .stdin(stdin)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn minibox");
    wait_deadline(&mut child, Duration::from_secs(30)).code()
}

/// A file owned by root with `mode` and `text`, outside the rootfs.
fn host_file(dir: &Path, name: &str, mode: u32, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let md = fs::metadata(path).unwrap();
    (md.mode() & 0o7777, md.uid(), md.gid())
}

#[test]
fn files_given_as_stdio_are_out_of_the_containers_reach() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let input = host_file(dir.path(), "input", 0o444, "precious\n");
    let output = host_file(dir.path(), "output", 0o644, "");
    let errors = dir.path().join("errors");
    let file = |p: &Path| Stdio::from(File::options().read(true).write(true).open(p).unwrap());
    let attacks: [&[&str]; 5] = [
        // Reopen the read-only file behind stdin for writing (root bypasses its mode).
        &["write", "/proc/self/fd/0", "pwned"],
        &["fchmod", "0", "666"],
        &["fchown", "0", "1000", "1000"],
        &["fchmod", "1", "777"],
        &["fchown", "1", "1000", "1000"],
    ];
    for attack in attacks {
        // Whether the call fails or hits a pipe of the container's own does not matter here;
        // the host's files must be as they were.
        let errs = Stdio::from(File::create(&errors).unwrap());
        run_with(
            &r,
            &["-i", "-u", "0"],
            attack,
            [
                file(&input),
                Stdio::from(File::open(&output).unwrap()),
                errs,
            ],
        );
        let stdin_state = (fs::read_to_string(&input).unwrap(), mode_owner(&input));
        assert_eq!(
            stdin_state,
            ("precious\n".to_string(), (0o444, 0, 0)),
            "{attack:?} changed the file given as stdin"
        );
        assert_eq!(
            mode_owner(&output),
            (0o644, 0, 0),
            "{attack:?} changed the file behind stdout"
        );
    }
    // What the container holds are pipes.
    let code = run_with(
        &r,
        &["-i", "-u", "0"],
        &["stdio"],
        [file(&input), file(&output), file(&errors)],
    );
    assert_eq!(code, Some(0), "{}", fs::read_to_string(&errors).unwrap());
    assert_eq!(
        fs::read_to_string(&output).unwrap(),
        "0=fifo 1=fifo 2=fifo\n"
    );
    // ... which belong to the container's user, so /dev/stdout can be reopened, as in runc.
    let out = run_payload(&r, &[], &["write", "/dev/stdout", "reopened"]);
    assert_eq!(stdout(&out), "reopened", "{}", stderr(&out));
}

#[test]
fn stdout_and_stderr_arrive_apart_whole_and_in_order() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    // 100000 lines of 12 bytes: 1.2 MB on stdout, 240 kB on stderr, interleaved.
    let (out_lines, err_lines) = (100_000, 20_000);
    let code = run_with(
        &r,
        &[],
        &["spew", &out_lines.to_string(), &err_lines.to_string()],
        [
            Stdio::null(),
            Stdio::from(File::create(&out_path).unwrap()),
            Stdio::from(File::create(&err_path).unwrap()),
        ],
    );
    assert_eq!(code, Some(0));
    let want = |tag: &str, n: usize| -> String {
        (0..n)
            .map(|i| format!("{tag} {i:07}\n"))
            .collect::<String>()
    };
    let out = fs::read_to_string(&out_path).unwrap();
    assert!(
        out == want("out", out_lines),
        "stdout is not the container's stdout, whole and in order ({} bytes)",
        out.len()
    );
    let err = fs::read_to_string(&err_path).unwrap();
    assert!(
        err == want("err", err_lines) + "done\n",
        "stderr is not the container's stderr, whole and in order ({} bytes)",
        err.len()
    );
}

#[test]
fn a_closed_stdout_neither_hangs_nor_kills_the_container() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("err");
    // `minibox run ... | head -c 10`: 2.4 MB on stdout, far more than a pipe holds.
    let mut child = minibox()
        .args(["run", &r.arg(), "/payload", "spew", "200000", "0"])
        .stdout(Stdio::piped())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    assert_eq!(&head, b"out 000000");
    // The reader is gone: the container is not killed by SIGPIPE, and minibox ends with it.
    let status = wait_deadline(&mut child, Duration::from_secs(20));
    let err = fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "done\n", "the container did not run to its end");
}

/// Writes `data` to a child's stdin from a thread, then closes it.
fn feed(child: &mut Child, data: Vec<u8>) -> std::thread::JoinHandle<()> {
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    })
}

#[test]
fn stdin_reaches_a_foreground_container_with_i_and_none_gets_it_without() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // 2 MB piped into minibox: all of it, then end of file.
    let lines = 100_000;
    let data: Vec<u8> = (0..lines)
        .flat_map(|i| format!("line {i:014}\n").into_bytes())
        .collect();
    let counted = |flags: &[&str]| {
        let mut child = minibox()
            .arg("run")
            .args(flags)
            .args([&r.arg(), "/payload", "count-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let feeder = feed(&mut child, data.clone());
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(
        counted(&["-i"]),
        format!("bytes={} lines={lines} first=line {:014}\n", data.len(), 0)
    );
    // Without -i (docker's default), the container's stdin is empty, whatever minibox's holds.
    assert_eq!(counted(&[]), "bytes=0 lines=0 first=\n");
    // Endless input the container never reads does not keep minibox past the container's end.
    let started = Instant::now();
    let code = run_with(
        &r,
        &["-i"],
        &["exit", "3"],
        [
            Stdio::from(File::open("/dev/zero").unwrap()),
            Stdio::null(),
            Stdio::null(),
        ],
    );
    assert_eq!(code, Some(3));
    assert!(started.elapsed() < Duration::from_secs(10));
    // Detached: nobody types, so stdin is an empty pipe (not the host's /dev/null).
    for (args, want) in [
        (["stdio"], "0=fifo 1=fifo 2=fifo\n"),
        (["count-stdin"], "bytes=0 lines=0 first=\n"),
    ] {
        let out = run_minibox(&[&["run", "-d", &r.arg(), "/payload"][..], &args[..]].concat());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let id = stdout(&out).trim().to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        let logs = loop {
            let logs = stdout(&run_minibox(&["logs", &id]));
            if logs == want || Instant::now() > deadline {
                break logs;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        run_minibox(&["rm", "-f", &id]);
        assert_eq!(logs, want, "{args:?}");
    }
}
