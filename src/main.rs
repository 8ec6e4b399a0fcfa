//! minibox: a small container runtime.
//!
//! The data flows one way: the command line (`cli`) becomes a `ContainerSpec` (`spec`), the
//! launcher (`launcher`, the parent side) clones the container's first process, whose `init`
//! sets the container up step by step and becomes CMD. Kernel objects have their own modules.

mod caps;
mod cgroup;
mod channel;
mod cli;
mod init;
mod launcher;
mod namespaces;
mod net;
mod rootfs;
mod signals;
mod spec;
mod status;
mod user;

use anyhow::{bail, Result};
use clap::Parser;

use cli::{Cli, Command};

fn main() {
    // A user never sees a backtrace: a bug still ends with one line and docker's status 125.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("minibox: internal error (a bug; please report it): {info}");
        std::process::exit(status::RUNTIME_FAILED);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(usage_error(e)),
    };
    let code = match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("minibox: {err:#}");
            status::code_of(&err)
        }
    };
    std::process::exit(code);
}

fn dispatch(command: Command) -> Result<i32> {
    match command {
        Command::Run(args) => {
            require_root()?;
            let spec = spec::ContainerSpec::from_run_args(&args)?;
            launcher::run(&spec)
        }
    }
}

/// Help and version go to stdout with status 0; a usage error is one line and status 125, as
/// docker's flag errors are.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            0
        }
        _ => {
            let text = e.render().to_string();
            let what: Vec<&str> = text
                .split("\n\n")
                .next()
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim().trim_start_matches("error: "))
                .collect();
            eprintln!("minibox: {}; see 'minibox --help'", what.join(" "));
            status::RUNTIME_FAILED
        }
    }
}

fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("minibox must run as root to create namespaces and mounts: try sudo minibox ...");
    }
    Ok(())
}
