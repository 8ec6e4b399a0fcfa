//! `minibox spec --rootless`: the default config.json turned into one a user without
//! privileges can run, as `runc spec --rootless` makes it: a user namespace mapping the caller
//! to root (and nothing else), the host's network (a rootless user can configure none), /sys
//! bound from the host read-only (sysfs cannot be mounted without a network namespace of one's
//! own), no uid=/gid= mount options (no other ids exist inside), no cgroup limits (the
//! caller's cgroups are not theirs to delegate).

use serde_json::{json, Value};

use crate::model::oci::annotations::ANNOTATION_NETWORK;

/// Rewrites `config` (a config.json as JSON) for the caller `uid`:`gid`.
pub fn make_rootless(config: &mut Value, uid: u32, gid: u32) {
    let linux = &mut config["linux"];
    if let Some(list) = linux["namespaces"].as_array_mut() {
        list.retain(|ns| !matches!(ns["type"].as_str(), Some("network" | "user")));
        list.push(json!({"type": "user"}));
    }
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(map) = linux.as_object_mut() {
        map.remove("resources");
    }
    // minibox's own note of the network follows: the host's.
    if config["annotations"].get(ANNOTATION_NETWORK).is_some() {
        config["annotations"][ANNOTATION_NETWORK] = json!("host");
    }
    // Only root is mapped inside, so the process is root there (the caller outside).
    config["process"]["user"] = json!({"uid": 0, "gid": 0});
    if let Some(mounts) = config["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
                continue;
            }
            if let Some(options) = m["options"].as_array_mut() {
                options.retain(|o| {
                    let o = o.as_str().unwrap_or_default();
                    !o.starts_with("uid=") && !o.starts_with("gid=")
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_root_inside_and_nothing_needs_privileges() {
        let mut c = json!({
            "process": {"user": {"uid": 65534, "gid": 65534}},
            "mounts": [
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "newinstance", "gid=5", "mode=620"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]}
            ],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}],
                      "resources": {"pids": {"limit": 10}}}
        });
        make_rootless(&mut c, 1000, 1001);
        assert_eq!(
            c["linux"]["namespaces"],
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "user"}])
        );
        assert_eq!(c["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(c["linux"]["gidMappings"][0]["hostID"], 1001);
        assert!(c["linux"].get("resources").is_none());
        assert_eq!(c["process"]["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(
            c["mounts"][0]["options"],
            json!(["nosuid", "newinstance", "mode=620"])
        );
        assert_eq!(c["mounts"][1]["type"], "none");
    }
}
