//! `minibox spec`: the OCI config.json a `minibox run` with the same flags would use (on
//! stdout), or, in runc's form (no arguments, `--bundle DIR`, `--rootless`), a default one for
//! a bundle written into its `config.json`, as `runc spec` and `crun spec` do.

use std::ffi::OsString;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::cli::run::spec_from_run_args;
use crate::cli::{RunArgs, SpecCli};
use crate::model::oci::{self, rootless};

/// `minibox spec [--bundle DIR] [--rootless]` writes DIR/config.json (runc's and crun's
/// form, which tutorials and scripts rely on); `minibox spec [RUN FLAGS] ROOTFS CMD...` prints
/// the config.json of that `minibox run` on stdout. Returns the exit status.
pub fn print(argv: &[OsString], rootless: bool, data_root: &std::path::Path) -> Result<i32> {
    if let Some(mut runc_form) = runc_form(argv)? {
        runc_form.rootless |= rootless;
        return write_default(&runc_form);
    }
    if rootless {
        bail!("minibox spec: --rootless goes with runc's form only (no ROOTFS CMD)");
    }
    let words = std::iter::once(OsString::from("minibox spec")).chain(argv.iter().cloned());
    let args = match SpecCli::try_parse_from(words) {
        Ok(cli) => cli.run,
        Err(e) => match crate::cli::usage_message(e) {
            None => return Ok(0),
            Some(message) => bail!("{message}; see 'minibox spec --help'"),
        },
    };
    refuse_run_only_flags(&args)?;
    let spec = oci::write::spec_from_container(&spec_from_run_args(&args, data_root)?);
    out!("{}", oci::write::to_json(&spec)?);
    Ok(0)
}

/// runc's `spec` flags.
#[derive(Debug, Default, PartialEq, Eq)]
struct RuncForm {
    bundle: Option<PathBuf>,
    rootless: bool,
}

/// `Some` when `argv` is runc's form: nothing but `--bundle DIR` (`-b`, `--bundle=DIR`) and
/// `--rootless`.
fn runc_form(argv: &[OsString]) -> Result<Option<RuncForm>> {
    let mut form = RuncForm::default();
    let mut words = argv.iter();
    while let Some(word) = words.next() {
        let text = word.to_string_lossy();
        match text.as_ref() {
            "--rootless" => form.rootless = true,
            "-b" | "--bundle" => match words.next() {
                Some(dir) => form.bundle = Some(PathBuf::from(dir)),
                None => bail!("minibox spec: {text} needs a directory"),
            },
            _ => match text.strip_prefix("--bundle=") {
                Some(dir) => form.bundle = Some(PathBuf::from(dir)),
                None => return Ok(None),
            },
        }
    }
    Ok(Some(form))
}

/// Writes the default config.json into the bundle; one already there is kept (as runc).
fn write_default(form: &RuncForm) -> Result<i32> {
    let dir = form.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        bail!(
            "minibox spec: the bundle directory {} does not exist: make it first",
            dir.display()
        );
    }
    let path = dir.join(crate::store::state::CONFIG_FILE);
    let mut config = serde_json::to_value(oci::write::default_bundle_spec())?;
    if form.rootless {
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        rootless::make_rootless(&mut config, uid.as_raw(), gid.as_raw());
    }
    let spec: oci_spec::runtime::Spec = serde_json::from_value(config)?;
    let text = oci::write::to_json(&spec)? + "\n";
    // create_new: an existing config.json (or a symlink planted there) is never overwritten.
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "minibox spec: {} exists already: remove it first (it is never overwritten)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(0)
}

/// These say how to run a container, not what it is: config.json has no place for them.
fn refuse_run_only_flags(args: &RunArgs) -> Result<()> {
    for (given, flag) in [
        (args.bundle.is_some(), "--bundle"),
        (args.detach, "--detach"),
        (args.rm, "--rm"),
        (args.explain.is_some(), "--explain"),
        (args.name.is_some(), "--name"),
        // (its ids are taken when the container is made; --uidmap writes linux.uidMappings)
        (
            args.userns
                .as_deref()
                .is_some_and(|m| m.starts_with("auto")),
            "--userns auto",
        ),
    ] {
        if given {
            bail!(
                "minibox spec: {flag} says how to run a container, not what it is, so config.json \
                 has no place for it: give it to minibox run"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    #[test]
    fn runcs_form_is_told_from_run_flags() {
        assert_eq!(runc_form(&[]).unwrap(), Some(RuncForm::default()));
        assert_eq!(
            runc_form(&words(&["--rootless", "-b", "d"])).unwrap(),
            Some(RuncForm {
                bundle: Some("d".into()),
                rootless: true
            })
        );
        assert_eq!(
            runc_form(&words(&["--bundle=x"])).unwrap().unwrap().bundle,
            Some(PathBuf::from("x"))
        );
        assert_eq!(
            runc_form(&words(&["-u", "0", "./rootfs", "/main"])).unwrap(),
            None
        );
        assert!(runc_form(&words(&["--bundle"])).is_err());
    }
}
