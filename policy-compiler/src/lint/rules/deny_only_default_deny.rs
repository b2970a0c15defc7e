use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::policy::Body;
use crate::lint::{Context, finding};

declare_rule! {
    /// A rule with only deny rules in a direction, which also turns on default deny there.
    ///
    /// ## What
    /// A rule has `ingressDeny` but no `ingress` (or `egressDeny` but no `egress`) and does not
    /// say `enableDefaultDeny: {ingress: false}` (`egress: false`).
    ///
    /// ## Why
    /// Deny rules count like allow rules for default deny: Cilium sets the unset
    /// `enableDefaultDeny` of a direction to true when the rule has `ingress` *or*
    /// `ingressDeny` items (cilium/cilium@507103c6 pkg/policy/api/rule_validation.go:47-59).
    /// A policy meant to block one thing therefore also drops everything no other policy
    /// allows to (or from) the pods it selects.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   endpointSelector: {}
    ///   ingressDeny:
    ///     - fromEntities: [world]
    /// ```
    ///
    /// ## Fix
    /// If the policy should only deny, say so:
    /// ```yaml
    ///   enableDefaultDeny: {ingress: false}
    /// ```
    /// If default deny is intended, add the allow rules the pods need (or acknowledge the
    /// finding with the annotation `netpol.dev/lint-allow: deny-only-default-deny: reason`).
    pub struct DenyOnlyDefaultDeny {
        code: "deny-only-default-deny",
        id: "NP204",
        level: Warning,
        compiled: true,
    }
}

impl DenyOnlyDefaultDeny {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        if cx.settings.default_deny_forced {
            // `enable-non-default-deny-policies: false`: every rule is default deny anyway,
            // and `enableDefaultDeny` cannot change it.
        }
        for policy in &cx.set.policies {
            let Body::Cilium(rules) = &policy.body else {
                continue;
            };
            for (rule, base) in rules {
                let dd = rule.enable_default_deny.as_ref();
                let sides = [
                    (
                        "ingress",
                        "ingressDeny",
                        rule.ingress.as_ref().is_some_and(|v| !v.is_empty()),
                        rule.ingress_deny.as_ref().is_some_and(|v| !v.is_empty()),
                        dd.and_then(|d| d.ingress),
                    ),
                    (
                        "egress",
                        "egressDeny",
                        rule.egress.as_ref().is_some_and(|v| !v.is_empty()),
                        rule.egress_deny.as_ref().is_some_and(|v| !v.is_empty()),
                        dd.and_then(|d| d.egress),
                    ),
                ];
                for (direction, key, allows, denies, setting) in sides {
                    if allows || !denies || setting.is_some() {
                        continue;
                    }
                    let path: Vec<Step<'static>> =
                        base.iter().copied().chain([Step::Key(key)]).collect();
                    let span = policy.node.at(&path, true).span;
                    let help = if cx.settings.default_deny_forced {
                        format!(
                            "the agents force default deny (`enable-non-default-deny-policies: false`): add the {direction} allows the pods need"
                        )
                    } else {
                        format!(
                            "add `enableDefaultDeny: {{{direction}: false}}` if the rule should only deny, or the {direction} allows the pods need"
                        )
                    };
                    out.push(finding(
                        &Self::META,
                        span,
                        format!(
                            "deny-only rule: `{key}` also turns on {direction} default deny for the pods it selects"
                        ),
                        format!("everything else {direction} is dropped too"),
                        help,
                    ));
                }
            }
        }
    }
}
