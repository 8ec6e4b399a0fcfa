//! `minibox pull`: an image from a registry, by the OCI distribution API (v2).
//!
//! `GET /v2/<name>/manifests/<ref>` (accepting OCI and docker v2 manifests and indexes; from
//! an index, linux/amd64), then the config and each layer not yet in the store by
//! `GET /v2/<name>/blobs/<digest>`. Every digest is checked; a layer is put in place only once
//! complete and checked, so a bad or interrupted pull leaves nothing that is used.
//! A registry answering 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…` gets an
//! anonymous token from the realm, and the request is made again with it.
//!
//! The registry is untrusted: its realm and redirects are followed only where `pull_guard`
//! allows (never to a private address other than its own, unless asked), the token goes to the
//! registry alone, and every manifest, config and layer is read up to its descriptor's size and
//! no further.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::image::{ImageIndex, ImageManifest};
use ureq::unversioned::resolver::Resolver;
use ureq::unversioned::transport::DefaultConnector;

use crate::store::images::{check_reference, normalize, verify, Images};
use crate::store::load::{pick_platform, store_image};
use crate::store::pull_guard::{self, Guard};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A reference split for the registry: host, repository, tag or digest.
#[derive(Debug, PartialEq, Eq)]
pub struct Remote {
    pub host: String,
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

/// `NAME[:TAG|@DIGEST]`; a first component with a `.` or `:` (or `localhost`) is the
/// registry, else Docker Hub (with `library/` for one-part names).
pub fn parse(text: &str) -> Result<Remote> {
    let bad = || anyhow!("invalid image reference {text:?}: use [REGISTRY/]NAME[:TAG|@DIGEST]");
    let (name, reference) = match text.split_once('@') {
        Some((n, d)) => (n.to_string(), d.to_string()),
        None => {
            let full = normalize(text);
            let (n, t) = full.rsplit_once(':').ok_or_else(bad)?;
            (n.to_string(), t.to_string())
        }
    };
    let (host, repository) = match name.split_once('/') {
        Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => {
            (h.to_string(), rest.to_string())
        }
        Some(_) => ("registry-1.docker.io".to_string(), name.clone()),
        None => (
            "registry-1.docker.io".to_string(),
            format!("library/{name}"),
        ),
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b))
    };
    if !ok(&repository) || !ok(&reference) || !ok(&host) || repository.contains("..") {
        return Err(bad());
    }
    Ok(Remote {
        host,
        repository,
        reference,
    })
}

struct Client {
    agent: ureq::Agent,
    guard: Arc<Guard>,
    base: String,
    token: Option<String>,
}

/// A manifest (or an index) with no descriptor to give its size is read up to this (docker's
/// own limit for a manifest).
const MANIFEST_MAX: u64 = 4 << 20;

/// What is read into memory with a descriptor's size (a config, a picked manifest) is also
/// kept under this, whatever the descriptor says.
const SMALL_MAX: u64 = 16 << 20;

impl Client {
    /// The error for a failed request: the guard's refusal when it refused the connection.
    fn failed(&self, url: &str, e: ureq::Error) -> anyhow::Error {
        match self.guard.take_refusal() {
            Some(why) => anyhow!("GET {url}: {why}"),
            None => anyhow!("GET {url}: {e}: is the registry reachable?"),
        }
    }

    /// `GET` on the registry. The token goes with it, to the registry only: a redirect to
    /// another host is followed without it (ureq drops `Authorization` on every redirect).
    fn get(&mut self, path: &str, accept: &str) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        for attempt in 0..2 {
            let mut req = self.agent.get(&url).header("Accept", accept);
            if let Some(t) = &self.token {
                req = req.header("Authorization", &format!("Bearer {t}"));
            }
            let resp = req.call().map_err(|e| self.failed(&url, e))?;
            let status = resp.status().as_u16();
            if status == 401 && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                self.token = Some(self.fetch_token(&challenge)?);
                continue;
            }
            if status != 200 {
                bail!("GET {url}: the registry answered {status}");
            }
            return Ok(resp);
        }
        bail!("GET {url}: the registry refused the token it gave")
    }

    /// An anonymous token from the challenge's realm. The realm is the registry's choice: it
    /// is asked with no credentials at all, and only where the guard lets minibox connect.
    fn fetch_token(&self, challenge: &str) -> Result<String> {
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            bail!("the registry asks for {challenge:?} authentication: only anonymous Bearer tokens are supported");
        };
        let mut realm = None;
        let mut query = vec![];
        for part in split_params(params) {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let v = v.trim_matches('"').to_string();
            match k.trim() {
                "realm" => realm = Some(v),
                key @ ("service" | "scope") => query.push((key.to_string(), v)),
                _ => {}
            }
        }
        let realm = realm.context("the registry's Bearer challenge has no realm")?;
        let uri: ureq::http::Uri = realm.parse().map_err(|_| {
            anyhow!("the registry's Bearer challenge names the realm {realm:?}, which is not a URL")
        })?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            bail!("the registry's Bearer realm {realm:?} is not an http(s) URL: refused");
        }
        let mut req = self.agent.get(&realm);
        for (k, v) in &query {
            req = req.query(k, v);
        }
        let mut resp = req.call().map_err(|e| match self.guard.take_refusal() {
            Some(why) => anyhow!("getting a token from {realm}: {why}"),
            None => anyhow!("getting a token from {realm}: {e}"),
        })?;
        if resp.status().as_u16() != 200 {
            bail!("getting a token from {realm}: answered {}", resp.status());
        }
        let body: serde_json::Value =
            serde_json::from_slice(&resp.body_mut().with_config().limit(1 << 20).read_to_vec()?)?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .context("the token answer has no token")
    }

    /// A manifest, index or config, read into memory: `size` bytes exactly when a descriptor
    /// gives the size (more is refused before it is read), else at most `MANIFEST_MAX`.
    fn small(&mut self, path: &str, accept: &str, size: Option<u64>) -> Result<(Vec<u8>, String)> {
        let what = path.rsplit('/').next().unwrap_or(path).to_string();
        let max = match size {
            Some(n) if n > SMALL_MAX => bail!(
                "{what}: its descriptor says {n} bytes, more than the {SMALL_MAX} minibox reads \
                 into memory for a manifest or config: refused"
            ),
            Some(n) => n,
            None => MANIFEST_MAX,
        };
        let mut resp = self.get(path, accept)?;
        let media = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut bytes = vec![];
        let n = read_bounded(resp.body_mut().as_reader(), max, &mut bytes)
            .with_context(|| format!("downloading {what}"))?;
        check_length(&what, n, max, size)?;
        Ok((bytes, media))
    }

    /// Downloads a blob of `size` bytes (its descriptor's) into `file`; more is refused as
    /// soon as the registry announces it or sends it, and never written.
    fn blob_to(
        &mut self,
        digest: &str,
        size: u64,
        file: &mut File,
        watch: &mut dyn crate::store::Watch,
    ) -> Result<()> {
        let resp = self.get(&format!("blobs/{digest}"), "*/*")?;
        let announced = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = announced.filter(|len| *len > size) {
            bail!(
                "{digest}: the registry sends {len} bytes, its descriptor says {size}: refused, \
                 nothing was stored (the registry is broken or hostile)"
            );
        }
        let body = crate::store::Watched {
            inner: resp.into_body().into_reader(),
            watch,
        };
        let n = read_bounded(body, size, file).with_context(|| format!("downloading {digest}"))?;
        check_length(digest, n, size, Some(size))
    }
}

/// Copies at most `max + 1` bytes of `from` (one more than allowed tells a longer body from an
/// exact one); returns how many came.
fn read_bounded(from: impl Read, max: u64, to: &mut impl Write) -> io::Result<u64> {
    io::copy(&mut from.take(max.saturating_add(1)), to)
}

/// `n` bytes came for `what`, `max` allowed, `size` the descriptor's.
fn check_length(what: &str, n: u64, max: u64, size: Option<u64>) -> Result<()> {
    match size {
        _ if n > max => bail!(
            "{what}: the registry sent more than {}, refused: nothing was stored (the registry \
             is broken or hostile)",
            match size {
                Some(s) => format!("the {s} bytes its descriptor says"),
                None => format!("{max} bytes (the most a manifest may have)"),
            }
        ),
        Some(s) if n < s => bail!(
            "{what}: the registry sent {n} bytes, its descriptor says {s}: the download was cut \
             short; nothing was stored"
        ),
        _ => Ok(()),
    }
}

/// Commas inside quotes do not split (`scope="repository:a:pull,push"`).
fn split_params(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c)
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// How `pull` may talk to the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullOptions {
    /// Plain HTTP (`--insecure`); else HTTPS only, redirects too.
    pub insecure: bool,
    /// Follow a realm or a redirect to a loopback, link-local or private address that is not
    /// the registry's own (`--allow-private-redirects`).
    pub allow_private: bool,
}

/// Pulls `text` into the store; returns the image's id.
pub fn pull(
    images: &Images,
    text: &str,
    options: PullOptions,
    watch: &mut dyn crate::store::Watch,
) -> Result<String> {
    if !text.contains('@') {
        // The tag it will get is checked before anything is fetched.
        check_reference(text)?;
    }
    let remote = parse(text)?;
    let scheme = if options.insecure { "http" } else { "https" };
    let base = format!("{scheme}://{}/v2/{}/", remote.host, remote.repository);
    let registry = base
        .parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| pull_guard::host_port(&u))
        .ok_or_else(|| anyhow!("invalid registry {:?} in {text:?}", remote.host))?;
    let guard = Arc::new(Guard::new(registry, options.allow_private));
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .https_only(!options.insecure)
        .timeout_global(Some(Duration::from_secs(600)))
        .build();
    let agent =
        ureq::Agent::with_parts(config, DefaultConnector::new(), SharedGuard(guard.clone()));
    let mut client = Client {
        agent,
        guard,
        base,
        token: None,
    };
    let (mut bytes, mut media) =
        client.small(&format!("manifests/{}", remote.reference), ACCEPT, None)?;
    let mut digest = crate::store::unpack::sha256_digest(&bytes);
    if remote.reference.starts_with("sha256:") {
        verify(&remote.reference, &bytes).context("the manifest")?;
    }
    let kind: serde_json::Value =
        serde_json::from_slice(&bytes).context("the manifest is not JSON")?;
    let listed = kind.get("manifests").is_some();
    if listed || media.contains("index") || media.contains("manifest.list") {
        let index: ImageIndex = serde_json::from_slice(&bytes).context("the image index")?;
        let pick = pick_platform(&index)?;
        let size = index
            .manifests()
            .iter()
            .find(|m| m.digest().to_string() == pick)
            .map(|m| m.size());
        (bytes, media) = client.small(&format!("manifests/{pick}"), ACCEPT, size)?;
        verify(&pick, &bytes).context("the manifest")?;
        digest = pick;
    }
    let _ = media;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).context("the manifest is not an image manifest")?;
    let config_digest = manifest.config().digest().to_string();
    let (config, _) = client.small(
        &format!("blobs/{config_digest}"),
        "*/*",
        Some(manifest.config().size()),
    )?;
    verify(&config_digest, &config).context("the image's config")?;
    let layers: Vec<(String, Option<String>)> = manifest
        .layers()
        .iter()
        .map(|l| (l.digest().to_string(), Some(l.digest().to_string())))
        .collect();
    let sizes: HashMap<String, u64> = manifest
        .layers()
        .iter()
        .map(|l| (l.digest().to_string(), l.size()))
        .collect();
    let id = store_image(
        images,
        &config,
        Some((&digest, &bytes)),
        &layers,
        watch,
        |d, watch| {
            let size = *sizes.get(d).context("a layer the manifest does not list")?;
            // Spooled to a scratch file that has no name from the start: whatever happens to
            // the download (cut short, too long, killed), no partial blob is left in the store.
            let path = images.scratch("blob")?;
            let mut file = std::fs::File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            let _ = std::fs::remove_file(&path);
            client.blob_to(d, size, &mut file, watch)?;
            watch.done("downloaded");
            file.rewind()?;
            Ok(file)
        },
    )?;
    if !remote.reference.starts_with("sha256:") {
        let lock = images.lock()?;
        let mut index = images.index()?;
        index.set_tag(text, &id)?;
        images.write_index(&lock, &index)?;
    }
    Ok(id)
}

/// The guard as the agent's resolver, while `pull` keeps a handle to ask it why it refused.
#[derive(Debug)]
struct SharedGuard(Arc<Guard>);

impl Resolver for SharedGuard {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        self.0.resolve(uri, config, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_registry_repository_and_tag() {
        let r = parse("127.0.0.1:5000/hello:1").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.reference.as_str()),
            ("127.0.0.1:5000", "hello", "1")
        );
        let r = parse("redis").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.reference.as_str()),
            ("registry-1.docker.io", "library/redis", "latest")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("localhost/x/y@{d}")).unwrap();
        assert_eq!(r.reference, d);
        assert!(parse("a b").is_err());
        assert_eq!(split_params(r#"realm="a",scope="r:x:pull,push""#).len(), 2);
    }

    #[test]
    fn reads_stop_one_byte_past_the_limit_and_lengths_are_checked() {
        let mut to = vec![];
        let n = read_bounded(&[7u8; 100][..], 10, &mut to).unwrap();
        assert_eq!((n, to.len()), (11, 11), "one byte more tells a longer body");
        let e = check_length("sha256:x", n, 10, Some(10)).unwrap_err();
        assert!(
            e.to_string().contains("the 10 bytes its descriptor says"),
            "{e}"
        );
        let e = check_length("manifests/1", MANIFEST_MAX + 1, MANIFEST_MAX, None).unwrap_err();
        assert!(
            e.to_string().contains("the most a manifest may have"),
            "{e}"
        );
        let e = check_length("sha256:x", 9, 10, Some(10)).unwrap_err();
        assert!(e.to_string().contains("cut short"), "{e}");
        assert!(check_length("sha256:x", 10, 10, Some(10)).is_ok());
        assert!(check_length("manifests/1", 5, MANIFEST_MAX, None).is_ok());
    }
}
