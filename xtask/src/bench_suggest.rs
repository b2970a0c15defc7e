//! `cargo xtask bench-suggest [FLOWS]`: `netpol suggest` on a generated Hubble export.
//!
//! Generates (deterministically, with `examples/hubble_gen.rs`, as `bench-verify`) FLOWS
//! Hubble jsonpb lines of mostly distinct pod pairs (default 1,000,000) and the 1,010 policies
//! of the generated cluster, then times `netpol suggest --format cnp` (every dropped flow
//! judged, grouped and written as CiliumNetworkPolicies) in three rounds and prints the
//! median, the fastest and slowest run and the peak RSS. Needs GNU `time` (`apt-get install
//! time`). The target: 1,000,000 flows under 10 s.
//!
//! Figures go to the README's performance section, with this command.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{process, workspace_root};

/// Rounds of the timed command.
const ROUNDS: usize = 3;

pub fn run(flows: u32) -> Result<()> {
    if process::probe(Command::new("/usr/bin/time").arg("--version"))?.is_none() {
        bail!("GNU `time` is missing: `apt-get install time`");
    }
    let root = workspace_root();
    let netpol = process::release_netpol(&root, &["--example", "hubble_gen"])?;
    let dir = root.join("target/bench-suggest");
    std::fs::create_dir_all(&dir)?;
    let generator = root.join("target/release/examples/hubble_gen");
    let export = dir.join(format!("hubble-{flows}.jsonl"));
    if !export.exists() {
        let out = File::create(&export)
            .with_context(|| format!("cannot write `{}`", export.display()))?;
        process::run(Command::new(&generator).arg(flows.to_string()).stdout(out))?;
    }
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
    let suggest = || {
        let mut cmd = Command::new(&netpol);
        cmd.arg("suggest")
            .arg("--policies")
            .arg(&policies)
            .arg("--flows")
            .arg(&export)
            .args(["--format", "cnp"]);
        cmd
    };
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let status = suggest()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot start netpol")?;
        // `suggest` exits 1 when it suggests something: the run worked.
        if !matches!(status.code(), Some(0 | 1)) {
            bail!("netpol suggest failed ({status})");
        }
        times.push(started.elapsed());
    }
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let (fast, slow) = (
        times.first().copied().unwrap_or_default(),
        times.last().copied().unwrap_or(Duration::ZERO),
    );
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(&netpol)
        .args(suggest().get_args())
        .stdout(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&output.stderr);
    let summary = text
        .lines()
        .find(|l| l.starts_with("netpol suggest:"))
        .unwrap_or("")
        .to_owned();
    let kib: f64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("GNU time printed no RSS")?;
    println!(
        "netpol suggest --format cnp: {:.2} s median (runs {:.2}-{:.2} s), {:.0} MB/s, peak RSS {:.0} MiB",
        median.as_secs_f64(),
        fast.as_secs_f64(),
        slow.as_secs_f64(),
        size as f64 / 1e6 / median.as_secs_f64(),
        kib / 1024.0
    );
    println!("{summary}");
    Ok(())
}
