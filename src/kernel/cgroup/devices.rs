//! The device cgroup: which device nodes a container may read, write or make.
//!
//! Namespaces do not cover devices: a node of a host disk, made anywhere the container may write
//! (with CAP_MKNOD) or bound in, opens the host's disk. The kernel's device controller checks
//! every `open` of a node and every `mknod` against a list of rules. The list is OCI's
//! `linux.resources.devices`: each rule allows or denies `a` (all), `c` or `b` devices, one
//! major/minor or all (`*`), for `r`ead, `w`rite and/or `m`knod.
//!
//! The rules are read as the cgroup v1 controller reads its `devices.allow` / `devices.deny`
//! writes, which runc emulates for cgroup v2 too, so both drivers enforce the same thing:
//!
//! - a rule of type `a` starts over: everything allowed (`allow`), or everything denied;
//! - any other rule adds an exception to that default (an allow to a deny-all list, or a deny to
//!   an allow-all one), or takes access away from the exception for exactly that type and
//!   numbers. It cannot take access away from *part* of a wildcard exception (`c 1:3` out of
//!   `c *:*`): v1 would silently keep it, so such a list is refused, as runc refuses it;
//! - a list that never says otherwise allows everything (an empty list is no device cgroup).
//!
//! After the container's own rules come the runtime's (runc's and crun's): mknod of any node,
//! and the nodes every container has (`/dev/null`, `zero`, `full`, `random`, `urandom`, `tty`,
//! `/dev/pts/*`, `/dev/ptmx`, and `/dev/net/tun` as Docker always had). One difference: a default
//! node the container's list itself *denies by name* (after its last `a` rule) keeps that denial.
//!
//! `Filter` is the outcome: a default and its exceptions. The v1 driver writes it into
//! `devices.deny`/`devices.allow`; `bpf` compiles it into the program the v2 driver attaches.

use std::fmt;

use anyhow::{bail, Result};

/// Which devices a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `a`: every device (a rule of this type starts the list over).
    All,
    /// `c`: character devices.
    Char,
    /// `b`: block devices.
    Block,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::All => 'a',
            Kind::Char => 'c',
            Kind::Block => 'b',
        }
    }
}

/// `r`, `w` and `m`, as the bits the kernel's BPF device programs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(u8);

impl Access {
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const ALL: Access = Access(7);
    pub const NONE: Access = Access(0);

    /// `rwm`, `rw`, `m`...: letters of r, w and m, at least one.
    pub fn parse(text: &str) -> Option<Access> {
        let mut access = Access::NONE;
        for c in text.chars() {
            access = access.union(match c {
                'r' => Access::READ,
                'w' => Access::WRITE,
                'm' => Access::MKNOD,
                _ => return None,
            });
        }
        (access != Access::NONE).then_some(access)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    pub fn minus(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }

    pub fn intersection(self, other: Access) -> Access {
        Access(self.0 & other.0)
    }

    pub fn overlaps(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }

    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.contains(bit) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// The largest major and minor numbers a Linux device can have (12 and 20 bits).
pub const MAX_MAJOR: u32 = (1 << 12) - 1;
pub const MAX_MINOR: u32 = (1 << 20) - 1;

/// Which nodes: a type and its numbers, `None` for `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nodes {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
}

impl fmt::Display for Nodes {
    /// cgroup v1's spelling: `c 1:3`, `b *:*`, `a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == Kind::All {
            return write!(f, "a");
        }
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{}",
            self.kind.letter(),
            num(self.major),
            num(self.minor)
        )
    }
}

/// One rule of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    pub allow: bool,
    pub nodes: Nodes,
    pub access: Access,
}

impl Rule {
    /// A rule, its numbers checked against what a device number can hold.
    pub fn new(
        allow: bool,
        kind: Kind,
        major: Option<u32>,
        minor: Option<u32>,
        access: Access,
    ) -> Result<Rule> {
        if major.is_some_and(|m| m > MAX_MAJOR) {
            bail!(
                "major {} is out of range: a device's major is 0 to {MAX_MAJOR}",
                major.unwrap_or(0)
            );
        }
        if minor.is_some_and(|m| m > MAX_MINOR) {
            bail!(
                "minor {} is out of range: a device's minor is 0 to {MAX_MINOR}",
                minor.unwrap_or(0)
            );
        }
        Ok(Rule {
            allow,
            nodes: Nodes { kind, major, minor },
            access,
        })
    }

    /// A rule in cgroup v1's words, `allow c 1:3 rwm`; `*` for a wildcard. For the lists below
    /// and tests; config.json's rules come through `Rule::new`.
    pub fn parse(text: &str) -> Result<Rule> {
        let bad = || anyhow::anyhow!("invalid device rule {text:?}: use e.g. \"allow c 1:3 rwm\"");
        let mut words = text.split_whitespace();
        let allow = match words.next() {
            Some("allow") => true,
            Some("deny") => false,
            _ => return Err(bad()),
        };
        let kind = match words.next() {
            Some("a") => Kind::All,
            Some("c") => Kind::Char,
            Some("b") => Kind::Block,
            _ => return Err(bad()),
        };
        let (major, minor, access) = if kind == Kind::All {
            (None, None, words.next().unwrap_or("rwm"))
        } else {
            let (major, minor) = words
                .next()
                .and_then(|n| n.split_once(':'))
                .ok_or_else(bad)?;
            let num = |n: &str| -> Result<Option<u32>> {
                if n == "*" {
                    Ok(None)
                } else {
                    n.parse().map(Some).map_err(|_| bad())
                }
            };
            (num(major)?, num(minor)?, words.next().ok_or_else(bad)?)
        };
        let access = Access::parse(access).ok_or_else(bad)?;
        if words.next().is_some() {
            return Err(bad());
        }
        Rule::new(allow, kind, major, minor, access)
    }

    fn resets(&self) -> bool {
        self.nodes.kind == Kind::All
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.allow { "allow" } else { "deny" };
        write!(f, "{verb} {} {}", self.nodes, self.access)
    }
}

/// Docker's own list (moby `oci/defaults.go`), which `minibox run` writes into config.json as
/// docker does: deny all; the six nodes of `/dev` and `/dev/console` read, written and made;
/// `/dev/fuse` (10:229) denied. The runtime's rules (`RUNTIME_DEFAULTS`) come after it.
pub const DOCKER_DEFAULT: [&str; 8] = [
    "deny a rwm",
    "allow c 1:5 rwm",
    "allow c 1:3 rwm",
    "allow c 1:9 rwm",
    "allow c 1:8 rwm",
    "allow c 5:0 rwm",
    "allow c 5:1 rwm",
    "deny c 10:229 rwm",
];

/// What the runtime adds after every container's list (runc's `AllowedDevices`, crun's
/// `default_devices`): mknod of any node (docker's builds and images make nodes), the default
/// nodes, the ptys, and `/dev/net/tun`.
pub const RUNTIME_DEFAULTS: [&str; 11] = [
    "allow c *:* m",
    "allow b *:* m",
    "allow c 1:3 rwm",
    "allow c 1:8 rwm",
    "allow c 1:7 rwm",
    "allow c 5:0 rwm",
    "allow c 1:5 rwm",
    "allow c 1:9 rwm",
    "allow c 136:* rwm",
    "allow c 5:2 rwm",
    "allow c 10:200 rwm",
];

fn parse_list(list: &[&str]) -> Vec<Rule> {
    list.iter().filter_map(|r| Rule::parse(r).ok()).collect()
}

/// Where a container's list comes from, for `--explain` and `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// `linux.resources.devices` of a bundle's config.json.
    #[default]
    Config,
    /// `minibox run`: docker's default list, then one allow per `--device`.
    Docker,
}

/// A container's device rules, as config.json lists them (the runtime's come on top).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceRules {
    pub source: Source,
    pub rules: Vec<Rule>,
}

impl DeviceRules {
    /// docker's default list.
    pub fn docker() -> DeviceRules {
        DeviceRules {
            source: Source::Docker,
            rules: parse_list(&DOCKER_DEFAULT),
        }
    }

    /// The rules a bundle gives: docker's when they begin with docker's list (a config.json
    /// that `minibox spec` or dockerd wrote).
    pub fn config(rules: Vec<Rule>) -> DeviceRules {
        let source = if rules.starts_with(&DeviceRules::docker().rules) {
            Source::Docker
        } else {
            Source::Config
        };
        DeviceRules { source, rules }
    }

    /// What the kernel is to enforce; an error names a rule the device cgroup cannot apply.
    pub fn filter(&self) -> Result<Filter> {
        Filter::build(&self.rules)
    }

    /// One line for people: `docker default + 1 --device: 13 device rules, all others denied`.
    pub fn summary(&self) -> String {
        let origin = match self.source {
            Source::Docker => match self.rules.len().saturating_sub(DOCKER_DEFAULT.len()) {
                0 => "docker default".to_string(),
                n => format!("docker default + {n} --device"),
            },
            Source::Config => "linux.resources.devices".to_string(),
        };
        match self.filter() {
            Ok(f) => format!("{origin}: {}", f.summary()),
            Err(e) => format!("{origin}: {e}"),
        }
    }
}

/// The outcome of a rule list: a default, and the exceptions to it, in the order they were
/// first made (the order a v1 `devices.list` shows them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub default_allow: bool,
    pub exceptions: Vec<(Nodes, Access)>,
}

impl Filter {
    /// Applies `rules`, then the runtime's defaults (but those the rules deny by name).
    pub fn build(rules: &[Rule]) -> Result<Filter> {
        let mut filter = Filter {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for (i, rule) in rules.iter().enumerate() {
            filter
                .apply(rule)
                .map_err(|e| anyhow::anyhow!("linux.resources.devices[{i}] ({rule}): {e}"))?;
        }
        let since_reset = rules.iter().rposition(Rule::resets).map_or(0, |i| i + 1);
        let denied_by_name = |nodes: &Nodes| {
            rules[since_reset..]
                .iter()
                .any(|r| !r.allow && r.nodes == *nodes)
        };
        for rule in parse_list(&RUNTIME_DEFAULTS) {
            if denied_by_name(&rule.nodes) {
                continue;
            }
            filter.apply(&rule).map_err(|e| {
                anyhow::anyhow!(
                    "the runtime's default rule {rule}, added after linux.resources.devices: {e}"
                )
            })?;
        }
        Ok(filter)
    }

    /// One rule, as the v1 controller takes a write to `devices.allow` or `devices.deny`.
    fn apply(&mut self, rule: &Rule) -> Result<()> {
        if rule.resets() {
            self.default_allow = rule.allow;
            self.exceptions.clear();
            return Ok(());
        }
        if rule.allow != self.default_allow {
            match self.exceptions.iter_mut().find(|(n, _)| *n == rule.nodes) {
                Some((_, access)) => *access = access.union(rule.access),
                None => self.exceptions.push((rule.nodes, rule.access)),
            }
            return Ok(());
        }
        // Taking access away: only from the exception for exactly these nodes. A wildcard
        // exception covering them would keep it (v1 cannot split one), so that is refused.
        let n = rule.nodes;
        for wider in [
            Nodes { major: None, ..n },
            Nodes { minor: None, ..n },
            Nodes {
                major: None,
                minor: None,
                ..n
            },
        ] {
            if wider == n {
                continue;
            }
            if let Some((_, access)) = self
                .exceptions
                .iter()
                .find(|(e, a)| *e == wider && a.overlaps(rule.access))
            {
                let verb = if self.default_allow { "deny" } else { "allow" };
                bail!(
                    "it would take {} away from part of the earlier {verb} {wider} {access}, \
                     which the device cgroup cannot do (runc refuses it too); list narrower \
                     rules instead",
                    rule.access.intersection(*access),
                );
            }
        }
        if let Some(i) = self.exceptions.iter().position(|(e, _)| *e == n) {
            let left = self.exceptions[i].1.minus(rule.access);
            if left.is_empty() {
                self.exceptions.remove(i);
            } else {
                self.exceptions[i].1 = left;
            }
        }
        Ok(())
    }

    /// True when nothing is restricted: no device cgroup needs loading.
    pub fn allows_all(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// Whether a process may have `access` to a node, as the kernel decides (the reference the
    /// tests hold both drivers to): in a deny-all list
    /// one exception must cover all of it; in an allow-all list an exception sharing any of it
    /// denies (v1's `match_exception` and `match_exception_partial`).
    #[cfg(test)]
    pub fn allows(&self, kind: Kind, major: u32, minor: u32, access: Access) -> bool {
        let covers = |n: &Nodes| {
            n.kind == kind
                && n.major.is_none_or(|m| m == major)
                && n.minor.is_none_or(|m| m == minor)
        };
        let mut matching = self.exceptions.iter().filter(|(n, _)| covers(n));
        if self.default_allow {
            !matching.any(|(_, a)| a.overlaps(access))
        } else {
            matching.any(|(_, a)| a.contains(access))
        }
    }

    /// The writes that give a new v1 group this filter: the reset (`a` to `devices.deny`, or to
    /// `devices.allow`), then one exception per write, in order.
    pub fn v1_writes(&self) -> Vec<(&'static str, String)> {
        let (reset, exception) = if self.default_allow {
            ("devices.allow", "devices.deny")
        } else {
            ("devices.deny", "devices.allow")
        };
        std::iter::once((reset, "a".to_string()))
            .chain(
                self.exceptions
                    .iter()
                    .map(|(n, a)| (exception, format!("{n} {a}"))),
            )
            .collect()
    }

    /// `12 device rules, all others denied`, `all devices allowed but 2 rules`, `all devices
    /// allowed`.
    pub fn summary(&self) -> String {
        Filter::summary_of(self.default_allow, self.exceptions.len())
    }

    /// The same from a default and a number of exceptions (as read back from the kernel).
    pub fn summary_of(default_allow: bool, exceptions: usize) -> String {
        match (default_allow, exceptions) {
            (true, 0) => "all devices allowed".into(),
            (true, n) => format!("all devices allowed but {n} rule{}", plural(n)),
            (false, n) => format!("{n} device rule{}, all others denied", plural(n)),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<Rule> {
        list.iter().map(|r| Rule::parse(r).unwrap()).collect()
    }

    fn filter(list: &[&str]) -> Filter {
        Filter::build(&rules(list)).unwrap()
    }

    const RW: Access = Access(6);

    #[test]
    fn rules_read_and_print_in_the_kernels_words() {
        for text in [
            "allow c 1:3 rwm",
            "deny b *:* m",
            "allow c 136:* rw",
            "deny a rwm",
        ] {
            assert_eq!(Rule::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Rule::parse("deny a").unwrap().to_string(), "deny a rwm");
        assert_eq!(Access::parse("mwr"), Some(Access::ALL));
        assert_eq!(Access::parse("rw").unwrap().to_string(), "rw");
        for bad in ["", "x", "rwx"] {
            assert_eq!(Access::parse(bad), None, "{bad:?}");
        }
        for bad in [
            "permit c 1:3 r",
            "allow d 1:3 r",
            "allow c 1 r",
            "allow c 1:3",
            "allow c 1:3 rwq",
            "allow c x:3 r",
            "allow c 4096:0 r",
            "allow b 8:1048576 r",
            "allow c 1:3 r extra",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = Rule::parse("allow c 4096:0 r").unwrap_err().to_string();
        assert!(e.contains("major 4096 is out of range"), "{e}");
    }

    #[test]
    fn docker_default_denies_all_but_the_default_nodes_and_mknod() {
        let f = DeviceRules::docker().filter().unwrap();
        assert!(!f.default_allow);
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
            (10, 200),
        ] {
            assert!(f.allows(Kind::Char, major, minor, RW), "c {major}:{minor}");
        }
        assert!(f.allows(Kind::Char, 136, 7, RW), "a pty");
        // Any node may be made, none other opened: not the host's disk, not /dev/mem.
        assert!(f.allows(Kind::Block, 8, 0, Access::MKNOD));
        assert!(f.allows(Kind::Char, 1, 1, Access::MKNOD));
        assert!(!f.allows(Kind::Block, 8, 0, Access::READ));
        assert!(!f.allows(Kind::Block, 254, 0, RW));
        assert!(!f.allows(Kind::Char, 1, 1, Access::READ), "/dev/mem");
        assert!(!f.allows(Kind::Char, 10, 229, Access::READ), "/dev/fuse");
        assert!(!f.allows(Kind::Char, 1, 3, Access::ALL.union(Access(8))));
        assert_eq!(f.exceptions.len(), 12);
        assert_eq!(
            DeviceRules::docker().summary(),
            "docker default: 12 device rules, all others denied"
        );
    }

    #[test]
    fn the_last_matching_rule_decides_and_a_reset_forgets_what_came_before() {
        let f = filter(&["allow c 1:3 rwm", "deny a", "allow b 8:0 r", "deny b 8:0 r"]);
        assert!(!f.allows(Kind::Block, 8, 0, Access::READ));
        assert!(
            f.allows(Kind::Char, 1, 3, RW),
            "a runtime default, after the reset"
        );
        let f = filter(&["deny a", "allow b 8:0 rw", "deny b 8:0 w"]);
        assert!(f.allows(Kind::Block, 8, 0, Access::READ));
        assert!(!f.allows(Kind::Block, 8, 0, RW));
        let f = filter(&["deny a", "allow b 8:0 rw", "allow a"]);
        assert!(f.allows_all(), "{f:?}");
        assert!(f.allows(Kind::Block, 9, 9, RW));
    }

    #[test]
    fn an_empty_list_allows_everything_and_loads_nothing() {
        let f = filter(&[]);
        assert!(f.allows_all(), "{f:?}");
        assert_eq!(f.summary(), "all devices allowed");
        assert!(DeviceRules::default().filter().unwrap().allows_all());
    }

    #[test]
    fn an_allow_all_list_denies_what_it_names_for_any_access_it_shares() {
        let f = filter(&["deny b 8:* w"]);
        assert!(f.default_allow);
        assert!(f.allows(Kind::Block, 8, 1, Access::READ));
        assert!(!f.allows(Kind::Block, 8, 1, RW), "rw shares w");
        assert!(f.allows(Kind::Char, 8, 1, RW));
        assert_eq!(f.summary(), "all devices allowed but 1 rule");
    }

    #[test]
    fn a_default_node_the_list_denies_by_name_stays_denied() {
        let f = filter(&["deny a", "allow c 1:5 rwm", "deny c 1:3 rwm"]);
        assert!(!f.allows(Kind::Char, 1, 3, Access::READ), "/dev/null");
        assert!(f.allows(Kind::Char, 1, 5, RW));
        assert!(f.allows(Kind::Char, 1, 9, RW), "other defaults stay");
        // Engines list deny-all first and count on the defaults: they still come.
        let podman = filter(&["deny a rwm", "allow c 10:229 rwm"]);
        assert!(podman.allows(Kind::Char, 1, 3, RW));
        assert!(podman.allows(Kind::Char, 10, 229, RW));
        // A denial before the last reset names nothing any more.
        let f = filter(&["deny c 1:3 rwm", "deny a"]);
        assert!(f.allows(Kind::Char, 1, 3, RW));
        // No mknod at all, when asked.
        let f = filter(&["deny a", "deny c *:* m", "deny b *:* m"]);
        assert!(!f.allows(Kind::Block, 8, 0, Access::MKNOD));
        assert!(!f.allows(Kind::Char, 4, 0, Access::MKNOD));
        assert!(
            f.allows(Kind::Char, 1, 3, Access::ALL),
            "its own rule covers m"
        );
    }

    #[test]
    fn a_hole_in_a_wildcard_is_refused_naming_the_rule() {
        let e = Filter::build(&rules(&["deny a", "allow c *:* rwm", "deny c 1:3 rw"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux.resources.devices[2] (deny c 1:3 rw)")
                && e.contains("allow c *:* rwm"),
            "{e}"
        );
        // Docker's own list denies fuse before the runtime's mknod wildcard comes: no hole.
        assert!(DeviceRules::docker().filter().is_ok());
        // An allow-all list whose deny wildcard a default would punch: named too.
        let e = Filter::build(&rules(&["deny c *:* rwm"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the runtime's default rule allow c 1:3 rwm"),
            "{e}"
        );
    }

    #[test]
    fn a_legacy_group_gets_the_reset_then_each_exception_in_order() {
        let f = filter(&[
            "deny a",
            "allow c 10:229 rwm",
            "allow b 8:20 rw",
            "allow b 10:200 r",
        ]);
        let writes = f.v1_writes();
        assert_eq!(writes[0], ("devices.deny", "a".to_string()));
        let lines: Vec<&str> = writes[1..].iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            &lines[..5],
            [
                "c 10:229 rwm",
                "b 8:20 rw",
                "b 10:200 r",
                "c *:* m",
                "b *:* m"
            ]
        );
        assert!(writes[1..].iter().all(|(file, _)| *file == "devices.allow"));
        let allow_all = filter(&["deny b 8:* w"]);
        assert_eq!(
            allow_all.v1_writes(),
            [
                ("devices.allow", "a".to_string()),
                ("devices.deny", "b 8:* w".to_string())
            ]
        );
    }

    #[test]
    fn summaries_say_where_the_rules_come_from() {
        let mut docker = DeviceRules::docker();
        docker.rules.push(Rule::parse("allow b 8:0 rwm").unwrap());
        assert_eq!(
            docker.summary(),
            "docker default + 1 --device: 13 device rules, all others denied"
        );
        assert_eq!(DeviceRules::config(docker.rules.clone()), docker);
        let bundle = DeviceRules::config(rules(&["deny a"]));
        assert_eq!(
            bundle.summary(),
            "linux.resources.devices: 11 device rules, all others denied"
        );
    }
}
