//! Dockerfiles, read: instructions (continuation lines joined, comments dropped), their
//! `--flags`, the exec (JSON) and shell forms, `$VAR`/`${VAR}`/`${VAR:-word}`/`${VAR:+word}`
//! expansion, and the instructions that only change an image's config (also `--change`'s
//! for `commit` and `import`).

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// One instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// Its first line's number (1-based), for messages.
    pub line: usize,
    /// Upper case: `FROM`, `RUN`...
    pub keyword: String,
    /// `--name=value` flags, in order.
    pub flags: Vec<(String, String)>,
    /// The rest, as written (continuations joined).
    pub args: String,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The instruction as written, for history and messages.
    pub fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for (n, v) in &self.flags {
            s.push_str(&format!(" --{n}={v}"));
        }
        if !self.args.is_empty() {
            s.push(' ');
            s.push_str(&self.args);
        }
        s
    }
}

/// Splits a Dockerfile into instructions.
pub fn parse(text: &str) -> Result<Vec<Instruction>> {
    let mut out = vec![];
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        // Comments, also between continuation lines (docker drops those too).
        if trimmed.starts_with('#') || (pending.is_none() && trimmed.is_empty()) {
            continue;
        }
        let (start, mut acc) = pending.take().unwrap_or((n + 1, String::new()));
        let line = raw.trim_end();
        if let Some(cont) = line.strip_suffix('\\') {
            acc.push_str(cont);
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(line);
        out.push(instruction(start, acc.trim())?);
    }
    if let Some((start, acc)) = pending {
        if !acc.trim().is_empty() {
            out.push(instruction(start, acc.trim())?);
        }
    }
    Ok(out)
}

fn instruction(line: usize, text: &str) -> Result<Instruction> {
    let (word, mut rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let keyword = word.to_ascii_uppercase();
    if !keyword.bytes().all(|b| b.is_ascii_uppercase()) {
        bail!("line {line}: {word:?} is not a Dockerfile instruction");
    }
    let mut flags = vec![];
    rest = rest.trim_start();
    // Flags only where docker takes them (a RUN's own `--x` is the command's).
    if matches!(
        keyword.as_str(),
        "FROM" | "COPY" | "ADD" | "RUN" | "HEALTHCHECK"
    ) {
        while let Some(f) = rest.strip_prefix("--") {
            let (flag, after) = f.split_once(char::is_whitespace).unwrap_or((f, ""));
            let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
            flags.push((name.to_string(), value.to_string()));
            rest = after.trim_start();
        }
    }
    Ok(Instruction {
        line,
        keyword,
        flags,
        args: rest.to_string(),
    })
}

/// The exec form (`["a", "b"]`) if the arguments are a JSON array of strings.
pub fn exec_form(args: &str) -> Option<Vec<String>> {
    let t = args.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// The command of RUN, CMD or ENTRYPOINT: the exec form as it is, the shell form run by
/// `/bin/sh -c`.
pub fn command(args: &str) -> Vec<String> {
    exec_form(args).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), args.to_string()])
}

/// `command`, the shell form run by the config's `Shell` (set by SHELL) when it has one.
pub fn command_in(config: &Value, args: &str) -> Vec<String> {
    let shell: Option<Vec<String>> = config["config"]["Shell"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty());
    match (exec_form(args), shell) {
        (Some(exec), _) => exec,
        (None, Some(mut shell)) => {
            shell.push(args.to_string());
            shell
        }
        (None, None) => command(args),
    }
}

/// A HEALTHCHECK flag's duration (`30s`, `1m30s`, `500ms`) in nanoseconds, as configs keep it.
fn duration_ns(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(scale)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Expands `$VAR`, `${VAR}`, `${VAR:-word}` and `${VAR:+word}` (`\$` is a literal `$`);
/// unknown variables are empty, as docker's.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => {
                out.push('$');
                chars.next();
            }
            '$' => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => inner.push(c),
                            None => bail!("{text:?}: a ${{ without its }}"),
                        }
                    }
                    let (name, op) = match inner.find(":") {
                        Some(i) => (&inner[..i], Some(&inner[i..])),
                        None => (inner.as_str(), None),
                    };
                    let value = lookup(name).filter(|v| !v.is_empty());
                    match op {
                        None => out.push_str(&lookup(name).unwrap_or_default()),
                        Some(op) if op.starts_with(":-") => match value {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&expand(&op[2..], lookup)?),
                        },
                        Some(op) if op.starts_with(":+") => {
                            if value.is_some() {
                                out.push_str(&expand(&op[2..], lookup)?)
                            }
                        }
                        Some(op) => {
                            bail!("{text:?}: ${{{name}{op}}} is not supported (only :- and :+)")
                        }
                    }
                }
                Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                    let mut name = String::new();
                    while let Some(&c) = chars.peek() {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            name.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    out.push_str(&lookup(&name).unwrap_or_default());
                }
                _ => out.push('$'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Words as docker splits ENV, LABEL, ARG, EXPOSE, VOLUME's arguments: on blanks, `"..."` and
/// `'...'` kept whole (the quotes removed), `\x` is `x`.
pub fn words(text: &str) -> Result<Vec<String>> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut any = false;
    let mut chars = text.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                any = true;
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quote.is_some() {
        bail!("{text:?}: a quote is not closed");
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

/// `K=V K2=V2` (or, with one `=`-less first word, docker's older `K the value`) as pairs.
pub fn pairs(keyword: &str, args: &str) -> Result<Vec<(String, String)>> {
    let all = words(args)?;
    let Some(first) = all.first() else {
        bail!("{keyword} needs KEY=VALUE");
    };
    if !first.contains('=') {
        let (key, value) = args
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((args.trim(), ""));
        if value.trim().is_empty() {
            bail!("{keyword} {key}: give a value ({keyword} {key}=VALUE)");
        }
        return Ok(vec![(key.to_string(), words(value)?.join(" "))]);
    }
    all.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{keyword}: {w:?} is not KEY=VALUE"),
        })
        .collect()
}

/// The value of `KEY` in a config's `Env` list.
pub fn env_get(config: &Value, key: &str) -> Option<String> {
    config["config"]["Env"].as_array()?.iter().find_map(|e| {
        let (k, v) = e.as_str()?.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn cfg(config: &mut Value) -> &mut Map<String, Value> {
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    config["config"].as_object_mut().expect("an object")
}

/// Applies one of the instructions that only change the config (ENV, USER, WORKDIR, EXPOSE,
/// ENTRYPOINT, CMD, LABEL, STOPSIGNAL, VOLUME); `Ok(false)` for any other. `vars` expands
/// what docker expands.
pub fn apply(
    config: &mut Value,
    i: &Instruction,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<bool> {
    let ex = |s: &str| expand(s, vars);
    let what = || format!("line {}: {}", i.line, i.keyword);
    match i.keyword.as_str() {
        "ENV" => {
            for (k, v) in pairs("ENV", &ex(&i.args)?)? {
                let c = cfg(config);
                let env = c.entry("Env").or_insert_with(|| json!([]));
                let list = env
                    .as_array_mut()
                    .context("the config's Env is not a list")?;
                list.retain(|e| {
                    e.as_str().and_then(|e| e.split_once('=')).map(|p| p.0) != Some(&k)
                });
                list.push(json!(format!("{k}={v}")));
            }
        }
        "USER" => {
            let u = ex(i.args.trim())?;
            if u.is_empty() || u.contains(char::is_whitespace) {
                bail!("{}: give one NAME|UID[:GROUP|GID]", what());
            }
            cfg(config).insert("User".into(), json!(u));
        }
        "WORKDIR" => {
            let w = ex(i.args.trim())?;
            if w.is_empty() {
                bail!("{}: give a directory", what());
            }
            let base = cfg(config)
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string();
            let joined = std::path::Path::new(if base.is_empty() { "/" } else { &base }).join(&w);
            cfg(config).insert("WorkingDir".into(), json!(joined.to_string_lossy()));
        }
        "EXPOSE" => {
            for p in words(&ex(&i.args)?)? {
                let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                if port.parse::<u16>().is_err() || !matches!(proto.as_str(), "tcp" | "udp" | "sctp")
                {
                    bail!("{}: {p:?} is not PORT[/tcp|udp]", what());
                }
                let ports = cfg(config)
                    .entry("ExposedPorts")
                    .or_insert_with(|| json!({}));
                ports[format!("{port}/{proto}")] = json!({});
            }
        }
        "ENTRYPOINT" => {
            let c = command_in(config, &i.args);
            cfg(config).insert("Entrypoint".into(), json!(c));
            // docker: a new ENTRYPOINT drops the CMD a parent image had.
            cfg(config).remove("Cmd");
        }
        "CMD" => {
            let c = command_in(config, &i.args);
            cfg(config).insert("Cmd".into(), json!(c));
        }
        "SHELL" => {
            let Some(shell) = exec_form(&i.args).filter(|s| !s.is_empty()) else {
                bail!(
                    "{}: give the shell in JSON form: SHELL [\"/bin/bash\", \"-c\"]",
                    what()
                );
            };
            cfg(config).insert("Shell".into(), json!(shell));
        }
        "HEALTHCHECK" => {
            // Kept in the config for the engines that run it (minibox does not).
            let flags = i.flags.clone();
            let rest = i.args.trim();
            if rest.eq_ignore_ascii_case("NONE") {
                cfg(config).insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
            } else {
                let Some(cmd) = rest
                    .strip_prefix("CMD")
                    .or_else(|| rest.strip_prefix("cmd"))
                else {
                    bail!(
                        "{}: use HEALTHCHECK [--interval=30s ...] CMD COMMAND, or NONE",
                        what()
                    );
                };
                let test = match exec_form(cmd) {
                    Some(exec) => [vec!["CMD".to_string()], exec].concat(),
                    None => vec!["CMD-SHELL".to_string(), cmd.trim().to_string()],
                };
                let mut h = json!({"Test": test});
                for (name, value) in flags {
                    let key = match name.as_str() {
                        "interval" => "Interval",
                        "timeout" => "Timeout",
                        "start-period" => "StartPeriod",
                        "start-interval" => "StartInterval",
                        "retries" => {
                            let n: u64 = value.parse().map_err(|_| {
                                anyhow::anyhow!("{}: --retries={value} is not a number", what())
                            })?;
                            h["Retries"] = json!(n);
                            continue;
                        }
                        other => bail!("{}: unknown flag --{other}", what()),
                    };
                    let ns = duration_ns(&value).with_context(|| {
                        format!("{}: --{name}={value} is not a duration (30s, 1m)", what())
                    })?;
                    h[key] = json!(ns);
                }
                cfg(config).insert("Healthcheck".into(), h);
            }
        }
        "LABEL" => {
            for (k, v) in pairs("LABEL", &ex(&i.args)?)? {
                let labels = cfg(config).entry("Labels").or_insert_with(|| json!({}));
                labels[k] = json!(v);
            }
        }
        "STOPSIGNAL" => {
            let s = ex(i.args.trim())?;
            if s.is_empty() {
                bail!("{}: give a signal (SIGTERM, 15)", what());
            }
            cfg(config).insert("StopSignal".into(), json!(s));
        }
        "VOLUME" => {
            let list = exec_form(&i.args).map_or_else(|| words(&ex(&i.args)?), Ok)?;
            for v in list {
                if !v.starts_with('/') {
                    bail!("{}: {v:?} is not an absolute path", what());
                }
                let vols = cfg(config).entry("Volumes").or_insert_with(|| json!({}));
                vols[v] = json!({});
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `--change 'INSTRUCTION ARGS'` of `commit` and `import`: only the config's instructions.
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<()> {
    for c in changes {
        let parsed = parse(c).with_context(|| format!("--change {c:?}"))?;
        for i in parsed {
            let env = config.clone();
            let lookup = |k: &str| env_get(&env, k);
            if !apply(config, &i, &lookup).with_context(|| format!("--change {c:?}"))? {
                bail!(
                    "--change {c:?}: {} cannot be changed; use CMD, ENTRYPOINT, ENV, EXPOSE, \
                     HEALTHCHECK, LABEL, SHELL, STOPSIGNAL, USER, VOLUME or WORKDIR",
                    i.keyword
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_continuations_and_flags() {
        let text = "# c\nFROM golang AS build\nRUN a \\\n  # inner\n  && b\nCOPY --from=build --chown=1:2 /x /y\n\nCMD [\"/x\", \"-v\"]\n";
        let p = parse(text).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].keyword, "RUN");
        assert_eq!(p[1].args, "a   && b");
        assert_eq!(p[2].flag("from"), Some("build"));
        assert_eq!(p[2].flag("chown"), Some("1:2"));
        assert_eq!(p[2].args, "/x /y");
        assert_eq!(command(&p[3].args), vec!["/x", "-v"]);
        assert_eq!(command("echo hi"), vec!["/bin/sh", "-c", "echo hi"]);
    }

    #[test]
    fn variables_expand() {
        let f = |k: &str| (k == "A").then(|| "1".to_string());
        assert_eq!(
            expand("$A-${A}-${B:-x}-${A:+y}-\\$A", &f).unwrap(),
            "1-1-x-y-$A"
        );
        assert!(expand("${A", &f).is_err());
    }

    #[test]
    fn config_instructions_apply() {
        let mut c = json!({"config": {"Cmd": ["old"]}});
        apply_changes(
            &mut c,
            &[
                "ENV A=1 B=\"two words\"".into(),
                "ENV C 3 4".into(),
                "USER nobody".into(),
                "WORKDIR /srv".into(),
                "WORKDIR app".into(),
                "EXPOSE 8080 53/udp".into(),
                "ENTRYPOINT [\"/main\"]".into(),
                "LABEL a=b".into(),
            ],
        )
        .unwrap();
        let k = &c["config"];
        assert_eq!(k["Env"], json!(["A=1", "B=two words", "C=3 4"]));
        assert_eq!(k["User"], "nobody");
        assert_eq!(k["WorkingDir"], "/srv/app");
        assert_eq!(k["ExposedPorts"], json!({"8080/tcp": {}, "53/udp": {}}));
        assert_eq!(k["Entrypoint"], json!(["/main"]));
        assert!(k.get("Cmd").is_none());
        assert_eq!(k["Labels"]["a"], "b");
        assert!(apply_changes(&mut c, &["RUN x".into()]).is_err());
        apply_changes(
            &mut c,
            &[
                "SHELL [\"/bin/bash\", \"-c\"]".into(),
                "CMD echo $X".into(),
                "HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f localhost".into(),
            ],
        )
        .unwrap();
        let k = &c["config"];
        assert_eq!(k["Cmd"], json!(["/bin/bash", "-c", "echo $X"]));
        assert_eq!(
            k["Healthcheck"]["Test"],
            json!(["CMD-SHELL", "curl -f localhost"])
        );
        assert_eq!(k["Healthcheck"]["Interval"], json!(90_000_000_000u64));
        assert_eq!(k["Healthcheck"]["Retries"], json!(3));
        assert!(apply_changes(&mut c, &["HEALTHCHECK --interval=soon CMD x".into()]).is_err());
        assert!(apply_changes(&mut c, &["EXPOSE http".into()]).is_err());
    }
}
