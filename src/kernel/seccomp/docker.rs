//! Docker's seccomp profile format, resolved for one container on this host.
//!
//! A docker profile is an OCI `linux.seccomp` section with conditions: each rule may apply only
//! with some capabilities (`includes.caps`: `--cap-add SYS_ADMIN` re-allows `unshare`,
//! `mount`...), only on some architectures, or only from some kernel version on; `archMap`
//! lists the sub-architectures that come with the native one (x86 and x32 with x86_64).
//! Resolving keeps the rules whose conditions hold, as moby's `setupSeccomp` does, and yields a
//! plain OCI `LinuxSeccomp` for the compiler. A plain OCI section is a valid docker profile.
//!
//! `default.json` is Docker's default profile: `profiles/seccomp/default.json` of
//! github.com/moby/profiles v0.2.3 (vendored in moby/moby), Copyright The Moby Authors,
//! Apache-2.0.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Docker's default profile, as moby ships it.
pub const DEFAULT_PROFILE: &str = include_str!("default.json");

/// The largest errno a filter can return (the kernel's MAX_ERRNO).
pub const MAX_ERRNO: u32 = 4095;

/// What a profile's conditions are checked against.
#[derive(Debug, Clone)]
pub struct Host {
    /// Go's name for the architecture, as `includes.arches` uses it (`amd64`).
    pub arch: &'static str,
    /// Its seccomp name, as `archMap` uses it.
    pub seccomp_arch: Arch,
    /// The kernel's version and major revision (`6.1` of `6.1.0-18-amd64`).
    pub kernel: (u64, u64),
    /// The container's capabilities, `CAP_SYS_ADMIN` style.
    pub caps: Vec<String>,
}

impl Host {
    /// This machine, for a container keeping `caps`.
    pub fn this(caps: Vec<String>) -> Result<Host> {
        let (arch, seccomp_arch) = native_arch();
        let uname = nix::sys::utsname::uname().context("uname")?;
        let release = uname.release().to_string_lossy();
        let kernel = parse_release(&release)
            .with_context(|| format!("cannot read the kernel version from {release:?}"))?;
        Ok(Host {
            arch,
            seccomp_arch,
            kernel,
            caps,
        })
    }
}

#[cfg(target_arch = "x86_64")]
fn native_arch() -> (&'static str, Arch) {
    ("amd64", Arch::ScmpArchX86_64)
}

#[cfg(target_arch = "aarch64")]
fn native_arch() -> (&'static str, Arch) {
    ("arm64", Arch::ScmpArchAarch64)
}

/// `6.1` from `6.1.0-18-amd64` or `3.12-rc5`, as docker reads it.
fn parse_release(release: &str) -> Option<(u64, u64)> {
    let mut parts = release.splitn(3, |c: char| !c.is_ascii_digit());
    let kernel = parts.next()?.parse().ok()?;
    let major = parts.next()?.parse().ok()?;
    Some((kernel, major))
}

/// A docker profile as written; enum-like fields stay text until resolved, so that a bad one
/// is reported with the field it is in.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Option<String>,
    default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    architectures: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "nullable")]
    flags: Vec<String>,
    listener_path: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    syscalls: Vec<Syscall>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    /// The old, single-name form.
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    args: Vec<Arg>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u64,
    value: u64,
    value_two: Option<u64>,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default, deserialize_with = "nullable")]
    caps: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// Go writes an empty list as `null`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An OCI enum from its JSON text (`SCMP_ACT_ERRNO`), or an error naming the field.
fn oci_enum<T: DeserializeOwned>(field: &str, text: &str, expected: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| anyhow::anyhow!("{field}: {text:?} is not {expected}"))
}

fn action(field: &str, text: &str) -> Result<LinuxSeccompAction> {
    if text == "SCMP_ACT_NOTIFY" {
        bail!(
            "{field}: SCMP_ACT_NOTIFY needs a seccomp agent listening (listenerPath), which \
             minibox does not support; use another action"
        );
    }
    oci_enum(
        field,
        text,
        "a seccomp action (SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, \
         SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_TRACE, SCMP_ACT_LOG)",
    )
}

fn arch(field: &str, text: &str) -> Result<Arch> {
    oci_enum(
        field,
        text,
        "a seccomp architecture (SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_AARCH64, ...)",
    )
}

fn errno(field: &str, value: Option<u32>) -> Result<Option<u32>> {
    match value {
        Some(v) if v > MAX_ERRNO => bail!("{field}: {v} is not an errno (at most {MAX_ERRNO})"),
        v => Ok(v),
    }
}

/// `"4.8"` → (4, 8), docker's `<kernel>.<major>`.
fn min_kernel(field: &str, text: &str) -> Result<(u64, u64)> {
    let parsed = text
        .split_once('.')
        .and_then(|(k, m)| Some((k.parse::<u8>().ok()?, m.parse::<u8>().ok()?)))
        .filter(|v| *v != (0, 0));
    match parsed {
        Some((k, m)) => Ok((k.into(), m.into())),
        None => bail!("{field}: {text:?} is not a kernel version: use <kernel>.<major>, e.g. 4.8"),
    }
}

/// Parses a docker profile (or a plain OCI `linux.seccomp` section) and keeps what applies to
/// a container on `host`: moby's `setupSeccomp`.
pub fn resolve(json: &str, host: &Host) -> Result<LinuxSeccomp> {
    let profile: Profile = serde_json::from_str(json).context("invalid profile JSON")?;
    let Some(default_action) = &profile.default_action else {
        bail!("the profile has no defaultAction (e.g. \"SCMP_ACT_ERRNO\")");
    };
    let mut out = LinuxSeccomp::default();
    out.set_default_action(action("defaultAction", default_action)?);
    out.set_default_errno_ret(errno("defaultErrnoRet", profile.default_errno_ret)?);
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        bail!("the profile has both architectures and archMap: use either");
    }
    let mut arches = Vec::new();
    for (i, a) in profile.architectures.iter().enumerate() {
        arches.push(arch(&format!("architectures[{i}]"), a)?);
    }
    for (i, entry) in profile.arch_map.iter().enumerate() {
        let main = arch(&format!("archMap[{i}].architecture"), &entry.architecture)?;
        let mut subs = Vec::new();
        for (j, a) in entry.sub_architectures.iter().enumerate() {
            subs.push(arch(&format!("archMap[{i}].subArchitectures[{j}]"), a)?);
        }
        if main == host.seccomp_arch && arches.is_empty() {
            arches.push(main);
            arches.extend(subs);
        }
    }
    if !arches.is_empty() {
        out.set_architectures(Some(arches));
    }
    let mut flags = Vec::new();
    for (i, f) in profile.flags.iter().enumerate() {
        flags.push(oci_enum::<LinuxSeccompFilterFlag>(
            &format!("flags[{i}]"),
            f,
            "a seccomp filter flag (SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW, \
             SECCOMP_FILTER_FLAG_TSYNC)",
        )?);
    }
    if !flags.is_empty() {
        out.set_flags(Some(flags));
    }
    out.set_listener_path(profile.listener_path.as_ref().map(Into::into));
    let mut syscalls = Vec::new();
    for (i, call) in profile.syscalls.iter().enumerate() {
        if let Some(rule) = resolve_rule(&format!("syscalls[{i}]"), call, host)? {
            syscalls.push(rule);
        }
    }
    out.set_syscalls(Some(syscalls));
    Ok(out)
}

/// One rule, checked in full, or `None` when its conditions leave it out here.
fn resolve_rule(field: &str, call: &Syscall, host: &Host) -> Result<Option<LinuxSyscall>> {
    let names = match (call.name.is_empty(), call.names.is_empty()) {
        (false, false) => bail!("{field}: has both name and names: use either"),
        (false, true) => vec![call.name.clone()],
        _ => call.names.clone(),
    };
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    rule.set_action(action(&format!("{field}.action"), &call.action)?);
    rule.set_errno_ret(errno(&format!("{field}.errnoRet"), call.errno_ret)?);
    let mut args = Vec::new();
    for (j, a) in call.args.iter().enumerate() {
        let at = format!("{field}.args[{j}]");
        if a.index > 5 {
            bail!(
                "{at}.index: {} is not an argument (a system call has 6: 0 to 5)",
                a.index
            );
        }
        let op: LinuxSeccompOperator = oci_enum(
            &format!("{at}.op"),
            &a.op,
            "a comparison (SCMP_CMP_EQ, SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_GT, \
             SCMP_CMP_GE, SCMP_CMP_MASKED_EQ)",
        )?;
        let mut arg = LinuxSeccompArgBuilder::default()
            .index(a.index as usize)
            .value(a.value)
            .op(op);
        if let Some(two) = a.value_two {
            arg = arg.value_two(two);
        }
        args.push(arg.build().with_context(|| at.clone())?);
    }
    if !args.is_empty() {
        rule.set_args(Some(args));
    }
    // Conditions are checked after the rule itself, so a bad rule is an error on every host.
    let applies = |filter: &Option<Filter>, which: &str, include: bool| -> Result<bool> {
        let Some(f) = filter else { return Ok(true) };
        let arch_listed = f.arches.iter().any(|a| a == host.arch);
        let caps_held = |c: &String| host.caps.contains(c);
        let newer = match &f.min_kernel {
            Some(v) => Some(host.kernel >= min_kernel(&format!("{field}.{which}.minKernel"), v)?),
            None => None,
        };
        Ok(if include {
            (f.arches.is_empty() || arch_listed)
                && f.caps.iter().all(caps_held)
                && newer != Some(false)
        } else {
            !arch_listed && !f.caps.iter().any(caps_held) && newer != Some(true)
        })
    };
    let keep =
        applies(&call.excludes, "excludes", false)? && applies(&call.includes, "includes", true)?;
    Ok(keep.then_some(rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(caps: &[&str], kernel: (u64, u64)) -> Host {
        Host {
            arch: "amd64",
            seccomp_arch: Arch::ScmpArchX86_64,
            kernel,
            caps: caps.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Every rule naming `syscall`, as (action, args) pairs.
    fn rules_for(p: &LinuxSeccomp, syscall: &str) -> Vec<(LinuxSeccompAction, usize)> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.names().iter().any(|n| n == syscall))
            .map(|r| (r.action(), r.args().as_ref().map_or(0, Vec::len)))
            .collect()
    }

    #[test]
    fn the_default_profile_denies_by_default_and_maps_x86_64() {
        let p = resolve(DEFAULT_PROFILE, &host(&[], (6, 1))).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        // Allowed outright, never, and only with arguments checked.
        assert_eq!(
            rules_for(&p, "getppid"),
            [(LinuxSeccompAction::ScmpActAllow, 0)]
        );
        for denied in [
            "unshare",
            "mount",
            "setns",
            "keyctl",
            "bpf",
            "io_uring_setup",
        ] {
            assert_eq!(rules_for(&p, denied), [], "{denied}");
        }
        assert_eq!(
            rules_for(&p, "clone"),
            [(LinuxSeccompAction::ScmpActAllow, 1)]
        );
        assert_eq!(rules_for(&p, "personality").len(), 5);
        // glibc falls back to clone when clone3 says ENOSYS (38).
        let clone3: Vec<_> = p
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.names() == &["clone3"])
            .collect();
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        // amd64-only rules are in, other architectures' are out.
        assert_eq!(rules_for(&p, "arch_prctl").len(), 1);
        assert_eq!(rules_for(&p, "riscv_flush_icache"), []);
    }

    #[test]
    fn capabilities_re_allow_their_syscalls() {
        let p = resolve(DEFAULT_PROFILE, &host(&["CAP_SYS_ADMIN"], (6, 1))).unwrap();
        for allowed in ["unshare", "mount", "setns", "clone3"] {
            assert!(
                rules_for(&p, allowed).contains(&(LinuxSeccompAction::ScmpActAllow, 0)),
                "{allowed}"
            );
        }
        // The argument-checked clone and the ENOSYS clone3 are excluded with CAP_SYS_ADMIN.
        assert_eq!(
            rules_for(&p, "clone"),
            [(LinuxSeccompAction::ScmpActAllow, 0)]
        );
        assert_eq!(
            rules_for(&p, "clone3"),
            [(LinuxSeccompAction::ScmpActAllow, 0)]
        );
        let ptrace = resolve(DEFAULT_PROFILE, &host(&["CAP_SYS_PTRACE"], (6, 1))).unwrap();
        assert!(rules_for(&ptrace, "kcmp").contains(&(LinuxSeccompAction::ScmpActAllow, 0)));
        let plain = resolve(DEFAULT_PROFILE, &host(&[], (6, 1))).unwrap();
        assert_eq!(rules_for(&plain, "kcmp"), []);
    }

    #[test]
    fn min_kernel_is_compared_as_kernel_and_major() {
        // ptrace is allowed from 4.8 on.
        let old = resolve(DEFAULT_PROFILE, &host(&[], (4, 7))).unwrap();
        assert_eq!(rules_for(&old, "ptrace"), []);
        let new = resolve(DEFAULT_PROFILE, &host(&[], (4, 8))).unwrap();
        assert_eq!(rules_for(&new, "ptrace").len(), 1);
        let newer = resolve(DEFAULT_PROFILE, &host(&[], (10, 0))).unwrap();
        assert_eq!(rules_for(&newer, "ptrace").len(), 1);
        let excluded = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["a"],"action":"SCMP_ACT_ERRNO","excludes":{"minKernel":"5.10"}}]}"#;
        assert_eq!(
            rules_for(&resolve(excluded, &host(&[], (5, 4))).unwrap(), "a").len(),
            1
        );
        assert_eq!(
            rules_for(&resolve(excluded, &host(&[], (5, 10))).unwrap(), "a"),
            []
        );
        assert_eq!(parse_release("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_release("3.12-rc5"), Some((3, 12)));
        assert_eq!(parse_release("x"), None);
    }

    #[test]
    fn arches_and_caps_filter_both_ways() {
        let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[
            {"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["arm64"]}},
            {"names":["b"],"action":"SCMP_ACT_ALLOW","excludes":{"arches":["amd64"]}},
            {"names":["c"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_A","CAP_B"]}},
            {"names":["d"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_B"]}},
            {"name":"e","action":"SCMP_ACT_LOG","args":[
                {"index":1,"value":7,"valueTwo":2,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#;
        let only_a = resolve(json, &host(&["CAP_A"], (6, 1))).unwrap();
        let names = |p: &LinuxSeccomp| -> Vec<String> {
            p.syscalls()
                .as_ref()
                .unwrap()
                .iter()
                .flat_map(|r| r.names().clone())
                .collect()
        };
        assert_eq!(names(&only_a), ["d", "e"]);
        let both = resolve(json, &host(&["CAP_A", "CAP_B"], (6, 1))).unwrap();
        assert_eq!(names(&both), ["c", "e"]);
        let e = &both.syscalls().as_ref().unwrap()[1];
        let arg = e.args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.index(), arg.value(), arg.value_two(), arg.op()),
            (1, 7, Some(2), LinuxSeccompOperator::ScmpCmpMaskedEq)
        );
        assert_eq!(
            both.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let cases = [
            ("{", "line 1 column 1"),
            ("{\n\"defaultAction\": 1}", "line 2 column"),
            ("{}", "no defaultAction"),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_NOTIFY"}]}"#,
                "syscalls[0].action: SCMP_ACT_NOTIFY needs a seccomp agent",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_NOPE"}"#,
                "defaultAction: \"SCMP_ACT_NOPE\" is not a seccomp action",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW"},{"names":["b"],"action":"ALLOW"}]}"#,
                "syscalls[1].action: \"ALLOW\" is not a seccomp action",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"EQ"}]}]}"#,
                "syscalls[0].args[0].op: \"EQ\" is not a comparison",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
                "syscalls[0].args[0].index: 6 is not an argument",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_Z80"]}"#,
                "architectures[0]: \"SCMP_ARCH_Z80\" is not a seccomp architecture",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
                "syscalls[0].errnoRet: 70000 is not an errno",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}"#,
                "syscalls[0].includes.minKernel: \"4\" is not a kernel version",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_NOPE"]}"#,
                "flags[0]: \"SECCOMP_FILTER_FLAG_NOPE\" is not a seccomp filter flag",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#,
                "syscalls[0]: has both name and names",
            ),
        ];
        for (json, want) in cases {
            let err = format!("{:#}", resolve(json, &host(&[], (6, 1))).unwrap_err());
            assert!(err.contains(want), "{json}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn a_plain_oci_section_is_a_profile() {
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1,
            "architectures":["SCMP_ARCH_X86_64"],"flags":["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#;
        let p = resolve(json, &host(&[], (6, 1))).unwrap();
        assert_eq!(
            p.flags().as_deref(),
            Some(&[LinuxSeccompFilterFlag::SeccompFilterFlagLog][..])
        );
        assert_eq!(
            rules_for(&p, "mkdirat"),
            [(LinuxSeccompAction::ScmpActErrno, 0)]
        );
    }
}
