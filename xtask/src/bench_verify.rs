//! `cargo xtask bench-verify [FLOWS]`: `netpol verify` against a JSON parser merely reading the
//! same Hubble export, in one run.
//!
//! Generates (deterministically, with `examples/hubble_gen.rs`) FLOWS Hubble jsonpb lines of
//! mostly distinct pod pairs (default 200,000) and the 1,010 policies of the generated cluster,
//! then times `jq -c .flow.l4` (parsing every line, printing a small part) and `netpol verify`
//! with the text and the JSON report in five interleaved rounds (jq, text, json, jq, …: a
//! machine that slows down or speeds up meanwhile affects all three alike), and prints the
//! medians, the fastest and slowest run, the ratios and netpol's peak RSS. Needs `jq` and GNU
//! `time` (`apt-get install jq time`).
//!
//! Figures go to the README's performance section, with this command.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{process, workspace_root};

pub fn run(flows: u32) -> Result<()> {
    for tool in ["jq", "/usr/bin/time"] {
        if process::probe(Command::new(tool).arg("--version"))?.is_none() {
            bail!("`{tool}` is missing: `apt-get install jq time`");
        }
    }
    let root = workspace_root();
    let netpol = process::release_netpol(&root, &["--example", "hubble_gen"])?;
    let dir = root.join("target/bench-verify");
    std::fs::create_dir_all(&dir)?;
    let generator = root.join("target/release/examples/hubble_gen");
    let export = dir.join(format!("hubble-{flows}.jsonl"));
    let out =
        File::create(&export).with_context(|| format!("cannot write `{}`", export.display()))?;
    process::run(Command::new(&generator).arg(flows.to_string()).stdout(out))?;
    let policies = dir.join("policies");
    if policies.exists() {
        std::fs::remove_dir_all(&policies)?;
    }
    process::run(Command::new(&generator).arg("policies").arg(&policies))?;
    let size = std::fs::metadata(&export)?.len();
    println!(
        "input: {flows} Hubble lines, {:.0} MB; 1,010 policies",
        size as f64 / 1e6
    );

    let verify = |format: &str| {
        let mut cmd = Command::new(&netpol);
        cmd.arg("verify")
            .arg("--policies")
            .arg(&policies)
            .arg("--flows")
            .arg(&export)
            .args(["--format", format]);
        cmd
    };
    let mut commands = [Command::new("jq"), verify("text"), verify("json")];
    commands[0].args(["-c", ".flow.l4"]).arg(&export);
    let mut runs: [Vec<Duration>; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (cmd, times) in commands.iter_mut().zip(runs.iter_mut()) {
            times.push(time(cmd)?);
        }
    }
    for times in &mut runs {
        times.sort();
    }
    let median = |times: &[Duration]| times.get(times.len() / 2).copied().unwrap_or_default();
    let jq = median(&runs[0]);
    let rss = peak_rss_mib(&netpol, &policies, &export)?;
    let mbs = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    let spread = |times: &[Duration]| {
        format!(
            "{:.2}-{:.2} s",
            times.first().copied().unwrap_or_default().as_secs_f64(),
            times.last().copied().unwrap_or_default().as_secs_f64()
        )
    };
    println!(
        "jq -c .flow.l4:          {:>6.2} s  ({:.0} MB/s; runs {})",
        jq.as_secs_f64(),
        mbs(jq),
        spread(&runs[0])
    );
    for (name, times) in [("text", &runs[1]), ("json", &runs[2])] {
        let d = median(times);
        println!(
            "netpol verify --format {name}: {:>6.2} s  ({:.0} MB/s; runs {}), {:.1}x jq",
            d.as_secs_f64(),
            mbs(d),
            spread(times),
            jq.as_secs_f64() / d.as_secs_f64()
        );
    }
    println!("netpol verify --format text: peak RSS {rss:.0} MiB");
    Ok(())
}

/// The wall-clock time of one run, output discarded; a failing run is an error.
fn time(cmd: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    // `verify` exits 1 when something would be dropped: the run worked.
    if !matches!(status.code(), Some(0 | 1)) {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(started.elapsed())
}

/// Rounds of the three timed commands.
const ROUNDS: usize = 5;

/// Peak RSS of `netpol verify --format text`, from GNU time.
fn peak_rss_mib(netpol: &Path, policies: &Path, export: &Path) -> Result<f64> {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(netpol)
        .arg("verify")
        .arg("--policies")
        .arg(policies)
        .arg("--flows")
        .arg(export)
        .stdout(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&output.stderr);
    let kib: f64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("GNU time printed no RSS")?;
    Ok(kib / 1024.0)
}
