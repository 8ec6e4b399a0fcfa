//! minibox: a small container runtime.
//!
//! The data flows one way: a front end (`cli`) builds the container model (`model`), the
//! runtime (`runtime`: `spawn` on the parent side, `init` on the child side) makes the
//! container from it, keeping its records in `store` and using one module per kernel object
//! (`kernel`). Each layer imports only from those below it; `text` serves them all.

#[macro_use]
mod text;

mod cli;
mod kernel;
mod model;
mod runtime;
mod store;

use anyhow::{bail, Result};
use clap::Parser;

use cli::{images, inspect, lifecycle, Cli, Command};
use runtime::{launcher, status};
use store::state;

fn main() {
    // A user never sees a backtrace: a bug still ends with one line and docker's status 125.
    std::panic::set_hook(Box::new(|info| {
        // process::exit runs no destructor: the caller's terminal (-it) is put back here.
        runtime::terminal::restore_after_panic();
        say!("minibox: internal error (a bug; please report it): {info}");
        std::process::exit(status::RUNTIME_FAILED);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(usage_error(e)),
    };
    // docker's convention: `run` fails with 125, the other commands with 1.
    let failure = match cli.command {
        Command::Run(_) => status::RUNTIME_FAILED,
        _ => 1,
    };
    let log = cli::oci_log::ErrorLog::new(cli.log.clone(), cli.log_format == "json");
    if cli.debug {
        log.debug(&format!(
            "minibox {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ));
    }
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            say!("minibox: {err:#}");
            log.error(&format!("{err:#}"));
            err.downcast_ref::<status::StatusError>()
                .map_or(failure, |e| e.code)
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> Result<i32> {
    // `spec` only describes a container: it needs no privileges and no state.
    if let Command::Spec(args) = &cli.command {
        let rootless = cli.rootless.as_deref() == Some("true");
        return cli::spec::print(&args.args, rootless, &cli.data_root);
    }
    if let Command::Features = &cli.command {
        return cli::oci::features();
    }
    require_root()?;
    if cli.rootless.as_deref() == Some("true") {
        bail!("--rootless=true is not supported: minibox runs containers as root only");
    }
    // Whatever runs minibox's own code inside a container's namespaces (exec joining one, the
    // init of a created container waiting for `start`) is a sealed copy of minibox, never the
    // host's file, which /proc/PID/exe would otherwise hand to the container (CVE-2019-5736).
    let sealed = match &cli.command {
        Command::Exec(_) | Command::Create(_) => true,
        Command::Run(args) => args.detach && matches!(cli::run::bundle_of(args), Ok(Some(_))),
        _ => false,
    };
    if sealed {
        runtime::sealed_self::become_sealed_copy()?;
    }
    let state_root = state::check_root(&cli.root)?;
    let data_root = cli.data_root.clone();
    let command = match cli.command {
        Command::Run(args) => {
            return run(
                &args,
                &cli.root,
                &state_root,
                &cli.data_root,
                cli.systemd_cgroup,
            )
        }
        Command::Create(args) => {
            return cli::oci::create(&args, cli.systemd_cgroup, &cli.root, &state_root)
        }
        Command::Load { input, quiet } => return images::load(&data_root, input.as_deref(), quiet),
        Command::Pull {
            insecure,
            allow_private_redirects,
            quiet,
            reference,
        } => {
            return images::pull(
                &data_root,
                &reference,
                insecure,
                allow_private_redirects,
                quiet,
            )
        }
        Command::Import {
            change,
            quiet,
            file,
            reference,
        } => return images::import(&data_root, &file, reference.as_deref(), &change, quiet),
        Command::Save {
            output,
            quiet,
            images: keys,
        } => return images::save(&data_root, &keys, output.as_deref(), quiet),
        Command::Images { quiet, all } => return images::list(&data_root, quiet, all),
        Command::Tag { source, target } => return images::tag(&data_root, &source, &target),
        Command::Image {
            command: cli::ImageCommand::Inspect { image },
        } => return images::inspect(&data_root, &image),
        // Read-only: no sweep of what killed supervisors left (every other command's first
        // step), which would change the containers it shows.
        Command::Ui { listen } => {
            return cli::show::ui::serve(&state::Store::open(&cli.root)?, &listen)
        }
        other => other,
    };
    let store = lifecycle::open_store(&cli.root)?;
    match command {
        Command::Spec(_)
        | Command::Run(_)
        | Command::Load { .. }
        | Command::Pull { .. }
        | Command::Import { .. }
        | Command::Images { .. }
        | Command::Save { .. }
        | Command::Tag { .. }
        | Command::Image { .. }
        | Command::Create(_)
        | Command::Features => unreachable!("handled above"),
        Command::Rmi {
            force,
            images: keys,
        } => images::rmi(&data_root, &store, force, &keys),
        Command::Cp { archive, src, dest } => cli::cp::cp(&store, archive, &src, &dest),
        Command::Export {
            output,
            quiet,
            container,
        } => images::export(&store, &container, output.as_deref(), quiet),
        Command::Build(args) => cli::build::build(&data_root, &cli.root, &store, &args),
        Command::Commit {
            change,
            container,
            reference,
        } => images::commit(
            &data_root,
            &store,
            &container,
            reference.as_deref(),
            &change,
        ),
        Command::Volume { command } => {
            use cli::VolumeCommand as V;
            let (action, names) = match command {
                V::Ls => ("ls", vec![]),
                V::Create { names } => ("create", names),
                V::Rm { names } => ("rm", names),
                V::Inspect { names } => ("inspect", names),
            };
            images::volume(&data_root, &store, action, &names)
        }
        Command::Start {
            attach,
            interactive,
            containers,
        } => cli::control::start(&store, &data_root, attach, interactive, &containers),
        Command::Restart { time, containers } => {
            cli::control::restart(&store, &data_root, time, &containers)
        }
        Command::Wait { containers } => cli::control::wait(&store, &containers),
        Command::Rename { container, name } => cli::control::rename(&store, &container, &name),
        Command::State { id } => cli::oci::state(&store, &id),
        Command::Delete { force, id } => cli::oci::delete(&store, &id, force),
        Command::Pause { containers } => cli::control::pause(&store, &containers, true),
        Command::Unpause { containers } => cli::control::pause(&store, &containers, false),
        Command::Update { resources, id } => cli::oci::update(&store, &id, &resources),
        // runc's `ps -f json ID`: its -f is the format, docker's the filter.
        Command::Ps {
            container: Some(id),
            format,
            filter,
            ..
        } => cli::oci::pids(
            &store,
            &id,
            format == "json" || filter.iter().any(|f| f == "json"),
        ),
        Command::Ps {
            all,
            quiet,
            format,
            filter,
            ..
        } => lifecycle::ps(
            &store,
            all,
            quiet,
            format == "json",
            &cli::ps_select::Selection::parse(&filter, &format)?,
        ),
        Command::Stop { time, containers } => lifecycle::stop(&store, time, &containers),
        Command::Kill {
            signal,
            all,
            containers,
        } => cli::oci::kill(&store, signal.as_deref(), all, &containers),
        Command::Rm { force, containers } => lifecycle::rm(&store, force, &containers),
        Command::Logs(args) => cli::logs::logs(&store, &args),
        Command::Attach {
            detach_keys,
            container,
        } => cli::attach::attach(&store, &detach_keys, &container),
        Command::Port { container } => lifecycle::port(&store, &container),
        Command::Top { container } => cli::top::top(&store, &container),
        Command::Stats(args) => cli::stats::stats(&store, &args),
        Command::System(command) => cli::system::dispatch(&store, &data_root, command),
        Command::Show { output, container } => {
            cli::show::show(&store, &container, output.as_deref())
        }
        Command::Ui { .. } => unreachable!("handled above"),
        Command::Network(command) => cli::network::dispatch(&store, command),
        Command::Exec(args) => cli::exec::exec(&store, &args),
        Command::Inspect { format, containers } => inspect::inspect(&store, &containers, &format),
    }
}

/// `minibox run`: the container is decided (and refused) before the state root or the data
/// root is made, so bad input leaves nothing behind.
fn run(
    args: &cli::RunArgs,
    root: &std::path::Path,
    state_root: &std::path::Path,
    data_root: &std::path::Path,
    systemd_cgroup: bool,
) -> Result<i32> {
    let bundle = cli::run::bundle_of(args)?;
    let restart = cli::control::restart_policy(args, bundle.is_some())?;
    let picture = args
        .explain
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(std::path::Path::new);
    if let (Some(_), Some(_), true) = (picture, &bundle, args.detach) {
        bail!(
            "--explain=FILE draws what minibox supervises: not with -d --bundle (create + start)"
        );
    }
    if let (Some(bundle), true) = (&bundle, args.detach) {
        return cli::oci::run_detached(args, bundle, systemd_cgroup, root, state_root);
    }
    check_supervised_run_flags(args)?;
    if let Some(file) = picture {
        cli::show::explain_format(file)?;
    }
    let spec = cli::run::container_from_run_args(args, data_root)?;
    model::spec::check_rootfs_apart_from_state(&spec.rootfs, state_root)?;
    if spec.image.is_none() {
        store::layers::check_apart(data_root, &spec.rootfs)?;
    }
    if let Some(file) = picture {
        cli::show::draw_when_started(file, root, &spec.id)?;
    }
    let store = lifecycle::open_store(root)?;
    let layers = store::layers::Layers::open(data_root)?;
    let opts = launcher::RunOptions {
        detach: args.detach,
        // runc's `run BUNDLE` forgets the container when it ends, unless --keep.
        remove: args.rm || (bundle.is_some() && !args.keep),
        interactive: args.interactive,
        restart,
    };
    launcher::run(&spec, &store, &layers, opts)
}

/// The flags only `create` (and `run -d` of a bundle) can honour.
fn check_supervised_run_flags(args: &cli::RunArgs) -> Result<()> {
    let o = &args.oci;
    for (given, flag) in [
        (o.pid_file.is_some(), "--pid-file"),
        (o.console_socket.is_some(), "--console-socket"),
        (o.no_pivot, "--no-pivot"),
        (o.no_new_keyring, "--no-new-keyring"),
        (o.preserve_fds > 0, "--preserve-fds"),
    ] {
        if given {
            bail!("{flag} is for a bundle run in the background: use run -d --bundle DIR ID, or create");
        }
    }
    Ok(())
}

/// Help and version go to stdout with status 0; a usage error is one line and status 125, as
/// docker's flag errors are.
fn usage_error(e: clap::Error) -> i32 {
    match cli::usage_message(e) {
        None => 0,
        Some(message) => {
            say!("minibox: {message}; see 'minibox --help'");
            cli::oci_log::ErrorLog::from_raw_args().error(&message);
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
