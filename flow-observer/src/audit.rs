//! Live audit (`--policies DIR`, `--audit-cluster`): every record is judged by netpol's policy
//! engine exactly as `netpol verify` would judge it (the record goes through the same flow
//! reader), and judged again whenever the policies change or the record learns who its ends
//! are. The verdict is kept with the record (so what is judged is bounded by the table); a new
//! verdict is counted in `netpol_flow_verdicts_total`, and a new would-be drop is logged once,
//! as a JSON line on stderr.
//!
//! Policies `netpol compile` wrote for an `enforce: audit` profile are judged as if enforced:
//! the audit phase is for learning what enforcing would drop.

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

/// A verdict, as kept with a record: allowed, or dropped at egress or ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    DroppedAtEgress,
    DroppedAtIngress,
}

/// Would-be drops logged, at most this many remembered (then forgotten, and logged again).
const LOGGED_MAX: usize = 100_000;

/// The policies and what has been judged.
#[derive(Debug)]
pub struct Audit {
    index: Index,
    sources: SourceMap,
    pub policies: usize,
    /// Changes with every load of the policies: a record judged under another generation is
    /// judged again.
    pub generation: u32,
    /// The would-be drops logged (endpoints and port), so that many connections of one flow
    /// log once; bounded by [`LOGGED_MAX`], forgotten when the policies change.
    logged: FxHashSet<String>,
    /// `(verdict, source namespace, source workload, dropped at)` → records.
    pub verdicts: BTreeMap<VerdictKey, u64>,
    /// What the cluster's agents are configured with.
    settings: Settings,
}

impl Audit {
    /// Import the policies under `dir`; any error stops the agent (a half-read policy set
    /// would report wrong drops).
    pub fn load(dir: &Path, inventory: Option<&Inventory>, settings: Settings) -> Result<Self> {
        let settings = Settings {
            audit_as_enforced: true,
            ..settings
        };
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
            generation: 1,
            logged: FxHashSet::default(),
            verdicts: BTreeMap::new(),
            settings,
        })
    }

    /// The policies of the cluster (from the watch caches), replacing the current ones: every
    /// record is judged again (the counters count new verdicts). Errors keep the previous
    /// policies.
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
            self.changed();
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
        self.changed();
        Ok(())
    }

    fn changed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.logged.clear();
    }

    /// No policies yet (watching the cluster): everything is allowed until they arrive.
    pub fn empty(settings: Settings) -> Self {
        Self {
            index: Index::default(),
            sources: SourceMap::new(),
            policies: 0,
            generation: 1,
            logged: FxHashSet::default(),
            verdicts: BTreeMap::new(),
            settings: Settings {
                audit_as_enforced: true,
                ..settings
            },
        }
    }

    /// Judge records; `previous`: the verdict each had (under other policies, or before its
    /// ends were known). Returns each record's verdict (`None`: it could not be read) and the
    /// log lines of new would-be drops. A verdict is counted when it is new for its record.
    pub fn judge(
        &mut self,
        records: &[Record],
        previous: &[Option<Verdict>],
        inventory: Option<&Inventory>,
    ) -> (Vec<Option<Verdict>>, Vec<String>) {
        let cluster: &dyn NamedPorts = match inventory {
            Some(inv) => inv,
            None => &NoPorts,
        };
        let mut reader = Reader::new(inventory, &self.settings.cluster_name);
        let mut ev = Evaluator::new(&self.index, cluster);
        let mut verdicts = Vec::with_capacity(records.len());
        let mut logs = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let Ok(line) = serde_json::to_string(r) else {
                verdicts.push(None);
                continue;
            };
            let before = reader.set.flows.len();
            reader.line(i + 1, &line);
            let Some(flow) = reader.set.flows.get(before) else {
                verdicts.push(None);
                continue;
            };
            let view = View::of(flow, flow.is_reply());
            let decision = ev.decide(&view.query());
            let (verdict, at) = match decision.dropped_at() {
                None => (Verdict::Allowed, ""),
                Some(netpol_compiler::objects::Direction::Egress) => {
                    (Verdict::DroppedAtEgress, "egress")
                }
                Some(netpol_compiler::objects::Direction::Ingress) => {
                    (Verdict::DroppedAtIngress, "ingress")
                }
            };
            verdicts.push(Some(verdict));
            if previous.get(i).copied().flatten() == Some(verdict) {
                continue;
            }
            let src_ns = view.src.namespace.as_deref().unwrap_or("").to_owned();
            let src_wl = view.src.workload.as_deref().unwrap_or("").to_owned();
            let name = if verdict == Verdict::Allowed {
                "allowed"
            } else {
                "denied"
            };
            *self.verdicts.entry((name, src_ns, src_wl, at)).or_default() += 1;
            if verdict == Verdict::Allowed {
                continue;
            }
            // One flow, many connections (or records): logged once.
            let source = netpol_compiler::flow::RecordEndpoint {
                port: None,
                ..r.source.clone()
            };
            let key = format!("{}|{:?}|{:?}", r.protocol, source, r.destination);
            if self.logged.len() >= LOGGED_MAX {
                self.logged.clear();
            }
            if !self.logged.insert(key) {
                continue;
            }
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
        (verdicts, logs)
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

    fn flow(src_ip: &str, port: u16) -> Record {
        serde_json::from_value(serde_json::json!({
            "time": "2026-12-07T10:00:00.000Z",
            "protocol": "tcp",
            "source": {"ip": src_ip, "namespace": "media", "pod": "sonarr-0", "workload": "StatefulSet/sonarr",
                       "labels": {"app": "sonarr"}},
            "destination": {"ip": "10.42.1.9", "port": port, "namespace": "media", "pod": "postgres-0",
                            "workload": "StatefulSet/postgres", "labels": {"app": "postgres"}},
            "packets": 3, "bytes": 300, "connections": 1
        }))
        .unwrap()
    }

    /// A profile in its audit phase (`enforce: audit`, compiled with `enableDefaultDeny:
    /// false` and annotated so): what enforcing would drop is a would-be drop; judged again
    /// under new policies, a record's verdict counts only when it changes.
    #[test]
    fn audit_phase_policies_are_judged_as_enforced_and_verdicts_counted_when_new() {
        let audit_phase = r#"{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","metadata":{"name":"postgres","namespace":"media","annotations":{"netpol.dev/enforce":"audit"}},
 "spec":{"endpointSelector":{"matchLabels":{"app":"postgres"}},"enableDefaultDeny":{"ingress":false,"egress":false},
  "ingress":[{"fromEndpoints":[{"matchLabels":{"app":"sonarr"}}],"toPorts":[{"ports":[{"port":"5432","protocol":"TCP"}]}]}]}}"#;
        let mut audit = Audit::empty(Settings::default());
        let doc = |text: &str| {
            vec![(
                "cluster/CiliumNetworkPolicy/media/postgres.json".into(),
                text.to_owned(),
            )]
        };
        audit.reload(doc(audit_phase), None).unwrap();
        let records = [flow("10.42.0.12", 5432), flow("10.42.0.12", 22)];
        let (verdicts, logs) = audit.judge(&records, &[None, None], None);
        assert_eq!(
            verdicts,
            [Some(Verdict::Allowed), Some(Verdict::DroppedAtIngress)]
        );
        assert_eq!(logs.len(), 1, "{logs:?}");
        let denied = |a: &Audit| {
            a.verdicts
                .iter()
                .filter(|(k, _)| k.0 == "denied")
                .map(|(_, n)| *n)
                .sum::<u64>()
        };
        assert_eq!(denied(&audit), 1);
        // The same verdicts again (the record's counters moved): nothing new.
        let (_, logs) = audit.judge(&records, &verdicts, None);
        assert!(logs.is_empty());
        assert_eq!(denied(&audit), 1);
        // New policies allow port 22 too: judged again, one new verdict, no drop.
        let generation = audit.generation;
        audit
            .reload(
                doc(&audit_phase.replace(
                    r#"{"port":"5432","protocol":"TCP"}"#,
                    r#"{"port":"5432","protocol":"TCP"},{"port":"22","protocol":"TCP"}"#,
                )),
                None,
            )
            .unwrap();
        assert_ne!(audit.generation, generation);
        let (again, logs) = audit.judge(&records, &verdicts, None);
        assert_eq!(again, [Some(Verdict::Allowed), Some(Verdict::Allowed)]);
        assert!(logs.is_empty());
        let allowed: u64 = audit
            .verdicts
            .iter()
            .filter(|(k, _)| k.0 == "allowed")
            .map(|(_, n)| *n)
            .sum();
        assert_eq!((allowed, denied(&audit)), (2, 1));
    }
}
