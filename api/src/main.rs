//! `cloverleaf`: the command line of the Cloverleaf workflow engine.
//!
//! Process tooling for designers: `check` and `graph` compile `.flow` files, `eval` tries an
//! expression the way a `decide` reads it, and `schedule` shows when a cron start will fire.
//! For operators: `serve` runs the HTTP API with the scheduler, `worker` runs automated steps for
//! a remote server, `migrate` moves running instances to another deployed version, `modify`
//! repairs a running instance by hand, `archive` moves ended instances into an archive database, `audit
//! verify` re-checks the tamper-evident history, and `hash-password`
//! makes the `password_argon2` of a user in `cloverleaf.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use cloverleaf_dsl::calendar::Calendar;
use cloverleaf_dsl::expr::{self, EvalContext, Scope, Value};
use cloverleaf_dsl::schedule::Schedule;
use cloverleaf_dsl::{Format, Project, SourceMap};

#[path = "cli/operator.rs"]
mod operator;

use operator::{ArchiveArgs, MigrateArgs, ModifyAction, target};

#[derive(Parser)]
#[command(name = "cloverleaf", version, about = "Workflow engine where business and finance meet")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check .flow files; exit 0 when clean (warnings allowed), 1 on errors.
    ///
    /// Other .flow files in the same directories are loaded too, so that roles and called
    /// processes declared there resolve.
    Check {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the compiled graph of a process.
    Graph {
        /// The .flow file.
        file: PathBuf,
        /// json, dot (Graphviz), mermaid or bpmn (BPMN 2.0 XML with its diagram).
        #[arg(long, default_value = "json")]
        format: String,
        /// Which process, when the file defines several.
        #[arg(long)]
        process: Option<String>,
    },
    /// Translate a BPMN 2.0 file (Cloverleaf's export, or Camunda Modeler's) into .flow.
    ///
    /// Prints the .flow text, or writes it with -o. Each element that cannot be translated is
    /// reported at its place in the XML, and then nothing is written (exit 1).
    Import {
        /// The .bpmn file.
        file: PathBuf,
        /// Write the .flow text here instead of printing it.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Evaluate an expression as a decide would, and print its value and type.
    Eval {
        /// The expression, e.g. 'amount <= 10_000 and risk in ["A", "B"]'.
        expr: String,
        /// Variables as a JSON object; numbers are read as exact decimals, strings such as
        /// "2026-01-31" or "2026-01-31T10:00:00Z" as dates and datetimes.
        #[arg(long, default_value = "{}")]
        context: String,
        /// Declare a variable's type as a process would, e.g. `--declare flag:bool?` (repeatable):
        /// its value in --context (null when absent) is read as that type, and the expression
        /// is checked against it.
        #[arg(long = "declare", value_name = "NAME:TYPE")]
        declare: Vec<String>,
        /// The time `now()` and `today()` see (RFC 3339); default: the system clock.
        #[arg(long)]
        now: Option<String>,
        /// The business calendar `business days` and `business hours` count on, and whose clock
        /// `today()` reads, as in a process that names it (`calendar cn`); declared in a --flow file.
        #[arg(long, requires = "flow")]
        calendar: Option<String>,
        /// The .flow file declaring --calendar (its directory's other .flow files are read too),
        /// e.g. `processes/calendars.flow`.
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
    },
    /// Print the next fire times of a cron schedule.
    Schedule {
        /// The cron pattern, e.g. "0 18 L * *".
        expr: String,
        /// IANA time zone; default UTC.
        #[arg(long)]
        tz: Option<String>,
        /// Start after this time (RFC 3339, or a date); default: now.
        #[arg(long)]
        from: Option<String>,
        /// How many fire times.
        #[arg(short = 'n', default_value_t = 5)]
        n: usize,
    },
    /// Run the HTTP API, the timer scheduler and the in-process workers.
    ///
    /// Never an open server: with no configuration file it creates one with demo users and fresh
    /// random tokens (stored hashed), and writes the plain tokens to a file beside it.
    Serve {
        /// The database: sqlite://FILE, a file path, or postgres://USER@HOST/NAME.
        #[arg(long, default_value = "sqlite://cloverleaf.db")]
        db: String,
        /// The .flow files deployed on start.
        #[arg(long, default_value = "./processes")]
        processes: PathBuf,
        /// Users, roles and token hashes.
        #[arg(long, default_value = "./cloverleaf.toml")]
        config: PathBuf,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The lease of the jobs this node's in-process workers lock (`500ms`, `20s`, `2m`):
        /// extended every half lease while a job runs, and how long the jobs of this node wait
        /// before another node takes them over if it dies. Default: 20s.
        #[arg(long, value_parser = parse_lease)]
        job_lease: Option<std::time::Duration>,
        /// How long the writer waits for more writes before it commits a batch while writes come
        /// together (`0ms` to `100ms`; a lone write never waits): fewer, fuller transactions for
        /// a few milliseconds more a step. Default: 6ms on PostgreSQL, 0ms on SQLite.
        #[arg(long, value_parser = parse_linger)]
        write_linger: Option<std::time::Duration>,
        /// The IANA time zone the books are kept in (`Asia/Shanghai`): the day a posting is
        /// dated and the month it falls in. Chosen before the books' first entry; the demo
        /// company keeps Asia/Shanghai. Default: as the books say (UTC for new books).
        #[arg(long, value_parser = parse_zone)]
        book_time_zone: Option<chrono_tz::Tz>,
    },
    /// Run automated steps for a remote server: fetch its jobs over HTTP and run them with the
    /// built-in finance handlers (--ledger) and/or HTTP endpoints (--endpoints).
    ///
    /// Stops cleanly on SIGINT or SIGTERM: jobs in flight finish, or are given back.
    Worker {
        /// The server's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        server: String,
        /// The bearer token of a user with the worker role (better: set CLOVERLEAF_TOKEN, which
        /// `ps` does not show).
        #[arg(long, env = "CLOVERLEAF_TOKEN", hide_env_values = true)]
        token: String,
        /// Job types to fetch, comma-separated; `finance.*` matches a prefix. Default: every job
        /// type the handlers cover.
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// Most jobs running at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// The name the server records as the lock owner. Default: HOST-PID.
        #[arg(long)]
        worker_id: Option<String>,
        /// The lease of the jobs this worker locks (`500ms`, `20s`, `2m`): extended every half
        /// lease while a job runs, and how long its jobs wait before another worker takes them
        /// over if it dies. Default: 20s.
        #[arg(long, value_parser = parse_lease)]
        lease: Option<std::time::Duration>,
        /// Run the built-in finance handlers on the sub-ledger in this database: the server's
        /// (postgres://..., or sqlite://FILE when the worker runs on the server's machine).
        #[arg(long)]
        ledger: Option<String>,
        /// Hand job types to HTTP endpoints: a TOML file of tables named by job type, such as
        /// ["erp.order.create"] with url = "http://erp/orders", timeout = "20s" and an optional
        /// headers table.
        #[arg(long)]
        endpoints: Option<PathBuf>,
    },
    /// Tell the order-to-cash story of a small company on an embedded engine with a virtual
    /// clock: approvals, shipment, invoices, payments, dunning, write-off and month-end close.
    Demo,
    /// Hash a password for the pages' sign-in: reads one line from standard input, prints the
    /// argon2id PHC string to put in cloverleaf.toml as the user's `password_argon2`.
    ///
    /// For example: `cloverleaf hash-password < password.txt`, or type it and press Enter.
    HashPassword,
    /// Move running instances of a process to another deployed version (operators).
    ///
    /// Through a server (--server, with the token of an admin), or directly on its database
    /// (--db; whoever can write the database is an operator already). Each instance moves in its
    /// own transaction, recorded in its history with the operator and the reason; an instance
    /// whose move is unsafe is left as it is, with every reason printed. Exit 1 if any was.
    Migrate {
        /// The process key, e.g. order_approval.
        process: String,
        /// The version the instances run.
        #[arg(long)]
        from: u32,
        /// The version they move to.
        #[arg(long)]
        to: u32,
        /// Why (recorded in each instance's history).
        #[arg(long)]
        reason: String,
        /// A renamed node, OLD=NEW (repeatable).
        #[arg(long = "map", value_name = "OLD=NEW")]
        map: Vec<String>,
        /// Only this instance (repeatable); default: every running instance of --from.
        #[arg(long = "instance", value_name = "ID")]
        instances: Vec<String>,
        /// Print what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Instances per batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// The server's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long, conflicts_with = "db", required_unless_present = "db")]
        server: Option<String>,
        /// The bearer token of an admin (better: set CLOVERLEAF_TOKEN, which `ps` does not show).
        #[arg(long, env = "CLOVERLEAF_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The database, instead of a server: sqlite://FILE, a file path, or postgres://...
        #[arg(long)]
        db: Option<String>,
        /// The operator recorded in the history with --db (with --server: the token's user).
        #[arg(long, env = "USER")]
        operator: Option<String>,
    },
    /// Repair a running instance (operators): cancel a token, start one before a node, or set a
    /// variable, with a reason recorded in its history. Give exactly one action.
    ///
    /// Through a server (--server, with the token of an admin), or directly on its database
    /// (--db, naming the --operator for the history).
    Modify {
        /// The instance id.
        instance: String,
        /// Why (recorded in the instance's history).
        #[arg(long)]
        reason: String,
        /// Cancel this token (its number, as `t3` or `3`).
        #[arg(long, group = "action", value_name = "TOKEN")]
        cancel_token: Option<String>,
        /// Start a token before this node of the main flow.
        #[arg(long, group = "action", value_name = "NODE")]
        start_before: Option<String>,
        /// Set a variable: NAME=VALUE, the value as JSON (`risk="A"`, `amount="1200.00"`).
        #[arg(long, group = "action", value_name = "NAME=JSON")]
        set: Option<String>,
        /// The server's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long, conflicts_with = "db", required_unless_present = "db")]
        server: Option<String>,
        /// The bearer token of an admin (better: set CLOVERLEAF_TOKEN, which `ps` does not show).
        #[arg(long, env = "CLOVERLEAF_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The database, instead of a server: sqlite://FILE, a file path, or postgres://...
        #[arg(long)]
        db: Option<String>,
        /// The operator recorded in the history with --db (with --server: the token's user).
        #[arg(long, env = "USER")]
        operator: Option<String>,
    },
    /// Move instances that ended before a cutoff, with all their rows, into an archive database
    /// (operators); each leaves a tombstone, so reads answer "archived" instead of "not found".
    ///
    /// Histories are verified first (one that does not verify is refused, exit 1); instances
    /// whose caller or callee still runs, or with owed events or undelivered notifications, are
    /// held back. Safe to interrupt and run again, and while `serve` runs.
    Archive(ArchiveArgs),
    /// Audit the database.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-check every instance's history hash chain; exit 1 if any row was altered.
    Verify {
        /// The database: sqlite://FILE, a file path, or postgres://USER@HOST/NAME.
        #[arg(long, default_value = "sqlite://cloverleaf.db")]
        db: String,
    },
}

/// mimalloc instead of glibc's malloc: the engine's write path allocates many small, short-lived
/// values, and malloc and free were a fifth of its CPU (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { files } => check(&files),
        Command::Graph { file, format, process } => graph(&file, &format, process.as_deref()),
        Command::Import { file, output } => import(&file, output.as_deref()),
        Command::Eval { expr, context, declare, now, calendar, flow } => {
            eval(&expr, &context, &declare, now.as_deref(), calendar.as_deref().zip(flow.as_deref()))
        }
        Command::Schedule { expr, tz, from, n } => schedule(&expr, tz.as_deref(), from.as_deref(), n),
        Command::Serve { db, processes, config, listen, job_lease, write_linger, book_time_zone } => {
            serve(cloverleaf::server::ServeOptions {
                db,
                processes,
                config,
                listen,
                job_lease,
                write_linger,
                book_time_zone,
            })
        }
        Command::Worker { server, token, topics, concurrency, worker_id, lease, ledger, endpoints } => {
            worker(WorkerArgs { server, token, topics, concurrency, worker_id, lease, ledger, endpoints })
        }
        Command::Demo => demo(),
        Command::HashPassword => hash_password(),
        Command::Audit { command: AuditCommand::Verify { db } } => audit_verify(&db),
        Command::Archive(args) => operator::archive(args),
        Command::Modify { instance, reason, cancel_token, start_before, set, server, token, db, operator } => {
            operator::modify(
                &instance,
                &reason,
                ModifyAction { cancel_token, start_before, set },
                target(server, token, db, operator),
            )
        }
        Command::Migrate { process, from, to, reason, map, instances, dry_run, batch, server, token, db, operator } => {
            operator::migrate(MigrateArgs {
                process,
                from,
                to,
                reason,
                map,
                instances,
                dry_run,
                batch,
                target: target(server, token, db, operator),
            })
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

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

fn check(files: &[PathBuf]) -> Result<ExitCode> {
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
    eprintln!("checked {asked} file(s): {compiled} process(es) compiled, {errors} error(s), {warnings} warning(s)");
    Ok(if errors > 0 || rules_failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The keys of the processes a file defines (none if it does not parse).
fn process_keys(id: cloverleaf_dsl::FileId, text: &str) -> Vec<String> {
    let (ast, _) = cloverleaf_dsl::parse(id, text);
    ast.map(|a| a.processes.iter().map(|p| p.key.name.clone()).collect()).unwrap_or_default()
}

fn graph(file: &Path, format: &str, process: Option<&str>) -> Result<ExitCode> {
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

fn import(file: &Path, output: Option<&Path>) -> Result<ExitCode> {
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

fn eval(
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

fn schedule(pattern: &str, tz: Option<&str>, from: Option<&str>, n: usize) -> Result<ExitCode> {
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn demo() -> Result<ExitCode> {
    let outcome = runtime()?.block_on(cloverleaf::demo::run())?;
    // The story is told; exit 1 only if the books or the audit trail disagree with it.
    Ok(if outcome.balanced && outcome.history_intact { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Logs to stderr at `info`, or as `RUST_LOG` says.
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // PostgreSQL's notices ("relation ... already exists, skipping" from migrations)
                // are not news to an operator.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn serve(options: cloverleaf::server::ServeOptions) -> Result<ExitCode> {
    init_tracing();
    runtime()?.block_on(cloverleaf::server::serve(options))?;
    Ok(ExitCode::SUCCESS)
}

/// What `cloverleaf worker` was asked to run.
struct WorkerArgs {
    server: String,
    token: String,
    topics: Vec<String>,
    concurrency: usize,
    worker_id: Option<String>,
    lease: Option<std::time::Duration>,
    ledger: Option<String>,
    endpoints: Option<PathBuf>,
}

/// One entry of the `--endpoints` file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointEntry {
    url: String,
    /// `500ms`, `20s`, `2m`; default 30 s.
    timeout: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Reads the `--endpoints` file: job type → endpoint.
fn read_endpoints(path: &Path) -> Result<BTreeMap<String, cloverleaf_worker::Endpoint>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let entries: BTreeMap<String, EndpointEntry> =
        toml::from_str(&text).with_context(|| format!("{} is not a valid endpoints file", path.display()))?;
    let mut endpoints = BTreeMap::new();
    for (job_type, entry) in entries {
        let url = reqwest::Url::parse(&entry.url)
            .with_context(|| format!("{}: `{job_type}`: invalid url `{}`", path.display(), entry.url))?;
        if url.scheme() != "http" {
            bail!("{}: `{job_type}`: the url must be http:// (this build speaks plain HTTP only)", path.display());
        }
        let mut endpoint = cloverleaf_worker::Endpoint::new(entry.url);
        if let Some(timeout) = &entry.timeout {
            endpoint = endpoint
                .timeout(parse_timeout(timeout).with_context(|| format!("{}: `{job_type}`: timeout", path.display()))?);
        }
        for (name, value) in entry.headers {
            endpoint = endpoint.header(name, value);
        }
        endpoints.insert(job_type, endpoint);
    }
    Ok(endpoints)
}

/// A job lease: a duration of at least one second and at most a day (a lease the server accepts).
fn parse_lease(text: &str) -> Result<std::time::Duration> {
    let lease = parse_duration(text)?;
    if lease < std::time::Duration::from_secs(1) || lease > std::time::Duration::from_secs(24 * 3600) {
        bail!("`{}`: a lease is from 1s to 1440m (a day); 20s hands a dead worker's jobs over quickly", text.trim());
    }
    Ok(lease)
}

/// The writer's linger: `0ms` to `100ms` (longer would hold every busy step for it).
fn parse_linger(text: &str) -> Result<std::time::Duration> {
    let linger = parse_duration(text)?;
    if linger > std::time::Duration::from_millis(100) {
        bail!("`{}`: the write linger is from 0ms to 100ms; 6ms gathers a busy node's writes", text.trim());
    }
    Ok(linger)
}

/// An IANA time zone (`Asia/Shanghai`, `UTC`).
fn parse_zone(text: &str) -> Result<chrono_tz::Tz> {
    text.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        anyhow::anyhow!("`{}` is not a time zone: write an IANA name such as Asia/Shanghai or UTC", text.trim())
    })
}

/// A handler's timeout: `500ms`, `20s`, `2m`, more than zero.
fn parse_timeout(text: &str) -> Result<std::time::Duration> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        bail!("`{}`: the timeout must be positive", text.trim());
    }
    Ok(duration)
}

/// `500ms`, `20s`, `2m`.
fn parse_duration(text: &str) -> Result<std::time::Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| anyhow::anyhow!("`{text}` is not a duration such as 500ms, 20s or 2m"))?;
    Ok(match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
        _ => bail!("`{text}` is not a duration such as 500ms, 20s or 2m"),
    })
}

/// This machine's name and the process id: distinct for every worker process.
fn worker(args: WorkerArgs) -> Result<ExitCode> {
    use cloverleaf_finance::{self as finance, Ledger};
    use cloverleaf_worker::{Handlers, HttpHandler, SourceError, Worker, WorkerOptions, topic_matches};

    if args.ledger.is_none() && args.endpoints.is_none() {
        bail!(
            "the worker has no handlers: give --ledger DATABASE to run the built-in finance handlers, \
             and/or --endpoints FILE to hand job types to HTTP endpoints"
        );
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let source = cloverleaf::remote::RemoteSource::new(&args.server, &args.token)?;
    let endpoints = args.endpoints.as_deref().map(read_endpoints).transpose()?;
    if endpoints.as_ref().is_some_and(BTreeMap::is_empty) && args.ledger.is_none() {
        bail!("the worker has no handlers: {} names no job type", args.endpoints.unwrap_or_default().display());
    }
    init_tracing();
    runtime()?.block_on(async move {
        let mut handlers = Handlers::new();
        let ledger = match &args.ledger {
            Some(db) => {
                let ledger = Ledger::connect(db)
                    .await
                    .with_context(|| format!("cannot open the sub-ledger in {}", cloverleaf::server::redacted(db)))?;
                handlers.merge(finance::handlers(&ledger));
                Some(ledger)
            }
            None => None,
        };
        if let Some(endpoints) = endpoints {
            // Configured endpoints take their job types over from the built-in handlers.
            HttpHandler::new(endpoints).context("cannot build the HTTP handler")?.register(&mut handlers);
        }
        let covered = handlers.topics();
        for topic in &args.topics {
            if !covered.iter().any(|t| topic_matches(topic, t) || topic_matches(t, topic)) {
                bail!("topic `{topic}` matches none of the handlers' job types ({})", covered.join(", "));
            }
        }
        let mut options = WorkerOptions::new(args.worker_id.unwrap_or_else(cloverleaf::server::run::node_name));
        options.max_concurrency = args.concurrency;
        if let Some(lease) = args.lease {
            options.lease = chrono::TimeDelta::from_std(lease).context("--lease is too long")?;
        }
        options.topics = if args.topics.is_empty() { None } else { Some(args.topics) };
        // Remote fetches long-poll: the server answers as soon as a job is due.
        options.poll_wait = std::time::Duration::from_secs(30);
        // A token the server refuses will not start working later: say so now rather than in a
        // warning every few seconds. A server that is down may come up: the worker waits for it.
        match source.check(&options.worker_id).await {
            Ok(()) => {}
            Err(SourceError::Refused(reason)) => bail!("{} refused the worker: {reason}", source.server()),
            Err(error) => tracing::warn!(%error, "the server does not answer yet: trying again"),
        }
        let topics = options.topics.clone().unwrap_or_else(|| handlers.topics());
        tracing::info!(
            server = source.server(),
            worker_id = %options.worker_id,
            topics = %topics.join(","),
            concurrency = options.max_concurrency,
            lease_ms = options.lease.num_milliseconds(),
            "worker started"
        );
        let stop = async {
            cloverleaf::server::run::shutdown_signal().await;
            tracing::info!("stopping: jobs in flight finish or are given back");
        };
        let stats = Worker::new(source, handlers, options).run(stop).await;
        if let Some(ledger) = ledger {
            ledger.close().await;
        }
        let stats = stats?;
        tracing::info!(?stats, "worker stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn audit_verify(db: &str) -> Result<ExitCode> {
    let summary = runtime()?.block_on(cloverleaf::audit::verify(db))?;
    for altered in &summary.altered {
        println!("ALTERED {}: {}", altered.instance, altered.problem);
    }
    let verdict = if summary.altered.is_empty() {
        "all intact".to_string()
    } else {
        format!("{} instance(s) altered", summary.altered.len())
    };
    println!(
        "checked {} instance(s), {} history row(s) in {}: {verdict}",
        summary.instances,
        summary.rows,
        cloverleaf::server::redacted(db)
    );
    Ok(if summary.altered.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn hash_password() -> Result<ExitCode> {
    use std::io::IsTerminal as _;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("type the password (it is shown as you type) and press Enter:");
    }
    let mut line = String::new();
    stdin.read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    if password.trim().is_empty() {
        bail!("no password on standard input: give one line holding the password");
    }
    let phc = cloverleaf::server::config::hash_password(password)?;
    println!("{phc}");
    eprintln!("put it in cloverleaf.toml under the user's [[users]] entry: password_argon2 = \"{phc}\"");
    Ok(ExitCode::SUCCESS)
}
