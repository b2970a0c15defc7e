//! The Cilium agent settings that change verdicts: read from the `cilium-config` ConfigMap
//! (`kubectl -n kube-system get cm cilium-config -o yaml`) or from the Helm values the cluster
//! was installed with.
//!
//! ```text
//! ConfigMap `data` (flat, strings) ─┐
//! Helm values (nested)             ─┴─> Settings { cluster name and id, … }
//! ```
//!
//! The cluster name matters most: every pod identity carries
//! `k8s:io.cilium.k8s.policy.cluster=<name>`, and Cilium adds that requirement to every peer
//! selector that does not name a cluster (the local-cluster default), so judging a cluster named
//! `kind-kind` as `default` drops every pod-to-pod flow. Settings netpol reads but does not
//! model yet are listed, so a report never claims to have used them.

use std::path::Path;

use crate::diagnostic::source::{SourceFile, SourceMap};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::document::{self, Node, Value};
pub use crate::objects::label::{LabelFilter, filtered_from_identity};

/// Cilium's default cluster name.
pub const DEFAULT_CLUSTER: &str = "default";

/// The Cilium minor versions whose differences netpol knows, oldest first; the last is the
/// default.
pub const VERSIONS: &[(u32, u32)] = &[(1, 16), (1, 17), (1, 18), (1, 19), (1, 20)];

/// A Cilium version, `major.minor` (the patch does not change policy semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32);

impl Version {
    /// The newest version netpol models.
    pub const NEWEST: Self = Self(1, 20);

    /// `1.18`, `v1.18.4`, `1.19.0-dev`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let mut parts = text.split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self(major, minor))
    }

    /// Whether netpol knows this version's semantics.
    pub fn is_known(self) -> bool {
        VERSIONS.contains(&(self.0, self.1))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The settings a run judges with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `cluster-name`: the value of `io.cilium.k8s.policy.cluster` in local identities.
    pub cluster_name: String,
    /// `cluster-id` (ClusterMesh), when given.
    pub cluster_id: Option<u32>,
    /// Where the cluster name comes from.
    pub origin: Origin,
    /// The Cilium version, when the input names it (Helm `image.tag`).
    pub version: Option<String>,
    /// `enable-policy`.
    pub enforcement: Enforcement,
    /// `policy-default-local-cluster` as set; `None`: the version's default.
    pub default_local_cluster: Option<bool>,
    /// `allow-localhost: policy`: no implicit allow of ingress from the local host.
    pub localhost_by_policy: bool,
    /// `enable-non-default-deny-policies: false`: `enableDefaultDeny: false` is ignored.
    pub default_deny_forced: bool,
    /// Not a Cilium setting: judge the policies `netpol compile` wrote for an `enforce: audit`
    /// profile as if they were enforced (their `enableDefaultDeny: false` ignored), so the
    /// audit phase reports what enforcing would drop. The live audit sets it.
    pub audit_as_enforced: bool,
    /// Mutual authentication can succeed (`mesh-auth-mutual-listener-port` set, Helm
    /// `authentication.mutual.port`): without it, `authentication.mode: required` drops.
    pub mutual_auth: bool,
    /// `policy-audit-mode`: what policy would drop passes, and Hubble shows it as `AUDIT`.
    pub audit_mode: bool,
    /// `enable-l7-proxy`: without the proxy, policies with L7 rules are refused.
    pub l7_proxy: bool,
    /// `policy-cidr-match-mode: nodes`: CIDR selectors select node addresses too.
    pub cidr_selects_nodes: bool,
    /// `labels`: the identity label filter's entries added to the built-in list.
    pub identity_labels: Option<LabelFilter>,
    /// `enable-host-firewall`: rules with `nodeSelector` enforce on the nodes' host endpoints.
    pub host_firewall: bool,
    /// `enable-node-selector-labels`: `fromNodes`/`toNodes` select remote nodes by label.
    pub node_selector_labels: bool,
    /// `enable-extended-ip-protocols`: ports may be left empty (VRRP, IGMP).
    pub extended_ip_protocols: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_name: DEFAULT_CLUSTER.to_owned(),
            cluster_id: None,
            origin: Origin::Default,
            version: None,
            mutual_auth: false,
            audit_mode: false,
            l7_proxy: true,
            cidr_selects_nodes: false,
            identity_labels: None,
            host_firewall: false,
            node_selector_labels: false,
            extended_ip_protocols: false,
            enforcement: Enforcement::Default,
            default_local_cluster: None,
            localhost_by_policy: false,
            default_deny_forced: false,
            audit_as_enforced: false,
        }
    }
}

/// `enable-policy` (Helm `policyEnforcementMode`): which endpoints are enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Enforcement {
    /// A direction is enforced once a rule selects the endpoint.
    #[default]
    Default,
    /// Every endpoint is enforced with default deny both ways, selected or not.
    Always,
    /// Nothing is enforced.
    Never,
}

/// Where the cluster name of a run comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Cilium's default: no `--cilium-config`, and the flows do not name a cluster.
    Default,
    /// `--cilium-config FILE`.
    Config(String),
    /// The identity labels of the flows (`k8s:io.cilium.k8s.policy.cluster=…`).
    Flows,
}

/// One setting: its ConfigMap key and its Helm values path.
struct Key {
    config_map: &'static str,
    helm: &'static [&'static str],
}

/// The settings that change verdicts (the ConfigMap keys are the agent's flags).
const KEYS: &[Key] = &[
    Key {
        config_map: "cluster-name",
        helm: &["cluster", "name"],
    },
    Key {
        config_map: "cluster-id",
        helm: &["cluster", "id"],
    },
    Key {
        config_map: "enable-policy",
        helm: &["policyEnforcementMode"],
    },
    Key {
        config_map: "policy-audit-mode",
        helm: &["policyAuditMode"],
    },
    Key {
        config_map: "enable-host-firewall",
        helm: &["hostFirewall", "enabled"],
    },
    Key {
        config_map: "allow-localhost",
        helm: &[],
    },
    Key {
        config_map: "policy-cidr-match-mode",
        helm: &["policyCIDRMatchMode"],
    },
    Key {
        config_map: "enable-non-default-deny-policies",
        helm: &["enableNonDefaultDenyPolicies"],
    },
    Key {
        config_map: "enable-node-selector-labels",
        helm: &["nodeSelectorLabels"],
    },
    Key {
        config_map: "labels",
        helm: &["labels"],
    },
    Key {
        config_map: "policy-default-local-cluster",
        helm: &["clustermesh", "policyDefaultLocalCluster"],
    },
    Key {
        config_map: "mesh-auth-mutual-listener-port",
        helm: &["authentication", "mutual", "port"],
    },
    Key {
        config_map: "enable-extended-ip-protocols",
        helm: &[],
    },
    Key {
        config_map: "enable-l7-proxy",
        helm: &["l7Proxy"],
    },
];

/// Settings read from a file, with what was wrong in it.
#[derive(Debug)]
pub struct Read {
    pub sources: SourceMap,
    pub diagnostics: Diagnostics,
    /// `None` when there were errors.
    pub settings: Option<Settings>,
}

impl Settings {
    /// The Cilium version judged for: the input's, else the newest netpol models.
    pub fn cilium(&self) -> Version {
        self.version
            .as_deref()
            .and_then(Version::parse)
            .unwrap_or(Version::NEWEST)
    }

    /// The field of a boolean setting that netpol models, by its ConfigMap key.
    fn flag_mut(&mut self, key: &str) -> Option<&mut bool> {
        Some(match key {
            "policy-audit-mode" => &mut self.audit_mode,
            "enable-host-firewall" => &mut self.host_firewall,
            "enable-node-selector-labels" => &mut self.node_selector_labels,
            "enable-l7-proxy" => &mut self.l7_proxy,
            "enable-extended-ip-protocols" => &mut self.extended_ip_protocols,
            _ => return None,
        })
    }

    /// What these agents accept in policies.
    pub fn acceptance(&self) -> crate::engine::policy::Acceptance {
        crate::engine::policy::Acceptance {
            l7_proxy: self.l7_proxy,
            node_selector_labels: self.node_selector_labels,
            extended_ip_protocols: self.extended_ip_protocols,
            version: self.cilium(),
        }
    }

    /// The cluster that peer selectors naming no cluster are confined to: with
    /// `policy-default-local-cluster` (added in 1.18, off by default there, on from 1.19), the
    /// local cluster; before 1.18 there is no such filter (cilium/cilium@507103c6
    /// pkg/k8s/apis/cilium.io/utils/utils.go:106-112, pkg/clustermesh/types/option.go:139-167).
    pub fn local_cluster_filter(&self) -> Option<&str> {
        let version = self.cilium();
        let on = version >= Version(1, 18)
            && self
                .default_local_cluster
                .unwrap_or(version >= Version(1, 19));
        on.then_some(self.cluster_name.as_str())
    }

    /// Read the `cilium-config` ConfigMap (YAML or JSON, as kubectl prints it) or a Helm
    /// values file. Keys that do not change verdicts are ignored.
    pub fn read(path: &Path, text: &str) -> Read {
        let mut sources = SourceMap::default();
        let mut diagnostics = Diagnostics::new();
        let source = sources.add(SourceFile::new(path, text));
        let settings = match document::parse(source, text) {
            Ok(root) => decode(&root, path, &mut diagnostics),
            Err(d) => {
                diagnostics.push(*d);
                None
            }
        };
        let settings = settings.filter(|_| !diagnostics.has_errors());
        Read {
            sources,
            diagnostics,
            settings,
        }
    }

    /// The settings as one line for a report's header: `cluster \`kind-kind\` (from the flows)`.
    pub fn describe(&self) -> String {
        let origin = match &self.origin {
            Origin::Default => "Cilium's default".to_owned(),
            Origin::Config(path) => format!("from `{path}`"),
            Origin::Flows => "from the flows' identity labels".to_owned(),
        };
        let mut line = format!("cluster `{}` ({origin})", self.cluster_name);
        if let Some(id) = self.cluster_id {
            line.push_str(&format!(", cluster id {id}"));
        }
        match &self.version {
            Some(version) => line.push_str(&format!(", Cilium {version}")),
            None => line.push_str(&format!(", Cilium {} semantics", self.cilium())),
        }
        if self.local_cluster_filter().is_none() {
            line.push_str(", peer selectors not confined to the local cluster");
        }
        if self.localhost_by_policy {
            line.push_str(", `allow-localhost: policy`");
        }
        if self.default_deny_forced {
            line.push_str(
                ", `enableDefaultDeny: false` ignored (`enable-non-default-deny-policies: false`)",
            );
        }
        if self.audit_mode {
            line.push_str(", policy audit mode (drops pass as `AUDIT`)");
        }
        if !self.l7_proxy {
            line.push_str(", L7 proxy off (policies with L7 rules refused)");
        }
        if self.cidr_selects_nodes {
            line.push_str(", CIDR selectors select nodes (`policy-cidr-match-mode: nodes`)");
        }
        if self.host_firewall {
            line.push_str(", host firewall on");
        }
        if self.node_selector_labels {
            line.push_str(", node selector labels on");
        }
        if self.extended_ip_protocols {
            line.push_str(", extended IP protocols on");
        }
        if let Some(filter) = &self.identity_labels {
            line.push_str(&format!(", identity labels `{filter}`"));
        }
        match self.enforcement {
            Enforcement::Default => {}
            Enforcement::Always => line.push_str(", policy enforcement `always`"),
            Enforcement::Never => line.push_str(", policy enforcement `never`"),
        }
        line.push_str("; other settings at Cilium's defaults");
        line
    }
}

fn decode(root: &Node, path: &Path, diagnostics: &mut Diagnostics) -> Option<Settings> {
    if !matches!(root.value, Value::Map(_)) {
        diagnostics.push(
            Diagnostic::error(
                "cilium-config",
                root.span,
                format!(
                    "expected a ConfigMap or Helm values, found {}",
                    root.value.kind()
                ),
            )
            .with_label("here")
            .with_help(HELP),
        );
        return None;
    }
    // `kubectl get cm cilium-config -o yaml` (or `-o json`): the flat `data` map.
    let config_map = match root.get("kind").and_then(Node::as_str) {
        Some("ConfigMap") => true,
        Some(other) => {
            let kind = root.get("kind").map_or(root.span, |n| n.span);
            diagnostics.push(
                Diagnostic::error(
                    "cilium-config",
                    kind,
                    format!("expected the `cilium-config` ConfigMap, found a `{other}`"),
                )
                .with_label("this kind")
                .with_help(HELP),
            );
            return None;
        }
        None => false,
    };
    let data = if config_map {
        root.get("data")
    } else {
        Some(root)
    };
    let mut settings = Settings {
        origin: Origin::Config(path.display().to_string()),
        ..Settings::default()
    };
    for key in KEYS {
        let node = match data {
            Some(data) if config_map => data.get(key.config_map),
            Some(values) => lookup(values, key.helm),
            None => None,
        };
        let Some(node) = node else {
            continue;
        };
        let Some(text) = setting_text(node) else {
            diagnostics.push(
                Diagnostic::error(
                    "cilium-config",
                    node.span,
                    format!(
                        "`{}` should be a string, a number, a boolean or a list, found {}",
                        key.config_map,
                        node.value.kind()
                    ),
                )
                .with_label("here"),
            );
            continue;
        };
        match key.config_map {
            "cluster-name" => match check_cluster_name(&text) {
                Ok(()) => settings.cluster_name = text,
                Err(why) => diagnostics.push(
                    Diagnostic::error(
                        "cilium-config",
                        node.span,
                        format!("invalid cluster name `{text}`: {why}"),
                    )
                    .with_label("here")
                    .with_help(
                        "Cilium's cluster names are lowercase DNS labels of at most 32 characters",
                    ),
                ),
            },
            "cluster-id" => match text.parse::<u32>() {
                Ok(0) => {}
                Ok(id) if id <= 511 => settings.cluster_id = Some(id),
                _ => diagnostics.push(
                    Diagnostic::error(
                        "cilium-config",
                        node.span,
                        format!("invalid cluster id `{text}`"),
                    )
                    .with_label("here")
                    .with_help("a cluster id is a number from 0 to 511"),
                ),
            },
            "enable-policy" => match normalized(&text).to_ascii_lowercase().as_str() {
                "default" => settings.enforcement = Enforcement::Default,
                "always" => settings.enforcement = Enforcement::Always,
                "never" => settings.enforcement = Enforcement::Never,
                _ => diagnostics.push(
                    Diagnostic::error(
                        "cilium-config",
                        node.span,
                        format!("invalid policy enforcement mode `{text}`"),
                    )
                    .with_label("here")
                    .with_help("`enable-policy` is `default`, `always` or `never`"),
                ),
            },
            // `auto` is `always` under Kubernetes (cilium/cilium@507103c6 daemon/cmd/daemon.go:
            // 95-104; pkg/policy/mapstate.go:1073-1082).
            "allow-localhost" => match normalized(&text).as_str() {
                "auto" | "always" => settings.localhost_by_policy = false,
                "policy" => settings.localhost_by_policy = true,
                _ => diagnostics.push(
                    Diagnostic::error(
                        "cilium-config",
                        node.span,
                        format!("`allow-localhost` is `auto`, `always` or `policy`, not `{text}`"),
                    )
                    .with_label("here"),
                ),
            },
            // `false` makes Sanitize force default deny in both directions of every rule
            // (pkg/policy/api/rule_validation.go:47-64).
            "enable-non-default-deny-policies" => {
                if let Some(on) = boolean(key.config_map, &text, node, diagnostics) {
                    settings.default_deny_forced = !on;
                }
            }
            "policy-default-local-cluster" => {
                settings.default_local_cluster = boolean(key.config_map, &text, node, diagnostics);
            }
            // Every policy drop passes and is logged as audited: default deny, deny rules and
            // missing authentication alike (cilium/cilium@507103c6 bpf/lib/policy.h,
            // `policy_can_ingress`/`policy_can_egress` under POLICY_AUDIT_MODE).
            // `enable-host-firewall`, `enable-node-selector-labels`, `enable-l7-proxy` too.
            flag if settings.flag_mut(flag).is_some() => {
                let on = boolean(key.config_map, &text, node, diagnostics);
                if let (Some(on), Some(field)) = (on, settings.flag_mut(flag)) {
                    *field = on;
                }
            }
            // `nodes` gives node addresses CIDR labels (pkg/node/manager/manager.go,
            // `nodeIdentityLabels`; pkg/ipcache/metadata.go, `resolveIdentity`).
            "policy-cidr-match-mode" => {
                let modes: Vec<&str> = text.split([' ', ',']).filter(|m| !m.is_empty()).collect();
                match modes.iter().find(|m| **m != "nodes") {
                    None => settings.cidr_selects_nodes = !modes.is_empty(),
                    Some(other) => diagnostics.push(
                        Diagnostic::error(
                            "cilium-config",
                            node.span,
                            format!("unknown `policy-cidr-match-mode` `{other}`"),
                        )
                        .with_label("here")
                        .with_help("the only mode is `nodes`; leave it empty for Cilium's default"),
                    ),
                }
            }
            "labels" => match LabelFilter::parse(&text) {
                Ok(filter) => settings.identity_labels = filter,
                Err(why) => diagnostics.push(
                    Diagnostic::error(
                        "cilium-config",
                        node.span,
                        format!("invalid identity label filter: {why}"),
                    )
                    .with_label("here")
                    .with_help("`labels` lists `[source:][!]regex` entries separated by spaces, e.g. `k8s:app k8s:!pod-template-hash`"),
                ),
            },
            "mesh-auth-mutual-listener-port" => {
                settings.mutual_auth = text.trim().parse::<u16>().is_ok_and(|p| p != 0);
            }
            // Every key of `KEYS` has its arm above.
            _ => {}
        }
    }
    if !config_map {
        // The chart sets a listener port by default; the agents authenticate only when SPIRE
        // is enabled too (the ConfigMap has the port only then).
        let spire = lookup(root, &["authentication", "mutual", "spire", "enabled"])
            .is_some_and(|n| matches!(n.value, Value::Bool(true)));
        settings.mutual_auth &= spire;
        settings.version = lookup(root, &["image", "tag"])
            .and_then(setting_text)
            .map(|tag| tag.trim_start_matches('v').to_owned());
    }
    Some(settings)
}

/// A boolean setting as the agent reads it; anything else is reported.
fn boolean(key: &str, text: &str, node: &Node, diagnostics: &mut Diagnostics) -> Option<bool> {
    match normalized(text).as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            diagnostics.push(
                Diagnostic::error(
                    "cilium-config",
                    node.span,
                    format!("`{key}` is `true` or `false`, not `{text}`"),
                )
                .with_label("here"),
            );
            None
        }
    }
}

const HELP: &str = "give `kubectl -n kube-system get configmap cilium-config -o yaml` or the Helm values file Cilium was installed with";

/// The node at a Helm values path.
fn lookup<'a>(values: &'a Node, path: &[&str]) -> Option<&'a Node> {
    if path.is_empty() {
        return None;
    }
    path.iter().try_fold(values, |node, key| node.get(key))
}

/// A setting's value as the agent reads its flag: scalars as text, lists joined by spaces
/// (`policyCIDRMatchMode: [nodes]` is `policy-cidr-match-mode: nodes`).
fn setting_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .map(Node::scalar_text)
            .collect::<Option<Vec<String>>>()
            .map(|v| v.join(" ")),
        Value::Null => Some(String::new()),
        _ => node.scalar_text(),
    }
}

/// Booleans and empty values as the agent reads them (`True`, `"true"`, `true` alike).
fn normalized(text: &str) -> String {
    let text = text.trim();
    match text.to_ascii_lowercase().as_str() {
        "true" | "false" => text.to_ascii_lowercase(),
        _ => text.to_owned(),
    }
}

/// Cilium validates the cluster name as a lowercase DNS label of at most 32 characters.
fn check_cluster_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 32 {
        return Err("it is longer than 32 characters");
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err("it is not a lowercase DNS label")
    }
}

/// The cluster name that flows carry in their identity labels
/// (`k8s:io.cilium.k8s.policy.cluster=NAME`), read from the start of a flow file: `Ok(None)`
/// when no flow names one, `Err(names)` when they name several (ClusterMesh: the local one
/// cannot be told apart from the remote ones without `--cilium-config`).
pub fn cluster_in_flows(head: &[u8]) -> Result<Option<String>, Vec<String>> {
    const NEEDLE: &[u8] = b"io.cilium.k8s.policy.cluster=";
    let mut names: Vec<String> = Vec::new();
    let mut rest = head;
    while let Some(at) = find(rest, NEEDLE) {
        let value = rest.get(at + NEEDLE.len()..).unwrap_or_default();
        let end = value
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_' || *b == b'.'))
            .unwrap_or(value.len());
        let name = String::from_utf8_lossy(value.get(..end).unwrap_or_default()).into_owned();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
        rest = value.get(end..).unwrap_or_default();
    }
    names.sort();
    match names.len() {
        0 => Ok(None),
        1 => Ok(names.pop()),
        _ => Err(names),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn read(text: &str) -> Read {
        Settings::read(Path::new("cilium-config.yaml"), text)
    }

    #[test]
    fn config_map_gives_the_cluster_name_and_the_settings_it_models() {
        let r = read(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system}\ndata:\n  cluster-name: kind-kind\n  cluster-id: \"3\"\n  policy-audit-mode: \"true\"\n  enable-l7-proxy: \"false\"\n  enable-host-firewall: \"true\"\n  labels: \"k8s:app k8s:!team\"\n  debug: \"false\"\n",
        );
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        let s = r.settings.unwrap();
        assert_eq!(s.cluster_name, "kind-kind");
        assert_eq!(s.cluster_id, Some(3));
        assert!(s.audit_mode && !s.l7_proxy);
        assert_eq!(
            s.identity_labels
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("k8s:app k8s:!team")
        );
        assert!(s.host_firewall);
        assert_eq!(
            s.describe(),
            "cluster `kind-kind` (from `cilium-config.yaml`), cluster id 3, Cilium 1.20 semantics, policy audit mode (drops pass as `AUDIT`), L7 proxy off (policies with L7 rules refused), host firewall on, identity labels `k8s:app k8s:!team`; other settings at Cilium's defaults"
        );
    }

    #[test]
    fn helm_values_are_read_by_their_paths() {
        let r = read(
            "cluster:\n  name: homelab\n  id: 0\nimage:\n  tag: v1.18.4\npolicyCIDRMatchMode: [nodes]\nhostFirewall:\n  enabled: false\n",
        );
        let s = r.settings.unwrap();
        assert_eq!(s.cluster_name, "homelab");
        assert_eq!(s.cluster_id, None);
        assert_eq!(s.version.as_deref(), Some("1.18.4"));
        assert!(s.cidr_selects_nodes);
        let r = read(
            "policyCIDRMatchMode: [pods]
labels: \"k8s:(\"\n",
        );
        let messages: Vec<String> = r.diagnostics.iter().map(|d| d.message.clone()).collect();
        assert_eq!(
            messages,
            [
                "unknown `policy-cidr-match-mode` `pods`",
                "invalid identity label filter: `k8s:(` is not a regular expression (unclosed group)"
            ]
        );
    }

    #[test]
    fn bad_values_are_all_reported_with_their_place() {
        let r = read("kind: ConfigMap\ndata:\n  cluster-name: Kind_Kind\n  cluster-id: \"9000\"\n");
        assert!(r.settings.is_none());
        let messages: Vec<String> = r.diagnostics.iter().map(|d| d.message.clone()).collect();
        assert_eq!(
            messages,
            [
                "invalid cluster name `Kind_Kind`: it is not a lowercase DNS label",
                "invalid cluster id `9000`"
            ]
        );
        let at: Vec<String> = r
            .diagnostics
            .iter()
            .map(|d| r.sources.position(d.span.unwrap()).to_string())
            .collect();
        assert_eq!(at, ["cilium-config.yaml:3:17", "cilium-config.yaml:4:15"]);
    }

    #[test]
    fn the_enforcement_mode_is_read_and_checked() {
        let s = read("kind: ConfigMap\ndata:\n  enable-policy: always\n")
            .settings
            .unwrap();
        assert_eq!(s.enforcement, Enforcement::Always);
        assert!(s.describe().contains("policy enforcement `always`"));
        let s = read("policyEnforcementMode: never\n").settings.unwrap();
        assert_eq!(s.enforcement, Enforcement::Never);
        let r = read("kind: ConfigMap\ndata:\n  enable-policy: sometimes\n");
        assert!(r.settings.is_none());
        let d = r.diagnostics.iter().next().unwrap();
        assert_eq!(d.message, "invalid policy enforcement mode `sometimes`");
    }

    #[test]
    fn localhost_and_default_deny_settings_are_read() {
        let s = read("kind: ConfigMap\ndata:\n  allow-localhost: policy\n  enable-non-default-deny-policies: \"false\"\n")
            .settings
            .unwrap();
        assert!(s.localhost_by_policy && s.default_deny_forced);
        let s = read("enableNonDefaultDenyPolicies: true\n")
            .settings
            .unwrap();
        assert!(!s.default_deny_forced);
    }

    #[test]
    fn helm_mutual_auth_needs_spire() {
        let port_only = read("authentication:\n  mutual:\n    port: 4250\n")
            .settings
            .unwrap();
        assert!(!port_only.mutual_auth, "the chart's default port alone");
        let spire =
            read("authentication:\n  mutual:\n    port: 4250\n    spire: {enabled: true}\n")
                .settings
                .unwrap();
        assert!(spire.mutual_auth);
        let cm = read("kind: ConfigMap\ndata:\n  mesh-auth-mutual-listener-port: \"4250\"\n")
            .settings
            .unwrap();
        assert!(cm.mutual_auth);
    }

    #[test]
    fn another_kind_is_refused() {
        let r = read("apiVersion: v1\nkind: Secret\ndata: {}\n");
        assert!(r.settings.is_none());
        let d = r.diagnostics.iter().next().unwrap();
        assert_eq!(
            d.message,
            "expected the `cilium-config` ConfigMap, found a `Secret`"
        );
    }

    #[test]
    fn the_cluster_is_found_in_hubble_labels() {
        let one = br#"{"flow":{"source":{"labels":["k8s:app=productpage","k8s:io.cilium.k8s.policy.cluster=kind-kind"]},"destination":{"labels":["k8s:io.cilium.k8s.policy.cluster=kind-kind"]}}}"#;
        assert_eq!(cluster_in_flows(one), Ok(Some("kind-kind".to_owned())));
        assert_eq!(cluster_in_flows(b"{\"time\":\"x\"}"), Ok(None));
        let two =
            br#""k8s:io.cilium.k8s.policy.cluster=east" "k8s:io.cilium.k8s.policy.cluster=west""#;
        assert_eq!(
            cluster_in_flows(two),
            Err(vec!["east".to_owned(), "west".to_owned()])
        );
    }
}
