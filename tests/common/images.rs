//! Images made by the tests themselves: layer tars built entry by entry (hostile ones too),
//! `docker save` archives and OCI image layouts around them, and a store of their own.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::*;

pub fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// One entry of a layer, as a tar header says it (paths are written raw: `..` and `/` too).
pub enum E {
    Dir(&'static str, u32),
    File(&'static str, Vec<u8>, u32),
    /// path, bytes, mode, uid, gid
    Owned(&'static str, Vec<u8>, u32, u64, u64),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    Char(&'static str, u32, u32, u32),
    Fifo(&'static str),
    /// An arbitrary path (raw bytes) for a regular file.
    RawFile(Vec<u8>, Vec<u8>),
}

fn header(name: &[u8], kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        assert!(name.len() < 100, "test paths are short");
        gnu.name[..name.len()].copy_from_slice(name);
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h
}

fn set_link(h: &mut tar::Header, target: &[u8]) {
    let gnu = h.as_gnu_mut().unwrap();
    gnu.linkname[..target.len()].copy_from_slice(target);
}

/// A layer tar from entries, written exactly as given.
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (mut h, data): (tar::Header, Vec<u8>) = match e {
            E::Dir(p, m) => (
                header(p.as_bytes(), tar::EntryType::Directory, *m, 0),
                vec![],
            ),
            E::File(p, d, m) => (
                header(p.as_bytes(), tar::EntryType::Regular, *m, d.len() as u64),
                d.clone(),
            ),
            E::Owned(p, d, m, u, g) => {
                let mut h = header(p.as_bytes(), tar::EntryType::Regular, *m, d.len() as u64);
                h.set_uid(*u);
                h.set_gid(*g);
                (h, d.clone())
            }
            E::Symlink(p, t) => {
                let mut h = header(p.as_bytes(), tar::EntryType::Symlink, 0o777, 0);
                set_link(&mut h, t.as_bytes());
                (h, vec![])
            }
            E::Hardlink(p, t) => {
                let mut h = header(p.as_bytes(), tar::EntryType::Link, 0o644, 0);
                set_link(&mut h, t.as_bytes());
                (h, vec![])
            }
            E::Char(p, maj, min, m) => {
                let mut h = header(p.as_bytes(), tar::EntryType::Char, *m, 0);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                (h, vec![])
            }
            E::Fifo(p) => (header(p.as_bytes(), tar::EntryType::Fifo, 0o644, 0), vec![]),
            E::RawFile(p, d) => (
                header(p, tar::EntryType::Regular, 0o644, d.len() as u64),
                d.clone(),
            ),
        };
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// The base of the payload images: `/payload`, passwd, group, `/tmp`.
pub fn payload_layer() -> Vec<u8> {
    layer(&[
        E::Dir("./", 0o755),
        E::File("payload", fs::read(payload_bin()).unwrap(), 0o755),
        E::Dir("etc/", 0o755),
        E::File("etc/passwd", PASSWD.as_bytes().to_vec(), 0o644),
        E::File("etc/group", GROUP.as_bytes().to_vec(), 0o644),
        E::Dir("tmp/", 0o1777),
    ])
}

/// The seed's image: hello's `/main`, passwd and group, a CA bundle; `USER nobody`,
/// `CMD ["/main"]`, port 8080.
pub fn hello_layer() -> Vec<u8> {
    let root = hello_rootfs();
    let certs = fs::read(root.join("etc/ssl/certs/ca-certificates.crt"))
        .unwrap_or_else(|_| b"# no CA bundle on this host\n".to_vec());
    layer(&[
        E::Dir("./", 0o755),
        E::File("main", fs::read(root.join("main")).unwrap(), 0o755),
        E::Dir("etc/", 0o755),
        E::File("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n".to_vec(), 0o644),
        E::File("etc/group", b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644),
        E::Dir("etc/ssl/", 0o755),
        E::Dir("etc/ssl/certs/", 0o755),
        E::File("etc/ssl/certs/ca-certificates.crt", certs, 0o644),
    ])
}

pub fn hello_config() -> Value {
    json!({"User": "nobody", "Cmd": ["/main"], "ExposedPorts": {"8080/tcp": {}}})
}

/// An image config over `layers` (uncompressed tars, bottom first).
pub fn config_for(layers: &[Vec<u8>], config: &Value) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    serde_json::to_vec(&json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A `docker save` archive (the classic layout: `<n>/layer.tar`, `<id>.json`).
pub fn docker_save(layers: &[Vec<u8>], config: &Value, tag: &str) -> Vec<u8> {
    let cfg = config_for(layers, config);
    let cfg_name = format!("{}.json", &sha256(&cfg)[7..]);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut names = vec![];
    for (i, l) in layers.iter().enumerate() {
        let name = format!("{i}/layer.tar");
        add(&name, l);
        names.push(name);
    }
    add(&cfg_name, &cfg);
    let manifest = json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.into_inner().unwrap()
}

/// An OCI image layout in `dir` (layers gzip-compressed), named `name` by annotation.
pub fn oci_layout(dir: &Path, layers: &[Vec<u8>], config: &Value, name: &str) {
    use std::io::Write;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let d = sha256(bytes);
        fs::write(blobs.join(&d[7..]), bytes).unwrap();
        d
    };
    let cfg = config_for(layers, config);
    let cfg_digest = put(&cfg);
    let mut descs = vec![];
    for l in layers {
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        gz.write_all(l).unwrap();
        let gz = gz.finish().unwrap();
        descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": put(&gz), "size": gz.len()
        }));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg.len()},
        "layers": descs,
    }))
    .unwrap();
    let m = put(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(
        dir.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
}

/// A tar of a directory's files (for `load -i` of an OCI layout as a tar).
pub fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

/// A state root and a data root of the test's own: image tests remove what they load.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("minibox-img-")
            .tempdir_in(test_tmp())
            .unwrap();
        Env { dir }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn mb(&self, args: &[&str]) -> Output {
        let mut cmd = minibox();
        cmd.env("MINIBOX_ROOT", self.dir.path().join("state"))
            .env("MINIBOX_DATA_ROOT", self.data())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        wait_output(cmd.spawn().unwrap(), std::time::Duration::from_secs(120))
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.mb(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "minibox {args:?}: stdout {:?} stderr {:?}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.mb(args);
        assert_ne!(
            out.status.code(),
            Some(0),
            "minibox {args:?} succeeded: {}",
            stdout(&out)
        );
        stderr(&out)
    }

    /// Writes `bytes` to a file in the env and loads it.
    pub fn load(&self, name: &str, bytes: &[u8]) -> String {
        let file = self.dir.path().join(name);
        fs::write(&file, bytes).unwrap();
        self.ok(&["load", "-i", file.to_str().unwrap()])
    }

    /// The unpacked layers in the store.
    pub fn layers(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.data().join("layers")) {
            Ok(d) => d.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        }
    }

    /// What is left in the store's scratch directory.
    pub fn scratch(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.data().join("tmp")) {
            Ok(d) => d.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let state = self.dir.path().join("state");
        if state.exists() {
            let mut cmd = minibox();
            cmd.env("MINIBOX_ROOT", &state)
                .env("MINIBOX_DATA_ROOT", self.data())
                .args(["ps", "-a", "-q"])
                .stdout(std::process::Stdio::piped());
            let out = wait_output(cmd.spawn().unwrap(), std::time::Duration::from_secs(30));
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let mut rm = minibox();
                rm.env("MINIBOX_ROOT", &state)
                    .env("MINIBOX_DATA_ROOT", self.data())
                    .args(["rm", "-f", id]);
                let _ = rm.output();
            }
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` on 127.0.0.1:port, retried for up to 10 s; the whole answer.
pub fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let start = std::time::Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            if s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").is_ok() {
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if !out.is_empty() {
                    return out;
                }
            }
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "nothing answered on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
