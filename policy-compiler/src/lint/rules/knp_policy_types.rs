use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::policy::Body;
use crate::lint::{Context, finding};
use crate::objects::kubernetes::PolicyType;

declare_rule! {
    /// NetworkPolicy rules of a direction its `policyTypes` leaves out: Cilium enforces them.
    ///
    /// ## What
    /// A NetworkPolicy lists `policyTypes` without `Ingress` but has `ingress` rules, or
    /// without `Egress` but has `egress` rules.
    ///
    /// ## Why
    /// The Kubernetes API says such rules are ignored. Cilium turns every rule of both lists
    /// into policy whatever `policyTypes` says; the types only decide the default-deny entry
    /// of a direction without rules (cilium/cilium@507103c6 pkg/k8s/network_policy.go:158-274).
    /// So under Cilium the pods are isolated in that direction and only the listed peers get
    /// through, while other CNIs (and readers of the spec) let everything through.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   podSelector: {}
    ///   policyTypes: [Ingress]
    ///   egress:
    ///     - to: [{namespaceSelector: {}}]
    /// ```
    ///
    /// ## Fix
    /// Add the direction to `policyTypes` if the rules are meant, or remove the rules.
    pub struct KnpPolicyTypes {
        code: "knp-policy-types",
        id: "NP216",
        level: Warning,
        compiled: true,
    }
}

impl KnpPolicyTypes {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for policy in &cx.set.policies {
            let Body::Kubernetes(spec) = &policy.body else {
                continue;
            };
            let Some(types) = spec.policy_types.as_deref().filter(|t| !t.is_empty()) else {
                continue;
            };
            let sides = [
                (
                    "ingress",
                    "Ingress",
                    PolicyType::Ingress,
                    spec.ingress.as_ref().is_some_and(|r| !r.is_empty()),
                ),
                (
                    "egress",
                    "Egress",
                    PolicyType::Egress,
                    spec.egress.as_ref().is_some_and(|r| !r.is_empty()),
                ),
            ];
            for (key, name, kind, has_rules) in sides {
                if !has_rules || types.contains(&kind) {
                    continue;
                }
                out.push(finding(
                    &Self::META,
                    policy
                        .node
                        .at(&[Step::Key("spec"), Step::Key(key)], true)
                        .span,
                    format!(
                        "`policyTypes` leaves out `{name}`, but Cilium enforces these `{key}` rules"
                    ),
                    "enforced by Cilium, ignored by the Kubernetes spec",
                    format!("add `{name}` to `policyTypes` if the rules are meant, or remove them"),
                ));
            }
        }
    }
}
