//! Text for people, which every layer may write: the `say!` (stderr) and `out!` (stdout)
//! lines, with whatever a container or an image chose shown escaped, never obeyed by the
//! caller's terminal; and times as RFC 3339.

/// A line on stderr. A closed stderr (`minibox ... 2>&1 | head`) is not worth a panic, which
/// would skip the cleanup of the container's cgroup and state. Messages may quote what a
/// container or image chose (a path, a name): control characters are shown escaped, never
/// sent to the caller's terminal.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", $crate::text::printable(&line));
    }};
}

/// A line on stdout, likewise (`minibox ps | head -1`), escaped likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stdout(), "{}", $crate::text::printable(&line));
    }};
}

/// Text fit for a terminal: control characters (ESC, BEL, CR, the C1 set...) become visible
/// escapes such as `\x1b`, so that no text a container chose (a mount source, a command, a
/// file name quoted in an error) can move the cursor, retitle the window or type into the
/// caller's shell. Newlines and tabs stay: they are layout, and harmless.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_printable(&mut out, c, needs_escape);
    }
    out.into()
}

/// The same for bytes that may not be UTF-8: a byte that is not part of a character shows as
/// `\xNN`.
pub fn printable_bytes(bytes: &[u8]) -> String {
    escape_bytes(bytes, needs_escape)
}

/// The same for one cell of a table (`ps`, `top`): newlines and tabs are escaped too, so a
/// value cannot break the table's rows.
pub fn printable_cell(bytes: &[u8]) -> String {
    escape_bytes(bytes, char::is_control)
}

fn escape_bytes(bytes: &[u8], escape: fn(char) -> bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_printable(&mut out, c, escape);
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn push_printable(out: &mut String, c: char, escape: fn(char) -> bool) {
    match c {
        c if !escape(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// `2024-05-01T12:00:00.123Z`, from milliseconds since the epoch (UTC).
pub fn rfc3339(ms: u64) -> String {
    format!("{}.{:03}Z", date_time(ms / 1000), ms % 1000)
}

/// The time now as RFC 3339 (UTC) in whole seconds: `2024-05-01T12:00:00Z`.
pub fn now_rfc3339_seconds() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{}Z", date_time(secs))
}

/// `2024-05-01T12:00:00`, from seconds since the epoch (UTC; the civil date by Howard
/// Hinnant's days-from-civil inverse, without a date crate).
pub fn date_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(
            printable("plain text\tand\nlines"),
            "plain text\tand\nlines"
        );
        assert_eq!(
            printable("\x1b]0;pwned\x07\x1b[31mred\r"),
            "\\x1b]0;pwned\\x07\\x1b[31mred\\x0d"
        );
        // The 8-bit CSI, which some terminals obey, and DEL.
        assert_eq!(printable("a\u{9b}2Jb\x7f"), "a\\u{9b}2Jb\\x7f");
        assert_eq!(printable("é ✓"), "é ✓");
    }

    #[test]
    fn a_table_cell_keeps_to_its_row() {
        let hostile = b"sh -c \x1b]0;pwned\x07\nrm\t\xff";
        assert_eq!(
            printable_cell(hostile),
            "sh -c \\x1b]0;pwned\\x07\\x0arm\\x09\\xff"
        );
        assert_eq!(printable_cell("plain é".as_bytes()), "plain é");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        assert_eq!(printable_bytes(b"ok\xff\xfe/\x1b"), "ok\\xff\\xfe/\\x1b");
        assert_eq!(printable_bytes("é".as_bytes()), "é");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
    }
}
