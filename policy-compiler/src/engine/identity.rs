//! Identities: the label sets Cilium assigns to the two ends of a flow
//! (docs/semantics.md §3.1, §3.2, §5.1).
//!
//! A pod's identity is its pod labels (minus those the identity filter drops), its namespace,
//! service account, cluster and namespace labels, all with source `k8s`. Reserved peers carry
//! `reserved:` labels; anything outside the cluster is `reserved:world` plus its IP (for CIDR
//! rules) and the DNS names it was resolved from (for `toFQDNs`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// `k8s:io.kubernetes.pod.namespace`.
pub const NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// `k8s:io.cilium.k8s.policy.serviceaccount`.
pub const SERVICE_ACCOUNT: &str = "io.cilium.k8s.policy.serviceaccount";
/// `k8s:io.cilium.k8s.policy.cluster`.
pub const CLUSTER: &str = "io.cilium.k8s.policy.cluster";
/// Prefix of namespace labels copied into pod identities.
pub const NAMESPACE_LABELS: &str = "io.cilium.k8s.namespace.labels.";
/// One identity label, `source:key=value`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub source: String,
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn new(source: &str, key: &str, value: &str) -> Self {
        Self {
            source: source.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    /// Parse Hubble's `source:key=value` (`reserved:world`, `k8s:app=web`); without a source
    /// the label's source is `unspec`, as in Cilium.
    pub fn parse(text: &str) -> Self {
        let (source, rest) = match text.split_once(':') {
            Some((source, rest)) if !source.contains('=') => (source, rest),
            _ => ("unspec", text),
        };
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        Self::new(source, key, value)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.source, self.key)
        } else {
            write!(f, "{}:{}={}", self.source, self.key, self.value)
        }
    }
}

/// A sorted, duplicate-free set of identity labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    pub fn new(mut labels: Vec<Label>) -> Self {
        labels.sort();
        labels.dedup();
        Self(labels)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Labels with this key; `source` `None` means any source (Cilium's `any:`).
    pub fn with_key<'a>(
        &'a self,
        source: Option<&'a str>,
        key: &'a str,
    ) -> impl Iterator<Item = &'a Label> + 'a {
        self.0
            .iter()
            .filter(move |l| l.key == key && source.is_none_or(|s| s == l.source))
    }

    pub fn has(&self, source: Option<&str>, key: &str) -> bool {
        self.with_key(source, key).next().is_some()
    }

    /// The value of the first label with this key.
    pub fn get<'a>(&'a self, source: Option<&str>, key: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|l| l.key == key && source.is_none_or(|s| s == l.source))
            .map(|l| l.value.as_str())
    }

    pub fn reserved(&self, name: &str) -> bool {
        self.has(Some("reserved"), name)
    }

    /// The pod namespace, for pods.
    pub fn namespace(&self) -> Option<&str> {
        self.get(Some("k8s"), NAMESPACE)
    }

    pub fn insert(&mut self, label: Label) {
        if let Err(at) = self.0.binary_search(&label) {
            self.0.insert(at, label);
        }
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            l.fmt(f)?;
        }
        Ok(())
    }
}

/// The identity label set of a pod of the cluster named `cluster` (docs/semantics.md §3.2).
pub fn pod_labels(
    namespace: &str,
    pod_labels: &BTreeMap<String, String>,
    service_account: Option<&str>,
    namespace_labels: Option<&BTreeMap<String, String>>,
    cluster: &str,
) -> Labels {
    filtered_pod_labels(
        namespace,
        pod_labels,
        service_account,
        namespace_labels,
        cluster,
        None,
    )
}

/// [`pod_labels`] for agents whose identity label filter has the entries of `filter` (the
/// `labels` setting) besides the built-in ones.
pub fn filtered_pod_labels(
    namespace: &str,
    pod_labels: &BTreeMap<String, String>,
    service_account: Option<&str>,
    namespace_labels: Option<&BTreeMap<String, String>>,
    cluster: &str,
    filter: Option<&crate::objects::label::LabelFilter>,
) -> Labels {
    let mut out = Vec::with_capacity(pod_labels.len() + 4);
    for (k, v) in pod_labels {
        // Cilium drops a pod's own `io.cilium.k8s*` labels before it adds the namespace,
        // service account and cluster ones (cilium/cilium@507103c6 pkg/k8s/utils/utils.go:
        // 195-205).
        if k.starts_with("io.cilium.k8s") {
            continue;
        }
        let dropped = match filter {
            Some(filter) => filter.drops("k8s", k),
            None => crate::objects::label::filtered_from_identity(k).is_some(),
        };
        if !dropped {
            out.push(Label::new("k8s", k, v));
        }
    }
    out.push(Label::new("k8s", NAMESPACE, namespace));
    out.push(Label::new("k8s", CLUSTER, cluster));
    if let Some(sa) = service_account {
        out.push(Label::new("k8s", SERVICE_ACCOUNT, sa));
    }
    // Every namespace has `kubernetes.io/metadata.name` (set by the API server).
    let mut ns_labels = namespace_labels.cloned().unwrap_or_default();
    ns_labels
        .entry("kubernetes.io/metadata.name".to_owned())
        .or_insert_with(|| namespace.to_owned());
    for (k, v) in &ns_labels {
        out.push(Label::new("k8s", &format!("{NAMESPACE_LABELS}{k}"), v));
    }
    Labels::new(out)
}

/// Reserved identities and entities (docs/semantics.md §5.1, §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reserved {
    Host,
    World,
    Unmanaged,
    Health,
    Init,
    RemoteNode,
    KubeApiserver,
    Ingress,
}

impl Reserved {
    pub const ALL: [Self; 8] = [
        Self::Host,
        Self::World,
        Self::Unmanaged,
        Self::Health,
        Self::Init,
        Self::RemoteNode,
        Self::KubeApiserver,
        Self::Ingress,
    ];

    /// The label key (`reserved:<key>`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::World => "world",
            Self::Unmanaged => "unmanaged",
            Self::Health => "health",
            Self::Init => "init",
            Self::RemoteNode => "remote-node",
            Self::KubeApiserver => "kube-apiserver",
            Self::Ingress => "ingress",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.key() == text)
    }

    /// The labels of the reserved identity (identity 7 is kube-apiserver on a remote node).
    pub fn labels(self) -> Labels {
        let mut v = vec![Label::new("reserved", self.key(), "")];
        if self == Self::KubeApiserver {
            v.push(Label::new("reserved", Self::RemoteNode.key(), ""));
        }
        Labels::new(v)
    }

    /// Hubble's numeric identities for the reserved ones (docs/semantics.md §5.1).
    pub fn from_numeric(id: u64) -> Option<Labels> {
        let r = match id {
            1 => Self::Host,
            2 => Self::World,
            3 => Self::Unmanaged,
            4 => Self::Health,
            5 => Self::Init,
            6 => Self::RemoteNode,
            7 => Self::KubeApiserver,
            8 => Self::Ingress,
            9 => return Some(Labels::new(vec![Label::new("reserved", "world-ipv4", "")])),
            10 => return Some(Labels::new(vec![Label::new("reserved", "world-ipv6", "")])),
            _ => return None,
        };
        Some(r.labels())
    }
}

/// One end of a flow as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Peer {
    pub labels: Arc<Labels>,
    pub ip: Option<IpAddr>,
    /// DNS names the IP was resolved from (lowercase, no trailing dot); world peers only.
    pub names: Vec<String>,
    /// Container ports by name (`http` → 8080/TCP), when an inventory or the flow says.
    pub named_ports: Arc<Vec<NamedPort>>,
}

/// A container port with a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
    pub protocol: crate::objects::Proto,
}

impl Peer {
    /// World-class: outside the cluster, selectable by CIDR and FQDN rules (docs/semantics.md §5.3).
    pub fn is_world(&self) -> bool {
        self.labels.reserved("world")
            || self.labels.reserved("world-ipv4")
            || self.labels.reserved("world-ipv6")
    }

    /// A Cilium endpoint that enforces policy (docs/semantics.md §10.1 step 4): a pod, or the
    /// health, ingress or init endpoints. A node's host endpoint enforces only with the host
    /// firewall ([`crate::engine::entry::Entries::enforces`]).
    pub fn is_endpoint(&self) -> bool {
        self.labels.namespace().is_some()
            || self.labels.reserved("health")
            || self.labels.reserved("ingress")
            || self.labels.reserved("init")
    }

    pub fn is_host(&self) -> bool {
        self.labels.reserved("host")
    }

    /// A node's address: the local host or a remote node.
    pub fn is_node(&self) -> bool {
        self.is_host() || self.labels.reserved("remote-node")
    }
}
