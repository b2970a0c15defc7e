//! One revision of a repository, as `connectivity`, `graph` and `diff` read it: the files under
//! the paths given, told apart by what they hold — profiles (compiled), policy objects
//! (imported), workload manifests (the universe) — plus the live inventory when given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Output;
use super::policies::{self, Policies, Sources};
use crate::document::files::{Files, POLICY_EXTENSIONS};
use crate::engine::identity::NamedPort;
use crate::engine::policy;
use crate::engine::settings::Settings;
use crate::flow::inventory::Inventory;
use crate::flow::universe::{Declared, Mentions, Universe};
use crate::objects::Proto;
use crate::objects::port::Protocol;
use crate::profile::emit;
use crate::profile::model::Model;

/// What describes the cluster besides the policy files (the arguments every report shares).
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Cluster {
    /// Workload manifests (Deployments, StatefulSets, …, Pods, Namespaces, Services,
    /// EndpointSlices) that describe the cluster's pods, as the manifests beside the policies
    /// do: labels, container ports and their names, service accounts, namespace labels.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub manifests: Vec<PathBuf>,
    /// `kubectl get pods,services,endpointslices,namespaces,nodes -A -o json`: the running pods
    /// (their IPs, owners and named ports), namespace labels and the Services behind
    /// `toServices`; wins over the manifests.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// The cluster's Cilium settings: `kubectl -n kube-system get configmap cilium-config -o
    /// yaml`, or the Helm values Cilium was installed with (cluster name, …). Without it,
    /// `verify` reads the cluster name from the flows' identity labels when they carry one.
    #[arg(long, value_name = "FILE")]
    pub cilium_config: Option<PathBuf>,
    /// The Cilium version to judge for (1.16 to 1.20; default: the version `--cilium-config`
    /// names, else 1.20): the behaviours that changed between versions follow it.
    #[arg(long, value_name = "VERSION")]
    pub cilium_version: Option<String>,
}

/// A revision read.
pub(super) struct Revision {
    pub policies: Policies,
    /// The services of the profiles: workloads of the universe when no manifest describes them.
    pub declared: Vec<Declared>,
    /// What the policies name (CIDRs, DNS names, Cilium policies at all).
    pub mentions: Mentions,
    /// The profiles' diagnostics and files, when [`Warnings::Collect`] kept them.
    pub profile_diagnostics: Option<(
        crate::diagnostic::Diagnostics,
        crate::diagnostic::source::SourceMap,
    )>,
    /// The profiles' model and their files, when profiles were among the paths.
    pub profiles: Option<(Model, crate::diagnostic::source::SourceMap)>,
}

impl Revision {
    /// The universe of this revision, with the peers `mentions` asks for and the workloads
    /// `declared` names (those of both revisions, in a diff: a profile's service stands for
    /// pods that run whether or not a profile declares them).
    pub fn universe(&self, mentions: &Mentions, declared: &[Declared]) -> Universe {
        let empty;
        let inventory = match &self.policies.inventory {
            Some(inv) => inv,
            None => {
                empty = Inventory::with_manifests(
                    None,
                    std::iter::empty(),
                    &self.policies.settings.cluster_name,
                )
                .unwrap_or_default();
                &empty
            }
        };
        Universe::new(inventory, declared, mentions)
    }
}

/// The Cilium settings of the arguments; `None` after reporting when they are unusable.
pub(super) fn settings(
    fs: &dyn Files,
    cluster: &Cluster,
    out: &mut Output<'_>,
) -> Option<Settings> {
    policies::settings_from(
        fs,
        cluster.cilium_config.as_deref(),
        cluster.cilium_version.as_deref(),
        out,
    )
}

/// What a reader of policies shows of the profiles' warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Warnings {
    /// Every one (connectivity, diff: the profiles are what is reviewed).
    Show,
    /// Only how many there are (verify, explain: `netpol check` shows them).
    Count,
    /// None printed: kept in [`Revision::profiles`], with the import's diagnostics in
    /// [`Policies::diagnostics`] (lint: they are findings like its own). Errors that make the
    /// input unusable are printed all the same.
    Collect,
}

/// Read the revision `fs` holds under `paths`; `None` after reporting when it cannot be used
/// (unreadable files, YAML syntax errors, profiles with errors).
pub(super) fn read(
    fs: &dyn Files,
    paths: &[PathBuf],
    cluster: &Cluster,
    settings: Settings,
    out: &mut Output<'_>,
) -> Option<Revision> {
    read_with(fs, paths, cluster, settings, Warnings::Show, out)
}

/// [`read`], showing the profiles' warnings as `warnings` says.
pub(super) fn read_with(
    fs: &dyn Files,
    paths: &[PathBuf],
    cluster: &Cluster,
    settings: Settings,
    warnings: Warnings,
    out: &mut Output<'_>,
) -> Option<Revision> {
    let (profiles, objects) = classify(fs, paths, out)?;
    let mut compiled = Vec::new();
    let mut declared = Vec::new();
    let mut kept = None;
    let mut compiled_profiles = None;
    if !profiles.is_empty() {
        let result = crate::profile::compile_paths(fs, &profiles);
        match warnings {
            Warnings::Show => out.report(&result.diagnostics, &result.sources),
            Warnings::Collect if result.diagnostics.has_errors() => {
                out.report(&result.diagnostics, &result.sources);
            }
            Warnings::Collect => {
                kept = Some((result.diagnostics.clone(), result.sources.clone()));
            }
            Warnings::Count => {
                let mut errors = crate::diagnostic::Diagnostics::new();
                for d in result.diagnostics.iter().filter(|d| d.is_error()) {
                    errors.push(d.clone());
                }
                out.report(&errors, &result.sources);
                let n = result.diagnostics.warning_count();
                if n > 0 {
                    let _ = writeln!(
                        out.stderr,
                        "note: the profiles have {} (`netpol check` shows them)",
                        if n == 1 {
                            "1 warning".to_owned()
                        } else {
                            format!("{n} warnings")
                        }
                    );
                }
            }
        }
        let (Some(model), Some(objects)) = (result.model, result.objects) else {
            let _ = writeln!(
                out.stderr,
                "error: the profiles have errors\n  help: `netpol check` shows them all"
            );
            return None;
        };
        match emit::stream(&objects, emit::Format::Yaml) {
            Ok(text) => compiled.push((PathBuf::from(policy::COMPILED_PROFILES), text)),
            Err(e) => {
                let _ = writeln!(out.stderr, "error: {e}");
                return None;
            }
        }
        declared = declared_of(&model);
        compiled_profiles = Some((model, result.sources));
    }
    let sources = Sources {
        policies: &objects,
        compiled: &compiled,
        manifests: &cluster.manifests,
        inventory: cluster.inventory.as_deref(),
        collect: warnings == Warnings::Collect,
    };
    let policies = policies::load_sources(fs, &sources, settings, out)?;
    let mentions = Mentions::of(&policies.index.entries);
    Some(Revision {
        policies,
        declared,
        mentions,
        profile_diagnostics: kept,
        profiles: compiled_profiles,
    })
}

/// The services of a model as workloads.
fn declared_of(model: &Model) -> Vec<Declared> {
    model
        .services
        .iter()
        .map(|s| Declared {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            kind: "Profile".to_owned(),
            labels: s.selector.iter().cloned().collect::<BTreeMap<_, _>>(),
            host_network: s.host_network,
            ports: s
                .ports
                .iter()
                .flat_map(|(name, ranges)| {
                    ranges.iter().map(|r| NamedPort {
                        name: name.clone(),
                        port: r.first,
                        protocol: match r.protocol {
                            Protocol::Tcp => Proto::Tcp,
                            Protocol::Udp => Proto::Udp,
                            Protocol::Sctp => Proto::Sctp,
                        },
                    })
                })
                .collect(),
        })
        .collect()
}

/// Split the files under `paths` into profiles and Kubernetes objects (policies, manifests).
fn classify(
    fs: &dyn Files,
    paths: &[PathBuf],
    out: &mut Output<'_>,
) -> Option<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut profiles, mut objects) = (Vec::new(), Vec::new());
    let mut ok = true;
    for path in paths {
        let files = match fs.expand(path, POLICY_EXTENSIONS) {
            Ok(files) => files,
            Err(e) => {
                let _ = writeln!(
                    out.stderr,
                    "error: cannot read `{}`: {}\n  help: give files or directories of profiles, policies and workload manifests",
                    path.display(),
                    crate::document::files::io_reason(&e)
                );
                ok = false;
                continue;
            }
        };
        for file in files {
            let profile = is_yaml(&file) && fs.read(&file).is_ok_and(|t| is_profile(&t));
            if profile {
                profiles.push(file);
            } else {
                objects.push(file);
            }
        }
    }
    ok.then_some((profiles, objects))
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e == "yaml" || e == "yml")
}

/// Keys only a profile has at the top level.
const PROFILE_KEYS: &[&str] = &[
    "namespace",
    "services",
    "templates",
    "groups",
    "cluster",
    "baselines",
    "include",
];

/// A profile has one of [`PROFILE_KEYS`] at the top level and no `kind` or `apiVersion`
/// (which every Kubernetes object has).
pub(super) fn is_profile(text: &str) -> bool {
    let mut profile = false;
    for line in text.lines() {
        let Some(first) = line.chars().next() else {
            continue;
        };
        if first.is_whitespace() || matches!(first, '#' | '-' | '{' | '[') {
            continue;
        }
        let Some((key, _)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if key == "kind" || key == "apiVersion" {
            return false;
        }
        profile |= PROFILE_KEYS.contains(&key);
    }
    profile
}

#[cfg(test)]
mod tests {
    use super::is_profile;

    #[test]
    fn profiles_are_told_from_kubernetes_objects() {
        assert!(is_profile("# c\nnamespace: media\nservices: {}\n"));
        assert!(is_profile("templates:\n  a: {}\n"));
        assert!(!is_profile(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"
        ));
        assert!(!is_profile(
            "metadata:\n  namespace: x\nkind: NetworkPolicy\n"
        ));
        assert!(!is_profile("---\n- a\n"));
    }
}
