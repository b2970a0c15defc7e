//! Label selectors compiled for matching identities (docs/semantics.md §1.3, §3.1, §3.3).
//!
//! A written key `k8s:app` means source `k8s`, key `app`; a key without `:` matches labels of
//! any source (`any:`). Requirements are ANDed; a selector without requirements selects every
//! identity it is asked about (its scope is set by the namespace rules of
//! [`Selector::subject_in`] and [`Selector::peer`]).

use std::fmt;

use crate::engine::identity::{self, Labels};
use crate::objects::cilium::{EndpointSelector, SelectorOperator};

/// One requirement on a label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    /// `None`: any source.
    pub source: Option<String>,
    pub key: String,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

impl Requirement {
    pub fn equals(source: Option<&str>, key: &str, value: &str) -> Self {
        Self {
            source: source.map(str::to_owned),
            key: key.to_owned(),
            op: Op::In(vec![value.to_owned()]),
        }
    }

    pub fn exists(source: Option<&str>, key: &str) -> Self {
        Self {
            source: source.map(str::to_owned),
            key: key.to_owned(),
            op: Op::Exists,
        }
    }

    /// Kubernetes semantics: `NotIn` and `DoesNotExist` also hold when the key is absent.
    pub fn matches(&self, labels: &Labels) -> bool {
        let mut found = labels
            .with_key(self.source.as_deref(), &self.key)
            .peekable();
        match &self.op {
            Op::Exists => found.peek().is_some(),
            Op::DoesNotExist => found.peek().is_none(),
            Op::In(values) => found.any(|l| values.contains(&l.value)),
            Op::NotIn(values) => !found.any(|l| values.contains(&l.value)),
        }
    }

    fn is_key(&self, key: &str) -> bool {
        self.key == key && self.source.as_deref().is_none_or(|s| s == "k8s")
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.source {
            Some(s) => format!("{s}:{}", self.key),
            None => self.key.clone(),
        };
        match &self.op {
            Op::In(v) if v.len() == 1 => write!(f, "{key}={}", v.join("")),
            Op::In(v) => write!(f, "{key} in ({})", v.join(",")),
            Op::NotIn(v) => write!(f, "{key} notin ({})", v.join(",")),
            Op::Exists => write!(f, "{key}"),
            Op::DoesNotExist => write!(f, "!{key}"),
        }
    }
}

/// A compiled selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

/// Split a written key into source and key (docs/semantics.md §3.1).
pub fn split_key(written: &str) -> (Option<&str>, &str) {
    match written.split_once(':') {
        Some(("any", key)) => (None, key),
        Some((source, key)) => (Some(source), key),
        None => (None, written),
    }
}

impl Selector {
    /// Compile a written selector; `default_source` is the source of keys written without one
    /// (`None` = any, as in Cilium policies; `k8s` for Kubernetes NetworkPolicies).
    pub fn compile(sel: &EndpointSelector, default_source: Option<&str>) -> Self {
        let mut requirements = Vec::new();
        let source_of = |written: &str| -> (Option<String>, String) {
            let (source, key) = split_key(written);
            let source = if written.contains(':') {
                source
            } else {
                default_source
            };
            (source.map(str::to_owned), key.to_owned())
        };
        for (k, v) in sel.match_labels.iter().flatten() {
            let (source, key) = source_of(k);
            requirements.push(Requirement {
                source,
                key,
                op: Op::In(vec![v.clone()]),
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            let (source, key) = source_of(&e.key);
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator {
                SelectorOperator::In => Op::In(values),
                SelectorOperator::NotIn => Op::NotIn(values),
                SelectorOperator::Exists => Op::Exists,
                SelectorOperator::DoesNotExist => Op::DoesNotExist,
            };
            requirements.push(Requirement { source, key, op });
        }
        Self { requirements }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn with(mut self, r: Requirement) -> Self {
        self.requirements.push(r);
        self
    }

    /// Whether some requirement names a `reserved:` label.
    pub fn has_reserved(&self) -> bool {
        self.requirements
            .iter()
            .any(|r| r.source.as_deref() == Some("reserved"))
    }

    pub(crate) fn has_key(&self, key: &str) -> bool {
        self.requirements.iter().any(|r| r.is_key(key))
    }

    fn has_namespace_labels(&self) -> bool {
        self.requirements.iter().any(|r| {
            r.key.starts_with(identity::NAMESPACE_LABELS)
                && r.source.as_deref().is_none_or(|s| s == "k8s")
        })
    }

    /// A selector bound to `namespace`, as Cilium binds a CNP's subject (and a NetworkPolicy's
    /// pods): the `matchLabels` entry `k8s:io.kubernetes.pod.namespace` is set to the
    /// namespace, overwriting a written one; a namespace key written without the `k8s:` source,
    /// and every `matchExpressions` requirement, are kept and ANDed, so they can make the
    /// selector select nothing (docs/semantics.md §3.3 rule 1; cilium/cilium@507103c6
    /// pkg/k8s/apis/cilium.io/utils/utils.go:364-406, pkg/policy/api/selector.go:249-255).
    pub fn compile_in(
        sel: &EndpointSelector,
        default_source: Option<&str>,
        namespace: &str,
    ) -> Self {
        let written_k8s_namespace = |key: &str| {
            let (source, name) = split_key(key);
            let source = if key.contains(':') {
                source
            } else {
                default_source
            };
            source == Some("k8s") && name == identity::NAMESPACE
        };
        let kept = EndpointSelector {
            match_labels: sel.match_labels.as_ref().map(|labels| {
                labels
                    .iter()
                    .filter(|(k, _)| !written_k8s_namespace(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            match_expressions: sel.match_expressions.clone(),
        };
        Self::compile(&kept, default_source).with(Requirement::equals(
            Some("k8s"),
            identity::NAMESPACE,
            namespace,
        ))
    }

    /// A peer selector after Cilium's rewrites (docs/semantics.md §3.3): `namespace` is the
    /// policy's namespace for a CNP/KNP, `None` for a CCNP (then `namespace Exists` is added,
    /// unless `init_subject`); plus the local-cluster requirement (§3.5) when `cluster` names
    /// the cluster peers are confined to.
    pub fn peer(
        mut self,
        namespace: Option<&str>,
        init_subject: bool,
        cluster: Option<&str>,
    ) -> Self {
        if self.has_reserved() {
            return self;
        }
        if !self.has_key(identity::NAMESPACE) && !self.has_namespace_labels() {
            match namespace {
                Some(ns) => {
                    self = self.with(Requirement::equals(Some("k8s"), identity::NAMESPACE, ns));
                }
                None if !init_subject => {
                    self = self.with(Requirement::exists(Some("k8s"), identity::NAMESPACE));
                }
                None => {}
            }
        }
        if let Some(cluster) = cluster
            && !self.has_key(identity::CLUSTER)
        {
            self = self.with(Requirement::equals(Some("k8s"), identity::CLUSTER, cluster));
        }
        self
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        f.write_str("{")?;
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            r.fmt(f)?;
        }
        f.write_str("}")
    }
}
