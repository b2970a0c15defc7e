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
use crate::report::comment::{self, COMMENT_LIMIT, cell};
use crate::report::expect::{Expectations, Verdict};

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
/// evaluator's. Keeps one entry per connection, and one hairpin decision. `suggest` and
/// `drift` judge with it too, so that every report decides a flow the same way.
pub struct Judge<E> {
    evaluator: E,
    /// The first record of each connection and its decision, numbered in `decisions`: plain
    /// numbers, so that the map of (mostly distinct) connections is freed in one piece.
    connections: FxHashMap<ConnKey, (usize, usize)>,
    /// The distinct decisions of `connections`, numbered by their points' addresses.
    decisions: Vec<Decision>,
    numbers: FxHashMap<(usize, usize), usize>,
    hairpin: Option<Decision>,
}

impl<E> std::fmt::Debug for Judge<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge")
            .field("connections", &self.connections.len())
            .field("decisions", &self.decisions.len())
            .finish_non_exhaustive()
    }
}

impl<'e, E: std::borrow::BorrowMut<Evaluator<'e>>> Judge<E> {
    pub fn new(evaluator: E) -> Self {
        Self {
            evaluator,
            connections: FxHashMap::default(),
            decisions: Vec::new(),
            numbers: FxHashMap::default(),
            hairpin: None,
        }
    }

    /// The flow in the direction it is judged, and its decision.
    pub fn judge<'f>(&mut self, flow: &'f Flow) -> (View<'f>, Judged) {
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
    /// The entry of `--expect` that the flow matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    expectation: Option<FlowExpectation>,
}

/// A flow's entry of `--expect`, in the JSON report.
#[derive(Debug, Clone, Copy, Serialize)]
struct FlowExpectation {
    line: usize,
    expect: Verdict,
    /// The verdict is the one expected.
    holds: bool,
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
    /// What `--expect` found, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expectations: Option<ExpectSummary>,
}

/// The expectations of `--expect`, as the run found them.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectSummary {
    pub file: String,
    /// Flows dropped that an `expect: dropped` entry matches.
    pub expected_drops: usize,
    /// Flows dropped that no `expect: dropped` entry matches: what fails the run.
    pub unexpected_drops: usize,
    /// Entries that a flow contradicts.
    pub violated: usize,
    /// Entries no flow matched.
    pub unmatched: usize,
    /// Every entry, in file order.
    pub entries: Vec<EntrySummary>,
}

/// One entry of `--expect` and the flows it matched (the flows no earlier entry matched).
#[derive(Debug, Clone, Serialize)]
pub struct EntrySummary {
    pub line: usize,
    pub expect: Verdict,
    /// The entry as one line: `world -> media/* every port`.
    pub flows: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Matching flows that were dropped, and allowed.
    pub dropped: usize,
    pub allowed: usize,
    /// No matching flow has the other verdict.
    pub holds: bool,
}

impl EntrySummary {
    /// Matching flows whose verdict contradicts the entry.
    pub fn contradicting(&self) -> usize {
        match self.expect {
            Verdict::Dropped => self.allowed,
            Verdict::Allowed => self.dropped,
        }
    }
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
    expect: Option<&'a Expectations>,
    /// Per entry of `expect`: the matching flows dropped, and allowed.
    matched: Vec<(usize, usize)>,
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
    /// The entry of `--expect` that the group's flows match.
    expectation: Option<usize>,
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
            expect: None,
            matched: Vec::new(),
        })
    }

    /// Match every flow against `expectations` (`verify --expect`).
    pub fn expect(&mut self, expectations: &'a Expectations) {
        self.matched = vec![(0, 0); expectations.entries.len()];
        self.expect = Some(expectations);
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
        let expect = self.expect;
        let acc = self.groups.entry(group).or_insert_with(|| GroupAcc {
            _ends: (Held::of(view.src), Held::of(view.dst)),
            count: 0,
            decision: decision.clone(),
            source: view.src.display(),
            destination: view.dst.display(),
            port: view.port_text(),
            // What an entry matches depends only on what the group's key holds.
            expectation: expect.and_then(|e| e.find(view.src, view.dst, view.proto, view.port)),
        });
        acc.count += 1;
        let allowed = decision.allowed();
        let expectation = acc.expectation.and_then(|i| {
            let entry = expect?.get(i)?;
            if let Some((dropped, passed)) = self.matched.get_mut(i) {
                *if allowed { passed } else { dropped } += 1;
            }
            Some(FlowExpectation {
                line: entry.line,
                expect: entry.expect,
                holds: (entry.expect == Verdict::Allowed) == allowed,
            })
        });
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
                expectation,
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
        let expectations = self.expect.map(|e| {
            let entries: Vec<EntrySummary> = e
                .entries
                .iter()
                .zip(&self.matched)
                .map(|(x, (dropped, allowed))| EntrySummary {
                    line: x.line,
                    expect: x.expect,
                    flows: x.text.clone(),
                    description: x.description.clone(),
                    dropped: *dropped,
                    allowed: *allowed,
                    holds: match x.expect {
                        Verdict::Dropped => *allowed == 0,
                        Verdict::Allowed => *dropped == 0,
                    },
                })
                .collect();
            let expected_drops: usize = entries
                .iter()
                .filter(|x| x.expect == Verdict::Dropped)
                .map(|x| x.dropped)
                .sum();
            ExpectSummary {
                file: e.file.clone(),
                expected_drops,
                unexpected_drops: self.denied - expected_drops.min(self.denied),
                violated: entries.iter().filter(|x| !x.holds).count(),
                unmatched: entries
                    .iter()
                    .filter(|x| x.dropped + x.allowed == 0)
                    .count(),
                entries,
            }
        });
        let summary = Summary {
            flows: self.flows,
            allowed: self.flows - self.denied,
            denied: self.denied,
            replies: self.replies,
            policies,
            skipped_lines: skipped.clone(),
            settings: SettingsSummary::new(settings),
            expectations,
        };
        let mut groups = groups(std::mem::take(&mut self.groups), self.index, self.sources);
        // Unexpected drops first, then expected ones, then what is allowed.
        if let Some(e) = &summary.expectations {
            groups.sort_by_key(|g| (g.allowed, g.expected_drop(e)));
        }
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

    /// Flows dropped that no entry of `--expect` expects (every drop without `--expect`).
    pub fn unexpected(&self) -> usize {
        self.summary
            .expectations
            .as_ref()
            .map_or(self.summary.denied, |e| e.unexpected_drops)
    }

    /// Entries of `--expect` that a flow contradicts.
    pub fn violated(&self) -> usize {
        self.summary.expectations.as_ref().map_or(0, |e| e.violated)
    }

    /// The run fails its gate: an unexpected drop, or a violated expectation.
    pub fn fails(&self) -> bool {
        self.unexpected() > 0 || self.violated() > 0
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
    /// The entry of `--expect` that the group's flows match.
    expectation: Option<usize>,
}

impl Group {
    /// A drop that an `expect: dropped` entry expects.
    fn expected_drop(&self, e: &ExpectSummary) -> bool {
        !self.allowed && self.entry(e).is_some_and(|x| x.expect == Verdict::Dropped)
    }

    /// The group's entry of `--expect`.
    fn entry<'e>(&self, e: &'e ExpectSummary) -> Option<&'e EntrySummary> {
        self.expectation.and_then(|i| e.entries.get(i))
    }

    /// The group's verdict contradicts its entry.
    fn violates(&self, e: &ExpectSummary) -> bool {
        self.entry(e)
            .is_some_and(|x| (x.expect == Verdict::Allowed) != self.allowed)
    }
}

/// The run's groups, merged by what the report shows, sorted.
fn groups(fast: FxHashMap<GroupKey, GroupAcc>, index: &Index, sources: &SourceMap) -> Vec<Group> {
    // The summaries are shared: many groups have the same decisions.
    type Key = (
        bool,
        String,
        String,
        String,
        Arc<str>,
        Arc<str>,
        Option<usize>,
    );
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
            acc.expectation,
        );
        all.push((key, acc.count, decision.dropped_at(), notes));
    }
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<Group> = Vec::with_capacity(all.len());
    for (key, count, dropped_at, notes) in all {
        let (allowed, source, destination, port, egress, ingress, expectation) = key;
        if let Some(last) = out.last_mut().filter(|g| {
            (
                g.allowed,
                &g.source,
                &g.destination,
                &g.port,
                &g.egress,
                &g.ingress,
                g.expectation,
            ) == (
                allowed,
                &source,
                &destination,
                &port,
                &egress,
                &ingress,
                expectation,
            )
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
            expectation,
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
    let expected = match &s.expectations {
        Some(e) => format!(
            " ({} expected, {} unexpected)",
            e.expected_drops, e.unexpected_drops
        ),
        None => String::new(),
    };
    let mut line = format!(
        "{} against {policies}: {} would be dropped{expected}{}, {} allowed",
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
    if let Some(e) = &s.expectations {
        let _ = match (e.violated, e.entries.len()) {
            (0, 1) => write!(line, "; the expectation holds"),
            (0, n) => write!(line, "; all {n} expectations hold"),
            (v, n) => write!(line, "; {v} of {n} expectations violated"),
        };
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

/// `expected dropped: world -> media/* every port (only through Traefik)`.
fn entry_line(x: &EntrySummary) -> String {
    let mut line = format!("expected {}: {}", x.expect.as_str(), x.flows);
    if let Some(d) = &x.description {
        let _ = write!(line, " ({d})");
    }
    line
}

/// `media/Deployment/sonarr -> world (evil.example.com) 443/tcp`.
fn flow_line(g: &Group) -> String {
    format!("{} -> {} {}", g.source, g.destination, g.port)
}

/// The groups whose verdict contradicts entry `i`.
fn contradicting<'r>(report: &'r Report, e: &ExpectSummary, i: usize) -> Vec<&'r Group> {
    report
        .groups
        .iter()
        .filter(|g| g.expectation == Some(i) && g.violates(e))
        .collect()
}

/// Text report: the violated expectations, then groups by (source, destination, port),
/// unexpected drops first, then expected drops, then what is allowed.
pub fn render_text(report: &Report) -> String {
    let mut out = headline(&report.summary);
    let _ = write!(out, "\njudged with: {}\n\n", report.settings);
    let expectations = report.summary.expectations.as_ref();
    if let Some(e) = expectations {
        for (i, x) in e.entries.iter().enumerate().filter(|(_, x)| !x.holds) {
            let _ = writeln!(out, "VIOLATED {}:{} {}", e.file, x.line, entry_line(x));
            for g in contradicting(report, e, i) {
                let _ = writeln!(
                    out,
                    "         {}: {}  x{}",
                    if g.allowed { "allowed" } else { "dropped" },
                    flow_line(g),
                    g.count
                );
            }
        }
        if e.violated > 0 {
            out.push('\n');
        }
    }
    for g in &report.groups {
        let _ = writeln!(
            out,
            "{}  {}  x{}",
            if g.allowed {
                "ALLOWED"
            } else if report.summary.settings.audit_mode {
                "AUDIT  "
            } else {
                "DROPPED"
            },
            flow_line(g),
            g.count
        );
        let _ = writeln!(out, "         egress:  {}", g.egress);
        let _ = writeln!(out, "         ingress: {}", g.ingress);
        for n in &g.notes {
            let _ = writeln!(out, "         note: {n}");
        }
        if let Some(e) = expectations
            && let Some(x) = g.entry(e)
        {
            let _ = writeln!(
                out,
                "         {} {}:{}: {}",
                if g.violates(e) {
                    "VIOLATES"
                } else {
                    "as expected by"
                },
                e.file,
                x.line,
                entry_line(x)
            );
        }
    }
    if let Some(e) = expectations {
        let unmatched: Vec<&EntrySummary> = e
            .entries
            .iter()
            .filter(|x| x.dropped + x.allowed == 0)
            .collect();
        if !unmatched.is_empty() {
            out.push('\n');
        }
        for x in unmatched {
            let _ = writeln!(
                out,
                "no flow matched {}:{} {}",
                e.file,
                x.line,
                entry_line(x)
            );
        }
    }
    out
}

/// The first line of the Markdown report: lets a workflow find and update its comment.
pub const MARKER: &str = "<!-- netpol-verify -->";

/// Open sections shown unfolded: the workloads with the most unexpected drops.
const OPEN_SECTIONS: usize = 3;

/// Examples listed under a violated expectation.
const EXAMPLES: usize = 5;

/// Connections shown in a workload's section (those with the most flows); the others are
/// counted, so that a comment reaches more workloads.
const ROWS_PER_WORKLOAD: usize = 10;

/// Where a drop is decided: the workload whose policy drops it, the direction, the peer at
/// the other end, and the decision that drops it.
fn drop_side(g: &Group) -> (&str, &'static str, &str, &str) {
    match g.dropped_at {
        Some(Direction::Ingress) => (&g.destination, "ingress from", &g.source, &g.ingress),
        _ => (&g.source, "egress to", &g.destination, &g.egress),
    }
}

/// The Markdown report, for a pull-request comment: the marker, a one-line summary, the
/// violated expectations, then the would-be drops by workload (the workload whose policy
/// drops them; most drops first), expected drops and allowed flows folded, all under
/// [`COMMENT_LIMIT`] (what does not fit is counted).
pub fn render_markdown(report: &Report) -> String {
    let s = &report.summary;
    let expectations = s.expectations.as_ref();
    let mut out = format!("{MARKER}\n");
    let icon = if report.fails() { "❌" } else { "✅" };
    let _ = writeln!(out, "### {icon} netpol verify: {}\n", headline(s));
    let _ = writeln!(out, "Judged with: {}.\n", cell(&report.settings));
    // Each block in order of importance; a block that does not fit is left out, and counted.
    let mut left_out = LeftOut::default();
    if let Some(e) = expectations
        && e.violated > 0
    {
        let _ = writeln!(
            out,
            "#### ⚠ Expectations violated ({} of {}, `{}`)\n",
            e.violated,
            e.entries.len(),
            e.file
        );
        for (i, x) in e.entries.iter().enumerate().filter(|(_, x)| !x.holds) {
            let groups = contradicting(report, e, i);
            let mut item = format!(
                "- `{}:{}` {} — {}:\n",
                e.file,
                x.line,
                entry_line(x),
                comment::counted(
                    x.contradicting(),
                    &format!(
                        "flow {}",
                        if x.expect == Verdict::Dropped {
                            "allowed"
                        } else {
                            "dropped"
                        }
                    ),
                    &format!(
                        "flows {}",
                        if x.expect == Verdict::Dropped {
                            "allowed"
                        } else {
                            "dropped"
                        }
                    ),
                )
            );
            for g in groups.iter().take(EXAMPLES) {
                let why = if g.allowed {
                    format!("egress: {}; ingress: {}", g.egress, g.ingress)
                } else {
                    drop_side(g).3.to_owned()
                };
                let _ = writeln!(
                    item,
                    "  - `{}` → `{}` {} ×{} ({why})",
                    g.source, g.destination, g.port, g.count
                );
            }
            if groups.len() > EXAMPLES {
                let _ = writeln!(item, "  - and {} more", groups.len() - EXAMPLES);
            }
            if !left_out.any() && comment::fits(out.len(), item.len(), comment::NOTE_ROOM) {
                out.push_str(&item);
            } else {
                left_out.violations += 1;
            }
        }
        out.push('\n');
    }
    let unexpected: Vec<&Group> = report
        .groups
        .iter()
        .filter(|g| !g.allowed && !expectations.is_some_and(|e| g.expected_drop(e)))
        .collect();
    if !unexpected.is_empty() {
        let workloads = by_workload(&unexpected);
        let flows: usize = unexpected.iter().map(|g| g.count).sum();
        let _ = writeln!(
            out,
            "#### {} by workload ({}, {})\n",
            if expectations.is_some() {
                "Unexpected drops"
            } else {
                "Would be dropped"
            },
            comment::counted(workloads.len(), "workload", "workloads"),
            count(flows, "flow")
        );
        for (n, (workload, groups)) in workloads.iter().enumerate() {
            let flows: usize = groups.iter().map(|g| g.count).sum();
            let mut section = String::new();
            comment::open_details(
                &mut section,
                &format!(
                    "<code>{}</code>: {} dropped ({})",
                    html(workload),
                    count(flows, "flow"),
                    comment::counted(groups.len(), "connection", "connections")
                ),
                n < OPEN_SECTIONS,
            );
            section.push_str(
                "| direction | peer | port | flows | decided by |\n|---|---|---|---|---|\n",
            );
            for g in groups.iter().take(ROWS_PER_WORKLOAD) {
                let (_, direction, peer, why) = drop_side(g);
                let _ = writeln!(
                    section,
                    "| {direction} | `{}` | {} | {} | {} |",
                    cell(peer),
                    g.port,
                    g.count,
                    cell(why)
                );
            }
            if let Some(rest) = groups.get(ROWS_PER_WORKLOAD..).filter(|r| !r.is_empty()) {
                let _ = writeln!(
                    section,
                    "\n… and {} more {} ({}).",
                    rest.len(),
                    if rest.len() == 1 {
                        "connection"
                    } else {
                        "connections"
                    },
                    count(rest.iter().map(|g| g.count).sum(), "flow")
                );
            }
            section.push_str(comment::CLOSE_DETAILS);
            section.push('\n');
            if left_out.any() || !comment::fits(out.len(), section.len(), comment::NOTE_ROOM) {
                left_out.workloads += 1;
                left_out.dropped += groups.len();
            } else {
                out.push_str(&section);
            }
        }
    }
    if let Some(e) = expectations {
        let expected: Vec<&Group> = report
            .groups
            .iter()
            .filter(|g| g.expected_drop(e))
            .collect();
        if !expected.is_empty() {
            let flows: usize = expected.iter().map(|g| g.count).sum();
            let mut block = String::new();
            comment::open_details(
                &mut block,
                &format!(
                    "Expected drops ({}, {})",
                    comment::counted(expected.len(), "connection", "connections"),
                    count(flows, "flow")
                ),
                false,
            );
            block.push_str(
                "| source | destination | port | flows | expected by |\n|---|---|---|---|---|\n",
            );
            let rows: Vec<String> = by_count(&expected)
                .iter()
                .map(|g| {
                    let by = g
                        .entry(e)
                        .map(|x| format!("`{}:{}`", e.file, x.line))
                        .unwrap_or_default();
                    format!(
                        "| `{}` | `{}` | {} | {} | {by} |\n",
                        cell(&g.source),
                        cell(&g.destination),
                        g.port,
                        g.count
                    )
                })
                .collect();
            left_out.expected += push_rows(&mut out, &mut left_out, block, &rows);
        }
    }
    let allowed: Vec<&Group> = report.groups.iter().filter(|g| g.allowed).collect();
    if !allowed.is_empty() {
        let mut block = String::new();
        comment::open_details(
            &mut block,
            &format!(
                "Allowed ({})",
                comment::counted(allowed.len(), "connection", "connections")
            ),
            false,
        );
        block.push_str("| source | destination | port | flows | egress | ingress |\n|---|---|---|---|---|---|\n");
        let rows: Vec<String> = by_count(&allowed)
            .iter()
            .map(|g| {
                format!(
                    "| `{}` | `{}` | {} | {} | {} | {} |\n",
                    cell(&g.source),
                    cell(&g.destination),
                    g.port,
                    g.count,
                    cell(&g.egress),
                    cell(&g.ingress)
                )
            })
            .collect();
        left_out.allowed += push_rows(&mut out, &mut left_out, block, &rows);
    }
    if let Some(e) = expectations {
        let unmatched: Vec<String> = e
            .entries
            .iter()
            .filter(|x| x.dropped + x.allowed == 0)
            .map(|x| format!("- `{}:{}` {}\n", e.file, x.line, entry_line(x)))
            .collect();
        if !unmatched.is_empty() {
            let mut block = String::new();
            comment::open_details(
                &mut block,
                &format!("Expectations no flow matched ({})", unmatched.len()),
                false,
            );
            left_out.unmatched += push_rows(&mut out, &mut left_out, block, &unmatched);
        }
    }
    if left_out.any() {
        let _ = writeln!(
            out,
            "\n{} are not shown: a comment holds at most {COMMENT_LIMIT} characters. Run `netpol verify` locally for the whole report.",
            left_out.describe()
        );
    }
    out
}

/// What a Markdown report could not hold.
#[derive(Debug, Default)]
struct LeftOut {
    violations: usize,
    workloads: usize,
    /// Connections (groups) of the workloads left out.
    dropped: usize,
    expected: usize,
    allowed: usize,
    unmatched: usize,
}

impl LeftOut {
    fn any(&self) -> bool {
        self.violations + self.workloads + self.expected + self.allowed + self.unmatched > 0
    }

    /// `3 workloads with unexpected drops (12 connections), 40 allowed connections`.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.violations > 0 {
            parts.push(comment::counted(
                self.violations,
                "violated expectation",
                "violated expectations",
            ));
        }
        if self.workloads > 0 {
            parts.push(format!(
                "{} with drops ({})",
                comment::counted(self.workloads, "workload", "workloads"),
                comment::counted(self.dropped, "connection", "connections")
            ));
        }
        if self.expected > 0 {
            parts.push(comment::counted(
                self.expected,
                "expected drop",
                "expected drops",
            ));
        }
        if self.allowed > 0 {
            parts.push(comment::counted(
                self.allowed,
                "allowed connection",
                "allowed connections",
            ));
        }
        if self.unmatched > 0 {
            parts.push(comment::counted(
                self.unmatched,
                "expectation no flow matched",
                "expectations no flow matched",
            ));
        }
        parts.join(", ")
    }
}

/// Append a folded block (`head` opens it) with as many `rows` as fit, keeping room for the
/// note on what is left out; the number of rows left out.
fn push_rows(out: &mut String, left_out: &mut LeftOut, head: String, rows: &[String]) -> usize {
    let closing = comment::CLOSE_DETAILS;
    let reserve = closing.len() + comment::NOTE_ROOM;
    if left_out.any() || !comment::fits(out.len(), head.len(), reserve) {
        return rows.len();
    }
    let mut block = head;
    let mut shown = 0;
    for r in rows {
        if !comment::fits(out.len() + block.len(), r.len(), reserve) {
            break;
        }
        block.push_str(r);
        shown += 1;
    }
    if shown == 0 {
        return rows.len();
    }
    out.push_str(&block);
    out.push_str(closing);
    out.push('\n');
    rows.len() - shown
}

/// Most flows first, then as the report sorts them.
fn by_count<'g>(groups: &[&'g Group]) -> Vec<&'g Group> {
    let mut sorted = groups.to_vec();
    sorted.sort_by_key(|g| std::cmp::Reverse(g.count));
    sorted
}

/// The drops by the workload whose policy drops them: most dropped flows first, each
/// workload's connections most flows first.
fn by_workload<'g>(groups: &[&'g Group]) -> Vec<(String, Vec<&'g Group>)> {
    let mut by: BTreeMap<&str, Vec<&'g Group>> = BTreeMap::new();
    for g in groups {
        by.entry(drop_side(g).0).or_default().push(g);
    }
    let mut out: Vec<(String, Vec<&'g Group>)> = by
        .into_iter()
        .map(|(w, gs)| (w.to_owned(), by_count(&gs)))
        .collect();
    out.sort_by_key(|(_, gs)| std::cmp::Reverse(gs.iter().map(|g| g.count).sum::<usize>()));
    out
}

/// Text inside HTML (a `<summary>`): `<`, `>` and `&` escaped.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(source: &str, destination: &str, count: usize, allowed: bool) -> Group {
        Group {
            allowed,
            source: source.to_owned(),
            destination: destination.to_owned(),
            port: "443/tcp".to_owned(),
            count,
            egress: Arc::from(if allowed {
                "allowed by cnp/media/app spec.egress[0].toPorts[0] (out/media/app.yaml:12)"
            } else {
                "default deny: no rule allows it"
            }),
            ingress: Arc::from("not a Cilium endpoint, no policy here"),
            dropped_at: (!allowed).then_some(Direction::Egress),
            notes: Vec::new(),
            expectation: None,
        }
    }

    fn report(groups: Vec<Group>) -> Report {
        let denied: usize = groups.iter().filter(|g| !g.allowed).map(|g| g.count).sum();
        let flows: usize = groups.iter().map(|g| g.count).sum();
        Report {
            summary: Summary {
                flows,
                allowed: flows - denied,
                denied,
                replies: 0,
                policies: 1,
                skipped_lines: BTreeMap::new(),
                settings: SettingsSummary::new(&Settings::default()),
                expectations: None,
            },
            groups,
            settings: "cluster `default`".to_owned(),
            spool: None,
        }
    }

    #[test]
    fn the_markdown_report_groups_drops_by_workload_most_first() {
        let r = report(vec![
            group("media/Deployment/radarr", "world (a.example)", 1, false),
            group("media/Deployment/sonarr", "world (b.example)", 3, false),
            group("media/Deployment/sonarr", "world (c.example)", 5, false),
            group("media/Deployment/sonarr", "world (d.example)", 7, true),
        ]);
        let md = render_markdown(&r);
        assert!(md.starts_with("<!-- netpol-verify -->\n### ❌ netpol verify: 16 flows against 1 policy: 9 would be dropped, 7 allowed\n"), "{md}");
        assert!(
            md.contains("#### Would be dropped by workload (2 workloads, 9 flows)\n"),
            "{md}"
        );
        let sonarr = md
            .find("<code>media/Deployment/sonarr</code>: 8 flows dropped (2 connections)")
            .unwrap_or(usize::MAX);
        let radarr = md
            .find("<code>media/Deployment/radarr</code>: 1 flow dropped (1 connection)")
            .unwrap_or(0);
        assert!(sonarr < radarr, "{md}");
        let c = md
            .find("`world (c.example)` | 443/tcp | 5 |")
            .unwrap_or(usize::MAX);
        let b = md.find("`world (b.example)` | 443/tcp | 3 |").unwrap_or(0);
        assert!(c < b, "{md}");
        assert!(
            md.contains("<details><summary>Allowed (1 connection)</summary>"),
            "{md}"
        );
        assert!(!md.contains("not shown"), "{md}");
    }

    #[test]
    fn the_markdown_report_stays_under_githubs_limit_and_counts_what_it_leaves_out() {
        let mut groups = Vec::new();
        for w in 0..3000 {
            for peer in 0..12 {
                groups.push(group(
                    &format!("media/Deployment/app-{w:05}"),
                    &format!("world (peer-{peer}.example.com)"),
                    1 + (w % 7),
                    false,
                ));
            }
        }
        for w in 0..2000 {
            groups.push(group(
                &format!("media/Deployment/app-{w:05}"),
                "world (ok.example.com)",
                1,
                true,
            ));
        }
        let md = render_markdown(&report(groups));
        // Ten connections a workload at most, the others counted.
        assert!(
            md.contains("\n… and 2 more connections (14 flows).\n"),
            "{}",
            &md[..3000]
        );
        assert!(md.chars().count() <= COMMENT_LIMIT, "{}", md.len());
        assert!(md.len() <= COMMENT_LIMIT, "{}", md.len());
        let shown = md.matches("<summary><code>").count();
        assert!(shown > 10, "{shown}");
        let note = format!(
            "\n{} workloads with drops ({} connections), 2000 allowed connections are not shown: a comment holds at most 65536 characters. Run `netpol verify` locally for the whole report.\n",
            3000 - shown,
            12 * (3000 - shown)
        );
        assert!(md.ends_with(&note), "{}", &md[md.len() - 400..]);
        // Every table row and folded section is whole.
        assert!(
            md.lines()
                .filter(|l| l.starts_with('|'))
                .all(|l| l.ends_with('|'))
        );
        assert_eq!(
            md.matches("<details").count(),
            md.matches("</details>").count()
        );
        // Most dropped flows first: the workloads with 7 flows a connection (w % 7 == 6).
        assert!(
            md.contains(
                "<details open><summary><code>media/Deployment/app-00006</code>: 84 flows dropped"
            ),
            "{}",
            &md[..2000]
        );
    }
}
