//! `netpol graph`: the allowed connectivity as a picture — Mermaid (GitHub renders it in
//! Markdown) or Graphviz DOT — with one box per namespace.
//!
//! ```text
//! Connectivity ──(compact: address ranges and DNS names become one `world` node; `host` on
//!                 every port, the kubelet's probes, is left out)──> Picture {boxes, edges}
//!              ──> mermaid | dot
//! ```
//!
//! Output is sorted like the connection list, so it is byte-stable.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::engine::reach::Reach;
use crate::flow::universe::NodeKind;
use crate::report::connectivity::{Connectivity, conn};

/// The picture formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Workload,
    Outside,
    Entity,
}

/// A node as drawn.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Drawn {
    /// The namespace box it sits in.
    namespace: Option<String>,
    key: String,
    label: String,
    shape: Shape,
}

/// What is drawn: nodes by key, edges by (from, to) with the ports allowed.
#[derive(Debug, Default)]
struct Picture {
    nodes: BTreeMap<String, Drawn>,
    edges: BTreeMap<(String, String), Reach>,
    /// Connections left out, said in a comment.
    omitted: Vec<String>,
}

fn drawn(kind: &NodeKind, name: &str, compact: bool) -> Drawn {
    let (label, shape) = match kind {
        NodeKind::Workload { name, kind, .. } if kind == "Profile" => {
            (name.clone(), Shape::Workload)
        }
        NodeKind::Workload { name, kind, .. } => (format!("{name} ({kind})"), Shape::Workload),
        NodeKind::External { .. } | NodeKind::Dns(_) if compact => {
            ("world".to_owned(), Shape::Outside)
        }
        NodeKind::External { first, last, .. } => (format!("{first} - {last}"), Shape::Outside),
        NodeKind::Dns(name) => (name.clone(), Shape::Outside),
        NodeKind::Entity(e) => (e.clone(), Shape::Entity),
    };
    let key = if shape == Shape::Outside && compact {
        "world".to_owned()
    } else {
        name.to_owned()
    };
    Drawn {
        namespace: kind.namespace().map(str::to_owned),
        key,
        label,
        shape,
    }
}

fn picture(c: &Connectivity, compact: bool) -> Picture {
    let mut p = Picture::default();
    let mut hidden_host = 0;
    for e in &c.connections {
        let (Some(src), Some(dst)) = (c.universe.nodes.get(e.src), c.universe.nodes.get(e.dst))
        else {
            continue;
        };
        if compact && matches!(&src.kind, NodeKind::Entity(h) if h == "host") && e.reach.is_all() {
            hidden_host += 1;
            continue;
        }
        let (a, b) = (
            drawn(&src.kind, &src.name, compact),
            drawn(&dst.kind, &dst.name, compact),
        );
        let edge = p.edges.entry((a.key.clone(), b.key.clone())).or_default();
        *edge = edge.union(&e.reach);
        p.nodes.entry(a.key.clone()).or_insert(a);
        p.nodes.entry(b.key.clone()).or_insert(b);
    }
    if compact {
        fold_common(&mut p);
    }
    if hidden_host > 0 {
        p.omitted.push(format!(
            "host (the node: kubelet probes) reaches {hidden_host} workloads on every port: not drawn"
        ));
    }
    if compact {
        p.omitted.push(
            "world: every address range and DNS name outside the cluster, as one node".to_owned(),
        );
    }
    p
}

/// Edges that most workloads that open connections (three quarters or more, at least 3) have
/// to one destination with
/// the same ports become one edge from a node that stands for them ("41 workloads"): the DNS
/// server, the API server, a metrics endpoint all scrape. A comment names the workloads left
/// out of the group.
fn fold_common(p: &mut Picture) {
    // The workloads that open connections in the picture.
    let workloads: Vec<String> = p
        .nodes
        .values()
        .filter(|n| n.shape == Shape::Workload)
        .filter(|n| p.edges.keys().any(|(a, _)| *a == n.key))
        .map(|n| n.key.clone())
        .collect();
    let mut by_target: BTreeMap<(String, Reach), Vec<String>> = BTreeMap::new();
    for ((a, b), reach) in &p.edges {
        if workloads.contains(a) {
            by_target
                .entry((b.clone(), reach.clone()))
                .or_default()
                .push(a.clone());
        }
    }
    for ((target, reach), sources) in by_target {
        let others: Vec<&String> = workloads.iter().filter(|w| **w != target).collect();
        if sources.len() < 3 || sources.len() * 4 < others.len() * 3 {
            continue;
        }
        for s in &sources {
            p.edges.remove(&(s.clone(), target.clone()));
        }
        let key = format!("({} workloads)", sources.len());
        let label = if sources.len() == others.len() {
            "every workload".to_owned()
        } else {
            format!("{} workloads", sources.len())
        };
        let missing: Vec<String> = others
            .iter()
            .filter(|w| !sources.contains(w))
            .map(|w| {
                p.nodes
                    .get(*w)
                    .map_or_else(|| (*w).clone(), |n| n.label.clone())
            })
            .collect();
        let target_label = p
            .nodes
            .get(&target)
            .map_or(target.as_str(), |n| n.label.as_str());
        if !missing.is_empty() {
            p.omitted.push(format!(
                "{label} → {target_label}: every workload of the picture but {}",
                missing.join(", ")
            ));
        }
        p.edges.insert((key.clone(), target.clone()), reach);
        p.nodes.entry(key.clone()).or_insert(Drawn {
            namespace: None,
            key,
            label,
            shape: Shape::Entity,
        });
    }
}

/// Render the picture. `compact` draws the outside as one `world` node and leaves out `host`
/// reaching workloads on every port (what the kubelet's probes need, allowed by default).
pub fn render(c: &Connectivity, format: Format, compact: bool) -> String {
    let p = picture(c, compact);
    match format {
        Format::Mermaid => mermaid(&p),
        Format::Dot => dot(&p),
    }
}

/// The nodes by namespace box, each with its index (its identifier in the picture).
fn boxes(p: &Picture) -> BTreeMap<Option<&str>, Vec<(usize, &Drawn)>> {
    let mut groups: BTreeMap<Option<&str>, Vec<(usize, &Drawn)>> = BTreeMap::new();
    for (i, n) in p.nodes.values().enumerate() {
        groups
            .entry(n.namespace.as_deref())
            .or_default()
            .push((i, n));
    }
    groups
}

/// Each node's identifier in the picture: its position.
fn ids(p: &Picture) -> BTreeMap<&str, usize> {
    p.nodes
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect()
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

fn mermaid(p: &Picture) -> String {
    let mut out = String::from("flowchart LR\n");
    for note in &p.omitted {
        let _ = writeln!(out, "  %% {note}");
    }
    for (ns, nodes) in boxes(p) {
        let indent = if let Some(ns) = ns {
            let _ = writeln!(out, "  subgraph ns_{}[\"{}\"]", id(ns), mermaid_text(ns));
            "    "
        } else {
            "  "
        };
        for (i, n) in nodes {
            let text = mermaid_text(&n.label);
            let shape = match n.shape {
                Shape::Workload => format!("[\"{text}\"]"),
                Shape::Outside => format!("{{{{\"{text}\"}}}}"),
                Shape::Entity => format!("([\"{text}\"])"),
            };
            let _ = writeln!(out, "{indent}n{i}{shape}");
        }
        if ns.is_some() {
            out.push_str("  end\n");
        }
    }
    let ids = ids(p);
    for ((a, b), reach) in &p.edges {
        let _ = writeln!(
            out,
            "  n{} -->|\"{}\"| n{}",
            ids.get(a.as_str()).unwrap_or(&0),
            mermaid_text(&conn(reach)),
            ids.get(b.as_str()).unwrap_or(&0)
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

fn dot(p: &Picture) -> String {
    let mut out = String::from("digraph netpol {\n");
    for note in &p.omitted {
        let _ = writeln!(out, "  // {note}");
    }
    out.push_str(
        "  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for (ns, nodes) in boxes(p) {
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
        for (_, n) in nodes {
            let shape = match n.shape {
                Shape::Workload => "",
                Shape::Outside => ", shape=hexagon",
                Shape::Entity => ", shape=ellipse",
            };
            let _ = writeln!(
                out,
                "{indent}\"{}\" [label=\"{}\"{shape}];",
                dot_text(&n.key),
                dot_text(&n.label)
            );
        }
        if ns.is_some() {
            out.push_str("  }\n");
        }
    }
    for ((a, b), reach) in &p.edges {
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\"];",
            dot_text(a),
            dot_text(b),
            dot_text(&conn(reach))
        );
    }
    out.push_str("}\n");
    out
}
