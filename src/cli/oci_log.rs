//! `--log FILE --log-format text|json`: errors are also appended to FILE, where engines read
//! the last one (containerd's runc shim and conmon parse runc's JSON lines,
//! `{"level":"error","msg":"...","time":"RFC3339"}`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::store::state::now_ms;
use crate::text::rfc3339;

pub struct ErrorLog {
    file: Option<PathBuf>,
    json: bool,
}

impl ErrorLog {
    pub fn new(file: Option<PathBuf>, json: bool) -> ErrorLog {
        ErrorLog { file, json }
    }

    /// From the raw arguments, for a usage error (clap failed, so there is no parsed `Cli`).
    pub fn from_raw_args() -> ErrorLog {
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            args.iter().enumerate().find_map(|(i, a)| {
                a.strip_prefix(&format!("{flag}="))
                    .map(String::from)
                    .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
            })
        };
        ErrorLog::new(
            value("--log").map(PathBuf::from),
            value("--log-format").as_deref() == Some("json"),
        )
    }

    /// A failure: level `error`, and `error` in the message too, as runc's log lines have it
    /// (engines that scan the message for it then see it).
    pub fn error(&self, msg: &str) {
        self.write("error", &format!("minibox: error: {msg}"));
    }

    pub fn debug(&self, msg: &str) {
        if self.file.is_none() {
            say!("minibox: debug: {msg}");
        }
        self.write("debug", msg);
    }

    /// One line, appended whole (best effort: a log that cannot be written must not hide the
    /// error itself, which went to stderr).
    fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let time = rfc3339(now_ms());
        let line = if self.json {
            let mut l = serde_json::json!({"level": level, "msg": msg, "time": time}).to_string();
            l.push('\n');
            l
        } else {
            format!(
                "time=\"{time}\" level={level} msg={}\n",
                serde_json::json!(msg)
            )
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path);
        if let Ok(mut f) = file {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
