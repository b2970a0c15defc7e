//! `netpol diff`: the connectivity a change adds, removes and changes, and what of it matters
//! for security, as netpol-analyzer's diff (txt, csv), JSON, or a pull-request comment.
//!
//! ```text
//! base Connectivity ─┐  (universes built with the peers both revisions name)
//!                    ├─ by (source, destination) ──> changed | added | removed
//! head Connectivity ─┘                           └─> security summary: new world exposure,
//!                                                    new egress to the internet, default deny
//!                                                    gained or lost, policies become invalid
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::engine::reach::Reach;
use crate::flow::universe::NodeKind;
use crate::objects::Direction;
use crate::report::comment::{self, cell, counted};
use crate::report::connectivity::{Connectivity, conn, csv_row};

pub use crate::report::comment::COMMENT_LIMIT;

/// The first line of the Markdown report: lets a workflow find and update its comment.
pub const MARKER: &str = "<!-- netpol-diff -->";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffType {
    Changed,
    Added,
    Removed,
}

impl fmt::Display for DiffType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Changed => "changed",
            Self::Added => "added",
            Self::Removed => "removed",
        })
    }
}

/// One connection whose ports differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: DiffType,
    pub src: String,
    pub dst: String,
    pub base: Reach,
    pub head: Reach,
    /// `workload ns/name[Kind] added` when an end exists in one revision only (netpol-analyzer's
    /// `workloads-diff-info`); empty otherwise.
    pub info: String,
}

/// Ports a change opens between a workload and the world outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opening {
    pub workload: String,
    /// The address ranges and DNS names on the other end that the change opens alike.
    pub peers: Vec<String>,
    /// What head allows that base did not.
    pub conn: String,
}

/// What the peers of an opening are called when they are every address outside the cluster.
pub const EVERY_ADDRESS: &str = "world (every address)";

/// One opening per workload and ports, with every peer it reaches so; when those are all the
/// address ranges of the direction (`everywhere`), they are [`EVERY_ADDRESS`] (DNS names
/// included).
fn grouped(openings: Vec<(String, String, String)>, everywhere: &BTreeSet<&str>) -> Vec<Opening> {
    let mut by: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (workload, peer, conn) in openings {
        by.entry((workload, conn)).or_default().push(peer);
    }
    by.into_iter()
        .map(|((workload, conn), mut peers)| {
            if !everywhere.is_empty() && everywhere.iter().all(|r| peers.iter().any(|p| p == r)) {
                peers = vec![EVERY_ADDRESS.to_owned()];
            }
            Opening {
                workload,
                peers,
                conn,
            }
        })
        .collect()
}

/// A workload whose default deny changed in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Isolation {
    pub workload: String,
    pub direction: Direction,
    /// `true`: head is default-deny where base was not; `false`: lost.
    pub gained: bool,
}

/// What a reviewer must see first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Connections from outside the cluster (`world`) to workloads that base did not allow,
    /// by workload and ports.
    pub new_world_exposure: Vec<Opening>,
    /// Connections from workloads to the internet (address ranges, DNS names) that base did
    /// not allow.
    pub new_egress: Vec<Opening>,
    pub isolation: Vec<Isolation>,
    /// Policy objects head has that Cilium would reject, and base did not.
    pub invalid_policies: Vec<String>,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.new_world_exposure.is_empty()
            && self.new_egress.is_empty()
            && self.isolation.is_empty()
            && self.invalid_policies.is_empty()
    }

    pub fn lost_isolation(&self) -> impl Iterator<Item = &Isolation> {
        self.isolation.iter().filter(|i| !i.gained)
    }
}

/// One revision, as the diff reads it.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// `origin/main`, a directory, `working tree`.
    pub label: &'a str,
    pub connectivity: &'a Connectivity,
    /// Kinds and names of the policy objects Cilium would reject.
    pub invalid: &'a [String],
}

/// The difference between two revisions.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    pub base: String,
    pub head: String,
    /// Changed, then added, then removed; each sorted by its text line.
    pub changes: Vec<Change>,
    pub summary: Summary,
}

/// Compare `base` with `head`.
pub fn compare(base: Side<'_>, head: Side<'_>) -> Diff {
    let by_pair = |c: &Connectivity| -> BTreeMap<(String, String), Reach> {
        c.connections
            .iter()
            .map(|x| {
                (
                    (c.name(x.src).to_owned(), c.name(x.dst).to_owned()),
                    x.reach.clone(),
                )
            })
            .collect()
    };
    let workloads = |c: &Connectivity| -> BTreeSet<String> {
        c.universe
            .nodes
            .iter()
            .filter(|n| n.kind.is_workload())
            .map(|n| n.name.clone())
            .collect()
    };
    let (b, h) = (by_pair(base.connectivity), by_pair(head.connectivity));
    let (bw, hw) = (workloads(base.connectivity), workloads(head.connectivity));
    let peer_kinds: BTreeMap<&str, &NodeKind> = base
        .connectivity
        .universe
        .nodes
        .iter()
        .chain(&head.connectivity.universe.nodes)
        .map(|n| (n.name.as_str(), &n.kind))
        .collect();
    let pairs: BTreeSet<&(String, String)> = b.keys().chain(h.keys()).collect();
    let mut changes = Vec::new();
    let mut summary = Summary::default();
    let (mut exposure, mut egress) = (Vec::new(), Vec::new());
    for pair in pairs {
        let none = Reach::none();
        let (old, new) = (b.get(pair).unwrap_or(&none), h.get(pair).unwrap_or(&none));
        if old == new {
            continue;
        }
        let kind = match (old.is_empty(), new.is_empty()) {
            (true, _) => DiffType::Added,
            (_, true) => DiffType::Removed,
            _ => DiffType::Changed,
        };
        let (src, dst) = pair;
        // A workload only one revision has.
        let odd = |name: &String| bw.contains(name) != hw.contains(name);
        let ends: Vec<&str> = [src, dst]
            .into_iter()
            .filter(|n| odd(n))
            .map(String::as_str)
            .collect();
        let info = if ends.is_empty() {
            String::new()
        } else {
            format!("workload {} {kind}", ends.join(" and "))
        };
        let opened = new.minus(old);
        if !opened.is_empty() {
            let (src_kind, dst_kind) = (peer_kinds.get(src.as_str()), peer_kinds.get(dst.as_str()));
            if matches!(src_kind, Some(NodeKind::External { .. })) {
                exposure.push((dst.clone(), src.clone(), conn(&opened)));
            }
            if matches!(dst_kind, Some(NodeKind::External { .. } | NodeKind::Dns(_))) {
                egress.push((src.clone(), dst.clone(), conn(&opened)));
            }
        }
        changes.push(Change {
            kind,
            src: src.clone(),
            dst: dst.clone(),
            base: old.clone(),
            head: new.clone(),
            info,
        });
    }
    changes.sort_by_cached_key(|c| (c.kind, text_line(c)));
    let ranges = |inbound: bool| -> BTreeSet<&str> {
        head.connectivity
            .universe
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::External { inbound: i, .. } if i == inbound))
            .map(|n| n.name.as_str())
            .collect()
    };
    summary.new_world_exposure = grouped(exposure, &ranges(true));
    summary.new_egress = grouped(egress, &ranges(false));
    summary.isolation = isolation(base.connectivity, head.connectivity);
    let was_invalid: BTreeSet<&String> = base.invalid.iter().collect();
    summary.invalid_policies = head
        .invalid
        .iter()
        .filter(|p| !was_invalid.contains(p))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Diff {
        base: base.label.to_owned(),
        head: head.label.to_owned(),
        changes,
        summary,
    }
}

/// Default deny gained or lost by the workloads both revisions have.
fn isolation(base: &Connectivity, head: &Connectivity) -> Vec<Isolation> {
    let of = |c: &Connectivity| -> BTreeMap<String, [bool; 2]> {
        c.universe
            .nodes
            .iter()
            .zip(&c.isolated)
            .filter(|(n, _)| n.kind.is_workload())
            .map(|(n, i)| (n.name.clone(), *i))
            .collect()
    };
    let (b, h) = (of(base), of(head));
    let mut out = Vec::new();
    for (name, old) in &b {
        let Some(new) = h.get(name) else { continue };
        for (i, direction) in [Direction::Ingress, Direction::Egress]
            .into_iter()
            .enumerate()
        {
            let (o, n) = (
                old.get(i).copied().unwrap_or(false),
                new.get(i).copied().unwrap_or(false),
            );
            if o != n {
                out.push(Isolation {
                    workload: name.clone(),
                    direction,
                    gained: n,
                });
            }
        }
    }
    out
}

fn refs(c: &Change) -> (String, String) {
    (conn(&c.base), conn(&c.head))
}

/// netpol-analyzer's text line of a change.
fn text_line(c: &Change) -> String {
    let (r1, r2) = refs(c);
    let mut line = format!(
        "diff-type: {}, source: {}, destination: {}, ref1: {r1}, ref2: {r2}",
        c.kind, c.src, c.dst
    );
    if !c.info.is_empty() {
        line.push_str(", workloads-diff-info: ");
        line.push_str(&c.info);
    }
    line
}

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Txt,
    Csv,
    Json,
    Md,
}

/// Render the diff. txt and csv print nothing when nothing changed (netpol-analyzer's
/// behaviour); JSON and Markdown always print a document.
pub fn render(d: &Diff, format: Format) -> String {
    match format {
        Format::Txt if d.changes.is_empty() => String::new(),
        Format::Txt => {
            let mut out = String::from("Connectivity diff:\n");
            for c in &d.changes {
                out.push_str(&text_line(c));
                out.push('\n');
            }
            out
        }
        Format::Csv if d.changes.is_empty() => String::new(),
        Format::Csv => {
            let mut out = csv_row(
                &[
                    "diff-type",
                    "source",
                    "destination",
                    "ref1",
                    "ref2",
                    "workloads-diff-info",
                ]
                .map(String::from),
            );
            for c in &d.changes {
                let (r1, r2) = refs(c);
                out.push_str(&csv_row(&[
                    c.kind.to_string(),
                    c.src.clone(),
                    c.dst.clone(),
                    r1,
                    r2,
                    c.info.clone(),
                ]));
            }
            out
        }
        Format::Json => json(d),
        Format::Md => markdown(d),
    }
}

fn json(d: &Diff) -> String {
    let changes: Vec<serde_json::Value> = d
        .changes
        .iter()
        .map(|c| {
            let (r1, r2) = refs(c);
            serde_json::json!({
                "diff-type": c.kind,
                "source": c.src,
                "destination": c.dst,
                "ref1": r1,
                "ref2": r2,
                "workloads-diff-info": c.info,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "base": d.base,
        "head": d.head,
        "summary": d.summary,
        "changes": changes,
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

/// The security summary as plain text lines (for the terminal, beside the txt and csv tables).
pub fn summary_text(d: &Diff) -> String {
    let s = &d.summary;
    let mut out = String::new();
    if s.is_empty() {
        return out;
    }
    out.push_str("security summary:\n");
    for o in &s.new_world_exposure {
        let _ = writeln!(
            out,
            "  newly exposed to world: {} from {} : {}",
            o.workload,
            o.peers.join(", "),
            o.conn
        );
    }
    for o in &s.new_egress {
        let _ = writeln!(
            out,
            "  new egress to world: {} to {} : {}",
            o.workload,
            o.peers.join(", "),
            o.conn
        );
    }
    for i in &s.isolation {
        let _ = writeln!(
            out,
            "  {} default deny for {}: {}",
            if i.gained { "gained" } else { "lost" },
            i.direction,
            i.workload
        );
    }
    for p in &s.invalid_policies {
        let _ = writeln!(out, "  became invalid (Cilium ignores it): {p}");
    }
    out
}

/// `` `a`, `b` ``.
fn code_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown pull-request comment: the marker, a one-line summary, the security summary,
/// then the changes as a table, long lists folded into `<details>`, under
/// [`COMMENT_LIMIT`] characters.
fn markdown(d: &Diff) -> String {
    let s = &d.summary;
    let mut out = format!("{MARKER}\n### netpol: connectivity diff\n\n");
    let count = |k: DiffType| d.changes.iter().filter(|c| c.kind == k).count();
    if d.changes.is_empty() && s.is_empty() {
        let _ = writeln!(
            out,
            "No connectivity change between `{}` and `{}`.",
            d.base, d.head
        );
        return out;
    }
    let mut headline = vec![
        counted(
            count(DiffType::Added),
            "connection added",
            "connections added",
        ),
        counted(count(DiffType::Removed), "removed", "removed"),
        counted(count(DiffType::Changed), "changed", "changed"),
    ];
    let lost = s.lost_isolation().count();
    let workloads = |o: &[Opening]| o.iter().map(|o| &o.workload).collect::<BTreeSet<_>>().len();
    for (n, one, many) in [
        (
            workloads(&s.new_world_exposure),
            "workload newly exposed to world",
            "workloads newly exposed to world",
        ),
        (
            workloads(&s.new_egress),
            "workload with new egress to world",
            "workloads with new egress to world",
        ),
        (lost, "default deny lost", "default denies lost"),
        (
            s.invalid_policies.len(),
            "policy became invalid",
            "policies became invalid",
        ),
    ] {
        if n > 0 {
            headline.push(format!("**⚠ {}**", counted(n, one, many)));
        }
    }
    let _ = writeln!(
        out,
        "{} (`{}` → `{}`)\n",
        headline.join(" · "),
        d.base,
        d.head
    );
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    sections.push((
        "Newly exposed to world (outside the cluster)".to_owned(),
        s.new_world_exposure
            .iter()
            .map(|o| format!("`{}` from {}: {}", o.workload, code_list(&o.peers), o.conn))
            .collect(),
    ));
    sections.push((
        "New egress to world (outside the cluster)".to_owned(),
        s.new_egress
            .iter()
            .map(|o| format!("`{}` to {}: {}", o.workload, code_list(&o.peers), o.conn))
            .collect(),
    ));
    sections.push((
        "Default deny lost".to_owned(),
        s.lost_isolation()
            .map(|i| format!("`{}` ({})", i.workload, i.direction))
            .collect(),
    ));
    sections.push((
        "Default deny gained".to_owned(),
        s.isolation
            .iter()
            .filter(|i| i.gained)
            .map(|i| format!("`{}` ({})", i.workload, i.direction))
            .collect(),
    ));
    sections.push((
        "Policies that became invalid (Cilium ignores them)".to_owned(),
        s.invalid_policies
            .iter()
            .map(|p| format!("`{p}`"))
            .collect(),
    ));
    if !s.is_empty() {
        out.push_str("#### Security summary\n\n");
        for (title, items) in &sections {
            if items.is_empty() {
                continue;
            }
            let _ = writeln!(out, "**{title}** ({})\n", items.len());
            let (shown, folded) = items.split_at(items.len().min(10));
            for i in shown {
                let _ = writeln!(out, "- {i}");
            }
            if !folded.is_empty() {
                out.push('\n');
                comment::open_details(&mut out, &format!("{} more", folded.len()), false);
                for i in folded {
                    let _ = writeln!(out, "- {i}");
                }
                out.push_str(comment::CLOSE_DETAILS);
            }
            out.push('\n');
        }
    }
    if d.changes.is_empty() {
        return out;
    }
    out.push_str("#### Connections\n\n");
    const HEADER: &str = "| diff-type | source | destination | base | head | workloads-diff-info |\n|---|---|---|---|---|---|\n";
    let rows: Vec<String> = d
        .changes
        .iter()
        .map(|c| {
            let (r1, r2) = refs(c);
            format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                c.kind,
                cell(&c.src),
                cell(&c.dst),
                cell(&r1),
                cell(&r2),
                cell(&c.info)
            )
        })
        .collect();
    const SHOWN: usize = 25;
    let (first, rest) = rows.split_at(rows.len().min(SHOWN));
    out.push_str(HEADER);
    for r in first {
        out.push_str(r);
    }
    if rest.is_empty() {
        return out;
    }
    // What does not fit under the limit is counted, never cut in the middle of a row.
    let closing = comment::CLOSE_DETAILS;
    let mut folded = String::from("\n");
    comment::open_details(
        &mut folded,
        &format!("{} more connections", rest.len()),
        false,
    );
    folded.push_str(HEADER);
    let mut omitted = 0;
    for (i, r) in rest.iter().enumerate() {
        if !comment::fits(
            out.len() + folded.len(),
            r.len(),
            closing.len() + comment::NOTE_ROOM,
        ) {
            omitted = rest.len() - i;
            break;
        }
        folded.push_str(r);
    }
    out.push_str(&folded);
    out.push_str(closing);
    if omitted > 0 {
        let _ = writeln!(
            out,
            "\n{omitted} more changes are not shown: a comment holds at most {COMMENT_LIMIT} characters. Run `netpol diff` locally for the whole list."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Proto;

    fn change(i: usize) -> Change {
        let mut head = Reach::none();
        head.set(Proto::Tcp, vec![(8080, 8080)]);
        Change {
            kind: DiffType::Added,
            src: format!("media/app-{i:05}[Deployment]"),
            dst: "databases/postgres[StatefulSet]".to_owned(),
            base: Reach::none(),
            head,
            info: String::new(),
        }
    }

    #[test]
    fn a_pull_request_comment_stays_under_githubs_limit_and_counts_what_it_leaves_out() {
        let d = Diff {
            base: "origin/main".to_owned(),
            head: "HEAD".to_owned(),
            changes: (0..5000).map(change).collect(),
            summary: Summary::default(),
        };
        let md = render(&d, Format::Md);
        assert!(md.chars().count() < COMMENT_LIMIT, "{}", md.len());
        assert!(md.starts_with("<!-- netpol-diff -->\n"));
        assert!(md.contains("5000 connections added · 0 removed · 0 changed"));
        let shown = md.lines().filter(|l| l.starts_with("| added |")).count();
        let note = format!(
            "{} more changes are not shown: a comment holds at most 65536 characters",
            5000 - shown
        );
        assert!(md.contains(&note), "{}", &md[md.len() - 300..]);
        // Every row is whole.
        assert!(
            md.lines()
                .filter(|l| l.starts_with('|'))
                .all(|l| l.ends_with('|'))
        );
    }

    #[test]
    fn a_small_diff_is_one_table_and_no_change_says_so() {
        let d = Diff {
            base: "a".to_owned(),
            head: "b".to_owned(),
            changes: (0..3).map(change).collect(),
            summary: Summary::default(),
        };
        let md = render(&d, Format::Md);
        assert!(!md.contains("<details>"));
        assert_eq!(md.lines().filter(|l| l.starts_with("| added |")).count(), 3);
        let none = Diff::default();
        assert!(render(&none, Format::Md).contains("No connectivity change"));
        assert_eq!(render(&none, Format::Txt), "");
        assert_eq!(render(&none, Format::Csv), "");
    }
}
