//! The picture: `Facts` → one self-contained SVG (no script, no external font, image or link).
//!
//! The host on the left, the container on the right inside a dashed line — its boundary — and
//! one band per part of a container, top to bottom: namespaces, processes and their rights,
//! the cgroup, the root filesystem, the network; a legend closes it. What belongs to the host
//! is drawn in blue, what is the container's own in green, what it shares with the host in
//! grey, what it cannot see in red, what it cannot change in amber.
//!
//! Every string that comes from the container, its image or its records goes through `esc`
//! (XML-escaped, control characters shown as escapes), so a command line such as
//! `</text><script>` is only ever text.

use std::fmt::Write as _;

use super::facts::{Facts, Mount, Role, NAMESPACE_WORDS};
use crate::kernel::cgroup::human_bytes;

pub const WIDTH: f64 = 1040.0;
const HOST_X: f64 = 20.0;
const HOST_W: f64 = 328.0;
const BOX_X: f64 = 364.0;
const CX: f64 = 380.0;
const CW: f64 = 636.0;
const MONO_PX: f64 = 7.3;
const SANS_PX: f64 = 7.6;

/// Colours: (fill, stroke) per meaning; the legend names each.
const NEW: (&str, &str) = ("#dcf3e4", "#2f855a");
const SHARED: (&str, &str) = ("#e6e9ee", "#6b7280");
const HOSTC: (&str, &str) = ("#dbeafe", "#2b6cb0");
const HIDDEN: (&str, &str) = ("#fde2e1", "#c53030");
const FROZEN: (&str, &str) = ("#fdf0c9", "#b7791f");

const STYLE: &str = "
.mb text{font-family:'DejaVu Sans','Liberation Sans',Arial,sans-serif;font-size:13px;fill:#1a202c}
.mb .m{font-family:'DejaVu Sans Mono','Liberation Mono',monospace;font-size:12px}
.mb .s{font-size:12px;fill:#4a5568}
.mb .b{font-weight:bold}
.mb .h{font-size:16px;font-weight:bold}
.mb .k{font-size:11px;font-weight:bold;letter-spacing:1px}
.mb .title{font-size:22px;font-weight:bold}
.mb .host{fill:#1e4e8c}
.mb .own{fill:#1f6f43}
.mb .red{fill:#9b2c2c}
";

/// Text fit for SVG/XML: `&`, `<`, `>`, quotes escaped; characters XML cannot hold at all
/// (control characters but tab and newline, U+FFFE, U+FFFF) shown as `\xNN`-style escapes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` in at most `max` characters: the middle left out (`…`), which keeps both a path's
/// start and its file name.
pub fn fit(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max || max < 5 {
        return text.to_string();
    }
    let head = (max - 1) * 2 / 3;
    let tail = max - 1 - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// `text` broken into lines of at most `max` characters, after a `/`, `,` or space when one
/// is near.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut lines = vec![];
    let mut start = 0;
    while chars.len() - start > max {
        let window = &chars[start..start + max];
        let cut = window
            .iter()
            .rposition(|c| matches!(c, '/' | ',' | ' '))
            .filter(|p| *p > max / 2)
            .map_or(max, |p| p + 1);
        lines.push(chars[start..start + cut].iter().collect());
        start += cut;
    }
    lines.push(chars[start..].iter().collect());
    lines
}

fn mono_chars(px: f64) -> usize {
    (px / MONO_PX) as usize
}

fn sans_chars(px: f64) -> usize {
    (px / SANS_PX) as usize
}

/// The SVG being written, with the height reached so far.
struct Pen {
    out: String,
    y: f64,
}

impl Pen {
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, (fill, stroke): (&str, &str)) {
        let _ = write!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="5" fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>"#
        );
    }

    /// One line of text; `class` from STYLE; `id` lets tests find a value.
    fn text(&mut self, x: f64, y: f64, class: &str, content: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" class="{class}">{}</text>"#,
            esc(content)
        );
    }

    /// Text whose part `value` is a value the tests compare: `before` `value` `after`.
    fn value(&mut self, x: f64, y: f64, class: &str, id: &str, parts: (&str, &str, &str)) {
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" class="{class}">{}<tspan id="{id}" class="b">{}</tspan>{}</text>"#,
            esc(parts.0),
            esc(parts.1),
            esc(parts.2)
        );
    }

    /// Text that may have been shortened, with the whole of it as a tooltip.
    fn text_full(&mut self, x: f64, y: f64, class: &str, shown: &str, full: &str) {
        if shown == full {
            return self.text(x, y, class, shown);
        }
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" class="{class}"><title>{}</title>{}</text>"#,
            esc(full),
            esc(shown)
        );
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, color: &str, dashed: bool) {
        let dash = if dashed {
            r#" stroke-dasharray="5 4""#
        } else {
            ""
        };
        let _ = write!(
            self.out,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{color}" stroke-width="2"{dash}/>"#
        );
    }

    /// A link from a host item to a container item, across the boundary.
    fn link(&mut self, y: f64, color: &str) {
        self.line(HOST_X + HOST_W, y, CX, y, color, false);
        let _ = write!(
            self.out,
            r#"<circle cx="{:.1}" cy="{y:.1}" r="3.5" fill="{color}"/><circle cx="{CX:.1}" cy="{y:.1}" r="3.5" fill="{color}"/>"#,
            HOST_X + HOST_W
        );
    }

    /// A bar: `part` of `whole` (clamped), `label` after it.
    fn bar(&mut self, x: f64, y: f64, w: f64, fraction: Option<f64>) {
        self.rect(x, y, w, 14.0, ("#edf2f7", "#a0aec0"));
        if let Some(f) = fraction {
            let f = f.clamp(0.0, 1.0);
            let color = if f >= 0.95 {
                "#c53030"
            } else if f >= 0.8 {
                "#dd6b20"
            } else {
                "#3182ce"
            };
            if f > 0.0 {
                let _ = write!(
                    self.out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="14" rx="5" fill="{color}"/>"#,
                    (w * f).max(3.0)
                );
            }
        }
    }

    /// A band's heading, across both sides.
    fn heading(&mut self, n: usize, title: &str, words: &str) {
        self.y += 22.0;
        self.line(HOST_X, self.y, WIDTH - 20.0, self.y, "#cbd5e0", false);
        self.y += 24.0;
        self.text(HOST_X, self.y, "h", &format!("{n}. {title}"));
        // The words on the container's side: nothing crosses its boundary but the links.
        for (i, l) in wrap(words, sans_chars(CW) * 13 / 12).iter().enumerate() {
            self.text(CX, self.y + 16.0 * i as f64, "s", l);
            if i > 0 {
                self.y += 16.0;
            }
        }
        self.y += 14.0;
    }
}

/// The whole picture.
pub fn render(f: &Facts) -> String {
    let mut p = Pen {
        out: String::new(),
        y: 0.0,
    };
    header(&mut p, f);
    let top = p.y + 6.0;
    p.y += 40.0;
    namespaces(&mut p, f);
    processes(&mut p, f);
    cgroup(&mut p, f);
    filesystem(&mut p, f);
    network(&mut p, f);
    let bottom = p.y + 22.0;
    let body = std::mem::take(&mut p.out);
    p.y = bottom + 16.0;
    legend(&mut p);
    let height = p.y + 16.0;
    let mut svg = String::with_capacity(body.len() + 4096);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="mb" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-labelledby="mb-title"><title id="mb-title">{}</title><style>{STYLE}</style>"#,
        esc(&format!(
            "minibox show: container {} ({}), read from the kernel at {}",
            f.name,
            short(&f.id),
            super::facts::utc(f.taken_ms)
        ))
    );
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height:.0}" fill="#ffffff"/>"##
    );
    // The two sides: the host's ground, and the container's boundary.
    let _ = write!(
        svg,
        r##"<rect x="8" y="{top:.1}" width="{:.1}" height="{:.1}" rx="10" fill="#f1f5fb"/>"##,
        WIDTH - 16.0,
        bottom - top
    );
    let _ = write!(
        svg,
        r##"<rect x="{BOX_X}" y="{:.1}" width="{:.1}" height="{:.1}" rx="12" fill="#ffffff" stroke="#1f6f43" stroke-width="3" stroke-dasharray="10 6"/>"##,
        top + 8.0,
        WIDTH - 16.0 - BOX_X,
        bottom - top - 16.0
    );
    let _ = write!(
        svg,
        r#"<text x="{HOST_X}" y="{:.1}" class="k host">THE HOST</text><text x="{:.1}" y="{:.1}" class="s">this machine, outside the container</text><text x="{CX}" y="{:.1}" class="k own">THE CONTAINER</text><text x="{:.1}" y="{:.1}" class="s">what its processes see: everything inside the dashed line</text>"#,
        top + 28.0,
        HOST_X + 80.0,
        top + 28.0,
        top + 28.0,
        CX + 118.0,
        top + 28.0
    );
    svg.push_str(&body);
    svg.push_str(&p.out);
    svg.push_str("</svg>");
    svg
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

fn header(p: &mut Pen, f: &Facts) {
    p.y = 34.0;
    p.value(
        HOST_X,
        p.y,
        "title",
        "show-name",
        ("Container ", &f.name, &format!("  ({})", short(&f.id))),
    );
    p.y += 24.0;
    let image = f
        .image
        .as_deref()
        .map_or("a ROOTFS directory".to_string(), |i| format!("image {i}"));
    let cmd = f.command.join(" ");
    let line = format!("{} · made from {image} · runs ", f.status);
    p.text(HOST_X, p.y, "t", &line);
    let x = HOST_X + SANS_PX * line.chars().count() as f64 + 6.0;
    let room = mono_chars(WIDTH - 20.0 - x);
    p.text_full(x, p.y, "m", &fit(&cmd, room), &cmd);
    p.y += 22.0;
    p.text(
        HOST_X,
        p.y,
        "s",
        "A container is ordinary processes of this machine, in new namespaces, held by a cgroup, on a root filesystem of its own, with fewer rights.",
    );
    p.y += 17.0;
    p.text(
        HOST_X,
        p.y,
        "s",
        &format!(
            "Every value below was read from the kernel of {} ({}) at {}.",
            f.host.hostname,
            f.host.kernel,
            super::facts::utc(f.taken_ms)
        ),
    );
}

fn namespaces(p: &mut Pen, f: &Facts) {
    let new = f.namespaces.iter().filter(|n| n.is_new()).count();
    p.heading(
        1,
        "Namespaces",
        &format!(
            "what it can see of the machine: {new} of {} new, the rest shared with the host",
            f.namespaces.len()
        ),
    );
    p.y += 14.0;
    p.text(HOST_X + 4.0, p.y, "s", "kind");
    p.text(HOST_X + 68.0, p.y, "s", "what it holds");
    p.text(HOST_X + 200.0, p.y, "s", "the host's, by number");
    p.text(
        CX,
        p.y,
        "s",
        "the container's: new (its own), or the host's very same one",
    );
    p.y += 4.0;
    for ns in &f.namespaces {
        let (_, what, own_words) = NAMESPACE_WORDS
            .iter()
            .find(|(k, _, _)| *k == ns.kind)
            .copied()
            .unwrap_or(("", "", ""));
        p.y += 6.0;
        let mid = p.y + 13.0;
        let inode = |i: Option<u64>| i.map_or("?".to_string(), |i| i.to_string());
        p.text(HOST_X + 4.0, mid + 4.5, "b", &ns.kind);
        p.text(HOST_X + 68.0, mid + 4.5, "s", what);
        if ns.is_new() {
            p.rect(HOST_X + 196.0, p.y, HOST_W - 196.0, 26.0, HOSTC);
            p.text(HOST_X + 204.0, mid + 4.5, "m host", &inode(ns.host));
            p.rect(CX, p.y, CW, 26.0, NEW);
            p.value(
                CX + 10.0,
                mid + 4.5,
                "t",
                &format!("show-ns-{}", ns.kind),
                (
                    "new ",
                    &inode(ns.container),
                    &format!(" — {own_words}: cannot see the host's"),
                ),
            );
        } else {
            // One band across the boundary: the same namespace on both sides.
            p.rect(HOST_X + 196.0, p.y, CX + CW - HOST_X - 196.0, 26.0, SHARED);
            p.text(HOST_X + 204.0, mid + 4.5, "m", &inode(ns.host));
            p.value(
                CX + 10.0,
                mid + 4.5,
                "t",
                &format!("show-ns-{}", ns.kind),
                (
                    "shared with the host: the same ",
                    &inode(ns.container),
                    &format!(" — it sees the host's {what}"),
                ),
            );
        }
        p.y += 26.0;
    }
}

fn processes(p: &mut Pen, f: &Facts) {
    p.heading(
        2,
        "Processes",
        &format!(
            "{} running, each with two pids: the container's own, and the host's",
            f.processes.len()
        ),
    );
    const SHOWN: usize = 12;
    for (i, pr) in f.processes.iter().take(SHOWN).enumerate() {
        p.y += 8.0;
        let indent = 22.0 * pr.depth.min(6) as f64;
        let x = CX + indent;
        let w = CW - indent;
        p.rect(x, p.y, w, 44.0, NEW);
        let top = p.y + 18.0;
        let label = format!("pid {}", pr.pid);
        p.text(x + 10.0, top, "b own", &label);
        let room = mono_chars(w - 30.0 - SANS_PX * label.len() as f64);
        p.text_full(
            x + 22.0 + SANS_PX * label.len() as f64,
            top,
            "m",
            &fit(&pr.cmd, room),
            &pr.cmd,
        );
        let user = match (&pr.user, pr.uid) {
            (Some(n), Some(u)) => format!("user {n} (uid {u}"),
            (None, Some(u)) => format!("uid {u}"),
            _ => "uid ?".into(),
        };
        let user = match pr.gid {
            Some(g) if user.contains('(') => format!("{user}, gid {g})"),
            Some(g) => format!("{user}, gid {g}"),
            None if user.contains('(') => format!("{user})"),
            None => user,
        };
        let seccomp = match pr.seccomp {
            Some(2) => "seccomp filter",
            Some(1) => "seccomp strict",
            _ => "no seccomp filter",
        };
        p.text(
            x + 10.0,
            top + 18.0,
            "s",
            &format!(
                "{user} · {} capabilities · no_new_privs {} · {seccomp} · state {}",
                pr.capabilities,
                if pr.no_new_privs { "on" } else { "off" },
                pr.state
            ),
        );
        // The host's view of the same process.
        p.rect(HOST_X + 170.0, p.y + 8.0, HOST_W - 170.0, 28.0, HOSTC);
        if i == 0 {
            p.value(
                HOST_X + 180.0,
                p.y + 27.0,
                "t host",
                "show-pid",
                ("host pid ", &pr.host_pid.to_string(), ""),
            );
            let parent = match f.supervisor {
                Some(s) => format!("parent: minibox, {s}"),
                None => format!("parent: pid {}", pr.host_ppid),
            };
            p.text(HOST_X + 4.0, p.y + 27.0, "s", &parent);
        } else {
            p.text(
                HOST_X + 180.0,
                p.y + 27.0,
                "t host",
                &format!("host pid {}", pr.host_pid),
            );
        }
        p.link(p.y + 22.0, HOSTC.1);
        p.y += 44.0;
    }
    if f.processes.len() > SHOWN {
        p.y += 18.0;
        p.text(
            CX,
            p.y,
            "s",
            &format!(
                "… and {} more (minibox top lists them all)",
                f.processes.len() - SHOWN
            ),
        );
    }
    // Who it is on the host: the user namespace's map.
    p.y += 28.0;
    p.text(HOST_X + 4.0, p.y, "b", "user ids");
    if f.users.is_identity() || f.users.uid_map.is_empty() {
        let uid = f.processes.first().and_then(|pr| pr.uid);
        let who = uid.map_or("each uid".to_string(), |u| format!("uid {u}"));
        p.text(HOST_X + 80.0, p.y, "s", "the host's own map");
        p.text(
            CX,
            p.y,
            "t",
            &format!("No user namespace of its own: {who} inside is {who} on the host."),
        );
    } else {
        p.text(HOST_X + 80.0, p.y, "s", "/proc/PID/uid_map");
        for (i, r) in f.users.uid_map.iter().enumerate() {
            if i > 0 {
                p.y += 18.0;
            }
            let last = |a: u32| a.saturating_add(r.count.saturating_sub(1));
            p.value(
                CX,
                p.y,
                "t",
                &format!("show-uidmap-{i}"),
                (
                    "",
                    &format!(
                        "uid {}–{} inside = uid {}–{} on the host",
                        r.inside,
                        last(r.inside),
                        r.outside,
                        last(r.outside)
                    ),
                    if r.inside == 0 {
                        "  (its root is no one special outside)"
                    } else {
                        ""
                    },
                ),
            );
        }
    }
    rights(p, f);
}

fn rights(p: &mut Pen, f: &Facts) {
    let r = &f.rights;
    p.y += 26.0;
    p.text(HOST_X + 4.0, p.y, "b", "rights");
    p.text(HOST_X + 80.0, p.y, "s", "of its first process");
    let kept = if r.capabilities.is_empty() {
        "none: it can do nothing only root may do".to_string()
    } else {
        r.capabilities
            .iter()
            .map(|c| c.trim_start_matches("CAP_").to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lines = wrap(
        &format!(
            "capabilities: {} of {} kept — {kept}",
            r.capabilities.len(),
            r.all_capabilities
        ),
        sans_chars(CW),
    );
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            p.y += 18.0;
        }
        p.text(CX, p.y, "t", l);
    }
    p.y += 20.0;
    p.text(
        CX,
        p.y,
        "t",
        if r.no_new_privs {
            "no_new_privs: on — a setuid program cannot give it more rights"
        } else {
            "no_new_privs: off — a setuid program in its root may raise its rights"
        },
    );
    p.y += 20.0;
    let s = &r.seccomp;
    let kernel = match s.mode {
        Some(2) => format!(
            "The kernel holds {} filter(s) on it",
            s.filters.unwrap_or(1)
        ),
        Some(1) => "The kernel runs it in strict mode".into(),
        _ => "The kernel filters none of its system calls".into(),
    };
    let text = match (&s.profile, s.mode) {
        (_, Some(0)) | (None, None) => format!("seccomp: unconfined. {kernel}."),
        (profile, _) => {
            let name = profile.as_deref().unwrap_or("a filter");
            let other = match s.default_action.as_deref() {
                Some("SCMP_ACT_ERRNO") => "any other fails (EPERM)".to_string(),
                Some("SCMP_ACT_ALLOW") => "any other is allowed".to_string(),
                Some(a) => format!("any other: {}", a.trim_start_matches("SCMP_ACT_")),
                None => String::new(),
            };
            let refused = if s.refused > 0 {
                format!(
                    ", {} refused by name ({}{})",
                    s.refused,
                    s.refused_examples.join(", "),
                    if s.refused > s.refused_examples.len() {
                        "…"
                    } else {
                        ""
                    }
                )
            } else {
                String::new()
            };
            format!(
                "seccomp: profile {name} — {} system calls allowed, {} if their arguments pass{refused}; {other}. {kernel}.",
                s.allowed, s.allowed_if
            )
        }
    };
    for (i, l) in wrap(&text, sans_chars(CW)).iter().enumerate() {
        if i > 0 {
            p.y += 18.0;
        }
        p.text(CX, p.y, "t", l);
    }
}

fn cgroup(p: &mut Pen, f: &Facts) {
    let Some(cg) = &f.cgroup else {
        p.heading(
            3,
            "cgroup",
            "none: this host offers no cgroup to minibox — no limits, no accounting",
        );
        return;
    };
    p.heading(
        3,
        "cgroup",
        &format!(
            "the limits the kernel enforces, and what it counts ({})",
            cg.driver
        ),
    );
    p.y += 8.0;
    let first = p.y;
    // The host side: where the group is, and its limit files.
    p.text(HOST_X + 4.0, p.y + 14.0, "b", "its group on the host");
    let lines = wrap(&cg.path, mono_chars(HOST_W - 8.0));
    let _ = write!(
        p.out,
        r#"<text id="show-cgroup-path" class="m host" x="{:.1}" y="{:.1}">"#,
        HOST_X + 4.0,
        p.y + 34.0
    );
    for (i, l) in lines.iter().enumerate() {
        let _ = write!(
            p.out,
            r#"<tspan x="{:.1}" dy="{}">{}</tspan>"#,
            HOST_X + 4.0,
            if i == 0 { 0 } else { 16 },
            esc(l)
        );
    }
    p.out.push_str("</text>");
    let mut hy = p.y + 34.0 + 16.0 * lines.len() as f64;
    for (k, v) in &cg.settings {
        p.text(HOST_X + 4.0, hy, "m s", &fit(&format!("{k} = {v}"), 44));
        hy += 16.0;
    }
    // The container side: a bar per limit.
    let bar_x = CX + 90.0;
    let bar_w = 230.0;
    let row = |p: &mut Pen, label: &str| {
        p.y += 26.0;
        p.text(CX, p.y, "b", label);
    };
    row(p, "memory");
    let used = cg.memory_used.unwrap_or(0);
    p.bar(
        bar_x,
        p.y - 11.0,
        bar_w,
        cg.memory_limit.map(|l| used as f64 / l.max(1) as f64),
    );
    let tx = bar_x + bar_w + 12.0;
    match cg.memory_limit {
        Some(limit) => p.value(
            tx,
            p.y,
            "t",
            "show-memory-limit",
            (
                &format!("{} of ", human_bytes(used)),
                &limit.to_string(),
                &format!(" bytes ({})", human_bytes(limit)),
            ),
        ),
        None => p.value(
            tx,
            p.y,
            "t",
            "show-memory-limit",
            (&format!("{} used — ", human_bytes(used)), "no limit", ""),
        ),
    }
    if let Some(peak) = cg.memory_peak {
        p.y += 18.0;
        p.text(
            tx,
            p.y,
            "s",
            &format!("at most {} so far", human_bytes(peak)),
        );
    }
    row(p, "CPU");
    let pct = cg.cpu_percent;
    let scale = cg.cpu_limit.map(|c| c * 100.0);
    p.bar(
        bar_x,
        p.y - 11.0,
        bar_w,
        match (pct, scale) {
            (Some(v), Some(s)) => Some(v / s.max(0.01)),
            (Some(v), None) => Some(v / 100.0),
            _ => None,
        },
    );
    let now = pct.map_or("use not measured here".to_string(), |v| {
        format!("{v:.1}% now")
    });
    let limit = cg
        .cpu_limit
        .map_or("no limit".to_string(), |c| format!("limit {c} CPU"));
    p.text(tx, p.y, "t", &format!("{now} · {limit}"));
    if let Some(u) = cg.cpu_usec {
        p.y += 18.0;
        p.text(
            tx,
            p.y,
            "s",
            &format!("{:.2} s of CPU used so far", u as f64 / 1e6),
        );
    }
    row(p, "processes");
    let count = cg.pids.unwrap_or(f.processes.len() as u64);
    p.bar(
        bar_x,
        p.y - 11.0,
        bar_w,
        cg.pids_limit.map(|m| count as f64 / m.max(1) as f64),
    );
    p.text(
        tx,
        p.y,
        "t",
        &match cg.pids_limit {
            Some(m) => format!("{count} of {m} (processes and threads)"),
            None => format!("{count} (processes and threads) — no limit"),
        },
    );
    row(p, "OOM kills");
    p.value(
        bar_x,
        p.y,
        "t",
        "show-oom-kills",
        (
            "",
            &cg.oom_kills.to_string(),
            " processes killed by the kernel for lack of memory",
        ),
    );
    p.y += 6.0;
    p.link(first + 30.0, HOSTC.1);
    p.y = p.y.max(hy - 8.0);
}

/// One row of the filesystem band: a box in the container, maybe a host path linked to it.
fn fs_row(
    p: &mut Pen,
    colors: (&str, &str),
    label: &str,
    detail: &str,
    host: Option<(&str, &str)>,
) {
    p.y += 6.0;
    // Details in the smaller font: a few more characters a line; three lines at most.
    let mut lines = wrap(detail, sans_chars(CW - 20.0) * 13 / 12);
    if lines.len() > 3 {
        lines.truncate(3);
        lines[2].push('…');
    }
    let h = 24.0 + 16.0 * lines.len() as f64;
    p.rect(CX, p.y, CW, h, colors);
    p.text_full(
        CX + 10.0,
        p.y + 17.0,
        "b",
        &fit(label, sans_chars(CW - 20.0) * 10 / 11),
        label,
    );
    for (i, l) in lines.iter().enumerate() {
        p.text(CX + 10.0, p.y + 33.0 + 16.0 * i as f64, "s", l);
    }
    if let Some((what, path)) = host {
        p.text(HOST_X + 4.0, p.y + 15.0, "s", what);
        p.text_full(
            HOST_X + 4.0,
            p.y + 32.0,
            "m host",
            &fit(path, mono_chars(HOST_W - 8.0)),
            path,
        );
        p.link(p.y + h / 2.0, HOSTC.1);
    }
    p.y += h;
}

fn filesystem(p: &mut Pen, f: &Facts) {
    p.heading(
        4,
        "Root filesystem",
        "what / is made of, top to bottom: the mounts, its own layer, then the image",
    );
    // Volumes and binds, then minibox's /etc files, then /proc, /sys, /dev.
    let volumes: Vec<&Mount> = f.mounts.iter().filter(|m| m.role == Role::Volume).collect();
    for m in &volumes {
        let flags = flags_words(&m.options);
        let (label, host) = match (&m.host_source, m.fstype.as_str()) {
            (Some(src), _) => (
                format!("{} — a host directory, bound in", m.target),
                Some(("bound from the host's", src.as_str())),
            ),
            (None, "tmpfs") => (format!("{} — a fresh tmpfs (memory)", m.target), None),
            (None, t) => (format!("{} — {t}", m.target), None),
        };
        let colors = if flags.contains("read-only") {
            FROZEN
        } else {
            HOSTC
        };
        fs_row(p, colors, &label, &format!("{} · {flags}", m.fstype), host);
    }
    let etc: Vec<&str> = f
        .mounts
        .iter()
        .filter(|m| m.role == Role::Etc)
        .map(|m| m.target.as_str())
        .collect();
    if !etc.is_empty() {
        fs_row(
            p,
            NEW,
            &etc.join("  "),
            "written by minibox for this container, bound in (its names and its DNS)",
            None,
        );
    }
    // Device nodes bound one by one (a mount each) are shown with /dev.
    let node = |m: &&Mount| {
        m.target
            .strip_prefix("/dev/")
            .is_some_and(|n| f.devices.iter().any(|d| d.name == n))
    };
    let system: Vec<&Mount> = f
        .mounts
        .iter()
        .filter(|m| m.role == Role::System && !node(m))
        .collect();
    for m in &system {
        let words = match m.target.as_str() {
            "/proc" => "its own processes only (a proc of its PID namespace)".to_string(),
            "/sys" => "the kernel's devices and settings".to_string(),
            "/dev" => {
                let nodes: Vec<String> = f
                    .devices
                    .iter()
                    .map(|d| format!("{} {}:{}", d.name, d.major, d.minor))
                    .collect();
                format!("device nodes: {}", nodes.join(", "))
            }
            "/dev/pts" => "its own terminals (a devpts of its own)".into(),
            "/dev/shm" => "its own shared memory".into(),
            "/dev/mqueue" => "its own message queues".into(),
            t if t.starts_with("/sys/fs/cgroup") => "its cgroup, as the root".into(),
            _ => m.source.clone(),
        };
        let flags = flags_words(&m.options);
        let colors = if flags.contains("read-only") {
            FROZEN
        } else {
            NEW
        };
        fs_row(
            p,
            colors,
            &format!("{} — {}", m.target, m.fstype),
            &format!("{words} · {flags}"),
            None,
        );
    }
    let applied = |rules: &[super::facts::PathRule]| -> Vec<String> {
        rules
            .iter()
            .filter(|r| r.applied)
            .map(|r| r.path.clone())
            .collect()
    };
    let masked = applied(&f.masked);
    if !masked.is_empty() {
        fs_row(
            p,
            HIDDEN,
            &format!("cannot see: {} paths masked", masked.len()),
            &masked.join("  "),
            None,
        );
    }
    let frozen = applied(&f.readonly);
    if !frozen.is_empty() {
        fs_row(
            p,
            FROZEN,
            &format!("cannot change: {} paths read-only", frozen.len()),
            &frozen.join("  "),
            None,
        );
    }
    // Its own layer, then what it stands on.
    if let Some(own) = &f.rootfs.own_layer {
        let ro = if f.rootfs.read_only {
            " — mounted read-only (--read-only)"
        } else {
            ""
        };
        fs_row(
            p,
            NEW,
            &format!("its own layer: every write lands here{ro}"),
            &format!(
                "{} in {} files so far; removed with minibox rm",
                human_bytes(own.bytes),
                own.files
            ),
            Some(("on the host, root-only:", &own.host_dir)),
        );
    }
    let n = f.rootfs.layers.len();
    for (i, l) in f.rootfs.layers.iter().enumerate().rev() {
        fs_row(
            p,
            SHARED,
            &format!("image layer {} of {n} — only read, shared", i + 1),
            &format!(
                "sha256:{} · {} in {} files",
                short(&l.id),
                human_bytes(l.bytes),
                l.files
            ),
            Some(("unpacked once in the image store:", &l.host_dir)),
        );
    }
    if let Some(dir) = &f.rootfs.dir {
        fs_row(
            p,
            SHARED,
            "ROOTFS — only read, never changed by running it",
            "the directory given to minibox run, under the container's own layer",
            Some(("the host's directory:", dir)),
        );
    }
}

fn flags_words(options: &str) -> String {
    let o: Vec<&str> = options.split(',').collect();
    let mut w = vec![if o.contains(&"ro") {
        "read-only"
    } else {
        "writable"
    }];
    if o.contains(&"nosuid") {
        w.push("nosuid");
    }
    if o.contains(&"nodev") {
        w.push("nodev");
    }
    if o.contains(&"noexec") {
        w.push("noexec");
    }
    w.join(", ")
}

fn network(p: &mut Pen, f: &Facts) {
    let n = &f.network;
    let words = match n.mode.as_str() {
        "private" => {
            "its own network namespace, with only lo: nothing links it to the host".to_string()
        }
        "none" => "its own network namespace, and no network at all".to_string(),
        "host" => "the host's own network: it shares the host's interfaces".to_string(),
        m if m.starts_with("container:") => format!("the network of {}", &m[10..]),
        m => format!("on network {m}: a veth to a bridge on the host"),
    };
    p.heading(5, "Network", &words);
    for i in n.interfaces.iter().take(8) {
        let addrs = if i.addresses.is_empty() {
            "no address".to_string()
        } else {
            i.addresses.join("  ")
        };
        let kind = i.kind.clone().unwrap_or_else(|| {
            if i.name == "lo" {
                "loopback".into()
            } else {
                "device".into()
            }
        });
        p.y += 6.0;
        p.rect(CX, p.y, CW, 30.0, NEW);
        let _ = write!(
            p.out,
            r#"<text x="{:.1}" y="{:.1}" class="t"><tspan class="b">{}</tspan> · {} · {} · <tspan id="show-if-{}" class="m">{}</tspan></text>"#,
            CX + 10.0,
            p.y + 20.0,
            esc(&i.name),
            esc(&kind),
            if i.up { "up" } else { "down" },
            esc(&i.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
            esc(&addrs)
        );
        if i.name == "eth0" {
            if let Some(b) = &n.bridge {
                p.rect(HOST_X + 150.0, p.y, HOST_W - 150.0, 30.0, HOSTC);
                p.text(HOST_X + 158.0, p.y + 20.0, "m host", &b.veth);
                p.text(HOST_X + 4.0, p.y + 20.0, "s", "its veth's host end");
                p.link(p.y + 15.0, HOSTC.1);
                // The veth's host end is a port of the bridge drawn below it.
                let x = HOST_X + 150.0 + (HOST_W - 150.0) / 2.0;
                p.line(x, p.y + 30.0, x, p.y + 44.0, HOSTC.1, false);
            }
        }
        p.y += 30.0;
    }
    if let Some(b) = &n.bridge {
        p.y += 8.0;
        p.rect(HOST_X, p.y, HOST_W, 44.0, HOSTC);
        p.text(
            HOST_X + 8.0,
            p.y + 18.0,
            "t host",
            &format!("bridge {} — network {}", b.name, b.network),
        );
        p.text(
            HOST_X + 8.0,
            p.y + 35.0,
            "s",
            &format!(
                "gateway {} · {} · {}",
                b.gateway,
                b.subnet,
                if b.veth_on_bridge {
                    "veth on it"
                } else {
                    "veth NOT on it"
                }
            ),
        );
        p.text(
            CX,
            p.y + 26.0,
            "s",
            "its traffic leaves through the veth to this bridge, NATed to the host's address",
        );
        p.y += 44.0;
    }
    for port in &n.ports {
        p.y += 8.0;
        let host = if port.host_ip.contains(':') {
            format!("[{}]:{}", port.host_ip, port.host_port)
        } else {
            format!("{}:{}", port.host_ip, port.host_port)
        };
        p.rect(HOST_X + 150.0, p.y, HOST_W - 150.0, 28.0, HOSTC);
        p.text(HOST_X + 4.0, p.y + 19.0, "s", "published port");
        p.value(
            HOST_X + 158.0,
            p.y + 19.0,
            "m host",
            "show-port-host",
            ("", &host, ""),
        );
        p.link(p.y + 14.0, HOSTC.1);
        p.rect(CX, p.y, CW, 28.0, NEW);
        p.text(
            CX + 10.0,
            p.y + 19.0,
            "t",
            &format!(
                "→ its port {} — by {}",
                port.container_port,
                if port.via == "relay" {
                    "minibox's supervisor, relaying each connection"
                } else {
                    &port.via
                }
            ),
        );
        p.y += 28.0;
    }
    if !n.hosts.is_empty() {
        p.y += 24.0;
        p.text(HOST_X + 4.0, p.y, "b", "names");
        p.text(
            HOST_X + 62.0,
            p.y,
            "s",
            "its /etc/hosts, written by minibox",
        );
        let entries: Vec<String> = n
            .hosts
            .iter()
            .map(|(ip, names)| format!("{ip} {names}"))
            .collect();
        let text = entries.join(" · ");
        for (i, l) in wrap(&text, mono_chars(CW)).iter().take(6).enumerate() {
            if i > 0 {
                p.y += 16.0;
            }
            p.text(CX, p.y, "m", l);
        }
    }
}

fn legend(p: &mut Pen) {
    p.text(HOST_X, p.y, "h", "How to read this picture");
    p.y += 14.0;
    let items: [((&str, &str), &str); 5] = [
        (NEW, "new: the container's own"),
        (SHARED, "shared with the host"),
        (HOSTC, "on the host, outside"),
        (HIDDEN, "cannot see (masked)"),
        (FROZEN, "cannot change (read-only)"),
    ];
    let mut x = HOST_X;
    for (colors, words) in items {
        p.rect(x, p.y, 22.0, 16.0, colors);
        p.text(x + 28.0, p.y + 13.0, "t", words);
        x += 36.0 + SANS_PX * words.chars().count() as f64;
    }
    p.y += 36.0;
    p.line(HOST_X, p.y - 5.0, HOST_X + 40.0, p.y - 5.0, "#1f6f43", true);
    p.text(
        HOST_X + 48.0,
        p.y,
        "t",
        "the container's boundary: what is inside the dashed line is all its processes see",
    );
    p.y += 22.0;
    let _ = write!(
        p.out,
        r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
        HOST_X + 4.0,
        p.y - 5.0,
        HOSTC.1
    );
    p.line(
        HOST_X + 4.0,
        p.y - 5.0,
        HOST_X + 36.0,
        p.y - 5.0,
        HOSTC.1,
        false,
    );
    p.text(
        HOST_X + 48.0,
        p.y,
        "t",
        "one thing seen from both sides: the host's name for it on the left, the container's on the right",
    );
    p.y += 22.0;
    p.bar(HOST_X, p.y - 11.0, 40.0, Some(0.4));
    p.text(
        HOST_X + 48.0,
        p.y,
        "t",
        "use against a limit (orange past 80%, red past 95%); a grey bar alone: no limit",
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cli::show::facts::*;

    /// A container as `collect` would read it, with what its owner chose made hostile.
    pub fn sample() -> Facts {
        let ns = |kind: &str, c: u64, h: u64| Namespace {
            kind: kind.into(),
            container: Some(c),
            host: Some(h),
        };
        Facts {
            taken_ms: 1_700_000_000_000,
            id: "0123456789abcdef".repeat(4),
            name: "web".into(),
            status: "running".into(),
            image: Some("hello:1".into()),
            command: vec!["/payload".into(), "</text><script>alert(1)</script>".into()],
            hostname: "0123456789ab".into(),
            host: Host {
                hostname: "box".into(),
                kernel: "Linux 6.1.0".into(),
            },
            pid: Some(4242),
            supervisor: Some(4240),
            namespaces: vec![
                ns("mnt", 4026532113, 4026531841),
                ns("pid", 4026532116, 4026531836),
                ns("net", 4026532117, 4026531840),
                ns("uts", 4026532114, 4026531838),
                ns("ipc", 4026532115, 4026531839),
                ns("cgroup", 4026532168, 4026531835),
                ns("user", 4026531837, 4026531837),
                ns("time", 4026531834, 4026531834),
            ],
            processes: vec![Process {
                host_pid: 4242,
                pid: "1".into(),
                host_ppid: "4240".into(),
                depth: 0,
                uid: Some(65534),
                gid: Some(65534),
                user: Some("nobody".into()),
                host_uid: Some(65534),
                cmd: "/payload </text><script>alert(1)</script> \\x1b]0;x".into(),
                state: "S".into(),
                capabilities: 0,
                no_new_privs: true,
                seccomp: Some(2),
            }],
            users: Users {
                uid_map: parse_id_map("0 0 4294967295"),
                gid_map: parse_id_map("0 0 4294967295"),
            },
            rights: Rights {
                capabilities: vec![],
                all_capabilities: 41,
                no_new_privs: true,
                seccomp: Seccomp {
                    profile: Some("docker default".into()),
                    mode: Some(2),
                    filters: Some(1),
                    default_action: Some("SCMP_ACT_ERRNO".into()),
                    allowed: 357,
                    allowed_if: 3,
                    refused: 1,
                    refused_examples: vec!["clone3".into()],
                },
            },
            cgroup: Some(Cgroup {
                driver: "cgroup v2".into(),
                path: "/sys/fs/cgroup/minibox/".to_string() + &"0123456789abcdef".repeat(4),
                settings: [("memory.max".to_string(), "67108864".to_string())]
                    .into_iter()
                    .collect(),
                memory_used: Some(3 << 20),
                memory_peak: Some(4 << 20),
                memory_limit: Some(64 << 20),
                cpu_usec: Some(220_000),
                cpu_percent: Some(1.5),
                cpu_limit: Some(0.5),
                pids: Some(1),
                pids_limit: None,
                oom_kills: 0,
            }),
            rootfs: Rootfs {
                layers: vec![Layer {
                    id: "ab".repeat(32),
                    host_dir: "/var/lib/minibox/layers/x".into(),
                    bytes: 1 << 20,
                    files: 3,
                }],
                dir: None,
                own_layer: Some(Layer {
                    id: String::new(),
                    host_dir: "/var/lib/minibox/containers/x/upper".into(),
                    bytes: 10,
                    files: 2,
                }),
                read_only: false,
            },
            mounts: vec![
                Mount {
                    target: "/data/<b>".into(),
                    fstype: "ext4".into(),
                    source: "/dev/sda1".into(),
                    host_source: Some("/srv/<script>".into()),
                    options: "rw,nosuid,nodev".into(),
                    role: Role::Volume,
                },
                Mount {
                    target: "/proc".into(),
                    fstype: "proc".into(),
                    source: "proc".into(),
                    host_source: None,
                    options: "rw,nosuid,nodev,noexec".into(),
                    role: Role::System,
                },
            ],
            devices: vec![Device {
                name: "null".into(),
                kind: 'c',
                major: 1,
                minor: 3,
                mode: 0o666,
            }],
            masked: vec![PathRule {
                path: "/proc/kcore".into(),
                applied: true,
            }],
            readonly: vec![PathRule {
                path: "/proc/sys".into(),
                applied: true,
            }],
            network: Net {
                mode: "private".into(),
                interfaces: vec![Interface {
                    name: "lo".into(),
                    kind: None,
                    up: true,
                    addresses: vec!["127.0.0.1/8".into()],
                }],
                bridge: None,
                ports: vec![Port {
                    host_ip: "127.0.0.1".into(),
                    host_port: 8080,
                    container_port: 80,
                    via: "relay".into(),
                }],
                hosts: vec![("127.0.0.1".into(), "localhost".into())],
            },
        }
    }

    #[test]
    fn what_the_container_chose_is_only_ever_text() {
        let svg = render(&sample());
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("</text><script>"));
        assert!(svg.contains("&lt;/text&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("/data/&lt;b&gt;"));
        assert!(svg.contains("/srv/&lt;script&gt;"));
        // The only elements are the drawing's own.
        let tags: std::collections::BTreeSet<&str> = svg
            .split('<')
            .skip(1)
            .map(|t| t.split([' ', '>', '/']).next().unwrap_or(""))
            .filter(|t| !t.is_empty())
            .collect();
        for t in &tags {
            assert!(
                ["svg", "title", "style", "rect", "text", "tspan", "line", "circle"].contains(t),
                "unexpected element <{t}>"
            );
        }
    }

    #[test]
    fn characters_xml_cannot_hold_are_escaped() {
        assert_eq!(esc("a\u{1}b\u{7f}c\u{9b}d&"), "a\\x01b\\x7fc\\u{9b}d&amp;");
        assert_eq!(esc("\"'<>"), "&quot;&#39;&lt;&gt;");
        assert_eq!(esc("é ✓"), "é ✓");
    }

    #[test]
    fn values_carry_ids_and_words_are_plain() {
        let svg = render(&sample());
        for needle in [
            r#"id="show-pid" class="b">4242<"#,
            r#"id="show-ns-mnt" class="b">4026532113<"#,
            r#"id="show-ns-user" class="b">4026531837<"#,
            r#"id="show-memory-limit" class="b">67108864<"#,
            r#"id="show-cgroup-path""#,
            "shared with the host",
            "cannot see",
            "new ",
            "How to read this picture",
            "No user namespace of its own: uid 65534 inside is uid 65534 on the host.",
            "357 system calls allowed",
        ] {
            assert!(svg.contains(needle), "{needle:?} missing");
        }
        // 6 new namespaces, 2 shared.
        assert_eq!(svg.matches("shared with the host: the same").count(), 2);
    }

    #[test]
    fn a_user_namespace_shows_its_map() {
        let mut f = sample();
        f.users.uid_map = parse_id_map("0 100000 65536");
        let svg = render(&f);
        assert!(svg.contains("uid 0–65535 inside = uid 100000–165535 on the host"));
    }

    #[test]
    fn long_text_is_shortened_in_the_middle_and_wrapped_at_slashes() {
        assert_eq!(fit("abcdefghij", 20), "abcdefghij");
        assert_eq!(
            fit("/var/lib/minibox/layers/0123456789", 16),
            "/var/lib/m…56789"
        );
        assert_eq!(
            fit("/var/lib/minibox/layers/0123456789", 16)
                .chars()
                .count(),
            16
        );
        let lines = wrap(
            "/sys/fs/cgroup/memory/user.slice/minibox/0123456789abcdef",
            24,
        );
        assert_eq!(
            lines.concat(),
            "/sys/fs/cgroup/memory/user.slice/minibox/0123456789abcdef"
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 24));
        assert!(lines[0].ends_with('/'));
    }
}
