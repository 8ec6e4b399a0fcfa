//! `minibox show`, `minibox ui` and `run --explain=FILE.html`, checked in a real browser:
//! Debian's chromium, headless, loads each page; its screenshot must not be blank, its DOM must
//! hold the values `minibox inspect` reads for the same container (pid, cgroup path, memory
//! limit, namespace inodes), and what a container chose (a command line, a path) must stay text.
//! Root only; bridge networks only inside a throwaway network and mount namespace.

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use images_common::*;
use serde_json::Value;

/// One browser at a time: each takes most of a core for a second or two.
static BROWSER: Mutex<()> = Mutex::new(());

/// chromium, headless, with a profile of its own; `page` is a URL.
fn chromium(extra: &[&str], page: &str) -> Output {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let profile = tempfile::Builder::new()
        .prefix("minibox-chromium-")
        .tempdir()
        .unwrap();
    let out = Command::new("timeout")
        .args([
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(extra)
        .arg(page)
        .stdin(Stdio::null())
        .output()
        .expect("chromium (apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium {extra:?} {page}: {}",
        stderr(&out)
    );
    out
}

/// The DOM after the page's scripts ran for `wait_ms` of virtual time.
fn dump_dom(page: &str, wait_ms: u32) -> String {
    let budget = format!("--virtual-time-budget={wait_ms}");
    stdout(&chromium(&["--dump-dom", &budget], page))
}

/// A screenshot's distinct colours and share of pixels that are not (near) white.
fn screenshot(page: &str, wait_ms: u32, dir: &Path) -> (usize, f64) {
    let png = dir.join("shot.png");
    let _ = fs::remove_file(&png);
    chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,1000",
            &format!("--virtual-time-budget={wait_ms}"),
        ],
        page,
    );
    let decoder = png::Decoder::new(BufReader::new(fs::File::open(&png).expect("screenshot")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.line_size / info.width as usize;
    assert!(channels >= 3, "{:?}", info.color_type);
    let mut colours = std::collections::HashSet::new();
    let mut inked = 0usize;
    let pixels = (info.width * info.height) as usize;
    for px in buf[..info.line_size * info.height as usize].chunks(channels) {
        colours.insert((px[0], px[1], px[2]));
        if px[..3].iter().any(|c| *c < 235) {
            inked += 1;
        }
    }
    (colours.len(), inked as f64 / pixels as f64)
}

fn assert_not_blank(stats: (usize, f64), what: &str) {
    let (colours, inked) = stats;
    assert!(
        colours >= 16 && inked > 0.005,
        "{what} looks blank: {colours} colours, {:.1}% inked",
        inked * 100.0
    );
}

/// The text of the element with id `id` in a serialised DOM (its tags dropped, entities undone).
fn text_of(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element with id {id} in the page"));
    let open = dom[..at].rfind('<').unwrap();
    let tag: String = dom[open + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start
        + dom[start..]
            .find(&format!("</{tag}>"))
            .unwrap_or_else(|| panic!("element {id} ({tag}) is not closed"));
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn inspect(env: &Env, name: &str) -> Value {
    serde_json::from_str(&env.ok(&["inspect", name])).expect("inspect's JSON")
}

/// The memory limit as the cgroup's file holds it (v2 or v1).
fn memory_setting(inspected: &Value) -> String {
    let s = &inspected["Cgroup"]["Settings"];
    s["memory.max"]
        .as_str()
        .or(s["memory.limit_in_bytes"].as_str())
        .expect("a memory limit file")
        .to_string()
}

/// The page shows what inspect read: pid, namespaces, cgroup path, memory limit.
fn assert_same_as_inspect(dom: &str, inspected: &Value) {
    assert_eq!(text_of(dom, "show-pid"), inspected["Pid"].to_string());
    for ns in ["mnt", "pid", "net", "uts", "ipc", "cgroup"] {
        assert_eq!(
            text_of(dom, &format!("show-ns-{ns}")),
            inspected["Namespaces"][ns].to_string(),
            "namespace {ns}"
        );
        assert_ne!(
            inspected["Namespaces"][ns], inspected["HostNamespaces"][ns],
            "{ns} is new"
        );
    }
    assert_eq!(
        text_of(dom, "show-cgroup-path"),
        inspected["Cgroup"]["Path"].as_str().unwrap()
    );
    assert_eq!(text_of(dom, "show-memory-limit"), memory_setting(inspected));
}

#[test]
fn show_draws_a_running_container_as_inspect_reads_it() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let rootfs = Rootfs::new();
    let port = free_port();
    let name = format!("show-{}", std::process::id());
    let volume = format!("showvol{}", std::process::id());
    env.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--memory",
        "64m",
        "-v",
        &format!("{volume}:/data"),
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        &rootfs.arg(),
        "/payload",
        "http",
        "8080",
    ]);
    assert!(http_get(port).contains("payload 8080"));
    let html = env.dir.path().join("web.html");
    env.ok(&["show", "-o", html.to_str().unwrap(), &name]);
    let inspected = inspect(&env, &name);
    assert_eq!(memory_setting(&inspected), "67108864");

    let dom = dump_dom(&file_url(&html), 500);
    assert_same_as_inspect(&dom, &inspected);
    assert_eq!(text_of(&dom, "show-name"), name);
    assert_eq!(text_of(&dom, "show-port-host"), format!("127.0.0.1:{port}"));
    let volume_dir = env.data().join("volumes").join(&volume).join("_data");
    for needle in [
        "/data — a host directory, bound in",
        volume_dir.to_str().unwrap(),
        "shared with the host",
        "cannot see",
        "its own layer: every write lands here",
        "How to read this picture",
        "/payload http 8080",
    ] {
        assert!(dom.contains(needle), "{needle:?} is not on the page");
    }
    assert_not_blank(
        screenshot(&file_url(&html), 200, env.dir.path()),
        "show's page",
    );

    // The SVG alone, from stdout: a document the browser reads as SVG.
    let svg = env.dir.path().join("web.svg");
    let out = env.mb(&["show", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fs::write(&svg, &out.stdout).unwrap();
    let dom = dump_dom(&file_url(&svg), 200);
    assert!(
        dom.trim_start().starts_with("<svg"),
        "{}",
        &dom[..200.min(dom.len())]
    );
    assert!(!dom.contains("parsererror"), "not well-formed SVG");
    assert_same_as_inspect(&dom, &inspected);
    assert_not_blank(
        screenshot(&file_url(&svg), 200, env.dir.path()),
        "show's SVG",
    );
}

#[test]
fn what_a_container_chose_stays_text_in_the_picture() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let rootfs = Rootfs::new();
    let bound = tempfile::tempdir().unwrap();
    let name = format!("showevil-{}", std::process::id());
    // If this reached the page as markup, its script would mark the document.
    let evil =
        "</text><script>document.documentElement.setAttribute('data-pwned','1')</script><text>";
    env.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{}:/srv/<b>bold</b>", bound.path().display()),
        &rootfs.arg(),
        "/payload",
        "later",
        "300",
        "stat",
        evil,
    ]);
    let html = env.dir.path().join("evil.html");
    env.ok(&["show", "-o", html.to_str().unwrap(), &name]);
    let svg = env.dir.path().join("evil.svg");
    env.ok(&["show", "-o", svg.to_str().unwrap(), &name]);
    for page in [&html, &svg] {
        let dom = dump_dom(&file_url(page), 300);
        assert!(
            !dom.contains("data-pwned=\"1\""),
            "the script ran: {page:?}"
        );
        assert!(!dom.contains("<script"), "a script element in {page:?}");
        assert!(
            !dom.contains("<b>bold"),
            "markup from a mount path in {page:?}"
        );
        assert!(
            dom.contains("&lt;/text&gt;&lt;script&gt;document.documentElement"),
            "the command line is not shown as text in {page:?}"
        );
        assert!(dom.contains("/srv/&lt;b&gt;bold&lt;/b&gt;"), "{page:?}");
    }
}

#[test]
fn show_refuses_what_it_cannot_draw_and_writes_nothing() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let rootfs = Rootfs::new();
    let name = format!("showno-{}", std::process::id());
    env.ok(&[
        "run",
        "--name",
        &name,
        &rootfs.arg(),
        "/payload",
        "exit",
        "0",
    ]);
    let png = env.dir.path().join("x.png");
    let err = env.fails(&["show", "-o", png.to_str().unwrap(), &name]);
    assert!(err.contains("-o") && err.contains(".svg"), "{err}");
    assert!(!png.exists());
    let svg = env.dir.path().join("x.svg");
    let err = env.fails(&["show", "-o", svg.to_str().unwrap(), &name]);
    assert!(err.contains("is not running"), "{err}");
    assert!(!svg.exists());
    let err = env.fails(&["show", "-o", svg.to_str().unwrap(), "no-such-container"]);
    assert!(err.contains("no such container"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// A `minibox ui` of the env's, killed when dropped; its URL and token as it printed them.
struct UiServer {
    child: Child,
    url: String,
    token: String,
}

impl UiServer {
    fn start(mut cmd: Command) -> UiServer {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minibox ui");
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let first = read_line(&mut lines);
        let second = read_line(&mut lines);
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .split('?')
            .next()
            .unwrap()
            .to_string();
        let token = format!("{first} {second}")
            .split("token=")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap_or_else(|| panic!("no token in {first:?} {second:?}"))
            .to_string();
        UiServer { child, url, token }
    }

    fn port(&self) -> u16 {
        self.url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.0 GET: (status, body).
fn get(port: u16, path: &str, host: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the ui");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn ui_command(env: &Env, listen: &str) -> Command {
    let mut cmd = minibox();
    cmd.env("MINIBOX_ROOT", env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", env.data())
        .env_remove("SUDO_UID")
        .args(["ui", "--listen", listen]);
    cmd
}

#[test]
fn ui_lists_containers_with_live_usage_and_opens_their_pictures() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let rootfs = Rootfs::new();
    let name = format!("showui-{}", std::process::id());
    env.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--memory",
        "64m",
        &rootfs.arg(),
        "/payload",
        "sleep",
        "300",
    ]);
    let inspected = inspect(&env, &name);
    let id = inspected["Id"].as_str().unwrap().to_string();
    let ui = UiServer::start(ui_command(&env, "127.0.0.1:0"));
    let host = format!("127.0.0.1:{}", ui.port());

    // The list's data: what inspect reads.
    let (status, body) = get(ui.port(), "/api/containers", &host);
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {body}"));
    assert_eq!(row["pid"], inspected["Pid"]);
    assert_eq!(row["memory_limit"].to_string(), memory_setting(&inspected));
    assert!(row["memory_used"].as_u64().unwrap() > 0);

    // The page in a browser: its script fills the rows, then refreshes them.
    let dom = dump_dom(&ui.url, 5000);
    let row_at = dom
        .find(&format!("data-id=\"{id}\""))
        .unwrap_or_else(|| panic!("no row for {name}: {dom}"));
    let tr = &dom[row_at..row_at + dom[row_at..].find("</tr>").unwrap()];
    assert!(tr.contains(&format!(">{name}</a>")), "{tr}");
    assert!(tr.contains(&format!(">{}</td>", inspected["Pid"])), "{tr}");
    assert!(tr.contains("/ 64.0 MiB"), "{tr}");
    assert!(dom.contains("updated "), "the page never refreshed");
    assert_not_blank(screenshot(&ui.url, 3000, env.dir.path()), "ui's list");

    // Its picture, from the ui.
    let picture = format!("{}c/{id}", ui.url);
    let dom = dump_dom(&picture, 4000);
    assert_same_as_inspect(&dom, &inspected);
    assert!(dom.contains("updated "), "the picture was never redrawn");
    let (status, _) = get(ui.port(), &format!("/c/{id}.svg"), &host);
    assert_eq!(status, 200);
    // Read-only: it answers nothing but GET.
    let mut s = TcpStream::connect(("127.0.0.1", ui.port())).unwrap();
    write!(
        s,
        "POST / HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 405") || answer.starts_with("HTTP/1.1 405"),
        "{answer}"
    );
}

#[test]
fn ui_serves_no_other_user_and_no_foreign_host_name_without_the_token() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let ui = UiServer::start(ui_command(&env, "127.0.0.1:0"));
    let port = ui.port();
    let host = format!("127.0.0.1:{port}");
    assert_eq!(get(port, "/api/containers", &host).0, 200);
    // A page elsewhere that rebinds its own name to 127.0.0.1 sends its own Host.
    assert_eq!(get(port, "/api/containers", "attacker.example:80").0, 403);
    assert_eq!(
        get(
            port,
            &format!("/api/containers?token={}", ui.token),
            "attacker.example:80"
        )
        .0,
        200
    );
    // Another user of this machine (nobody) is refused, unless given the token.
    let as_nobody = |path: &str| -> String {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' >&3 && head -1 <&3"
        );
        let out = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "bash",
                "-c",
                &script,
            ])
            .output()
            .unwrap();
        stdout(&out)
    };
    let refused = as_nobody("/api/containers");
    assert!(refused.contains(" 403 "), "{refused:?}");
    let allowed = as_nobody(&format!("/api/containers?token={}", ui.token));
    assert!(allowed.contains(" 200 "), "{allowed:?}");
    let wrong = as_nobody("/api/containers?token=00000000000000000000000000000000");
    assert!(wrong.contains(" 403 "), "{wrong:?}");
}

#[test]
fn ui_on_another_address_needs_the_token_for_everyone() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    // A network namespace of its own, with only lo: 0.0.0.0 there reaches nothing of the host.
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "sh",
        "-c",
        "ip link set lo up && exec \"$@\"",
        "sh",
    ])
    .arg(minibox_bin())
    .args(["ui", "--listen", "0.0.0.0:0"])
    .env("MINIBOX_ROOT", env.dir.path().join("state"))
    .env("MINIBOX_DATA_ROOT", env.data())
    .stdin(Stdio::null());
    let ui = UiServer::start(cmd);
    let pid = ui.child.id().to_string();
    let port = ui.port();
    let inside = |script: &str| -> String {
        let out = Command::new("nsenter")
            .args(["-t", &pid, "--net", "bash", "-c", script])
            .output()
            .unwrap();
        stdout(&out)
    };
    let request = |path: &str| {
        format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\nHost: 127.0.0.1:{port}\\r\\n\\r\\n' >&3 && head -1 <&3"
        )
    };
    assert!(
        inside(&request("/")).contains(" 403 "),
        "root without the token"
    );
    assert!(inside(&request(&format!("/?token={}", ui.token))).contains(" 200 "));
    // The page carries the token on to what its script fetches.
    let profile = tempfile::tempdir().unwrap();
    let out = {
        let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        Command::new("nsenter")
            .args(["-t", &pid, "--net", "timeout", "120", "chromium"])
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &format!("--user-data-dir={}", profile.path().display()),
                "--virtual-time-budget=4000",
                "--dump-dom",
                &format!("http://127.0.0.1:{port}/?token={}", ui.token),
            ])
            .output()
            .unwrap()
    };
    let dom = stdout(&out);
    assert!(dom.contains("0 container(s), updated"), "{dom}");
}

/// A network and mount namespace that plays the host (as tests/bridge_network.rs's), with
/// minibox's roots on a tmpfs of its own.
struct NetHost {
    holder: Child,
    dir: tempfile::TempDir,
}

impl NetHost {
    fn new() -> NetHost {
        let dir = tempfile::Builder::new()
            .prefix("minibox-shownet-")
            .tempdir()
            .unwrap();
        let holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "sleep",
                "600",
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let ours = fs::read_link("/proc/self/ns/net").unwrap();
        let start = Instant::now();
        while fs::read_link(format!("/proc/{}/ns/net", holder.id())).map_or(true, |l| l == ours) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "unshare never ran"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let host = NetHost { holder, dir };
        let d = host.dir.path().display().to_string();
        let out = host.sh(&format!("mount -t tmpfs tmpfs {d} && ip link set lo up"));
        assert!(out.status.success(), "{}", stderr(&out));
        host
    }

    fn command(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("timeout");
        c.args([
            "120",
            "nsenter",
            "-t",
            &self.holder.id().to_string(),
            "--net",
            "--mount",
            "--",
        ])
        .env("MINIBOX_ROOT", d.join("run"))
        .env("MINIBOX_DATA_ROOT", d.join("data"))
        .stdin(Stdio::null());
        c
    }

    fn sh(&self, script: &str) -> Output {
        self.command().args(["sh", "-c", script]).output().unwrap()
    }

    fn mb(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .arg(minibox_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "minibox {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// A path of the namespace's tmpfs, as this process reaches it.
    fn outside(&self, inside: &Path) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root{}",
            self.holder.id(),
            inside.display()
        ))
    }
}

impl Drop for NetHost {
    fn drop(&mut self) {
        let _ = self.sh(&format!(
            "for c in $({m} ps -aq); do {m} rm -f $c; done; {m} network rm shownet",
            m = minibox_bin().display()
        ));
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
fn show_a_bridge_container_of_a_three_layer_image_with_two_volumes() {
    if !need_root() {
        return;
    }
    let host = NetHost::new();
    let d = host.dir.path();
    let layers = vec![
        payload_layer(),
        layer(&[
            E::Dir("srv/", 0o755),
            E::File("srv/one", b"1".to_vec(), 0o644),
        ]),
        layer(&[
            E::Dir("srv/", 0o755),
            E::File("srv/two", vec![7; 5000], 0o644),
        ]),
    ];
    let archive = d.join("image.tar");
    fs::write(
        host.outside(&archive),
        docker_save(
            &layers,
            &serde_json::json!({"Cmd": ["/payload", "http", "8080"]}),
            "layered:3",
        ),
    )
    .unwrap();
    host.mb(&["load", "-i", archive.to_str().unwrap()]);
    host.mb(&["network", "create", "shownet"]);
    let bind = d.join("bound");
    fs::create_dir(host.outside(&bind)).unwrap();
    let id = host
        .mb(&[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "shownet",
            "-p",
            "127.0.0.1:8080:8080",
            "-v",
            "webdata:/data",
            "-v",
            &format!("{}:/srv/bound:ro", bind.display()),
            "--memory",
            "64m",
            "layered:3",
        ])
        .trim()
        .to_string();
    let html = d.join("web.html");
    let began = Instant::now();
    host.mb(&["show", "-o", html.to_str().unwrap(), "web"]);
    eprintln!(
        "show took {:?} (3 layers, 2 volumes, a bridge network)",
        began.elapsed()
    );

    // The browser reads a copy: a page under /proc/PID/root is shown as text.
    let local = tempfile::tempdir().unwrap();
    let page = local.path().join("web.html");
    fs::copy(host.outside(&html), &page).unwrap();
    let dom = dump_dom(&file_url(&page), 300);
    let inspected: Value = serde_json::from_str(&host.mb(&["inspect", "web"])).unwrap();
    assert_same_as_inspect(&dom, &inspected);
    // Its address, as the network's record leases it, on eth0 read by netlink inside.
    let net: Value = serde_json::from_str(&host.mb(&["network", "inspect", "shownet"])).unwrap();
    let address = net["Containers"][0]["IPv4Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text_of(&dom, "show-if-eth0").contains(&address),
        "{address}"
    );
    let bridge = net["Bridge"].as_str().unwrap();
    let veth = net["Containers"][0]["Interface"].as_str().unwrap();
    assert_eq!(veth, format!("mbxv{}", &id[..11]));
    for needle in [
        veth.to_string(),
        format!("bridge {bridge} — network shownet"),
        "veth on it".to_string(),
        "by DNAT".to_string(),
        "image layer 1 of 3".to_string(),
        "image layer 3 of 3".to_string(),
        "/srv/bound — a host directory, bound in".to_string(),
        bind.display().to_string(),
        "/data — a host directory, bound in".to_string(),
        "read-only, nosuid, nodev".to_string(),
        "web".to_string(),
    ] {
        assert!(dom.contains(&needle), "{needle:?} is not on the page");
    }
    // Each layer by its diff id, as the image store names it.
    for l in &layers {
        let hex = &sha256(l)[7..19];
        assert!(
            dom.contains(&format!("sha256:{hex}")),
            "layer {hex} missing"
        );
    }
    assert_not_blank(
        screenshot(
            &file_url(&host.outside(&html)),
            200,
            host.outside(d).as_path(),
        ),
        "the bridge container's page",
    );
}

#[test]
fn run_explain_to_a_page_draws_the_container_as_its_program_starts() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let rootfs = Rootfs::new();
    let page = env.dir.path().join("explain.html");
    let arg = format!("--explain={}", page.display());
    let out = env.mb(&[
        "run",
        "--rm",
        &arg,
        "--memory",
        "48m",
        &rootfs.arg(),
        "/payload",
        "sleep",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let told = stderr(&out);
    assert!(
        told.contains("[9/10] exec"),
        "--explain still narrates: {told}"
    );
    let dom = dump_dom(&file_url(&page), 300);
    // The timeline: the steps as told, in order.
    let timeline = text_of(&dom, "timeline");
    let mut at = 0;
    for (n, step) in [
        "cgroup",
        "clone",
        "mounts",
        "pivot_root",
        "hostname",
        "identity",
        "privileges",
        "seccomp",
        "exec",
    ]
    .iter()
    .enumerate()
    {
        let here = timeline[at..]
            .find(&format!("{}{step}", n + 1))
            .unwrap_or_else(|| panic!("step {} {step} missing or out of order: {timeline}", n + 1));
        at += here;
    }
    // The picture and the narration read the same kernel objects.
    let clone_line = told.lines().find(|l| l.contains("[2/10] clone")).unwrap();
    let pid = clone_line
        .split("pid ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(text_of(&dom, "show-pid"), pid);
    let inodes = told
        .lines()
        .skip_while(|l| !l.contains("[2/10] clone"))
        .nth(1)
        .unwrap();
    let mnt = inodes
        .split("mnt:[")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    assert_eq!(text_of(&dom, "show-ns-mnt"), mnt);
    assert_eq!(text_of(&dom, "show-memory-limit"), "50331648");
    assert_not_blank(
        screenshot(&file_url(&page), 200, env.dir.path()),
        "the explain page",
    );

    // A program gone before minibox could look: the steps, and why there is no picture.
    let quick = env.dir.path().join("quick.html");
    env.ok(&[
        "run",
        "--rm",
        &format!("--explain={}", quick.display()),
        &rootfs.arg(),
        "/payload",
        "exit",
        "0",
    ]);
    let dom = dump_dom(&file_url(&quick), 100);
    assert!(text_of(&dom, "timeline").contains("9exec"), "{dom}");
    if !dom.contains("show-pid") {
        assert!(
            text_of(&dom, "missing").contains("had already ended"),
            "{dom}"
        );
    }

    // A file it cannot write as a picture: refused before anything is made.
    let err = env.fails(&[
        "run",
        "--explain=x.png",
        &rootfs.arg(),
        "/payload",
        "exit",
        "0",
    ]);
    assert!(
        err.contains("--explain=x.png") && err.contains(".html"),
        "{err}"
    );
    assert!(env.ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn show_draws_the_user_namespace_map_of_a_container_that_has_one() {
    if !need_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let rootfs = Rootfs::new();
    fs::set_permissions(rootfs.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = common::bundle::spec(&["-u", "0", &rootfs.arg(), "/payload", "sleep", "300"]);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
    let dir = common::bundle::bundle(&c);
    let id = format!("showuserns{}", std::process::id());
    // create + start, as runc's `run -d`: the container keeps the caller's stdout and stderr,
    // so they go to a file here (a pipe would hold the call until the container ends).
    let started = minibox()
        .env("MINIBOX_ROOT", env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", env.data())
        .args(["run", "-d", "--bundle", dir.path().to_str().unwrap(), &id])
        .stdout(Stdio::null())
        .stderr(fs::File::create(env.dir.path().join("run.err")).unwrap())
        .status()
        .unwrap();
    assert!(
        started.success(),
        "run -d --bundle {id}: {started}: {}",
        fs::read_to_string(env.dir.path().join("run.err")).unwrap_or_default()
    );
    let html = env.dir.path().join("userns.html");
    env.ok(&["show", "-o", html.to_str().unwrap(), &id]);
    let inspected = inspect(&env, &id);
    let dom = dump_dom(&file_url(&html), 200);
    assert_eq!(text_of(&dom, "show-pid"), inspected["Pid"].to_string());
    assert_eq!(
        text_of(&dom, "show-uidmap-0"),
        "uid 0–65535 inside = uid 100000–165535 on the host"
    );
    // Its own user namespace: new, by an inode that is not the host's.
    let ns = |pid: &str| {
        fs::read_link(format!("/proc/{pid}/ns/user"))
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("user:[")
            .trim_end_matches(']')
            .to_string()
    };
    let inside = ns(&inspected["Pid"].to_string());
    assert_ne!(inside, ns("self"));
    assert_eq!(text_of(&dom, "show-ns-user"), inside);
    assert!(dom.contains("(its root is no one special outside)"));
    env.ok(&["rm", "-f", &id]);
}
