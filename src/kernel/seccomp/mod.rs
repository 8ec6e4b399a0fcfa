//! Seccomp: the system calls a container may make at all.
//!
//! Namespaces and capabilities decide what a system call may touch; seccomp decides which calls
//! reach the kernel in the first place. Docker's default profile (see `docker`) turns away the
//! calls behind most container escapes: nested user namespaces (`unshare`, `clone` with
//! namespace flags), the kernel keyring, `bpf`, `perf_event_open`, `io_uring`, `userfaultfd`...
//! while every ordinary program runs unchanged.
//!
//! A profile is compiled to a BPF program by libseccomp in the *parent*, before `clone`: the
//! profile is untrusted input, and its parsing and compiling never run in the container. The
//! container's init only hands the finished bytes to the kernel, as its very last step before
//! `execve`, so that the filter need only allow what CMD itself does.
//!
//! libseccomp (the C library runc, crun and youki use, through the `libseccomp` crate) rather
//! than a pure-Rust compiler: it resolves syscall names for every architecture, supports every
//! OCI action per rule (ERRNO with its own errno, ENOSYS for clone3, KILL, TRAP, TRACE, LOG)
//! and every comparison, and lays rules out as a binary tree.

pub mod docker;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};

use crate::kernel::caps::CapsHashSet;

/// What `--explain`, `inspect` and messages call Docker's default profile.
pub const DOCKER_DEFAULT: &str = "docker default";

/// What they call no filter at all.
pub const UNCONFINED: &str = "unconfined";

/// The most instructions the kernel takes in one filter (BPF_MAXINSNS).
const MAX_INSTRUCTIONS: usize = 4096;

/// A profile, resolved for one container: what the compiler gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompProfile {
    /// For people: `docker default`, or the profile file's path.
    pub name: String,
    pub filter: LinuxSeccomp,
}

impl SeccompProfile {
    /// Docker's default profile, for a container keeping `caps`.
    pub fn docker_default(caps: &CapsHashSet) -> Result<SeccompProfile> {
        let filter = docker::resolve(docker::DEFAULT_PROFILE, &host(caps)?)
            .context("Docker's default seccomp profile")?;
        Ok(SeccompProfile {
            name: DOCKER_DEFAULT.into(),
            filter,
        })
    }

    /// A profile file in docker's format (or a plain OCI `linux.seccomp` section).
    pub fn from_file(path: &Path, caps: &CapsHashSet) -> Result<SeccompProfile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(SeccompProfile {
            name: path.display().to_string(),
            filter: docker::resolve(&text, &host(caps)?)?,
        })
    }
}

fn host(caps: &CapsHashSet) -> Result<docker::Host> {
    docker::Host::this(caps.iter().map(|c| c.to_string()).collect())
}

/// A compiled filter: what the container's init hands to the kernel.
#[derive(Debug, Clone)]
pub struct Program {
    instructions: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*`.
    flags: libc::c_ulong,
    /// For `--explain`: the profile, the default action, how many syscalls it allows.
    pub summary: String,
}

impl Program {
    fn new(
        profile: &SeccompProfile,
        instructions: Vec<libc::sock_filter>,
        tally: &Tally,
    ) -> Result<Program> {
        if instructions.is_empty() || instructions.len() > MAX_INSTRUCTIONS {
            bail!(
                "the profile compiles to {} BPF instructions; the kernel takes 1 to {MAX_INSTRUCTIONS}",
                instructions.len()
            );
        }
        Ok(Program {
            summary: tally.summary(profile, instructions.len()),
            flags: load_flags(&profile.filter),
            instructions,
        })
    }
}

/// The libseccomp action for an OCI one; `errno_ret` defaults to EPERM, as the spec says.
fn scmp_action(
    field: &str,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
) -> Result<ScmpAction> {
    let errno = errno_ret.unwrap_or(libc::EPERM as u32);
    if errno > docker::MAX_ERRNO {
        bail!(
            "{field}: errno {errno} is out of range (at most {})",
            docker::MAX_ERRNO
        );
    }
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => bail!(
            "{field}: SCMP_ACT_NOTIFY needs a seccomp agent listening (listenerPath), \
             which minibox does not support; use another action"
        ),
    })
}

/// The conditions of a rule. Several on the same argument cannot be ANDed (libseccomp
/// refuses): then each becomes a rule of its own, ORed, as runc does.
fn conditions(field: &str, rule: &LinuxSyscall) -> Result<Vec<Vec<ScmpArgCompare>>> {
    let args = rule.args().as_deref().unwrap_or_default();
    let mut all = Vec::new();
    for (j, a) in args.iter().enumerate() {
        if a.index() > 5 {
            bail!(
                "{field}.args[{j}].index: {} is not an argument (0 to 5)",
                a.index()
            );
        }
        let op = match a.op() {
            LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
            LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
            LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
            LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
            LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
            LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
            // OCI's value is the mask, valueTwo what the masked argument must equal.
            LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(a.value()),
        };
        let datum = match a.op() {
            LinuxSeccompOperator::ScmpCmpMaskedEq => a.value_two().unwrap_or(0),
            _ => a.value(),
        };
        all.push((a.index(), ScmpArgCompare::new(a.index() as u32, op, datum)));
    }
    let repeated = all
        .iter()
        .enumerate()
        .any(|(i, (index, _))| all[..i].iter().any(|(other, _)| other == index));
    Ok(if repeated {
        all.into_iter().map(|(_, c)| vec![c]).collect()
    } else {
        vec![all.into_iter().map(|(_, c)| c).collect()]
    })
}

/// The filter a container's process gets, compiled in the parent (never in the container:
/// the child only loads it); `None` when it runs unconfined.
pub fn compile_for(profile: Option<&SeccompProfile>, dir: &Path) -> Result<Option<Program>> {
    profile
        .map(|p| {
            compile(p, dir).with_context(|| format!("compiling the seccomp profile {}", p.name))
        })
        .transpose()
}

/// Compiles a profile to BPF, with libseccomp, in this (the parent) process; any front end
/// (docker's flags, an OCI `linux.seccomp` section) comes here.
///
/// Each program is kept in `dir` (the state root): libseccomp takes 10-15 ms
/// for Docker's profile (three architectures), more than the rest of a container's start-up;
/// reading a program back takes a few microseconds. A kept program is used only for exactly the
/// same resolved profile (the whole of it, not a hash, is compared), the same libseccomp and
/// the same cache format; anything else is compiled afresh.
pub fn compile(profile: &SeccompProfile, dir: &Path) -> Result<Program> {
    let key = cache_key(&profile.filter)?;
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&key, &mut hasher);
    let path = dir.join(format!(
        ".seccomp-{:016x}.json",
        std::hash::Hasher::finish(&hasher)
    ));
    if let Some((instructions, tally)) = read_cached(&path, &key) {
        return Program::new(profile, instructions, &tally);
    }
    let (instructions, tally) = compile_bpf(&profile.filter)?;
    let program = Program::new(profile, instructions, &tally)?;
    // Best effort: a program not kept is compiled again next time.
    let _ = write_cached(&path, &key, &program.instructions, &tally);
    Ok(program)
}

/// Bumped whenever `compile_bpf` changes what it makes of a profile.
const CACHE_FORMAT: u32 = 1;

fn cache_key(filter: &LinuxSeccomp) -> Result<String> {
    let v = libseccomp::ScmpVersion::current().context("libseccomp version")?;
    let json = serde_json::to_string(filter).context("encoding the seccomp profile")?;
    Ok(format!(
        "minibox seccomp cache {CACHE_FORMAT}; libseccomp {}.{}.{}; {json}",
        v.major, v.minor, v.micro
    ))
}

/// A kept program, on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    key: String,
    tally: Tally,
    /// The instructions, 8 bytes each, in hex.
    program: String,
}

fn read_cached(path: &Path, key: &str) -> Option<(Vec<libc::sock_filter>, Tally)> {
    let text = std::fs::read_to_string(path).ok()?;
    let cached: Cached = serde_json::from_str(&text).ok()?;
    if cached.key != key || !cached.program.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..cached.program.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cached.program.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((instructions_from(&bytes).ok()?, cached.tally))
}

fn write_cached(
    path: &Path,
    key: &str,
    instructions: &[libc::sock_filter],
    tally: &Tally,
) -> Result<()> {
    use std::fmt::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut program = String::with_capacity(instructions.len() * 16);
    for i in instructions {
        let [c0, c1] = i.code.to_ne_bytes();
        let [k0, k1, k2, k3] = i.k.to_ne_bytes();
        for byte in [c0, c1, i.jt, i.jf, k0, k1, k2, k3] {
            let _ = write!(program, "{byte:02x}");
        }
    }
    let json = serde_json::to_vec(&Cached {
        key: key.into(),
        tally: tally.clone(),
        program,
    })?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written =
        std::io::Write::write_all(&mut file, &json).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

/// Which flags `seccomp()` gets for this profile.
fn load_flags(filter: &LinuxSeccomp) -> libc::c_ulong {
    let mut flags = 0;
    for flag in filter.flags().as_deref().unwrap_or_default() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // One thread: nothing to synchronise, and harmless to ask.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            // Only means something with a notification listener, which minibox never makes.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    flags
}

/// The BPF program for a profile, and what it allows.
///
/// A syscall name this libseccomp does not know is skipped, as runc and docker do: profiles
/// name calls of newer kernels, which then meet the default action.
fn compile_bpf(p: &LinuxSeccomp) -> Result<(Vec<libc::sock_filter>, Tally)> {
    let default = scmp_action("defaultAction", p.default_action(), p.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).context("libseccomp: creating a filter")?;
    for (i, arch) in p
        .architectures()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let a = ScmpArch::from_str(&arch.to_string())
            .map_err(|_| anyhow::anyhow!("architectures[{i}]: {arch} is unknown to libseccomp"))?;
        if !ctx.is_arch_present(a).unwrap_or(false) {
            ctx.add_arch(a)
                .with_context(|| format!("architectures[{i}]: libseccomp cannot add {arch}"))?;
        }
    }
    // A binary tree of syscall numbers: a lookup costs log(n) comparisons, not n. It also halves
    // the kernel's work when the filter is installed (measured: ~700 µs linear, ~300 µs so).
    ctx.set_ctl_optimize(2).context("libseccomp: optimize")?;
    let mut names = Names::default();
    for (i, rule) in p
        .syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("syscalls[{i}]");
        let action = scmp_action(&format!("{field}.action"), rule.action(), rule.errno_ret())?;
        let conditions = conditions(&field, rule)?;
        // The default already does it (and libseccomp refuses such a rule).
        if action == default {
            continue;
        }
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                names.unknown += 1;
                continue;
            };
            for conds in &conditions {
                ctx.add_rule_conditional(action, syscall, conds)
                    .with_context(|| format!("{field}: libseccomp refuses the rule for {name}"))?;
            }
            names.note(name, action, !conditions[0].is_empty());
        }
    }
    Ok((export(&ctx)?, names.tally()))
}

/// libseccomp writes the program to a file descriptor: an in-memory file, read back.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let fd =
        nix::sys::memfd::memfd_create(c"minibox-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .context("memfd_create for the seccomp program")?;
    ctx.export_bpf(&fd)
        .context("libseccomp: exporting the BPF program")?;
    let mut file = File::from(fd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("reading the seccomp program back")?;
    instructions_from(&bytes)
}

/// BPF instructions from their bytes (native endianness, as the kernel reads them).
fn instructions_from(bytes: &[u8]) -> Result<Vec<libc::sock_filter>> {
    let size = std::mem::size_of::<libc::sock_filter>();
    if !bytes.len().is_multiple_of(size) {
        bail!("{} bytes are not whole BPF instructions", bytes.len());
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// The syscalls a profile names, by what it does with them.
#[derive(Default)]
struct Names {
    allowed: BTreeSet<String>,
    conditional: BTreeSet<String>,
    other: BTreeSet<String>,
    unknown: usize,
}

impl Names {
    fn note(&mut self, name: &str, action: ScmpAction, conditional: bool) {
        let set = match (action, conditional) {
            (ScmpAction::Allow | ScmpAction::Log, false) => &mut self.allowed,
            (ScmpAction::Allow | ScmpAction::Log, true) => &mut self.conditional,
            _ => &mut self.other,
        };
        set.insert(name.to_string());
    }

    fn tally(&self) -> Tally {
        Tally {
            allowed: self.allowed.len(),
            conditional: self.conditional.difference(&self.allowed).count(),
            other: self.other.len(),
            unknown: self.unknown,
        }
    }
}

/// How many syscalls a profile allows, and how.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Tally {
    allowed: usize,
    conditional: usize,
    other: usize,
    unknown: usize,
}

impl Tally {
    fn summary(&self, profile: &SeccompProfile, instructions: usize) -> String {
        let default = match profile.filter.default_action() {
            LinuxSeccompAction::ScmpActErrno => {
                let errno = profile
                    .filter
                    .default_errno_ret()
                    .unwrap_or(libc::EPERM as u32);
                format!("errno {errno} ({:?})", Errno::from_raw(errno as i32))
            }
            a => a.to_string(),
        };
        let mut text = format!(
            "profile {}: {} syscalls allowed, {} allowed with argument checks, \
             {} with other actions; default {default}\n{instructions} BPF instructions",
            profile.name, self.allowed, self.conditional, self.other
        );
        if self.unknown > 0 {
            text.push_str(&format!(
                "; {} names unknown to libseccomp skipped",
                self.unknown
            ));
        }
        text
    }
}

/// Hands the compiled filter to the kernel for this process and all it execs. Needs
/// no_new_privs (or CAP_SYS_ADMIN); allocates nothing.
pub fn install(program: &Program) -> Result<()> {
    let fprog = libc::sock_fprog {
        len: program.instructions.len() as libc::c_ushort,
        filter: program.instructions.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program.instructions`, alive and unchanged during the call
    // (its length checked against BPF_MAXINSNS when compiled); the kernel copies the program
    // and keeps no pointer into our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            program.flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    Errno::result(rc).context("seccomp(SECCOMP_SET_MODE_FILTER)")?;
    Ok(())
}

/// The kernel's view, from a `/proc/PID/status` text: `Seccomp: 2 (filter), 1 filter`.
pub fn kernel_view(status: &str) -> String {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    let mode = match field("Seccomp") {
        Some("0") => "0 (none)",
        Some("1") => "1 (strict)",
        Some("2") => "2 (filter)",
        _ => "?",
    };
    match field("Seccomp_filters") {
        Some(n) => format!("Seccomp: {mode}, Seccomp_filters: {n}"),
        None => format!("Seccomp: {mode}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> SeccompProfile {
        let host = docker::Host {
            arch: "amd64",
            seccomp_arch: oci_spec::runtime::Arch::ScmpArchX86_64,
            kernel: (6, 1),
            caps: vec![],
        };
        SeccompProfile {
            name: "test".into(),
            filter: docker::resolve(json, &host).unwrap(),
        }
    }

    fn compiled(p: &SeccompProfile) -> Result<Program> {
        compile(p, tempfile::tempdir().unwrap().path())
    }

    fn raw(program: &Program) -> Vec<(u16, u8, u8, u32)> {
        program
            .instructions
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    }

    #[test]
    fn the_default_profile_compiles_within_the_kernels_limit() {
        let p = SeccompProfile::docker_default(&CapsHashSet::new()).unwrap();
        let program = compiled(&p).unwrap();
        let n = program.instructions.len();
        assert!(n > 100 && n <= MAX_INSTRUCTIONS, "{n}");
        assert!(
            program.summary.starts_with("profile docker default: "),
            "{}",
            program.summary
        );
        assert!(
            program.summary.contains("default errno 1 (EPERM)"),
            "{}",
            program.summary
        );
        assert_eq!(program.flags, 0);
    }

    #[test]
    fn a_kept_program_is_the_same_program_and_only_for_the_same_profile() {
        let dir = tempfile::tempdir().unwrap();
        let p = SeccompProfile::docker_default(&CapsHashSet::new()).unwrap();
        let fresh = compile(&p, dir.path()).unwrap();
        let kept: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(kept.len(), 1);
        let again = compile(&p, dir.path()).unwrap();
        assert_eq!(raw(&fresh), raw(&again));
        assert_eq!(fresh.summary, again.summary);
        // A different profile is not served the kept program.
        let mut other = p.clone();
        other.filter.set_default_errno_ret(Some(13));
        let third = compile(&other, dir.path()).unwrap();
        assert_ne!(raw(&fresh), raw(&third));
        // A damaged file is ignored, and the program compiled afresh.
        std::fs::write(kept[0].path(), "{garbage").unwrap();
        assert_eq!(raw(&compile(&p, dir.path()).unwrap()), raw(&fresh));
    }

    #[test]
    fn notify_is_refused_by_field() {
        let mut p = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        p.filter
            .set_default_action(LinuxSeccompAction::ScmpActNotify);
        let err = format!("{:#}", compiled(&p).unwrap_err());
        assert!(err.starts_with("defaultAction: SCMP_ACT_NOTIFY"), "{err}");
    }

    #[test]
    fn flags_reach_the_loader() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_TSYNC"],"syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert_eq!(
            compiled(&p).unwrap().flags,
            libc::SECCOMP_FILTER_FLAG_LOG
                | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
                | libc::SECCOMP_FILTER_FLAG_TSYNC
        );
    }

    #[test]
    fn unknown_names_are_skipped_and_counted() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["getpid","no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let program = compiled(&p).unwrap();
        assert!(
            program.summary.contains("1 syscalls allowed"),
            "{}",
            program.summary
        );
        assert!(
            program.summary.contains("1 names unknown"),
            "{}",
            program.summary
        );
    }

    #[test]
    fn repeated_arguments_become_separate_rules() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[
                {"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let rule = &p.filter.syscalls().as_ref().unwrap()[0];
        assert_eq!(conditions("x", rule).unwrap().len(), 2);
        let program = compiled(&p).unwrap();
        assert!(
            program.summary.contains("1 allowed with argument checks"),
            "{}",
            program.summary
        );
    }

    #[test]
    fn the_kernels_view_is_read_from_status() {
        assert_eq!(
            kernel_view("Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n"),
            "Seccomp: 2 (filter), Seccomp_filters: 1"
        );
        assert_eq!(kernel_view("Seccomp:\t0\n"), "Seccomp: 0 (none)");
    }
}
