//! `cargo xtask ci`: every check CI runs, in order, failing fast.
//!
//! ```text
//! setup → cargo fmt --check → cargo clippy -D warnings → cargo test
//! ```
//!
//! `.ci/run` execs this and the README names it as the way to run all tests, so local runs and
//! CI cannot drift apart. The observer's build script builds the kernel programs (with the
//! toolchain `setup` installs) when clippy and the tests first compile it. Each step prints a
//! header and its time; the first failure stops the run and names the step.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::{process, setup, workspace_root};

enum Step {
    /// In-process, so a fresh machine gets its toolchain before anything is compiled with it.
    Setup,
    Cargo(&'static [&'static str]),
}

const STEPS: &[(&str, Step)] = &[
    ("setup", Step::Setup),
    ("fmt", Step::Cargo(&["fmt", "--all", "--check"])),
    (
        "clippy",
        Step::Cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    ),
    ("test", Step::Cargo(&["test", "--workspace", "--locked"])),
];

pub fn run() -> Result<()> {
    let started = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    for (index, (name, step)) in STEPS.iter().enumerate() {
        println!("\n==> [{}/{}] {name}", index + 1, STEPS.len());
        let step_started = Instant::now();
        let result = match step {
            Step::Setup => setup::run(),
            Step::Cargo(args) => process::run(
                Command::new(process::cargo())
                    .args(*args)
                    .current_dir(workspace_root()),
            ),
        };
        let elapsed = step_started.elapsed();
        if let Err(error) = result {
            println!("\n==> {name} FAILED after {elapsed:.1?}");
            return Err(error.context(format!("ci step `{name}` failed")));
        }
        println!("==> {name} ok ({elapsed:.1?})");
        timings.push((name, elapsed));
    }
    let steps: Vec<String> = timings
        .iter()
        .map(|(name, elapsed)| format!("{name} {elapsed:.1?}"))
        .collect();
    println!(
        "\nci passed in {:.1?} ({})",
        started.elapsed(),
        steps.join(", ")
    );
    Ok(())
}
