use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;
use crate::engine::eval::{NamedPorts, NoPorts};
use crate::engine::index::Evaluator;
use crate::lint::{Context, global};
use crate::objects::Direction;

/// Workloads named in one finding, at most.
const NAMED: usize = 5;

declare_rule! {
    /// Workloads no policy isolates, per namespace and direction (coverage).
    ///
    /// ## What
    /// With workload manifests or `--inventory`, the workloads of a namespace that are not
    /// under default deny for ingress (or egress): every flow that direction is allowed.
    /// A note, not a warning: coverage grows one workload at a time.
    ///
    /// ## Why
    /// Cilium enforces nothing on an endpoint no policy with default deny selects
    /// (docs/semantics.md §2.2): such workloads accept (or send) anything, whatever the
    /// other policies of the namespace say. Knowing which they are is the first step of a
    /// default-deny rollout.
    ///
    /// ## Example
    /// A namespace with a policy for `api` only: `web` and `worker` are reported.
    ///
    /// ## Fix
    /// Add a policy for each workload (or a namespace-wide default deny, `endpointSelector:
    /// {}` with the allows every pod needs).
    pub struct UnisolatedWorkloads {
        code: "unisolated-workloads",
        id: "NP222",
        level: Note,
        compiled: true,
    }
}

impl UnisolatedWorkloads {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let Some(workloads) = cx.workloads else {
            return;
        };
        let ports: &dyn NamedPorts = match cx.inventory {
            Some(inv) => inv,
            None => &NoPorts,
        };
        let mut evaluator = Evaluator::new(cx.index, ports);
        // (namespace, direction) → (workloads, the open ones)
        let mut open: BTreeMap<(&str, &str), (usize, Vec<String>)> = BTreeMap::new();
        for w in workloads {
            for (direction, name) in [
                (Direction::Ingress, "ingress"),
                (Direction::Egress, "egress"),
            ] {
                let entry = open.entry((w.namespace.as_str(), name)).or_default();
                entry.0 += 1;
                if !evaluator.isolated(&w.peer, direction) {
                    entry.1.push(format!("`{}`", w.name));
                }
            }
        }
        for ((namespace, direction), (total, names)) in open {
            if names.is_empty() {
                continue;
            }
            let mut shown: Vec<String> = names.iter().take(NAMED).cloned().collect();
            if names.len() > NAMED {
                shown.push(format!("and {} more", names.len() - NAMED));
            }
            out.push(global(
                &Self::META,
                format!(
                    "{} of {total} workloads in `{namespace}` are not isolated on {direction}: {}",
                    names.len(),
                    shown.join(", ")
                ),
                format!("no policy with {direction} default deny selects them: every {direction} flow is allowed"),
            ));
        }
    }
}
