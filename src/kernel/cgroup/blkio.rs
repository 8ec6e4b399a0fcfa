//! `linux.resources.blockIO`: how much of the disks the container may use, written as the host
//! supports it: cgroup v1's blkio files (`blkio.weight`, or `blkio.bfq.weight` under the BFQ
//! scheduler; `blkio.throttle.*_device`), cgroup v2's io files (`io.bfq.weight` or `io.weight`,
//! `io.max`). As runc: a weight of 0 is no weight (Docker writes `"weight": 0` into every
//! config.json), a rate of 0 is no limit. What the host cannot apply is refused by name.

use anyhow::{bail, Result};

/// The asked settings, zero values already dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockIo {
    /// 10..=1000 (v1's scale; v2's io.weight gets runc's conversion).
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
    pub devices: Vec<DeviceWeight>,
    pub throttle: Vec<Throttle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceWeight {
    pub major: i64,
    pub minor: i64,
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
}

/// Which throttle: config.json's `throttleReadBpsDevice`... (v2's `rbps`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    ReadBps,
    WriteBps,
    ReadIops,
    WriteIops,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub rate: Rate,
    pub major: i64,
    pub minor: i64,
    /// Bytes or operations per second; 0: no limit.
    pub value: u64,
}

impl Rate {
    /// config.json's field.
    pub fn field(self) -> &'static str {
        match self {
            Rate::ReadBps => "throttleReadBpsDevice",
            Rate::WriteBps => "throttleWriteBpsDevice",
            Rate::ReadIops => "throttleReadIOPSDevice",
            Rate::WriteIops => "throttleWriteIOPSDevice",
        }
    }

    fn v1_file(self) -> &'static str {
        match self {
            Rate::ReadBps => "blkio.throttle.read_bps_device",
            Rate::WriteBps => "blkio.throttle.write_bps_device",
            Rate::ReadIops => "blkio.throttle.read_iops_device",
            Rate::WriteIops => "blkio.throttle.write_iops_device",
        }
    }

    fn v2_key(self) -> &'static str {
        match self {
            Rate::ReadBps => "rbps",
            Rate::WriteBps => "wbps",
            Rate::ReadIops => "riops",
            Rate::WriteIops => "wiops",
        }
    }
}

impl BlockIo {
    pub fn is_empty(&self) -> bool {
        *self == BlockIo::default()
    }
}

const FIELD: &str = "linux.resources.blockIO";
const SECTION: &str = "runtime-spec config-linux.md#block-io";

/// A weight as v2's io.weight takes it (1..10000), runc's conversion from v1's 10..1000.
pub fn io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990
}

/// The v1 blkio group's (file, line) writes, in order; `has` says which files the group has.
pub fn v1_writes(io: &BlockIo, has: impl Fn(&str) -> bool) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let pick = |cfq: &'static str, bfq: &'static str| [cfq, bfq].into_iter().find(|f| has(f));
    let weight_file = pick("blkio.weight", "blkio.bfq.weight");
    let device_file = pick("blkio.weight_device", "blkio.bfq.weight_device");
    let no_weight = |what: &str| {
        anyhow::anyhow!(
            "{FIELD}.{what}: this host's blkio controller has no proportional weights (neither \
             blkio.weight nor blkio.bfq.weight: its disks use no CFQ or BFQ scheduler); leave \
             {what} out or 0 ({SECTION})"
        )
    };
    if let Some(w) = io.weight {
        let file = weight_file.ok_or_else(|| no_weight("weight"))?;
        out.push((file.to_string(), w.to_string()));
    }
    if let Some(w) = io.leaf_weight {
        if !has("blkio.leaf_weight") {
            return Err(no_weight("leafWeight"));
        }
        out.push(("blkio.leaf_weight".into(), w.to_string()));
    }
    for (i, d) in io.devices.iter().enumerate() {
        if let Some(w) = d.weight {
            let file = device_file.ok_or_else(|| no_weight(&format!("weightDevice[{i}]")))?;
            out.push((file.to_string(), format!("{}:{} {w}", d.major, d.minor)));
        }
        if let Some(w) = d.leaf_weight {
            if !has("blkio.leaf_weight_device") {
                return Err(no_weight(&format!("weightDevice[{i}].leafWeight")));
            }
            out.push((
                "blkio.leaf_weight_device".into(),
                format!("{}:{} {w}", d.major, d.minor),
            ));
        }
    }
    for t in &io.throttle {
        // 0 removes a limit in v1.
        out.push((
            t.rate.v1_file().to_string(),
            format!("{}:{} {}", t.major, t.minor, t.value),
        ));
    }
    Ok(out)
}

/// The v2 group's (file, line) writes, in order; `bfq_weight` is what the group's
/// io.bfq.weight reads (`None`: no such file, the BFQ scheduler is not in use).
pub fn v2_writes(
    io: &BlockIo,
    has: impl Fn(&str) -> bool,
    bfq_weight: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if io.leaf_weight.is_some() || io.devices.iter().any(|d| d.leaf_weight.is_some()) {
        bail!(
            "{FIELD}.leafWeight has no cgroup v2 equivalent (it weighs a group's own I/O against \
             its children's, a cgroup v1 notion); leave it out ({SECTION})"
        );
    }
    // BFQ takes v1's scale as is; io.weight (blk-iocost) its own.
    let bfq = bfq_weight.is_some();
    // Per-device BFQ weights came with Linux 5.4: the file then reads `default N` lines.
    let bfq_per_device = bfq_weight.is_some_and(|text| text.trim().parse::<u64>().is_err());
    let no_weight = || {
        anyhow::anyhow!(
            "{FIELD}.weight: this host's io controller has no proportional weights (neither \
             io.bfq.weight nor io.weight); leave weight out or 0 ({SECTION})"
        )
    };
    if let Some(w) = io.weight {
        match (bfq, has("io.weight")) {
            (true, _) => out.push(("io.bfq.weight".into(), w.to_string())),
            (false, true) => out.push(("io.weight".into(), io_weight(w).to_string())),
            (false, false) => return Err(no_weight()),
        }
    }
    for d in &io.devices {
        let Some(w) = d.weight else { continue };
        let line = |value: u64| format!("{}:{} {value}", d.major, d.minor);
        match (bfq_per_device, has("io.weight")) {
            (true, _) => out.push(("io.bfq.weight".into(), line(u64::from(w)))),
            (false, true) => out.push(("io.weight".into(), line(io_weight(w)))),
            (false, false) => return Err(no_weight()),
        }
    }
    for t in &io.throttle {
        if !has("io.max") {
            bail!(
                "{FIELD}.{}: this host's cgroup v2 group has no io.max (is the io controller \
                 enabled?) ({SECTION})",
                t.rate.field()
            );
        }
        // io.max refuses 0; its "no limit" is max.
        let value = match t.value {
            0 => "max".to_string(),
            v => v.to_string(),
        };
        out.push((
            "io.max".into(),
            format!("{}:{} {}={value}", t.major, t.minor, t.rate.v2_key()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> BlockIo {
        BlockIo {
            weight: Some(500),
            leaf_weight: None,
            devices: vec![DeviceWeight {
                major: 8,
                minor: 0,
                weight: Some(300),
                leaf_weight: None,
            }],
            throttle: vec![
                Throttle {
                    rate: Rate::ReadBps,
                    major: 8,
                    minor: 0,
                    value: 1 << 20,
                },
                Throttle {
                    rate: Rate::WriteIops,
                    major: 8,
                    minor: 16,
                    value: 0,
                },
            ],
        }
    }

    fn lines(w: &[(String, String)]) -> Vec<String> {
        w.iter().map(|(f, l)| format!("{f}: {l}")).collect()
    }

    #[test]
    fn v1_writes_the_files_the_host_has() {
        let cfq = |f: &str| f.starts_with("blkio.weight") || f.starts_with("blkio.throttle");
        assert_eq!(
            lines(&v1_writes(&asked(), cfq).unwrap()),
            [
                "blkio.weight: 500",
                "blkio.weight_device: 8:0 300",
                "blkio.throttle.read_bps_device: 8:0 1048576",
                "blkio.throttle.write_iops_device: 8:16 0",
            ]
        );
        let bfq = |f: &str| f.starts_with("blkio.bfq") || f.starts_with("blkio.throttle");
        let w = lines(&v1_writes(&asked(), bfq).unwrap());
        assert_eq!(
            w[..2],
            ["blkio.bfq.weight: 500", "blkio.bfq.weight_device: 8:0 300"]
        );
        // A host with throttling only (no CFQ, no BFQ): weights are refused by name, throttles
        // alone are applied.
        let throttle_only = |f: &str| f.starts_with("blkio.throttle");
        let err = v1_writes(&asked(), throttle_only).unwrap_err().to_string();
        assert!(err.contains("linux.resources.blockIO.weight"), "{err}");
        let limits = BlockIo {
            weight: None,
            devices: vec![],
            ..asked()
        };
        assert_eq!(v1_writes(&limits, throttle_only).unwrap().len(), 2);
    }

    #[test]
    fn v2_converts_weights_and_writes_io_max() {
        let has = |f: &str| matches!(f, "io.weight" | "io.max");
        assert_eq!(
            lines(&v2_writes(&asked(), has, None).unwrap()),
            [
                "io.weight: 4950",
                "io.weight: 8:0 2930",
                "io.max: 8:0 rbps=1048576",
                "io.max: 8:16 wiops=max",
            ]
        );
        let bfq = lines(&v2_writes(&asked(), has, Some("default 100\n")).unwrap());
        assert_eq!(bfq[..2], ["io.bfq.weight: 500", "io.bfq.weight: 8:0 300"]);
        let leaf = BlockIo {
            leaf_weight: Some(300),
            ..BlockIo::default()
        };
        let err = v2_writes(&leaf, has, None).unwrap_err().to_string();
        assert!(err.contains("leafWeight"), "{err}");
        assert_eq!((io_weight(10), io_weight(1000)), (1, 10000));
    }
}
