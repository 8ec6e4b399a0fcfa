//! `minibox spec`: the OCI config.json a `minibox run` with the same flags would use, or, with
//! no arguments, a default one for a bundle (as `runc spec` makes).

use std::ffi::OsString;

use anyhow::{bail, Result};
use clap::Parser;

use crate::cli::run::spec_from_run_args;
use crate::cli::{RunArgs, SpecCli};
use crate::model::oci;

/// Prints the config.json on stdout; returns the exit status.
pub fn print(argv: &[OsString], data_root: &std::path::Path) -> Result<i32> {
    let spec = if argv.is_empty() {
        oci::write::default_bundle_spec()
    } else {
        let words = std::iter::once(OsString::from("minibox spec")).chain(argv.iter().cloned());
        let args = match SpecCli::try_parse_from(words) {
            Ok(cli) => cli.run,
            Err(e) => match crate::cli::usage_message(e) {
                None => return Ok(0),
                Some(message) => bail!("{message}; see 'minibox spec --help'"),
            },
        };
        refuse_run_only_flags(&args)?;
        oci::write::spec_from_container(&spec_from_run_args(&args, data_root)?)
    };
    out!("{}", oci::write::to_json(&spec)?);
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
