//! HTML around the picture: `show -o FILE.html`, `run --explain=FILE.html` (the picture with
//! the steps of `--explain` beside it as a numbered timeline), and the `ui`'s pages.
//!
//! Every page is self-contained — inline style, at most one inline script — and carries a
//! Content-Security-Policy that allows nothing else: no fetch beyond its own server, no
//! external font, image or script, and no script at all but the page's own (by its hash), so
//! that even a string that escaped escaping could not run.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::facts::Facts;
use super::svg::{self, esc};

/// One step of `--explain`, as it was told.
pub use crate::runtime::explain_page::Step as TimelineStep;

const PAGE_STYLE: &str = "
body{margin:0;background:#f4f6f9;color:#1a202c;font-family:'DejaVu Sans','Liberation Sans',Arial,sans-serif;font-size:14px}
main{margin:16px auto;padding:0 16px;width:max-content;max-width:calc(100% - 32px)}
main>svg{display:block;background:#fff;border-radius:10px;box-shadow:0 1px 4px rgba(0,0,0,.15)}
.explain{display:flex;gap:14px;align-items:flex-start;margin:12px}
.explain>svg{flex:none;background:#fff;border-radius:10px;box-shadow:0 1px 4px rgba(0,0,0,.15)}
.timeline{width:318px;flex:none;margin:0;padding:0;list-style:none}
.timeline li{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);margin:0 0 8px;padding:8px 10px 8px 44px;position:relative}
.timeline li .n{position:absolute;left:8px;top:8px;width:26px;height:26px;border-radius:13px;background:#1f6f43;color:#fff;font-weight:bold;text-align:center;line-height:26px;font-size:13px}
.timeline li b{font-size:14px}
.timeline li pre{white-space:pre-wrap;word-break:break-all;font-family:'DejaVu Sans Mono','Liberation Mono',monospace;font-size:11px;margin:4px 0 2px}
.timeline li small{color:#4a5568;font-size:11px}
h1{font-size:18px;margin:0 0 8px}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 4px rgba(0,0,0,.15);border-radius:8px}
th,td{padding:7px 12px;text-align:left;border-bottom:1px solid #e2e8f0;white-space:nowrap}
th{background:#edf2f7;font-size:12px;letter-spacing:.5px}
td.num{text-align:right;font-family:'DejaVu Sans Mono','Liberation Mono',monospace}
.bar{display:inline-block;width:80px;height:12px;background:#edf2f7;border:1px solid #a0aec0;border-radius:4px;vertical-align:middle;margin-right:8px;overflow:hidden}
.bar i{display:block;height:100%;background:#3182ce}
.bar i.hi{background:#dd6b20}.bar i.full{background:#c53030}
.note{color:#4a5568;font-size:12px;margin:8px 0}
.gone{background:#fde2e1;border:1px solid #c53030;border-radius:6px;padding:6px 10px;margin:8px 0}
a{color:#2b6cb0}
";

/// The CSP a page sends: nothing but its own inline style and, if any, its own script.
pub fn csp(script: Option<&str>) -> String {
    let script = match script {
        Some(s) => format!(
            "script-src 'sha256-{}'; connect-src 'self'",
            base64(&Sha256::digest(s.as_bytes()))
        ),
        None => "script-src 'none'".into(),
    };
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; {script}; base-uri 'none'; form-action 'none'"
    )
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn page(title: &str, body: &str, script: Option<&str>) -> String {
    let mut html = String::with_capacity(body.len() + 4096);
    let _ = write!(
        html,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{}"><meta name="referrer" content="no-referrer"><title>{}</title><style>{PAGE_STYLE}</style></head><body>{body}"#,
        csp(script),
        esc(title)
    );
    if let Some(s) = script {
        let _ = write!(html, "<script>{s}</script>");
    }
    html.push_str("</body></html>\n");
    html
}

/// `show -o FILE.html`: the picture, alone on a page.
pub fn show_page(f: &Facts) -> String {
    page(
        &format!("minibox show {}", f.name),
        &format!("<main>{}</main>", svg::render(f)),
        None,
    )
}

/// `run --explain=FILE.html`: the picture at the moment the program started, the steps that
/// made the container beside it. Without facts (the program was gone before minibox could
/// look), `missing` says why in place of the picture.
pub fn explain_page(f: Option<&Facts>, steps: &[TimelineStep], missing: &str) -> String {
    let mut list = String::from(r#"<ol class="timeline" id="timeline">"#);
    for s in steps {
        let _ = write!(
            list,
            r#"<li><span class="n">{}</span><b>{}</b><pre>{}</pre>{}</li>"#,
            s.number,
            esc(&s.name),
            esc_keep_lines(&s.text),
            if s.fields.is_empty() {
                String::new()
            } else {
                format!("<small>config.json: {}</small>", esc(&s.fields))
            }
        );
    }
    list.push_str("</ol>");
    let picture = match f {
        Some(f) => svg::render(f),
        None => format!(r#"<p class="gone" id="missing">{}</p>"#, esc(missing)),
    };
    page(
        &format!(
            "minibox run --explain: {}",
            f.map_or("a container", |f| f.name.as_str())
        ),
        &format!(
            r#"<div class="explain"><div>{list}<p class="note">The steps minibox took, in order ({} of {}), each with what the kernel said of it. The picture shows the container as the kernel held it the moment its program started.</p></div>{picture}</div>"#,
            steps.len(),
            steps.first().map_or(0, |s| s.of),
        ),
        None,
    )
}

/// Escaped as `esc` does, newlines kept (a `<pre>`).
fn esc_keep_lines(text: &str) -> String {
    text.split('\n').map(esc).collect::<Vec<_>>().join("\n")
}

/// The ui's list: rows filled and refreshed by its script from `/api/containers`.
pub const LIST_SCRIPT: &str = r#"
const token = new URLSearchParams(location.search).get('token');
const q = token ? '?token=' + encodeURIComponent(token) : '';
const body = document.getElementById('rows');
function bytes(n) {
  if (n == null) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
function bar(fraction) {
  const b = document.createElement('span'); b.className = 'bar';
  const i = document.createElement('i');
  if (fraction != null) {
    const f = Math.max(0, Math.min(1, fraction));
    i.style.width = (f * 100).toFixed(1) + '%';
    if (f >= 0.95) i.className = 'full'; else if (f >= 0.8) i.className = 'hi';
  } else { i.style.width = '0'; }
  b.appendChild(i); return b;
}
function cell(row, key, cls) {
  let td = row.querySelector('td[data-k="' + key + '"]');
  if (!td) { td = document.createElement('td'); td.dataset.k = key; if (cls) td.className = cls; row.appendChild(td); }
  return td;
}
function fill(row, c) {
  const name = cell(row, 'name'); name.textContent = '';
  if (c.running) {
    const a = document.createElement('a'); a.href = '/c/' + encodeURIComponent(c.id) + q;
    a.textContent = c.name; a.className = 'open'; name.appendChild(a);
  } else { name.textContent = c.name; }
  cell(row, 'id', 'num').textContent = c.short_id;
  cell(row, 'image').textContent = c.image || '(rootfs)';
  cell(row, 'status').textContent = c.status;
  cell(row, 'pid', 'num').textContent = c.pid == null ? '-' : c.pid;
  const mem = cell(row, 'memory'); mem.textContent = '';
  mem.appendChild(bar(c.memory_limit ? c.memory_used / c.memory_limit : null));
  mem.appendChild(document.createTextNode(bytes(c.memory_used) + ' / ' + (c.memory_limit ? bytes(c.memory_limit) : 'no limit')));
  const cpu = cell(row, 'cpu'); cpu.textContent = '';
  cpu.appendChild(bar(c.cpu_percent == null ? null : c.cpu_percent / (c.cpu_limit ? c.cpu_limit * 100 : 100)));
  cpu.appendChild(document.createTextNode((c.cpu_percent == null ? '-' : c.cpu_percent.toFixed(1) + '%') + (c.cpu_limit ? ' of ' + c.cpu_limit + ' CPU' : '')));
  cell(row, 'pids', 'num').textContent = (c.pids == null ? '-' : c.pids) + (c.pids_limit ? ' / ' + c.pids_limit : '');
  cell(row, 'ports').textContent = c.ports.join(', ');
  cell(row, 'network').textContent = c.network;
}
async function refresh() {
  const said = document.getElementById('updated');
  try {
    const r = await fetch('/api/containers' + q, {cache: 'no-store'});
    if (!r.ok) throw new Error(r.status);
    const list = await r.json();
    const seen = new Set();
    for (const c of list) {
      seen.add(c.id);
      let row = body.querySelector('tr[data-id="' + CSS.escape(c.id) + '"]');
      if (!row) { row = document.createElement('tr'); row.dataset.id = c.id; body.appendChild(row); }
      fill(row, c);
    }
    for (const row of [...body.children]) if (!seen.has(row.dataset.id)) row.remove();
    document.getElementById('empty').hidden = list.length > 0;
    said.textContent = list.length + ' container(s), updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    said.textContent = 'minibox ui does not answer (' + e.message + ')';
  }
}
refresh();
setInterval(refresh, 2000);
"#;

pub fn list_page() -> String {
    page(
        "minibox ui",
        r#"<main><h1>minibox — containers on this machine</h1>
<p class="note">Read-only: this page changes nothing. Usage is read from each container's cgroup every 2 seconds; a name opens the container's picture.</p>
<table><thead><tr><th>NAME</th><th>ID</th><th>IMAGE</th><th>STATUS</th><th>PID</th><th>MEMORY</th><th>CPU</th><th>PIDS</th><th>PORTS</th><th>NETWORK</th></tr></thead><tbody id="rows"></tbody></table>
<p id="empty" class="note" hidden>No containers.</p>
<p id="updated" class="note">loading…</p></main>"#,
        Some(LIST_SCRIPT),
    )
}

/// The ui's picture page: redrawn in place from `/c/ID.svg`.
pub const PICTURE_SCRIPT: &str = r#"
const token = new URLSearchParams(location.search).get('token');
const q = token ? '?token=' + encodeURIComponent(token) : '';
document.getElementById('back').href = '/' + q;
async function redraw() {
  const said = document.getElementById('updated');
  try {
    const r = await fetch(location.pathname + '.svg' + q, {cache: 'no-store'});
    if (r.status == 404 || r.status == 410) { said.textContent = 'This container is no longer running.'; said.className = 'gone'; return; }
    if (!r.ok) throw new Error(r.status);
    const doc = new DOMParser().parseFromString(await r.text(), 'image/svg+xml');
    if (doc.querySelector('parsererror')) throw new Error('unreadable picture');
    document.querySelector('main svg').replaceWith(document.importNode(doc.documentElement, true));
    said.textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) { said.textContent = 'minibox ui does not answer (' + e.message + ')'; }
}
setInterval(redraw, 3000);
"#;

pub fn picture_page(f: &Facts) -> String {
    page(
        &format!("minibox ui: {}", f.name),
        &format!(
            r#"<main><p class="note"><a id="back" href="/">← all containers</a> · redrawn from the kernel every 3 seconds · <span id="updated"></span></p>{}</main>"#,
            svg::render(f)
        ),
        Some(PICTURE_SCRIPT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_csp_hashes_need_it() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn pages_allow_no_script_but_their_own() {
        assert!(csp(None).contains("script-src 'none'"));
        let list = list_page();
        assert!(list.contains(&csp(Some(LIST_SCRIPT))));
        assert_eq!(list.matches("<script>").count(), 1);
        assert!(!list.contains("http://") && !list.contains("https://"));
    }

    #[test]
    fn the_timeline_escapes_what_the_steps_quote() {
        let f = crate::cli::show::svg::tests::sample();
        let steps = [TimelineStep {
            number: 9,
            of: 10,
            name: "exec".into(),
            text: "/payload </pre><script>x</script>\nPATH=/bin".into(),
            fields: "process.args".into(),
        }];
        let html = explain_page(Some(&f), &steps, "");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;x&lt;/script&gt;\nPATH=/bin"));
        assert!(html.contains(r#"<span class="n">9</span><b>exec</b>"#));
    }
}
