use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::engine::policy::{Body, PolicyKind};
use crate::engine::selector::{KeyForm, Selector};
use crate::lint::{Context, finding};

declare_rule! {
    /// A policy whose `endpointSelector` (or `podSelector`) selects no workload of the cluster.
    ///
    /// ## What
    /// With workload manifests or `--inventory`, a rule's subject selects none of the
    /// workloads they describe. Namespaces they say nothing about are not judged, nor are
    /// selectors that may select in any namespace (cluster-wide policies without a namespace
    /// label): manifests rarely describe every namespace.
    ///
    /// ## Why
    /// A policy that applies to nothing protects nothing: usually a label typo (`app:
    /// sonar`), a label the pod template does not carry, or a policy in the wrong namespace.
    ///
    /// ## Example
    /// ```yaml
    /// metadata: {name: sonarr, namespace: media}
    /// spec:
    ///   endpointSelector: {matchLabels: {app: sonar}}
    /// ```
    ///
    /// ## Fix
    /// Use the labels of the pod template (`kubectl get pods -n media --show-labels`), or
    /// move the policy to the workload's namespace.
    pub struct SubjectSelectsNothing {
        code: "subject-selects-nothing",
        id: "NP219",
        level: Warning,
        compiled: true,
    }
}

impl SubjectSelectsNothing {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        if cx.workloads.is_none() {
            return;
        }
        for policy in &cx.set.policies {
            let ns = policy.namespace.as_deref();
            let subjects: Vec<(Selector, Vec<Step<'static>>)> = match &policy.body {
                Body::Cilium(rules) => rules
                    .iter()
                    .filter_map(|(rule, base)| {
                        let sel = rule.endpoint_selector.as_ref()?;
                        let compiled = match (policy.kind, ns) {
                            (PolicyKind::Cnp, Some(ns)) => {
                                Selector::compile_in(sel, KeyForm::Cilium, ns)
                            }
                            _ => Selector::compile(sel, KeyForm::Cilium),
                        };
                        let path = base
                            .iter()
                            .copied()
                            .chain([Step::Key("endpointSelector")])
                            .collect();
                        Some((compiled, path))
                    })
                    .collect(),
                Body::Kubernetes(spec) => match ns {
                    Some(ns) => vec![(
                        Selector::compile_in(&spec.pod_selector, KeyForm::Kubernetes, ns),
                        vec![Step::Key("spec"), Step::Key("podSelector")],
                    )],
                    None => Vec::new(),
                },
            };
            for (selector, path) in subjects {
                if selector.requirements.is_empty()
                    || selector.has_reserved()
                    || !cx.knows(&selector)
                {
                    continue;
                }
                if cx.selected(&selector).next().is_some() {
                    continue;
                }
                out.push(finding(
                    &Self::META,
                    policy.node.at(&path, true).span,
                    format!("{} applies to no workload: `{selector}` selects none", policy.display_name()),
                    "selects nothing",
                    "use the labels of the pod template, or put the policy in the workload's namespace",
                ));
            }
        }
    }
}
