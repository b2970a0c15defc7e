//! `netpol drift`: what the policies declare and the flows never use, and what the flows do
//! that the policies do not declare.
//!
//! ```text
//! flows ──verify's Judge──> decisions ──count by decision──> hits per rule item
//!   (`cnp/media/sonarr spec.ingress[0]`) and per profile declaration (`netpol.dev/source`)
//!   ──> unused allow rules · dropped flows · flows allowed only by a broad rule (world, all,
//!       cluster, 0.0.0.0/0, every peer) · the window (first and last flow, nodes)
//! ```
//!
//! A rule is used when it allows a flow of the window at the point that decides it (every
//! matching allow rule counts, as each would let the flow through alone). An observation is
//! a sample: a rule unused in a day may be the monthly backup's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::diagnostic::source::SourceMap;
use crate::engine::entry::{EntryId, L3, Origin, PeerMatch};
use crate::engine::eval::{Decision, Point, Reason};
use crate::engine::index::{Evaluator, Index};
use crate::flow::Flow;
use crate::report::comment::{self, COMMENT_LIMIT, cell};
use crate::report::verify::{Judge, PointReport};

/// The flows of the window, as they are judged.
pub struct Collector<'a> {
    judge: Judge<Evaluator<'a>>,
    /// Flows per distinct decision (by the addresses of its points, which it holds).
    decisions: FxHashMap<(usize, usize), (Decision, u64)>,
    /// Dropped or broadly allowed flows, by source, destination, port and decision.
    shown: BTreeMap<(String, String, String, usize, usize), u64>,
    flows: u64,
    first: Option<(TimeKey, String)>,
    last: Option<(TimeKey, String)>,
    nodes: BTreeMap<Arc<str>, u64>,
}

impl std::fmt::Debug for Collector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("flows", &self.flows)
            .field("decisions", &self.decisions.len())
            .finish_non_exhaustive()
    }
}

/// An RFC 3339 time as seconds since 1970 and nanoseconds, for ordering.
type TimeKey = (i64, u32);

/// `2026-01-01T10:00:00.5+01:00` → seconds since the epoch and nanoseconds.
fn time_key(s: &str) -> Option<TimeKey> {
    let num = |a: usize, b: usize| -> Option<i64> { s.get(a..b)?.parse().ok() };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let rest = s.get(19..)?;
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (r.get(..end)?, r.get(end..)?)
        }
        None => ("", rest),
    };
    let mut nanos: u32 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        let digit = c.to_digit(10)?;
        nanos += digit * 10u32.pow(8 - u32::try_from(i).ok()?);
    }
    let offset = match zone {
        "Z" | "z" => 0,
        z => {
            let sign = match z.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let zh: i64 = z.get(1..3)?.parse().ok()?;
            let zm: i64 = z.get(4..6)?.parse().ok()?;
            sign * (zh * 3600 + zm * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
}

impl<'a> Collector<'a> {
    pub fn new(evaluator: Evaluator<'a>) -> Self {
        Self {
            judge: Judge::new(evaluator),
            decisions: FxHashMap::default(),
            shown: BTreeMap::new(),
            flows: 0,
            first: None,
            last: None,
            nodes: BTreeMap::new(),
        }
    }

    /// Judge one flow and count it.
    pub fn push(&mut self, flow: &Flow, index: &Index) {
        let (view, judged) = self.judge.judge(flow);
        self.flows += 1;
        let d = judged.decision;
        let key = (
            Arc::as_ptr(&d.egress) as usize,
            Arc::as_ptr(&d.ingress) as usize,
        );
        let broad = d.allowed() && (only_broad(&d.egress, index) || only_broad(&d.ingress, index));
        if !d.allowed() || broad {
            *self
                .shown
                .entry((
                    view.src.display(),
                    view.dst.display(),
                    view.port_text(),
                    key.0,
                    key.1,
                ))
                .or_default() += 1;
        }
        self.decisions.entry(key).or_insert((d, 0)).1 += 1;
        if let Some(t) = flow.time.as_deref()
            && let Some(k) = time_key(t)
        {
            if self.first.as_ref().is_none_or(|(f, _)| k < *f) {
                self.first = Some((k, t.to_owned()));
            }
            if self.last.as_ref().is_none_or(|(l, _)| k > *l) {
                self.last = Some((k, t.to_owned()));
            }
        }
        if let Some(node) = &flow.node {
            *self.nodes.entry(node.clone()).or_default() += 1;
        }
    }

    /// The report.
    pub fn finish(self, index: &Index, sources: &SourceMap) -> Report {
        let mut hits: FxHashMap<EntryId, u64> = FxHashMap::default();
        let mut points: FxHashMap<(usize, usize), (bool, String, String)> = FxHashMap::default();
        for (key, (d, n)) in &self.decisions {
            for p in [&d.egress, &d.ingress] {
                if p.reason == Some(Reason::AllowedByRule) {
                    for id in &p.allowed_by {
                        *hits.entry(*id).or_default() += n;
                    }
                }
            }
            let summary = |p: &Point| PointReport::new(index, sources, p).summary();
            points.insert(*key, (d.allowed(), summary(&d.egress), summary(&d.ingress)));
        }
        // Rule items (`spec.ingress[0]`) and their hits: an item is used when one of its
        // entries (a port block, an ICMP block) is.
        let mut items: BTreeMap<(String, String), Item> = BTreeMap::new();
        let mut declarations: BTreeMap<String, u64> = BTreeMap::new();
        for (n, e) in index.entries.entries.iter().enumerate() {
            // Deny rules are no declaration of use; `ingress: [{}]` (what netpol writes for an
            // enforced direction with nothing allowed) allows nothing, so nothing can use it.
            let allows_nothing =
                matches!(e.l3, L3::Nothing) || (matches!(e.l3, L3::Wildcard) && e.l4.is_none());
            if e.deny || allows_nothing {
                continue;
            }
            let Ok(id) = EntryId::try_from(n) else {
                continue;
            };
            let h = hits.get(&id).copied().unwrap_or(0);
            let o = &e.origin;
            let policy = match &o.namespace {
                Some(ns) => format!("{}/{ns}/{}", o.kind.short(), o.name),
                None => format!("{}/{}", o.kind.short(), o.name),
            };
            let (file, line) = sources.get(o.span.source).map_or((String::new(), 0), |f| {
                (f.name.clone(), f.line_col(o.span.offset as usize).0)
            });
            let item = items
                .entry((policy.clone(), rule_item(&o.path)))
                .or_insert_with(|| Item {
                    policy,
                    rule: rule_item(&o.path),
                    file,
                    line,
                    declared_at: declared_at(o),
                    hits: 0,
                });
            item.hits += h;
            for d in declared_at(o) {
                *declarations.entry(d).or_default() += h;
            }
        }
        let rules = items.len();
        let unused: Vec<Item> = items.into_values().filter(|i| i.hits == 0).collect();
        let mut dropped = Vec::new();
        let mut broad = Vec::new();
        for ((source, destination, port, e, i), flows) in self.shown {
            let Some((allowed, egress, ingress)) = points.get(&(e, i)) else {
                continue;
            };
            let row = Observed {
                source,
                destination,
                port,
                flows,
                egress: egress.clone(),
                ingress: ingress.clone(),
            };
            if *allowed {
                broad.push(row);
            } else {
                dropped.push(row);
            }
        }
        Report {
            window: Window {
                flows: self.flows,
                first: self.first.map(|(_, t)| t),
                last: self.last.map(|(_, t)| t),
                nodes: self
                    .nodes
                    .into_iter()
                    .map(|(n, f)| Node {
                        node: n.to_string(),
                        flows: f,
                    })
                    .collect(),
            },
            rules,
            unused,
            declarations: declarations
                .into_iter()
                .map(|(source, hits)| Declaration { source, hits })
                .collect(),
            dropped,
            broad,
        }
    }
}

/// Whether a point allows only through broad rules: every allow entry that matched lets in
/// (or out) every peer, `world`, `cluster` or `0.0.0.0/0`.
fn only_broad(p: &Point, index: &Index) -> bool {
    p.reason == Some(Reason::AllowedByRule)
        && !p.allowed_by.is_empty()
        && p.allowed_by
            .iter()
            .all(|id| index.entry(*id).is_some_and(|e| is_broad(&e.l3)))
}

fn is_broad(l3: &L3) -> bool {
    match l3 {
        L3::Wildcard => true,
        L3::Nothing => false,
        L3::Peers(peers) => peers.iter().any(|p| match p {
            PeerMatch::Any => true,
            PeerMatch::Cidr { net, .. } => net.prefix_len() == 0,
            PeerMatch::Labels(sel) => {
                let text = sel.to_string();
                text == "{}"
                    || text.contains("reserved:world")
                    || (text.contains(crate::engine::identity::CLUSTER) && !text.contains(", "))
            }
            PeerMatch::Fqdn(_) | PeerMatch::Unresolved(_) => false,
        }),
    }
}

/// The rule item of an entry's path: `spec.egress[1].toPorts[0]` → `spec.egress[1]`.
fn rule_item(path: &str) -> String {
    let at = path.find("gress").unwrap_or(0);
    match path.get(at..).and_then(|rest| rest.find(']')) {
        Some(end) => path.get(..at + end + 1).unwrap_or(path).to_owned(),
        None => path.to_owned(),
    }
}

/// The profile statements a compiled rule comes from: `netpol.dev/rule-sources` writes
/// `profiles/media.yaml:8,13 profiles/b.yaml:2` (one place per file, its lines), an object
/// without it names its declaration (`netpol.dev/source`). Each statement gets the rule's hits.
fn declared_at(o: &Origin) -> Vec<String> {
    let mut out = Vec::new();
    for place in o.profile.iter().flat_map(|p| p.split_whitespace()) {
        match place.rsplit_once(':') {
            Some((file, lines)) if !file.is_empty() => {
                out.extend(
                    lines
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .map(|line| format!("{file}:{line}")),
                );
            }
            _ => out.push(place.to_owned()),
        }
    }
    out
}

/// A rule item, and how many flows it allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `cnp/media/sonarr`.
    pub policy: String,
    /// `spec.ingress[0]`.
    pub rule: String,
    pub file: String,
    pub line: usize,
    /// The profile declarations it was compiled from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub declared_at: Vec<String>,
    pub hits: u64,
}

/// A profile declaration (`profiles/media.yaml:12`) and the flows its rules allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Declaration {
    pub source: String,
    pub hits: u64,
}

/// Flows of one connection that the policies do not declare (dropped, or allowed only by a
/// broad rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub source: String,
    pub destination: String,
    pub port: String,
    pub flows: u64,
    pub egress: String,
    pub ingress: String,
}

/// What the flows cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    pub flows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// The nodes that recorded them, when the records say.
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub node: String,
    pub flows: u64,
}

/// The drift of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub window: Window,
    /// Allow rule items in the policies.
    pub rules: usize,
    /// Those no flow used.
    pub unused: Vec<Item>,
    /// Every profile declaration that compiled rules name, with its hits (0: never used).
    pub declarations: Vec<Declaration>,
    /// Flows the policies drop.
    pub dropped: Vec<Observed>,
    /// Flows only a broad rule allows.
    pub broad: Vec<Observed>,
}

impl Report {
    /// Something drifted: an unused rule, or flows the policies do not declare.
    pub fn drifted(&self) -> bool {
        !self.unused.is_empty() || !self.dropped.is_empty() || !self.broad.is_empty()
    }

    fn flows(rows: &[Observed]) -> u64 {
        rows.iter().map(|r| r.flows).sum()
    }

    /// One line: the window and what drifted.
    pub fn headline(&self) -> String {
        let w = &self.window;
        let mut line = format!("{} flow{}", w.flows, if w.flows == 1 { "" } else { "s" });
        if let (Some(first), Some(last)) = (&w.first, &w.last) {
            let _ = write!(line, " from {first} to {last}");
        }
        if !w.nodes.is_empty() {
            let nodes: Vec<&str> = w.nodes.iter().map(|n| n.node.as_str()).collect();
            let _ = write!(
                line,
                " ({} node{}: {})",
                nodes.len(),
                if nodes.len() == 1 { "" } else { "s" },
                nodes.join(", ")
            );
        }
        let unused_decl = self.declarations.iter().filter(|d| d.hits == 0).count();
        let _ = write!(
            line,
            ": {} of {} allow rules unused",
            self.unused.len(),
            self.rules
        );
        if !self.declarations.is_empty() {
            let _ = write!(
                line,
                " ({unused_decl} of {} profile declarations)",
                self.declarations.len()
            );
        }
        let _ = write!(
            line,
            ", {} dropped ({} flows), {} allowed only by a broad rule ({} flows)",
            comment::counted(self.dropped.len(), "connection", "connections"),
            Self::flows(&self.dropped),
            comment::counted(self.broad.len(), "connection", "connections"),
            Self::flows(&self.broad)
        );
        line
    }
}

fn item_line(i: &Item) -> String {
    let mut s = format!("{} {} ({}:{}", i.policy, i.rule, i.file, i.line);
    if !i.declared_at.is_empty() {
        let _ = write!(s, ", from {}", i.declared_at.join(", "));
    }
    s.push(')');
    s
}

/// The text report.
pub fn render_text(r: &Report) -> String {
    let mut out = format!("netpol drift: {}\n", r.headline());
    if !r.unused.is_empty() {
        out.push_str("\nAllow rules no flow used:\n");
        for i in &r.unused {
            let _ = writeln!(out, "  {}", item_line(i));
        }
    }
    let unused: Vec<&Declaration> = r.declarations.iter().filter(|d| d.hits == 0).collect();
    if !unused.is_empty() {
        out.push_str("\nProfile declarations no flow used:\n");
        for d in unused {
            let _ = writeln!(out, "  {}", d.source);
        }
    }
    for (title, rows) in [
        ("Observed and dropped (not declared)", &r.dropped),
        ("Observed and allowed only by a broad rule", &r.broad),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}:");
        for o in rows {
            let _ = writeln!(
                out,
                "  {} -> {} {}  x{}\n    egress:  {}\n    ingress: {}",
                o.source, o.destination, o.port, o.flows, o.egress, o.ingress
            );
        }
    }
    out
}

/// The JSON report.
pub fn render_json(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).unwrap_or_default();
    s.push('\n');
    s
}

/// The first line of the Markdown report: lets a workflow find and update its comment.
pub const MARKER: &str = "<!-- netpol-drift -->";

/// The Markdown report, for a pull-request or issue comment: a one-line summary, then the
/// unused rules and the undeclared flows in folded tables, under [`COMMENT_LIMIT`] (what does
/// not fit is counted).
pub fn render_markdown(r: &Report) -> String {
    let mut out = format!("{MARKER}\n");
    let icon = if r.drifted() { "⚠️" } else { "✅" };
    let _ = writeln!(out, "### {icon} netpol drift: {}\n", cell(&r.headline()));
    let mut left_out = 0;
    let mut table = |out: &mut String, title: String, head: &str, rows: Vec<String>| {
        if rows.is_empty() {
            return;
        }
        let mut block = String::new();
        comment::open_details(&mut block, &title, false);
        block.push_str(head);
        let reserve = comment::CLOSE_DETAILS.len() + comment::NOTE_ROOM;
        if !comment::fits(out.len(), block.len(), reserve) {
            left_out += rows.len();
            return;
        }
        let mut shown = 0;
        for row in &rows {
            if !comment::fits(out.len() + block.len(), row.len(), reserve) {
                break;
            }
            block.push_str(row);
            shown += 1;
        }
        left_out += rows.len() - shown;
        out.push_str(&block);
        out.push_str(comment::CLOSE_DETAILS);
        out.push('\n');
    };
    let observed_rows = |rows: &[Observed]| -> Vec<String> {
        rows.iter()
            .map(|o| {
                format!(
                    "| `{}` | `{}` | {} | {} | {} | {} |\n",
                    cell(&o.source),
                    cell(&o.destination),
                    o.port,
                    o.flows,
                    cell(&o.egress),
                    cell(&o.ingress)
                )
            })
            .collect()
    };
    const OBSERVED: &str =
        "| source | destination | port | flows | egress | ingress |\n|---|---|---|---|---|---|\n";
    table(
        &mut out,
        format!(
            "Observed and dropped ({})",
            comment::counted(r.dropped.len(), "connection", "connections")
        ),
        OBSERVED,
        observed_rows(&r.dropped),
    );
    table(
        &mut out,
        format!(
            "Observed and allowed only by a broad rule ({})",
            comment::counted(r.broad.len(), "connection", "connections")
        ),
        OBSERVED,
        observed_rows(&r.broad),
    );
    table(
        &mut out,
        format!("Allow rules no flow used ({})", r.unused.len()),
        "| policy | rule | file | from |\n|---|---|---|---|\n",
        r.unused
            .iter()
            .map(|i| {
                format!(
                    "| `{}` | `{}` | `{}:{}` | {} |\n",
                    cell(&i.policy),
                    cell(&i.rule),
                    cell(&i.file),
                    i.line,
                    cell(&i.declared_at.join(", "))
                )
            })
            .collect(),
    );
    let unused: BTreeSet<&str> = r
        .declarations
        .iter()
        .filter(|d| d.hits == 0)
        .map(|d| d.source.as_str())
        .collect();
    table(
        &mut out,
        format!("Profile declarations no flow used ({})", unused.len()),
        "| declaration |\n|---|\n",
        unused
            .iter()
            .map(|d| format!("| `{}` |\n", cell(d)))
            .collect(),
    );
    if left_out > 0 {
        let _ = writeln!(
            out,
            "\n{left_out} rows are not shown: a comment holds at most {COMMENT_LIMIT} characters. Run `netpol drift` locally for the whole report."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_order_across_precisions_and_offsets() {
        let k = |s| time_key(s).unwrap_or_default();
        assert!(k("2026-01-01T10:00:00Z") < k("2026-01-01T10:00:00.5Z"));
        assert_eq!(k("2026-01-01T11:00:00+01:00"), k("2026-01-01T10:00:00Z"));
        assert_eq!(k("1970-01-01T00:00:01Z"), (1, 0));
        assert_eq!(k("2026-03-01T00:00:00.000000001Z").1, 1);
        assert!(time_key("yesterday").is_none());
    }

    #[test]
    fn each_statement_of_a_rule_is_a_declaration() {
        let origin = |profile: Option<&str>| Origin {
            policy: 0,
            kind: crate::engine::policy::PolicyKind::Cnp,
            name: "sonarr".to_owned(),
            namespace: Some("media".to_owned()),
            path: "spec.ingress[0]".to_owned(),
            span: crate::diagnostic::source::Span::default(),
            profile: profile.map(str::to_owned),
        };
        assert_eq!(
            declared_at(&origin(Some(
                "profiles/media.yaml:8,13 catalog/traefik.yaml:43"
            ))),
            [
                "profiles/media.yaml:8",
                "profiles/media.yaml:13",
                "catalog/traefik.yaml:43"
            ]
        );
        assert_eq!(
            declared_at(&origin(Some("profiles/media.yaml:3"))),
            ["profiles/media.yaml:3"]
        );
        assert!(declared_at(&origin(None)).is_empty());
    }

    #[test]
    fn rule_items_are_the_item_of_the_path() {
        assert_eq!(rule_item("spec.egress[1].toPorts[0]"), "spec.egress[1]");
        assert_eq!(
            rule_item("specs[2].ingressDeny[0]"),
            "specs[2].ingressDeny[0]"
        );
        assert_eq!(rule_item("spec.ingress[3]"), "spec.ingress[3]");
    }
}
