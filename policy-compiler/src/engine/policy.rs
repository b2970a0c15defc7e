//! Importing policies from files: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and
//! Kubernetes NetworkPolicy, validated as the cluster would validate them.
//!
//! ```text
//! files / dirs ──document::parse_multi──> nodes ──(List items, kind dispatch)──> objects
//!     ──document::de (typed, spans; unknown fields = errors)──> cilium / kubernetes types
//!     ──sanitize (Cilium's agent checks, docs/semantics.md §1)──> PolicySet
//! ```
//!
//! As in Cilium, an object that fails validation is reported and contributes no rule at all
//! (docs/semantics.md §1.1: `Parse` stops at the first invalid rule and the whole object is
//! ignored; pitfall 20). Other kinds (Deployments, Services, kustomizations…) are skipped and
//! counted.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::diagnostic::source::{SourceFile, SourceId, SourceMap, Span};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::document::files::{Files, POLICY_EXTENSIONS};
use crate::document::{self, Node, Step, Value, de};
use crate::engine::selector::{self, KeyForm};
use crate::engine::settings::Version;
use crate::objects::cilium::{
    Authentication, CidrRule, CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy,
    EndpointSelector, Entity, FqdnSelector, Groups, IcmpFamily, IcmpRule, IcmpType, L7Rules,
    PortProtocol, PortRuleHttp, PortRuleKafka, Protocol, Rule, SelectorOperator, Service,
};
use crate::objects::kubernetes::{
    self, IntOrString, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};

/// Which API an object comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    Cnp,
    Ccnp,
    Knp,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cnp => "CiliumNetworkPolicy",
            Self::Ccnp => "CiliumClusterwideNetworkPolicy",
            Self::Knp => "NetworkPolicy",
        }
    }

    /// Short form for reports (`cnp`, `ccnp`, `knp`).
    pub fn short(self) -> &'static str {
        match self {
            Self::Cnp => "cnp",
            Self::Ccnp => "ccnp",
            Self::Knp => "knp",
        }
    }
}

/// The rules of an object.
#[derive(Debug, Clone)]
pub enum Body {
    /// `spec` then `specs[]`, each with its path in the document.
    Cilium(Vec<(Rule, Vec<Step<'static>>)>),
    Kubernetes(Box<kubernetes::NetworkPolicySpec>),
}

/// One valid policy object.
#[derive(Debug, Clone)]
pub struct Policy {
    pub kind: PolicyKind,
    pub name: String,
    /// The namespace of a CNP or KNP; `None` for a CCNP.
    pub namespace: Option<String>,
    pub body: Body,
    /// The object's document, for the positions of its rules.
    pub node: Node,
    /// For objects `netpol compile` wrote: the declaration they were compiled from, the
    /// service's (or baseline's) name in its profile (annotation `netpol.dev/source`,
    /// `profiles/media.yaml:12`).
    pub profile: Option<String>,
    /// For objects `netpol compile` wrote: per rule item (`egress[1]`), the statements it
    /// merges (annotation `netpol.dev/rule-sources`, `profiles/media.yaml:41,44`).
    pub rule_sources: BTreeMap<String, String>,
    /// Written by `netpol compile` for a profile with `enforce: audit` (annotation
    /// `netpol.dev/enforce: audit`): its `enableDefaultDeny: false` is the audit phase, not
    /// the intent ([`crate::engine::settings::Settings::audit_as_enforced`]).
    pub audit_phase: bool,
}

impl Policy {
    /// Where in the profiles the rule at `path` (`spec.egress[1].toPorts[0]`) comes from: its
    /// statements when the object says, else the declaration the object comes from.
    pub fn profile_of(&self, path: &str) -> Option<String> {
        path.strip_prefix("spec.")
            .map(|rest| rest.split('.').next().unwrap_or(rest))
            .and_then(|item| self.rule_sources.get(item))
            .cloned()
            .or_else(|| self.profile.clone())
    }

    /// `kind/namespace/name`, or `kind/name` for a CCNP.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind.short(), self.name),
            None => format!("{}/{}", self.kind.short(), self.name),
        }
    }

    /// The span of the node at `path` inside the object.
    pub fn span_of(&self, path: &[Step<'_>]) -> Span {
        self.node.at(path, false).span
    }
}

/// What an import read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub files: usize,
    /// Valid policy objects, by kind.
    pub accepted: BTreeMap<&'static str, usize>,
    /// Policy objects rejected by validation.
    pub rejected: usize,
    /// The rejected policy objects: `CiliumNetworkPolicy media/sonarr`.
    pub rejected_names: Vec<String>,
    /// Objects of other kinds, by kind (`(no kind)` for documents without one).
    pub ignored: BTreeMap<String, usize>,
    /// Workload manifests and the objects around them ([`MANIFEST_KINDS`]), by kind.
    pub manifests: BTreeMap<String, usize>,
}

/// The kinds of objects beside policies that describe the cluster's pods (their labels,
/// container ports and service accounts), namespaces and Services: the universe the flows and
/// named ports are resolved against when no live inventory says otherwise.
pub const MANIFEST_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "Pod",
    "Namespace",
    "Service",
    "EndpointSlice",
    "Endpoints",
];

/// The valid policies of an import.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
    /// `CiliumCIDRGroup` objects found next to the policies, by name; `cidrGroupRef` and
    /// `cidrGroupSelector` resolve against them (docs/semantics.md §1.7).
    pub cidr_groups: BTreeMap<String, CidrGroup>,
    /// The workload manifests found beside the policies ([`MANIFEST_KINDS`]), as JSON.
    pub manifests: Vec<serde_json::Value>,
    pub stats: ImportStats,
}

/// A `CiliumCIDRGroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrGroup {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub cidrs: Vec<IpNet>,
}

/// The result of an import: sources for rendering, diagnostics, and the accepted policies.
#[derive(Debug, Default)]
pub struct Imported {
    pub sources: SourceMap,
    pub diagnostics: Diagnostics,
    pub set: PolicySet,
}

/// What the agents' configuration changes in the objects they accept (docs/semantics.md §10.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceptance {
    /// `enable-l7-proxy`: without the proxy, a rule with HTTP, Kafka or DNS rules is refused.
    pub l7_proxy: bool,
    /// `enable-node-selector-labels`: `fromNodes`/`toNodes` are accepted.
    pub node_selector_labels: bool,
    /// `enable-extended-ip-protocols`: a port may be left empty.
    pub extended_ip_protocols: bool,
    /// The Cilium version the objects are judged for.
    pub version: Version,
}

impl Default for Acceptance {
    fn default() -> Self {
        Self {
            l7_proxy: true,
            node_selector_labels: false,
            extended_ip_protocols: false,
            version: Version::NEWEST,
        }
    }
}

/// Import every policy under `paths` (files or directories, recursively: `*.yaml`, `*.yml`,
/// `*.json`). Unreadable paths and syntax errors are errors; invalid objects are errors and are
/// left out of the set.
pub fn import(fs: &dyn Files, paths: &[PathBuf]) -> Imported {
    import_for(fs, paths, &Acceptance::default())
}

/// [`import`], as agents configured to `accept` would validate the objects.
pub fn import_for(fs: &dyn Files, paths: &[PathBuf], accept: &Acceptance) -> Imported {
    import_with(fs, paths, accept, &[])
}

/// The name under which policies compiled from profiles are imported.
pub const COMPILED_PROFILES: &str = "(compiled profiles)";

/// [`import_for`], plus texts that are no file of `fs` (`(name, text)`: policies compiled from
/// profiles), imported first: a file's object of the same kind and name replaces theirs.
pub fn import_with(
    fs: &dyn Files,
    paths: &[PathBuf],
    accept: &Acceptance,
    extra: &[(PathBuf, String)],
) -> Imported {
    let mut imported = Imported::default();
    for (name, text) in extra {
        let source = imported.sources.add(SourceFile::new(name, text.as_str()));
        import_text_for(
            source,
            text,
            &mut imported.diagnostics,
            &mut imported.set,
            accept,
        );
    }
    for path in paths {
        let files = match fs.expand(path, POLICY_EXTENSIONS) {
            Ok(files) => files,
            Err(e) => {
                imported.diagnostics.push(
                    Diagnostic::global("io", format!("cannot read `{}`: {e}", path.display()))
                        .with_help("give policy files (YAML or JSON) or directories of them"),
                );
                continue;
            }
        };
        for file in files {
            match fs.read(&file) {
                Ok(text) => {
                    let source = imported.sources.add(SourceFile::new(&file, text.as_str()));
                    import_text_for(
                        source,
                        &text,
                        &mut imported.diagnostics,
                        &mut imported.set,
                        accept,
                    );
                }
                Err(e) => imported.diagnostics.push(Diagnostic::global(
                    "io",
                    format!("cannot read `{}`: {e}", file.display()),
                )),
            }
        }
    }
    dedupe(&mut imported);
    imported
}

/// Import the objects of one file's text.
pub fn import_text(source: SourceId, text: &str, diags: &mut Diagnostics, set: &mut PolicySet) {
    import_text_for(source, text, diags, set, &Acceptance::default());
}

/// [`import_text`], as agents configured to `accept` would validate the objects.
pub fn import_text_for(
    source: SourceId,
    text: &str,
    diags: &mut Diagnostics,
    set: &mut PolicySet,
    accept: &Acceptance,
) {
    set.stats.files += 1;
    let docs = match document::parse_multi(source, text) {
        Ok(docs) => docs,
        Err(d) => {
            diags.push(*d);
            return;
        }
    };
    for doc in docs {
        if matches!(doc.value, Value::Null) {
            continue;
        }
        object(&doc, None, diags, set, accept);
    }
}

/// One object, or a `List` of them. `implied_kind` is the item kind of a typed list
/// (`NetworkPolicyList` items carry no `kind`).
fn object(
    node: &Node,
    implied_kind: Option<&str>,
    diags: &mut Diagnostics,
    set: &mut PolicySet,
    accept: &Acceptance,
) {
    let kind = node.get("kind").and_then(Node::as_str).or(implied_kind);
    let Some(kind) = kind else {
        if !matches!(node.value, Value::Map(_)) {
            diags.push(
                Diagnostic::warning(
                    "not-an-object",
                    node.span,
                    format!(
                        "skipped: expected a Kubernetes object (a map), found {}",
                        node.value.kind()
                    ),
                )
                .with_label("not an object")
                .with_help("policy files hold Kubernetes objects with `apiVersion` and `kind`"),
            );
            *set.stats
                .ignored
                .entry("(not an object)".to_owned())
                .or_default() += 1;
            return;
        }
        diags.push(
            Diagnostic::warning("no-kind", node.span, "document without `kind` is skipped")
                .with_label("no `kind`")
                .with_help("policy objects have `kind: CiliumNetworkPolicy`, `CiliumClusterwideNetworkPolicy` or `NetworkPolicy`"),
        );
        *set.stats.ignored.entry("(no kind)".to_owned()).or_default() += 1;
        return;
    };
    if kind == "List" || kind.ends_with("List") {
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        match node.get("items").map(|n| &n.value) {
            Some(Value::Seq(items)) => {
                for item in items {
                    object(item, item_kind, diags, set, accept);
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => diags.push(
                Diagnostic::error(
                    "invalid-field",
                    node.at(&[Step::Key("items")], false).span,
                    format!("expected `items` to be a list, found {}", other.kind()),
                )
                .with_label("here"),
            ),
        }
        return;
    }
    if kind == "CiliumCIDRGroup" {
        cidr_group(node, diags, set);
        return;
    }
    let policy_kind = match kind {
        "CiliumNetworkPolicy" => PolicyKind::Cnp,
        "CiliumClusterwideNetworkPolicy" => PolicyKind::Ccnp,
        "NetworkPolicy"
            if node
                .get("apiVersion")
                .and_then(Node::as_str)
                .is_none_or(|v| v == kubernetes::API_VERSION_NETWORKING) =>
        {
            PolicyKind::Knp
        }
        other if MANIFEST_KINDS.contains(&other) => {
            *set.stats.manifests.entry(other.to_owned()).or_default() += 1;
            let mut json = node.to_json();
            // A typed list's items carry no `kind`.
            if let serde_json::Value::Object(map) = &mut json {
                map.entry("kind")
                    .or_insert_with(|| serde_json::Value::String(other.to_owned()));
            }
            set.manifests.push(json);
            return;
        }
        other => {
            *set.stats.ignored.entry(other.to_owned()).or_default() += 1;
            return;
        }
    };
    let unknown = de::Unknown::default();
    let mut errors = Vec::new();
    // A CNP and a CCNP differ only in their kind: metadata, `spec`, `specs`.
    let cilium = match policy_kind {
        PolicyKind::Cnp => Some(
            with_kind(node, policy_kind, |n| {
                de::from_node::<CiliumNetworkPolicy>(n, &unknown)
            })
            .map(|p| (p.metadata, p.spec, p.specs)),
        ),
        PolicyKind::Ccnp => Some(
            with_kind(node, policy_kind, |n| {
                de::from_node::<CiliumClusterwideNetworkPolicy>(n, &unknown)
            })
            .map(|p| (p.metadata, p.spec, p.specs)),
        ),
        PolicyKind::Knp => None,
    };
    let policy = match cilium {
        Some(parts) => parts.map(|(metadata, spec, specs)| {
            cilium_policy(
                policy_kind,
                metadata,
                spec,
                specs,
                node,
                &mut errors,
                accept,
            )
        }),
        None => with_kind(node, policy_kind, |n| {
            de::from_node::<NetworkPolicy>(n, &unknown)
        })
        .map(|p| knp_policy(p, node, &mut errors, accept)),
    };
    // An unknown field makes the API server refuse the object: it contributes no rule.
    let unknown = unknown.errors.into_inner();
    if !unknown.is_empty() {
        match &policy {
            Ok(_) => errors.extend(unknown),
            Err(_) => unknown.into_iter().for_each(|d| diags.push(d)),
        }
    }
    let what = format!(
        "{} `{}`",
        policy_kind.as_str(),
        node.get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Node::as_str)
            .unwrap_or("?")
    );
    let meta = |key: &str| {
        node.get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Node::as_str)
    };
    let full_name = match meta("namespace") {
        Some(ns) if policy_kind != PolicyKind::Ccnp => {
            format!(
                "{} {ns}/{}",
                policy_kind.as_str(),
                meta("name").unwrap_or("?")
            )
        }
        _ => format!("{} {}", policy_kind.as_str(), meta("name").unwrap_or("?")),
    };
    match policy {
        Err(e) => {
            set.stats.rejected_names.push(full_name);
            let mut d = e.into_diagnostic(node.span);
            d.help = Some(match d.help {
                Some(h) => format!("{h}; the whole {what} is ignored, as the cluster would"),
                None => format!("the whole {what} is ignored, as the cluster would"),
            });
            diags.push(d);
            set.stats.rejected += 1;
        }
        Ok(Some(policy)) if errors.iter().all(|d: &Diagnostic| !d.is_error()) => {
            for d in errors {
                diags.push(d);
            }
            *set.stats.accepted.entry(policy_kind.as_str()).or_default() += 1;
            set.policies.push(policy);
        }
        Ok(_) => {
            for mut d in errors {
                if d.is_error() && d.help.as_deref().is_none_or(|h| !h.contains("is ignored")) {
                    d.help = Some(match d.help {
                        Some(h) => format!("{h}; Cilium ignores the whole {what}"),
                        None => format!("Cilium ignores the whole {what}"),
                    });
                }
                diags.push(d);
            }
            set.stats.rejected_names.push(full_name);
            set.stats.rejected += 1;
        }
    }
}

/// A `CiliumCIDRGroup` (`spec.externalCIDRs`).
fn cidr_group(node: &Node, diags: &mut Diagnostics, set: &mut PolicySet) {
    let name = node
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_owned();
    let labels = node
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .map(|l| match &l.value {
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.scalar_text()?)))
                .collect(),
            _ => BTreeMap::new(),
        })
        .unwrap_or_default();
    let mut cidrs = Vec::new();
    let mut ok = !name.is_empty();
    if !ok {
        diags.push(
            Diagnostic::error(
                "invalid-policy",
                node.span,
                "the CiliumCIDRGroup has no `metadata.name`",
            )
            .with_label("here")
            .with_help("policies refer to CIDR groups by name"),
        );
    }
    let list = node.get("spec").and_then(|s| s.get("externalCIDRs"));
    for item in list.map(document::one_or_many).unwrap_or_default() {
        match item.as_str().and_then(parse_cidr) {
            Some(net) => cidrs.push(net),
            None => {
                ok = false;
                diags.push(
                    Diagnostic::error("invalid-policy", item.span, "invalid CIDR in `externalCIDRs`")
                        .with_label("not a prefix")
                        .with_help("write prefixes such as `203.0.113.0/24`; the whole CiliumCIDRGroup is ignored"),
                );
            }
        }
    }
    if ok {
        *set.stats.accepted.entry("CiliumCIDRGroup").or_default() += 1;
        set.cidr_groups.insert(
            name.clone(),
            CidrGroup {
                name,
                labels,
                cidrs,
            },
        );
    } else {
        set.stats.rejected += 1;
    }
}

/// Items of a typed list lack `kind`/`apiVersion`; decode them as if they had them.
fn with_kind<T>(
    node: &Node,
    kind: PolicyKind,
    decode: impl FnOnce(&Node) -> Result<T, de::DeError>,
) -> Result<T, de::DeError> {
    if node.get("kind").is_some() {
        return decode(node);
    }
    let Value::Map(entries) = &node.value else {
        return decode(node);
    };
    let mut entries = entries.clone();
    let span = Span::new(node.span.source, node.span.offset as usize, 0);
    let synth = |s: &str| Node {
        value: Value::Str(s.to_owned()),
        span,
    };
    if node.get("kind").is_none() {
        entries.push((synth("kind"), synth(kind.as_str())));
    }
    if node.get("apiVersion").is_none() {
        let version = match kind {
            PolicyKind::Knp => kubernetes::API_VERSION_NETWORKING,
            PolicyKind::Cnp | PolicyKind::Ccnp => crate::objects::cilium::API_VERSION,
        };
        entries.push((synth("apiVersion"), synth(version)));
    }
    decode(&Node {
        value: Value::Map(entries),
        span: node.span,
    })
}

/// Checks that collect errors with positions inside one object.
struct Check<'a> {
    node: &'a Node,
    out: &'a mut Vec<Diagnostic>,
    accept: &'a Acceptance,
}

type Path = Vec<Step<'static>>;

fn join(base: &[Step<'static>], rest: &[Step<'static>]) -> Path {
    base.iter().chain(rest).copied().collect()
}

impl Check<'_> {
    fn push(&mut self, d: Diagnostic, help: impl Into<String>) {
        self.out.push(d.with_label("here").with_help(help));
    }

    /// An error at the node `path` leads to.
    fn error(
        &mut self,
        path: &[Step<'static>],
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let span = self.node.at(path, false).span;
        self.push(Diagnostic::error("invalid-policy", span, message), help);
    }

    /// An error at the key of the last step (`toFQDNs` rather than its whole list).
    fn error_at_key(
        &mut self,
        path: &[Step<'static>],
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let span = self.node.at(path, true).span;
        self.push(Diagnostic::error("invalid-policy", span, message), help);
    }

    fn warning(
        &mut self,
        path: &[Step<'static>],
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let span = self.node.at(path, true).span;
        self.push(Diagnostic::warning("policy-warning", span, message), help);
    }
}

fn cilium_policy(
    kind: PolicyKind,
    metadata: crate::objects::cilium::ObjectMeta,
    spec: Option<Rule>,
    specs: Option<Vec<Rule>>,
    node: &Node,
    out: &mut Vec<Diagnostic>,
    accept: &Acceptance,
) -> Option<Policy> {
    let mut check = Check { node, out, accept };
    let meta = [Step::Key("metadata")];
    if metadata.name.is_empty() {
        check.error(
            &meta,
            "the policy has no `metadata.name`",
            "Cilium requires a name",
        );
    }
    object_meta(
        &mut check,
        kind,
        &metadata.name,
        metadata.namespace.as_deref(),
    );
    let namespace = match kind {
        PolicyKind::Cnp => Some(match metadata.namespace.clone() {
            Some(ns) if !ns.is_empty() => ns,
            _ => {
                check.warning(
                    &meta,
                    "no `metadata.namespace`: assuming `default`",
                    "kubectl puts it in the current context's namespace; write the namespace explicitly",
                );
                "default".to_owned()
            }
        }),
        _ => {
            if metadata.namespace.is_some() {
                check.warning(
                    &[Step::Key("metadata"), Step::Key("namespace")],
                    "`metadata.namespace` of a cluster-wide policy is ignored",
                    "CiliumClusterwideNetworkPolicy is cluster-scoped; remove the namespace",
                );
            }
            None
        }
    };
    // Only an object with neither `spec` nor `specs` is refused; `specs: []` is accepted and
    // contributes no rule (cilium/cilium@507103c6 pkg/k8s/apis/cilium.io/v2/cnp_types.go:190,
    // ccnp_types.go:96: `r.Spec == nil && r.Specs == nil`).
    let no_rules = spec.is_none() && specs.is_none();
    let mut rules = Vec::new();
    if let Some(rule) = spec {
        rules.push((rule, vec![Step::Key("spec")]));
    }
    for (i, rule) in specs.into_iter().flatten().enumerate() {
        rules.push((rule, vec![Step::Key("specs"), Step::Index(i)]));
    }
    if no_rules {
        check.error(
            &[],
            format!("the {} has no rules", kind.as_str()),
            "add `spec` or `specs` (Cilium rejects an empty policy)",
        );
    }
    for (rule, path) in &rules {
        sanitize_rule(&mut check, kind, rule, path);
    }
    Some(Policy {
        kind,
        profile: source_annotation(&metadata),
        rule_sources: rule_sources_annotation(&metadata),
        audit_phase: audit_phase(&metadata),
        name: metadata.name,
        namespace,
        body: Body::Cilium(rules),
        node: node.clone(),
    })
}

/// The API server's checks of `metadata`: the name of a custom resource or NetworkPolicy is a
/// DNS subdomain (`NameIsDNSSubdomain`, k8s.io/apiextensions-apiserver
/// pkg/registry/customresource/validator.go `ValidateObjectMetaAccessor`;
/// k8s.io/kubernetes pkg/apis/networking/validation `ValidateNetworkPolicyName`), the namespace
/// of a namespaced object a DNS label (`ValidateNamespaceName`).
fn object_meta(check: &mut Check<'_>, kind: PolicyKind, name: &str, namespace: Option<&str>) {
    if !name.is_empty() && !crate::objects::label::is_dns_subdomain(name) {
        check.error(
            &[Step::Key("metadata"), Step::Key("name")],
            format!("invalid {} name `{name}`", kind.as_str()),
            "a name is lowercase letters, digits, `-` and `.` (a DNS subdomain of at most 253 characters)",
        );
    }
    if kind != PolicyKind::Ccnp
        && let Some(ns) = namespace.filter(|ns| !ns.is_empty())
        && !crate::objects::label::is_dns_label(ns)
    {
        check.error(
            &[Step::Key("metadata"), Step::Key("namespace")],
            format!("invalid namespace `{ns}`"),
            "a namespace is lowercase letters, digits and `-` (a DNS label of at most 63 characters)",
        );
    }
}

fn source_annotation(meta: &crate::objects::cilium::ObjectMeta) -> Option<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get("netpol.dev/source"))
        .cloned()
}

/// `ingress[0]: profiles/a.yaml:3,9 profiles/b.yaml:2` per line, as `netpol compile` writes
/// it; lines of another shape are skipped (the annotation only adds detail to reports).
fn rule_sources_annotation(meta: &crate::objects::cilium::ObjectMeta) -> BTreeMap<String, String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get("netpol.dev/rule-sources"))
        .map(|text| {
            text.lines()
                .filter_map(|line| line.split_once(':'))
                .map(|(item, places)| (item.trim().to_string(), places.trim().to_string()))
                .filter(|(item, places)| !item.is_empty() && !places.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn audit_phase(meta: &crate::objects::cilium::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get("netpol.dev/enforce"))
        .is_some_and(|v| v == "audit")
}

/// The four sections of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    Ingress,
    IngressDeny,
    Egress,
    EgressDeny,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::IngressDeny => "ingressDeny",
            Self::Egress => "egress",
            Self::EgressDeny => "egressDeny",
        }
    }

    pub fn is_deny(self) -> bool {
        matches!(self, Self::IngressDeny | Self::EgressDeny)
    }

    pub fn is_ingress(self) -> bool {
        matches!(self, Self::Ingress | Self::IngressDeny)
    }
}

/// The single peer field of an item, whatever its section.
#[derive(Debug, Clone, Copy)]
pub enum PeerField<'a> {
    Endpoints(&'a [EndpointSelector]),
    Cidr(&'a [String]),
    CidrSet(&'a [CidrRule]),
    Entities(&'a [Entity]),
    Nodes(&'a [EndpointSelector]),
    Groups(&'a [Groups]),
    Services(&'a [Service]),
    Fqdns(&'a [FqdnSelector]),
}

impl PeerField<'_> {
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Endpoints(v) | Self::Nodes(v) => v.is_empty(),
            Self::Cidr(v) => v.is_empty(),
            Self::CidrSet(v) => v.is_empty(),
            Self::Entities(v) => v.is_empty(),
            Self::Groups(v) => v.is_empty(),
            Self::Services(v) => v.is_empty(),
            Self::Fqdns(v) => v.is_empty(),
        }
    }
}

/// One `toPorts[]` item of an allow or deny rule.
#[derive(Debug, Clone, Copy)]
pub struct PortView<'a> {
    pub ports: Option<&'a [PortProtocol]>,
    pub rules: Option<&'a L7Rules>,
    pub server_names: Option<&'a [String]>,
    pub terminating_tls: bool,
    pub originating_tls: bool,
    pub listener: Option<&'a crate::objects::cilium::Listener>,
}

/// One item of `ingress`, `ingressDeny`, `egress` or `egressDeny`, seen uniformly.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub section: Section,
    pub index: usize,
    /// The peer fields present, with their CRD names, in schema order.
    pub peers: Vec<(&'static str, PeerField<'a>)>,
    /// `None` when `toPorts` is absent.
    pub ports: Option<Vec<PortView<'a>>>,
    pub icmps: Option<&'a [IcmpRule]>,
    pub authentication: Option<&'a Authentication>,
    /// `fromRequires` / `toRequires` (Cilium 1.18 and older).
    pub requires: Option<&'a [EndpointSelector]>,
}

impl Item<'_> {
    /// The item's path below its rule.
    pub fn path(&self) -> [Step<'static>; 2] {
        [Step::Key(self.section.key()), Step::Index(self.index)]
    }
}

fn push<'a>(
    peers: &mut Vec<(&'static str, PeerField<'a>)>,
    name: &'static str,
    field: Option<PeerField<'a>>,
) {
    if let Some(f) = field {
        peers.push((name, f));
    }
}

/// The peer fields of a rule item, present ones only, in schema order.
macro_rules! peer_fields {
    ($r:expr, $($name:literal => $field:ident as $variant:ident),* $(,)?) => {{
        let mut peers = Vec::new();
        $(push(&mut peers, $name, $r.$field.as_deref().map(PeerField::$variant));)*
        peers
    }};
}

/// The peer fields of `ingress` and `ingressDeny` items.
macro_rules! ingress_peers {
    ($r:expr) => {
        peer_fields!($r,
            "fromEndpoints" => from_endpoints as Endpoints,
            "fromCIDR" => from_cidr as Cidr,
            "fromCIDRSet" => from_cidr_set as CidrSet,
            "fromEntities" => from_entities as Entities,
            "fromNodes" => from_nodes as Nodes,
            "fromGroups" => from_groups as Groups,
        )
    };
}

/// The peer fields of `egress` items (with `toFQDNs`) and `egressDeny` items (without).
macro_rules! egress_peers {
    ($r:expr $(, $name:literal => $field:ident as $variant:ident)?) => {
        peer_fields!($r,
            "toEndpoints" => to_endpoints as Endpoints,
            "toCIDR" => to_cidr as Cidr,
            "toCIDRSet" => to_cidr_set as CidrSet,
            "toEntities" => to_entities as Entities,
            "toServices" => to_services as Services,
            $($name => $field as $variant,)?
            "toNodes" => to_nodes as Nodes,
            "toGroups" => to_groups as Groups,
        )
    };
}

/// The items of a rule, in the order ingress, ingressDeny, egress, egressDeny.
pub fn items(rule: &Rule) -> Vec<Item<'_>> {
    let mut out = Vec::new();
    for (index, r) in rule.ingress.iter().flatten().enumerate() {
        out.push(Item {
            section: Section::Ingress,
            index,
            peers: ingress_peers!(r),
            ports: r
                .to_ports
                .as_ref()
                .map(|ps| ps.iter().map(allow_ports).collect()),
            icmps: r.icmps.as_deref(),
            authentication: r.authentication.as_ref(),
            requires: r.from_requires.as_deref(),
        });
    }
    for (index, r) in rule.ingress_deny.iter().flatten().enumerate() {
        out.push(Item {
            section: Section::IngressDeny,
            index,
            peers: ingress_peers!(r),
            ports: r
                .to_ports
                .as_ref()
                .map(|ps| ps.iter().map(|p| deny_ports(p.ports.as_deref())).collect()),
            icmps: r.icmps.as_deref(),
            authentication: None,
            requires: r.from_requires.as_deref(),
        });
    }
    for (index, r) in rule.egress.iter().flatten().enumerate() {
        out.push(Item {
            section: Section::Egress,
            index,
            peers: egress_peers!(r, "toFQDNs" => to_fqdns as Fqdns),
            ports: r
                .to_ports
                .as_ref()
                .map(|ps| ps.iter().map(allow_ports).collect()),
            icmps: r.icmps.as_deref(),
            authentication: r.authentication.as_ref(),
            requires: r.to_requires.as_deref(),
        });
    }
    for (index, r) in rule.egress_deny.iter().flatten().enumerate() {
        out.push(Item {
            section: Section::EgressDeny,
            index,
            peers: egress_peers!(r),
            ports: r
                .to_ports
                .as_ref()
                .map(|ps| ps.iter().map(|p| deny_ports(p.ports.as_deref())).collect()),
            icmps: r.icmps.as_deref(),
            authentication: None,
            requires: r.to_requires.as_deref(),
        });
    }
    out
}

fn allow_ports(p: &crate::objects::cilium::PortRule) -> PortView<'_> {
    PortView {
        ports: p.ports.as_deref(),
        rules: p.rules.as_ref(),
        server_names: p.server_names.as_deref(),
        terminating_tls: p.terminating_tls.is_some(),
        originating_tls: p.originating_tls.is_some(),
        listener: p.listener.as_ref(),
    }
}

fn deny_ports(ports: Option<&[PortProtocol]>) -> PortView<'_> {
    PortView {
        ports,
        rules: None,
        server_names: None,
        terminating_tls: false,
        originating_tls: false,
        listener: None,
    }
}

const NOT_SUPPORTED: &str = "netpol assumes Cilium's defaults";

/// Cilium's `Rule.Sanitize` (docs/semantics.md §1.2, §1.6–§1.15).
fn sanitize_rule(check: &mut Check<'_>, kind: PolicyKind, rule: &Rule, base: &[Step<'static>]) {
    match (&rule.endpoint_selector, &rule.node_selector) {
        (None, None) => check.error(
            base,
            "the rule has neither `endpointSelector` nor `nodeSelector`",
            "select the pods the rule applies to with `endpointSelector` (`{}` = all)",
        ),
        (Some(_), Some(_)) => check.error_at_key(
            &join(base, &[Step::Key("nodeSelector")]),
            "`endpointSelector` and `nodeSelector` cannot both be set",
            "a rule applies to pods (`endpointSelector`) or to nodes (`nodeSelector`), not both",
        ),
        _ => {}
    }
    if kind == PolicyKind::Cnp && rule.node_selector.is_some() {
        check.error_at_key(
            &join(base, &[Step::Key("nodeSelector")]),
            "a CiliumNetworkPolicy cannot have `nodeSelector`",
            "host policies must be CiliumClusterwideNetworkPolicies",
        );
    }
    if let Some(sel) = &rule.endpoint_selector {
        selector(
            check,
            sel,
            &join(base, &[Step::Key("endpointSelector")]),
            Keys::Cilium,
        );
    }
    if let Some(sel) = &rule.node_selector {
        selector(
            check,
            sel,
            &join(base, &[Step::Key("nodeSelector")]),
            Keys::Cilium,
        );
    }
    let non_empty = [
        rule.ingress.as_ref().is_some_and(|v| !v.is_empty()),
        rule.ingress_deny.as_ref().is_some_and(|v| !v.is_empty()),
        rule.egress.as_ref().is_some_and(|v| !v.is_empty()),
        rule.egress_deny.as_ref().is_some_and(|v| !v.is_empty()),
    ];
    if !non_empty.contains(&true) {
        check.error(
            base,
            "rule must have at least one of `ingress`, `ingressDeny`, `egress`, `egressDeny`",
            "an empty list does not count; Cilium rejects a rule without rules (docs/semantics.md §1.2)",
        );
    }
    // The CRD: `maxLength: 32` and `pattern: ^\PC*$`, no character of Unicode's "Other"
    // categories (control, format, private use, surrogate), as Go's `unicode.C` has them.
    if let Some(value) = rule.log.as_ref().and_then(|l| l.value.as_ref())
        && (value.chars().count() > 32 || has_other_category(value))
    {
        check.error(
            &join(base, &[Step::Key("log"), Step::Key("value")]),
            format!(
                "`log.value` `{}` is longer than 32 characters or not printable",
                value.escape_debug()
            ),
            "use at most 32 printable characters (no control, format or private-use characters)",
        );
    }
    let host = rule.node_selector.is_some();
    for item in items(rule) {
        let path = join(base, &item.path());
        sanitize_item(check, &item, &path, host);
    }
}

/// Whether `text` has a character of Unicode's general category "Other" that Go's `\pC`
/// matches (`Cc`, `Cf`, `Co`, `Cs`; Go's tables list no unassigned code points).
fn has_other_category(text: &str) -> bool {
    regex::Regex::new(r"[\p{Cc}\p{Cf}\p{Co}]").map_or_else(
        |_| text.chars().any(char::is_control),
        |re| re.is_match(text),
    )
}

fn sanitize_item(check: &mut Check<'_>, item: &Item<'_>, path: &[Step<'static>], host: bool) {
    // Only non-empty fields count, in both checks: an empty list beside another peer field,
    // or `icmps: []` beside `toPorts`, is accepted (cilium/cilium@507103c6
    // pkg/policy/api/rule_validation.go:202-218, 462-472, 155-157).
    let present: Vec<&(&str, PeerField<'_>)> =
        item.peers.iter().filter(|(_, f)| !f.is_empty()).collect();
    if let [(first, _), (second, _), ..] = present.as_slice() {
        check.error_at_key(
            &join(path, &[Step::Key(second)]),
            format!("combining `{first}` and `{second}` is not supported yet"),
            "Cilium allows one peer field per item; split it into two list items",
        );
    }
    if item.icmps.is_some_and(|v| !v.is_empty())
        && item.ports.as_ref().is_some_and(|v| !v.is_empty())
    {
        check.error_at_key(
            &join(path, &[Step::Key("icmps")]),
            "the `icmps` block may only be present without `toPorts`",
            "put `icmps` and `toPorts` into separate items",
        );
    }
    for (name, field) in &item.peers {
        let field_path = join(path, &[Step::Key(name)]);
        match field {
            PeerField::Endpoints(sels) | PeerField::Nodes(sels) => {
                for (i, sel) in sels.iter().enumerate() {
                    selector(
                        check,
                        sel,
                        &join(&field_path, &[Step::Index(i)]),
                        Keys::Cilium,
                    );
                }
                if matches!(field, PeerField::Nodes(_)) && !check.accept.node_selector_labels {
                    check.error_at_key(
                        &field_path,
                        format!("`{name}` needs `--enable-node-selector-labels`"),
                        format!("{NOT_SUPPORTED} (node selector labels off), under which Cilium rejects the policy; use the `remote-node` entity"),
                    );
                }
            }
            PeerField::Cidr(cidrs) => {
                for (i, text) in cidrs.iter().enumerate() {
                    if parse_cidr(text).is_none() {
                        check.error(
                            &join(&field_path, &[Step::Index(i)]),
                            format!("invalid CIDR `{text}`"),
                            "write a prefix such as `10.0.0.0/8` or `2001:db8::/32`",
                        );
                    }
                }
            }
            PeerField::CidrSet(rules) => {
                for (i, r) in rules.iter().enumerate() {
                    cidr_rule(check, r, &join(&field_path, &[Step::Index(i)]));
                }
            }
            PeerField::Fqdns(sels) => {
                for (i, sel) in sels.iter().enumerate() {
                    fqdn_selector(check, sel, &join(&field_path, &[Step::Index(i)]));
                }
            }
            PeerField::Services(services) => {
                // Cilium 1.17 and older refuse `toServices` beside `toPorts` (`Combining
                // ToServices and ToPorts is not supported yet`, `l3DependentL4Support` in
                // pkg/policy/api/rule_validation.go of those releases); 1.18 accepts it, since
                // `toServices` became endpoint selectors (cilium/cilium#34208).
                if check.accept.version < Version(1, 18)
                    && !services.is_empty()
                    && item.ports.as_ref().is_some_and(|v| !v.is_empty())
                {
                    check.error_at_key(
                        &field_path,
                        format!(
                            "Cilium {} refuses `toServices` beside `toPorts`",
                            check.accept.version
                        ),
                        "Cilium 1.18 and newer accept it; for older agents allow the Service's pods with `toEndpoints` and `toPorts`",
                    );
                }
                // Neither Cilium nor the CRD requires exactly one of the two: the agent uses
                // `k8sServiceSelector` when set, else `k8sService`, and an item with neither
                // matches no Service (cilium/cilium@507103c6 pkg/policy/k8s/service.go:300-314,
                // 439-469).
                for (i, s) in services.iter().enumerate() {
                    let p = join(&field_path, &[Step::Index(i)]);
                    match (&s.k8s_service, &s.k8s_service_selector) {
                        (Some(_), Some(_)) => check.warning(
                            &join(&p, &[Step::Key("k8sService")]),
                            "`k8sService` is ignored beside `k8sServiceSelector`",
                            "Cilium uses the selector; remove one of the two",
                        ),
                        (None, None) => check.warning(
                            &p,
                            "this `toServices` item names no Service and matches nothing",
                            "set `k8sService` or `k8sServiceSelector`",
                        ),
                        _ => {}
                    }
                    if let Some(sel) = &s.k8s_service_selector {
                        selector(
                            check,
                            &sel.selector,
                            &join(
                                &p,
                                &[Step::Key("k8sServiceSelector"), Step::Key("selector")],
                            ),
                            Keys::Schema,
                        );
                    }
                }
            }
            PeerField::Entities(_) | PeerField::Groups(_) => {}
        }
    }
    if let Some(requires) = item.requires.filter(|r| !r.is_empty()) {
        let key = if item.section.is_ingress() {
            "fromRequires"
        } else {
            "toRequires"
        };
        let field_path = join(path, &[Step::Key(key)]);
        // Deprecated in 1.17 and removed in 1.19: the 1.19 CRD only takes an empty list, so the
        // API server refuses the object (cilium/cilium#42615).
        if check.accept.version >= Version(1, 19) {
            check.error_at_key(
                &field_path,
                format!("`{key}` was removed in Cilium 1.19"),
                format!(
                    "Cilium {} refuses it; add the labels to each `{}` selector instead",
                    check.accept.version,
                    if item.section.is_ingress() {
                        "fromEndpoints"
                    } else {
                        "toEndpoints"
                    }
                ),
            );
        }
        for (i, sel) in requires.iter().enumerate() {
            selector(
                check,
                sel,
                &join(&field_path, &[Step::Index(i)]),
                Keys::Cilium,
            );
        }
    }
    if let Some(icmps) = item.icmps {
        for (i, rule) in icmps.iter().enumerate() {
            let p = join(
                path,
                &[Step::Key("icmps"), Step::Index(i), Step::Key("fields")],
            );
            let fields = rule.fields.as_deref().unwrap_or_default();
            if fields.len() > 40 {
                check.error(
                    &p,
                    format!("{} ICMP fields, at most 40 are allowed", fields.len()),
                    "split the item",
                );
            }
            for (j, f) in fields.iter().enumerate() {
                if let IcmpType::Name(name) = &f.icmp_type {
                    let family = match f.family {
                        Some(IcmpFamily::IPv6) => crate::objects::port::IcmpFamily::V6,
                        _ => crate::objects::port::IcmpFamily::V4,
                    };
                    if name.bytes().all(|b| b.is_ascii_digit()) {
                        check.error(
                            &join(&p, &[Step::Index(j), Step::Key("type")]),
                            format!("invalid ICMP type `{name}`"),
                            "write a number from 0 to 255 without leading zeros, or a CamelCase name such as `EchoRequest`",
                        );
                    } else if name == "ExtendedEchoReply" {
                        // The CRD's pattern lists `ExtendedEcho Reply` (with a space), so the
                        // API server refuses the name in either family.
                        check.error(
                            &join(&p, &[Step::Index(j), Step::Key("type")]),
                            "the CRD does not accept the ICMP type name `ExtendedEchoReply`",
                            "write the number instead: `43` (IPv4) or `161` (IPv6)",
                        );
                    } else if crate::objects::port::icmp_type_named(family, name).is_none() {
                        check.error(
                            &join(&p, &[Step::Index(j), Step::Key("type")]),
                            format!("unknown ICMP type name `{name}` for this family"),
                            "use a number (0-255) or a CamelCase name of the family, such as `EchoRequest`",
                        );
                    }
                }
            }
        }
    }
    if let Some(ports) = &item.ports {
        for (i, pv) in ports.iter().enumerate() {
            port_rule(
                check,
                item,
                pv,
                &join(path, &[Step::Key("toPorts"), Step::Index(i)]),
                host,
            );
        }
    }
}

fn port_rule(
    check: &mut Check<'_>,
    item: &Item<'_>,
    pv: &PortView<'_>,
    path: &[Step<'static>],
    host: bool,
) {
    let ports = pv.ports.unwrap_or_default();
    server_names(check, pv.server_names, path);
    if ports.len() > 40 {
        check.error(
            &join(path, &[Step::Key("ports")]),
            format!("{} ports, at most 40 are allowed", ports.len()),
            "split the ports into several `toPorts` items",
        );
    }
    for (j, p) in ports.iter().enumerate() {
        let pp = join(path, &[Step::Key("ports"), Step::Index(j)]);
        // `PortProtocol.Validate` (cilium/cilium@507103c6 pkg/policy/api/rule_validation.go):
        // an empty port needs `--enable-extended-ip-protocols`; VRRP and IGMP carry no port,
        // so only an empty one or `"0"` (the flag is not needed for that).
        let extended = matches!(p.protocol, Some(Protocol::Vrrp | Protocol::Igmp));
        if p.port.is_empty() && !check.accept.extended_ip_protocols {
            check.error(
                &pp,
                "a port is required",
                if extended {
                    "write `port: \"0\"` for VRRP and IGMP, or enable `--enable-extended-ip-protocols`"
                } else {
                    "write `port: \"443\"`; `\"0\"` means every port"
                },
            );
        } else if extended && !p.port.is_empty() && p.port != "0" {
            check.error(
                &join(&pp, &[Step::Key("port")]),
                format!(
                    "`{}` carries no ports: `port` must be empty or `\"0\"`",
                    if p.protocol == Some(Protocol::Vrrp) {
                        "VRRP"
                    } else {
                        "IGMP"
                    }
                ),
                "VRRP and IGMP have no transport ports; write `port: \"0\"`",
            );
        } else if p.port.is_empty() {
            // Every port, with extended IP protocols on.
        } else if let Err(why) = crate::objects::port::RulePort::parse(&p.port) {
            // The agent parses like Go's ParseUint(s, 0, 16): `"010"` is octal 8, `"08"` fails.
            check.error(
                &join(&pp, &[Step::Key("port")]),
                why,
                "a port is a decimal number from 0 to 65535 (a leading `0` makes it octal, as in Cilium) or an IANA service name such as `http`",
            );
        }
        if let Some(end) = p.end_port
            && !(0..=65535).contains(&end)
        {
            check.error(
                &join(&pp, &[Step::Key("endPort")]),
                format!("`endPort` {end} is out of range"),
                "ports are 0 to 65535",
            );
        }
    }
    if let Some(l) = pv.listener {
        let lp = join(path, &[Step::Key("listener")]);
        if item.section.is_ingress() {
            check.error_at_key(
                &lp,
                "`listener` is only allowed on egress",
                "move the rule under `egress`",
            );
        }
        if l.name.is_empty() || l.envoy_config.name.is_empty() {
            check.error(
                &lp,
                "a listener needs `name` and `envoyConfig.name`",
                "name the CiliumEnvoyConfig and its listener",
            );
        }
        if let Some(p) = l.priority
            && !(1..=100).contains(&p)
        {
            check.error(
                &join(&lp, &[Step::Key("priority")]),
                format!("listener priority {p} is out of range"),
                "priorities are 1 to 100",
            );
        }
    }
    let Some(rules) = pv.rules else {
        return;
    };
    let rp = join(path, &[Step::Key("rules")]);
    // The CRD's `oneOf` on `rules`: exactly one of `http`, `kafka`, `dns` and `l7proto` is
    // present, an empty list or string included ("Found none valid", "more than one").
    let families: Vec<&str> = [
        ("http", rules.http.is_some()),
        ("kafka", rules.kafka.is_some()),
        ("dns", rules.dns.is_some()),
        ("l7proto", rules.l7proto.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(n, _)| *n)
    .collect();
    if families.len() > 1 {
        check.error(
            &rp,
            format!("`rules` mixes {} L7 families", families.len()),
            "one `toPorts` item can carry only one of `http`, `kafka`, `dns`, `l7proto`",
        );
    }
    let count = rules.http.as_ref().map_or(0, Vec::len)
        + rules.kafka.as_ref().map_or(0, Vec::len)
        + rules.dns.as_ref().map_or(0, Vec::len)
        + rules.l7.as_ref().map_or(0, Vec::len);
    // `l7` rules without `l7proto` are reported below, as Cilium words it.
    if families.is_empty() && rules.l7.as_ref().is_none_or(Vec::is_empty) {
        check.error_at_key(
            &rp,
            "`rules` names no L7 protocol",
            "set one of `http`, `kafka`, `dns` or `l7proto`, or remove `rules`",
        );
    }
    // Cilium checks L7 rules only when there is at least one: `L7Rules.IsEmpty` is `Len() ==
    // 0`, the lengths of `http`, `kafka`, `dns` and `l7` summed, so an absent list and an empty
    // one are alike (cilium/cilium@507103c6 pkg/policy/api/l4.go:316-328; `PortRule.sanitize`
    // and `countL7Rules` in pkg/policy/api/rule_validation.go). `http: []` is no L7 rule.
    if count == 0 {
        return;
    }
    // Without the L7 proxy the agent refuses every rule whose `toPorts` carry L7 rules, DNS
    // rules included (`L7 policy is not supported since L7 proxy is not enabled`: the ingress
    // and egress checks of cilium/cilium@507103c6 pkg/policy/api/rule_validation.go, which
    // count every item whose `rules` are not empty, `L7Rules.IsEmpty`).
    if !check.accept.l7_proxy {
        check.error_at_key(
            &rp,
            "L7 rules need the L7 proxy, which is off (`enable-l7-proxy: false`)",
            "Cilium refuses the policy; remove the `rules` (L4 only) or enable the L7 proxy",
        );
    }
    let is_dns = rules.dns.as_ref().is_some_and(|d| !d.is_empty());
    let ingress = item.section.is_ingress();
    if is_dns && ingress {
        check.error_at_key(
            &join(&rp, &[Step::Key("dns")]),
            "DNS rules are not allowed on ingress",
            "DNS rules filter the queries a pod sends; put them under `egress`",
        );
    }
    if host && ingress {
        check.error(
            &rp,
            "L7 rules are not allowed on ingress of a host policy",
            "host policies support only L3/L4 on ingress",
        );
    }
    // On host egress Cilium refuses HTTP and Kafka rules only; DNS and `l7proto` rules pass
    // (`l7EgressSupport` in `EgressRule.sanitize`, which counts only DNS, HTTP and Kafka).
    if host && !ingress {
        for (family, n) in [
            ("HTTP", rules.http.as_ref().map_or(0, Vec::len)),
            ("Kafka", rules.kafka.as_ref().map_or(0, Vec::len)),
        ] {
            if n > 0 {
                check.error(
                    &rp,
                    format!("{family} rules are not allowed on egress of a host policy"),
                    "host policies allow DNS and `l7proto` rules on egress; remove the rules or use an endpoint policy",
                );
            }
        }
    }
    if pv.listener.is_some() {
        check.error_at_key(
            &join(path, &[Step::Key("listener")]),
            "`listener` cannot be combined with L7 `rules`",
            "use either an Envoy listener or L7 rules",
        );
    }
    if pv.server_names.is_some_and(|n| !n.is_empty()) && !pv.terminating_tls {
        check.error_at_key(
            &join(path, &[Step::Key("serverNames")]),
            "`serverNames` with L7 rules requires `terminatingTLS`",
            "the proxy must terminate TLS to see the requests",
        );
    }
    for (j, p) in ports.iter().enumerate() {
        let pp = join(path, &[Step::Key("ports"), Step::Index(j)]);
        if !is_dns && p.protocol != Some(Protocol::Tcp) {
            check.error(
                &join(&pp, &[Step::Key("protocol")]),
                "L7 rules can only apply to TCP (not ANY) except for DNS rules",
                "write `protocol: TCP` explicitly",
            );
        }
        if p.port == "0" {
            check.error(
                &join(&pp, &[Step::Key("port")]),
                "L7 rules cannot be used with port `0`",
                "name the port the proxy should listen for",
            );
        }
        if is_dns
            && let (Ok(first), Some(end)) = (p.port.parse::<i32>(), p.end_port)
            && end > first
        {
            check.error(
                &join(&pp, &[Step::Key("endPort")]),
                "DNS rules cannot use a port range",
                "DNS rules apply to single ports such as 53",
            );
        }
    }
    // `L7Rules.sanitize` (pkg/policy/api/rule_validation.go).
    for (j, http) in rules.http.iter().flatten().enumerate() {
        http_rule(
            check,
            http,
            &join(&rp, &[Step::Key("http"), Step::Index(j)]),
        );
    }
    for (j, kafka) in rules.kafka.iter().flatten().enumerate() {
        kafka_rule(
            check,
            kafka,
            &join(&rp, &[Step::Key("kafka"), Step::Index(j)]),
        );
    }
    if rules.dns.is_some() && ports.is_empty() {
        check.error(
            &rp,
            "DNS rules need at least one port",
            "add `ports: [{port: \"53\", protocol: ANY}]`",
        );
    }
    for (j, sel) in rules.dns.iter().flatten().enumerate() {
        fqdn_selector(check, sel, &join(&rp, &[Step::Key("dns"), Step::Index(j)]));
    }
    // `l7` needs a non-empty `l7proto`: `l7proto: ""` is as if absent.
    let l7proto = rules.l7proto.as_deref().is_some_and(|p| !p.is_empty());
    if rules.l7.is_some() && !l7proto {
        check.error_at_key(
            &join(&rp, &[Step::Key("l7")]),
            "`l7` requires `l7proto`",
            "name the proxylib parser in `l7proto`",
        );
    }
    if l7proto {
        // `PortRuleL7.Sanitize` (pkg/policy/api/l7.go): "Empty key not allowed".
        for (j, rule) in rules.l7.iter().flatten().enumerate() {
            if rule.contains_key("") {
                check.error(
                    &join(&rp, &[Step::Key("l7"), Step::Index(j)]),
                    "an `l7` rule has an empty key",
                    "give every key/value pair of an `l7` rule a key",
                );
            }
        }
    }
}

/// One `rules.http[]` item: `PortRuleHTTP.Sanitize` (cilium/cilium@507103c6
/// pkg/policy/api/http.go:121-151).
fn http_rule(check: &mut Check<'_>, http: &PortRuleHttp, path: &[Step<'static>]) {
    // The agent compiles `path` and `method` with Go's `regexp` and refuses the policy when
    // one does not compile; `host` and `headers` are not checked.
    for (field, pattern) in [("path", &http.path), ("method", &http.method)] {
        let Some(pattern) = pattern.as_deref().filter(|p| !p.is_empty()) else {
            continue;
        };
        if let Err(reason) = crate::objects::go_regex::check(pattern) {
            check.error(
                &join(path, &[Step::Key(field)]),
                format!("`{field}` is not a valid regular expression: {reason}"),
                "Cilium compiles `path` and `method` as Go (RE2) regular expressions (anchored: the whole value must match)",
            );
        }
    }
    for (k, m) in http.header_matches.iter().flatten().enumerate() {
        let mp = join(path, &[Step::Key("headerMatches"), Step::Index(k)]);
        if m.name.is_empty() {
            check.error(
                &mp,
                "a header match needs a `name`",
                "name the HTTP header to match",
            );
        }
        if m.secret.as_ref().is_some_and(|s| s.name.is_empty()) {
            check.error(
                &join(&mp, &[Step::Key("secret"), Step::Key("name")]),
                "a header match's `secret` needs a `name`",
                "name the Kubernetes Secret that holds the expected value",
            );
        }
    }
}

/// One `rules.kafka[]` item: `PortRule.Sanitize` of cilium/proxy pkg/policy/api/kafka/kafka.go
/// (vendored in cilium/cilium@507103c6), and the CRD's `maxLength: 255` on `topic`.
fn kafka_rule(check: &mut Check<'_>, rule: &PortRuleKafka, path: &[Step<'static>]) {
    let api_key = rule.api_key.as_deref().filter(|k| !k.is_empty());
    if let Some(key) = api_key {
        if rule.role.is_some() {
            check.error_at_key(
                &join(path, &[Step::Key("apiKey")]),
                "`role` and `apiKey` cannot both be set",
                "a Kafka rule names a role (`produce`, `consume`) or one API key, not both",
            );
        }
        if !crate::objects::cilium::KAFKA_API_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            check.error(
                &join(path, &[Step::Key("apiKey")]),
                format!("unknown Kafka API key `{key}`"),
                "use an API key name such as `produce`, `fetch` or `metadata` (any case; numbers are not accepted)",
            );
        }
    }
    // `strconv.ParseInt(v, 10, 16)` and not negative.
    if let Some(version) = rule.api_version.as_deref().filter(|v| !v.is_empty())
        && !version.parse::<i16>().is_ok_and(|n| n >= 0)
    {
        check.error(
            &join(path, &[Step::Key("apiVersion")]),
            format!("invalid Kafka `apiVersion` `{version}`"),
            "write a version number from 0 to 32767",
        );
    }
    if let Some(topic) = rule.topic.as_deref().filter(|t| !t.is_empty()) {
        let tp = join(path, &[Step::Key("topic")]);
        if topic.len() > 255 || topic.chars().count() > 255 {
            check.error(
                &tp,
                "the Kafka topic is longer than 255 characters",
                "shorten the topic name",
            );
        } else if !topic
            .bytes()
            // `^[a-zA-Z0-9\\._\\-]+$` in a Go raw string: the class holds `\` too.
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'\\'))
        {
            check.error(
                &tp,
                format!("invalid Kafka topic `{topic}`"),
                "a topic name has letters, digits, `.`, `_` and `-`",
            );
        }
    }
}

/// `toPorts[].serverNames` as the CRD has them: `minItems: 1`, `x-kubernetes-list-type: set`
/// (no value twice: "Duplicate value"), each name at most 255 characters matching
/// `^(\*?\*\.)?([-a-zA-Z0-9_]+\.?)+$` (cilium/cilium@507103c6 pkg/policy/api/l4.go:186-227).
fn server_names(check: &mut Check<'_>, names: Option<&[String]>, path: &[Step<'static>]) {
    let Some(names) = names else { return };
    let sp = join(path, &[Step::Key("serverNames")]);
    if names.is_empty() {
        check.error(
            &sp,
            "empty `serverNames`",
            "list at least one server name, or remove `serverNames`",
        );
    }
    for (j, name) in names.iter().enumerate() {
        let bare = name
            .strip_prefix("**.")
            .or_else(|| name.strip_prefix("*."))
            .unwrap_or(name);
        if name.chars().count() > 255 || !crate::objects::fqdn::matches_crd_pattern(bare, false) {
            check.error(
                &join(&sp, &[Step::Index(j)]),
                format!("invalid server name `{name}`"),
                "a TLS server name is a DNS name, optionally starting with `*.` or `**.`",
            );
        } else if names.iter().take(j).any(|n| n == name) {
            check.error(
                &join(&sp, &[Step::Index(j)]),
                format!("duplicate server name `{name}`"),
                "`serverNames` is a set: list each name once",
            );
        }
    }
}

fn fqdn_selector(check: &mut Check<'_>, sel: &FqdnSelector, path: &[Step<'static>]) {
    match (&sel.match_name, &sel.match_pattern) {
        (Some(_), Some(_)) | (None, None) => check.error(
            path,
            "a DNS selector needs exactly one of `matchName` and `matchPattern`",
            "use `matchName` for one name, `matchPattern` for wildcards",
        ),
        (Some(name), None) => {
            if !crate::objects::fqdn::matches_crd_pattern(name, false) {
                check.error(
                    &join(path, &[Step::Key("matchName")]),
                    format!("invalid DNS name `{name}`"),
                    "letters, digits, `-` and `_` between single dots, at most one trailing dot and 255 characters; use `matchPattern` for wildcards",
                );
            }
        }
        (None, Some(pattern)) => {
            if !crate::objects::fqdn::matches_crd_pattern(pattern, true) {
                check.error(
                    &join(path, &[Step::Key("matchPattern")]),
                    format!("invalid DNS pattern `{pattern}`"),
                    "letters, digits, `-`, `_` and `*` between single dots, at most one trailing dot and 255 characters",
                );
            }
        }
    }
}

fn cidr_rule(check: &mut Check<'_>, r: &CidrRule, path: &[Step<'static>]) {
    let set = [
        r.cidr.is_some(),
        r.cidr_group_ref.is_some(),
        r.cidr_group_selector.is_some(),
    ];
    if let Some(group) = &r.cidr_group_ref
        && !crate::objects::label::is_dns_subdomain(group)
    {
        check.error(
            &join(path, &[Step::Key("cidrGroupRef")]),
            format!("invalid CiliumCIDRGroup name `{group}`"),
            "a name is lowercase letters, digits, `-` and `.` (a DNS subdomain)",
        );
    }
    if let Some(sel) = &r.cidr_group_selector {
        selector(
            check,
            sel,
            &join(path, &[Step::Key("cidrGroupSelector")]),
            Keys::CidrGroup,
        );
    }
    if set.iter().filter(|b| **b).count() != 1 {
        check.error(
            path,
            "a CIDR rule needs exactly one of `cidr`, `cidrGroupRef` and `cidrGroupSelector`",
            "write `cidr: 10.0.0.0/8`",
        );
        return;
    }
    let Some(text) = &r.cidr else { return };
    let Some(net) = parse_cidr(text) else {
        check.error(
            &join(path, &[Step::Key("cidr")]),
            format!("invalid CIDR `{text}`"),
            "write a prefix such as `10.0.0.0/8`",
        );
        return;
    };
    for (i, e) in r.except.iter().flatten().enumerate() {
        let p = join(path, &[Step::Key("except"), Step::Index(i)]);
        match parse_cidr(e) {
            None => check.error(
                &p,
                format!("invalid CIDR `{e}`"),
                "write a prefix such as `10.0.0.0/24`",
            ),
            // Cilium checks only that the except's address lies inside `cidr`
            // (`prefix.Contains(except.Addr())`, cilium/cilium@507103c6
            // pkg/policy/api/rule_validation.go `CIDRRule.sanitize`): a wider except is
            // accepted, and excludes every address of `cidr` it covers.
            Some(ex) if !net.contains(&ex.addr()) => check.error(
                &p,
                format!("`{e}` is not inside `{text}`"),
                "the address of every `except` prefix must lie inside `cidr` (same family)",
            ),
            Some(_) => {}
        }
    }
}

/// A prefix in `addr/len` notation (the CRD's `format: cidr`); a bare address is not one.
pub fn parse_cidr(text: &str) -> Option<IpNet> {
    if !text.contains('/') {
        return None;
    }
    text.parse::<IpNet>().ok()
}

/// How the keys of a label selector are read and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// Cilium's `EndpointSelector.Sanitize`: each key becomes `<source>.<key>` (`any.` when it
    /// names no source, `reserved.` for `$key`; anything from a `=` on is dropped) and that is
    /// validated with `ValidateLabelSelector` (cilium/cilium@507103c6 pkg/policy/api/
    /// selector.go:280-300, pkg/labels/labels.go:520-537, 804-822).
    Cilium,
    /// `cidrGroupSelector`: `cidrgroup.` before each key, then validated alike
    /// (`SanitizeWithKeyExtender`, pkg/policy/api/rule_validation.go `CIDRRule.sanitize`).
    CidrGroup,
    /// The API server's checks of a NetworkPolicy: keys as written.
    Kubernetes,
    /// `k8sServiceSelector`, which Cilium does not sanitize: only the CRD's pattern on the
    /// values of `matchLabels`.
    Schema,
}

/// A label selector (docs/semantics.md §1.3, §3.1): `ValidateLabelSelector` of the keys as
/// `keys` says, the values of `matchLabels` and `matchExpressions` as label values, and the
/// operators' `values`.
fn selector(check: &mut Check<'_>, sel: &EndpointSelector, path: &[Step<'static>], keys: Keys) {
    let checked_key = |key: &str| match keys {
        Keys::Cilium => Some(selector::extended_key(key, KeyForm::Cilium)),
        Keys::CidrGroup => Some(format!("cidrgroup.{key}")),
        Keys::Kubernetes => Some(key.to_owned()),
        Keys::Schema => None,
    };
    let key_help = match keys {
        Keys::Kubernetes => {
            "a key is `[prefix/]name`: a name of at most 63 letters, digits, `-`, `_`, `.` that starts and ends with a letter or digit"
        }
        _ => {
            "a key is `[source:][prefix/]name`; Cilium checks `<source>.<key>` (`any.<key>` without a source) as a Kubernetes label key of at most 63 characters before the `/`"
        }
    };
    for (key, value) in sel.match_labels.iter().flatten() {
        if let Some(k) = checked_key(key)
            && crate::objects::label::check_key(&k).is_err()
        {
            check.error_at_key(
                &join(path, &[Step::Key("matchLabels")]),
                format!("invalid label key `{key}`"),
                key_help,
            );
        }
        if crate::objects::label::check_value(value).is_err() {
            check.error(
                &join(path, &[Step::Key("matchLabels")]),
                format!("invalid label value `{value}`"),
                "label values have at most 63 characters: letters, digits, `-`, `_`, `.`",
            );
        }
    }
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        let p = join(path, &[Step::Key("matchExpressions"), Step::Index(i)]);
        if keys == Keys::Schema {
            continue;
        }
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator {
            SelectorOperator::In | SelectorOperator::NotIn if values.is_empty() => check.error(
                &p,
                format!("operator `{}` needs `values`", req.operator),
                "list the values, or use `Exists`",
            ),
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => {
                check.error(
                    &p,
                    format!("operator `{}` takes no `values`", req.operator),
                    "remove `values`",
                )
            }
            _ => {}
        }
        if let Some(k) = checked_key(&req.key)
            && crate::objects::label::check_key(&k).is_err()
        {
            check.error(
                &join(&p, &[Step::Key("key")]),
                format!("invalid label key `{}`", req.key),
                key_help,
            );
        }
        for (j, value) in values.iter().enumerate() {
            if crate::objects::label::check_value(value).is_err() {
                check.error(
                    &join(&p, &[Step::Key("values"), Step::Index(j)]),
                    format!("invalid label value `{value}`"),
                    "label values have at most 63 characters: letters, digits, `-`, `_`, `.`",
                );
            }
        }
    }
}

fn knp_policy(
    p: NetworkPolicy,
    node: &Node,
    out: &mut Vec<Diagnostic>,
    accept: &Acceptance,
) -> Option<Policy> {
    let mut check = Check { node, out, accept };
    if p.metadata.name.is_empty() {
        check.error(
            &[Step::Key("metadata")],
            "the policy has no `metadata.name`",
            "the API server requires a name",
        );
    }
    object_meta(
        &mut check,
        PolicyKind::Knp,
        &p.metadata.name,
        p.metadata.namespace.as_deref(),
    );
    let namespace = match p.metadata.namespace.clone() {
        Some(ns) if !ns.is_empty() => ns,
        _ => {
            check.warning(
                &[Step::Key("metadata")],
                "no `metadata.namespace`: assuming `default`",
                "kubectl puts it in the current context's namespace; write the namespace explicitly",
            );
            "default".to_owned()
        }
    };
    let spec_path = [Step::Key("spec")];
    selector(
        &mut check,
        &p.spec.pod_selector,
        &join(&spec_path, &[Step::Key("podSelector")]),
        Keys::Kubernetes,
    );
    for (i, r) in p.spec.ingress.iter().flatten().enumerate() {
        let base = join(&spec_path, &[Step::Key("ingress"), Step::Index(i)]);
        knp_peers(
            &mut check,
            r.from.as_deref(),
            &join(&base, &[Step::Key("from")]),
        );
        knp_ports(
            &mut check,
            r.ports.as_deref(),
            &join(&base, &[Step::Key("ports")]),
        );
    }
    for (i, r) in p.spec.egress.iter().flatten().enumerate() {
        let base = join(&spec_path, &[Step::Key("egress"), Step::Index(i)]);
        knp_peers(
            &mut check,
            r.to.as_deref(),
            &join(&base, &[Step::Key("to")]),
        );
        knp_ports(
            &mut check,
            r.ports.as_deref(),
            &join(&base, &[Step::Key("ports")]),
        );
    }
    Some(Policy {
        kind: PolicyKind::Knp,
        profile: source_annotation(&p.metadata),
        rule_sources: rule_sources_annotation(&p.metadata),
        audit_phase: audit_phase(&p.metadata),
        name: p.metadata.name,
        namespace: Some(namespace),
        body: Body::Kubernetes(Box::new(p.spec)),
        node: node.clone(),
    })
}

fn knp_peers(check: &mut Check<'_>, peers: Option<&[NetworkPolicyPeer]>, path: &[Step<'static>]) {
    for (i, peer) in peers.unwrap_or_default().iter().enumerate() {
        let p = join(path, &[Step::Index(i)]);
        let selectors = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
        match (&peer.ip_block, selectors) {
            (Some(_), true) => check.error(
                &p,
                "`ipBlock` cannot be combined with `podSelector` or `namespaceSelector`",
                "use separate peers",
            ),
            (None, false) => check.error(
                &p,
                "a peer needs `podSelector`, `namespaceSelector` or `ipBlock`",
                "an empty peer is rejected by the API server; omit `from`/`to` to allow every peer",
            ),
            _ => {}
        }
        if let Some(sel) = &peer.pod_selector {
            selector(
                check,
                sel,
                &join(&p, &[Step::Key("podSelector")]),
                Keys::Kubernetes,
            );
        }
        if let Some(sel) = &peer.namespace_selector {
            selector(
                check,
                sel,
                &join(&p, &[Step::Key("namespaceSelector")]),
                Keys::Kubernetes,
            );
        }
        if let Some(block) = &peer.ip_block {
            let bp = join(&p, &[Step::Key("ipBlock")]);
            match parse_cidr(&block.cidr) {
                None => check.error(
                    &join(&bp, &[Step::Key("cidr")]),
                    format!("invalid CIDR `{}`", block.cidr),
                    "write a prefix such as `10.0.0.0/8`",
                ),
                Some(net) => {
                    for (j, e) in block.except.iter().flatten().enumerate() {
                        if !parse_cidr(e).is_some_and(|ex| net.contains(&ex) && ex != net) {
                            check.error(
                                &join(&bp, &[Step::Key("except"), Step::Index(j)]),
                                format!("`{e}` is not a prefix strictly inside `{}`", block.cidr),
                                "every `except` prefix must lie inside `cidr`",
                            );
                        }
                    }
                }
            }
        }
    }
}

fn knp_ports(check: &mut Check<'_>, ports: Option<&[NetworkPolicyPort]>, path: &[Step<'static>]) {
    for (i, port) in ports.unwrap_or_default().iter().enumerate() {
        let p = join(path, &[Step::Index(i)]);
        if let Some(proto) = &port.protocol
            && !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP")
        {
            check.error(
                &join(&p, &[Step::Key("protocol")]),
                format!("unsupported protocol `{proto}`"),
                "use `TCP`, `UDP` or `SCTP`",
            );
        }
        match &port.port {
            Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => {
                check.error(
                    &join(&p, &[Step::Key("port")]),
                    format!("port {n} is out of range"),
                    "ports are 1 to 65535",
                );
            }
            Some(IntOrString::String(name)) if !crate::objects::port::is_port_name(name) => {
                check.error(
                    &join(&p, &[Step::Key("port")]),
                    format!("invalid port name `{name}`"),
                    "a port name is an IANA service name such as `http`",
                );
            }
            _ => {}
        }
        if let Some(end) = port.end_port {
            match &port.port {
                Some(IntOrString::Int(n)) if i64::from(end) >= *n && end <= 65535 => {}
                _ => check.error(
                    &join(&p, &[Step::Key("endPort")]),
                    "`endPort` needs a numeric `port` not above it (and at most 65535)",
                    "write `port: 32000` with `endPort: 32768`",
                ),
            }
        }
    }
}

/// Two objects with the same kind, namespace and name: the cluster keeps the one applied last
/// (`kubectl apply` goes through files in order), so does netpol.
fn dedupe(imported: &mut Imported) {
    let mut last: BTreeMap<(PolicyKind, Option<String>, String), usize> = BTreeMap::new();
    for (i, p) in imported.set.policies.iter().enumerate() {
        last.insert((p.kind, p.namespace.clone(), p.name.clone()), i);
    }
    if last.len() == imported.set.policies.len() {
        return;
    }
    let policies = std::mem::take(&mut imported.set.policies);
    let kept: BTreeMap<usize, (serde_json::Value, Span)> = last
        .values()
        .filter_map(|i| {
            policies
                .get(*i)
                .map(|p| (*i, (p.node.to_json(), p.node.span)))
        })
        .collect();
    for (i, p) in policies.into_iter().enumerate() {
        let key = (p.kind, p.namespace.clone(), p.name.clone());
        let keep = last.get(&key).copied();
        if keep == Some(i) {
            imported.set.policies.push(p);
        } else {
            let later = keep.and_then(|k| kept.get(&k));
            // The same object twice (compiled from the profiles and committed as compiled
            // output, say) changes nothing.
            let same = later.is_some_and(|(l, _)| *l == p.node.to_json());
            let compiled = imported
                .sources
                .get(p.node.span.source)
                .is_some_and(|f| f.path == std::path::Path::new(COMPILED_PROFILES));
            if compiled && !same {
                imported.diagnostics.push(
                    Diagnostic::warning(
                        "stale-output",
                        later.map_or(p.node.span, |(_, span)| *span),
                        format!(
                            "{} differs from what the profiles compile to; this file is used",
                            p.display_name()
                        ),
                    )
                    .with_label("stale")
                    .with_help("the file is what the cluster applies; run `netpol compile` again to bring it up to date"),
                );
            } else if !same {
                imported.diagnostics.push(
                    Diagnostic::warning(
                        "duplicate-policy",
                        p.node.span,
                        format!(
                            "{} is defined again later; this definition is replaced",
                            p.display_name()
                        ),
                    )
                    .with_label("replaced")
                    .with_help("the cluster keeps the object applied last; remove one of them"),
                );
            }
            if let Some(n) = imported.set.stats.accepted.get_mut(p.kind.as_str()) {
                *n = n.saturating_sub(1);
            }
        }
    }
}
