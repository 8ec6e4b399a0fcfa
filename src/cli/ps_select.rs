//! `ps --filter KEY=VALUE` and `ps --format TEMPLATE`, docker's rules: values of one key are
//! alternatives (any may match), different keys must all match, and every `label` filter must
//! match. A `status` filter looks at every container, as `-a` does.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::cli::template::{self, Template};
use crate::store::images::normalize;
use crate::store::state::ContainerState;

/// The filters and the format `ps` was given.
#[derive(Debug, Default)]
pub struct Selection {
    labels: Vec<(String, Option<String>)>,
    names: Vec<String>,
    statuses: Vec<String>,
    ids: Vec<String>,
    ancestors: Vec<String>,
    networks: Vec<String>,
    exited: Vec<i32>,
    template: Option<(bool, Template)>,
}

const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

impl Selection {
    /// `--filter` flags and `--format` (`table`, `json` and none are `ps`'s own).
    pub fn parse(filters: &[String], format: &str) -> Result<Selection> {
        let mut s = Selection::default();
        for f in filters {
            let Some((key, value)) = f.split_once('=') else {
                bail!("invalid filter {f:?}: give KEY=VALUE (label, name, status, id, ancestor, network, exited)");
            };
            match key {
                "label" => s.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                }),
                "name" => s.names.push(value.to_string()),
                "status" => {
                    if !STATUSES.contains(&value) {
                        bail!(
                            "invalid filter 'status={value}': the status is one of {}",
                            STATUSES.join(", ")
                        );
                    }
                    s.statuses.push(value.to_string());
                }
                "id" => s.ids.push(value.to_string()),
                "ancestor" => s.ancestors.push(value.to_string()),
                "network" => s.networks.push(value.to_string()),
                "exited" => match value.parse() {
                    Ok(n) => s.exited.push(n),
                    Err(_) => bail!("invalid filter 'exited={value}': give an exit code"),
                },
                other => bail!(
                    "invalid filter '{other}': minibox filters by label, name, status, id, \
                     ancestor, network and exited"
                ),
            }
        }
        s.template = match format {
            "table" | "json" => None,
            f => {
                let f = template::unescape(f);
                Some(match f.strip_prefix("table") {
                    Some(rest) => (true, Template::parse(rest.trim_start())?),
                    None => (false, Template::parse(&f)?),
                })
            }
        };
        Ok(s)
    }

    /// Whether exited containers are considered without `-a` (a `status` or `exited` filter).
    pub fn all(&self) -> bool {
        !self.statuses.is_empty() || !self.exited.is_empty()
    }

    pub fn matches(&self, c: &ContainerState) -> bool {
        let any = |list: &[String], test: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| test(v))
        };
        self.labels.iter().all(|(k, v)| match v {
            Some(v) => c.labels.get(k) == Some(v),
            None => c.labels.contains_key(k),
        }) && any(&self.names, &|n| name_matches(&c.name, n))
            && any(&self.statuses, &|s| {
                s == crate::cli::docker_view::status_word(c)
            })
            && any(&self.ids, &|id| c.id.starts_with(id))
            && any(&self.ancestors, &|a| ancestor_matches(c, a))
            && any(&self.networks, &|n| c.network.as_deref() == Some(n))
            && (self.exited.is_empty()
                || c.status == crate::store::state::Status::Exited
                    && c.exit_code.is_some_and(|code| self.exited.contains(&code)))
    }

    /// The lines of a `--format` template, when one was given.
    /// `status` and `ago` word a container's status and a duration as `ps`'s table does.
    pub fn render(
        &self,
        containers: &[ContainerState],
        status: &dyn Fn(&ContainerState) -> String,
        ago: &dyn Fn(u64) -> String,
    ) -> Result<Option<String>> {
        let Some((table, t)) = &self.template else {
            return Ok(None);
        };
        let mut lines = vec![];
        if *table {
            lines.push(t.render(&headers())?);
        }
        for c in containers {
            lines.push(t.render(&row(c, status(c), ago))?);
        }
        let text = lines.join("\n");
        Ok(Some(if *table {
            crate::cli::stats::tabulate(&text)
        } else {
            text
        }))
    }
}

/// docker's name filter is a regular expression; minibox's is a substring, with `^` and `$`
/// anchoring it at the start and the end.
fn name_matches(name: &str, pattern: &str) -> bool {
    let (start, rest) = match pattern.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, pattern),
    };
    let (end, core) = match rest.strip_suffix('$') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    match (start, end) {
        (true, true) => name == core,
        (true, false) => name.starts_with(core),
        (false, true) => name.ends_with(core),
        (false, false) => name.contains(core),
    }
}

/// An image by name (`name` is `name:latest`), full reference, or id (with or without
/// `sha256:`, or a prefix of it).
fn ancestor_matches(c: &ContainerState, wanted: &str) -> bool {
    let Some(image) = &c.image else {
        return false;
    };
    let hex = image.id.strip_prefix("sha256:").unwrap_or(&image.id);
    let wanted_hex = wanted.strip_prefix("sha256:").unwrap_or(wanted);
    image.reference == wanted
        || image.reference == normalize(wanted)
        || (wanted_hex.len() >= 4 && hex.starts_with(wanted_hex))
}

/// docker's `ps` template fields for one container.
fn row(c: &ContainerState, status: String, ago: &dyn Fn(u64) -> String) -> Value {
    let now = crate::store::state::now_ms();
    let mut command = format!("\"{}\"", c.command.join(" "));
    if command.chars().count() > 22 {
        command = format!("{}…\"", command.chars().take(20).collect::<String>());
    }
    let ports = if c.is_running() {
        c.ports
            .iter()
            .map(|p| p.display())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        String::new()
    };
    json!({
        "ID": c.short_id(),
        "Names": c.name,
        "Image": c.image.as_ref().map_or_else(|| c.rootfs.display().to_string(), |i| i.reference.clone()),
        "Command": command,
        "CreatedAt": crate::text::rfc3339(c.created_ms),
        "RunningFor": format!("{} ago", ago(now.saturating_sub(c.created_ms))),
        "Ports": ports,
        "State": crate::cli::docker_view::status_word(c),
        "Status": status,
        "Labels": c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "Mounts": c.volumes.join(","),
        "Networks": c.network.clone().unwrap_or_default(),
        "Size": "",
    })
}

fn headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
        "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
        "Status": "STATUS", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
        "Size": "SIZE",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_substrings_with_anchors() {
        assert!(name_matches("wo-web-1", "web"));
        assert!(name_matches("wo-web-1", "^wo-"));
        assert!(!name_matches("wo-web-1", "^web"));
        assert!(name_matches("wo-web-1", "-1$"));
        assert!(name_matches("web", "^web$"));
        assert!(!name_matches("web2", "^web$"));
    }

    #[test]
    fn bad_filters_are_refused_by_name() {
        let e = Selection::parse(&["color=red".into()], "table").unwrap_err();
        assert!(e.to_string().contains("invalid filter 'color'"), "{e}");
        let e = Selection::parse(&["status=sleepy".into()], "table").unwrap_err();
        assert!(e.to_string().contains("status=sleepy"), "{e}");
        assert!(Selection::parse(&["label".into()], "table").is_err());
        assert!(Selection::parse(&["status=exited".into()], "table")
            .unwrap()
            .all());
    }
}
