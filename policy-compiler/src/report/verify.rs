//! `netpol verify`: judge recorded flows against policies, and report.
//!
//! Reply records are matched to their connection (docs/semantics.md §10.1 step 1, pitfall
//! 12): a reply takes the decision of the connection it answers, judged in the initiating
//! direction, and is never judged alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Seek, Write};
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::diagnostic::source::SourceMap;
use crate::engine::entry::EntryId;
use crate::engine::eval::{Decision, FlowKey, Point, Reason};
use crate::engine::identity::Labels;
use crate::engine::index::{Evaluator, Index};
use crate::engine::settings::{Origin, Settings};
use crate::flow::{Endpoint, Flow};
use crate::objects::{Direction, Proto};

/// The decision for one input record.
#[derive(Debug, Clone)]
pub struct Judged {
    pub index: usize,
    /// The record is a reply; judged as the connection it answers (initiating direction).
    pub reply: bool,
    /// The record whose decision this reuses (an earlier record of the connection).
    pub same_as: Option<usize>,
    /// Shared with every flow of the same (pair, port).
    pub decision: Decision,
}

/// All decisions of a run, one per input flow record, in input order.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub judged: Vec<Judged>,
}

impl Verification {
    pub fn denied(&self) -> usize {
        self.judged.iter().filter(|j| !j.decision.allowed()).count()
    }
}

/// A flow in the direction it is judged: as recorded, or reversed for a reply.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub src: &'a Endpoint,
    pub dst: &'a Endpoint,
    pub proto: Option<Proto>,
    pub port: u16,
}

impl<'a> View<'a> {
    pub fn of(flow: &'a Flow, reply: bool) -> Self {
        if !reply {
            return Self {
                src: &flow.src,
                dst: &flow.dst,
                proto: flow.proto,
                port: flow.port(),
            };
        }
        let port = match (flow.proto, flow.icmp_type) {
            // Echo reply ↔ echo request (v4 0 ↔ 8, v6 129 ↔ 128).
            (Some(Proto::Icmp), Some(0)) => 8,
            (Some(Proto::Icmpv6), Some(129)) => 128,
            (Some(p), Some(t)) if p.is_icmp() => u16::from(t),
            _ => flow.src.port.unwrap_or(0),
        };
        Self {
            src: &flow.dst,
            dst: &flow.src,
            proto: flow.proto,
            port,
        }
    }

    /// The flow as an owned query (for the reference evaluator and tests).
    pub fn query(&self) -> crate::engine::eval::Query {
        crate::engine::eval::Query {
            src: self.src.peer.clone(),
            dst: self.dst.peer.clone(),
            proto: self.proto,
            port: self.port,
        }
    }

    fn key(&self) -> FlowKey<'a> {
        FlowKey {
            src: &self.src.peer,
            dst: &self.dst.peer,
            proto: self.proto,
            port: self.port,
        }
    }

    /// `443/tcp`, `icmp/8`.
    pub fn port_text(&self) -> String {
        match self.proto {
            Some(p) if p.is_icmp() => format!("{p}/{}", self.port),
            Some(p) => format!("{}/{p}", self.port),
            None => "?".to_owned(),
        }
    }
}

/// Judge every flow.
pub fn judge(flows: &[Flow], evaluator: &mut Evaluator<'_>) -> Verification {
    let mut judge = Judge::new(evaluator);
    Verification {
        judged: flows.iter().map(|flow| judge.judge(flow).1).collect(),
    }
}

/// Decides flows one at a time as the datapath would: a reply takes the decision of the
/// connection it answers (when that was seen), hairpin traffic skips policy, the rest is the
/// evaluator's. Keeps one entry per connection, and one hairpin decision.
struct Judge<E> {
    evaluator: E,
    /// The first record of each connection and its decision, numbered in `decisions`: plain
    /// numbers, so that the map of (mostly distinct) connections is freed in one piece.
    connections: FxHashMap<ConnKey, (usize, usize)>,
    /// The distinct decisions of `connections`, numbered by their points' addresses.
    decisions: Vec<Decision>,
    numbers: FxHashMap<(usize, usize), usize>,
    hairpin: Option<Decision>,
}

impl<'e, E: std::borrow::BorrowMut<Evaluator<'e>>> Judge<E> {
    fn new(evaluator: E) -> Self {
        Self {
            evaluator,
            connections: FxHashMap::default(),
            decisions: Vec::new(),
            numbers: FxHashMap::default(),
            hairpin: None,
        }
    }

    fn judge<'f>(&mut self, flow: &'f Flow) -> (View<'f>, Judged) {
        let reply = flow.is_reply();
        let view = View::of(flow, reply);
        let key = match (view.src.peer.ip, view.dst.peer.ip) {
            (Some(s), Some(d)) => Some((view.proto, s, view.src.port.unwrap_or(0), d, view.port)),
            _ => None,
        };
        let seen = key.as_ref().and_then(|k| self.connections.get(k));
        let (decision, same_as) =
            match seen.and_then(|(first, n)| Some((*first, self.decisions.get(*n)?))) {
                Some((first, decision)) if reply => (decision.clone(), Some(first)),
                _ => {
                    let decision = if flow.hairpin {
                        self.hairpin.get_or_insert_with(Decision::hairpin).clone()
                    } else {
                        self.evaluator.borrow_mut().decide_key(&view.key())
                    };
                    if let Some(key) = key
                        && let std::collections::hash_map::Entry::Vacant(slot) =
                            self.connections.entry(key)
                    {
                        let decisions = &mut self.decisions;
                        let n = *self
                            .numbers
                            .entry((
                                Arc::as_ptr(&decision.egress) as usize,
                                Arc::as_ptr(&decision.ingress) as usize,
                            ))
                            .or_insert_with(|| {
                                decisions.push(decision.clone());
                                decisions.len() - 1
                            });
                        slot.insert((flow.index, n));
                    }
                    (decision, None)
                }
            };
        let judged = Judged {
            index: flow.index,
            reply,
            same_as,
            decision,
        };
        (view, judged)
    }
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
                Reason::NotAnEndpoint
                    | Reason::NoPolicy
                    | Reason::HostLabel
                    | Reason::PolicyDisabled
                    | Reason::Hairpin
            ),
            verdict: if p.allows() {
                "allowed"
            } else if p.audited {
                "audited"
            } else {
                "denied"
            },
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

/// The fields of one record in the JSON report, besides the two points.
#[derive(Debug, Clone, Serialize)]
struct FlowHead<'a> {
    index: usize,
    line: usize,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped_at: Option<Direction>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reply: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    same_as: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a str>,
    source: &'a str,
    destination: &'a str,
    protocol: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed: Option<&'a str>,
    /// The Service address the destination was translated from.
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
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
    /// The Cilium settings the flows were judged with.
    pub settings: SettingsSummary,
}

/// The settings of a run, as the JSON report states them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsSummary {
    pub cluster: String,
    /// `default`, `config` (`--cilium-config`) or `flows` (the flows' identity labels).
    pub cluster_from: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cilium_version: Option<String>,
    /// `policy-audit-mode`: the flows counted as `denied` pass, logged as `AUDIT`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub audit_mode: bool,
}

impl SettingsSummary {
    fn new(s: &Settings) -> Self {
        Self {
            cluster: s.cluster_name.clone(),
            cluster_from: match s.origin {
                Origin::Default => "default",
                Origin::Config(_) => "config",
                Origin::Flows => "flows",
            },
            cluster_id: s.cluster_id,
            cilium_version: s.version.clone(),
            audit_mode: s.audit_mode,
        }
    }
}

/// A verify run fed one flow at a time, as the reader reads them: what it keeps is bounded by
/// the distinct connections (to judge replies with them), the distinct report groups and the
/// distinct decisions, never by the number of flow records. The JSON report's per-flow lines
/// are spooled to an unnamed temporary file, so that nothing reaches stdout before the whole
/// input is known to be good.
pub struct Run<'a> {
    judge: Judge<Evaluator<'a>>,
    index: &'a Index,
    sources: &'a SourceMap,
    flows: usize,
    denied: usize,
    replies: usize,
    groups: FxHashMap<GroupKey, GroupAcc>,
    json: Option<Spool>,
}

impl std::fmt::Debug for Run<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("flows", &self.flows)
            .field("denied", &self.denied)
            .field("connections", &self.judge.connections.len())
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

/// A connection, in its initiating direction: protocol, source address and port, destination
/// address and port.
type ConnKey = (Option<Proto>, IpAddr, u16, IpAddr, u16);

/// What an endpoint's name in a report depends on: the reader's shared strings and label set,
/// by address (the reader shares one copy of each), so that grouping a million flows
/// compares and copies no names and touches no reference counts. Equal names with two copies
/// only make two groups here, which the report merges by name. The group holds the shared
/// values ([`Held`]), so that their addresses stay theirs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EndKey {
    /// Namespace, workload, pod, entity, label set.
    addresses: [usize; 5],
    ip: Option<IpAddr>,
    /// The first DNS name of a world peer.
    name: Option<String>,
}

impl EndKey {
    fn of(e: &Endpoint) -> Self {
        let text = |s: &Option<Arc<str>>| {
            s.as_ref()
                .map_or(0, |s| Arc::as_ptr(s).cast::<u8>() as usize)
        };
        Self {
            addresses: [
                text(&e.namespace),
                text(&e.workload),
                text(&e.pod),
                text(&e.entity),
                Arc::as_ptr(&e.peer.labels) as usize,
            ],
            ip: e.peer.ip.filter(|_| e.namespace.is_none()),
            name: e.peer.names.first().cloned(),
        }
    }
}

/// The shared values whose addresses are in an [`EndKey`].
#[derive(Debug)]
struct Held {
    _texts: [Option<Arc<str>>; 4],
    _labels: Arc<Labels>,
}

impl Held {
    fn of(e: &Endpoint) -> Self {
        Self {
            _texts: [
                e.namespace.clone(),
                e.workload.clone(),
                e.pod.clone(),
                e.entity.clone(),
            ],
            _labels: e.peer.labels.clone(),
        }
    }
}

/// Flows that look alike in a report: both ends, protocol and port, and the two decisions
/// (shared points, by address; the accumulator holds them, so the addresses stay theirs).
type GroupKey = (EndKey, EndKey, Option<Proto>, u16, usize, usize);

#[derive(Debug)]
struct GroupAcc {
    count: usize,
    /// Holds the points whose addresses are in the key.
    decision: Decision,
    /// Hold the values whose addresses are in the key's ends.
    _ends: (Held, Held),
    source: String,
    destination: String,
    port: String,
}

/// The JSON report's flow lines, spooled, and each decision's JSON, rendered once.
struct Spool {
    file: std::io::BufWriter<std::fs::File>,
    points: FxHashMap<usize, (Arc<Point>, String)>,
    /// A flow line's head, rendered here first (its closing brace is dropped), reused.
    head: Vec<u8>,
}

impl<'a> Run<'a> {
    /// A run judging with `evaluator`; `json`: the JSON report will be written (its flow lines
    /// are spooled as they come).
    pub fn new(
        evaluator: Evaluator<'a>,
        index: &'a Index,
        sources: &'a SourceMap,
        json: bool,
    ) -> std::io::Result<Self> {
        let json = if json {
            Some(Spool {
                file: std::io::BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
                points: FxHashMap::default(),
                head: Vec::new(),
            })
        } else {
            None
        };
        Ok(Self {
            judge: Judge::new(evaluator),
            index,
            sources,
            flows: 0,
            denied: 0,
            replies: 0,
            groups: FxHashMap::default(),
            json,
        })
    }

    /// Judge one flow (a reply takes the decision of its connection, when it was seen).
    pub fn push(&mut self, flow: &Flow) -> std::io::Result<()> {
        let (
            view,
            Judged {
                reply,
                same_as,
                decision,
                ..
            },
        ) = self.judge.judge(flow);
        self.flows += 1;
        self.replies += usize::from(reply);
        self.denied += usize::from(!decision.allowed());
        let group = (
            EndKey::of(view.src),
            EndKey::of(view.dst),
            view.proto,
            view.port,
            Arc::as_ptr(&decision.egress) as usize,
            Arc::as_ptr(&decision.ingress) as usize,
        );
        let acc = self.groups.entry(group).or_insert_with(|| GroupAcc {
            _ends: (Held::of(view.src), Held::of(view.dst)),
            count: 0,
            decision: decision.clone(),
            source: view.src.display(),
            destination: view.dst.display(),
            port: view.port_text(),
        });
        acc.count += 1;
        if let Some(spool) = &mut self.json {
            let head = FlowHead {
                index: flow.index,
                line: flow.line,
                verdict: if decision.allowed() {
                    "allowed"
                } else if decision.egress.audited || decision.ingress.audited {
                    "audit"
                } else {
                    "denied"
                },
                dropped_at: decision.dropped_at(),
                reply,
                same_as,
                time: flow.time.as_deref(),
                source: &acc.source,
                destination: &acc.destination,
                protocol: view.proto.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                port: view.port,
                observed: flow.observed.as_deref(),
                service: flow.service.as_deref(),
            };
            spool.head.clear();
            if serde_json::to_writer(&mut spool.head, &head).is_err() {
                spool.head.clear();
            }
            spool.head.pop(); // the closing brace: the points follow
            let (index, sources) = (self.index, self.sources);
            for p in [&decision.egress, &decision.ingress] {
                spool
                    .points
                    .entry(Arc::as_ptr(p) as usize)
                    .or_insert_with(|| {
                        let json = serde_json::to_string(&PointReport::new(index, sources, p))
                            .unwrap_or_default();
                        (p.clone(), json)
                    });
            }
            let rendered = |p: &Arc<Point>| {
                spool
                    .points
                    .get(&(Arc::as_ptr(p) as usize))
                    .map_or("", |(_, json)| json.as_str())
            };
            let (egress, ingress) = (rendered(&decision.egress), rendered(&decision.ingress));
            let file = &mut spool.file;
            file.write_all(if self.flows > 1 { b",\n" } else { b"\n" })?;
            file.write_all(&spool.head)?;
            write!(file, ",\"egress\":{egress},\"ingress\":{ingress}}}")?;
        }
        Ok(())
    }

    /// The totals and the groups, after the last flow.
    /// The report: the totals and the groups, which are taken out of the run.
    pub fn finish(
        &mut self,
        skipped: &BTreeMap<String, usize>,
        policies: usize,
        settings: &Settings,
    ) -> std::io::Result<Report> {
        let summary = Summary {
            flows: self.flows,
            allowed: self.flows - self.denied,
            denied: self.denied,
            replies: self.replies,
            policies,
            skipped_lines: skipped.clone(),
            settings: SettingsSummary::new(settings),
        };
        let groups = groups(std::mem::take(&mut self.groups), self.index, self.sources);
        let spool = match self.json.take() {
            Some(spool) => {
                let mut file = spool.file.into_inner().map_err(|e| e.into_error())?;
                file.seek(std::io::SeekFrom::Start(0))?;
                Some(file)
            }
            None => None,
        };
        Ok(Report {
            summary,
            groups,
            settings: settings.describe(),
            spool,
        })
    }
}

/// A finished run, ready to render.
#[derive(Debug)]
pub struct Report {
    pub summary: Summary,
    groups: Vec<Group>,
    /// The settings, as the header names them.
    settings: String,
    /// The JSON report's flow lines (when the run was made for JSON).
    spool: Option<std::fs::File>,
}

impl Report {
    /// Whether a flow would be dropped.
    pub fn denied(&self) -> usize {
        self.summary.denied
    }
}

/// The JSON report, streamed: `{"summary": …, "flows": [ … ]}`, one flow per line.
pub fn render_json(out: &mut dyn Write, report: &mut Report) -> std::io::Result<()> {
    write!(
        out,
        "{{\"summary\":{},\"flows\":[",
        serde_json::to_string(&report.summary).unwrap_or_default()
    )?;
    if let Some(spool) = &mut report.spool {
        std::io::copy(spool, out)?;
    }
    out.write_all(b"\n]}\n")
}

/// A group of flows with the same source, destination and port.
#[derive(Debug, Clone)]
struct Group {
    allowed: bool,
    source: String,
    destination: String,
    port: String,
    count: usize,
    egress: Arc<str>,
    ingress: Arc<str>,
    dropped_at: Option<Direction>,
    notes: Vec<String>,
}

/// The run's groups, merged by what the report shows, sorted.
fn groups(fast: FxHashMap<GroupKey, GroupAcc>, index: &Index, sources: &SourceMap) -> Vec<Group> {
    // The summaries are shared: many groups have the same decisions.
    type Key = (bool, String, String, String, Arc<str>, Arc<str>);
    type Summaries = (Arc<str>, Arc<str>, Arc<[String]>);
    type Shown = (Key, usize, Option<Direction>, Arc<[String]>);
    // Sorted once and merged where the shown key repeats (most keys are distinct): cheaper
    // than a sorted map of string keys grown one group at a time.
    let mut all: Vec<Shown> = Vec::with_capacity(fast.len());
    let mut reports: FxHashMap<(usize, usize), Summaries> = FxHashMap::default();
    for acc in fast.into_values() {
        let decision = &acc.decision;
        let (egress, ingress, notes) = reports
            .entry((
                Arc::as_ptr(&decision.egress) as usize,
                Arc::as_ptr(&decision.ingress) as usize,
            ))
            .or_insert_with(|| {
                let e = PointReport::new(index, sources, &decision.egress);
                let i = PointReport::new(index, sources, &decision.ingress);
                let mut notes: Vec<String> = e.notes.iter().chain(&i.notes).cloned().collect();
                notes.sort();
                notes.dedup();
                (e.summary().into(), i.summary().into(), notes.into())
            })
            .clone();
        let key = (
            decision.allowed(),
            acc.source,
            acc.destination,
            acc.port,
            egress,
            ingress,
        );
        all.push((key, acc.count, decision.dropped_at(), notes));
    }
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<Group> = Vec::with_capacity(all.len());
    for ((allowed, source, destination, port, egress, ingress), count, dropped_at, notes) in all {
        if let Some(last) = out.last_mut().filter(|g| {
            (
                g.allowed,
                &g.source,
                &g.destination,
                &g.port,
                &g.egress,
                &g.ingress,
            ) == (allowed, &source, &destination, &port, &egress, &ingress)
        }) {
            last.count += count;
            for n in notes.iter() {
                if !last.notes.contains(n) {
                    last.notes.push(n.clone());
                }
            }
            last.notes.sort();
            continue;
        }
        out.push(Group {
            allowed,
            source,
            destination,
            port,
            count,
            egress,
            ingress,
            dropped_at,
            notes: notes.to_vec(),
        });
    }
    out
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
        "{} against {policies}: {} would be dropped{}, {} allowed",
        count(s.flows, "flow"),
        s.denied,
        if s.settings.audit_mode {
            " (audit mode: Cilium passes them and logs AUDIT)"
        } else {
            ""
        },
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
pub fn render_text(report: &Report) -> String {
    let mut out = headline(&report.summary);
    let _ = write!(out, "\njudged with: {}\n\n", report.settings);
    for g in &report.groups {
        let _ = writeln!(
            out,
            "{}  {} -> {} {}  x{}",
            if g.allowed {
                "ALLOWED"
            } else if report.summary.settings.audit_mode {
                "AUDIT  "
            } else {
                "DROPPED"
            },
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
pub fn render_markdown(report: &Report) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let icon = if s.denied == 0 { "✅" } else { "❌" };
    let _ = writeln!(out, "### {icon} netpol verify: {}\n", headline(s));
    let _ = writeln!(out, "Judged with: {}.\n", md_escape(&report.settings));
    let (dropped, allowed): (Vec<&Group>, Vec<&Group>) =
        report.groups.iter().partition(|g| !g.allowed);
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
