//! `cargo xtask lint-corpus`: `netpol lint` on every YAML and JSON file of the shared corpus, one
//! file at a time (a dev check, like `corpus`; needs ../shared/corpus).
//!
//! Each file goes through the library as the binary would run it (`netpol lint FILE --format
//! json`; the binary's exit status is the library's `Status`, which is 0, 1 or 2 by its type).
//! The check fails if a run panics or if its JSON cannot be read. It prints the findings per code and per directory (the first two levels
//! below the corpus), so that a change of a rule shows up as a change of the table.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use netpol_compiler::cli::{Status, run_args};
use netpol_compiler::document::files::Disk;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The corpus directory [default: ../shared/corpus, from the workspace root]
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<bool> {
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| crate::workspace_root().join("../shared/corpus"));
    let mut files = Vec::new();
    crate::connlist::collect(&corpus, &mut files)
        .with_context(|| format!("cannot read the corpus at `{}`", corpus.display()))?;
    files.sort();
    let mut by_code: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut by_dir: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut statuses: BTreeMap<u8, usize> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&corpus).unwrap_or(file);
        let dir: PathBuf = rel
            .parent()
            .map(|p| p.components().take(2).collect())
            .unwrap_or_default();
        let dir = dir.display().to_string();
        let arg = file.display().to_string();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = catch_unwind(AssertUnwindSafe(|| {
            run_args(
                ["netpol", "lint", arg.as_str(), "--format", "json"],
                &Disk,
                &mut stdout,
                &mut stderr,
            )
        }));
        let code = match status {
            Ok(Status::Ok) => 0,
            Ok(Status::Found) => 1,
            Ok(Status::BadInput) => 2,
            Err(_) => {
                failures.push(format!("{}: panicked", rel.display()));
                continue;
            }
        };
        *statuses.entry(code).or_default() += 1;
        let dir_row = by_dir.entry(dir).or_default();
        dir_row.0 += 1;
        if code == 2 {
            // Bad input (a file lint cannot read at all): no findings to count.
            continue;
        }
        let json: Value = match serde_json::from_slice(&stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: unreadable JSON ({e})", rel.display()));
                continue;
            }
        };
        let findings = json.get("findings").and_then(Value::as_array);
        for f in findings.into_iter().flatten() {
            let text = |key: &str| f.get(key).and_then(Value::as_str).map(str::to_owned);
            let code = text("code").unwrap_or_else(|| "?".to_owned());
            let id = text("id").unwrap_or_default();
            let row = by_code.entry(code).or_insert((id, 0));
            row.1 += 1;
            dir_row.1 += 1;
        }
    }
    println!(
        "netpol lint on {} files of {}: {} exit 0, {} exit 1, {} exit 2, {} failures\n",
        files.len(),
        corpus.display(),
        statuses.get(&0).copied().unwrap_or(0),
        statuses.get(&1).copied().unwrap_or(0),
        statuses.get(&2).copied().unwrap_or(0),
        failures.len()
    );
    println!("| findings | code | number |\n|---:|---|---|");
    let mut codes: Vec<(&String, &(String, usize))> = by_code.iter().collect();
    codes.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(b.0)));
    for (code, (id, n)) in codes {
        println!("| {n} | `{code}` | {id} |");
    }
    println!("\n| files | findings | directory |\n|---:|---:|---|");
    for (dir, (n, found)) in &by_dir {
        println!("| {n} | {found} | `{dir}` |");
    }
    for f in &failures {
        eprintln!("error: {f}");
    }
    Ok(failures.is_empty())
}
