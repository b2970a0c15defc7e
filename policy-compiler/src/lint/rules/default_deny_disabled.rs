use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::policy::Body;
use crate::lint::{Context, finding};

declare_rule! {
    /// A rule with allow rules and `enableDefaultDeny: false`: it allows, but isolates nothing.
    ///
    /// ## What
    /// A rule has `ingress` (or `egress`) allow items and `enableDefaultDeny: {ingress: false}`
    /// (`egress: false`).
    ///
    /// ## Why
    /// With `enableDefaultDeny` false for a direction, the rule's entries do not make that
    /// direction default deny; its allow rules then change nothing for pods no other policy
    /// isolates: everything was allowed already (cilium/cilium@507103c6
    /// pkg/policy/api/rule_validation.go:47-64, pkg/policy/repository.go
    /// `computePolicyEnforcementAndRules`). It is right for an audit or "observe" phase, and
    /// for deny-only rules, but readers often take the allows for an allow-list. When the
    /// agents run with `enable-non-default-deny-policies: false`, the setting is ignored and
    /// the rule is default deny after all.
    ///
    /// ## Example
    /// ```yaml
    /// spec:
    ///   endpointSelector: {matchLabels: {app: api}}
    ///   enableDefaultDeny: {ingress: false}
    ///   ingress:
    ///     - fromEndpoints: [{matchLabels: {app: web}}]
    /// ```
    ///
    /// ## Fix
    /// Remove `enableDefaultDeny` (or set it to true) when the allows should be the only
    /// traffic; keep it, and acknowledge the finding with the annotation
    /// `netpol.dev/lint-allow: default-deny-disabled: reason`, when the rule is meant to add
    /// to other policies.
    pub struct DefaultDenyDisabled {
        code: "default-deny-disabled",
        id: "NP205",
        level: Warning,
        compiled: false,
    }
}

impl DefaultDenyDisabled {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for policy in &cx.set.policies {
            // `netpol compile` writes `enableDefaultDeny: false` for a profile's audit phase,
            // on purpose (annotation `netpol.dev/enforce: audit`).
            if policy.audit_phase {
                continue;
            }
            let Body::Cilium(rules) = &policy.body else {
                continue;
            };
            for (rule, base) in rules {
                let Some(dd) = rule.enable_default_deny.as_ref() else {
                    continue;
                };
                let sides = [
                    (
                        "ingress",
                        dd.ingress,
                        rule.ingress.as_ref().is_some_and(|v| !v.is_empty()),
                    ),
                    (
                        "egress",
                        dd.egress,
                        rule.egress.as_ref().is_some_and(|v| !v.is_empty()),
                    ),
                ];
                for (direction, setting, allows) in sides {
                    if setting != Some(false) || !allows {
                        continue;
                    }
                    let path: Vec<Step<'static>> = base
                        .iter()
                        .copied()
                        .chain([Step::Key("enableDefaultDeny"), Step::Key(direction)])
                        .collect();
                    let span = policy.node.at(&path, true).span;
                    let (message, help) = if cx.settings.default_deny_forced {
                        (
                            format!("`enableDefaultDeny.{direction}: false` is ignored: the agents force default deny"),
                            "`enable-non-default-deny-policies: false` makes every rule default deny; remove the setting".to_owned(),
                        )
                    } else {
                        (
                            format!(
                                "the {direction} allows of this rule isolate nothing: `enableDefaultDeny.{direction}` is false"
                            ),
                            format!(
                                "pods no other policy isolates still accept everything {direction}; remove `enableDefaultDeny.{direction}` to allow only what the rule lists"
                            ),
                        )
                    };
                    out.push(finding(
                        &Self::META,
                        span,
                        message,
                        "no default deny from this rule",
                        help,
                    ));
                }
            }
        }
    }
}
