//! Model → config.json: the config.json a container is made from (what `minibox spec` prints
//! and what a container's state directory keeps for `exec`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use oci_spec::runtime::{
    Capabilities, Capability as OciCap, Hooks, Linux, LinuxCapabilities, LinuxCpu, LinuxMemory,
    LinuxPids, LinuxResources, Mount, Process, Root, Spec, User,
};

use crate::kernel::caps::{CapSets, Capability, CapsHashSet};
use crate::kernel::cgroup::{Limits, Tuning, CPU_PERIOD_US};
use crate::kernel::seccomp::SeccompProfile;
use crate::model::block_io;
use crate::model::network::Network;
use crate::model::oci::annotations::*;
use crate::model::setup::{self, Setup};
use crate::model::spec::{build_env, ContainerSpec};
use crate::model::user::{Identity, NOBODY};
use crate::model::volume::{VolumeMount, VolumeSource};

/// The config.json a container is made from: what `minibox spec` prints.
pub fn spec_from_container(c: &ContainerSpec) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string());
    let mut root = Root::default();
    root.set_path(c.rootfs.clone());
    root.set_readonly(Some(c.read_only));
    spec.set_root(Some(root));
    spec.set_process(Some(process_of(c)));
    spec.set_hostname((!c.hostname.is_empty()).then(|| c.hostname.clone()));
    spec.set_linux(Some(linux_of(c)));
    setup::write_oci(&c.setup, &mut spec);
    let mut annotations = HashMap::new();
    // A joined namespace is said by its path in linux.namespaces.
    if !matches!(c.network, Network::Join(_)) {
        annotations.insert(ANNOTATION_NETWORK.to_string(), c.network.name());
    }
    let mut list = |key: &str, items: Vec<String>| {
        if !items.is_empty() {
            annotations.insert(key.to_string(), items.join(","));
        }
    };
    list(
        ANNOTATION_IP,
        c.net.ip.iter().map(|i| i.to_string()).collect(),
    );
    list(
        ANNOTATION_DNS,
        c.net.dns.iter().map(|i| i.to_string()).collect(),
    );
    list(
        ANNOTATION_ADD_HOSTS,
        c.net
            .add_hosts
            .iter()
            .map(|(n, a)| format!("{n}:{a}"))
            .collect(),
    );
    list(ANNOTATION_ALIASES, c.net.aliases.clone());
    if !c.ports.is_empty() {
        let ports: Vec<String> = c.ports.iter().map(|p| p.to_flag()).collect();
        annotations.insert(ANNOTATION_PORTS.to_string(), ports.join(","));
    }
    if let Some(profile) = &c.seccomp {
        annotations.insert(ANNOTATION_SECCOMP.to_string(), profile.name.clone());
    }
    if c.pid1 {
        annotations.insert(ANNOTATION_INIT.to_string(), "true".into());
    }
    if let Some(image) = &c.image {
        annotations.insert(ANNOTATION_IMAGE.into(), image.reference.clone());
        annotations.insert(ANNOTATION_IMAGE_ID.into(), image.id.clone());
        let layers: Vec<String> = image
            .lower
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        annotations.insert(
            ANNOTATION_IMAGE_LAYERS.into(),
            serde_json::to_string(&layers).unwrap_or_default(),
        );
        if let Some(sig) = &image.stop_signal {
            annotations.insert(ANNOTATION_STOP_SIGNAL.into(), sig.clone());
        }
        if !image.exposed_ports.is_empty() {
            annotations.insert(
                ANNOTATION_EXPOSED_PORTS.into(),
                image.exposed_ports.join(","),
            );
        }
    }
    spec.set_annotations(Some(annotations));
    spec
}

fn process_of(c: &ContainerSpec) -> Process {
    let mut user = User::default();
    user.set_uid(c.identity.uid);
    user.set_gid(c.identity.gid);
    user.set_umask(Some(setup::DOCKER_UMASK));
    user.set_additional_gids((!c.identity.groups.is_empty()).then(|| c.identity.groups.clone()));
    let set =
        |s: &CapsHashSet| -> Capabilities { s.iter().filter_map(|&cap| oci_cap(cap)).collect() };
    let sets = &c.capabilities;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set(&sets.bounding)));
    caps.set_effective(Some(set(&sets.effective)));
    caps.set_permitted(Some(set(&sets.permitted)));
    caps.set_inheritable(Some(set(&sets.inheritable)));
    caps.set_ambient(Some(set(&sets.ambient)));
    let mut process = Process::default();
    process.set_terminal(Some(c.tty));
    process.set_console_size(c.console_size.and_then(|s| {
        oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(s.rows))
            .width(u64::from(s.cols))
            .build()
            .ok()
    }));
    process.set_user(user);
    process.set_args(Some(c.args.clone()));
    process.set_env(Some(c.env.clone()));
    process.set_cwd(c.workdir.clone());
    process.set_capabilities(Some(caps));
    process
}

/// A `-v`, `--mount` or `--tmpfs` mount, as config.json writes it.
pub fn volume_mount_of(v: &VolumeMount) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(v.target.clone());
    let mut options: Vec<String> = vec![];
    match &v.source {
        VolumeSource::Bind(path) | VolumeSource::Named { path, .. } => {
            mount.set_typ(Some("bind".into()));
            mount.set_source(Some(path.clone()));
            options.push("rbind".into());
        }
        VolumeSource::Tmpfs { size, mode } => {
            mount.set_typ(Some("tmpfs".into()));
            mount.set_source(Some("tmpfs".into()));
            options.extend(size.map(|s| format!("size={s}")));
            options.extend(mode.map(|m| format!("mode={m:o}")));
        }
    }
    options.extend(["nosuid".to_string(), "nodev".to_string()]);
    if v.read_only {
        options.push("ro".into());
    }
    if v.idmap {
        options.push("idmap".into());
    }
    mount.set_options(Some(options));
    mount
}

/// `linux` but what `setup::write_oci` writes (namespaces, paths, devices...).
fn linux_of(c: &ContainerSpec) -> Linux {
    let mut linux = Linux::default();
    linux.set_resources(resources_of(&c.limits, &c.setup.resources));
    linux.set_seccomp(c.seccomp.as_ref().map(|p| p.filter.clone()));
    let cgroup = !c.cgroup_path.as_os_str().is_empty();
    linux.set_cgroups_path(cgroup.then(|| c.cgroup_path.clone()));
    linux
}

fn resources_of(limits: &Limits, tuning: &Tuning) -> Option<LinuxResources> {
    if limits.is_empty() && *tuning == Tuning::default() {
        return None;
    }
    let mut r = LinuxResources::default();
    if limits.memory.is_some() || tuning.memory_reservation.is_some() {
        let mut memory = LinuxMemory::default();
        memory.set_limit(limits.memory.map(|b| b as i64));
        // memory+swap = memory unless asked: no swap on top (docker's --memory alone).
        memory.set_swap(tuning.memory_swap.or(limits.memory.map(|b| b as i64)));
        memory.set_reservation(tuning.memory_reservation.map(|b| b as i64));
        r.set_memory(Some(memory));
    }
    let cpu_asked = limits.cpu_quota.is_some()
        || tuning.cpu_shares.is_some()
        || tuning.cpu_period.is_some()
        || tuning.wants_cpuset();
    if cpu_asked {
        let mut cpu = LinuxCpu::default();
        cpu.set_quota(limits.cpu_quota.map(|q| q as i64));
        let period = tuning
            .cpu_period
            .or(limits.cpu_quota.map(|_| CPU_PERIOD_US));
        cpu.set_period(period);
        cpu.set_shares(tuning.cpu_shares);
        cpu.set_cpus(tuning.cpus.clone());
        cpu.set_mems(tuning.mems.clone());
        r.set_cpu(Some(cpu));
    }
    if !tuning.unified.is_empty() {
        r.set_unified(Some(tuning.unified.iter().cloned().collect()));
    }
    r.set_block_io(block_io::spec_of(&tuning.block_io));
    if let Some(pids) = limits.pids {
        let mut p = LinuxPids::default();
        p.set_limit(pids as i64);
        r.set_pids(Some(p));
    }
    Some(r)
}

/// `minibox spec` without arguments: a bundle's config.json as `runc spec` makes one, with
/// minibox's defaults (nobody, no capabilities, docker's environment), for a rootfs in
/// `rootfs/` beside it and `sh` as the program.
pub fn default_bundle_spec() -> Spec {
    let hostname = "minibox";
    let container = ContainerSpec {
        id: String::new(),
        name: None,
        rootfs: PathBuf::from("rootfs"),
        args: vec!["sh".into()],
        env: build_env(&[], hostname, "/", |_| None).unwrap_or_default(),
        hostname: hostname.into(),
        workdir: PathBuf::from("/"),
        identity: Identity {
            uid: NOBODY,
            gid: NOBODY,
            groups: vec![],
            home: "/".into(),
            name: None,
        },
        capabilities: CapSets::default(),
        // Docker's default filter, as every minibox container has unless told otherwise.
        seccomp: SeccompProfile::docker_default(&CapsHashSet::new()).ok(),
        tty: false,
        pid1: false,
        read_only: false,
        limits: Limits::default(),
        cgroup_path: PathBuf::new(),
        network: Network::Private,
        ports: vec![],
        net: Default::default(),
        explain: false,
        private_layer: false,
        setup: Setup::docker(true),
        image: None,
        volumes: vec![],
        hooks: Hooks::default(),
        console_size: None,
        stop: Default::default(),
        auto_ids: None,
        labels: Default::default(),
    };
    spec_from_container(&container)
}

/// Pretty JSON for a config.json. Capability sets and annotations are unordered in `Spec`;
/// they are sorted here, so the same container always prints the same file.
pub fn to_json(spec: &Spec) -> Result<String> {
    let mut value = serde_json::to_value(spec).context("encoding config.json")?;
    if let Some(sets) = value
        .pointer_mut("/process/capabilities")
        .and_then(|v| v.as_object_mut())
    {
        for set in sets.values_mut().filter_map(|s| s.as_array_mut()) {
            set.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    if let Some(annotations) = value.get_mut("annotations").and_then(|v| v.as_object_mut()) {
        annotations.sort_keys();
    }
    serde_json::to_string_pretty(&value).context("encoding config.json")
}

/// The runtime spec's name for one of the kernel's capabilities.
pub(crate) fn oci_cap(cap: Capability) -> Option<OciCap> {
    cap.to_string()
        .strip_prefix("CAP_")
        .and_then(|name| name.parse().ok())
}
