//! What `verify` and `explain` both start from: the Cilium settings, the policies imported and
//! indexed, and the inventory.

use std::path::{Path, PathBuf};

use super::Output;
use crate::diagnostic::source::SourceMap;
use crate::document::files::Files;
use crate::engine::entry::{self, ServiceBackends};
use crate::engine::eval::{NamedPorts, NoPorts};
use crate::engine::index::Index;
use crate::engine::policy;
use crate::engine::settings::{Settings, VERSIONS, Version};
use crate::flow::inventory::Inventory;

/// Policies imported and indexed, with the inventory.
pub(super) struct Policies {
    pub sources: SourceMap,
    pub index: Index,
    pub inventory: Option<Inventory>,
    /// Policy objects accepted.
    pub accepted: usize,
    /// Invalid policy objects, ignored as Cilium ignores them.
    pub rejected: usize,
    /// Their kinds and names: `CiliumNetworkPolicy media/sonarr`.
    pub rejected_names: Vec<String>,
    /// What the agent is configured with.
    pub settings: Settings,
    /// The valid policy objects, as imported (what `lint` reads besides the index).
    pub set: policy::PolicySet,
    /// The import's diagnostics, when [`Sources::collect`] kept them instead of printing them.
    pub diagnostics: crate::diagnostic::Diagnostics,
}

impl Policies {
    /// Port names known cluster-wide (none without an inventory).
    pub fn named_ports(&self) -> &dyn NamedPorts {
        match &self.inventory {
            Some(inventory) => inventory,
            None => &NoPorts,
        }
    }
}

/// The settings of `--cilium-config FILE` and `--cilium-version`, or Cilium's defaults without
/// them; `None` (after reporting every problem) when they cannot be used.
pub(super) fn settings(fs: &dyn Files, inputs: &Inputs, out: &mut Output<'_>) -> Option<Settings> {
    let mut settings = settings_from(
        fs,
        inputs.cluster.cilium_config.as_deref(),
        inputs.cluster.cilium_version.as_deref(),
        out,
    )?;
    settings.audit_as_enforced |= inputs.as_enforced;
    Some(settings)
}

/// [`settings`] from `--cilium-config` and `--cilium-version`.
pub(super) fn settings_from(
    fs: &dyn Files,
    cilium_config: Option<&Path>,
    cilium_version: Option<&str>,
    out: &mut Output<'_>,
) -> Option<Settings> {
    let mut settings = match cilium_config {
        None => Settings::default(),
        Some(path) => read_settings(fs, path, out)?,
    };
    if let Some(text) = cilium_version {
        match Version::parse(text) {
            Some(v) if v.is_known() => settings.version = Some(v.to_string()),
            _ => {
                let known: Vec<String> = VERSIONS
                    .iter()
                    .map(|(a, b)| Version(*a, *b).to_string())
                    .collect();
                let _ = writeln!(
                    out.stderr,
                    "error: unknown Cilium version `{text}`\n  help: netpol knows {}",
                    known.join(", ")
                );
                return None;
            }
        }
    } else if let Some(v) = settings.version.as_deref().and_then(Version::parse)
        && !v.is_known()
    {
        let _ = writeln!(
            out.stderr,
            "warning: Cilium {v} is not one netpol knows; judging with {} semantics\n  help: give --cilium-version",
            Version::NEWEST
        );
        settings.version = None;
    }
    Some(settings)
}

fn read_settings(fs: &dyn Files, path: &Path, out: &mut Output<'_>) -> Option<Settings> {
    let text = match fs.read(path) {
        Ok(text) => text,
        Err(e) => {
            let _ = writeln!(out.stderr, "error: cannot read `{}`: {e}", path.display());
            return None;
        }
    };
    let read = Settings::read(path, &text);
    out.report(&read.diagnostics, &read.sources);
    read.settings
}

/// Where the policies, the universe and the agent settings come from (the arguments `verify`
/// and `explain` share).
#[derive(Debug, clap::Args)]
pub(super) struct Inputs {
    /// Files or directories of policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
    /// NetworkPolicy), profiles (compiled, their services known by name) and workload
    /// manifests (they describe the cluster), told apart by what they hold.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub policies: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: super::revision::Cluster,
    /// Judge the policies in their audit phase (`netpol.dev/enforce: audit`, which netpol
    /// writes for `enforce: audit` and `default-deny: audit`) as if they were enforced: what
    /// would be dropped once you switch to `both`.
    #[arg(long)]
    pub as_enforced: bool,
}

/// Where one run's policies and universe come from.
pub(super) struct Sources<'a> {
    /// Policy files and directories (with the workload manifests beside them).
    pub policies: &'a [PathBuf],
    /// Policies compiled from profiles: `(name, YAML stream)`.
    pub compiled: &'a [(PathBuf, String)],
    pub manifests: &'a [PathBuf],
    pub inventory: Option<&'a Path>,
    /// Keep the import's diagnostics in [`Policies::diagnostics`] rather than print them
    /// (`lint` prints them with its own findings); those that make the input unusable are
    /// printed all the same.
    pub collect: bool,
}

/// Import policies, the workload manifests and the inventory, for an agent configured with
/// `settings`; `None` (after reporting) when the input is unusable: unreadable files, YAML
/// syntax errors, a broken inventory. No policy at all is fine (a note says so): Cilium then
/// allows everything.
pub(super) fn load_sources(
    fs: &dyn Files,
    inputs: &Sources<'_>,
    settings: Settings,
    out: &mut Output<'_>,
) -> Option<Policies> {
    let paths = inputs.policies;
    let mut imported = policy::import_with(fs, paths, &settings.acceptance(), inputs.compiled);
    if fatal(&imported) {
        out.report(&imported.diagnostics, &imported.sources);
        return None;
    }
    let diagnostics = if inputs.collect {
        std::mem::take(&mut imported.diagnostics)
    } else {
        out.report(&imported.diagnostics, &imported.sources);
        crate::diagnostic::Diagnostics::new()
    };
    let mut manifests = std::mem::take(&mut imported.set.manifests);
    let mut manifest_stats = imported.set.stats.manifests.clone();
    if !inputs.manifests.is_empty() {
        let extra = policy::import(fs, inputs.manifests);
        // Only what is wrong with the files themselves: their policies are not used.
        let mut problems = crate::diagnostic::Diagnostics::new();
        for d in extra
            .diagnostics
            .iter()
            .filter(|d| matches!(d.code, "io" | "yaml-syntax"))
        {
            problems.push(d.clone());
        }
        out.report(&problems, &extra.sources);
        if fatal(&extra) {
            return None;
        }
        if !extra.set.policies.is_empty() {
            let _ = writeln!(
                out.stderr,
                "warning: {} policy objects in the --manifests paths are not judged against\n  help: give policies with --policies",
                extra.set.policies.len()
            );
        }
        for (kind, n) in extra.set.stats.manifests {
            *manifest_stats.entry(kind).or_default() += n;
        }
        manifests.extend(extra.set.manifests);
    }
    let stderr = &mut *out.stderr;
    let stats = &imported.set.stats;
    if imported.set.policies.is_empty() && stats.rejected == 0 {
        // A repository before its first policy (the base of the first policy pull request):
        // Cilium enforces nothing on endpoints no policy selects.
        let _ = writeln!(
            stderr,
            "note: no policy objects in {} {}: without policies Cilium allows every flow",
            stats.files,
            if stats.files == 1 { "file" } else { "files" }
        );
    }
    if stats.rejected > 0 {
        let _ = writeln!(
            stderr,
            "warning: {} invalid policy objects are ignored, as Cilium ignores them",
            stats.rejected
        );
    }
    let accepted: Vec<String> = stats
        .accepted
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let accepted = if accepted.is_empty() {
        "no policies".to_owned()
    } else {
        accepted.join(", ")
    };
    // The compiled profiles are one text, no file of the user's.
    let files = stats.files - inputs.compiled.len().min(stats.files);
    let mut summary = match (inputs.compiled.is_empty(), files) {
        (true, _) => format!("read {accepted} from {files} files"),
        (false, 0) => format!("read {accepted} from the profiles"),
        (false, _) => format!("read {accepted} from the profiles and {files} files"),
    };
    if !manifest_stats.is_empty() {
        let universe: Vec<String> = manifest_stats
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        summary.push_str(&format!("; the cluster from {}", universe.join(", ")));
    }
    if !stats.ignored.is_empty() {
        let ignored: Vec<String> = stats
            .ignored
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        summary.push_str(&format!("; skipped {}", ignored.join(", ")));
    }
    let _ = writeln!(stderr, "{summary}");
    let live = match inputs.inventory {
        None => None,
        Some(path) => match fs.read(path) {
            Ok(text) => Some((path, text)),
            Err(e) => {
                let _ = writeln!(stderr, "error: cannot read `{}`: {e}", path.display());
                return None;
            }
        },
    };
    let inventory = if live.is_none() && manifests.is_empty() {
        None
    } else {
        let text = live.as_ref().map(|(_, text)| text.as_str());
        match Inventory::with_manifests_filtered(
            text,
            manifests,
            &settings.cluster_name,
            settings.identity_labels.as_ref(),
        ) {
            Ok(inv) => Some(inv),
            Err(e) => {
                let path = live
                    .as_ref()
                    .map_or_else(String::new, |(p, _)| p.display().to_string());
                let _ = writeln!(
                    stderr,
                    "error: {path}:{}:{}: {}\n  help: give the output of `kubectl get pods,services,endpointslices,namespaces,nodes -A -o json`",
                    e.line, e.column, e.message
                );
                return None;
            }
        }
    };
    let services = inventory.as_ref().map(|i| i as &dyn ServiceBackends);
    let stats = &imported.set.stats;
    let entries = entry::build(&imported.set, services, &settings);
    Some(Policies {
        sources: imported.sources,
        index: Index::new(entries),
        inventory,
        accepted: imported.set.policies.len(),
        rejected: stats.rejected,
        rejected_names: stats.rejected_names.clone(),
        settings,
        set: imported.set,
        diagnostics,
    })
}

/// Files that could not be read or parsed: nothing can be judged.
fn fatal(imported: &policy::Imported) -> bool {
    imported
        .diagnostics
        .iter()
        .any(|d| d.is_error() && matches!(d.code, "io" | "yaml-syntax"))
}

/// A flow file, or stdin for `-`; `None` after saying why it cannot be read.
pub(super) fn open_flows<'f>(
    fs: &'f dyn Files,
    path: &Path,
    out: &mut Output<'_>,
) -> Option<Box<dyn std::io::BufRead + Send + 'f>> {
    if path.as_os_str() == "-" {
        return Some(Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::io::stdin(),
        )));
    }
    match fs.open(path) {
        Ok(input) => Some(input),
        Err(e) => {
            let _ = writeln!(out.stderr, "error: cannot read `{}`: {e}", path.display());
            None
        }
    }
}

/// Without `--cilium-config`, the cluster the flows' identity labels name (`verify`, `suggest`, `drift`).
pub(super) fn cluster_from_flows(
    input: &mut dyn std::io::BufRead,
    settings: &mut Settings,
    out: &mut Output<'_>,
) {
    match input
        .fill_buf()
        .map(crate::engine::settings::cluster_in_flows)
    {
        Ok(Ok(Some(name))) => {
            let _ = writeln!(
                out.stderr,
                "note: judging for the cluster `{name}`, as the flows' identity labels name it (give --cilium-config to set it)"
            );
            settings.cluster_name = name;
            settings.origin = crate::engine::settings::Origin::Flows;
        }
        Ok(Err(names)) => {
            let _ = writeln!(
                out.stderr,
                "warning: the flows name several clusters ({}); judging for `{}`, Cilium's default\n  help: give --cilium-config with the local cluster's `cilium-config` ConfigMap",
                names.join(", "),
                settings.cluster_name
            );
        }
        Ok(Ok(None)) | Err(_) => {}
    }
}
