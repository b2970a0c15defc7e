//! Typed models of the Cilium policy CRDs.
//!
//! ```text
//! compile ──> CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy ──serde──> YAML / JSON
//! YAML / JSON ──serde──> PolicyObject ──> index / lint / diff
//! ```
//!
//! These types mirror the `openAPIV3Schema` of the CRDs `ciliumnetworkpolicies.cilium.io` and
//! `ciliumclusterwidenetworkpolicies.cilium.io` of Cilium 1.19 (`apiVersion: cilium.io/v2`) field
//! for field, with the CRD's exact key spellings. They are deliberately *syntactic*: they accept
//! whatever the CRD schema accepts and reject unknown keys, but they do not run Cilium's semantic
//! checks (`Rule.Sanitize`, docs/semantics.md §1.6); that is the job of validation and lint.
//!
//! Conventions:
//! * every struct is `deny_unknown_fields` (except [`ObjectMeta`], see there), so a typo such as
//!   `toPort` or a field removed in 1.19 (`fromRequires`, `toRequires`, `auth`) is an error;
//! * every optional key is an `Option`, skipped when `None`, so serialization emits exactly what is
//!   set and `ingress: []` (present, empty: "selects nothing") stays distinct from no `ingress` key
//!   (docs/semantics.md §2.1);
//! * struct fields are declared in the order a human expects to read them in YAML, which is the
//!   order serialization emits them in.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// `apiVersion` of both policy kinds (docs/semantics.md §1.1).
pub const API_VERSION: &str = "cilium.io/v2";
/// `kind` of the namespaced policy (docs/semantics.md §1.1).
pub const KIND_CNP: &str = "CiliumNetworkPolicy";
/// `kind` of the cluster-wide policy (docs/semantics.md §1.1).
pub const KIND_CCNP: &str = "CiliumClusterwideNetworkPolicy";

// ---------------------------------------------------------------------------------------------
// Top level objects
// ---------------------------------------------------------------------------------------------

/// The `apiVersion` of a Cilium policy object; only `cilium.io/v2` is served (docs/semantics.md §1.1).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum ApiVersion {
    /// `cilium.io/v2`.
    #[default]
    #[serde(rename = "cilium.io/v2")]
    V2,
}

impl ApiVersion {
    /// The spelling in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => API_VERSION,
        }
    }
}

/// The `kind` marker of a [`CiliumNetworkPolicy`]; any other kind is a deserialization error.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum CnpKind {
    /// `CiliumNetworkPolicy`.
    #[default]
    CiliumNetworkPolicy,
}

/// The `kind` marker of a [`CiliumClusterwideNetworkPolicy`]; any other kind is a deserialization error.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum CcnpKind {
    /// `CiliumClusterwideNetworkPolicy`.
    #[default]
    CiliumClusterwideNetworkPolicy,
}

/// A namespaced `CiliumNetworkPolicy` (docs/semantics.md §1.1, §3.3).
///
/// Its selectors are scoped to `metadata.namespace` by the agent; `nodeSelector` is rejected in a
/// CNP by the agent although the CRD schema has it (docs/semantics.md §1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CiliumNetworkPolicy {
    /// Always `cilium.io/v2`.
    pub api_version: ApiVersion,
    /// Always `CiliumNetworkPolicy`.
    pub kind: CnpKind,
    /// Name, namespace (required for a CNP in our output) and labels of the object.
    pub metadata: ObjectMeta,
    /// A single rule; may be combined with `specs`, every rule is enforced separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Rule>,
    /// A list of rules; at least one of `spec`/`specs` must be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specs: Option<Vec<Rule>>,
    /// Written by the operator's validator (`conditions`, `derivativePolicies`); never by us, kept opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// A cluster-scoped `CiliumClusterwideNetworkPolicy` (docs/semantics.md §1.1, §3.3).
///
/// Same shape as [`CiliumNetworkPolicy`]; selectors are not namespace-scoped and `nodeSelector`
/// (host firewall) is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CiliumClusterwideNetworkPolicy {
    /// Always `cilium.io/v2`.
    pub api_version: ApiVersion,
    /// Always `CiliumClusterwideNetworkPolicy`.
    pub kind: CcnpKind,
    /// Name and labels of the object; `namespace` must not be set.
    pub metadata: ObjectMeta,
    /// A single rule; may be combined with `specs`, every rule is enforced separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Rule>,
    /// A list of rules; at least one of `spec`/`specs` must be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specs: Option<Vec<Rule>>,
    /// Written by the operator's validator (`conditions`, `derivativePolicies`); never by us, kept opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl CiliumNetworkPolicy {
    /// All rules of the object: `spec` first, then `specs` in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.spec.iter().chain(self.specs.iter().flatten())
    }
}

impl CiliumClusterwideNetworkPolicy {
    /// All rules of the object: `spec` first, then `specs` in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.spec.iter().chain(self.specs.iter().flatten())
    }
}

/// Either kind of Cilium policy object, e.g. one document of an imported multi-document YAML file.
///
/// Serializes as the inner object. Deserialization dispatches on `kind`; it goes through a
/// [`serde_json::Value`], so errors name the offending field but carry no source position — use
/// the concrete types directly when positions matter. Going through JSON also makes scalars
/// strictly typed, like the Kubernetes API server: an unquoted `port: 80` is rejected here, whereas
/// `serde_saphyr` reading a concrete type directly accepts it as the string `"80"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PolicyObject {
    /// A namespaced `CiliumNetworkPolicy`.
    Cnp(CiliumNetworkPolicy),
    /// A cluster-wide `CiliumClusterwideNetworkPolicy`.
    Ccnp(CiliumClusterwideNetworkPolicy),
}

impl PolicyObject {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// `metadata.namespace`, if set (a CCNP normally has none).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// `CiliumNetworkPolicy` or `CiliumClusterwideNetworkPolicy`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cnp(_) => KIND_CNP,
            Self::Ccnp(_) => KIND_CCNP,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Cnp(p) => &p.metadata,
            Self::Ccnp(p) => &p.metadata,
        }
    }

    /// All rules of the object: `spec` first, then `specs` in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        let (spec, specs) = match self {
            Self::Cnp(p) => (&p.spec, &p.specs),
            Self::Ccnp(p) => (&p.spec, &p.specs),
        };
        spec.iter().chain(specs.iter().flatten())
    }
}

impl From<CiliumNetworkPolicy> for PolicyObject {
    fn from(p: CiliumNetworkPolicy) -> Self {
        Self::Cnp(p)
    }
}

impl From<CiliumClusterwideNetworkPolicy> for PolicyObject {
    fn from(p: CiliumClusterwideNetworkPolicy) -> Self {
        Self::Ccnp(p)
    }
}

impl<'de> Deserialize<'de> for PolicyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;

        let value = serde_json::Value::deserialize(deserializer)?;
        let kind = value.get("kind").and_then(serde_json::Value::as_str);
        match kind {
            Some(KIND_CNP) => serde_json::from_value(value)
                .map(Self::Cnp)
                .map_err(D::Error::custom),
            Some(KIND_CCNP) => serde_json::from_value(value)
                .map(Self::Ccnp)
                .map_err(D::Error::custom),
            Some(other) => Err(D::Error::custom(format_args!(
                "unknown kind `{other}`, expected `{KIND_CNP}` or `{KIND_CCNP}`"
            ))),
            None => Err(D::Error::custom(format_args!(
                "missing `kind`, expected `{KIND_CNP}` or `{KIND_CCNP}`"
            ))),
        }
    }
}

/// The Kubernetes `ObjectMeta` fields a policy object carries (docs/semantics.md §1.1).
///
/// Unlike every other type here this one does **not** deny unknown fields: the CRD leaves
/// `metadata` open (`type: object`), and objects exported from a cluster carry server-managed
/// keys (`managedFields`, `ownerReferences`, `finalizers`, `generateName`, …) that are irrelevant
/// to policy semantics. Those are accepted and dropped on import; the fields below are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name; mandatory for the agent ("must have name").
    pub name: String,
    /// Namespace; required for a CNP (its selectors are scoped to it), absent for a CCNP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes object labels (not the rule `labels`, see [`Label`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Kubernetes object annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Server-assigned UID; becomes the rule label `io.cilium.k8s.policy.uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Server-assigned version for optimistic concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Server-assigned spec generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Server-assigned creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Rule
// ---------------------------------------------------------------------------------------------

/// One policy rule: the `spec` or one `specs[]` item (docs/semantics.md §1.2).
///
/// CRD: exactly one of `endpointSelector`/`nodeSelector`, and at least one of the four sections.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Free text, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Endpoints (pods, reserved endpoints) the rule applies to; `{}` = all (in the namespace for a CNP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_selector: Option<EndpointSelector>,
    /// Nodes (host endpoints) the rule applies to; CCNP only, host firewall only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<EndpointSelector>,
    /// Whether this rule switches its directions to default deny (1.16+, docs/semantics.md §2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_default_deny: Option<DefaultDenyConfig>,
    /// Allow rules for traffic entering the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    /// Deny rules for traffic entering the subject; deny wins over allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_deny: Option<Vec<IngressDenyRule>>,
    /// Allow rules for traffic leaving the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    /// Deny rules for traffic leaving the subject; deny wins over allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_deny: Option<Vec<EgressDenyRule>>,
    /// Metadata labels stored with the rule (not selectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
    /// Text copied into Hubble `flow.policy_log` for flows this rule decides (1.18+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogConfig>,
}

/// `enableDefaultDeny` (1.16+, docs/semantics.md §2.3); an unset direction defaults to `true`
/// when the rule has entries in that direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultDenyConfig {
    /// `false`: this rule's ingress entries do not make ingress default-deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    /// `false`: this rule's egress entries do not make egress default-deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
}

/// A rule metadata label `{key, value, source}` (docs/semantics.md §1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Label {
    /// Label key (required).
    pub key: String,
    /// Label value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Label source; the agent uses `unspec` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `log` of a rule (1.18+, docs/semantics.md §1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogConfig {
    /// At most 32 printable characters, shown as `policy_log` in Hubble.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------------------

/// A Kubernetes label selector over Cilium identity labels (docs/semantics.md §1.3, §3.1).
///
/// `matchLabels` and `matchExpressions` are ANDed; the empty selector `{}` selects everything in
/// scope (docs/semantics.md §2.5). Keys may carry a source prefix (`k8s:`, `reserved:`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointSelector {
    /// Exact `key: value` requirements, all ANDed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Set-based requirements, all ANDed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One `matchExpressions[]` item (docs/semantics.md §1.3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key, optionally `source:`-prefixed.
    pub key: String,
    /// How the key relates to `values`.
    pub operator: SelectorOperator,
    /// Non-empty for `In`/`NotIn`, empty or absent for `Exists`/`DoesNotExist`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// `matchExpressions[].operator` (docs/semantics.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present, any value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl SelectorOperator {
    /// The spelling in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        }
    }
}

impl fmt::Display for SelectorOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Ingress / egress sections
// ---------------------------------------------------------------------------------------------

/// One `ingress[]` allow item (docs/semantics.md §1.4).
///
/// At most one peer field (`from*`) per item (agent check, docs/semantics.md §1.6); no peer field
/// with `toPorts` means "any peer on these ports". `auth` (replaced by `authentication`, §1.16)
/// is not modelled and therefore rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressRule {
    /// Peer endpoints by label; namespace-scoped in a CNP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_endpoints: Option<Vec<EndpointSelector>>,
    /// Peer CIDR prefixes (world-class identities only, docs/semantics.md §5.3).
    #[serde(default, rename = "fromCIDR", skip_serializing_if = "Option::is_none")]
    pub from_cidr: Option<Vec<String>>,
    /// Peer CIDRs with exceptions, or CiliumCIDRGroups.
    #[serde(
        default,
        rename = "fromCIDRSet",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    /// Peer reserved entities (`world`, `cluster`, `host`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_entities: Option<Vec<Entity>>,
    /// Peer nodes by node label (1.16+, needs node selector labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_nodes: Option<Vec<EndpointSelector>>,
    /// Labels every `fromEndpoints` peer of the subject's rules must also have (Cilium 1.18 and
    /// older; removed in 1.19, docs/semantics.md §1.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_requires: Option<Vec<EndpointSelector>>,
    /// Peer cloud-provider groups (AWS security groups etc.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_groups: Option<Vec<Groups>>,
    /// Allowed L4 ports, optionally with L7 rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// Allowed ICMP types; cannot be combined with `toPorts` in one item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
    /// Mutual authentication required for this traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// One `ingressDeny[]` item (docs/semantics.md §1.4): like [`IngressRule`] but ports only, no L7,
/// no `authentication`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressDenyRule {
    /// Peer endpoints by label; namespace-scoped in a CNP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_endpoints: Option<Vec<EndpointSelector>>,
    /// Peer CIDR prefixes.
    #[serde(default, rename = "fromCIDR", skip_serializing_if = "Option::is_none")]
    pub from_cidr: Option<Vec<String>>,
    /// Peer CIDRs with exceptions, or CiliumCIDRGroups.
    #[serde(
        default,
        rename = "fromCIDRSet",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    /// Peer reserved entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_entities: Option<Vec<Entity>>,
    /// Peer nodes by node label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_nodes: Option<Vec<EndpointSelector>>,
    /// Labels every `fromEndpoints` peer of the subject's deny rules must also have (1.18 and
    /// older).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_requires: Option<Vec<EndpointSelector>>,
    /// Peer cloud-provider groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_groups: Option<Vec<Groups>>,
    /// Denied L4 ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortDenyRule>>,
    /// Denied ICMP types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
}

/// One `egress[]` allow item (docs/semantics.md §1.5).
///
/// At most one peer field (`to*` other than `toPorts`) per item (docs/semantics.md §1.6).
/// `auth` (§1.16) is not modelled and therefore rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressRule {
    /// Peer endpoints by label; namespace-scoped in a CNP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_endpoints: Option<Vec<EndpointSelector>>,
    /// Peer CIDR prefixes (world-class identities only, docs/semantics.md §5.3).
    #[serde(default, rename = "toCIDR", skip_serializing_if = "Option::is_none")]
    pub to_cidr: Option<Vec<String>>,
    /// Peer CIDRs with exceptions, or CiliumCIDRGroups.
    #[serde(default, rename = "toCIDRSet", skip_serializing_if = "Option::is_none")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    /// Peer reserved entities (`world`, `cluster`, `kube-apiserver`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_entities: Option<Vec<Entity>>,
    /// Peer Kubernetes Services, translated to their backends (docs/semantics.md §1.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_services: Option<Vec<Service>>,
    /// Peer DNS names, learnt through the DNS proxy (docs/semantics.md §1.8, §4).
    #[serde(default, rename = "toFQDNs", skip_serializing_if = "Option::is_none")]
    pub to_fqdns: Option<Vec<FqdnSelector>>,
    /// Peer nodes by node label (1.16+, needs node selector labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_nodes: Option<Vec<EndpointSelector>>,
    /// Labels every `toEndpoints` peer of the subject's rules must also have (Cilium 1.18 and
    /// older; removed in 1.19, docs/semantics.md §1.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_requires: Option<Vec<EndpointSelector>>,
    /// Peer cloud-provider groups (AWS security groups etc.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_groups: Option<Vec<Groups>>,
    /// Allowed L4 ports, optionally with L7 rules, TLS or a listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// Allowed ICMP types; cannot be combined with `toPorts` in one item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
    /// Mutual authentication required for this traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// One `egressDeny[]` item (docs/semantics.md §1.5): like [`EgressRule`] but ports only, no L7,
/// no `toFQDNs`, no `authentication`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressDenyRule {
    /// Peer endpoints by label; namespace-scoped in a CNP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_endpoints: Option<Vec<EndpointSelector>>,
    /// Peer CIDR prefixes.
    #[serde(default, rename = "toCIDR", skip_serializing_if = "Option::is_none")]
    pub to_cidr: Option<Vec<String>>,
    /// Peer CIDRs with exceptions, or CiliumCIDRGroups.
    #[serde(default, rename = "toCIDRSet", skip_serializing_if = "Option::is_none")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    /// Peer reserved entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_entities: Option<Vec<Entity>>,
    /// Peer Kubernetes Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_services: Option<Vec<Service>>,
    /// Peer nodes by node label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_nodes: Option<Vec<EndpointSelector>>,
    /// Labels every `toEndpoints` peer of the subject's deny rules must also have (1.18 and
    /// older).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_requires: Option<Vec<EndpointSelector>>,
    /// Peer cloud-provider groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_groups: Option<Vec<Groups>>,
    /// Denied L4 ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortDenyRule>>,
    /// Denied ICMP types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
}

/// `authentication` of an allow item (1.14+, docs/semantics.md §1.16).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Authentication {
    /// Whether mutual authentication is required (required key).
    pub mode: AuthenticationMode,
}

/// `authentication.mode` (docs/semantics.md §1.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AuthenticationMode {
    /// No authentication.
    #[serde(rename = "disabled")]
    Disabled,
    /// Drop until mutual authentication (SPIFFE) between the identities succeeded.
    #[serde(rename = "required")]
    Required,
    /// Always fails authentication; for tests.
    #[serde(rename = "test-always-fail")]
    TestAlwaysFail,
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// A reserved peer class for `fromEntities`/`toEntities` (docs/semantics.md §5.2).
///
/// Only the CRD enum spellings; `world-ipv4`/`world-ipv6` are not in the 1.19 CRD and are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Entity {
    /// Every identity.
    #[serde(rename = "all")]
    All,
    /// Everything outside the cluster (IPs with no other identity).
    #[serde(rename = "world")]
    World,
    /// Every identity of the local cluster (pods, host, remote nodes, health, init, …).
    #[serde(rename = "cluster")]
    Cluster,
    /// The local node (host network namespace, host-network pods).
    #[serde(rename = "host")]
    Host,
    /// Endpoints whose labels are not resolved yet.
    #[serde(rename = "init")]
    Init,
    /// Cilium's own Ingress / Gateway Envoy.
    #[serde(rename = "ingress")]
    Ingress,
    /// Pods not managed by Cilium.
    #[serde(rename = "unmanaged")]
    Unmanaged,
    /// Other nodes of the cluster.
    #[serde(rename = "remote-node")]
    RemoteNode,
    /// Cilium health-check endpoints.
    #[serde(rename = "health")]
    Health,
    /// No identity; selects nothing.
    #[serde(rename = "none")]
    None,
    /// The Kubernetes API server (in or outside the cluster).
    #[serde(rename = "kube-apiserver")]
    KubeApiserver,
}

impl Entity {
    /// Every entity, in CRD enum order.
    pub const ALL: [Self; 11] = [
        Self::All,
        Self::World,
        Self::Cluster,
        Self::Host,
        Self::Init,
        Self::Ingress,
        Self::Unmanaged,
        Self::RemoteNode,
        Self::Health,
        Self::None,
        Self::KubeApiserver,
    ];

    /// The spelling in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::World => "world",
            Self::Cluster => "cluster",
            Self::Host => "host",
            Self::Init => "init",
            Self::Ingress => "ingress",
            Self::Unmanaged => "unmanaged",
            Self::RemoteNode => "remote-node",
            Self::Health => "health",
            Self::None => "none",
            Self::KubeApiserver => "kube-apiserver",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `fromCIDRSet`/`toCIDRSet` item (docs/semantics.md §1.7).
///
/// Exactly one of `cidr`, `cidrGroupRef`, `cidrGroupSelector` (CRD `oneOf`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CidrRule {
    /// A prefix in `addr/len` notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Name of a `CiliumCIDRGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_group_ref: Option<String>,
    /// Label selector over `CiliumCIDRGroup` labels (1.19+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_group_selector: Option<EndpointSelector>,
    /// Prefixes inside `cidr` that are excluded; not supported with `cidrGroupRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

/// One `toServices` item (docs/semantics.md §1.9); exactly one of the two keys is expected.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Service {
    /// A Service by name (and optionally namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_service: Option<K8sServiceNamespace>,
    /// Services by label (and optionally namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_service_selector: Option<ServiceSelector>,
}

/// `toServices[].k8sService` (docs/semantics.md §1.9).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sServiceNamespace {
    /// Service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Service namespace; unset matches Services of that name in any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `toServices[].k8sServiceSelector` (docs/semantics.md §1.9).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSelector {
    /// Selector over Service labels (required).
    pub selector: EndpointSelector,
    /// Service namespace; unset matches Services in any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One `fromGroups`/`toGroups` item: a cloud-provider group resolved to IPs by the operator
/// (docs/semantics.md §1.10).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Groups {
    /// AWS EC2 instances, selected by security group or tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsGroup>,
}

/// `groups[].aws` (docs/semantics.md §1.10).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsGroup {
    /// EC2 tags the instances must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Security group IDs (`sg-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups_ids: Option<Vec<String>>,
    /// Security group names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups_names: Option<Vec<String>>,
    /// AWS region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One `toFQDNs` or `rules.dns` item (docs/semantics.md §1.8); exactly one key (CRD `oneOf`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FqdnSelector {
    /// A literal DNS name, case-insensitive, exact match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// A wildcard pattern: `*` stays within one label, a leading `**.` spans labels (1.19+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Ports and L7
// ---------------------------------------------------------------------------------------------

/// One `toPorts[]` item of an allow rule (docs/semantics.md §1.13).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortRule {
    /// Ports/protocols (at most 40); ORed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortProtocol>>,
    /// L7 rules enforced by the proxy on these ports (one family per item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
    /// Allowed TLS SNI values (1.18+); `*.x` one label, `**.x` several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_names: Option<Vec<String>>,
    /// TLS context the proxy uses to terminate TLS from the client.
    #[serde(
        default,
        rename = "terminatingTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub terminating_tls: Option<TlsContext>,
    /// TLS context the proxy uses to originate TLS towards the server.
    #[serde(
        default,
        rename = "originatingTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub originating_tls: Option<TlsContext>,
    /// Redirect to a named Envoy listener (egress only, not with `rules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<Listener>,
}

/// One `toPorts[]` item of a deny rule: ports only (docs/semantics.md §1.13).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortDenyRule {
    /// Ports/protocols denied; ORed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortProtocol>>,
}

/// One `ports[]` item: a port or range and a protocol (docs/semantics.md §1.13).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortProtocol {
    /// `"0"`–`"65535"` or a named container port; `"0"` = all ports. Empty = absent (Go `omitempty`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub port: String,
    /// Inclusive end of a range `port..=endPort`; ignored unless greater than `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
    /// L4 protocol; absent means `ANY` (TCP, UDP and SCTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// `ports[].protocol` (docs/semantics.md §1.13); case-sensitive, ICMP goes in `icmps` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
    /// VRRP (needs `--enable-extended-ip-protocols`, port must be empty or `"0"`).
    #[serde(rename = "VRRP")]
    Vrrp,
    /// IGMP (needs `--enable-extended-ip-protocols`, port must be empty or `"0"`).
    #[serde(rename = "IGMP")]
    Igmp,
    /// TCP, UDP and SCTP (never ICMP).
    #[serde(rename = "ANY")]
    Any,
}

impl Protocol {
    /// The spelling in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
            Self::Vrrp => "VRRP",
            Self::Igmp => "IGMP",
            Self::Any => "ANY",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `terminatingTLS` / `originatingTLS` (docs/semantics.md §1.13).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsContext {
    /// Kubernetes Secret holding the key material (required).
    pub secret: Secret,
    /// Secret data item holding the trusted CA bundle.
    #[serde(default, rename = "trustedCA", skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<String>,
    /// Secret data item holding the certificate chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Secret data item holding the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

/// A reference to a Kubernetes Secret (TLS contexts, HTTP header values).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Secret {
    /// Secret name (required).
    pub name: String,
    /// Secret namespace; defaults to the policy's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `toPorts[].listener`: redirect to an Envoy listener (egress only, docs/semantics.md §1.13).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Listener {
    /// The Envoy config resource that defines the listener (required).
    pub envoy_config: EnvoyConfig,
    /// Listener name within that resource (required, non-empty).
    pub name: String,
    /// 1 (highest) to 100; breaks ties between listeners on the same port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
}

/// `listener.envoyConfig` (docs/semantics.md §1.13).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoyConfig {
    /// Resource kind; the agent defaults it by the policy's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EnvoyConfigKind>,
    /// Resource name (required, non-empty).
    pub name: String,
}

/// `envoyConfig.kind` (docs/semantics.md §1.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EnvoyConfigKind {
    /// A namespaced `CiliumEnvoyConfig`.
    CiliumEnvoyConfig,
    /// A `CiliumClusterwideEnvoyConfig`.
    CiliumClusterwideEnvoyConfig,
}

/// `toPorts[].rules`: L7 rules, at most one family per item (docs/semantics.md §1.14).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L7Rules {
    /// HTTP requests allowed; a request passes if any item matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<PortRuleHttp>>,
    /// Kafka requests allowed (deprecated beta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Vec<PortRuleKafka>>,
    /// DNS queries allowed (egress only); also feeds `toFQDNs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<FqdnSelector>>,
    /// Name of a proxylib parser for `l7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7proto: Option<String>,
    /// Generic key/value rules for the `l7proto` parser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7: Option<Vec<BTreeMap<String, String>>>,
}

/// One `rules.http[]` item; all set fields must match (docs/semantics.md §1.14).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortRuleHttp {
    /// Regex (full match) on `:path`, query string included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Regex (full match) on `:method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Regex (full match) on `:authority`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `"Name"` (present) or `"Name: value"` (exact value) header requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    /// Header requirements with an action on mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_matches: Option<Vec<HeaderMatch>>,
}

/// One `http[].headerMatches[]` item (docs/semantics.md §1.14).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name (required, non-empty).
    pub name: String,
    /// Expected value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Secret holding the expected value (instead of `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// What to do on mismatch; unset means the request is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<MismatchAction>,
}

/// `headerMatches[].mismatch` (docs/semantics.md §1.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MismatchAction {
    /// Log and let the request pass.
    #[serde(rename = "LOG")]
    Log,
    /// Add the header with the expected value.
    #[serde(rename = "ADD")]
    Add,
    /// Remove the header.
    #[serde(rename = "DELETE")]
    Delete,
    /// Replace the header's value with the expected one.
    #[serde(rename = "REPLACE")]
    Replace,
}

/// One `rules.kafka[]` item (deprecated beta, docs/semantics.md §1.14).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortRuleKafka {
    /// `produce` or `consume`; exclusive with `apiKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<KafkaRole>,
    /// Kafka API key by name, any case (e.g. `produce`, `fetch`; one of [`KAFKA_API_KEYS`]);
    /// numbers are refused; exclusive with `role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Kafka API version: a decimal from 0 to 32767.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kafka client ID.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Topic name (at most 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// The names `kafka[].apiKey` accepts, lowercase (Cilium compares case-insensitively):
/// `APIKeyMap` of cilium/proxy pkg/policy/api/kafka/kafka.go, vendored in
/// cilium/cilium@507103c6.
pub const KAFKA_API_KEYS: &[&str] = &[
    "produce",
    "fetch",
    "offsets",
    "metadata",
    "leaderandisr",
    "stopreplica",
    "updatemetadata",
    "controlledshutdown",
    "offsetcommit",
    "offsetfetch",
    "findcoordinator",
    "joingroup",
    "heartbeat",
    "leavegroup",
    "syncgroup",
    "describegroups",
    "listgroups",
    "saslhandshake",
    "apiversions",
    "createtopics",
    "deletetopics",
    "deleterecords",
    "initproducerid",
    "offsetforleaderepoch",
    "addpartitionstotxn",
    "addoffsetstotxn",
    "endtxn",
    "writetxnmarkers",
    "txnoffsetcommit",
    "describeacls",
    "createacls",
    "deleteacls",
    "describeconfigs",
    "alterconfigs",
];

/// `kafka[].role` (docs/semantics.md §1.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KafkaRole {
    /// Produce requests.
    #[serde(rename = "produce")]
    Produce,
    /// Consume (fetch, offsets, …) requests.
    #[serde(rename = "consume")]
    Consume,
}

// ---------------------------------------------------------------------------------------------
// ICMP
// ---------------------------------------------------------------------------------------------

/// One `icmps[]` item (docs/semantics.md §1.15).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IcmpRule {
    /// ICMP types (at most 40); ORed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<IcmpField>>,
}

/// One `icmps[].fields[]` item (docs/semantics.md §1.15).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IcmpField {
    /// ICMP type, by number or CamelCase name (required).
    #[serde(rename = "type")]
    pub icmp_type: IcmpType,
    /// Address family; absent means IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<IcmpFamily>,
}

/// An ICMP type as number or name, the CRD's int-or-string (docs/semantics.md §1.15).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum IcmpType {
    /// Numeric type, 0–255.
    Number(u8),
    /// Type name such as `EchoRequest`; must exist in the given family.
    Name(String),
}

impl<'de> Deserialize<'de> for IcmpType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IcmpType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ICMP type: a number from 0 to 255 or a name such as `EchoRequest`")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IcmpType, E> {
                u8::try_from(v)
                    .map(IcmpType::Number)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IcmpType, E> {
                u8::try_from(v)
                    .map(IcmpType::Number)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            /// A quoted number is the number: Cilium reads the int-or-string with
            /// `IntValue()`, which parses a string as a number, and looks only non-numbers up
            /// as names; the CRD's pattern admits `0`–`255` without leading zeros
            /// (cilium/cilium@507103c6 pkg/policy/api/icmp.go:106-154, 195-218).
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IcmpType, E> {
                let canonical = !v.is_empty()
                    && v.bytes().all(|b| b.is_ascii_digit())
                    && (v == "0" || !v.starts_with('0'));
                match v.parse::<u8>() {
                    Ok(n) if canonical => Ok(IcmpType::Number(n)),
                    _ => Ok(IcmpType::Name(v.to_owned())),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl fmt::Display for IcmpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// `fields[].family` (docs/semantics.md §1.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IcmpFamily {
    /// ICMPv4.
    IPv4,
    /// ICMPv6.
    IPv6,
}

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests may panic"
)]
mod tests {
    use super::*;

    const CNP_YAML: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web-ingress
  namespace: shop
spec:
  description: "frontend may call web on 8080/TCP"
  endpointSelector:
    matchLabels:
      app: web
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
      toPorts:
        - ports:
            - port: "8080"
              protocol: TCP
          rules:
            http:
              - method: GET
                path: "/api/.*"
                headers: ["X-Token: abc"]
  egress:
    - toEndpoints:
        - matchLabels:
            "k8s:io.kubernetes.pod.namespace": kube-system
            "k8s:k8s-app": kube-dns
      toPorts:
        - ports:
            - {port: "53", protocol: UDP}
            - {port: "53", protocol: TCP}
          rules:
            dns:
              - matchPattern: "*.example.com"
    - toFQDNs:
        - matchName: api.example.com
      toPorts:
        - ports:
            - {port: "443", protocol: TCP}
          serverNames: [api.example.com]
    - toCIDRSet:
        - cidr: 10.0.0.0/8
          except: [10.96.0.0/12]
    - toEntities: [kube-apiserver, remote-node]
    - icmps:
        - fields:
            - type: 8
            - type: EchoRequest
              family: IPv6
"#;

    const CCNP_YAML: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: lockdown-world-ingress
specs:
  - endpointSelector: {}
    enableDefaultDeny:
      ingress: false
    ingressDeny:
      - fromEntities: [world]
        toPorts:
          - ports:
              - port: "0"
                protocol: ANY
    ingress:
      - fromEntities: [cluster]
        authentication:
          mode: required
    labels:
      - key: owner
        value: netpol
    log:
      value: lockdown
  - nodeSelector:
      matchExpressions:
        - key: node-role.kubernetes.io/control-plane
          operator: DoesNotExist
    egress:
      - toServices:
          - k8sService: {serviceName: db, namespace: data}
          - k8sServiceSelector:
              selector: {matchLabels: {tier: cache}}
      - toPorts:
          - ports:
              - {port: "8000", endPort: 8100, protocol: TCP}
            listener:
              envoyConfig: {kind: CiliumClusterwideEnvoyConfig, name: envoy-lb}
              name: lb
              priority: 10
    egressDeny:
      - toCIDR: [192.0.2.0/24]
"#;

    fn yaml_to_json(yaml: &str) -> serde_json::Value {
        serde_saphyr::from_str(yaml).expect("valid YAML")
    }

    #[test]
    fn cnp_round_trips_through_yaml_and_json() {
        let cnp: CiliumNetworkPolicy = serde_saphyr::from_str(CNP_YAML).unwrap();
        assert_eq!(cnp.metadata.namespace.as_deref(), Some("shop"));
        let spec = cnp.spec.as_ref().unwrap();
        let egress = spec.egress.as_ref().unwrap();
        assert_eq!(egress.len(), 5);
        let icmp = egress
            .iter()
            .find_map(|e| e.icmps.as_ref())
            .and_then(|i| i.first())
            .and_then(|i| i.fields.clone())
            .unwrap();
        assert_eq!(icmp.first().unwrap().icmp_type, IcmpType::Number(8));
        assert_eq!(
            icmp.get(1).unwrap().icmp_type,
            IcmpType::Name("EchoRequest".into())
        );

        // JSON round trip is lossless, and equals the YAML read as a generic value.
        let json = serde_json::to_value(&cnp).unwrap();
        assert_eq!(json, yaml_to_json(CNP_YAML));
        let back: CiliumNetworkPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, cnp);
    }

    #[test]
    fn ccnp_round_trips_and_dispatches_on_kind() {
        let obj: PolicyObject = serde_saphyr::from_str(CCNP_YAML).unwrap();
        assert_eq!(obj.kind(), KIND_CCNP);
        assert_eq!(obj.name(), "lockdown-world-ingress");
        assert_eq!(obj.namespace(), None);
        assert_eq!(obj.rules().count(), 2);
        let PolicyObject::Ccnp(ccnp) = &obj else {
            panic!("expected a CCNP, got {obj:?}");
        };
        let first = ccnp.specs.as_ref().unwrap().first().unwrap();
        assert_eq!(first.endpoint_selector, Some(EndpointSelector::default()));
        assert_eq!(
            first.enable_default_deny,
            Some(DefaultDenyConfig {
                ingress: Some(false),
                egress: None
            })
        );

        let json = serde_json::to_string(&obj).unwrap();
        let back: PolicyObject = serde_json::from_str(&json).unwrap();
        assert_eq!(back, obj);
        assert_eq!(serde_json::to_value(&obj).unwrap(), yaml_to_json(CCNP_YAML));

        let cnp: PolicyObject = serde_saphyr::from_str(CNP_YAML).unwrap();
        assert_eq!(
            (cnp.kind(), cnp.name(), cnp.namespace()),
            (KIND_CNP, "web-ingress", Some("shop"))
        );
    }

    #[test]
    fn removed_and_misspelt_fields_are_rejected() {
        let cases = [
            (
                "fromRequire",
                CNP_YAML.replace(
                    "- fromEndpoints:",
                    "- fromRequire: [{}]\n      fromEndpoints:",
                ),
            ),
            (
                "auth",
                CNP_YAML.replace("- toFQDNs:", "- auth: {type: \"null\"}\n      toFQDNs:"),
            ),
            (
                "toPort",
                CNP_YAML.replace("- toFQDNs:", "- toPort: []\n      toFQDNs:"),
            ),
            (
                "toFQDNs",
                CCNP_YAML.replace(
                    "- toCIDR:",
                    "- toFQDNs: [{matchName: x.io}]\n        toCIDR:",
                ),
            ),
            ("world-ipv4", CCNP_YAML.replace("[world]", "[world-ipv4]")),
            ("tcp", CNP_YAML.replace("protocol: TCP", "protocol: tcp")),
        ];
        for (needle, yaml) in cases {
            assert!(yaml.contains(needle), "test input lacks `{needle}`");
            let err = serde_saphyr::from_str::<PolicyObject>(&yaml).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{needle}`")),
                "error for `{needle}` does not name it: {err}"
            );
        }
        // The same through the concrete types and JSON.
        let mut json = yaml_to_json(CNP_YAML);
        json["spec"]["ingress"][0]["auth"] = serde_json::json!({});
        assert!(serde_json::from_value::<CiliumNetworkPolicy>(json).is_err());
    }

    #[test]
    fn wrong_kind_or_api_version_is_rejected() {
        assert!(serde_saphyr::from_str::<CiliumNetworkPolicy>(CCNP_YAML).is_err());
        assert!(serde_saphyr::from_str::<CiliumClusterwideNetworkPolicy>(CNP_YAML).is_err());
        let v1 = CNP_YAML.replace("cilium.io/v2", "cilium.io/v1");
        assert!(serde_saphyr::from_str::<CiliumNetworkPolicy>(&v1).is_err());
        let np = CNP_YAML.replace("kind: CiliumNetworkPolicy", "kind: NetworkPolicy");
        let err = serde_saphyr::from_str::<PolicyObject>(&np).unwrap_err();
        assert!(
            err.to_string().contains("unknown kind `NetworkPolicy`"),
            "{err}"
        );
    }

    #[test]
    fn metadata_ignores_server_fields() {
        let yaml = CNP_YAML.replace(
            "  namespace: shop\n",
            "  namespace: shop\n  uid: 1234\n  generation: 3\n  managedFields: [{manager: kubectl}]\n",
        );
        let cnp: CiliumNetworkPolicy = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(cnp.metadata.uid.as_deref(), Some("1234"));
        assert_eq!(cnp.metadata.generation, Some(3));
    }

    #[test]
    fn serialization_omits_unset_fields_and_keeps_order() {
        let cnp = CiliumNetworkPolicy {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            spec: Some(Rule {
                // Set in the reverse of the declaration order on purpose.
                log: Some(LogConfig {
                    value: Some("web".into()),
                }),
                egress: Some(vec![EgressRule {
                    icmps: Some(vec![IcmpRule {
                        fields: Some(vec![IcmpField {
                            icmp_type: IcmpType::Number(0),
                            family: None,
                        }]),
                    }]),
                    to_entities: Some(vec![Entity::World]),
                    ..EgressRule::default()
                }]),
                ingress: Some(vec![IngressRule {
                    to_ports: Some(vec![PortRule {
                        ports: Some(vec![PortProtocol {
                            port: "443".into(),
                            end_port: None,
                            protocol: Some(Protocol::Tcp),
                        }]),
                        ..PortRule::default()
                    }]),
                    from_entities: Some(vec![Entity::RemoteNode]),
                    ..IngressRule::default()
                }]),
                endpoint_selector: Some(EndpointSelector::default()),
                description: Some("d".into()),
                ..Rule::default()
            }),
            ..CiliumNetworkPolicy::default()
        };
        let json = serde_json::to_string(&cnp).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","#,
                r#""metadata":{"name":"web","namespace":"shop"},"#,
                r#""spec":{"description":"d","endpointSelector":{},"#,
                r#""ingress":[{"fromEntities":["remote-node"],"#,
                r#""toPorts":[{"ports":[{"port":"443","protocol":"TCP"}]}]}],"#,
                r#""egress":[{"toEntities":["world"],"icmps":[{"fields":[{"type":0}]}]}],"#,
                r#""log":{"value":"web"}}}"#,
            )
        );
    }

    #[test]
    fn empty_list_differs_from_absent_list() {
        let with_empty: Rule =
            serde_saphyr::from_str("endpointSelector: {}\ningress: [{fromEndpoints: []}]\n")
                .unwrap();
        let without: Rule =
            serde_saphyr::from_str("endpointSelector: {}\ningress: [{}]\n").unwrap();
        assert_ne!(with_empty, without);
        assert_eq!(
            serde_json::to_string(&with_empty).unwrap(),
            r#"{"endpointSelector":{},"ingress":[{"fromEndpoints":[]}]}"#
        );
    }

    #[test]
    fn enum_spellings_match_serde() {
        for entity in Entity::ALL {
            let json = serde_json::to_value(entity).unwrap();
            assert_eq!(json, serde_json::Value::from(entity.as_str()));
            assert_eq!(entity.to_string(), entity.as_str());
        }
        for protocol in [
            Protocol::Tcp,
            Protocol::Udp,
            Protocol::Sctp,
            Protocol::Vrrp,
            Protocol::Igmp,
            Protocol::Any,
        ] {
            let json = serde_json::to_value(protocol).unwrap();
            assert_eq!(json, serde_json::Value::from(protocol.to_string()));
        }
        assert_eq!(ApiVersion::V2.as_str(), API_VERSION);
        assert_eq!(
            serde_json::to_value(CnpKind::default()).unwrap(),
            serde_json::Value::from(KIND_CNP)
        );
        assert_eq!(
            serde_json::to_value(CcnpKind::default()).unwrap(),
            serde_json::Value::from(KIND_CCNP)
        );
    }
}
