//! `netpol lint`: what is legal but broken, dangerous or surprising in a set of policies.
//!
//! ```text
//! PolicySet + Index (+ Universe of workloads) ──each Rule──> findings (Diagnostic with a code)
//!     ──allow / deny / `netpol.dev/lint-allow` annotations──> sorted by file, line, column, code
//!     ──output──> text (the diagnostic renderer) | json | sarif
//! ```
//!
//! One file per rule under [`rules`]: a unit struct declared with [`declare_rule!`], whose doc
//! comment is the rule's documentation (`netpol lint --explain CODE` prints it; sections
//! What, Why, Example, Fix). Codes are kebab-case names, each with a number `NP2xx`; neither
//! is ever reused. Rules read the imported objects (for positions) and the engine's entries
//! and index (for meaning), so that what they say agrees with `verify` and `explain`.
//!
//! What Cilium itself refuses is not linted again: the import's diagnostics (`invalid-policy`
//! and its warnings) and the profile compiler's warnings are reported with the findings.

/// Declare a rule: its doc comment becomes [`Meta::doc`].
///
/// ```ignore
/// declare_rule! {
///     /// One-line summary.
///     ///
///     /// ## What
///     /// …
///     pub struct MyRule { code: "my-rule", id: "NP299", level: Warning, compiled: true }
/// }
/// ```
macro_rules! declare_rule {
    (
        $(#[doc = $doc:literal])+
        $vis:vis struct $name:ident {
            code: $code:literal,
            id: $id:literal,
            level: $level:ident,
            compiled: $compiled:literal $(,)?
        }
    ) => {
        $(#[doc = $doc])+
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;

        impl $name {
            pub const META: $crate::lint::Meta = $crate::lint::Meta {
                code: $code,
                id: $id,
                level: $crate::diagnostic::Severity::$level,
                doc: concat!($($doc, "\n"),+),
                compiled: $compiled,
            };
        }
    };
}

pub mod output;
pub mod rules;
pub mod sarif;
mod scope;

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::source::{SourceMap, Span};
use crate::diagnostic::{Diagnostic, Severity};
use crate::document::{Node, Value};
use crate::engine::identity::Peer;
use crate::engine::index::Index;
use crate::engine::policy::{COMPILED_PROFILES, Policy, PolicySet};
use crate::engine::settings::Settings;
use crate::flow::inventory::Inventory;

pub use scope::{CiliumItem, Workload, cilium_items};

/// What a rule is: its code, number, level and documentation.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// Stable kebab-case code, e.g. `fqdn-without-dns-proxy`.
    pub code: &'static str,
    /// Stable number, e.g. `NP201`.
    pub id: &'static str,
    /// The level of its findings (`--deny CODE` makes them errors).
    pub level: Severity,
    /// The rule's doc comment, as written (each line keeps the space after `///`).
    pub doc: &'static str,
    /// Whether it also judges the policies compiled from profiles (false when the compiler
    /// already warns about the same thing in the profile).
    pub compiled: bool,
}

impl Meta {
    /// The documentation, Markdown, without the space each doc line starts with.
    pub fn documentation(&self) -> String {
        let mut out = String::new();
        for line in self.doc.lines() {
            out.push_str(line.strip_prefix(' ').unwrap_or(line));
            out.push('\n');
        }
        out.trim().to_owned() + "\n"
    }

    /// The first paragraph of the documentation, on one line.
    pub fn summary(&self) -> String {
        let doc = self.documentation();
        let mut words = Vec::new();
        for line in doc.lines() {
            if line.trim().is_empty() {
                break;
            }
            words.push(line.trim());
        }
        words.join(" ")
    }

    /// The text of the `## NAME` section of the documentation, if any.
    pub fn section(&self, name: &str) -> Option<String> {
        let doc = self.documentation();
        let heading = format!("## {name}");
        let mut lines = doc.lines().skip_while(|l| l.trim() != heading);
        lines.next()?;
        let body: Vec<&str> = lines.take_while(|l| !l.starts_with("## ")).collect();
        Some(body.join("\n").trim().to_owned())
    }
}

/// A lint rule.
pub trait Rule: Sync {
    fn meta(&self) -> &'static Meta;
    /// Push a finding for everything the rule finds (use [`Meta::level`] and [`Meta::code`]).
    fn check(&self, cx: &Context<'_>, out: &mut Vec<Diagnostic>);
}

/// What the rules read.
#[derive(Debug)]
pub struct Context<'a> {
    pub sources: &'a SourceMap,
    pub set: &'a PolicySet,
    pub index: &'a Index,
    pub settings: &'a Settings,
    /// The live inventory and the workload manifests, when given.
    pub inventory: Option<&'a Inventory>,
    /// The workloads of the inventory, the manifests and the profiles; `None` when nothing
    /// describes the cluster (rules about what selectors select then say nothing).
    pub workloads: Option<&'a [Workload]>,
    /// The workloads by namespace (indexes into `workloads`).
    pub by_namespace: BTreeMap<String, Vec<usize>>,
}

impl<'a> Context<'a> {
    pub fn new(
        sources: &'a SourceMap,
        set: &'a PolicySet,
        index: &'a Index,
        settings: &'a Settings,
        inventory: Option<&'a Inventory>,
        workloads: Option<&'a [Workload]>,
    ) -> Self {
        let mut by_namespace: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, w) in workloads.unwrap_or_default().iter().enumerate() {
            by_namespace.entry(w.namespace.clone()).or_default().push(i);
        }
        Self {
            sources,
            set,
            index,
            settings,
            inventory,
            workloads,
            by_namespace,
        }
    }

    /// The policy at `index` of the set.
    pub fn policy(&self, index: usize) -> Option<&'a Policy> {
        self.set.policies.get(index)
    }
}

/// Every rule, in code-number order.
pub fn rules() -> &'static [&'static dyn Rule] {
    rules::ALL
}

/// The rule of a code (`fqdn-without-dns-proxy`) or number (`NP201`, any case).
pub fn find(code: &str) -> Option<&'static dyn Rule> {
    rules()
        .iter()
        .copied()
        .find(|r| r.meta().code == code || r.meta().id.eq_ignore_ascii_case(code))
}

/// Which rules run and at which level.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Codes whose findings are dropped.
    pub allow: BTreeSet<&'static str>,
    /// Codes whose findings are errors.
    pub deny: BTreeSet<&'static str>,
}

/// The annotation that silences rules for one object: `netpol.dev/lint-allow: "CODE[,CODE]:
/// reason"`.
pub const ALLOW_ANNOTATION: &str = "netpol.dev/lint-allow";

/// Run every rule over `cx`; findings on policies compiled from profiles are moved to the
/// profile's declaration (when its file is in `cx.sources`). Sorted by file, line, column,
/// code.
pub fn run(cx: &Context<'_>, config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for rule in rules() {
        let meta = rule.meta();
        if config.allow.contains(meta.code) {
            continue;
        }
        let mut found = Vec::new();
        rule.check(cx, &mut found);
        for mut d in found {
            if config.deny.contains(meta.code) {
                d.severity = Severity::Error;
            }
            out.push(d);
        }
    }
    let allowed = annotated(cx);
    let compiled = cx
        .sources
        .files()
        .find(|(_, f)| f.path == std::path::Path::new(COMPILED_PROFILES))
        .map(|(id, _)| id);
    out.retain(|d| {
        let Some(span) = d.span else { return true };
        let meta = find(d.code).map(|r| r.meta());
        if Some(span.source) == compiled && meta.is_some_and(|m| !m.compiled) {
            return false;
        }
        !allowed.iter().any(|(range, codes)| {
            range.source == span.source
                && range.range().contains(&(span.offset as usize))
                && codes.contains(d.code)
        })
    });
    if let Some(compiled) = compiled {
        for d in &mut out {
            to_profile(cx, compiled, d);
        }
    }
    sort(cx.sources, &mut out);
    out
}

/// Sort findings by file, line, column and code; those without a place last.
pub fn sort(sources: &SourceMap, findings: &mut [Diagnostic]) {
    findings.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            let place = d.span.map(|s| {
                (
                    sources.get(s.source).map(|f| f.name.clone()),
                    s.offset,
                    s.len,
                )
            });
            (place.is_none(), place, d.code, d.message.clone())
        };
        key(a).cmp(&key(b))
    });
}

/// The objects' `netpol.dev/lint-allow` annotations: their spans and the codes they allow.
fn annotated(cx: &Context<'_>) -> Vec<(Span, BTreeSet<&'static str>)> {
    let mut out = Vec::new();
    for p in &cx.set.policies {
        let Some(text) = p
            .node
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(ALLOW_ANNOTATION))
            .and_then(Node::as_str)
        else {
            continue;
        };
        let codes = text.split_once(':').map_or(text, |(codes, _)| codes);
        let codes: BTreeSet<&'static str> = codes
            .split(',')
            .filter_map(|c| find(c.trim()).map(|r| r.meta().code))
            .collect();
        if !codes.is_empty() {
            out.push((p.node.span, codes));
        }
    }
    out
}

/// A finding on a policy compiled from a profile: point at the declaration it comes from
/// (`netpol.dev/source: profiles/media.yaml:12`), whose file the profiles' sources hold.
fn to_profile(cx: &Context<'_>, compiled: crate::diagnostic::source::SourceId, d: &mut Diagnostic) {
    let Some(span) = d.span.filter(|s| s.source == compiled) else {
        return;
    };
    let Some(source) = cx
        .set
        .policies
        .iter()
        .filter(|p| p.node.span.source == compiled)
        .find(|p| p.node.span.range().contains(&(span.offset as usize)))
        .and_then(|p| p.profile.as_deref())
    else {
        return;
    };
    let Some((file, line)) = source.rsplit_once(':') else {
        return;
    };
    let Ok(line) = line.parse::<usize>() else {
        return;
    };
    let Some((id, f)) = cx.sources.files().find(|(_, f)| f.name == file) else {
        return;
    };
    let Some(text) = f.text.lines().nth(line.saturating_sub(1)) else {
        return;
    };
    let start: usize = f
        .text
        .lines()
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    let indent = text.len() - text.trim_start().len();
    let key = text.trim_start();
    let len = key.split(':').next().map_or(key.len(), str::len);
    d.span = Some(Span::new(id, start + indent, len));
    d.label = Some("in the policy compiled from this declaration".to_owned());
    d.related.clear();
}

/// A finding of `meta` at `span`.
pub fn finding(
    meta: &Meta,
    span: Span,
    message: impl Into<String>,
    label: impl Into<String>,
    help: impl Into<String>,
) -> Diagnostic {
    let mut d = Diagnostic::warning(meta.code, span, message)
        .with_label(label)
        .with_help(help);
    d.severity = meta.level;
    d
}

/// A finding of `meta` about no place in a file (coverage of a namespace, say).
pub fn global(meta: &Meta, message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
    let mut d = Diagnostic::global(meta.code, message).with_help(help);
    d.severity = meta.level;
    d
}

/// Whether the value at `node` is a list written empty (`[]`).
pub fn is_empty_list(node: &Node) -> bool {
    matches!(&node.value, Value::Seq(items) if items.is_empty())
}

/// The identity of a pod labelled `labels` in `namespace` (for rules that ask whether a
/// selector would select a well-known workload, such as the cluster's DNS).
pub fn pod_peer(namespace: &str, labels: &[(&str, &str)], cluster: &str) -> Peer {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Peer {
        labels: std::sync::Arc::new(crate::engine::identity::pod_labels(
            namespace, &labels, None, None, cluster,
        )),
        ..Peer::default()
    }
}
