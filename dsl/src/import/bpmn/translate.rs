//! Small translations from the words of BPMN tools to `.flow`: ISO 8601 durations, JUEL and
//! FEEL conditions, ids and labels as node names, strings as `.flow` literals.

use crate::model::CExpr;

/// Why a text could not be translated: the reason and how to fix it.
pub(super) struct Untranslated {
    pub reason: String,
    pub help: String,
}

fn untranslated(reason: impl Into<String>, help: impl Into<String>) -> Untranslated {
    Untranslated { reason: reason.into(), help: help.into() }
}

/// A `.flow` string literal holding `s`.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Words `.flow` reserves where a node name or variable is written.
const RESERVED: &[&str] = &[
    "and", "or", "not", "in", "if", "then", "else", "true", "false", "null", "between", "decide", "set", "on", "every",
];

/// A `.flow` name made of `raw`: lower snake case, letters, digits and `_`, never a keyword and
/// never starting with a digit. Empty when nothing of `raw` is usable.
pub(super) fn ident(raw: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower {
                out.push('_');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
            prev_lower = false;
        }
    }
    let mut out = out.trim_end_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if RESERVED.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// True when `s` is a `.flow` name as written (no translation needed).
pub(super) fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&s)
}

/// A `.flow` duration literal for an ISO 8601 duration (`PT5M` → `5m`, `P3D` → `3d`): a day is
/// 24 hours in `.flow`. Years and months have no fixed length and are refused.
pub(super) fn iso_duration(text: &str) -> Result<String, Untranslated> {
    let bad = || {
        untranslated(
            format!("`{text}` is not an ISO 8601 duration of weeks, days, hours, minutes and seconds"),
            "write it as `PT30M`, `PT48H` or `P5D`",
        )
    };
    let rest = text.trim().strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut secs: i64 = 0;
    for (part, units) in [(date, &[('W', 604_800), ('D', 86_400)][..]), (time, &[('H', 3600), ('M', 60), ('S', 1)][..])]
    {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let (_, size) = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?;
            let n: i64 = number.parse().map_err(|_| bad())?;
            secs = secs.checked_add(n.checked_mul(*size).ok_or_else(bad)?).ok_or_else(bad)?;
            number.clear();
        }
        if !number.is_empty() {
            return Err(bad());
        }
    }
    if secs == 0 && !text.contains(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(crate::export::duration_text(secs))
}

/// The expression inside an expression language's markers: `${x}` and `#{x}` (JUEL) or `=x`
/// (FEEL in Camunda 8). `None` when `text` has no marker: a plain value.
pub(super) fn unwrap_expression(text: &str) -> Option<&str> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix("${").or_else(|| t.strip_prefix("#{")) {
        return inner.strip_suffix('}').map(str::trim);
    }
    t.strip_prefix('=').map(str::trim)
}

/// A variable named in a translated condition, and the type a literal it is compared with
/// suggests (`None`: used as a bool or compared with another variable).
pub(super) struct Used {
    pub name: String,
    pub ty: Option<&'static str>,
}

enum Tok {
    Name(String),
    Number(String),
    Str(String),
    Op(&'static str),
    Open,
    Close,
}

/// Translates a simple JUEL or FEEL condition (`${amount > 1000 && approved}`, `=risk = "A"`) to
/// `.flow`: names, numbers, strings, `true`/`false`/`null`, comparisons, `and`/`or`/`not`
/// (`&&`, `||`, `!` too) and parentheses. Anything else (method calls, `execution`, `empty`) is
/// refused: guessing its meaning could change the process.
pub(super) fn condition(text: &str) -> Result<(String, Vec<Used>), Untranslated> {
    let inner = unwrap_expression(text).unwrap_or(text.trim());
    let toks = tokenize(inner)?;
    let mut out = Vec::new();
    let mut used = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        let piece = match tok {
            Tok::Name(n) => match n.as_str() {
                "and" | "or" | "true" | "false" | "null" => n.clone(),
                "not" => "not".to_string(),
                "eq" => "=".to_string(),
                "ne" => "!=".to_string(),
                "lt" => "<".to_string(),
                "gt" => ">".to_string(),
                "le" => "<=".to_string(),
                "ge" => ">=".to_string(),
                "execution" | "empty" | "task" => {
                    return Err(untranslated(
                        format!("`{n}` in `{text}` has no meaning in `.flow`"),
                        "rewrite the condition over process variables, such as `amount > 1000`",
                    ));
                }
                _ => {
                    if matches!(toks.get(i + 1), Some(Tok::Open)) {
                        return Err(untranslated(
                            format!("`{text}` calls `{n}(...)`, which is not translated"),
                            "rewrite the condition with comparisons of variables and literals",
                        ));
                    }
                    let root = n.split('.').next().unwrap_or(n);
                    if !is_ident(root) {
                        return Err(untranslated(
                            format!("`{n}` in `{text}` is not a `.flow` variable name"),
                            "rename the variable to letters, digits and `_`",
                        ));
                    }
                    used.push(Used { name: root.to_string(), ty: literal_beside(&toks, i) });
                    n.clone()
                }
            },
            Tok::Number(n) => n.clone(),
            Tok::Str(s) => quote(s),
            Tok::Op("!") => {
                // `!x` is `not x` only when nothing binds to `x` first: `!a == b` is refused.
                let next_is_operand = matches!(toks.get(i + 1), Some(Tok::Name(_) | Tok::Open));
                let then_compared = matches!(toks.get(i + 2), Some(Tok::Op(op)) if is_comparison(op));
                if !next_is_operand || (matches!(toks.get(i + 1), Some(Tok::Name(_))) && then_compared) {
                    return Err(untranslated(
                        format!("`!` in `{text}` is ambiguous once translated"),
                        "put what `!` negates in parentheses: `!(a == b)`",
                    ));
                }
                "not".to_string()
            }
            Tok::Op(op) => op.to_string(),
            Tok::Open => "(".to_string(),
            Tok::Close => ")".to_string(),
        };
        out.push(piece);
    }
    let mut flow = String::new();
    for piece in out {
        if !(flow.is_empty() || flow.ends_with('(') || piece == ")") {
            flow.push(' ');
        }
        flow.push_str(&piece);
    }
    CExpr::parse(&flow).map_err(|why| {
        untranslated(format!("`{text}` does not translate to a `.flow` expression ({why})"), "simplify the condition")
    })?;
    Ok((flow, used))
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "=" | "!=" | "<" | "<=" | ">" | ">=")
}

/// The type suggested by a literal compared with the name at `i` (`amount > 1000`: decimal).
fn literal_beside(toks: &[Tok], i: usize) -> Option<&'static str> {
    let after = matches!(toks.get(i + 1), Some(Tok::Op(op)) if is_comparison(op)).then(|| toks.get(i + 2)).flatten();
    let before = (i >= 2 && matches!(toks.get(i - 1), Some(Tok::Op(op)) if is_comparison(op)))
        .then(|| toks.get(i - 2))
        .flatten();
    match after.or(before) {
        Some(Tok::Number(_)) => Some("decimal"),
        Some(Tok::Str(_)) => Some("text"),
        Some(Tok::Name(n)) if n == "true" || n == "false" => Some("bool"),
        _ if i + 1 >= toks.len() || matches!(toks.get(i + 1), Some(Tok::Name(n)) if n == "and" || n == "or") => {
            Some("bool")
        }
        _ => None,
    }
}

fn tokenize(text: &str) -> Result<Vec<Tok>, Untranslated> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Name(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Number(chars[start..i].iter().collect()));
        } else if c == '"' || c == '\'' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            if i >= chars.len() {
                return Err(untranslated(format!("unclosed string in `{text}`"), "close the string"));
            }
            toks.push(Tok::Str(chars[start..i].iter().collect()));
            i += 1;
        } else {
            let op: Option<(&'static str, usize)> = match (two.as_str(), c) {
                ("==", _) => Some(("=", 2)),
                ("!=", _) => Some(("!=", 2)),
                ("<=", _) => Some(("<=", 2)),
                (">=", _) => Some((">=", 2)),
                ("&&", _) => Some(("and", 2)),
                ("||", _) => Some(("or", 2)),
                (_, '<') => Some(("<", 1)),
                (_, '>') => Some((">", 1)),
                (_, '=') => Some(("=", 1)),
                (_, '!') => Some(("!", 1)),
                (_, '+') => Some(("+", 1)),
                (_, '-') => Some(("-", 1)),
                (_, '*') => Some(("*", 1)),
                (_, '/') => Some(("/", 1)),
                _ => None,
            };
            match (op, c) {
                (Some((op, len)), _) => {
                    toks.push(Tok::Op(op));
                    i += len;
                }
                (None, '(') => {
                    toks.push(Tok::Open);
                    i += 1;
                }
                (None, ')') => {
                    toks.push(Tok::Close);
                    i += 1;
                }
                _ => {
                    return Err(untranslated(
                        format!("`{c}` in `{text}` is not translated"),
                        "use comparisons, `and`, `or`, `not` and parentheses",
                    ));
                }
            }
        }
    }
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn juel_and_feel_conditions_translate() {
        let ok = |t: &str| condition(t).map(|(s, _)| s).map_err(|u| u.reason);
        assert_eq!(ok("${amount > 1000 && approved}").unwrap(), "amount > 1000 and approved");
        assert_eq!(ok("=risk = \"A\" or risk = \"B\"").unwrap(), "risk = \"A\" or risk = \"B\"");
        assert_eq!(ok("${!approved}").unwrap(), "not approved");
        assert_eq!(ok("#{status == 'open'}").unwrap(), "status = \"open\"");
        assert_eq!(ok("${a ge 10}").unwrap(), "a >= 10");
        assert!(ok("${execution.getVariable('x')}").is_err());
        assert!(ok("${order.isLarge()}").is_err());
        assert!(ok("${!a == b}").is_err());
        assert!(ok("${empty list}").is_err());
    }

    #[test]
    fn iso_durations_become_literals() {
        let d = |t: &str| iso_duration(t).map_err(|u| u.reason);
        assert_eq!(d("PT5M").unwrap(), "5m");
        assert_eq!(d("P3D").unwrap(), "3d");
        assert_eq!(d("P1DT12H").unwrap(), "36h");
        assert_eq!(d("PT90S").unwrap(), "90s");
        assert!(d("P1M").is_err());
        assert!(d("PT").is_err());
        assert!(d("5 minutes").is_err());
    }

    #[test]
    fn names_become_snake_case_idents() {
        assert_eq!(ident("Approve order"), "approve_order");
        assert_eq!(ident("StartEvent_1"), "start_event_1");
        assert_eq!(ident("Activity_0x1abc"), "activity_0x1abc");
        assert_eq!(ident("1st step"), "_1st_step");
        assert_eq!(ident("not"), "not_");
        assert_eq!(ident("größe"), "gr_e");
        assert_eq!(ident("???"), "");
    }
}
