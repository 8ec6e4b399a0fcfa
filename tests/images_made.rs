//! Images minibox makes itself: `build` (FROM scratch and from an image, RUN in a container
//! minibox starts, COPY from the context and from another stage, the layer cache), `commit`,
//! `import -` with `--change`, `save` read back by podman and by minibox, docker's short names
//! and "no such image", and the progress lines on stderr. Every image is checked by running
//! it. Names start with `im-`.

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use images_common::*;

/// The hello example's files, as a build context with the seed's Dockerfile (FROM scratch, the
/// binary, passwd/group, certificates, USER nobody).
fn hello_context(env: &Env) -> PathBuf {
    let ctx = env.dir.path().join("ctx");
    fs::create_dir_all(ctx.join("etc/ssl/certs")).unwrap();
    let rootfs = hello_rootfs();
    fs::copy(rootfs.join("main"), ctx.join("hello")).unwrap();
    for f in [
        "etc/passwd",
        "etc/group",
        "etc/ssl/certs/ca-certificates.crt",
    ] {
        if rootfs.join(f).exists() {
            fs::copy(rootfs.join(f), ctx.join(f)).unwrap();
        } else {
            fs::write(ctx.join(f), "").unwrap();
        }
    }
    fs::write(
        ctx.join("Dockerfile"),
        "# the seed's second stage\n\
         FROM scratch\n\
         COPY hello /main\n\
         COPY etc/passwd etc/group /etc/\n\
         COPY etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/\n\
         USER nobody\n\
         EXPOSE 8080\n\
         ENTRYPOINT [\"/main\"]\n",
    )
    .unwrap();
    ctx
}

/// A busybox image (`import -` of a small rootfs, with --change), named `name`.
fn busybox_image(env: &Env, name: &str) {
    let root = env.dir.path().join("bb");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(busybox(), root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "echo", "id", "ls", "rm", "wc", "mkdir", "touch", "stat",
    ] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nimuser:x:1234:1234::/home/imuser:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nimuser:x:1234:\nnogroup:x:65534:\n",
    )
    .unwrap();
    let tar = Command::new("tar")
        .args(["-C", root.to_str().unwrap(), "-c", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let out = env.pipe(
        &[
            "import",
            "--change",
            "ENV PATH=/bin",
            "--change",
            "CMD [\"/bin/sh\"]",
            "-",
            name,
        ],
        &tar.stdout,
    );
    assert!(out.starts_with("sha256:"), "{out}");
}

fn busybox() -> PathBuf {
    let path = PathBuf::from("/bin/busybox");
    assert!(
        path.exists(),
        "busybox (static) is needed: apt-get install busybox-static"
    );
    path
}

trait Pipe {
    fn pipe(&self, args: &[&str], input: &[u8]) -> String;
    fn pipe_output(&self, args: &[&str], input: &[u8]) -> std::process::Output;
}

impl Pipe for Env {
    /// Runs with `input` on stdin; asserts success; returns stdout.
    fn pipe(&self, args: &[&str], input: &[u8]) -> String {
        let out = self.pipe_output(args, input);
        assert!(
            out.status.success(),
            "minibox {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pipe_output(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(minibox_bin())
            .env("MINIBOX_ROOT", self.dir.path().join("state"))
            .env("MINIBOX_DATA_ROOT", self.data())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = wait_output(child, std::time::Duration::from_secs(120));
        writer.join().unwrap();
        out
    }
}

fn build(env: &Env, args: &[&str]) -> (String, String) {
    let out = env.mb(&[&["build"], args].concat());
    assert_eq!(
        out.status.code(),
        Some(0),
        "build {args:?}: {}",
        stderr(&out)
    );
    (stdout(&out).trim().to_string(), stderr(&out))
}

#[test]
fn a_scratch_image_with_user_nobody_serves_hello_and_rebuilds_from_the_cache() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let ctx = hello_context(&env);
    let (id, steps) = build(&env, &["-t", "im-hello", ctx.to_str().unwrap()]);
    let first = steps.clone();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert!(steps.contains("STEP 2/7: COPY hello /main"), "{steps}");
    assert!(!steps.contains("Using cache"), "{steps}");
    assert!(
        steps.contains("Successfully tagged im-hello:latest"),
        "{steps}"
    );

    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let cid = env
        .ok(&["run", "-d", "--name", "im-web", "-p", &publish, "im-hello"])
        .trim()
        .to_string();
    let answer = http_get(port);
    assert!(answer.contains("Hello World"), "{answer}");
    let logs = env.ok(&["logs", &cid]);
    assert!(logs.contains("Start listening"), "{logs}");
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &cid])).unwrap();
    assert_eq!(inspect["Identity"]["Uid"], 65534, "{inspect}");
    assert_eq!(inspect["Command"], serde_json::json!(["/main"]));
    assert_eq!(inspect["ExposedPorts"], serde_json::json!(["8080/tcp"]));
    env.ok(&["rm", "-f", "im-web"]);

    // The same files again: every step from the cache, the very same image.
    let (again, steps) = build(&env, &["-t", "im-hello", ctx.to_str().unwrap()]);
    assert_eq!(again, id, "{steps}");
    assert_eq!(steps.matches("Using cache").count(), 3, "{steps}");
    // A changed file: its step and those after it run again.
    fs::write(
        ctx.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\nextra:x:7:\n",
    )
    .unwrap();
    let (changed, steps) = build(&env, &["-t", "im-hello", ctx.to_str().unwrap()]);
    assert_ne!(changed, id);
    assert_eq!(steps.matches("Using cache").count(), 1, "{steps}");
    let (_, steps) = build(&env, &["--no-cache", "-q", ctx.to_str().unwrap()]);
    assert!(steps.is_empty(), "-q printed {steps:?}");
    // The steps' intermediate images stay out of `images` unless -a (the images a rebuild
    // took the tag from are listed as <none>, as docker's dangling ones).
    let list = env.ok(&["images"]);
    let all = env.ok(&["images", "-a"]);
    let first_steps: Vec<&str> = first
        .lines()
        .filter_map(|l| l.strip_prefix("--> "))
        .collect();
    assert_eq!(first_steps.len(), 3, "{first}");
    for s in first_steps {
        assert!(!list.contains(s), "{s} in {list}");
        assert!(all.contains(s), "{s} not in {all}");
    }
}

#[test]
fn run_steps_run_in_a_container_and_stages_copy_from_each_other() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    busybox_image(&env, "im-bb");
    let ctx = env.dir.path().join("ctx2");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("data.txt"), "from the context\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE=im-bb\n\
         FROM $BASE AS build\n\
         ARG GREETING=hello\n\
         ENV WHO=world\n\
         WORKDIR /work\n\
         RUN echo \"$GREETING $WHO\" > out.txt && id -u > uid.txt && rm /bin/wc\n\
         COPY --chown=imuser:imuser --chmod=640 data.txt ./\n\
         RUN stat -c '%u:%g %a' data.txt > owner.txt\n\
         USER imuser\n\
         RUN id -u > /tmp/user.txt\n\
         FROM im-bb\n\
         COPY --from=build /work /copied/\n\
         COPY --from=build /tmp/user.txt /etc/passwd /copied/etc/\n\
         LABEL im.test=yes\n\
         STOPSIGNAL SIGINT\n\
         CMD [\"cat\", \"/copied/out.txt\"]\n",
    )
    .unwrap();
    let (id, steps) = build(
        &env,
        &[
            "-t",
            "im-two",
            "--build-arg",
            "GREETING=hi",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(steps.contains("STEP 6/16: RUN"), "{steps}");
    assert_eq!(env.ok(&["run", "--rm", "im-two"]), "hi world\n");
    assert_eq!(
        env.ok(&["run", "--rm", "im-two", "cat", "/copied/uid.txt"]),
        "0\n",
        "RUN runs as root without USER"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "im-two", "cat", "/copied/owner.txt"]),
        "1234:1234 640\n",
        "--chown by name, from the image's passwd; --chmod"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "im-two", "cat", "/copied/etc/user.txt"]),
        "1234\n",
        "RUN runs as the USER before it"
    );
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-u",
            "0",
            "im-two",
            "cat",
            "/copied/data.txt"
        ]),
        "from the context\n"
    );
    // The final image is im-bb's layers and its own: wc is still there.
    env.ok(&["run", "--rm", "im-two", "ls", "/bin/wc"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &id])).unwrap();
    assert_eq!(inspect["Config"]["Labels"]["im.test"], "yes");
    assert_eq!(inspect["Config"]["StopSignal"], "SIGINT");
    // The ARG is not in the image's environment; the ENV of stage 1 is not in stage 2.
    let envs = env.ok(&["run", "--rm", "im-two", "sh", "-c", "env"]);
    assert!(
        !envs.contains("GREETING") && !envs.contains("WHO="),
        "{envs}"
    );

    // --target: stage 1 as an image; its RUN removed wc (a whiteout in its layer). Without
    // --build-arg, the ARG's default: that RUN is not the cached one.
    let (_, steps) = build(
        &env,
        &[
            "--target",
            "build",
            "-t",
            "im-stage1",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(
        !steps.contains("STEP 11/16"),
        "built past the target: {steps}"
    );
    let gone = env.mb(&["run", "--rm", "im-stage1", "ls", "/bin/wc"]);
    assert_ne!(gone.status.code(), Some(0), "/bin/wc is still there");
    assert_eq!(
        env.ok(&["run", "--rm", "-w", "/work", "im-stage1", "cat", "out.txt"]),
        "hello world\n"
    );

    // The build's containers are gone, nothing is left in the store's scratch directory.
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    assert!(env.scratch().is_empty(), "{:?}", env.scratch());

    // A failing RUN: docker's words and a failure status; no container left behind.
    fs::write(
        ctx.join("Dockerfile.bad"),
        "FROM im-bb\nRUN echo im-visible-output; exit 3\n",
    )
    .unwrap();
    let out = env.mb(&[
        "build",
        "-f",
        ctx.join("Dockerfile.bad").to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("returned a non-zero code: 3"), "{err}");
    assert!(err.contains("im-visible-output"), "{err}");
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn copy_never_leaves_the_context() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let ctx = env.dir.path().join("ctx3");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(env.dir.path().join("outside.txt"), "secret").unwrap();
    symlink("/etc", ctx.join("hostetc")).unwrap();
    symlink("/etc/passwd", ctx.join("hostpasswd")).unwrap();
    let attempt = |line: &str| {
        fs::write(ctx.join("Dockerfile"), format!("FROM scratch\n{line}\n")).unwrap();
        env.mb(&["build", "-t", "im-evil", ctx.to_str().unwrap()])
    };
    let out = attempt("COPY ../outside.txt /x");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("leaves the build context"),
        "{}",
        stderr(&out)
    );
    // Through a symlink to a host directory: not found, never the host's file.
    let out = attempt("COPY hostetc/passwd /x");
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    // A symlink is copied as a symlink.
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY hostpasswd /x\n").unwrap();
    let (id, _) = build(&env, &["-t", "im-evil", ctx.to_str().unwrap()]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &id])).unwrap();
    let top = PathBuf::from(inspect["LayerDirs"][0].as_str().unwrap());
    let meta = fs::symlink_metadata(top.join("x")).unwrap();
    assert!(meta.file_type().is_symlink(), "{meta:?}");
    assert_eq!(
        fs::read_link(top.join("x")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
fn commit_and_import_take_changes() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    busybox_image(&env, "im-base");
    // import - with --change: the config's fields, as run sees them.
    let root = env.dir.path().join("bb");
    let tar = Command::new("tar")
        .args(["-C", root.to_str().unwrap(), "-c", "."])
        .output()
        .unwrap();
    env.pipe(
        &[
            "import",
            "-q",
            "-c",
            "USER nobody",
            "-c",
            "WORKDIR /tmp",
            "-c",
            "ENV PATH=/bin IM=1",
            "-c",
            "EXPOSE 9000/udp",
            "-c",
            "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
            "-c",
            "CMD [\"echo $IM $(id -u) $(pwd)\"]",
            "-",
            "im-changed:2",
        ],
        &tar.stdout,
    );
    assert_eq!(env.ok(&["run", "--rm", "im-changed:2"]), "1 65534 /tmp\n");
    let refused = env.pipe_output(&["import", "-c", "RUN true", "-", "im-no"], &tar.stdout);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("RUN cannot be changed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // commit: the container's writes (a new file, a removed one) on top of its image.
    env.ok(&[
        "run",
        "--name",
        "im-c1",
        "-u",
        "0",
        "im-base",
        "sh",
        "-c",
        "echo committed > /etc/note && rm /bin/wc",
    ]);
    let id = env.ok(&[
        "commit",
        "--change",
        "USER imuser",
        "--change",
        "CMD [\"cat\", \"/etc/note\"]",
        "im-c1",
        "im-committed",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(env.ok(&["run", "--rm", "im-committed"]), "committed\n");
    assert_eq!(
        env.ok(&["run", "--rm", "im-committed", "id", "-u"]),
        "1234\n"
    );
    let gone = env.mb(&["run", "--rm", "im-committed", "ls", "/bin/wc"]);
    assert_ne!(gone.status.code(), Some(0), "the removed file came back");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "im-committed"])).unwrap();
    assert_eq!(inspect["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    // The runtime's mount points are not part of the container's own layer (the last).
    let top = PathBuf::from(inspect["LayerDirs"][1].as_str().unwrap());
    assert!(top.join("etc/note").is_file(), "{inspect}");
    for made in [
        "proc",
        "sys",
        "dev",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
    ] {
        assert!(!top.join(made).exists(), "{made} is in the committed layer");
    }
}

#[test]
fn saved_images_load_in_podman_and_back_in_minibox() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let ctx = hello_context(&env);
    build(&env, &["-q", "-t", "im-saved:1", ctx.to_str().unwrap()]);
    let archive = env.dir.path().join("saved.tar");
    let out = env.mb(&["save", "-o", archive.to_str().unwrap(), "im-saved:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Writing layer"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");

    // podman, with a store of its own (its run root's path must be short).
    let pod_dir = tempfile::Builder::new()
        .prefix("im-pod")
        .tempdir_in("/tmp")
        .unwrap();
    let pod = pod_dir.path();
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(pod.join("root"))
            .arg("--runroot")
            .arg(pod.join("run"))
            .args(args)
            .output()
            .expect("podman is needed (apt-get install podman)")
    };
    let loaded = podman(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    assert!(
        stdout(&loaded).contains("im-saved:1"),
        "{}",
        stdout(&loaded)
    );
    let inspect = podman(&["image", "inspect", "localhost/im-saved:1"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v[0]["Config"]["User"], "nobody", "{v}");
    assert_eq!(v[0]["Config"]["Entrypoint"], serde_json::json!(["/main"]));
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 3);
    let _ = podman(&["rmi", "-a", "-f"]);

    // And back into another minibox store: it runs.
    let other = Env::new();
    let out = other.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: im-saved:1"), "{out}");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    other.ok(&[
        "run",
        "-d",
        "--name",
        "im-back",
        "-p",
        &publish,
        "im-saved:1",
    ]);
    assert!(http_get(port).contains("Hello World"));
    other.ok(&["rm", "-f", "im-back"]);
}

#[test]
fn short_names_resolve_and_unknown_ones_say_no_such_image() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    busybox_image(&env, "localhost/im-short");
    assert_eq!(
        env.ok(&["run", "--rm", "im-short", "echo", "found"]),
        "found\n"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "im-short:latest", "echo", "found"]),
        "found\n"
    );
    let out = env.mb(&["run", "--rm", "im-shrt", "echo"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("no such image: im-shrt") && err.contains("localhost/im-short:latest"),
        "{err}"
    );
    assert!(!err.contains("ROOTFS"), "{err}");
    let err = env.fails(&["image", "inspect", "im-nothing-like-it"]);
    assert!(err.contains("no such image: im-nothing-like-it"), "{err}");
    // rmi of a short name removes that name only, as docker's.
    env.ok(&["tag", "im-short", "im-other:1"]);
    assert_eq!(
        env.ok(&["rmi", "im-short"]),
        "Untagged: localhost/im-short:latest\n"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "im-other:1", "echo", "kept"]),
        "kept\n"
    );
}

#[test]
fn progress_goes_to_stderr_one_line_a_layer_and_q_silences_it() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let file = env.dir.path().join("im.tar");
    fs::write(
        &file,
        docker_save(&[hello_layer()], &hello_config(), "im-progress:1"),
    )
    .unwrap();
    let out = env.mb(&["load", "-i", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Loaded image: im-progress:1\n");
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("layer ") && l.contains("extracted")),
        "{err}"
    );
    let out = env.mb(&["load", "-i", file.to_str().unwrap()]);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let out = env.mb(&["load", "-q", "-i", file.to_str().unwrap()]);
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out), "Loaded image: im-progress:1\n");
}

#[test]
fn add_unpacks_a_local_archive_and_never_above_its_destination() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let ctx = env.dir.path().join("ctx4");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("good.tar"),
        layer(&[
            E::Dir("app/", 0o755),
            E::File("app/run.txt", b"unpacked\n".to_vec(), 0o644),
        ]),
    )
    .unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nADD good.tar /opt/\nCOPY good.tar /kept.tar\n",
    )
    .unwrap();
    let (id, _) = build(&env, &["-t", "im-add", ctx.to_str().unwrap()]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &id])).unwrap();
    // `image inspect` lists the layer directories bottom first.
    let dirs: Vec<PathBuf> = inspect["LayerDirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| PathBuf::from(d.as_str().unwrap()))
        .collect();
    assert_eq!(
        fs::read_to_string(dirs[0].join("opt/app/run.txt")).unwrap(),
        "unpacked\n"
    );
    // COPY keeps an archive as it is.
    assert!(dirs[1].join("kept.tar").is_file());

    // An entry climbing out of the destination is refused; nothing lands above it.
    fs::write(
        ctx.join("evil.tar"),
        layer(&[E::File("../../im-escaped", b"x".to_vec(), 0o644)]),
    )
    .unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nADD evil.tar /opt/\n").unwrap();
    let out = env.mb(&["build", ctx.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("leaves"), "{}", stderr(&out));
    let escaped: Vec<_> = env
        .layers()
        .iter()
        .filter(|l| l.join("im-escaped").exists() || l.join("opt").join("im-escaped").exists())
        .cloned()
        .collect();
    assert!(escaped.is_empty(), "{escaped:?}");
}

#[test]
fn a_directory_run_replaced_hides_what_was_below_it_after_save_and_load() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    busybox_image(&env, "im-bb");
    let ctx = env.dir.path().join("ctx5");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM im-bb\nRUN mkdir /data && echo a > /data/a && echo b > /data/b\n\
         RUN rm -rf /data && mkdir /data && echo only > /data/only && rm /bin/wc\n",
    )
    .unwrap();
    build(&env, &["-t", "im-opaque", ctx.to_str().unwrap()]);
    let check = |env: &Env| {
        assert_eq!(
            env.ok(&["run", "--rm", "-u", "0", "im-opaque", "ls", "/data"]),
            "only\n"
        );
        let gone = env.mb(&["run", "--rm", "-u", "0", "im-opaque", "ls", "/bin/wc"]);
        assert_ne!(gone.status.code(), Some(0), "/bin/wc came back");
    };
    check(&env);
    // COPY --from reads the same merged view: the opaque directory's own files only, and
    // nothing of a removed file.
    fs::write(
        ctx.join("Dockerfile.copy"),
        "FROM im-bb\nCOPY --from=im-opaque /data /got/\n",
    )
    .unwrap();
    let dockerfile = ctx.join("Dockerfile.copy");
    build(
        &env,
        &[
            "-f",
            dockerfile.to_str().unwrap(),
            "-t",
            "im-got",
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(env.ok(&["run", "--rm", "im-got", "ls", "/got"]), "only\n");
    fs::write(
        &dockerfile,
        "FROM im-bb\nCOPY --from=im-opaque /bin/wc /wc\n",
    )
    .unwrap();
    let out = env.mb(&[
        "build",
        "-f",
        dockerfile.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0), "copied a removed file");
    // Through a docker-archive (OCI whiteouts: .wh..wh..opq, .wh.wc) into another store.
    let archive = env.dir.path().join("opaque.tar");
    env.ok(&["save", "-q", "-o", archive.to_str().unwrap(), "im-opaque"]);
    let list = Command::new("tar")
        .args([
            "-xOf",
            archive.to_str().unwrap(),
            "--wildcards",
            "*/layer.tar",
        ])
        .output()
        .unwrap();
    let names = Command::new("tar")
        .args(["-t", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&list.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    assert!(names.contains("data/.wh..wh..opq"), "{names}");
    assert!(names.contains("bin/.wh.wc"), "{names}");
    let other = Env::new();
    other.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    check(&other);
}

#[test]
fn shell_runs_the_shell_forms_and_healthcheck_is_kept_in_the_config() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    busybox_image(&env, "im-bb");
    let ctx = env.dir.path().join("ctx6");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM im-bb\n\
         SHELL [\"/bin/echo\", \"via-shell\"]\n\
         RUN im-run-words\n\
         HEALTHCHECK --interval=5s --retries=2 CMD true\n\
         CMD im-cmd-words\n",
    )
    .unwrap();
    // The same Dockerfile on stdin (-f -).
    let text = fs::read(ctx.join("Dockerfile")).unwrap();
    fs::remove_file(ctx.join("Dockerfile")).unwrap();
    let out = env.pipe_output(
        &["build", "-f", "-", "-t", "im-shell", ctx.to_str().unwrap()],
        &text,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (id, steps) = (stdout(&out).trim().to_string(), stderr(&out));
    assert!(steps.contains("via-shell im-run-words"), "{steps}");
    assert_eq!(
        env.ok(&["run", "--rm", "im-shell"]),
        "via-shell im-cmd-words\n"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &id])).unwrap();
    let h = &inspect["Config"]["Healthcheck"];
    assert_eq!(
        h["Test"],
        serde_json::json!(["CMD-SHELL", "true"]),
        "{inspect}"
    );
    assert_eq!(h["Interval"], 5_000_000_000u64);
    assert_eq!(h["Retries"], 2);
}

/// A Dockerfile's RUN is on a network of its own by default: a service on the host's loopback
/// is out of its reach (docker's build isolates it too); `--network host` asks for the host's.
#[test]
fn run_steps_reach_nothing_of_the_hosts_network_unless_asked() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    busybox_image(&env, "im-netbb");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let ctx = env.dir.path().join("ctx-net");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM im-netbb\nRUN echo im-reached | /bin/busybox nc -w 2 127.0.0.1 {port}\n"),
    )
    .unwrap();
    let reached = || {
        let mut got = String::new();
        if let Ok((mut s, _)) = listener.accept() {
            use std::io::Read;
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let _ = s.read_to_string(&mut got);
        }
        got
    };
    let out = env.mb(&["build", "--no-cache", ctx.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(reached(), "", "the RUN reached the host's loopback");
    // Asked for, the host's network: the service hears it (accepted while nc waits).
    let ctx_s = ctx.to_str().unwrap();
    let (out, got) = std::thread::scope(|scope| {
        let build = scope.spawn(|| env.mb(&["build", "--no-cache", "--network", "host", ctx_s]));
        let start = std::time::Instant::now();
        let mut got = String::new();
        while got.is_empty() && start.elapsed() < std::time::Duration::from_secs(20) {
            got = reached();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (build.join().unwrap(), got)
    });
    assert_eq!(got, "im-reached\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
