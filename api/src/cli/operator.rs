//! The operators' commands: `migrate` moves running instances to another deployed version and
//! `modify` repairs one by hand, each through a server (an admin's token) or directly on the
//! database (whoever can write it is an operator already; the history names `--operator`);
//! `archive` moves ended instances into an archive database (on the databases only: it needs
//! both, and `--operator` is named in each tombstone).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use super::runtime;

/// What `cloverleaf migrate` was asked to do.
pub(crate) struct MigrateArgs {
    pub(crate) process: String,
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) reason: String,
    pub(crate) map: Vec<String>,
    pub(crate) instances: Vec<String>,
    pub(crate) dry_run: bool,
    pub(crate) batch: usize,
    pub(crate) target: Target,
}

/// Where an operator's command runs: through a server, or on the database itself.
pub(crate) enum Target {
    /// A server's base URL and an admin's token.
    Server { server: String, token: Option<String> },
    /// A database URL and the operator to name in the history.
    Db { db: String, operator: Option<String> },
    /// Neither was given.
    Missing,
}

/// Where an operator's command runs, from `--server`/`--token` or `--db`/`--operator`.
pub(crate) fn target(
    server: Option<String>,
    token: Option<String>,
    db: Option<String>,
    operator: Option<String>,
) -> Target {
    match (server, db) {
        (Some(server), _) => Target::Server { server, token },
        (None, Some(db)) => Target::Db { db, operator },
        (None, None) => Target::Missing,
    }
}

/// Moves running instances of a process between two deployed versions, in batches.
pub(crate) fn migrate(args: MigrateArgs) -> Result<ExitCode> {
    use cloverleaf_engine::InstanceId;
    use cloverleaf_engine::runtime::MigrationRequest;

    let mut mapping = BTreeMap::new();
    for pair in &args.map {
        let Some((old, new)) = pair.split_once('=').filter(|(o, n)| !o.trim().is_empty() && !n.trim().is_empty())
        else {
            bail!("--map `{pair}`: write a renamed node as OLD=NEW, e.g. --map manager_approval=sales_approval");
        };
        mapping.insert(old.trim().to_string(), new.trim().to_string());
    }
    if args.batch == 0 || args.batch > cloverleaf::server::migrations::MAX_LIMIT {
        bail!("--batch must be between 1 and {}", cloverleaf::server::migrations::MAX_LIMIT);
    }
    let instances = (!args.instances.is_empty()).then(|| args.instances.clone());
    let rt = runtime()?;
    let (mut migrated, mut refused) = (0, 0);
    let mut after: Option<String> = None;
    match &args.target {
        Target::Missing => bail!("give --server URL (with an admin's token) or --db DATABASE"),
        Target::Server { server, token } => {
            let Some(token) = token else {
                bail!("give the token of an admin with --token or CLOVERLEAF_TOKEN");
            };
            let client = cloverleaf::remote::OperatorClient::new(server, token)?;
            let path = format!("/v1/definitions/{}/migrations", args.process);
            loop {
                let body = serde_json::json!({
                    "from_version": args.from, "to_version": args.to, "mapping": mapping,
                    "instances": instances, "dry_run": args.dry_run, "reason": args.reason,
                    "after": after, "limit": args.batch,
                });
                let (status, answer) = rt.block_on(client.post(&path, &body)).map_err(anyhow::Error::msg)?;
                // Every instance of the batch refused (409) carries the batch in its details.
                let view = if status.is_success() {
                    answer
                } else if status == reqwest::StatusCode::CONFLICT && answer["error"]["details"]["instances"].is_array()
                {
                    answer["error"]["details"].clone()
                } else {
                    let error = &answer["error"];
                    let mut text =
                        format!("{} refused ({status}): {}", server, error["message"].as_str().unwrap_or(""));
                    for p in error["details"]["problems"].as_array().into_iter().flatten() {
                        text.push_str(&format!(
                            "\n  {}: {}",
                            p["at"].as_str().unwrap_or(""),
                            p["reason"].as_str().unwrap_or("")
                        ));
                    }
                    bail!(text);
                };
                let (m, r) = print_migration_batch(&view, args.dry_run);
                (migrated, refused) = (migrated + m, refused + r);
                match view["next"].as_str() {
                    Some(next) => after = Some(next.to_string()),
                    None => break,
                }
            }
        }
        Target::Db { db, operator } => {
            let by = operator_of(operator.as_deref())?;
            rt.block_on(async {
                let engine = open(db).await?;
                loop {
                    let request = MigrationRequest {
                        process: args.process.clone(),
                        from_version: args.from,
                        to_version: args.to,
                        mapping: mapping.clone(),
                        instances: instances.clone().map(|ids| ids.into_iter().map(InstanceId::from).collect()),
                        dry_run: args.dry_run,
                        by: by.to_string(),
                        reason: args.reason.trim().to_string(),
                        after: after.clone().map(InstanceId::from),
                        limit: Some(args.batch),
                    };
                    let report = engine.migrate(&request).await?;
                    let view = serde_json::to_value(cloverleaf::server::migrations::view(&request, &report))?;
                    let (m, r) = print_migration_batch(&view, args.dry_run);
                    (migrated, refused) = (migrated + m, refused + r);
                    match report.next {
                        Some(next) => after = Some(next.0),
                        None => break,
                    }
                }
                anyhow::Ok(())
            })?;
        }
    }
    let verb = if args.dry_run { "would migrate" } else { "migrated" };
    println!(
        "{verb} {migrated} instance(s) of {} from v{} to v{}; {refused} refused",
        args.process, args.from, args.to
    );
    Ok(if refused == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Prints one line per instance of a batch (the API's answer shape) and its refusals' reasons;
/// returns (moved, refused).
fn print_migration_batch(view: &serde_json::Value, dry_run: bool) -> (usize, usize) {
    let (mut moved, mut refused) = (0, 0);
    for instance in view["instances"].as_array().into_iter().flatten() {
        let id = instance["instance_id"].as_str().unwrap_or("?");
        if instance["outcome"] == "refused" {
            refused += 1;
            println!("REFUSED {id}");
            for p in instance["problems"].as_array().into_iter().flatten() {
                println!("  {}: {}", p["at"].as_str().unwrap_or(""), p["reason"].as_str().unwrap_or(""));
            }
            continue;
        }
        moved += 1;
        let plan = &instance["plan"];
        let tokens: Vec<String> = plan["tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let (from, to) = (t["from"].as_str().unwrap_or(""), t["to"].as_str().unwrap_or(""));
                if from == to { from.to_string() } else { format!("{from} -> {to}") }
            })
            .collect();
        let count =
            |action: &str| plan["waits"].as_array().into_iter().flatten().filter(|w| w["action"] == action).count();
        let mut line = format!(
            "{} {id}: at {}; waits kept {}, closed {}, opened {}",
            if dry_run { "WOULD MIGRATE" } else { "MIGRATED" },
            tokens.join(", "),
            count("kept"),
            count("closed"),
            count("opened")
        );
        for (key, word) in [("added", "added"), ("removed", "removed"), ("converted", "converted")] {
            let names: Vec<&str> = plan[key].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
            if !names.is_empty() {
                line.push_str(&format!("; {word} {}", names.join(", ")));
            }
        }
        println!("{line}");
    }
    (moved, refused)
}

/// Opens the database for one operator's command: owed work applied, no timer fired.
async fn open(db: &str) -> Result<cloverleaf_engine::runtime::Engine<cloverleaf_engine::store::AnyStore>> {
    cloverleaf_engine::runtime::Engine::connect_to_operate(db, std::sync::Arc::new(cloverleaf_engine::SystemClock))
        .await
        .with_context(|| format!("cannot open {}", cloverleaf::server::redacted(db)))
}

/// The operator named for the history of a change made on the database.
fn operator_of(operator: Option<&str>) -> Result<&str> {
    operator.map(str::trim).filter(|o| !o.is_empty()).context("name the operator for the history with --operator NAME")
}

/// What `modify` is asked to do, from its three exclusive options.
pub(crate) struct ModifyAction {
    pub(crate) cancel_token: Option<String>,
    pub(crate) start_before: Option<String>,
    pub(crate) set: Option<String>,
}

impl ModifyAction {
    fn modification(self) -> Result<cloverleaf_engine::Modification> {
        use cloverleaf_engine::Modification;
        Ok(match (self.cancel_token, self.start_before, self.set) {
            (Some(token), None, None) => {
                let Ok(n) = token.trim().trim_start_matches('t').parse::<u64>() else {
                    bail!("--cancel-token `{token}`: give the token's number, as `t3` or `3`");
                };
                Modification::CancelToken { token: cloverleaf_engine::TokenId(n) }
            }
            (None, Some(node), None) => Modification::StartBefore { node: node.trim().to_string() },
            (None, None, Some(pair)) => {
                let Some((name, text)) = pair.split_once('=') else {
                    bail!("--set `{pair}`: write NAME=VALUE, the value as JSON, e.g. --set 'risk=\"A\"'");
                };
                let value: serde_json::Value = serde_json::from_str(text)
                    .with_context(|| format!("--set {name}: `{text}` is not JSON (text needs quotes: '\"A\"')"))?;
                Modification::SetVariable { name: name.trim().to_string(), value }
            }
            _ => bail!("give one action: --cancel-token TOKEN, --start-before NODE or --set NAME=JSON"),
        })
    }
}

/// The API's body for `modification` (`POST /v1/instances/{id}/modifications`).
fn modification_body(modification: &cloverleaf_engine::Modification, reason: &str) -> serde_json::Value {
    use cloverleaf_engine::Modification;
    let mut body = match modification {
        Modification::CancelToken { token } => serde_json::json!({"action": "cancel_token", "token": token.0}),
        Modification::StartBefore { node } => serde_json::json!({"action": "start_before", "node": node}),
        Modification::SetVariable { name, value } => {
            serde_json::json!({"action": "set_variable", "name": name, "value": value})
        }
    };
    body["reason"] = serde_json::json!(reason);
    body
}

/// Repairs one running instance, through a server or on the database.
pub(crate) fn modify(instance: &str, reason: &str, action: ModifyAction, target: Target) -> Result<ExitCode> {
    let modification = action.modification()?;
    let rt = runtime()?;
    let (status, nodes) = match target {
        Target::Missing => bail!("give --server URL (with an admin's token) or --db DATABASE"),
        Target::Server { server, token } => {
            let Some(token) = token else {
                bail!("give the token of an admin with --token or CLOVERLEAF_TOKEN");
            };
            let client = cloverleaf::remote::OperatorClient::new(&server, &token)?;
            let path = format!("/v1/instances/{}/modifications", cloverleaf::remote::encode_id(instance));
            let body = modification_body(&modification, reason);
            let (status, answer) = rt.block_on(client.post(&path, &body)).map_err(anyhow::Error::msg)?;
            if !status.is_success() {
                let error = &answer["error"];
                let mut text = format!("{server} refused ({status}): {}", error["message"].as_str().unwrap_or(""));
                for f in error["details"]["fields"].as_array().into_iter().flatten() {
                    text.push_str(&format!(
                        "\n  {}: {}",
                        f["field"].as_str().unwrap_or(""),
                        f["message"].as_str().unwrap_or("")
                    ));
                }
                bail!(text);
            }
            let nodes: Vec<String> = answer["tokens"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["node"].as_str().map(str::to_string))
                .collect();
            (answer["status"].as_str().unwrap_or("?").to_string(), nodes)
        }
        Target::Db { db, operator } => {
            let by = operator_of(operator.as_deref())?;
            rt.block_on(async {
                let engine = open(&db).await?;
                let id = cloverleaf_engine::InstanceId::from(instance.to_string());
                engine.modify(&id, modification, by, reason.trim()).await?;
                let state = engine.instance(&id).await?;
                let status = serde_json::to_value(state.status())?;
                let status = status.get("status").and_then(|s| s.as_str()).unwrap_or("?").to_string();
                let nodes = state.tokens().values().map(|t| t.node.clone()).collect();
                anyhow::Ok((status, nodes))
            })?
        }
    };
    println!("modified {instance}: {status}; tokens at {}", nodes.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// What `cloverleaf archive` is asked to do.
#[derive(clap::Args)]
pub(crate) struct ArchiveArgs {
    /// The live database: sqlite://FILE, a file path, or postgres://...
    #[arg(long)]
    db: String,
    /// The archive database, of the same schema (created and migrated when missing).
    #[arg(long)]
    into: String,
    /// Archive instances that ended before this day (YYYY-MM-DD, midnight UTC) or instant (RFC 3339).
    #[arg(long, value_name = "DATE")]
    ended_before: Option<String>,
    /// Or: that ended longer ago than this (90d, 12h, 2w).
    #[arg(long, value_name = "AGE", conflicts_with = "ended_before")]
    older_than: Option<String>,
    /// Look and verify, move nothing.
    #[arg(long)]
    dry_run: bool,
    /// Instances per transaction.
    #[arg(long, default_value_t = cloverleaf_engine::runtime::ARCHIVE_BATCH)]
    batch: usize,
    /// Where the rows went, as tombstones and reads will say (default: the archive's URL
    /// without user or password).
    #[arg(long)]
    label: Option<String>,
    /// The operator, recorded in each tombstone (required; not taken from $USER).
    #[arg(long)]
    operator: Option<String>,
}

/// The cutoff of `--ended-before DATE` or `--older-than AGE`, with `now` for the latter.
fn cutoff(args: &ArchiveArgs, now: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, TimeDelta};
    match (&args.ended_before, &args.older_than) {
        (Some(date), None) => {
            let date = date.trim();
            if let Ok(at) = chrono::DateTime::parse_from_rfc3339(date) {
                return Ok(at.with_timezone(&chrono::Utc));
            }
            let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                anyhow::anyhow!(
                    "--ended-before `{date}`: write a day as 2026-01-31 or an instant as 2026-01-31T18:00:00Z"
                )
            })?;
            Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        }
        (None, Some(age)) => {
            let age = age.trim();
            let (number, unit) = age.split_at(age.find(|c: char| !c.is_ascii_digit()).unwrap_or(age.len()));
            let n: i64 = number
                .parse()
                .map_err(|_| anyhow::anyhow!("--older-than `{age}`: write a number and a unit, as 90d, 12h or 2w"))?;
            let span = match unit {
                "d" => TimeDelta::try_days(n),
                "h" => TimeDelta::try_hours(n),
                "w" => TimeDelta::try_weeks(n),
                _ => None,
            };
            span.and_then(|s| now.checked_sub_signed(s))
                .ok_or_else(|| anyhow::anyhow!("--older-than `{age}`: write a number and a unit, as 90d, 12h or 2w"))
        }
        _ => bail!("give --ended-before DATE or --older-than AGE (e.g. --older-than 90d)"),
    }
}

/// Moves the instances that ended before the cutoff into the archive database, printing what
/// was moved and what was refused, and why. Exit 1 when a history did not verify.
pub(crate) fn archive(args: ArchiveArgs) -> Result<ExitCode> {
    use cloverleaf_engine::runtime::ArchiveOptions;
    use cloverleaf_engine::store::{AnyStore, archive_label};

    let by = operator_of(args.operator.as_deref())?.to_string();
    let before = cutoff(&args, chrono::Utc::now())?;
    if args.batch == 0 || args.batch > 10_000 {
        bail!("--batch must be between 1 and 10000");
    }
    let label = match &args.label {
        Some(label) if !label.trim().is_empty() => label.trim().to_string(),
        _ => archive_label(&args.into).map_err(|e| anyhow::anyhow!("--into: {e}"))?,
    };
    let live_label = archive_label(&args.db).map_err(|e| anyhow::anyhow!("--db: {e}"))?;
    if live_label == archive_label(&args.into).unwrap_or_default() {
        bail!("--into names the live database itself: archive into another database");
    }
    let rt = runtime()?;
    let report = rt.block_on(async {
        let engine = open(&args.db).await?;
        // A dry run creates no archive: it only reads the live database.
        let into = if args.dry_run {
            None
        } else {
            Some(
                AnyStore::connect(&args.into)
                    .await
                    .with_context(|| format!("cannot open the archive {}", cloverleaf::server::redacted(&args.into)))?,
            )
        };
        let options = ArchiveOptions {
            ended_before: before,
            into,
            label: label.clone(),
            by,
            batch: args.batch,
            dry_run: args.dry_run,
        };
        let report = engine.archive(&options).await?;
        engine.store().close().await;
        if let Some(into) = &options.into {
            into.close().await;
        }
        anyhow::Ok(report)
    })?;
    const SHOWN: usize = 50;
    let alarms = report.refused.iter().filter(|r| r.refusal.is_alarm()).count();
    for refused in report.refused.iter().filter(|r| r.refusal.is_alarm()) {
        println!("REFUSED {}: {}", refused.instance, refused.refusal);
    }
    let held: Vec<_> = report.refused.iter().filter(|r| !r.refusal.is_alarm()).collect();
    for refused in held.iter().take(SHOWN) {
        println!("HELD {}: {}", refused.instance, refused.refusal);
    }
    if held.len() > SHOWN {
        println!("... and {} more held back", held.len() - SHOWN);
    }
    let verb = if report.dry_run { "would archive" } else { "archived" };
    println!(
        "{verb} {} of {} ended instance(s) ({} rows) that ended before {} into {label}; {} held back, {alarms} refused (history does not verify)",
        report.archived,
        report.examined,
        report.rows,
        before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        held.len(),
    );
    Ok(if alarms == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
