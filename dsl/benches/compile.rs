//! Compile-time benchmark: parse + check + compile of generated flows of 1,000, 5,000 and
//! 20,000 nodes, and of one decide with 1,000 to 20,000 banded arms (its checks must grow
//! linearly). Run with `cargo bench -p cloverleaf-dsl`; prints milliseconds and nodes (or arms)
//! per second (median of several runs).

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

/// A process with one decide of `arms` amount bands (`amount in [k*10..(k+1)*10)`), each to
/// its own end, and no `otherwise`: the checker must prove the bands cover every amount.
fn generate_decide(arms: usize) -> String {
    let mut src = String::from("process wide \"Wide decide\" {\n  input { amount: money }\n  start -> route\n");
    src.push_str("  decide route {\n    when amount < 0 -> e0\n");
    for k in 0..arms {
        let _ = writeln!(src, "    when amount in [{}..{}) -> e{}", k * 10, (k + 1) * 10, k % 100);
    }
    let _ = writeln!(src, "    when amount >= {} -> e0\n  }}", arms * 10);
    for e in 0..100.min(arms) {
        let _ = writeln!(src, "  end e{e} \"End {e}\"");
    }
    src.push_str("}\n");
    src
}

fn median_of(runs: usize, src: &str) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(compile(std::hint::black_box(src)));
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
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
        let median = median_of(runs, &src);
        let ms = median.as_secs_f64() * 1e3;
        println!("{nodes:>8} {:>10} {ms:>12.2} {:>14.0}", src.len(), nodes as f64 / median.as_secs_f64());
    }
    println!();
    println!("one decide with many banded arms, no `otherwise` (median of runs)");
    println!("{:>8} {:>10} {:>12} {:>14}", "arms", "bytes", "ms", "arms/s");
    for arms in [1_000, 10_000, 20_000] {
        let src = generate_decide(arms);
        compile(&src);
        let median = median_of(if arms >= 10_000 { 5 } else { 11 }, &src);
        let ms = median.as_secs_f64() * 1e3;
        println!("{arms:>8} {:>10} {ms:>12.2} {:>14.0}", src.len(), arms as f64 / median.as_secs_f64());
    }
}
