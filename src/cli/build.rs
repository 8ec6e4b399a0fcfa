//! `minibox build`: a Dockerfile's steps, each over the image the step before made. RUN runs in
//! a container of that image, started by minibox itself (`minibox run`, as a user would), and
//! its container's own writes become the step's layer; COPY and ADD write a layer of the
//! context's (or another stage's) files; the other instructions change the config only.
//!
//! Every RUN, COPY and ADD result is an image of the store, marked with its cache key (the
//! config and layers it was made on, the instruction with its variables expanded, the digest
//! of the files it copies): the same step on the same parent is taken from the store instead
//! of being run again (`--no-cache`: never). Untagged, these images are intermediate ones
//! (`images -a`).

use std::collections::HashMap;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cli::dockerfile::{self, env_get, expand, Instruction};
use crate::cli::progress::Progress;
use crate::kernel::overlay::{presence, Presence};
use crate::model::volume::ImageUse;
use crate::store::images::{check_reference, Images};
use crate::store::made::{self, Spool};
use crate::store::merged;
use crate::store::state::Store;
use crate::store::unpack::hex;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name the image NAME[:TAG]. Repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Dockerfile, `-` for stdin [default: CONTEXT/Dockerfile].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (an ARG's value). Repeatable.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Build up to this stage (FROM ... AS STAGE) and name it.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Run every step, taking nothing from the cache.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Print only the image id (no steps, no RUN output unless it fails).
    #[arg(short, long)]
    pub quiet: bool,
    /// The network RUN's containers are on: `private` (default: loopback only, so a
    /// Dockerfile's RUN reaches nothing of the host's, its loopback services included), `none`,
    /// `host` (the host's network: what downloads need), or a network's name.
    #[arg(long, value_name = "NETWORK", default_value = "private")]
    pub network: String,
    /// The directory whose files COPY and ADD read.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

/// An image being made: its config and its layers (diff ids, bottom first).
#[derive(Clone)]
struct State {
    config: Value,
    layers: Vec<String>,
}

struct Stage {
    name: Option<String>,
    state: State,
}

struct Builder<'a> {
    images: &'a Images,
    store: &'a Store,
    root: &'a Path,
    data_root: &'a Path,
    no_cache: bool,
    quiet: bool,
    network: &'a str,
    progress: Progress,
}

/// `minibox build`.
pub fn build(data_root: &Path, root: &Path, store: &Store, args: &BuildArgs) -> Result<i32> {
    let tags: Vec<String> = args
        .tags
        .iter()
        .map(|t| check_reference(t))
        .collect::<Result<_>>()?;
    let context = args
        .context
        .canonicalize()
        .ok()
        .filter(|c| c.is_dir())
        .with_context(|| {
            format!(
                "the build context {} is not a directory: give the directory COPY reads from",
                args.context.display()
            )
        })?;
    let file = args
        .file
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    // `-f -`: the Dockerfile from stdin.
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin().lock())
            .context("reading the Dockerfile from stdin")?
    } else {
        std::fs::read_to_string(&file)
            .with_context(|| format!("reading the Dockerfile {}", file.display()))?
    };
    let instructions =
        dockerfile::parse(&text).with_context(|| format!("the Dockerfile {}", file.display()))?;
    let mut build_args: HashMap<String, String> = HashMap::new();
    for a in &args.build_args {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            // docker's: `--build-arg K` takes the caller's value of K.
            None => (a.clone(), std::env::var(a).unwrap_or_default()),
        };
        build_args.insert(k, v);
    }
    let images = Images::open(data_root)?;
    let b = Builder {
        images: &images,
        store,
        root,
        data_root,
        no_cache: args.no_cache,
        quiet: args.quiet,
        network: &args.network,
        progress: Progress::new(args.quiet),
    };
    let id = b.run(
        &instructions,
        &context,
        &build_args,
        args.target.as_deref(),
        &tags,
    )?;
    if !args.quiet {
        b.progress
            .line(&format!("Successfully built {}", short(&id)));
        for t in &tags {
            b.progress.line(&format!("Successfully tagged {t}"));
        }
    }
    out!("{id}");
    Ok(0)
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..12.min(hex.len())]
}

impl Builder<'_> {
    fn run(
        &self,
        instructions: &[Instruction],
        context: &Path,
        build_args: &HashMap<String, String>,
        target: Option<&str>,
        tags: &[String],
    ) -> Result<String> {
        let total = instructions.len();
        let mut stages: Vec<Stage> = vec![];
        let mut current: Option<Stage> = None;
        // ARGs before the first FROM: FROM lines see them; a stage sees those it declares again.
        let mut global: Vec<(String, String)> = vec![];
        let mut args: Vec<(String, String)> = vec![];
        if let Some(t) = target {
            let known = instructions.iter().any(|i| {
                i.keyword == "FROM"
                    && dockerfile::words(&i.args)
                        .ok()
                        .and_then(|w| w.get(2).cloned())
                        .is_some_and(|n| n.eq_ignore_ascii_case(t))
            });
            if !known {
                bail!("--target {t}: the Dockerfile has no stage of that name (FROM IMAGE AS {t})");
            }
        }
        for (n, i) in instructions.iter().enumerate() {
            let step = format!("STEP {}/{total}: {}", n + 1, i.text());
            let at = || format!("line {}: {}", i.line, i.text());
            if i.keyword == "FROM" {
                if let Some(done) = current.take() {
                    let reached = target.is_some_and(|t| {
                        done.name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(t))
                    });
                    stages.push(done);
                    if reached {
                        break;
                    }
                }
                self.progress.line(&step);
                let g = global.clone();
                let lookup =
                    move |k: &str| g.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let w = dockerfile::words(&expand(&i.args, &lookup)?)?;
                let (image, name) = match w.as_slice() {
                    [image] => (image.clone(), None),
                    [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                        (image.clone(), Some(name.to_ascii_lowercase()))
                    }
                    _ => bail!("{}: use FROM IMAGE [AS NAME]", at()),
                };
                if i.flag("platform").is_some_and(|p| p != "linux/amd64") {
                    bail!("{}: only linux/amd64 images are built here", at());
                }
                let state = self.base(&image, &stages).with_context(at)?;
                current = Some(Stage { name, state });
                args.clear();
                continue;
            }
            if i.keyword == "ARG" && current.is_none() {
                self.progress.line(&step);
                for (k, v) in arg_values(i, build_args, &|_| None)? {
                    global.push((k, v));
                }
                continue;
            }
            let Some(stage) = current.as_mut() else {
                bail!(
                    "{}: the Dockerfile must start with FROM (ARG may come before it)",
                    at()
                );
            };
            self.progress.line(&step);
            let config = stage.state.config.clone();
            let a = args.clone();
            let g = global.clone();
            // docker's order: the image's ENV wins over an ARG of the same name.
            let vars = move |k: &str| {
                env_get(&config, k)
                    .or_else(|| a.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                    .or_else(|| g.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            };
            match i.keyword.as_str() {
                "ARG" => {
                    for (k, v) in arg_values(i, build_args, &|k| {
                        global
                            .iter()
                            .rev()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone())
                    })? {
                        args.push((k, v));
                    }
                    history(&mut stage.state.config, i, true);
                }
                "RUN" => {
                    if let Some((flag, _)) = i.flags.first() {
                        bail!(
                            "{}: RUN --{flag} is not supported by minibox build (BuildKit's); \
                             leave it out",
                            at()
                        );
                    }
                    let env: Vec<String> = args
                        .iter()
                        .filter(|(k, _)| env_get(&stage.state.config, k).is_none())
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    stage.state = self.run_step(&stage.state, i, &env).with_context(at)?;
                }
                "COPY" | "ADD" => {
                    stage.state = self
                        .copy_step(&stage.state, i, context, &stages, &vars)
                        .with_context(at)?;
                }
                "MAINTAINER" => {
                    stage.state.config["author"] = json!(i.args.trim());
                    history(&mut stage.state.config, i, true);
                }
                "ONBUILD" => bail!(
                    "{}: {} is not supported by minibox build; leave it out",
                    at(),
                    i.keyword
                ),
                _ => {
                    if !dockerfile::apply(&mut stage.state.config, i, &vars).with_context(at)? {
                        bail!("{}: unknown instruction {}", at(), i.keyword);
                    }
                    history(&mut stage.state.config, i, true);
                }
            }
        }
        let last = match current {
            Some(stage) => stage,
            None => stages.pop().context("the Dockerfile has no FROM")?,
        };
        let mut config = last.state.config;
        if config.get("created").is_none() {
            config["created"] = json!(crate::text::now_rfc3339_seconds());
        }
        let lock = self.images.lock()?;
        made::record(self.images, &lock, config, &last.state.layers, None, tags)
    }

    /// FROM's image: `scratch`, an earlier stage, or an image of the store.
    fn base(&self, image: &str, stages: &[Stage]) -> Result<State> {
        if image == "scratch" {
            return Ok(State {
                config: made::empty_config(),
                layers: vec![],
            });
        }
        if let Some(s) = stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(&image.to_ascii_lowercase()))
        {
            return Ok(s.state.clone());
        }
        let (record, config) = self.image(image)?;
        Ok(State {
            config,
            layers: record,
        })
    }

    /// An image of the store, by any name `run` takes: its layers and config.
    fn image(&self, key: &str) -> Result<(Vec<String>, Value)> {
        let index = self.images.index()?;
        let record = index
            .find(key)?
            .ok_or_else(|| crate::cli::images::no_such_image(&index, key))?;
        let config: Value = serde_json::from_slice(&self.images.blob(&record.id)?)
            .with_context(|| format!("the config of image {}", record.id))?;
        Ok((record.layers.clone(), config))
    }

    fn cache_key(&self, state: &State, what: &str) -> Result<String> {
        // The layers stand for the config's rootfs (a config read back from the store has
        // them written in, one just made not yet).
        let mut config = state.config.clone();
        if let Some(c) = config.as_object_mut() {
            c.remove("rootfs");
        }
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&json!([config, state.layers, what]))?);
        Ok(format!("sha256:{}", hex(&h.finalize())))
    }

    /// The image the cache has for `key`, if its layers are all still there.
    fn cached(&self, key: &str) -> Result<Option<State>> {
        if self.no_cache {
            return Ok(None);
        }
        let index = self.images.index()?;
        let Some(record) = index.images.values().find(|r| {
            r.build.as_deref() == Some(key) && r.layers.iter().all(|l| self.images.has_layer(l))
        }) else {
            return Ok(None);
        };
        let config: Value = serde_json::from_slice(&self.images.blob(&record.id)?)?;
        self.progress
            .line(&format!("--> Using cache {}", short(&record.id)));
        Ok(Some(State {
            config,
            layers: record.layers.clone(),
        }))
    }

    /// A step's layer put on `state`: recorded as an image marked with the step's key.
    fn add_step(
        &self,
        state: &State,
        i: &Instruction,
        key: String,
        diff: &mut Spool,
    ) -> Result<State> {
        let lock = self.images.lock()?;
        let (diff_id, _) = made::add_spooled(self.images, &mut diff.file)?;
        let mut config = state.config.clone();
        config["created"] = json!(crate::text::now_rfc3339_seconds());
        history(&mut config, i, false);
        let mut layers = state.layers.clone();
        layers.push(diff_id);
        let id = made::record(self.images, &lock, config.clone(), &layers, Some(key), &[])?;
        self.progress.line(&format!("--> {}", short(&id)));
        Ok(State { config, layers })
    }

    fn lower(&self, state: &State) -> Result<Vec<PathBuf>> {
        state
            .layers
            .iter()
            .rev()
            .map(|l| self.images.layer_dir(l))
            .collect()
    }

    /// RUN: `minibox run` of the image so far (recorded, intermediate), as its USER (root if
    /// none), on `--network` (private: loopback only); its container's writes are the step's
    /// layer.
    fn run_step(&self, state: &State, i: &Instruction, env: &[String]) -> Result<State> {
        let command = dockerfile::command_in(&state.config, &i.args);
        let key = self.cache_key(state, &format!("{}\n{}", i.text(), env.join("\n")))?;
        if let Some(hit) = self.cached(&key)? {
            return Ok(hit);
        }
        let image = {
            let lock = self.images.lock()?;
            made::record(
                self.images,
                &lock,
                state.config.clone(),
                &state.layers,
                Some(String::new()),
                &[],
            )?
        };
        let name = format!("minibox-build-{}", &crate::model::spec::new_id()?[..16]);
        let user = state.config["config"]["User"]
            .as_str()
            .filter(|u| !u.is_empty())
            .unwrap_or("0")
            .to_string();
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg("--root")
            .arg(self.root)
            .arg("--data-root")
            .arg(self.data_root)
            .args([
                "run",
                "--name",
                &name,
                "--network",
                self.network,
                "--entrypoint",
                "",
            ])
            .args(["-u", &user]);
        for e in env {
            cmd.args(["-e", e]);
        }
        cmd.arg(&image).args(&command).stdin(Stdio::null());
        let output = if self.quiet {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            let out = cmd.output().context("starting minibox run")?;
            (out.status, [out.stdout, out.stderr].concat())
        } else {
            // The command's output goes where the steps go: stderr (stdout is the image id).
            use std::os::fd::AsFd;
            let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
            cmd.stdout(stderr.try_clone()?).stderr(stderr);
            (cmd.status().context("starting minibox run")?, vec![])
        };
        let result = (|| -> Result<State> {
            if !output.0.success() {
                std::io::stderr().write_all(&output.1).ok();
                bail!(
                    "the command {command:?} returned a non-zero code: {}",
                    output.0.code().unwrap_or(125)
                );
            }
            let c = self.store.resolve(&name)?;
            let upper = c
                .layer
                .as_ref()
                .map(|l| l.join("upper"))
                .context("the RUN container has no layer of its own")?;
            let below = self.lower(state)?;
            let lock = self.images.lock()?;
            // Its files as the RUN container saw them (with MINIBOX_USERNS=auto, not its range's
            // host ids).
            let owners = self.store.id_maps(&c.id);
            let (diff_id, _) = made::layer_of_upper(self.images, &upper, &below, owners.as_ref())?;
            let mut config = state.config.clone();
            config["created"] = json!(crate::text::now_rfc3339_seconds());
            history(&mut config, i, false);
            let mut layers = state.layers.clone();
            layers.push(diff_id);
            let id = made::record(
                self.images,
                &lock,
                config.clone(),
                &layers,
                Some(key.clone()),
                &[],
            )?;
            self.progress.line(&format!("--> {}", short(&id)));
            Ok(State { config, layers })
        })();
        // The container goes, whatever happened (rm -f: its record, layer, cgroup).
        let _ = Command::new("/proc/self/exe")
            .arg("--root")
            .arg(self.root)
            .arg("--data-root")
            .arg(self.data_root)
            .args(["rm", "-f", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        result
    }

    /// COPY and ADD (local files only): the sources' entries, renamed under the destination,
    /// written as one layer.
    fn copy_step(
        &self,
        state: &State,
        i: &Instruction,
        context: &Path,
        stages: &[Stage],
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<State> {
        if let Some((flag, _)) = i
            .flags
            .iter()
            .find(|(f, _)| !matches!(f.as_str(), "from" | "chown" | "chmod"))
        {
            bail!(
                "{} --{flag} is not supported: use --from, --chown or --chmod",
                i.keyword
            );
        }
        let mode = match i.flag("chmod") {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .with_context(|| format!("--chmod={m}: give an octal mode such as 755"))?,
            ),
        };
        let mut list = match dockerfile::exec_form(&i.args) {
            Some(l) => l,
            None => dockerfile::words(&i.args)?,
        };
        for w in list.iter_mut() {
            *w = expand(w, vars)?;
        }
        if list.len() < 2 {
            bail!("{} needs a source and a destination", i.keyword);
        }
        let dest_raw = list.pop().expect("two or more");
        let sources = list;
        if sources.iter().any(|s| s.contains("://")) {
            bail!("ADD of a URL is not supported: download the file into the context and COPY it");
        }
        // Where the files come from: a stage, an image, or the context.
        let from_lower: Vec<PathBuf> = match i.flag("from") {
            None => vec![context.to_path_buf()],
            Some(from) => {
                let from = expand(from, vars)?;
                let by_index = from.parse::<usize>().ok().and_then(|n| stages.get(n));
                let by_name = stages
                    .iter()
                    .rev()
                    .find(|s| s.name.as_deref() == Some(&from.to_ascii_lowercase()));
                let layers = match by_name.or(by_index) {
                    Some(s) => s.state.layers.clone(),
                    None => self.image(&from)?.0,
                };
                if layers.is_empty() {
                    bail!("--from={from}: that stage has no files");
                }
                layers
                    .iter()
                    .rev()
                    .map(|l| self.images.layer_dir(l))
                    .collect::<Result<_>>()?
            }
        };
        let below = self.lower(state)?;
        let owner = match i.flag("chown") {
            None => None,
            Some(spec) => Some(self.owner(&expand(spec, vars)?, &below)?),
        };
        let workdir = state.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/");
        let dest_path = Path::new(workdir).join(&dest_raw);
        let dest = clean_rel(&dest_path.to_string_lossy())?;
        let wildcard = sources.iter().any(|s| s.contains(['*', '?', '[']));
        let into_dir =
            dest_raw.ends_with('/') || sources.len() > 1 || wildcard || is_dir_in(&below, &dest);

        let mut out = Spool::new(self.images, "copy")?;
        let mut hasher = Sha256::new();
        {
            let w = HashWriter {
                inner: BufWriter::new(&mut out.file),
                hasher: &mut hasher,
            };
            let mut tar_out = tar::Builder::new(w);
            // The destination's missing parents (and itself, for a directory), as root's 0755.
            let mut made_dirs = vec![];
            let parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
            let upto = if into_dir {
                parts.len()
            } else {
                parts.len().saturating_sub(1)
            };
            for n in 1..=upto {
                let p = parts[..n].join("/");
                if !is_dir_in(&below, &p) {
                    made_dirs.push(p);
                }
            }
            for d in &made_dirs {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_mtime(0);
                h.set_size(0);
                if let Some((uid, gid)) = owner {
                    h.set_uid(uid.into());
                    h.set_gid(gid.into());
                }
                tar_out.append_data(&mut h, format!("{d}/"), std::io::empty())?;
            }
            for src in &sources {
                let names = self.expand_source(src, &from_lower)?;
                for (parent, base) in names {
                    let how = Copy {
                        dest: &dest,
                        into_dir,
                        owner,
                        mode,
                        // ADD unpacks a local archive (tar, possibly gzip or zstd).
                        extract: i.keyword == "ADD" && i.flag("from").is_none(),
                    };
                    copy_one(&from_lower, &parent, &base, &how, &mut tar_out)
                        .with_context(|| format!("{} {src}", i.keyword))?;
                }
            }
            tar_out.into_inner()?.inner.flush()?;
        }
        let digest = format!("sha256:{}", hex(&hasher.finalize()));
        let key = self.cache_key(state, &format!("{}\n{digest}", i.text()))?;
        if let Some(hit) = self.cached(&key)? {
            return Ok(hit);
        }
        self.add_step(state, i, key, &mut out)
    }

    /// A source as (parent directory, name) pairs: itself, or what its wildcard matches.
    fn expand_source(&self, src: &str, lower: &[PathBuf]) -> Result<Vec<(String, String)>> {
        let rel = clean_rel(src)?;
        let (parent, base) = match rel.rsplit_once('/') {
            Some((p, b)) => (p.to_string(), b.to_string()),
            None => (String::new(), rel.clone()),
        };
        if base.is_empty() {
            // `.` or `/`: the whole directory's contents.
            return Ok(vec![(parent, String::new())]);
        }
        if !base.contains(['*', '?', '[']) {
            return Ok(vec![(parent, base)]);
        }
        let mut found = vec![];
        for layer in lower {
            let dir = if parent.is_empty() {
                layer.clone()
            } else {
                layer.join(&parent)
            };
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if glob(&base, &n) && !found.contains(&n) {
                        found.push(n);
                    }
                }
            }
        }
        found.sort();
        if found.is_empty() {
            bail!("no source files were specified: nothing matches {src}");
        }
        Ok(found.into_iter().map(|n| (parent.clone(), n)).collect())
    }

    /// `--chown=USER[:GROUP]`: numbers, or names looked up in the image's /etc/passwd, group.
    fn owner(&self, spec: &str, below: &[PathBuf]) -> Result<(u32, u32)> {
        let image = ImageUse {
            reference: String::new(),
            id: String::new(),
            lower: below.to_vec(),
            stop_signal: None,
            exposed_ports: vec![],
        };
        let root = below
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("/nonexistent"));
        let (passwd, group) = if below.is_empty() {
            (None, None)
        } else {
            (
                crate::model::spec::read_in_root(&root, Some(&image), "etc/passwd")?,
                crate::model::spec::read_in_root(&root, Some(&image), "etc/group")?,
            )
        };
        let id = crate::model::user::resolve(Some(spec), passwd.as_deref(), group.as_deref())
            .with_context(|| format!("--chown={spec}"))?;
        Ok((id.uid, id.gid))
    }
}

/// The values an ARG line declares: `--build-arg`'s, else the default written, else none.
fn arg_values(
    i: &Instruction,
    build_args: &HashMap<String, String>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let mut out = vec![];
    for w in dockerfile::words(&i.args)? {
        let (k, default) = match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(expand(v, vars)?)),
            None => (w.clone(), vars(&w)),
        };
        if k.is_empty() {
            bail!("ARG {w:?}: give NAME[=DEFAULT]");
        }
        let v = build_args.get(&k).cloned().or(default).unwrap_or_default();
        out.push((k, v));
    }
    Ok(out)
}

fn history(config: &mut Value, i: &Instruction, empty: bool) {
    if !config["history"].is_array() {
        config["history"] = json!([]);
    }
    // docker's words: a config-only step is a `#(nop)` with no layer of its own.
    let entry = if empty {
        json!({"created_by": format!("/bin/sh -c #(nop) {}", i.text()), "empty_layer": true})
    } else {
        json!({"created_by": i.text(), "comment": "minibox build"})
    };
    config["history"]
        .as_array_mut()
        .expect("made an array above")
        .push(entry);
}

/// A path inside an image or the context, relative, without `.`, `..` or empty parts: `..` is
/// refused (a source never leaves the context).
fn clean_rel(path: &str) -> Result<String> {
    let mut out: Vec<&str> = vec![];
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    bail!("{path:?} leaves the build context: refused");
                }
            }
            p => out.push(p),
        }
    }
    Ok(out.join("/"))
}

fn join_rel(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (_, true) => dir.to_string(),
        (true, false) => name.to_string(),
        _ => format!("{dir}/{name}"),
    }
}

/// Whether `rel` is a directory in the merged view of `lower` (top first).
fn is_dir_in(lower: &[PathBuf], rel: &str) -> bool {
    if rel.is_empty() {
        return true;
    }
    for l in lower {
        match presence(l, rel) {
            Presence::Here => {
                return std::fs::symlink_metadata(l.join(rel)).is_ok_and(|m| m.is_dir());
            }
            Presence::Absent => continue,
            _ => return false,
        }
    }
    false
}

/// `*` and `?` (a `[...]` class matches itself).
fn glob(pattern: &str, name: &str) -> bool {
    fn m(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], n) || (!n.is_empty() && m(p, &n[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &n[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), name.as_bytes())
}

struct HashWriter<'a, W> {
    inner: W,
    hasher: &'a mut Sha256,
}

impl<W: Write> Write for HashWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One source (`base` in `parent` of the merged `lower`; `base` empty: all of `parent`),
/// written to `out` under `dest`, docker's way: a directory's contents go into `dest`; a file
/// becomes `dest`, or `dest/NAME` when `into_dir`. The entries are read as `export` reads
/// them (never through a link).
struct Copy<'a> {
    dest: &'a str,
    into_dir: bool,
    owner: Option<(u32, u32)>,
    /// `--chmod`: the mode of every file and directory copied.
    mode: Option<u32>,
    extract: bool,
}

fn copy_one<W: Write>(
    lower: &[PathBuf],
    parent: &str,
    base: &str,
    how: &Copy,
    out: &mut tar::Builder<W>,
) -> Result<()> {
    let Copy {
        dest,
        into_dir,
        owner,
        mode,
        extract,
    } = *how;
    let mut spool = scratch_file()?;
    let sub = (!parent.is_empty()).then_some(parent);
    let only = (!base.is_empty()).then_some(base.as_bytes());
    let found = merged::write_tar_of(lower, sub, only, BufWriter::new(&mut spool))?;
    if !found {
        bail!(
            "{}: no such directory",
            if parent.is_empty() { "." } else { parent }
        );
    }
    spool.seek(SeekFrom::Start(0))?;
    let mut archive = tar::Archive::new(&mut spool);
    let mut any = false;
    let mut target = dest.to_string();
    // A name in the sources' tar (relative to `parent`) → its name in the layer.
    let rename = |name: &str, target: &str| -> Option<String> {
        let name = name.trim_start_matches("./").trim_end_matches('/');
        if base.is_empty() {
            return (!name.is_empty() && name != ".").then(|| join_rel(target, name));
        }
        if name == base {
            return Some(target.to_string());
        }
        name.strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .map(|r| join_rel(target, r))
    };
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let is_base =
            !base.is_empty() && name.trim_start_matches("./").trim_end_matches('/') == base;
        if is_base && into_dir && entry.header().entry_type() != tar::EntryType::Directory {
            target = join_rel(dest, base);
        }
        let Some(new) = rename(&name, &target) else {
            continue;
        };
        any = true;
        if new.is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        if let Some((uid, gid)) = owner {
            header.set_uid(uid.into());
            header.set_gid(gid.into());
        }
        if let (Some(m), tar::EntryType::Regular | tar::EntryType::Directory) =
            (mode, header.entry_type())
        {
            header.set_mode(m);
        }
        match header.entry_type() {
            tar::EntryType::Link => {
                let target_name = entry
                    .link_name()?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(t) = rename(&target_name, &target) else {
                    continue;
                };
                out.append_link(&mut header, &new, &t)?;
            }
            tar::EntryType::Symlink => {
                let t = entry.link_name()?.unwrap_or_default().into_owned();
                out.append_link(&mut header, &new, t)?;
            }
            tar::EntryType::Directory => {
                out.append_data(&mut header, format!("{new}/"), std::io::empty())?;
            }
            _ => {
                let mut data = vec![];
                entry.read_to_end(&mut data)?;
                if extract && is_base && is_archive(&data) {
                    unpack_into(&data, dest, owner, out)?;
                    continue;
                }
                out.append_data(&mut header, &new, data.as_slice())?;
            }
        }
    }
    if !any {
        bail!(
            "{}: no such file or directory",
            join_rel(parent, base).trim_start_matches('/')
        );
    }
    Ok(())
}

/// A tar stream, plain or compressed (told by its content, as docker's ADD does).
fn is_archive(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
        || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || data.get(257..262) == Some(b"ustar")
}

/// ADD's archive: its entries under `dest` (their paths cleaned: never above `dest`).
fn unpack_into<W: Write>(
    data: &[u8],
    dest: &str,
    owner: Option<(u32, u32)>,
    out: &mut tar::Builder<W>,
) -> Result<()> {
    let mut archive = tar::Archive::new(crate::store::unpack::decompress(data)?);
    let place = |name: &str| -> Result<String> {
        Ok(join_rel(dest, &clean_rel(name.trim_start_matches('/'))?))
    };
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let new = place(&name).with_context(|| format!("the archive's entry {name:?}"))?;
        let mut header = entry.header().clone();
        if let Some((uid, gid)) = owner {
            header.set_uid(uid.into());
            header.set_gid(gid.into());
        }
        match header.entry_type() {
            tar::EntryType::Link => {
                let t = entry
                    .link_name()?
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                out.append_link(&mut header, &new, place(&t)?)?;
            }
            tar::EntryType::Symlink => {
                let t = entry.link_name()?.unwrap_or_default().into_owned();
                out.append_link(&mut header, &new, t)?;
            }
            tar::EntryType::Directory => {
                out.append_data(&mut header, format!("{new}/"), std::io::empty())?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            _ => {
                let mut bytes = vec![];
                entry.read_to_end(&mut bytes)?;
                out.append_data(&mut header, &new, bytes.as_slice())?;
            }
        }
    }
    Ok(())
}

/// An unnamed scratch file (O_TMPFILE) in /tmp: gone when closed, whatever happens.
fn scratch_file() -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open("/tmp")
        .map_err(|e| anyhow!("making a scratch file in /tmp: {e}"))
}
