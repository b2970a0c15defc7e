//! `cargo xtask connlist`: `netpol connectivity` against netpol-analyzer's golden connection
//! lists (a dev check, like `corpus`; needs ../shared/corpus).
//!
//! For every `<corpus>/netpol-analyzer/expected/connlist/<case>_connlist_output.{txt,json,csv,md}`
//! whose folder `tests/<case>` exists, the library runs `netpol connectivity tests/<case>
//! --format F` and the connections of both are compared as sets of `src => dst : conn` lines
//! (JSON objects, CSV records and Markdown rows are read into that shape first). A
//! `<case>_focus_workload_<W>` output is checked with `--focus-workload` when exactly one
//! reading of `<W>` (`W`, or `ns/name` for `ns_name`) names a workload of the case; the others
//! (focus directions, several workloads, `{ingress-controller}`) are skipped and listed.
//!
//! Every line only one side has is explained by what the check computes from the case, or is
//! unexplained (and the check fails):
//!
//! * `host-net`: it names a workload whose pods run on the host network (`hostNetwork: true`
//!   in the case's manifests): Cilium does not enforce pod policies there, such pods carry the
//!   node's identity;
//! * `ingress`: it comes from `{ingress-controller}`, netpol-analyzer's analysis of Ingress and
//!   Route objects, which netpol does not do;
//! * `all-conn`: ours says `SCTP 1-65535,TCP 1-65535,UDP 1-65535` where theirs says `All
//!   Connections` for the same pair: a Cilium port rule never lets ICMP through, and
//!   netpol-analyzer's `All Connections` means TCP, UDP and SCTP.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use netpol_compiler::cli::{Status, run_args};
use netpol_compiler::document::files::Disk;
use serde_json::Value;

use crate::crd::objects;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The corpus directory [default: ../shared/corpus, from the workspace root]
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
}

/// What netpol prints for a pair whose every port is open on TCP, UDP and SCTP but not ICMP.
const PORTS_ONLY: &str = "SCTP 1-65535,TCP 1-65535,UDP 1-65535";
/// What netpol-analyzer prints for the same pair.
const ALL: &str = "All Connections";
/// netpol-analyzer's peer for the Ingress and Route objects of a case.
const INGRESS_CONTROLLER: &str = "{ingress-controller}";

/// Why a line only one side has is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    HostNetwork,
    IngressController,
    PortsOnly,
    Unexplained,
}

const FORMATS: [&str; 4] = ["txt", "json", "csv", "md"];

/// One expected output to compare.
#[derive(Debug)]
struct Golden {
    case: String,
    focus: Option<String>,
    format: &'static str,
    path: PathBuf,
}

/// The comparison of one expected output.
#[derive(Debug, Default)]
struct Outcome {
    expected: usize,
    ours: usize,
    equal: usize,
    /// Lines only one side has: (`-` theirs / `+` ours, line, why).
    differences: Vec<(char, String, Kind)>,
}

impl Outcome {
    fn count(&self, kind: Kind) -> usize {
        self.differences.iter().filter(|d| d.2 == kind).count()
    }
}

pub fn run(args: &Args) -> Result<bool> {
    let root = args
        .corpus
        .clone()
        .unwrap_or_else(|| crate::workspace_root().join("../shared/corpus"));
    let expected = root.join("netpol-analyzer/expected/connlist");
    let tests = root.join("netpol-analyzer/tests");
    if !expected.is_dir() || !tests.is_dir() {
        bail!(
            "no netpol-analyzer outputs under `{}`; pass `--corpus DIR`",
            root.display()
        );
    }
    let mut goldens = Vec::new();
    let mut skipped = Vec::new();
    let mut names: Vec<String> = fs::read_dir(&expected)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in &names {
        let Some((stem, format)) = FORMATS.iter().find_map(|f| {
            name.strip_suffix(&format!("_connlist_output.{f}"))
                .map(|s| (s, *f))
        }) else {
            continue;
        };
        let (case, focus) = match stem.split_once("_focus_workload_") {
            Some((case, focus)) => (case, Some(focus)),
            None => (stem, None),
        };
        let dir = tests.join(case);
        if !dir.is_dir() {
            skipped.push((stem, format, format!("no folder `tests/{case}`")));
            continue;
        }
        let focus = match focus {
            None => None,
            Some(_) if let Err(stderr) = connectivity(&dir, "txt", None)? => {
                skipped.push((
                    stem,
                    format,
                    format!(
                        "netpol cannot read `tests/{case}`: {}",
                        first_error(&stderr)
                    ),
                ));
                continue;
            }
            Some(words) => match focus_of(&dir, words)? {
                Some(focus) => Some(focus),
                None => {
                    skipped.push((
                        stem,
                        format,
                        format!(
                            "`{words}` is no single workload of the case (a focus direction, \
                             several workloads or the ingress controller)"
                        ),
                    ));
                    continue;
                }
            },
        };
        goldens.push(Golden {
            case: case.to_owned(),
            focus,
            format,
            path: expected.join(name),
        });
    }

    let mut host_networks: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for golden in &goldens {
        let dir = tests.join(&golden.case);
        if !host_networks.contains_key(&golden.case) {
            host_networks.insert(golden.case.clone(), host_network_workloads(&dir)?);
        }
        let host = host_networks.get(&golden.case).cloned().unwrap_or_default();
        let ours = match connectivity(&dir, golden.format, golden.focus.as_deref())? {
            Ok(text) => text,
            Err(stderr) => {
                failures.push(format!("{}: {}", label(golden), first_error(&stderr)));
                continue;
            }
        };
        let theirs = fs::read_to_string(&golden.path)
            .with_context(|| format!("cannot read `{}`", golden.path.display()))?;
        let parse = |text: &str| connections(golden.format, text);
        let theirs =
            parse(&theirs).with_context(|| format!("cannot read `{}`", golden.path.display()))?;
        let ours =
            parse(&ours).with_context(|| format!("cannot read ours for {}", label(golden)))?;
        outcomes.push((golden, compare(&theirs, &ours, &host)));
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let width = goldens.iter().map(|g| label(g).len()).max().unwrap_or(4);
    writeln!(
        out,
        "{:width$}  {:>4}  {:>8}  {:>4}  {:>5}  {:>8}  {:>7}  {:>8}  {:>11}",
        "case",
        "fmt",
        "expected",
        "ours",
        "equal",
        "host-net",
        "ingress",
        "all-conn",
        "unexplained"
    )?;
    let mut totals = [0usize; 7];
    for (golden, o) in &outcomes {
        let row = [
            o.expected,
            o.ours,
            o.equal,
            o.count(Kind::HostNetwork),
            o.count(Kind::IngressController),
            o.count(Kind::PortsOnly),
            o.count(Kind::Unexplained),
        ];
        for (total, n) in totals.iter_mut().zip(row) {
            *total += n;
        }
        let [expected, ours, equal, host, ingress, ports, unexplained] = row;
        writeln!(
            out,
            "{:width$}  {:>4}  {expected:>8}  {ours:>4}  {equal:>5}  {host:>8}  {ingress:>7}  {ports:>8}  {unexplained:>11}",
            label(golden),
            golden.format,
        )?;
    }
    let [expected, ours, equal, host, ingress, ports, unexplained] = totals;
    writeln!(
        out,
        "{:width$}  {:>4}  {expected:>8}  {ours:>4}  {equal:>5}  {host:>8}  {ingress:>7}  {ports:>8}  {unexplained:>11}",
        format!("total ({} outputs)", outcomes.len()),
        "",
    )?;
    writeln!(
        out,
        "host-net: names a workload on the host network (Cilium does not enforce pod policies \
         there); ingress: netpol-analyzer's Ingress/Route analysis; all-conn: ours `{PORTS_ONLY}` \
         where theirs `{ALL}` (no ICMP through a port rule)"
    )?;
    if !skipped.is_empty() {
        writeln!(out, "skipped {} outputs:", skipped.len())?;
        // One line per output name, its formats together.
        let mut grouped: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
        for (stem, format, reason) in &skipped {
            grouped.entry((stem, reason)).or_default().push(format);
        }
        for ((stem, reason), formats) in grouped {
            writeln!(out, "  {stem} ({}): {reason}", formats.join(", "))?;
        }
    }
    if unexplained > 0 {
        writeln!(out, "unexplained (- only theirs, + only ours):")?;
        for (golden, o) in &outcomes {
            for (side, line, kind) in &o.differences {
                if *kind == Kind::Unexplained {
                    writeln!(
                        out,
                        "  {} ({}): {side} {line}",
                        label(golden),
                        golden.format
                    )?;
                }
            }
        }
    }
    for f in &failures {
        writeln!(out, "FAILED: {f}")?;
    }
    Ok(unexplained == 0 && failures.is_empty())
}

fn label(golden: &Golden) -> String {
    match &golden.focus {
        Some(focus) => format!("{} --focus-workload {focus}", golden.case),
        None => golden.case.clone(),
    }
}

/// `netpol connectivity DIR --format F [--focus-workload W]`, through the library: its stdout,
/// or its stderr when it fails.
fn connectivity(dir: &Path, format: &str, focus: Option<&str>) -> Result<Result<String, String>> {
    let mut args = vec![
        "netpol".to_owned(),
        "connectivity".to_owned(),
        dir.display().to_string(),
        "--format".to_owned(),
        format.to_owned(),
    ];
    if let Some(focus) = focus {
        args.push("--focus-workload".to_owned());
        args.push(focus.to_owned());
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = run_args(args, &Disk, &mut stdout, &mut stderr);
    if status == Status::Ok {
        Ok(Ok(String::from_utf8(stdout)?))
    } else {
        Ok(Err(String::from_utf8_lossy(&stderr).into_owned()))
    }
}

/// The first error of a failed run's stderr (human diagnostics: `  × message`).
fn first_error(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains('×') || l.starts_with("error"))
        .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or_default();
    let line = line.trim();
    line.strip_prefix('×').unwrap_or(line).trim().to_owned()
}

/// The workload `words` (from a file name) stands for: `words` itself or, with its first `_`
/// as `/`, `namespace/name`, when exactly one of them is a workload of the case.
fn focus_of(dir: &Path, words: &str) -> Result<Option<String>> {
    let mut readings = vec![words.to_owned()];
    if let Some((namespace, name)) = words.split_once('_') {
        readings.push(format!("{namespace}/{name}"));
    }
    let mut found = Vec::new();
    for reading in readings {
        if connectivity(dir, "txt", Some(&reading))?.is_ok() {
            found.push(reading);
        }
    }
    Ok(match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// The connections of an output as `src => dst : conn` lines.
fn connections(format: &str, text: &str) -> Result<Vec<String>> {
    let line = |src: &str, dst: &str, conn: &str| format!("{src} => {dst} : {conn}");
    let mut lines = Vec::new();
    match format {
        "txt" => lines.extend(
            text.lines()
                .filter(|l| l.contains(" => "))
                .map(|l| l.trim().to_owned()),
        ),
        "json" => {
            let items: Vec<Value> = serde_json::from_str(text)?;
            for item in &items {
                let field = |key: &str| {
                    item.get(key)
                        .and_then(Value::as_str)
                        .with_context(|| format!("no `{key}` in {item}"))
                };
                lines.push(line(field("src")?, field("dst")?, field("conn")?));
            }
        }
        "csv" => {
            for record in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
                match csv_fields(record).as_slice() {
                    [src, dst, conn] => lines.push(line(src, dst, conn)),
                    _ => bail!("not a `src,dst,conn` record: {record}"),
                }
            }
        }
        "md" => {
            // The header and the `|---|` line first.
            for row in text.lines().skip(2).filter(|l| l.starts_with('|')) {
                let cells: Vec<&str> = row
                    .trim()
                    .trim_matches('|')
                    .split(" | ")
                    .map(str::trim)
                    .collect();
                match cells.as_slice() {
                    [src, dst, conn] => lines.push(line(src, dst, conn)),
                    _ => bail!("not a `| src | dst | conn |` row: {row}"),
                }
            }
        }
        _ => bail!("unknown format `{format}`"),
    }
    lines.sort();
    Ok(lines)
}

/// The fields of one CSV record (quotes as Go's `encoding/csv` writes them).
fn csv_fields(record: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = record.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The lines only one side has, each with its explanation. `host`: the `namespace/name` of
/// the case's host-network workloads.
fn compare(theirs: &[String], ours: &[String], host: &BTreeSet<String>) -> Outcome {
    let count = |lines: &[String]| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for l in lines {
            *counts.entry(l.clone()).or_default() += 1;
        }
        counts
    };
    let (theirs_count, ours_count) = (count(theirs), count(ours));
    let mut outcome = Outcome {
        expected: theirs.len(),
        ours: ours.len(),
        ..Outcome::default()
    };
    let mut only = Vec::new();
    for (side, mine, other) in [
        ('-', &theirs_count, &ours_count),
        ('+', &ours_count, &theirs_count),
    ] {
        for (line, n) in mine {
            let m = other.get(line).copied().unwrap_or(0);
            if side == '-' {
                outcome.equal += (*n).min(m);
            }
            for _ in m..*n {
                only.push((side, line.clone()));
            }
        }
    }
    // The pairs whose connections differ only as `All Connections` against every port of
    // TCP, UDP and SCTP.
    let conns = |side: char| -> BTreeMap<(String, String), String> {
        only.iter()
            .filter(|(s, _)| *s == side)
            .filter_map(|(_, l)| split(l))
            .map(|(src, dst, conn)| ((src.to_owned(), dst.to_owned()), conn.to_owned()))
            .collect()
    };
    let (theirs_only, ours_only) = (conns('-'), conns('+'));
    let ports_only = |pair: &(String, String)| {
        theirs_only.get(pair).map(String::as_str) == Some(ALL)
            && ours_only.get(pair).map(String::as_str) == Some(PORTS_ONLY)
    };
    let workload = |peer: &str| peer.split_once('[').map_or(peer, |(w, _)| w).to_owned();
    for (side, line) in only {
        let kind = match split(&line) {
            None => Kind::Unexplained,
            Some((src, dst, _)) if src == INGRESS_CONTROLLER || dst == INGRESS_CONTROLLER => {
                Kind::IngressController
            }
            Some((src, dst, _))
                if host.contains(&workload(src)) || host.contains(&workload(dst)) =>
            {
                Kind::HostNetwork
            }
            Some((src, dst, _)) if ports_only(&(src.to_owned(), dst.to_owned())) => Kind::PortsOnly,
            Some(_) => Kind::Unexplained,
        };
        outcome.differences.push((side, line, kind));
    }
    outcome
}

/// `src => dst : conn` into its parts.
fn split(line: &str) -> Option<(&str, &str, &str)> {
    let (src, rest) = line.split_once(" => ")?;
    let (dst, conn) = rest.split_once(" : ")?;
    Some((src, dst, conn))
}

/// The `namespace/name` of the workloads whose pods run on the host network, as
/// netpol-analyzer names them: a Pod by its owner (when it has one) or itself, a workload by
/// its name.
fn host_network_workloads(dir: &Path) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    for file in files {
        let text = fs::read_to_string(&file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let Ok(documents): Result<Vec<Value>, _> = serde_saphyr::from_str_multiple(&text) else {
            continue;
        };
        for document in &documents {
            for object in objects(document) {
                let host_network =
                    |pointer: &str| object.pointer(pointer).and_then(Value::as_bool) == Some(true);
                if !host_network("/spec/hostNetwork")
                    && !host_network("/spec/template/spec/hostNetwork")
                    && !host_network("/spec/jobTemplate/spec/template/spec/hostNetwork")
                {
                    continue;
                }
                let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
                let namespace = text("/metadata/namespace").unwrap_or("default");
                let owner = text("/metadata/ownerReferences/0/name");
                let Some(name) = owner.or_else(|| text("/metadata/name")) else {
                    continue;
                };
                found.insert(format!("{namespace}/{name}"));
            }
        }
    }
    Ok(found)
}

/// Every `*.yaml`, `*.yml` and `*.json` file under `dir`, in path order.
pub(crate) fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs::DirEntry::path);
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn differences_are_explained_by_what_the_case_holds() {
        let theirs = lines(&[
            "a/x[Deployment] => a/y[Deployment] : TCP 80",
            "a/x[Deployment] => a/z[Deployment] : All Connections",
            "kube-system/proxy[DaemonSet] => a/y[Deployment] : All Connections",
            "{ingress-controller} => a/y[Deployment] : TCP 80",
            "a/y[Deployment] => a/x[Deployment] : TCP 81",
        ]);
        let ours = lines(&[
            "a/x[Deployment] => a/y[Deployment] : TCP 80",
            "a/x[Deployment] => a/z[Deployment] : SCTP 1-65535,TCP 1-65535,UDP 1-65535",
            "a/y[Deployment] => a/x[Deployment] : TCP 82",
        ]);
        let host = BTreeSet::from(["kube-system/proxy".to_owned()]);
        let o = compare(&theirs, &ours, &host);
        assert_eq!((o.expected, o.ours, o.equal), (5, 3, 1));
        assert_eq!(o.count(Kind::HostNetwork), 1);
        assert_eq!(o.count(Kind::IngressController), 1);
        assert_eq!(o.count(Kind::PortsOnly), 2);
        assert_eq!(o.count(Kind::Unexplained), 2);
    }

    #[test]
    fn csv_records_are_read_as_go_quotes_them() {
        assert_eq!(csv_fields("a,b,\"TCP 1,UDP 2\""), ["a", "b", "TCP 1,UDP 2"]);
        assert_eq!(csv_fields("a,\"b\"\"c\",d"), ["a", "b\"c", "d"]);
    }
}
