use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::lint::{Context, cilium_items, finding};

declare_rule! {
    /// A `toPorts` item without `ports`: it matches no traffic at all.
    ///
    /// ## What
    /// A `toPorts` entry has no `ports`, or `ports: []` (only `rules`, `serverNames`, …).
    ///
    /// ## Why
    /// Cilium makes one filter per listed port and none for the item, so it allows (or
    /// denies) nothing; the item still keeps its rule from being L3-only, and still turns on
    /// default deny (cilium/cilium@507103c6 pkg/policy/rule.go:361-413,
    /// pkg/policy/api/l4.go:345-366).
    ///
    /// ## Example
    /// ```yaml
    ///       toPorts:
    ///         - rules:
    ///             http: [{method: GET}]
    /// ```
    ///
    /// ## Fix
    /// Add the ports: `ports: [{port: "80", protocol: TCP}]`.
    pub struct ToPortsWithoutPorts {
        code: "toports-without-ports",
        id: "NP214",
        level: Warning,
        compiled: true,
    }
}

impl ToPortsWithoutPorts {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for item in cilium_items(cx) {
            for (i, pv) in item.item.ports.iter().flatten().enumerate() {
                if pv.ports.is_some_and(|p| !p.is_empty()) {
                    continue;
                }
                let verb = if item.item.section.is_deny() {
                    "denies"
                } else {
                    "allows"
                };
                out.push(finding(
                    &Self::META,
                    item.span(&[Step::Key("toPorts"), Step::Index(i)]),
                    format!("this `toPorts` item has no `ports`: it {verb} nothing"),
                    "no ports",
                    "list the ports: `ports: [{port: \"80\", protocol: TCP}]`",
                ));
            }
        }
    }
}
