//! Instructions per call, counted by valgrind's callgrind (`make
//! bench-callgrind`, and the instruction targets of `make bench`). Unlike
//! wall-clock time on a shared machine, the counts repeat run to run.
//!
//! Each case runs `wasmrpc-bench inproc` under callgrind twice, with
//! [`FEW`] and [`MANY`] measured calls after the same warm-up: the
//! difference in instructions over the difference in calls is one call,
//! with start-up, the deploy and the warm-up cancelled out. The pool is
//! sized down ([`POOL_INSTANCES`]): a full one reserves more address space
//! than valgrind can give. Compiled code comes from a data dir filled by a
//! first run under `valgrind --tool=none` (same emulated CPU, so the same
//! engine compatibility key), so no run compiles under callgrind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

/// Measured calls of the short and the long run.
const FEW: usize = 100;
const MANY: usize = 600;
/// Calls before the measured ones, in both runs.
const WARMUP: usize = 20;
/// Instances in the pool under valgrind: a call of `calc` holds two (its
/// own and the nested call's); `describe` at deploy takes one.
const POOL_INSTANCES: u32 = 4;

/// One measured call: a module, its method, params and answer, and the
/// modules it calls, deployed first under their names.
#[derive(Clone)]
pub struct Case<'a> {
    pub label: &'a str,
    pub module: PathBuf,
    pub call: (&'a str, &'a str, &'a str),
    pub deps: Vec<(&'a str, PathBuf)>,
    /// Deployed with `?reuse=N`: calls run in a reused instance.
    pub reuse: Option<u32>,
}

/// Instructions of one call of `case` (its whole instantiate + call + drop).
pub fn per_call(case: &Case<'_>, out: &Path) -> anyhow::Result<f64> {
    let dir = out.join("callgrind");
    std::fs::create_dir_all(&dir)?;
    let label = case.label.replace(['.', ' ', '/'], "_");
    // A data dir per case: deploying another module under the same name
    // would let the registry collect the compiled code of this one.
    let data = dir.join(format!("data-{label}"));
    // Fills the compiled-code cache without counting anything.
    run(case, &data, 1, &["--tool=none".into()])?;
    let count = |iterations: usize| -> anyhow::Result<u64> {
        let file = dir.join(format!("{label}-{iterations}.out"));
        run(case, &data, iterations, &["--tool=callgrind".into(), format!("--callgrind-out-file={}", file.display())])?;
        total(&file)
    };
    let (mut few, many) = (count(FEW)?, count(MANY)?);
    if many <= few {
        // The short run compiled after all (a cache miss): once more, cached.
        few = count(FEW)?;
    }
    if many <= few {
        bail!("{}: {MANY} calls counted {many} instructions, {FEW} calls {few}", case.label);
    }
    Ok((many - few) as f64 / (MANY - FEW) as f64)
}

/// Runs `wasmrpc-bench inproc` for `case` under valgrind with `tool_args`.
fn run(case: &Case<'_>, data: &Path, iterations: usize, tool_args: &[String]) -> anyhow::Result<()> {
    let (method, params, expect) = case.call;
    let mut command = Command::new("valgrind");
    command
        .args(tool_args)
        .arg("--quiet")
        .arg(std::env::current_exe()?)
        .arg("inproc")
        .arg("--module")
        .arg(&case.module);
    command.args(["--call", method, params, expect]);
    for (name, file) in &case.deps {
        command.arg("--with").arg(format!("{name}={}", file.display()));
    }
    if let Some(calls) = case.reuse {
        command.args(["--reuse", &calls.to_string()]);
    }
    command.arg("--data").arg(data);
    command.args(["--iterations", &iterations.to_string(), "--warmup", &WARMUP.to_string()]);
    command.args(["--pool-instances", &POOL_INSTANCES.to_string()]);
    // A call runs 50-100 times slower, longer still on a loaded machine;
    // and epoch ticks as long as the time limit, so that a call does not
    // stop at ticks it finishes well before at full speed (each costs a
    // yield to tokio, and a lazily made timer: see `until` in `timeout.rs`).
    command.args(["--time-limit-ms", "60000", "--epoch-tick-ms", "60000"]);
    let output = command
        .stdin(Stdio::null())
        .output()
        .context("running valgrind (install it: `apt-get install valgrind`, or `make bench-callgrind`)")?;
    if !output.status.success() {
        bail!("{command:?} failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// The instruction total of a callgrind output file (its `summary:` or
/// `totals:` line; every thread is in the one file).
fn total(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no instruction total in {}", file.display()))
}

/// Whether valgrind can be run.
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The figures of issues 12 and 13, in instructions.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Instructions {
    /// One instantiate + call + drop of `math.add`.
    pub top_level: f64,
    /// One call of `calc.hypot`: a top-level call and three nested ones.
    pub hypot: f64,
    /// One nested call of `math.add`, on its own: `test_nested.sum_via`
    /// calling it (typed, as `calc` calls), less `test_nested.sum_here`,
    /// which adds in place with the same params (the same component, so
    /// its instantiate, params, call and drop cancel out).
    pub nested: f64,
    /// One call of `math.add` in a reused instance (deployed `?reuse=N`).
    pub reused: f64,
}

impl Instructions {
    /// A nested call against a top-level instantiate + call.
    pub fn nested_ratio(&self) -> f64 {
        self.nested / self.top_level
    }
}

/// Counts `math.add`, `calc.hypot` and a nested call with the modules of `wasm_dir`.
pub fn measure(wasm_dir: &Path, out: &Path) -> anyhow::Result<Instructions> {
    let math = wasm_dir.join("math.wasm");
    let top = Case { label: "math.add", module: math.clone(), call: crate::MATH_ADD, deps: vec![], reuse: None };
    let reused = Case { label: "math.add reused", reuse: Some(1_000_000), ..top.clone() };
    let hypot = Case {
        label: "calc.hypot",
        module: wasm_dir.join("calc.wasm"),
        call: crate::CALC_HYPOT,
        deps: vec![("math", math.clone())],
        reuse: None,
    };
    let nested = wasm_dir.join("test_nested.wasm");
    let here = Case {
        label: "test_nested.sum_here",
        module: nested.clone(),
        call: ("sum_here", r#"["math.add",1,2]"#, "3"),
        deps: vec![],
        reuse: None,
    };
    let via = Case {
        label: "test_nested.sum_via",
        module: nested,
        call: ("sum_via", r#"["math.add",1,2]"#, "3"),
        deps: vec![("math", math)],
        reuse: None,
    };
    let top_level = per_call(&top, out)?;
    let reused = per_call(&reused, out)?;
    let hypot = per_call(&hypot, out)?;
    let nested = per_call(&via, out)? - per_call(&here, out)?;
    Ok(Instructions { top_level, hypot, nested, reused })
}

/// The figures as `make bench-callgrind` prints them.
pub fn print(i: &Instructions, out: &Path) {
    println!("instructions per call (callgrind, {MANY} calls minus {FEW}, start-up excluded):");
    println!("  math.add   instantiate + call + drop     {:>9.0}", i.top_level);
    println!("  math.add   in a reused instance (?reuse) {:>9.0}", i.reused);
    println!("  calc.hypot 1 call + 3 nested calls       {:>9.0}", i.hypot);
    println!(
        "  one nested call of math.add              {:>9.0}  = {:.2}x a top-level instantiate + call",
        i.nested,
        i.nested_ratio()
    );
    println!("  (test_nested.sum_via(math.add) - test_nested.sum_here; profiles: callgrind_annotate");
    println!("   --inclusive=yes {}/callgrind/*-{MANY}.out)", out.display());
}
