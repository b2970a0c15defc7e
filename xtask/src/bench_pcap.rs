//! `cargo xtask bench-pcap [--size-mib N]`: `netpol-observer pcap` against tshark's
//! conversation statistics on one large generated capture, in one run.
//!
//! Writes (deterministically, [`crate::pcap_gen`]) an Ethernet pcap of N MiB (default 1,024)
//! of mixed TCP, UDP and DNS to `target/bench-pcap/`, then:
//! 1. `netpol-observer pcap FILE -o /dev/null` (release build) pinned to one core with
//!    `taskset -c 0` when there is one: a warm-up run (the file in the page cache), then five
//!    timed runs; the median gives GB/s (file bytes / wall time);
//! 2. `tshark -n -q -z conv,tcp -z conv,udp -r FILE`, once (it is slow), not pinned;
//! 3. the TCP and UDP conversations of both, as unordered pairs of `ip:port` ends
//!    (`netpol-observer pcap --per-connection`, untimed, against tshark's tables of step 2):
//!    they must be the same (exit 1 otherwise).
//!
//! Needs tshark (`apt-get install tshark`). Figures go to the README's performance section,
//! with this command.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{process, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the generated capture
    #[arg(long, value_name = "N", default_value_t = 1024)]
    size_mib: u64,
}

/// Timed runs of the observer (after one warm-up run).
const RUNS: usize = 5;

type End = (IpAddr, u16);
/// `(protocol, lower end, higher end)`.
type Conv = (&'static str, End, End);

fn conv(protocol: &'static str, a: End, b: End) -> Conv {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    (protocol, x, y)
}

pub fn run(args: &Args) -> Result<bool> {
    if process::probe(Command::new("tshark").arg("--version"))?.is_none() {
        bail!("`tshark` is missing: `apt-get install tshark`");
    }
    let root = workspace_root();
    let observer = process::release_observer(&root)?;
    let dir = root.join("target/bench-pcap");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("mix-{}mib.pcap", args.size_mib));
    let started = Instant::now();
    let out = File::create(&file).with_context(|| format!("cannot write `{}`", file.display()))?;
    let mix = crate::pcap_gen::write(
        BufWriter::with_capacity(1 << 20, out),
        args.size_mib << 20,
        0x6e65_7470_6f6c,
    )?;
    let pct = |n: u64| 100.0 * n as f64 / mix.frames.max(1) as f64;
    println!(
        "capture: {} ({:.2} GB, {} frames, {} sessions; written in {:.1} s)",
        file.display(),
        mix.bytes as f64 / 1e9,
        mix.frames,
        mix.sessions,
        started.elapsed().as_secs_f64()
    );
    println!(
        "mix: TCP {:.1} %, UDP {:.1} % (DNS {:.1} %); IPv6 {:.1} %, VLAN-tagged {:.1} %; frames of 54-200 bytes {:.1} %, of 1000-1514 {:.1} %, mean {:.0} bytes",
        pct(mix.tcp),
        pct(mix.udp),
        pct(mix.dns),
        pct(mix.ipv6),
        pct(mix.vlan),
        pct(mix.small),
        pct(mix.large),
        (mix.bytes - 24 - 16 * mix.frames) as f64 / mix.frames.max(1) as f64
    );

    let pin = process::probe(Command::new("taskset").args(["-c", "0", "true"]))?
        .is_some_and(|o| o.status.success());
    let ours = || {
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(&observer);
            c
        } else {
            Command::new(&observer)
        };
        cmd.arg("pcap").arg(&file).args(["-o", "/dev/null"]);
        cmd
    };
    println!("$ {}", process::display(&ours()));
    time(&mut ours())?;
    let mut times = Vec::new();
    for _ in 0..RUNS {
        times.push(time(&mut ours())?);
    }
    times.sort();
    let median = times.get(RUNS / 2).copied().unwrap_or_default();
    let gbs = |d: Duration| mix.bytes as f64 / 1e9 / d.as_secs_f64();
    println!(
        "netpol-observer pcap{}: {:.3} s median of {RUNS} (runs {:.3}-{:.3} s), {:.2} GB/s",
        if pin { " (one core)" } else { "" },
        median.as_secs_f64(),
        times.first().copied().unwrap_or_default().as_secs_f64(),
        times.last().copied().unwrap_or_default().as_secs_f64(),
        gbs(median)
    );

    let mut tshark = Command::new("tshark");
    tshark
        .args(["-n", "-q", "-z", "conv,tcp", "-z", "conv,udp", "-r"])
        .arg(&file);
    println!("$ {}", process::display(&tshark));
    let started = Instant::now();
    let output = tshark.stderr(Stdio::null()).output()?;
    let tshark_time = started.elapsed();
    if !output.status.success() {
        bail!("tshark failed ({})", output.status);
    }
    println!(
        "tshark: {:.1} s, {:.3} GB/s; netpol-observer is {:.1}x faster",
        tshark_time.as_secs_f64(),
        gbs(tshark_time),
        tshark_time.as_secs_f64() / median.as_secs_f64()
    );

    let theirs = tshark_conversations(&String::from_utf8_lossy(&output.stdout));
    let conns = dir.join("per-connection.jsonl");
    process::run(
        Command::new(&observer)
            .args(["pcap", "--per-connection", "-o"])
            .arg(&conns)
            .arg(&file),
    )?;
    let mine = our_conversations(&conns)?;
    let count = |set: &BTreeSet<Conv>, p: &str| set.iter().filter(|c| c.0 == p).count();
    println!(
        "conversations: TCP {} (tshark {}), UDP {} (tshark {})",
        count(&mine, "tcp"),
        count(&theirs, "tcp"),
        count(&mine, "udp"),
        count(&theirs, "udp")
    );
    let mut same = true;
    for (side, only) in [
        ("ours only", mine.difference(&theirs).collect::<Vec<_>>()),
        ("tshark only", theirs.difference(&mine).collect()),
    ] {
        if !only.is_empty() {
            same = false;
            println!("{side}: {} conversations, e.g.", only.len());
            for (p, a, b) in only.iter().take(5) {
                println!("  {p} {}:{} <-> {}:{}", a.0, a.1, b.0, b.1);
            }
        }
    }
    Ok(same)
}

/// The wall-clock time of one run; a failing run is an error.
fn time(cmd: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot start `{}`", process::display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(cmd));
    }
    Ok(started.elapsed())
}

fn end(text: &str) -> Option<End> {
    let (ip, port) = text.rsplit_once(':')?;
    Some((
        ip.trim_matches(['[', ']']).parse().ok()?,
        port.parse().ok()?,
    ))
}

/// The conversations of tshark's `conv,tcp` and `conv,udp` tables.
fn tshark_conversations(text: &str) -> BTreeSet<Conv> {
    let mut out = BTreeSet::new();
    let mut protocol = "";
    for line in text.lines() {
        if line.starts_with("TCP Conversations") {
            protocol = "tcp";
        } else if line.starts_with("UDP Conversations") {
            protocol = "udp";
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [a, "<->", b, ..] = words.as_slice()
            && let (Some(a), Some(b)) = (end(a), end(b))
        {
            out.insert(conv(protocol, a, b));
        }
    }
    out
}

/// The TCP and UDP conversations of `netpol-observer pcap --per-connection`'s records.
fn our_conversations(path: &Path) -> Result<BTreeSet<Conv>> {
    let mut out = BTreeSet::new();
    let reader = BufReader::new(File::open(path)?);
    for line in reader.lines() {
        let r: Value = serde_json::from_str(&line?)?;
        let protocol = match r.get("protocol").and_then(Value::as_str) {
            Some("tcp") => "tcp",
            Some("udp") => "udp",
            _ => continue,
        };
        let e = |side: &str| -> Option<End> {
            Some((
                r.get(side)?.get("ip")?.as_str()?.parse().ok()?,
                u16::try_from(r.get(side)?.get("port")?.as_u64()?).ok()?,
            ))
        };
        if let (Some(a), Some(b)) = (e("source"), e("destination")) {
            out.insert(conv(protocol, a, b));
        }
    }
    Ok(out)
}
