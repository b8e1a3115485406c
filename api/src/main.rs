//! `cloverleaf`: the command line of the Cloverleaf workflow engine.
//!
//! Process tooling for designers: `check` and `graph` compile `.flow` files, `eval` tries an
//! expression the way a `decide` reads it, and `schedule` shows when a cron start will fire.
//! For operators: `serve` runs the HTTP API with the scheduler, `worker` runs automated steps for
//! a remote server, `migrate` moves running instances to another deployed version, `modify`
//! repairs a running instance by hand, `archive` moves ended instances into an archive database, `audit
//! verify` re-checks the tamper-evident history, and `hash-password`
//! makes the `password_argon2` of a user in `cloverleaf.toml`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[path = "cli/designer.rs"]
mod designer;
#[path = "cli/operator.rs"]
mod operator;
#[path = "cli/worker.rs"]
mod worker;

use designer::{check, eval, graph, import, schedule};
use operator::{ArchiveArgs, MigrateArgs, ModifyAction, target};
use worker::{WorkerArgs, worker};

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
        /// How long the due timers this node claims on PostgreSQL are left to it (`20s`, `2m`):
        /// how soon another node fires them if this one dies. Default: the --job-lease when
        /// given, else 20s. No effect on SQLite.
        #[arg(long, value_parser = parse_claim)]
        timer_claim: Option<std::time::Duration>,
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
        Command::Serve { db, processes, config, listen, job_lease, timer_claim, write_linger, book_time_zone } => {
            serve(cloverleaf::server::ServeOptions {
                db,
                processes,
                config,
                listen,
                job_lease,
                timer_claim,
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

/// A job lease: a duration of at least one second and at most a day (a lease the server accepts).
fn parse_lease(text: &str) -> Result<std::time::Duration> {
    let lease = parse_duration(text)?;
    if lease < std::time::Duration::from_secs(1) || lease > std::time::Duration::from_secs(24 * 3600) {
        bail!("`{}`: a lease is from 1s to 1440m (a day); 20s hands a dead worker's jobs over quickly", text.trim());
    }
    Ok(lease)
}

/// A timer claim: from one second to a day.
fn parse_claim(text: &str) -> Result<std::time::Duration> {
    let claim = parse_duration(text)?;
    if claim < std::time::Duration::from_secs(1) || claim > std::time::Duration::from_secs(24 * 3600) {
        bail!(
            "`{}`: a timer claim is from 1s to 1440m (a day); 20s has a dead node's timers fired elsewhere quickly",
            text.trim()
        );
    }
    Ok(claim)
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
