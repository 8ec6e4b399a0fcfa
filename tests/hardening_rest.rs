//! The rest of issue 17's review: a hostile registry (row 13), the default process limit
//! (row 15), ROOTFS told from IMAGE by spelling (row 16), and device nodes a container plants in
//! a bind volume (row 4's device half). Each test fails while its attack works. Root only.
//! Every container, image and bundle here is named `hr-...` (this file's prefix).

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::bundle::*;
use common::*;
use images_common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// A tiny HTTP server of the test's own (std only), serving what a handler says and recording
// every request it gets.

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    authorization: Option<String>,
}

/// What to answer.
struct Reply {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Zeros sent after `body` (never in Content-Length unless `announce` is set).
    extra: usize,
    /// Announce `body + extra` in Content-Length; else the body ends when the connection does.
    announce: bool,
}

impl Reply {
    fn ok(media: &str, body: Vec<u8>) -> Reply {
        Reply {
            status: "200 OK",
            headers: vec![("Content-Type".into(), media.into())],
            body,
            extra: 0,
            announce: true,
        }
    }

    fn status(status: &'static str, headers: &[(&str, String)]) -> Reply {
        Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            body: vec![],
            extra: 0,
            announce: true,
        }
    }
}

type Handler = Box<dyn Fn(&Hit) -> Reply + Send>;

struct Server {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Body bytes the peer accepted (written without error).
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on 127.0.0.1 (a port of its own); `handler` is set later by `serve`.
    fn bind() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn serve(listener: TcpListener, handler: Handler) -> Server {
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(vec![]));
        let sent = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s, halt) = (hits.clone(), sent.clone(), stop.clone());
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(120) && !halt.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = answer(stream, &handler, &h, &s);
            }
        });
        Server {
            port,
            hits,
            sent,
            stop,
            thread: Some(thread),
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(
    stream: TcpStream,
    handler: &Handler,
    hits: &Mutex<Vec<Hit>>,
    sent: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let hit = Hit {
        path,
        authorization,
    };
    hits.lock().unwrap().push(hit.clone());
    let reply = handler(&hit);
    let mut out = stream;
    let mut head = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
    if reply.announce {
        head.push_str(&format!(
            "Content-Length: {}\r\n",
            reply.body.len() + reply.extra
        ));
    }
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(&reply.body)?;
    sent.fetch_add(reply.body.len(), Ordering::SeqCst);
    let chunk = vec![0u8; 64 << 10];
    let mut left = reply.extra;
    while left > 0 {
        let n = left.min(chunk.len());
        out.write_all(&chunk[..n])?;
        sent.fetch_add(n, Ordering::SeqCst);
        left -= n;
    }
    out.flush()
}

/// An image as a registry serves it: blobs by digest, the manifest under its tag.
struct Image {
    blobs: HashMap<String, (String, Vec<u8>)>,
    manifest: Vec<u8>,
    layer_digest: String,
    layer: Vec<u8>,
    config: Vec<u8>,
}

fn payload_image() -> Image {
    let layer = payload_layer();
    let config = config_for(
        std::slice::from_ref(&layer),
        &json!({"Cmd": ["/payload", "id"]}),
    );
    let layer_digest = sha256(&layer);
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let mut blobs = HashMap::new();
    blobs.insert(
        config_digest,
        ("application/octet-stream".to_string(), config.clone()),
    );
    blobs.insert(
        layer_digest.clone(),
        ("application/octet-stream".to_string(), layer.clone()),
    );
    Image {
        blobs,
        manifest,
        layer_digest,
        layer,
        config,
    }
}

/// The registry's answer for `path` in repository `repo`, or 404.
fn serve_image(image: &Image, repo: &str, path: &str) -> Reply {
    if path == format!("/v2/{repo}/manifests/1") {
        return Reply::ok(
            "application/vnd.oci.image.manifest.v1+json",
            image.manifest.clone(),
        );
    }
    match path
        .strip_prefix(&format!("/v2/{repo}/blobs/"))
        .and_then(|d| image.blobs.get(d))
    {
        Some((media, bytes)) => Reply::ok(media, bytes.clone()),
        None => Reply::status("404 Not Found", &[]),
    }
}

fn assert_store_empty(env: &Env) {
    assert!(env.layers().is_empty(), "layers: {:?}", env.layers());
    assert!(env.scratch().is_empty(), "scratch: {:?}", env.scratch());
    assert_eq!(
        env.ok(&["images"]).lines().count(),
        1,
        "only the header: nothing was stored"
    );
}

// ---------------------------------------------------------------------------------------------
// Row 13: a hostile registry.

/// The registry's 401 names a Bearer realm on another loopback port (a service that trusts the
/// host): minibox does not go there unless `--allow-private-redirects` says so, and even then
/// sends it no credentials; the token goes to the registry alone.
#[test]
fn hr_pull_never_follows_a_realm_to_another_loopback_port() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let image = Arc::new(payload_image());
    let (realm_listener, realm_port) = Server::bind();
    let realm = Server::serve(
        realm_listener,
        Box::new(|_| Reply::ok("application/json", br#"{"token":"hr-token"}"#.to_vec())),
    );
    let (listener, _) = Server::bind();
    let served = image.clone();
    let registry = Server::serve(
        listener,
        Box::new(move |hit| {
            if hit.authorization.as_deref() != Some("Bearer hr-token") {
                let challenge = format!(
                    "Bearer realm=\"http://127.0.0.1:{realm_port}/token\",service=\"hr\",scope=\"repository:hr/realm:pull\""
                );
                return Reply::status("401 Unauthorized", &[("WWW-Authenticate", challenge)]);
            }
            serve_image(&served, "hr/realm", &hit.path)
        }),
    );
    let reference = format!("127.0.0.1:{}/hr/realm:1", registry.port);

    let err = env.fails(&["pull", "--insecure", &reference]);
    assert!(
        realm.hits().is_empty(),
        "minibox followed the realm to another loopback port: {:?}",
        realm.hits()
    );
    for needle in ["loopback", "127.0.0.1", "--allow-private-redirects"] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_store_empty(&env);

    // Asked for: the realm is used, with no credentials sent to it; the token reaches the
    // registry, and the image runs.
    let out = env.ok(&[
        "pull",
        "--insecure",
        "--allow-private-redirects",
        &reference,
    ]);
    assert!(out.contains(&sha256(&image.config)), "{out}");
    let realm_hits = realm.hits();
    assert!(!realm_hits.is_empty(), "the realm was not asked");
    assert!(
        realm_hits.iter().all(|h| h.authorization.is_none()),
        "credentials went to the realm: {realm_hits:?}"
    );
    assert!(registry
        .hits()
        .iter()
        .any(|h| h.authorization.as_deref() == Some("Bearer hr-token")));
    let ran = env.ok(&["run", "--rm", &reference]);
    assert!(ran.contains("uid=65534"), "{ran}");
    // The environment's way of asking.
    let before = realm.hits().len();
    let out = minibox()
        .env("MINIBOX_ROOT", env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", env.data())
        .env("MINIBOX_PULL_ALLOW_PRIVATE", "1")
        .args(["pull", "--insecure", &reference])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(realm.hits().len() > before);
}

/// A blob answered by a redirect to another loopback port: not followed; with the flag it is,
/// and the registry's token does not go with it.
#[test]
fn hr_pull_never_follows_a_redirect_to_another_loopback_port() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let image = Arc::new(payload_image());
    let (elsewhere_listener, elsewhere_port) = Server::bind();
    let layer = image.layer.clone();
    let elsewhere = Server::serve(
        elsewhere_listener,
        Box::new(move |_| Reply::ok("application/octet-stream", layer.clone())),
    );
    let (listener, port) = Server::bind();
    let served = image.clone();
    let registry = Server::serve(
        listener,
        Box::new(move |hit| {
            // A token from the registry's own realm (its own address: always allowed).
            if hit.path.starts_with("/token") {
                return Reply::ok("application/json", br#"{"token":"hr-token"}"#.to_vec());
            }
            if hit.authorization.as_deref() != Some("Bearer hr-token") {
                let challenge = format!("Bearer realm=\"http://127.0.0.1:{port}/token\"");
                return Reply::status("401 Unauthorized", &[("WWW-Authenticate", challenge)]);
            }
            if hit.path.ends_with(&served.layer_digest) {
                let to = format!("http://127.0.0.1:{elsewhere_port}/blob");
                return Reply::status("307 Temporary Redirect", &[("Location", to)]);
            }
            serve_image(&served, "hr/redirect", &hit.path)
        }),
    );
    let reference = format!("127.0.0.1:{}/hr/redirect:1", registry.port);
    let err = env.fails(&["pull", "--insecure", &reference]);
    assert!(
        elsewhere.hits().is_empty(),
        "minibox followed a redirect to another loopback port: {:?}",
        elsewhere.hits()
    );
    assert!(err.contains("loopback"), "{err}");
    assert_store_empty(&env);

    env.ok(&[
        "pull",
        "--insecure",
        "--allow-private-redirects",
        &reference,
    ]);
    let hits = elsewhere.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        hits[0].authorization, None,
        "the token followed the redirect"
    );
}

/// A layer longer than its descriptor says (the review's 257 MiB for a 2 MB layer): the pull
/// stops at the descriptor's size, says so, and leaves nothing — whether the registry announces
/// the length or just keeps sending.
#[test]
fn hr_a_layer_longer_than_its_descriptor_is_cut_off_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    const EXTRA: usize = 96 << 20;
    for announce in [true, false] {
        let env = Env::new();
        let image = Arc::new(payload_image());
        let (listener, _) = Server::bind();
        let served = image.clone();
        let registry = Server::serve(
            listener,
            Box::new(move |hit| {
                let mut reply = serve_image(&served, "hr/long", &hit.path);
                if hit.path.ends_with(&served.layer_digest) {
                    reply.extra = EXTRA;
                    reply.announce = announce;
                }
                reply
            }),
        );
        let reference = format!("127.0.0.1:{}/hr/long:1", registry.port);
        let out = env.mb(&["pull", "--insecure", &reference]);
        let sent = registry.sent.clone();
        drop(registry);
        let sent = sent.load(Ordering::SeqCst);
        eprintln!(
            "announce={announce}: the registry got {sent} bytes out for a layer of {}",
            image.layer.len()
        );
        // What the kernel's socket buffers take is all that goes out past the descriptor.
        assert!(
            sent < image.layer.len() + EXTRA / 4,
            "announce={announce}: minibox took {sent} bytes for a layer of {}",
            image.layer.len()
        );
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains("descriptor"), "announce={announce}: {err}");
        assert!(
            err.contains(&image.layer.len().to_string()),
            "the descriptor's size is named: {err}"
        );
        assert_store_empty(&env);
    }
}

// ---------------------------------------------------------------------------------------------
// Row 15: a default process limit.

/// The v1 (or v2) pids group of a container, from `ps --format json`'s cgroup record.
fn pids_group(name: &str) -> PathBuf {
    let out = run_minibox(&["ps", "-a", "--format", "json"]);
    for line in stdout(&out).lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        if row["Name"] != name {
            continue;
        }
        let paths = row["Cgroup"]["paths"].as_array().expect("a cgroup record");
        let paths: Vec<PathBuf> = paths
            .iter()
            .map(|p| PathBuf::from(p.as_str().unwrap()))
            .collect();
        return paths
            .iter()
            .find(|p| p.join("pids.max").exists())
            .cloned()
            .unwrap_or_else(|| panic!("no pids.max in {paths:?}"));
    }
    panic!("{name} not in ps: {}", stdout(&out));
}

fn rm(name: &str) {
    let _ = run_minibox(&["rm", "-f", name]);
}

/// A docker-style run with no `--pids-limit` gets podman's 2048: in its group's pids.max, in
/// `ps`, `inspect` and `--explain`; a fork bomb stops there. `--pids-limit -1` lifts it.
#[test]
fn hr_a_docker_style_run_gets_a_default_pids_limit_of_2048() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let name = format!("hr-pids-{}", std::process::id());
    let root = r.arg();
    let out = run_minibox(&[
        "run", "-d", "--name", &name, &root, "/payload", "sleep", "30",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let group = pids_group(&name);
    assert_eq!(
        fs::read_to_string(group.join("pids.max")).unwrap().trim(),
        "2048"
    );
    let inspect: Value = serde_json::from_slice(&run_minibox(&["inspect", &name]).stdout).unwrap();
    assert_eq!(inspect["Limits"]["Pids"], 2048, "{inspect}");
    let table = stdout(&run_minibox(&["ps"]));
    assert!(table.contains("PIDS / LIMIT"), "{table}");
    let row = table.lines().find(|l| l.contains(&name)).unwrap();
    assert!(row.contains(" / 2048"), "{row}");
    rm(&name);

    // The fork bomb: 2100 wanted, fewer than 2048 made (the payload itself is one).
    let bomb = payload_ok(&r, &["--rm"], &["forkbomb", "2100"]);
    eprintln!("fork bomb of 2100 under the default: {}", bomb.trim());
    let counts: HashMap<&str, u64> = bomb
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    assert!(counts["forked"] < 2048, "{bomb}");
    assert!(counts["failed"] > 0, "{bomb}");

    let explained = run_payload(&r, &["--rm", "--explain"], &["exit", "0"]);
    let said = stderr(&explained);
    assert!(said.contains("pids.max=2048"), "{said}");
    assert!(said.contains("default process limit"), "{said}");

    // -1 (and 0) lift it, as docker and podman spell it.
    for none in ["-1", "0"] {
        let out = run_minibox(&[
            "run",
            "-d",
            "--name",
            &name,
            "--pids-limit",
            none,
            &root,
            "/payload",
            "sleep",
            "30",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let max = fs::read_to_string(pids_group(&name).join("pids.max")).unwrap();
        assert_eq!(max.trim(), "max", "--pids-limit {none}");
        let inspect: Value =
            serde_json::from_slice(&run_minibox(&["inspect", &name]).stdout).unwrap();
        assert_eq!(inspect["Limits"]["Pids"], Value::Null);
        rm(&name);
    }
}

/// A bundle keeps what its config.json says: no `linux.resources.pids`, no limit.
#[test]
fn hr_a_bundle_without_a_pids_limit_gets_none() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let root = r.arg();
    let mut config = spec(&[root.as_str(), "/payload", "sleep", "30"]);
    assert_eq!(
        config["linux"]["resources"]["pids"]["limit"], 2048,
        "minibox spec writes what run would use"
    );
    config["linux"]["resources"]
        .as_object_mut()
        .unwrap()
        .remove("pids");
    let b = bundle(&config);
    let id = format!("hr-bundle-{}", std::process::id());
    // The created container keeps create's stdio: a file, not a pipe to wait on.
    let log = b.path().join("log");
    let file = fs::File::create(&log).unwrap();
    let child = minibox()
        .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    let out = wait_output(child, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let max = fs::read_to_string(pids_group(&id).join("pids.max")).unwrap();
    let _ = run_minibox(&["delete", "-f", &id]);
    assert_eq!(max.trim(), "max");
}

// ---------------------------------------------------------------------------------------------
// Row 16: ROOTFS or IMAGE, by spelling.

/// `minibox` in `dir` with the env's own state and data roots.
fn mb_in(env: &Env, dir: &Path, args: &[&str]) -> Output {
    let child = minibox()
        .env("MINIBOX_ROOT", env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", env.data())
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_output(child, Duration::from_secs(60))
}

/// Another user plants a rootfs named `app:1` in the working directory: `run app:1` never runs
/// it (with the caller's `-e SECRET`), with or without an image of that name; `./app:1` does.
#[test]
fn hr_a_planted_directory_named_like_an_image_is_not_run() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let cwd = tempfile::tempdir().unwrap();
    let planted = cwd.path().join("app:1");
    populate(&planted);
    fs::write(planted.join("planted"), "planted rootfs").unwrap();

    let out = mb_in(
        &env,
        cwd.path(),
        &[
            "run",
            "--rm",
            "-e",
            "SECRET=s3",
            "app:1",
            "/payload",
            "cat",
            "/planted",
        ],
    );
    assert!(
        !stdout(&out).contains("planted rootfs"),
        "the planted directory ran: {}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    for needle in ["no such image: app:1", "./app:1 runs it"] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }

    // With an image of that name, the image runs.
    env.load(
        "hr-app.tar",
        &docker_save(&[payload_layer()], &json!({}), "app:1"),
    );
    let out = mb_in(
        &env,
        cwd.path(),
        &["run", "--rm", "app:1", "/payload", "ls", "/"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("planted"), "{}", stdout(&out));

    // Written as a path, the directory runs.
    let out = mb_in(
        &env,
        cwd.path(),
        &["run", "--rm", "./app:1", "/payload", "cat", "/planted"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "planted rootfs");

    // A missing directory names the path it looked for.
    let out = mb_in(&env, cwd.path(), &["run", "--rm", "./gone", "/payload"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    let looked = cwd.path().join("./gone");
    assert!(
        err.contains(&looked.display().to_string()) && err.contains("ROOTFS ./gone"),
        "{err}"
    );
    // A relative path holding a '/' that reads as an image reference is one.
    fs::create_dir_all(cwd.path().join("roots")).unwrap();
    populate(&cwd.path().join("roots/base"));
    let out = mb_in(&env, cwd.path(), &["run", "--rm", "roots/base", "/payload"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("./roots/base runs it"),
        "{}",
        stderr(&out)
    );
    // One that cannot be (a trailing '/', as a shell completes it) is a directory.
    let out = mb_in(
        &env,
        cwd.path(),
        &["run", "--rm", "roots/base/", "/payload", "exit", "0"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------------
// Row 4, the device half.

/// Container root plants a node of a host block device in a bind volume. It opens nothing in
/// the container: not through the volume (nodev), and not through a bundle's bind mounted
/// `dev` (the device cgroup says EPERM). That a host user could open the node on the host, and
/// run a setuid-root file planted the same way, is closed by user namespaces (issue 18).
#[test]
fn hr_a_device_node_planted_in_a_bind_volume_opens_nothing_in_the_container() {
    if !need_root() {
        return;
    }
    let (major, minor) = common::devices::host_block_device();
    let r = Rootfs::new();
    let vol = tempfile::tempdir().unwrap();
    let bind = format!("{}:/v", vol.path().display());
    let out = run_payload(
        &r,
        &["--rm", "-u", "0", "-v", &bind],
        &["mkblk", "/v/disk", &major, &minor],
    );
    assert!(
        stdout(&out).contains("made /v/disk"),
        "mknod is allowed, as docker allows it: {} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!stdout(&out).contains("read "), "{}", stdout(&out));
    assert_ne!(out.status.code(), Some(0));
    assert!(vol.path().join("disk").exists());

    // Another container, the same volume mounted `dev` by a bundle: the device cgroup.
    let root = r.arg();
    let mut config = with_args(
        &spec(&["-u", "0", root.as_str(), "/payload"]),
        &["/payload", "open", "/v/disk", "r"],
    );
    config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/v", "type": "bind", "source": vol.path(),
        "options": ["rbind", "dev", "nosuid"]
    }));
    let b = bundle(&config);
    let out = run_bundle(b.path(), &format!("hr-devvol-{}", std::process::id()));
    assert!(!stdout(&out).contains("opened"), "{}", stdout(&out));
    assert!(stderr(&out).contains("EPERM"), "{}", stderr(&out));
    // The control: the same bundle opens /dev/null (the rules allow it), so EPERM above is the
    // device cgroup's answer for that node, not a broken mount.
    let control = with_args(&config, &["/payload", "open", "/dev/null", "r"]);
    let out = run_bundle(
        bundle(&control).path(),
        &format!("hr-devnull-{}", std::process::id()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
