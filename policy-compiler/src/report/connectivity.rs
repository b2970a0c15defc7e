//! `netpol connectivity`: every connection the policies allow between the peers of a universe.
//!
//! ```text
//! Universe × Universe ──Evaluator::reach (egress ∩ ingress, every protocol and port)──> Reach
//!     ──non-empty, not to itself──> Connection {src, dst, reach} ──> txt | json | csv | md
//! ```
//!
//! For what both tools express the text, JSON, CSV and Markdown forms are netpol-analyzer's
//! connlist formats, line for line: `src => dst : TCP 8080,UDP 53`, protocols in name order,
//! port ranges `a-b`, `All Connections` when every protocol is open on every port. Cilium-only:
//! ICMP and ICMPv6 (`ICMP` for every type, else the types), and the entity and DNS peers of
//! the [`Universe`].

use std::fmt::Write as _;

use crate::engine::eval::NamedPorts;
use crate::engine::index::{Evaluator, Index};
use crate::engine::reach::{self, Reach};
use crate::flow::universe::{NodeKind, Universe};
use crate::objects::{Direction, Proto};

/// One allowed connection: indices into the universe's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub src: usize,
    pub dst: usize,
    pub reach: Reach,
}

/// Every allowed connection of a universe, sorted by source and destination name.
#[derive(Debug, Clone, Default)]
pub struct Connectivity {
    pub universe: Universe,
    pub connections: Vec<Connection>,
    /// For each node: whether it is default-deny for ingress and for egress (what no rule
    /// allows is dropped); `[false, false]` for peers that are no workload.
    pub isolated: Vec<[bool; 2]>,
}

/// Whether a connection from `src` to `dst` is one a report lists: one end is a workload,
/// DNS names are destinations only, and nothing connects to itself.
fn listed(src: &NodeKind, dst: &NodeKind) -> bool {
    (src.is_workload() || dst.is_workload())
        && !matches!(src, NodeKind::Dns(_))
        && !matches!(src, NodeKind::External { inbound: false, .. })
        && !matches!(dst, NodeKind::External { inbound: true, .. })
}

/// The connectivity of `universe` under the policies of `index`.
pub fn compute(index: &Index, cluster: &dyn NamedPorts, universe: Universe) -> Connectivity {
    let mut evaluator = Evaluator::new(index, cluster);
    let mut connections = Vec::new();
    // Nodes are sorted by name: the pairs come out sorted.
    for (i, src) in universe.nodes.iter().enumerate() {
        for (j, dst) in universe.nodes.iter().enumerate() {
            if i == j || !listed(&src.kind, &dst.kind) {
                continue;
            }
            let reach = evaluator.reach(&src.peer, &dst.peer);
            if !reach.is_empty() {
                connections.push(Connection {
                    src: i,
                    dst: j,
                    reach,
                });
            }
        }
    }
    let isolated = universe
        .nodes
        .iter()
        .map(|n| {
            if n.kind.is_workload() {
                [
                    evaluator.isolated(&n.peer, Direction::Ingress),
                    evaluator.isolated(&n.peer, Direction::Egress),
                ]
            } else {
                [false, false]
            }
        })
        .collect();
    Connectivity {
        universe,
        connections,
        isolated,
    }
}

impl Connectivity {
    pub fn name(&self, node: usize) -> &str {
        self.universe
            .nodes
            .get(node)
            .map_or("", |n| n.name.as_str())
    }

    /// Only the connections of the workloads `focus` names (`name` or `namespace/name`).
    pub fn focus(&mut self, focus: &str) -> bool {
        let matches: Vec<bool> = self
            .universe
            .nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Workload {
                    namespace, name, ..
                } => name == focus || format!("{namespace}/{name}") == focus,
                _ => false,
            })
            .collect();
        if !matches.contains(&true) {
            return false;
        }
        let hit = |i: usize| matches.get(i).copied().unwrap_or(false);
        self.connections.retain(|c| hit(c.src) || hit(c.dst));
        true
    }

    /// Only the connections of the workloads in these namespaces; `false` when no workload is
    /// in any of them.
    pub fn namespaces(&mut self, namespaces: &[String]) -> bool {
        let inside: Vec<bool> = self
            .universe
            .nodes
            .iter()
            .map(|n| {
                n.kind
                    .namespace()
                    .is_some_and(|ns| namespaces.iter().any(|x| x == ns))
            })
            .collect();
        if !inside.contains(&true) {
            return false;
        }
        let hit = |i: usize| inside.get(i).copied().unwrap_or(false);
        self.connections.retain(|c| hit(c.src) || hit(c.dst));
        true
    }

    /// Rows `(src, dst, conn)` as the formats print them.
    pub fn rows(&self) -> Vec<[String; 3]> {
        self.connections
            .iter()
            .map(|c| {
                [
                    self.name(c.src).to_owned(),
                    self.name(c.dst).to_owned(),
                    conn(&c.reach),
                ]
            })
            .collect()
    }
}

/// A reach as netpol-analyzer writes connections: `All Connections`, or
/// `TCP 80,443,8000-8010,UDP 53` (protocols in name order); `No Connections` when empty.
pub fn conn(r: &Reach) -> String {
    if r.is_all() {
        return "All Connections".to_owned();
    }
    if r.is_empty() {
        return "No Connections".to_owned();
    }
    let mut parts = Vec::new();
    for p in reach::PROTOCOLS {
        let set = r.get(p);
        if set.is_empty() {
            continue;
        }
        let name = protocol_name(p);
        if p.is_icmp() && r.is_full(p) {
            parts.push(name.to_owned());
            continue;
        }
        let ports: Vec<String> = set
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        parts.push(format!("{name} {}", ports.join(",")));
    }
    parts.join(",")
}

pub fn protocol_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
        Proto::Sctp => "SCTP",
        Proto::Icmp => "ICMP",
        Proto::Icmpv6 => "ICMPv6",
        Proto::Other(_) => "IP",
    }
}

/// The output formats of a connection list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Txt,
    Json,
    Csv,
    Md,
}

/// Render the connection list.
pub fn render(c: &Connectivity, format: Format) -> String {
    let rows = c.rows();
    let mut out = String::new();
    match format {
        Format::Txt => {
            for [s, d, conn] in &rows {
                let _ = writeln!(out, "{s} => {d} : {conn}");
            }
        }
        Format::Csv => {
            out.push_str("src,dst,conn\n");
            for row in &rows {
                out.push_str(&csv_row(row));
            }
        }
        Format::Md => {
            out.push_str("| src | dst | conn |\n|-----|-----|------|\n");
            for [s, d, conn] in &rows {
                let _ = writeln!(out, "| {s} | {d} | {conn} |");
            }
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|[s, d, conn]| serde_json::json!({"src": s, "dst": d, "conn": conn}))
                .collect();
            out = serde_json::to_string_pretty(&items).unwrap_or_default();
            out.push('\n');
        }
    }
    out
}

/// One CSV record, quoted as Go's `encoding/csv` (and RFC 4180) quotes: fields with a comma,
/// a quote, a line break or a leading space.
pub fn csv_row(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) || f.starts_with(' ') {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_written_as_netpol_analyzer_writes_them() {
        let mut r = Reach::none();
        r.set(Proto::Tcp, vec![(8080, 8080), (9000, 9010)]);
        r.set(Proto::Udp, vec![(53, 53)]);
        assert_eq!(conn(&r), "TCP 8080,9000-9010,UDP 53");
        let mut r = Reach::none();
        r.set(Proto::Tcp, vec![(1, 65535)]);
        assert_eq!(conn(&r), "TCP 1-65535");
        assert_eq!(conn(&Reach::all()), "All Connections");
        let mut r = Reach::all();
        r.set(Proto::Icmpv6, vec![]);
        r.set(Proto::Icmp, vec![(8, 8)]);
        assert_eq!(conn(&r), "ICMP 8,SCTP 1-65535,TCP 1-65535,UDP 1-65535");
    }

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        let row = ["a".to_owned(), "b".to_owned(), "TCP 1,UDP 2".to_owned()];
        assert_eq!(csv_row(&row), "a,b,\"TCP 1,UDP 2\"\n");
    }
}
