//! The `serve` and `worker` child processes and the scratch directory they run in.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::audit::{connection_url, serve_name};

/// A temporary directory, removed unless the test fails (then its logs stay for a look).
pub(crate) struct TempDir {
    pub(crate) path: PathBuf,
}

impl TempDir {
    pub(crate) fn new() -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("cloverleaf-multinode-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("the scratch directory is created");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "multinode: logs and configuration kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process and the file its stderr goes to.
struct Child {
    name: String,
    process: std::process::Child,
    log: PathBuf,
}

/// The child processes: each is killed and waited for when this is dropped, and when the test
/// fails the tail of each one's log is printed.
pub(crate) struct Children {
    dir: PathBuf,
    list: Vec<Child>,
}

impl Children {
    pub(crate) fn new(dir: &Path) -> Children {
        Children { dir: dir.to_path_buf(), list: Vec::new() }
    }

    fn spawn(&mut self, name: &str, args: &[&str], env: &[(&str, &str)]) -> usize {
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("the log file is created");
        let process = Command::new(env!("CARGO_BIN_EXE_cloverleaf"))
            .current_dir(&self.dir)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.list.push(Child { name: name.to_string(), process, log });
        self.list.len() - 1
    }

    /// Starts serve node `index` without waiting for it; returns its place in the list.
    pub(crate) fn spawn_serve(&mut self, index: usize, db: &str, processes: &Path, config: &Path) -> usize {
        let name = serve_name(index);
        let url = connection_url(db, &name);
        let (processes, config) = (processes.display().to_string(), config.display().to_string());
        let args = ["serve", "--db", &url, "--processes", &processes, "--config", &config, "--listen", "127.0.0.1:0"];
        self.spawn(&name, &args, &[])
    }

    /// Starts serve node `index` and waits until it serves; returns its base URL.
    pub(crate) fn serve(&mut self, index: usize, db: &str, processes: &Path, config: &Path) -> String {
        let child = self.spawn_serve(index, db, processes, config);
        self.address(child)
    }

    /// The base URL child `index` prints once it serves.
    pub(crate) fn address(&mut self, index: usize) -> String {
        let started = Instant::now();
        loop {
            let child = &mut self.list[index];
            let log = std::fs::read_to_string(&child.log).unwrap_or_default();
            // The log is read while the node writes it, and a line goes out in several writes:
            // the address counts once what follows it is there too (a port cut short would
            // send every request of the run to no node).
            if let Some(rest) = log.split("serving on http://").nth(1)
                && let Some(end) = rest.find(char::is_whitespace)
            {
                return format!("http://{}", &rest[..end]);
            }
            if let Ok(Some(status)) = child.process.try_wait() {
                panic!("{} exited with {status} before serving:\n{log}", child.name);
            }
            assert!(started.elapsed() < Duration::from_secs(120), "{} did not start serving:\n{log}", child.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn worker(&mut self, index: usize, server: &str, token: &str, db: &str) {
        let name = format!("worker-{}", index + 1);
        let ledger = connection_url(db, &name);
        let args = ["worker", "--server", server, "--worker-id", &name, "--ledger", &ledger];
        self.spawn(&name, &args, &[("CLOVERLEAF_TOKEN", token)]);
    }

    /// The name and pid of every child still running.
    pub(crate) fn running(&mut self) -> Vec<(String, u32)> {
        self.list
            .iter_mut()
            .filter_map(|c| matches!(c.process.try_wait(), Ok(None)).then(|| (c.name.clone(), c.process.id())))
            .collect()
    }

    /// SIGKILL (what `Child::kill` sends on Unix) to serve node `index`, then reaps it.
    pub(crate) fn kill(&mut self, index: usize) {
        let child = &mut self.list[index];
        assert_eq!(child.name, serve_name(index), "the serve nodes come first in the list");
        child.process.kill().unwrap_or_else(|e| panic!("cannot kill {}: {e}", child.name));
        let _ = child.process.wait();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.list {
            let _ = child.process.kill();
            let _ = child.process.wait();
        }
        if std::thread::panicking() {
            let mut out = String::new();
            for child in &self.list {
                let log = std::fs::read_to_string(&child.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                out.push_str(&format!("---- last lines of {} ({})\n", child.name, child.log.display()));
                for line in &lines[lines.len().saturating_sub(40)..] {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            let _ = std::io::stderr().write_all(out.as_bytes());
        }
    }
}
