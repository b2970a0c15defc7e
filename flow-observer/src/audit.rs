//! Live audit (`--policies DIR`): every new record is judged by netpol's policy engine exactly
//! as `netpol verify` would judge it (the record goes through the same flow reader), counted in
//! `netpol_flow_verdicts_total`, and a would-be drop is logged once, as a JSON line on stderr.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use netpol_compiler::diagnostic::source::SourceMap;
use netpol_compiler::diagnostic::{self, Style};
use netpol_compiler::document::files::Disk;
use netpol_compiler::engine::entry::{self, ServiceBackends};
use netpol_compiler::engine::eval::{NamedPorts, NoPorts};
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::settings::Settings;
use netpol_compiler::flow::inventory::Inventory;
use netpol_compiler::flow::{Reader, Record};
use netpol_compiler::report::verify::{PointReport, View};
use rustc_hash::FxHashSet;

/// Labels of `netpol_flow_verdicts_total`.
pub type VerdictKey = (&'static str, String, String, &'static str);

/// The policies and what has been judged.
#[derive(Debug)]
pub struct Audit {
    index: Index,
    sources: SourceMap,
    pub policies: usize,
    judged: FxHashSet<String>,
    /// `(verdict, source namespace, source workload, dropped at)` → records.
    pub verdicts: BTreeMap<VerdictKey, u64>,
    /// What the cluster's agents are configured with.
    settings: Settings,
}

impl Audit {
    /// Import the policies under `dir`; any error stops the agent (a half-read policy set
    /// would report wrong drops).
    pub fn load(dir: &Path, inventory: Option<&Inventory>, settings: Settings) -> Result<Self> {
        let imported = netpol_compiler::engine::policy::import_for(
            &Disk,
            &[dir.to_path_buf()],
            &settings.acceptance(),
        );
        if imported.diagnostics.has_errors() {
            let text =
                diagnostic::render_human(&imported.diagnostics, &imported.sources, Style::Plain);
            bail!("the policies in `{}` have errors:\n{text}", dir.display());
        }
        let entries = entry::build(
            &imported.set,
            inventory.map(|i| i as &dyn ServiceBackends),
            &settings,
        );
        Ok(Self {
            policies: imported.set.policies.len(),
            index: Index::new(entries),
            sources: imported.sources,
            judged: FxHashSet::default(),
            verdicts: BTreeMap::new(),
            settings,
        })
    }

    /// The policies of the cluster (from the watch caches), replacing the current ones; the
    /// counters and what was judged stay. Errors keep the previous policies.
    pub fn reload(
        &mut self,
        documents: Vec<(std::path::PathBuf, String)>,
        inventory: Option<&Inventory>,
    ) -> Result<()> {
        if documents.is_empty() {
            // No policy in the cluster (or the last one deleted): nothing to judge against,
            // which the import would call an empty directory.
            self.index = Index::default();
            self.sources = SourceMap::new();
            self.policies = 0;
            return Ok(());
        }
        let fs = netpol_compiler::document::files::Memory::new(documents);
        let imported = netpol_compiler::engine::policy::import_for(
            &fs,
            &[std::path::PathBuf::from("cluster")],
            &self.settings.acceptance(),
        );
        if imported.diagnostics.has_errors()
            && imported.set.policies.is_empty()
            && imported.set.stats.rejected == 0
        {
            let text =
                diagnostic::render_human(&imported.diagnostics, &imported.sources, Style::Plain);
            bail!("cannot read the cluster's policies:\n{text}");
        }
        // Invalid objects are left out, as Cilium leaves them out.
        self.index = Index::new(entry::build(
            &imported.set,
            inventory.map(|i| i as &dyn ServiceBackends),
            &self.settings,
        ));
        self.sources = imported.sources;
        self.policies = imported.set.policies.len();
        Ok(())
    }

    /// No policies yet (watching the cluster): everything is allowed until they arrive.
    pub fn empty(settings: Settings) -> Self {
        Self {
            index: Index::default(),
            sources: SourceMap::new(),
            policies: 0,
            judged: FxHashSet::default(),
            verdicts: BTreeMap::new(),
            settings,
        }
    }

    /// Judge the records not judged before; returns the log lines of new would-be drops.
    pub fn judge(&mut self, records: &[Record], inventory: Option<&Inventory>) -> Vec<String> {
        let cluster: &dyn NamedPorts = match inventory {
            Some(inv) => inv,
            None => &NoPorts,
        };
        let mut reader = Reader::new(inventory, &self.settings.cluster_name);
        let mut fresh = Vec::new();
        for r in records {
            let Ok(line) = serde_json::to_string(r) else {
                continue;
            };
            // One verdict per flow: its endpoints and port, not its counters.
            let key = format!("{}|{:?}|{:?}", r.protocol, r.source, r.destination);
            if !self.judged.insert(key) {
                continue;
            }
            reader.line(fresh.len() + 1, &line);
            fresh.push(r);
        }
        let mut ev = Evaluator::new(&self.index, cluster);
        let mut logs = Vec::new();
        for flow in &reader.set.flows {
            let view = View::of(flow, flow.is_reply());
            let decision = ev.decide(&view.query());
            let allowed = decision.allowed();
            let src_ns = view.src.namespace.as_deref().unwrap_or("").to_owned();
            let src_wl = view.src.workload.as_deref().unwrap_or("").to_owned();
            let at = match decision.dropped_at() {
                Some(netpol_compiler::objects::Direction::Egress) => "egress",
                Some(netpol_compiler::objects::Direction::Ingress) => "ingress",
                None => "",
            };
            let verdict = if allowed { "allowed" } else { "denied" };
            *self
                .verdicts
                .entry((verdict, src_ns, src_wl, at))
                .or_default() += 1;
            if !allowed {
                let point = if at == "egress" {
                    &decision.egress
                } else {
                    &decision.ingress
                };
                let report = PointReport::new(&self.index, &self.sources, point);
                logs.push(
                    serde_json::json!({
                        "msg": "would-be drop",
                        "source": view.src.display(),
                        "destination": view.dst.display(),
                        "protocol": view.proto.map(|p| p.to_string()),
                        "port": view.port,
                        "dropped_at": at,
                        "why": report.summary(),
                    })
                    .to_string(),
                );
            }
        }
        logs
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// Regression: with the cluster's last policy deleted, the reload failed (cannot read
    /// `cluster`), logged at every reload, and the deleted policy kept being judged against.
    #[test]
    fn the_last_policy_deleted_leaves_none() {
        let policy = r#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"media"},"spec":{"podSelector":{},"policyTypes":["Ingress"]}}"#;
        let mut audit = Audit::empty(Settings::default());
        audit
            .reload(
                vec![(
                    "cluster/NetworkPolicy/media/deny.json".into(),
                    policy.to_owned(),
                )],
                None,
            )
            .unwrap();
        assert_eq!(audit.policies, 1);
        audit.reload(Vec::new(), None).unwrap();
        assert_eq!(audit.policies, 0);
    }
}
