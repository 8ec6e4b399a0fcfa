//! `--label KEY=VALUE` and `--label-file FILE`, docker's way: a file's lines first (KEY=VALUE
//! or KEY, `#` comments, blank lines skipped), then the flags, a later one winning.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// The labels the flags give, checked.
pub fn parse(flags: &[String], files: &[PathBuf]) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for file in files {
        let text = std::fs::read(file)
            .with_context(|| format!("reading --label-file {}", file.display()))?;
        let text = String::from_utf8(text)
            .map_err(|_| anyhow::anyhow!("--label-file {}: not UTF-8 text", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = one(line)
                .with_context(|| format!("--label-file {} line {}", file.display(), n + 1))?;
            labels.insert(k, v);
        }
    }
    for flag in flags {
        let (k, v) = one(flag)?;
        labels.insert(k, v);
    }
    Ok(labels)
}

fn one(text: &str) -> Result<(String, String)> {
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    if key.trim().is_empty() {
        bail!("invalid label {text:?}: give KEY=VALUE (the key may not be empty)");
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        bail!("invalid label {text:?}: the key may not hold spaces or control characters");
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        bail!("invalid label {text:?}: the value may not hold control characters");
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_files_and_keys_alone_have_empty_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels");
        std::fs::write(&file, "# team\nteam=core\n\ntier=db\nflag\n").unwrap();
        let l = parse(&["tier=web".into(), "a=b=c".into()], &[file]).unwrap();
        let got: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("a", "b=c"),
                ("flag", ""),
                ("team", "core"),
                ("tier", "web")
            ]
        );
        assert!(parse(&["=x".into()], &[]).is_err());
        assert!(parse(&["a b=x".into()], &[]).is_err());
        let e = parse(&[], &[dir.path().join("missing")]).unwrap_err();
        assert!(format!("{e:#}").contains("--label-file"), "{e:#}");
    }
}
