//! Label selectors compiled for matching identities (docs/semantics.md §1.3, §3.1, §3.3).
//!
//! A written key is read as Cilium reads it ([`label_key`]): `k8s:app` means source `k8s`, key
//! `app`; `reserved.world` (or `$world`) means `reserved:world`; any other key without `:`
//! matches labels of any source (`any:`), dots and all (`app.kubernetes.io/name`). Requirements are ANDed; a selector without requirements selects every
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
        // A key of any source is printed bare unless Cilium would read it back otherwise.
        let key = match &self.source {
            Some(s) => format!("{s}:{}", self.key),
            None if self.key.contains(':')
                || self.key.starts_with('$')
                || self.key.starts_with("reserved.") =>
            {
                format!("any:{}", self.key)
            }
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

/// How the keys of a written selector become Cilium label keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// A CNP/CCNP selector (`endpointSelector`, `fromEndpoints`, `toNodes`, ...): the agent's
    /// `EndpointSelector.Sanitize` rewrites each key with `labels.GetExtendedKeyFrom`
    /// (cilium/cilium@507103c6 pkg/policy/api/selector.go:276-299, pkg/labels/labels.go:
    /// 525-537), before `ParseToCiliumRule` adds the namespace and cluster keys
    /// (pkg/k8s/apis/cilium.io/v2/cnp_types.go:195-202).
    Cilium,
    /// A NetworkPolicy selector: `k8s.` is put before the key as written
    /// (`NewESFromK8sLabelSelector(labels.LabelSourceK8sKeyPrefix, ...)`,
    /// cilium/cilium@507103c6 pkg/k8s/network_policy.go:128-132, 282).
    Kubernetes,
    /// A `cidrGroupSelector`: `cidrgroup.` before the key as written
    /// (cilium/cilium@507103c6 pkg/policy/api/rule_validation.go:703).
    CidrGroup,
}

/// The `<source>.<key>` form Cilium stores a written selector key in (docs/semantics.md §3.1).
///
/// For [`KeyForm::Cilium`] this is `labels.GetExtendedKeyFrom` with `parseSource(key, ':')`
/// (cilium/cilium@507103c6 pkg/labels/labels.go:525-537, 804-822): a leading `$` is the
/// `reserved` source; otherwise what precedes the first `:` is the source, whatever it is
/// (`k8s`, `reserved`, `container`, `any`, or a word Cilium does not know); a key without `:`
/// that starts with `reserved.` is the `reserved` source too; any other key without `:` gets
/// `any`; and everything from the first `=` on is dropped.
pub fn extended_key(written: &str, form: KeyForm) -> String {
    match form {
        KeyForm::Kubernetes => format!("k8s.{written}"),
        KeyForm::CidrGroup => format!("cidrgroup.{written}"),
        KeyForm::Cilium => {
            let (source, rest) = if let Some(rest) = written.strip_prefix('$') {
                ("reserved", rest)
            } else if let Some((source, rest)) = written.split_once(':') {
                (source, rest)
            } else if let Some(rest) = written.strip_prefix("reserved.") {
                ("reserved", rest)
            } else {
                ("", written)
            };
            let source = if source.is_empty() { "any" } else { source };
            let rest = rest.split_once('=').map_or(rest, |(k, _)| k);
            format!("{source}.{rest}")
        }
    }
}

/// The (source, key) a written selector key matches labels by: its [`extended_key`] read back
/// with `labels.ParseSelectDotLabel`, which splits at the first `.` (cilium/cilium@507103c6
/// pkg/policy/types/requirements.go:142-150, pkg/labels/labels.go:804-822, 831-848, 888-895).
/// Source `any` (`None` here) matches labels of every source (pkg/labels/labels.go:385-388).
///
/// So `reserved.world` is `reserved:world`, `k8s:app` is `k8s:app`, but `k8s.app` is the key
/// `k8s.app` of any source and `app.kubernetes.io/name` is that key of any source.
pub fn label_key(written: &str, form: KeyForm) -> (Option<String>, String) {
    let extended = extended_key(written, form);
    // INVARIANT: an extended key always contains the `.` after its source.
    let (source, rest) = extended.split_once('.').unwrap_or(("", extended.as_str()));
    let key = match rest.split_once('=') {
        Some(("", value)) if source == "reserved" => value,
        Some((key, _)) => key,
        None => rest,
    };
    let source = match source {
        "" | "any" => None,
        s => Some(s.to_owned()),
    };
    (source, key.to_owned())
}

/// Whether a written subject selector names the `reserved:init` key, in `matchLabels` or
/// `matchExpressions` whatever the operator (`matchesPodInit`: `HasKey("reserved.init")`,
/// cilium/cilium@507103c6 pkg/k8s/apis/cilium.io/utils/utils.go:344-349).
pub fn selects_init(sel: &EndpointSelector) -> bool {
    let is_init = |k: &str| {
        let (source, key) = label_key(k, KeyForm::Cilium);
        source.as_deref() == Some("reserved") && key == "init"
    };
    sel.match_labels.iter().flatten().any(|(k, _)| is_init(k))
        || sel
            .match_expressions
            .iter()
            .flatten()
            .any(|e| is_init(&e.key))
}

impl Selector {
    /// Compile a written selector whose keys are read as `form` says.
    pub fn compile(sel: &EndpointSelector, form: KeyForm) -> Self {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            let (source, key) = label_key(k, form);
            requirements.push(Requirement {
                source,
                key,
                op: Op::In(vec![v.clone()]),
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            let (source, key) = label_key(&e.key, form);
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
    pub fn compile_in(sel: &EndpointSelector, form: KeyForm, namespace: &str) -> Self {
        let written_k8s_namespace = |key: &str| {
            let (source, name) = label_key(key, form);
            source.as_deref() == Some("k8s") && name == identity::NAMESPACE
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
        Self::compile(&kept, form).with(Requirement::equals(
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

#[cfg(test)]
mod tests {
    use super::{KeyForm, label_key};

    fn read(written: &str, form: KeyForm) -> (Option<String>, String) {
        label_key(written, form)
    }

    fn want(source: Option<&str>, key: &str) -> (Option<String>, String) {
        (source.map(str::to_owned), key.to_owned())
    }

    /// Every key form, as `GetExtendedKeyFrom` then `ParseSelectDotLabel` read it
    /// (cilium/cilium@507103c6 pkg/labels/labels.go:525-537, 804-822, 831-895;
    /// pkg/policy/types/requirements.go:142-150).
    #[test]
    fn selector_keys_are_read_as_cilium_reads_them() {
        let cilium = [
            ("reserved.world", Some("reserved"), "world"),
            ("reserved:world", Some("reserved"), "world"),
            ("$host", Some("reserved"), "host"),
            ("k8s:app", Some("k8s"), "app"),
            ("k8s.app", None, "k8s.app"),
            ("any.app", None, "any.app"),
            ("any:app", None, "app"),
            ("app", None, "app"),
            ("app.kubernetes.io/name", None, "app.kubernetes.io/name"),
            (
                "k8s:app.kubernetes.io/name",
                Some("k8s"),
                "app.kubernetes.io/name",
            ),
            (
                "k8s:io.kubernetes.pod.namespace",
                Some("k8s"),
                "io.kubernetes.pod.namespace",
            ),
            ("container:tier", Some("container"), "tier"),
            ("cidr:10.0.0.0/8", Some("cidr"), "10.0.0.0/8"),
            ("unspec:app", Some("unspec"), "app"),
            ("cilium-generated:x", Some("cilium-generated"), "x"),
            ("app=x", None, "app"),
            ("reserved.x:y", Some("reserved"), "x.y"),
            ("a.b:c", Some("a"), "b.c"),
        ];
        for (written, source, key) in cilium {
            assert_eq!(
                read(written, KeyForm::Cilium),
                want(source, key),
                "{written}"
            );
        }
        assert_eq!(
            read("reserved.world", KeyForm::Kubernetes),
            want(Some("k8s"), "reserved.world")
        );
        assert_eq!(
            read("app.kubernetes.io/name", KeyForm::Kubernetes),
            want(Some("k8s"), "app.kubernetes.io/name")
        );
        assert_eq!(
            read("k8s:team", KeyForm::CidrGroup),
            want(Some("cidrgroup"), "k8s:team")
        );
    }
}
