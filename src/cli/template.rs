//! The subset of Go's text/template that docker's `--format` flags take, run over a JSON value
//! (what `inspect`, `ps`, `stats` and `system df` show): field paths (`{{.State.Pid}}`,
//! `{{$.Name}}`), functions (`json`, `upper`, `lower`, `title`, `join`, `index`, `len`,
//! `println`), pipes (`{{.Config.Labels | json}}`), `range` (over lists and maps, with
//! `$k, $v :=`), `if`/`else`, `with`, and `{{-`/`-}}` trimming. Values print as Go prints
//! them: maps as `map[k:v]`, lists as `[a b]`, null as `<nil>`, a missing key as
//! `<no value>`.

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Print(Pipeline),
    Range {
        vars: Vec<String>,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    If {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// `cmd | cmd | ...`; each command a function and its arguments, or a lone term.
type Pipeline = Vec<Vec<Term>>;

#[derive(Debug, Clone)]
enum Term {
    /// `.A.B` (empty path: the dot itself).
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone: the root).
    Var(String, Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Func(String),
}

impl Template {
    /// Parses `text`; an error names what is wrong, as docker's "template parsing error".
    pub fn parse(text: &str) -> Result<Template> {
        let pieces = split(text)?;
        let mut at = 0;
        let (nodes, end) = parse_nodes(&pieces, &mut at)?;
        if let Some(word) = end {
            bail!("template parsing error: unexpected {{{{{word}}}}}");
        }
        Ok(Template { nodes })
    }

    /// Runs the template over `data`.
    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        let mut vars = vec![("$".to_string(), data.clone())];
        exec(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}

/// A piece of the source: text, or the inside of an action.
enum Piece {
    Text(String),
    Action(String),
}

fn split(text: &str) -> Result<Vec<Piece>> {
    let mut pieces = vec![];
    let mut rest = text;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut before = rest[..open].to_string();
        if trim_next {
            before = before.trim_start().to_string();
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            bail!("template parsing error: unclosed action (a {{{{ without }}}})");
        };
        let mut inner = &after[..close];
        if let Some(s) = inner
            .strip_prefix('-')
            .filter(|s| s.starts_with(char::is_whitespace))
        {
            before = before.trim_end().to_string();
            inner = s;
        }
        trim_next = false;
        if let Some(s) = inner
            .strip_suffix('-')
            .filter(|s| s.ends_with(char::is_whitespace))
        {
            trim_next = true;
            inner = s;
        }
        if !before.is_empty() {
            pieces.push(Piece::Text(before));
        }
        let inner = inner.trim();
        if !inner.starts_with("/*") {
            pieces.push(Piece::Action(inner.to_string()));
        }
        rest = &after[close + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        pieces.push(Piece::Text(tail.to_string()));
    }
    Ok(pieces)
}

/// Nodes up to an `end` or `else` (returned) or the end of the source (`None`).
fn parse_nodes(pieces: &[Piece], at: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = vec![];
    while *at < pieces.len() {
        let piece = &pieces[*at];
        *at += 1;
        let action = match piece {
            Piece::Text(t) => {
                nodes.push(Node::Text(t.clone()));
                continue;
            }
            Piece::Action(a) => a,
        };
        let (word, rest) = match action.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (action.as_str(), ""),
        };
        match word {
            "end" | "else" => return Ok((nodes, Some(word.to_string()))),
            "range" | "if" | "with" => {
                let (vars, pipe_text) = match (word, rest.split_once(":=")) {
                    ("range", Some((vars, pipe))) => (
                        vars.split(',')
                            .map(|v| v.trim().to_string())
                            .collect::<Vec<_>>(),
                        pipe,
                    ),
                    _ => (vec![], rest),
                };
                if vars.iter().any(|v| !v.starts_with('$') || v.len() < 2) || vars.len() > 2 {
                    bail!("template parsing error: bad range variables in {{{{{action}}}}}");
                }
                let pipe = parse_pipeline(pipe_text)?;
                let (body, end) = parse_nodes(pieces, at)?;
                let otherwise = match end.as_deref() {
                    Some("end") => vec![],
                    Some("else") => match parse_nodes(pieces, at)? {
                        (nodes, Some(e)) if e == "end" => nodes,
                        _ => bail!("template parsing error: {word} without {{{{end}}}}"),
                    },
                    _ => bail!("template parsing error: {word} without {{{{end}}}}"),
                };
                nodes.push(match word {
                    "range" => Node::Range {
                        vars,
                        pipe,
                        body,
                        otherwise,
                    },
                    "if" => Node::If {
                        pipe,
                        body,
                        otherwise,
                    },
                    _ => Node::With {
                        pipe,
                        body,
                        otherwise,
                    },
                });
            }
            _ => nodes.push(Node::Print(parse_pipeline(action)?)),
        }
    }
    Ok((nodes, None))
}

fn parse_pipeline(text: &str) -> Result<Pipeline> {
    let words = tokens(text)?;
    if words.is_empty() {
        bail!("template parsing error: empty action {{{{}}}}");
    }
    let mut pipe: Pipeline = vec![vec![]];
    for w in words {
        if w == "|" {
            pipe.push(vec![]);
            continue;
        }
        let term = parse_term(&w)?;
        pipe.last_mut().expect("never empty").push(term);
    }
    if pipe.iter().any(Vec::is_empty) {
        bail!("template parsing error: missing command in {text:?}");
    }
    Ok(pipe)
}

fn tokens(text: &str) -> Result<Vec<String>> {
    let mut out = vec![];
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            out.push("|".into());
        } else if c == '"' || c == '`' {
            chars.next();
            let mut s = String::from('"');
            let mut closed = false;
            while let Some(d) = chars.next() {
                match d {
                    '\\' if c == '"' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(other) => s.push(other),
                        None => break,
                    },
                    d if d == c => {
                        closed = true;
                        break;
                    }
                    d => s.push(d),
                }
            }
            if !closed {
                bail!("template parsing error: unterminated string in {text:?}");
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() || d == '|' {
                    break;
                }
                s.push(d);
                chars.next();
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn path_of(text: &str) -> Vec<String> {
    text.split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_term(w: &str) -> Result<Term> {
    if let Some(s) = w.strip_prefix('"') {
        return Ok(Term::Str(s.to_string()));
    }
    if w.starts_with('.') {
        return Ok(Term::Field(path_of(w)));
    }
    if let Some(v) = w.strip_prefix('$') {
        let (name, path) = v.split_once('.').unwrap_or((v, ""));
        return Ok(Term::Var(format!("${name}"), path_of(path)));
    }
    match w {
        "true" => return Ok(Term::Bool(true)),
        "false" => return Ok(Term::Bool(false)),
        _ => {}
    }
    if let Ok(n) = w.parse::<f64>() {
        return Ok(Term::Num(n));
    }
    if FUNCTIONS.contains(&w) {
        return Ok(Term::Func(w.to_string()));
    }
    bail!(
        "template parsing error: function {w:?} not defined (minibox knows {})",
        FUNCTIONS.join(", ")
    )
}

const FUNCTIONS: [&str; 10] = [
    "json", "upper", "lower", "title", "join", "index", "len", "println", "print", "not",
];

/// A value while the template runs: `Missing` is Go's `<no value>`.
#[derive(Debug, Clone)]
enum Val {
    Some(Value),
    Missing,
}

fn field(base: &Val, path: &[String]) -> Val {
    let mut v = base.clone();
    for key in path {
        v = match v {
            Val::Some(Value::Object(map)) => map.get(key).cloned().map_or(Val::Missing, Val::Some),
            _ => Val::Missing,
        };
    }
    v
}

fn lookup(vars: &[(String, Value)], name: &str) -> Result<Value> {
    vars.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .with_context(|| format!("template: undefined variable {name}"))
}

fn eval_term(t: &Term, dot: &Value, vars: &[(String, Value)]) -> Result<Val> {
    Ok(match t {
        Term::Field(path) => field(&Val::Some(dot.clone()), path),
        Term::Var(name, path) => field(&Val::Some(lookup(vars, name)?), path),
        Term::Str(s) => Val::Some(Value::String(s.clone())),
        Term::Num(n) => Val::Some(
            serde_json::Number::from_f64(*n)
                .map(|x| {
                    if n.fract() == 0.0 && n.abs() < 1e15 {
                        Value::from(*n as i64)
                    } else {
                        Value::Number(x)
                    }
                })
                .unwrap_or(Value::Null),
        ),
        Term::Bool(b) => Val::Some(Value::Bool(*b)),
        Term::Func(f) => call(f, vec![])?,
    })
}

fn eval(pipe: &Pipeline, dot: &Value, vars: &[(String, Value)]) -> Result<Val> {
    let mut prev: Option<Val> = None;
    for cmd in pipe {
        let val = match &cmd[0] {
            Term::Func(f) => {
                let mut args = cmd[1..]
                    .iter()
                    .map(|t| eval_term(t, dot, vars))
                    .collect::<Result<Vec<_>>>()?;
                args.extend(prev.take());
                call(f, args)?
            }
            t if cmd.len() == 1 && prev.is_none() => eval_term(t, dot, vars)?,
            _ => bail!("template: can't give arguments to a non-function"),
        };
        prev = Some(val);
    }
    Ok(prev.unwrap_or(Val::Missing))
}

fn call(f: &str, args: Vec<Val>) -> Result<Val> {
    let want = |n: usize| -> Result<()> {
        if args.len() != n {
            bail!("template: {f} takes {n} argument(s), got {}", args.len());
        }
        Ok(())
    };
    let text = |v: &Val| print_val(v);
    Ok(Val::Some(match f {
        "json" => {
            want(1)?;
            let v = match &args[0] {
                Val::Some(v) => v.clone(),
                Val::Missing => Value::Null,
            };
            Value::String(serde_json::to_string(&v)?)
        }
        "upper" => {
            want(1)?;
            Value::String(text(&args[0]).to_uppercase())
        }
        "lower" => {
            want(1)?;
            Value::String(text(&args[0]).to_lowercase())
        }
        "title" => {
            want(1)?;
            let mut s = String::new();
            let mut start = true;
            for c in text(&args[0]).chars() {
                if start {
                    s.extend(c.to_uppercase());
                } else {
                    s.push(c);
                }
                start = c.is_whitespace();
            }
            Value::String(s)
        }
        "join" => {
            want(2)?;
            let Val::Some(Value::Array(items)) = &args[0] else {
                bail!("template: join wants a list first");
            };
            let sep = text(&args[1]);
            Value::String(
                items
                    .iter()
                    .map(|i| print_val(&Val::Some(i.clone())))
                    .collect::<Vec<_>>()
                    .join(&sep),
            )
        }
        "index" => {
            if args.len() < 2 {
                bail!("template: index takes a value and keys");
            }
            let mut v = args[0].clone();
            for key in &args[1..] {
                v = match (v, key) {
                    (Val::Some(Value::Object(m)), k) => {
                        m.get(&text(k)).cloned().map_or(Val::Missing, Val::Some)
                    }
                    (Val::Some(Value::Array(a)), Val::Some(Value::Number(n))) => n
                        .as_u64()
                        .and_then(|i| a.get(i as usize).cloned())
                        .map_or(Val::Missing, Val::Some),
                    _ => Val::Missing,
                };
            }
            return Ok(v);
        }
        "len" => {
            want(1)?;
            Value::from(match &args[0] {
                Val::Some(Value::Array(a)) => a.len(),
                Val::Some(Value::Object(m)) => m.len(),
                Val::Some(Value::String(s)) => s.len(),
                _ => bail!("template: len of a value with no length"),
            })
        }
        "println" | "print" => {
            let mut s = args.iter().map(text).collect::<Vec<_>>().join(" ");
            if f == "println" {
                s.push('\n');
            }
            Value::String(s)
        }
        "not" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        other => bail!("template: function {other:?} not defined"),
    }))
}

fn truthy(v: &Val) -> bool {
    match v {
        Val::Missing | Val::Some(Value::Null) => false,
        Val::Some(Value::Bool(b)) => *b,
        Val::Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Val::Some(Value::String(s)) => !s.is_empty(),
        Val::Some(Value::Array(a)) => !a.is_empty(),
        Val::Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// As Go's `fmt` prints a value decoded from JSON.
fn print_val(v: &Val) -> String {
    match v {
        Val::Missing => "<no value>".into(),
        Val::Some(v) => print_value(v),
    }
}

fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(print_value).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let cells: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", print_value(&map[*k])))
                .collect();
            format!("map[{}]", cells.join(" "))
        }
    }
}

fn exec(
    nodes: &[Node],
    dot: &Value,
    vars: &mut Vec<(String, Value)>,
    out: &mut String,
) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Print(pipe) => out.push_str(&print_val(&eval(pipe, dot, vars)?)),
            Node::If {
                pipe,
                body,
                otherwise,
            } => {
                let branch = if truthy(&eval(pipe, dot, vars)?) {
                    body
                } else {
                    otherwise
                };
                exec(branch, dot, vars, out)?;
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => match eval(pipe, dot, vars)? {
                Val::Some(v) if truthy(&Val::Some(v.clone())) => exec(body, &v, vars, out)?,
                _ => exec(otherwise, dot, vars, out)?,
            },
            Node::Range {
                vars: names,
                pipe,
                body,
                otherwise,
            } => {
                let items: Vec<(Value, Value)> = match eval(pipe, dot, vars)? {
                    Val::Some(Value::Array(a)) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i), v))
                        .collect(),
                    Val::Some(Value::Object(m)) => {
                        let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
                        pairs.sort_by(|a, b| a.0.cmp(&b.0));
                        pairs
                            .into_iter()
                            .map(|(k, v)| (Value::String(k), v))
                            .collect()
                    }
                    Val::Missing | Val::Some(Value::Null) => vec![],
                    Val::Some(other) => {
                        bail!("template: range can't iterate over {}", print_value(&other))
                    }
                };
                if items.is_empty() {
                    exec(otherwise, dot, vars, out)?;
                }
                for (key, value) in items {
                    let depth = vars.len();
                    match names.as_slice() {
                        [v] => vars.push((v.clone(), value.clone())),
                        [k, v] => {
                            vars.push((k.clone(), key));
                            vars.push((v.clone(), value.clone()));
                        }
                        _ => {}
                    }
                    let run = exec(body, &value, vars, out);
                    vars.truncate(depth);
                    run?;
                }
            }
        }
    }
    Ok(())
}

/// docker's format flags turn a literal `\t` and `\n` (as a shell passes them) into a tab and
/// a newline.
pub fn unescape(format: &str) -> String {
    format.replace("\\t", "\t").replace("\\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn field_paths_functions_and_go_printing() {
        let v = json!({
            "State": {"Pid": 42, "Running": true, "Error": null},
            "Name": "web",
            "Config": {"Labels": {"b": "2", "a": "1"}},
            "Args": ["x", "y"],
        });
        assert_eq!(render("{{.State.Pid}}", &v), "42");
        assert_eq!(render("pid={{ .State.Pid }} {{.Name}}", &v), "pid=42 web");
        assert_eq!(render("{{.State.Running}}", &v), "true");
        assert_eq!(render("{{.State.Error}}", &v), "<nil>");
        assert_eq!(render("{{.Nope.Deeper}}", &v), "<no value>");
        assert_eq!(render("{{.Config.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(render("{{.Args}}", &v), "[x y]");
        assert_eq!(
            render("{{json .Config.Labels}}", &v),
            r#"{"b":"2","a":"1"}"#
        );
        assert_eq!(
            render("{{.Config.Labels | json}}", &v),
            r#"{"b":"2","a":"1"}"#
        );
        assert_eq!(render("{{index .Config.Labels \"a\"}}", &v), "1");
        assert_eq!(render("{{upper .Name}}", &v), "WEB");
        assert_eq!(render("{{join .Args \",\"}}", &v), "x,y");
        assert_eq!(render("{{len .Args}}", &v), "2");
        assert_eq!(render("{{json .}}", &json!("s")), "\"s\"");
    }

    #[test]
    fn range_if_with_and_trimming() {
        let v = json!({"L": {"b": "2", "a": "1"}, "N": [1, 2], "E": {}});
        assert_eq!(
            render("{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}", &v),
            "a=1;b=2;"
        );
        assert_eq!(render("{{range .N}}<{{.}}>{{end}}", &v), "<1><2>");
        assert_eq!(render("{{range .E}}x{{else}}none{{end}}", &v), "none");
        assert_eq!(render("{{if .N}}yes{{else}}no{{end}}", &v), "yes");
        assert_eq!(render("{{if .E}}yes{{else}}no{{end}}", &v), "no");
        assert_eq!(render("{{with .L}}{{.a}}{{end}}", &v), "1");
        assert_eq!(render("a  {{- \"b\" -}}  c", &v), "abc");
        assert_eq!(render("{{range .N}}{{$.L.a}}{{end}}", &v), "11");
    }

    #[test]
    fn bad_templates_are_one_clear_error() {
        for bad in ["{{.A", "{{range .A}}", "{{nosuch .A}}", "{{end}}", "{{}}"] {
            let e = Template::parse(bad).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains("template parsing error"), "{bad}: {e}");
        }
    }
}
