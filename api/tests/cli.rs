//! The `cloverleaf` binary as a user meets it: exit codes, stdout and stderr of `check`, `graph`,
//! `import`, `eval`, `schedule` and `hash-password`.
//!
//! Every test runs the real binary (`CARGO_BIN_EXE_cloverleaf`). Files a test writes live in a
//! temp directory of its own, removed when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What one run of the binary showed the user.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Panics with the whole output unless the process exited with `code`.
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Panics unless the process failed (any exit code but 0).
    #[track_caller]
    fn expect_failure(&self) -> &Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure, got {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless stderr contains every one of `needles`.
    #[track_caller]
    fn stderr_has(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(self.stderr.contains(needle), "stderr lacks {needle:?}\n--- stderr\n{}", self.stderr);
        }
        self
    }

    /// Panics unless stdout contains every one of `needles`.
    #[track_caller]
    fn stdout_has(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(self.stdout.contains(needle), "stdout lacks {needle:?}\n--- stdout\n{}", self.stdout);
        }
        self
    }

    /// The first line of stdout: the value `eval` printed.
    fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }
}

/// The workspace root, where `processes/` lives.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("api/ sits in the workspace").to_path_buf()
}

/// Runs `cloverleaf args...` in `dir`.
fn run_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("the cloverleaf binary runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs `cloverleaf args...` from the workspace root.
fn run(args: &[&str]) -> Run {
    run_in(&workspace(), args)
}

/// Runs `cloverleaf args...` with `input` on its standard input.
fn run_with_input(args: &[&str], input: &str) -> Run {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the cloverleaf binary runs");
    child.stdin.take().expect("its stdin").write_all(input.as_bytes()).expect("write its stdin");
    let output = child.wait_with_output().expect("the cloverleaf binary finishes");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// A directory of this test's own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("cloverleaf-cli-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir is writable");
        TempDir(path)
    }

    /// Writes `text` to `name` inside the directory (creating subdirectories) and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("temp subdir is writable");
        }
        std::fs::write(&path, text).expect("temp file is writable");
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

mod check {
    use super::*;

    const UNKNOWN_NODE: &str = r#"process broken "Broken" {
  start -> nowhere
  end done "Done"
}
"#;

    #[test]
    fn every_reference_process_checks_clean() {
        let mut files: Vec<String> = std::fs::read_dir(workspace().join("processes"))
            .expect("processes/ exists")
            .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".flow"))
            .map(|name| format!("processes/{name}"))
            .collect();
        files.sort();
        assert!(files.len() >= 6, "expected the six reference files, found {files:?}");
        assert!(files.contains(&"processes/roles.flow".to_string()));
        let args: Vec<&str> = std::iter::once("check").chain(files.iter().map(String::as_str)).collect();

        let out = run(&args);
        out.expect_code(0).stderr_has(&[&format!("checked {} file(s)", files.len()), ", 0 error(s)"]);
        assert!(!out.stderr.contains("error["), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "check prints nothing on stdout: {}", out.stdout);
    }

    #[test]
    fn unknown_node_shows_location_source_line_caret_and_code() {
        let dir = TempDir::new();
        dir.write("broken.flow", UNKNOWN_NODE);

        let out = run_in(dir.path(), &["check", "broken.flow"]);
        out.expect_code(1).stderr_has(&[
            "error[E0101]",
            "unknown node `nowhere`",
            "broken.flow:2:12",
            "  start -> nowhere",
            "1 error(s)",
        ]);
        // The caret line sits under `nowhere` (column 12), after the gutter `  | `.
        let caret = out.stderr.lines().find(|l| l.contains('^')).expect("a caret line");
        let source = out.stderr.lines().find(|l| l.contains("start -> nowhere")).expect("the source line");
        assert_eq!(caret.find('^'), source.find("nowhere"), "the caret points at the unknown name\n{}", out.stderr);
    }

    #[test]
    fn warning_only_exits_zero() {
        let dir = TempDir::new();
        dir.write(
            "no_sla.flow",
            r#"roles {
  sales.manager "Sales manager"
}

process no_sla "No SLA" {
  start -> ok
  approval ok "OK?" {
    role sales.manager
    form { approve: bool }
  } -> done
  end done "Done"
}
"#,
        );

        run_in(dir.path(), &["check", "no_sla.flow"]).expect_code(0).stderr_has(&[
            "warning[W0503]",
            "no_sla.flow:7:3",
            "0 error(s), 1 warning(s)",
        ]);
    }

    #[test]
    fn a_calendar_without_this_years_holidays_is_noted_and_still_checks() {
        let dir = TempDir::new();
        dir.write(
            "old.flow",
            "calendar old \"Old\" {\n  zone \"UTC\"\n  week mon-fri\n  holiday 2001-01-01 \"New Year\"\n}\n",
        );
        // One holiday a year up to 2199: every year a run of this test can see is listed.
        let years: String = (2000..2200).map(|y| format!("  holiday {y}-01-01 \"New Year\"\n")).collect();
        dir.write("kept.flow", &format!("calendar kept \"Kept\" {{\n  zone \"UTC\"\n  week mon-fri\n{years}}}\n"));
        // A calendar of plain weeks by design lists no year and is not noted.
        dir.write("plain.flow", "calendar plain \"Plain\" {\n  zone \"UTC\"\n  week mon-fri\n}\n");
        let out = run_in(dir.path(), &["check", "old.flow", "kept.flow", "plain.flow"]);
        out.expect_code(0).stderr_has(&[
            "note: calendar `old` lists no holidays or make-up working days for ",
            ": business days there count as plain weeks until they are added",
            "checked 3 file(s): 0 process(es) compiled, 0 error(s), 0 warning(s)",
        ]);
        assert!(!out.stderr.contains("`kept`") && !out.stderr.contains("`plain`"), "{}", out.stderr);
    }

    #[test]
    fn missing_file_fails_naming_it() {
        let dir = TempDir::new();
        let out = run_in(dir.path(), &["check", "does_not_exist.flow"]);
        out.expect_failure().stderr_has(&["cannot read", "does_not_exist.flow"]);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }

    #[test]
    fn errors_in_several_files_are_all_reported() {
        let dir = TempDir::new();
        dir.write("a.flow", &UNKNOWN_NODE.replace("broken", "a"));
        dir.write(
            "b.flow",
            r#"process b "B" {
  var x: int = "text"
  start -> done
  end done "Done"
}
"#,
        );

        run_in(dir.path(), &["check", "a.flow", "b.flow"]).expect_code(1).stderr_has(&[
            "error[E0101]",
            "a.flow:2:12",
            "error[E0201]",
            "b.flow:2:16",
            "checked 2 file(s)",
            "2 error(s)",
        ]);
    }

    #[test]
    fn a_call_to_a_process_in_a_sibling_file_resolves() {
        let dir = TempDir::new();
        dir.write(
            "flows/parent.flow",
            r#"process parent "Parent" {
  input { amount: money }
  var child_outcome: text = ""
  start -> run_child
  call run_child "Run the child" {
    process child
    in { amount }
    out { child_outcome: outcome }
  } -> done
  end done "Done"
}
"#,
        );
        dir.write(
            "flows/child.flow",
            r#"process child "Child" {
  input { amount: money }
  start -> done
  end done "Child done"
}
"#,
        );

        let out = run_in(dir.path(), &["check", "flows/parent.flow"]);
        out.expect_code(0).stderr_has(&["checked 1 file(s)", ", 0 error(s)"]);
        assert!(!out.stderr.contains("E0105"), "{}", out.stderr);

        // Without the sibling the same file does not resolve: the test above is not vacuous.
        std::fs::remove_file(dir.path().join("flows/child.flow")).expect("remove the sibling");
        run_in(dir.path(), &["check", "flows/parent.flow"]).expect_code(1).stderr_has(&["E0105", "unknown process"]);
    }
}

mod graph {
    use super::*;

    const ORDER_APPROVAL: &str = "processes/order_approval.flow";

    #[test]
    fn json_parses_and_names_the_process() {
        let out = run(&["graph", ORDER_APPROVAL, "--format", "json"]);
        out.expect_code(0);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("graph --format json prints JSON");
        assert_eq!(json["key"], "order_approval", "{}", out.stdout);
        assert!(json["nodes"].as_array().is_some_and(|n| !n.is_empty()), "{}", out.stdout);
    }

    #[test]
    fn mermaid_is_a_left_to_right_flowchart() {
        let out = run(&["graph", ORDER_APPROVAL, "--format", "mermaid"]);
        out.expect_code(0);
        assert!(out.stdout.starts_with("flowchart LR"), "{}", out.stdout);
    }

    #[test]
    fn dot_is_accepted_by_graphviz() {
        let out = run(&["graph", ORDER_APPROVAL, "--format", "dot"]);
        out.expect_code(0);

        let child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "Graphviz `dot` is not installed, and CI is set: install graphviz"
                );
                eprintln!("\n*** NOTICE: Graphviz `dot` is not installed: DOT output NOT validated ***\n");
                return;
            }
            Err(err) => panic!("cannot run dot: {err}"),
        };
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("dot's stdin");
            stdin.write_all(out.stdout.as_bytes()).expect("write DOT to dot");
        }
        let output = child.wait_with_output().expect("dot finishes");
        let svg = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "dot refused the graph: {}\n--- DOT\n{}",
            String::from_utf8_lossy(&output.stderr),
            out.stdout
        );
        assert!(svg.contains("<svg"), "{svg}");
    }

    #[test]
    fn unknown_format_names_the_valid_ones() {
        let out = run(&["graph", ORDER_APPROVAL, "--format", "xml"]);
        out.expect_failure().stderr_has(&["xml", "json", "dot", "mermaid"]);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
}

mod eval {
    use super::*;

    #[test]
    fn decimal_sum_is_exact() {
        let out = run(&["eval", "0.1 + 0.2 = 0.3"]);
        out.expect_code(0);
        assert_eq!(out.first_line(), "true");
    }

    #[test]
    fn json_context_numbers_are_exact_decimals() {
        let out = run(&["eval", "amount * 3", "--context", r#"{"amount": 0.1}"#]);
        out.expect_code(0);
        assert_eq!(out.first_line(), "0.3");
        assert!(!out.stdout.contains("0.30000000000000004"), "{}", out.stdout);
    }

    #[test]
    fn long_json_number_keeps_every_digit() {
        let out = run(&["eval", "amount", "--context", r#"{"amount": 12345678901234567890.12}"#]);
        out.expect_code(0);
        assert_eq!(out.first_line(), "12345678901234567890.12");

        let out = run(&["eval", "amount * 2", "--context", r#"{"amount": 12345678901234567890.12}"#]);
        out.expect_code(0);
        assert_eq!(out.first_line(), "24691357802469135780.24");
    }

    #[test]
    fn comparison_with_null_is_null_and_no_arm_is_taken() {
        let out = run(&["eval", "x > 1", "--context", r#"{"x": null}"#]);
        out.expect_code(0).stdout_has(&["not taken"]);
        assert_eq!(out.first_line(), "null");
    }

    #[test]
    fn type_error_is_e0201() {
        let out = run(&["eval", r#"1 + "a""#]);
        out.expect_code(1).stderr_has(&["error[E0201]", "<expr>:1:1", "1 + \"a\"", "^"]);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }

    #[test]
    fn division_by_zero_is_an_error_not_null() {
        let out = run(&["eval", "1/0"]);
        out.expect_code(1).stderr_has(&["division by zero"]);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }

    #[test]
    fn invalid_json_context_is_refused() {
        run(&["eval", "x", "--context", "{bad"]).expect_failure().stderr_has(&["--context is not valid JSON"]);
        run(&["eval", "x", "--context", "[1]"]).expect_failure().stderr_has(&["--context must be a JSON object"]);
    }

    #[test]
    fn declared_types_replace_the_type_of_a_json_null() {
        // Untyped, a JSON null is of type null, which no condition accepts.
        run(&["eval", "if flag then 1 else 2", "--context", r#"{"flag": null}"#]).expect_code(1);
        let out = run(&["eval", "if flag then 1 else 2", "--context", r#"{"flag": null}"#, "--declare", "flag:bool?"]);
        out.expect_code(0);
        assert_eq!(out.first_line(), "2");
        // Absent from the context, a declared variable is null.
        let out = run(&["eval", "flag", "--declare", "flag:bool?"]);
        out.expect_code(0).stdout_has(&["not taken"]);
        let out = run(&[
            "eval",
            r#"due + duration("P1M")"#,
            "--context",
            r#"{"due": "2026-01-31"}"#,
            "--declare",
            "due:date",
        ]);
        out.expect_code(0);
        assert_eq!(out.first_line(), r#"date("2026-02-28")"#);
        run(&["eval", "x", "--declare", "x"]).expect_failure().stderr_has(&["NAME:TYPE"]);
        run(&["eval", "x", "--declare", "x:nope"]).expect_failure().stderr_has(&["unknown type `nope`"]);
    }

    #[test]
    fn now_fixes_today() {
        let out = run(&["eval", "today()", "--now", "2026-11-30T10:00:00Z"]);
        out.expect_code(0);
        assert_eq!(out.first_line(), r#"date("2026-11-30")"#);
    }

    /// A designer tries business time on a calendar the project declares, as a process naming it
    /// counts it: three business days after 30 September 2026 on `cn` skip the National Day week
    /// and land on its make-up Saturday; `today()` is Shanghai's day.
    #[test]
    fn a_named_calendar_counts_business_days_and_gives_today() {
        let cn = ["--calendar", "cn", "--flow", "processes/calendars.flow"];
        let out = run(&[&["eval", "due + 3 business days", "--context", r#"{"due": "2026-09-30"}"#][..], &cn].concat());
        out.expect_code(0);
        assert_eq!(out.first_line(), r#"date("2026-10-10")"#);
        let out = run(&[&["eval", "today()", "--now", "2026-01-30T17:00:00Z"][..], &cn].concat());
        out.expect_code(0);
        assert_eq!(out.first_line(), r#"date("2026-01-31")"#, "01:00 on the 31st in Shanghai");

        // Without one, the error says how to name one.
        run(&["eval", "due + 3 business days", "--context", r#"{"due": "2026-09-30"}"#])
            .expect_code(1)
            .stderr_has(&["business days need a calendar", "--calendar NAME --flow FILE"]);
        // A name the files do not declare is refused with the ones they do.
        run(&["eval", "1", "--calendar", "cnn", "--flow", "processes/calendars.flow"]).expect_code(2).stderr_has(&[
            "--calendar `cnn`",
            "declared: cn, weekdays",
            "did you mean `cn`?",
        ]);
        run(&["eval", "1", "--calendar", "cn"]).expect_code(2).stderr_has(&["--flow <FILE>"]);
        run(&["eval", "1", "--calendar", "cn", "--flow", "processes/missing.flow"])
            .expect_code(2)
            .stderr_has(&["cannot read processes/missing.flow"]);
    }
}

mod schedule {
    use super::*;

    #[test]
    fn month_end_in_shanghai() {
        let out = run(&["schedule", "0 18 L * *", "--tz", "Asia/Shanghai", "--from", "2026-01-15", "-n", "4"]);
        out.expect_code(0);
        assert_eq!(
            out.stdout,
            "2026-01-31T18:00:00+08:00\n\
             2026-02-28T18:00:00+08:00\n\
             2026-03-31T18:00:00+08:00\n\
             2026-04-30T18:00:00+08:00\n"
        );
    }

    #[test]
    fn bad_pattern_names_the_field() {
        let out = run(&["schedule", "0 25 * * *", "--from", "2026-01-15"]);
        out.expect_code(1).stderr_has(&["hour", "25"]);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }

    #[test]
    fn unknown_zone_suggests_the_right_one() {
        let out = run(&["schedule", "0 18 * * *", "--tz", "Asia/Shangai", "--from", "2026-01-15"]);
        out.expect_failure().stderr_has(&["Asia/Shangai", "did you mean `Asia/Shanghai`"]);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }

    #[test]
    fn zero_fire_times_print_nothing() {
        let out = run(&["schedule", "0 18 * * *", "--from", "2026-01-15", "-n", "0"]);
        out.expect_code(0);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
}

mod hash_password {
    use cloverleaf::server::config::{ConfigFile, UserEntry, Users, hash_token};

    use super::*;

    /// Users with mia holding `password_argon2`, as the server reads them.
    fn users_with(password_argon2: &str) -> Users {
        let mia = UserEntry {
            name: "mia".into(),
            roles: vec![],
            token_sha256: hash_token("token-mia"),
            password_argon2: Some(password_argon2.into()),
            time_zone: None,
            email: None,
            language: None,
        };
        Users::from_config(&ConfigFile { users: vec![mia], ..ConfigFile::default() })
            .expect("the printed hash is accepted")
    }

    #[test]
    fn prints_an_argon2id_hash_the_server_accepts_and_verifies() {
        let out = run_with_input(&["hash-password"], "correct horse battery\n");
        out.expect_code(0).stderr_has(&["password_argon2 = \"$argon2id$", "cloverleaf.toml"]);
        assert_eq!(out.stdout.lines().count(), 1, "one line, the hash: {}", out.stdout);
        let phc = out.stdout.trim_end();
        let parsed = argon2::PasswordHash::new(phc).expect("a PHC string");
        assert_eq!(parsed.algorithm, argon2::ARGON2ID_IDENT, "{phc}");
        assert!(!phc.contains("correct horse"), "{phc}");
        let users = users_with(phc);
        assert_eq!(users.verify_password("mia", "correct horse battery").expect("it verifies").name, "mia");
        assert!(users.verify_password("mia", "correct horse battery\n").is_none(), "the line ending is not in it");
        // A salt of its own each time.
        let again = run_with_input(&["hash-password"], "correct horse battery\n");
        assert_ne!(again.expect_code(0).stdout, out.stdout);
    }

    #[test]
    fn a_line_from_windows_loses_only_its_line_ending() {
        let out = run_with_input(&["hash-password"], " two spaces \r\n");
        let users = users_with(out.expect_code(0).stdout.trim_end());
        assert!(users.verify_password("mia", " two spaces ").is_some());
    }

    #[test]
    fn an_empty_password_is_refused() {
        for input in ["", "\n", "   \n"] {
            let out = run_with_input(&["hash-password"], input);
            out.expect_failure().stderr_has(&["no password"]);
            assert!(out.stdout.is_empty(), "{input:?}: {}", out.stdout);
        }
    }
}

mod import {
    use super::*;

    #[test]
    fn a_graph_exported_as_bpmn_imports_back_and_checks() {
        let dir = TempDir::new();
        let exported = run(&["graph", "processes/order_approval.flow", "--format", "bpmn"]);
        exported.expect_code(0);
        let bpmn = dir.write("order_approval.bpmn", &exported.stdout);
        let out = dir.path().join("order_approval.flow");
        let imported = run(&["import", &bpmn.display().to_string(), "-o", &out.display().to_string()]);
        imported.expect_code(0);
        let flow = std::fs::read_to_string(&out).expect("the .flow file is written");
        assert!(flow.contains("process order_approval \"Order approval\""), "{flow}");
        assert!(flow.contains("not by manager_approval.completed_by"), "{flow}");
        // Checked beside the roles it offers approvals to.
        std::fs::copy(workspace().join("processes/roles.flow"), dir.path().join("roles.flow")).expect("roles copied");
        run(&["check", &out.display().to_string()]).expect_code(0);
        // Without -o, the text goes to stdout.
        run(&["import", &bpmn.display().to_string()]).expect_code(0).stdout_has(&["task check_credit"]);
    }

    #[test]
    fn untranslatable_bpmn_is_reported_with_its_place_and_nothing_is_written() {
        let dir = TempDir::new();
        let bpmn = dir.write(
            "broken.bpmn",
            "<bpmn:definitions xmlns:bpmn=\"http://www.omg.org/spec/BPMN/20100524/MODEL\">\n  <bpmn:process id=\"p\">\n    <bpmn:subProcess id=\"s\" />\n  </bpmn:process>\n</bpmn:definitions>\n",
        );
        let out = dir.path().join("broken.flow");
        run(&["import", &bpmn.display().to_string(), "-o", &out.display().to_string()]).expect_code(1).stderr_has(&[
            "error[E0702]: `bpmn:subProcess` is not translated",
            "broken.bpmn:3:5",
            "nothing written",
        ]);
        assert!(!out.exists(), "nothing is written when an element is not translated");
        let bad = dir.write("bad.bpmn", "<bpmn:definitions>\n  <unclosed>\n");
        run(&["import", &bad.display().to_string()]).expect_code(1).stderr_has(&["error[E0701]: malformed XML"]);
        run(&["import", "no/such/file.bpmn"]).expect_failure().stderr_has(&["cannot read no/such/file.bpmn"]);
    }
}
