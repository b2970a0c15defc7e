//! `netpol verify`: judge recorded flows against policies, and report.
//!
//! Reply records are matched to their connection (cilium-semantics.md §10.1 step 1, pitfall
//! 12): a reply takes the decision of the connection it answers, judged in the initiating
//! direction, and is never judged alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::entry::EntryId;
use crate::eval::{Decision, Direction, Point, Reason};
use crate::flow::{Flow, FlowSet};
use crate::index::{Evaluator, Index};
use crate::source::SourceMap;

/// The decision for one input record.
#[derive(Debug, Clone)]
pub struct Judged {
    pub index: usize,
    /// The record is a reply; judged as the connection it answers.
    pub reply: bool,
    /// Index of the record whose decision this reuses (an earlier record of the connection).
    pub same_as: Option<usize>,
    /// Position in [`Verification::decisions`].
    pub decision: usize,
}

/// All decisions of a run.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub judged: Vec<Judged>,
    pub decisions: Vec<(Flow, Decision)>,
}

impl Verification {
    pub fn denied(&self) -> usize {
        self.judged
            .iter()
            .filter(|j| {
                self.decisions
                    .get(j.decision)
                    .is_some_and(|(_, d)| !d.allowed())
            })
            .count()
    }
}

/// Judge every flow.
pub fn judge(flows: &[Flow], evaluator: &mut Evaluator<'_>) -> Verification {
    let mut out = Verification::default();
    type Key = (
        Option<crate::eval::Proto>,
        Option<std::net::IpAddr>,
        u16,
        Option<std::net::IpAddr>,
        u16,
    );
    let mut connections: FxHashMap<Key, (usize, usize)> = FxHashMap::default();
    for flow in flows {
        let reply = flow.is_reply();
        let judged_flow = if reply { flow.reversed() } else { flow.clone() };
        let key = judged_flow.connection();
        let has_key = judged_flow.src.peer.ip.is_some() && judged_flow.dst.peer.ip.is_some();
        if reply
            && has_key
            && let Some((first, decision)) = connections.get(&key)
        {
            out.judged.push(Judged {
                index: flow.index,
                reply,
                same_as: Some(*first),
                decision: *decision,
            });
            continue;
        }
        let decision = evaluator.decide(&judged_flow.query());
        let at = out.decisions.len();
        out.decisions.push((judged_flow, decision));
        if has_key {
            connections.entry(key).or_insert((flow.index, at));
        }
        out.judged.push(Judged {
            index: flow.index,
            reply,
            same_as: None,
            decision: at,
        });
    }
    out
}

/// A rule reference in reports: policy, path and place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RuleRef {
    pub policy: String,
    pub rule: String,
    pub file: String,
    pub line: usize,
    /// For policies `netpol compile` wrote: the profile they come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl RuleRef {
    pub fn new(index: &Index, sources: &SourceMap, id: EntryId) -> Option<Self> {
        let e = index.entry(id)?;
        let file = sources.get(e.origin.span.source)?;
        let (line, _) = file.line_col(e.origin.span.offset as usize);
        let o = &e.origin;
        Some(Self {
            policy: match &o.namespace {
                Some(ns) => format!("{}/{ns}/{}", o.kind.short(), o.name),
                None => format!("{}/{}", o.kind.short(), o.name),
            },
            rule: o.path.clone(),
            file: file.path.display().to_string(),
            line,
            profile: o.profile.clone(),
        })
    }
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}:{}",
            self.policy, self.rule, self.file, self.line
        )?;
        if let Some(p) = &self.profile {
            write!(f, ", from {p}")?;
        }
        f.write_str(")")
    }
}

/// One direction of a decision, as reports print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointReport {
    pub enforced: bool,
    pub verdict: &'static str,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_by: Vec<RuleRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_by: Vec<RuleRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl PointReport {
    pub fn new(index: &Index, sources: &SourceMap, p: &Point) -> Self {
        let refs = |ids: &[EntryId]| {
            let mut v: Vec<RuleRef> = ids
                .iter()
                .filter_map(|id| RuleRef::new(index, sources, *id))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let reason = p.reason.unwrap_or(Reason::NotAnEndpoint);
        Self {
            enforced: !matches!(
                reason,
                Reason::NotAnEndpoint | Reason::NoPolicy | Reason::HostLabel
            ),
            verdict: if p.allows() { "allowed" } else { "denied" },
            reason,
            allowed_by: refs(&p.allowed_by),
            denied_by: refs(&p.denied_by),
            notes: p.notes.clone(),
        }
    }

    /// One line: `default deny: no rule allows it`, `allowed by cnp/… (file:12)`.
    pub fn summary(&self) -> String {
        let list = |v: &[RuleRef]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.reason {
            Reason::AllowedByRule => format!("allowed by {}", list(&self.allowed_by)),
            Reason::DeniedByRule => format!("denied by {}", list(&self.denied_by)),
            r => r.describe().to_owned(),
        }
    }
}

/// One record in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct FlowReport {
    pub index: usize,
    pub line: usize,
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_at: Option<Direction>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reply: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_as: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub source: String,
    pub destination: String,
    pub protocol: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// The Service address the destination was translated from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub egress: PointReport,
    pub ingress: PointReport,
}

/// Totals of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub flows: usize,
    pub allowed: usize,
    pub denied: usize,
    pub replies: usize,
    pub policies: usize,
    pub skipped_lines: BTreeMap<String, usize>,
}

fn proto_text(flow: &Flow) -> String {
    flow.proto.map_or_else(|| "?".to_owned(), |p| p.to_string())
}

/// `443/tcp`, `icmp/8`.
pub fn port_text(flow: &Flow) -> String {
    match flow.proto {
        Some(p) if p.is_icmp() => format!("{p}/{}", flow.port()),
        Some(p) => format!("{}/{p}", flow.port()),
        None => "?".to_owned(),
    }
}

/// The JSON report: `{"summary": …, "flows": [ … ]}`.
pub fn render_json(
    v: &Verification,
    set: &FlowSet,
    index: &Index,
    sources: &SourceMap,
    policies: usize,
) -> String {
    let mut out = String::with_capacity(256 * v.judged.len() + 256);
    let summary = summary(v, set, policies);
    out.push_str("{\"summary\":");
    out.push_str(&serde_json::to_string(&summary).unwrap_or_default());
    out.push_str(",\"flows\":[");
    let mut cache: FxHashMap<usize, (PointReport, PointReport)> = FxHashMap::default();
    for (i, j) in v.judged.iter().enumerate() {
        let Some((judged_flow, decision)) = v.decisions.get(j.decision) else {
            continue;
        };
        let Some(flow) = set.flows.get(j.index) else {
            continue;
        };
        let (egress, ingress) = cache
            .entry(j.decision)
            .or_insert_with(|| {
                (
                    PointReport::new(index, sources, &decision.egress),
                    PointReport::new(index, sources, &decision.ingress),
                )
            })
            .clone();
        let report = FlowReport {
            index: j.index,
            line: flow.line,
            verdict: if decision.allowed() {
                "allowed"
            } else {
                "denied"
            },
            dropped_at: decision.dropped_at(),
            reply: j.reply,
            same_as: j.same_as,
            time: flow.time.clone(),
            source: judged_flow.src.display(),
            destination: judged_flow.dst.display(),
            protocol: proto_text(judged_flow),
            port: judged_flow.port(),
            observed: flow.observed.clone(),
            service: flow.service.clone(),
            egress,
            ingress,
        };
        if i > 0 {
            out.push(',');
        }
        out.push('\n');
        out.push_str(&serde_json::to_string(&report).unwrap_or_default());
    }
    out.push_str("\n]}\n");
    out
}

pub fn summary(v: &Verification, set: &FlowSet, policies: usize) -> Summary {
    let denied = v.denied();
    Summary {
        flows: v.judged.len(),
        allowed: v.judged.len() - denied,
        denied,
        replies: v.judged.iter().filter(|j| j.reply).count(),
        policies,
        skipped_lines: set.skipped.clone(),
    }
}

/// A group of flows with the same source, destination and port.
#[derive(Debug, Clone)]
struct Group {
    allowed: bool,
    source: String,
    destination: String,
    port: String,
    count: usize,
    egress: String,
    ingress: String,
    dropped_at: Option<Direction>,
    notes: Vec<String>,
}

fn groups(v: &Verification, index: &Index, sources: &SourceMap) -> Vec<Group> {
    type Key = (bool, String, String, String, String, String);
    let mut map: BTreeMap<Key, (usize, Option<Direction>, Vec<String>)> = BTreeMap::new();
    let mut reports: FxHashMap<usize, (String, String, Vec<String>)> = FxHashMap::default();
    for j in &v.judged {
        let Some((flow, decision)) = v.decisions.get(j.decision) else {
            continue;
        };
        let (egress, ingress, notes) = reports
            .entry(j.decision)
            .or_insert_with(|| {
                let e = PointReport::new(index, sources, &decision.egress);
                let i = PointReport::new(index, sources, &decision.ingress);
                let mut notes: Vec<String> = e.notes.iter().chain(&i.notes).cloned().collect();
                notes.sort();
                notes.dedup();
                (e.summary(), i.summary(), notes)
            })
            .clone();
        let key = (
            decision.allowed(),
            flow.src.display(),
            flow.dst.display(),
            port_text(flow),
            egress,
            ingress,
        );
        let slot = map
            .entry(key)
            .or_insert((0, decision.dropped_at(), Vec::new()));
        slot.0 += 1;
        for n in notes {
            if !slot.2.contains(&n) {
                slot.2.push(n);
            }
        }
    }
    map.into_iter()
        .map(
            |(
                (allowed, source, destination, port, egress, ingress),
                (count, dropped_at, notes),
            )| Group {
                allowed,
                source,
                destination,
                port,
                count,
                egress,
                ingress,
                dropped_at,
                notes,
            },
        )
        .collect()
}

/// `1 flow`, `2 flows`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn headline(s: &Summary) -> String {
    let skipped: usize = s.skipped_lines.values().sum();
    let policies = if s.policies == 1 {
        "1 policy".to_owned()
    } else {
        format!("{} policies", s.policies)
    };
    let mut line = format!(
        "{} against {policies}: {} would be dropped, {} allowed",
        count(s.flows, "flow"),
        s.denied,
        s.allowed
    );
    if s.replies > 0 {
        let replies = if s.replies == 1 {
            "1 reply".to_owned()
        } else {
            format!("{} replies", s.replies)
        };
        let _ = write!(line, " ({replies} judged with their connection)");
    }
    if skipped > 0 {
        let parts: Vec<String> = s
            .skipped_lines
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let _ = write!(line, "; skipped lines: {}", parts.join(", "));
    }
    line
}

/// Text report: groups by (source, destination, port), would-be drops first.
pub fn render_text(
    v: &Verification,
    set: &FlowSet,
    index: &Index,
    sources: &SourceMap,
    policies: usize,
) -> String {
    let s = summary(v, set, policies);
    let mut out = headline(&s);
    out.push_str("\n\n");
    for g in groups(v, index, sources) {
        let _ = writeln!(
            out,
            "{}  {} -> {} {}  x{}",
            if g.allowed { "ALLOWED" } else { "DROPPED" },
            g.source,
            g.destination,
            g.port,
            g.count
        );
        let _ = writeln!(out, "         egress:  {}", g.egress);
        let _ = writeln!(out, "         ingress: {}", g.ingress);
        for n in &g.notes {
            let _ = writeln!(out, "         note: {n}");
        }
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Markdown report for a pull-request comment.
pub fn render_markdown(
    v: &Verification,
    set: &FlowSet,
    index: &Index,
    sources: &SourceMap,
    policies: usize,
) -> String {
    let s = summary(v, set, policies);
    let mut out = String::new();
    let icon = if s.denied == 0 { "✅" } else { "❌" };
    let _ = writeln!(out, "### {icon} netpol verify: {}\n", headline(&s));
    let all = groups(v, index, sources);
    let (dropped, allowed): (Vec<&Group>, Vec<&Group>) = all.iter().partition(|g| !g.allowed);
    let table = |out: &mut String, groups: &[&Group]| {
        out.push_str("| source | destination | port | flows | where | decision |\n|---|---|---|---|---|---|\n");
        for g in groups {
            let (at, why) = match g.dropped_at {
                Some(Direction::Egress) => ("egress", &g.egress),
                Some(Direction::Ingress) => ("ingress", &g.ingress),
                None => ("", &g.ingress),
            };
            let why = if g.dropped_at.is_none() {
                format!(
                    "egress: {}<br>ingress: {}",
                    md_escape(&g.egress),
                    md_escape(&g.ingress)
                )
            } else {
                md_escape(why)
            };
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | {} | {} | {} |",
                md_escape(&g.source),
                md_escape(&g.destination),
                g.port,
                g.count,
                at,
                why
            );
        }
    };
    if !dropped.is_empty() {
        let _ = writeln!(
            out,
            "**Would be dropped** ({})\n",
            count(dropped.len(), "group")
        );
        table(&mut out, &dropped);
        out.push('\n');
    }
    if !allowed.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Allowed ({})</summary>\n",
            count(allowed.len(), "group")
        );
        table(&mut out, &allowed);
        out.push_str("\n</details>\n");
    }
    out
}
