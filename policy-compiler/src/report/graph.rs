//! `netpol graph`: the allowed connectivity as a picture — Mermaid (GitHub renders it in
//! Markdown) or Graphviz DOT — with one box per namespace.
//!
//! ```text
//! Connectivity ──nodes that take part, grouped by namespace──> boxes
//!              ──one edge per connection, labelled with its ports──> mermaid | dot
//! ```
//!
//! Peers outside every namespace (address ranges, DNS names, entities) stand outside the boxes.
//! Output is sorted like the connection list, so it is byte-stable.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::flow::universe::NodeKind;
use crate::report::connectivity::{Connectivity, conn};

/// The picture formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

/// The nodes that take part in a connection, by namespace (`None`: outside every namespace).
/// An address range that is both a source and a destination is drawn once: each node is
/// represented by the first node of its name ([`drawn`]).
fn groups(c: &Connectivity) -> BTreeMap<Option<&str>, Vec<usize>> {
    let mut used = vec![false; c.universe.nodes.len()];
    for conn in &c.connections {
        for i in [drawn(c, conn.src), drawn(c, conn.dst)] {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
        }
    }
    let mut groups: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, node) in c.universe.nodes.iter().enumerate() {
        if used.get(i).copied().unwrap_or(false) {
            groups.entry(node.kind.namespace()).or_default().push(i);
        }
    }
    groups
}

/// The node drawn for node `i`: the first of its name (nodes are sorted by name).
fn drawn(c: &Connectivity, i: usize) -> usize {
    let name = c.name(i);
    c.universe.nodes.partition_point(|n| n.name.as_str() < name)
}

/// What a node is called inside its box.
fn label(kind: &NodeKind) -> String {
    match kind {
        NodeKind::Workload { name, kind, .. } if kind == "Profile" => name.clone(),
        NodeKind::Workload { name, kind, .. } => format!("{name} ({kind})"),
        NodeKind::External { first, last, .. } => format!("{first} - {last}"),
        NodeKind::Entity(e) => e.clone(),
        NodeKind::Dns(name) => name.clone(),
    }
}

/// Render the picture.
pub fn render(c: &Connectivity, format: Format) -> String {
    match format {
        Format::Mermaid => mermaid(c),
        Format::Dot => dot(c),
    }
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

fn mermaid(c: &Connectivity) -> String {
    let mut out = String::from("flowchart LR\n");
    for (ns, nodes) in groups(c) {
        let indent = if let Some(ns) = ns {
            let _ = writeln!(out, "  subgraph ns_{}[\"{}\"]", id(ns), mermaid_text(ns));
            "    "
        } else {
            "  "
        };
        for i in nodes {
            let Some(node) = c.universe.nodes.get(i) else {
                continue;
            };
            let text = mermaid_text(&label(&node.kind));
            let shape = match node.kind {
                NodeKind::Workload { .. } => format!("[\"{text}\"]"),
                NodeKind::External { .. } | NodeKind::Dns(_) => format!("{{{{\"{text}\"}}}}"),
                NodeKind::Entity(_) => format!("([\"{text}\"])"),
            };
            let _ = writeln!(out, "{indent}n{i}{shape}");
        }
        if ns.is_some() {
            out.push_str("  end\n");
        }
    }
    for e in &c.connections {
        let _ = writeln!(
            out,
            "  n{} -->|\"{}\"| n{}",
            drawn(c, e.src),
            mermaid_text(&conn(&e.reach)),
            drawn(c, e.dst)
        );
    }
    out
}

/// A Mermaid identifier for a namespace.
fn id(ns: &str) -> String {
    ns.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot(c: &Connectivity) -> String {
    let mut out = String::from(
        "digraph netpol {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for (ns, nodes) in groups(c) {
        let indent = if let Some(ns) = ns {
            let _ = writeln!(
                out,
                "  subgraph \"cluster_{0}\" {{\n    label=\"{0}\";",
                dot_text(ns)
            );
            "    "
        } else {
            "  "
        };
        for i in nodes {
            let Some(node) = c.universe.nodes.get(i) else {
                continue;
            };
            let shape = match node.kind {
                NodeKind::Workload { .. } => "",
                NodeKind::External { .. } | NodeKind::Dns(_) => ", shape=hexagon",
                NodeKind::Entity(_) => ", shape=ellipse",
            };
            let _ = writeln!(
                out,
                "{indent}\"{}\" [label=\"{}\"{shape}];",
                dot_text(&node.name),
                dot_text(&label(&node.kind))
            );
        }
        if ns.is_some() {
            out.push_str("  }\n");
        }
    }
    for e in &c.connections {
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\"];",
            dot_text(c.name(e.src)),
            dot_text(c.name(e.dst)),
            dot_text(&conn(&e.reach))
        );
    }
    out.push_str("}\n");
    out
}
