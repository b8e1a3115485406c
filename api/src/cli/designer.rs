//! The designers' commands: `check` and `graph` compile `.flow` files, `import` reads BPMN,
//! `eval` tries an expression the way a `decide` reads it, and `schedule` shows when a cron
//! start will fire. None of them touches a database or a server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use cloverleaf_dsl::calendar::Calendar;
use cloverleaf_dsl::expr::{self, EvalContext, Scope, Value};
use cloverleaf_dsl::schedule::Schedule;
use cloverleaf_dsl::{Format, Project, SourceMap};

/// Loads `files` plus the other `.flow` files of their directories; returns the project and
/// how many of its files were asked for (they come first).
fn load(files: &[PathBuf]) -> Result<(Project, usize)> {
    let mut project = Project::new();
    let mut seen = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        project.add(file.display().to_string(), text);
        seen.push(canonical(file));
    }
    let asked = seen.len();
    let mut dirs: Vec<PathBuf> =
        files.iter().map(|f| f.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut siblings: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "flow"))
            .collect();
        siblings.sort();
        for sibling in siblings {
            let key = canonical(&sibling);
            if seen.contains(&key) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&sibling) {
                // `./x.flow` reads better as `x.flow` for a file of the working directory.
                let name = sibling.strip_prefix(".").unwrap_or(&sibling).display().to_string();
                project.add(name, text);
                seen.push(key);
            }
        }
    }
    Ok((project, asked))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(super) fn check(files: &[PathBuf]) -> Result<ExitCode> {
    // Alert rules (`.rules`) are checked against the indicator catalogue; the rest are processes.
    let (rule_paths, files): (Vec<PathBuf>, Vec<PathBuf>) =
        files.iter().cloned().partition(|p| p.extension().is_some_and(|x| x == "rules"));
    let mut rules_failed = false;
    if !rule_paths.is_empty() {
        let mut texts = Vec::new();
        for path in &rule_paths {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            texts.push((path.display().to_string(), text));
        }
        // `notify` may name the roles the processes beside the rules declare.
        let dirs: Vec<&Path> = rule_paths
            .iter()
            .map(|p| match p.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            })
            .collect();
        let roles = cloverleaf::server::alerts::declared_roles(&dirs);
        match cloverleaf::server::alerts::check_rules(&texts, roles.as_deref()) {
            Ok(rules) => {
                eprintln!("checked {} rule file(s): {} alert rule(s), 0 error(s)", rule_paths.len(), rules.len())
            }
            Err(rendered) => {
                eprintln!("{rendered}");
                eprintln!("checked {} rule file(s): errors above", rule_paths.len());
                rules_failed = true;
            }
        }
        if files.is_empty() {
            return Ok(if rules_failed { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
    }
    let files = &files[..];
    let (project, asked) = load(files)?;
    let compilation = project.compile();
    let (mine, context): (Vec<_>, Vec<_>) = compilation.diagnostics.iter().partition(|d| (d.file.0 as usize) < asked);
    if !mine.is_empty() {
        eprint!("{}", compilation.sources.render_all(mine.iter().copied()));
        eprintln!();
    }
    let mut broken_context: BTreeMap<String, usize> = BTreeMap::new();
    for d in context.iter().filter(|d| d.is_error()) {
        *broken_context.entry(compilation.sources.get(d.file).name.clone()).or_default() += 1;
    }
    for (name, n) in &broken_context {
        eprintln!("note: {name} (loaded for context) has {n} error(s); run `cloverleaf check {name}`");
    }
    let errors = mine.iter().filter(|d| d.is_error()).count();
    let warnings = mine.len() - errors;
    let asked_keys: Vec<String> =
        compilation.sources.iter().take(asked).flat_map(|(id, file)| process_keys(id, &file.text)).collect();
    let compiled = compilation.processes.iter().filter(|p| asked_keys.contains(&p.key)).count();
    // A calendar the designer checks that lacks this year's holidays (or, late in the year, the
    // next's): not a mistake in the file, so a note, but the one who keeps it should know.
    let now = Utc::now();
    for name in compilation.sources.iter().take(asked).flat_map(|(id, file)| calendar_names(id, &file.text)) {
        let Some(calendar) = compilation.calendars.get(&name) else { continue };
        let years = calendar.unlisted_years_at(now);
        if !years.is_empty() {
            let years: Vec<String> = years.iter().map(i32::to_string).collect();
            eprintln!(
                "note: calendar `{name}` lists no holidays or make-up working days for {}: business days there \
                 count as plain weeks until they are added",
                years.join(" and ")
            );
        }
    }
    eprintln!("checked {asked} file(s): {compiled} process(es) compiled, {errors} error(s), {warnings} warning(s)");
    Ok(if errors > 0 || rules_failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The names of the calendars a file declares (none if it does not parse).
fn calendar_names(id: cloverleaf_dsl::FileId, text: &str) -> Vec<String> {
    let (ast, _) = cloverleaf_dsl::parse(id, text);
    ast.map(|a| a.calendars.iter().map(|c| c.name.name.clone()).collect()).unwrap_or_default()
}

/// The keys of the processes a file defines (none if it does not parse).
fn process_keys(id: cloverleaf_dsl::FileId, text: &str) -> Vec<String> {
    let (ast, _) = cloverleaf_dsl::parse(id, text);
    ast.map(|a| a.processes.iter().map(|p| p.key.name.clone()).collect()).unwrap_or_default()
}

pub(super) fn graph(file: &Path, format: &str, process: Option<&str>) -> Result<ExitCode> {
    let format: Format = format.parse().map_err(anyhow::Error::msg)?;
    let (project, _) = load(&[file.to_path_buf()])?;
    let compilation = project.compile();
    let errors: Vec<_> = compilation.diagnostics.iter().filter(|d| d.file.0 == 0 && d.is_error()).collect();
    if !errors.is_empty() {
        eprint!("{}", compilation.sources.render_all(errors.iter().copied()));
        return Ok(ExitCode::from(1));
    }
    // The processes defined in the file itself, not in the context files.
    let first = cloverleaf_dsl::FileId(0);
    let keys = process_keys(first, &compilation.sources.get(first).text);
    let key = match (process, keys.as_slice()) {
        (Some(k), _) => k.to_string(),
        (None, [only]) => only.clone(),
        (None, []) => bail!("{} defines no process", file.display()),
        (None, many) => {
            bail!("{} defines several processes ({}): choose one with --process", file.display(), many.join(", "))
        }
    };
    let Some(compiled) = compilation.process(&key) else {
        bail!("no process `{key}` in {}", file.display());
    };
    print!("{}", cloverleaf_dsl::export(compiled, format));
    Ok(ExitCode::SUCCESS)
}

pub(super) fn import(file: &Path, output: Option<&Path>) -> Result<ExitCode> {
    let xml = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut sources = cloverleaf_dsl::SourceMap::new();
    let id = sources.add(file.display().to_string(), xml.as_str());
    let imported = cloverleaf_dsl::import::bpmn::from_bpmn(id, &xml);
    if !imported.diagnostics.is_empty() {
        eprint!("{}", sources.render_all(&imported.diagnostics));
    }
    let Some(flow) = imported.flow else {
        let errors = imported.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("\n{errors} element(s) of {} could not be translated: nothing written", file.display());
        return Ok(ExitCode::from(1));
    };
    match output {
        Some(path) => std::fs::write(path, &flow).with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{flow}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    bail!("`{text}` is not a time: write RFC 3339 such as 2026-11-30T18:00:00+08:00, or a date such as 2026-11-30")
}

/// The calendar `name` as `flow` and the other .flow files of its directory declare it.
fn declared_calendar(name: &str, flow: &Path) -> Result<Calendar> {
    let (project, _) = load(&[flow.to_path_buf()])?;
    let mut compiled = project.compile();
    if let Some(calendar) = compiled.calendars.remove(name) {
        return Ok(calendar);
    }
    let dir = flow.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let declared: Vec<&str> = compiled.calendars.keys().map(String::as_str).collect();
    let known = if declared.is_empty() { "none".to_string() } else { declared.join(", ") };
    let mut message = format!(
        "--calendar `{name}`: no calendar of that name is declared without errors in {} or the other .flow files \
         of {} (declared: {known})",
        flow.display(),
        dir.display()
    );
    if let Some(near) = cloverleaf_dsl::suggest::did_you_mean(name, declared.iter().copied()) {
        message.push_str(&format!("; did you mean `{near}`?"));
    }
    if compiled.has_errors() {
        eprint!("{}", compiled.render());
        message.push_str("; the errors above may be why");
    }
    bail!(message)
}

pub(super) fn eval(
    source: &str,
    context: &str,
    declare: &[String],
    now: Option<&str>,
    calendar: Option<(&str, &Path)>,
) -> Result<ExitCode> {
    let calendar = calendar.map(|(name, flow)| declared_calendar(name, flow)).transpose()?;
    let json: serde_json::Value = serde_json::from_str(context).context("--context is not valid JSON")?;
    let serde_json::Value::Object(map) = &json else {
        bail!("--context must be a JSON object, such as '{{\"amount\": 12000.50}}'");
    };
    let mut vars: BTreeMap<String, Value> =
        map.iter().map(|(k, v)| (k.clone(), read_dates(Value::from_json_untyped(v)))).collect();
    let mut scope = Scope::new();
    for (name, value) in &vars {
        scope.insert(name, value.type_of());
    }
    // Declared variables have the declared type, whatever their value (a JSON null included).
    for declaration in declare {
        let (name, ty) = declaration
            .split_once(':')
            .with_context(|| format!("--declare `{declaration}`: write NAME:TYPE, such as `flag:bool?`"))?;
        let (name, ty) = (name.trim(), ty.trim());
        let ty: expr::Type = ty
            .strip_suffix('?')
            .unwrap_or(ty)
            .parse()
            .map_err(|e| anyhow::anyhow!("--declare `{declaration}`: {e}"))?;
        let json = map.get(name).unwrap_or(&serde_json::Value::Null);
        let value = Value::from_json(json, &ty).with_context(|| format!("--context `{name}`"))?;
        vars.insert(name.to_string(), value);
        scope.insert(name, ty);
    }
    let mut sources = SourceMap::new();
    let file = sources.add("<expr>", source);
    let parsed = match expr::parse_expr(source, file) {
        Ok(e) => e,
        Err(diag) => {
            eprint!("{}", sources.render(&diag));
            return Ok(ExitCode::from(1));
        }
    };
    let (ty, diags) = expr::check_expr(&parsed, &scope, file);
    if !diags.is_empty() {
        // As `check` does, list a bounded number of diagnostics.
        eprint!("{}", sources.render_all(diags.iter().take(cloverleaf_dsl::MAX_DIAGNOSTICS)));
        if diags.len() > cloverleaf_dsl::MAX_DIAGNOSTICS {
            eprintln!("\n{} more diagnostics are not listed", diags.len() - cloverleaf_dsl::MAX_DIAGNOSTICS);
        }
        if diags.iter().any(|d| d.is_error()) {
            return Ok(ExitCode::from(1));
        }
    }
    let now = match now {
        Some(t) => parse_time(t)?,
        None => Utc::now(),
    };
    let ctx = EvalContext::new(&vars, now).with_calendar(calendar.as_ref());
    match expr::eval(&parsed, &ctx) {
        Ok(value) => {
            println!("{value}");
            println!("  type: {}", if matches!(value, Value::Null) { ty.to_string() } else { value_type(&value, &ty) });
            if matches!(ty, expr::Type::Bool) || matches!(value, Value::Bool(_) | Value::Null) {
                println!(
                    "  a decide arm with this condition is {}",
                    if expr::is_true(&value) { "taken" } else { "not taken" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: {err}");
            if calendar.is_none() && err.to_string().contains("calendar") {
                eprintln!(
                    "  help: name one with --calendar NAME --flow FILE, e.g. --calendar cn --flow processes/calendars.flow"
                );
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Context strings written as ISO dates or RFC 3339 times are read as dates and datetimes, the
/// way a process variable of that type would hold them.
fn read_dates(value: Value) -> Value {
    match value {
        Value::Text(text) => {
            if let Ok(date) = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
                Value::Date(date)
            } else if let Ok(time) = DateTime::parse_from_rfc3339(&text) {
                Value::DateTime(time.with_timezone(&Utc))
            } else {
                Value::Text(text)
            }
        }
        Value::List(items) => Value::List(items.into_iter().map(read_dates).collect()),
        Value::Record(fields) => Value::Record(fields.into_iter().map(|(k, v)| (k, read_dates(v))).collect()),
        other => other,
    }
}

fn value_type(value: &Value, static_type: &expr::Type) -> String {
    // The checker knows money from decimal; the value alone does not.
    if static_type.is_numeric() && matches!(value, Value::Number(_)) {
        static_type.to_string()
    } else {
        value.type_of().to_string()
    }
}

pub(super) fn schedule(pattern: &str, tz: Option<&str>, from: Option<&str>, n: usize) -> Result<ExitCode> {
    let schedule = match Schedule::parse(pattern, tz) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("error: {err}");
            eprintln!("  help: {}", err.help());
            return Ok(ExitCode::from(1));
        }
    };
    let from = match from {
        Some(t) => parse_time(t)?,
        None => Utc::now(),
    };
    eprintln!("{schedule}: {}", schedule.describe());
    for time in schedule.upcoming(from, n) {
        println!("{}", time.to_rfc3339());
    }
    Ok(ExitCode::SUCCESS)
}
