//! `verify --expect FILE`: the flows a team means to see dropped (and allowed), so that
//! `verify` passes when every drop is intended and fails on a drop nobody meant, or on an
//! intended drop that the policies now allow.
//!
//! ```text
//! expect.yaml ──read──> entries (expect, from, to, on) ──resolve──> workload selectors and
//!                                                         │          port names (profiles,
//!                                                         │          manifests, inventory)
//! a judged flow (its connection's direction) ──first entry that matches──┘
//!   dropped + `expect: dropped` → an expected drop      allowed + `expect: dropped` → violated
//!   dropped + no entry          → an unexpected drop    dropped + `expect: allowed` → violated
//! ```
//!
//! The file is a YAML list; each entry is read like a profile statement:
//!
//! ```yaml
//! - expect: dropped            # or allowed
//!   from: "*"                  # one or a list; left out: anything
//!   to: [203.0.113.0/24, "*.tracker.example"]
//!   on: 443                    # one or a list, as in profiles; left out: every port
//!   description: the trackers are blocked on purpose
//! ```
//!
//! Peers: `*`; an entity (`world`, `host`, …); an address or CIDR (addresses outside the
//! cluster and nodes, as CIDR rules select them); `ns:NS,key=value[,sa:NAME]` or `key=value`
//! (pod labels; any namespace without `ns:`); `ns/name` (a pod, a workload or a profile's
//! service: its pods by name, and by the selector a profile or a manifest gives it); a DNS
//! name (the name the report shows). `*` in a namespace, a name or a DNS name matches any
//! run of characters (`media/*`, `*/postgres`, `*.example.com`). A port name (`postgresql`)
//! is one of the destination's, which must then name one workload.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::Serialize;

use crate::diagnostic::source::{SourceFile, SourceMap, Span};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::document::{self, Fields, Node, Value};
use crate::engine::identity::Reserved;
use crate::flow::{Endpoint, workload_of_pod};
use crate::objects::Proto;
use crate::objects::port::{self, IcmpFamily, PortRef, Protocol};
use crate::report::workload::Workloads;

/// What an entry expects of the flows it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Dropped,
    Allowed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dropped => "dropped",
            Self::Allowed => "allowed",
        }
    }
}

/// One end of a flow, as an entry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Entity(Reserved),
    Cidr(IpNet),
    /// A glob over the first DNS name of a peer outside the cluster (lowercase).
    Dns(String),
    Labels {
        namespace: Option<String>,
        labels: BTreeMap<String, String>,
        service_account: Option<String>,
    },
    /// Globs over the namespace and the name; `selectors`: the pod labels of the profile
    /// services and workload manifests the globs name, by namespace (filled by `resolve`).
    Workload {
        namespace: String,
        name: String,
        selectors: Vec<(String, BTreeMap<String, String>)>,
    },
}

/// Ports of one protocol, first to last (an ICMP type is one "port").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    proto: Proto,
    first: u16,
    last: u16,
}

/// One entry of the file.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub expect: Verdict,
    /// Line of the entry in the file (1-based).
    pub line: usize,
    pub description: Option<String>,
    /// The entry as one line: `world -> media/* on every port`.
    pub text: String,
    from: Vec<Pattern>,
    to: Vec<Pattern>,
    on: Vec<Ports>,
    /// Port names, resolved against the destination by `resolve`.
    names: Vec<(String, Span)>,
    /// Where `to` is written (for port names it cannot resolve).
    to_span: Span,
    /// The `ns/name` peers, for a warning when no workload has the name.
    workloads: Vec<(String, String, Span)>,
}

/// The expectations of one file, in file order: the first that matches a flow decides.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The file, as given.
    pub file: String,
    pub entries: Vec<Expectation>,
}

/// A file read: its text (for diagnostics), what is wrong with it, and the expectations when
/// nothing is.
#[derive(Debug)]
pub struct Read {
    pub sources: SourceMap,
    pub diagnostics: Diagnostics,
    pub expectations: Option<Expectations>,
}

const KEYS: &[&str] = &["expect", "from", "to", "port", "on", "description"];

const PEER_HELP: &str = "a peer is `*`, an entity (`world`, `host`, …), an address or CIDR, `namespace/name` (`*` allowed: `media/*`), pod labels `ns:NAMESPACE,key=value`, or a DNS name (`*.example.com`)";

impl Expectations {
    /// Read an expectation file; every problem is reported, with its place.
    pub fn read(path: &Path, text: &str) -> Read {
        let mut sources = SourceMap::default();
        let mut diagnostics = Diagnostics::new();
        let source = sources.add(SourceFile::new(path, text));
        let file = path.display().to_string();
        let expectations = match document::parse(source, text) {
            Ok(root) => {
                let line = |span: Span| {
                    sources
                        .get(span.source)
                        .map_or(0, |f| f.line_col(span.offset as usize).0)
                };
                decode(&root, &line, &mut diagnostics).map(|entries| Self { file, entries })
            }
            Err(d) => {
                diagnostics.push(*d);
                None
            }
        };
        let expectations = expectations.filter(|_| !diagnostics.has_errors());
        Read {
            sources,
            diagnostics,
            expectations,
        }
    }

    /// Resolve what depends on the cluster: the selectors of the workloads the entries name,
    /// and port names (through the destination's ports). Errors for port names that mean
    /// nothing; warnings for workload names nothing knows.
    pub fn resolve(&mut self, workloads: &Workloads<'_>) -> Diagnostics {
        let mut diagnostics = Diagnostics::new();
        for e in &mut self.entries {
            for p in e.from.iter_mut().chain(e.to.iter_mut()) {
                if let Pattern::Workload {
                    namespace,
                    name,
                    selectors,
                } = p
                {
                    *selectors = selectors_of(workloads, namespace, name);
                }
            }
            if !workloads.is_empty() {
                for (ns, name, span) in &e.workloads {
                    if ns.contains('*') || name.contains('*') {
                        continue;
                    }
                    if let Err(message) = workloads.find(ns, name) {
                        let (message, help) = split_help(&message);
                        let mut d = Diagnostic::warning("unknown-workload", *span, message)
                            .with_label("matched by name only");
                        if let Some(help) = help {
                            d = d.with_help(help);
                        }
                        diagnostics.push(d);
                    }
                }
            }
            if e.names.is_empty() {
                continue;
            }
            let target = match e.to.as_slice() {
                [
                    Pattern::Workload {
                        namespace, name, ..
                    },
                ] if !namespace.contains('*') && !name.contains('*') => {
                    Some((namespace.clone(), name.clone()))
                }
                _ => None,
            };
            for (port_name, span) in &e.names {
                let Some((ns, name)) = &target else {
                    diagnostics.push(
                        Diagnostic::error(
                            "port-name-needs-workload",
                            *span,
                            format!("the port name `{port_name}` needs `to` to name one workload"),
                        )
                        .with_label("a port name")
                        .with_related(e.to_span, "not one workload")
                        .with_help("write the port as a number (`5432`, `53/udp`), or `to` as `namespace/name`"),
                    );
                    continue;
                };
                let found = workloads
                    .find(ns, name)
                    .and_then(|w| w.ports_named(port_name, None));
                match found {
                    Ok(ports) => e.on.extend(ports.into_iter().map(|(proto, port)| Ports {
                        proto,
                        first: port,
                        last: port,
                    })),
                    Err(message) => {
                        let (message, help) = split_help(&message);
                        let mut d = Diagnostic::error("unknown-port-name", *span, message)
                            .with_label("not a port of the destination");
                        if let Some(help) = help {
                            d = d.with_help(help);
                        }
                        diagnostics.push(d);
                    }
                }
            }
            e.names.clear();
        }
        diagnostics
    }

    /// The first entry that a flow, in the direction it is judged, matches.
    pub fn find(
        &self,
        src: &Endpoint,
        dst: &Endpoint,
        proto: Option<Proto>,
        port: u16,
    ) -> Option<usize> {
        self.entries.iter().position(|e| {
            any(&e.from, src)
                && any(&e.to, dst)
                && (e.on.is_empty()
                    || e.on
                        .iter()
                        .any(|p| Some(p.proto) == proto && (p.first..=p.last).contains(&port)))
        })
    }

    /// The entry at `index`.
    pub fn get(&self, index: usize) -> Option<&Expectation> {
        self.entries.get(index)
    }
}

impl Expectation {
    /// `expect.yaml:7`.
    pub fn place(&self, file: &str) -> String {
        format!("{file}:{}", self.line)
    }
}

/// `message\n  help: help` → both parts.
fn split_help(text: &str) -> (&str, Option<&str>) {
    match text.split_once("\n  help: ") {
        Some((m, h)) => (m, Some(h)),
        None => (text, None),
    }
}

/// The selectors of the profile services and workload manifests whose names the globs match.
fn selectors_of(
    workloads: &Workloads<'_>,
    namespace: &str,
    name: &str,
) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for d in workloads.declared() {
        if glob(namespace, &d.namespace) && glob(name, &d.name) && !d.labels.is_empty() {
            out.push((d.namespace.clone(), d.labels.clone()));
        }
    }
    if let Some(inv) = workloads.inventory() {
        for t in &inv.templates {
            let workload = t
                .pod
                .workload
                .split_once('/')
                .map_or(t.pod.workload.as_str(), |(_, n)| n);
            if glob(namespace, &t.pod.namespace) && glob(name, workload) && !t.selector.is_empty() {
                out.push((t.pod.namespace.clone(), t.selector.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn any(patterns: &[Pattern], e: &Endpoint) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p, e))
}

fn namespace_of(e: &Endpoint) -> Option<&str> {
    e.namespace.as_deref().or_else(|| e.peer.labels.namespace())
}

fn matches(p: &Pattern, e: &Endpoint) -> bool {
    let labels = &e.peer.labels;
    match p {
        Pattern::Any => true,
        Pattern::Entity(Reserved::World) => e.peer.is_world(),
        Pattern::Entity(r) => labels.reserved(r.key()),
        Pattern::Cidr(net) => {
            namespace_of(e).is_none() && e.peer.ip.is_some_and(|ip| net.contains(&ip))
        }
        Pattern::Dns(pattern) => {
            namespace_of(e).is_none()
                && e.peer
                    .names
                    .first()
                    .is_some_and(|n| glob(pattern, &n.to_ascii_lowercase()))
        }
        Pattern::Labels {
            namespace,
            labels: wanted,
            service_account,
        } => {
            let Some(ns) = namespace_of(e) else {
                return false;
            };
            namespace.as_deref().is_none_or(|want| want == ns)
                && wanted
                    .iter()
                    .all(|(k, v)| labels.get(Some("k8s"), k) == Some(v.as_str()))
                && service_account.as_deref().is_none_or(|sa| {
                    labels.get(Some("k8s"), "io.cilium.k8s.policy.serviceaccount") == Some(sa)
                })
        }
        Pattern::Workload {
            namespace,
            name,
            selectors,
        } => {
            let Some(ns) = namespace_of(e) else {
                return false;
            };
            if !glob(namespace, ns) {
                return false;
            }
            let workload = e
                .workload
                .as_deref()
                .map(|w| w.split_once('/').map_or(w, |(_, n)| n));
            let pod = e.pod.as_deref();
            let by_name = [workload, pod, pod.map(workload_of_pod)]
                .into_iter()
                .flatten()
                .any(|n| glob(name, n));
            by_name
                || selectors.iter().any(|(sel_ns, sel)| {
                    sel_ns == ns
                        && sel
                            .iter()
                            .all(|(k, v)| labels.get(Some("k8s"), k) == Some(v.as_str()))
                })
        }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut i, mut j) = (0, 0);
    // The last star seen, and where in the text its run ends so far.
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        match (p.get(i), t.get(j)) {
            (Some(b'*'), _) => {
                star = Some((i, j));
                i += 1;
            }
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    i = si + 1;
                    j = sj + 1;
                    star = Some((si, sj + 1));
                }
                None => return false,
            },
        }
    }
    p.get(i..)
        .is_some_and(|rest| rest.iter().all(|b| *b == b'*'))
}

/// The entries of the root list.
fn decode(
    root: &Node,
    line: &dyn Fn(Span) -> usize,
    diagnostics: &mut Diagnostics,
) -> Option<Vec<Expectation>> {
    let items = match &root.value {
        Value::Seq(items) => items,
        Value::Null => return Some(Vec::new()),
        other => {
            diagnostics.push(
                Diagnostic::error(
                    "wrong-type",
                    root.span,
                    format!("expected a list of expectations, found {}", other.kind()),
                )
                .with_label(format!("this is {}", other.kind()))
                .with_help("the file is a list: `- expect: dropped` then `from`, `to`, `on` as in a profile statement"),
            );
            return None;
        }
    };
    let entries: Vec<Expectation> = items
        .iter()
        .filter_map(|item| entry(item, line, diagnostics))
        .collect();
    Some(entries)
}

fn entry(
    node: &Node,
    line: &dyn Fn(Span) -> usize,
    diagnostics: &mut Diagnostics,
) -> Option<Expectation> {
    let fields = Fields::read(node, "an expectation", KEYS, diagnostics)?;
    let before = diagnostics.error_count();
    let expect = match fields.get("expect") {
        None => {
            diagnostics.push(
                Diagnostic::error("missing-key", node.span, "an expectation needs `expect`")
                    .with_label("no `expect`")
                    .with_help("add `expect: dropped` or `expect: allowed`"),
            );
            None
        }
        Some(v) => {
            match v.as_str() {
                Some("dropped") => Some(Verdict::Dropped),
                Some("allowed") => Some(Verdict::Allowed),
                _ => {
                    let shown = v.scalar_text().unwrap_or_else(|| v.value.kind().to_owned());
                    diagnostics.push(
                    Diagnostic::error(
                        "invalid-value",
                        v.span,
                        format!("`expect` is `dropped` or `allowed`, not `{shown}`"),
                    )
                    .with_label("not a verdict")
                    .with_help("`dropped`: the flows are meant to be dropped; `allowed`: meant to pass"),
                );
                    None
                }
            }
        }
    };
    let mut workloads = Vec::new();
    let mut peers = |key: &str, diagnostics: &mut Diagnostics| -> (Vec<Pattern>, Vec<String>) {
        let Some(v) = fields.get(key) else {
            return (Vec::new(), vec!["*".to_owned()]);
        };
        let mut patterns = Vec::new();
        let mut texts = Vec::new();
        for item in document::one_or_many(v) {
            let Some(text) = item.as_str() else {
                diagnostics.push(
                    Diagnostic::error(
                        "wrong-type",
                        item.span,
                        format!("expected a peer (a string), found {}", item.value.kind()),
                    )
                    .with_label("not a peer")
                    .with_help(PEER_HELP),
                );
                continue;
            };
            match pattern(text) {
                Ok(p) => {
                    if let Pattern::Workload {
                        namespace, name, ..
                    } = &p
                    {
                        workloads.push((namespace.clone(), name.clone(), item.span));
                    }
                    texts.push(text.trim().to_owned());
                    patterns.push(p);
                }
                Err((message, help)) => diagnostics.push(
                    Diagnostic::error("invalid-peer", item.span, message)
                        .with_label("not a peer")
                        .with_help(help),
                ),
            }
        }
        (patterns, texts)
    };
    let (from, from_text) = peers("from", diagnostics);
    let (to, to_text) = peers("to", diagnostics);
    let mut on = Vec::new();
    let mut names = Vec::new();
    let mut on_text = Vec::new();
    if let (Some(port), Some(on)) = (fields.key_span("port"), fields.key_span("on")) {
        let (first, second) = if port < on { (port, on) } else { (on, port) };
        diagnostics.push(
            Diagnostic::error("duplicate-key", second, "`port` and `on` are the same key")
                .with_label("second spelling")
                .with_related(first, "first spelling")
                .with_help("keep one of them (`port` reads the same in every YAML reader; YAML 1.1 tools read `on` as `true`)"),
        );
    }
    if let Some(v) = fields.get("port").or_else(|| fields.get("on")) {
        for item in document::one_or_many(v) {
            let Some(text) = item
                .scalar_text()
                .filter(|_| !matches!(item.value, Value::Bool(_)))
            else {
                diagnostics.push(
                    Diagnostic::error(
                        "wrong-type",
                        item.span,
                        format!("expected a port, found {}", item.value.kind()),
                    )
                    .with_label("not a port")
                    .with_help("write a port as in a profile: `443`, `53/udp`, `6881-6889/udp`, a port name such as `http`, or `icmp/echo-request`"),
                );
                continue;
            };
            match port::parse_ref(&text) {
                Ok(PortRef::Range(r)) => on.push(Ports {
                    proto: match r.protocol {
                        Protocol::Tcp => Proto::Tcp,
                        Protocol::Udp => Proto::Udp,
                        Protocol::Sctp => Proto::Sctp,
                    },
                    first: r.first,
                    last: r.last,
                }),
                Ok(PortRef::Icmp(t)) => on.push(Ports {
                    proto: match t.family {
                        IcmpFamily::V4 => Proto::Icmp,
                        IcmpFamily::V6 => Proto::Icmpv6,
                    },
                    first: u16::from(t.kind),
                    last: u16::from(t.kind),
                }),
                Ok(PortRef::Name(name)) => names.push((name, item.span)),
                Err(e) => diagnostics.push(
                    Diagnostic::error("invalid-port", item.span, e.message)
                        .with_label("not a port")
                        .with_help(e.help),
                ),
            }
            on_text.push(text.trim().to_owned());
        }
    }
    let description = match fields.get("description") {
        None => None,
        Some(v) => match v.scalar_text() {
            Some(t) => Some(t),
            None => {
                diagnostics.push(
                    Diagnostic::error(
                        "wrong-type",
                        v.span,
                        format!("expected text, found {}", v.value.kind()),
                    )
                    .with_label("not text")
                    .with_help("`description` says why, in words"),
                );
                None
            }
        },
    };
    if diagnostics.error_count() > before {
        return None;
    }
    let ports = if on_text.is_empty() {
        "every port".to_owned()
    } else {
        format!("on {}", on_text.join(", "))
    };
    Some(Expectation {
        expect: expect?,
        line: line(node.span),
        description,
        text: format!("{} -> {} {ports}", from_text.join(", "), to_text.join(", ")),
        from,
        to,
        on,
        names,
        to_span: fields.get("to").map_or(node.span, |v| v.span),
        workloads,
    })
}

/// A peer as an entry writes it; the error is a message and a hint.
fn pattern(text: &str) -> Result<Pattern, (String, String)> {
    let text = text.trim();
    if text == "*" {
        return Ok(Pattern::Any);
    }
    if let Some(r) = Reserved::parse(text) {
        return Ok(Pattern::Entity(r));
    }
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(Pattern::Cidr(net.trunc()));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Pattern::Cidr(IpNet::from(ip)));
    }
    if text.contains('=') || text.starts_with("ns:") {
        let mut namespace = None;
        let mut service_account = None;
        let mut labels = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(ns) = part.strip_prefix("ns:") {
                namespace = Some(ns.to_owned());
            } else if let Some(sa) = part.strip_prefix("sa:") {
                service_account = Some(sa.to_owned());
            } else if let Some((k, v)) = part.split_once('=') {
                labels.insert(k.trim().to_owned(), v.trim().to_owned());
            } else {
                return Err((
                    format!("cannot read `{part}` in the label set `{text}`"),
                    "a label set is `key=value` items, with `ns:NAMESPACE` and `sa:SERVICEACCOUNT`, separated by commas".to_owned(),
                ));
            }
        }
        return Ok(Pattern::Labels {
            namespace,
            labels,
            service_account,
        });
    }
    if let Some((namespace, name)) = text.split_once('/') {
        let part = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'*')
                })
        };
        if part(namespace) && part(name) {
            return Ok(Pattern::Workload {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                selectors: Vec::new(),
            });
        }
        return Err((
            format!("`{text}` is no `namespace/name`"),
            "namespaces and names are lowercase letters, digits, `-` and `.`; `*` matches any run of them".to_owned(),
        ));
    }
    let dns = |s: &str| {
        s.contains('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*' | b'_'))
    };
    if dns(text) {
        return Ok(Pattern::Dns(
            text.trim_end_matches('.').to_ascii_lowercase(),
        ));
    }
    if text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err((
            format!("`{text}` names no namespace"),
            format!("write `NAMESPACE/{text}`, or `*/{text}` for every namespace"),
        ));
    }
    Err((
        format!("cannot tell what `{text}` is"),
        PEER_HELP.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use std::sync::Arc;

    use super::*;
    use crate::engine::identity::{self, Peer};
    use crate::flow::universe::Declared;

    fn read(text: &str) -> Read {
        Expectations::read(Path::new("expect.yaml"), text)
    }

    fn messages(r: &Read) -> Vec<String> {
        r.diagnostics
            .sorted()
            .iter()
            .map(|d| {
                let at = d.span.map(|s| r.sources.position(s).to_string());
                format!("{}: {}", at.unwrap_or_default(), d.message)
            })
            .collect()
    }

    fn pod(ns: &str, workload: &str, labels: &[(&str, &str)]) -> Endpoint {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Endpoint {
            peer: Peer {
                labels: Arc::new(identity::pod_labels(ns, &labels, None, None, "default")),
                ..Peer::default()
            },
            namespace: Some(ns.into()),
            workload: Some(workload.into()),
            pod: Some(format!("{}-7f9c6d5b4-8m2lp", workload.split('/').nth(1).unwrap()).into()),
            ..Endpoint::default()
        }
    }

    fn world(ip: &str, name: Option<&str>) -> Endpoint {
        Endpoint {
            peer: Peer {
                labels: Arc::new(Reserved::World.labels()),
                ip: Some(ip.parse().unwrap()),
                names: name.map(|n| vec![n.to_owned()]).unwrap_or_default(),
                ..Peer::default()
            },
            entity: Some("world".into()),
            ..Endpoint::default()
        }
    }

    #[test]
    fn globs_match_any_run_of_characters() {
        assert!(glob("*", ""));
        assert!(glob("media/*", "media/sonarr"));
        assert!(glob("*.example.com", "a.b.example.com"));
        assert!(!glob("*.example.com", "example.com"));
        assert!(glob("*arr", "sonarr"));
        assert!(glob("s*r*r", "sonarr"));
        assert!(!glob("s*x", "sonarr"));
        assert!(glob("sonarr", "sonarr"));
        assert!(!glob("sonarr", "sonarr2"));
    }

    #[test]
    fn the_first_entry_that_matches_decides() {
        let r = read(
            "- expect: allowed\n  from: world\n  to: media/jellyfin\n  port: 8096\n- expect: dropped\n  from: world\n  to: media/*\n  description: only through Traefik\n- expect: dropped\n  to: [\"*.tracker.example\", 203.0.113.0/24]\n  on: [443, 80/tcp]\n",
        );
        assert!(r.diagnostics.is_empty(), "{:?}", messages(&r));
        let e = r.expectations.unwrap();
        assert_eq!(e.entries.len(), 3);
        assert_eq!(e.entries[0].line, 1);
        assert_eq!(e.entries[1].line, 5);
        assert_eq!(e.entries[1].text, "world -> media/* every port");
        assert_eq!(
            e.entries[2].text,
            "* -> *.tracker.example, 203.0.113.0/24 on 443, 80/tcp"
        );
        let outside = world("198.51.100.7", None);
        let jellyfin = pod("media", "Deployment/jellyfin", &[("app", "jellyfin")]);
        let sonarr = pod("media", "Deployment/sonarr", &[("app", "sonarr")]);
        let tcp = Some(Proto::Tcp);
        assert_eq!(e.find(&outside, &jellyfin, tcp, 8096), Some(0));
        assert_eq!(e.find(&outside, &jellyfin, tcp, 22), Some(1));
        assert_eq!(e.find(&outside, &sonarr, tcp, 8989), Some(1));
        assert_eq!(e.find(&sonarr, &outside, tcp, 443), None);
        let tracker = world("192.0.2.1", Some("open.tracker.example"));
        assert_eq!(e.find(&sonarr, &tracker, tcp, 443), Some(2));
        assert_eq!(e.find(&sonarr, &tracker, Some(Proto::Udp), 443), None);
        assert_eq!(
            e.find(&sonarr, &world("203.0.113.9", None), tcp, 80),
            Some(2)
        );
    }

    #[test]
    fn profile_services_match_by_their_labels_and_lend_their_port_names() {
        let declared = vec![Declared {
            namespace: "databases".into(),
            name: "arr-postgres".into(),
            kind: "Profile".into(),
            labels: BTreeMap::from([("cnpg.io/cluster".into(), "arr-postgres".into())]),
            ports: vec![identity::NamedPort {
                name: "postgresql".into(),
                port: 5432,
                protocol: Proto::Tcp,
            }],
            host_network: false,
        }];
        let workloads = Workloads::new(None, &declared, "default");
        let mut e = read(
            "- expect: allowed\n  from: ns:media,app=sonarr\n  to: databases/arr-postgres\n  on: postgresql\n",
        )
        .expectations
        .unwrap();
        assert!(e.resolve(&workloads).is_empty());
        let sonarr = pod("media", "Deployment/sonarr", &[("app", "sonarr")]);
        // A CNPG instance pod: named after its cluster, with the cluster's label.
        let mut pg = pod(
            "databases",
            "Pod/arr-postgres-1",
            &[("cnpg.io/cluster", "arr-postgres")],
        );
        pg.pod = Some("arr-postgres-1".into());
        assert_eq!(e.find(&sonarr, &pg, Some(Proto::Tcp), 5432), Some(0));
        assert_eq!(e.find(&sonarr, &pg, Some(Proto::Tcp), 8000), None);
        let other = pod("databases", "StatefulSet/other", &[("app", "other")]);
        assert_eq!(e.find(&sonarr, &other, Some(Proto::Tcp), 5432), None);

        // A port name needs one workload that has it.
        let mut e = read(
            "- expect: allowed\n  to: databases/*\n  on: postgresql\n- expect: allowed\n  to: databases/arr-postgres\n  on: postgres\n- expect: dropped\n  to: databases/arr-postgre\n",
        )
        .expectations
        .unwrap();
        let d = e.resolve(&workloads);
        let found: Vec<(&str, &str, Option<&str>)> = d
            .iter()
            .map(|d| (d.code, d.message.as_str(), d.help.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "port-name-needs-workload",
                    "the port name `postgresql` needs `to` to name one workload",
                    Some(
                        "write the port as a number (`5432`, `53/udp`), or `to` as `namespace/name`"
                    )
                ),
                (
                    "unknown-port-name",
                    "`databases/arr-postgres` has no port named `postgres`",
                    Some("did you mean `postgresql`? its ports: postgresql (5432/tcp)")
                ),
                (
                    "unknown-workload",
                    "no pod or workload `databases/arr-postgre` is known",
                    Some("did you mean `databases/arr-postgres`?")
                ),
            ]
        );
        assert!(!d.iter().nth(2).unwrap().is_error());
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let r = read(
            "- expect: dropped\n  form: world\n- expect: maybe\n  to: sonarr\n- from: [world, \"Bad/Name\"]\n  on: [http-alt-port-name-x, 0]\n- expect: allowed\n  description: [x]\n",
        );
        assert!(r.expectations.is_none());
        assert_eq!(
            messages(&r),
            [
                "expect.yaml:2:3: unknown key `form` in an expectation",
                "expect.yaml:3:11: `expect` is `dropped` or `allowed`, not `maybe`",
                "expect.yaml:4:7: `sonarr` names no namespace",
                "expect.yaml:5:3: an expectation needs `expect`",
                "expect.yaml:5:17: `Bad/Name` is no `namespace/name`",
                "expect.yaml:6:8: invalid port `http-alt-port-name-x`",
                "expect.yaml:6:30: port 0 in `0` is not a port",
                "expect.yaml:8:16: expected text, found a list",
            ]
        );
        let r = read("- expect: dropped\n  port: 80\n  on: 443\n");
        assert_eq!(
            messages(&r),
            ["expect.yaml:3:3: `port` and `on` are the same key"]
        );
        let r = read("expect: dropped\n");
        assert_eq!(
            messages(&r),
            ["expect.yaml:1:1: expected a list of expectations, found a map"]
        );
        let r = read("- expect: dropped\n  to: [unclosed\n");
        assert!(r.expectations.is_none());
        assert!(
            messages(&r)[0].starts_with("expect.yaml:"),
            "{:?}",
            messages(&r)
        );
        assert!(read("").expectations.unwrap().entries.is_empty());
    }
}
