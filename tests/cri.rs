//! Kubernetes drives minibox (issue 19): containerd's CRI plugin, with a runtime handler
//! `minibox` (runtime_type io.containerd.runc.v2, options.BinaryName = minibox), driven over
//! the CRI v1 gRPC API as a kubelet does, by tests/cri/cri_client.py (PyPI's
//! container-runtime-interface-api + grpcio, in the venv tests/run-all.sh makes). containerd
//! runs in a throwaway network+mount namespace (`unshare --net --mount --fork`, tmpfs on /run
//! and /var/lib) with its own root, state and socket, `restrict_oom_score_adj = true` (root
//! here lacks CAP_SYS_RESOURCE), CNI from Debian's containernetworking-plugins (bridge +
//! host-local). The pause and payload images are built here and imported with
//! `ctr -n k8s.io image import`. First a host-network pod, then a pod with CNI networking and
//! two containers sharing it; afterwards nothing is left (no pod, container, process in the
//! namespace, cgroup). With MINIBOX_CRI_BENCH=N it also times pod + container start-to-running
//! N times with minibox and with runc as the handler (benches/cri.sh). Root only.

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use common::*;
use images_common::{docker_save, payload_layer};

const CONTAINERD: &str = "/usr/bin/containerd";
const CTR: &str = "/usr/bin/ctr";
const CNI_BIN: &str = "/usr/lib/cni";

/// The Python that has the CRI stubs: MINIBOX_CRI_PYTHON, else the venv tests/run-all.sh
/// makes under the target directory.
fn cri_python() -> PathBuf {
    let path = std::env::var_os("MINIBOX_CRI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = option_env!("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
            target.join("cri-venv/bin/python3")
        });
    assert!(
        path.exists(),
        "{} is missing: make the venv with `python3 -m venv target/cri-venv && \
         target/cri-venv/bin/pip install container-runtime-interface-api grpcio` \
         (tests/run-all.sh does), or set MINIBOX_CRI_PYTHON",
        path.display()
    );
    path
}

struct Containerd {
    dir: tempfile::TempDir,
    namespace: Child,
    netns: (u64, u64),
    cgroup_parent: String,
}

impl Containerd {
    fn start() -> Containerd {
        for path in [CONTAINERD, CTR, CNI_BIN] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's containerd and containernetworking-plugins \
                 (tests/run-all.sh does)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mbx-cri-")
            .tempdir_in(test_tmp())
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("cni")).unwrap();
        std::fs::create_dir_all(d.join("logs")).unwrap();
        // bridge + host-local, no masquerading (no iptables rule anywhere), leases kept here.
        let cni = json!({
            "cniVersion": "0.4.0",
            "name": "mbx-pods",
            "plugins": [{
                "type": "bridge",
                "bridge": "mbxcni0",
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.88.71.0/24"}]],
                    "dataDir": d.join("ipam"),
                },
            }],
        });
        std::fs::write(d.join("cni/10-mbx.conflist"), cni.to_string()).unwrap();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/mbx-pause:latest"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "minibox"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.minibox]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.minibox.options]
        BinaryName = "{minibox}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            opt = d.join("opt").display(),
            minibox = minibox_bin().display(),
            cni_bin = CNI_BIN,
            cni_conf = d.join("cni").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        // /run (netns files, the shims' and runtimes' state) and /var/lib (CNI's cache) are
        // tmpfs of the namespace's own: nothing reaches the host's.
        let script = r#"mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && exec "$@""#;
        let namespace = Command::new("unshare")
            .args([
                "--net", "--mount", "--fork", "sh", "-c", script, "sh", CONTAINERD,
            ])
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(File::create(d.join("containerd.log")).unwrap())
            .stderr(File::create(d.join("containerd.err")).unwrap())
            .spawn()
            .unwrap();
        let mut c = Containerd {
            dir,
            namespace,
            netns: (0, 0),
            cgroup_parent: format!("mbxcri-{}", std::process::id()),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !c.ctr(&["version"]).status.success() {
            if let Ok(Some(status)) = c.namespace.try_wait() {
                panic!("containerd ended ({status}): {}", c.log());
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The namespace is containerd's (the unshare's child).
        let pid = child_of(c.namespace.id()).expect("containerd's pid");
        use std::os::unix::fs::MetadataExt;
        let ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
        c.netns = (ns.dev(), ns.ino());
        c
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn socket(&self) -> PathBuf {
        self.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.path().join("containerd.err")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let child = Command::new(CTR)
            .arg("--address")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_output(child, Duration::from_secs(120))
    }

    fn import(&self, name: &str, archive: &[u8]) {
        let file = self.path().join(format!("{name}.tar"));
        std::fs::write(&file, archive).unwrap();
        let out = self.ctr(&["-n", "k8s.io", "image", "import", file.to_str().unwrap()]);
        assert!(out.status.success(), "ctr import {name}: {}", stderr(&out));
    }

    /// cri_client.py MODE with HANDLER; its JSON result.
    fn client(&self, handler: &str, mode: &str, extra: &[&str]) -> serde_json::Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri/cri_client.py");
        let child = Command::new(cri_python())
            .arg(script)
            .arg("--socket")
            .arg(self.socket())
            .args([
                "--handler",
                handler,
                "--image",
                "docker.io/library/mbx-payload:latest",
            ])
            .arg("--log-dir")
            .arg(self.path().join("logs"))
            .args(["--cgroup-parent", &self.cgroup_parent])
            .args(extra)
            .arg(mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_output(child, Duration::from_secs(300));
        assert!(
            out.status.success(),
            "{}{}\ncontainerd: {}",
            stdout(&out),
            stderr(&out),
            self.log()
        );
        serde_json::from_str(stdout(&out).trim()).unwrap()
    }

    /// Stops containerd; returns what stayed behind (processes in its namespace, cgroups).
    fn stop(&mut self) -> Vec<String> {
        if let Some(pid) = child_of(self.namespace.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.namespace.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.namespace.kill();
                let _ = self.namespace.wait();
                return vec![format!("containerd did not stop: {}", self.log())];
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut left = processes_in(self.netns);
        let mut groups = vec![];
        find_dirs(
            Path::new("/sys/fs/cgroup"),
            &self.cgroup_parent,
            4,
            &mut groups,
        );
        for group in groups {
            let mut below = vec![];
            walk(&group, &mut below);
            below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for dir in below {
                if let Err(e) = std::fs::remove_dir(&dir) {
                    left.push(format!("cgroup {}: {e}", dir.display()));
                }
            }
        }
        left
    }
}

impl Drop for Containerd {
    /// After a failure: containerd goes, then whatever it left in its namespace (shims, pods:
    /// they outlive containerd by design) is killed, and the groups go.
    fn drop(&mut self) {
        if self.namespace.try_wait().ok().flatten().is_none() {
            let _ = self.stop();
        }
        if !processes_in(self.netns).is_empty() {
            kill_all_in(self.netns);
            let _ = self.stop();
        }
    }
}

/// SIGKILL to every process in the network namespace `netns` (the test's own), until none.
fn kill_all_in(netns: (u64, u64)) {
    use std::os::unix::fs::MetadataExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut any = false;
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(ns) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
                if (ns.dev(), ns.ino()) == netns {
                    any = true;
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        if !any {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first child of `pid` (unshare --fork's child).
fn child_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn processes_in(netns: (u64, u64)) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut left = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(ns) = std::fs::metadata(format!("/proc/{name}/ns/net")) {
            if (ns.dev(), ns.ino()) == netns {
                let cmd = std::fs::read_to_string(format!("/proc/{name}/cmdline"))
                    .unwrap_or_default()
                    .replace('\0', " ");
                left.push(format!("process {name}: {cmd}"));
            }
        }
    }
    left
}

fn find_dirs(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name() == name {
            out.push(e.path());
        } else if depth > 0 {
            find_dirs(&e.path(), name, depth - 1, out);
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), out);
        }
    }
}

#[test]
fn kubernetes_cri_runs_pods_with_minibox_as_the_runtime_handler() {
    if !need_root() {
        return;
    }
    let _ = cri_python();
    let mut c = Containerd::start();
    c.import(
        "mbx-pause",
        &docker_save(
            &[payload_layer()],
            &json!({"Entrypoint": ["/payload", "sleep", "1000000"]}),
            "mbx-pause:latest",
        ),
    );
    c.import(
        "mbx-payload",
        &docker_save(
            &[payload_layer()],
            &json!({"Cmd": ["/payload", "id"]}),
            "mbx-payload:latest",
        ),
    );
    let host = c.client("minibox", "host", &[]);
    assert_eq!(host["mode"], "host", "{host}");
    let cni = c.client("minibox", "cni", &[]);
    assert!(
        cni["ip"].as_str().unwrap().starts_with("10.88.71."),
        "{cni}"
    );
    if let Some(runs) = std::env::var("MINIBOX_CRI_BENCH")
        .ok()
        .filter(|r| r.parse::<u32>().is_ok())
    {
        for handler in ["minibox", "runc", "minibox", "runc"] {
            let b = c.client(handler, "bench", &["--runs", &runs]);
            eprintln!("cri bench: {b}");
        }
    }
    let left = c.stop();
    assert!(left.is_empty(), "left behind: {left:?}");
}
