//! Compile-time benchmark: parse + check + compile of generated flows of 1,000, 5,000 and
//! 20,000 nodes. Run with `cargo bench -p cloverleaf-dsl`; prints milliseconds and nodes per
//! second (median of several runs).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cloverleaf_dsl::Project;

/// A sound process of about `nodes` nodes: blocks of task, banded decide, two tasks, set,
/// parallel split with a task and an approval, join.
fn generate(nodes: usize) -> String {
    const PER_BLOCK: usize = 9;
    let blocks = (nodes / PER_BLOCK).max(1);
    let mut src = String::from("roles { ops.approver \"Approver\" }\n\nprocess generated \"Generated\" {\n");
    src.push_str("  input { amount: money }\n  var score: int = 0\n  var ok: bool = false\n  start -> t0\n");
    for k in 0..blocks {
        let next = if k + 1 == blocks { "done".to_string() } else { format!("t{}", k + 1) };
        let _ = write!(
            src,
            r#"
  task t{k} "Step {k}" {{
    job "step.run"
    in {{ amount, block: {k} }}
    out {{ score }}
  }} -> d{k}
  decide d{k} {{
    when amount <= 1_000 -> a{k}
    when amount > 1_000 -> b{k}
  }}
  task a{k} {{ job "small.run" }} -> s{k}
  task b{k} {{ job "large.run" }} -> s{k}
  set s{k} {{ score = score + 1 }} -> p{k}
  parallel p{k} {{
    -> x{k}
    -> y{k}
  }}
  task x{k} {{ job "side.run" }} -> j{k}
  approval y{k} "Check block {k}" {{
    role ops.approver
    form {{ ok: bool }}
    due 1d
  }} -> j{k}
  join j{k} -> {next}
"#
        );
    }
    src.push_str("  end done \"Done\"\n}\n");
    src
}

fn compile(src: &str) -> usize {
    let mut project = Project::new();
    project.add("generated.flow", src);
    let compilation = project.compile();
    assert!(!compilation.has_errors(), "{}", compilation.render());
    compilation.processes[0].nodes.len()
}

fn main() {
    println!("parse + check + compile of generated flows (median of runs)");
    println!("{:>8} {:>10} {:>12} {:>14}", "nodes", "bytes", "ms", "nodes/s");
    for target in [1_000, 5_000, 20_000] {
        let src = generate(target);
        let nodes = compile(&src);
        let runs = if target >= 20_000 { 5 } else { 11 };
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(compile(std::hint::black_box(&src)));
                start.elapsed()
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        let ms = median.as_secs_f64() * 1e3;
        println!("{nodes:>8} {:>10} {ms:>12.2} {:>14.0}", src.len(), nodes as f64 / median.as_secs_f64());
    }
}
