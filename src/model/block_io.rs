//! `linux.resources.blockIO` (runtime-spec config-linux.md "Block IO"), checked and turned into
//! what the cgroup drivers write. Zero values are "not set", as runc and Docker read them:
//! Docker writes `"weight": 0` into every config.json.

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxBlockIo;
use serde_json::{json, Value};

use crate::kernel::cgroup::blkio::{BlockIo, DeviceWeight, Rate, Throttle};

/// A weight as the spec allows it (10..=1000); 0 or absent is none.
fn weight(field: &str, w: Option<u16>) -> Result<Option<u16>> {
    match w {
        None | Some(0) => Ok(None),
        Some(w) if (10..=1000).contains(&w) => Ok(Some(w)),
        Some(w) => bail!(
            "linux.resources.blockIO.{field} {w} is out of range: use 10 to 1000, or 0 for none \
             (runtime-spec config-linux.md#block-io)"
        ),
    }
}

fn device(field: &str, major: i64, minor: i64) -> Result<()> {
    if major < 0 || minor < 0 {
        bail!(
            "linux.resources.blockIO.{field} device {major}:{minor} is invalid: give the disk's \
             major and minor numbers (see /sys/block/*/dev)"
        );
    }
    Ok(())
}

pub fn checked(b: &LinuxBlockIo) -> Result<BlockIo> {
    let mut io = BlockIo {
        weight: weight("weight", b.weight())?,
        leaf_weight: weight("leafWeight", b.leaf_weight())?,
        ..BlockIo::default()
    };
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let field = format!("weightDevice[{i}]");
        device(&field, d.major(), d.minor())?;
        let entry = DeviceWeight {
            major: d.major(),
            minor: d.minor(),
            weight: weight(&format!("{field}.weight"), d.weight())?,
            leaf_weight: weight(&format!("{field}.leafWeight"), d.leaf_weight())?,
        };
        if entry.weight.is_some() || entry.leaf_weight.is_some() {
            io.devices.push(entry);
        }
    }
    for (rate, list) in [
        (Rate::ReadBps, b.throttle_read_bps_device()),
        (Rate::WriteBps, b.throttle_write_bps_device()),
        (Rate::ReadIops, b.throttle_read_iops_device()),
        (Rate::WriteIops, b.throttle_write_iops_device()),
    ] {
        for (i, t) in list.iter().flatten().enumerate() {
            device(&format!("{}[{i}]", rate.field()), t.major(), t.minor())?;
            io.throttle.push(Throttle {
                rate,
                major: t.major(),
                minor: t.minor(),
                value: t.rate(),
            });
        }
    }
    Ok(io)
}

/// The same settings as config.json writes them (`minibox spec`, the saved config).
pub fn spec_of(io: &BlockIo) -> Option<LinuxBlockIo> {
    if io.is_empty() {
        return None;
    }
    let devices: Vec<Value> = io
        .devices
        .iter()
        .map(|d| {
            json!({"major": d.major, "minor": d.minor, "weight": d.weight,
                   "leafWeight": d.leaf_weight})
        })
        .collect();
    let mut b = json!({"weight": io.weight, "leafWeight": io.leaf_weight});
    if !devices.is_empty() {
        b["weightDevice"] = json!(devices);
    }
    for rate in [
        Rate::ReadBps,
        Rate::WriteBps,
        Rate::ReadIops,
        Rate::WriteIops,
    ] {
        let list: Vec<Value> = io
            .throttle
            .iter()
            .filter(|t| t.rate == rate)
            .map(|t| json!({"major": t.major, "minor": t.minor, "rate": t.value}))
            .collect();
        if !list.is_empty() {
            b[rate.field()] = json!(list);
        }
    }
    serde_json::from_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> Result<BlockIo> {
        checked(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn dockers_zero_weight_is_no_setting_and_limits_survive_the_round_trip() {
        assert!(parsed(r#"{"weight": 0}"#).unwrap().is_empty());
        assert!(
            parsed(r#"{"weightDevice": [{"major": 8, "minor": 0, "weight": 0}]}"#)
                .unwrap()
                .is_empty()
        );
        let io = parsed(
            r#"{"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]}"#,
        )
        .unwrap();
        assert_eq!((io.weight, io.throttle.len()), (Some(300), 2));
        assert_eq!(checked(&spec_of(&io).unwrap()).unwrap(), io);
    }

    #[test]
    fn bad_values_are_named() {
        let err = parsed(r#"{"weight": 5}"#).unwrap_err().to_string();
        assert!(err.contains("blockIO.weight 5"), "{err}");
        let err = parsed(r#"{"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("throttleReadBpsDevice[0]"), "{err}");
    }
}
