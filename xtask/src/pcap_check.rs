//! `cargo xtask pcap-check`: `netpol-observer pcap` against tshark on every capture of the
//! shared corpus (a dev check, like `connlist`; needs ../shared/corpus, `tshark` on PATH and
//! `cargo build -p netpol-observer`).
//!
//! For every capture under `<corpus>/pcaps`:
//! * the TCP and UDP conversations, as unordered pairs of `ip:port` ends, of
//!   `netpol-observer pcap --per-connection FILE` and of `tshark -q -z conv,tcp -z conv,udp -r
//!   FILE` are compared; a conversation only one side has is explained, or unexplained (the
//!   check fails): `link-control` (to link-local multicast, `224.0.0.0/24` or `ff02::/16`,
//!   which the observer, like its live agent, does not count as a flow);
//! * the DNS answers of `pcaps/tshark-generated/<path with _>.tsv` (`dns.qry.name` and the
//!   `dns.a`/`dns.aaaa` of each response): every flow to an answered address must carry the
//!   question's name, unless the address is the resolver's own (tshark's `dns.a` lists every
//!   section's addresses, and a resolver's address is often glue in the additional section,
//!   which the observer, answering only the question, does not take as a name).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The corpus directory [default: ../shared/corpus, from the workspace root]
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// The observer binary [default: target/debug/netpol-observer]
    #[arg(long, value_name = "FILE")]
    observer: Option<PathBuf>,
}

type End = (IpAddr, u16);
/// `(protocol, lower end, higher end)`.
type Conv = (String, End, End);

fn conv(protocol: &str, a: End, b: End) -> Conv {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    (protocol.to_owned(), x, y)
}

fn end(text: &str) -> Option<End> {
    let (ip, port) = text.rsplit_once(':')?;
    Some((
        ip.trim_matches(['[', ']']).parse().ok()?,
        port.parse().ok()?,
    ))
}

fn link_control(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => matches!(a.octets(), [224, 0, 0, _]),
        IpAddr::V6(a) => matches!(a.octets(), [0xff, b, ..] if b & 0x0f == 2),
    }
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tshark-generated") {
                captures(&path, out)?;
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            out.push(path);
        }
    }
    Ok(())
}

pub fn run(args: &Args) -> Result<bool> {
    let root = crate::workspace_root();
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| root.join("../shared/corpus"));
    let observer = args
        .observer
        .clone()
        .unwrap_or_else(|| root.join("target/debug/netpol-observer"));
    let pcaps = corpus.join("pcaps");
    let mut files = Vec::new();
    captures(&pcaps, &mut files)?;
    files.sort();
    let mut ok = true;
    println!(
        "| capture | tcp+udp conversations (ours / tshark) | differences | dns answers checked | dns differences |"
    );
    println!("|---|---|---|---|---|");
    for file in &files {
        let rel = file.strip_prefix(&pcaps).unwrap_or(file);
        let ours = Command::new(&observer)
            .args(["pcap", "--per-connection"])
            .arg(file)
            .output()
            .with_context(|| format!("running {}", observer.display()))?;
        let records: Vec<Value> = String::from_utf8_lossy(&ours.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let mut mine = BTreeSet::new();
        for r in &records {
            let p = r.get("protocol").and_then(Value::as_str).unwrap_or("");
            if p != "tcp" && p != "udp" {
                continue;
            }
            let e = |side: &str| -> Option<End> {
                Some((
                    r.get(side)?.get("ip")?.as_str()?.parse().ok()?,
                    u16::try_from(r.get(side)?.get("port")?.as_u64()?).ok()?,
                ))
            };
            if let (Some(a), Some(b)) = (e("source"), e("destination")) {
                mine.insert(conv(p, a, b));
            }
        }
        let tshark = Command::new("tshark")
            .args(["-n", "-q", "-z", "conv,tcp", "-z", "conv,udp", "-r"])
            .arg(file)
            .output()
            .context("running tshark (apt-get install tshark)")?;
        let mut theirs = BTreeSet::new();
        let mut protocol = "";
        for line in String::from_utf8_lossy(&tshark.stdout).lines() {
            if line.starts_with("TCP Conversations") {
                protocol = "tcp";
            } else if line.starts_with("UDP Conversations") {
                protocol = "udp";
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [a, "<->", b, ..] = words.as_slice()
                && let (Some(a), Some(b)) = (end(a), end(b))
            {
                theirs.insert(conv(protocol, a, b));
            }
        }
        let mut diffs = Vec::new();
        for (side, only) in [
            ("ours only", mine.difference(&theirs)),
            ("tshark only", theirs.difference(&mine)),
        ] {
            for (p, a, b) in only {
                let why = if link_control(a.0) || link_control(b.0) {
                    "link-control"
                } else {
                    ok = false;
                    "UNEXPLAINED"
                };
                diffs.push(format!(
                    "{side} {p} {}:{} <-> {}:{} ({why})",
                    a.0, a.1, b.0, b.1
                ));
            }
        }
        // DNS: every flow to an answered address carries the question's name.
        let tsv = corpus
            .join("pcaps/tshark-generated")
            .join(format!("{}.tsv", rel.to_string_lossy().replace('/', "_")));
        let mut answered: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        // Who sent DNS responses: tshark's `dns.a` lists the addresses of every section, and a
        // resolver's own address is often glue in the additional section (a name server's
        // record), not an answer to the question.
        let mut resolvers: BTreeSet<IpAddr> = BTreeSet::new();
        if let Ok(text) = std::fs::read_to_string(&tsv) {
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
            let col = |name: &str| header.iter().position(|h| *h == name);
            let (src, src6) = (col("ip.src"), col("ipv6.src"));
            let (resp, qname, a, aaaa) = (
                col("dns.flags.response"),
                col("dns.qry.name"),
                col("dns.a"),
                col("dns.aaaa"),
            );
            for line in lines {
                let f: Vec<&str> = line.split('\t').collect();
                let get = |c: Option<usize>| c.and_then(|c| f.get(c)).copied().unwrap_or("");
                if !matches!(get(resp), "1" | "True" | "true") {
                    continue;
                }
                for ip in [get(src), get(src6)] {
                    if let Ok(ip) = ip.parse::<IpAddr>() {
                        resolvers.insert(ip);
                    }
                }
                let name = get(qname).to_ascii_lowercase();
                for ip in get(a).split(',').chain(get(aaaa).split(',')) {
                    if let Ok(ip) = ip.parse::<IpAddr>() {
                        answered.entry(ip).or_default().insert(name.clone());
                    }
                }
            }
        }
        let mut checked = 0;
        for r in &records {
            let Some(ip) = r
                .pointer("/destination/ip")
                .and_then(Value::as_str)
                .and_then(|i| i.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let Some(names) = answered.get(&ip) else {
                continue;
            };
            checked += 1;
            let ours: BTreeSet<String> = r
                .pointer("/destination/names")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            for n in names.difference(&ours) {
                let why = if resolvers.contains(&ip) {
                    "additional-section glue: the resolver's own address, not an answer"
                } else {
                    ok = false;
                    "UNEXPLAINED"
                };
                diffs.push(format!("dns: the flow to {ip} lacks `{n}` ({why})"));
            }
        }
        let dns_diffs = diffs.iter().filter(|d| d.starts_with("dns")).count();
        println!(
            "| {} | {} / {} | {} | {} | {} |",
            rel.display(),
            mine.len(),
            theirs.len(),
            if diffs.len() == dns_diffs {
                "none".to_owned()
            } else {
                diffs
                    .iter()
                    .filter(|d| !d.starts_with("dns"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            checked,
            dns_diffs
        );
        if !ours.status.success() {
            println!(
                "  note: exit {:?}: {}",
                ours.status.code(),
                String::from_utf8_lossy(&ours.stderr).trim()
            );
        }
        for d in diffs.iter().filter(|d| d.starts_with("dns")) {
            println!("  {d}");
        }
    }
    Ok(ok)
}
