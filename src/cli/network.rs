//! `minibox network create|ls|inspect|rm`: the front end of `runtime::network`.

use anyhow::{bail, Result};
use serde_json::json;

use crate::cli::NetworkCommand;
use crate::runtime::network;
use crate::store::state::Store;

pub fn dispatch(store: &Store, command: NetworkCommand) -> Result<i32> {
    let root = store.root();
    match command {
        NetworkCommand::Create {
            subnet,
            gateway,
            name,
        } => {
            let net = network::create(root, &name, subnet.as_deref(), gateway.as_deref())?;
            out!("{}", net.id);
            Ok(0)
        }
        NetworkCommand::Ls { quiet } => {
            let all = network::list(root)?;
            if quiet {
                for (net, _) in &all {
                    out!("{}", net.name);
                }
                return Ok(0);
            }
            out!(
                "{:<14} {:<20} {:<18} {:<15} {:<16} CONTAINERS",
                "NETWORK ID",
                "NAME",
                "SUBNET",
                "GATEWAY",
                "BRIDGE"
            );
            for (net, leases) in &all {
                out!(
                    "{:<14} {:<20} {:<18} {:<15} {:<16} {}",
                    &net.id[..12],
                    net.name,
                    net.subnet.to_string(),
                    net.gateway.to_string(),
                    net.bridge,
                    leases.len()
                );
            }
            Ok(0)
        }
        NetworkCommand::Inspect { name } => {
            let all = network::list(root)?;
            let Some((net, leases)) = all.into_iter().find(|(n, _)| n.name == name) else {
                bail!("no such network: {name}");
            };
            let containers: Vec<_> = leases
                .iter()
                .map(|l| {
                    json!({
                        "Id": l.container, "Name": l.name, "IPv4Address": format!("{}/{}", l.ip, net.subnet.prefix),
                        "Aliases": l.aliases, "Interface": l.veth,
                        "Ports": l.ports.iter().map(|p| p.display()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let v = json!({
                "Name": net.name, "Id": net.id, "Driver": "bridge", "Subnet": net.subnet.to_string(),
                "Gateway": net.gateway.to_string(), "Bridge": net.bridge, "Created": net.created_ms,
                "Containers": containers,
            });
            out!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        NetworkCommand::Rm { names } => {
            let mut failed = false;
            for name in &names {
                match network::remove(root, name) {
                    Ok(()) => out!("{name}"),
                    Err(e) => {
                        say!("minibox: {e:#}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
    }
}
