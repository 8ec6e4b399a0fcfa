//! `minibox pull`: an image from a registry, by the OCI distribution API (v2).
//!
//! `GET /v2/<name>/manifests/<ref>` (accepting OCI and docker v2 manifests and indexes; from
//! an index, linux/amd64), then the config and each layer not yet in the store by
//! `GET /v2/<name>/blobs/<digest>`. Every digest is checked; a layer is put in place only once
//! complete and checked, so a bad or interrupted pull leaves nothing that is used.
//! A registry answering 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…` gets an
//! anonymous token from the realm, and the request is made again with it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::image::{ImageIndex, ImageManifest};

use crate::store::images::{check_reference, normalize, verify, Images};
use crate::store::load::{pick_platform, store_image};

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
    base: String,
    token: Option<String>,
}

impl Client {
    fn get(&mut self, path: &str, accept: &str) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        for attempt in 0..2 {
            let mut req = self.agent.get(&url).header("Accept", accept);
            if let Some(t) = &self.token {
                req = req.header("Authorization", &format!("Bearer {t}"));
            }
            let resp = req
                .call()
                .map_err(|e| anyhow!("GET {url}: {e}: is the registry reachable?"))?;
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
        let mut req = self.agent.get(&realm);
        for (k, v) in &query {
            req = req.query(k, v);
        }
        let mut resp = req
            .call()
            .map_err(|e| anyhow!("getting a token from {realm}: {e}"))?;
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

    fn small(&mut self, path: &str, accept: &str) -> Result<(Vec<u8>, String)> {
        let mut resp = self.get(path, accept)?;
        let media = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()?;
        Ok((bytes, media))
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

/// Pulls `text` into the store; returns the image's id.
pub fn pull(
    images: &Images,
    text: &str,
    insecure: bool,
    watch: &mut dyn crate::store::Watch,
) -> Result<String> {
    if !text.contains('@') {
        // The tag it will get is checked before anything is fetched.
        check_reference(text)?;
    }
    let remote = parse(text)?;
    let scheme = if insecure { "http" } else { "https" };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut client = Client {
        agent,
        base: format!("{scheme}://{}/v2/{}/", remote.host, remote.repository),
        token: None,
    };
    let (mut bytes, mut media) =
        client.small(&format!("manifests/{}", remote.reference), ACCEPT)?;
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
        (bytes, media) = client.small(&format!("manifests/{pick}"), ACCEPT)?;
        verify(&pick, &bytes).context("the manifest")?;
        digest = pick;
    }
    let _ = media;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).context("the manifest is not an image manifest")?;
    let config_digest = manifest.config().digest().to_string();
    let (config, _) = client.small(&format!("blobs/{config_digest}"), "*/*")?;
    verify(&config_digest, &config).context("the image's config")?;
    let layers: Vec<(String, Option<String>)> = manifest
        .layers()
        .iter()
        .map(|l| (l.digest().to_string(), Some(l.digest().to_string())))
        .collect();
    let id = store_image(
        images,
        &config,
        Some((&digest, &bytes)),
        &layers,
        watch,
        |d, watch| {
            let resp = client.get(&format!("blobs/{d}"), "*/*")?;
            // The layer streams through a pipe into the unpacker; spooled to a scratch file first
            // is simpler: the store's `open` hands out files.
            let path = images.scratch("blob")?;
            let mut file = std::fs::File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            let mut body = crate::store::Watched {
                inner: resp.into_body().into_reader(),
                watch,
            };
            std::io::copy(&mut body, &mut file).with_context(|| format!("downloading {d}"))?;
            watch.done("downloaded");
            let _ = std::fs::remove_file(&path);
            use std::io::Seek;
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
}
