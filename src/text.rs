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

/// `2024-05-01T12:00:00.123456789Z` (RFC 3339 with nanoseconds, as docker's log times), from
/// nanoseconds since the epoch (UTC).
pub fn rfc3339_nanos(ns: u64) -> String {
    format!(
        "{}.{:09}Z",
        date_time(ns / 1_000_000_000),
        ns % 1_000_000_000
    )
}

/// Nanoseconds since the epoch of an RFC 3339 time (`2024-05-01T12:00:00Z`, with a fraction or
/// an offset such as `+02:00`; a space for the `T`; a date alone is its midnight UTC). `None`
/// for anything else, or a time before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, t),
        None => (text, "00:00:00Z"),
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, m, day] = d.as_slice() else {
        return None;
    };
    let (year, month, day): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || y.len() != 4 {
        return None;
    }
    // The offset: Z, or ±hh:mm after the clock (a date alone is UTC).
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        (
            c,
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let t: Vec<&str> = hms.split(':').collect();
    let [h, mi, s] = t.as_slice() else {
        return None;
    };
    let (h, mi, s): (i64, i64, i64) = (h.parse().ok()?, mi.parse().ok()?, s.parse().ok()?);
    if h > 23 || mi > 59 || s > 60 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = format!("{fraction:0<9}").get(..9)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm, the inverse of `date_time`'s).
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_reads_back_what_it_writes() {
        for secs in [0u64, 951_782_400, 1_700_000_000, 4_102_444_800] {
            let ns = secs * 1_000_000_000 + 123_456_789;
            assert_eq!(parse_rfc3339(&rfc3339_nanos(ns)), Some(ns));
        }
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-01-01T25:00:00Z",
            "2024-01-01T10:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

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
